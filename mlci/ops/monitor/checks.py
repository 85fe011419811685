"""The checks of ``mlci monitor``, each adding ``Check``s to the report from a reference and a current
``Profile``: drift per feature (scored in parallel threads; NumPy sorts and merges without holding the
GIL), dataset drift (the share of drifted features), prediction drift (the model's output), data quality
(missing and out-of-schema values) and performance (metrics on labelled current rows against the
version's evaluation metrics).

Scores come from ``mlci.ml.drift``; the decisions (method, threshold, correction) from ``mlci.core.drift``.
Every score is recorded, drifted or not.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from mlci.core import drift as rules
from mlci.core.config import MonitorSection
from mlci.core.dataschema import Column, DataSchema
from mlci.core.records import ModelVersion
from mlci.core.reports import Check, Report
from mlci.errors import ConfigError
from mlci.ml import drift as stats
from mlci.ml.numpy_rules import outside_counts, outside_numbers
from mlci.ml.schema_rules import ColumnRules, compile_column
from mlci.ops.monitor.profile import Profile
from mlci.ops.monitor.sources import column_settings

PREDICTION = "prediction"


def plan_for(column: str, kind: rules.Kind, settings: MonitorSection, smaller_sample: int) -> rules.Plan:
    override = column_settings(settings, column)
    configured = override.method or _default_method(settings, kind)
    try:
        method = rules.choose_method(kind, configured, smaller_sample)
    except ValueError as exc:
        raise ConfigError(f"monitor.columns.{column}.method: {exc}") from None
    threshold = rules.threshold_for(method, p_value=settings.p_value, distances=_distance_thresholds(settings),
                                    override=override.threshold)
    return rules.Plan(column, kind, method, threshold)


def _default_method(settings: MonitorSection, kind: rules.Kind) -> str:
    return settings.numeric_method if kind == "numeric" else settings.categorical_method


def _distance_thresholds(settings: MonitorSection) -> dict[str, float]:
    return {"wasserstein": settings.wasserstein_threshold, "jensenshannon": settings.jensenshannon_threshold,
            "psi": settings.psi_threshold}


def feature_drift(report: Report, ref: Profile, cur: Profile, kinds: dict[str, rules.Kind],
                  settings: MonitorSection) -> list[rules.Verdict]:
    plans = [plan_for(name, kind, settings, min(ref.columns[name].count, cur.columns[name].count))
             for name, kind in kinds.items()]
    with ThreadPoolExecutor(max_workers=min(len(plans), os.cpu_count() or 1) or 1) as pool:
        results = pool.map(lambda p: stats.score(p.method, ref.columns[p.column], cur.columns[p.column]), plans)
        scores, extra = {}, {}
        for plan, (value, details) in zip(plans, results):
            scores[plan.column], extra[plan.column] = value, details
    for plan in plans:
        reference, current = ref.columns[plan.column], cur.columns[plan.column]
        if isinstance(reference, stats.CategoricalSketch) and isinstance(current, stats.CategoricalSketch):
            new = stats.new_categories(reference.counts, current.counts)
            if new:
                extra[plan.column]["new_categories"] = dict(sorted(new.items(), key=lambda kv: -kv[1])[:20])
    verdicts = rules.decide(plans, scores, settings.correction)
    for plan, verdict in zip(plans, verdicts):
        report.add(_drift_check(plan, verdict, extra[plan.column], settings.correction))
    return verdicts


def _drift_check(plan: rules.Plan, verdict: rules.Verdict, extra: dict, correction: str) -> Check:
    comparison = "<" if plan.uses_p_value else ">="
    label = "p" if plan.uses_p_value else plan.method
    if plan.uses_p_value and correction != "none":
        label = f"adjusted p ({correction})"
    state = "drift" if verdict.drifted else "no drift"
    message = f"{state}: {plan.method} {label} {_fmt(verdict.decided_on)}" \
              f" ({'' if verdict.drifted else 'not '}{comparison} {_fmt(plan.threshold)})"
    if not math.isfinite(verdict.score):
        message = f"not tested: no values on one side ({plan.method})"
    if extra.get("new_categories"):
        message += f"; new categories: {', '.join(list(extra['new_categories'])[:5])}"
    details = {"kind": plan.kind, "method": plan.method, "score": verdict.score, "decided_on": verdict.decided_on,
               **extra}
    return Check(f"drift: {plan.column}", not verdict.drifted, message, severity="warn", value=verdict.decided_on,
                 threshold=plan.threshold, group="drift", details=details, column=plan.column, rule=plan.method)


def dataset_drift(report: Report, verdicts: list[rules.Verdict], settings: MonitorSection) -> None:
    share = rules.drifted_share(verdicts)
    drifted = [v.column for v in verdicts if v.drifted]
    flagged = rules.dataset_drifted(share, settings.drift_share)
    report.details["drifted_features"] = drifted
    report.details["drifted_share"] = share
    message = f"{len(drifted)} of {len(verdicts)} features drifted" + (f": {', '.join(drifted)}" if drifted else "")
    report.add(Check("dataset drift", not flagged, message, value=share, threshold=settings.drift_share,
                     group="dataset"))


def prediction_drift(report: Report, ref: Profile, cur: Profile, settings: MonitorSection) -> None:
    if not settings.prediction_drift:
        return
    if ref.prediction is None or cur.prediction is None:
        report.add(Check("prediction drift", True, "skipped: no model version to predict with", group="prediction",
                         skipped=True))
        return
    kind: rules.Kind = "numeric" if isinstance(ref.prediction, stats.NumericSketch) else "categorical"
    method = rules.choose_method(kind, _default_method(settings, kind),
                                 min(ref.prediction.count, cur.prediction.count))
    plan = rules.Plan(PREDICTION, kind, method, rules.threshold_for(method, p_value=settings.p_value,
                                                                     distances=_distance_thresholds(settings)))
    value, extra = stats.score(method, ref.prediction, cur.prediction)
    verdict = rules.decide([plan], {PREDICTION: value})[0]
    check = _drift_check(plan, verdict, extra, "none")
    check.name, check.group, check.severity = "prediction drift", "prediction", "fail"
    report.add(check)


def out_of_schema(sketch: stats.Sketch, rules: ColumnRules | Column) -> int:
    """How many values break the schema's value rules (missing ones do not count), read off the finished
    sketch by the compiled rules' NumPy evaluator: category counts, or the kept numbers (datetimes as
    seconds since 1970 UTC), scaled up from the sample to every value seen."""
    if isinstance(rules, Column):
        rules = compile_column("column", rules)
    if isinstance(sketch, stats.CategoricalSketch):
        return outside_counts(rules, sketch.counts)
    values = sketch.raw
    bad = int(np.count_nonzero(outside_numbers(rules, values)))
    return round(bad * sketch.seen / values.size) if values.size else 0


def data_quality(report: Report, ref: Profile, cur: Profile, schema: DataSchema, settings: MonitorSection) -> None:
    quality = {}
    compiled = {name: compile_column(name, schema.columns[name]) for name in cur.columns}
    for name, sketch in cur.columns.items():
        ref_missing = ref.columns[name].missing / max(ref.rows, 1)
        cur_missing = sketch.missing / max(cur.rows, 1)
        out = out_of_schema(sketch, compiled[name]) / max(cur.rows, 1)
        quality[name] = {"missing_ratio": cur_missing, "reference_missing_ratio": ref_missing,
                         "out_of_schema_ratio": out}
        too_many_missing = rules.quality_excess(cur_missing, ref_missing, settings.max_missing_increase)
        report.add(Check(f"missing: {name}", not too_many_missing,
                         f"{cur_missing:.2%} missing (reference {ref_missing:.2%})", severity="warn",
                         value=cur_missing, threshold=ref_missing + settings.max_missing_increase, group="quality",
                         column=name, rule="missing"))
        report.add(Check(f"out of schema: {name}", out <= settings.max_out_of_schema,
                         f"{out:.2%} of values outside the schema", severity="warn", value=out,
                         threshold=settings.max_out_of_schema, group="quality", column=name, rule="out of schema"))
    report.details["quality"] = quality


def performance(report: Report, cur: Profile, record: ModelVersion | None, model: Any,
                settings: MonitorSection, wanted: list[str]) -> None:
    """Metrics on labelled current rows against the version's evaluation metrics."""
    reference = _evaluation_metrics(record)
    if record is None or model is None or not cur.labels or not cur.predicted or not reference:
        report.details["performance"] = None
        return
    import pandas as pd

    from mlci.ml.metrics import available, compute, metrics_for_task, wanted_metrics

    y = np.concatenate(cur.labels)
    known = ~pd.isna(y)
    task = record.task or "binary"
    names = [m for m in wanted_metrics(wanted, task) if m in reference and m in metrics_for_task(task)]
    if not known.any() or not names:
        report.details["performance"] = None
        return
    preds = _labelled_predictions(task, model, y[known], np.concatenate(cur.predicted)[known],
                                  np.concatenate(cur.probabilities)[known] if cur.probabilities else None)
    current = compute(preds, [n for n in names if n in available(preds)])
    report.details["performance"] = {"rows": int(known.sum()), "current": current, "reference": reference}
    for name, value in current.items():
        decay, too_much = rules.metric_decay(name, reference[name], value, settings.max_metric_drop)
        report.add(Check(f"performance: {name}", not too_much,
                         f"{name} {_fmt(value)} vs {_fmt(reference[name])} at evaluation (decay {_fmt(decay)})",
                         value=value, threshold=settings.max_metric_drop, group="performance",
                         details={"reference": reference[name], "decay": decay}))


def _labelled_predictions(task: str, model: Any, y: np.ndarray, predicted: np.ndarray,
                          probabilities: np.ndarray | None):
    """The labelled rows as metrics' ``Predictions``; for classes, labels and predictions become class
    indices, and rows whose label the model never saw are left out."""
    from mlci.ml.metrics import Predictions

    if task == "regression":
        return Predictions(task, y.astype(float), predicted.astype(float))
    classes = [str(c) for c in model.classes_]
    index = {c: i for i, c in enumerate(classes)}
    labels = np.array([index.get(stats.category_text(v), -1) for v in y])
    keep = labels >= 0
    predicted_index = np.array([index.get(stats.category_text(v), -1) for v in predicted[keep]])
    return Predictions(task, labels[keep], predicted_index,
                       None if probabilities is None else probabilities[keep], classes)


def _evaluation_metrics(record: ModelVersion | None) -> dict[str, float]:
    """The version's holdout metrics; records may nest them under ``holdout`` or keep them flat."""
    metrics: dict[str, Any] = record.metrics if record else {}
    if isinstance(metrics.get("holdout"), dict):
        metrics = metrics["holdout"]
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _fmt(value: float) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.4g}"
