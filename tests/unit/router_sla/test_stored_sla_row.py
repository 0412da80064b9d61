"""The SLA part of a stored ticket row stays readable by the previous release's router."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, ConfigDict

from services.router.models import RouterTicket
from services.router.routing.handler import apply_state, state_from_row
from shared.events import Priority, SlaState, TicketState, TicketStatus

NOW = datetime(2026, 3, 2, 9, tzinfo=UTC)


class PreviousSlaState(BaseModel):
    """SlaState as the release before the warning instants had it (unknown fields refused)."""

    model_config = ConfigDict(extra="forbid")

    policy: str | None = None
    first_response_due: datetime | None = None
    resolution_due: datetime | None = None
    first_responded_at: datetime | None = None
    warning_sent: bool = False
    breached: bool = False
    paused: bool = False


def _state() -> TicketState:
    return TicketState(
        ticket_key="zendesk:1",
        source="zendesk",
        revision=3,
        status=TicketStatus.OPEN,
        team="billing",
        priority=Priority.P2,
        created_at=NOW,
        routed_at=NOW,
        sla=SlaState(
            policy="default",
            first_response_due=NOW + timedelta(hours=1),
            resolution_due=NOW + timedelta(hours=8),
            first_response_warning_at=NOW + timedelta(minutes=45),
            resolution_warning_at=NOW + timedelta(hours=6),
        ),
    )


def test_a_stored_row_is_readable_by_the_previous_router() -> None:
    row = RouterTicket(ticket_key="zendesk:1", source="zendesk")
    apply_state(row, _state(), {}, NOW)

    previous = PreviousSlaState.model_validate(row.sla)

    assert previous.resolution_due == NOW + timedelta(hours=8)
    assert previous.first_response_due == NOW + timedelta(hours=1)


def test_a_stored_row_keeps_every_other_sla_field() -> None:
    state = _state()
    row = RouterTicket(ticket_key="zendesk:1", source="zendesk")
    apply_state(row, state, {}, NOW)

    restored = state_from_row(row).sla

    assert restored == state.sla.model_copy(
        update={"first_response_warning_at": None, "resolution_warning_at": None}
    )
