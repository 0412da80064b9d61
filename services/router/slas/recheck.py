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

from datetime import datetime

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from services.router.models import RouterTicket


async def recheck_clocks_on(session: AsyncSession, kind: str, name: str, at: datetime) -> int:
    """Mark the open tickets whose clock runs on ``kind`` (``"policy"`` or ``"calendar"``, the
    clock's field naming it) ``name`` as due at ``at``; returns how many. A new policy marks none:
    policies are chosen when a clock starts, so a new one applies to tickets from their next
    event, as a new routing rule does."""
    runs_on = RouterTicket.sla_clock[("clock", kind)].as_string() == name
    result = await session.execute(
        update(RouterTicket)
        .where(RouterTicket.resolved_at.is_(None), runs_on)
        .values(sla_next_due_at=at)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
