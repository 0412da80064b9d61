"""TicketFacts: a flat view of one ticket, built once and evaluated by many rules.

Everything a rule might need repeatedly (case-folded text, the tag set, the email domain, the
ticket's age) is computed at most once per ticket, so the per-rule work in the engine is a dict
lookup and a comparison. Strings are cut to ``MAX_MATCH_CHARS`` so no operator ever scans more
than that. What a rule set may never read is computed lazily, on first read: the case-folded
variants (a rule set folds a handful of the ~20 fields) and the ticket's age.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from shared.events import Priority, TicketSnapshot, TicketStatus

from .fields import CUSTOM_PREFIX, LEVEL_NAMES, MAX_MATCH_CHARS, WEEKDAYS, parse_level

Fact = str | int | float | bool | datetime | frozenset[str] | tuple[Any, ...] | None
FOLDED = "~"  # values[FOLDED + name] is the case-folded variant of values[name]
AGE = "age_minutes"
MEMO = "\0"  # lookup keys starting with it hold per-ticket results of costly tests, never facts
# The built-in facts in the order ``values`` lists them (custom fields follow, then the folded).
BASE_FACTS = (
    "subject",
    "description",
    "text",
    "tags",
    "channel",
    "source",
    "status",
    "requester.email",
    "requester.domain",
    "requester.name",
    "organization",
    "customer_tier",
    "language",
    "category",
    "category_confidence",
    "urgency",
    "impact",
    "priority",
    "created_at",
    AGE,
)
# Enum member or value -> value: one dict lookup instead of an enum call per ticket.
_STATUS = {s.value: s.value for s in TicketStatus}
_PRIORITY = {p.value: p.value for p in Priority}


def fact_key(name: str, folded: bool) -> str:
    return FOLDED + name if folded else name


def nfc(text: str) -> str:
    """``text`` in Unicode normal form NFC: "café" typed with a combining accent (macOS, text
    pasted from a PDF) is the same text as the precomposed "café" a rule names, and only one
    form can match the other. ASCII is NFC already (isascii costs nothing)."""
    if text.isascii() or unicodedata.is_normalized("NFC", text):
        return text
    return unicodedata.normalize("NFC", text)


def _nfc_cut(text: str) -> str:
    """``text`` cut to MAX_MATCH_CHARS, in NFC; the usual ASCII in one test (the hot path)."""
    if len(text) <= MAX_MATCH_CHARS and text.isascii():
        return text
    return nfc(text[:MAX_MATCH_CHARS])


def fold_text(text: str) -> str:
    """Case folding, not lower-casing: "STRASSE" is "Straße" and a final ς is Σ, which ``lower``
    keeps apart. On ASCII the two agree, and ``lower`` is the cheaper (isascii costs nothing).
    Folding can decompose ("ΐ" folds to ι and two combining marks), so the result is put back in
    NFC, as the facts and the rules' constants are before folding."""
    return text.lower() if text.isascii() else nfc(text.casefold())


def _fold(value: Any) -> Any:
    if isinstance(value, str):
        return fold_text(value)
    if isinstance(value, frozenset):
        return frozenset(map(fold_text, value))
    if isinstance(value, tuple):
        return tuple(fold_text(v) if isinstance(v, str) else v for v in value)
    return value


def _custom_value(value: Any) -> Fact:
    """Custom fields arrive as arbitrary JSON: keep scalars, freeze lists, drop objects."""
    if isinstance(value, str):
        return _nfc_cut(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, list | tuple):
        return tuple(
            _nfc_cut(v) if isinstance(v, str) else v
            for v in value
            if v is None or isinstance(v, str | bool | int | float)
        )
    return None


def _level(value: int | str) -> int:
    if type(value) is int and 0 < value < 5:
        return value
    if type(value) is str and value in LEVEL_NAMES:
        return LEVEL_NAMES[value]
    return parse_level(value)  # other spellings, and the error for a bad value


def _status(value: TicketStatus | str) -> str:
    try:
        return _STATUS[value]
    except (KeyError, TypeError):
        return str(TicketStatus(value).value)


def _priority(value: Priority | str) -> str:
    try:
        return _PRIORITY[value]
    except (KeyError, TypeError):
        return str(Priority(value).value)


def _tag_set(tags: frozenset[str] | list[str] | tuple[str, ...]) -> frozenset[str]:
    found = frozenset(tags)
    if found and max(map(len, found)) > MAX_MATCH_CHARS:
        found = frozenset(t[:MAX_MATCH_CHARS] for t in tags)
    if not all(map(str.isascii, found)):
        found = frozenset(map(nfc, found))
    return found


# 400 Gregorian years: the calendar repeats, weekdays included (146,097 days are 20,871 weeks).
_CALENDAR_CYCLE = timedelta(days=146_097)


@functools.lru_cache(maxsize=256)
def _local_time(now: datetime, timezone: str) -> tuple[int, str]:
    # Per instant and zone: the tickets of a batch share one instant (see BoundRoute).
    zone = ZoneInfo(timezone)
    try:
        local = now.astimezone(zone)
    except OverflowError:
        # Within a day of datetime's range (a simulated `now`, an event's time): the local date
        # lies beyond it. The same instant 400 years nearer has the same wall clock and weekday
        # (zones keep their earliest offset before their history and their rule after it).
        local = (now - _CALENDAR_CYCLE if now.year > 5_000 else now + _CALENDAR_CYCLE).astimezone(zone)
    return local.hour * 60 + local.minute, WEEKDAYS[local.weekday()]


class FactLookup(dict[str, Fact]):
    """The engine's view of the facts: ``lookup[key]`` never raises, None means no such fact.

    Holds the eagerly computed facts; a lazy one (a folded variant, the age) is computed and
    stored on its first read by ``__missing__``, so a rule set that never reads it never pays.
    A subscript on a dict subclass stays in C until a key is missing. Keys starting with
    ``MEMO`` memoise tests for this ticket (see regexes.py); ``values`` omits them.
    """

    __slots__ = ("now",)
    now: datetime  # set right after construction: dict's own __init__ is cheaper than an override

    def __missing__(self, key: str) -> Fact:
        if key == AGE:
            created = self.get("created_at")
            value: Fact = None if created is None else (self.now - created).total_seconds() / 60.0  # type: ignore[operator]
        elif key.startswith(FOLDED) and (key[1:] in self or key[1:] == AGE):
            value = _fold(self[key[1:]])
        else:
            return None  # not a fact of this ticket (e.g. an absent custom field)
        self[key] = value
        return value


class TicketFacts:
    """Field name -> value in ``values``; ``values["~" + name]`` holds the case-folded variant.

    One dict for both flavours keeps a compiled condition to one lookup with a constant key.
    ``now`` is the evaluation instant (time_of_day, weekday, age_minutes derive from it) so a
    replay of yesterday's tickets can be evaluated as of yesterday.

    ``values`` is complete (every folded variant computed); conditions read ``lookup``, the
    same facts with the lazy ones computed on demand.
    """

    __slots__ = ("_utf8", "_values", "lookup", "now", "ticket_key")

    def __init__(
        self,
        now: datetime,
        subject: str = "",
        description: str = "",
        tags: frozenset[str] | list[str] | tuple[str, ...] = (),
        channel: str | None = None,
        source: str | None = None,
        status: TicketStatus | str | None = None,
        requester_email: str | None = None,
        requester_name: str | None = None,
        organization: str | None = None,
        customer_tier: str | None = None,
        custom: Mapping[str, Any] | None = None,
        language: str | None = None,
        category: str | None = None,
        category_confidence: float | None = None,
        urgency: int | str | None = None,
        impact: int | str | None = None,
        priority: Priority | str | None = None,
        created_at: datetime | None = None,
        ticket_key: str | None = None,
    ) -> None:
        # Positional-or-keyword: facts_from_ticket passes all twenty positionally on the hot
        # path, where binding them by keyword cost more than building the facts.
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
        if created_at is not None and created_at.tzinfo is None:
            created_at = created_at.replace(tzinfo=UTC)  # sources without offsets mean UTC
        self.now = now
        self.ticket_key = ticket_key
        cut = MAX_MATCH_CHARS
        # Text is compared in NFC, as the rules' constants are (see nfc): cut first, so that no
        # more than the cut is normalised.
        subject, description = subject[:cut], description[:cut]
        if not subject.isascii():
            subject = nfc(subject)
        if not description.isascii():
            description = nfc(description)
        email = requester_email
        if email is not None and not email.isascii():
            email = nfc(email)
        domain = None
        if email and "@" in email:
            domain = email.rsplit("@", 1)[1].lower()[:cut]
        # Written out rather than through helpers: this runs once per ticket on the hot path.
        raw: dict[str, Fact] = {
            "subject": subject,
            "description": description,
            # What the ticket says: both parts a line apart, or the one there is (a chat has no
            # subject), so that starts_with, ends_with, ^, $ and exists read the text itself.
            "text": (f"{subject}\n{description}" if subject and description else subject or description)[
                :cut
            ],
            "tags": _tag_set(tags),
            "channel": None if channel is None else _nfc_cut(channel),
            "source": None if source is None else _nfc_cut(source),
            "status": None if status is None else _status(status),
            "requester.email": None if email is None else email[:cut],
            "requester.domain": domain,
            "requester.name": None if requester_name is None else _nfc_cut(requester_name),
            "organization": None if organization is None else _nfc_cut(organization),
            "customer_tier": None if customer_tier is None else _nfc_cut(customer_tier),
            "language": None if language is None else language[:cut],
            "category": None if category is None else category[:cut],
            "category_confidence": category_confidence,
            "urgency": None if urgency is None else _level(urgency),
            "impact": None if impact is None else _level(impact),
            "priority": None if priority is None else _priority(priority),
            "created_at": created_at,
        }
        if custom:
            for name, value in custom.items():
                key = CUSTOM_PREFIX + (name if type(name) is str else str(name))
                raw[key] = _nfc_cut(value) if type(value) is str else _custom_value(value)
        lookup = self.lookup = FactLookup(raw)
        lookup.now = now
        self._values: dict[str, Fact] | None = None
        self._utf8: dict[str, bytes | None] | None = None

    @property
    def values(self) -> dict[str, Fact]:
        """Every fact, folded variants included: built on first use (the engine reads ``lookup``)."""
        if self._values is None:
            lookup = self.lookup
            names = [*BASE_FACTS, *(k for k in lookup if k.startswith(CUSTOM_PREFIX))]
            values = {name: lookup[name] for name in names}
            self._values = values | {FOLDED + name: _fold(value) for name, value in values.items()}
        return self._values

    def utf8(self, key: str) -> bytes | None:
        """A string fact encoded once for RE2 (which matches UTF-8 bytes); None if not a string."""
        cache = self._utf8
        if cache is None:
            cache = self._utf8 = {}
        elif key in cache:
            return cache[key]
        value = self.lookup[key]
        encoded = value.encode() if isinstance(value, str) else None
        cache[key] = encoded
        return encoded

    def local_time(self, timezone: str) -> tuple[int, str]:
        """(minutes since local midnight, weekday mon..sun) of ``now`` in ``timezone``; cached."""
        return _local_time(self.now, timezone)

    def get(self, name: str, folded: bool = False) -> Fact:
        return self.lookup[fact_key(name, folded)]

    def __repr__(self) -> str:
        return f"TicketFacts(ticket_key={self.ticket_key!r}, now={self.now.isoformat()})"


def facts_from_ticket(
    snapshot: TicketSnapshot,
    source: str,
    now: datetime,
    *,
    language: str | None = None,
    category: str | None = None,
    category_confidence: float | None = None,
    urgency: int | str | None = None,
    impact: int | str | None = None,
) -> TicketFacts:
    """Facts for a ticket; the keyword arguments come from enrichment (classifier, detector)."""
    requester = snapshot.requester
    return TicketFacts(
        now,
        snapshot.subject,
        snapshot.description,
        snapshot.tags,
        snapshot.channel,
        source,
        snapshot.status,
        requester.email,
        requester.name,
        requester.organization,
        requester.customer_tier,
        snapshot.custom_fields,
        language,
        category,
        category_confidence,
        urgency,
        impact,
        snapshot.priority,
        snapshot.created_at,
        f"{source}:{snapshot.external_id}",
    )
