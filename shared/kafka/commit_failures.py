"""Offset commits that keep failing, logged without a flood and counted.

A commit refused for good (a missing ACL on the group, a coordinator refusing it) fails at every
commit opportunity of the consumer loop: every idle poll, five a second per consumer at the
default poll timeout, each a warning. Here the first failure is logged at once, a different one
(another error, or the offsets now given up rather than kept) at once too, and a repeat of the
same one at most once per ``every_s``, with the number of repeats left out since the previous
line; once a commit succeeds again, one line says so. ``consumer_commit_failures_total`` counts
every failure, logged or not.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from prometheus_client import Counter

from shared.kafka.fetched import short_error

log = logging.getLogger(__name__)

COMMIT_FAILURES = Counter(
    "consumer_commit_failures_total", "Offset commits that failed (every one, logged or not)", ["group"]
)
LOG_EVERY_S = 60.0  # a repeat of the same commit failure is logged at most this often


class CommitFailureLog:
    def __init__(
        self, group: str, *, every_s: float = LOG_EVERY_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.group = group
        self.every_s = every_s
        self.clock = clock
        self._last: tuple[str, str] | None = None  # (message, error) of the last line logged
        self._logged_at = 0.0
        self._suppressed = 0  # repeats of the last line not logged since it
        self._failures = 0  # since the last commit that succeeded
        self._since = 0.0  # when the first of them failed
        COMMIT_FAILURES.labels(group)  # from 0: an alert on increase() sees the first one

    def counted(self) -> None:
        """A commit failed; logged by the caller (one that does not repeat at every poll)."""
        COMMIT_FAILURES.labels(self.group).inc()

    def failed(self, message: str, exc: BaseException) -> None:
        """A commit failed with ``exc``: counted, and logged as ``message`` unless it repeats the
        last line within ``every_s``."""
        self.counted()
        now = self.clock()
        if not self._failures:
            self._since = now
        self._failures += 1
        error = short_error(exc)
        if (message, error) == self._last and now - self._logged_at < self.every_s:
            self._suppressed += 1
            return
        extra: dict[str, object] = {"group": self.group, "error": error}
        if self._suppressed:
            extra["suppressed"] = self._suppressed
        log.warning(message, extra=extra)
        self._last, self._logged_at, self._suppressed = (message, error), now, 0

    def succeeded(self) -> None:
        """A commit went through: after failures, one line says so, with how many and how long."""
        if not self._failures:
            return
        log.info(
            "commit succeeded again",
            extra={
                "group": self.group,
                "failures": self._failures,
                "seconds": round(self.clock() - self._since, 1),
                "suppressed": self._suppressed,
            },
        )
        self._last, self._suppressed, self._failures = None, 0, 0
