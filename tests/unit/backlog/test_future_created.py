"""A ticket whose ``created_at`` lies ahead of the backlog's clock (a helpdesk's clock running
fast) is aged 0 until its creation instant comes, never a negative age; its SLA gauges follow its
deadlines as usual."""

from __future__ import annotations

import zlib
from datetime import UTC, datetime

import orjson

from services.metrics.backlog import BacklogState
from services.metrics.backlog.checkpoint import MAGIC
from services.metrics.backlog.views import summary
from shared.events import EventType

from .helpers import at, envelope, make_state, scrape

H = 3600.0


def gauge(values: dict, name: str, **labels: str) -> float:
    return values.get((name, tuple(sorted(labels.items()))), 0.0)


def ages(state: BacklogState) -> tuple[float, float, float, float]:
    m = scrape(state)
    return (
        gauge(m, "ticket_open_age_gsum", team="billing"),
        gauge(m, "ticket_oldest_open_age_seconds", team="billing"),
        gauge(m, "ticket_open_age_bucket", team="billing", le="3600.0"),
        summary(state.snapshot())["teams"]["billing"]["oldest_age_seconds"],
    )


def skewed(state: BacklogState, revision: int = 0, status: str = "open") -> None:
    # Created 2 h ahead of the clock; the router's deadlines count from that creation instant.
    t = make_state(
        "z:ahead", 2 * H, team="billing", priority="P2", fr_due=3 * H, res_due=10 * H, status=status
    )
    t = t.model_copy(update={"revision": revision})
    state.apply(envelope(t, 0, EventType.TICKET_ROUTED), at(0))


def test_a_ticket_created_ahead_of_the_clock_is_aged_zero_until_then() -> None:
    state = BacklogState()
    skewed(state)
    assert ages(state) == (0, 0, 1, 0)
    m = scrape(state)
    assert gauge(m, "ticket_sla_at_risk", team="billing", priority="P2") == 0
    assert gauge(m, "ticket_backlog_overdue", team="billing", priority="P2") == 0

    # A ticket of the same team created in the past: the sum holds its age alone.
    state.apply(envelope(make_state("z:past", -600, team="billing"), 0), at(0))
    assert ages(state) == (600, 600, 2, 600)
    state.advance_clock(at(2 * H))  # the skewed ticket's creation instant: age 0
    assert ages(state) == (2 * H + 600, 2 * H + 600, 1, 2 * H + 600)
    state.advance_clock(at(2.5 * H))
    assert ages(state) == (0.5 * H + 2.5 * H + 600, 2.5 * H + 600, 1, 2.5 * H + 600)
    assert gauge(scrape(state), "sla_breaches_total", team="billing", kind="first_response") == 0


def test_its_sla_gauges_follow_its_deadlines() -> None:
    state = BacklogState()
    skewed(state)
    state.advance_clock(at(3 * H + 0.001))  # its first-response deadline: breached
    m = scrape(state)
    assert gauge(m, "sla_breaches_total", team="billing", kind="first_response") == 1
    state.advance_clock(at(8 * H))  # 75 % of its 8 h resolution target
    assert gauge(scrape(state), "ticket_sla_at_risk", team="billing", priority="P2") == 1
    state.advance_clock(at(10 * H + 0.001))  # past its resolution deadline: overdue
    m = scrape(state)
    assert gauge(m, "ticket_backlog_overdue", team="billing", priority="P2") == 1
    assert gauge(m, "ticket_open_age_gsum", team="billing") == 8 * H + 0.001


def test_changed_resolved_or_checkpointed_before_its_creation_instant() -> None:
    state = BacklogState()
    skewed(state)
    skewed(state, revision=1)  # a new state while still ahead: counted once
    assert ages(state) == (0, 0, 1, 0)
    restored = BacklogState.from_checkpoint(state.to_checkpoint())
    for s in (state, restored):
        s.advance_clock(at(H))
        assert ages(s) == (0, 0, 1, 0)
        s.advance_clock(at(3 * H))
        assert ages(s) == (H, H, 1, H)
    skewed(state, revision=2, status="solved")
    m = scrape(state)
    assert gauge(m, "ticket_open_age_gsum", team="billing") == 0
    assert gauge(m, "ticket_open_age_gcount", team="billing") == 0


def test_resolved_while_still_ahead_leaves_no_age() -> None:
    state = BacklogState()
    skewed(state)
    skewed(state, revision=1, status="solved")
    state.apply(envelope(make_state("z:past", -600, team="billing"), 0), at(0))
    assert ages(state) == (600, 600, 1, 600)
    state.advance_clock(at(5 * H))  # the skewed ticket's instant passes: nothing moves back in
    assert ages(state)[:2] == (5 * H + 600, 5 * H + 600)


def test_a_checkpoint_of_an_older_release_has_its_tickets_ahead_found() -> None:
    state = BacklogState()
    skewed(state)
    state.apply(envelope(make_state("z:past", -600, team="billing"), 0), at(0))
    old = _without_unaged(state.to_checkpoint())
    restored = BacklogState.from_checkpoint(old)
    assert ages(restored) == ages(state) == (600, 600, 2, 600)
    for s in (state, restored):
        s.advance_clock(at(2.5 * H))
    assert ages(restored) == ages(state)


def _without_unaged(data: bytes) -> bytes:
    """The checkpoint as a release before the unaged marks wrote it (its last blob, two lists)."""
    body = zlib.decompress(data[len(MAGIC) :])
    n = int.from_bytes(body[:4], "little")
    header = orjson.loads(body[4 : 4 + n])
    name, _, length = header["blobs"].pop()
    assert name == "unaged"
    del header["lists"]["n_unaged"], header["lists"]["u_created"]
    rest = body[4 + n : len(body) - length]
    head = orjson.dumps(header)
    return MAGIC + zlib.compress(len(head).to_bytes(4, "little") + head + rest)


def test_a_source_stating_far_future_creations_does_not_stop_the_checkpoints() -> None:
    # The per-team sum of open tickets' creation instants goes into the checkpoint's JSON header,
    # which holds 64-bit integers: 72,797 open tickets a source says were created on 9999-12-31
    # (2.5e14 ms each) passed it, and every checkpoint of the shard failed from then on (each
    # restart or revocation replaying from further back).
    state = BacklogState()
    far = make_state("z:0", 0, team="billing", routed=0).model_copy(
        update={"created_at": datetime(9999, 12, 31, tzinfo=UTC)}
    )
    for n in range(72_800):
        state.apply_state(far.model_copy(update={"ticket_key": f"z:{n}"}), at(0))
    state.apply(envelope(make_state("z:now", 0, team="billing", routed=0), 0), at(0))
    state.advance_clock(at(H))
    before = scrape(state)
    assert gauge(before, "ticket_open_age_gsum", team="billing") == H  # the far ones are aged 0
    assert gauge(before, "ticket_oldest_open_age_seconds", team="billing") == H
    assert scrape(BacklogState.from_checkpoint(state.to_checkpoint())) == before
