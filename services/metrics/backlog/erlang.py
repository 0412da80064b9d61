"""Erlang C staffing (M/M/N queue), computed through the numerically stable Erlang B recursion.

B(0) = 1, B(n) = A*B(n-1) / (n + A*B(n-1)) never forms A^N/N!, so it works for thousands of
Erlangs; C(N, A) = N*B / (N - A*(1 - B)).
"""

from __future__ import annotations

import math

from scipy.special import gammaincc, gammaln

# Above this many servers the recursion (one step per server) gives way to the closed form.
_RECURSION_LIMIT = 256


def erlang_b(servers: int, traffic: float) -> float:
    if servers > _RECURSION_LIMIT and servers > traffic > 0:
        return _erlang_b_closed(servers, traffic)
    b = 1.0
    for n in range(1, servers + 1):
        b = traffic * b / (n + traffic * b)
    return b


def _erlang_b_closed(servers: int, traffic: float) -> float:
    """B(N, A) = Poisson pmf(N; A) / Poisson cdf(N; A), in logs; cdf(N; A) = Q(N + 1, A).

    O(1) where the recursion takes N steps: at 500 tickets/s and hours of handling time the offered
    load is tens of thousands of Erlangs. Used for N > A only, where cdf(N; A) >= ~0.5: staffing asks
    about nothing else, and below A the cdf can underflow.
    """
    log_pmf = servers * math.log(traffic) - traffic - float(gammaln(servers + 1))
    return math.exp(log_pmf - math.log(float(gammaincc(servers + 1, traffic))))


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
    servers = math.floor(traffic) + 1
    if servers >= max_agents:
        return max_agents
    b = erlang_b(servers, traffic)
    while servers < max_agents:
        c = _c_from_b(servers, traffic, b)
        if _service_level(servers, traffic, c, handle_seconds, target_answer_seconds) >= service_level_target:
            return servers
        servers += 1
        b = traffic * b / (servers + traffic * b)
    return max_agents
