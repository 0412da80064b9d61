"""Environment-driven settings, one class per service, all documented in the README.

Every variable can be set in the environment or in a ``.env`` file in the working directory.
No secret lives in these classes: API keys and webhook secrets are stored in the database.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.db.engine import async_url
from shared.events import TicketStatus

DEFAULT_VAR_DIR = Path("var")
# A retention (days) becomes a timedelta, which holds at most this many days: beyond it the service
# died at start (or at a write-back retry) of an OverflowError naming no setting. Anything past
# ~2,000 years already keeps everything (shared/db/pruning.py ``cutoff``).
MAX_RETENTION_DAYS = timedelta.max.days
MAX_HANDLE_SECONDS = 7 * 86_400.0  # the metrics' Erlang C handle time (agent work per ticket)


class CommonSettings(BaseSettings):
    """Settings every service reads."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092", description="Kafka bootstrap servers (comma separated)."
    )
    database_url: str = Field(
        default="sqlite+aiosqlite:///var/ticket-router.db",
        description="SQLAlchemy URL: sqlite+aiosqlite:///path or postgresql+asyncpg://user:password@host/db; "
        "postgresql:// and postgres:// get asyncpg, and libpq's sslmode= becomes asyncpg's ssl=.",
    )
    # A black-holed database link otherwise held a statement (a whole consumer batch, an API
    # request) for the kernel's TCP timeout, ~15 min. 30 s is far beyond any statement of the
    # services (a routing batch's take milliseconds), so only a stuck one meets it.
    database_statement_timeout_s: float = Field(
        default=30.0,
        ge=0,
        le=86_400,
        description="PostgreSQL: longest a service's statement may run (the server's statement_timeout; "
        "the client gives up on a silent server a few seconds later); 0: no limit. Intake's "
        "per-request statements (delivery ids, the outbox check) run at most 9 s, even when this "
        "allows more or sets no limit. Migrations and ticketctl have none.",
    )
    # asyncpg's own bound is 60 s: against a black-holed database each checkout that had to connect
    # (the pool's first, one after an invalidation, intake's ledger connections) held its request
    # or batch that long. A reachable server completes the handshake in milliseconds, TLS included.
    database_connect_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=600,
        description="PostgreSQL: longest a service waits for a new database connection (TCP, TLS and "
        "authentication) before failing as an outage (503, a batch retried).",
    )
    # A replica frozen with a transaction open (SIGSTOP, a hung VM) otherwise kept its locks
    # (intake's outbox relay lock, a routing batch's rows) until its TCP connection died. The
    # services' longest legitimate pause inside a transaction is CPU work of seconds (an API rule
    # replay of 10,000 tickets, a classifier model's load check, a routing batch); the relay's lock
    # session, idle for a whole drain, runs a statement every third of this (services/intake/
    # publisher.py). Waits for the broker (INTAKE_PUBLISH_TIMEOUT_S, the producer's 30 s request
    # timeout) happen outside any transaction.
    database_idle_in_transaction_timeout_s: float = Field(
        default=60.0,
        ge=0,
        le=86_400,
        description="PostgreSQL: a service's session idle inside a transaction this long is ended by the "
        "server (idle_in_transaction_session_timeout), freeing its locks (a frozen replica's); 0: never. "
        "Migrations and ticketctl have none.",
    )
    topic_ticket_events: str = Field(default="tickets", description="Topic of ticket events.")
    topic_routing_events: str = Field(
        default="routing", description="Topic of routing events (another than the ticket events')."
    )
    topic_dead_letter: str = Field(default="dead-letter", description="Dead-letter topic (a third one).")
    topic_partitions: int = Field(default=6, ge=1, description="Partitions for topics we create.")
    topic_replication_factor: int = Field(default=1, ge=1, description="Replication factor for new topics.")
    log_level: str = Field(default="INFO", description="Log level (DEBUG, INFO, WARNING, ERROR).")
    log_json: bool = Field(default=True, description="JSON log lines (false: human readable).")
    http_keep_alive_s: int = Field(
        default=75,
        ge=1,
        description="How long an idle HTTP connection is kept open; keep it above the idle timeout of "
        "any load balancer or proxy in front (AWS ALB 60 s, nginx 60 s; Google Cloud LB needs 620).",
    )

    @field_validator("topic_routing_events", "topic_dead_letter")
    @classmethod
    def _distinct_topics(cls, value: str, info: ValidationInfo) -> str:
        # One topic for two purposes mixes what the consumers read: the router would take the
        # routing events it publishes for poison and dead-letter each one.
        for earlier in ("topic_ticket_events", "topic_routing_events"):
            if earlier != info.field_name and info.data.get(earlier) == value:
                raise ValueError(f"must name another topic than {earlier.upper()} ({value!r})")
        return value

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        return async_url(value)  # postgres://... as platforms give it works as it is

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.strip().upper()
        if not isinstance(logging.getLevelName(level), int):
            raise ValueError("expected DEBUG, INFO, WARNING, ERROR or CRITICAL")
        return level

    def kafka_servers(self) -> list[str]:
        return [s.strip() for s in self.kafka_bootstrap_servers.split(",") if s.strip()]


class ConsumerSettings(CommonSettings):
    """Tuning of the shared consumer loop."""

    # A batch's fixed costs (its ~15 round trips, the text work's array set-up) are shared by more
    # tickets in a bigger batch: 2,000 routed ~6-17 % more per second than 500 on PostgreSQL
    # (bench --only router). Below saturation batches are as small as the traffic, so only a
    # backlog ever fills one.
    consumer_batch_max: int = Field(
        default=2000, ge=1, description="Max messages per batch (only a backlog fills one)."
    )
    consumer_poll_timeout_ms: int = Field(default=200, ge=1, description="getmany timeout.")
    consumer_fetch_max_wait_ms: int = Field(
        default=20,
        ge=1,
        le=10_000,
        description="Longest a fetch waits for new messages. The embedded tansu does not answer a "
        "waiting fetch when a message arrives but looks again after sleeping (about half the wait, "
        "measured), so each hop can add that much; Apache Kafka answers as soon as a message arrives.",
    )
    # Committing after every batch cost a broker round trip per batch: at 500 tickets/s end to end
    # (6 partitions) the metrics service spent ~5 of its ~6 ms per batch committing. arroyo commits
    # once a second, Kafka's auto-commit every 5 s.
    consumer_commit_interval_ms: int = Field(
        default=500,
        ge=0,
        le=60_000,
        description="Most often a consumer commits its handled offsets (0: after every batch). Never "
        "before the batch's effects are durable; a crash replays at most this much more, which the "
        "handlers recognise as redeliveries. Committed also on stop, at a rebalance and when idle.",
    )
    consumer_retry_backoff_max_s: float = Field(
        default=30.0, gt=0, description="Cap of the exponential backoff when a batch fails."
    )
    consumer_max_attempts: int = Field(
        default=8,
        ge=1,
        description="Non-transient failures of a message before it is dead-lettered (outages do not count).",
    )
    fault_pause_before_commit_s: float = Field(
        default=0.0,
        ge=0,
        description="Fault tests only: sleep between a batch's effects and its offset commit.",
    )
    # A rebalance after a member died takes about a session timeout (10 s) plus the broker's
    # join and sync holds on the embedded broker (~25 s in all); several times that is stuck.
    consumer_stuck_rebalance_s: float = Field(
        default=90.0,
        gt=0,
        description="A rebalance (or first join) still not done after this long is stuck: the "
        "consumer is replaced by a new one, which joins the group as a new member.",
    )


class IntakeSettings(CommonSettings):
    intake_host: str = Field(default="127.0.0.1", description="Intake bind address.")
    intake_port: int = Field(default=8000, ge=0, le=65535, description="Intake HTTP port.")
    intake_publish_timeout_s: float = Field(
        default=5.0, gt=0, description="How long a request waits for the broker before the outbox."
    )
    intake_producer_linger_ms: int = Field(
        default=2,
        ge=0,
        le=1000,
        description="How long intake's producer waits to fill a batch before sending it (Kafka's "
        "linger.ms); every request waits for its batch's acknowledgement. The router and metrics "
        "send whole batches at once and do not linger.",
    )
    intake_max_body_bytes: int = Field(
        default=1_048_576,
        ge=1024,
        description="Largest body of a webhook, a ticket or an admin request (413 beyond); an admin "
        "request's before its key is checked.",
    )
    intake_rate_limit_per_s: float = Field(
        default=200.0, gt=0, description="Per-source sustained webhook rate (token bucket)."
    )
    intake_rate_limit_burst: int = Field(default=400, ge=1, description="Per-source burst size.")
    intake_outbox_poll_s: float = Field(default=1.0, gt=0, description="Outbox relay poll period.")
    intake_source_cache_ttl_s: float = Field(
        default=2.0, ge=0, description="How long a replica caches a webhook source before re-reading it."
    )
    intake_delivery_retention_days: float = Field(
        default=7.0,
        gt=0,
        le=MAX_RETENTION_DAYS,
        description="How long webhook delivery ids are kept to recognise redeliveries.",
    )
    intake_delivery_prune_interval_s: float = Field(
        default=3600.0, gt=0, description="How often old webhook delivery ids are pruned."
    )


class RouterSettings(ConsumerSettings):
    router_host: str = Field(default="127.0.0.1", description="Router bind address.")
    router_max_body_bytes: int = Field(
        default=4 * 1024 * 1024,
        ge=1024,
        description="Largest request body the router reads (413 beyond), before any key check.",
    )
    router_port: int = Field(default=8001, ge=0, le=65535, description="Router HTTP port.")
    router_group_id: str = Field(default="router", description="Router consumer group.")
    router_default_team: str | None = Field(
        default=None,
        max_length=100,  # a team name's width in the tables
        description="Team used when no rule matches and the rule set names none.",
    )
    router_ruleset_poll_s: float = Field(
        default=0.5, gt=0, description="How often a router checks for a new rule set version."
    )
    router_timer_poll_s: float = Field(default=1.0, gt=0, description="SLA timer scan period.")
    router_sla_poll_s: float = Field(
        default=1.0,
        gt=0,
        description="How often a router checks for changed SLA policies and calendars, and for "
        "the helpdesk groups of write-back targets.",
    )
    router_overflow_team: str | None = Field(
        default=None,
        max_length=100,
        description="Team for tickets whose assignment pool is full (unset, unknown or inactive: triage).",
    )
    router_load_counted_statuses: str = Field(
        default="new,open", description="Ticket statuses that count towards a team's load (comma separated)."
    )
    router_load_weighted: bool = Field(
        default=False,
        description="Weigh team load by priority (P1 4, P2 2, P3 1, P4 0.5) instead of counting.",
    )
    router_priority_matrix: str | None = Field(
        default=None,
        description="Urgency x impact -> priority as JSON {urgency: {impact: P1..P4}} (levels 1-4 or "
        "low/medium/high/critical); unset: the built-in ITIL-like matrix.",
    )

    # Checked here, so that a typo is named before the service connects to anything.
    @field_validator("router_load_counted_statuses")
    @classmethod
    def _known_statuses(cls, value: str) -> str:
        known = [status.value for status in TicketStatus]
        unknown = [s.strip() for s in value.split(",") if s.strip() and s.strip() not in known]
        if unknown:
            raise ValueError(f"unknown status {unknown[0]!r}; expected some of {', '.join(known)}")
        return value

    @field_validator("router_priority_matrix")
    @classmethod
    def _matrix_shape(cls, value: str | None) -> str | None:
        if not value:
            return value
        try:
            cells = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not JSON: {exc.msg} at character {exc.pos}") from exc
        if not isinstance(cells, dict) or not all(
            isinstance(row, dict) and all(isinstance(p, str) for p in row.values()) for row in cells.values()
        ):
            raise ValueError('expected {urgency: {impact: "P1".."P4"}}')
        return value

    router_dedup_retention_days: float = Field(
        default=30.0,
        gt=0,
        le=MAX_RETENTION_DAYS,
        description="How long applied event ids (the redelivery check) and delivered write-backs are "
        "kept; keep it above the tickets topic's retention.",
    )
    router_resolved_retention_days: float | None = Field(
        default=None,
        gt=0,
        le=MAX_RETENTION_DAYS,
        description="Cut resolved tickets down to stubs this long after resolution and their last event "
        "(their decisions, fired timers and text go); unset: keep them whole.",
    )
    router_feedback_retention_days: float | None = Field(
        default=None,
        gt=0,
        le=MAX_RETENTION_DAYS,
        description="Delete the classifier's feedback examples (a ticket's text and the team a human "
        "moved it to) this long after they were recorded; unset: keep them as training data.",
    )
    router_prune_interval_s: float = Field(
        default=3600.0,
        gt=0,
        description="How often the router prunes what it keeps for a while (see Retention).",
    )
    router_writeback_poll_s: float = Field(
        default=1.0, gt=0, le=3_600, description="Write-back sender poll period."
    )
    router_writeback_max_attempts: int = Field(
        default=8, ge=1, description="Attempts before a write-back delivery is marked failed."
    )
    # Upper bounds: beyond them the sender's time arithmetic overflows and every pass fails.
    router_writeback_backoff_base_s: float = Field(
        default=2.0, gt=0, le=86_400, description="First write-back retry delay; doubles with every attempt."
    )
    router_writeback_backoff_max_s: float = Field(
        default=600.0, gt=0, le=86_400, description="Cap of the write-back retry delay."
    )
    router_writeback_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=3_600,
        description="Write-back HTTP timeout: the whole of one request, however slowly its answer comes. "
        "A claimed delivery is leased for this times the most requests a delivery of the pass still "
        "sends, plus a minute, so no other router sends it meanwhile.",
    )
    router_classifier_poll_s: float = Field(
        default=1.0, gt=0, description="How often a router checks which classifier models are active."
    )
    router_classifier_below_threshold: Literal["triage", "rules"] = Field(
        default="triage",
        description="Team model unsure (confidence below its threshold): triage, or the rules' default team.",
    )


class MetricsSettings(ConsumerSettings):
    metrics_host: str = Field(default="127.0.0.1", description="Metrics bind address.")
    metrics_port: int = Field(default=8002, ge=0, le=65535, description="Metrics HTTP port.")
    # Its checkpoint rows are named "<group>:<partition>" in a column of 100 characters.
    metrics_group_id: str = Field(
        default="metrics", min_length=1, max_length=90, description="Metrics consumer group."
    )
    metrics_checkpoint_interval_s: float = Field(
        default=5.0, gt=0, description="How often the backlog state is checkpointed."
    )
    metrics_clock_tick_s: float = Field(default=5.0, gt=0, description="Age/overdue recompute period.")
    metrics_ticket_events_fetch_interval_ms: int = Field(
        default=1000,
        ge=0,
        le=60_000,
        description=(
            "Once caught up, the ticket topic (read only to count tickets received) is fetched at most"
            " this often; the gauges follow the routing topic, fetched with every poll. 0: every poll."
        ),
    )
    # Configured: the events carry no agent work time (see BacklogConfig.default_handle_seconds).
    # At most a week of work per ticket, finite: an infinite (or NaN, which JSON lets through) one
    # failed every scrape once the team had arrivals and exported a NaN workload before that.
    metrics_handle_seconds: float = Field(
        default=1200.0,
        gt=0,
        le=MAX_HANDLE_SECONDS,
        allow_inf_nan=False,
        description=(
            "Average agent work per ticket (handle time, seconds, at most a week) for"
            " `ticket_agents_needed` (Erlang C): time spent working it, not the time it stays open."
        ),
    )
    metrics_team_handle_seconds: dict[
        str, Annotated[float, Field(gt=0, le=MAX_HANDLE_SECONDS, allow_inf_nan=False)]
    ] = Field(
        default={},
        description="Per-team handle times (same bounds) overriding `METRICS_HANDLE_SECONDS`, JSON:"
        ' `{"billing": 900}`.',
    )


class DevSettings(CommonSettings):
    """Used by ``ticketctl dev run`` (the ``make run`` supervisor)."""

    var_dir: Path = Field(default=DEFAULT_VAR_DIR, description="Where dev data and credentials live.")
