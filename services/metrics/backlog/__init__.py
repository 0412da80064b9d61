"""Live backlog state of the metrics service and its Prometheus exposition.

Start at :mod:`.state` (storage, per-event updates, and a map of where each series is computed);
clock-driven changes (age buckets, at risk, overdue) are in :mod:`.transitions`, the exposition
in :mod:`.collector`.
"""

from .collector import BacklogCollector, FlowCollector
from .config import BacklogConfig
from .erlang import agents_needed, erlang_b, erlang_c, service_level
from .state import BacklogState

__all__ = [
    "BacklogCollector",
    "BacklogConfig",
    "BacklogState",
    "FlowCollector",
    "agents_needed",
    "erlang_b",
    "erlang_c",
    "service_level",
]
