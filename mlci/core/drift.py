"""Drift decisions: which test a column gets, what its threshold is, and what counts as drift.

Pure logic (stdlib only); the statistics themselves live in ``mlci.ml.drift``.

Two families of methods answer different questions:

* **tests** (``ks``, ``chi2``) give a p-value: "could both samples come from one distribution?".
  Their power grows with the sample size, so on a million rows they flag shifts nobody cares about;
  drift means ``p < p_value`` (after the optional multiple-testing correction);
* **distances** (``wasserstein`` normalised by the reference's standard deviation, ``jensenshannon``
  in base 2, ``psi``) measure how far apart the distributions are, independent of the sample size,
  but are noisy on small samples; drift means ``distance >= threshold``.

The default (``auto``) therefore picks a test while the smaller sample has at most
``AUTO_LARGE_SAMPLE`` rows and a distance above that.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from mlci.core.gates import LOWER_IS_BETTER

Kind = Literal["numeric", "categorical"]

NUMERIC_METHODS = ("ks", "wasserstein", "psi")
CATEGORICAL_METHODS = ("chi2", "jensenshannon", "psi")
P_VALUE_METHODS = ("ks", "chi2")
DISTANCE_METHODS = ("wasserstein", "jensenshannon", "psi")

AUTO_LARGE_SAMPLE = 10_000
"""Above this many rows in the smaller sample, ``auto`` switches from a test to a distance."""

DEFAULT_THRESHOLDS = {"wasserstein": 0.1, "jensenshannon": 0.1, "psi": 0.2}
"""Distance thresholds used when mlci.yaml sets none (PSI 0.2: the usual 'significant shift' line)."""


@dataclass(frozen=True)
class Plan:
    """How one column is tested."""

    column: str
    kind: Kind
    method: str
    threshold: float

    @property
    def uses_p_value(self) -> bool:
        return self.method in P_VALUE_METHODS


@dataclass(frozen=True)
class Verdict:
    """One column's outcome. ``decided_on`` is what was compared with the threshold."""

    column: str
    method: str
    score: float
    threshold: float
    decided_on: float
    drifted: bool


def allowed_methods(kind: Kind) -> tuple[str, ...]:
    return NUMERIC_METHODS if kind == "numeric" else CATEGORICAL_METHODS


def choose_method(kind: Kind, configured: str, smaller_sample: int) -> str:
    """The method for a column: the configured one, or for ``auto`` a test on small samples and a
    distance on large ones (Wasserstein for numbers, Jensen–Shannon for categories)."""
    if configured != "auto":
        if configured not in allowed_methods(kind):
            raise ValueError(f"method '{configured}' does not apply to {kind} columns "
                             f"(use one of: {', '.join(allowed_methods(kind))})")
        return configured
    large = smaller_sample > AUTO_LARGE_SAMPLE
    if kind == "numeric":
        return "wasserstein" if large else "ks"
    return "jensenshannon" if large else "chi2"


def threshold_for(method: str, *, p_value: float, distances: dict[str, float] | None = None,
                  override: float | None = None) -> float:
    """The significance level for tests, the distance limit for distances."""
    if override is not None:
        return override
    if method in P_VALUE_METHODS:
        return p_value
    return (distances or {}).get(method, DEFAULT_THRESHOLDS[method])


def bonferroni(p_values: Sequence[float]) -> list[float]:
    """Adjusted p-values: ``min(1, p * m)``; controls the family-wise error rate."""
    m = len(p_values)
    return [min(1.0, p * m) for p in p_values]


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Benjamini–Hochberg adjusted p-values (step-up, monotone); controls the false discovery rate."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 1.0
    for rank in range(m, 0, -1):
        index = order[rank - 1]
        running = min(running, p_values[index] * m / rank)
        adjusted[index] = min(1.0, running)
    return adjusted


def adjust(p_values: Sequence[float], correction: str) -> list[float]:
    if correction == "bonferroni":
        return bonferroni(p_values)
    if correction == "bh":
        return benjamini_hochberg(p_values)
    if correction == "none":
        return list(p_values)
    raise ValueError(f"unknown correction '{correction}'")


def decide(plans: Sequence[Plan], scores: dict[str, float], correction: str = "none") -> list[Verdict]:
    """Verdicts for every planned column. The correction spans the p-value tests only: distances are
    not probabilities. A score that could not be computed (NaN) never counts as drift."""
    tested = [p for p in plans if p.uses_p_value and _finite(scores[p.column])]
    adjusted = dict(zip((p.column for p in tested), adjust([scores[p.column] for p in tested], correction)))
    verdicts = []
    for plan in plans:
        score = scores[plan.column]
        decided_on = adjusted.get(plan.column, score)
        if not _finite(score):
            drifted = False
        elif plan.uses_p_value:
            drifted = decided_on < plan.threshold
        else:
            drifted = decided_on >= plan.threshold
        verdicts.append(Verdict(plan.column, plan.method, score, plan.threshold, decided_on, drifted))
    return verdicts


def drifted_share(verdicts: Iterable[Verdict]) -> float:
    verdicts = list(verdicts)
    return sum(v.drifted for v in verdicts) / len(verdicts) if verdicts else 0.0


def dataset_drifted(share: float, threshold: float) -> bool:
    """Dataset-level drift: at least ``threshold`` of the features drifted (and at least one did)."""
    return share > 0 and share >= threshold


def metric_decay(metric: str, reference: float, current: float, max_drop: float) -> tuple[float, bool]:
    """(decay, too_much). Scores in [0, 1] may drop by ``max_drop`` absolutely; error metrics
    (unbounded, in the target's units) may grow by ``max_drop`` as a fraction of the reference."""
    if metric in LOWER_IS_BETTER:
        decay = (current - reference) / abs(reference) if reference else current - reference
    else:
        decay = reference - current
    return decay, decay > max_drop


def quality_excess(current_ratio: float, reference_ratio: float, allowed_increase: float) -> bool:
    """True when the current missing (or out-of-schema) share exceeds the reference's by more than allowed."""
    return current_ratio - reference_ratio > allowed_increase


def _finite(value: float) -> bool:
    return value == value and value not in (float("inf"), float("-inf"))
