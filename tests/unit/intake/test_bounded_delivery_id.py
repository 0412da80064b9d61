"""Delivery ids as stored: the vendor's own when it fits the column, a digest otherwise."""

from __future__ import annotations

from services.intake.deliveries import MAX_DELIVERY_ID
from services.intake.receiver.endpoints import _bounded_delivery_id


def test_an_ordinary_id_is_kept() -> None:
    assert (
        _bounded_delivery_id("72d3162e-cc78-11e3-81ab-4c9367dc0958") == "72d3162e-cc78-11e3-81ab-4c9367dc0958"
    )


def test_an_id_too_long_or_with_u0000_becomes_a_stable_digest() -> None:
    for raw in ("x" * (MAX_DELIVERY_ID + 1), "conversation\x00123"):
        bounded = _bounded_delivery_id(raw)
        assert bounded.startswith("sha256id:") and "\x00" not in bounded
        assert len(bounded) <= MAX_DELIVERY_ID
        assert bounded == _bounded_delivery_id(raw)  # a redelivery maps to the same id
    assert _bounded_delivery_id("a\x00b") != _bounded_delivery_id("a\x00c")
