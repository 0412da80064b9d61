"""Every operator, positive and negative, across every field family."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from .helpers import NOW, holds, leaf

L = leaf
DT = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

CASES = [
    # --- strings: equals / not_equals / in / not_in, case-insensitive by default
    (L("channel", "equals", "Email"), {"channel": "email"}, True),
    (L("channel", "equals", "email"), {"channel": "web"}, False),
    (L("channel", "equals", "Email", case_sensitive=True), {"channel": "email"}, False),
    (L("channel", "not_equals", "web"), {"channel": "email"}, True),
    (L("channel", "not_equals", "web"), {"channel": "WEB"}, False),
    (L("channel", "not_equals", "web"), {}, True),  # missing facts satisfy negative operators
    (L("channel", "in", ["web", "chat"]), {"channel": "Chat"}, True),
    (L("channel", "in", ["web", "chat"]), {"channel": "phone"}, False),
    (L("channel", "in", ["web"]), {}, False),
    (L("channel", "not_in", ["web", "chat"]), {"channel": "phone"}, True),
    (L("channel", "not_in", ["web", "chat"]), {"channel": "web"}, False),
    (L("channel", "not_in", ["web"]), {}, True),
    # --- substring operators
    (L("subject", "contains", "Refund"), {"subject": "need a REFUND now"}, True),
    (L("subject", "contains", "refund"), {"subject": "need a rebate"}, False),
    (L("subject", "contains", "Refund", case_sensitive=True), {"subject": "need a refund"}, False),
    (L("subject", "starts_with", "re:"), {"subject": "RE: hello"}, True),
    (L("subject", "starts_with", "re:"), {"subject": "hello re:"}, False),
    (L("subject", "ends_with", "!!"), {"subject": "help!!"}, True),
    (L("subject", "ends_with", "!!"), {"subject": "!!help"}, False),
    (L("description", "contains", "stack trace"), {"description": "see the Stack Trace below"}, True),
    (L("description", "contains", "stack trace"), {"description": "no trace"}, False),
    (L("text", "contains", "invoice"), {"subject": "Invoice", "description": "x"}, True),
    (L("text", "contains", "invoice"), {"subject": "x", "description": "the invoice"}, True),
    (L("text", "contains", "invoice"), {"subject": "x", "description": "y"}, False),
    (L("text", "contains", "end\nstart"), {"subject": "the end", "description": "start here"}, True),
    # text is what the ticket says: without a subject (chats) or a description, the other alone
    (L("text", "starts_with", "[alert]"), {"description": "[ALERT] disk full"}, True),
    (L("text", "matches", "^\\[alert\\]"), {"description": "[ALERT] disk full"}, True),
    (L("text", "ends_with", "broken"), {"subject": "Printer broken"}, True),
    (L("text", "equals", "printer broken"), {"subject": "Printer broken"}, True),
    (L("text", "exists"), {"subject": "", "description": ""}, False),
    (L("text", "exists", False), {}, True),
    # --- case-insensitive is Unicode case folding, not lower-casing: ß is SS, final ς is Σ
    (L("subject", "contains", "Straße"), {"subject": "STRASSE GESPERRT"}, True),
    (L("subject", "contains", "STRASSE"), {"subject": "die Straße ist gesperrt"}, True),
    (L("subject", "contains", "ΟΔΟΣ"), {"subject": "ΟΔΟΣΗΜΑΝΣΗ"}, True),  # lower: οδος, οδοσημανση
    (L("subject", "contains", "café"), {"subject": "CAFE"}, False),  # accents still count
    (L("channel", "in", ["Straße"]), {"channel": "STRASSE"}, True),
    (L("tags", "contains", "straße"), {"tags": ["STRASSE"]}, True),
    (L("custom.street", "equals", "Straße"), {"custom": {"street": "STRASSE"}}, True),
    (L("subject", "contains", "Straße", case_sensitive=True), {"subject": "STRASSE"}, False),
    # --- text is compared in Unicode NFC: é typed as e + U+0301 (macOS, a PDF) is the é a rule names
    (L("subject", "contains", "café"), {"subject": "Le cafe\u0301 est froid"}, True),
    (L("subject", "contains", "cafe\u0301"), {"subject": "Le café est froid"}, True),
    (L("subject", "contains", "CAFÉ", case_sensitive=True), {"subject": "CAFE\u0301"}, True),
    (L("subject", "equals", "Zoë"), {"subject": "ZOE\u0308"}, True),
    (L("subject", "starts_with", "cafe"), {"subject": "cafe\u0301"}, False),  # é is not e
    (L("subject", "matches", "^café$"), {"subject": "cafe\u0301"}, True),
    (L("text", "contains", "résumé"), {"description": "my re\u0301sume\u0301"}, True),
    (L("requester.name", "in", ["José"]), {"requester_name": "Jose\u0301"}, True),
    (L("organization", "ends_with", "señor"), {"organization": "Casa Sen\u0303or"}, True),
    (L("tags", "contains", "café"), {"tags": ["cafe\u0301"]}, True),
    (L("custom.city", "equals", "Malmö"), {"custom": {"city": "Malmo\u0308"}}, True),
    (L("custom.city", "in", ["Malmö"]), {"custom": {"city": ["Malmo\u0308"]}}, True),
    (L("subject", "contains", "ι"), {"subject": "ΐ"}, False),  # folding decomposes ΐ: recomposed
    # --- regex (RE2), case-insensitive by default, raw pattern never lower-cased
    (L("subject", "matches", r"order\s*#?\d{5}"), {"subject": "ORDER #12345"}, True),
    (L("subject", "matches", r"order\s*#?\d{5}"), {"subject": "order #12"}, False),
    (L("subject", "matches", r"\S+@\S+"), {"subject": "mail a@b.c"}, True),
    (L("subject", "matches", r"^[A-Z]+$", case_sensitive=True), {"subject": "abc"}, False),
    (L("subject", "matches", r"^[A-Z]+$", case_sensitive=True), {"subject": "ABC"}, True),
    (L("requester.name", "matches", "^dr\\.? "), {}, False),
    # --- exists
    (L("language", "exists"), {"language": "de"}, True),
    (L("language", "exists"), {}, False),
    (L("subject", "exists"), {"subject": ""}, False),
    (L("language", "exists", False), {}, True),
    # --- requester fields
    (L("requester.email", "ends_with", "@acme.com"), {"requester_email": "Bob@ACME.com"}, True),
    (L("requester.domain", "in", ["acme.com", "globex.com"]), {"requester_email": "bob@Globex.com"}, True),
    (L("requester.domain", "equals", "acme.com"), {"requester_email": "no-at-sign"}, False),
    (L("requester.name", "starts_with", "dr"), {"requester_name": "Dr. Who"}, True),
    (L("organization", "equals", "ACME Corp"), {"organization": "acme corp"}, True),
    (L("customer_tier", "in", ["enterprise", "vip"]), {"customer_tier": "Free"}, False),
    (L("source", "equals", "zendesk"), {"source": "zendesk"}, True),
    (L("language", "equals", "de"), {"language": "fr"}, False),
    (L("category", "equals", "billing"), {"category": "Billing"}, True),
    # --- tags: contains is membership, in is intersection, matches any tag
    (L("tags", "contains", "VIP"), {"tags": ["vip", "beta"]}, True),
    (L("tags", "contains", "vi"), {"tags": ["vip"]}, False),
    (L("tags", "in", ["a", "vip"]), {"tags": ["vip"]}, True),
    (L("tags", "in", ["a", "b"]), {"tags": ["vip"]}, False),
    (L("tags", "not_in", ["a", "b"]), {"tags": ["vip"]}, True),
    (L("tags", "not_in", ["a", "vip"]), {"tags": ["vip"]}, False),
    (L("tags", "matches", "^team-"), {"tags": ["x", "team-ops"]}, True),
    (L("tags", "matches", "^team-"), {"tags": ["x"]}, False),
    (L("tags", "exists"), {"tags": []}, False),
    (L("tags", "exists"), {"tags": ["x"]}, True),
    # --- status / priority
    (L("status", "equals", "OPEN"), {"status": "open"}, True),
    (L("status", "in", ["solved", "closed"]), {"status": "open"}, False),
    (L("priority", "equals", "urgent"), {"priority": "P1"}, True),
    (L("priority", "not_in", ["P1", "P2"]), {"priority": "P3"}, True),
    (L("priority", "in", ["P1", "P2"]), {}, False),
    # --- numbers
    (L("category_confidence", "gt", 0.8), {"category_confidence": 0.81}, True),
    (L("category_confidence", "gt", 0.8), {"category_confidence": 0.8}, False),
    (L("category_confidence", "gte", 0.8), {"category_confidence": 0.8}, True),
    (L("category_confidence", "gte", 0.8), {"category_confidence": 0.79}, False),
    (L("category_confidence", "lt", 0.5), {"category_confidence": 0.4}, True),
    (L("category_confidence", "lt", 0.5), {"category_confidence": 0.5}, False),
    (L("category_confidence", "lte", 0.5), {"category_confidence": 0.5}, True),
    (L("category_confidence", "lte", 0.5), {"category_confidence": 0.6}, False),
    (L("category_confidence", "between", [0.2, 0.4]), {"category_confidence": 0.4}, True),
    (L("category_confidence", "between", [0.2, 0.4]), {"category_confidence": 0.41}, False),
    (L("category_confidence", "gt", 0.1), {}, False),
    (L("category_confidence", "equals", 1), {"category_confidence": 1.0}, True),
    (L("urgency", "gte", "high"), {"urgency": 4}, True),
    (L("urgency", "gte", "high"), {"urgency": "medium"}, False),
    (L("impact", "equals", "critical"), {"impact": 4}, True),
    (L("impact", "in", [1, "medium"]), {"impact": 2}, True),
    (L("impact", "not_equals", 1), {"impact": 1}, False),
    (L("urgency", "between", ["low", "medium"]), {"urgency": 3}, False),
    # --- created_at / age_minutes
    (L("created_at", "before", DT.isoformat()), {"created_at": DT - timedelta(seconds=1)}, True),
    (L("created_at", "before", DT.isoformat()), {"created_at": DT}, False),
    (L("created_at", "after", DT.isoformat()), {"created_at": DT}, True),
    (L("created_at", "after", DT.isoformat()), {"created_at": DT - timedelta(days=1)}, False),
    (L("created_at", "after", "2024-05-01T14:00:00+02:00"), {"created_at": DT}, True),  # same instant
    (L("created_at", "after", DT.isoformat()), {}, False),
    (L("created_at", "exists"), {"created_at": DT}, True),
    (L("age_minutes", "gt", 60), {"created_at": NOW - timedelta(minutes=61)}, True),
    (L("age_minutes", "gt", 60), {"created_at": NOW - timedelta(minutes=59)}, False),
    (L("age_minutes", "lte", 60), {}, False),
    # --- custom fields: type decided by the fact
    (L("custom.plan", "equals", "Gold"), {"custom": {"plan": "gold"}}, True),
    (L("custom.plan", "equals", "gold"), {"custom": {"plan": "silver"}}, False),
    (L("custom.plan", "equals", "gold"), {}, False),
    (L("custom.plan", "not_equals", "gold"), {}, True),
    (L("custom.seats", "gt", 100), {"custom": {"seats": 150}}, True),
    (L("custom.seats", "gt", 100), {"custom": {"seats": "150"}}, True),  # numeric strings compare
    (L("custom.seats", "gt", 100), {"custom": {"seats": "many"}}, False),
    (L("custom.seats", "between", [1, 10]), {"custom": {"seats": 10}}, True),
    # ... and equal as numbers, as the order operators see them (gte 150 and lte 150 held)
    (L("custom.seats", "equals", 150), {"custom": {"seats": "150"}}, True),
    (L("custom.seats", "equals", 150), {"custom": {"seats": "150.0"}}, True),
    (L("custom.seats", "equals", 150), {"custom": {"seats": "151"}}, False),
    (L("custom.seats", "not_equals", 150), {"custom": {"seats": "150"}}, False),
    (L("custom.seats", "in", [100, 150]), {"custom": {"seats": "150"}}, True),
    (L("custom.seats", "not_in", [100, 150]), {"custom": {"seats": "150"}}, False),
    (L("custom.seats", "equals", 150), {"custom": {"seats": ["90", "150"]}}, True),
    (L("custom.seats", "equals", 150), {"custom": {"seats": "many"}}, False),
    (L("custom.seats", "equals", "150"), {"custom": {"seats": "150.0"}}, False),  # strings stay text
    (L("custom.flag", "equals", True), {"custom": {"flag": True}}, True),
    (L("custom.flag", "equals", 1), {"custom": {"flag": True}}, False),  # booleans are not numbers
    (L("custom.products", "contains", "API"), {"custom": {"products": ["api", "web"]}}, True),
    (L("custom.products", "equals", "web"), {"custom": {"products": ["api", "web"]}}, True),
    (L("custom.products", "in", ["x", "y"]), {"custom": {"products": ["api", "web"]}}, False),
    (L("custom.products", "not_in", ["x", "y"]), {"custom": {"products": ["api", "web"]}}, True),
    (L("custom.note", "contains", "urgent"), {"custom": {"note": "Very URGENT"}}, True),
    (L("custom.note", "starts_with", "very"), {"custom": {"note": "Very URGENT"}}, True),
    (L("custom.note", "ends_with", "x"), {"custom": {"note": 5}}, False),
    (L("custom.note", "matches", r"\d+"), {"custom": {"note": "ref 42"}}, True),
    (L("custom.note", "exists"), {"custom": {"note": None}}, False),
    (L("custom.obj", "exists"), {"custom": {"obj": {"nested": 1}}}, False),  # objects are not matchable
]


@pytest.mark.parametrize(("condition", "fact_kwargs", "expected"), CASES)
def test_operator(condition, fact_kwargs, expected):
    assert holds(condition, **fact_kwargs) is expected


def test_every_operator_and_field_is_covered():
    from services.router.rules.fields import ALL_OPS, FIELDS

    ops = {c["op"] for c, _, _ in CASES} | {"before", "after", "between"}
    fields = {c["field"] for c, _, _ in CASES} | {"time_of_day", "weekday"}
    assert ops == ALL_OPS
    assert set(FIELDS) <= fields


@pytest.mark.parametrize(
    ("condition", "now", "expected"),
    [
        # NOW is Monday 10:30 UTC = 12:30 in Berlin (CEST) = Sunday 23:30 in Pago Pago (UTC-11).
        (L("time_of_day", "after", "12:00"), NOW, True),
        (L("time_of_day", "after", "12:31"), NOW, False),
        (L("time_of_day", "after", "12:30"), NOW, True),  # after is >=: before/after split the day
        (L("time_of_day", "before", "12:30"), NOW, False),
        (L("time_of_day", "before", "13:00"), NOW, True),
        (L("time_of_day", "between", ["09:00", "17:00"]), NOW, True),
        (L("time_of_day", "between", ["13:00", "17:00"]), NOW, False),
        (L("time_of_day", "between", ["22:00", "06:00"]), datetime(2024, 5, 6, 23, 0, tzinfo=UTC), True),
        (L("time_of_day", "between", ["22:00", "06:00"]), datetime(2024, 5, 6, 3, 0, tzinfo=UTC), True),
        (L("time_of_day", "between", ["22:00", "06:00"]), NOW, False),
        (L("weekday", "equals", "mon"), NOW, True),
        (L("weekday", "in", ["sat", "sun"]), NOW, False),
        (L("weekday", "not_in", ["sat", "sun"]), NOW, True),
        (L("weekday", "not_equals", "monday"), NOW, False),
        # Sunday 23:30 UTC is already Monday 01:30 in Berlin.
        (L("weekday", "equals", "mon"), datetime(2024, 5, 5, 23, 30, tzinfo=UTC), True),
    ],
)
def test_time_fields_use_the_rule_set_time_zone(condition, now, expected):
    assert holds(condition, "Europe/Berlin", now=now) is expected


def test_time_zone_changes_the_answer():
    sunday_in_pago_pago = L("weekday", "equals", "sun")
    assert holds(sunday_in_pago_pago, "Pacific/Pago_Pago") is True
    assert holds(sunday_in_pago_pago, "UTC") is False


def test_naive_datetimes_are_utc():
    assert holds(
        L("created_at", "before", "2024-05-01T12:00:00+00:00"), created_at=datetime(2024, 5, 1, 11, 0)
    )


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"all": [L("channel", "equals", "web"), L("tags", "contains", "vip")]}, True),
        ({"all": [L("channel", "equals", "web"), L("tags", "contains", "beta")]}, False),
        ({"any": [L("channel", "equals", "chat"), L("tags", "contains", "vip")]}, True),
        ({"any": [L("channel", "equals", "chat"), L("tags", "contains", "beta")]}, False),
        ({"not": L("channel", "equals", "web")}, False),
        ({"not": {"not": L("channel", "equals", "web")}}, True),
        (
            {
                "all": [
                    {"any": [L("urgency", "gte", 3), L("impact", "gte", 3)]},
                    {"not": {"any": [L("status", "equals", "solved"), L("status", "equals", "closed")]}},
                ]
            },
            True,
        ),
        (
            {
                "all": [
                    {"any": [L("urgency", "gte", 4), L("impact", "gte", 4)]},
                    L("channel", "equals", "web"),
                ]
            },
            False,
        ),
        ({"all": [L("subject", "contains", "x")] * 5}, False),  # more than three children
        ({"any": [L("subject", "contains", "x")] * 4 + [L("channel", "equals", "web")]}, True),
    ],
)
def test_nesting(condition, expected):
    kwargs: dict[str, Any] = {"channel": "web", "tags": ["vip"], "urgency": 3, "impact": 1, "status": "open"}
    assert holds(condition, **kwargs) is expected


@pytest.mark.parametrize(
    ("condition", "timezone", "now"),
    [
        # 9999-12-31 23:00 UTC is 08:00 on a Saturday in Tokyo, a year datetime cannot hold.
        (
            L("time_of_day", "between", ["07:59", "08:01"]),
            "Asia/Tokyo",
            datetime(9999, 12, 31, 23, 0, tzinfo=UTC),
        ),
        (L("weekday", "equals", "sat"), "Asia/Tokyo", datetime(9999, 12, 31, 23, 0, tzinfo=UTC)),
        # 0001-01-01 01:00 UTC is 20:00 on a Sunday in New York, the year before year 1.
        (
            L("time_of_day", "between", ["19:55", "20:05"]),
            "America/New_York",
            datetime(1, 1, 1, 1, 0, tzinfo=UTC),
        ),
        (L("weekday", "equals", "sun"), "America/New_York", datetime(1, 1, 1, 1, 0, tzinfo=UTC)),
    ],
)
def test_time_fields_at_the_ends_of_the_calendar_hold_instead_of_raising(condition, timezone, now):
    # A simulated `now` or an event time near the ends of datetime's range: the local wall clock
    # lies outside it. Evaluating raised OverflowError (a 500 on POST /v1/routing/simulate).
    assert holds(condition, timezone, now=now) is True
