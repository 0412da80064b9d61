"""Routing-time signals: language and urgency feed the rules, a team model fills in where no
rule chose a team, unsure predictions go to triage, pools prefer teams speaking the language."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.router.assignment import LoadConfig
from services.router.classification import Prediction, urgency
from services.router.classifiers import enrichment
from services.router.classifiers.enrichment import (
    LANGUAGE_CHARS,
    NO_CLASSIFIERS,
    ActiveModel,
    ClassifierView,
    classifier_team,
    compute_signals,
    filter_pool_by_language,
    text_signals,
    text_signals_many,
)
from services.router.classifiers.schemas import LabelKind
from services.router.load.book import LoadBook
from services.router.routing.policy import RoutingPolicy
from services.router.rules import compile_ruleset, parse_ruleset
from shared.events import Priority, TicketSnapshot
from tests.unit.classifiers.helpers import SURE_NETWORK, UNSURE, model, view

NOW = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
ESTONIAN = "Tere! Minu arvuti ei lülitu sisse ja ma ei saa tööd teha. Palun aidake kiiresti."


def policy(document: dict) -> RoutingPolicy:
    ruleset = parse_ruleset(document)
    ruleset.version = 4
    return RoutingPolicy(compile_ruleset(ruleset), 4, lambda: NOW)


def ticket(subject: str, description: str = "") -> TicketSnapshot:
    return TicketSnapshot(external_id="1", subject=subject, description=description)


ESTONIAN_RULE = {
    "rules": [
        {
            "id": "estonian",
            "name": "Estonian speakers",
            "when": {"field": "language", "op": "equals", "value": "et"},
            "actions": {"assign_team": "eesti"},
        }
    ],
    "default_team": "general",
}


def test_language_rule_routes_an_estonian_ticket():
    result = policy(ESTONIAN_RULE).route(ticket("Arvuti ei tööta", ESTONIAN), "api")
    assert result.team == "eesti" and result.rule == "Estonian speakers"
    assert result.language == "et"
    english = policy(ESTONIAN_RULE).route(ticket("My laptop does not start", "It stays black. Help!"), "api")
    assert english.team == "general" and english.language == "en"


def test_urgency_is_a_fact_rules_can_test():
    rules = {
        "rules": [
            {
                "id": "urgent",
                "name": "Urgent",
                "when": {"field": "urgency", "op": "gte", "value": "critical"},
                "actions": {"assign_team": "major-incidents"},
            }
        ],
        "default_team": "general",
    }
    assert policy(rules).route(ticket("Production down", "Outage for all users"), "api").team == (
        "major-incidents"
    )
    assert policy(rules).route(ticket("Mouse", "The mouse squeaks"), "api").team == "general"


def test_language_detection_reads_only_the_opening():
    signals = compute_signals("Arvuti", ESTONIAN + " " + "x" * 200_000)
    assert signals.language == "et"
    late = compute_signals("", "1234 " * (LANGUAGE_CHARS // 5 + 1) + ESTONIAN)
    assert late.language is None  # the Estonian text starts after the first LANGUAGE_CHARS


def test_category_model_feeds_rules_and_the_route_result():
    rules = {
        "rules": [
            {
                "id": "sure-network",
                "name": "Sure network",
                "when": {
                    "all": [
                        {"field": "category", "op": "equals", "value": "network"},
                        {"field": "category_confidence", "op": "gte", "value": 0.9},
                    ]
                },
                "actions": {"assign_team": "netops"},
            }
        ],
        "default_team": "general",
    }
    categories = view(LabelKind.CATEGORY)
    result = policy(rules).route(ticket(SURE_NETWORK), "api", categories)
    assert result.team == "netops"
    assert result.category == "network" and result.category_confidence is not None
    assert result.category_confidence >= 0.9
    unsure = policy(rules).route(ticket(UNSURE), "api", categories)
    assert unsure.team == "general" and unsure.category_confidence is not None
    assert unsure.category_confidence < 0.9
    # A category model never assigns a team by itself.
    assert policy({"rules": []}).route(ticket(SURE_NETWORK), "api", categories).team is None


def test_team_model_routes_when_no_rule_chose_a_team():
    result = policy({"rules": [], "default_team": "general"}).route(ticket(SURE_NETWORK), "api", view())
    assert result.team == "network"
    assert any(
        r.startswith("classifier: team network (confidence") and ">= threshold" in r for r in result.reasons
    )


def test_team_model_below_threshold_sends_to_triage_with_the_reason():
    result = policy({"rules": [], "default_team": "general"}).route(ticket(UNSURE), "api", view())
    assert result.team is None
    assert any(r.startswith("classifier unsure: team") and r.endswith(": triage") for r in result.reasons)


def test_below_threshold_can_fall_back_to_the_rules_default():
    result = policy({"rules": [], "default_team": "general"}).route(
        ticket(UNSURE), "api", view(below="rules")
    )
    assert result.team == "general"
    assert any('rules\' default team "general"' in r for r in result.reasons)
    # Without a default team the rules' answer is triage.
    assert policy({"rules": []}).route(ticket(UNSURE), "api", view(below="rules")).team is None


@pytest.mark.parametrize("below", ["triage", "rules"])
def test_a_confident_prediction_of_a_team_that_is_not_active_takes_the_below_threshold_path(below):
    """A model trained before a team was deactivated or deleted still predicts it: routing there
    would leave the ticket with nobody."""
    retired = view(below=below, active_teams=("access", "hardware"))  # network deactivated or deleted
    result = policy({"rules": [], "default_team": "general"}).route(ticket(SURE_NETWORK), "api", retired)
    assert result.team == ("general" if below == "rules" else None)
    why = next(r for r in result.reasons if r.startswith("classifier"))
    assert why.startswith("classifier: team network is not an active team (confidence")
    assert why.endswith('rules\' default team "general"' if below == "rules" else ": triage")
    # The same model routes there while the team is active.
    assert policy({"rules": []}).route(ticket(SURE_NETWORK), "api", view(below=below)).team == "network"


def test_a_rule_that_assigns_a_team_wins_over_the_team_model():
    rules = {
        "rules": [
            {
                "id": "vpn",
                "name": "VPN",
                "when": {"field": "text", "op": "contains", "value": "vpn"},
                "actions": {"assign_team": "vpn-team"},
            },
            {
                "id": "spam",
                "name": "Spam to triage",
                "when": {"field": "text", "op": "contains", "value": "zzz"},
                "actions": {"route_to_triage": True},
            },
        ]
    }
    assert policy(rules).route(ticket(SURE_NETWORK), "api", view()).team == "vpn-team"
    assert policy(rules).route(ticket(UNSURE), "api", view()).team is None


def test_no_models_means_rules_only():
    result = policy({"rules": [], "default_team": "general"}).route(
        ticket(SURE_NETWORK), "api", NO_CLASSIFIERS
    )
    assert result.team == "general" and result.category is None and result.language == "en"


@pytest.mark.parametrize(
    ("confidence", "threshold", "team", "fragment"),
    [
        (0.97, 0.81, "network", "(confidence 0.97 >= threshold 0.81)"),
        (0.42, 0.81, None, "(confidence 0.42 < threshold 0.81): triage"),
        (0.8099, 0.81, None, "(confidence 0.8099 < threshold 0.8100)"),  # no misleading tie
        (0.80999, 0.81, None, "(confidence 0.80999 < threshold 0.81000)"),  # not 0.8100 < 0.8100
        # Target precision not reached: the threshold lies just above the surest out-of-fold confidence.
        (0.99996, 0.999984, None, "(confidence 0.99996 < threshold 0.99998)"),
    ],
)
def test_classifier_team_reasons(confidence, threshold, team, fragment):
    prediction = Prediction("network", confidence, confidence >= threshold)
    chosen, reason = classifier_team(prediction, threshold, "general", "triage", {"network"})
    assert chosen == team and fragment in reason


def test_filter_pool_by_language():
    speaks = {"a": frozenset({"en"}), "b": frozenset({"et", "en"}), "c": frozenset({"et"})}
    assert filter_pool_by_language(["a", "b", "c"], "et", speaks) == ("b", "c")
    assert filter_pool_by_language(["a", "b", "c"], "fi", speaks) == ("a", "b", "c")  # nobody: whole pool
    assert filter_pool_by_language(["a", "b"], None, speaks) == ("a", "b")
    assert filter_pool_by_language(["x", "c"], "et", speaks) == ("c",)  # unknown teams speak nothing


def test_pools_prefer_teams_speaking_the_ticket_language():
    rules = {
        "rules": [{"id": "all", "name": "All", "actions": {"assign_pool": {"teams": ["desk-en", "desk-et"]}}}]
    }
    speaks = {"desk-en": frozenset({"en"}), "desk-et": frozenset({"et"})}
    languages = view(team_languages=speaks)
    assert policy(rules).route(ticket("Arvuti", ESTONIAN), "api", languages).team == "desk-et"
    assert policy(rules).route(
        ticket("Laptop", "My laptop does not start at all"), "api", languages
    ).team == ("desk-en")


def test_when_no_speaker_of_the_language_has_room_the_rest_of_the_pool_is_used():
    """Speakers are preferred, not required: with no Estonian speaker in the pool a ticket in
    Estonian goes to any team with room, but with one that was full or off shift it went to the
    overflow team (or triage) although the rest of the pool had room."""
    rules = {
        "rules": [{"id": "all", "name": "All", "actions": {"assign_pool": {"teams": ["desk-en", "desk-et"]}}}]
    }
    speaks = {"desk-en": frozenset({"en"}), "desk-et": frozenset({"et"})}
    languages = view(team_languages=speaks)
    for et_capacity in (1, 0):  # full, then nobody on shift
        loads = LoadBook(
            LoadConfig(weighted=False),
            {"desk-en": 5, "desk-et": et_capacity, "spill": 100},
            counts={"desk-et": 1},
            overflow_team="spill",
        )
        routed = policy(rules).route(ticket("Arvuti", ESTONIAN), "api", languages, loads=loads)
        assert routed.team == "desk-en", routed.reasons
        note = "full (1/1)" if et_capacity else "no capacity (nobody on shift)"
        assert f"no team speaking et has room (desk-et: {note}); least loaded: desk-en at 0% of capacity" in (
            routed.reasons
        ), routed.reasons
    loads = LoadBook(LoadConfig(weighted=False), {"desk-en": 5, "desk-et": 5, "spill": 100})
    assert policy(rules).route(ticket("Arvuti", ESTONIAN), "api", languages, loads=loads).team == "desk-et"
    full = LoadBook(
        LoadConfig(weighted=False),
        {"desk-en": 1, "desk-et": 1, "spill": 100},
        counts={"desk-en": 1, "desk-et": 1},
    )
    full.overflow_team = "spill"
    assert policy(rules).route(ticket("Arvuti", ESTONIAN), "api", languages, loads=full).team == "spill"


def test_a_pool_narrowed_to_the_tickets_language_says_so_in_the_reasons():
    rules = {
        "rules": [
            {
                "id": "all",
                "name": "All",
                "actions": {"assign_pool": {"teams": ["desk-en", "desk-et"], "strategy": "least_loaded"}},
            }
        ]
    }
    languages = view(team_languages={"desk-en": frozenset({"en"}), "desk-et": frozenset({"et"})})
    routed = policy(rules).route(ticket("Arvuti", ESTONIAN), "api", languages)
    # Only the rule and the detected language were said: nothing told why the pool's other team,
    # maybe far less loaded, was not considered ("least loaded: desk-et" when loads are given).
    assert routed.team == "desk-et"
    assert "pool narrowed to the teams speaking et: desk-et" in routed.reasons
    english = policy(rules).route(ticket("Laptop", "My laptop does not start at all"), "api", languages)
    assert "pool narrowed to the teams speaking en: desk-en" in english.reasons
    unknown = policy(rules).route(ticket("", ""), "api", languages)  # no language: the whole pool
    assert not any("pool narrowed" in reason for reason in unknown.reasons)


def test_model_helper_is_trained():
    assert model().threshold > 0


def test_long_tokens_are_skipped_by_the_urgency_scan():
    blob = "QUJD" * 50_000  # a pasted base64 attachment: one 200 kB "word"
    signals = compute_signals("Outage: production down", blob)
    assert signals.urgency.level == "critical"


def test_an_assessment_from_a_prior_scan_equals_a_fresh_one():
    subject, description = "URGENT: outage", "Everyone is locked out!!! PLEASE HELP NOW"
    scanned = urgency.scan_text(subject, description)
    fresh = urgency.assess_urgency(subject, description, ["vip", "P1"])
    assert urgency.assess_urgency(subject, description, ["vip", "P1"], scanned) == fresh
    assert (
        fresh.level == "critical"
        and "tag: 'p1'" in fresh.signals
        and "tone: exclamation marks" in fresh.signals
    )


BATCH_TEXTS = [
    ("Arvuti ei tööta", ESTONIAN),
    ("VPN down", SURE_NETWORK),
    ("", UNSURE),
    ("", ""),
    ("Laptop", "laptop screen battery dock charger monitor"),
    ("Passwort", "Ich kann mich nicht anmelden, mein Konto ist gesperrt. Bitte helfen Sie mir."),
    ("URGENT!!! ALL USERS LOCKED OUT", "Nobody can log in, the whole company is blocked."),
]


def both_models() -> ClassifierView:
    return ClassifierView(
        {kind: ActiveModel(1, "synthetic", kind, model()) for kind in (LabelKind.CATEGORY, LabelKind.TEAM)}
    )


def same_prediction(got: Prediction | None, want: Prediction | None) -> bool:
    if got is None or want is None:
        return got is want
    return (got.label, got.above_threshold) == (want.label, want.above_threshold) and got.confidence == (
        pytest.approx(want.confidence, abs=1e-5)
    )


def test_text_signals_of_a_batch_equal_each_tickets_own():
    signals_view = both_models()
    batch = text_signals_many(BATCH_TEXTS, signals_view)
    assert len(batch) == len(BATCH_TEXTS)
    for (subject, description), got in zip(BATCH_TEXTS, batch, strict=True):
        want = text_signals(subject, description, signals_view)
        assert got.language == want.language
        assert same_prediction(got.category, want.category) and same_prediction(got.team, want.team)
        assert got.urgency == want.urgency
    assert batch[-1].urgency.shouts and batch[-1].urgency.exclaims
    assert [s.language for s in batch[:2]] == ["et", text_signals(*BATCH_TEXTS[1]).language]
    assert text_signals_many([], signals_view) == []
    assert text_signals_many(BATCH_TEXTS[:1])[0].category is None  # no model, no prediction


def test_a_bound_route_uses_the_prepared_signals_and_routes_as_the_policy_does(monkeypatch):
    rules = policy(ESTONIAN_RULE)
    team_view = view(below="rules")
    tickets = [ticket(subject, description) for subject, description in BATCH_TEXTS]
    expected = [rules.route(t, "api", team_view) for t in tickets]
    bound = rules.bind(team_view)
    bound.prepare([(t.subject, t.description) for t in tickets] * 2)  # repeats computed once
    assert len(bound.known) == len(BATCH_TEXTS)

    def no_single_pass(*args: object) -> None:
        raise AssertionError("a prepared text was analysed again")

    monkeypatch.setattr(enrichment, "text_signals", no_single_pass)
    monkeypatch.setattr(urgency, "scan_text", no_single_pass)
    for t, want in zip(tickets, expected, strict=True):
        got = bound(t, "api")
        assert (got.team, got.rule, got.language, got.priority) == (
            want.team,
            want.rule,
            want.language,
            want.priority,
        )
        assert got.reasons == want.reasons
    with pytest.raises(AssertionError, match="analysed again"):
        bound(ticket("not prepared", "some other text"), "api")


def test_a_bound_route_shows_its_whole_batch_one_instant():
    """The clock is read when the batch's first ticket is routed: a batch that straddles the end
    of business hours is routed as of that instant, the same for every ticket in it."""
    ruleset = parse_ruleset(
        {
            "timezone": "Europe/Berlin",
            "default_team": "night",
            "rules": [
                {
                    "id": "office-hours",
                    "name": "office hours",
                    "when": {"field": "time_of_day", "op": "between", "value": ["09:00", "17:00"]},
                    "actions": {"assign_team": "day"},
                }
            ],
        }
    )
    readings = iter(
        [datetime(2026, 6, 1, 14, 59, 59, tzinfo=UTC), datetime(2026, 6, 1, 15, 0, 1, tzinfo=UTC)]
    )
    rules = RoutingPolicy(compile_ruleset(ruleset), 1, lambda: next(readings))
    bound = rules.bind()
    assert [bound(ticket(f"ticket {i}"), "api").team for i in range(3)] == ["day"] * 3
    # A new batch binds again and reads the clock again: 17:00:01 in Berlin.
    assert rules.bind()(ticket("later"), "api").team == "night"


def test_tickets_evaluated_ahead_route_as_without_and_only_their_own_snapshots_reuse_it(monkeypatch):
    rules = policy({"rules": ESTONIAN_RULE["rules"], "default_team": "general"})
    tickets = [ticket(subject, description) for subject, description in BATCH_TEXTS]
    expected = [rules.route(t, "api", NO_CLASSIFIERS, now=NOW) for t in tickets]
    bound = rules.bind()
    bound.prepare([(t.subject, t.description) for t in tickets[1:]])  # the first one's text: not yet
    bound.evaluate_ahead([(t, "api") for t in tickets])
    evaluated: list[str] = []
    evaluate = RoutingPolicy.evaluate

    def counted(self, snapshot, *args, **kwargs):
        evaluated.append(snapshot.subject)
        return evaluate(self, snapshot, *args, **kwargs)

    monkeypatch.setattr(RoutingPolicy, "evaluate", counted)
    assert [bound(t, "api") for t in tickets] == expected
    # Only the ticket whose text was not prepared was evaluated in its turn.
    assert evaluated == [tickets[0].subject]
    # Another snapshot with the same content (a merged update, say) is evaluated anew; so is the
    # same snapshot routed as from another source.
    other = rules.bind()
    other.prepare([(tickets[1].subject, tickets[1].description)])
    other.evaluate_ahead([(tickets[1], "api")])
    assert other(tickets[1].model_copy(), "api") == expected[1]
    assert other(tickets[1], "email").reasons == rules.route(tickets[1], "email", now=NOW).reasons
    # Ahead, then the copy and "email" anew, then the plain route.
    assert evaluated[1:] == [tickets[1].subject] * 4


def test_the_reasons_say_what_made_the_detected_urgency():
    # "priority P2 from urgency high x impact medium" said neither which words nor which tone made
    # the urgency high: the evidence is in the reasons now, a few signals at most.
    result = policy(ESTONIAN_RULE).route(ticket("VPN not working", "Urgent, please!!!"), "api")
    detected = next(r for r in result.reasons if r.startswith("detected: "))
    assert "urgency high (high: 'not working'; high: 'urgent'; tone: exclamation marks)" in detected
    calm = policy(ESTONIAN_RULE).route(ticket("Mouse", "The mouse squeaks"), "api")
    assert "urgency low" in next(r for r in calm.reasons if r.startswith("detected: "))
    many = policy(ESTONIAN_RULE).route(ticket("Outage", "data loss, hacked, urgent, asap, crash"), "api")
    detected = next(r for r in many.reasons if r.startswith("detected: "))
    assert "urgency critical (critical: 'data loss'; " in detected and " more)" in detected


def test_a_derived_priority_is_marked_so_a_rules_is_not():
    """The lifecycle takes a priority derived from urgency x impact as a fallback (it does not lower
    the priority of a ticket leaving triage), a rule's as said."""
    urgent = ticket("VPN not working", "Urgent, please!!!")
    derived = policy(ESTONIAN_RULE).route(urgent, "api")
    assert derived.priority == Priority.P2 and derived.priority_derived
    sets_p4 = {"rules": [{"id": "low", "name": "Low", "actions": {"set_priority": "P4", "assign_team": "a"}}]}
    ruled = policy(sets_p4).route(urgent, "api")
    assert ruled.priority == Priority.P4 and not ruled.priority_derived


def test_a_team_speaking_a_regional_variant_speaks_the_language():
    """Teams may list ``pt-BR`` (the teams API takes a region); the detector says ``pt``. Such a
    team was never preferred for a ticket in Portuguese."""
    speaks = {"a": frozenset({"en"}), "b": frozenset({"pt-br"}), "c": frozenset({"es-419", "de"})}
    assert filter_pool_by_language(["a", "b", "c"], "pt", speaks) == ("b",)
    assert filter_pool_by_language(["a", "b", "c"], "es", speaks) == ("c",)
    assert filter_pool_by_language(["a", "b", "c"], "p", speaks) == ("a", "b", "c")  # no prefix match
