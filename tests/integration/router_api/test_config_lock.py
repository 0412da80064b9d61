"""Configuration writers (rule sets, SLA policies and calendars, teams) are serialised by one lock.

Each write checks the others: under READ COMMITTED, without the lock, a write whose check ran
while a conflicting write was uncommitted passed it, and both committed (a deleted policy named by
the live rules, say). Each test holds transaction 1 open after its write and shows that the
conflicting request waits for it, then fails its check. On PostgreSQL the lock is an advisory lock;
on SQLite, the database's write lock, taken before the checks.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.router.config_lock import SQLITE_WRITE_LOCK, lock_config
from services.router.rules import RuleSet
from services.router.rulesets import service as rules
from services.router.rulesets.sla_references import policy_in_use
from services.router.slas import service as slas
from tests.integration.router_api.helpers import Router, rule
from tests.integration.router_api.test_rules_sla_policies import NEVER_APPLIES, add_policy, with_policy

BLOCKED_FOR_S = 0.5  # how long the second writer must still be waiting while the first is open


@contextmanager
def lock_statements(engine: AsyncEngine) -> Iterator[list[str]]:
    """The lock statements ``engine`` runs inside the block: PostgreSQL's advisory lock, SQLite's
    no-op write (not the routing batches' and the scanner's, which run in the background)."""
    seen: list[str] = []

    def spy(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "pg_advisory_xact_lock" in statement or statement == SQLITE_WRITE_LOCK:
            seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", spy)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", spy)


async def second_waits_for_first(
    router: Router,
    first: Callable[[AsyncSession], Awaitable[object]],
    second: Callable[[], Coroutine[Any, Any, httpx.Response]],
) -> httpx.Response:
    """Run ``first`` in a transaction held open while ``second`` (a request) starts; commit it
    once ``second`` has waited ``BLOCKED_FOR_S``; return ``second``'s response."""
    sessions: async_sessionmaker[AsyncSession] = router.app.state.sessions
    async with sessions() as session, session.begin():
        await first(session)
        request = asyncio.create_task(second())
        done, _ = await asyncio.wait({request}, timeout=BLOCKED_FOR_S)
        if done:
            pytest.fail(f"the conflicting write did not wait for the open one: {request.result().text}")
    # Transaction 1 committed: the request goes on, and now sees its write.
    return await asyncio.wait_for(request, timeout=10)


def edit() -> rules.Edit:
    return rules.Edit(expected=None, author="tests", comment="config lock test")


async def test_policy_delete_waits_for_a_rule_set_naming_it(router_api: Router) -> None:
    team = await router_api.add_team("lock")
    policy, etag = await add_policy(router_api, "lock")
    naming = RuleSet.model_validate({"rules": [with_policy("names-policy", team, policy)]})

    deleted = await second_waits_for_first(
        router_api,
        lambda session: rules.replace_ruleset(session, naming, edit()),
        lambda: router_api.client.delete(
            f"/v1/sla/policies/{policy}", headers={**router_api.editor, "If-Match": etag}
        ),
    )
    assert deleted.status_code == 409, deleted.text
    assert "names-policy" in deleted.json()["detail"]


async def test_rule_set_save_waits_for_a_policy_deletion(router_api: Router) -> None:
    team = await router_api.add_team("lock")
    policy, _ = await add_policy(router_api, "lock")

    async def delete_policy(session: AsyncSession) -> None:
        # What DELETE /v1/sla/policies/{name} does, in a transaction the test holds open.
        current = await slas.begin_change(session, "policy", policy)
        assert await policy_in_use(session, policy) is None
        await slas.save(session, "policy", policy, None, "tests", previous=current)

    saved = await second_waits_for_first(
        router_api,
        delete_policy,
        lambda: router_api.put_rules({"rules": [with_policy("names-gone", team, policy)]}),
    )
    assert saved.status_code == 422, saved.text
    assert {e["message"] for e in saved.json()["errors"]} == {
        f"rule 'names-gone': deleted SLA policy {policy!r}"
    }


async def test_team_delete_waits_for_a_rule_set_naming_it(router_api: Router) -> None:
    team = await router_api.add_team("lock")
    naming = RuleSet.model_validate({"rules": [rule("names-team", team, "x")]})

    deleted = await second_waits_for_first(
        router_api,
        lambda session: rules.replace_ruleset(session, naming, edit()),
        lambda: router_api.client.delete(f"/v1/teams/{team}", headers={**router_api.editor, "If-Match": "*"}),
    )
    assert deleted.status_code == 409, deleted.text
    assert "names-team" in deleted.json()["detail"]


async def test_every_configuration_write_takes_the_lock_once(router_api: Router) -> None:
    """Each write endpoint locks exactly once per transaction, also where an edit calls ``save``."""
    c, editor = router_api.client, router_api.editor
    always = {**editor, "If-Match": "*"}
    suffix = uuid.uuid4().hex[:8]
    team, calendar, policy = f"lock-{suffix}", f"cal-{suffix}", f"pol-{suffix}"
    hours = {"document": {"timezone": "UTC", "weekly_hours": {"mon-fri": "09:00-17:00"}}}
    on_calendar = {"document": {**NEVER_APPLIES, "calendar": calendar}}

    async def on_rules(method: str, url: str, **kwargs: Any) -> httpx.Response:
        headers = {**editor, "If-Match": await router_api.rules_etag()}
        return await c.request(method, url, headers=headers, **kwargs)

    async def delete_sla(path: str) -> httpx.Response:
        etag = (await c.get(path, headers=editor)).headers["ETag"]
        return await c.delete(path, headers={**editor, "If-Match": etag})

    writes: list[tuple[str, Callable[[], Awaitable[httpx.Response]]]] = [
        ("create team", lambda: c.post("/v1/teams", json={"name": team}, headers=editor)),
        ("patch team", lambda: c.patch(f"/v1/teams/{team}", json={"capacity": 7}, headers=always)),
        ("put team", lambda: c.put(f"/v1/teams/{team}", json={"capacity": 8}, headers=always)),
        ("put calendar", lambda: c.put(f"/v1/sla/calendars/{calendar}", json=hours, headers=editor)),
        ("put policy", lambda: c.put(f"/v1/sla/policies/{policy}", json=on_calendar, headers=editor)),
        ("put rules", lambda: on_rules("put", "/v1/rules", json={"rules": [with_policy("a", team, policy)]})),
        ("add rule", lambda: on_rules("post", "/v1/rules", json=rule("b", team, "b"))),
        ("patch rule", lambda: on_rules("patch", "/v1/rules/b", json={"enabled": False})),
        ("move rule", lambda: on_rules("post", "/v1/rules/b/move", params={"position": 0})),
        ("delete rule", lambda: on_rules("delete", "/v1/rules/b")),
        # Version 1 is the demo seed: the rules stop naming the policy and the team.
        ("rollback", lambda: on_rules("post", "/v1/rules/versions/1/rollback")),
        ("delete policy", lambda: delete_sla(f"/v1/sla/policies/{policy}")),
        ("delete calendar", lambda: delete_sla(f"/v1/sla/calendars/{calendar}")),
        ("delete team", lambda: c.delete(f"/v1/teams/{team}", headers=always)),
    ]
    engine: AsyncEngine = router_api.app.state.sessions.kw["bind"]
    for name, write in writes:
        with lock_statements(engine) as seen:
            response = await write()
        assert response.status_code < 300, f"{name}: {response.status_code} {response.text}"
        # The reads that fetch an ETag take no lock: only the write itself counts.
        assert len(seen) == 1, f"{name}: {len(seen)} lock statements"


async def test_lock_config_is_once_per_transaction(router_api: Router) -> None:
    sessions: async_sessionmaker[AsyncSession] = router_api.app.state.sessions
    engine: AsyncEngine = sessions.kw["bind"]
    with lock_statements(engine) as seen:
        async with sessions() as session:
            async with session.begin():
                await lock_config(session)
                await lock_config(session)
            assert len(seen) == 1
            async with session.begin():  # a new transaction takes it again
                await lock_config(session)
    assert len(seen) == 2
