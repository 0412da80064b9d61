"""The background sender: claims due deliveries, sends each as its target's connector renders it
(a signed POST, or a helpdesk's API call), retries with backoff.

Claiming sets a lease (``next_attempt_at`` in the future) in a short transaction, with
``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several routers share the queue without sending a
delivery twice at once; the HTTP call happens outside any transaction. A delivery that fails
``max_attempts`` times is marked ``failed`` and listed by the API for a manual retry; so is, at
once, one its connector cannot address (a ticket id the helpdesk's API cannot take), one the
helpdesk answers with a final 4xx (FINAL), or one whose target would send its API token in clear
text (an http:// helpdesk address stored before the save refused it: no request is made). A 503
with ``Retry-After`` is not tried again before the receiver asked. A rate limit (ratelimit.py)
pauses the whole target and costs no attempt.

The lease covers the whole pass: the deliveries of a pass are sent at once and recorded together,
so none may be claimed again before every request of the pass has had its full timeout (each
request is cut at ``timeout_s``, however slowly its answer trickles in).

A delivery can take several requests (an assignment, then a note). The ones an attempt got through
are remembered by digest, and a retry sends only the rest: an Intercom assignment is a new part of
the conversation each time it is sent. What a crash interrupts before the attempt is recorded is
sent again (at least once).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
from collections import Counter as Multiset
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple
from urllib.parse import urlsplit

import httpx
from prometheus_client import Counter
from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from services.router.load.store import take_write_lock
from services.router.writeback.connectors import OutboundRequest, RenderError, Target, render
from services.router.writeback.models import WritebackDelivery, WritebackTarget
from services.router.writeback.ratelimit import MIN_WAIT, Pauses, rate_limit_wait, retry_after
from services.router.writeback.schemas import clear_text_refusal, hide_url_secrets, query_values
from shared.db.dialect import is_postgres
from shared.events import utc_now
from shared.runtime import repeat_forever

log = logging.getLogger(__name__)

DELIVERIES = Counter(
    "router_writeback_deliveries_total", "Write-back delivery attempts, by outcome", ["outcome"]
)
# Answers retrying cannot change: the request or the ticket is wrong (a GitHub label already gone,
# a 404 its connector expects, is ``also_done``), or the endpoint does not take its method, size or
# media type (405, 413, 415). 401/403, 408, 409, 425 may pass on a retry.
FINAL = frozenset({400, 404, 405, 410, 413, 415, 422})
# Redirects are not followed (another origin would not get the token; a 301 turns a POST into a
# GET): a permanent one means the target's url is to be fixed, which no retry does.
MOVED = frozenset({301, 308})


# How much of an answer is read (bytes): the error keeps 500 characters; the rest is read only to
# be redacted (an endless body is not held in memory until the timeout). A token split by this cut
# cannot reach the stored 500: each copy redacted before it (8,000 bytes at most, a 500-character
# token escaped) leaves 10 characters, so over 1,300 stay in front of it.
ANSWER_MAX = 2**20


async def read_answer(response: httpx.Response, limit: int = ANSWER_MAX) -> str:
    """The start of a streamed ``response``'s body as text, ``limit`` bytes at most (decoded, so a
    compressed one cannot swell past it); the rest is not read."""
    content = bytearray()
    async for chunk in response.aiter_bytes():
        content += chunk[: limit - len(content)]
        if len(content) >= limit:
            break
    return content.decode(response.encoding or "utf-8", errors="replace")


def backoff(attempts: int, base_s: float, cap_s: float) -> timedelta:
    """Delay before attempt ``attempts + 1``: base, 2 x base, 4 x base ... capped."""
    # The exponent capped: 2 ** 1024 overflows a float, and any setting this large means "the cap".
    return timedelta(seconds=min(cap_s, base_s * 2 ** min(max(attempts - 1, 0), 60)))


def redact(text: str, target: Target, requests: list[OutboundRequest]) -> str:
    """``text`` without the target's secret or any credential a request carried (an HTTP library's
    error may quote a header it refused)."""
    headers = [r.headers.get("Authorization", "") for r in requests]
    # The whole header, and its credential alone (``Basic <base64>``, ``Token token=<secret>``).
    secrets = {target.secret, *headers, *(h.split(" ", 1)[-1] for h in headers)}
    # A password in the URL of a target saved before such URLs were refused.
    with contextlib.suppress(ValueError):  # a URL that does not parse has none to hide
        parts = urlsplit(target.url)
        secrets.add(parts.password or "")
        # A token in a webhook's query (``?token=...``): errors quote the URL, viewers read them.
        secrets.update(query_values(parts.query))
    # As given, trimmed, and as a repr quotes it (h11 shows a refused header as bytes).
    variants = {v for s in secrets for v in (s, s.strip(), repr(s)[1:-1], repr(s.encode())[2:-1])}
    for secret in sorted((v for v in variants if len(v) >= 8), key=len, reverse=True):
        text = text.replace(secret, "<redacted>")
    return text


def request_digest(request: OutboundRequest) -> str:
    """What names a request across attempts: its method, address and body. Not its headers, which
    carry a fresh signature or date each time."""
    digest = hashlib.sha256(f"{request.method} {request.url}\n".encode())
    digest.update(request.body or b"")
    return digest.hexdigest()[:32]


def still_to_send(requests: list[OutboundRequest], sent: Iterable[str]) -> list[OutboundRequest]:
    """``requests`` but those an earlier attempt got through (each digest counted once). A target
    edited since renders other requests, which are sent."""
    done = Multiset(sent)
    rest = []
    for request in requests:
        digest = request_digest(request)
        if done[digest] > 0:
            done[digest] -= 1
        else:
            rest.append(request)
    return rest


@dataclass(frozen=True)
class Outcome:
    """One attempt: ``error`` None when delivered; ``permanent``: retrying cannot help; ``sent``:
    the digests of the requests it got through; ``paused_until``: a rate limit held it back (no
    attempt used)."""

    error: str | None = None
    permanent: bool = False
    wait: timedelta | None = None  # what the receiver asked for (Retry-After)
    sent: tuple[str, ...] = ()
    paused_until: datetime | None = None


@dataclass(frozen=True)
class SenderConfig:
    max_attempts: int = 8
    backoff_base_s: float = 2.0
    backoff_cap_s: float = 600.0
    timeout_s: float = 10.0
    # Added to the time the pass's requests may take: the recording transaction, clock skew.
    lease_margin_s: float = 60.0
    batch: int = 50


class Claim(NamedTuple):
    delivery_id: int
    target_id: int
    target: Target
    body: str
    sent: list[str]


async def _record_sent(session: AsyncSession, claim: Claim, sent: Sequence[str]) -> WritebackDelivery | None:
    """``claim``'s delivery with the digests of the requests a pass got through (``sent``) added,
    or None (and nothing recorded) when it is gone or no longer pending."""
    delivery = await session.get(WritebackDelivery, claim.delivery_id)
    if delivery is None or delivery.status != "pending":
        return None
    if sent:
        delivery.sent_requests = [*(delivery.sent_requests or ()), *sent]
    return delivery


class WritebackSender:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        client: httpx.AsyncClient,
        config: SenderConfig = SenderConfig(),
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.sessions = sessions
        self.client = client
        self.config = config
        self.clock = clock
        self.pauses = Pauses()

    def _requests_left(self, claim: Claim, now: datetime) -> int:
        try:
            return len(still_to_send(render(claim.body, claim.target, now.timestamp()), claim.sent))
        except Exception:  # it fails at once when sent: no request
            return 0

    async def _claim(self) -> list[Claim]:
        """Lease the due deliveries of enabled targets not paused by a rate limit, each only once
        every older delivery of its ticket to its target is done: a retried assignment must not
        land after the escalation that followed it (the helpdesk would keep the older priority,
        and report it back)."""
        now = self.clock()
        older = aliased(WritebackDelivery)
        paused = self.pauses.paused(now)
        async with self.sessions() as session, session.begin():
            await take_write_lock(session)
            query = (
                select(WritebackDelivery, WritebackTarget)
                .join(WritebackTarget, WritebackTarget.id == WritebackDelivery.target_id)
                .where(
                    WritebackDelivery.status == "pending",
                    WritebackDelivery.next_attempt_at <= now,
                    WritebackTarget.enabled.is_(True),
                    ~exists().where(
                        older.target_id == WritebackDelivery.target_id,
                        older.ticket_key == WritebackDelivery.ticket_key,
                        older.status == "pending",
                        older.id < WritebackDelivery.id,
                    ),
                )
                .order_by(WritebackDelivery.next_attempt_at, WritebackDelivery.id)
                .limit(self.config.batch)
            )
            if paused:
                query = query.where(WritebackDelivery.target_id.not_in(paused))
            if is_postgres(session):
                query = query.with_for_update(of=WritebackDelivery, skip_locked=True)
            rows = (await session.execute(query)).all()
            claimed = [
                Claim(
                    delivery.id,
                    target.id,
                    Target(target.connector, target.url, target.secret, target.options, target.source),
                    delivery.body,
                    list(delivery.sent_requests or ()),
                )
                for delivery, target in rows
            ]
            # The pass's deliveries are sent side by side, each its requests one after the other,
            # and recorded together: the longest one bounds them all.
            most = max((self._requests_left(claim, now) for claim in claimed), default=0)
            lease = timedelta(seconds=self.config.lease_margin_s + max(most, 1) * self.config.timeout_s)
            for delivery, _ in rows:
                delivery.next_attempt_at = now + lease
            return claimed

    async def _send(
        self,
        target: Target,
        body: str,
        sent: Iterable[str] = (),
        target_id: int | None = None,
        progress: list[str] | None = None,
    ) -> Outcome:
        """Send one delivery, but the requests already ``sent``; never raises (an error of one
        must not undo a pass's bookkeeping). ``target_id``: whose rate limits pause it;
        ``progress``: gets the digest of each request as it gets through (what a pass cancelled
        at shutdown records)."""
        refusal = clear_text_refusal(target.connector, target.url)
        if refusal is not None:  # stored before the save refused it: no request, the token stays
            return Outcome(refusal, permanent=True)
        requests: list[OutboundRequest] = []
        try:
            requests = render(body, target, self.clock().timestamp())
        except Exception as exc:  # RenderError, or a queued body that is not a notification
            detail = exc if isinstance(exc, RenderError) else f"{type(exc).__name__}: {exc}"
            why = f"cannot be sent to this {target.connector} target: {detail}"
            return Outcome(redact(why, target, requests)[:500], permanent=True)
        try:
            outcome = await self._send_all(
                still_to_send(requests, sent), target, requests, target_id, progress
            )
        except Exception as exc:  # not from a request (those are caught there): a safety net
            outcome = Outcome(f"{type(exc).__name__}: {exc}")
        if outcome.error is None:
            return outcome
        return dataclasses.replace(outcome, error=redact(outcome.error, target, requests)[:500])

    async def _send_all(
        self,
        requests: list[OutboundRequest],
        target: Target,
        rendered: list[OutboundRequest],
        target_id: int | None,
        progress: list[str] | None = None,
    ) -> Outcome:
        """The requests in order; the first that fails ends the attempt (the ones before it are
        in ``sent``). None starts while the target is paused by a rate limit."""
        sent: list[str] = [] if progress is None else progress
        timeout = self.config.timeout_s
        for request in requests:
            pause = None if target_id is None else self.pauses.get(target_id, self.clock())
            if pause is not None:
                return Outcome(pause.why, sent=tuple(sent), paused_until=pause.until)
            try:
                # httpx's timeouts are per read: a trickling answer could outlast the lease.
                async with (
                    asyncio.timeout(timeout),
                    self.client.stream(
                        request.method,
                        request.url,
                        content=request.body,
                        headers=request.headers,
                        timeout=timeout,
                    ) as response,
                ):
                    done = 200 <= response.status_code < 300 or response.status_code in request.also_done
                    # A success's body is not needed, and one that does not decode (a proxy's broken
                    # gzip) must not make a change the helpdesk applied a failed attempt, sent again.
                    answer = "" if done else await read_answer(response)
            except TimeoutError:
                return Outcome(
                    f"no answer within {timeout:g} s from {request.method} {hide_url_secrets(request.url)}",
                    sent=tuple(sent),
                )
            except Exception as exc:  # refused, a header httpx refuses, a bad answer...
                return Outcome(f"{type(exc).__name__}: {exc}", sent=tuple(sent))
            if not done:
                # Whole until redacted, cut after (in _send): a cut inside a token it echoes would
                # leave a prefix no longer recognised, pulled into the stored part as copies before
                # it shrink to <redacted>.
                error = f"HTTP {response.status_code} from {request.method} {hide_url_secrets(request.url)}: "
                if response.is_redirect:  # where to: its body is mostly empty
                    where = hide_url_secrets(response.headers.get("Location", ""))
                    error += f"redirected to {where} (not followed: fix the target's url) "
                error += answer
                now, cap = self.clock(), timedelta(seconds=self.config.backoff_cap_s)
                wait = rate_limit_wait(response, now, cap)
                if wait is not None:
                    if target_id is not None:
                        why = redact(error, target, rendered)[:500]
                        self.pauses.pause(target_id, now + wait, why)
                    return Outcome(error, sent=tuple(sent), paused_until=now + wait)
                permanent = response.status_code in FINAL or response.status_code in MOVED
                return Outcome(error, permanent, retry_after(response, now, cap), tuple(sent))
            sent.append(request_digest(request))
        return Outcome(sent=tuple(sent))

    async def run_once(self) -> int:
        """Attempt every due delivery once; returns how many were attempted."""
        claimed = await self._claim()
        if not claimed:
            return 0
        progress: list[list[str]] = [[] for _ in claimed]
        try:
            results = await asyncio.gather(
                *(
                    self._send(c.target, c.body, c.sent, c.target_id, p)
                    for c, p in zip(claimed, progress, strict=True)
                )
            )
        except asyncio.CancelledError:
            # Shutting down mid-pass: what got through is not sent again, and the rest is due at
            # once (for another router, or this one restarted), not after the lease.
            try:
                await asyncio.shield(self._release(claimed, progress))
            except Exception as exc:  # the lease ends them anyway, later
                log.warning("recording an interrupted write-back pass failed", extra={"error": repr(exc)})
            raise
        now = self.clock()
        async with self.sessions() as session, session.begin():
            for claim, outcome in zip(claimed, results, strict=True):
                delivery = await _record_sent(session, claim, outcome.sent)
                if delivery is None:
                    continue
                if outcome.paused_until is not None:
                    # The vendor's "later", not a failure: no attempt used, however long it lasts.
                    delivery.last_error = outcome.error
                    delivery.next_attempt_at = max(outcome.paused_until, now + MIN_WAIT)
                    DELIVERIES.labels("rate_limited").inc()
                    continue
                delivery.attempts += 1
                if outcome.error is None:
                    delivery.status, delivery.delivered_at, delivery.last_error = "delivered", now, None
                    DELIVERIES.labels("delivered").inc()
                    continue
                delivery.last_error = outcome.error
                if outcome.permanent or delivery.attempts >= self.config.max_attempts:
                    delivery.status = "failed"
                    DELIVERIES.labels("failed").inc()
                    log.warning(
                        "write-back delivery failed for good",
                        extra={
                            "delivery": claim.delivery_id,
                            "target": claim.target_id,
                            "connector": claim.target.connector,
                            "error": outcome.error,
                        },
                    )
                else:
                    delay = backoff(delivery.attempts, self.config.backoff_base_s, self.config.backoff_cap_s)
                    if outcome.wait is not None:  # no sooner than asked (capped by retry_after)
                        delay = max(delay, outcome.wait)
                    delivery.next_attempt_at = now + delay
                    DELIVERIES.labels("retry").inc()
        return len(claimed)

    async def _release(self, claimed: list[Claim], progress: list[list[str]]) -> None:
        """Record the requests a cancelled pass got through and end its lease; no attempt used."""
        now = self.clock()
        async with self.sessions() as session, session.begin():
            for claim, sent in zip(claimed, progress, strict=True):
                delivery = await _record_sent(session, claim, sent)
                if delivery is not None:
                    delivery.next_attempt_at = now
        log.info("write-back pass interrupted: its deliveries are due again", extra={"count": len(claimed)})

    async def run_forever(self, poll_s: float) -> None:
        async def send_all_due() -> None:
            while await self.run_once():
                pass

        # The queue is durable: a failed pass is retried at the next period.
        await repeat_forever(send_all_due, poll_s, log, "write-back sender pass failed")
