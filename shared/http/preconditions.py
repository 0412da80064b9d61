"""Optimistic concurrency over HTTP: ETags out, ``If-Match`` required on every mutation.

ETags here are weak and carry a revision number (``W/"ruleset-7"``), so the check is a number
comparison the service layer can repeat inside its transaction. A resource that can be deleted
and created again under the same name or id (teams, write-back targets, intake sources) starts
again at revision 1, so its ETag also carries a generation, drawn at random when the row is
created (``W/"team-access-3.5f1c09e2a4b7d3c8"``): an If-Match read from a deleted resource never
matches the one created after it. (Rule sets and SLA configurations only ever append versions,
a deletion included, so their numbers never repeat.)

The check and its two exceptions live here, not in a service, because the router's admin APIs,
the intake's sources and ``ticketctl`` (over both) raise them: the HTTP layers answer with
:meth:`Stale.problem`, the CLI prints :attr:`Stale.message`.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from shared.http.problems import Problem

ANY = None  # ``If-Match: *``: the client accepts whatever the current state is
NO_MATCH = -1  # an ETag of another resource or a malformed one: never matches a revision
MISSING = -2  # no If-Match: the service answers 428 naming the current ETag


# A generation: 64 random bits as 16 hex digits (the width of its column; expected_version's
# pattern).
GENERATION_LENGTH = 16


def new_generation() -> str:
    """A generation for a newly created row: never the one of a row deleted before it."""
    return secrets.token_hex(GENERATION_LENGTH // 2)


@dataclass(frozen=True, slots=True)
class Seen:
    """The revision and generation an If-Match names (see :func:`expected_version`)."""

    revision: int
    generation: str


Expected = int | Seen | None


def etag(prefix: str, revision: int, generation: str | None = None) -> str:
    return f'W/"{prefix}-{revision}"' if generation is None else f'W/"{prefix}-{revision}.{generation}"'


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


def expected_version(if_match: str | None, prefix: str) -> int | Seen | None:
    """:func:`expected_revision` for resources whose ETags carry a generation: a :class:`Seen`,
    or :data:`ANY`, :data:`MISSING`, :data:`NO_MATCH` (an ETag without a generation, as from
    before generations, matches nothing)."""
    if if_match is None or not if_match.strip():
        return MISSING
    pattern = re.compile(r'^(?:W/)?"' + re.escape(prefix) + r'-(\d{1,18})\.([0-9a-f]{16})"$')
    for part in if_match.split(","):
        tag = part.strip()
        if tag == "*":
            return ANY
        found = pattern.match(tag)
        if found:
            return Seen(int(found.group(1)), found.group(2))
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


def check_expected(
    expected: Expected, current: int, current_etag: str, generation: str | None = None
) -> None:
    """``expected`` from :func:`expected_revision` or :func:`expected_version` (None: any)
    against the ``current`` revision and, for a :class:`Seen`, the row's ``generation``.

    A plain number (callers in-process, such as tests) is a revision of whatever row is current.
    """
    if expected == MISSING:
        raise PreconditionRequired(current_etag, f"send If-Match; the current ETag is {current_etag}")
    if isinstance(expected, Seen):
        if expected.revision != current or expected.generation != generation:
            raise Stale(current_etag)
    elif expected is not None and expected != current:
        raise Stale(current_etag)
