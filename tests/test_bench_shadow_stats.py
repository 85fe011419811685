"""The shadow benchmark's verdict (benchmarks/bench_shadow.py): a confidence interval for the median of the
same-round p99 ratios that holds whatever their distribution, and a limit decided as met, not met or
undecided on it."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

from bench_shadow import decide, median_interval, overall  # noqa: E402


@pytest.mark.parametrize("draw, median", [
    (lambda rng, n: rng.lognormal(0.0, 1.0, n), 1.0),  # skewed, like latency ratios
    (lambda rng, n: 1.1 + rng.standard_cauchy(n), 1.1),  # heavy tails: no mean, no bootstrap guarantee
    (lambda rng, n: rng.choice([0.5, 0.9, 1.0, 3.8], n, p=[0.2, 0.25, 0.1, 0.45]), 1.0),  # lumpy
])
@pytest.mark.parametrize("rounds", [6, 9, 20, 41])
def test_the_median_interval_covers_the_true_median_at_its_confidence(draw, median, rounds):
    rng = np.random.default_rng(rounds)
    trials = 4000
    covered = sum(low <= median <= high for low, high in
                  (median_interval(list(draw(rng, rounds)), 0.95) for _ in range(trials)))
    assert covered / trials >= 0.95 - 3 * math.sqrt(0.95 * 0.05 / trials)


def test_the_median_interval_is_the_textbook_order_statistics_and_infinite_when_too_few():
    values = [float(v) for v in range(1, 21)]
    assert median_interval(values, 0.95) == (6.0, 15.0)  # n = 20: the 6th and 15th of 20 (coverage 95.9%)
    assert median_interval(values[:5], 0.95) == (-math.inf, math.inf)  # 2 / 2**5 > 5%: no interval
    assert median_interval(values[:6], 0.95) == (1.0, 6.0)  # 2 / 2**6 <= 5%
    low, high = median_interval(values, 0.5)
    assert 6.0 < low <= high < 15.0


def test_the_limit_is_met_only_when_the_whole_interval_is_within_it():
    assert decide((0.95, 1.08), 1.10) == "met"
    assert decide((0.95, 1.12), 1.10) == "undecided"
    assert decide((1.11, 1.30), 1.10) == "not met"
    assert decide((-math.inf, math.inf), 1.10) == "undecided"
    assert overall(["met", "met"]) == "met"
    assert overall(["met", "undecided"]) == "undecided"
    assert overall(["undecided", "not met", "met"]) == "not met"
