"""``GET /v1/backlog``'s ``as_of`` on an instance whose backlog has no clock yet: no partition
assigned, or shards assigned but not fed an event nor caught up."""

from __future__ import annotations

from typing import Any, cast

from services.metrics.app import ShardsCollector, create_app
from services.metrics.backlog import BacklogState
from services.metrics.backlog.views import summary
from services.metrics.ingest.consumer import BacklogIngest, Shard
from shared.settings import MetricsSettings
from tests.unit.backlog.helpers import at


def test_no_partition_assigned_has_no_as_of() -> None:
    ingest = BacklogIngest(cast(Any, None), clock=lambda: at(0))
    body = summary(ShardsCollector(ingest).snapshot())
    assert body == {"as_of": None, "open": 0, "triage_open": 0, "teams": {}}


def test_a_shard_without_a_clock_has_no_as_of() -> None:
    ingest = BacklogIngest(cast(Any, None), clock=lambda: at(0))
    ingest.shards[0] = Shard(0, BacklogState(), {})
    assert summary(ShardsCollector(ingest).snapshot())["as_of"] is None


def test_a_clocked_shard_says_its_instant() -> None:
    state = BacklogState()
    state.advance_clock(at(60))
    assert summary(state.snapshot())["as_of"] == at(60).isoformat()


def test_the_schema_documents_a_nullable_as_of() -> None:
    spec = create_app(MetricsSettings()).openapi()
    ok = spec["paths"]["/v1/backlog"]["get"]["responses"]["200"]["content"]["application/json"]
    name = ok["schema"]["$ref"].rsplit("/", 1)[1]
    as_of = spec["components"]["schemas"][name]["properties"]["as_of"]
    assert {"type": "null"} in as_of["anyOf"]
    assert "null" in as_of["description"]
