"""Hot reload across replicas: a rule change made through one router's API reaches every router
process (same consumer group, different ports) within 2 s, and the next tickets are routed by
the new rule, whichever router owns their partition."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from shared.db.engine import create_engine, session_factory
from tests.e2e.stack import Stack
from tests.integration.router_api.helpers import live_rules, restore_live_rules

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def post(stack: Stack, subject: str) -> str:
    response = stack.post_ticket({"external_id": uuid.uuid4().hex, "subject": subject})
    assert response.status_code == 202, response.text
    return str(response.json()["ticket_key"])


def decisions(stack: Stack, key: str) -> list[dict[str, object]]:
    response = httpx.get(
        f"{stack.url('router')}/v1/tickets/{key}", headers={"Authorization": f"Bearer {stack.admin_key}"}
    )
    return list(response.json()["decisions"]) if response.status_code == 200 else []


async def _on_db(database_url: str, before: object | None) -> object:
    engine = create_engine(database_url)
    try:
        sessions = session_factory(engine)
        if before is None:
            return await live_rules(sessions)
        await restore_live_rules(sessions, before)  # type: ignore[arg-type]
        return before
    finally:
        await engine.dispose()


@pytest.fixture
def restore_rules(stack: Stack, database_url: str) -> Iterator[None]:
    """The session's database is shared: leave the (seeded) demo rules live for the other tests."""
    before = asyncio.run(_on_db(database_url, None))
    yield
    asyncio.run(_on_db(database_url, before))


@pytest.mark.usefixtures("restore_rules")
def test_rule_change_reaches_every_router_within_two_seconds(stack: Stack) -> None:
    stack.start_all()
    stack.start("router-2")  # same consumer group, its own port
    routers = ("router", "router-2")
    admin = {"Authorization": f"Bearer {stack.admin_key}"}

    # Until both routers decide tickets, the group has not settled on sharing the partitions.
    def both_deciding() -> bool:
        post(stack, "warm-up")
        return all(stack.metric_sum("router_decisions_total", service) > 0 for service in routers)

    stack.wait_for(both_deciding, timeout_s=90, what="both routers to own partitions")
    decided_before = {s: stack.metric_sum("router_decisions_total", s) for s in routers}

    suffix = uuid.uuid4().hex[:8]
    api = stack.url("router")
    team = httpx.post(f"{api}/v1/teams", json={"name": f"hot-{suffix}"}, headers=admin, timeout=10)
    assert team.status_code == 201, team.text
    current = httpx.get(f"{api}/v1/rules", headers=admin, timeout=10)
    document = current.json()
    document.pop("version", None)
    new_rule = {
        "id": f"hot-{suffix}",
        "name": f"Hot reload {suffix}",
        "when": {"field": "subject", "op": "contains", "value": f"marker-{suffix}"},
        "actions": {"assign_team": f"hot-{suffix}"},
    }
    document["rules"] = [new_rule, *document.get("rules", [])]
    changed_at = time.monotonic()
    saved = httpx.put(
        f"{api}/v1/rules", json=document, headers={**admin, "If-Match": current.headers["ETag"]}, timeout=10
    )
    assert saved.status_code == 200, saved.text
    version = saved.json()["version"]

    def everywhere() -> bool:
        return all(stack.metric_sum("router_ruleset_version", s) == version for s in routers)

    stack.wait_for(everywhere, timeout_s=5, what="both routers to load the new version")
    assert time.monotonic() - changed_at <= 2.0, "a router took more than 2 s to load the new rule set"

    keys = [post(stack, f"printer marker-{suffix} #{n}") for n in range(24)]
    stack.wait_for(lambda: all(decisions(stack, key) for key in keys), timeout_s=30, what="tickets routed")
    for key in keys:
        first = decisions(stack, key)[0]
        assert first["team"] == f"hot-{suffix}", (key, first)
        assert first["rule"] == new_rule["name"] and first["ruleset_version"] == version
        assert any(f"marker-{suffix}" in reason for reason in first["reasons"])  # type: ignore[attr-defined]
    # With 24 tickets over 3 partitions, both routers routed some of them with the new rule.
    for service in routers:
        assert stack.metric_sum("router_decisions_total", service) > decided_before[service], service
