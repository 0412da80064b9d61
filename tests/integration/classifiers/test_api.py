"""The classifier registry API on a running router: list, show, activate, deactivate, predict."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import select

from services.router.classification import TicketClassifier
from services.router.classifiers import service
from services.router.classifiers.live import LoadedVersions
from services.router.classifiers.schemas import LabelKind
from services.router.models import ClassifierModel
from shared.db.models import AuditEntry
from tests.conftest import unique_topics
from tests.integration.classifiers.helpers import Router, running_router, stored
from tests.unit.classifiers.helpers import SURE_NETWORK, UNSURE, model


@pytest.fixture(scope="module")
async def router(broker, database_url) -> AsyncIterator[Router]:
    """One router for the module: stopping one takes seconds (the consumer leaves its group)."""
    async with running_router(
        database_url=database_url,
        kafka_bootstrap_servers=broker.bootstrap,
        topic_partitions=1,
        router_classifier_poll_s=0.2,
        **unique_topics(),
    ) as running:
        yield running


async def test_registry_roles_activation_and_predict(sessions, router):
    first = await stored(sessions, LabelKind.TEAM)
    second = await stored(sessions, LabelKind.TEAM)
    listed = await router.client.get("/v1/classifiers", params={"label_kind": "team"}, headers=router.viewer)
    assert listed.status_code == 200
    items = {item["version"]: item for item in listed.json()["items"]}
    assert {first, second} <= set(items) and "blob" not in items[first]
    assert items[first]["figures"]["threshold"] > 0 and not items[first]["active"]

    shown = await router.client.get(f"/v1/classifiers/{first}", headers=router.viewer)
    assert shown.status_code == 200 and shown.json()["label_kind"] == "team"

    # Viewers read, only admins change; no key at all is 401.
    denied = await router.client.post(f"/v1/classifiers/{first}/activate", headers=router.viewer)
    assert denied.status_code == 403 and denied.headers["content-type"] == "application/problem+json"
    assert (await router.client.post(f"/v1/classifiers/{first}/activate")).status_code == 401

    activated = await router.client.post(f"/v1/classifiers/{first}/activate", headers=router.admin)
    assert activated.status_code == 200 and activated.json()["active"] is True
    # The router that took the request uses it at once (others within their poll period).
    assert router.app.state.classifiers.view.models[LabelKind.TEAM].version == first

    predicted = await router.client.post(
        "/v1/classifiers/predict",
        json={"subject": "VPN", "description": SURE_NETWORK, "label_kind": "team"},
        headers=router.viewer,
    )
    assert predicted.status_code == 200, predicted.text
    body = predicted.json()
    assert body["version"] == first and body["label"] == "network" and body["above_threshold"] is True
    assert body["confidence"] >= body["threshold"] and body["language"] == "en"
    assert body["urgency"] in {"low", "medium", "high", "critical"}

    unsure = await router.client.post(
        "/v1/classifiers/predict", json={"subject": UNSURE, "label_kind": "team"}, headers=router.viewer
    )
    assert unsure.json()["above_threshold"] is False

    # One active model per kind: activating the second retires the first.
    await router.client.post(f"/v1/classifiers/{second}/activate", headers=router.admin)
    listed = (
        await router.client.get("/v1/classifiers", params={"label_kind": "team"}, headers=router.viewer)
    ).json()
    active = [item["version"] for item in listed["items"] if item["active"]]
    assert active == [second]

    gone = await router.client.post(
        "/v1/classifiers/deactivate", params={"label_kind": "team"}, headers=router.admin
    )
    assert gone.status_code == 200 and gone.json() == {"label_kind": "team", "deactivated": second}
    assert LabelKind.TEAM not in router.app.state.classifiers.view.models
    none_left = await router.client.post(
        "/v1/classifiers/predict", json={"subject": SURE_NETWORK, "label_kind": "team"}, headers=router.viewer
    )
    assert none_left.json()["label"] is None and none_left.json()["version"] is None

    # A stored model can be tried without activating it.
    trial = await router.client.post(
        "/v1/classifiers/predict", json={"subject": SURE_NETWORK, "version": first}, headers=router.viewer
    )
    assert trial.json()["version"] == first and trial.json()["label"] == "network"

    async with sessions() as session:
        audit = (
            await session.scalars(
                select(AuditEntry).where(
                    AuditEntry.entity == "classifier_model",
                    AuditEntry.entity_id.in_([str(first), str(second)]),
                )
            )
        ).all()
    assert {(a.action, a.entity_id) for a in audit} >= {("activate", str(first)), ("deactivate", str(second))}
    assert all(a.actor == "test admin" for a in audit)


async def test_bad_input_is_problem_json_naming_the_field(router):
    missing = await router.client.post("/v1/classifiers/999999/activate", headers=router.admin)
    assert missing.status_code == 404
    assert missing.json()["errors"][0]["field"] == "/path/version"
    assert (await router.client.get("/v1/classifiers/999999", headers=router.viewer)).status_code == 404

    kind = await router.client.post(
        "/v1/classifiers/deactivate", params={"label_kind": "mood"}, headers=router.admin
    )
    assert kind.status_code == 422 and kind.json()["errors"][0]["field"] == "/query/label_kind"

    not_int = await router.client.get("/v1/classifiers/latest", headers=router.viewer)
    assert not_int.status_code == 422 and not_int.json()["errors"][0]["field"] == "/path/version"

    empty = await router.client.post("/v1/classifiers/predict", json={"subject": " "}, headers=router.viewer)
    assert empty.status_code == 422 and empty.json()["errors"][0]["field"] == "/subject"

    extra = await router.client.post(
        "/v1/classifiers/predict", json={"subject": "x", "sbject": "y"}, headers=router.viewer
    )
    assert extra.status_code == 422 and extra.json()["errors"][0]["field"] == "/sbject"

    unknown = await router.client.post(
        "/v1/classifiers/predict", json={"subject": "x", "version": 999999}, headers=router.viewer
    )
    assert unknown.status_code == 404 and unknown.json()["errors"][0]["field"] == "/version"


async def test_versions_beyond_the_id_column_are_refused_naming_the_field(router):
    """Numbers the INTEGER id cannot hold reached the database: 500s, not 422s."""
    huge = 2**31
    shown = await router.client.get(f"/v1/classifiers/{huge}", headers=router.viewer)
    assert shown.status_code == 422 and shown.json()["errors"][0]["field"] == "/path/version"
    activated = await router.client.post(f"/v1/classifiers/{10**20}/activate", headers=router.admin)
    assert activated.status_code == 422 and activated.json()["errors"][0]["field"] == "/path/version"
    predicted = await router.client.post(
        "/v1/classifiers/predict", json={"subject": "vpn", "version": 10**20}, headers=router.viewer
    )
    assert predicted.status_code == 422 and predicted.json()["errors"][0]["field"] == "/version"
    assert predicted.headers["content-type"] == "application/problem+json"
    largest = await router.client.get(f"/v1/classifiers/{huge - 1}", headers=router.viewer)
    assert largest.status_code == 404


async def test_a_team_model_that_names_no_active_team_is_not_activated(router: Router, sessions) -> None:
    version = await stored(sessions, LabelKind.TEAM)
    async with sessions() as session, session.begin():
        row = await session.get(ClassifierModel, version)
        assert row is not None
        row.figures = {**row.figures, "labels": ["no-such-team-a", "no-such-team-b"]}
    refused = await router.client.post(f"/v1/classifiers/{version}/activate", headers=router.admin)
    # Every prediction would have gone to triage or the default team, and nothing said so.
    assert refused.status_code == 409 and "none of model" in refused.json()["detail"]


async def test_trying_a_stored_model_that_does_not_load_is_a_problem_naming_the_version(router, sessions):
    """A damaged blob, or one of a newer format (trained by a newer ticketctl): a 500 before."""
    version = await stored(sessions, LabelKind.CATEGORY)
    async with sessions() as session, session.begin():
        row = await session.get(ClassifierModel, version)
        assert row is not None
        row.blob = b"junk"
    tried = await router.client.post(
        "/v1/classifiers/predict", json={"subject": SURE_NETWORK, "version": version}, headers=router.viewer
    )
    assert tried.status_code == 409, tried.text
    assert tried.headers["content-type"] == "application/problem+json"
    assert tried.json()["errors"][0]["field"] == "/version" and str(version) in tried.json()["detail"]


async def test_a_model_that_does_not_load_is_not_activated_and_the_active_one_stays(router, sessions):
    """Activated, it stepped the working model down: every router ran without a model of its kind."""
    working = await stored(sessions, LabelKind.CATEGORY)
    broken = await stored(sessions, LabelKind.CATEGORY)
    async with sessions() as session, session.begin():
        row = await session.get(ClassifierModel, broken)
        assert row is not None
        row.blob = b"junk"
    assert (await router.client.post(f"/v1/classifiers/{working}/activate", headers=router.admin)).is_success
    refused = await router.client.post(f"/v1/classifiers/{broken}/activate", headers=router.admin)
    assert refused.status_code == 409, refused.text
    assert refused.json()["errors"][0]["field"] == "/path/version"
    assert router.app.state.classifiers.view.models[LabelKind.CATEGORY].version == working
    async with sessions() as session:
        assert (await service.active_versions(session))[LabelKind.CATEGORY] == working


async def test_a_dry_run_of_a_version_loads_it_once_and_never_serves_a_deleted_or_replaced_one(
    router: Router, sessions, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each dry run with ``version`` read the blob and deserialised the model (~100 ms for a big
    one), every request. Loaded versions are now kept (a few); each request still asks the
    database whether the version is the same row, so a deleted one is a 404 and a row stored
    again under the same id (SQLite reuses the highest id) is loaded anew."""
    loads: list[int] = []
    real = TicketClassifier.from_bytes

    def counting(blob: bytes) -> TicketClassifier:
        loads.append(len(blob))
        return real(blob)

    monkeypatch.setattr(TicketClassifier, "from_bytes", staticmethod(counting))
    version = await stored(sessions, LabelKind.TEAM)

    async def dry_run() -> httpx.Response:
        return await router.client.post(
            "/v1/classifiers/predict",
            json={"subject": SURE_NETWORK, "version": version},
            headers=router.viewer,
        )

    first, second = await dry_run(), await dry_run()
    assert first.status_code == second.status_code == 200, (first.text, second.text)
    assert first.json() == second.json() and first.json()["label"] == "network"
    assert len(loads) == 1  # the second request used the model loaded by the first

    async with sessions() as session, session.begin():
        row = await session.get(ClassifierModel, version)
        assert row is not None
        replacement = {c: getattr(row, c) for c in ("label_kind", "trained_on", "figures", "active")}
        await session.delete(row)
    gone = await dry_run()
    assert gone.status_code == 404 and gone.json()["errors"][0]["field"] == "/version"

    async with sessions() as session, session.begin():
        other = model(11)  # another model under the same version
        session.add(ClassifierModel(id=version, name="replacement", blob=other.to_bytes(), **replacement))
    again = await dry_run()
    assert again.status_code == 200 and len(loads) == 2
    assert again.json()["threshold"] == other.threshold


async def test_dry_run_models_are_bounded_least_recently_used_first_out(sessions) -> None:
    cache = LoadedVersions(size=2)
    a, b, c = [await stored(sessions, LabelKind.CATEGORY, seed=s) for s in (7, 8, 9)]
    async with sessions() as session:
        first = await cache.get(session, a)
        assert first is not None and first.version == a
        await cache.get(session, b)
        assert await cache.get(session, a) is first  # kept; now b is the least recently used
        await cache.get(session, c)
        assert await cache.get(session, a) is first
        assert cache.cached() == [c, a]  # b made room


async def test_activating_the_active_model_again_changes_nothing_and_audits_nothing(sessions, router):
    """A second activation of the active model (a retried request, a script run twice) recorded
    another "activate" entry naming the model as its own predecessor: a change that was not made.
    As for a team or a key, a no-op is not audited."""
    version = await stored(sessions, LabelKind.TEAM)
    for _ in range(2):
        activated = await router.client.post(f"/v1/classifiers/{version}/activate", headers=router.admin)
        assert activated.status_code == 200 and activated.json()["active"] is True, activated.text
    async with sessions() as session:
        audit = (
            await session.scalars(
                select(AuditEntry).where(
                    AuditEntry.entity == "classifier_model", AuditEntry.entity_id == str(version)
                )
            )
        ).all()
    assert [(a.action, a.detail["previous"]) for a in audit] == [("activate", audit[0].detail["previous"])]
    assert audit[0].detail["previous"] != version
    gone = await router.client.post(
        "/v1/classifiers/deactivate", params={"label_kind": "team"}, headers=router.admin
    )
    assert gone.json()["deactivated"] == version
