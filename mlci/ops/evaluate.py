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
from mlci.core.gates import slice_key
from mlci.core.progress import Progress
from mlci.core.reports import Report, write_report
from mlci.core.yamlsrc import config_issue
from mlci.errors import DataError
from mlci.ops import metrics
from mlci.ops.registry import (METRICS_FILE, PREDICTIONS_FILE, estimator_name, load_version_model, open_registry,
                               write_model_card)
from mlci.ops.plots import new_figure, to_svg
from mlci.ops.scalars import log_evaluation

if TYPE_CHECKING:
    from mlci.ops.train import Dataset

MISSING_SLICE = "<missing>"
SLICE_PREFIX = "slice:"


def evaluate(*, project: Project, ref: str = "latest", quiet: bool = False) -> Report:
    # Reading data imports pandas and scikit-learn; `mlci gate` (files-only) reads predictions from here
    # and needs neither.
    from mlci.ops.train import configured_metrics, holdout_dataset, project_schema

    started = time.monotonic()
    model, record = load_version_model(project, ref)
    holdout = holdout_dataset(project, project_schema(project))
    task, features = record["task"], record["features"]
    absent = [c for c in features if c not in holdout.frame.columns]
    if absent:
        raise DataError(f"{holdout.lineage['path']}: feature column(s) of model version {record['version']} "
                        f"missing: {', '.join(absent)}")
    preds = predict(model, holdout, features, task)
    overall = metrics.compute(preds)
    names = configured_metrics(project)
    keys = slice_keys(project, holdout)
    slices = slice_metrics(keys, preds, names)
    evaluation = project.config.evaluation
    latency = measure_latency(model, holdout.frame[features], evaluation.latency_rows,
                              budget=evaluation.latency_seconds, quiet=quiet)
    overall.update(dict(zip(metrics.LATENCY_METRICS, (latency["p50_ms"], latency["p95_ms"]))))
    predictions_bytes = predictions_to_bytes(preds, keys)
    result = {"version": record["version"], "task": task, "metrics": overall, "slices": slices,
              "classes": preds.classes, "confusion": confusion_matrix(preds), "latency": latency,
              "holdout": holdout.lineage, "predictions": PREDICTIONS_FILE,
              "predictions_sha256": sha256_bytes(predictions_bytes)}
    metrics_bytes = (json.dumps(_finite(result), indent=2) + "\n").encode()
    _store(project, record["version"], result, metrics_bytes, predictions_bytes)
    log_evaluation(project, record["version"], overall, slices)
    report = Report(kind="evaluate", details={**result, "slice_metrics": names})
    html = render_html(project, report, preds, record)
    write_report(report, project.reports_dir, html=html, duration=time.monotonic() - started)
    atomic_write_bytes(project.reports_dir / METRICS_FILE, metrics_bytes)
    atomic_write_bytes(project.reports_dir / PREDICTIONS_FILE, predictions_bytes)
    report.files.update({"metrics": str(project.reports_dir / METRICS_FILE)})
    return report


def predict(model: Any, data: Dataset, features: list[str], task: str) -> metrics.Predictions:
    try:
        return metrics.predictions_of(model, data.frame[features], data.y, task)
    except LookupError as exc:
        raise DataError(f"{data.lineage['path']}: {exc}", hint="retrain with data that has every class") from None


def slice_keys(project: Project, data: Dataset) -> dict[str, np.ndarray]:
    """Each row's slice value (as text) for every column in evaluation.slices."""
    out = {}
    for i, column in enumerate(project.config.evaluation.slices):
        if column not in data.frame.columns:
            raise config_issue(project.document, f"evaluation.slices.{i}",
                               f"slice column '{column}' is not in the holdout data", "name a column of the schema")
        keys = data.frame[column].map(lambda v: MISSING_SLICE if v is None or v != v else slice_key(v))
        out[column] = keys.to_numpy(dtype=str)
    return out


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
    k = len(preds.classes)
    matrix = np.zeros((k, k), dtype=int)
    np.add.at(matrix, (preds.y.astype(int), preds.pred.astype(int)), 1)
    return matrix.tolist()


def measure_latency(model: Any, frame: Any, rows: int, *, budget: float, quiet: bool = False) -> dict[str, float]:
    """Wall time of predicting one row at a time (what a request to the model server costs), for up
    to ``rows`` rows or ``budget`` seconds, whichever ends first."""
    deadline = time.monotonic() + budget
    timings: list[float] = []
    with Progress("latency", total=min(rows, len(frame)), unit="rows", enabled=not quiet) as progress:
        for i in range(min(rows, len(frame))):
            row = frame.iloc[i:i + 1]
            start = time.perf_counter()
            model.predict(row)
            timings.append((time.perf_counter() - start) * 1000.0)
            progress.advance(1)
            if time.monotonic() > deadline:
                break
    return {"rows": len(timings), "p50_ms": float(np.percentile(timings, 50)),
            "p95_ms": float(np.percentile(timings, 95)),
            "batch_rows_per_s": _batch_rate(model, frame)}


def _batch_rate(model: Any, frame: Any) -> float:
    start = time.perf_counter()
    model.predict(frame)
    return len(frame) / max(time.perf_counter() - start, 1e-9)


def predictions_to_bytes(preds: metrics.Predictions, slices: dict[str, np.ndarray]) -> bytes:
    """Per-row predictions and slice values as plain arrays (an .npz read without pickle)."""
    buffer = io.BytesIO()
    arrays = {**preds.to_arrays(), **{f"{SLICE_PREFIX}{column}": keys for column, keys in slices.items()}}
    np.savez_compressed(buffer, **arrays)
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


def render_html(project: Project, report: Report, preds: metrics.Predictions, record: dict[str, Any]) -> str:
    from mlci.ops.render import render

    details = report.details
    return render("reports/evaluate.html.j2", title=f"Evaluation: {project.config.project} v{record['version']}",
                  details=_finite(details), record=record, estimator=estimator_name(record),
                  plots=plots(preds, details))


def plots(preds: metrics.Predictions, details: dict[str, Any]) -> list[tuple[str, str]]:
    """(caption, inline SVG) pairs: confusion matrix, ROC and PR curves or residuals, slice comparison."""
    out = []
    if preds.task == "regression":
        out += [("Predicted vs actual", _predicted_vs_actual(preds)), ("Residuals", _residuals(preds))]
    else:
        out.append(("Confusion matrix", _confusion_plot(details["confusion"], preds.classes)))
        if preds.proba is not None and preds.proba.shape[1] == 2:
            out += [("ROC curve", _roc_plot(preds)), ("Precision-recall curve", _pr_plot(preds))]
    for column, values in details["slices"].items():
        out.append((f"{details['slice_metrics'][0]} by {column}", _slice_plot(column, values, details)))
    return out


def _confusion_plot(matrix: list[list[int]], classes: list[str]) -> str:
    fig, ax = new_figure(4.2, 3.6)
    data = np.asarray(matrix)
    ax.imshow(data, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=45 if len(classes) > 4 else 0)
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    for (i, j), value in np.ndenumerate(data):
        ax.text(j, i, str(value), ha="center", va="center",
                color="white" if value > data.max() / 2 else "black")
    return to_svg(fig)


def _roc_plot(preds: metrics.Predictions) -> str:
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(preds.y == 1, preds.proba[:, 1])
    fig, ax = new_figure()
    ax.plot(fpr, tpr, label="model")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.legend(loc="lower right")
    return to_svg(fig)


def _pr_plot(preds: metrics.Predictions) -> str:
    from sklearn.metrics import precision_recall_curve

    precision, recall, _ = precision_recall_curve(preds.y == 1, preds.proba[:, 1])
    fig, ax = new_figure()
    ax.plot(recall, precision)
    ax.axhline(float(np.mean(preds.y == 1)), linestyle="--", color="grey", label="base rate")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.legend(loc="upper right")
    return to_svg(fig)


def _predicted_vs_actual(preds: metrics.Predictions) -> str:
    fig, ax = new_figure()
    ax.scatter(preds.y, preds.pred, s=6, alpha=0.4)
    low, high = float(min(preds.y.min(), preds.pred.min())), float(max(preds.y.max(), preds.pred.max()))
    ax.plot([low, high], [low, high], linestyle="--", color="grey")
    ax.set_xlabel("actual")
    ax.set_ylabel("predicted")
    return to_svg(fig)


def _residuals(preds: metrics.Predictions) -> str:
    fig, ax = new_figure()
    ax.hist(preds.y - preds.pred, bins=40)
    ax.set_xlabel("actual - predicted")
    ax.set_ylabel("rows")
    return to_svg(fig)


def _slice_plot(column: str, values: dict[str, Any], details: dict[str, Any]) -> str:
    metric = details["slice_metrics"][0]
    keys = list(values)
    heights = [values[k]["metrics"].get(metric) for k in keys]
    fig, ax = new_figure()
    ax.bar(keys, [h if h is not None else 0.0 for h in heights])
    if sum(len(k) for k in keys) > 30:  # long slice names would overlap
        ax.tick_params(axis="x", labelrotation=30)
    overall = details["metrics"].get(metric)
    if overall is not None:
        ax.axhline(overall, linestyle="--", color="grey", label="overall")
        ax.legend(loc="lower right")
    ax.set_xlabel(column)
    ax.set_ylabel(metric)
    return to_svg(fig)
