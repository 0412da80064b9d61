"""Pure pieces: the batch load book, write-back signing and backoff, priority from the matrix."""

from datetime import UTC, datetime, timedelta

from services.router.assignment import LoadConfig
from services.router.load.book import LoadBook
from services.router.routing.policy import RoutingPolicy
from services.router.rules import PoolTarget, compile_ruleset, parse_ruleset
from services.router.writeback.connectors.webhook import sign
from services.router.writeback.sender import backoff
from shared.events import Priority, TicketSnapshot, TicketStatus

OPEN, PENDING = TicketStatus.OPEN, TicketStatus.PENDING


def book(**counts: int) -> LoadBook:
    capacities = {"a": 2, "b": 2, "spill": 100}
    return LoadBook(LoadConfig(weighted=False), capacities, counts=dict(counts), overflow_team="spill")


def test_choices_see_the_increments_of_the_same_batch_and_overflow_when_full():
    loads = book(a=1, b=0)
    pool = PoolTarget(("a", "b"), "least_loaded")
    teams = []
    for i in range(5):
        team = loads.choose(pool, f"k{i}").team
        teams.append(team)
        loads.move(None, (team, OPEN, Priority.P3))
    assert teams == ["b", "a", "b", "spill", "spill"]
    assert loads.count_deltas == {"a": 1, "b": 2, "spill": 2}


def test_pending_does_not_count_and_moves_are_symmetric():
    loads = book(a=1)
    loads.move(("a", OPEN, Priority.P3), ("a", PENDING, Priority.P3))
    assert loads.counts["a"] == 0
    loads.move(("a", PENDING, Priority.P3), ("b", OPEN, Priority.P1))
    assert loads.counts == {"a": 0, "b": 1} and loads.touched == ["a", "b"]


def test_round_robin_cursor_advances_within_the_batch():
    loads = book()
    pool = PoolTarget(("a", "b"), "round_robin")
    assert [loads.choose(pool, "k").team for _ in range(3)] == ["a", "b", "a"]
    assert loads.cursor_updates == {pool.label: "a"}


def test_signature_and_backoff():
    assert sign("k", b"{}") == "sha256=" + __import__("hmac").new(b"k", b"{}", "sha256").hexdigest()
    assert [backoff(n, 2, 10) for n in (1, 2, 3, 4)] == [timedelta(seconds=s) for s in (2, 4, 8, 10)]


def test_an_inactive_or_unknown_overflow_team_gets_nothing():
    """A full pool's tickets went to the overflow team even when it had been deactivated (or never
    created): tickets assigned to a team nobody works, while triage would have shown them."""
    pool = PoolTarget(("a", "b"), "least_loaded")
    for capacities, inactive, why in (
        ({"a": 1, "b": 1, "spill": 10}, frozenset({"spill"}), "inactive"),
        ({"a": 1, "b": 1}, frozenset(), "unknown"),
    ):
        loads = LoadBook(
            LoadConfig(weighted=False), capacities, inactive, counts={"a": 1, "b": 1}, overflow_team="spill"
        )
        choice = loads.choose(pool, "k")
        assert choice.team is None, choice
        assert choice.reason.endswith(f"overflow team spill is {why}; to triage"), choice.reason
    active = LoadBook(
        LoadConfig(weighted=False), {"a": 1, "spill": 10}, counts={"a": 1}, overflow_team="spill"
    )
    assert active.choose(PoolTarget(("a",), "least_loaded"), "k").team == "spill"


def test_a_rule_or_default_team_that_is_gone_or_inactive_sends_the_ticket_to_triage():
    """A router routes with the rules it loaded, up to a poll period old: the team a rule (or
    ROUTER_DEFAULT_TEAM) names may have been deleted or deactivated since, once a newer rule set
    stopped naming it. The ticket went to that team, which nobody works."""
    rules = {
        "default_team": "fallback",
        "rules": [
            {
                "id": "vip",
                "name": "VIP",
                "when": {"field": "subject", "op": "contains", "value": "vip"},
                "actions": {"assign_team": "gold"},
            }
        ],
    }
    policy = RoutingPolicy(compile_ruleset(parse_ruleset(rules)), 1, lambda: datetime(2026, 6, 1, tzinfo=UTC))
    loads = LoadBook(LoadConfig(), {"fallback": 5}, frozenset({"fallback"}))
    vip = policy.route(TicketSnapshot(external_id="1", subject="vip help"), "api", loads=loads)
    assert vip.team is None and "team gold is unknown; to triage" in vip.reasons, vip.reasons
    other = policy.route(TicketSnapshot(external_id="2", subject="help"), "api", loads=loads)
    assert other.team is None and "team fallback is inactive; to triage" in other.reasons, other.reasons
    live = LoadBook(LoadConfig(), {"fallback": 5, "gold": 5})
    assert policy.route(TicketSnapshot(external_id="3", subject="vip"), "api", loads=live).team == "gold"
    assert policy.route(TicketSnapshot(external_id="4", subject="x"), "api", loads=live).team == "fallback"
