"""Admin API for SLA policies and business calendars: versioned, validated, ETag-guarded.

``/v1/sla/{policies|calendars}/{name}``: GET (ETag = version), PUT (create: no If-Match or
``If-None-Match: *``; update: ``If-Match`` required -> 428 without, 412 on mismatch), DELETE
(If-Match), ``/versions`` for the history with author and diff.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from services.router.slas import service
from services.router.slas.models import SlaConfigVersion
from services.router.slas.schemas import ConfigOut, VersionOut, WriteIn
from shared.auth import Role, bearer_token, hash_key, require_role
from shared.db.models import ApiKey
from shared.http.problems import Problem

router = APIRouter(prefix="/v1/sla", tags=["sla"])

Plural = Literal["policies", "calendars"]
KIND: dict[str, str] = {"policies": "policy", "calendars": "calendar"}


async def actor(request: Request) -> str:
    """The API key's name (never the key) as the author of a change."""
    token = bearer_token(request) or ""
    async with request.app.state.sessions() as session:
        name = await session.scalar(select(ApiKey.name).where(ApiKey.key_hash == hash_key(token)))
    return f"api-key:{name}" if name else "api-key"


def etag(version: int) -> str:
    return f'"{version}"'


def check_if_match(request: Request, current: SlaConfigVersion | None) -> None:
    if_match = request.headers.get("if-match")
    exists = current is not None and not current.deleted
    if not exists:
        if if_match not in (None, "*") and current is None:
            raise Problem(412, "Precondition failed", "the resource does not exist")
        return
    assert current is not None
    if if_match is None:
        raise Problem(428, "Precondition required", f"send If-Match: {etag(current.version)} to change it")
    if if_match.strip() not in ("*", etag(current.version), f"W/{etag(current.version)}"):
        raise Problem(412, "Precondition failed", f"current version is {etag(current.version)}")


def out(row: SlaConfigVersion) -> ConfigOut:
    return ConfigOut.model_validate(row, from_attributes=True)


@router.get("/{plural}", response_model=list[ConfigOut], summary="Live SLA policies or calendars")
async def list_configs(
    plural: Plural, request: Request, _role: Role = Depends(require_role(Role.VIEWER))
) -> list[ConfigOut]:
    async with request.app.state.sessions() as session:
        return [out(r) for r in await service.live_rows(session, KIND[plural])]


@router.get("/{plural}/{name}", response_model=ConfigOut, summary="One SLA policy or calendar")
async def get_config(
    plural: Plural,
    name: str,
    request: Request,
    response: Response,
    _role: Role = Depends(require_role(Role.VIEWER)),
) -> ConfigOut:
    async with request.app.state.sessions() as session:
        row = await service.latest(session, KIND[plural], name)
    if row is None or row.deleted:
        raise Problem(404, "Not found", f"no {KIND[plural]} {name!r}")
    response.headers["ETag"] = etag(row.version)
    return out(row)


@router.get("/{plural}/{name}/versions", response_model=list[VersionOut], summary="Change history")
async def versions(
    plural: Plural, name: str, request: Request, _role: Role = Depends(require_role(Role.VIEWER))
) -> list[VersionOut]:
    async with request.app.state.sessions() as session:
        rows = await service.history(session, KIND[plural], name)
    if not rows:
        raise Problem(404, "Not found", f"no {KIND[plural]} {name!r}")
    return [VersionOut.model_validate(r, from_attributes=True) for r in rows]


@router.put("/{plural}/{name}", response_model=ConfigOut, summary="Create or update (new version)")
async def put_config(
    plural: Plural,
    name: str,
    body: WriteIn,
    request: Request,
    response: Response,
    _role: Role = Depends(require_role(Role.EDITOR)),
) -> ConfigOut:
    kind = KIND[plural]
    author = await actor(request)
    try:
        async with request.app.state.sessions() as session, session.begin():
            current = await service.latest(session, kind, name)
            check_if_match(request, current)
            calendars = await service.calendar_names(session)
            try:
                model = service.validate_document(kind, name, body.document, calendars)
            except service.ConfigInvalid as exc:
                raise Problem(
                    422,
                    "Invalid SLA configuration",
                    str(exc),
                    errors=[{**e, "field": "/document" + e["field"]} for e in exc.errors],
                ) from None
            document = model.model_dump(mode="json", exclude_defaults=False)
            row = await service.save(session, kind, name, document, author, body.comment, previous=current)
    except IntegrityError:
        raise Problem(412, "Precondition failed", "changed concurrently; reload and retry") from None
    response.headers["ETag"] = etag(row.version)
    response.status_code = 201 if row.version == 1 or current is None or current.deleted else 200
    return out(row)


@router.delete("/{plural}/{name}", status_code=204, summary="Delete (recorded as a version)")
async def delete_config(
    plural: Plural, name: str, request: Request, _role: Role = Depends(require_role(Role.EDITOR))
) -> Response:
    kind = KIND[plural]
    author = await actor(request)
    try:
        async with request.app.state.sessions() as session, session.begin():
            current = await service.latest(session, kind, name)
            if current is None or current.deleted:
                raise Problem(404, "Not found", f"no {kind} {name!r}")
            check_if_match(request, current)
            if kind == "calendar":
                users = [
                    r.name
                    for r in await service.live_rows(session, "policy")
                    if r.document.get("calendar") == name
                ]
                if users:
                    raise Problem(409, "Conflict", f"calendar {name!r} is used by SLA policies {users}")
            await service.save(session, kind, name, None, author, previous=current)
    except IntegrityError:
        raise Problem(412, "Precondition failed", "changed concurrently; reload and retry") from None
    return Response(status_code=204)
