"""Counters that must count a ticket once: a breach per deadline across pauses and resumes, a
received ticket across the ticket.created events intake publishes for its updates."""

from __future__ import annotations

import zlib

import orjson
import pytest

from services.metrics.backlog import BacklogConfig, BacklogState
from services.metrics.backlog.checkpoint import MAGIC
from services.metrics.backlog.columns import F_RECEIVED
from shared.events import EventType, TicketSnapshot, ticket_event

from .helpers import at, envelope, make_state, scrape

H = 3600.0


def breaches(state: BacklogState, kind: str) -> float:
    return scrape(state)[("sla_breaches_total", (("kind", kind), ("team", "billing")))]


def received(state: BacklogState, source: str = "api") -> float:
    return scrape(state).get(("tickets_received_total", (("source", source),)), 0.0)


def test_a_deadline_withdrawn_while_paused_and_restored_is_breached_once() -> None:
    state = BacklogState()
    rev = 0

    def send(t: float, *, fr: float | None, res: float | None, paused: bool = False) -> None:
        nonlocal rev
        rev += 1
        st = make_state("z:1", 0, team="billing", fr_due=fr, res_due=res, paused=paused)
        st.revision = rev
        state.apply(envelope(st, t), at(t))

    send(0, fr=0.5 * H, res=4 * H)
    state.advance_clock(at(5 * H))  # both targets missed, unanswered
    assert (breaches(state, "first_response"), breaches(state, "resolution")) == (1, 1)
    for cycle in range(3):  # the router withdraws the deadlines while pending, restores them on resume
        t = 5 * H + 2 * H * cycle
        send(t, fr=None, res=None, paused=True)
        send(t + H, fr=0.5 * H, res=4 * H)
    assert (breaches(state, "first_response"), breaches(state, "resolution")) == (1, 1)

    send(12 * H, fr=0.5 * H, res=20 * H)  # a different deadline is a new obligation
    state.advance_clock(at(21 * H))
    assert (breaches(state, "first_response"), breaches(state, "resolution")) == (1, 2)


def test_a_withdrawn_deadline_is_not_overdue_and_a_restored_one_is() -> None:
    state = BacklogState()
    state.apply(envelope(make_state("z:1", 0, team="billing", res_due=H), 0), at(0))
    st = make_state("z:1", 0, team="billing")  # open, not paused, no deadline any more
    st.revision = 1
    state.apply(envelope(st, 2 * H), at(2 * H))
    key = ("ticket_backlog_overdue", (("priority", "P3"), ("team", "billing")))
    assert scrape(state)[key] == 0
    st = make_state("z:1", 0, team="billing", res_due=H)
    st.revision = 2
    state.apply(envelope(st, 3 * H), at(3 * H))
    assert scrape(state)[key] == 1
    assert breaches(state, "resolution") == 1


def created(external_id: str, t: float = 0, source: str = "api"):
    return ticket_event(EventType.TICKET_CREATED, source, TicketSnapshot(external_id=external_id), at(t))


def test_ticket_created_for_an_update_is_not_another_received_ticket() -> None:
    state = BacklogState()
    state.apply(created("1"), at(0))
    state.apply(envelope(make_state("api:1", 0, team="billing", source="api"), 1), at(1))
    state.apply(created("1", 60), at(60))  # a status-less update through POST /v1/tickets
    state.apply(envelope(make_state("api:2", 0, team="billing", source="api"), 1), at(1))
    state.apply(created("2", 2), at(2))  # routed before its creation was read: counted once too
    state.apply(created("2", 90), at(90))
    assert received(state) == 2

    restored = BacklogState.from_checkpoint(state.to_checkpoint())
    restored.apply(created("1", 120), at(120))
    restored.apply(created("3", 120), at(120))
    assert received(restored) == 3


def test_a_ticket_first_received_by_another_ticket_event_is_counted_once() -> None:
    """Intake publishes a new ticket as ticket.status_changed when POST /v1/tickets gives it a status
    (and a webhook installed after a ticket was opened first sends its update or comment): the
    router creates the ticket from that event, so it is a received ticket, once."""
    state = BacklogState()
    first = ticket_event(
        EventType.TICKET_STATUS_CHANGED, "api", TicketSnapshot(external_id="1", status="open"), at(0)
    )
    state.apply(first, at(0))
    state.apply(envelope(make_state("api:1", 0, team="billing", source="api"), 1), at(1))
    comment = ticket_event(EventType.TICKET_COMMENTED, "api", TicketSnapshot(external_id="1"), at(30))
    state.apply(comment, at(30))
    state.apply(created("1", 60), at(60))  # a status-less update through POST /v1/tickets
    state.apply(envelope(make_state("api:2", 0, team="billing", source="api"), 1), at(1))
    state.apply(ticket_event(EventType.TICKET_UPDATED, "api", TicketSnapshot(external_id="2"), at(2)), at(2))
    assert received(state) == 2


def test_a_ticket_first_known_from_its_creation_gets_its_state_as_a_new_ticket() -> None:
    state = BacklogState()
    state.apply(created("1"), at(0))
    state.apply(envelope(make_state("api:1", 0, team="billing", source="api"), 1), at(1))
    m = scrape(state)
    assert m[("ticket_backlog_open", (("priority", "P3"), ("team", "billing")))] == 1
    assert m[("tickets_routed_total", (("team", "billing"),))] == 1
    assert m[("tickets_reopened_total", (("team", "billing"),))] == 0


def test_creations_without_a_state_are_forgotten_beyond_the_retention() -> None:
    state = BacklogState(BacklogConfig(resolved_retention=10))
    for i in range(100):
        state.apply(created(str(i)), at(0))
    assert state.n_used <= 10
    assert received(state) == 100
    state = BacklogState.from_checkpoint(state.to_checkpoint())
    for i in range(100, 200):
        state.apply(created(str(i)), at(0))
    assert state.n_used <= 10


def test_the_resolved_tickets_kept_are_the_last_resolved_whenever_created() -> None:
    state = BacklogState(BacklogConfig(resolved_retention=2))
    for i in range(4):
        state.apply(created(str(i)), at(0))
        state.apply(envelope(make_state(f"api:{i}", 0, team="billing", source="api"), 1), at(1))
    for t, i in enumerate((1, 2, 0), start=2):  # ticket 0, created first, is resolved last
        st = make_state(f"api:{i}", 0, team="billing", source="api", status="solved", resolved=t)
        st.revision = 1
        state.apply(envelope(st, t), at(t))
    st = make_state("api:0", 0, team="billing", source="api", status="closed", resolved=5)
    st.revision = 2
    state.apply(envelope(st, 10), at(10))  # still known: solved -> closed is no new resolution
    assert scrape(state)[("tickets_resolved_total", (("team", "billing"),))] == 3


def test_a_checkpoint_of_the_previous_release_does_not_count_its_tickets_again() -> None:
    state = BacklogState()
    state.apply(created("1"), at(0))
    state.apply(envelope(make_state("api:1", 0, team="billing", source="api"), 1), at(1))
    for slot in range(len(state.a_flags)):  # the previous release had no per-ticket mark...
        state.a_flags[slot] &= ~F_RECEIVED
    body = zlib.decompress(state.to_checkpoint()[len(MAGIC) :])
    head_len = int.from_bytes(body[:4], "little")
    header = orjson.loads(body[4 : 4 + head_len])
    del header["received_per_key"]  # ... as it counted every ticket.created
    head = orjson.dumps(header)
    columns = body[4 + head_len :]
    old = BacklogState.from_checkpoint(
        MAGIC + zlib.compress(len(head).to_bytes(4, "little") + head + columns)
    )
    old.apply(created("1", 60), at(60))
    assert received(old) == 1


def test_an_event_whose_application_failed_is_applied_when_redelivered(monkeypatch) -> None:
    """The consumer retries a batch that raised (and dead-letters it in the end): the event must
    not pass as already seen on that retry."""
    state = BacklogState()
    event = envelope(make_state("z:1", 0, team="billing"), 0)
    apply_values = BacklogState._apply_values
    calls = 0

    def fail_once(self: BacklogState, *values: object) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("a failure inside the application")
        apply_values(self, *values)  # type: ignore[arg-type]

    monkeypatch.setattr(BacklogState, "_apply_values", fail_once)
    with pytest.raises(RuntimeError, match="a failure inside the application"):
        state.apply(event, at(0))  # raised to the consumer, which retries the batch
    state.apply(event, at(0))  # the redelivery
    state.apply(event, at(0))  # and one more: counted once
    routed = scrape(state)[("tickets_routed_total", (("team", "billing"),))]
    assert (calls, routed) == (2, 1)
