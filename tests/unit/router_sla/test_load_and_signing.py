"""Pure pieces: the batch load book, write-back signing and backoff, priority from the matrix."""

from datetime import timedelta

from services.router.assignment import LoadConfig
from services.router.load.book import LoadBook
from services.router.rules import PoolTarget
from services.router.writeback.connectors.webhook import sign
from services.router.writeback.sender import backoff
from shared.events import Priority, TicketStatus

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
