"""Hot reload: a running LiveClassifier follows activations within its poll period."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from services.router.classifiers import service
from services.router.classifiers.live import LiveClassifier
from services.router.classifiers.schemas import LabelKind
from services.router.models import ClassifierModel, Team
from tests.integration.classifiers.helpers import stored
from tests.waiting import wait_for

POLL_S = 0.1


def version_of(live: LiveClassifier, kind: LabelKind = LabelKind.TEAM) -> int | None:
    model = live.view.models.get(kind)
    return None if model is None else model.version


async def test_running_router_picks_up_a_new_model_without_restart(sessions):
    first = await stored(sessions, seed=7)
    second = await stored(sessions, seed=8)
    category = await stored(sessions, LabelKind.CATEGORY)
    live = LiveClassifier(sessions)
    watcher = asyncio.create_task(live.watch(POLL_S))
    try:
        await asyncio.sleep(POLL_S * 2)
        assert live.view.models == {}
        async with sessions() as session, session.begin():
            await service.activate(session, first, "test")
            await service.activate(session, category, "test")
        await wait_for(lambda: version_of(live) == first and version_of(live, LabelKind.CATEGORY) == category)
        in_use = live.view  # a batch in flight keeps the view it started with
        async with sessions() as session, session.begin():
            await service.activate(session, second, "test")
        await wait_for(lambda: version_of(live) == second)
        assert in_use.models[LabelKind.TEAM].version == first
        assert version_of(live, LabelKind.CATEGORY) == category  # untouched kinds are not reloaded
        assert live.view.models[LabelKind.CATEGORY] is in_use.models[LabelKind.CATEGORY]
        async with sessions() as session, session.begin():
            await service.deactivate(session, LabelKind.TEAM, "test")
        await wait_for(lambda: version_of(live) is None)
        assert await live.check() is None
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher


async def test_a_model_that_does_not_load_is_reported_not_retried(sessions):
    version = await stored(sessions)
    async with sessions() as session, session.begin():
        # The session database is shared: start from no active model of any kind.
        for kind in LabelKind:
            await service.deactivate(session, kind, "test")
    live = LiveClassifier(sessions)
    await live.refresh()  # whatever else the shared database holds (team languages) is loaded now
    async with sessions() as session, session.begin():
        await session.execute(
            update(ClassifierModel).where(ClassifierModel.id == version).values(blob=b"junk")
        )
        await service.activate(session, version, "test")
    assert await live.refresh() is False  # nothing usable changed
    assert version_of(live) is None and version in live.failed
    assert f"{version}" in (await live.check() or "")
    assert await live.refresh() is False and len(live.failed) == 1


async def test_team_languages_follow_the_teams_table(sessions):
    live = LiveClassifier(sessions)
    async with sessions() as session, session.begin():
        session.add(Team(name="live-test-desk", languages=["ET", "en"]))
    await live.refresh()
    assert live.view.team_languages["live-test-desk"] == frozenset({"et", "en"})
    async with sessions() as session, session.begin():
        await session.execute(update(Team).where(Team.name == "live-test-desk").values(active=False))
    assert await live.refresh() is True
    assert "live-test-desk" not in live.view.team_languages


async def test_the_database_allows_one_active_model_per_kind(sessions):
    first, second = await stored(sessions), await stored(sessions)
    async with sessions() as session, session.begin():
        await service.activate(session, first, "test")
    with pytest.raises(IntegrityError):
        async with sessions() as session, session.begin():
            await session.execute(
                update(ClassifierModel).where(ClassifierModel.id == second).values(active=True)
            )
    async with sessions() as session:
        assert await service.active_versions(session) == {LabelKind.TEAM: first}


async def test_a_slow_refresh_cannot_put_back_the_model_a_later_one_replaced(sessions):
    first = await stored(sessions, seed=7)
    second = await stored(sessions, seed=8)
    async with sessions() as session, session.begin():
        await service.activate(session, first, "test")
    live = LiveClassifier(sessions)
    load, gate = live._load, asyncio.Event()

    async def slow_load(version: int):
        if version == first:
            await gate.wait()  # the poll deserialising a big model
        return await load(version)

    live._load = slow_load  # type: ignore[method-assign]
    poll = asyncio.create_task(live.refresh())  # sees `first` active, loads it slowly
    await asyncio.sleep(0.2)
    async with sessions() as session, session.begin():
        await service.activate(session, second, "test")
    endpoint = asyncio.create_task(live.refresh())  # what the activate endpoint does
    await asyncio.sleep(0.2)
    gate.set()
    await asyncio.gather(poll, endpoint)
    # Unserialised, the poll finished last and put `first` back until the next poll.
    assert version_of(live) == second
    async with sessions() as session, session.begin():
        await service.deactivate(session, LabelKind.TEAM, "test")
