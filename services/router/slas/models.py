"""Versioned SLA configuration: policies and business calendars, like rule sets.

Every change (create, update, delete) is a new immutable row; the newest version of each
``(kind, name)`` is the live one unless it is a deletion. The autoincrement ``id`` grows with
every change, so routers detect a change with one ``max(id)`` query.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import Base, JsonDoc
from shared.db.models import BigId
from shared.events import utc_now


class SlaConfigVersion(Base):
    __tablename__ = "sla_config_versions"
    __table_args__ = (
        UniqueConstraint("kind", "name", "version", name="uq_sla_config_versions_kind_name_version"),
        Index("ix_sla_config_versions_kind_name", "kind", "name"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(20))  # "policy" | "calendar"
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    document: Mapped[dict[str, Any]] = mapped_column(JsonDoc)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    author: Mapped[str] = mapped_column(String(200))
    comment: Mapped[str] = mapped_column(Text, default="")
    diff: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
