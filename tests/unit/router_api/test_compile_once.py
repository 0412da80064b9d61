"""Rules are compiled once per version by LiveRules, never parsed or compiled per ticket."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.router.routing import policy
from services.router.rules import RuleSet
from services.router.rulesets.store import save_version
from services.ticketctl.demo import seed_demo
from shared.events import TicketSnapshot
from tests.integration.router_api.helpers import live_rules, restore_live_rules


async def test_each_version_is_compiled_once(
    sessions: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = {"compile": 0, "parse": 0}
    real_compile, real_parse = policy.compile_ruleset, policy.ruleset_of

    def counting_compile(ruleset: RuleSet) -> Any:
        calls["compile"] += 1
        return real_compile(ruleset)

    def counting_parse(row: Any) -> RuleSet:
        calls["parse"] += 1
        return real_parse(row)

    monkeypatch.setattr(policy, "compile_ruleset", counting_compile)
    monkeypatch.setattr(policy, "ruleset_of", counting_parse)
    document = {
        "rules": [
            {
                "id": f"r{i}",
                "name": f"R{i}",
                "when": {"field": "subject", "op": "contains", "value": f"topic-{i}-end"},
                "actions": {"assign_team": f"team{i % 5}"},
            }
            for i in range(50)
        ]
    }
    async with sessions() as session, session.begin():
        await seed_demo(session, sla=False)  # see running_router: the e2e tests need the demo rules
    before = await live_rules(sessions)
    async with sessions() as session, session.begin():
        saved = await save_version(session, RuleSet.model_validate(document), author="test")
    live = policy.LiveRules(sessions)
    calls.update(compile=0, parse=0)  # the constructor compiles the initial empty rule set
    assert await live.refresh()
    assert live.version == saved.version and calls == {"compile": 1, "parse": 1}

    for n in range(300):
        ticket = TicketSnapshot(external_id=str(n), subject=f"about topic-{n % 50}-end")
        result = live.policy.route(ticket, "test")
        assert result.team == f"team{(n % 50) % 5}" and result.ruleset_version == saved.version
        assert result.rule == f"R{n % 50}"
    assert not await live.refresh()  # same version: nothing reloaded
    assert calls == {"compile": 1, "parse": 1}

    async with sessions() as session, session.begin():
        newer = await save_version(session, RuleSet.model_validate({"rules": []}), author="test")
    assert await live.refresh()
    assert live.version == newer.version and calls == {"compile": 2, "parse": 2}
    await restore_live_rules(sessions, before)


async def test_a_refresh_never_applies_an_older_version_over_a_newer_one(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """The watcher and a dry run (POST /v1/routing/simulate refreshes first) may refresh at once:
    the one that read an older version, still waiting on its ``before_applying``, put that older
    version back over the newer one the other had applied (until the next poll)."""
    before = await live_rules(sessions)
    async with sessions() as session, session.begin():
        older = await save_version(session, RuleSet.model_validate({"rules": []}), author="test")
    held, release = asyncio.Event(), asyncio.Event()

    async def before_applying() -> None:
        if not held.is_set():  # the first refresh: the SLA refresh it awaits is slow
            held.set()
            await release.wait()

    live = policy.LiveRules(sessions, before_applying=before_applying)
    try:
        slow = asyncio.create_task(live.refresh())
        await held.wait()  # it read `older` and waits before applying it
        async with sessions() as session, session.begin():
            newer = await save_version(session, RuleSet.model_validate({"rules": []}), author="test")
        fast = asyncio.create_task(live.refresh())
        await asyncio.sleep(0.2)
        release.set()
        await asyncio.gather(slow, fast)
        assert newer.version > older.version
        assert live.version == newer.version and live.policy.version == newer.version
    finally:
        release.set()
        await restore_live_rules(sessions, before)
