"""A deadline is missed once the clock is past it, not at it: the router's rule (a target answered
or solved at the very instant it runs out is met; its scanner breaches only past the instant), and
the metrics' own for a resolution or a reply (later than the deadline). An open ticket was counted
breached and overdue as soon as the clock read its due instant, so a ticket solved at that instant,
its solve read after a scrape or another event of that instant, counted a breach the router did not
report."""

from __future__ import annotations

from services.metrics.backlog import BacklogState
from shared.events import EventType
from tests.unit.backlog.helpers import at, envelope, make_state, scrape

H = 3600.0
BILLING = (("priority", "P3"), ("team", "billing"))


def breaches(state: BacklogState) -> tuple[float, float]:
    s = scrape(state)
    return tuple(  # type: ignore[return-value]
        s.get(("sla_breaches_total", (("kind", kind), ("team", "billing"))), 0.0)
        for kind in ("first_response", "resolution")
    )


def gauges(state: BacklogState) -> tuple[float, float]:
    s = scrape(state)
    return s[("ticket_backlog_overdue", BILLING)], s[("ticket_sla_at_risk", BILLING)]


def test_targets_met_at_their_instants_count_no_breach() -> None:
    state = BacklogState()
    opened = make_state("api:1", 0, team="billing", routed=0, fr_due=H, res_due=4 * H, res_warn=3 * H)
    opened.revision = 1
    state.apply(envelope(opened, 0, EventType.TICKET_ROUTED), at(0))
    state.advance_clock(at(H))  # a scrape at the first response's deadline, before the reply is read
    answered = make_state("api:1", 0, team="billing", routed=0, res_due=4 * H, res_warn=3 * H, responded=H)
    answered.revision = 2
    state.apply(envelope(answered, H), at(H))
    assert breaches(state) == (0, 0)

    state.advance_clock(at(4 * H))  # the resolution's deadline: at risk still, not overdue
    assert gauges(state) == (0, 1)
    solved = make_state("api:1", 0, team="billing", routed=0, status="solved", resolved=4 * H, responded=H)
    solved.revision = 3
    state.apply(envelope(solved, 4 * H, EventType.TICKET_RESOLVED), at(4 * H))
    state.advance_clock(at(5 * H))
    assert breaches(state) == (0, 0)


def test_deadlines_count_once_the_clock_is_past_them() -> None:
    state = BacklogState()
    opened = make_state("api:2", 0, team="billing", routed=0, fr_due=H, res_due=4 * H, res_warn=3 * H)
    state.apply(envelope(opened, 0, EventType.TICKET_ROUTED), at(0))
    state.advance_clock(at(H + 0.001))
    assert breaches(state) == (1, 0)
    state.advance_clock(at(4 * H))
    assert breaches(state) == (1, 0) and gauges(state) == (0, 1)
    state.advance_clock(at(4 * H + 0.001))
    assert breaches(state) == (1, 1) and gauges(state) == (1, 0)
