"""Admin API for write-back: targets (CRUD, secrets write-only) and the delivery queue."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import AnyHttpUrl, BaseModel, Field, field_validator
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from services.router.writeback.models import WritebackDelivery, WritebackTarget
from services.router.writeback.queue import WRITEBACK_KINDS
from shared.auth import Role, require_role
from shared.events import utc_now
from shared.http.problems import Problem

router = APIRouter(prefix="/v1/writeback", tags=["writeback"])


class TargetIn(BaseModel):
    name: str = Field(min_length=1, max_length=200, pattern=r"^\S(.*\S)?$")
    source: str = Field(min_length=1, max_length=100)
    url: AnyHttpUrl
    secret: str = Field(min_length=16, max_length=500)
    enabled: bool = True
    event_kinds: list[str] = Field(default_factory=list, description="Empty: every kind.")

    @field_validator("event_kinds")
    @classmethod
    def _kinds(cls, kinds: list[str]) -> list[str]:
        unknown = sorted(set(kinds) - set(WRITEBACK_KINDS))
        if unknown:
            raise ValueError(f"unknown event kinds {unknown}; use {list(WRITEBACK_KINDS)}")
        return kinds


class TargetOut(BaseModel):
    id: int
    name: str
    source: str
    url: str
    enabled: bool
    event_kinds: list[str]
    revision: int
    created_at: datetime
    updated_at: datetime


class DeliveryOut(BaseModel):
    id: int
    target_id: int
    event_id: str
    kind: str
    ticket_key: str
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


def target_out(row: WritebackTarget) -> TargetOut:
    return TargetOut.model_validate(row, from_attributes=True)


@router.get("/targets", response_model=list[TargetOut])
async def list_targets(request: Request, _role: Role = Depends(require_role(Role.VIEWER))) -> list[TargetOut]:
    async with request.app.state.sessions() as session:
        rows = (await session.scalars(select(WritebackTarget).order_by(WritebackTarget.id))).all()
    return [target_out(r) for r in rows]


@router.get("/targets/{target_id}", response_model=TargetOut)
async def get_target(
    target_id: int, request: Request, response: Response, _role: Role = Depends(require_role(Role.VIEWER))
) -> TargetOut:
    async with request.app.state.sessions() as session:
        row = await session.get(WritebackTarget, target_id)
    if row is None:
        raise Problem(404, "Not found", f"no write-back target {target_id}")
    response.headers["ETag"] = f'"{row.revision}"'
    return target_out(row)


@router.post("/targets", response_model=TargetOut, status_code=201)
async def create_target(
    body: TargetIn, request: Request, response: Response, _role: Role = Depends(require_role(Role.ADMIN))
) -> TargetOut:
    now = utc_now()
    row = WritebackTarget(**body.model_dump(mode="json"), created_at=now, updated_at=now)
    try:
        async with request.app.state.sessions() as session, session.begin():
            session.add(row)
    except IntegrityError:
        raise Problem(
            409,
            "Conflict",
            f"a target named {body.name!r} exists",
            errors=[{"field": "/name", "message": "already exists"}],
        ) from None
    response.headers["ETag"] = f'"{row.revision}"'
    return target_out(row)


@router.put("/targets/{target_id}", response_model=TargetOut)
async def update_target(
    target_id: int,
    body: TargetIn,
    request: Request,
    response: Response,
    _role: Role = Depends(require_role(Role.ADMIN)),
) -> TargetOut:
    if_match = request.headers.get("if-match")
    if if_match is None:
        raise Problem(428, "Precondition required", "send If-Match with the target's ETag")
    try:
        async with request.app.state.sessions() as session, session.begin():
            row = await session.get(WritebackTarget, target_id)
            if row is None:
                raise Problem(404, "Not found", f"no write-back target {target_id}")
            if if_match.strip() not in ("*", f'"{row.revision}"'):
                raise Problem(412, "Precondition failed", f'current ETag is "{row.revision}"')
            for key, value in body.model_dump(mode="json").items():
                setattr(row, key, value)
            row.updated_at = utc_now()  # the flush bumps ``revision`` (version_id_col)
    except StaleDataError:
        raise Problem(412, "Precondition failed", "changed concurrently; reload and retry") from None
    except IntegrityError:
        raise Problem(
            409,
            "Conflict",
            f"a target named {body.name!r} exists",
            errors=[{"field": "/name", "message": "already exists"}],
        ) from None
    response.headers["ETag"] = f'"{row.revision}"'
    return target_out(row)


@router.delete("/targets/{target_id}", status_code=204)
async def delete_target(
    target_id: int, request: Request, _role: Role = Depends(require_role(Role.ADMIN))
) -> Response:
    async with request.app.state.sessions() as session, session.begin():
        # A Core delete: the ORM's would also require the revision it read (version_id_col) and
        # fail on a concurrent edit, which a delete without If-Match has no reason to.
        result = await session.execute(delete(WritebackTarget).where(WritebackTarget.id == target_id))
        if result.rowcount == 0:
            raise Problem(404, "Not found", f"no write-back target {target_id}")
    return Response(status_code=204)


@router.get("/deliveries", response_model=list[DeliveryOut])
async def list_deliveries(
    request: Request,
    status: Literal["pending", "delivered", "failed"] | None = Query(default=None),
    limit: int = Query(default=100, ge=1, le=1000),
    _role: Role = Depends(require_role(Role.VIEWER)),
) -> list[DeliveryOut]:
    query = select(WritebackDelivery).order_by(WritebackDelivery.id.desc()).limit(limit)
    if status is not None:
        query = query.where(WritebackDelivery.status == status)
    async with request.app.state.sessions() as session:
        rows = (await session.scalars(query)).all()
    return [DeliveryOut.model_validate(r, from_attributes=True) for r in rows]


@router.post("/deliveries/{delivery_id}/retry", response_model=DeliveryOut)
async def retry_delivery(
    delivery_id: int, request: Request, _role: Role = Depends(require_role(Role.ADMIN))
) -> DeliveryOut:
    async with request.app.state.sessions() as session, session.begin():
        row = await session.get(WritebackDelivery, delivery_id)
        if row is None:
            raise Problem(404, "Not found", f"no delivery {delivery_id}")
        if row.status != "failed":
            raise Problem(
                409, "Conflict", f"delivery {delivery_id} is {row.status}, only failed ones are retried"
            )
        row.status, row.attempts, row.next_attempt_at = "pending", 0, utc_now()
    return DeliveryOut.model_validate(row, from_attributes=True)
