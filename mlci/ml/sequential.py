"""Always-valid comparison of a challenger with the champion on live, labelled traffic.

An experiment is looked at every night, so a fixed-sample test would be peeked at many times and its
error rate would grow with every look. A *confidence sequence* instead holds at every sample size at
once: with probability at least 1 - alpha, the true difference lies inside the interval at all times,
however often and whenever it is looked at (Howard, Ramdas, McAuliffe & Sekhon, "Time-uniform,
nonparametric, nonasymptotic confidence sequences", Annals of Statistics 2021, eq. (14): the
normal-mixture boundary for sub-Gaussian increments). Stopping as soon as it decides is therefore valid.

Per-row scores are bounded (correct/incorrect, Brier score, absolute error capped at ``clip``), so a
score in an interval of width w is (w/2)-sub-Gaussian and the boundary needs no variance estimate. The
bound is conservative, never anti-conservative: ``tests/test_sequential.py`` simulates thousands of
experiments looked at dozens of times and checks the false-promotion rate stays below alpha.

The decision uses the gate's semantics of ``max_drop`` (epsilon, absolute or relative to the champion's
value): ``promote`` when the lower bound of (challenger - champion) is at least -epsilon ("no worse than
the champion by more than epsilon", as the offline bootstrap rule), ``stop`` when the upper bound is
below -epsilon (worse by more than epsilon), else ``continue``.

- shadow (paired): both models score the same requests; the bound is on the mean per-row difference.
- canary (two samples): each request is scored by one model; each arm gets a bound at alpha/4 per side
  and the difference's bound is their union (two-sided level alpha overall).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

Decision = Literal["promote", "stop", "continue"]
ONLINE_METRICS = ("accuracy", "brier", "mae")  # per-row scores, higher is better after orientation


@dataclass(frozen=True)
class Bound:
    """A confidence interval of (challenger - champion) that holds at every sample size."""

    estimate: float
    lower: float
    upper: float
    rows: int


def mixture_radius(rows: int, sigma: float, alpha: float, rho: float) -> float:
    """Half-width for the mean of ``rows`` sigma-sub-Gaussian values, one-sided at level ``alpha``,
    uniformly over all sample sizes (normal mixture with precision ``rho``, tightest near rows*sigma^2 = rho)."""
    if rows <= 0:
        return math.inf
    variance = rows * sigma * sigma
    return math.sqrt(2 * (variance + rho) * math.log(math.sqrt((variance + rho) / rho) / alpha)) / rows


def mixture_rho(expected_rows: int, sigma: float) -> float:
    """The mixture precision that makes the boundary tightest at ``expected_rows`` labelled rows."""
    return max(1.0, expected_rows) * sigma * sigma


def paired_bound(differences: np.ndarray, *, score_width: float, alpha: float, expected_rows: int) -> Bound:
    """Bound on the mean of per-row differences (challenger - champion) of scores that lie in an interval
    of ``score_width``, so the differences lie in one twice as wide (shadow mode)."""
    rows = len(differences)
    estimate = float(np.mean(differences)) if rows else 0.0
    sigma = score_width
    radius = mixture_radius(rows, sigma, alpha / 2, mixture_rho(expected_rows, sigma))
    return Bound(estimate, estimate - radius, estimate + radius, rows)


def two_sample_bound(champion: np.ndarray, challenger: np.ndarray, *, score_width: float, alpha: float,
                     expected_rows: int) -> Bound:
    """Bound on mean(challenger) - mean(champion) from independent arms whose scores lie in an
    interval of ``score_width`` (canary mode)."""
    sigma = score_width / 2
    rho = mixture_rho(expected_rows, sigma)
    radius = [mixture_radius(len(arm), sigma, alpha / 4, rho) for arm in (champion, challenger)]
    means = [float(np.mean(arm)) if len(arm) else 0.0 for arm in (champion, challenger)]
    estimate = means[1] - means[0]
    rows = min(len(champion), len(challenger))
    return Bound(estimate, estimate - radius[0] - radius[1], estimate + radius[0] + radius[1], rows)


def decide(bound: Bound, *, epsilon: float, min_rows: int = 0) -> Decision:
    if bound.rows < min_rows:
        return "continue"
    if bound.lower >= -epsilon:
        return "promote"
    if bound.upper < -epsilon:
        return "stop"
    return "continue"


def epsilon_of(max_drop: float, *, relative: bool, champion_value: float | None) -> float:
    """The tolerated drop in the metric's own units, as the gate reads ``max_drop`` and ``relative``."""
    if not relative:
        return max_drop
    if champion_value is None:
        raise ValueError("a relative max_drop needs the champion's value of the metric")
    return max_drop * abs(champion_value)


def row_scores(metric: str, y: np.ndarray, predicted: np.ndarray | None, probabilities: np.ndarray | None = None,
               classes: list | None = None, *, clip: float | None = None) -> tuple[np.ndarray, float]:
    """Per-row scores oriented so higher is better, and the width of the interval they lie in.

    accuracy: 1 when right, 0 when wrong (width 1); brier: minus the squared distance of the predicted
    probabilities from the one-hot label (width 2); mae: minus the absolute error, capped at ``clip``
    (width ``clip``: regression errors are unbounded, so the cap is part of the experiment's plan)."""
    if metric == "accuracy":
        return (np.asarray(predicted) == np.asarray(y)).astype(float), 1.0
    if metric == "brier":
        if probabilities is None or classes is None:
            raise ValueError("brier needs the models' class probabilities")
        onehot = (np.asarray(y)[:, None] == np.asarray(classes)[None, :]).astype(float)
        return -np.sum((np.asarray(probabilities, dtype=float) - onehot) ** 2, axis=1), 2.0
    if metric == "mae":
        if not clip or clip <= 0:
            raise ValueError("mae needs a positive clip (the largest error counted)")
        errors = np.abs(np.asarray(y, dtype=float) - np.asarray(predicted, dtype=float))
        return -np.minimum(errors, clip), float(clip)
    raise ValueError(f"'{metric}' is not an online metric (choose from {', '.join(ONLINE_METRICS)})")
