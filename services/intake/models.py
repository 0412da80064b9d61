"""Intake's tables: configured webhook sources, the names of deleted ones, and the deliveries
already accepted."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import Base, JsonDoc
from shared.events import utc_now
from shared.http.preconditions import GENERATION_LENGTH, new_generation


class Source(Base):
    __tablename__ = "sources"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    adapter: Mapped[str] = mapped_column(String(30))
    # HMAC verification needs the secret itself, so it cannot be hashed; keep the DB private.
    secrets: Mapped[list[str]] = mapped_column(JsonDoc, default=list)
    options: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    revision: Mapped[int] = mapped_column(Integer, default=1)  # the ETag
    # In the ETag too: a source created again under a deleted one's name starts at revision 1.
    generation: Mapped[str] = mapped_column(String(GENERATION_LENGTH), default=new_generation)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now)

    # The ORM bumps ``revision`` on every UPDATE and adds ``WHERE revision = <read>`` (DELETE too):
    # of two admins who both passed the If-Match check, the second one's flush matches no row.
    __mapper_args__ = {"version_id_col": revision}


class RetiredSourceName(Base):
    """The name of a deleted webhook source, refused to ``POST /v1/tickets`` as a configured one's
    is: the source's tickets are still in the router (their keys are ``name:external_id``) and its
    helpdesk still gets their write-backs, so an intake key posting under the name would update
    them unsigned. Added in the deletion's transaction; removed when a source takes the name again
    (then it is a configured source's)."""

    __tablename__ = "retired_source_names"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    retired_at: Mapped[datetime] = mapped_column(default=utc_now)


class WebhookDelivery(Base):
    """Deduplication: a (source, delivery id) pair is accepted once, by any intake replica."""

    __tablename__ = "webhook_deliveries"

    source: Mapped[str] = mapped_column(String(100), primary_key=True)
    delivery_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(default=utc_now, index=True)
    events: Mapped[int] = mapped_column(Integer, default=0)
    # sha256 of the request an ``Idempotency-Key`` was first used with; None for webhook deliveries.
    request_digest: Mapped[str | None] = mapped_column(String(64), default=None)
