"""A helpdesk target stored with an http:// address before such addresses were refused on save
(an older version, a direct migration): the sender refuses it at send time, as the save does, so
its API token never crosses the network in clear text. Loopback http is still sent to."""

from __future__ import annotations

import logging

import httpx
import pytest

from services.router.writeback.endpoints import router as writeback_api
from services.router.writeback.models import WritebackTarget
from services.router.writeback.sender import SenderConfig, WritebackSender
from shared.auth import Role
from tests.integration.router_sla.helpers import api_client
from tests.integration.router_sla.test_writeback_connectors import TOKEN
from tests.integration.router_sla.test_writeback_sending import INTERCOM, Rig

PASSWORD = "legacy-password-4711"
QUERY_TOKEN = "legacy-query-token-0815"
HELPDESKS = [
    ("zendesk", {"username": "bot@acme.com"}, "11"),
    ("jira", {"username": "bot@acme.com"}, "SUP-1"),
    ("github", {}, "acme/app#7"),
    ("intercom", INTERCOM, "9"),
    ("zammad", {}, "12"),
    ("freshdesk", {}, "13"),
]


class Wire:
    """Every request the sender's client would put on the network."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def client(self) -> httpx.AsyncClient:
        def handler(request: httpx.Request) -> httpx.Response:
            self.requests.append(request)
            return httpx.Response(200, json={})

        return httpx.AsyncClient(transport=httpx.MockTransport(handler))

    def to(self, host: str) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.host == host]


async def stored(rig: Rig, connector: str, url: str, options: dict[str, object]) -> int:
    """A target row written as an older version or a migration did: no save-time check."""
    return await rig.target(connector, connector, url=url, options=options)


def sender(rig: Rig, wire: Wire) -> WritebackSender:
    return WritebackSender(rig.sessions, wire.client(), SenderConfig(max_attempts=8), rig.clock)


@pytest.mark.parametrize(("connector", "options", "ticket"), HELPDESKS)
async def test_a_stored_http_helpdesk_target_is_refused_at_send_time(
    rig, sessions, caplog, connector, options, ticket
):
    host = rig.host(connector)
    url = f"http://bot:{PASSWORD}@{host}/?token={QUERY_TOKEN}"
    target = await stored(rig, connector, url, options)
    delivery = await rig.queue(target, ticket, external_id=ticket)
    wire = Wire()

    with caplog.at_level(logging.WARNING, logger="services.router.writeback.sender"):
        await sender(rig, wire).run_once()

    assert wire.to(host) == []  # nothing left the process, the token least of all
    assert not any(TOKEN in str(r.headers) for r in wire.requests)
    row = await rig.row(delivery)
    # Failed for good at once, as a final answer is: not retried, not dropped.
    assert (row.status, row.attempts, row.requests_sent) == ("failed", 1, 0)
    error = row.last_error or ""
    assert "not https" in error and "clear text" in error, error
    logged = [r for r in caplog.records if getattr(r, "delivery", None) == delivery]
    assert len(logged) == 1 and "not https" in str(getattr(logged[0], "error", "")), logged
    shown = [error, *(f"{r.getMessage()} {r.__dict__}" for r in logged)]
    for secret in (TOKEN, PASSWORD, QUERY_TOKEN):
        assert not any(secret in text for text in shown), secret

    # The next pass leaves it alone: it is failed, not pending.
    await sender(rig, wire).run_once()
    assert wire.to(host) == [] and (await rig.row(delivery)).attempts == 1

    async with await api_client(sessions, writeback_api, Role.VIEWER, f"viewer-{rig.tag}") as client:
        read = (await client.get(f"/v1/writeback/targets/{target}")).json()
        listed = {t["id"]: t for t in (await client.get("/v1/writeback/targets")).json()}
    for shown_target in (read, listed[target]):
        assert "not https" in (shown_target["problem"] or ""), shown_target
        assert PASSWORD not in str(shown_target) and QUERY_TOKEN not in str(shown_target)


@pytest.mark.parametrize("host", ["127.0.0.1:8080", "localhost", "[::1]:9000", "127.0.0.7"])
async def test_a_stored_http_helpdesk_target_on_loopback_is_still_sent_to(rig, sessions, host):
    target = await stored(rig, "zendesk", f"http://{host}", {"username": "bot@acme.com"})
    delivery = await rig.queue(target, "21")
    wire = Wire()
    await sender(rig, wire).run_once()
    assert [r.url.path for r in wire.requests if r.headers.get("Authorization", "").startswith("Basic")] == [
        "/api/v2/tickets/21.json"
    ]
    assert (await rig.row(delivery)).status == "delivered"
    async with await api_client(sessions, writeback_api, Role.VIEWER, f"viewer-{rig.tag}") as client:
        assert (await client.get(f"/v1/writeback/targets/{target}")).json()["problem"] is None


async def test_an_http_webhook_is_sent_to_as_its_save_allows(rig, sessions):
    # A webhook's HMAC key is never sent: saving one at http:// is allowed, and so is sending.
    host = rig.host("hook")
    target = await stored(rig, "webhook", f"http://{host}/hook", {})
    delivery = await rig.queue(target, "22")
    wire = Wire()
    await sender(rig, wire).run_once()
    assert len(wire.to(host)) == 1 and (await rig.row(delivery)).status == "delivered"
    async with await api_client(sessions, writeback_api, Role.VIEWER, f"viewer-{rig.tag}") as client:
        assert (await client.get(f"/v1/writeback/targets/{target}")).json()["problem"] is None


async def test_an_http_webhook_with_credentials_in_its_url_is_refused(rig, sessions, caplog):
    # Stored before URL credentials were refused on save: httpx sends them as Basic auth, in clear.
    host = rig.host("hook")
    target = await stored(rig, "webhook", f"http://bot:{PASSWORD}@{host}/hook", {})
    delivery = await rig.queue(target, "24")
    wire = Wire()
    with caplog.at_level(logging.WARNING, logger="services.router.writeback.sender"):
        await sender(rig, wire).run_once()
    assert wire.to(host) == []
    row = await rig.row(delivery)
    assert (row.status, row.attempts) == ("failed", 1)
    assert "credentials" in (row.last_error or "") and "clear text" in (row.last_error or "")
    logged = [f"{r.getMessage()} {r.__dict__}" for r in caplog.records]
    assert not any(PASSWORD in text for text in [row.last_error or "", *logged])
    async with await api_client(sessions, writeback_api, Role.VIEWER, f"viewer-{rig.tag}") as client:
        shown = (await client.get(f"/v1/writeback/targets/{target}")).json()
    assert shown["problem"] == row.last_error and PASSWORD not in str(shown)


async def test_a_target_fixed_to_https_sends_its_retried_deliveries(rig, sessions):
    host = rig.host("zd")
    target = await stored(rig, "zendesk", f"http://{host}", {"username": "bot@acme.com"})
    delivery = await rig.queue(target, "23")
    wire = Wire()
    await sender(rig, wire).run_once()
    assert (await rig.row(delivery)).status == "failed" and wire.to(host) == []
    async with await api_client(sessions, writeback_api, Role.ADMIN, f"admin-{rig.tag}") as client:
        refused = await client.post(f"/v1/writeback/deliveries/{delivery}/retry")
    # Queued again while the address is still http, it would only fail again at once.
    assert refused.status_code == 409 and "address is not https" in refused.json()["detail"]
    assert (await rig.row(delivery)).status == "failed"
    async with rig.sessions() as session, session.begin():
        row = await session.get(WritebackTarget, target)
        assert row is not None
        row.url = f"https://{host}"
    async with await api_client(sessions, writeback_api, Role.ADMIN, f"admin-{rig.tag}") as client:
        assert (await client.get(f"/v1/writeback/targets/{target}")).json()["problem"] is None
        assert (await client.post(f"/v1/writeback/deliveries/{delivery}/retry")).status_code == 200
    rig.clock.catch_up()
    await sender(rig, wire).run_once()
    assert [r.url.scheme for r in wire.to(host)] == ["https"]
    assert (await rig.row(delivery)).status == "delivered"
