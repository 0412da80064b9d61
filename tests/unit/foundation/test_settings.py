"""Settings that the services parse later are checked when read, naming the variable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from services.router.app import retention
from shared.db.pruning import cutoff
from shared.settings import (
    MAX_RETENTION_DAYS,
    CommonSettings,
    IntakeSettings,
    MetricsSettings,
    RouterSettings,
)


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("router_priority_matrix", "{bad", "not JSON"),
        ("router_priority_matrix", "[1]", "urgency"),
        ("router_priority_matrix", '{"1": "P1"}', "urgency"),
        ("router_load_counted_statuses", "new,bogus", "'bogus'"),
        ("log_level", "verbose", "DEBUG"),
        # A team name is at most 100 characters (the columns that hold one): a longer overflow team
        # failed every routing batch on PostgreSQL (its team_load row could not be inserted).
        ("router_overflow_team", "x" * 101, "100 characters"),
        ("router_default_team", "x" * 101, "100 characters"),
        # Beyond a day (an hour for one request) the write-back sender's time arithmetic overflowed
        # at ~8.6e13 s and every pass failed; such a value is a typo, refused at start.
        ("router_writeback_backoff_max_s", "1e14", "less than or equal to 86400"),
        ("router_writeback_backoff_base_s", "1e14", "less than or equal to 86400"),
        ("router_writeback_timeout_s", "1e14", "less than or equal to 3600"),
        ("router_writeback_poll_s", "1e14", "less than or equal to 3600"),
    ],
)
def test_a_bad_value_is_refused_naming_the_variable(field: str, value: str, says: str) -> None:
    with pytest.raises(ValidationError) as caught:
        RouterSettings(**{field: value})  # type: ignore[arg-type]
    error = caught.value.errors()[0]
    assert error["loc"] == (field,) and says in error["msg"]


def test_a_metrics_group_id_leaves_room_for_its_checkpoint_names() -> None:
    """Checkpoint rows are named ``<group>:<partition>`` in a column of 100 characters: a longer
    group id failed every checkpoint on PostgreSQL."""
    with pytest.raises(ValidationError) as caught:
        MetricsSettings(metrics_group_id="m" * 91)
    assert caught.value.errors()[0]["loc"] == ("metrics_group_id",)
    assert MetricsSettings(metrics_group_id="m" * 90).metrics_group_id == "m" * 90


@pytest.mark.parametrize(
    ("values", "at_fault"),
    [
        ({"topic_routing_events": "tickets"}, "topic_routing_events"),
        ({"topic_dead_letter": "tickets"}, "topic_dead_letter"),
        ({"topic_routing_events": "events", "topic_dead_letter": "events"}, "topic_dead_letter"),
    ],
)
def test_one_topic_for_two_purposes_is_refused_naming_the_variable(
    values: dict[str, str], at_fault: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        CommonSettings(**values)  # type: ignore[arg-type]
    [error] = caught.value.errors()
    assert error["loc"] == (at_fault,) and "another topic" in error["msg"]
    assert CommonSettings(topic_routing_events="routed", topic_dead_letter="dlq").topic_dead_letter == "dlq"


@pytest.mark.parametrize("port", [-1, 65536, 70000])
def test_a_port_no_socket_can_have_is_refused_naming_it(port: int) -> None:
    with pytest.raises(ValidationError) as caught:
        MetricsSettings(metrics_port=port)
    assert caught.value.errors()[0]["loc"] == ("metrics_port",)


def test_good_values_are_read() -> None:
    settings = RouterSettings(
        router_priority_matrix='{"1": {"1": "P1"}}', router_load_counted_statuses="new, open ,pending"
    )
    assert settings.router_load_counted_statuses == "new, open ,pending"
    assert CommonSettings(log_level="warning").log_level == "WARNING"


@pytest.mark.parametrize(
    ("given", "used"),
    [
        ("postgres://app:p%40ss@db:5432/x", "postgresql+asyncpg://app:p%40ss@db:5432/x"),
        ("postgresql://app:pw@db/x?sslmode=verify-full", "postgresql+asyncpg://app:pw@db/x?ssl=verify-full"),
        ("postgresql+asyncpg://app:pw@db/x?ssl=require", "postgresql+asyncpg://app:pw@db/x?ssl=require"),
        ("sqlite:///var/x.db", "sqlite+aiosqlite:///var/x.db"),
        ("sqlite+aiosqlite:///var/x.db", "sqlite+aiosqlite:///var/x.db"),
        ("not a url", "not a url"),
    ],
)
def test_database_urls_as_platforms_give_them_get_the_async_driver(given: str, used: str) -> None:
    # Heroku's, RDS's and most compose files' URLs name no driver: SQLAlchemy then loads psycopg,
    # which is not installed, and asyncpg refuses libpq's sslmode as an unknown keyword.
    assert CommonSettings(database_url=given).database_url == used


RETENTIONS = [
    (RouterSettings, "router_dedup_retention_days"),
    (RouterSettings, "router_resolved_retention_days"),
    (RouterSettings, "router_feedback_retention_days"),
    (IntakeSettings, "intake_delivery_retention_days"),
]


@pytest.mark.parametrize(("settings", "field"), RETENTIONS)
@pytest.mark.parametrize("days", [1e9, float("inf")])
def test_a_retention_beyond_what_a_timedelta_holds_is_refused_naming_it(
    settings: type[CommonSettings], field: str, days: float
) -> None:
    # timedelta(days=1e9) raises OverflowError: the service died at start (router, intake) or
    # at the first write-back retry, with a traceback that named no setting.
    with pytest.raises(ValidationError) as caught:
        settings(**{field: days})  # type: ignore[arg-type]
    assert caught.value.errors()[0]["loc"] == (field,)


@pytest.mark.parametrize(("settings", "field"), RETENTIONS)
def test_the_longest_retention_allowed_is_used_as_keeping_everything(
    settings: type[CommonSettings], field: str
) -> None:
    days = getattr(settings(**{field: MAX_RETENTION_DAYS}), field)  # type: ignore[arg-type]
    assert cutoff(datetime.now(UTC), timedelta(days=days)) == datetime.min.replace(tzinfo=UTC)


def test_the_router_builds_its_retention_from_the_longest_allowed() -> None:
    longest = RouterSettings(
        router_dedup_retention_days=MAX_RETENTION_DAYS,
        router_resolved_retention_days=MAX_RETENTION_DAYS,
        router_feedback_retention_days=MAX_RETENTION_DAYS,
    )
    assert retention(longest).dedup == timedelta(days=MAX_RETENTION_DAYS)
