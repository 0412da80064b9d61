"""A target's API saying "later": how long to wait, and pausing the whole target meanwhile.

A rate limit is the vendor's quota for the whole account, not a failure of one delivery: every
request to that target would be refused until the time the answer names. So a rate-limit answer
pauses the target (no request to it starts until then) and does not use up an attempt; the
deliveries it holds back are retried when the vendor asked, for as long as it keeps asking.

Rate limits: any 429; a 403 with ``x-ratelimit-remaining: 0`` or a ``Retry-After`` (GitHub's
primary and secondary limits; a plain 403 is a refusal, retried as a failure). The wait is the
latest of ``Retry-After`` (seconds or an HTTP date) and ``x-ratelimit-reset`` (epoch seconds),
or a minute when the answer names neither (GitHub: "wait at least one minute").

The pause is kept in memory by each sender: another router learns it from its own first refused
request. The deliveries held back carry the time in the database for all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

import httpx

DEFAULT_WAIT = timedelta(minutes=1)
MIN_WAIT = timedelta(seconds=1)  # a "Retry-After: 0" must not make the sender hammer the vendor
MAX_WAIT = timedelta(hours=1)  # GitHub's window is an hour: past that, a value is absurd


def _parse_wait(value: str, now: datetime) -> timedelta | None:
    """A ``Retry-After`` value (seconds or an HTTP date) as a wait from ``now``; None if it does
    not parse."""
    value = value.strip()
    if not value:
        return None
    if value.isascii() and value.isdigit():
        return timedelta(seconds=min(int(value), 10**9))
    try:
        return max(parsedate_to_datetime(value) - now, timedelta(0))
    except (TypeError, ValueError, OverflowError):
        return None


def _reset_wait(value: str, now: datetime) -> timedelta | None:
    """An ``x-ratelimit-reset`` (Unix seconds) as a wait from ``now``; None if it does not parse."""
    value = value.strip()
    if not (value.isascii() and value.isdigit()):
        return None
    return max(timedelta(seconds=min(int(value), 10**11) - now.timestamp()), timedelta(0))


def retry_after(response: httpx.Response, now: datetime, cap: timedelta) -> timedelta | None:
    """The wait a 429 or 503 asks for (``Retry-After``), at most ``cap``; None when it asks for
    none, or for one that does not parse."""
    if response.status_code not in (429, 503):
        return None
    wait = _parse_wait(response.headers.get("Retry-After", ""), now)
    return None if wait is None else min(wait, cap)


def rate_limit_wait(response: httpx.Response, now: datetime, cap: timedelta) -> timedelta | None:
    """How long the target is to be left alone when ``response`` is a rate limit; None when it is
    not one. Between a second and the larger of ``cap`` and an hour."""
    headers = response.headers
    exhausted = headers.get("x-ratelimit-remaining", "").strip() == "0"
    asked = headers.get("Retry-After", "").strip()
    status = response.status_code
    if not (status == 429 or (status == 403 and (exhausted or asked))):
        return None
    waits = [_parse_wait(asked, now)]
    if exhausted:
        waits.append(_reset_wait(headers.get("x-ratelimit-reset", ""), now))
    known = [wait for wait in waits if wait is not None]
    wait = max(known) if known else DEFAULT_WAIT
    return min(max(wait, MIN_WAIT), max(cap, MAX_WAIT))


@dataclass(frozen=True)
class Pause:
    until: datetime
    why: str  # the answer that paused the target (redacted), shown as the held-back ones' error


class Pauses:
    """Targets paused by a rate limit, by id (in this process only)."""

    def __init__(self) -> None:
        self._paused: dict[int, Pause] = {}

    def pause(self, target_id: int, until: datetime, why: str) -> Pause:
        """Pause ``target_id`` until ``until``, unless it is paused longer already."""
        current = self._paused.get(target_id)
        if current is None or current.until < until:
            self._paused[target_id] = current = Pause(until, why)
        return current

    def get(self, target_id: int, now: datetime) -> Pause | None:
        pause = self._paused.get(target_id)
        return pause if pause is not None and pause.until > now else None

    def paused(self, now: datetime) -> list[int]:
        """The targets paused at ``now`` (forgetting those whose pause is over)."""
        self._paused = {tid: p for tid, p in self._paused.items() if p.until > now}
        return sorted(self._paused)
