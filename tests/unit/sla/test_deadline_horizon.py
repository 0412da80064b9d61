"""Deadlines on sparse business calendars: the walk is bounded by a horizon of calendar time.

A calendar with one open minute (or hour) a week, or holidays over most days, turned a long
target into a walk of thousands of years: seconds per deadline, or OverflowError past year 9999,
in every routing batch of a ticket under such a policy. Beyond the horizon the deadline is capped
(and logged once per calendar); :func:`business_deadline` says ``None`` instead.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, time, timedelta

import pytest

from services.router.sla import calendar as calendar_module
from services.router.sla.calendar import BusinessCalendar, add_business_time, business_time_between
from services.router.sla.clock import SlaClock
from services.router.sla.policy import SlaPolicy
from services.router.sla.timeline import BLOCK_DAYS
from shared.events import Priority
from tests.unit.sla.oracles import day_walk

HORIZON = timedelta(days=3653)  # ten years of calendar time, as the README documents
YEAR = timedelta(days=365)  # the largest target a policy may have
START = datetime(2026, 3, 2, 12, tzinfo=UTC)  # a Monday

MINUTE_A_WEEK = BusinessCalendar(name="minute", timezone="UTC", weekly_hours={"mon": "09:00-09:01"})
HOUR_A_WEEK = BusinessCalendar(name="hour", timezone="Europe/Berlin", weekly_hours={"mon": "09:00-10:00"})
OFFICE = BusinessCalendar(
    name="office",
    timezone="Europe/Berlin",
    weekly_hours={"mon-fri": "09:00-17:00"},
    holidays=["2026-12-25", "2027-01-01"],
)


def _mondays(first: date, weeks: int) -> list[date]:
    return [first + timedelta(weeks=i) for i in range(weeks)]


# Open on Mondays only, and every Monday for eleven years from START (a Monday) is a holiday: no
# open time at all within the horizon (in fewer than the 1,000 holidays a calendar may have).
CLOSED_FOR_YEARS = BusinessCalendar(
    name="closed",
    timezone="UTC",
    weekly_hours={"mon": "09:00-17:00"},
    holidays=_mondays(START.date(), 575),
)


@pytest.fixture
def day_starts(monkeypatch: pytest.MonkeyPatch) -> list[date]:
    """Every local day the walk looks into (each step that does not skip a week reads that day's
    open intervals)."""
    seen: list[date] = []
    original = calendar_module.BusinessCalendar.intervals_on

    def counting(self: BusinessCalendar, day: date) -> tuple[tuple[datetime, datetime], ...]:
        seen.append(day)
        return original(self, day)

    monkeypatch.setattr(calendar_module.BusinessCalendar, "intervals_on", counting)
    return seen


@pytest.fixture(autouse=True)
def _fresh_reports(monkeypatch: pytest.MonkeyPatch) -> None:
    # "Logged once" is per process; each test starts with nothing reported yet.
    monkeypatch.setattr(calendar_module, "_reported", set(), raising=False)


def test_the_horizon_is_ten_years() -> None:
    assert calendar_module.DEADLINE_HORIZON == HORIZON
    assert calendar_module.DEADLINE_HORIZON_YEARS == 10


def test_a_year_on_one_minute_a_week_is_capped_not_an_overflow(day_starts: list[date]) -> None:
    """525,600 open minutes at one a week end in year ~12100: the walk overflowed datetime."""
    assert add_business_time(MINUTE_A_WEEK, START, YEAR) == START + HORIZON
    # The days of the horizon, each once (the timeline's blocks are remembered), not 10,000 years.
    assert len(day_starts) <= HORIZON.days + 2 * BLOCK_DAYS
    assert len(set(day_starts)) == len(day_starts)
    looked = len(day_starts)
    assert add_business_time(MINUTE_A_WEEK, START + timedelta(hours=1), YEAR) == START + HORIZON + timedelta(
        hours=1
    )
    assert len(day_starts) <= looked + BLOCK_DAYS  # the next ticket's deadline looks into a block more


def test_a_year_on_one_hour_a_week_is_capped_at_the_horizon(day_starts: list[date]) -> None:
    """8,760 weeks (year 2194) used to be walked week by week, for every deadline of every ticket."""
    assert add_business_time(HOUR_A_WEEK, START, YEAR) == START + HORIZON
    assert len(day_starts) <= HORIZON.days + 2 * BLOCK_DAYS
    assert calendar_module.business_deadline(HOUR_A_WEEK, START, YEAR) is None


def test_a_deadline_within_the_horizon_is_exact() -> None:
    """500 open hours on one hour a week: ~9.6 years, inside the horizon, to the minute."""
    target = timedelta(hours=500, minutes=17)
    expected = day_walk(HOUR_A_WEEK, START, target)
    assert START + timedelta(days=9 * 365) < expected < START + HORIZON
    assert add_business_time(HOUR_A_WEEK, START, target) == expected
    assert calendar_module.business_deadline(HOUR_A_WEEK, START, target) == expected
    assert business_time_between(HOUR_A_WEEK, START, expected) == target


def test_a_deadline_exactly_at_the_horizon_is_not_capped() -> None:
    always = BusinessCalendar.always_open()
    assert calendar_module.business_deadline(always, START, HORIZON) == START + HORIZON
    assert calendar_module.business_deadline(always, START, HORIZON + timedelta(minutes=1)) is None


def test_holidays_over_the_whole_horizon_are_not_walked_past_it(day_starts: list[date]) -> None:
    """Eleven years of closed Mondays: the old walk went through all of them, then on."""
    assert add_business_time(CLOSED_FOR_YEARS, START, timedelta(hours=1)) == START + HORIZON
    assert max(day_starts) <= (START + HORIZON).date() + timedelta(days=BLOCK_DAYS)
    assert calendar_module.business_deadline(CLOSED_FOR_YEARS, START, timedelta(minutes=1)) is None


def test_a_capped_deadline_is_logged_once_per_calendar(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger=calendar_module.__name__):
        for _ in range(3):
            add_business_time(HOUR_A_WEEK, START, YEAR)
            add_business_time(MINUTE_A_WEEK, START + timedelta(days=1), YEAR)
        add_business_time(OFFICE, START, YEAR)  # 4.3 years: not capped, nothing to say
    reports = [r for r in caplog.records if r.name == calendar_module.__name__]
    assert [(r.levelname, getattr(r, "calendar", None)) for r in reports] == [
        ("ERROR", "hour"),
        ("ERROR", "minute"),
    ]
    assert "10 years" in reports[0].getMessage()


def test_a_start_at_the_end_of_datetime_does_not_overflow() -> None:
    """A bogus far-future instant: the walk reached date.max and raised OverflowError."""
    late = datetime(9999, 12, 1, tzinfo=UTC)
    for cal in (BusinessCalendar.always_open(), OFFICE, MINUTE_A_WEEK):
        due = add_business_time(cal, late, timedelta(days=60))
        assert due >= late
        due.astimezone(OFFICE.tz)  # still a usable instant in any zone
        assert calendar_module.business_deadline(cal, late, timedelta(days=60)) is None


def test_a_clock_under_a_stored_sparse_policy_has_capped_deadlines() -> None:
    """What a routing batch computes for a ticket under a policy stored before the save check:
    it raised OverflowError (after seconds), failing the batch."""
    policy = SlaPolicy(
        name="stored-before-the-check",
        calendar="minute",
        targets={Priority.P1: {"first_response": 60, "resolution": 525_600}},
    )
    clock = SlaClock.start("api:1", policy, Priority.P1, START)
    deadlines = clock.deadlines(MINUTE_A_WEEK)
    # 60 open minutes: the 60th Monday minute, exact.
    monday_9 = datetime.combine(date(2026, 3, 9), time(9), tzinfo=UTC)
    assert deadlines.first_response_due == monday_9 + timedelta(weeks=59, minutes=1)
    assert deadlines.resolution_due == START + HORIZON
    assert deadlines.resolution_warning_at == START + HORIZON  # 75 % of a year: beyond it too
    assert clock.to_sla_state(MINUTE_A_WEEK).resolution_due == START + HORIZON


def test_open_time_within_the_horizon() -> None:
    assert calendar_module.open_time_within_horizon(CLOSED_FOR_YEARS, START) == timedelta(0)
    # 522 Mondays in ten years from a Monday noon (after that day's hour), give or take one.
    assert (
        timedelta(hours=521)
        <= calendar_module.open_time_within_horizon(HOUR_A_WEEK, START)
        <= timedelta(hours=522)
    )
    assert calendar_module.open_time_within_horizon(BusinessCalendar.always_open(), START) == HORIZON


@pytest.fixture
def day_lookups(monkeypatch: pytest.MonkeyPatch) -> list[date]:
    """Every local day whose start a walk works out or recalls: one or more per step, week skips
    included (``day_starts`` above counts only the days looked into)."""
    seen: list[date] = []
    original = calendar_module.BusinessCalendar.day_start

    def counting(self: BusinessCalendar, day: date) -> datetime:
        seen.append(day)
        return original(self, day)

    monkeypatch.setattr(calendar_module.BusinessCalendar, "day_start", counting)
    return seen


def test_business_time_over_a_thousand_years_counts_the_first_ten(
    day_lookups: list[date], caplog: pytest.LogCaptureFixture
) -> None:
    """A bogus created_at centuries off: the clock's catch-up walked every week (and every day of
    the weeks with an offset change) between the two, for every event of the ticket."""
    # A new instance: its own, empty day memo (a model_copy would share OFFICE's).
    office = BusinessCalendar.model_validate({**OFFICE.model_dump(), "name": "office-fresh"})
    far = START + timedelta(days=365_000)
    with caplog.at_level(logging.WARNING, logger=calendar_module.__name__):
        counted = business_time_between(office, START, far)
        walked = len(day_lookups)
        assert business_time_between(office, far, START) == -counted
    # A few day starts a week over the horizon; the whole span has 52,000 weeks.
    assert walked < 10 * 530
    assert counted == business_time_between(office, START, START + HORIZON)
    assert timedelta(hours=40 * 515) < counted < timedelta(hours=40 * 522)
    reports = [r for r in caplog.records if r.name == calendar_module.__name__]
    assert [(r.levelname, getattr(r, "calendar", None)) for r in reports] == [("WARNING", "office-fresh")]


def test_business_time_from_year_one_or_to_year_9999_does_not_overflow() -> None:
    """Go's zero time (0001-01-01T00:00:00Z) as created_at, or an instant at datetime's end: the
    walk converted dates outside datetime's range and raised OverflowError."""
    new_york = BusinessCalendar(
        name="ny", timezone="America/New_York", weekly_hours={"mon-fri": "09:00-17:00"}
    )
    year_one = datetime(1, 1, 1, tzinfo=UTC)
    earliest = datetime(1, 1, 3, tzinfo=UTC)  # two days in: still a date in every zone
    assert business_time_between(new_york, year_one, START) == business_time_between(
        new_york, earliest, earliest + HORIZON
    )
    late, end = datetime(9999, 12, 25, tzinfo=UTC), datetime.max.replace(tzinfo=UTC)
    for cal in (new_york, OFFICE):
        days = [late.date() + timedelta(days=i) for i in range(5)]  # up to two days before the end
        assert business_time_between(cal, late, end) == sum(
            (e - s for day in days for s, e in cal.intervals_on(day)), timedelta(0)
        )
