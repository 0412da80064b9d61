"""A JSON object that gives a key twice: found, with the JSON pointer of the repeat, on the parsed
document (never on the bytes), however deep."""

from __future__ import annotations

import pytest

from shared.http.json_body import repeated_key


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        (b'{"name": "a", "name": "b"}', "/name"),
        (b'{"rules": [{"id": "x"}, {"id": "y", "when": {}, "when": {"any": []}}]}', "/rules/1/when"),
        (b'{"a~/b": {"k": 1, "k": 2}}', "/a~0~1b/k"),
        (b'{"\\u0061": 1, "a": 2}', "/a"),  # the same key, escaped once
        (b'[{"x": 1}, {"y": {"z": 1, "z": 1}}]', "/1/y/z"),
        (b'{"k\\ud800": 1, "k\\ud800": 2}', "/k\\ud800"),  # spelled as its escape (UTF-8 has none)
    ],
)
def test_a_repeated_key_is_found_where_it_is(body: bytes, pointer: str) -> None:
    assert repeated_key(body) == pointer


@pytest.mark.parametrize(
    "body",
    [
        b'{"a": {"k": 1}, "b": {"k": 1}}',  # one key in two objects
        b'{"a": "a", "A": "A"}',  # keys differ in case
        b'[{"k": 1}, {"k": 2}]',
        b"",
        b"not json",
        b'{"n": NaN, "m": 1e999}',
    ],
)
def test_no_repeat_no_finding(body: bytes) -> None:
    assert repeated_key(body) is None


def test_a_body_nested_a_thousand_levels_is_walked_without_recursion() -> None:
    body = b'{"a":' * 900 + b'{"k": 1, "k": 2}' + b"}" * 900
    assert repeated_key(body) == "/a" * 900 + "/k"


def test_a_body_nested_past_the_parsers_depth_raises_nothing() -> None:
    assert repeated_key(b"[" * 100_000 + b"]" * 100_000) is None
