"""The JSON backlog summary (``GET /v1/backlog``) of a (possibly merged) :class:`.Snapshot`."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from .config import PRIORITIES, TRIAGE
from .snapshot import Snapshot


def summary(snap: Snapshot) -> dict[str, Any]:
    """Per-team JSON summary (documented by :class:`services.metrics.schemas.BacklogSummary`); an
    infinite ``hours_to_clear`` becomes null (JSON has no Inf), and ``as_of`` is null with no clock."""
    teams: dict[str, Any] = {}
    for name, team in snap.teams.items():
        flow = snap.forecast(name, team)
        hours = flow["hours_to_clear"]
        teams[name] = {
            "open": team.open_total,
            "overdue": sum(team.overdue),
            "at_risk": sum(team.at_risk),
            "oldest_age_seconds": snap.oldest_age_seconds(team),
            "by_priority": dict(zip(PRIORITIES, team.open, strict=True)),
            "inflow_per_hour": flow["inflow_per_hour"],
            "outflow_per_hour": flow["outflow_per_hour"],
            "hours_to_clear": None if math.isinf(hours) else hours,
            "agents_needed": int(flow["agents_needed"]),
        }
    triage = snap.teams.get(TRIAGE)
    # A clock of 0 is no clock: a merge of no shard (no partition assigned) or of shards neither
    # fed an event nor caught up. 1970 would read as a real, very stale instant.
    as_of = None if snap.now_ms <= 0 else datetime.fromtimestamp(snap.now_ms / 1000, UTC).isoformat()
    return {
        "as_of": as_of,
        "open": snap.n_open,
        "triage_open": 0 if triage is None else triage.open_total,
        "teams": teams,
    }
