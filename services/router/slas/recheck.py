"""Open tickets' SLA clocks follow edits of their policy or calendar.

A clock keeps the targets and calendar it was computed under until something recomputes it. Left
to the ticket's next event, a shortened target or a new holiday would move no deadline, and an
escalation would fire at the old instant. So a change marks the open tickets whose clock runs on
the changed policy or calendar as due now, in the change's own transaction: the escalation scanner
(``services/router/escalation/scanner.py``) picks them up like any due timer, recomputes their
clocks under the new configuration and publishes the moved deadlines. The mark and the new
configuration version commit together, which lets the scanner refuse to recompute under an older
configuration than the one that marked the row.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import case, null, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.router.models import RouterTicket
from services.router.sla import BusinessCalendar, SlaClock
from shared.db.bulk import among
from shared.db.dialect import is_postgres

# What a clock is computed from: a change of anything else (a comment, the rank, applies_when,
# the escalation actions) leaves every running clock as it is, and marks nothing.
CLOCK_FIELDS = {
    "policy": ("calendar", "targets", "warning_share", "pausing_statuses"),
    "calendar": ("timezone", "weekly_hours", "holidays"),
}
_CHUNK = 5_000  # keys per UPDATE: bounded statements, whatever the backlog


def moves_clocks(kind: str, old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> bool:
    """Whether replacing ``old`` by ``new`` (either ``None``: created or deleted) can move a
    running clock's deadlines. A created one runs no clock yet: a new policy applies to a ticket
    from its next event, as a new routing rule does."""
    if old is None:
        return False
    if new is None:
        return True
    return any(differs(name, old.get(name), new.get(name)) for name in CLOCK_FIELDS[kind])


# A set stored as a list: in any order, the same (stored earlier in a process's hash order).
SET_FIELDS = frozenset({"pausing_statuses"})


def differs(name: str, old: Any, new: Any) -> bool:
    """Whether field ``name`` of a stored document changed from ``old`` to ``new``."""
    if name in SET_FIELDS and isinstance(old, list) and isinstance(new, list):
        return sorted(map(str, old)) != sorted(map(str, new))
    return bool(old != new)


async def recheck_clocks_on(
    session: AsyncSession, kind: str, name: str, at: datetime, old_calendar: BusinessCalendar | None = None
) -> int:
    """Mark the open tickets whose clock runs on ``kind`` (``"policy"`` or ``"calendar"``, the
    clock's field naming it) ``name`` as due at ``at``; returns how many. A ticket already due
    earlier keeps its earlier instant: the router owes an event what fell due before it (see
    ``SlaTracker.owe_due``), and a timer moved past that instant would no longer be owed.

    ``old_calendar``: the calendar ``name`` as it was until this edit. Each clock is counted on it
    up to ``at`` first (consumed time, and the instants thresholds were passed at): a clock holds
    the time up to its last event only, and the scanner would count the rest on the new hours."""
    runs_on = RouterTicket.sla_clock[("clock", kind)].as_string() == name
    # The stored clocks only when they are to be counted up to the edit.
    clocks = RouterTicket.sla_clock if old_calendar is not None else null()
    keys = select(RouterTicket.ticket_key, clocks).where(RouterTicket.resolved_at.is_(None), runs_on)
    if is_postgres(session):
        # Lock the rows in key order, as routing batches do (handler._read): locked in the table's
        # order instead, a batch holding one of them and waiting for another would deadlock us.
        keys = keys.order_by(RouterTicket.ticket_key).with_for_update()
    rows = (await session.execute(keys)).all()
    found = [key for key, _ in rows]
    if old_calendar is not None:
        counted = [
            {"ticket_key": key, "sla_clock": stored}
            for key, sla_clock in rows
            if (stored := _counted_up_to(sla_clock, old_calendar, at)) is not None
        ]
        for start in range(0, len(counted), _CHUNK):
            await session.execute(
                update(RouterTicket).execution_options(synchronize_session=False),
                counted[start : start + _CHUNK],
            )
    for start in range(0, len(found), _CHUNK):
        await session.execute(
            update(RouterTicket)
            .where(among(RouterTicket.ticket_key, found[start : start + _CHUNK], session))
            .values(
                sla_next_due_at=case(
                    (RouterTicket.sla_next_due_at < at, RouterTicket.sla_next_due_at), else_=at
                )
            )
            .execution_options(synchronize_session=False)
        )
    return len(found)


def _counted_up_to(
    stored: Mapping[str, Any] | None, calendar: BusinessCalendar, at: datetime
) -> dict[str, Any] | None:
    """The stored clock checkpointed at ``at`` on ``calendar``; None when nothing changes or the
    clock cannot be read (the scanner switches the timers of such a row off)."""
    try:
        clock = SlaClock.model_validate((stored or {})["clock"])
        counted = clock.checkpoint(calendar, at)
    except (KeyError, TypeError, ValueError):  # ValueError: pydantic's, or another calendar's clock
        return None
    if counted == clock:
        return None
    return {**(stored or {}), "clock": counted.model_dump(mode="json")}
