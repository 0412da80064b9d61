from collections import Counter

import pytest

from services.router.assignment.capacity import TeamLoad, weighted_open
from services.router.assignment.strategies import (
    Strategy,
    choose_team,
    least_loaded,
    round_robin,
    ticket_fraction,
    weighted,
)
from shared.events import Priority, TicketStatus

A = TeamLoad("alpha", 5, 10)
B = TeamLoad("bravo", 2, 10)
C = TeamLoad("charlie", 4, 20)
FULL = TeamLoad("full", 10, 10)
OFF_SHIFT = TeamLoad("night", 0, 0)
INACTIVE = TeamLoad("retired", 0, 10, active=False)


class TestLeastLoaded:
    def test_lowest_ratio_wins(self) -> None:
        choice = least_loaded([A, B, C])
        assert choice.team == "bravo"
        assert "20%" in choice.reason
        assert [c.team for c in choice.considered] == ["alpha", "bravo", "charlie"]

    def test_tie_broken_by_name(self) -> None:
        assert least_loaded([TeamLoad("zulu", 1, 10), TeamLoad("kilo", 2, 20)]).team == "kilo"

    def test_full_inactive_and_off_shift_teams_skipped(self) -> None:
        choice = least_loaded([FULL, OFF_SHIFT, INACTIVE, A])
        assert choice.team == "alpha"
        notes = {c.team: c.note for c in choice.considered}
        assert notes == {
            "full": "full (10/10)",
            "night": "no capacity (nobody on shift)",
            "retired": "inactive",
            "alpha": "room (5/10)",
        }

    def test_priority_weighting_changes_the_choice(self) -> None:
        two_p1 = weighted_open([(TicketStatus.OPEN, Priority.P1)] * 2)
        six_p4 = weighted_open([(TicketStatus.OPEN, Priority.P4)] * 6)
        # Fewer tickets but heavier ones: alpha (8/10) loses to bravo (3/10).
        assert least_loaded([TeamLoad("alpha", two_p1, 10), TeamLoad("bravo", six_p4, 10)]).team == "bravo"

    def test_all_full_goes_to_overflow(self) -> None:
        choice = least_loaded([FULL, OFF_SHIFT], overflow_team="overflow")
        assert choice.team == "overflow"
        assert "no team with room" in choice.reason and "overflow to overflow" in choice.reason

    def test_all_full_without_overflow_goes_to_triage(self) -> None:
        choice = least_loaded([FULL, INACTIVE])
        assert choice.team is None
        assert "triage" in choice.reason and "full: full (10/10)" in choice.reason

    def test_empty_pool(self) -> None:
        choice = least_loaded([])
        assert choice.team is None and "empty team pool" in choice.reason

    def test_duplicate_team_rejected(self) -> None:
        with pytest.raises(ValueError, match="duplicate"):
            least_loaded([A, A])


class TestRoundRobin:
    def test_next_after_last_and_wraps(self) -> None:
        pool = [A, B, C]
        assert round_robin(pool).team == "alpha"
        assert round_robin(pool, "alpha").team == "bravo"
        assert round_robin(pool, "charlie").team == "alpha"

    def test_skips_teams_without_room(self) -> None:
        choice = round_robin([A, FULL, OFF_SHIFT, C], "alpha")
        assert choice.team == "charlie"
        assert "skipped 2" in choice.reason

    def test_unknown_last_starts_from_first(self) -> None:
        assert round_robin([A, B], "gone").team == "alpha"

    def test_rotation_visits_every_team(self) -> None:
        pool, last, seen = [A, B, C], None, []
        for _ in range(6):
            last = round_robin(pool, last).team
            seen.append(last)
        assert seen == ["alpha", "bravo", "charlie"] * 2

    def test_overflow_and_triage(self) -> None:
        assert round_robin([FULL], "full", overflow_team="spill").team == "spill"
        assert round_robin([FULL], "full").team is None


class TestWeighted:
    def test_reproducible_for_a_ticket(self) -> None:
        weights = {"alpha": 1, "bravo": 1, "charlie": 1}
        first = weighted([A, B, C], weights, "zendesk:42")
        assert all(weighted([C, B, A], weights, "zendesk:42").team == first.team for _ in range(3))
        assert 0 <= ticket_fraction("zendesk:42") < 1

    def test_proportional_to_weights(self) -> None:
        weights = {"alpha": 3, "bravo": 1}
        counts = Counter(weighted([A, B], weights, f"t:{i}").team for i in range(4000))
        assert 0.72 < counts["alpha"] / 4000 < 0.78

    def test_full_and_zero_weight_teams_never_chosen(self) -> None:
        weights = {"alpha": 1, "full": 100, "bravo": 0}
        teams = {weighted([A, FULL, B], weights, f"t:{i}").team for i in range(200)}
        assert teams == {"alpha"}

    def test_no_weighted_team_with_room(self) -> None:
        choice = weighted([A, FULL], {"full": 1}, "t:1")
        assert choice.team is None and "positive weight" in choice.reason
        assert weighted([FULL], {"full": 1}, "t:1", overflow_team="spill").team == "spill"


def test_choose_team_dispatches() -> None:
    pool = [A, B, C]
    assert choose_team(Strategy.LEAST_LOADED, pool, ticket_key="k").team == "bravo"
    assert choose_team(Strategy.ROUND_ROBIN, pool, ticket_key="k", last_assigned="bravo").team == "charlie"
    assert choose_team(Strategy.WEIGHTED, pool, ticket_key="k", weights={"charlie": 1}).team == "charlie"
    with pytest.raises(ValueError, match="weights"):
        choose_team(Strategy.WEIGHTED, pool, ticket_key="k")
