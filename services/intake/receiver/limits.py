"""Per-source token buckets and a body reader that stops at the size limit."""

from __future__ import annotations

import time

from fastapi import Request
from starlette.requests import ClientDisconnect

from shared.http.problems import Problem


class TokenBuckets:
    """One bucket per source in this process: ``rate`` tokens a second, at most ``burst`` saved."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(burst)
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last refill)

    def take(self, key: str, now: float | None = None) -> float:
        """Take a token; 0 when allowed, else the seconds until one is available."""
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) / self.rate


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refused with 413 as soon as it exceeds ``limit`` (never buffered beyond it), and
    with 400 when the client goes away before it is complete."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise Problem(413, "Payload too large", f"body exceeds {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise Problem(413, "Payload too large", f"body exceeds {limit} bytes")
            chunks.append(chunk)
    except ClientDisconnect as exc:  # the sender's doing, not a server error (nobody reads the answer)
        raise Problem(400, "Bad request", "the connection closed before the whole body came") from exc
    return b"".join(chunks)
