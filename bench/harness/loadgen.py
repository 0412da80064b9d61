"""HTTP load generator, run as its own process: ``python -m bench.harness.loadgen --help``.

It posts native tickets (unique external ids) to ``POST /v1/tickets``, or with ``--webhook
github|native`` signed webhook deliveries (unique delivery and external ids) to ``POST
/v1/webhooks/<bench source>`` (bench/harness/webhooks.py builds both), over keep-alive
connections with a minimal HTTP/1.1 client (asyncio streams on uvloop), so the generator costs
as little CPU as possible on a machine it shares with the services under test. Two modes:

* closed loop (``--rate 0``): ``--concurrency`` requests in flight, each connection sends its
  next request when the previous answer arrived (throughput and latency at fixed concurrency);
* open loop (``--rate R``): request i is due at start + i/R whatever the answers do, on a pool
  of connections that grows up to ``--max-connections`` (a sustained arrival rate).

Bounded by ``--duration`` and ``--max-requests``; stops by itself. Writes a JSON summary (answers
by status, a transport error under its exception's name; ``statuses_measured`` counts those that
came once the warm-up was over, whenever the request was sent: a request of the warm-up that timed
out later is a failure of the measured window) and, with ``--times``, the monotonic time of every
2xx answer, for end-to-end attribution. Latencies are those of the requests sent after the warm-up;
the rate counts the 2xx answers that came between the end of the warm-up and the deadline.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import time
from collections import Counter
from pathlib import Path

import uvloop

from bench.harness.webhooks import MODES, Builder, ticket_request, webhook_request


def percentile(values: list[float], q: float) -> float | None:
    """Nearest rank: the ceil(q * n)-th smallest of the n values (p99 of 100 is the 99th, not the
    slowest; the median of an even count the lower middle one). q * n is rounded to 9 places first,
    so that 0.07 * 100 (7.000000000000001 in floating point) is rank 7."""
    if not values:
        return None
    ordered = sorted(values)
    rank = math.ceil(round(q * len(ordered), 9))
    return ordered[min(len(ordered), max(1, rank)) - 1]


# A service closes a keep-alive connection after HTTP_KEEP_ALIVE_S idle (75 s; the bare baselines
# keep uvicorn's 5 s); a request written into one it is closing fails (IncompleteReadError) without
# the server ever seeing it. Like HTTP client pools, do not reuse a connection idle for longer than
# the shortest of them.
MAX_IDLE_REUSE_S = 4.0


class Connection:
    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.last_used = 0.0

    async def request(self, raw: bytes) -> int:
        if self.writer is not None and time.monotonic() - self.last_used > MAX_IDLE_REUSE_S:
            self.close()
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        close = False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            lowered = name.strip().lower()
            if lowered == b"content-length":
                length = int(value)
            elif lowered == b"connection" and value.strip().lower() == b"close":
                close = True
        if length:
            await self.reader.readexactly(length)
        self.last_used = time.monotonic()
        if close:
            self.close()
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def request_builder(args: argparse.Namespace) -> Builder:
    """What the run posts: request index -> raw HTTP request (everything fixed built once)."""
    if args.webhook:
        return webhook_request(args.webhook, args.host, args.port, args.secret, args.prefix)
    return ticket_request(args.host, args.port, args.path, args.token, args.prefix)


class Run:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.next_index = 0
        self.latencies: list[float] = []
        self.ok_times: list[float] = []
        self.ok_indexes: list[int] = []  # the request index of each 2xx: its ticket is <prefix>-<index>
        self.statuses: Counter[str] = Counter()
        self.measured_statuses: Counter[str] = Counter()  # answers and errors after the warm-up
        self.build = request_builder(args)
        self.started = 0.0
        self.measure_from = 0.0
        self.deadline = 0.0

    def take(self) -> int | None:
        if self.next_index >= self.args.max_requests or time.monotonic() >= self.deadline:
            return None
        self.next_index += 1
        return self.next_index - 1

    async def one(self, conn: Connection, index: int, due: float) -> None:
        raw = self.build(index)
        try:
            status = await asyncio.wait_for(conn.request(raw), self.args.timeout)
        except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as exc:
            conn.close()
            self.statuses[type(exc).__name__] += 1
            if time.monotonic() >= self.measure_from:
                self.measured_statuses[type(exc).__name__] += 1
            return
        done = time.monotonic()
        self.statuses[str(status)] += 1
        if done >= self.measure_from:
            self.measured_statuses[str(status)] += 1
        if 200 <= status < 300:
            self.ok_times.append(done)
            self.ok_indexes.append(index)
            if due >= self.measure_from:
                self.latencies.append(done - due)

    async def closed_worker(self) -> None:
        conn = Connection(self.args.host, self.args.port)
        while (index := self.take()) is not None:
            await self.one(conn, index, time.monotonic())
        conn.close()

    async def open_loop(self) -> None:
        idle: list[Connection] = []
        opened = 0
        tasks: set[asyncio.Task[None]] = set()

        async def send(index: int, due: float) -> None:
            nonlocal opened
            conn = idle.pop() if idle else Connection(self.args.host, self.args.port)
            try:
                await self.one(conn, index, due)
            finally:
                idle.append(conn)

        while True:
            index = self.take()
            if index is None:
                break
            due = self.started + index / self.args.rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if len(tasks) >= self.args.max_connections:  # saturated: wait instead of queueing forever
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            task = asyncio.create_task(send(index, due))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(tasks)
        for conn in idle:
            conn.close()

    async def main(self) -> dict[str, object]:
        self.started = time.monotonic()
        self.measure_from = self.started + self.args.warmup
        self.deadline = self.measure_from + self.args.duration
        if self.args.rate > 0:
            await self.open_loop()
        else:
            await asyncio.gather(*(self.closed_worker() for _ in range(self.args.concurrency)))
        finished = time.monotonic()
        # The window ends at the deadline: answers to requests still in flight then came after it.
        measured = [t for t in self.ok_times if self.measure_from <= t <= self.deadline]
        window = max(1e-9, min(finished, self.deadline) - self.measure_from)
        ms = [x * 1000 for x in self.latencies]
        return {
            "mode": "open" if self.args.rate > 0 else "closed",
            "concurrency": self.args.concurrency,
            "target_rate": self.args.rate or None,
            "sent": self.next_index,
            "webhook": self.args.webhook,
            "statuses": dict(self.statuses),
            "statuses_measured": dict(self.measured_statuses),
            "ok": len(self.ok_times),
            "measured_seconds": round(window, 3),
            "ok_per_second": round(len(measured) / window, 1),
            "latency_ms_p50": _round(percentile(ms, 0.50)),
            "latency_ms_p99": _round(percentile(ms, 0.99)),
            "latency_ms_max": _round(max(ms) if ms else None),
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/v1/tickets")
    parser.add_argument("--token", default="none")
    parser.add_argument(
        "--webhook", choices=MODES, help="post signed deliveries to this mode's bench source instead"
    )
    parser.add_argument("--secret", default="", help="the bench source's secret (with --webhook)")
    parser.add_argument("--prefix", required=True, help="makes external and delivery ids unique per run")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rate", type=float, default=0.0, help="requests/s (open loop); 0: closed loop")
    parser.add_argument("--max-connections", type=int, default=256)
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds (after warm-up)")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--max-requests", type=int, default=1_000_000)
    parser.add_argument("--timeout", type=float, default=30.0, help="per request")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--times", type=Path, help="write [request index, monotonic time] of every 2xx answer here"
    )
    args = parser.parse_args()
    if args.webhook and not args.secret:
        parser.error("--webhook needs the source's --secret")
    run = Run(args)
    summary = uvloop.run(run.main())
    args.out.write_text(json.dumps(summary, indent=2))
    if args.times:
        args.times.write_text(json.dumps(list(zip(run.ok_indexes, run.ok_times, strict=True))))


if __name__ == "__main__":
    main()
