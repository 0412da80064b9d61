from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from services.router.assignment.capacity import (
    LoadConfig,
    TeamLoad,
    TeamSchedule,
    team_load,
    weighted_open,
)
from shared.events import Priority, TicketStatus

TLN = ZoneInfo("Europe/Tallinn")
SCHEDULE = TeamSchedule.model_validate(
    {
        "team": "billing",
        "timezone": "Europe/Tallinn",
        "tickets_per_agent": 5,
        "holidays": ["2024-06-24"],
        "shifts": [
            {"name": "day", "hours": {"mon-fri": "08:00-16:00"}, "agents": 3},
            {"name": "evening", "hours": {"mon-fri": "12:00-20:00"}, "agents": 2},
            {"name": "night", "hours": {"mon-fri": ["22:00-24:00"], "tue-sat": "00:00-06:00"}, "agents": 1},
        ],
    }
)


def tln(month: int, day: int, hour: int) -> datetime:
    return datetime(2024, month, day, hour, tzinfo=TLN).astimezone(UTC)


@pytest.mark.parametrize(
    ("at", "agents"),
    [
        (tln(3, 4, 9), 3),  # Monday morning
        (tln(3, 4, 13), 5),  # shifts overlap
        (tln(3, 4, 17), 2),
        (tln(3, 4, 21), 0),
        (tln(3, 4, 23), 1),  # night shift before midnight ...
        (tln(3, 5, 3), 1),  # ... and after
        (tln(3, 9, 3), 1),  # Saturday early: Friday's night shift
        (tln(3, 9, 12), 0),
        (tln(6, 24, 9), 0),  # holiday
        (tln(7, 1, 9), 3),  # summer time: same local hours
    ],
)
def test_agents_on_shift(at: datetime, agents: int) -> None:
    assert SCHEDULE.agents_on_shift(at) == agents
    assert SCHEDULE.capacity_at(at) == agents * 5


def test_local_hours_follow_dst() -> None:
    # 08:00 in Tallinn is 06:00 UTC in winter and 05:00 UTC in summer.
    assert SCHEDULE.agents_on_shift(datetime(2024, 3, 4, 6, tzinfo=UTC)) == 3
    assert SCHEDULE.agents_on_shift(datetime(2024, 7, 1, 5, 30, tzinfo=UTC)) == 3
    assert SCHEDULE.agents_on_shift(datetime(2024, 3, 4, 5, 30, tzinfo=UTC)) == 0


def test_schedule_validation() -> None:
    with pytest.raises(ValidationError):
        TeamSchedule(team="x", timezone="Nowhere/City", tickets_per_agent=1)
    with pytest.raises(ValidationError):
        shift = {"name": "a", "hours": {"mon": "10:00-09:00"}, "agents": 1}
        TeamSchedule.model_validate({"team": "x", "tickets_per_agent": 1, "shifts": [shift]})
    with pytest.raises(ValidationError):
        TeamSchedule(team="x", tickets_per_agent=0)


TICKETS = [
    (TicketStatus.OPEN, Priority.P1),
    (TicketStatus.NEW, Priority.P2),
    (TicketStatus.OPEN, Priority.P3),
    (TicketStatus.OPEN, Priority.P4),
    (TicketStatus.PENDING, Priority.P1),  # waiting on the requester: not counted
    (TicketStatus.SOLVED, Priority.P1),
]


def test_weighted_open_defaults() -> None:
    assert weighted_open(TICKETS) == 4 + 2 + 1 + 0.5


def test_weighted_open_configurable() -> None:
    assert weighted_open(TICKETS, LoadConfig(weighted=False)) == 4
    custom = LoadConfig(
        priority_weights={Priority.P1: 10, Priority.P2: 1, Priority.P3: 1, Priority.P4: 1},
        counted_statuses=frozenset({TicketStatus.OPEN, TicketStatus.NEW, TicketStatus.PENDING}),
    )
    assert weighted_open(TICKETS, custom) == 10 + 1 + 1 + 1 + 10


def test_team_load() -> None:
    load = team_load(SCHEDULE, TICKETS, tln(3, 4, 13))
    assert load == TeamLoad("billing", 7.5, 25.0, True)
    assert load.has_room and load.ratio == pytest.approx(0.3)
    closed = team_load(SCHEDULE, TICKETS, tln(3, 4, 21))
    assert not closed.has_room and closed.ratio == float("inf")
