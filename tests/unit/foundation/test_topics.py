"""Topic creation at start-up: a topic the broker refused to create stops the service with why.

aiokafka's ``create_topics`` raises nothing for a topic the broker refused: the error is in the
response, one per topic (an invalid replication factor, a policy, an authorization failure).
"""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka.admin import NewTopic
from aiokafka.protocol.admin import CreateTopicsResponse_v3

from shared.kafka import topics as topics_module
from shared.kafka.topics import ensure_topics
from shared.settings import CommonSettings

REFUSED = "Replication factor: 3 larger than available brokers: 1."


class FakeAdmin:
    """A broker with no topics yet that answers creation with ``codes`` per topic (0: created)."""

    created: list[str]

    def __init__(self, codes: dict[str, int], **_: Any) -> None:
        self.codes = codes

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def list_topics(self) -> list[str]:
        return list(FakeAdmin.created)

    async def create_topics(self, new_topics: list[NewTopic]) -> CreateTopicsResponse_v3:
        errors = []
        for topic in new_topics:
            code = self.codes.get(topic.name, 0)
            if code in (0, 36):
                FakeAdmin.created.append(topic.name)
            errors.append((topic.name, code, REFUSED if code == 38 else None))
        return CreateTopicsResponse_v3(throttle_time_ms=0, topic_errors=errors)


def use_admin(monkeypatch: pytest.MonkeyPatch, codes: dict[str, int]) -> None:
    FakeAdmin.created = []
    monkeypatch.setattr(topics_module, "AIOKafkaAdminClient", lambda **kw: FakeAdmin(codes, **kw))
    monkeypatch.setattr(topics_module.asyncio, "sleep", _no_sleep)


async def _no_sleep(_: float) -> None:
    pass


async def test_a_topic_the_broker_refused_to_create_fails_the_start_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # TOPIC_REPLICATION_FACTOR=3 on a one-broker cluster: "created topics" was logged and the
    # service started with no topic (or one the broker auto-created with its defaults, 1 partition).
    settings = CommonSettings(topic_replication_factor=3)
    use_admin(monkeypatch, {settings.topic_ticket_events: 38})
    with pytest.raises(RuntimeError) as failed:
        await ensure_topics(settings, attempts=3)
    assert settings.topic_ticket_events in str(failed.value)
    assert REFUSED in str(failed.value)


async def test_a_topic_created_meanwhile_by_another_service_is_no_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = CommonSettings()
    use_admin(monkeypatch, {settings.topic_routing_events: 36})  # TOPIC_ALREADY_EXISTS: a race
    await ensure_topics(settings, attempts=1)
    assert sorted(FakeAdmin.created) == sorted(topics_module.all_topics(settings))
