"""Business calendars and business-time arithmetic.

A calendar is a set of weekly opening intervals in local wall time of one IANA zone, minus
holidays (local dates). Business time is real elapsed time inside those intervals.

Local wall times are mapped to instants by :func:`wall_to_utc`: the *first* instant at which
the local clock shows that time or later. Consequences, all deliberate:

* a bound inside a skipped hour (spring forward) maps to the transition itself, so an interval
  starting at 02:30 on the day New York skips 02:00-03:00 starts at 03:00 EDT;
* a bound inside a repeated hour (fall back) maps to its first occurrence, so ``00:00-24:00``
  lasts 25 real hours on that day and 23 on the spring-forward day;
* the mapping is monotonic, so adjacent intervals (``09:00-12:00`` + ``12:00-17:00``) tile
  time exactly as one interval would.

Intervals must lie within one local day; a night shift is ``22:00-24:00`` on one day plus
``00:00-06:00`` on the next.

Deadlines are searched at most :data:`DEADLINE_HORIZON` (ten years) of calendar time ahead: a
calendar with one open minute a week would otherwise turn a year's target into a walk of 10,000
years (and an OverflowError past year 9999) for every deadline of every ticket. A deadline is
searched in the calendar's :class:`~services.router.sla.timeline.Timeline` (its intervals end to
end, in blocks of four weeks built once), so a search looks into each day of the horizon at most
once whatever the calendar. Business time between two instants is walked, a whole week at a time
where the week is regular (no holiday, no UTC offset change) and a day at a time otherwise. The
admin API refuses targets that do not end within it from every start
(:func:`least_open_time_within_horizon`); past it, :func:`business_deadline` says ``None`` and
:func:`add_business_time` caps (and logs).
:func:`business_time_between` counts at most the horizon too: a longer span (a ticket time
centuries off) is clamped to its first ten years, and logged.
"""

from __future__ import annotations

import bisect
import functools
import logging
import math
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property
from itertools import pairwise
from typing import Annotated, Any, Literal, TypeVar, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from services.router.sla.timeline import Timeline

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = get_args(Weekday)
ALWAYS_OPEN = "24x7"

_HHMM = re.compile(r"^(\d{1,2}):(\d{2})$")
_DAY_MINUTES = 24 * 60
_ZERO = timedelta(0)

log = logging.getLogger(__name__)

DEADLINE_HORIZON_YEARS = 10
# Calendar time a deadline may lie after the instant it is computed from (leap days included).
DEADLINE_HORIZON = timedelta(days=365 * DEADLINE_HORIZON_YEARS + 3)
# The latest instant a capped deadline may be: two days short of datetime's end, so that it still
# converts to the local time of any zone (and the earliest instant business time is counted from).
_LATEST = datetime.max.replace(tzinfo=UTC) - timedelta(days=2)
_EARLIEST = datetime.min.replace(tzinfo=UTC) + timedelta(days=2)


def parse_hhmm(value: str) -> int:
    """Minutes since local midnight for ``HH:MM``; ``24:00`` (1440) is the end of the day."""
    match = _HHMM.match(value.strip())
    if match is None:
        raise ValueError(f"time {value!r} must be HH:MM")
    hours, minutes = int(match.group(1)), int(match.group(2))
    total = hours * 60 + minutes
    if minutes > 59 or total > _DAY_MINUTES:
        raise ValueError(f"time {value!r} is outside 00:00-24:00")
    return total


class Interval(BaseModel):
    """``[start, end)`` in local wall time. Accepts ``"09:00-17:00"`` or ``["09:00", "17:00"]``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    start: str
    end: str

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, str):
            start, sep, end = data.partition("-")
            if not sep:
                raise ValueError(f"interval {data!r} must look like 09:00-17:00")
            return {"start": start.strip(), "end": end.strip()}
        if isinstance(data, list | tuple):
            if len(data) != 2:
                raise ValueError("an interval is a [start, end] pair")
            return {"start": data[0], "end": data[1]}
        return data

    @model_validator(mode="after")
    def _ordered(self) -> Interval:
        if self.start_minute >= self.end_minute:
            raise ValueError(f"interval {self.start}-{self.end} must end after it starts (same day)")
        return self

    @property
    def start_minute(self) -> int:
        return parse_hhmm(self.start)

    @property
    def end_minute(self) -> int:
        return parse_hhmm(self.end)


WeeklyHours = dict[Weekday, list[Interval]]


def _expand_days(key: str) -> list[Weekday]:
    """``"mon"``, ``"mon-fri"`` (wrapping ranges like ``"sat-mon"`` allowed) or ``"daily"``."""
    key = key.strip().lower()
    if key in ("daily", "all", "*"):
        return list(WEEKDAYS)
    first, sep, last = key.partition("-")
    if first not in WEEKDAYS or (sep and last not in WEEKDAYS):
        raise ValueError(f"unknown weekday {key!r}; use mon..sun, ranges like mon-fri, or daily")
    i = WEEKDAYS.index(first)
    j = WEEKDAYS.index(last) if sep else i
    return [WEEKDAYS[(i + k) % 7] for k in range((j - i) % 7 + 1)]


def normalise_weekly_hours(raw: Any) -> Any:
    """Expand day ranges and single-interval values before field validation."""
    if not isinstance(raw, dict):
        return raw
    out: dict[str, list[Any]] = {}
    for key, value in raw.items():
        items = value if isinstance(value, list) and not _is_pair(value) else [value]
        for day in _expand_days(str(key)):
            out.setdefault(day, []).extend(items)
    return out


def weekly_hours_origins(raw: Any) -> dict[tuple[str, int], tuple[str | int, ...]]:
    """Where each interval of the expanded hours, by ``(day, index)``, was given in ``raw``: its
    key, and its index under that key unless it was the key's only value. Errors then name the
    field that was sent (``mon-fri``), not the days it stands for. Empty when a key is no day."""
    if not isinstance(raw, dict):
        return {}
    out: dict[tuple[str, int], tuple[str | int, ...]] = {}
    counts: dict[str, int] = {}
    for key, value in raw.items():
        many = isinstance(value, list) and not _is_pair(value)
        items = value if many else [value]
        try:
            days = _expand_days(str(key))
        except ValueError:
            return {}
        for day in days:
            for index in range(len(items)):
                out[(day, counts.get(day, 0) + index)] = (key, index) if many else (key,)
            counts[day] = counts.get(day, 0) + len(items)
    return out


def intervals_by_key(raw: Any) -> dict[Weekday, dict[str, int]]:
    """Per weekday, how many intervals each key of ``raw`` (weekly hours as sent) gives it, counted
    without parsing one: bounds are checked on this before a flood is built. Keys that are no day
    are left out (validation names them)."""
    out: dict[Weekday, dict[str, int]] = {}
    if not isinstance(raw, dict):
        return out
    for key, value in raw.items():
        try:
            days = _expand_days(str(key))
        except ValueError:
            continue
        count = len(value) if isinstance(value, list) and not _is_pair(value) else 1
        for day in days:
            out.setdefault(day, {})[key] = count
    return out


def _is_pair(value: list[Any]) -> bool:
    # ["09:00", "17:00"] is one interval, ["09:00-12:00", "13:00-17:00"] is two.
    return len(value) == 2 and all(isinstance(v, str) and "-" not in v for v in value)


def check_weekly_hours(hours: WeeklyHours) -> WeeklyHours:
    """Sort each day's intervals and reject overlaps (they would double-count time)."""
    for day, intervals in hours.items():
        intervals.sort(key=lambda iv: iv.start_minute)
        for prev, nxt in pairwise(intervals):
            if nxt.start_minute < prev.end_minute:
                raise ValueError(f"{day}: {prev.start}-{prev.end} overlaps {nxt.start}-{nxt.end}")
    return hours


# IANA zone names are short ("America/Argentina/ComodRivadavia", 32, is among the longest). Checked
# before ZoneInfo looks one up: it imports ``tzdata.zoneinfo.<a>.<b>...`` a package per segment, and
# a few hundred segments raised RecursionError (a 500) instead of a validation error.
MAX_TIMEZONE_LENGTH = 64


def check_timezone(value: str) -> str:
    if len(value) > MAX_TIMEZONE_LENGTH:
        raise ValueError(f"unknown IANA time zone {value[:MAX_TIMEZONE_LENGTH]!r}...: too long")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown IANA time zone {value!r}") from exc
    return value


IanaTimezone = Annotated[str, AfterValidator(check_timezone)]


@functools.cache
def _iana_names() -> frozenset[str]:
    # What tzdata lists. ZoneInfo also opens any other file of the zone directory: "localtime" (the
    # host's own setting: another replica's may differ or be missing, and a calendar that no
    # longer loads drops its policies), "posix/..." and "right/..." (leap seconds counted: 27 s off).
    return frozenset(available_timezones()) - {"localtime"}


def check_new_timezone(value: str) -> str:
    """:func:`check_timezone` for a zone being saved: an IANA name, not a file of this host. Only
    on save: a zone stored earlier still loads where ZoneInfo opens it."""
    check_timezone(value)
    if value not in _iana_names():
        raise ValueError(f"{value!r} is no IANA time zone name (e.g. Europe/Berlin, UTC)")
    return value


NewIanaTimezone = Annotated[str, AfterValidator(check_new_timezone)]


class Holiday(BaseModel):
    """A closed local date. Accepts ``"2024-12-25"`` or ``{"day": ..., "name": ...}``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    day: date
    name: str | None = Field(default=None, max_length=200)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"day": data} if isinstance(data, str | date) else data


# As for team schedules: decades of holidays; a longer list is a mistake (or an attack) that every
# config reload and every save check would pay for.
MAX_HOLIDAYS = 1_000
# Open intervals per weekday: half-hour slots at the finest. Days are walked interval by interval.
MAX_DAY_INTERVALS = 48
_MEMO_DAYS = 4096
_T = TypeVar("_T")


class _DayMemo:
    """What a calendar worked out per local date, remembered: the router works out each ticket's
    deadlines on every event, walking mostly the same few days as the tickets before it. Each
    table is emptied when it grows past ~11 years of days."""

    def __init__(self) -> None:
        self.intervals: dict[date, tuple[tuple[datetime, datetime], ...]] = {}
        self.starts: dict[date, datetime] = {}
        self.regular: dict[date, bool] = {}

    @staticmethod
    def recall(table: dict[date, _T], day: date, compute: Callable[[date], _T]) -> _T:
        found = table.get(day)
        if found is None:
            if len(table) >= _MEMO_DAYS:
                table.clear()
            found = table[day] = compute(day)
        return found


class BusinessCalendar(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    timezone: IanaTimezone = "UTC"
    weekly_hours: WeeklyHours = Field(default_factory=dict)
    # At most MAX_HOLIDAYS, checked on save (slas/service.validate_document) rather than here, so
    # that a longer list stored before the check still loads: refusing it would stop the routers.
    holidays: list[Holiday] = Field(default_factory=list)

    @field_validator("weekly_hours", mode="before")
    @classmethod
    def _normalise(cls, raw: Any) -> Any:
        return normalise_weekly_hours(raw)

    @field_validator("weekly_hours")
    @classmethod
    def _check_hours(cls, hours: WeeklyHours) -> WeeklyHours:
        check_weekly_hours(hours)
        if not any(hours.values()):
            # Without open hours no deadline could ever be reached.
            raise ValueError("a business calendar needs at least one open interval per week")
        return hours

    @classmethod
    def always_open(cls, name: str = ALWAYS_OPEN, timezone: str = "UTC") -> BusinessCalendar:
        return _always_open(name, timezone)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @cached_property
    def minutes_by_weekday(self) -> tuple[tuple[tuple[int, int], ...], ...]:
        """Open ``(start, end)`` minutes per weekday, Monday first (``date.weekday()`` order)."""
        return tuple(
            tuple((iv.start_minute, iv.end_minute) for iv in self.weekly_hours.get(day, []))
            for day in WEEKDAYS
        )

    @cached_property
    def week_total(self) -> timedelta:
        """Business time of a week without holidays or UTC offset changes."""
        return timedelta(minutes=sum(e - s for day in self.minutes_by_weekday for s, e in day))

    @cached_property
    def holiday_dates(self) -> tuple[date, ...]:
        return tuple(sorted({h.day for h in self.holidays}))

    def is_holiday(self, day: date) -> bool:
        i = bisect.bisect_left(self.holiday_dates, day)
        return i < len(self.holiday_dates) and self.holiday_dates[i] == day

    def has_holiday_between(self, first: date, end: date) -> bool:
        """Any holiday in ``[first, end)``."""
        i = bisect.bisect_left(self.holiday_dates, first)
        return i < len(self.holiday_dates) and self.holiday_dates[i] < end

    def day_start(self, day: date) -> datetime:
        return self._memo.recall(self._memo.starts, day, self._start_of)

    def _start_of(self, day: date) -> datetime:
        return wall_to_utc(self.tz, datetime.combine(day, time()))

    @cached_property
    def open_around_the_clock(self) -> bool:
        """Every local day open 00:00-24:00 and no holidays: business time is wall-clock time, so
        deadlines need no walk (the default 24x7 calendar; offset changes do not matter)."""
        return not self.holidays and all(day == ((0, 1440),) for day in self.minutes_by_weekday)

    @cached_property
    def _memo(self) -> _DayMemo:
        return _DayMemo()

    @cached_property
    def timeline(self) -> Timeline:
        """The business intervals end to end, for deadlines (services/router/sla/timeline.py)."""
        return Timeline(self, _MEMO_DAYS)

    def intervals_on(self, day: date) -> tuple[tuple[datetime, datetime], ...]:
        """The UTC ``[start, end)`` business intervals of one local date (empty ones dropped)."""
        return self._memo.recall(self._memo.intervals, day, self._intervals_of)

    def _intervals_of(self, day: date) -> tuple[tuple[datetime, datetime], ...]:
        if self.is_holiday(day):
            return ()
        tz, midnight = self.tz, datetime.combine(day, time())
        out: list[tuple[datetime, datetime]] = []
        for start_min, end_min in self.minutes_by_weekday[day.weekday()]:
            start = wall_to_utc(tz, midnight + timedelta(minutes=start_min))
            end = wall_to_utc(tz, midnight + timedelta(minutes=end_min))
            if end > start:
                out.append((start, end))
        return tuple(out)

    def is_open(self, at: datetime) -> bool:
        at = as_utc(at)
        return any(s <= at < e for s, e in self.intervals_on(at.astimezone(self.tz).date()))

    def week_is_regular(self, first: date) -> bool:
        """True when the 7 days from ``first`` hold exactly :attr:`week_total` of business time.

        A week holds its usual time when it lasts exactly 7 days from local midnight to local
        midnight. Equal offsets at both ends are not enough: in a zone that springs forward at
        midnight (America/Santiago, Asuncion, Havana) a week starting that day starts at 01:00
        already on the new offset, one hour short.
        """
        return self._memo.recall(self._memo.regular, first, self._is_regular)

    def _is_regular(self, first: date) -> bool:
        if self.has_holiday_between(first, first + timedelta(days=7)):
            return False
        return self.day_start(first + timedelta(days=7)) - self.day_start(first) == timedelta(days=7)


@functools.lru_cache(maxsize=256)
def _always_open(name: str, timezone: str) -> BusinessCalendar:
    # One instance per name: the routers ask for the 24x7 calendar for every ticket on it.
    return BusinessCalendar(name=name, timezone=timezone, weekly_hours={"daily": ["00:00-24:00"]})


def as_utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"datetime {value.isoformat()} must be timezone-aware")
    return value.astimezone(UTC)


def wall_to_utc(tz: ZoneInfo, wall: datetime) -> datetime:
    """The first instant at which the clock of ``tz`` shows ``wall`` (naive) or later."""
    early = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    late = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    if early <= late:  # an ordinary time, or a repeated one whose first occurrence is fold=0
        return early
    # ``wall`` was skipped: fold=1 lands before the transition, fold=0 after it (PEP 495).
    # Transitions fall on whole seconds, so bisect seconds for the first one showing >= wall.
    lo, hi = math.floor(late.timestamp()), math.ceil(early.timestamp())
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, UTC).astimezone(tz).replace(tzinfo=None) >= wall:
            hi = mid
        else:
            lo = mid
    return datetime.fromtimestamp(hi, UTC)


def _horizon_end(start: datetime, horizon: timedelta) -> datetime:
    """``start + horizon``, kept inside datetime's range."""
    if start >= _LATEST - horizon:
        return _LATEST
    return start + horizon


def business_deadline(
    calendar: BusinessCalendar, start: datetime, duration: timedelta, horizon: timedelta = DEADLINE_HORIZON
) -> datetime | None:
    """The earliest instant (UTC) by which ``duration`` of business time has elapsed after ``start``,
    or ``None`` when that is more than ``horizon`` of calendar time after ``start`` (too few open
    hours for the duration) or beyond datetime's range. Never walks further than the horizon."""
    cursor = as_utc(start)
    if duration < _ZERO:
        raise ValueError("duration must not be negative")
    if duration == _ZERO:
        return cursor
    limit = _horizon_end(cursor, horizon)
    if calendar.open_around_the_clock:
        return cursor + duration if duration <= limit - cursor else None
    try:
        found = calendar.timeline.deadline(cursor, duration, limit)
    except OverflowError:  # the search reached the end of datetime's range (a start near year 9999)
        return None
    return found if found is not None and found <= limit else None


def add_business_time(calendar: BusinessCalendar, start: datetime, duration: timedelta) -> datetime:
    """The earliest instant (UTC) by which ``duration`` of business time has elapsed after ``start``.

    At most :data:`DEADLINE_HORIZON` after ``start``: a later deadline (a policy stored before the
    admin API checked its targets against its calendar, or a calendar changed under a running
    clock) is capped there, and logged once per calendar, rather than walked for seconds or past
    datetime's range in every routing batch."""
    found = business_deadline(calendar, start, duration)
    if found is not None:
        return found
    cursor = as_utc(start)
    capped = max(cursor, _horizon_end(cursor, DEADLINE_HORIZON))
    _report_capped(calendar, cursor, duration, capped)
    return capped


# What was logged, per calendar (by its definition); bounded, see _first_report.
_reported: set[tuple[object, ...]] = set()


def _first_report(calendar: BusinessCalendar, what: str) -> bool:
    """True the first time ``what`` happens on ``calendar``: logged once, not for every ticket."""
    key = (what, calendar.name, calendar.timezone, calendar.minutes_by_weekday, calendar.holiday_dates)
    if key in _reported:
        return False
    if len(_reported) >= 1_000:
        _reported.clear()
    _reported.add(key)
    return True


def _report_capped(
    calendar: BusinessCalendar, start: datetime, duration: timedelta, capped: datetime
) -> None:
    if not _first_report(calendar, "capped"):
        return
    log.error(
        f"SLA deadline more than {DEADLINE_HORIZON_YEARS} years ahead on business calendar "
        f"{calendar.name!r} (too few open hours for the target, or a start near year 9999): capped at "
        f"{capped.isoformat()}; shorten the policy's target or open the calendar longer",
        extra={
            "calendar": calendar.name,
            "start": start.isoformat(),
            "duration_minutes": duration / timedelta(minutes=1),
            "capped_at": capped.isoformat(),
        },
    )


def _report_clamped(
    calendar: BusinessCalendar, a: datetime, b: datetime, first: datetime, last: datetime
) -> None:
    if not _first_report(calendar, "clamped"):
        return
    log.warning(
        f"business time over more than {DEADLINE_HORIZON_YEARS} years (or at an end of datetime's range) "
        f"asked for on business calendar {calendar.name!r}: counted from {first.isoformat()} to "
        f"{last.isoformat()} instead of from {a.isoformat()} to {b.isoformat()}; is a ticket time far "
        "in the past or future?",
        extra={"calendar": calendar.name, "from": a.isoformat(), "to": b.isoformat()},
    )


def open_time_within_horizon(
    calendar: BusinessCalendar, start: datetime, horizon: timedelta = DEADLINE_HORIZON
) -> timedelta:
    """Business time in ``[start, start + horizon)``: a duration from ``start`` ends within the
    horizon exactly when it is at most this (zero: the calendar has no open time there at all)."""
    cursor = as_utc(start)
    return business_time_between(calendar, cursor, _horizon_end(cursor, horizon))


def least_open_time_within_horizon(
    calendar: BusinessCalendar, start: datetime, horizon: timedelta = DEADLINE_HORIZON
) -> timedelta:
    """The least :func:`open_time_within_horizon` from any instant of the week from ``start``:
    a duration of at most this ends within the horizon whatever the weekday and time of day it
    starts at (the weekly hours repeat; holidays and offset changes further on aside).

    From ``start`` alone the answer depends on the weekday: ten years are 521 weeks and 6 days,
    so the one weekday they leave out differs, and a target accepted on a Monday could be refused
    on a Tuesday. Exact and cheap: the open time of ``[s, s + horizon)`` changes with ``s`` only by
    the open time ``s`` moves past at either end, so one horizon walk and two weeks do."""
    first = as_utc(start)
    end = _horizon_end(first, horizon)
    total = business_time_between(calendar, first, end)
    if calendar.open_around_the_clock:
        return total  # every window of the same length holds the same time
    span, week = end - first, timedelta(days=7)
    # As s moves on, the window loses the open time s passes and gains what s + span passes:
    # open time in [s, s + span) = total - (open in [first, s)) + (open in [end, s + span)),
    # linear between these breakpoints, so least at one of them.
    steps: list[tuple[datetime, int]] = []
    for begin, stop in _open_intervals(calendar, first, _horizon_end(first, week)):
        steps += [(begin, -1), (stop, 1)]
    for begin, stop in _open_intervals(calendar, end, _horizon_end(end, week)):
        steps += [(begin - span, 1), (stop - span, -1)]
    least = value = total
    rate, at = 0, first
    for when, step in sorted(steps):
        value += rate * (when - at)
        least = min(least, value)
        rate, at = rate + step, when
    return least


def _open_intervals(calendar: BusinessCalendar, a: datetime, b: datetime) -> list[tuple[datetime, datetime]]:
    """The open intervals of the short span ``[a, b)``, clipped to it (a day walk: keep it short)."""
    out: list[tuple[datetime, datetime]] = []
    day = a.astimezone(calendar.tz).date()
    while calendar.day_start(day) < b:
        for begin, stop in calendar.intervals_on(day):
            begin, stop = max(begin, a), min(stop, b)
            if stop > begin:
                out.append((begin, stop))
        day += timedelta(days=1)
    return out


def business_time_between(calendar: BusinessCalendar, a: datetime, b: datetime) -> timedelta:
    """Business time in ``[a, b)``; negative when ``b`` is before ``a``.

    Counted over at most :data:`DEADLINE_HORIZON` from the earlier instant (and inside datetime's
    range): the business time of a longer span is that of its first ten years, logged once per
    calendar. Exact for every shorter span, where deadlines lie (see :func:`add_business_time`);
    a ticket time centuries off (a bogus ``created_at``) would otherwise be walked week by week
    for every event, or fail with OverflowError near year 1 or 9999."""
    a, b = as_utc(a), as_utc(b)
    if b < a:
        return -business_time_between(calendar, b, a)
    first = max(a, _EARLIEST)
    last = min(b, _horizon_end(first, DEADLINE_HORIZON))
    if (first, last) != (a, b):
        _report_clamped(calendar, a, b, first, last)
    if last <= first:
        return _ZERO
    if calendar.open_around_the_clock:
        return last - first
    return _between(calendar, first, last)


# The last local date a week may be skipped from: the week after it would leave date's range.
_LAST_WEEK_START = date.max - timedelta(days=7)


def _between(calendar: BusinessCalendar, a: datetime, b: datetime) -> timedelta:
    total = _ZERO
    week = timedelta(days=7)
    day = a.astimezone(calendar.tz).date()
    while calendar.day_start(day) < b:
        if (
            day <= _LAST_WEEK_START
            and calendar.day_start(day) >= a
            and calendar.day_start(day + week) <= b
            and calendar.week_is_regular(day)
        ):
            total += calendar.week_total
            day += week
            continue
        for begin, end in calendar.intervals_on(day):
            begin, end = max(begin, a), min(end, b)
            if end > begin:
                total += end - begin
        day += timedelta(days=1)
    return total
