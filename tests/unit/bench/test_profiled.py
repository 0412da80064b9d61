"""BENCH_PROFILE runs a named process under py-spy; BENCH_PROFILE_GIL=1 samples the GIL holder only."""

from __future__ import annotations

import pytest

from bench.harness.procs import profiled

ARGV = ["python", "-m", "services.router"]


def test_a_process_not_named_runs_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCH_PROFILE", "intake,metrics")
    assert profiled("router", ARGV) == ARGV


@pytest.mark.parametrize(("gil", "expected"), [("", False), ("1", True)])
def test_a_named_process_runs_under_py_spy(monkeypatch: pytest.MonkeyPatch, gil: str, expected: bool) -> None:
    monkeypatch.setenv("BENCH_PROFILE", "intake,router")
    monkeypatch.setenv("BENCH_PROFILE_GIL", gil)
    argv = profiled("router", ARGV)
    assert argv[0].endswith("py-spy") and argv[1] == "record"
    assert argv[argv.index("--") + 1 :] == ARGV
    assert ("--gil" in argv) is expected
    assert argv[argv.index("-o") + 1].endswith(".txt") and "profile-router-" in argv[argv.index("-o") + 1]
