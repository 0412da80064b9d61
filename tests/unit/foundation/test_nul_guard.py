"""The U+0000 and lone-surrogate guard decides on the parsed JSON, not on the bytes, and names where
the character is."""

from __future__ import annotations

import pytest

from shared.db.storable import NUL_MESSAGE, SURROGATE_MESSAGE
from shared.http.nul_guard import body_unstorable


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        (b'{"a": "x\\u0000"}', "/a"),
        (b'{"a": [1, {"b": "ok"}, {"c~/d": "\\u0000"}]}', "/a/2/c~0~1d"),
        (b'{"a\\u0000b": 1}', "/a\x00b"),  # a key: the member's pointer
        (b'"\\u0000"', "/"),
        ('{"a": "\\u0000"}'.encode("utf-16"), "/a"),  # UTF-16: FastAPI's parser reads it too
        (b'{"n": 1e999, "s": "\\u0000"}', "/s"),  # a number orjson refuses
    ],
)
def test_a_nul_is_found_where_it_is(body: bytes, pointer: str) -> None:
    assert body_unstorable(body) == (pointer, NUL_MESSAGE)


@pytest.mark.parametrize(
    "body",
    [
        b'{"a": "\\\\u0000"}',  # an escaped backslash, then the text u0000: no NUL
        b'{"a": "x", "b": ["\\u0001"]}',
        b"",
        b"not json \\u0000",
        b'{"a": "\\ud83d\\ude00"}',  # a surrogate pair: one character (an emoji), storable
    ],
)
def test_no_nul_no_finding(body: bytes) -> None:
    assert body_unstorable(body) is None


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        (b'{"when": {"value": "a\\ud800"}}', "/when/value"),  # a high surrogate alone
        (b'{"x": ["ok", "\\udc00b"]}', "/x/1"),  # a low one alone
        (b'{"k\\udbff": 1}', "/k\\udbff"),  # in a key: spelled as its escape (UTF-8 has none)
    ],
)
def test_a_lone_surrogate_is_found_where_it_is(body: bytes, pointer: str) -> None:
    assert body_unstorable(body) == (pointer, SURROGATE_MESSAGE)


def test_a_body_nested_a_thousand_levels_is_walked_without_recursion() -> None:
    body = b'{"a":' * 900 + b'"\\u0000"' + b"}" * 900
    found = body_unstorable(body)
    assert found is not None and found[0].count("/a") == 900


def test_a_body_nested_past_a_parsers_depth_raises_nothing() -> None:
    """Past orjson's depth and perhaps json's too: found, or left to the operation, never raised."""
    body = b"[" * 5_000 + b'"\\u0000"' + b"]" * 5_000
    assert body_unstorable(body) in (None, ("/0" * 5_000, NUL_MESSAGE))
