"""``/v1/rules``: the live rule set, single rules, versions, diffs and rollback.

Every change is a new version (author = the API key's name) and an audit entry. Mutations
need ``If-Match`` with the rule set's ETag ``W/"ruleset-<version>"``: missing -> 428, stale -> 412.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from services.router.errors import NotFound, transaction
from services.router.openapi import ETAG_HEADER, READ, WRITE, problems
from services.router.rules import Rule, RuleSet, diff_rulesets
from services.router.rulesets import service
from services.router.rulesets.schemas import RulePatch, VersionDiff, VersionDocument, VersionOut
from services.router.rulesets.store import ruleset_of
from shared.auth import Caller, Role, require_caller, require_role
from shared.http.pages import link_next, next_link_header
from shared.http.preconditions import expected_revision, if_match_header

router = APIRouter(prefix="/v1/rules", tags=["rules"])
RuleIdPath = Path(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
VersionPath = Path(ge=1, le=2**31 - 1)
IfMatch = if_match_header('The rule set ETag you read, e.g. W/"ruleset-7" (or *).')
Comment = Query("", max_length=500, description="Why: stored with the version and in the audit log")
_viewer = Depends(require_role(Role.VIEWER))
_editor = Depends(require_caller(Role.EDITOR))
_RULESET_OK = {"description": "The rule set (new version after a change)", "headers": ETAG_HEADER}


def _edit(if_match: str | None = IfMatch, comment: str = Comment, caller: Caller = _editor) -> service.Edit:
    """A mutation's If-Match, comment and author (editor role), as one parameter of each endpoint."""
    return service.Edit(expected_revision(if_match, "ruleset"), caller.name, comment)


_Edit = Depends(_edit)


def _answer(response: Response, ruleset: RuleSet) -> RuleSet:
    assert ruleset.version is not None
    response.headers["ETag"] = service.ruleset_etag(ruleset.version)
    return ruleset


def _version_out(row: object) -> VersionOut:
    return VersionOut.model_validate(row, from_attributes=True)


@router.get(
    "",
    response_model=RuleSet,
    response_model_exclude_none=True,
    responses={**problems(*READ), 200: _RULESET_OK},
    summary="The live rule set and its version",
)
async def get_rules(request: Request, response: Response, _role: Role = _viewer) -> RuleSet:
    async with transaction(request) as session:
        return _answer(response, await service.live(session))


@router.put(
    "",
    response_model=RuleSet,
    response_model_exclude_none=True,
    responses={**problems(*WRITE), 200: _RULESET_OK},
    summary="Replace the whole rule set",
)
async def put_rules(
    ruleset: RuleSet,
    request: Request,
    response: Response,
    edit: service.Edit = _Edit,
) -> RuleSet:
    async with transaction(request) as session:
        saved = await service.replace_ruleset(session, ruleset, edit)
    return _answer(response, saved)


@router.post(
    "",
    status_code=201,
    response_model=RuleSet,
    response_model_exclude_none=True,
    responses={**problems(*WRITE), 201: _RULESET_OK},
    summary="Add a rule (at the end, or at a position)",
)
async def post_rule(
    rule: Rule,
    request: Request,
    response: Response,
    position: int | None = Query(None, ge=0, le=5_000, description="0-based; default: last"),
    edit: service.Edit = _Edit,
) -> RuleSet:
    async with transaction(request) as session:
        saved = await service.add_rule(session, rule, position, edit)
    response.headers["Location"] = f"/v1/rules/{rule.id}"
    return _answer(response, saved)


@router.get(
    "/versions",
    response_model=list[VersionOut],
    responses={
        **problems(*READ),
        200: {
            "description": "Versions, newest first",
            "headers": next_link_header("/v1/rules/versions?...&before=N"),
        },
    },
    summary="Rule set versions, newest first",
)
async def list_versions(
    request: Request,
    response: Response,
    limit: int = Query(50, ge=1, le=1_000),
    before: int | None = Query(
        None, ge=1, le=2**31 - 1, description="Only versions older than this: the next page's cursor"
    ),
    _role: Role = _viewer,
) -> list[VersionOut]:
    async with transaction(request) as session:
        versions = [_version_out(row) for row in await service.list_versions(session, limit, before)]
    if len(versions) == limit:  # maybe more: the next page starts below this one's last version
        link_next(request, response, "before", versions[-1].version)
    return versions


@router.get(
    "/versions/{version}",
    response_model=VersionDocument,
    response_model_exclude_none=True,
    responses=problems(*READ, 404),
    summary="One version's document",
)
async def get_version(request: Request, version: int = VersionPath, _role: Role = _viewer) -> VersionDocument:
    async with transaction(request) as session:
        row = await service.get_version(session, version)
    return VersionDocument(**_version_out(row).model_dump(), ruleset=ruleset_of(row))


@router.get(
    "/versions/{version}/diff",
    response_model=VersionDiff,
    responses=problems(*READ, 404),
    summary="What changed between two versions",
)
async def diff_versions(
    request: Request,
    version: int = VersionPath,
    against: int | None = Query(
        None, ge=0, le=2**31 - 1, description="Default: the previous version (0: empty)"
    ),
    _role: Role = _viewer,
) -> VersionDiff:
    base = version - 1 if against is None else against
    async with transaction(request) as session:
        new = ruleset_of(await service.get_version(session, version))
        old = ruleset_of(await service.get_version(session, base)) if base > 0 else RuleSet()
    change = diff_rulesets(old, new)
    return VersionDiff(version=version, against=base, diff=change.to_dict(), text=change.render())


@router.post(
    "/versions/{version}/rollback",
    response_model=RuleSet,
    response_model_exclude_none=True,
    responses={**problems(*WRITE, 404), 200: _RULESET_OK},
    summary="Make a new version equal to an old one",
)
async def rollback(
    request: Request,
    response: Response,
    version: int = VersionPath,
    edit: service.Edit = _Edit,
) -> RuleSet:
    async with transaction(request) as session:
        saved = await service.rollback(session, version, edit)
    return _answer(response, saved)


@router.get(
    "/{rule_id}",
    response_model=Rule,
    response_model_exclude_none=True,
    responses={**problems(*READ, 404), 200: {"description": "The rule", "headers": ETAG_HEADER}},
    summary="One rule of the live set (the ETag is the rule set's)",
)
async def get_rule(
    request: Request, response: Response, rule_id: str = RuleIdPath, _role: Role = _viewer
) -> Rule:
    async with transaction(request) as session:
        ruleset = await service.live(session)
        found = next((rule for rule in ruleset.rules if rule.id == rule_id), None)
        if found is None:
            raise NotFound(f"no rule {rule_id!r} in version {ruleset.version}")
    _answer(response, ruleset)
    return found


@router.put(
    "/{rule_id}",
    response_model=RuleSet,
    response_model_exclude_none=True,
    responses={**problems(*WRITE, 404), 200: _RULESET_OK},
    summary="Replace one rule",
)
async def put_rule(
    rule: Rule,
    request: Request,
    response: Response,
    rule_id: str = RuleIdPath,
    edit: service.Edit = _Edit,
) -> RuleSet:
    async with transaction(request) as session:
        saved = await service.replace_rule(session, rule_id, rule, edit)
    return _answer(response, saved)


@router.patch(
    "/{rule_id}",
    response_model=RuleSet,
    response_model_exclude_none=True,
    responses={**problems(*WRITE, 404), 200: _RULESET_OK},
    summary="Change part of one rule (JSON merge patch), e.g. enable or disable it",
)
async def patch_rule(
    patch: RulePatch,
    request: Request,
    response: Response,
    rule_id: str = RuleIdPath,
    edit: service.Edit = _Edit,
) -> RuleSet:
    async with transaction(request) as session:
        saved = await service.patch_rule(session, rule_id, patch.patch(), edit)
    return _answer(response, saved)


@router.delete(
    "/{rule_id}",
    response_model=RuleSet,
    response_model_exclude_none=True,
    responses={**problems(*WRITE, 404), 200: _RULESET_OK},
    summary="Remove one rule",
)
async def delete_rule(
    request: Request,
    response: Response,
    rule_id: str = RuleIdPath,
    edit: service.Edit = _Edit,
) -> RuleSet:
    async with transaction(request) as session:
        saved = await service.delete_rule(session, rule_id, edit)
    return _answer(response, saved)


@router.post(
    "/{rule_id}/move",
    response_model=RuleSet,
    response_model_exclude_none=True,
    responses={**problems(*WRITE, 404), 200: _RULESET_OK},
    summary="Move one rule to a position",
)
async def move_rule(
    request: Request,
    response: Response,
    rule_id: str = RuleIdPath,
    position: int = Query(..., ge=0, le=5_000, description="0-based target position"),
    edit: service.Edit = _Edit,
) -> RuleSet:
    async with transaction(request) as session:
        saved = await service.move_rule(session, rule_id, position, edit)
    return _answer(response, saved)
