"""``/v1/sources``: the admin API for webhook sources (admin API key).

Optimistic concurrency as in the router's admin APIs: ETag
``W/"source-<name>-<revision>.<generation>"`` (the generation drawn when the source is created),
If-Match required on PATCH, DELETE and rotate (428 without, 412 when stale, both naming the
current ETag).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

from fastapi import APIRouter, Depends, Path, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.openapi import ETAG_HEADER, problems
from services.intake.sources import service
from services.intake.sources.cache import SourceCache
from services.intake.sources.schemas import SOURCE_NAME, SecretRotation, SourceCreate, SourceOut, SourceUpdate
from shared.auth import Caller, Role, require_caller, require_role
from shared.http.json_body import refuse_non_json_body, refuse_repeated_keys
from shared.http.nul_guard import refuse_nul
from shared.http.preconditions import Expected, Stale, expected_version, if_match_header
from shared.http.problems import Problem

# PostgreSQL stores no U+0000 (a secret or an option holding one failed as a 500), and a body
# without a JSON Content-Type, or giving a key twice, is refused as such, as on the router's admin API.
router = APIRouter(
    prefix="/v1/sources",
    tags=["sources"],
    dependencies=[Depends(refuse_non_json_body), Depends(refuse_nul), Depends(refuse_repeated_keys)],
)
# Every endpoint needs an admin key; changes also take its name, their author in the audit log.
_admin_role = Depends(require_role(Role.ADMIN))
_admin = Depends(require_caller(Role.ADMIN))

NamePath = Path(min_length=1, max_length=100, pattern=SOURCE_NAME)
IfMatch = if_match_header('The ETag you read, e.g. W/"source-github-main-3.5f1c09e2a4b7d3c8" (or *).')
WRITE = (400, 401, 403, 404, 412, 422, 428)


T = TypeVar("T")


@asynccontextmanager
async def _transaction(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.sessions() as session, session.begin():
        yield session


async def _run(
    request: Request, work: Callable[[AsyncSession], Awaitable[T]], changed: str | None = None
) -> T:
    """Run ``work`` in one committed transaction; map service errors to problem+json."""
    try:
        async with _transaction(request) as session:
            result = await work(session)
    except (service.SourceError, Stale) as exc:
        raise _problem(exc) from exc
    if changed is not None:  # after the commit, so the next webhook re-reads the new state
        cache: SourceCache = request.app.state.source_cache
        cache.invalidate(changed)
    return result


def _problem(exc: service.SourceError | Stale) -> Problem:
    if isinstance(exc, Stale):
        return exc.problem()
    if isinstance(exc, service.SourceNotFound):
        return Problem(404, "Not found", exc.message)
    conflict = isinstance(exc, service.SourceExists | service.LastSecret)
    status, title = (409, "Conflict") if conflict else (422, "Invalid request")
    errors = [{"field": exc.field, "message": exc.message}] if exc.field else None
    return Problem(status, title, exc.message, errors=errors)


def _expected(name: str, if_match: str | None) -> Expected:
    return expected_version(if_match, service.etag_prefix(name))


def _tagged(response: Response, source: SourceOut) -> SourceOut:
    response.headers["ETag"] = service.source_etag(source.name, source.revision, source._generation)
    return source


@router.post(
    "",
    status_code=201,
    response_model=SourceOut,
    responses={**problems(400, 401, 403, 409, 422), 201: {"description": "Created", "headers": ETAG_HEADER}},
    summary="Configure a webhook source",
)
async def create(
    data: SourceCreate, request: Request, response: Response, caller: Caller = _admin
) -> SourceOut:
    async def work(session: AsyncSession) -> SourceOut:
        return service.to_out(await service.create_source(session, data, caller.name))

    created = await _run(request, work, changed=data.name)
    response.headers["Location"] = f"/v1/sources/{created.name}"
    return _tagged(response, created)


@router.get("", response_model=list[SourceOut], responses=problems(401, 403), summary="List sources")
async def list_all(request: Request, _role: Role = _admin_role) -> list[SourceOut]:
    async def work(session: AsyncSession) -> list[SourceOut]:
        return [service.to_out(row) for row in await service.list_sources(session)]

    return await _run(request, work)


@router.get(
    "/{name}",
    response_model=SourceOut,
    responses={**problems(401, 403, 404, 422), 200: {"description": "The source", "headers": ETAG_HEADER}},
    summary="One source",
)
async def get_one(
    request: Request, response: Response, name: str = NamePath, _role: Role = _admin_role
) -> SourceOut:
    async def work(session: AsyncSession) -> SourceOut:
        return service.to_out(await service.get_source(session, name))

    return _tagged(response, await _run(request, work))


@router.patch(
    "/{name}",
    response_model=SourceOut,
    responses={**problems(*WRITE), 200: {"description": "Updated", "headers": ETAG_HEADER}},
    summary="Enable, disable or reconfigure a source (If-Match required)",
)
async def update(
    data: SourceUpdate,
    request: Request,
    response: Response,
    name: str = NamePath,
    if_match: str | None = IfMatch,
    caller: Caller = _admin,
) -> SourceOut:
    async def work(session: AsyncSession) -> SourceOut:
        row = await service.update_source(
            session, name, data, expected=_expected(name, if_match), actor=caller.name
        )
        return service.to_out(row)

    return _tagged(response, await _run(request, work, changed=name))


@router.delete(
    "/{name}",
    status_code=204,
    response_class=Response,
    responses={**problems(*WRITE), 204: {"description": "Deleted"}},
    summary="Remove a source (If-Match required)",
)
async def remove(
    request: Request, name: str = NamePath, if_match: str | None = IfMatch, caller: Caller = _admin
) -> Response:
    async def work(session: AsyncSession) -> None:
        await service.delete_source(session, name, expected=_expected(name, if_match), actor=caller.name)

    await _run(request, work, changed=name)
    return Response(status_code=204)


@router.post(
    "/{name}/rotate",
    response_model=SourceOut,
    responses={**problems(*WRITE), 200: {"description": "Rotated", "headers": ETAG_HEADER}},
    summary="Add a new secret; the newest two stay valid (If-Match required)",
)
async def rotate(
    data: SecretRotation,
    request: Request,
    response: Response,
    name: str = NamePath,
    if_match: str | None = IfMatch,
    caller: Caller = _admin,
) -> SourceOut:
    async def work(session: AsyncSession) -> SourceOut:
        row = await service.rotate_secret(
            session, name, data.secret, expected=_expected(name, if_match), actor=caller.name
        )
        return service.to_out(row)

    return _tagged(response, await _run(request, work, changed=name))


@router.delete(
    "/{name}/secrets/{fingerprint}",
    response_model=SourceOut,
    responses={**problems(*WRITE, 409), 200: {"description": "Retired", "headers": ETAG_HEADER}},
    summary="Retire one secret, by the fingerprint listed (If-Match required; never the last)",
)
async def retire_secret(
    request: Request,
    response: Response,
    name: str = NamePath,
    fingerprint: str = Path(pattern="^[0-9a-f]{8}$", description="As in secret_fingerprints."),
    if_match: str | None = IfMatch,
    caller: Caller = _admin,
) -> SourceOut:
    async def work(session: AsyncSession) -> SourceOut:
        row = await service.retire_secret(
            session, name, fingerprint, expected=_expected(name, if_match), actor=caller.name
        )
        return service.to_out(row)

    return _tagged(response, await _run(request, work, changed=name))
