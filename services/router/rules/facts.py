"""TicketFacts: a flat, precomputed view of one ticket, built once and evaluated by many rules.

Everything a rule might need repeatedly (lower-cased text, the tag set, the email domain, the
ticket's age) is computed here once, so the per-rule work in the engine is a dict lookup and a
comparison. Strings are cut to ``MAX_MATCH_CHARS`` so no operator ever scans more than that.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from shared.events import Priority, TicketSnapshot, TicketStatus

from .fields import CUSTOM_PREFIX, MAX_MATCH_CHARS, WEEKDAYS, parse_level

Fact = str | int | float | bool | datetime | frozenset[str] | tuple[Any, ...] | None
FOLDED = "~"  # values[FOLDED + name] is the lower-cased variant of values[name]


def fact_key(name: str, folded: bool) -> str:
    return FOLDED + name if folded else name


def _cut(value: str | None) -> str | None:
    return None if value is None else value[:MAX_MATCH_CHARS]


def _fold(value: Any) -> Any:
    if isinstance(value, str):
        return value.lower()
    if isinstance(value, frozenset):
        return frozenset(v.lower() for v in value)
    if isinstance(value, tuple):
        return tuple(v.lower() if isinstance(v, str) else v for v in value)
    return value


def _custom_value(value: Any) -> Fact:
    """Custom fields arrive as arbitrary JSON: keep scalars, freeze lists, drop objects."""
    if isinstance(value, str):
        return value[:MAX_MATCH_CHARS]
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, list | tuple):
        return tuple(
            v[:MAX_MATCH_CHARS] if isinstance(v, str) else v
            for v in value
            if v is None or isinstance(v, str | bool | int | float)
        )
    return None


class TicketFacts:
    """Field name -> value in ``values``; ``values["~" + name]`` holds the lower-cased variant.

    One dict for both flavours keeps a compiled condition to one lookup with a constant key.
    ``now`` is the evaluation instant (time_of_day, weekday, age_minutes derive from it) so a
    replay of yesterday's tickets can be evaluated as of yesterday.
    """

    __slots__ = ("_local", "_utf8", "now", "ticket_key", "values")

    def __init__(
        self,
        *,
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
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
        if created_at is not None and created_at.tzinfo is None:
            created_at = created_at.replace(tzinfo=UTC)  # sources without offsets mean UTC
        self.now = now
        self.ticket_key = ticket_key
        domain = None
        if requester_email and "@" in requester_email:
            domain = requester_email.rsplit("@", 1)[1].lower()
        age = None if created_at is None else (now - created_at).total_seconds() / 60.0
        subject, description = subject[:MAX_MATCH_CHARS], description[:MAX_MATCH_CHARS]
        raw: dict[str, Fact] = {
            "subject": subject,
            "description": description,
            "text": f"{subject}\n{description}"[:MAX_MATCH_CHARS],
            "tags": frozenset(t[:MAX_MATCH_CHARS] for t in tags),
            "channel": _cut(channel),
            "source": _cut(source),
            "status": None if status is None else str(TicketStatus(status).value),
            "requester.email": _cut(requester_email),
            "requester.domain": _cut(domain),
            "requester.name": _cut(requester_name),
            "organization": _cut(organization),
            "customer_tier": _cut(customer_tier),
            "language": _cut(language),
            "category": _cut(category),
            "category_confidence": category_confidence,
            "urgency": None if urgency is None else parse_level(urgency),
            "impact": None if impact is None else parse_level(impact),
            "priority": None if priority is None else str(Priority(priority).value),
            "created_at": created_at,
            "age_minutes": age,
        }
        for name, value in (custom or {}).items():
            raw[CUSTOM_PREFIX + str(name)] = _custom_value(value)
        values = dict(raw)
        for name, value in raw.items():
            values[FOLDED + name] = _fold(value)
        self.values = values
        self._local: dict[str, tuple[int, str]] = {}
        self._utf8: dict[str, bytes | None] = {}

    def utf8(self, key: str) -> bytes | None:
        """A string fact encoded once for RE2 (which matches UTF-8 bytes); None if not a string."""
        try:
            return self._utf8[key]
        except KeyError:
            value = self.values.get(key)
            encoded = value.encode() if isinstance(value, str) else None
            self._utf8[key] = encoded
            return encoded

    def local_time(self, timezone: str) -> tuple[int, str]:
        """(minutes since local midnight, weekday mon..sun) of ``now`` in ``timezone``; cached."""
        found = self._local.get(timezone)
        if found is None:
            local = self.now.astimezone(ZoneInfo(timezone))
            found = (local.hour * 60 + local.minute, WEEKDAYS[local.weekday()])
            self._local[timezone] = found
        return found

    def get(self, name: str, folded: bool = False) -> Fact:
        return self.values.get(fact_key(name, folded))

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
        now=now,
        subject=snapshot.subject,
        description=snapshot.description,
        tags=snapshot.tags,
        channel=snapshot.channel,
        source=source,
        status=snapshot.status,
        requester_email=requester.email,
        requester_name=requester.name,
        organization=requester.organization,
        customer_tier=requester.customer_tier,
        custom=snapshot.custom_fields,
        language=language,
        category=category,
        category_confidence=category_confidence,
        urgency=urgency,
        impact=impact,
        priority=snapshot.priority,
        created_at=snapshot.created_at,
        ticket_key=f"{source}:{snapshot.external_id}",
    )
