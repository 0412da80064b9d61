"""What the admin API checks a calendar and its policies against when they are saved.

Ten years are 521 weeks and 6 days: the open time of the ten years from ``now`` left out a
different weekday depending on the day of the save, so a target within about a week of the
horizon was accepted on a Monday and refused on a Tuesday (or the other way round).
"""

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from services.router.sla.calendar import (
    BusinessCalendar,
    least_open_time_within_horizon,
    open_time_within_horizon,
)
from services.router.slas import service
from services.router.slas.schemas import StoredPolicy
from services.router.slas.service import ConfigInvalid, LiveCalendars, validate_document

MONDAY = datetime(2026, 3, 2, 12, tzinfo=UTC)  # after that Monday's open hour
HOUR_A_WEEK = {"name": "hour", "timezone": "UTC", "weekly_hours": {"mon": "09:00-10:00"}}
CALENDAR = BusinessCalendar.model_validate(HOUR_A_WEEK)
# Counted from a Monday noon the ten years hold 521 Monday hours, from a Tuesday noon 522.
FITS, BETWEEN = 521 * 60, 521 * 60 + 30  # minutes


def policy(minutes: int) -> dict[str, Any]:
    return {"name": "pol", "calendar": "hour", "targets": {"P1": {"resolution": minutes}}}


def save_times() -> list[datetime]:
    """Every weekday, at several times of the day (before, in and after the open hour)."""
    return [MONDAY + timedelta(days=d, hours=h) for d in range(7) for h in (-12, -2.5, -2.75, 0, 11)]


def fields(exc: pytest.ExceptionInfo[ConfigInvalid]) -> list[str]:
    return [e["field"] for e in exc.value.errors]


def test_a_target_between_the_monday_and_tuesday_open_time_is_refused_every_weekday() -> None:
    assert open_time_within_horizon(CALENDAR, MONDAY) == timedelta(minutes=FITS)
    assert open_time_within_horizon(CALENDAR, MONDAY + timedelta(days=1)) == timedelta(hours=522)
    live = LiveCalendars({"hour": CALENDAR})
    for now in save_times():
        with pytest.raises(ConfigInvalid) as refused:
            validate_document("policy", "pol", policy(BETWEEN), live, {}, now=now)
        assert fields(refused) == ["/targets/P1/resolution"], now
        # ... and a target every start can meet is accepted every day.
        validate_document("policy", "pol", policy(FITS), live, {}, now=now)


def test_a_calendar_too_sparse_for_a_live_policy_is_refused_every_weekday() -> None:
    for minutes, refused in ((BETWEEN, True), (FITS, False)):
        live = LiveCalendars({}, [StoredPolicy.model_validate(policy(minutes))])
        for now in save_times():
            if refused:
                with pytest.raises(ConfigInvalid) as exc:
                    validate_document("calendar", "hour", HOUR_A_WEEK, live, {}, now=now)
                assert fields(exc) == ["/weekly_hours"], now
            else:
                validate_document("calendar", "hour", HOUR_A_WEEK, live, {}, now=now)


def test_the_open_time_saved_against_is_the_least_from_any_instant_of_the_week() -> None:
    """A night shift over midnight: the least is where the window's missing day holds all of it,
    which no start at the time of day of the save need find."""
    night = BusinessCalendar(name="night", weekly_hours={"mon": "20:00-24:00", "tue": "00:00-04:00"})
    start = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday midnight
    least = least_open_time_within_horizon(night, start)
    every_hour = [open_time_within_horizon(night, start + timedelta(hours=h)) for h in range(7 * 24 + 1)]
    assert least == min(every_hour)
    assert least < min(open_time_within_horizon(night, start + timedelta(days=d)) for d in range(7))
    for now in (start + timedelta(days=3, hours=5), start + timedelta(days=5, minutes=17)):
        assert least_open_time_within_horizon(night, now) == least


def test_a_calendar_may_have_at_most_1000_holidays() -> None:
    days = [(date(2026, 1, 1) + timedelta(days=i)).isoformat() for i in range(1_001)]
    assert validate_document(
        "calendar", "hour", {**HOUR_A_WEEK, "holidays": days[:1_000]}, LiveCalendars({}), {}
    )
    # A longer list stored before the check still loads (the routers would stop otherwise).
    assert len(BusinessCalendar.model_validate({**HOUR_A_WEEK, "holidays": days}).holidays) == 1_001
    with pytest.raises(ConfigInvalid) as refused:
        validate_document("calendar", "hour", {**HOUR_A_WEEK, "holidays": days}, LiveCalendars({}), {})
    assert fields(refused) == ["/holidays"]
    assert "1000" in refused.value.errors[0]["message"]


def test_a_calendar_may_have_at_most_48_intervals_a_day() -> None:
    """1,440 one-minute intervals a day made each save check take seconds, 25 s with holidays."""

    def slots(count: int) -> list[str]:
        return [
            f"{m // 60:02d}:{m % 60:02d}-{(m + 1) // 60:02d}:{(m + 1) % 60:02d}"
            for m in range(0, 2 * count, 2)
        ]

    ok = {**HOUR_A_WEEK, "weekly_hours": {"mon": slots(48), "tue": "09:00-17:00"}}
    assert validate_document("calendar", "hour", ok, LiveCalendars({}), {})
    many = {**HOUR_A_WEEK, "weekly_hours": {"mon": slots(49), "wed": slots(300)}}
    assert len(BusinessCalendar.model_validate(many).weekly_hours["wed"]) == 300  # a stored one loads
    with pytest.raises(ConfigInvalid) as refused:
        validate_document("calendar", "hour", many, LiveCalendars({}), {})
    assert fields(refused) == ["/weekly_hours/mon", "/weekly_hours/wed"]


class NeverBuilt:
    """Stands in for the model of a document the size bounds must refuse before building it."""

    @classmethod
    def model_validate(cls, document: object) -> None:
        raise AssertionError("the document was built before its size was checked")


def test_too_many_intervals_or_holidays_are_refused_before_a_calendar_is_built(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The bounds were checked on the built calendar: a 3.5 MB body of 250,000 intervals under
    "daily" built 1.75 million of them and held the router's event loop for 27 s (its consumer's
    heartbeats included) before failing on an overlap; 250,000 holidays took 3 s. Counted on the
    document sent, the refusal names its key."""
    flood = {**HOUR_A_WEEK, "weekly_hours": {"daily": ["00:00-00:01"] * 250_000}}
    holidays = {**HOUR_A_WEEK, "holidays": ["2026-12-25"] * 250_000}
    with monkeypatch.context() as patched:
        patched.setitem(service.MODELS, "calendar", NeverBuilt)
        with pytest.raises(ConfigInvalid) as refused:
            validate_document("calendar", "hour", flood, LiveCalendars({}), {})
        assert fields(refused) == ["/weekly_hours/daily"]
        with pytest.raises(ConfigInvalid) as refused:
            validate_document("calendar", "hour", holidays, LiveCalendars({}), {})
        assert fields(refused) == ["/holidays"]
    # Keys that differ only in case or spaces still count against the same day.
    spread = {f"{' ' * i}mon": ["09:00-09:01"] for i in range(49)}
    with pytest.raises(ConfigInvalid) as refused:
        validate_document("calendar", "hour", {**HOUR_A_WEEK, "weekly_hours": spread}, LiveCalendars({}), {})
    assert "/weekly_hours/mon" in fields(refused)


def test_a_policy_has_at_most_100_actions_per_escalation(monkeypatch: pytest.MonkeyPatch) -> None:
    """150,000 raise_priority actions (4 MB) were built for 1.7 s of the event loop, saved, and
    loaded by every router; 100,000 unknown notify targets answered with 100,000 errors."""
    raises = [{"action": "raise_priority"}] * 100
    assert validate_document("policy", "pol", {"name": "pol", "on_breach": raises}, LiveCalendars({}), {})
    flood = {"name": "pol", "on_warning": [{"action": "notify", "target": "x"}] * 100_000}
    monkeypatch.setitem(service.MODELS, "policy", NeverBuilt)  # counted on the document
    with pytest.raises(ConfigInvalid) as refused:
        validate_document("policy", "pol", {**flood, "on_breach": raises * 2}, LiveCalendars({}), {})
    assert fields(refused) == ["/on_warning", "/on_breach"]
    assert "at most 100" in refused.value.errors[0]["message"]
