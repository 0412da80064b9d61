"""Fired escalation timers: the UNIQUE timer id makes every warning/breach fire once."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import Base
from shared.events import utc_now


class FiredTimer(Base):
    __tablename__ = "sla_fired_timers"

    timer_id: Mapped[str] = mapped_column(String(400), primary_key=True)  # ticket:target:kind:cycle
    ticket_key: Mapped[str] = mapped_column(String(300), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    fired_at: Mapped[datetime] = mapped_column(default=utc_now)
