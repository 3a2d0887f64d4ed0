"""The two tests behind the replica warnings, against published table values."""

import random

import pytest

from client_sut.analysis.stats import chi_square_sf, chi_square_uniform, mann_whitney


@pytest.mark.parametrize("x, dof, p", [
    (3.841, 1, 0.05), (6.635, 1, 0.01), (5.991, 2, 0.05), (7.815, 3, 0.05),
    (16.266, 3, 0.001), (9.488, 4, 0.05), (11.070, 5, 0.05), (29.588, 10, 0.001)])
def test_chi_square_survival_matches_the_tables(x, dof, p):
    assert chi_square_sf(x, dof) == pytest.approx(p, rel=2e-3)


def test_chi_square_uniform():
    assert chi_square_uniform([100, 100, 100]).p_value == 1.0
    # 50/150 of 200: statistic (50^2 + 50^2) / 100 = 50, p ~ 1.5e-12.
    result = chi_square_uniform([50, 150])
    assert result.statistic == 50 and result.p_value < 1e-11


def test_mann_whitney_on_a_textbook_example():
    # No overlap, 5 vs 5: U = 0; exact two-sided p = 0.0079, the normal approximation with
    # continuity correction gives 0.0122.
    result = mann_whitney([1, 2, 3, 4, 5], [6, 7, 8, 9, 10])
    assert result.statistic == 0 and result.p_value == pytest.approx(0.0122, abs=5e-4)


def test_mann_whitney_tells_a_shift_from_chance():
    rng = random.Random(7)
    same = [rng.expovariate(1.0) for _ in range(400)]
    other = [rng.expovariate(1.0) for _ in range(400)]
    slow = [v + 0.5 for v in other]
    assert mann_whitney(same, other).p_value > 0.01
    assert mann_whitney(same, slow).p_value < 1e-10


def test_mann_whitney_with_every_value_tied():
    assert mann_whitney([1.0] * 5, [1.0] * 7).p_value == 1.0
