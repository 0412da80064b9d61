"""The active models of a running router, hot-reloaded without a restart.

Each router polls which model versions are active (one small query) and the teams' languages;
a newly activated model is loaded once, off the event loop (deserialising a big model takes
~100 ms), and swapped in as a new immutable :class:`ClassifierView`, so a batch in flight keeps
the view it started with.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from datetime import datetime

from prometheus_client import Gauge
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.router.classification import TicketClassifier
from services.router.classifiers.enrichment import ActiveModel, BelowThreshold, ClassifierView
from services.router.classifiers.schemas import LabelKind
from services.router.classifiers.service import active_versions, get_model, team_languages
from services.router.models import ClassifierModel
from shared.runtime import repeat_forever

log = logging.getLogger(__name__)

ACTIVE_VERSION = Gauge(
    "router_classifier_version", "Classifier model version in use (0: none)", ["label_kind"]
)

# Models kept for dry runs of a given version: a few, as a model can be megabytes in memory and
# a dry run tries one or two versions at a time (the active one against a candidate).
DRY_RUN_MODELS = 4

# What tells one stored row of a version from another: a version deleted and stored again (SQLite
# reuses the highest id) is a new row with its own creation time, name and blob. The blob's length
# is read without the blob itself (the column's header; PostgreSQL's TOAST pointer says it).
RowIdentity = tuple[datetime, str, str, int]


class LoadedVersions:
    """Models of given versions loaded for dry runs (``POST /v1/classifiers/predict`` with a
    ``version``), least recently used first out.

    Loading one reads its blob and deserialises it (~100 ms for a big model) which each dry run
    did again. Each lookup still asks the database for the row's identity (one small query), so
    a version deleted meanwhile is not served, by this router or by any other, and one stored
    again under the same id is loaded anew: nothing has to tell the routers.
    """

    def __init__(self, size: int = DRY_RUN_MODELS) -> None:
        self.size = size
        self._models: OrderedDict[int, tuple[RowIdentity, ActiveModel]] = OrderedDict()

    def cached(self) -> list[int]:
        """The versions kept, least recently used first."""
        return list(self._models)

    async def get(self, session: AsyncSession, version: int) -> ActiveModel | None:
        """The model of ``version``; None when there is no such version. Raises ``ValueError``
        when its blob does not load (not kept: a fixed row is tried again)."""
        found = self._models.get(version)
        if found is not None:
            identity = await _identity(session, version)
            # Concurrent dry runs share the dict: after the await, ours may be gone or replaced.
            if identity == found[0]:
                if self._models.get(version) is found:
                    self._models.move_to_end(version)
                return found[1]
            if self._models.get(version) is found:
                del self._models[version]  # deleted, or another row under the same id
            if identity is None:
                return None
        row = await get_model(session, version, with_blob=True)
        if row is None:
            return None
        model = await asyncio.to_thread(TicketClassifier.from_bytes, row.blob)
        loaded = ActiveModel(row.id, row.name, LabelKind(row.label_kind), model)
        # The identity of the row loaded, not re-read: a change in between is seen next time.
        self._models[version] = ((row.created_at, row.name, row.label_kind, len(row.blob)), loaded)
        while len(self._models) > self.size:
            self._models.popitem(last=False)
        return loaded


async def _identity(session: AsyncSession, version: int) -> RowIdentity | None:
    found = (
        await session.execute(
            select(
                ClassifierModel.created_at,
                ClassifierModel.name,
                ClassifierModel.label_kind,
                func.length(ClassifierModel.blob),
            ).where(ClassifierModel.id == version)
        )
    ).first()
    return None if found is None else (found[0], found[1], found[2], int(found[3]))


class LiveClassifier:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], below_threshold: BelowThreshold = "triage"
    ) -> None:
        self.sessions = sessions
        self.view = ClassifierView(below_threshold=below_threshold)
        # Versions whose blob would not load: not retried every poll, reported by the check.
        self.failed: dict[int, str] = {}
        self.wanted: dict[LabelKind, int] = {}
        self._refreshing = asyncio.Lock()
        self.dry_runs = LoadedVersions()  # versions tried by dry runs, active or not

    async def refresh(self) -> bool:
        """Follow the active versions and team languages; True when the view changed. One at a
        time: the poll's refresh, slower (it loads a blob), finishing after the activate endpoint's
        would put the older model back."""
        async with self._refreshing:
            return await self._refresh()

    async def _refresh(self) -> bool:
        async with self.sessions() as session:
            wanted = await active_versions(session)
            languages = await team_languages(session)
        self.wanted = wanted
        models = {kind: m for kind, m in self.view.models.items() if wanted.get(kind) == m.version}
        for kind, version in wanted.items():
            if kind in models or version in self.failed:
                continue  # a failed version keeps the kind without a model until another is activated
            loaded = await self._load(version)
            if loaded is not None:
                models[kind] = loaded
        if models == dict(self.view.models) and languages == dict(self.view.team_languages):
            return False
        self.view = ClassifierView(models, languages, self.view.below_threshold)
        for kind in LabelKind:
            model = models.get(kind)
            ACTIVE_VERSION.labels(kind.value).set(0 if model is None else model.version)
        log.info("classifiers loaded", extra={"versions": {k.value: m.version for k, m in models.items()}})
        return True

    async def _load(self, version: int) -> ActiveModel | None:
        async with self.sessions() as session:
            row = await get_model(session, version, with_blob=True)
        if row is None:
            return None  # deleted between the two queries; the next poll sees the truth
        try:
            model = await asyncio.to_thread(TicketClassifier.from_bytes, row.blob)
        except ValueError as exc:
            self.failed[version] = str(exc)
            log.error("classifier model does not load", extra={"version": version, "error": str(exc)})
            return None
        return ActiveModel(version, row.name, LabelKind(row.label_kind), model)

    async def check(self) -> str | None:
        """For /readyz as a degraded check: an active model that cannot be used."""
        broken = sorted(v for v in self.wanted.values() if v in self.failed)
        if broken:
            return "active classifier model(s) do not load: " + ", ".join(map(str, broken))
        return None

    async def watch(self, poll_s: float) -> None:
        # A failed refresh keeps routing with the models we have.
        await repeat_forever(self.refresh, poll_s, log, "classifier refresh failed")
