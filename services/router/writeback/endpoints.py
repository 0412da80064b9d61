"""``/v1/writeback``: write-back targets (CRUD, secrets write-only) and the delivery queue.

Viewers read; admins change (If-Match on PUT and DELETE, ETag
``W/"writeback-target-<id>-<rev>.<generation>"``)
and retry failed deliveries; every change is audited with the API key's name.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from services.router.errors import transaction
from services.router.openapi import ETAG_HEADER, READ, WRITE, problems
from services.router.writeback import service
from services.router.writeback.schemas import DeliveryOut, TargetIn, TargetOut
from shared.auth import Caller, Role, require_caller, require_role
from shared.http.pages import link_next, next_link_header
from shared.http.preconditions import Expected, expected_version, if_match_header

router = APIRouter(prefix="/v1/writeback", tags=["writeback"])
MAX_ID = 2**63 - 1  # BIGINT: a larger id is a 422, not a database error
TargetPath = Path(ge=1, le=MAX_ID, description="The target's id.")
DeliveryPath = Path(ge=1, le=MAX_ID, description="The delivery's id.")
IfMatch = if_match_header('The ETag you read, e.g. W/"writeback-target-7-3.5f1c09e2a4b7d3c8" (or *).')
_viewer = Depends(require_role(Role.VIEWER))
_admin = Depends(require_caller(Role.ADMIN))


def _expected(target_id: int, if_match: str | None) -> Expected:
    return expected_version(if_match, service.etag_prefix(target_id))


@router.get(
    "/targets", response_model=list[TargetOut], responses=problems(*READ), summary="List write-back targets"
)
async def list_targets(request: Request, _role: Role = _viewer) -> list[TargetOut]:
    async with request.app.state.sessions() as session:
        return [service.to_out(row) for row in await service.list_targets(session)]


@router.post(
    "/targets",
    status_code=201,
    response_model=TargetOut,
    responses={**problems(*READ, 409), 201: {"description": "Created", "headers": ETAG_HEADER}},
    summary="Create a write-back target",
)
async def create_target(
    data: TargetIn, request: Request, response: Response, caller: Caller = _admin
) -> TargetOut:
    async with transaction(request) as session:
        row = await service.create_target(session, data, caller.name)
    response.headers["ETag"] = service.target_etag(row)
    response.headers["Location"] = f"/v1/writeback/targets/{row.id}"
    return service.to_out(row)


@router.get(
    "/targets/{target_id}",
    response_model=TargetOut,
    responses={**problems(*READ, 404), 200: {"description": "The target", "headers": ETAG_HEADER}},
    summary="One write-back target",
)
async def get_target(
    request: Request, response: Response, target_id: int = TargetPath, _role: Role = _viewer
) -> TargetOut:
    async with transaction(request) as session:
        row = await service.get_target(session, target_id)
    response.headers["ETag"] = service.target_etag(row)
    return service.to_out(row)


@router.put(
    "/targets/{target_id}",
    response_model=TargetOut,
    responses={**problems(*WRITE, 404), 200: {"description": "Replaced", "headers": ETAG_HEADER}},
    summary="Replace all of a write-back target's fields (the secret too)",
)
async def update_target(
    data: TargetIn,
    request: Request,
    response: Response,
    target_id: int = TargetPath,
    if_match: str | None = IfMatch,
    caller: Caller = _admin,
) -> TargetOut:
    async with transaction(request) as session:
        expected = _expected(target_id, if_match)
        row = await service.update_target(session, target_id, data, expected=expected, actor=caller.name)
    response.headers["ETag"] = service.target_etag(row)
    return service.to_out(row)


@router.delete(
    "/targets/{target_id}",
    status_code=204,
    response_class=Response,
    responses={**problems(*WRITE, 404), 204: {"description": "Deleted"}},
    summary="Delete a write-back target",
)
async def delete_target(
    request: Request, target_id: int = TargetPath, if_match: str | None = IfMatch, caller: Caller = _admin
) -> Response:
    async with transaction(request) as session:
        expected = _expected(target_id, if_match)
        await service.delete_target(session, target_id, expected=expected, actor=caller.name)
    return Response(status_code=204)


@router.get(
    "/deliveries",
    response_model=list[DeliveryOut],
    responses={
        **problems(*READ),
        200: {
            "description": "Deliveries, newest first",
            "headers": next_link_header("/v1/writeback/deliveries?...&before=N"),
        },
    },
    summary="Write-back deliveries, newest first",
)
async def list_deliveries(
    request: Request,
    response: Response,
    status: Literal["pending", "delivered", "failed"] | None = Query(default=None),
    limit: int = Query(default=100, ge=1, le=1000),
    before: int | None = Query(
        None,
        ge=1,
        le=MAX_ID,
        description="Only deliveries older than this one: the cursor of the next page (see the Link header)",
    ),
    _role: Role = _viewer,
) -> list[DeliveryOut]:
    async with request.app.state.sessions() as session:
        rows = await service.list_deliveries(session, status, limit, before)
    if len(rows) == limit:  # maybe more: the next page starts below this one's last delivery
        link_next(request, response, "before", rows[-1].id)
    return [DeliveryOut.model_validate(row) for row in rows]


@router.post(
    "/deliveries/{delivery_id}/retry",
    response_model=DeliveryOut,
    responses=problems(*READ, 404, 409),
    summary="Re-queue a failed delivery; 409 for one that is not failed",
)
async def retry_delivery(
    request: Request, delivery_id: int = DeliveryPath, caller: Caller = _admin
) -> DeliveryOut:
    async with transaction(request) as session:
        retention = timedelta(days=request.app.state.settings.router_dedup_retention_days)
        row = await service.retry_delivery(session, delivery_id, caller.name, retention)
    return DeliveryOut.model_validate(row)
