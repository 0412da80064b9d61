"""Helpers shared by the vendor adapters.

Lookups take RFC 6901 JSON pointers ("/issue/number") so that an :class:`UnmappableError` names the
exact place in the vendor's payload that was missing or wrong.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from html import unescape
from typing import Any

import orjson
from pydantic import ValidationError

from shared.db.storable import pointer_token
from shared.events import (
    TICKET_EVENT_TYPES,
    EventType,
    Priority,
    TicketSnapshot,
    TicketStatus,
    assume_utc,
    parse_priority,
)
from shared.http.json_body import without_utf8_bom

from .errors import MalformedBodyError, UnmappableError

# orjson reads an integer outside -2**63 .. 2**64 - 1 as a float: two tickets whose ids differ past
# a double's 17 digits would get one key, and a value would change. Every such integer has at least
# 19 digits (-9223372036854775809), so a body without a run of 19 cannot hold one. The run is found
# by mapping every digit to "0" and everything else to " " (bytes.translate and a substring search,
# C loops at ~1 ns a byte; a regular expression for [0-9]{19} took ten times as long).
_DIGITS_AS_ZEROS = bytes(0x30 if 0x30 <= byte <= 0x39 else 0x20 for byte in range(256))
_LONG_DIGIT_RUN = b"0" * 19
# Integers in this range are what orjson reads exactly, and what the router's JSON columns
# (read by orjson) can give back.
INT_RANGE = (-(2**63), 2**64 - 1)


def _may_hold_a_long_integer(body: bytes) -> bool:
    return _LONG_DIGIT_RUN in body.translate(_DIGITS_AS_ZEROS)


def _not_json(body: bytes) -> str:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return "body is not UTF-8, the only encoding JSON between systems may use (RFC 8259)"
    return "body is not valid JSON"


def parse_json_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, its integers exact whatever their size. orjson reads it (the
    fast path, and the judge of what is valid JSON); a body that may hold an integer orjson reads
    as a float (a run of 19 digits anywhere, strings included) is read again by the standard
    library, exact for integers of any size and the same as orjson for everything else. A UTF-8
    byte order mark before the JSON (.NET and Windows PowerShell senders write one) is skipped,
    as RFC 8259 allows; signatures are checked before, over the bytes as received."""
    body = without_utf8_bom(body)
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedBodyError(_not_json(body)) from exc
    if not isinstance(data, dict):
        raise MalformedBodyError("body must be a JSON object")
    if _may_hold_a_long_integer(body):
        try:
            exact = json.loads(body)
        except RecursionError as exc:  # orjson reads 1024 levels, the standard library ~1000 or less
            raise MalformedBodyError("body is nested too deeply") from exc
        except ValueError as exc:  # cannot happen for what orjson read, but must not become a 500
            raise MalformedBodyError("body is not valid JSON") from exc
        if isinstance(exact, dict):
            data = exact
    return data


def int_beyond_64_bits(value: Any) -> str | None:
    """The JSON pointer (relative to ``value``) of the first integer outside :data:`INT_RANGE` in
    ``value``, None when there is none. Iterative: ``value`` may nest deeply."""
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        node, pointer = stack.pop()
        if isinstance(node, int) and not isinstance(node, bool):
            if not INT_RANGE[0] <= node <= INT_RANGE[1]:
                return pointer
        elif isinstance(node, dict):
            escaped = ((str(k).replace("~", "~0").replace("/", "~1"), v) for k, v in node.items())
            stack.extend((child, f"{pointer}/{key}") for key, child in reversed(list(escaped)))
        elif isinstance(node, list):
            stack.extend((child, f"{pointer}/{i}") for i, child in reversed(list(enumerate(node))))
    return None


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def pointer_get(doc: Any, pointer: str, default: Any = None) -> Any:
    """Resolve an RFC 6901 pointer; ``default`` when any step is absent."""
    if pointer == "":
        return doc
    current = doc
    for raw in pointer.lstrip("/").split("/"):
        token = _unescape(raw)
        if isinstance(current, Mapping):
            if token not in current:
                return default
            current = current[token]
        # ASCII digits: "²" is a digit to str.isdigit, not to int() (a ValueError, a 500).
        elif isinstance(current, list) and token.isascii() and token.isdigit() and int(token) < len(current):
            current = current[int(token)]
        else:
            return default
    return current


def first(doc: Any, *pointers: str) -> Any:
    """The first pointer that resolves to something other than None/""."""
    for pointer in pointers:
        value = pointer_get(doc, pointer)
        if value is not None and value != "":
            return value
    return None


def require(doc: Any, pointer: str) -> Any:
    value = pointer_get(doc, pointer)
    if value is None or value == "":
        raise UnmappableError(pointer, "required field is missing")
    return value


def require_str(doc: Any, pointer: str) -> str:
    value = require(doc, pointer)
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise UnmappableError(pointer, "expected a string or an integer")
    return str(value)


def opt_str(value: Any) -> str | None:
    if value is None or isinstance(value, bool | dict | list):
        return None
    text = str(value).strip()
    return text or None


def text_or_empty(value: Any, pointer: str) -> str:
    """A body or description as it came (null: none); anything but text is refused at ``pointer``,
    the payload's own field (the snapshot's check named "/description", which no vendor sends)."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise UnmappableError(pointer, "expected a string")
    return value


def require_object(doc: Any, pointer: str) -> dict[str, Any]:
    value = pointer_get(doc, pointer)
    if not isinstance(value, dict):
        raise UnmappableError(pointer, "expected an object")
    return value


def parse_datetime(value: Any, field: str) -> datetime | None:
    """ISO-8601 strings (incl. ``Z`` and ``+0000``) or Unix seconds/milliseconds; naive means UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise UnmappableError(field, "expected a timestamp")
    if isinstance(value, int | float):
        try:
            seconds = value / 1000 if value > 100_000_000_000 else value  # Jira sends milliseconds
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise UnmappableError(field, "timestamp out of range") from exc
    if isinstance(value, str):
        text = value.strip()
        # ASCII digits only ("²" is a digit to str.isdigit, not to int()), and few of them: an int
        # of thousands of digits is refused by int() itself, and any this long is out of range.
        # Eight are ISO 8601's basic date ("20240419"), not Unix seconds of 1971: read as seconds,
        # a sender's date became 1970-08-23, and a ticket 54 years old.
        if text.isascii() and text.isdigit() and len(text) != 8:
            if len(text) > 20:
                raise UnmappableError(field, "timestamp out of range")
            return parse_datetime(int(text), field)
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError as exc:
            raise UnmappableError(field, "expected an ISO-8601 timestamp") from exc
        return assume_utc(parsed)
    raise UnmappableError(field, "expected a timestamp")


SPACES_OR_COMMAS = re.compile(r"[,\s]+")
COMMAS = re.compile(r"\s*,\s*")  # Freshdesk's tags may hold spaces ("needs review")


def as_tags(value: Any, separators: re.Pattern[str] = SPACES_OR_COMMAS) -> list[str] | None:
    """Tags arrive as lists, or as one string separated by spaces (Zendesk) or commas (Freshdesk:
    ``separators=COMMAS``). None when the payload has none: the tags already known stay (an empty
    list clears them)."""
    if value is None:
        return None
    if isinstance(value, str):
        return [t for t in separators.split(value.strip()) if t]
    if isinstance(value, list):
        return [str(t) for t in value if isinstance(t, str | int) and not isinstance(t, bool)]
    return []


def norm_word(word: str) -> str:
    return " ".join(word.strip().lower().replace("_", " ").replace("-", " ").split())


# Our own words are always understood, whatever the vendor.
_OWN_STATUSES = {norm_word(s.value): s for s in TicketStatus} | {"reopened": TicketStatus.OPEN}


def map_status(
    value: Any, table: Mapping[str, TicketStatus], field: str, options: Mapping[str, Any]
) -> TicketStatus | None:
    """Vendor status word -> TicketStatus. ``options["status_map"]`` (admin overrides for custom
    workflow states) wins over the vendor table, which wins over our own words."""
    text = opt_str(value)
    if text is None:
        return None
    key = norm_word(text)
    overrides = {norm_word(k): v for k, v in (options.get("status_map") or {}).items()}
    if key in overrides:
        try:
            return TicketStatus(overrides[key])
        except ValueError as exc:  # a bad source config must not become a 500
            raise UnmappableError(field, f"status_map sends {text[:50]!r} to an unknown status") from exc
    found = table.get(key) or _OWN_STATUSES.get(key)
    if found is None:
        raise UnmappableError(field, f"unknown status {text[:50]!r}")
    return found


def map_priority(
    value: Any, table: Mapping[str, Priority], field: str, options: Mapping[str, Any]
) -> Priority | None:
    text = opt_str(value)
    if text is None:
        return None
    key = norm_word(text)
    overrides = {norm_word(k): v for k, v in (options.get("priority_map") or {}).items()}
    if key in overrides:
        try:
            return parse_priority(overrides[key])
        except ValueError as exc:
            raise UnmappableError(field, f"priority_map sends {text[:50]!r} to an unknown priority") from exc
    if key in table:
        return table[key]
    try:
        return parse_priority(key)
    except ValueError as exc:
        raise UnmappableError(field, f"unknown priority {text[:50]!r}") from exc


# Block-level elements: a browser starts a line at each, so the words on either side stay apart.
_BREAKS = frozenset(
    {"br", "p", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "hr", "pre"}
    | {"ul", "ol", "dl", "dt", "dd", "table", "section", "article", "header", "footer", "address"}
)
# Table cells sit side by side: a space between them (HTML mail lays out in tables, often with no
# white space between the tags, and "<td>Order</td><td>5521</td>" read as "Order5521").
_CELLS = frozenset({"td", "th"})
# A tag, a comment or a declaration: no "<" or ">" inside, so a failed match stops at the next "<"
# and the scan stays linear (html.parser takes quadratic time on some malformed input: a body of
# 36 KB took 12 s of the event loop, CVE-2025-6069 in the Python of the day).
_TAG = re.compile(r"</?([a-zA-Z][a-zA-Z0-9]*)?[^<>]*>")


# What a browser shows nothing of: a comment (mail clients wrap style sheets and conditional markup
# in them, and ">" inside one ended the tag above early), a style sheet, a script. Each is found by
# a search from where the last one ended, and an unclosed one runs to the end (as in a browser), so
# the scan stays linear.
_HIDDEN_START = re.compile(r"<!--|<(style|script)(?=[\s/>])", re.IGNORECASE)
_HIDDEN_END = {
    "style": re.compile(r"</style\s*>", re.IGNORECASE),
    "script": re.compile(r"</script\s*>", re.IGNORECASE),
}


def _without_hidden(html: str) -> str:
    kept: list[str] = []
    pos = 0
    while (start := _HIDDEN_START.search(html, pos)) is not None:
        kept.append(html[pos : start.start()])
        name = start.group(1)
        if name is None:
            end = html.find("-->", start.end())
            pos = -1 if end < 0 else end + 3
        else:
            closing = _HIDDEN_END[name.lower()].search(html, start.end())
            pos = -1 if closing is None else closing.end()
        if pos < 0:
            return "".join(kept)
    kept.append(html[pos:])
    return "".join(kept)


def _tag_to_text(match: re.Match[str]) -> str:
    name = match.group(1)
    if name is None:
        return ""
    name = name.lower()
    if name in _BREAKS:  # a block's start or end
        return "\n"
    return " " if name in _CELLS else ""


def html_to_text(html: str) -> str:
    """Plain text for the classifier: Intercom and Zammad send message bodies as HTML. Tags go,
    block-level ones leave a line break, entities are decoded; comments, style sheets and scripts go
    with their content; a lone "<" is text."""
    if "<" not in html and "&" not in html:
        return html.strip()
    text = unescape(_TAG.sub(_tag_to_text, _without_hidden(html)))
    lines = (" ".join(line.split()) for line in text.splitlines())
    return "\n".join(line for line in lines if line)


def build_snapshot(fields: dict[str, Any], origins: Mapping[str, str] | None = None) -> TicketSnapshot:
    """Validate the normalised fields; a contract violation becomes a 422 naming the field at fault:
    the vendor's field when ``origins`` says where a snapshot field came from (``{"status":
    "/issue/state"}``), else the snapshot's own. A field with an origin is required of the vendor."""
    for name, vendor_field in (origins or {}).items():
        if fields.get(name) is None:
            raise UnmappableError(vendor_field, "required field is missing")
    # Read exactly (parse_json_object), such an integer would still come back from the router's
    # JSON columns (read by orjson) as a float: refused, as POST /v1/tickets refuses it.
    beyond = int_beyond_64_bits(fields.get("custom_fields"))
    if beyond is not None:
        raise UnmappableError("/custom_fields" + beyond, "integers must fit in 64 bits")
    try:
        # A None is a field the payload did not have: left unset, so that the event carries what
        # the source said and nothing else (see shared.events.ticket_event).
        return TicketSnapshot.model_validate(
            {name: value for name, value in fields.items() if value is not None}
        )
    except ValidationError as exc:
        error = exc.errors()[0]
        # Escaped (RFC 6901): a key "a/b" the contract does not know is "/a~1b", not "/a/b", as
        # POST /v1/tickets names it.
        loc = [pointer_token(str(part)) for part in error["loc"]]
        origin = (origins or {}).get(loc[0]) if loc else None
        raise UnmappableError(origin or "/" + "/".join(loc), error["msg"]) from exc


# Words an admin may put in a hand-written payload's event field (Zendesk triggers, generic sources).
_EVENT_WORDS: dict[str, EventType] = {
    "created": EventType.TICKET_CREATED,
    "create": EventType.TICKET_CREATED,
    "new": EventType.TICKET_CREATED,
    "updated": EventType.TICKET_UPDATED,
    "update": EventType.TICKET_UPDATED,
    "commented": EventType.TICKET_COMMENTED,
    "comment": EventType.TICKET_COMMENTED,
    "comment added": EventType.TICKET_COMMENTED,
    "status changed": EventType.TICKET_STATUS_CHANGED,
    "status": EventType.TICKET_STATUS_CHANGED,
    "solved": EventType.TICKET_STATUS_CHANGED,
    "closed": EventType.TICKET_STATUS_CHANGED,
    "reopened": EventType.TICKET_STATUS_CHANGED,
    "reassigned": EventType.TICKET_REASSIGNED_EXTERNALLY,
    "assigned": EventType.TICKET_REASSIGNED_EXTERNALLY,
} | {norm_word(t.value): t for t in TICKET_EVENT_TYPES}


def map_event_word(value: Any, field: str) -> EventType | None:
    text = opt_str(value)
    if text is None:
        return None
    key = norm_word(text)
    found = _EVENT_WORDS.get(key) or _EVENT_WORDS.get(key.removeprefix("ticket."))
    if found is None:
        raise UnmappableError(field, f"unknown event {text[:50]!r}")
    return found


def as_bool(value: Any, default: bool) -> bool:
    """Placeholders render booleans as strings ("true", "false")."""
    if isinstance(value, bool):
        return value
    text = opt_str(value)
    if text is None:
        return default
    return text.lower() in ("true", "1", "yes", "y", "t")


def as_object(value: Any) -> dict[str, Any]:
    """``value`` when it is a JSON object, else an empty one (optional sub-objects)."""
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    """``value`` when it is a JSON array, else an empty one (optional lists: labels, tags, ...)."""
    return value if isinstance(value, list) else []
