"""Deadlines searched in the timeline's blocks are the deadlines a day-by-day walk finds: across
zones whose clocks change (at midnight too, by half an hour, by a whole skipped day), holidays,
starts inside, between and before intervals, and targets ending exactly at a closing time."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.router.sla import calendar as calendar_module
from services.router.sla.calendar import BusinessCalendar, add_business_time, business_deadline
from services.router.sla.timeline import BLOCK_DAYS, Timeline
from tests.unit.sla.oracles import day_walk

ZONES = [
    "UTC",
    "America/New_York",
    "Europe/Berlin",
    "America/Santiago",  # springs forward at midnight: the day starts at 01:00
    "Asia/Kolkata",
    "Australia/Lord_Howe",  # moves by half an hour
    "Pacific/Apia",  # skipped 30 December 2011 entirely
    "Pacific/Kiritimati",  # UTC+14: local dates a day ahead of UTC
    "Pacific/Pago_Pago",  # UTC-11
]
SPANS = ["00:00-24:00", "09:00-17:00", "08:30-12:00,13:00-17:30", "22:00-24:00", "00:00-06:00", "02:30-03:30"]
WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


@st.composite
def calendars(draw: st.DrawFn) -> BusinessCalendar:
    days = draw(st.lists(st.sampled_from(WEEKDAYS), min_size=1, max_size=7, unique=True))
    hours = {day: draw(st.sampled_from(SPANS)).split(",") for day in days}
    first = draw(st.dates(min_value=date(2011, 12, 1), max_value=date(2027, 6, 1)))
    holidays = draw(st.lists(st.integers(0, 60).map(lambda n: first + timedelta(days=n)), max_size=8))
    return BusinessCalendar(
        name="generated", timezone=draw(st.sampled_from(ZONES)), weekly_hours=hours, holidays=holidays
    )


STARTS = st.datetimes(min_value=datetime(2011, 12, 1), max_value=datetime(2027, 6, 1), timezones=st.just(UTC))
DURATIONS = st.one_of(
    st.timedeltas(min_value=timedelta(seconds=1), max_value=timedelta(days=40)),
    st.integers(1, 400).map(lambda n: timedelta(minutes=30 * n)),  # often ends exactly at a closing time
)


@settings(max_examples=400, deadline=None)
@given(calendar=calendars(), start=STARTS, duration=DURATIONS)
def test_a_deadline_is_the_day_walks(
    calendar: BusinessCalendar, start: datetime, duration: timedelta
) -> None:
    found = business_deadline(calendar, start, duration)
    if found is None:  # beyond the horizon: only a calendar nearly always closed gets here
        assert calendar.week_total * 52 * 10 < duration + timedelta(days=400)
        return
    assert found == day_walk(calendar, start, duration)
    assert add_business_time(calendar, start, duration) == found


@settings(max_examples=100, deadline=None)
@given(calendar=calendars(), start=STARTS, durations=st.lists(DURATIONS, min_size=2, max_size=6))
def test_remembered_blocks_give_what_fresh_ones_do(
    calendar: BusinessCalendar, start: datetime, durations: list[timedelta]
) -> None:
    # Later searches reuse the blocks the first built; a fresh timeline builds its own.
    for duration in durations:
        limit = start + timedelta(days=3700)
        assert calendar.timeline.deadline(start, duration, limit) == Timeline(
            calendar, calendar_module._MEMO_DAYS
        ).deadline(start, duration, limit)


def test_a_block_holds_its_dates_intervals_with_the_time_before_each() -> None:
    office = BusinessCalendar(
        name="office", timezone="Europe/Berlin", weekly_hours={"mon-fri": "09:00-17:00"}
    )
    index = date(2026, 12, 7).toordinal() // BLOCK_DAYS
    block = office.timeline.block(index)
    first = date.fromordinal(index * BLOCK_DAYS)
    expected = [i for n in range(BLOCK_DAYS) for i in office.intervals_on(first + timedelta(days=n))]
    assert list(zip(block.begins, block.ends, strict=True)) == expected
    assert block.before[0] == timedelta(0)
    assert block.through[-1] == block.total == timedelta(hours=8 * 20)  # four weeks of five days
    assert block.complete


def test_blocks_are_bounded() -> None:
    office = BusinessCalendar(name="office", timezone="UTC", weekly_hours={"mon-fri": "09:00-17:00"})
    max_blocks = calendar_module._MEMO_DAYS // BLOCK_DAYS  # ~11 years, as the per-day memo
    for index in range(max_blocks * 2):
        office.timeline.block(20_000 + index)
    assert len(office.timeline._blocks) <= max_blocks


@pytest.mark.parametrize(
    "start",
    [datetime(1, 1, 3, 12, tzinfo=UTC), datetime(1, 2, 1, tzinfo=UTC), datetime(9999, 11, 1, tzinfo=UTC)],
)
def test_the_ends_of_datetime_are_searched_like_the_walk(start: datetime) -> None:
    office = BusinessCalendar(
        name="office", timezone="Europe/Berlin", weekly_hours={"mon-fri": "09:00-17:00"}
    )
    for hours in (1, 8, 40, 200):
        assert business_deadline(office, start, timedelta(hours=hours)) == day_walk(
            office, start, timedelta(hours=hours)
        )


def test_nothing_is_found_past_the_last_date() -> None:
    office = BusinessCalendar(name="office", timezone="UTC", weekly_hours={"mon-fri": "09:00-17:00"})
    late = datetime(9999, 12, 20, tzinfo=UTC)
    with pytest.raises(OverflowError):
        office.timeline.deadline(late, timedelta(days=30), datetime.max.replace(tzinfo=UTC))
    assert business_deadline(office, late, timedelta(days=30)) is None
