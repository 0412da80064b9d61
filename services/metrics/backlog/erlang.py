"""Erlang C staffing (M/M/N queue), computed through the numerically stable Erlang B recursion.

B(0) = 1, B(n) = A*B(n-1) / (n + A*B(n-1)) never forms A^N/N!, so it works for thousands of
Erlangs; C(N, A) = N*B / (N - A*(1 - B)).
"""

from __future__ import annotations

import math


def erlang_b(servers: int, traffic: float) -> float:
    b = 1.0
    for n in range(1, servers + 1):
        b = traffic * b / (n + traffic * b)
    return b


def _c_from_b(servers: int, traffic: float, b: float) -> float:
    if servers <= traffic:
        return 1.0
    return servers * b / (servers - traffic * (1.0 - b))


def erlang_c(servers: int, traffic: float) -> float:
    """Probability that an arrival has to wait (1.0 when the queue is unstable)."""
    return _c_from_b(servers, traffic, erlang_b(servers, traffic))


def _service_level(servers: int, traffic: float, c: float, handle_s: float, target_s: float) -> float:
    if servers <= traffic:
        return 0.0
    return 1.0 - c * math.exp(-(servers - traffic) * target_s / handle_s)


def service_level(servers: int, traffic: float, handle_seconds: float, target_answer_seconds: float) -> float:
    """Share of arrivals answered within the target answer time."""
    return _service_level(servers, traffic, erlang_c(servers, traffic), handle_seconds, target_answer_seconds)


def agents_needed(
    arrivals_per_hour: float,
    handle_seconds: float,
    target_answer_seconds: float,
    service_level_target: float,
    max_agents: int = 100_000,
) -> int:
    """Smallest N with P(wait <= target) >= service level target; 0 without traffic."""
    if arrivals_per_hour <= 0 or handle_seconds <= 0:
        return 0
    traffic = arrivals_per_hour * handle_seconds / 3600.0
    servers = min(math.floor(traffic) + 1, max_agents)
    b = erlang_b(servers, traffic)
    while servers < max_agents:
        c = _c_from_b(servers, traffic, b)
        if _service_level(servers, traffic, c, handle_seconds, target_answer_seconds) >= service_level_target:
            return servers
        servers += 1
        b = traffic * b / (servers + traffic * b)
    return max_agents
