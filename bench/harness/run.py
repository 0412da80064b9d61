"""Running the load generator and reporting rows for the summary table."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.harness.procs import REPO_ROOT
from bench.harness.webhooks import ticket_key_of


@dataclass
class Row:
    """One line of the summary table: what was measured, and the target it is held against."""

    bench: str
    metric: str
    value: float | None
    unit: str
    target: str = ""
    met: bool | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def loadgen(
    port: int,
    token: str,
    workdir: Path,
    *,
    duration: float,
    warmup: float,
    concurrency: int = 32,
    rate: float = 0.0,
    times: bool = False,
    webhook: str | None = None,
    secret: str = "",
) -> tuple[dict[str, Any], list[tuple[str, float]]]:
    """Run the load generator in its own process; returns its summary and, with ``times``, the
    (ticket key, monotonic time) of every 2xx answer. It posts native tickets to
    ``POST /v1/tickets``, or with ``webhook`` (a mode of bench/harness/webhooks.py) deliveries
    signed with ``secret``."""
    tag = uuid.uuid4().hex[:8]
    prefix = f"bench-{tag}"
    out, times_path = workdir / f"loadgen-{tag}.json", workdir / f"loadgen-{tag}-times.json"
    argv = [
        sys.executable, "-m", "bench.harness.loadgen", "--port", str(port), "--token", token,
        "--prefix", prefix, "--duration", str(duration), "--warmup", str(warmup),
        "--concurrency", str(concurrency), "--rate", str(rate), "--out", str(out),
    ]  # fmt: skip
    if times:
        argv += ["--times", str(times_path)]
    if webhook:
        argv += ["--webhook", webhook, f"--secret={secret}"]  # one argument: a secret may start with "-"
    subprocess.run(argv, cwd=REPO_ROOT, check=True, timeout=duration + warmup + 120)
    summary = json.loads(out.read_text())
    if not times:
        return summary, []
    pairs = json.loads(times_path.read_text())
    return summary, [(ticket_key_of(webhook, prefix, index), at) for index, at in pairs]
