"""The metrics service's checkpoint: its backlog state and the offsets that state covers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import Base, JsonDoc
from shared.events import utc_now


class MetricsCheckpoint(Base):
    __tablename__ = "metrics_checkpoints"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    state: Mapped[bytes] = mapped_column(LargeBinary)
    # {"topic:partition": next offset to read}
    offsets: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now)
