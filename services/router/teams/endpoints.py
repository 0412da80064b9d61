"""``/v1/teams``: team CRUD. Viewers read; editors change (with If-Match); every change audited."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from services.router.errors import transaction
from services.router.openapi import ETAG_HEADER, READ, WRITE, problems
from services.router.teams import service
from services.router.teams.schemas import TEAM_NAME, TeamCreate, TeamFields, TeamOut, TeamPatch
from shared.auth import Caller, Role, require_caller, require_role
from shared.http.preconditions import Expected, expected_version, if_match_header

router = APIRouter(prefix="/v1/teams", tags=["teams"])
NamePath = Path(min_length=1, max_length=100, pattern=TEAM_NAME)
IfMatch = if_match_header('The ETag you read, e.g. W/"team-access-3.5f1c09e2a4b7d3c8" (or *).')
_viewer = Depends(require_role(Role.VIEWER))
_editor = Depends(require_caller(Role.EDITOR))


def _expected(name: str, if_match: str | None) -> Expected:
    return expected_version(if_match, f"team-{name}")


@router.get("", response_model=list[TeamOut], responses=problems(*READ), summary="List teams")
async def list_teams(
    request: Request,
    active: bool | None = Query(None, description="Only active (true) or inactive (false)"),
    _role: Role = _viewer,
) -> list[TeamOut]:
    async with request.app.state.sessions() as session:
        return [service.to_out(row) for row in await service.list_teams(session, active)]


@router.post(
    "",
    status_code=201,
    response_model=TeamOut,
    responses={**problems(*READ, 409), 201: {"description": "Created", "headers": ETAG_HEADER}},
    summary="Create a team",
)
async def create_team(
    data: TeamCreate, request: Request, response: Response, caller: Caller = _editor
) -> TeamOut:
    async with transaction(request) as session:
        row = await service.create_team(session, data, caller.name)
    response.headers["ETag"] = service.team_etag(row)
    response.headers["Location"] = f"/v1/teams/{row.name}"
    return service.to_out(row)


@router.get(
    "/{name}",
    response_model=TeamOut,
    responses={**problems(*READ, 404), 200: {"description": "The team", "headers": ETAG_HEADER}},
    summary="One team",
)
async def get_team(
    request: Request, response: Response, name: str = NamePath, _role: Role = _viewer
) -> TeamOut:
    async with transaction(request) as session:
        row = await service.get_team(session, name)
    response.headers["ETag"] = service.team_etag(row)
    return service.to_out(row)


@router.patch(
    "/{name}",
    response_model=TeamOut,
    responses={**problems(*WRITE, 404), 200: {"description": "Changed", "headers": ETAG_HEADER}},
    summary="Change some of a team's fields",
)
async def patch_team(
    data: TeamPatch,
    request: Request,
    response: Response,
    name: str = NamePath,
    if_match: str | None = IfMatch,
    caller: Caller = _editor,
) -> TeamOut:
    async with transaction(request) as session:
        expected = _expected(name, if_match)
        row = await service.update_team(session, name, data.changes(), expected=expected, actor=caller.name)
    response.headers["ETag"] = service.team_etag(row)
    return service.to_out(row)


@router.put(
    "/{name}",
    response_model=TeamOut,
    responses={**problems(*WRITE, 404), 200: {"description": "Replaced", "headers": ETAG_HEADER}},
    summary="Replace all of a team's fields",
)
async def put_team(
    data: TeamFields,
    request: Request,
    response: Response,
    name: str = NamePath,
    if_match: str | None = IfMatch,
    caller: Caller = _editor,
) -> TeamOut:
    async with transaction(request) as session:
        expected = _expected(name, if_match)
        row = await service.update_team(
            session, name, data.model_dump(mode="json"), expected=expected, actor=caller.name
        )
    response.headers["ETag"] = service.team_etag(row)
    return service.to_out(row)


@router.delete(
    "/{name}",
    status_code=204,
    response_class=Response,
    responses={
        **problems(*WRITE, 404),
        204: {
            "description": "Deleted, or deactivated if tickets were routed to it (`X-Outcome`: "
            "deleted, deactivated, or unchanged for a team inactive already)"
        },
    },
    summary="Delete a team (deactivate it if tickets were routed to it); "
    "409 while rules, SLA policies or write-back targets name it",
)
async def delete_team(
    request: Request, name: str = NamePath, if_match: str | None = IfMatch, caller: Caller = _editor
) -> Response:
    async with transaction(request) as session:
        expected = _expected(name, if_match)
        outcome = await service.delete_team(session, name, expected=expected, actor=caller.name)
    return Response(status_code=204, headers={"X-Outcome": outcome})
