"""Benchmark of the metrics service's live backlog state (services/metrics/backlog).

    .venv/bin/python bench/bench_metrics.py [--sizes 10000,100000,1000000] [--json OUT]

Each size runs in a fresh subprocess so resident memory is not polluted by a previous size.
Per size it builds a state with that many open tickets through ``BacklogState.apply`` (~20 teams,
4 priorities, ages up to 10 days, mixed deadlines), then measures:

* scrape: ``generate_latest`` over a registry holding only the ``BacklogCollector`` (median);
* partitioned scrape: the same tickets spread over ``PARTITIONS`` shards by key, exposed as the
  service exposes them (``ShardsCollector`` and ``FlowCollector`` over a ``BacklogIngest``): the
  merged gauges plus counters and histograms per partition (median, and the size of the text);
* build: the state is filled through ``BacklogState.apply`` with timestamps handed over as
  datetimes (setup speed only; the honest per-event costs are the ingest figures below);
* memory: VmRSS delta (``/proc/self/status``) from before the state existed to after the build,
  divided by open tickets; includes the 200k recently-seen event ids and interpreter overhead;
* ingestion: events per CPU second (and per wall second) of ``apply`` on a mixed stream (new,
  resolve, reopen, priority/status and team changes, clock advancing 10 ms per event) on
  pre-decoded envelopes, single thread; and per CPU second of
  ``EventEnvelope.from_bytes`` + ``apply`` on a smaller sample (what the consumer pays in total);
* checkpoint: size and time of a checkpoint (and how long of it the state stays locked: ingest
  and scrapes wait that long) and of ``from_checkpoint``.
It prints what it measured; it does not judge it.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy.ext.asyncio import async_sessionmaker

from services.metrics.app import ShardsCollector
from services.metrics.backlog import BacklogCollector, BacklogState, FlowCollector
from services.metrics.backlog.checkpoint import capture, seal
from services.metrics.ingest.consumer import BacklogIngest, Shard
from shared.events import EventEnvelope, EventType

TEAMS = [f"team-{i:02d}" for i in range(20)]
PRIOS = ["P1", "P2", "P3", "P4"]
START = datetime(2024, 6, 1, tzinfo=UTC)
DAY = 86_400.0
PARTITIONS = 6  # the product's default partition count per topic (TOPIC_PARTITIONS)


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def iso(seconds: float) -> str:
    return (START + timedelta(seconds=seconds)).isoformat()


def stamp(seconds: float) -> datetime:
    return START + timedelta(seconds=seconds)


def ticket(
    i: int,
    now: float,
    revision: int,
    status: str = "open",
    team: int | None = None,
    prio: int | None = None,
    resolved: float | None = None,
    when: Callable[[float], Any] = iso,
) -> dict[str, Any]:
    """A deterministic ticket #i as the router would describe it (JSON form, as decoded)."""
    created = now - (i * 7919 % int(10 * DAY))  # ages spread over 10 days
    team_i = i % 21 if team is None else team  # 1 in 21 stays in triage
    prio_i = i % 4 if prio is None else prio
    target = (4, 8, 24, 72)[prio_i] * 3600.0
    return {
        "ticket_key": f"zendesk:{i}",
        "source": ("zendesk", "jira", "email")[i % 3],
        "revision": revision,
        "status": status,
        "team": None if team_i == 20 else TEAMS[team_i],
        "priority": PRIOS[prio_i],
        "category": f"cat-{i % 30}",
        "created_at": when(created),
        "routed_at": when(created + 30),
        "resolved_at": None if resolved is None else when(resolved),
        "sla": {
            "first_response_due": when(created + target / 4),
            "resolution_due": when(created + target),
            "first_responded_at": when(created + 600) if i % 2 else None,
            "paused": status == "pending",
            "warning_sent": False,
            "breached": False,
            "policy": None,
        },
    }


def envelope(etype: EventType, state: dict[str, Any], now: float) -> EventEnvelope:
    # model_construct: the payload is already the validated JSON form; building 1M envelopes with
    # full validation would dominate the benchmark without being part of the measured path.
    return EventEnvelope.model_construct(
        event_id=uuid.uuid4(),
        type=etype,
        schema_version=1,
        ticket_key=state["ticket_key"],
        occurred_at=START + timedelta(seconds=now),
        produced_at=START,
        source=state["source"],
        payload={"state": state, "reasons": []},
    )


def mixed_stream(
    n_open: int, count: int, now: float, first_new: int
) -> Iterator[tuple[EventEnvelope, float]]:
    """Event kinds by step: new 30 %, resolve 20 %, reopen 10 %, priority/status change 20 %, team
    change 20 %. Changes target arbitrary existing tickets, so some also reopen resolved ones."""
    resolved: list[int] = []
    next_new = first_new
    for step in range(count):
        now += 0.01
        kind = step % 10
        i = (step * 104_729) % n_open
        rev = step + 1
        if kind < 3:
            state, etype = ticket(next_new, now, rev), EventType.TICKET_ROUTED
            next_new += 1
        elif kind < 5:
            state, etype = ticket(i, now, rev, status="solved", resolved=now), EventType.TICKET_RESOLVED
            resolved.append(i)
        elif kind == 5 and resolved:
            state, etype = ticket(resolved.pop(), now, rev), EventType.TICKET_REOPENED
        elif kind < 8:
            state = ticket(i, now, rev, status=("open", "pending")[step % 2], prio=step % 4)
            etype = EventType.TICKET_STATE_CHANGED
        else:
            state, etype = ticket(i, now, rev, team=step % 20), EventType.TICKET_ROUTED
        yield envelope(etype, state, now), now


def median_scrape_ms(registry: CollectorRegistry) -> tuple[float, int]:
    """Median of nine ``generate_latest`` after a warm-up, and the size of the text."""
    generate_latest(registry)
    times = []
    for _ in range(9):
        t = time.perf_counter()
        text = generate_latest(registry)
        times.append(time.perf_counter() - t)
    return round(statistics.median(times) * 1000, 3), len(text)


def partitioned_scrape(size: int, now: float) -> tuple[float, int]:
    """The service's scrape of ``size`` open tickets over ``PARTITIONS`` caught-up shards."""
    at = stamp(now)
    ingest = BacklogIngest(async_sessionmaker(), clock=lambda: at)
    for p in range(PARTITIONS):
        ingest.shards[p] = Shard(p, BacklogState(), {}, live=True)
    for i in range(size):
        shard = ingest.shards[i % PARTITIONS]  # keys spread evenly, as Kafka's hash spreads them
        shard.state.apply(envelope(EventType.TICKET_ROUTED, ticket(i, now, 1, when=stamp), now), at)
    collector = ShardsCollector(ingest)
    registry = CollectorRegistry()
    registry.register(collector)
    registry.register(FlowCollector(collector))  # as the app registers them, flows after
    return median_scrape_ms(registry)


def run_one(size: int) -> dict[str, Any]:
    gc.collect()
    rss0 = rss_bytes()
    state = BacklogState()
    now = 10 * DAY
    t0 = time.perf_counter()
    built_at = stamp(now)
    for i in range(size):
        # Setup, not a measurement of the decode path: timestamps are handed over as datetimes
        # (the state accepts both) so building 1M tickets skips formatting and re-parsing ISO
        # strings. The state built is identical; the per-event costs are the ingest_* figures.
        state.apply(envelope(EventType.TICKET_ROUTED, ticket(i, now, 1, when=stamp), now), built_at)
    build_s = time.perf_counter() - t0
    gc.collect()
    rss1 = rss_bytes()
    result: dict[str, Any] = {
        "open_tickets": state.n_open,
        "build_seconds": round(build_s, 2),
        "build_events_per_second": round(size / build_s),
        "rss_delta_bytes_per_open_ticket": round((rss1 - rss0) / state.n_open, 1),
    }

    registry = CollectorRegistry()
    registry.register(BacklogCollector(state, clock=None))
    result["scrape_ms_median"], result["scrape_bytes"] = median_scrape_ms(registry)

    count = min(200_000, max(20_000, size // 5))
    events = list(mixed_stream(size, count, now, size))
    # CPU time of this process = rate on one core, whatever else the machine runs; wall too.
    t, c = time.perf_counter(), time.process_time()
    for env, at in events:
        state.apply(env, START + timedelta(seconds=at))
    apply_cpu, apply_wall = time.process_time() - c, time.perf_counter() - t
    result["ingest_events"] = count
    result["ingest_events_per_cpu_second"] = round(count / apply_cpu)
    result["ingest_events_per_wall_second"] = round(count / apply_wall)
    now = events[-1][1]
    raw = [(env.to_bytes(), at) for env, at in list(mixed_stream(size, 20_000, now, size + count))]
    c = time.process_time()
    for data, at in raw:
        state.apply(EventEnvelope.from_bytes(data), START + timedelta(seconds=at))
    result["decode_and_ingest_events_per_cpu_second"] = round(len(raw) / (time.process_time() - c))
    del events, raw

    # As the ingest consumer checkpoints: the copy under the state's lock (ingest and scrapes
    # wait for it), then the compression outside it.
    t = time.perf_counter()
    with state.lock:
        body = capture(state)
    result["checkpoint_lock_held_seconds"] = round(time.perf_counter() - t, 3)
    blob = seal(body)
    result["checkpoint_bytes"] = len(blob)
    result["checkpoint_dump_seconds"] = round(time.perf_counter() - t, 3)
    del body
    t = time.perf_counter()
    BacklogState.from_checkpoint(blob)
    result["checkpoint_load_seconds"] = round(time.perf_counter() - t, 3)
    result["open_tickets_after_mix"] = state.n_open
    del state, blob
    gc.collect()
    scrape_ms, scrape_bytes = partitioned_scrape(size, 10 * DAY)
    result[f"scrape_{PARTITIONS}_partitions_ms_median"] = scrape_ms
    result[f"scrape_{PARTITIONS}_partitions_bytes"] = scrape_bytes
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--json", dest="json_out", default=None)
    parser.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(run_one(args.one)))
        return
    results: dict[str, Any] = {}
    started = time.perf_counter()
    for size in (int(s) for s in args.sizes.split(",")):
        print(f"measuring {size} open tickets ...", file=sys.stderr, flush=True)
        out = subprocess.run(
            [sys.executable, __file__, "--one", str(size)], check=True, capture_output=True, text=True
        ).stdout
        results[str(size)] = json.loads(out.strip().splitlines()[-1])
    sizes = list(results)
    print(f"{'open tickets':42s}" + "".join(f"{s:>14s}" for s in sizes))
    for key in results[sizes[0]]:
        print(f"{key:42s}" + "".join(f"{results[s][key]!s:>14s}" for s in sizes))
    print(f"(bench_metrics ran {time.perf_counter() - started:.0f} s)", file=sys.stderr)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
