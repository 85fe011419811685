"""Gate arithmetic: whether a model's metrics pass the rules of ``gates:`` in ``mlci.yaml``.

For a metric m with orientation s = +1 when higher is better and s = -1 when lower is better:

* threshold rule:  pass iff  min <= m  and  m <= max            (bounds inclusive, each optional)
* champion rule:   Δ = s * (m_challenger - m_champion),  ε = max_drop            (absolute)
                                                         ε = max_drop * |m_champion|  (relative)
                   pass iff  Δ >= -ε                      (one-sided: improvements always pass)
* bootstrap rule:  Δ*_1..Δ*_B from a paired bootstrap over the same holdout rows;
                   L = the (1 - confidence) quantile of Δ*;  pass iff  L >= -ε

Comparisons allow a rounding slack of 1e-12, so "drops by exactly ε" passes whatever the binary
representation of the numbers. A missing, NaN or infinite metric never passes (fail closed). Without a
champion, champion rules follow the ``first_run`` policy. Pure functions: the resampling itself lives in
``mlci.ml.metrics``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, Self, TypeVar

from mlci.core.config import GateRule, GatesSection
from mlci.core.reports import Check, Report

ROUNDING = 1e-12
LOWER_IS_BETTER = frozenset({"rmse", "mae", "mape", "log_loss", "brier", "latency_p50_ms", "latency_p95_ms"})


@dataclass
class MetricSet:
    """A model's holdout metrics, overall and per slice (``slices[column][value][metric]``)."""

    metrics: dict[str, Any]
    slices: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    label: str = ""

    def value(self, metric: str, slice_column: str | None = None, slice_value: Any = None) -> Any:
        if slice_column is None:
            return self.metrics.get(metric)
        entry = self.slices.get(slice_column, {}).get(slice_key(slice_value))
        return None if entry is None else entry.get(metric)

    def has_slice(self, column: str, value: Any) -> bool:
        return slice_key(value) in self.slices.get(column, {})

    @classmethod
    def from_dict(cls, data: dict[str, Any], label: str = "") -> MetricSet:
        """From a ``metrics.json`` ({"metrics": {...}, "slices": {...}}) or a flat {metric: value}."""
        if isinstance(data.get("metrics"), dict):
            slices = {column: {key: entry.get("metrics", entry) for key, entry in values.items()}
                      for column, values in (data.get("slices") or {}).items()}
            return cls(dict(data["metrics"]), slices, label)
        return cls({k: v for k, v in data.items() if not isinstance(v, (dict, list))}, {}, label)


def slice_key(value: Any) -> str:
    """Slice values are compared as text, so `value: 1` in YAML matches the data's 1 or "1"."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def higher_is_better(metric: str) -> bool:
    return metric not in LOWER_IS_BETTER


def finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def allowed_drop(max_drop: float, *, relative: bool, champion: float) -> float:
    """ε: the largest drop the challenger may show against the champion."""
    return max_drop * abs(champion) if relative else max_drop


class _Difference(Protocol):
    """What Δ needs of a score: a float, or a NumPy array of one per bootstrap resample (``mlci.ml.metrics``)."""

    def __sub__(self, other: Self, /) -> Self: ...
    def __rmul__(self, other: float, /) -> Self: ...


Score = TypeVar("Score", bound=_Difference)


def improvement(metric: str, challenger: Score, champion: Score) -> Score:
    """Δ = s * (challenger - champion): positive when the challenger is better."""
    sign = 1.0 if higher_is_better(metric) else -1.0
    return sign * (challenger - champion)


def lower_bound(differences: Sequence[float], confidence: float) -> float | None:
    """The one-sided lower confidence bound: the (1 - confidence) quantile, linear interpolation
    between order statistics (as NumPy's default). Resamples where the metric is undefined are left out."""
    values = sorted(float(v) for v in differences if finite(float(v)))
    if not values:
        return None
    position = (1.0 - confidence) * (len(values) - 1)
    below = math.floor(position)
    above = min(below + 1, len(values) - 1)
    return values[below] + (values[above] - values[below]) * (position - below)


def rule_name(rule: GateRule) -> str:
    if rule.name:
        return rule.name
    target = rule.metric + (f"[{rule.slice.column}={rule.slice.value}]" if rule.slice else "")
    parts = []
    if rule.min is not None:
        parts.append(f">= {rule.min:g}")
    if rule.max is not None:
        parts.append(f"<= {rule.max:g}")
    if rule.max_drop is not None:
        drop = f"{rule.max_drop:g}" + (" relative" if rule.relative else "")
        parts.append(f"vs champion, max drop {drop}" + (" (bootstrap)" if rule.bootstrap else ""))
    return f"{target} {', '.join(parts)}"


def _value_for(rule: GateRule, metrics: MetricSet) -> Any:
    if rule.slice is None:
        return metrics.value(rule.metric)
    return metrics.value(rule.metric, rule.slice.column, rule.slice.value)


def _missing_message(rule: GateRule, metrics: MetricSet, who: str) -> str:
    if rule.slice is not None and not metrics.has_slice(rule.slice.column, rule.slice.value):
        known = ", ".join(sorted(metrics.slices.get(rule.slice.column, {}))) or "none"
        return (f"{who} has no slice {rule.slice.column}={rule.slice.value} (slices: {known}); "
                f"list the column under evaluation.slices")
    value = _value_for(rule, metrics)
    if value is None:
        return f"{who} has no value for '{rule.metric}' (fail closed)"
    return f"{who}'s {rule.metric} is {value!r}, not a finite number (fail closed)"


def check_threshold(rule: GateRule, metrics: MetricSet) -> Check:
    value = _value_for(rule, metrics)
    bounds = " and ".join(t for t in ((f">= {rule.min:g}" if rule.min is not None else ""),
                                      (f"<= {rule.max:g}" if rule.max is not None else "")) if t)
    check = Check(name=rule_name(rule), passed=False, severity=rule.severity, value=value, threshold=bounds,
                  group="threshold")
    if not finite(value):
        check.message = _missing_message(rule, metrics, "the model")
        return check
    low_ok = rule.min is None or value >= rule.min - ROUNDING
    high_ok = rule.max is None or value <= rule.max + ROUNDING
    check.passed = bool(low_ok and high_ok)
    check.message = "ok" if check.passed else f"{rule.metric} = {value:.4g}, must be {bounds}"
    return check


def check_champion(rule: GateRule, challenger: MetricSet, champion: MetricSet, *,
                   differences: Sequence[float] | None = None, confidence: float = 0.95) -> Check:
    """The champion comparison; with ``differences`` (bootstrap Δ*) the lower bound decides."""
    if rule.max_drop is None:
        raise ValueError(f"{rule_name(rule)}: only a rule with max_drop compares with the champion")
    new, old = _value_for(rule, challenger), _value_for(rule, champion)
    check = Check(name=rule_name(rule), passed=False, severity=rule.severity, group="champion",
                  details={"challenger": new, "champion": old, "champion_version": champion.label})
    if not finite(new) or not finite(old):
        check.message = _missing_message(rule, challenger if not finite(new) else champion,
                                         "the challenger" if not finite(new) else "the champion")
        return check
    epsilon = allowed_drop(rule.max_drop, relative=rule.relative, champion=old)
    delta = improvement(rule.metric, new, old)
    check.threshold = f">= {-epsilon:.4g}"
    check.details.update({"delta": delta, "epsilon": epsilon})
    if differences is None:
        check.value = delta
        check.passed = bool(delta >= -epsilon - ROUNDING)
        verdict = "within" if check.passed else "beyond"
        check.message = f"{rule.metric} {new:.4g} vs champion {old:.4g}: Δ = {delta:+.4g}, {verdict} -ε"
        return check
    bound = lower_bound(differences, confidence)
    check.value = bound
    check.details.update({"lower_bound": bound, "confidence": confidence, "resamples": len(differences)})
    if bound is None:
        check.message = f"bootstrap of {rule.metric} undefined on every resample (fail closed)"
        return check
    check.passed = bool(bound >= -epsilon - ROUNDING)
    check.message = (f"{rule.metric} {new:.4g} vs champion {old:.4g}: Δ = {delta:+.4g}, "
                     f"{confidence:.0%} lower bound {bound:+.4g} {'>=' if check.passed else '<'} -ε")
    return check


def first_run_check(rule: GateRule, gates: GatesSection) -> Check:
    passed = gates.first_run == "pass"
    return Check(name=rule_name(rule), passed=passed, severity=rule.severity, group="champion",
                 message=f"no champion '{gates.champion}' yet: {'passes' if passed else 'fails'} "
                         f"by the first_run policy ({gates.first_run})")


BootstrapFn = Callable[[GateRule], Sequence[float]]


def evaluate_gates(gates: GatesSection, challenger: MetricSet, champion: MetricSet | None, *,
                   bootstrap: BootstrapFn | None = None, paired: MetricSet | None = None) -> Report:
    """Check every rule; a rule with both bounds and max_drop gives two checks.

    Thresholds judge ``challenger`` (its whole holdout); champion rules judge ``paired``, the challenger
    on the rows the champion was scored on, when those differ (default: ``challenger``)."""
    paired = paired or challenger
    report = Report(kind="gate", details={"challenger": challenger.label,
                                          "champion": champion.label if champion else None,
                                          "champion_alias": gates.champion, "confidence": gates.confidence})
    for rule in gates.rules:
        if rule.min is not None or rule.max is not None:
            report.add(check_threshold(rule, challenger))
        if rule.max_drop is None:
            continue
        if champion is None:
            report.add(first_run_check(rule, gates))
        elif rule.bootstrap:
            report.add(_bootstrap_check(rule, paired, champion, bootstrap, gates.confidence))
        else:
            report.add(check_champion(rule, paired, champion))
    return report


def _bootstrap_check(rule: GateRule, challenger: MetricSet, champion: MetricSet,
                     bootstrap: BootstrapFn | None, confidence: float) -> Check:
    if bootstrap is None:
        check = check_champion(rule, challenger, champion)
        check.passed = False
        check.message = "bootstrap needs per-row holdout predictions of both models (fail closed)"
        return check
    try:
        differences = bootstrap(rule)
    except LookupError as exc:  # the predictions are missing or do not pair up
        check = check_champion(rule, challenger, champion)
        check.passed = False
        check.message = f"bootstrap impossible: {exc} (fail closed)"
        return check
    return check_champion(rule, challenger, champion, differences=differences, confidence=confidence)


def comparison_rows(challenger: Any, champion: Any | None, slice_rows: dict[str, dict[str, Any]] | None = None
                    ) -> list[dict[str, Any]]:
    """Every metric, overall then per slice, of the challenger beside the champion's (``MetricSet``s of
    this module), with Δ signed so that positive means better; ``slice_rows[column][value]`` is
    the challenger's row count of a slice (from its metrics.json)."""
    def row(metric: str, new: Any, old: Any, slice_name: str | None = None, rows: Any = None) -> dict[str, Any]:
        delta = improvement(metric, new, old) if finite(new) and finite(old) else None
        return {"metric": metric, "slice": slice_name, "rows": rows, "challenger": new, "champion": old,
                "delta": delta}

    old_metrics = champion.metrics if champion is not None else {}
    out = [row(m, v, old_metrics.get(m)) for m, v in challenger.metrics.items()]
    for column, values in challenger.slices.items():
        old_values = champion.slices.get(column, {}) if champion is not None else {}
        for key, entry in values.items():
            rows = ((slice_rows or {}).get(column) or {}).get(key, {}).get("rows")
            for metric, value in entry.items():
                if isinstance(value, (int, float)) or value is None:
                    out.append(row(metric, value, (old_values.get(key) or {}).get(metric), f"{column} = {key}", rows))
    return out
