"""Admin API for SLA policies and business calendars: versioned, validated, ETag-guarded.

``/v1/sla/{policies|calendars}/{name}``: GET (ETag ``W/"sla-policy-<name>-<version>"``), PUT
(create: no If-Match or ``*``; update: ``If-Match`` required -> 428 without, 412 when stale),
DELETE (If-Match), ``/versions`` for the history with author (the API key's name) and diff.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response

from services.router.errors import Conflict, NotFound, transaction
from services.router.openapi import ETAG_HEADER, READ, WRITE, problems
from services.router.rulesets.sla_references import policy_in_use
from services.router.slas import service
from services.router.slas.models import SlaConfigVersion
from services.router.slas.schemas import ConfigOut, VersionOut, WriteIn
from services.router.teams.states import team_states
from shared.auth import Caller, Role, require_caller, require_role
from shared.http.pages import link_next, next_link_header
from shared.http.preconditions import ANY, MISSING, check_expected, expected_revision, if_match_header
from shared.http.problems import Problem

router = APIRouter(prefix="/v1/sla", tags=["sla"])

Plural = Literal["policies", "calendars"]
KIND: dict[str, str] = {"policies": "policy", "calendars": "calendar"}
IfMatch = if_match_header('The ETag you read, e.g. W/"sla-policy-gold-3" (or *).')
MAX_PAGE = 1_000  # versions a page, as for the rule set's versions and the audit log
_viewer = Depends(require_role(Role.VIEWER))
_editor = Depends(require_caller(Role.EDITOR))


def _tagged(description: str, **extra: Any) -> dict[str, Any]:
    return {"description": description, "headers": ETAG_HEADER, **extra}


def check_if_match(kind: str, name: str, current: SlaConfigVersion | None, if_match: str | None) -> None:
    """Absent (never created, or deleted): no If-Match or ``*`` (re)creates it, a named version
    cannot match (412, no ETag to offer). Present: 428/412 naming the current ETag."""
    expected = expected_revision(if_match, service.etag_prefix(kind, name))
    if current is None or current.deleted:
        if expected not in (ANY, MISSING):
            raise Problem(412, "Precondition failed", f"there is no {kind} {name!r} to match If-Match")
        return
    check_expected(expected, current.version, service.config_etag(current))


def _pointer(field: str, document: dict[str, Any]) -> str:
    """A document error's place in the request: the name comes from the URL unless the document
    repeats it."""
    if field == "/name" and "name" not in document:
        return "/path/name"
    return "/document" + field


def out(row: SlaConfigVersion) -> ConfigOut:
    return ConfigOut.model_validate(row, from_attributes=True)


@router.get(
    "/{plural}",
    response_model=list[ConfigOut],
    responses=problems(*READ),
    summary="Live SLA policies or calendars",
)
async def list_configs(plural: Plural, request: Request, _role: Role = _viewer) -> list[ConfigOut]:
    async with request.app.state.sessions() as session:
        return [out(r) for r in await service.live_rows(session, KIND[plural])]


@router.get(
    "/{plural}/{name}",
    response_model=ConfigOut,
    responses={**problems(*READ, 404), 200: _tagged("The live version")},
    summary="One SLA policy or calendar",
)
async def get_config(
    plural: Plural, name: str, request: Request, response: Response, _role: Role = _viewer
) -> ConfigOut:
    async with request.app.state.sessions() as session:
        row = await service.latest(session, KIND[plural], name)
    if row is None or row.deleted:
        raise Problem(404, "Not found", f"no {KIND[plural]} {name!r}")
    response.headers["ETag"] = service.config_etag(row)
    return out(row)


@router.get(
    "/{plural}/{name}/versions",
    response_model=list[VersionOut],
    responses={
        **problems(*READ, 404),
        200: {
            "description": "Versions, newest first",
            "headers": next_link_header("/v1/sla/policies/gold/versions?...&before=N"),
        },
    },
    summary="Change history, newest first",
)
async def versions(
    plural: Plural,
    name: str,
    request: Request,
    response: Response,
    limit: int = Query(50, ge=1, le=MAX_PAGE),
    before: int | None = Query(
        None, ge=1, le=2**31 - 1, description="Only versions older than this: the next page's cursor"
    ),
    _role: Role = _viewer,
) -> list[VersionOut]:
    async with request.app.state.sessions() as session:
        rows = await service.history_page(session, KIND[plural], name, limit, before)
        # An empty page past the first version is a page; a name never saved is a 404.
        if not rows and await service.latest(session, KIND[plural], name) is None:
            raise Problem(404, "Not found", f"no {KIND[plural]} {name!r}")
    if len(rows) == limit:  # maybe more: the next page starts below this one's last version
        link_next(request, response, "before", rows[-1].version)
    return [VersionOut.model_validate(r, from_attributes=True) for r in rows]


@router.put(
    "/{plural}/{name}",
    response_model=ConfigOut,
    responses={
        **problems(*WRITE),
        200: _tagged("Updated: the new version"),
        201: _tagged("Created (or re-created after a deletion)", model=ConfigOut),
    },
    summary="Create or update (new version)",
)
async def put_config(
    plural: Plural,
    name: str,
    body: WriteIn,
    request: Request,
    response: Response,
    if_match: str | None = IfMatch,
    caller: Caller = _editor,
) -> ConfigOut:
    kind = KIND[plural]
    async with transaction(request) as session:
        current = await service.begin_change(session, kind, name)
        check_if_match(kind, name, current, if_match)
        calendars, teams = await service.live_calendars(session), await team_states(session)
        try:
            model = service.validate_document(kind, name, body.document, calendars, teams)
        except service.ConfigInvalid as exc:
            errors = [{**e, "field": _pointer(e["field"], body.document)} for e in exc.errors]
            detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
            raise Problem(422, "Invalid SLA configuration", detail, errors=errors) from None
        document = model.model_dump(mode="json", exclude_defaults=False)
        row = await service.save(session, kind, name, document, caller.name, body.comment, previous=current)
    response.headers["ETag"] = service.config_etag(row)
    response.status_code = 201 if current is None or current.deleted else 200
    return out(row)


@router.delete(
    "/{plural}/{name}",
    status_code=204,
    response_class=Response,
    responses={**problems(*WRITE, 404), 204: {"description": "Deleted (recorded as a version)"}},
    summary="Delete (recorded as a version)",
)
async def delete_config(
    plural: Plural,
    name: str,
    request: Request,
    if_match: str | None = IfMatch,
    caller: Caller = _editor,
) -> Response:
    kind = KIND[plural]
    async with transaction(request) as session:
        current = await service.begin_change(session, kind, name)
        if current is None or current.deleted:
            raise NotFound(f"no {kind} {name!r}")
        check_if_match(kind, name, current, if_match)
        if kind == "calendar":
            policies = await service.live_rows(session, "policy")
            users = [r.name for r in policies if r.document.get("calendar") == name]
            if users:
                raise Conflict(f"calendar {name!r} is used by SLA policies {users}")
        if kind == "policy" and (using := await policy_in_use(session, name)) is not None:
            raise Conflict(using)  # the live rule set names it, as a team's rules would
        await service.save(session, kind, name, None, caller.name, previous=current)
    return Response(status_code=204)
