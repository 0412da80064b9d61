"""The router's tables: teams, versioned rule sets, ticket routing state, decisions, audit,
classifier models and classifier feedback."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Float, Index, Integer, LargeBinary, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import Base, JsonDoc
from shared.db.models import BigId
from shared.events import utc_now
from shared.http.preconditions import GENERATION_LENGTH, new_generation


class Team(Base):
    __tablename__ = "teams"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    description: Mapped[str] = mapped_column(Text, default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Open tickets the team can carry at once (agents on shift x tickets per agent).
    capacity: Mapped[int] = mapped_column(Integer, default=50)
    skills: Mapped[list[str]] = mapped_column(JsonDoc, default=list)
    languages: Mapped[list[str]] = mapped_column(JsonDoc, default=list)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    calendar: Mapped[str | None] = mapped_column(String(100), default=None)
    # Shift schedule (teams.schemas.ScheduleDoc as JSON); when set, it gives the capacity instead.
    schedule: Mapped[dict[str, Any] | None] = mapped_column(JsonDoc, default=None)
    revision: Mapped[int] = mapped_column(Integer, default=1)  # the ETag
    # Drawn when the row is created; in the ETag, so one read from a deleted team of the same name
    # (whose revisions also started at 1) never matches this one.
    generation: Mapped[str] = mapped_column(String(GENERATION_LENGTH), default=new_generation)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now)


class RuleSetVersion(Base):
    """Every change to the rules is a new immutable version; the highest one is live."""

    __tablename__ = "ruleset_versions"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    document: Mapped[dict[str, Any]] = mapped_column(JsonDoc)
    author: Mapped[str] = mapped_column(String(200))
    comment: Mapped[str] = mapped_column(Text, default="")
    diff: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


# The tickets retention may prune: resolved, and not cut down to a stub already.
PRUNABLE = "resolved_at IS NOT NULL AND pruned_at IS NULL"


class RouterTicket(Base):
    """The router's current view of each ticket (the state it publishes after every decision)."""

    __tablename__ = "router_tickets"
    __table_args__ = (
        Index("ix_router_tickets_team_status", "team", "status"),
        # Pruning finds resolved tickets by age (services/router/retention.py); open ones stay out.
        Index(
            "ix_router_tickets_resolved_at",
            "resolved_at",
            postgresql_where=text(PRUNABLE),
            sqlite_where=text(PRUNABLE),
        ),
    )

    ticket_key: Mapped[str] = mapped_column(String(300), primary_key=True)
    source: Mapped[str] = mapped_column(String(100))
    external_id: Mapped[str] = mapped_column(String(200))
    revision: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(20))
    team: Mapped[str | None] = mapped_column(String(100), default=None)
    priority: Mapped[str] = mapped_column(String(2))
    category: Mapped[str | None] = mapped_column(String(100), default=None)
    category_confidence: Mapped[float | None] = mapped_column(Float, default=None)
    language: Mapped[str | None] = mapped_column(String(16), default=None)
    created_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column(default=utc_now)
    routed_at: Mapped[datetime | None] = mapped_column(default=None)
    resolved_at: Mapped[datetime | None] = mapped_column(default=None)
    sla: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    snapshot: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    # The SlaClock (+ fired timer ids) of the ticket, and when its next escalation is due.
    sla_clock: Mapped[dict[str, Any] | None] = mapped_column(JsonDoc, default=None)
    sla_next_due_at: Mapped[datetime | None] = mapped_column(default=None, index=True)
    # When retention cut the ticket down to a stub (services/router/retention.py); any later event
    # makes it a live ticket again (None).
    pruned_at: Mapped[datetime | None] = mapped_column(default=None)


class RoutingDecision(Base):
    """One row per published routing event; the unique event id makes redelivery harmless."""

    __tablename__ = "routing_decisions"
    __table_args__ = (Index("ix_routing_decisions_ticket", "ticket_key", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    caused_by: Mapped[str] = mapped_column(String(36))
    ticket_key: Mapped[str] = mapped_column(String(300))
    kind: Mapped[str] = mapped_column(String(40))
    team: Mapped[str | None] = mapped_column(String(100), default=None)
    previous_team: Mapped[str | None] = mapped_column(String(100), default=None)
    status: Mapped[str] = mapped_column(String(20))
    priority: Mapped[str] = mapped_column(String(2))
    rule: Mapped[str | None] = mapped_column(String(200), default=None)
    ruleset_version: Mapped[int | None] = mapped_column(Integer, default=None)
    reasons: Mapped[list[str]] = mapped_column(JsonDoc, default=list)
    decided_at: Mapped[datetime] = mapped_column(default=utc_now)


class ClassifierModel(Base):
    """A trained classifier; the id is its version. At most one active model per label kind."""

    __tablename__ = "classifier_models"
    __table_args__ = (
        # A partial unique index keeps "one active model per kind" true even for racing admins.
        Index(
            "uq_classifier_models_active_kind",
            "label_kind",
            unique=True,
            sqlite_where=text("active"),
            postgresql_where=text("active"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    label_kind: Mapped[str] = mapped_column(String(20))  # category | team | priority
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    trained_on: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)  # file, rows, feedback rows
    figures: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    blob: Mapped[bytes] = mapped_column(LargeBinary)
    active: Mapped[bool] = mapped_column(Boolean, default=False)


class ClassifierFeedback(Base):
    """A human correction: the source system moved a ticket to another team (a labelled example)."""

    __tablename__ = "classifier_feedback"
    __table_args__ = (Index("ix_classifier_feedback_created", "created_at", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    ticket_key: Mapped[str] = mapped_column(String(300))
    text: Mapped[str] = mapped_column(Text)
    label: Mapped[str] = mapped_column(String(300))  # the team the ticket was moved to
    previous_label: Mapped[str | None] = mapped_column(String(300), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
