"""Slow, obviously correct references the calendar's fast paths are compared against."""

from datetime import datetime, timedelta

from services.router.sla.calendar import BusinessCalendar


def day_walk(cal: BusinessCalendar, start: datetime, duration: timedelta) -> datetime:
    """The deadline by walking day after day: no week skipping and no horizon, so only for
    durations that end."""
    remaining, day = duration, start.astimezone(cal.tz).date()
    while True:
        for s, e in cal.intervals_on(day):
            s = max(s, start)
            if e > s:
                if e - s >= remaining:
                    return s + remaining
                remaining -= e - s
        day += timedelta(days=1)
