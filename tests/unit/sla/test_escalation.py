from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from services.router.sla.calendar import BusinessCalendar
from services.router.sla.clock import SlaClock
from services.router.sla.escalation import (
    EscalationDue,
    apply_escalation_actions,
    due_escalations,
    next_escalation_at,
    raise_priority,
)
from services.router.sla.policy import SlaPolicy
from shared.events import Priority, TicketStatus

NY_TZ = ZoneInfo("America/New_York")
NY = BusinessCalendar(name="ny", timezone="America/New_York", weekly_hours={"mon-fri": "09:00-17:00"})
POLICY = SlaPolicy.model_validate(
    {
        "name": "gold",
        "calendar": "ny",
        "targets": {"P1": {"first_response": 60, "resolution": 240}},
        "on_warning": [{"action": "notify", "target": "slack-support"}],
        "on_breach": [
            {"action": "raise_priority"},
            {"action": "reassign_to", "team": "tier2"},
            {"action": "add_tag", "tag": " SLA-Breached "},
            {"action": "notify", "target": "pagerduty"},
            {"action": "add_tag", "tag": "sla-breached"},
        ],
    }
)


def ny(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2024, 3, day, hour, minute, tzinfo=NY_TZ).astimezone(UTC)


def clock() -> SlaClock:
    return SlaClock.start("jira:ABC-1", POLICY, Priority.P1, ny(4, 10))


def ids(dues: list[EscalationDue]) -> list[str]:
    return [d.timer_id for d in dues]


def test_nothing_due_before_the_warning() -> None:
    c = clock()
    assert due_escalations(c, c.deadlines(NY), ny(4, 10, 44), set()) == []


def test_warning_then_breach_with_deterministic_ids() -> None:
    c = clock()
    d = c.deadlines(NY)
    warn = due_escalations(c, d, ny(4, 10, 45), set())
    assert ids(warn) == ["jira:ABC-1:first_response:warning:0"]
    assert warn[0].due_at == ny(4, 10, 45)
    # At the deadline itself nothing is breached yet (an answer at that instant is on time).
    assert ids(due_escalations(c, d, ny(4, 11), set())) == ["jira:ABC-1:first_response:warning:0"]
    past = ny(4, 11) + timedelta(microseconds=1)
    both = due_escalations(c, d, past, set())
    assert ids(both) == ["jira:ABC-1:first_response:warning:0", "jira:ABC-1:first_response:breach:0"]
    assert both[1].due_at == ny(4, 11)
    assert ids(due_escalations(c, d, past, set(ids(warn)))) == ["jira:ABC-1:first_response:breach:0"]


def test_each_fires_exactly_once_when_polled() -> None:
    c = clock()
    fired: set[str] = set()
    log: list[tuple[str, datetime]] = []
    now = ny(4, 10)
    while now < ny(6, 10):
        for due in due_escalations(c, c.deadlines(NY), now, fired):
            fired.add(due.timer_id)
            log.append((due.timer_id, now))
            c = c.on_escalation_fired(due.kind)
        now += timedelta(minutes=5)
    assert log == [
        ("jira:ABC-1:first_response:warning:0", ny(4, 10, 45)),
        ("jira:ABC-1:first_response:breach:0", ny(4, 11, 5)),  # the first poll past its deadline
        ("jira:ABC-1:resolution:warning:0", ny(4, 13)),
        ("jira:ABC-1:resolution:breach:0", ny(4, 14, 5)),
    ]
    assert due_escalations(c, c.deadlines(NY), ny(9, 0), fired) == []
    assert next_escalation_at(c, c.deadlines(NY), fired) is None
    assert c.to_sla_state(NY).breached


def test_met_and_paused_targets_do_not_escalate() -> None:
    c = clock().on_first_response(ny(4, 10, 30), NY)
    assert ids(due_escalations(c, c.deadlines(NY), ny(4, 13), set())) == ["jira:ABC-1:resolution:warning:0"]
    paused = c.on_status(TicketStatus.PENDING, ny(4, 12), NY)
    assert due_escalations(paused, paused.deadlines(NY), ny(5, 12), set()) == []
    assert next_escalation_at(paused, paused.deadlines(NY), set()) is None


def test_next_escalation_at_skips_fired() -> None:
    c = clock()
    d = c.deadlines(NY)
    assert next_escalation_at(c, d, set()) == ny(4, 10, 45)
    assert next_escalation_at(c, d, {"jira:ABC-1:first_response:warning:0"}) == ny(4, 11)


def test_reopen_starts_a_new_cycle() -> None:
    c = clock().on_first_response(ny(4, 10, 30), NY)
    fired = set(ids(due_escalations(c, c.deadlines(NY), ny(4, 15), set())))
    assert fired == {"jira:ABC-1:resolution:warning:0", "jira:ABC-1:resolution:breach:0"}
    c = c.on_status(TicketStatus.SOLVED, ny(4, 16), NY).on_reopen(ny(5, 10), NY)
    # Resolution time continues, so the reopened ticket is overdue at once, in cycle 1.
    again = due_escalations(c, c.deadlines(NY), ny(5, 10), fired)
    assert ids(again) == ["jira:ABC-1:resolution:warning:1", "jira:ABC-1:resolution:breach:1"]
    assert again[1].due_at == ny(4, 14)
    fired |= set(ids(again))
    assert due_escalations(c, c.deadlines(NY), ny(5, 12), fired) == []


class TestActions:
    def test_breach_actions(self) -> None:
        effects = apply_escalation_actions(POLICY, "breach", Priority.P3, "tier1")
        assert effects.priority == Priority.P2
        assert effects.team == "tier2"
        assert effects.tags == ["sla-breached"]
        assert effects.notifications == ["pagerduty"]

    def test_reassignments_to_teams_not_given_are_skipped(self) -> None:
        policy = SlaPolicy.model_validate(
            {
                "name": "x",
                "on_breach": [
                    {"action": "reassign_to", "team": "tier2"},
                    {"action": "raise_priority"},
                    {"action": "reassign_to", "team": "gone"},
                ],
            }
        )
        effects = apply_escalation_actions(policy, "breach", Priority.P3, "tier1", teams={"tier1", "tier2"})
        assert (effects.team, effects.priority, effects.skipped_teams) == ("tier2", Priority.P2, ["gone"])
        none_left = apply_escalation_actions(policy, "breach", Priority.P3, "tier1", teams=frozenset())
        assert (none_left.team, none_left.skipped_teams) == ("tier1", ["tier2", "gone"])

    def test_policy_values_the_database_cannot_hold_are_refused(self) -> None:
        # teams.name is varchar(100): on PostgreSQL a longer one made every escalation scan roll back.
        with pytest.raises(ValidationError, match="at most 100 characters"):
            SlaPolicy.model_validate(
                {"name": "x", "on_breach": [{"action": "reassign_to", "team": "t" * 101}]}
            )

    @pytest.mark.parametrize("minutes", [float("inf"), float("nan"), 1e11, 1e13, 10**400, 365 * 24 * 60 + 1])
    def test_targets_are_finite_and_at_most_a_year(self, minutes: float) -> None:
        # 1e13 (or infinity) raised OverflowError, not a validation error; 1e11 was accepted and
        # then overflowed computing every ticket's deadlines.
        with pytest.raises(ValidationError) as info:
            SlaPolicy.model_validate({"name": "x", "targets": {"P1": {"resolution": minutes}}})
        assert [e["loc"] for e in info.value.errors()] == [("targets", "P1", "resolution")]

    def test_a_blank_tag_adds_nothing(self) -> None:
        # Normalised like a snapshot's tags it was "": a ticket.escalated event "tagged " that
        # changed nothing (a policy stored before the save check refused it).
        policy = SlaPolicy.model_validate({"name": "x", "on_breach": [{"action": "add_tag", "tag": "  "}]})
        assert apply_escalation_actions(policy, "breach", Priority.P3, "a").tags == []

    def test_warning_actions_leave_priority_and_team(self) -> None:
        effects = apply_escalation_actions(POLICY, "warning", Priority.P4, None)
        assert (effects.priority, effects.team, effects.tags) == (Priority.P4, None, [])
        assert effects.notifications == ["slack-support"]

    def test_two_raises_are_two_steps_and_p1_stays(self) -> None:
        policy = SlaPolicy.model_validate(
            {"name": "x", "on_breach": [{"action": "raise_priority"}, {"action": "raise_priority"}]}
        )
        assert apply_escalation_actions(policy, "breach", Priority.P4, "a").priority == Priority.P2
        assert apply_escalation_actions(policy, "breach", Priority.P2, "a").priority == Priority.P1

    @pytest.mark.parametrize(
        ("before", "after"),
        [("P4", "P3"), ("P3", "P2"), ("P2", "P1"), ("P1", "P1")],
    )
    def test_raise_priority(self, before: str, after: str) -> None:
        assert raise_priority(Priority(before)) == Priority(after)
