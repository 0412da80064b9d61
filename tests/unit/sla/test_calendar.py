from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from services.router.sla import calendar as calendar_module
from services.router.sla.calendar import (
    DEADLINE_HORIZON,
    BusinessCalendar,
    add_business_time,
    business_deadline,
    business_time_between,
    wall_to_utc,
)
from services.router.sla.timeline import BLOCK_DAYS
from tests.unit.sla.oracles import day_walk

H = timedelta(hours=1)


def local(zone: str, *args: int) -> datetime:
    """A local wall time in ``zone`` (first occurrence if repeated), as UTC."""
    y, mo, d, h, mi = (*args, 0, 0)[:5]
    return datetime(y, mo, d, h, mi, tzinfo=ZoneInfo(zone)).astimezone(UTC)


NY = BusinessCalendar(
    name="ny",
    timezone="America/New_York",
    weekly_hours={"mon-fri": "09:00-17:00"},
    holidays=["2024-07-04", {"day": "2024-12-25", "name": "Christmas"}],
)
TALLINN = BusinessCalendar(
    name="tallinn",
    timezone="Europe/Tallinn",
    # split shift plus a late slot that ends at midnight
    weekly_hours={"mon-fri": ["08:00-12:00", "13:00-17:00"], "sat": [["20:00", "24:00"]]},
    holidays=["2024-06-24"],
)
KOLKATA = BusinessCalendar(name="in", timezone="Asia/Kolkata", weekly_hours={"mon-sat": "09:30-18:30"})
NY_24X7 = BusinessCalendar.always_open("ny-24x7", "America/New_York")
TALLINN_24X7 = BusinessCalendar.always_open("tln-24x7", "Europe/Tallinn")
UTC_24X7 = BusinessCalendar.always_open()
# Bounds inside the DST-skipped and repeated hours of both zones.
NY_ODD = BusinessCalendar(name="ny-odd", timezone="America/New_York", weekly_hours={"sun": ["01:30-02:30"]})
TALLINN_ODD = BusinessCalendar(
    name="tln-odd", timezone="Europe/Tallinn", weekly_hours={"sun": ["03:30-05:00"], "wed": ["10:00-11:00"]}
)
ALL = [NY, TALLINN, KOLKATA, NY_24X7, TALLINN_24X7, UTC_24X7, NY_ODD, TALLINN_ODD]


class TestValidation:
    def test_day_ranges_and_shorthands_expand(self) -> None:
        assert TALLINN.weekly_hours["wed"][1].start == "13:00"
        assert "sun" not in TALLINN.weekly_hours
        assert TALLINN.week_total == timedelta(hours=8 * 5 + 4)
        assert NY_24X7.week_total == timedelta(days=7)

    def test_wrapping_day_range(self) -> None:
        cal = BusinessCalendar(name="x", weekly_hours={"sat-mon": "10:00-11:00"})
        assert set(cal.weekly_hours) == {"sat", "sun", "mon"}

    @pytest.mark.parametrize(
        "hours",
        [
            {"mon": "17:00-09:00"},
            {"mon": "24:00-24:00"},
            {"mon": "09:00-24:30"},
            {"mon": ["09:00-12:00", "11:00-13:00"]},
            {"funday": "09:00-10:00"},
            {"mon": "0900-1000"},
            {},
        ],
    )
    def test_invalid_hours_rejected(self, hours: dict) -> None:
        with pytest.raises(ValidationError):
            BusinessCalendar(name="x", weekly_hours=hours)

    def test_unknown_timezone_rejected(self) -> None:
        with pytest.raises(ValidationError, match="IANA"):
            BusinessCalendar(name="x", timezone="Mars/Olympus", weekly_hours={"mon": "09:00-10:00"})

    def test_json_round_trip(self) -> None:
        again = BusinessCalendar.model_validate_json(TALLINN.model_dump_json())
        assert again == TALLINN
        assert again.holidays[0].day == date(2024, 6, 24)

    def test_naive_and_negative_inputs_rejected(self) -> None:
        with pytest.raises(ValueError, match="aware"):
            add_business_time(NY, datetime(2024, 1, 1), H)
        with pytest.raises(ValueError, match="negative"):
            add_business_time(NY, datetime(2024, 1, 1, tzinfo=UTC), -H)


class TestWeekdaysAndHolidays:
    def test_rolls_over_weekend(self) -> None:
        fri_4pm = local("America/New_York", 2024, 2, 9, 16)
        assert add_business_time(NY, fri_4pm, 2 * H) == local("America/New_York", 2024, 2, 12, 10)

    def test_start_outside_hours_begins_at_next_opening(self) -> None:
        sat = local("America/New_York", 2024, 2, 10, 12)
        assert add_business_time(NY, sat, H) == local("America/New_York", 2024, 2, 12, 10)

    def test_lands_exactly_on_closing_time(self) -> None:
        mon_9 = local("America/New_York", 2024, 2, 12, 9)
        assert add_business_time(NY, mon_9, 8 * H) == local("America/New_York", 2024, 2, 12, 17)

    def test_skips_holiday(self) -> None:
        wed_4pm = local("America/New_York", 2024, 7, 3, 16)
        assert add_business_time(NY, wed_4pm, 2 * H) == local("America/New_York", 2024, 7, 5, 10)
        assert business_time_between(NY, wed_4pm, local("America/New_York", 2024, 7, 5, 10)) == 2 * H

    def test_split_shift_and_midnight_end(self) -> None:
        mon_11 = local("Europe/Tallinn", 2024, 2, 12, 11)
        assert add_business_time(TALLINN, mon_11, 2 * H) == local("Europe/Tallinn", 2024, 2, 12, 14)
        fri_16 = local("Europe/Tallinn", 2024, 2, 16, 16)
        assert add_business_time(TALLINN, fri_16, 5 * H) == local("Europe/Tallinn", 2024, 2, 18)

    def test_kolkata_half_hour_offset(self) -> None:
        sat_6pm = local("Asia/Kolkata", 2024, 2, 10, 18)
        assert add_business_time(KOLKATA, sat_6pm, H) == local("Asia/Kolkata", 2024, 2, 12, 10)
        assert add_business_time(KOLKATA, sat_6pm, H) == datetime(2024, 2, 12, 4, 30, tzinfo=UTC)

    def test_between_is_antisymmetric_and_zero_for_equal(self) -> None:
        a, b = local("America/New_York", 2024, 2, 9, 10), local("America/New_York", 2024, 2, 12, 10)
        assert business_time_between(NY, a, b) == 8 * H
        assert business_time_between(NY, b, a) == -8 * H
        assert business_time_between(NY, a, a) == timedelta(0)
        assert add_business_time(NY, a, timedelta(0)) == a

    def test_is_open(self) -> None:
        assert NY.is_open(local("America/New_York", 2024, 2, 12, 9))
        assert not NY.is_open(local("America/New_York", 2024, 2, 12, 17))
        assert not NY.is_open(local("America/New_York", 2024, 7, 4, 12))


class TestDst:
    @pytest.mark.parametrize(
        ("cal", "day", "hours"),
        [
            (NY_24X7, date(2024, 3, 10), 23),
            (NY_24X7, date(2024, 11, 3), 25),
            (TALLINN_24X7, date(2024, 3, 31), 23),
            (TALLINN_24X7, date(2024, 10, 27), 25),
            (NY_24X7, date(2024, 3, 11), 24),
        ],
    )
    def test_24x7_day_lengths(self, cal: BusinessCalendar, day: date, hours: int) -> None:
        start = wall_to_utc(cal.tz, datetime.combine(day, datetime.min.time()))
        end = wall_to_utc(cal.tz, datetime.combine(day + timedelta(days=1), datetime.min.time()))
        assert business_time_between(cal, start, end) == hours * H
        assert add_business_time(cal, start, hours * H) == end

    @pytest.mark.parametrize(
        ("fri", "mon"),
        [((2024, 3, 8, 16), (2024, 3, 11, 10)), ((2024, 11, 1, 16), (2024, 11, 4, 10))],
    )
    def test_business_hours_across_both_ny_changes(self, fri: tuple, mon: tuple) -> None:
        start = local("America/New_York", *fri)
        assert add_business_time(NY, start, 2 * H) == local("America/New_York", *mon)

    def test_business_hours_across_tallinn_changes(self) -> None:
        # 2024-03-31 and 2024-10-27 are the Sundays of the EU changes.
        for fri, mon in (((2024, 3, 29), (2024, 4, 1)), ((2024, 10, 25), (2024, 10, 28))):
            start = local("Europe/Tallinn", *fri, 16)
            # 1h on Friday, the 4h Saturday slot, then 1h on Monday
            assert add_business_time(TALLINN, start, 6 * H) == local("Europe/Tallinn", *mon, 9)

    def test_interval_starting_in_skipped_hour_starts_at_transition(self) -> None:
        ny = NY_ODD.intervals_on(date(2024, 3, 10))  # 02:00-03:00 does not exist
        assert ny == ((datetime(2024, 3, 10, 6, 30, tzinfo=UTC), datetime(2024, 3, 10, 7, tzinfo=UTC)),)
        tln = TALLINN_ODD.intervals_on(date(2024, 3, 31))  # 03:00-04:00 does not exist
        assert tln == ((datetime(2024, 3, 31, 1, tzinfo=UTC), datetime(2024, 3, 31, 2, tzinfo=UTC)),)

    def test_bounds_in_repeated_hour_use_first_occurrence(self) -> None:
        ny = NY_ODD.intervals_on(date(2024, 11, 3))  # 01:00-02:00 happens twice
        assert ny == ((datetime(2024, 11, 3, 5, 30, tzinfo=UTC), datetime(2024, 11, 3, 7, 30, tzinfo=UTC)),)
        tln = TALLINN_ODD.intervals_on(date(2024, 10, 27))  # 03:00-04:00 happens twice
        assert tln == ((datetime(2024, 10, 27, 0, 30, tzinfo=UTC), datetime(2024, 10, 27, 3, tzinfo=UTC)),)

    def test_wall_to_utc_gap_maps_to_transition(self) -> None:
        tz = ZoneInfo("America/New_York")
        assert wall_to_utc(tz, datetime(2024, 3, 10, 2, 0)) == datetime(2024, 3, 10, 7, tzinfo=UTC)
        assert wall_to_utc(tz, datetime(2024, 3, 10, 2, 59)) == datetime(2024, 3, 10, 7, tzinfo=UTC)
        assert wall_to_utc(tz, datetime(2024, 3, 10, 3, 0)) == datetime(2024, 3, 10, 7, tzinfo=UTC)


def _wall_clock_oracle(cal: BusinessCalendar, a: datetime, b: datetime) -> timedelta:
    """Count minutes whose local wall time lies in an opening interval: independent of the code."""
    total, t = timedelta(0), a
    while t < b:
        wall = t.astimezone(cal.tz)
        minute = wall.hour * 60 + wall.minute
        if not cal.is_holiday(wall.date()):
            days = cal.minutes_by_weekday[wall.weekday()]
            if any(s <= minute < e for s, e in days):
                total += timedelta(minutes=1)
        t += timedelta(minutes=1)
    return total


@pytest.mark.parametrize("cal", [NY, TALLINN, KOLKATA, NY_24X7, TALLINN_24X7])
@pytest.mark.parametrize(
    "start",
    [datetime(2024, 3, 8, tzinfo=UTC), datetime(2024, 10, 25, tzinfo=UTC), datetime(2024, 11, 1, tzinfo=UTC)],
)
def test_between_matches_minute_oracle_around_dst(cal: BusinessCalendar, start: datetime) -> None:
    end = start + timedelta(days=4, hours=7)
    assert business_time_between(cal, start, end) == _wall_clock_oracle(cal, start, end)


class TestLongDurations:
    @pytest.mark.parametrize("cal", [NY, TALLINN, KOLKATA, TALLINN_24X7])
    def test_week_skipping_matches_day_walk_across_dst_and_holidays(self, cal: BusinessCalendar) -> None:
        start = datetime(2024, 2, 14, 13, 17, tzinfo=UTC)
        for days in (1, 7, 30, 90, 200):
            d = timedelta(days=days, minutes=7)
            assert add_business_time(cal, start, d) == day_walk(cal, start, d)

    def test_a_30_day_target_looks_into_each_day_once(self, monkeypatch: pytest.MonkeyPatch) -> None:
        calls = 0
        original = calendar_module.BusinessCalendar.intervals_on

        def counting(self: BusinessCalendar, day: date) -> tuple[tuple[datetime, datetime], ...]:
            nonlocal calls
            calls += 1
            return original(self, day)

        monkeypatch.setattr(calendar_module.BusinessCalendar, "intervals_on", counting)
        start = datetime(2025, 1, 6, 15, tzinfo=UTC)
        end = add_business_time(NY, start, timedelta(days=30))  # 90 working days
        # Deadlines search the timeline's blocks: each day of the span is looked into once at most
        # (fewer when another test built the blocks), and the next ticket's at most a block more.
        assert calls <= (end - start).days + 2 * BLOCK_DAYS
        calls = 0
        add_business_time(NY, start + timedelta(hours=5), timedelta(days=30))
        assert calls <= BLOCK_DAYS
        calls = 0
        assert business_time_between(NY, start, end) == timedelta(days=30)
        assert calls < 20


DURATIONS = st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=60))
STARTS = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)
)


@settings(max_examples=300, deadline=None)
@given(cal=st.sampled_from(ALL), start=STARTS, d=DURATIONS)
def test_between_inverts_add(cal: BusinessCalendar, start: datetime, d: timedelta) -> None:
    end = add_business_time(cal, start, d)
    assert end >= start
    if business_deadline(cal, start, d) is None:
        # One open hour a week (NY_ODD) holds 60 days in 27 years: capped at the ten-year horizon.
        assert end == start + DEADLINE_HORIZON
        assert business_time_between(cal, start, end) < d
    else:
        assert business_time_between(cal, start, end) == d


@settings(max_examples=200, deadline=None)
@given(cal=st.sampled_from(ALL), start=STARTS, d1=DURATIONS, d2=DURATIONS)
def test_add_is_additive(cal: BusinessCalendar, start: datetime, d1: timedelta, d2: timedelta) -> None:
    assume(business_deadline(cal, start, d1 + d2) is not None)  # a capped sum is not a sum
    assert add_business_time(cal, add_business_time(cal, start, d1), d2) == add_business_time(
        cal, start, d1 + d2
    )
