"""Generic sources: the admin maps our fields onto the sender's JSON.

``options``::

    {
      "mapping": {                       # field -> JSON pointer ("/ticket/id") or JSONPath ("$.tags[*]")
        "external_id": "/ticket/id",     # the only required field
        "subject": ..., "description": ..., "status": ..., "priority": ...,
        "requester_email": ..., "requester_name": ..., "requester_organization": ...,
        "tags": ...,                     # all matches are collected; a string outside any array is
                                         # split on commas/spaces, one in an array is one tag
        "channel": ..., "url": ..., "created_at": ..., "updated_at": ..., "assignee_group": ...,
        "comment_body": ..., "comment_author": ..., "comment_public": ..., "comment_from_agent": ...,
        "event_type": ..., "occurred_at": ...
      },
      "status_map": {"Waiting": "pending"},   # sender word -> TicketStatus value
      "priority_map": {"Sev1": "P1"},         # sender word -> priority word
      "event_map": {"ticket_new": "created"}, # sender word -> event word or EventType value
      "auth_header": "X-Webhook-Secret",      # where the shared secret arrives (or HTTP Basic)
      "delivery_header": "X-Request-Id"       # optional per-delivery id for deduplication
    }

:func:`validate_generic_mapping` checks all of this when the source is configured.
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import lru_cache
from typing import Any

from jsonpath_ng import DatumInContext, JSONPath
from jsonpath_ng.ext import parse as parse_jsonpath

from shared.events import EventType, TicketStatus, parse_priority

from .common import (
    as_bool,
    as_tags,
    build_snapshot,
    map_event_word,
    map_priority,
    map_status,
    opt_str,
    parse_datetime,
    parse_json_object,
    pointer_get,
)
from .errors import UnmappableError
from .models import AdaptedEvent, SourceConfig, WebhookRequest

MAPPABLE_FIELDS = frozenset(
    {
        "external_id",
        "subject",
        "description",
        "status",
        "priority",
        "requester_email",
        "requester_name",
        "requester_organization",
        "tags",
        "channel",
        "url",
        "created_at",
        "updated_at",
        "assignee_group",
        "comment_body",
        "comment_author",
        "comment_public",
        "comment_from_agent",
        "event_type",
        "occurred_at",
    }
)


# RFC 9110 5.1: a field name is a token. A header option holding anything else (a pasted trailing
# space, a colon) names no header a request can carry, so every delivery would be refused.
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def is_header_name(value: Any) -> bool:
    return isinstance(value, str) and _HEADER_NAME.fullmatch(value) is not None


@lru_cache(maxsize=512)
def _compile(expression: str) -> JSONPath:
    return parse_jsonpath(expression)


def _check_expression(key: str, expression: Any) -> None:
    if not isinstance(expression, str) or not expression.startswith(("/", "$")):
        raise ValueError(f"mapping.{key}: expected a JSON pointer ('/a/b') or a JSONPath ('$.a.b')")
    if expression.startswith("$"):
        try:
            _compile(expression)
        except Exception as exc:  # jsonpath-ng raises several unrelated types for bad syntax
            raise ValueError(f"mapping.{key}: invalid JSONPath {expression!r}") from exc


def validate_generic_mapping(options: dict[str, Any]) -> None:
    """Raise ``ValueError`` naming the bad key or expression of a generic source's options."""
    mapping = options.get("mapping")
    if not isinstance(mapping, dict) or not mapping:
        raise ValueError("mapping: expected an object of field -> expression")
    if "external_id" not in mapping:
        raise ValueError("mapping.external_id: required")
    for key, expression in mapping.items():
        if key not in MAPPABLE_FIELDS:
            raise ValueError(f"mapping.{key}: unknown field; known: {', '.join(sorted(MAPPABLE_FIELDS))}")
        _check_expression(key, expression)
    for table in ("status_map", "priority_map", "event_map"):
        if not isinstance(options.get(table, {}), dict):
            raise ValueError(f"{table}: expected an object of word -> word")
    for word, status in options.get("status_map", {}).items():
        if status not in TicketStatus.__members__.values():
            raise ValueError(f"status_map.{word}: {status!r} is not one of {[s.value for s in TicketStatus]}")
    for word, priority in options.get("priority_map", {}).items():
        try:
            parse_priority(priority)
        except ValueError as exc:
            raise ValueError(f"priority_map.{word}: {exc}") from exc
    for word, event in options.get("event_map", {}).items():
        try:
            map_event_word(event, f"event_map.{word}")
        except UnmappableError as exc:
            raise ValueError(exc.message) from exc
    for header in ("auth_header", "delivery_header"):
        if header in options and not is_header_name(options[header]):
            raise ValueError(f"{header}: expected a header name")


def _find(data: Any, expression: str) -> list[DatumInContext]:
    """The JSONPath's matches. The extensions jsonpath-ng offers (`sub`, `sorted`, ...) assume their
    input's type: a sender's number or null where the admin expected a string raised a TypeError,
    a 500 for every delivery of its kind; it is a 422 naming the expression the payload does not fit."""
    try:
        return [match for match in _compile(expression).find(data) if match.value is not None]
    except Exception as exc:  # jsonpath-ng raises whatever the operation on the value raised
        raise UnmappableError(
            expression, f"cannot be evaluated on this payload ({type(exc).__name__})"
        ) from exc


def _values(data: Any, expression: str) -> list[Any]:
    if expression.startswith("/"):
        value = pointer_get(data, expression)
        return [] if value is None else [value]
    return [match.value for match in _find(data, expression)]


def _in_array(match: DatumInContext) -> bool:
    context = match.context
    while context is not None:
        if isinstance(context.value, list):
            return True
        context = context.context
    return False


def _tags(data: Any, expression: str) -> list[str]:
    """A string outside any array is a delimited list ("vip, login"); one found in an array (a
    label's name, an element) is one tag, as the array reached by a pointer keeps it."""
    if expression.startswith("/"):
        found = [(value, False) for value in _values(data, expression)]
    else:
        found = [(m.value, _in_array(m)) for m in _find(data, expression)]
    tags: list[str] = []
    for value, in_array in found:
        delimited = isinstance(value, str) and not in_array
        tags.extend(as_tags(value if delimited or isinstance(value, list) else [value]) or [])
    return tags


def adapt(config: SourceConfig, request: WebhookRequest, now: datetime) -> list[AdaptedEvent]:
    try:
        validate_generic_mapping(config.options)
    except ValueError as exc:  # a config stored before validation existed: the sender cannot fix it
        raise UnmappableError("options", str(exc)) from exc
    data = parse_json_object(request.body)
    mapping: dict[str, str] = config.options["mapping"]

    def one(key: str) -> tuple[Any, str]:
        expression = mapping.get(key)
        if expression is None:
            return None, key
        values = _values(data, expression)
        return (values[0] if values else None), expression

    def text(key: str) -> str | None:
        value, _ = one(key)
        return opt_str(value)

    external_id, id_expression = one("external_id")
    if opt_str(external_id) is None:
        raise UnmappableError(id_expression, "required field is missing")
    status, status_expression = one("status")
    priority, priority_expression = one("priority")
    fields: dict[str, Any] = {
        "external_id": opt_str(external_id),
        "subject": text("subject") or "",
        "description": text("description") or "",
        "status": map_status(status, {}, status_expression, config.options),  # None: not said
        "priority": map_priority(priority, {}, priority_expression, config.options),
        "requester": {
            "email": text("requester_email"),
            "name": text("requester_name"),
            "organization": text("requester_organization"),
        },
        "tags": _tags(data, mapping["tags"]) if "tags" in mapping else None,
        "channel": text("channel"),
        "url": text("url"),
        "created_at": parse_datetime(*one("created_at")),
        "updated_at": parse_datetime(*one("updated_at")),
        "external_assignee_group": text("assignee_group"),
    }
    event_word, event_expression = one("event_type")
    event_map = config.options.get("event_map") or {}
    event_word = event_map.get(opt_str(event_word) or "", event_word)
    event_type = map_event_word(event_word, event_expression)
    comment = text("comment_body")
    if comment is not None:
        fields["comment"] = {
            "body": comment,
            "author": text("comment_author"),
            "public": as_bool(one("comment_public")[0], True),
            "from_agent": as_bool(one("comment_from_agent")[0], False),
        }
        event_type = event_type or EventType.TICKET_COMMENTED
    snapshot = build_snapshot(fields)
    occurred_at = parse_datetime(*one("occurred_at")) or snapshot.updated_at or now
    return [AdaptedEvent(event_type or EventType.TICKET_UPDATED, snapshot, occurred_at)]
