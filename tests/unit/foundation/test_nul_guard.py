"""The U+0000 guard decides on the parsed JSON, not on the bytes, and names where the NUL is."""

from __future__ import annotations

import json

import pytest

from shared.http.nul_guard import body_nul_pointer


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
    assert body_nul_pointer(body) == pointer


@pytest.mark.parametrize(
    "body",
    [
        b'{"a": "\\\\u0000"}',  # an escaped backslash, then the text u0000: no NUL
        b'{"a": "x", "b": ["\\u0001"]}',
        b"",
        b"not json \\u0000",
    ],
)
def test_no_nul_no_finding(body: bytes) -> None:
    assert body_nul_pointer(body) is None


def test_the_escaped_backslash_really_is_text() -> None:
    assert json.loads(b'{"a": "\\\\u0000"}') == {"a": "\\u0000"}
