"""``sla_breaches_total`` counts the router's verdicts (``state.sla.*_breached``) for the tickets
whose states carry them; ``ticket_backlog_overdue`` still follows the clock. States of older
routers are counted on the clock as before (the other tests of this package)."""

from __future__ import annotations

import orjson

from services.metrics.backlog import BacklogState
from shared.events import EventEnvelope, EventType, TicketState

from .helpers import at, envelope, make_state, scrape

H = 3600.0


def judged(
    key: str, rev: int, *, fr: bool = False, res: bool = False, team: str = "billing", **kw: object
) -> TicketState:
    st = make_state(key, 0, team=team, **kw)  # type: ignore[arg-type]
    st.revision = rev
    st.sla.first_response_breached, st.sla.resolution_breached = fr, res
    return st


def breaches(state: BacklogState, team: str = "billing") -> tuple[float, float]:
    got = scrape(state)
    return tuple(  # type: ignore[return-value]
        got.get(("sla_breaches_total", (("kind", kind), ("team", team))), 0.0)
        for kind in ("first_response", "resolution")
    )


def overdue(state: BacklogState) -> float:
    return scrape(state).get(("ticket_backlog_overdue", (("priority", "P3"), ("team", "billing"))), 0.0)


def deliver(state: BacklogState, ticket: TicketState, t: float, *, older_router: bool = False) -> None:
    doc = orjson.loads(envelope(ticket, t).to_bytes())
    if older_router:
        del doc["payload"]["state"]["sla"]["first_response_breached"]
        del doc["payload"]["state"]["sla"]["resolution_breached"]
    state.apply(EventEnvelope.from_bytes(orjson.dumps(doc)), at(t))


def test_the_clock_past_a_deadline_is_overdue_and_the_router_says_when_it_is_breached() -> None:
    state = BacklogState()
    deliver(state, judged("z:1", 1, fr_due=0.5 * H, res_due=4 * H), 0)
    state.advance_clock(at(5 * H))
    assert overdue(state) == 1 and breaches(state) == (0, 0)
    deliver(state, judged("z:1", 2, fr=True, res=True, fr_due=0.5 * H, res_due=4 * H), 5 * H)  # sla.breached
    assert breaches(state) == (1, 1)
    deliver(state, judged("z:1", 3, fr=True, res=True, fr_due=0.5 * H, res_due=9 * H), 6 * H)
    deliver(state, judged("z:1", 4, fr=True, res=True, status="solved", resolved=7 * H), 7 * H)
    assert breaches(state) == (1, 1) and overdue(state) == 0  # once per ticket and target


def test_a_solve_in_time_delivered_late_is_met() -> None:
    state = BacklogState()
    deliver(state, judged("z:1", 1, responded=0.1 * H, res_due=4 * H), 0)
    state.advance_clock(at(4 * H + 10))  # scraped past the deadline: overdue, not breached
    assert overdue(state) == 1 and breaches(state) == (0, 0)
    deliver(state, judged("z:1", 2, responded=0.1 * H, status="solved", resolved=3.9 * H), 4 * H + 30)
    state.advance_clock(at(5 * H))
    assert overdue(state) == 0 and breaches(state) == (0, 0)


def test_the_breach_counts_under_the_team_the_router_breached_it_in() -> None:
    state = BacklogState()
    deliver(state, judged("z:1", 1, res_due=H), 0)
    deliver(state, judged("z:1", 2, res=True, res_due=H), H + 1)  # sla.breached, in billing
    deliver(state, judged("z:1", 3, res=True, team="escalations", res_due=2 * H), H + 1)  # its actions
    assert breaches(state) == (0, 1) and breaches(state, "escalations") == (0, 0)


def test_an_import_solved_late_counts_the_verdicts_of_its_resolved_state() -> None:
    state = BacklogState()
    deliver(state, judged("z:1", 1, fr_due=-99 * H, res_due=-90 * H), 0)  # routed open, deadlines long past
    deliver(state, judged("z:1", 2, fr=True, res=False, status="solved", resolved=-95 * H), 0)
    state.advance_clock(at(1))
    assert breaches(state) == (1, 0)


def test_an_older_routers_state_is_counted_on_the_clock_until_one_with_verdicts_comes() -> None:
    state = BacklogState()
    deliver(state, judged("z:1", 1, res_due=H), 0, older_router=True)
    state.advance_clock(at(2 * H))
    assert breaches(state) == (0, 1)
    deliver(state, judged("z:2", 1, res_due=H), 0)
    deliver(state, judged("z:2", 2, res_due=3 * H), 2 * H, older_router=True)  # a rolling deploy
    state.advance_clock(at(4 * H))
    assert breaches(state) == (0, 1)  # z:2 is the router's to judge from its first verdicts on


def test_checkpoints_keep_which_tickets_the_router_judges() -> None:
    state = BacklogState()
    deliver(state, judged("z:1", 1, res_due=H), 0)
    restored = BacklogState.from_checkpoint(state.to_checkpoint())
    restored.advance_clock(at(2 * H))
    assert overdue(restored) == 1 and breaches(restored) == (0, 0)
    deliver(restored, judged("z:1", 2, res=True, res_due=H), 2 * H)
    assert breaches(restored) == (0, 1)


def test_the_typed_path_reads_the_verdicts_too() -> None:
    state = BacklogState()
    state.apply_state(judged("z:1", 1, res_due=H), at(0), event_type=EventType.TICKET_ROUTED)
    state.advance_clock(at(2 * H))
    assert breaches(state) == (0, 0)
    state.apply_state(judged("z:1", 2, res=True, res_due=H), at(2 * H))
    assert breaches(state) == (0, 1)
