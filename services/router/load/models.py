"""Authoritative team load counters and round-robin cursors.

``team_load`` is updated in the same transaction as the ticket state that changes it, so it
always equals a recount of ``router_tickets`` (see :func:`services.router.load.store.recount`)
under the counted statuses and weights ``team_load_basis`` names; a batch under others recounts.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import Base
from shared.events import utc_now


class TeamLoadRow(Base):
    __tablename__ = "team_load"

    team: Mapped[str] = mapped_column(String(100), primary_key=True)
    open_count: Mapped[int] = mapped_column(Integer, default=0)  # counted tickets
    open_weighted: Mapped[float] = mapped_column(Float, default=0.0)  # priority-weighted
    updated_at: Mapped[datetime] = mapped_column(default=utc_now)


class AssignmentCursor(Base):
    """The last team a round-robin pool assigned to (pool label -> team)."""

    __tablename__ = "assignment_cursors"

    pool: Mapped[str] = mapped_column(String(1000), primary_key=True)
    last_team: Mapped[str] = mapped_column(String(100))


class TeamLoadBasis(Base):
    """What ``team_load`` counts (the counted statuses and priority weights, see
    :func:`services.router.load.store.basis_of`): one row. Changed, the counters are recounted."""

    __tablename__ = "team_load_basis"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    basis: Mapped[str] = mapped_column(String(500))
    updated_at: Mapped[datetime] = mapped_column(default=utc_now)
