"""Write-back targets (a signed webhook or a helpdesk's API, per source) and their delivery queue."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import Base, JsonDoc
from shared.db.models import BigId
from shared.events import utc_now
from shared.http.preconditions import GENERATION_LENGTH, new_generation


class WritebackTarget(Base):
    __tablename__ = "writeback_targets"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)  # what `notify` actions refer to
    source: Mapped[str] = mapped_column(String(100), index=True)
    # How a delivery is sent (connectors/): a signed POST, or the helpdesk's own API.
    connector: Mapped[str] = mapped_column(String(20), default="webhook", server_default="webhook")
    url: Mapped[str] = mapped_column(String(2000))
    # The webhook's HMAC key or the helpdesk's API token; never returned by the API.
    secret: Mapped[str] = mapped_column(String(500))
    options: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict, server_default="{}")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    event_kinds: Mapped[list[str]] = mapped_column(JsonDoc, default=list)
    revision: Mapped[int] = mapped_column(Integer, default=1)  # the ETag
    # In the ETag too: SQLite may give a new target a deleted one's id (revisions start at 1 again).
    generation: Mapped[str] = mapped_column(String(GENERATION_LENGTH), default=new_generation)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now)

    # The ORM bumps ``revision`` on every UPDATE and adds ``WHERE revision = <read>``: of two admins
    # who both passed the If-Match check, the second one's UPDATE matches no row (StaleDataError).
    __mapper_args__ = {"version_id_col": revision}


class WritebackDelivery(Base):
    __tablename__ = "writeback_deliveries"
    __table_args__ = (
        UniqueConstraint("target_id", "event_id", name="uq_writeback_deliveries_target_event"),
        Index("ix_writeback_deliveries_due", "status", "next_attempt_at"),
        # The sender's "an older delivery of this ticket to this target is pending" check.
        Index("ix_writeback_deliveries_ticket", "ticket_key", "target_id", "id"),
        # GET /v1/writeback/deliveries?status=...: a page, newest first, of one status.
        Index("ix_writeback_deliveries_status_id", "status", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    target_id: Mapped[int] = mapped_column(BigId, index=True)
    event_id: Mapped[str] = mapped_column(String(36))
    kind: Mapped[str] = mapped_column(String(40))
    ticket_key: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)  # the exact bytes signed and sent (UTF-8 JSON)
    status: Mapped[str] = mapped_column(String(20), default="pending")  # pending|delivered|failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utc_now)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    # Digests of the requests an earlier attempt got through (sender.request_digest): a retry
    # sends only the rest, so an Intercom assignment is not written twice when its note failed.
    sent_requests: Mapped[list[str]] = mapped_column(JsonDoc, default=list, server_default="[]")
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    delivered_at: Mapped[datetime | None] = mapped_column(default=None)

    @property
    def requests_sent(self) -> int:
        """How many of its requests have got through (the API shows it)."""
        return len(self.sent_requests or ())
