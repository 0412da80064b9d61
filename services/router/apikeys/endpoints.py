"""``/v1/api-keys``: admins list, create and revoke API keys. A new key is shown once, in the
creation response (``Cache-Control: no-store``). The router that revoked a key refuses it from the
next request on; other replicas and services within the 5 s their key cache holds a lookup."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from services.router.apikeys import service
from services.router.apikeys.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyOut
from services.router.errors import transaction
from services.router.openapi import READ, problems
from shared.auth import Caller, KeyCache, Role, require_caller

router = APIRouter(prefix="/v1/api-keys", tags=["api keys"])
_admin = Depends(require_caller(Role.ADMIN))
KeyPath = Path(description="The key's id.")


@router.get("", response_model=list[ApiKeyOut], responses=problems(*READ), summary="List API keys")
async def list_keys(
    request: Request,
    active: bool | None = Query(None, description="Only active (true) or revoked (false) keys"),
    _caller: Caller = _admin,
) -> list[ApiKeyOut]:
    async with transaction(request) as session:
        return [ApiKeyOut.model_validate(row) for row in await service.list_keys(session, active)]


@router.post(
    "",
    status_code=201,
    response_model=ApiKeyCreated,
    responses={**problems(*READ), 201: {"description": "Created; `key` is shown this once"}},
    summary="Create an API key",
)
async def create_key(
    data: ApiKeyCreate, request: Request, response: Response, caller: Caller = _admin
) -> ApiKeyCreated:
    async with transaction(request) as session:
        row, plain = await service.create_key(session, data, caller.name)
    response.headers["Location"] = f"/v1/api-keys/{row.id}"
    response.headers["Cache-Control"] = "no-store"  # the body holds a secret
    return ApiKeyCreated.model_validate({**ApiKeyOut.model_validate(row).model_dump(), "key": plain})


@router.get("/{key_id}", response_model=ApiKeyOut, responses=problems(*READ, 404), summary="One API key")
async def get_key(request: Request, key_id: uuid.UUID = KeyPath, _caller: Caller = _admin) -> ApiKeyOut:
    async with transaction(request) as session:
        return ApiKeyOut.model_validate(await service.get_key(session, str(key_id)))


@router.delete(
    "/{key_id}",
    status_code=204,
    response_class=Response,
    responses={
        **problems(*READ, 404, 409),
        204: {"description": "Revoked (or revoked already: `X-Outcome: unchanged`)"},
    },
    summary="Revoke an API key; 409 for the last active admin key",
)
async def revoke_key(request: Request, key_id: uuid.UUID = KeyPath, caller: Caller = _admin) -> Response:
    async with transaction(request) as session:
        revoked = await service.revoke_key(session, str(key_id), caller.name)
    keys: KeyCache = request.app.state.keys
    keys.forget(str(key_id))  # after the commit: this replica refuses it from the next request on
    return Response(status_code=204, headers={"X-Outcome": "revoked" if revoked else "unchanged"})
