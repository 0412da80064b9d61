"""The ticket lifecycle as a pure function: first sight, solve, reopen, changes, stale events."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.router.routing.lifecycle import RouteResult, decide, fill_gaps
from services.router.writeback.connectors.common import note_text
from shared.events import (
    Comment,
    EventEnvelope,
    EventType,
    Priority,
    TicketSnapshot,
    TicketStatus,
    ticket_event,
)

T0 = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)


def route_to(team):
    def route(snapshot, source):
        return RouteResult(
            team=team, rule="r1" if team else None, ruleset_version=3, reasons=[f"to {team}"], priority=None
        )

    return route


def event(status="new", event_type=EventType.TICKET_CREATED, **kw) -> tuple[EventEnvelope, TicketSnapshot]:
    snapshot = TicketSnapshot(external_id="7", status=status, **kw)
    return ticket_event(event_type, "api", snapshot, occurred_at=T0), snapshot


def test_first_sight_routes_with_reasons_and_default_priority():
    env, snap = event()
    decision = decide(None, None, env, snap, route_to("access"), T0)
    assert [k for k, _ in decision.events] == [EventType.TICKET_ROUTED]
    state = decision.state
    assert state.team == "access" and state.status == TicketStatus.OPEN and state.priority == Priority.P3
    assert state.revision == 1 and state.routed_at == T0
    payload = decision.events[0][1]
    assert payload.rule == "r1" and payload.ruleset_version == 3 and payload.caused_by == env.event_id


def test_source_priority_is_kept_unless_a_rule_sets_one():
    env, snap = event(priority=Priority.P1)
    assert decide(None, None, env, snap, route_to("a"), T0).state.priority == Priority.P1

    def rule_sets_p2_and_gold(snapshot, source):
        return RouteResult(team="a", priority=Priority.P2, sla_policy="gold", category="billing")

    state = decide(None, None, env, snap, rule_sets_p2_and_gold, T0).state
    assert (state.priority, state.sla.policy, state.category, state.routed_at) == (
        Priority.P2,
        "gold",
        "billing",
        T0,
    )


def test_the_reasons_say_which_sla_policy_the_ticket_got_and_why():
    def by_rank(state):  # the router's SLA tracker: the first policy whose applies_when holds
        if state.sla.policy is None:
            state.sla.policy = "standard" if state.priority != Priority.P1 else "urgent"

    env, snap = event()
    routed = decide(None, None, env, snap, route_to("a"), T0, sla=by_rank)
    assert routed.events[0][1].reasons[-1] == "SLA policy standard: the first policy whose applies_when holds"

    def rule_names_gold(snapshot, source):
        return RouteResult(team="a", sla_policy="gold", reasons=["rule"])

    named = decide(None, None, env, snap, rule_names_gold, T0, sla=by_rank)
    assert named.events[0][1].reasons[-1] == "SLA policy gold: named by the rule"
    # A ticket in triage routed by an update; then a change that keeps the policy says nothing of it.
    triaged = decide(None, None, env, snap, route_to(None), T0).state
    later = decide(triaged, None, *event(), rule_names_gold, T0, sla=by_rank)
    assert later.events[0][1].reasons[-1] == "SLA policy gold: named by the rule"
    pending = decide(later.state, None, *event("pending"), rule_names_gold, T0, sla=by_rank)
    assert not any("SLA policy" in r for r in pending.events[0][1].reasons)


def test_solve_then_reopen():
    env, snap = event()
    routed = decide(None, None, env, snap, route_to("access"), T0).state
    env2, snap2 = event("solved", EventType.TICKET_STATUS_CHANGED)
    solved = decide(routed, None, env2, snap2, route_to("x"), T0)
    assert [k for k, _ in solved.events] == [EventType.TICKET_RESOLVED]
    assert solved.state.status == TicketStatus.SOLVED and solved.state.team == "access"
    assert solved.state.revision == 2
    env3, snap3 = event("open", EventType.TICKET_STATUS_CHANGED)
    reopened = decide(solved.state, None, env3, snap3, route_to("x"), T0)
    assert [k for k, _ in reopened.events] == [EventType.TICKET_REOPENED]
    assert reopened.state.status == TicketStatus.OPEN and reopened.state.resolved_at is None
    assert reopened.state.team == "access" and reopened.state.revision == 3
    assert reopened.events[0][1].previous_status == TicketStatus.SOLVED


def test_repeated_update_without_change_emits_nothing():
    env, snap = event()
    routed = decide(None, None, env, snap, route_to("a"), T0).state
    again = decide(routed, None, *event(), route_to("b"), T0)
    assert again.events == [] and again.state.team == "a"


def test_pending_and_priority_changes_are_state_changes():
    env, snap = event()
    routed = decide(None, None, env, snap, route_to("a"), T0).state
    d = decide(routed, None, *event("pending", priority=Priority.P2), route_to("a"), T0)
    assert [k for k, _ in d.events] == [EventType.TICKET_STATE_CHANGED]
    assert d.state.status == TicketStatus.PENDING and d.state.priority == Priority.P2
    assert "status open -> pending" in d.events[0][1].reasons


@pytest.mark.parametrize("waiting", ["pending", "on_hold"])
def test_new_again_after_waiting_is_open_again(waiting):
    """Jira's To Do after Waiting for customer, the API's "new": the ticket waits on support again
    (its SLA clock and its team's load count it). "new" on an open ticket still says nothing new,
    and a ticket.created (one redelivered late) moves no ticket back."""
    routed = decide(None, None, *event(), route_to("a"), T0).state
    held = decide(routed, None, *event(waiting, EventType.TICKET_STATUS_CHANGED), route_to("a"), T0).state
    back = decide(held, None, *event("new", EventType.TICKET_STATUS_CHANGED), route_to("a"), T0)
    assert back.state.status == TicketStatus.OPEN and back.state.team == "a"
    assert [k for k, _ in back.events] == [EventType.TICKET_STATE_CHANGED]
    assert back.events[0][1].reasons == [f"status {waiting} -> open"]
    updated = decide(held, None, *event("new", EventType.TICKET_UPDATED), route_to("a"), T0)
    assert updated.state.status == TicketStatus.OPEN
    late_created = decide(held, None, *event("new"), route_to("a"), T0)
    assert late_created.state.status == TicketStatus(waiting) and late_created.events == []
    again = decide(routed, None, *event("new", EventType.TICKET_UPDATED), route_to("a"), T0)
    assert again.state.status == TicketStatus.OPEN and again.events == []


def test_triage_ticket_is_routed_again_on_update():
    env, snap = event()
    triaged = decide(None, None, env, snap, route_to(None), T0).state
    assert triaged.team is None
    d = decide(triaged, None, *event(), route_to("hardware"), T0)
    assert [k for k, _ in d.events] == [EventType.TICKET_ROUTED] and d.state.team == "hardware"


def test_first_agent_comment_is_the_first_response():
    env, snap = event()
    routed = decide(None, None, env, snap, route_to("a"), T0).state
    d = decide(
        routed,
        None,
        *event("open", EventType.TICKET_COMMENTED, comment=Comment(body="on it", from_agent=True)),
        route_to("a"),
        T0,
    )
    assert d.state.sla.first_responded_at == T0


def test_an_internal_note_is_not_the_first_response():
    env, snap = event()
    routed = decide(None, None, env, snap, route_to("a"), T0).state
    internal = Comment(body="Routed to a at P3. Why: ...", public=False, from_agent=True)
    d = decide(routed, None, *event("open", EventType.TICKET_COMMENTED, comment=internal), route_to("a"), T0)
    assert d.state.sla.first_responded_at is None and d.events == []
    # Our own write-back note, reported back as a public agent comment (Jira outside Service
    # Management has no internal comments): still not a first response.
    note = note_text({"kind": "assignment", "team": "a", "priority": "P3", "event_id": str(uuid.uuid4())})
    ours = Comment(body=note, from_agent=True)
    d = decide(d.state, None, *event("open", EventType.TICKET_COMMENTED, comment=ours), route_to("a"), T0)
    assert d.state.sla.first_responded_at is None
    # An agent's reply that quotes our note above its own words is a reply.
    quoting = Comment(body=f"{{quote}}{note}{{quote}}\nOn it, refund issued.", from_agent=True)
    replied = decide(
        d.state, None, *event("open", EventType.TICKET_COMMENTED, comment=quoting), route_to("a"), T0
    )
    assert replied.state.sla.first_responded_at == T0
    reply = Comment(body="on it", public=True, from_agent=True)
    d = decide(d.state, None, *event("open", EventType.TICKET_COMMENTED, comment=reply), route_to("a"), T0)
    assert d.state.sla.first_responded_at == T0


def test_first_sight_of_a_solved_ticket_is_routed_then_resolved():
    env, snap = event("closed")
    d = decide(None, None, env, snap, route_to("a"), T0)
    assert [k for k, _ in d.events] == [EventType.TICKET_ROUTED, EventType.TICKET_RESOLVED]
    assert [p.state.revision for _, p in d.events] == [1, 2]
    # Routed open, then resolved when the source says: a routed state already closed, without
    # that instant, made the metrics service count the resolution at the moment it read it.
    assert [(p.state.status, p.state.resolved_at) for _, p in d.events] == [
        (TicketStatus.OPEN, None),
        (TicketStatus.CLOSED, env.occurred_at),
    ]
    assert d.events[1][1].previous_status == TicketStatus.OPEN
    assert (d.state.status, d.state.resolved_at) == (TicketStatus.CLOSED, env.occurred_at)
    # Both say so: the routed state alone is a live routing's, which the metrics would count.
    assert [p.history_import for _, p in d.events] == [True, True]


def test_only_a_ticket_first_seen_solved_is_a_history_import():
    env, snap = event("open")
    first = decide(None, None, env, snap, route_to("a"), T0)
    env2, snap2 = event("solved", EventType.TICKET_STATUS_CHANGED)
    solved = decide(first.state, None, env2, snap2, route_to("a"), T0)
    assert [p.history_import for _, p in [*first.events, *solved.events]] == [False, False]


def test_older_snapshot_than_the_one_we_hold_is_ignored():
    env, snap = event()
    routed = decide(None, None, env, snap, route_to("a"), T0).state
    stale_env, stale_snap = event("solved", updated_at=T0 - timedelta(hours=1))
    d = decide(routed, T0, stale_env, stale_snap, route_to("a"), T0)
    assert d.stale and d.events == [] and d.state.status == TicketStatus.OPEN


def test_external_reassignment_moves_the_team():
    env, snap = event()
    routed = decide(None, None, env, snap, route_to("a"), T0).state
    d = decide(
        routed,
        None,
        *event("open", EventType.TICKET_REASSIGNED_EXTERNALLY, external_assignee_group="b"),
        route_to("a"),
        T0,
    )
    assert d.state.team == "b" and d.events[0][1].previous_team == "a"


def test_an_older_event_fills_only_the_content_we_lack():
    stored = {"external_id": "7", "status": "open", "priority": "P1", "requester": {"email": "a@x"}}
    older = {
        "external_id": "7",
        "status": "new",
        "priority": "P4",
        "subject": "VPN broken",
        "requester": {"email": "old@x", "name": "Ada"},
        "tags": [],
    }
    assert fill_gaps(stored, older) == {
        **stored,
        "subject": "VPN broken",
        "requester": {"email": "a@x", "name": "Ada"},
    }
    assert fill_gaps({**stored, "subject": "newer"}, {"subject": "older", "status": "solved"}) is None


REPLY = Comment(body="Fixed, please try again", from_agent=True, public=True)


def test_a_reply_sent_with_solve_is_the_first_response_and_said_so():
    routed = decide(None, None, *event(), route_to("a"), T0).state
    later = T0 + timedelta(minutes=30)
    env, snap = event("solved", EventType.TICKET_UPDATED, comment=REPLY)
    env.occurred_at = later
    d = decide(routed, None, env, snap, route_to("a"), later)
    # The early return for "solved" skipped the comment: after a reopen the first-response clock
    # ran again and breached, with its escalation actions, on a ticket already answered.
    assert d.state.sla.first_responded_at == later and d.state.status == TicketStatus.SOLVED
    [(kind, payload)] = d.events
    assert kind == EventType.TICKET_RESOLVED
    assert payload.reasons == ["source marked the ticket solved", "first agent response"]


def test_a_priority_sent_with_reopen_applies_and_a_repeat_changes_nothing():
    routed = decide(None, None, *event(), route_to("a"), T0).state
    solved = decide(routed, None, *event("solved", EventType.TICKET_UPDATED), route_to("a"), T0).state
    env, snap = event("open", EventType.TICKET_UPDATED, priority=Priority.P1)
    reopened = decide(solved, None, env, snap, route_to("a"), T0, said_priority_before=None)
    assert reopened.state.priority == Priority.P1 and reopened.state.status == TicketStatus.OPEN
    assert reopened.events[0][1].reasons == ["source reopened the ticket", "source set priority P1"]
    # The stored snapshot now says P1: the source saying it again is no news (and before this fix
    # the P1 was lost for good, skipped on reopening and ignored as already said afterwards).
    again = decide(reopened.state, None, env, snap, route_to("a"), T0, said_priority_before="P1")
    assert again.events == [] and again.state.priority == Priority.P1


def test_the_first_event_being_an_agents_reply_is_the_first_response():
    env, snap = event("open", EventType.TICKET_COMMENTED, comment=REPLY)
    d = decide(None, None, env, snap, route_to("a"), T0)
    assert d.state.sla.first_responded_at == T0
    assert d.events[0][1].reasons == ["to a", "first agent response"]


def test_leaving_triage_says_what_else_the_event_changed():
    in_triage = decide(None, None, *event(), route_to(None), T0).state
    assert in_triage.team is None
    env, snap = event("pending", EventType.TICKET_UPDATED, priority=Priority.P1, comment=REPLY)
    d = decide(in_triage, None, env, snap, route_to("vpn"), T0)
    [(kind, payload)] = d.events
    assert kind == EventType.TICKET_ROUTED
    assert payload.reasons == [
        "status open -> pending",
        "source set priority P1",
        "first agent response",
        "to vpn",
    ]


def test_a_helpdesk_group_name_longer_than_a_team_name_is_not_taken_for_a_team():
    routed = decide(None, None, *event(), route_to("a"), T0).state
    group = "Customer Support > EMEA > Enterprise accounts > " + "x" * 60
    d = decide(
        routed,
        None,
        *event("open", EventType.TICKET_REASSIGNED_EXTERNALLY, external_assignee_group=group),
        route_to("a"),
        T0,
    )
    # Stored as the ticket's team it failed the routing batch on PostgreSQL (100 characters).
    assert d.state.team == "a"
    assert d.events[0][1].reasons == [
        f"reassigned in the source system to a group named {group[:40]!r}...: kept"
    ]


@pytest.mark.parametrize("group", ["triage", "other"])
def test_a_helpdesk_group_named_as_a_reserved_label_is_not_taken_for_a_team(group):
    """No team may be named "triage" or "other" (the metrics count tickets without a team and
    those beyond their label cap under them): a ticket in such a team would be counted there."""
    kept = (
        f"reassigned in the source system to a group named {group!r}, "
        "a name reserved for the metrics' labels: kept"
    )
    routed = decide(None, None, *event(), route_to("a"), T0).state
    moved = event("open", EventType.TICKET_REASSIGNED_EXTERNALLY, external_assignee_group=group)
    d = decide(routed, None, *moved, route_to("a"), T0)
    assert d.state.team == "a" and d.events[0][1].reasons == [kept]
    # A ticket in triage stays there, and gets its other chance at a team.
    waiting = decide(None, None, *event(), route_to(None), T0).state
    d = decide(waiting, None, *moved, route_to(None), T0)
    assert d.state.team is None and d.events[0][1].reasons == [kept]
    d = decide(waiting, None, *moved, route_to("b"), T0)
    assert d.state.team == "b" and d.events[0][1].reasons == [kept, "to b"]
    # First heard of as moved there: the rules' team stands.
    d = decide(None, None, *moved, route_to("access"), T0)
    assert d.state.team == "access" and d.events[0][1].reasons == ["to access", kept]


def test_a_ticket_first_heard_of_as_moved_in_the_helpdesk_stays_where_a_human_put_it():
    env, snap = event("open", EventType.TICKET_REASSIGNED_EXTERNALLY, external_assignee_group="billing")
    d = decide(None, None, env, snap, route_to("access"), T0)
    # Routed by the rules it went to "access", and write-back undid the agent's move.
    [(kind, payload)] = d.events
    assert kind == EventType.TICKET_ROUTED and d.state.team == "billing"
    assert payload.reasons == [
        "to access",
        "reassigned in the source system to billing: kept over the rules' team access",
    ]
    # Any other first event is routed by the rules, whatever group the source reports.
    env, snap = event("open", EventType.TICKET_UPDATED, external_assignee_group="billing")
    assert decide(None, None, env, snap, route_to("access"), T0).state.team == "access"


def test_a_priority_derived_when_leaving_triage_does_not_lower_the_tickets():
    """Urgency x impact is the fallback for a ticket nothing gave a priority. A ticket in triage whose
    SLA escalation raised it (P3 -> P2) keeps P2 when an update routes it and the route derives P3
    from the text again; a derived P1, or a rule's priority, still applies."""
    triaged = decide(None, None, *event(), route_to(None), T0).state
    escalated = triaged.model_copy(update={"priority": Priority.P2})

    def derived(priority, from_rule=False):
        def route(snapshot, source):
            why = f"priority {priority.value} from urgency medium x impact medium"
            return RouteResult(team="a", priority=priority, priority_derived=not from_rule, reasons=[why])

        return route

    d = decide(escalated, None, *event("open", EventType.TICKET_UPDATED), derived(Priority.P3), T0)
    assert d.state.team == "a" and d.state.priority == Priority.P2
    assert d.events[0][1].reasons[-1] == "priority P2 kept: higher than the derived P3"
    d = decide(escalated, None, *event("open", EventType.TICKET_UPDATED), derived(Priority.P1), T0)
    assert d.state.priority == Priority.P1
    d = decide(escalated, None, *event("open", EventType.TICKET_UPDATED), derived(Priority.P3, True), T0)
    assert d.state.priority == Priority.P3


def test_a_ticket_reopened_in_triage_gets_another_chance_at_a_team():
    in_triage = decide(None, None, *event(), route_to(None), T0).state
    solved = decide(in_triage, None, *event("solved", EventType.TICKET_STATUS_CHANGED), route_to(None), T0)
    assert solved.state.team is None
    # The rules changed meanwhile: a reopen is an update like any other, which routes a triaged ticket
    # (it stayed in triage until the source's next event, however long that took).
    d = decide(solved.state, None, *event("open", EventType.TICKET_STATUS_CHANGED), route_to("vpn"), T0)
    assert [k for k, _ in d.events] == [EventType.TICKET_REOPENED, EventType.TICKET_ROUTED]
    assert d.state.team == "vpn" and d.state.status == TicketStatus.OPEN
    assert [p.state.revision for _, p in d.events] == [3, 4]
    reopened, routed = (p for _, p in d.events)
    assert reopened.state.team is None and reopened.reasons == ["source reopened the ticket"]
    assert (routed.previous_team, routed.previous_status) == (None, TicketStatus.OPEN)
    assert routed.reasons == ["to vpn"] and routed.rule == "r1"
    # Still no team: the reopen alone.
    d = decide(solved.state, None, *event("open", EventType.TICKET_STATUS_CHANGED), route_to(None), T0)
    assert [k for k, _ in d.events] == [EventType.TICKET_REOPENED] and d.state.team is None


def test_an_older_event_does_not_bring_back_tags_a_newer_one_cleared():
    # The source removed the last label (tags said empty: cleared), then an older update came late.
    stored = {"external_id": "7", "subject": "VPN", "tags": [], "updated_at": "2026-05-04T10:00:00Z"}
    older = {"external_id": "7", "subject": "VPN", "tags": ["vip"], "updated_at": "2026-05-04T09:00:00Z"}
    assert fill_gaps(stored, older) is None
    # Never said, they are content the older event gives.
    assert fill_gaps({"external_id": "7"}, older) == {"external_id": "7", "subject": "VPN", "tags": ["vip"]}


def test_an_earlier_creation_the_source_states_corrects_the_tickets_and_a_later_one_does_not():
    # First heard of through a reply, which says no creation instant: created when it was heard of.
    env, snap = event("open", EventType.TICKET_COMMENTED, comment=Comment(body="any news?"))
    first = decide(None, None, env, snap, route_to("a"), T0).state
    assert first.created_at == T0
    # The helpdesk then states the creation: its ages and SLA clock run from it, not from T0.
    created = T0 - timedelta(hours=3)
    d = decide(first, None, *event("open", EventType.TICKET_UPDATED, created_at=created), route_to("a"), T0)
    assert d.state.created_at == created
    [(kind, payload)] = d.events
    assert kind == EventType.TICKET_STATE_CHANGED
    assert payload.reasons == [f"source says the ticket was created at {created.isoformat()}"]
    # A later instant (a re-sent created event, a clock running fast) is not the ticket's creation.
    later = T0 + timedelta(hours=1)
    resent = event("open", EventType.TICKET_CREATED, created_at=later)
    again = decide(d.state, None, *resent, route_to("a"), T0)
    assert again.events == [] and again.state.created_at == created


def test_an_older_event_gives_an_earlier_creation_than_the_one_held():
    stored = {"external_id": "7", "created_at": "2026-05-04T09:00:00Z", "subject": "s"}
    assert fill_gaps(stored, {"created_at": "2026-05-04T08:00:00+00:00"}) == {
        **stored,
        "created_at": "2026-05-04T08:00:00+00:00",
    }
    assert fill_gaps(stored, {"created_at": "2026-05-04T10:00:00Z"}) is None
