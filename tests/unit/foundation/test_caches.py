"""Lookup caches bounded against scans of random names keep what is worth keeping."""

from __future__ import annotations

from shared.caches import make_room


def test_a_full_cache_drops_what_is_not_worth_keeping_first() -> None:
    entries = {f"random-{i}": None for i in range(9_999)} | {"valid": "caller"}
    make_room(entries, 10_000, lambda entry: entry is not None)
    assert entries == {"valid": "caller"}


def test_a_cache_full_of_what_is_worth_keeping_is_cleared() -> None:
    entries = {f"valid-{i}": "caller" for i in range(10)}
    make_room(entries, 10, lambda entry: entry is not None)
    assert entries == {}


def test_a_cache_below_its_limit_is_left_alone() -> None:
    entries: dict[str, str | None] = {"unknown": None, "valid": "caller"}
    make_room(entries, 3, lambda entry: entry is not None)
    assert entries == {"unknown": None, "valid": "caller"}
