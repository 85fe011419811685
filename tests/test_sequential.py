"""The always-valid comparison of live experiments (mlci/ml/sequential.py), checked by simulation: many
seeded experiments, each looked at many times (as a nightly job looks), must promote a challenger that is
not good enough at most alpha of the time, and must still find a truly better or worse one."""

from __future__ import annotations

import numpy as np
import pytest

from mlci.ml.sequential import Bound, decide, epsilon_of, mixture_radius, paired_bound, row_scores, two_sample_bound

ALPHA = 0.05
LOOKS = np.arange(100, 3001, 100)  # every "night" another 100 labelled rows: 30 looks
EXPERIMENTS = 600


def correctness(rng, rows: int, accuracy: float, shared: np.ndarray | None = None) -> np.ndarray:
    """Per-row 1/0 correctness; with ``shared`` the two models agree on most rows (as real models do)."""
    own = (rng.random(rows) < accuracy).astype(float)
    if shared is None:
        return own
    agree = rng.random(rows) < 0.7
    return np.where(agree, shared, own)




def shadow_outcomes(champion_accuracy: float, challenger_accuracy: float, *, epsilon: float, seed: int):
    rng = np.random.default_rng(seed)
    outcomes = []
    for _ in range(EXPERIMENTS):
        champion = correctness(rng, LOOKS[-1], champion_accuracy)
        challenger = correctness(rng, LOOKS[-1], challenger_accuracy,
                                 shared=champion if champion_accuracy == challenger_accuracy else None)
        differences = challenger - champion
        verdict = "continue"
        for n in LOOKS:
            verdict = decide(paired_bound(differences[:n], score_width=1.0, alpha=ALPHA, expected_rows=1000),
                             epsilon=epsilon)
            if verdict != "continue":
                break
        outcomes.append(verdict)
    return np.array(outcomes)


def canary_outcomes(champion_accuracy: float, challenger_accuracy: float, *, epsilon: float, seed: int,
                    share: float = 0.5):
    rng = np.random.default_rng(seed)
    outcomes = []
    for _ in range(EXPERIMENTS):
        arm = rng.random(LOOKS[-1]) < share
        scores = np.where(arm, rng.random(LOOKS[-1]) < challenger_accuracy,
                          rng.random(LOOKS[-1]) < champion_accuracy).astype(float)
        verdict = "continue"
        for n in LOOKS:
            seen, chosen = scores[:n], arm[:n]
            verdict = decide(two_sample_bound(seen[~chosen], seen[chosen], score_width=1.0, alpha=ALPHA,
                                              expected_rows=1000), epsilon=epsilon)
            if verdict != "continue":
                break
        outcomes.append(verdict)
    return np.array(outcomes)


def test_an_equal_challenger_is_rarely_promoted_under_no_worse_however_often_it_is_looked_at():
    # epsilon 0 ("no worse"): an equal challenger sits on the boundary, so promoting it is the error
    outcomes = shadow_outcomes(0.8, 0.8, epsilon=0.0, seed=1)
    assert np.mean(outcomes == "promote") <= ALPHA


def test_a_challenger_worse_by_exactly_epsilon_is_rarely_promoted():
    outcomes = shadow_outcomes(0.80, 0.78, epsilon=0.02, seed=2)
    assert np.mean(outcomes == "promote") <= ALPHA
    outcomes = canary_outcomes(0.80, 0.78, epsilon=0.02, seed=3)
    assert np.mean(outcomes == "promote") <= ALPHA


def test_a_truly_better_challenger_is_promoted_and_a_worse_one_stopped():
    better = shadow_outcomes(0.80, 0.88, epsilon=0.0, seed=4)
    assert np.mean(better == "promote") >= 0.9
    worse = shadow_outcomes(0.80, 0.70, epsilon=0.0, seed=5)
    assert np.mean(worse == "stop") >= 0.9
    assert np.mean(worse == "promote") == 0


def test_the_simulation_catches_a_test_that_is_not_valid_under_peeking():
    """A fixed-sample z-interval, looked at every night, promotes an equal challenger far more often than
    alpha: the same simulation that passes the confidence sequence fails it."""
    rng = np.random.default_rng(6)
    promoted = 0
    for _ in range(EXPERIMENTS):
        champion = correctness(rng, LOOKS[-1], 0.8)
        differences = correctness(rng, LOOKS[-1], 0.8, shared=champion) - champion
        for n in LOOKS:
            seen = differences[:n]
            lower = seen.mean() - 1.645 * seen.std(ddof=1) / np.sqrt(n)
            if lower > 0:
                promoted += 1
                break
    assert promoted / EXPERIMENTS > 2 * ALPHA


def test_the_bound_covers_the_true_difference_at_every_look():
    rng = np.random.default_rng(7)
    misses = 0
    for _ in range(EXPERIMENTS):
        differences = rng.uniform(-1, 1, LOOKS[-1]) * 0.5 + 0.1  # true mean 0.1, in [-0.4, 0.6]
        bounds = [paired_bound(differences[:n], score_width=0.5, alpha=ALPHA, expected_rows=500) for n in LOOKS]
        misses += any(not (b.lower <= 0.1 <= b.upper) for b in bounds)
    assert misses / EXPERIMENTS <= ALPHA


def test_the_radius_shrinks_with_rows_and_no_decision_before_min_rows():
    radii = [mixture_radius(n, 0.5, 0.025, 250.0) for n in (10, 100, 1000, 10000)]
    assert radii == sorted(radii, reverse=True) and radii[-1] < 0.05
    assert decide(Bound(0.5, 0.4, 0.6, rows=10), epsilon=0, min_rows=100) == "continue"
    assert decide(Bound(0.5, 0.4, 0.6, rows=100), epsilon=0, min_rows=100) == "promote"


def test_epsilon_follows_the_gate_semantics():
    assert epsilon_of(0.01, relative=False, champion_value=0.8) == 0.01
    assert epsilon_of(0.05, relative=True, champion_value=0.8) == pytest.approx(0.04)
    with pytest.raises(ValueError):
        epsilon_of(0.05, relative=True, champion_value=None)


def test_row_scores_are_oriented_and_bounded():
    y = np.array(["a", "b", "b"])
    scores, width = row_scores("accuracy", y, np.array(["a", "a", "b"]))
    assert scores.tolist() == [1, 0, 1] and width == 1
    proba = np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]])
    scores, width = row_scores("brier", y, None, proba, ["a", "b"])
    assert scores.tolist() == [0.0, -0.5, 0.0] and width == 2
    scores, width = row_scores("mae", np.array([1.0, 2.0]), np.array([1.5, 10.0]), clip=3.0)
    assert scores.tolist() == [-0.5, -3.0] and width == 3
    with pytest.raises(ValueError, match="not an online metric"):
        row_scores("roc_auc", y, y)
