"""The fields a rule can test, the operators each accepts and how constant values are normalised.

Normalisation lives here (not in the schema) because the compiler and the validator must agree
on it exactly: the schema stores the normalised value and the compiler trusts it.
"""

from __future__ import annotations

import sys
from datetime import datetime
from enum import StrEnum
from typing import Any

import re2

from shared.events import TicketStatus, parse_priority

MAX_PATTERN_CHARS = 1_000  # longest accepted regex
# Largest RE2 program (instructions, forward or reverse) a saved regex may compile to. RE2 is
# linear in the text, but its DFA's states are sets of instructions: a counted repetition of
# something ambiguous (``(?:\w+\s*){1000}$``: 14,000 instructions) makes states without end,
# RE2's DFA cache thrashes, and a 10 KB ticket took 100-400 ms a search, on every ticket. Measured
# on 10 KB texts: up to ~3,000 instructions a search stays about a millisecond, ~4,000 some,
# 7,000+ tens of milliseconds. Unicode classes are large programs yet cheap (``\p{L}`` is 1,200
# instructions, but a UTF-8 byte picks one branch), so the bound leaves room for ``\p{L}{3,}``.
MAX_REGEX_PROGRAM = 4_000
MAX_MATCH_CHARS = 10_000  # string facts are cut to this before any operator sees them
MAX_STRING_VALUE_CHARS = 1_000  # longest constant accepted in a condition
MAX_LIST_VALUES = 10_000  # longest list accepted by in / not_in
CUSTOM_PREFIX = "custom."


class Kind(StrEnum):
    STR = "string"
    TAGS = "tags"
    NUM = "number"
    LEVEL = "level"  # urgency / impact: 1-4 or low/medium/high/critical
    PRIORITY = "priority"
    STATUS = "status"
    DATETIME = "datetime"
    TIME_OF_DAY = "time_of_day"
    WEEKDAY = "weekday"
    CUSTOM = "custom"  # type unknown until evaluation


FIELDS: dict[str, Kind] = {
    "subject": Kind.STR,
    "description": Kind.STR,
    "text": Kind.STR,
    "tags": Kind.TAGS,
    "channel": Kind.STR,
    "source": Kind.STR,
    "status": Kind.STATUS,
    "requester.email": Kind.STR,
    "requester.domain": Kind.STR,
    "requester.name": Kind.STR,
    "organization": Kind.STR,
    "customer_tier": Kind.STR,
    "language": Kind.STR,
    "category": Kind.STR,
    "category_confidence": Kind.NUM,
    "urgency": Kind.LEVEL,
    "impact": Kind.LEVEL,
    "priority": Kind.PRIORITY,
    "time_of_day": Kind.TIME_OF_DAY,
    "weekday": Kind.WEEKDAY,
    "created_at": Kind.DATETIME,
    "age_minutes": Kind.NUM,
}

_EQUALITY = {"equals", "not_equals", "in", "not_in", "exists"}
_STRING = {"contains", "starts_with", "ends_with", "matches"}
_ORDER = {"gt", "gte", "lt", "lte", "between"}

OPS_BY_KIND: dict[Kind, frozenset[str]] = {
    Kind.STR: frozenset(_EQUALITY | _STRING),
    Kind.TAGS: frozenset({"contains", "in", "not_in", "matches", "exists"}),
    Kind.NUM: frozenset(_EQUALITY | _ORDER),
    Kind.LEVEL: frozenset(_EQUALITY | _ORDER),
    Kind.PRIORITY: frozenset(_EQUALITY),
    Kind.STATUS: frozenset(_EQUALITY),
    Kind.DATETIME: frozenset({"before", "after", "exists"}),
    Kind.TIME_OF_DAY: frozenset({"before", "after", "between"}),
    Kind.WEEKDAY: frozenset({"equals", "not_equals", "in", "not_in"}),
    Kind.CUSTOM: frozenset(_EQUALITY | _STRING | _ORDER),
}
ALL_OPS: frozenset[str] = frozenset().union(*OPS_BY_KIND.values()) | {"before", "after"}
NEGATIVE_OPS = frozenset({"not_equals", "not_in"})  # true when the fact is missing

LEVEL_NAMES = {"low": 1, "medium": 2, "high": 3, "critical": 4}
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # index == datetime.weekday()
_FULL_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
# What a weekday condition accepts (any case), to the short name it stores. Exact names only: a
# prefix of anything ("mon-fri", "thurs") would silently test a single other day.
WEEKDAY_NAMES: dict[str, str] = {
    **dict(zip(WEEKDAYS, WEEKDAYS, strict=True)),
    **dict(zip(_FULL_WEEKDAYS, WEEKDAYS, strict=True)),
}


def field_kind(name: str) -> Kind | None:
    if name.startswith(CUSTOM_PREFIX) and 0 < len(name) - len(CUSTOM_PREFIX) <= 100:
        return Kind.CUSTOM
    return FIELDS.get(name)


def is_number(value: object) -> bool:
    # bool is an int subclass; a rule saying `gt: true` is a mistake, not a number. Only finite
    # doubles: math.isfinite raises OverflowError on a huge int, and a stored rule set holding one
    # could not be read back (orjson reads such a number as a double: infinity, an error).
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return -sys.float_info.max <= value <= sys.float_info.max  # exact for ints; False for NaN


def parse_level(value: object) -> int:
    if isinstance(value, str) and value.strip().lower() in LEVEL_NAMES:
        return LEVEL_NAMES[value.strip().lower()]
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 4:
        return value
    raise ValueError(f"expected 1-4 or low/medium/high/critical, got {value!r}")


def parse_time_of_day(value: object) -> int:
    """'HH:MM' -> minutes since midnight."""
    if isinstance(value, str):
        hours, sep, minutes = value.strip().partition(":")
        if sep and hours.isdigit() and minutes.isdigit() and len(minutes) == 2:
            h, m = int(hours), int(minutes)
            if h < 24 and m < 60:
                return h * 60 + m
    raise ValueError(f"expected a time of day 'HH:MM', got {value!r}")


def format_time_of_day(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def parse_datetime(value: object) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"expected an ISO 8601 datetime, got {value!r}") from None
    if not isinstance(value, datetime):
        raise ValueError(f"expected an ISO 8601 datetime, got {value!r}")
    if value.tzinfo is None:
        raise ValueError("datetime needs a UTC offset, e.g. 2024-05-01T09:00:00+00:00")
    return value


def regex_options(case_sensitive: bool) -> re2.Options:
    options = re2.Options()
    options.case_sensitive = case_sensitive
    options.log_errors = False  # a bad pattern is a validation error, not log noise
    options.never_capture = True  # we only need match / no match: cheaper
    return options


def compile_regex(pattern: str, case_sensitive: bool) -> Any:
    """RE2 runs in time linear in the input; patterns it cannot express are rejected."""
    if len(pattern) > MAX_PATTERN_CHARS:
        raise ValueError(f"regex longer than {MAX_PATTERN_CHARS} characters")
    try:
        return re2.compile(pattern, regex_options(case_sensitive))
    except re2.error as exc:
        detail = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise ValueError(f"regex not supported by RE2: {detail}") from None


def check_regex_cost(pattern: str, case_sensitive: bool) -> None:
    """Refuse a pattern whose RE2 program is too large to search every ticket quickly.

    Only where a pattern is saved (see ``normalise_value``): ``compile_regex`` itself stays
    lenient, so rule sets stored before this bound still load and route.
    """
    rx = compile_regex(pattern, case_sensitive)
    size = max(rx.programsize, rx.reverseprogramsize)  # an end-anchored search runs the reverse one
    if size > MAX_REGEX_PROGRAM:
        raise ValueError(
            f"regex too costly to search on every ticket: it compiles to {size} RE2 instructions, "
            f"at most {MAX_REGEX_PROGRAM}; use smaller counted repetitions ({{n}}, {{n,m}}), "
            "above all of groups or of Unicode classes such as \\p{L}"
        )


def _scalar(kind: Kind, value: object) -> object:
    """One comparable constant for equals / in, normalised for its field kind."""
    if kind is Kind.STR:
        if not isinstance(value, str):
            raise ValueError(f"expected a string, got {value!r}")
        if len(value) > MAX_STRING_VALUE_CHARS:
            raise ValueError(f"string longer than {MAX_STRING_VALUE_CHARS} characters")
        return value
    if kind is Kind.NUM:
        if not is_number(value):
            raise ValueError(f"expected a number, got {value!r}")
        return value
    if kind is Kind.LEVEL:
        return parse_level(value)
    if kind is Kind.PRIORITY:
        if not isinstance(value, str | int) or isinstance(value, bool):
            raise ValueError(f"expected a priority P1-P4, got {value!r}")
        found = parse_priority(value)
        if found is None:
            raise ValueError("expected a priority P1-P4")
        return found.value
    if kind is Kind.STATUS:
        try:
            return TicketStatus(str(value).strip().lower()).value
        except ValueError:
            raise ValueError(f"expected one of {[s.value for s in TicketStatus]}, got {value!r}") from None
    if kind is Kind.WEEKDAY:
        day = WEEKDAY_NAMES.get(value.strip().lower()) if isinstance(value, str) else None
        if day is None:
            raise ValueError(f"expected a weekday mon..sun or monday..sunday, got {value!r}")
        return day
    if kind in (Kind.CUSTOM, Kind.TAGS):
        if kind is Kind.TAGS and not isinstance(value, str):
            raise ValueError(f"expected a tag string, got {value!r}")
        if not (isinstance(value, str | bool) or is_number(value)):
            raise ValueError(f"expected a string, number or boolean, got {value!r}")
        if isinstance(value, str) and len(value) > MAX_STRING_VALUE_CHARS:
            raise ValueError(f"string longer than {MAX_STRING_VALUE_CHARS} characters")
        return value
    raise ValueError(f"{kind.value} fields do not support this operator")


def normalise_value(
    kind: Kind, op: str, value: object, case_sensitive: bool, *, stored: bool = False
) -> object:
    """Validate ``value`` for ``op`` on a field of ``kind``; return the canonical (JSON-able) form.

    ``stored``: the value is read back from a saved document, not being saved; bounds added
    after it was saved (the regex cost) must not make it unreadable.
    """
    if op == "exists":
        if value is not None and not isinstance(value, bool):
            raise ValueError("exists takes no value (or true/false)")
        return value
    if value is None:
        raise ValueError(f"operator {op!r} needs a value")
    if op in ("equals", "not_equals"):
        return _scalar(kind, value)
    if op in ("in", "not_in"):
        if not isinstance(value, list) or not value:
            raise ValueError(f"operator {op!r} needs a non-empty list")
        if len(value) > MAX_LIST_VALUES:
            raise ValueError(f"list longer than {MAX_LIST_VALUES} values")
        return [_scalar(kind, item) for item in value]
    if op == "matches":
        if not isinstance(value, str):
            raise ValueError("matches needs a regex string")
        if stored:
            compile_regex(value, case_sensitive)
        else:
            check_regex_cost(value, case_sensitive)
        return value
    if op in ("contains", "starts_with", "ends_with"):
        if kind is Kind.CUSTOM and op == "contains":
            return _scalar(kind, value)  # substring or list membership, decided at evaluation
        if not isinstance(value, str) or not value:
            raise ValueError(f"operator {op!r} needs a non-empty string")
        if len(value) > MAX_STRING_VALUE_CHARS:
            raise ValueError(f"string longer than {MAX_STRING_VALUE_CHARS} characters")
        return value
    if kind is Kind.TIME_OF_DAY:
        if op == "between":
            if not isinstance(value, list) or len(value) != 2:
                raise ValueError("between needs two times, e.g. ['22:00', '06:00']")
            start, end = (parse_time_of_day(v) for v in value)
            if start == end:
                raise ValueError("between needs two different times")
            return [format_time_of_day(start), format_time_of_day(end)]
        return format_time_of_day(parse_time_of_day(value))
    if kind is Kind.DATETIME:
        return parse_datetime(value).isoformat()
    number = parse_level if kind is Kind.LEVEL else _number
    if op == "between":
        if not isinstance(value, list) or len(value) != 2:
            raise ValueError("between needs a list [low, high]")
        low, high = number(value[0]), number(value[1])
        if low > high:
            raise ValueError("between needs low <= high")
        return [low, high]
    return number(value)


def _number(value: object) -> float | int:
    if not is_number(value):
        raise ValueError(f"expected a number, got {value!r}")
    assert isinstance(value, int | float)
    return value
