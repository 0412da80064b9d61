"""Live backlog state of the metrics service and its Prometheus exposition."""

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
