"""Infrastructure tables every service uses: API keys, processed events, the outbox, the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import Base, JsonDoc
from shared.events import utc_now

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL wants a bigint.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    # Only a SHA-256 of the key is stored: keys are 256-bit random, so a slow hash adds nothing.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class ProcessedEvent(Base):
    """Event ids a consumer has applied; written in the same transaction as the effects."""

    __tablename__ = "processed_events"
    # Pruning finds the old ids by age (services/router/retention.py); inserts append at its end.
    __table_args__ = (Index("ix_processed_events_consumer_processed_at", "consumer", "processed_at"),)

    consumer: Mapped[str] = mapped_column(String(100), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    processed_at: Mapped[datetime] = mapped_column(default=utc_now)


class OutboxMessage(Base):
    """A message to publish, stored in the same transaction as the state that produced it."""

    __tablename__ = "outbox"
    # AUTOINCREMENT on SQLite: ids are never used twice (rows are deleted by id once published;
    # migrations/versions/0014_outbox_ids_never_reused.py).
    __table_args__ = (Index("ix_outbox_owner_id", "owner", "id"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    owner: Mapped[str] = mapped_column(String(50))
    topic: Mapped[str] = mapped_column(String(200))
    key: Mapped[str] = mapped_column(String(300))
    value: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


class AuditEntry(Base):
    """Who changed which admin-managed entity, when, and how (the detail never holds a secret)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utc_now)
    actor: Mapped[str] = mapped_column(String(200))
    # The API key's id (api_keys.id) behind ``actor``: key names are not unique. None for changes
    # made without a key (ticketctl on the database) and for entries older than the column.
    actor_key_id: Mapped[str | None] = mapped_column(String(36), default=None)
    action: Mapped[str] = mapped_column(String(50))
    entity: Mapped[str] = mapped_column(String(50))
    entity_id: Mapped[str] = mapped_column(String(200))
    detail: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
