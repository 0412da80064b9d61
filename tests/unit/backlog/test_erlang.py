from __future__ import annotations

import math
from fractions import Fraction

import pytest

from services.metrics.backlog import agents_needed, erlang_b, erlang_c, service_level


def erlang_c_direct(n: int, a: int) -> float:
    """Textbook closed form with exact rationals, independent of the recursion."""
    top = Fraction(a**n, math.factorial(n)) * Fraction(n, n - a)
    bottom = sum(Fraction(a**k, math.factorial(k)) for k in range(n)) + top
    return float(top / bottom)


# Classic worked example: 200 calls/h (100 per 30 min), AHT 180 s -> 10 Erlangs, 80 % in 20 s.
@pytest.mark.parametrize(
    ("agents", "p_wait", "level"),
    [(11, 0.6821, 0.3896), (12, 0.4494, 0.6402), (13, 0.2853, 0.7956), (14, 0.1741, 0.8884)],
)
def test_textbook_example(agents: int, p_wait: float, level: float) -> None:
    assert erlang_c(agents, 10.0) == pytest.approx(p_wait, abs=5e-5)
    assert service_level(agents, 10.0, 180, 20) == pytest.approx(level, abs=5e-5)


def test_agents_needed_textbook() -> None:
    assert agents_needed(200, 180, 20, 0.8) == 14
    assert agents_needed(200, 180, 20, 0.79) == 13


@pytest.mark.parametrize(("n", "a"), [(2, 1), (5, 3), (20, 15), (60, 50), (120, 100)])
def test_matches_closed_form(n: int, a: int) -> None:
    assert erlang_c(n, float(a)) == pytest.approx(erlang_c_direct(n, a), rel=1e-9)


def test_erlang_b_known_value() -> None:
    # B(N=2, A=1) = (1/2) / (1 + 1 + 1/2) = 0.2
    assert erlang_b(2, 1.0) == pytest.approx(0.2)


def test_stable_for_large_traffic_and_edges() -> None:
    # 5000 Erlangs: A^N/N! would overflow a float; the recursion must not.
    n = agents_needed(5000 * 3600 / 300, 300, 30, 0.8)
    assert 5000 < n < 5200
    assert service_level(n, 5000.0, 300, 30) >= 0.8 > service_level(n - 1, 5000.0, 300, 30)
    assert agents_needed(0, 300, 30, 0.8) == 0
    assert erlang_c(5, 5.0) == 1.0  # unstable queue: everyone waits
    assert agents_needed(1e9, 3600, 60, 0.8, max_agents=50) == 50


def _recursion(n: int, a: float) -> float:
    b = 1.0
    for k in range(1, n + 1):
        b = a * b / (k + a * b)
    return b


@pytest.mark.parametrize("traffic", [200.5, 300.0, 1234.5, 9000.25, 90000.0])
def test_closed_form_erlang_b_matches_the_recursion_where_staffing_asks(traffic: float) -> None:
    # Above 256 servers erlang_b uses the closed form; staffing asks about N > A.
    start = max(math.floor(traffic) + 1, 257)
    for servers in (start, start + 1, start + 17, start + 400):
        assert erlang_b(servers, traffic) == pytest.approx(_recursion(servers, traffic), rel=1e-9)


def test_agents_needed_at_tens_of_thousands_of_erlangs() -> None:
    # 500 tickets/s handled in 4 h: 7.2 M Erlangs would be absurd; 180,000/h for 30 min is 90,000.
    n = agents_needed(180_000, 1800, 60, 0.8)
    assert 90_000 < n < 91_000
    assert service_level(n, 90_000.0, 1800, 60) >= 0.8 > service_level(n - 1, 90_000.0, 1800, 60)
