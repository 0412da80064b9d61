"""Which answers are a rate limit, and how long a target is left alone after one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from services.router.writeback.connectors import Target
from services.router.writeback.ratelimit import Pauses, rate_limit_wait
from services.router.writeback.schemas import hide_url_secrets, hide_userinfo
from services.router.writeback.sender import redact

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
CAP = timedelta(seconds=600)
RESET_45 = str(int((NOW + timedelta(minutes=45)).timestamp()))


@pytest.mark.parametrize(
    ("status", "headers", "wait"),
    [
        (429, {"Retry-After": "30"}, timedelta(seconds=30)),
        (429, {"Retry-After": "Mon, 07 Dec 2026 09:02:00 GMT"}, timedelta(minutes=2)),
        (429, {}, timedelta(minutes=1)),  # no time named: a minute
        (429, {"Retry-After": "0"}, timedelta(seconds=1)),  # never a loop hammering the vendor
        (429, {"Retry-After": "99999999"}, timedelta(hours=1)),  # an absurd wait is capped
        # GitHub's primary limit: 403 or 429, nothing left, until the reset (the later of the two).
        (403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": RESET_45}, timedelta(minutes=45)),
        (
            429,
            {"x-ratelimit-remaining": "0", "x-ratelimit-reset": RESET_45, "Retry-After": "5"},
            timedelta(minutes=45),
        ),
        (403, {"x-ratelimit-remaining": "0"}, timedelta(minutes=1)),
        # GitHub's secondary limit: a 403 with Retry-After.
        (403, {"Retry-After": "120"}, timedelta(minutes=2)),
        # Not rate limits: a plain refusal, quota left, another status.
        (403, {}, None),
        (403, {"x-ratelimit-remaining": "12", "x-ratelimit-reset": RESET_45}, None),
        (503, {"Retry-After": "30"}, None),
        (401, {"x-ratelimit-remaining": "0"}, None),
    ],
)
def test_rate_limit_wait(status: int, headers: dict[str, str], wait: timedelta | None) -> None:
    assert rate_limit_wait(httpx.Response(status, headers=headers), NOW, CAP) == wait


def test_a_longer_cap_is_kept() -> None:
    answer = httpx.Response(429, headers={"Retry-After": "7200"})
    assert rate_limit_wait(answer, NOW, timedelta(hours=3)) == timedelta(hours=2)


def test_a_pause_keeps_the_latest_time_and_ends() -> None:
    pauses = Pauses()
    pauses.pause(1, NOW + timedelta(seconds=60), "first")
    assert pauses.pause(1, NOW + timedelta(seconds=30), "sooner").why == "first"
    assert pauses.paused(NOW) == [1] and pauses.get(2, NOW) is None
    assert (
        pauses.paused(NOW + timedelta(seconds=60)) == []
        and pauses.get(1, NOW + timedelta(seconds=60)) is None
    )


def test_a_password_in_a_targets_url_is_redacted() -> None:
    target = Target("webhook", "https://bot:hunter2-hunter2@hooks.example/in", "s" * 20, {})
    text = "ConnectError: https://bot:hunter2-hunter2@hooks.example/in refused"
    assert "hunter2" not in redact(text, target, [])
    assert hide_userinfo("https://bot:pw12@hooks.example/in?x=1") == "https://***@hooks.example/in?x=1"
    odd = Target("webhook", "https://[::1/in", "s" * 20, {})  # does not parse: nothing to hide
    assert redact("x", odd, []) == "x"


def test_a_token_in_a_webhook_urls_query_is_redacted() -> None:
    # The delivery's last error, which viewers read, quotes the URL it was sent to.
    target = Target("webhook", "https://hooks.example/in?token=q-t0ken-0123456789&v=2", "s" * 20, {})
    text = "HTTP 500 from POST https://hooks.example/in?token=q-t0ken-0123456789&v=2: oops"
    assert "q-t0ken" not in redact(text, target, [])
    assert (
        hide_url_secrets("https://bot:pw12@hooks.example/in?token=abc&flag&=x#top")
        == "https://***@hooks.example/in?token=***&***&=***#top"
    )
    assert hide_url_secrets("https://hooks.example/in") == "https://hooks.example/in"
    assert hide_url_secrets("https://hooks.example/in?") == "https://hooks.example/in?"
