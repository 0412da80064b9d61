"""The router batch bench's arithmetic and inputs: the fixed cost is the intercept of CPU per batch
over batch size, and the tickets it feeds decode as the consumer loop's do."""

from __future__ import annotations

import pytest

from bench.bench_batches import created_events, least_squares
from shared.events import EventType


def test_least_squares_recovers_a_line() -> None:
    slope, intercept = least_squares([1.0, 15.0, 50.0], [6.2, 10.4, 20.9])
    assert slope == pytest.approx(0.3, abs=1e-9)
    assert intercept == pytest.approx(5.9, abs=1e-9)


def test_least_squares_of_noisy_points_lies_between_them() -> None:
    slope, intercept = least_squares([1.0, 15.0, 50.0], [7.0, 10.0, 22.0])
    assert 0.28 < slope < 0.32 and 5.5 < intercept < 7.0


def test_created_events_are_new_tickets_with_their_decoded_snapshot() -> None:
    events = created_events(30)
    assert len(events) == 30 and len({e.envelope.ticket_key for e in events}) == 30
    assert all(e.envelope.type == EventType.TICKET_CREATED and e.ticket is not None for e in events)
    assert all(e.ticket is not None and e.ticket.subject for e in events)
