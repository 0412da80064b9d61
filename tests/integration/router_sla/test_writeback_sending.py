"""The sender against answers that are not a plain success: a rate limit (a 429, GitHub's 403 with
its rate-limit headers) pauses the whole target and uses no attempt; a final 4xx fails at once;
a claim's lease outlasts every request of its pass, each cut at its timeout."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select

from services.router.writeback.connectors import Target, render
from services.router.writeback.endpoints import router as writeback_api
from services.router.writeback.models import WritebackDelivery, WritebackTarget
from services.router.writeback.sender import SenderConfig, WritebackSender
from shared.auth import Role
from tests.integration.router_sla.helpers import Clock, api_client, new_id
from tests.integration.router_sla.test_writeback_connectors import queued, zendesk_target

INTERCOM = {"admin_id": "814860", "groups": {"access": "5017691"}}


class Rig:
    """Targets and deliveries of one test (deleted after it), and a sender under a fake clock
    whose HTTP answers come from ``answer`` (per request, with the host naming the target)."""

    def __init__(self, sessions) -> None:
        self.sessions = sessions
        self.clock = Clock.at_wall_clock()
        self.tag = new_id()[:8]
        self.target_ids: list[int] = []
        self.seen: list[tuple[str, str]] = []  # (host, path) of this test's targets' requests

    def host(self, name: str) -> str:
        return f"{name}-{self.tag}.example"

    async def target(self, name: str, connector: str = "zendesk", **changes: object) -> int:
        """A target row as stored (no save-time check: also one an older version saved)."""
        async with self.sessions() as session, session.begin():
            options = changes.pop("options", {"username": "bot@acme.com"})
            url = changes.pop("url", f"https://{self.host(name)}")
            row = zendesk_target(
                f"src-{self.tag}",
                1,
                name=f"{name}-{self.tag}",
                connector=connector,
                url=url,
                options=options,
                **changes,
            )
            session.add(row)
            await session.flush()
            self.target_ids.append(row.id)
            return row.id

    async def queue(self, target_id: int, ticket: str, kind: str = "assignment", **fields: object) -> int:
        async with self.sessions() as session, session.begin():
            row = queued(target_id, f"src-{self.tag}:{ticket}", kind, "P3", self.clock.now, **fields)
            session.add(row)
            await session.flush()
            return row.id

    async def row(self, delivery_id: int) -> WritebackDelivery:
        async with self.sessions() as session:
            row = await session.get(WritebackDelivery, delivery_id)
            assert row is not None
            return row

    def sender(self, answer: Callable[[httpx.Request], object], **config: object) -> WritebackSender:
        async def handler(request: httpx.Request) -> httpx.Response:
            if not request.url.host.endswith(f"-{self.tag}.example"):
                return httpx.Response(200, json={})  # another test's leftover
            self.seen.append((request.url.host.split("-")[0], request.url.path))
            result = answer(request)
            if asyncio.iscoroutine(result):
                result = await result
            assert isinstance(result, httpx.Response)
            return result

        client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
        return WritebackSender(self.sessions, client, SenderConfig(**config), self.clock)  # type: ignore[arg-type]


async def test_a_rate_limit_pauses_the_whole_target_and_uses_no_attempt(rig):
    # Intercom: an assignment, then a note. Ticket 1's assignment is refused (429); ticket 2's is
    # under way meanwhile, and its note must wait out the pause too. Another target is not held up.
    paused = await rig.target("ic", "intercom", options=INTERCOM)
    other = await rig.target("zd")
    first, second = await rig.queue(paused, "1"), await rig.queue(paused, "2")
    elsewhere = await rig.queue(other, "3")
    limited = True

    async def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/conversations/2/parts":
            await asyncio.sleep(0.2)  # answers after ticket 1's 429
        if limited and request.url.path == "/conversations/1/parts":
            await asyncio.sleep(0.1)  # while ticket 2's assignment is under way
            return httpx.Response(429, headers={"Retry-After": "30"}, json={"type": "error.list"})
        return httpx.Response(200, json={})

    sender = rig.sender(answer, max_attempts=1)
    start = rig.clock.now
    await sender.run_once()
    assert sorted(rig.seen) == [
        ("ic", "/conversations/1/parts"),
        ("ic", "/conversations/2/parts"),
        ("zd", "/api/v2/tickets/3.json"),
    ]
    for delivery_id, sent in ((first, 0), (second, 1)):
        row = await rig.row(delivery_id)
        assert (row.status, row.attempts, row.requests_sent) == ("pending", 0, sent)  # no attempt used
        assert row.next_attempt_at == start + timedelta(seconds=30)
        assert "HTTP 429" in (row.last_error or "")
    assert (await rig.row(elsewhere)).status == "delivered"

    # The next pass: a new delivery to the paused target is due, but not sent before the pause ends.
    rig.clock.now += timedelta(seconds=1)
    third = await rig.queue(paused, "4")
    await sender.run_once()
    assert len(rig.seen) == 3 and (await rig.row(third)).attempts == 0
    limited = False
    rig.clock.now = start + timedelta(seconds=30)
    while await sender.run_once():
        pass
    for delivery_id in (first, second, third):
        row = await rig.row(delivery_id)
        assert (row.status, row.attempts, row.requests_sent) == ("delivered", 1, 2)
    assert rig.seen.count(("ic", "/conversations/2/parts")) == 1  # not assigned twice


async def test_a_backlog_against_a_rate_limit_is_delivered_in_full(rig):
    # 60 deliveries, 10 a minute accepted: every one goes out, none "failed" for the vendor's pace.
    target = await rig.target("zd")
    ids = [await rig.queue(target, str(n)) for n in range(60)]
    start, count = rig.clock.now, 0

    def answer(request: httpx.Request) -> httpx.Response:
        nonlocal start, count
        if rig.clock.now - start >= timedelta(minutes=1):
            start, count = rig.clock.now, 0
        if count >= 10:
            left = 60 - int((rig.clock.now - start).total_seconds())
            return httpx.Response(429, headers={"Retry-After": str(left)})
        count += 1
        return httpx.Response(200, json={})

    sender = rig.sender(answer, max_attempts=2)
    for _ in range(200):
        while await sender.run_once():
            pass
        async with rig.sessions() as session:
            due = await session.scalar(
                select(WritebackDelivery.next_attempt_at)
                .where(WritebackDelivery.id.in_(ids), WritebackDelivery.status == "pending")
                .order_by(WritebackDelivery.next_attempt_at)
                .limit(1)
            )
        if due is None:
            break
        # Those the pass had no room for are due, but wait for the target: time runs on.
        rig.clock.now = max(rig.clock.now + timedelta(seconds=5), due.replace(tzinfo=rig.clock.now.tzinfo))
    rows = [await rig.row(i) for i in ids]
    assert {(r.status, r.attempts) for r in rows} == {("delivered", 1)}


@pytest.mark.parametrize(
    ("headers", "waited"),
    [
        ({"x-ratelimit-remaining": "0", "x-ratelimit-reset": "RESET"}, timedelta(minutes=45)),  # primary
        ({"retry-after": "120"}, timedelta(minutes=2)),  # secondary
        ({}, None),  # a refusal: an ordinary failure
    ],
)
async def test_githubs_403_rate_limit_waits_for_the_reset(rig, headers, waited):
    target = await rig.target("gh", "github", options={})
    delivery = await rig.queue(target, "acme/app#7", external_id="acme/app#7")
    reset = str(int((rig.clock.now + timedelta(minutes=45)).timestamp()))
    answered = {k: v.replace("RESET", reset) for k, v in headers.items()}

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            403, headers=answered, json={"message": "API rate limit exceeded for user ID 1."}
        )

    start = rig.clock.now
    await rig.sender(answer).run_once()
    row = await rig.row(delivery)
    assert row.status == "pending" and "HTTP 403" in (row.last_error or "")
    if waited is None:
        assert (row.attempts, row.next_attempt_at) == (1, start + timedelta(seconds=2))  # the backoff
    else:
        assert (row.attempts, row.next_attempt_at) == (0, start + waited)


@pytest.mark.parametrize("status", [400, 404, 405, 410, 413, 415, 422])
async def test_a_final_4xx_fails_at_once_and_lets_the_tickets_next_delivery_go(rig, sessions, status):
    target = await rig.target("zd")
    older = await rig.queue(target, "5")
    newer = await rig.queue(target, "5", "escalation")
    answers = iter([httpx.Response(status, json={"error": "RecordInvalid"})])

    sender = rig.sender(lambda request: next(answers, httpx.Response(200, json={})), max_attempts=8)
    await sender.run_once()
    row = await rig.row(older)
    assert (row.status, row.attempts) == ("failed", 1)
    assert f"HTTP {status} from PUT" in (row.last_error or "") and "RecordInvalid" in (row.last_error or "")
    await sender.run_once()  # the newer one no longer waits behind it
    assert (await rig.row(newer)).status == "delivered"
    async with await api_client(sessions, writeback_api, Role.ADMIN, f"admin-{rig.tag}") as client:
        refused = await client.post(f"/v1/writeback/deliveries/{older}/retry")  # would undo the newer
        assert refused.status_code == 409
        async with sessions() as session, session.begin():
            moot = await session.get(WritebackDelivery, newer)
            assert moot is not None
            moot.status = "failed"
        retried = await client.post(f"/v1/writeback/deliveries/{older}/retry")
        assert retried.status_code == 200 and retried.json()["status"] == "pending"
    rig.clock.catch_up()
    await sender.run_once()
    assert (await rig.row(older)).status == "delivered"


@pytest.mark.parametrize("status", [401, 403, 408, 409, 425, 500, 503])
async def test_an_answer_that_may_pass_later_is_retried(rig, status):
    target = await rig.target("zd")
    delivery = await rig.queue(target, "6")
    await rig.sender(lambda request: httpx.Response(status, json={})).run_once()
    row = await rig.row(delivery)
    assert (row.status, row.attempts) == ("pending", 1)


async def test_githubs_404_for_a_label_already_gone_is_done(rig):
    target = await rig.target("gh", "github", options={})
    delivery = await rig.queue(target, "acme/app#8", external_id="acme/app#8", previous_team="billing")

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404 if request.method == "DELETE" else 200, json=[])

    await rig.sender(answer).run_once()
    assert (await rig.row(delivery)).status == "delivered"
    assert [path.rsplit("/", 1)[-1] for _, path in rig.seen] == ["team:billing", "labels"]


async def test_the_lease_outlasts_every_request_of_the_pass(rig):
    # Jira: an edit, then a comment. A slower helpdesk (a 90 s timeout) must not have its
    # deliveries claimed again by another router while their requests may still be running.
    slow = await rig.target("jira", "jira")
    quick = await rig.target("zd")
    two, one = await rig.queue(slow, "SUP-1", external_id="SUP-1"), await rig.queue(quick, "7")
    async with rig.sessions() as session:
        row = await session.get(WritebackTarget, slow)
        assert row is not None
        body = (await rig.row(two)).body
        assert len(render(body, Target(row.connector, row.url, row.secret, row.options), 0)) == 2
    sender = rig.sender(lambda request: httpx.Response(200, json={}), timeout_s=90)
    claimed = await sender._claim()
    assert {c.delivery_id for c in claimed} >= {two, one}
    lease = rig.clock.now + timedelta(seconds=60 + 2 * 90)  # both: they are recorded together
    assert (await rig.row(two)).next_attempt_at == lease
    assert (await rig.row(one)).next_attempt_at == lease


async def test_a_request_is_cut_at_its_timeout_however_its_answer_trickles(rig):
    target = await rig.target("zd")
    delivery = await rig.queue(target, "8")

    async def answer(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(3)  # no single read times out: httpx's own timeouts never fire
        return httpx.Response(200, json={})

    began = time.monotonic()
    await rig.sender(answer, timeout_s=0.3).run_once()
    assert time.monotonic() - began < 2
    row = await rig.row(delivery)
    assert (row.status, row.attempts) == ("pending", 1)
    assert "no answer within 0.3 s from PUT" in (row.last_error or "")


async def test_a_shutdown_mid_pass_records_what_got_through_and_frees_the_rest(rig):
    # Intercom: the assignment got through, the note is under way when the router stops. The
    # assignment must not be written into the conversation again, and the note must not wait out
    # a lease nobody holds any more.
    target = await rig.target("ic", "intercom", options=INTERCOM)
    delivery = await rig.queue(target, "9")
    noting = asyncio.Event()

    async def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/reply"):
            noting.set()
            await asyncio.sleep(30)
        return httpx.Response(200, json={})

    running = asyncio.create_task(rig.sender(answer).run_once())
    await asyncio.wait_for(noting.wait(), 5)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    row = await rig.row(delivery)
    assert (row.status, row.attempts, row.requests_sent) == ("pending", 0, 1)
    assert row.next_attempt_at == rig.clock.now  # due again at once, for any router
    rig.seen.clear()
    await rig.sender(lambda request: httpx.Response(200, json={})).run_once()
    assert rig.seen == [("ic", "/conversations/9/reply")]
    assert (await rig.row(delivery)).status == "delivered"


@pytest.mark.parametrize(("status", "final"), [(301, True), (308, True), (302, False), (307, False)])
async def test_a_redirect_is_not_followed_and_says_where_it_points(rig, status, final):
    # An http:// address the helpdesk moves to https://: following it would drop the token (another
    # origin) or turn the PUT into a GET. A permanent one fails at once, naming the new address.
    target = await rig.target("zd")
    delivery = await rig.queue(target, "10")
    moved = f"https://{rig.host('zd')}/api/v2/tickets/10.json"

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, headers={"Location": moved}, text="")

    await rig.sender(answer).run_once()
    row = await rig.row(delivery)
    assert (row.status, row.attempts) == ("failed" if final else "pending", 1)
    assert f"HTTP {status} from PUT" in (row.last_error or "") and moved in (row.last_error or "")


@pytest.mark.parametrize("status", [500, 301])
async def test_a_short_query_value_is_kept_out_of_the_error_as_answers_hide_it(rig, caplog, status):
    # Viewers read a delivery's error: the URL it quotes hides every query value, as a target's
    # answers show it, however short the value (redact() leaves strings under 8 characters alone).
    target = await rig.target("hook", "webhook", options={})
    async with rig.sessions() as session, session.begin():
        row = await session.get(WritebackTarget, target)
        assert row is not None
        row.url = f"https://{rig.host('hook')}/in?key=k3y4x&team=ops"
    delivery = await rig.queue(target, "11")
    moved = f"https://{rig.host('hook')}/v2/in?key=k3y4x"

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, headers={"Location": moved}, text="")

    with caplog.at_level("WARNING", logger="services.router.writeback.sender"):
        await rig.sender(answer, max_attempts=1).run_once()
    error = (await rig.row(delivery)).last_error or ""
    assert f"POST https://{rig.host('hook')}/in?key=***&team=***" in error, error
    logged = " ".join(str(getattr(r, "error", "")) for r in caplog.records)
    assert "k3y4x" not in error and "k3y4x" not in logged and error in logged


async def test_an_endless_answer_is_read_no_further_than_the_error_needs(rig):
    # A receiver that answers with a body without end (a misrouted URL serving a download, a broken
    # proxy): the sender held all of it in memory until the timeout, and recorded a timeout instead
    # of the answer's status.
    target = await rig.target("zd")
    delivery = await rig.queue(target, "12")
    pulled = 0

    class Endless(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            nonlocal pulled
            while pulled < 64 * 2**20:  # bounded only to keep a failing run's memory in check
                pulled += 2**16
                yield b"x" * 2**16
                await asyncio.sleep(0)

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500, stream=Endless())

    await rig.sender(answer, timeout_s=30).run_once()
    row = await rig.row(delivery)
    assert (row.status, row.attempts) == ("pending", 1)
    assert (row.last_error or "").startswith("HTTP 500 from PUT"), (row.last_error or "")[:200]
    assert pulled <= 2 * 2**20, pulled


async def test_a_success_whose_body_does_not_decode_is_delivered_not_failed(rig):
    # The helpdesk applied the change and said 200, with a body a broken proxy mangled (gzip
    # promised, not gzip): the sender read the body first and counted the request failed, so the
    # delivery was sent again (and again) for a change already made.
    target = await rig.target("zd")
    delivery = await rig.queue(target, "13")
    requests: list[httpx.Request] = []

    class Raw(httpx.AsyncByteStream):  # as the wire gives it (bytes content would be decoded here)
        async def __aiter__(self) -> AsyncIterator[bytes]:
            yield b"not gzip at all"

    def answer(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(200, headers={"Content-Encoding": "gzip"}, stream=Raw())

    await rig.sender(answer).run_once()
    row = await rig.row(delivery)
    assert (row.status, row.attempts) == ("delivered", 1), row.last_error
    assert len(requests) >= 1
