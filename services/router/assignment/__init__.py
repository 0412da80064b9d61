"""Pure team assignment: capacity from shift schedules, weighted load and pool strategies."""

from services.router.assignment.capacity import (
    DEFAULT_COUNTED_STATUSES,
    DEFAULT_PRIORITY_WEIGHTS,
    LoadConfig,
    Shift,
    TeamLoad,
    TeamSchedule,
    team_load,
    weighted_open,
)
from services.router.assignment.strategies import (
    AssignmentChoice,
    Candidate,
    Strategy,
    choose_team,
    least_loaded,
    round_robin,
    weighted,
)

__all__ = [
    "DEFAULT_COUNTED_STATUSES",
    "DEFAULT_PRIORITY_WEIGHTS",
    "AssignmentChoice",
    "Candidate",
    "LoadConfig",
    "Shift",
    "Strategy",
    "TeamLoad",
    "TeamSchedule",
    "choose_team",
    "least_loaded",
    "round_robin",
    "team_load",
    "weighted",
    "weighted_open",
]
