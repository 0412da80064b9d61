"""Optimistic concurrency over HTTP: ETags out, ``If-Match`` required on every mutation.

ETags here are weak and carry a revision number (``W/"ruleset-7"``, ``W/"team-access-3"``), so
the check is a number comparison the service layer can repeat inside its transaction.

The check and its two exceptions live here, not in a service, because the router's admin APIs,
the intake's sources and ``ticketctl`` (over both) raise them: the HTTP layers answer with
:meth:`Stale.problem`, the CLI prints :attr:`Stale.message`.
"""

from __future__ import annotations

import re

from shared.http.problems import Problem

ANY = None  # ``If-Match: *``: the client accepts whatever the current state is
NO_MATCH = -1  # an ETag of another resource or a malformed one: never matches a revision
MISSING = -2  # no If-Match: the service answers 428 naming the current ETag


def etag(prefix: str, revision: int) -> str:
    return f'W/"{prefix}-{revision}"'


def expected_revision(if_match: str | None, prefix: str) -> int | None:
    """The revision the client saw, from ``If-Match``.

    Returns :data:`ANY` for ``*``, :data:`MISSING` without the header (the service, which knows
    the current revision, answers 428) and :data:`NO_MATCH` when no ETag belongs to ``prefix``.
    """
    if if_match is None or not if_match.strip():
        return MISSING
    pattern = re.compile(r'^(?:W/)?"' + re.escape(prefix) + r'-(\d{1,18})"$')
    for part in if_match.split(","):
        tag = part.strip()
        if tag == "*":
            return ANY
        found = pattern.match(tag)
        if found:
            return int(found.group(1))
    return NO_MATCH


def required(current: str) -> Problem:
    return Problem(
        428,
        "Precondition required",
        f"send If-Match with the ETag you read; the current ETag is {current}",
        headers={"ETag": current},
    )


def stale(current: str) -> Problem:
    return Problem(
        412,
        "Precondition failed",
        f"the resource changed since you read it; the current ETag is {current}",
        headers={"ETag": current},
    )


class Stale(Exception):
    """The client's If-Match (or the CLI's base version) is not the current state: 412."""

    def __init__(self, current_etag: str, message: str | None = None) -> None:
        message = message or f"changed meanwhile; the current ETag is {current_etag}"
        super().__init__(message)
        self.message = message
        self.current_etag = current_etag

    def problem(self) -> Problem:
        # HTTP clients get one detail, whatever ``message`` (written for the CLI) says.
        return stale(self.current_etag)


class PreconditionRequired(Stale):
    """No If-Match was sent (the REST APIs require one on every change): 428.

    A subclass so that whoever handles a failed precondition handles a missing one too.
    """

    def problem(self) -> Problem:
        return required(self.current_etag)


def check_expected(expected: int | None, current: int, current_etag: str) -> None:
    """``expected`` from :func:`expected_revision` (None: any) against the ``current`` revision."""
    if expected == MISSING:
        raise PreconditionRequired(current_etag, f"send If-Match; the current ETag is {current_etag}")
    if expected is not None and expected != current:
        raise Stale(current_etag)
