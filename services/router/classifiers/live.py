"""The active models of a running router, hot-reloaded without a restart.

Each router polls which model versions are active (one small query) and the teams' languages;
a newly activated model is loaded once, off the event loop (deserialising a big model takes
~100 ms), and swapped in as a new immutable :class:`ClassifierView`, so a batch in flight keeps
the view it started with.
"""

from __future__ import annotations

import asyncio
import logging

from prometheus_client import Gauge
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.router.classification import TicketClassifier
from services.router.classifiers.enrichment import ActiveModel, BelowThreshold, ClassifierView
from services.router.classifiers.schemas import LabelKind
from services.router.classifiers.service import active_versions, get_model, team_languages
from shared.runtime import repeat_forever

log = logging.getLogger(__name__)

ACTIVE_VERSION = Gauge(
    "router_classifier_version", "Classifier model version in use (0: none)", ["label_kind"]
)


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
