"""The demo configuration ``make run`` seeds: teams, rules and an SLA policy, once."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from services.router.sla.policy import PriorityTargets, SlaPolicy
from services.router.slas import service as sla_service
from services.ticketctl.demo import AUTHOR, DEMO_SLA_POLICY
from services.ticketctl.dev import seed
from shared.db.engine import create_engine, session_factory
from shared.db.migrate import upgrade
from shared.events import Priority


def live_policies(url: str) -> list[tuple[str, int, str, dict[str, object]]]:
    async def read() -> list[tuple[str, int, str, dict[str, object]]]:
        engine = create_engine(url)
        try:
            async with session_factory(engine)() as session:
                rows = await sla_service.live_rows(session, "policy")
                return [(row.name, row.version, row.author, row.document) for row in rows]
        finally:
            await engine.dispose()

    return asyncio.run(read())


def test_the_demo_seeds_its_sla_policy_once(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}"
    upgrade(url)
    assert asyncio.run(seed(url))
    assert not asyncio.run(seed(url))  # teams exist: nothing seeded again
    [(name, version, author, document)] = live_policies(url)
    assert (name, version, author) == ("standard", 1, AUTHOR)
    stored = SlaPolicy.model_validate({k: v for k, v in document.items() if k != "rank"})
    assert stored == SlaPolicy.model_validate(DEMO_SLA_POLICY)
    assert stored.targets_for(Priority.P1) == PriorityTargets(
        first_response=timedelta(minutes=15), resolution=timedelta(hours=4)
    )
    assert [action.action for action in stored.on_breach] == ["raise_priority"]


def test_the_demo_without_its_sla_policy(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}"
    upgrade(url)
    assert asyncio.run(seed(url, sla=False))
    assert live_policies(url) == []
