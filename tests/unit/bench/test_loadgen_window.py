"""The load generator's rate counts the 2xx answers that came within the measured window, over that
window: answers to requests still in flight at its end come after it and are not in it."""

from __future__ import annotations

import argparse
import asyncio

import pytest

from bench.harness import loadgen
from bench.harness.loadgen import Run

SERVICE_S = 0.2  # every answer takes this long


class Slow:
    def __init__(self, host: str, port: int) -> None:
        pass

    async def request(self, raw: bytes) -> int:
        await asyncio.sleep(SERVICE_S)
        return 202

    def close(self) -> None:
        pass


def test_answers_after_the_window_are_not_counted_in_its_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loadgen, "Connection", Slow)
    args = argparse.Namespace(
        webhook=None, host="127.0.0.1", port=1, path="/v1/tickets", token="t", prefix="p",
        rate=0.0, concurrency=4, warmup=0.0, duration=0.5, max_requests=1000, timeout=5.0,
    )  # fmt: skip
    run = Run(args)
    summary = asyncio.run(run.main())
    # Each connection: answers at 0.2 and 0.4 s, a third request sent at 0.4 s answered at 0.6 s.
    in_window = sum(1 for t in run.ok_times if t <= run.deadline)
    assert summary["ok"] == 12 and in_window == 8
    window = summary["measured_seconds"]
    assert isinstance(window, float) and window == pytest.approx(0.5, abs=0.01)
    assert summary["ok_per_second"] == pytest.approx(in_window / window, rel=0.01)
