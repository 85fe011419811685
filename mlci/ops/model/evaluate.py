"""``mlci evaluate``: holdout metrics, per-slice metrics, confusion matrix, per-row latency, plots.

Writes ``metrics.json`` and the per-row holdout predictions (``predictions.npz``, plain arrays, loaded
without pickle) into the model version, so ``mlci gate`` can run its paired bootstrap against a later
challenger on the same rows; the same two files go to the reports directory for files-only gating.
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from typing import TYPE_CHECKING, Any

import numpy as np

from mlci.adapters.registry_store import sha256_bytes
from mlci.core.atomic import atomic_write_bytes
from mlci.core.config import Project
from mlci.core.consistency import MAX_SLICE_VALUES
from mlci.core.gates import improvement, slice_key
from mlci.core.progress import Progress
from mlci.core.records import ModelVersion
from mlci.core.reports import Report, write_report
from mlci.core.yamlsrc import config_issue
from mlci.errors import DataError, IntegrityError
from mlci.ml import metrics
from mlci.ops.model.registry import (
    METRICS_FILE,
    PREDICTIONS_FILE,
    estimator_name,
    load_version_model,
    open_registry,
    write_model_card,
)
from mlci.ops.model.scalars import log_evaluation
from mlci.ops.reporting.svgchart import COLOURS, GREY, SCATTER_POINTS, Chart

if TYPE_CHECKING:
    from mlci.ops.model.train import Dataset

MISSING_SLICE = "<missing>"
SLICE_PREFIX = "slice:"


def evaluate(*, project: Project, ref: str = "latest", quiet: bool = False) -> Report:
    # Reading data imports pandas and scikit-learn; `mlci gate` (files-only) reads predictions from here
    # and needs neither.
    from mlci.ops.model.train import configured_metrics, holdout_dataset, project_schema

    started = time.monotonic()
    model, record = load_version_model(project, ref)
    holdout = holdout_dataset(project, project_schema(project))
    task, features = recorded_task(record), list(record.features)
    absent = [c for c in features if c not in holdout.frame.columns]
    if absent:
        raise DataError(f"{holdout.lineage['path']}: feature column(s) of model version {record.version} "
                        f"missing: {', '.join(absent)}")
    timing: dict[str, float] = {}
    preds = predict(model, holdout, features, task, timing)
    overall = metrics.compute(preds)
    names = configured_metrics(project)
    keys = slice_keys(project, holdout)
    slices = slice_metrics(keys, preds, names)
    evaluation = project.config.evaluation
    latency = measure_latency(model, holdout.frame[features], evaluation.latency_rows,
                              budget=evaluation.latency_seconds, quiet=quiet)
    latency["batch_rows_per_s"] = len(preds) / max(timing["predict"], 1e-9)
    overall.update(dict(zip(metrics.LATENCY_METRICS, (latency["p50_ms"], latency["p95_ms"]))))
    predictions_bytes = predictions_to_bytes(preds, keys)
    result = {"version": record.version, "task": task, "metrics": overall, "slices": slices,
              "classes": preds.classes, "confusion": confusion_matrix(preds), "latency": latency,
              "holdout": holdout.lineage, "predictions": PREDICTIONS_FILE,
              "predictions_sha256": sha256_bytes(predictions_bytes)}
    metrics_bytes = (json.dumps(_finite(result), indent=2) + "\n").encode()
    _store(project, record.version, result, metrics_bytes, predictions_bytes)
    log_evaluation(project, record.version, overall, slices)
    report = Report(kind="evaluate", details={**result, "slice_metrics": names})
    importance = (permutation_importance(model, holdout, features, preds, names[0], seed=project.config.model.seed,
                                         quiet=quiet) if project.config.evaluation.importance else None)
    html = render_html(project, report, preds, record, keys, importance)
    write_report(report, project.reports_dir, html=html, duration=time.monotonic() - started)
    atomic_write_bytes(project.reports_dir / METRICS_FILE, metrics_bytes)
    atomic_write_bytes(project.reports_dir / PREDICTIONS_FILE, predictions_bytes)
    report.files.update({"metrics": str(project.reports_dir / METRICS_FILE)})
    return report


def recorded_task(record: ModelVersion) -> str:
    """The task a version was trained for (``mlci train`` records it in every version)."""
    if record.task is None:
        raise IntegrityError(f"model version {record.version} records no task", hint="train it again")
    return record.task


def predict(model: Any, data: Dataset, features: list[str], task: str,
            timing: dict[str, float] | None = None) -> metrics.Predictions:
    try:
        return metrics.predictions_of(model, data.frame[features], data.y, task, timing)
    except LookupError as exc:
        raise DataError(f"{data.lineage['path']}: {exc}", hint="retrain with data that has every class") from None


def slice_keys(project: Project, data: Dataset) -> dict[str, np.ndarray]:
    """Each row's slice value (as text) for every column in evaluation.slices."""
    out = {}
    for i, column in enumerate(project.config.evaluation.slices):
        if column not in data.frame.columns:
            raise config_issue(project.document, f"evaluation.slices.{i}",
                               f"slice column '{column}' is not in the holdout data", "name a column of the schema")
        keys = slice_texts(data.frame[column])
        distinct = len(np.unique(keys))
        if distinct > MAX_SLICE_VALUES:
            raise config_issue(project.document, f"evaluation.slices.{i}", f"slice column '{column}' has "
                               f"{distinct} values in the holdout data; slices are limited to "
                               f"{MAX_SLICE_VALUES}", "slice by a column with few values")
        out[column] = keys
    return out


def slice_texts(column: Any) -> np.ndarray:
    """Each value's ``slice_key`` (``MISSING_SLICE`` for a missing one), worked out once per distinct value.
    In an object column, 1, 1.0 and True are one value to pandas but have different texts: unless every
    value there is text, each is mapped on its own."""
    import pandas as pd

    codes, distinct = pd.factorize(column, use_na_sentinel=True)
    if not len(column) or column.dtype == object and not all(isinstance(v, str) for v in distinct):
        return column.map(lambda v: MISSING_SLICE if v is None or v != v else slice_key(v)).to_numpy(dtype=str)
    missing = [MISSING_SLICE] if (codes == -1).any() else []  # only then: the texts' width is the same
    texts = np.array([slice_key(v) for v in distinct] + missing, dtype=str)
    return texts[codes]  # code -1 (missing) picks the last text


def slice_metrics(keys_by_column: dict[str, np.ndarray], preds: metrics.Predictions,
                  names: list[str]) -> dict[str, dict[str, Any]]:
    """``{column: {value: {"rows": n, "metrics": {...}}}}`` for each column of ``slice_keys``."""
    out: dict[str, dict[str, Any]] = {}
    for column, keys in keys_by_column.items():
        out[column] = {}
        for key in sorted(set(keys)):
            mask = keys == key
            out[column][key] = {"rows": int(mask.sum()), "metrics": metrics.compute(preds.subset(mask), names)}
    return out


def confusion_matrix(preds: metrics.Predictions) -> list[list[int]] | None:
    if preds.task == "regression":
        return None
    k = len(preds.labels())
    matrix = np.zeros((k, k), dtype=int)
    np.add.at(matrix, (preds.y.astype(int), preds.pred.astype(int)), 1)
    return matrix.tolist()


LATENCY_MIN_ROWS = 50  # rows always timed before the percentiles may be taken as settled
LATENCY_CHECK_EVERY = 10
LATENCY_SPREAD = 0.10  # settled: each percentile's 95% confidence bounds within 10% of each other


def measure_latency(model: Any, frame: Any, rows: int, *, budget: float, quiet: bool = False) -> dict[str, float]:
    """Wall time of predicting one row at a time (what a request to the model server costs), for up
    to ``rows`` rows or ``budget`` seconds, or until the p50 and p95 are settled (``latency_settled``),
    whichever comes first. The batch rate is not measured here: ``evaluate`` times the labels of its one
    pass over the holdout (``predictions_of``'s ``timing``)."""
    deadline = time.monotonic() + budget
    timings: list[float] = []
    with Progress("latency", total=min(rows, len(frame)), unit="rows", enabled=not quiet) as progress:
        for i in range(min(rows, len(frame))):
            row = frame.iloc[i:i + 1]
            start = time.perf_counter()
            model.predict(row)
            timings.append((time.perf_counter() - start) * 1000.0)
            progress.advance(1)
            if time.monotonic() > deadline or latency_settled(timings):
                break
    return {"rows": len(timings), "p50_ms": float(np.percentile(timings, 50)),
            "p95_ms": float(np.percentile(timings, 95))}


def latency_settled(timings: list[float]) -> bool:
    """Whether more rows would hardly move the p50 and p95: from LATENCY_MIN_ROWS rows on (checked every
    LATENCY_CHECK_EVERY), each percentile's distribution-free 95% confidence interval, the order statistics
    at ranks n*q -/+ 1.96*sqrt(n*q*(1-q)), has its upper bound within LATENCY_SPREAD of its lower one.
    Steady per-row times settle at 50 rows; a noisy host keeps timing, up to the configured rows."""
    n = len(timings)
    if n < LATENCY_MIN_ROWS or n % LATENCY_CHECK_EVERY:
        return False
    ordered = np.sort(timings)
    for q in (0.5, 0.95):
        half = 1.96 * np.sqrt(n * q * (1 - q))
        low = ordered[max(int(np.floor(n * q - half)) - 1, 0)]  # ranks count from 1
        high = ordered[min(int(np.ceil(n * q + half)) - 1, n - 1)]
        if high > low * (1 + LATENCY_SPREAD):
            return False
    return True


def predictions_to_bytes(preds: metrics.Predictions, slices: dict[str, np.ndarray]) -> bytes:
    """Per-row predictions and slice values as plain arrays (an .npz read without pickle)."""
    buffer = io.BytesIO()
    arrays = {**preds.to_arrays(), **{f"{SLICE_PREFIX}{column}": keys for column, keys in slices.items()}}
    np.savez_compressed(buffer, allow_pickle=False, **arrays)  # plain arrays: read back without pickle
    return buffer.getvalue()


def predictions_from_bytes(task: str, data: bytes, source: str) -> tuple[metrics.Predictions, dict[str, np.ndarray]]:
    """The predictions and slice values written by ``predictions_to_bytes``; ``source`` names the file in errors."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
            loaded = {k: arrays[k] for k in arrays.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{source}: not a readable predictions file ({exc})") from None
    slices = {k[len(SLICE_PREFIX):]: v for k, v in loaded.items() if k.startswith(SLICE_PREFIX)}
    return metrics.Predictions.from_arrays(task, loaded), slices


def _store(project: Project, version: int, result: dict[str, Any], metrics_bytes: bytes,
           predictions_bytes: bytes) -> None:
    registry = open_registry(project)

    def change(record: dict[str, Any]) -> None:
        record["metrics"] = _finite(result["metrics"])
        record.setdefault("data", {})["holdout"] = result["holdout"]

    registry.update(version, change, artifacts={METRICS_FILE: metrics_bytes, PREDICTIONS_FILE: predictions_bytes})
    write_model_card(registry, version)


def _finite(value: Any) -> Any:
    """NaN and infinities as JSON null (an undefined metric, e.g. ROC AUC of a one-class slice)."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def render_html(project: Project, report: Report, preds: metrics.Predictions, record: ModelVersion,
                keys: dict[str, np.ndarray] | None = None, importance: list[dict[str, Any]] | None = None) -> str:
    from mlci.ops.reporting.render import render

    details = report.details
    intervals = slice_intervals(preds, keys or {}, details["slice_metrics"][:1], seed=project.config.model.seed)
    return render("reports/evaluate.html.j2", title=f"Evaluation: {project.config.project} v{record.version}",
                  details=_finite(details), record=record, estimator=estimator_name(record),
                  plots=plots(preds, details, intervals, importance), thresholds=threshold_table(preds),
                  intervals=intervals, confidence=SLICE_CONFIDENCE)


IMPORTANCE_ROWS = 1000
IMPORTANCE_REPEATS = 3


def permutation_importance(model: Any, data: Dataset, features: list[str], preds: metrics.Predictions,
                           metric: str, *, seed: int, quiet: bool = True) -> list[dict[str, Any]]:
    """How much ``metric`` worsens when one input column's values are shuffled across rows (mean and
    spread over a few seeded repeats, on up to IMPORTANCE_ROWS holdout rows), largest drop first. Input
    columns, not encoded features, so the names are the ones in the data. Empty when the metric cannot
    be computed."""
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(data.frame), size=min(IMPORTANCE_ROWS, len(data.frame)), replace=False))
    frame = data.frame[features].iloc[rows].reset_index(drop=True)
    y = data.y.iloc[rows].reset_index(drop=True)
    try:
        baseline = metrics.compute(preds.subset(np.isin(np.arange(len(preds)), rows)), [metric]).get(metric)
    except ValueError:  # e.g. a probability metric of an estimator without predict_proba
        return []
    if baseline is None or not np.isfinite(baseline):
        return []
    out = []
    with Progress("permutation importance", total=len(features), unit="columns", enabled=not quiet) as progress:
        for column in features:
            out.append(_column_importance(model, frame, y, column, preds.task, metric, baseline, rng))
            progress.advance(1)
    return sorted(out, key=lambda entry: -entry["mean"])


def _column_importance(model: Any, frame: Any, y: Any, column: str, task: str, metric: str, baseline: float,
                       rng: np.random.Generator) -> dict[str, Any]:
    drops = []
    for _ in range(IMPORTANCE_REPEATS):
        shuffled = frame.copy()
        shuffled[column] = frame[column].to_numpy()[rng.permutation(len(frame))]
        score = metrics.compute(metrics.predictions_of(model, shuffled, y, task), [metric]).get(metric)
        drops.append(improvement(metric, baseline, score) if score is not None else np.nan)
    return {"feature": column, "mean": float(np.nanmean(drops)), "std": float(np.nanstd(drops))}


SLICE_CONFIDENCE = 0.95
SLICE_RESAMPLES = 300
THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def slice_intervals(preds: metrics.Predictions, keys: dict[str, np.ndarray], names: list[str], *,
                    seed: int) -> dict[str, dict[str, dict[str, tuple[float, float] | None]]]:
    """``{column: {value: {metric: (low, high)}}}``: percentile bootstrap intervals of each slice's metric,
    so a 26-row slice does not look as certain as a 1,167-row one (None where undefined)."""
    rng = np.random.default_rng(seed)
    alpha = (1 - SLICE_CONFIDENCE) / 2
    out: dict[str, dict[str, dict[str, tuple[float, float] | None]]] = {}
    for column, values in keys.items():
        out[column] = {}
        for key in sorted(set(values)):
            subset = preds.subset(values == key)
            blocks = [{name: _resampled(subset, name, weights) for name in names}
                      for weights in metrics.resample_blocks(rng, SLICE_RESAMPLES, len(subset))]
            out[column][key] = {}
            for name in names:
                scores = np.concatenate([block[name] for block in blocks])
                scores = scores[np.isfinite(scores)]
                out[column][key][name] = (None if scores.size < SLICE_RESAMPLES // 2 else
                                          (float(np.quantile(scores, alpha)), float(np.quantile(scores, 1 - alpha))))
    return out


def _resampled(preds: metrics.Predictions, name: str, weights: np.ndarray) -> np.ndarray:
    try:
        return metrics.weighted(preds, name, weights)
    except ValueError:
        return np.array([np.nan])


def threshold_table(preds: metrics.Predictions) -> list[dict[str, Any]]:
    """Binary classifiers: what each decision threshold on P(positive) gives (counts and rates)."""
    if preds.task != "binary" or preds.proba is None:
        return []
    actual = preds.y == 1
    rows = []
    for threshold in THRESHOLDS:
        flagged = preds.proba[:, 1] >= threshold
        tp, fp = int(np.sum(flagged & actual)), int(np.sum(flagged & ~actual))
        fn, tn = int(np.sum(~flagged & actual)), int(np.sum(~flagged & ~actual))
        precision = tp / (tp + fp) if tp + fp else None
        recall = tp / (tp + fn) if tp + fn else None
        f1 = 2 * precision * recall / (precision + recall) if precision and recall else None
        rows.append({"threshold": threshold, "flagged_share": float(flagged.mean()), "precision": precision,
                     "recall": recall, "f1": f1, "tp": tp, "fp": fp, "fn": fn, "tn": tn})
    return rows


def plots(preds: metrics.Predictions, details: dict[str, Any], intervals: dict[str, Any] | None = None,
          importance: list[dict[str, Any]] | None = None) -> list[tuple[str, str]]:
    """(caption, inline SVG) pairs: confusion matrix, ROC/PR/calibration/score distributions or
    predicted-vs-actual and residuals, slice comparison with row counts and intervals."""
    out = []
    if preds.task == "regression":
        out += [("Predicted vs actual", _predicted_vs_actual(preds)),
                ("Residuals vs predicted", _residuals_vs_predicted(preds)), ("Residuals", _residuals(preds))]
    else:
        out.append(("Confusion matrix", _confusion_plot(details["confusion"], preds.labels())))
        if preds.proba is not None and preds.proba.shape[1] == 2:
            out += [("ROC curve", _roc_plot(preds)), ("Precision-recall curve", _pr_plot(preds)),
                    ("Calibration", _calibration_plot(preds)),
                    ("Score distribution per class", _score_distribution(preds))]
        elif preds.proba is not None:
            out.append(("Probability of the true class, per class", _true_class_probability(preds)))
    if importance:
        out.append((f"Permutation importance: drop in {details['slice_metrics'][0]} when a column is shuffled",
                    _importance_plot(importance, details["slice_metrics"][0])))
    for column, values in details["slices"].items():
        out.append((f"{details['slice_metrics'][0]} by {column} ({SLICE_CONFIDENCE:.0%} bootstrap intervals)",
                    _slice_plot(column, values, details, (intervals or {}).get(column, {}))))
    return out


def _confusion_plot(matrix: list[list[int]], classes: list[str]) -> str:
    chart = Chart(420, 360, x_label="predicted", y_label="actual", x_categories=[str(c) for c in classes],
                  y_categories=[str(c) for c in classes], rotate_x=len(classes) > 4)
    chart.y_range = (len(classes) - 0.5, -0.5)  # the first class at the top
    chart.cells(matrix)
    return chart.svg()


def _roc_plot(preds: metrics.Predictions) -> str:
    from sklearn.metrics import roc_auc_score, roc_curve

    positive = preds.probabilities()[:, 1]
    fpr, tpr, _ = roc_curve(preds.y == 1, positive)
    chart = Chart(x_label="false positive rate", y_label="true positive rate", x_range=(-0.05, 1.05),
                  y_range=(-0.05, 1.05))
    chart.line(fpr, tpr, label=f"model (AUC {roc_auc_score(preds.y == 1, positive):.3f})")
    chart.line([0, 1], [0, 1], dashed=True, colour=GREY, label="chance (AUC 0.5)")
    return chart.svg("lower right")


def _pr_plot(preds: metrics.Predictions) -> str:
    from sklearn.metrics import average_precision_score, precision_recall_curve

    positive = preds.probabilities()[:, 1]
    precision, recall, _ = precision_recall_curve(preds.y == 1, positive)
    base = float(np.mean(preds.y == 1))
    chart = Chart(x_label="recall", y_label="precision", x_range=(-0.05, 1.05), y_range=(-0.05, 1.05))
    chart.line(recall, precision, label=f"model (AP {average_precision_score(preds.y == 1, positive):.3f})")
    chart.hline(base, label=f"base rate ({base:.3f})")
    return chart.svg("upper right")


def _calibration_plot(preds: metrics.Predictions) -> str:
    from sklearn.calibration import calibration_curve

    observed, predicted = calibration_curve(preds.y == 1, preds.probabilities()[:, 1], n_bins=10, strategy="quantile")
    chart = Chart(x_label="mean predicted probability", y_label="observed share of positives",
                  x_range=(-0.05, 1.05), y_range=(-0.05, 1.05))
    chart.line([0, 1], [0, 1], dashed=True, colour=GREY, label="perfectly calibrated")
    chart.line(predicted, observed, marker=True, label="model (deciles of the score)")
    return chart.svg("upper left")


def _histogram(chart: Chart, values: np.ndarray, bins: np.ndarray, *, colour: str, label: str,
               density: bool = False, opacity: float = 1.0, outline: bool = False) -> None:
    counts, edges = np.histogram(values, bins=bins, density=density and values.size > 0)
    chart.bars(edges[:-1], edges[1:], counts, colour=colour, opacity=opacity, outline=outline, label=label)


def _score_distribution(preds: metrics.Predictions) -> str:
    proba, classes = preds.probabilities(), preds.labels()
    chart = Chart(x_label=f"predicted probability of {classes[1]}", y_label="density")
    for index, name in enumerate(classes):
        scores = proba[preds.y == index, 1]
        _histogram(chart, scores, np.linspace(0, 1, 31), colour=COLOURS[index % len(COLOURS)], density=True,
                   opacity=0.55, label=f"actual {name} ({scores.size:,} rows)")
    return chart.svg("upper center")


def _true_class_probability(preds: metrics.Predictions) -> str:
    proba = preds.probabilities()
    chart = Chart(x_label="predicted probability of the actual class", y_label="density")
    for index, name in enumerate(preds.labels()):
        rows = preds.y == index
        _histogram(chart, proba[rows, index], np.linspace(0, 1, 21), colour=COLOURS[index % len(COLOURS)],
                   density=True, outline=True, label=f"{name} ({int(rows.sum()):,} rows)")
    return chart.svg("upper left")


def _sampled(preds: metrics.Predictions) -> tuple[np.ndarray, str]:
    """Up to SCATTER_POINTS rows (seeded), and a note for the axis label when that is not all of them."""
    if len(preds) <= SCATTER_POINTS:
        return np.arange(len(preds)), ""
    rows = np.sort(np.random.default_rng(0).choice(len(preds), SCATTER_POINTS, replace=False))
    return rows, f" ({SCATTER_POINTS:,} of {len(preds):,} rows)"


def _predicted_vs_actual(preds: metrics.Predictions) -> str:
    rows, note = _sampled(preds)
    chart = Chart(x_label=f"actual{note}", y_label="predicted")
    chart.scatter(preds.y[rows], preds.pred[rows])
    low, high = float(min(preds.y.min(), preds.pred.min())), float(max(preds.y.max(), preds.pred.max()))
    chart.line([low, high], [low, high], dashed=True, colour=GREY)
    return chart.svg()


def _importance_plot(importance: list[dict[str, Any]], metric: str) -> str:
    shown = importance[:15][::-1]  # largest at the top
    chart = Chart(450, int(max(240, 28 * len(shown) + 100)), y_categories=[e["feature"] for e in shown],
                  x_label=f"drop in {metric} (mean ± std over {IMPORTANCE_REPEATS} shuffles)")
    chart.category_bars([e["mean"] for e in shown], errors=([e["std"] for e in shown], [e["std"] for e in shown]))
    chart.vline(0)
    return chart.svg()


def _residuals_vs_predicted(preds: metrics.Predictions) -> str:
    rows, note = _sampled(preds)
    chart = Chart(x_label=f"predicted{note}", y_label="actual - predicted")
    chart.scatter(preds.pred[rows], preds.y[rows] - preds.pred[rows])
    chart.hline(0)
    return chart.svg()


def _residuals(preds: metrics.Predictions) -> str:
    chart = Chart(x_label="actual - predicted", y_label="rows")
    residuals = preds.y - preds.pred
    _histogram(chart, residuals, np.histogram_bin_edges(residuals, bins=40), colour=COLOURS[0], label="")
    return chart.svg()


def _slice_plot(column: str, values: dict[str, Any], details: dict[str, Any],
                intervals: dict[str, dict[str, tuple[float, float] | None]]) -> str:
    metric = details["slice_metrics"][0]
    keys = list(values)
    heights = [values[k]["metrics"].get(metric) for k in keys]
    heights = [h if h is not None else 0.0 for h in heights]
    spans = [(intervals.get(k) or {}).get(metric) for k in keys]
    below = [max(h - span[0], 0.0) if span else 0.0 for h, span in zip(heights, spans)]
    above = [max(span[1] - h, 0.0) if span else 0.0 for h, span in zip(heights, spans)]
    chart = Chart(x_label=column, y_label=metric, x_categories=keys,
                  rotate_x=sum(len(k) for k in keys) > 30)  # long slice names would overlap
    chart.category_bars(heights, errors=(below, above), inside=[f"n={values[k]['rows']:,}" for k in keys])
    overall = details["metrics"].get(metric)
    if overall is not None:
        chart.hline(overall, label=f"overall ({overall:.3g})")
    return chart.svg("lower right")
