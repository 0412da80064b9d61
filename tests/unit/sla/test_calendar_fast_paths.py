"""The calendar's shortcuts give the answers of the plain day walk.

A 24x7 calendar (the default when a policy names none) needs no walk at all, and every calendar
remembers the open intervals of the days it has looked at: the router works out each ticket's
deadlines on every event, mostly on the same few days.
"""

from datetime import UTC, date, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from services.router.sla import calendar as calendar_module
from services.router.sla.calendar import BusinessCalendar, add_business_time, business_time_between
from tests.unit.sla.oracles import day_walk

AROUND_THE_CLOCK = [
    BusinessCalendar.always_open(),
    BusinessCalendar.always_open(name="berlin", timezone="Europe/Berlin"),
    BusinessCalendar(name="split", timezone="America/New_York", weekly_hours={"daily": ["00:00-24:00"]}),
]
starts = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)
)
durations = st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=400))


def test_only_calendars_open_every_minute_take_the_shortcut() -> None:
    assert all(cal.open_around_the_clock for cal in AROUND_THE_CLOCK)
    with_holiday = BusinessCalendar(
        name="h", weekly_hours={"daily": ["00:00-24:00"]}, holidays=["2026-12-25"]
    )
    six_days = BusinessCalendar(name="six", weekly_hours={"mon-sat": ["00:00-24:00"]})
    split_day = BusinessCalendar(name="two", weekly_hours={"daily": ["00:00-12:00", "12:00-24:00"]})
    office = BusinessCalendar(name="office", weekly_hours={"mon-fri": ["09:00-17:00"]})
    assert not any(cal.open_around_the_clock for cal in (with_holiday, six_days, split_day, office))


@settings(max_examples=200, deadline=None)
@given(starts, durations, st.sampled_from(AROUND_THE_CLOCK))
def test_a_24x7_deadline_is_the_day_walks(
    start: datetime, duration: timedelta, cal: BusinessCalendar
) -> None:
    assert add_business_time(cal, start, duration) == day_walk(cal, start, duration)


@settings(max_examples=200, deadline=None)
@given(starts, durations, st.sampled_from(AROUND_THE_CLOCK))
def test_24x7_business_time_is_wall_clock_time(
    start: datetime, duration: timedelta, cal: BusinessCalendar
) -> None:
    end = start + duration
    assert business_time_between(cal, start, end) == duration
    assert business_time_between(cal, end, start) == -duration


def test_a_24x7_deadline_past_the_horizon_is_capped() -> None:
    cal, start = BusinessCalendar.always_open(), datetime(2026, 1, 1, tzinfo=UTC)
    horizon = calendar_module.DEADLINE_HORIZON
    assert calendar_module.business_deadline(cal, start, horizon) == start + horizon
    assert calendar_module.business_deadline(cal, start, horizon + timedelta(seconds=1)) is None
    assert (
        calendar_module.business_deadline(cal, datetime(9999, 12, 1, tzinfo=UTC), timedelta(days=60)) is None
    )


def test_remembered_days_are_the_computed_ones_and_bounded() -> None:
    cal = BusinessCalendar(
        name="office",
        timezone="Europe/Berlin",
        weekly_hours={"mon-fri": ["09:00-17:00"]},
        holidays=["2026-12-25"],
    )
    days = [date(2020, 1, 1) + timedelta(days=i) for i in range(calendar_module._MEMO_DAYS + 500)]
    for day in days:
        assert cal.intervals_on(day) == cal._intervals_of(day)
        assert cal.intervals_on(day) is cal.intervals_on(day)  # the second one is remembered
        assert cal.day_start(day) == cal._start_of(day)
        assert cal.week_is_regular(day) == cal._is_regular(day)
    memo = cal._memo
    assert max(len(memo.intervals), len(memo.starts), len(memo.regular)) <= calendar_module._MEMO_DAYS
    assert cal.week_is_regular(date(2026, 12, 21)) is False  # a week with a holiday
    assert cal.intervals_on(date(2026, 12, 25)) == ()


def test_a_week_starting_when_the_clocks_spring_forward_at_midnight_is_an_hour_short() -> None:
    # Santiago, Asuncion and Havana change their clocks at local midnight: the week from that day
    # starts at 01:00 on the new offset, so the offsets at both ends agree, yet it lasts 6d 23h.
    for zone, day in (
        ("America/Santiago", date(2026, 9, 6)),
        ("America/Asuncion", date(2024, 10, 6)),
        ("America/Havana", date(2026, 3, 8)),
    ):
        # Open all day but with a holiday: not the around-the-clock shortcut, the week skip.
        cal = BusinessCalendar(
            name="c", timezone=zone, weekly_hours={"daily": ["00:00-24:00"]}, holidays=["2020-01-01"]
        )
        start, end = cal.day_start(day), cal.day_start(day + timedelta(days=7))
        assert not cal.week_is_regular(day), zone
        assert business_time_between(cal, start, end) == end - start == timedelta(days=7, hours=-1), zone
        before = start - timedelta(hours=1)
        assert add_business_time(cal, before, timedelta(days=8)) == day_walk(
            cal, before, timedelta(days=8)
        ), zone
