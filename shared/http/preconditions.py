"""Optimistic concurrency over HTTP: ETags out, ``If-Match`` required on every mutation, and
``If-None-Match`` on reads (:func:`none_match`, applied by :mod:`shared.http.conditional`).

ETags here are weak and carry a revision number (``W/"ruleset-7"``), so the check is a number
comparison the service layer can repeat inside its transaction. A resource that can be deleted
and created again under the same name or id (teams, write-back targets, intake sources) starts
again at revision 1, so its ETag also carries a generation, drawn at random when the row is
created (``W/"team-access-3.5f1c09e2a4b7d3c8"``): an If-Match read from a deleted resource never
matches the one created after it. (Rule sets and SLA configurations only ever append versions,
a deletion included, so their numbers never repeat.)

The check and its two exceptions live here, not in a service, because the router's admin APIs,
the intake's sources and ``ticketctl`` (over both) raise them: the HTTP layers answer with
:meth:`Stale.problem`; ``ticketctl`` names the resource and asks to run the command again
(``services/ticketctl/database.read_modify_write``).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import Depends, Header, Request

from shared.http.problems import Problem

ANY = None  # ``If-Match: *``: the client accepts whatever the current state is
NO_MATCH = -1  # an ETag of another resource or a malformed header: never matches a revision
MISSING = -2  # no If-Match: the service answers 428 naming the current ETag


# A generation: 64 random bits as 16 hex digits (the width of its column; expected_version's
# pattern).
GENERATION_LENGTH = 16

_T = TypeVar("_T")


def new_generation() -> str:
    """A generation for a newly created row: never the one of a row deleted before it."""
    return secrets.token_hex(GENERATION_LENGTH // 2)


@dataclass(frozen=True, slots=True)
class Seen:
    """The revision and generation an If-Match names (see :func:`expected_version`)."""

    revision: int
    generation: str


# What the client expects (from :func:`expected_revision` or :func:`expected_version`): :data:`ANY`,
# :data:`MISSING`, one revision or :class:`Seen` (or :data:`NO_MATCH`), or several of them, any of
# which may be the current state (RFC 9110 13.1.1).
Expected = int | Seen | frozenset[int] | frozenset[Seen] | None

# RFC 9110 8.8.3: entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE; etagc = %x21 / %x23-7E / obs-text.
_ENTITY_TAG = re.compile(r'(?:W/)?"[^"\x00-\x20\x7f]*"')
# A list of them (RFC 9110 5.6.1: empty elements allowed, a comma between any two tags).
_ENTITY_TAGS = re.compile(rf"[ \t,]*{_ENTITY_TAG.pattern}(?:[ \t]*,[ \t,]*{_ENTITY_TAG.pattern})*[ \t,]*")


def if_match_header(description: str) -> Any:
    """A parameter default (``if_match: str | None = if_match_header(...)``): the request's
    ``If-Match`` as one list, however many field lines carried it (RFC 9110 5.3: they are one
    comma-separated list; a plain ``Header`` parameter sees the first line only). The header is
    still documented in the OpenAPI document, with ``description``."""

    def if_match(
        request: Request, _documented: str | None = Header(None, alias="If-Match", description=description)
    ) -> str | None:
        lines = request.headers.getlist("if-match")
        return ", ".join(lines) if lines else None

    return Depends(if_match)


def etag(prefix: str, revision: int, generation: str | None = None) -> str:
    return f'W/"{prefix}-{revision}"' if generation is None else f'W/"{prefix}-{revision}.{generation}"'


def _listed(if_match: str | None) -> list[str] | int | None:
    """The entity-tags ``If-Match`` lists, or :data:`MISSING`, :data:`ANY` (``*``, only ever the
    whole header) or :data:`NO_MATCH` (not a list of entity-tags: an unquoted or unterminated tag,
    a ``*`` in a list, two tags without a comma)."""
    if if_match is None or not if_match.strip():
        return MISSING
    if if_match.strip() == "*":
        return ANY
    if not _ENTITY_TAGS.fullmatch(if_match):
        return NO_MATCH
    return _ENTITY_TAG.findall(if_match)


def _expected(
    if_match: str | None, pattern: re.Pattern[str], build: Callable[[re.Match[str]], _T]
) -> int | _T | frozenset[_T] | None:
    """What ``If-Match`` expects: :data:`ANY`, :data:`MISSING`, or ``build`` of each listed tag
    ``pattern`` matches in full (one as itself, several as a set), :data:`NO_MATCH` when none does
    or the header is malformed."""
    tags = _listed(if_match)
    if not isinstance(tags, list):
        return tags
    found = frozenset(build(match) for tag in tags if (match := pattern.fullmatch(tag)))
    if not found:
        return NO_MATCH
    return next(iter(found)) if len(found) == 1 else found


def none_match(if_none_match: str | None, current: str) -> bool:
    """Whether ``If-None-Match`` names ``current`` or is ``*`` (RFC 9110 13.1.2): weak comparison,
    the opaque tags equal whether or not either is marked ``W/`` (ours all are; a client or cache
    may have dropped the mark). A malformed header names nothing: the full answer is the safe one."""
    tags = _listed(if_none_match)
    if tags is ANY:
        return True
    if not isinstance(tags, list):
        return False
    opaque = current.removeprefix("W/")
    return any(tag.removeprefix("W/") == opaque for tag in tags)


def expected_revision(if_match: str | None, prefix: str) -> int | frozenset[int] | None:
    """The revision(s) the client saw, from ``If-Match``.

    Returns :data:`ANY` for ``*``, :data:`MISSING` without the header (the service, which knows
    the current revision, answers 428), the revision of each listed ETag of ``prefix`` (one as
    a number, several as a set: the precondition holds when any of them is current) and
    :data:`NO_MATCH` when none belongs to ``prefix`` or the header is malformed.
    """
    pattern = re.compile(r'(?:W/)?"' + re.escape(prefix) + r'-(\d{1,18})"')
    return _expected(if_match, pattern, lambda found: int(found.group(1)))


def expected_version(if_match: str | None, prefix: str) -> int | Seen | frozenset[Seen] | None:
    """:func:`expected_revision` for resources whose ETags carry a generation: a :class:`Seen`
    (several as a set, any of which may be current), or :data:`ANY`, :data:`MISSING`,
    :data:`NO_MATCH` (a malformed header, or no ETag of ``prefix`` with a generation: one without,
    as from before generations, matches nothing)."""
    pattern = re.compile(r'(?:W/)?"' + re.escape(prefix) + r'-(\d{1,18})\.([0-9a-f]{16})"')
    return _expected(if_match, pattern, lambda found: Seen(int(found.group(1)), found.group(2)))


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


def _matches(expected: int | Seen, current: int, generation: str | None) -> bool:
    if isinstance(expected, Seen):
        return expected.revision == current and expected.generation == generation
    return expected == current


def check_expected(
    expected: Expected, current: int, current_etag: str, generation: str | None = None
) -> None:
    """``expected`` from :func:`expected_revision` or :func:`expected_version` (None: any)
    against the ``current`` revision and, for a :class:`Seen`, the row's ``generation``; a set
    holds when any of its members does.

    A plain number (callers in-process, such as tests) is a revision of whatever row is current.
    """
    if expected == MISSING:
        raise PreconditionRequired(current_etag, f"send If-Match; the current ETag is {current_etag}")
    if expected is None:
        return
    members: frozenset[int] | frozenset[Seen] | tuple[int | Seen] = (
        expected if isinstance(expected, frozenset) else (expected,)
    )
    if not any(_matches(one, current, generation) for one in members):
        raise Stale(current_etag)
