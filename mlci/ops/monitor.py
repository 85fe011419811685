"""``mlci monitor``: drift, data quality and performance of current data against the reference.

Reference: the training data of the deployed model version (its sha256 checked against the lineage),
or a configured file. Current: files (CSV/Parquet, globs allowed) or the model server's prediction logs
over a time window. Both are streamed in batches into column sketches (``mlci.ops.drift``); decisions
come from ``mlci.core.drift``. Every score is recorded, drifted or not. Metrics go to the Pushgateway;
the last-success timestamp only after everything else was pushed.

Files stay Arrow record batches from reader to sketch: pandas is imported only for prediction logs,
labels and the model's predictions. Columns are scored in parallel threads (NumPy sorts and merges
without holding the GIL).
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from mlci.adapters.pushgateway import Metric, Pushgateway
from mlci.core import drift as rules
from mlci.core.config import Project
from mlci.core.reports import Check, Report, write_report
from mlci.errors import MlciError, ServiceError, UsageError
from mlci.ops import drift as stats
from mlci.ops.monitor_checks import (PREDICTION, data_quality, dataset_drift, feature_drift, performance,
                                     prediction_drift)
from mlci.ops.monitor_profile import Profile, load_model_for, profile
from mlci.ops.monitor_sources import (column_kind, current_source_for, deployed_version, join_labels,
                                      monitored_features, reference_source_for, version_schema)

PUSH_JOB = "mlci_monitor"
HISTOGRAM_BINS = 30
TOP_CATEGORIES = 12


class MonitorReport(Report):
    """A monitor report; exit 3 when a service (Pushgateway, prediction logs) failed."""

    service_error: str | None = None

    @property
    def exit_code(self) -> int:
        return 3 if self.service_error else super().exit_code


# -- the use case ---------------------------------------------------------------------------------


def run_monitor(project: Project, *, reference: str | None = None, current: str | None = None,
                since: str | None = None, labels: str | None = None, pushgateway: str | None = None,
                model_version: str | None = None, progress: bool = True, plots: bool = True) -> MonitorReport:
    """Measure drift and performance; write monitor.json/.junit.xml/.html; push metrics if configured."""
    started = time.monotonic()
    stats.preload_scipy()
    settings = project.config.monitor
    record = deployed_version(project, model_version)
    schema = version_schema(project, record)
    features = monitored_features(schema, record, settings)
    report = MonitorReport(kind="monitor")
    report.details.update({"project": project.config.project,
                           "model_version": record.get("version") if record else None})
    model = load_model_for(project, record)

    reference_source = reference_source_for(project, record, reference or settings.reference)
    report.details["reference"] = {"files": [str(p) for p in reference_source.files]}
    try:
        current_source = current_source_for(project, current or settings.current, since or settings.window,
                                            window_name="--since" if since else "monitor.window")
    except ServiceError as exc:
        return _service_failure(project, report, exc, started)
    if labels and not current_source.is_log:
        raise UsageError("--labels joins labels to the server's prediction logs, but the current data are files",
                         hint="a current file carries its labels in the target column; drop --labels")
    report.details["current"] = {"files": [str(p) for p in current_source.files]}
    if current_source.is_log:
        report.details["current"]["since"] = current_source.logs_since.strftime("%Y-%m-%dT%H:%M:%SZ")

    kinds = {name: column_kind(schema.columns[name]) for name in features}
    ref = profile(reference_source, project, schema, kinds, model, record, progress)
    cur = profile(current_source, project, schema, kinds, model, record, progress)
    if current_source.is_log:
        report.details["current"]["skipped_lines"] = current_source.skipped_lines
        if labels or settings.labels:
            cur.labels = [join_labels(project, labels or settings.labels, current_source, schema)]
    if cur.rows == 0:
        exc = ServiceError(f"no current rows in {current_source.label}",
                           hint="the server logged no predictions in the window; widen --since")
        return _service_failure(project, report, exc, started)
    report.details["rows"] = {"reference": ref.rows, "current": cur.rows}

    verdicts = feature_drift(report, ref, cur, kinds, settings)
    dataset_drift(report, verdicts, settings)
    prediction_drift(report, ref, cur, settings)
    data_quality(report, ref, cur, schema, settings)
    performance(report, cur, record, model, settings, project.config.model.metrics)
    report.details["retrain"] = not report.ok
    report.details["retrain_job"] = settings.retrain_job

    push_metrics(report, project, pushgateway, record)
    html = render_html(project, report, ref, cur, kinds if plots else {})
    write_report(report, project.reports_dir, html=html, duration=time.monotonic() - started)
    return report


def _service_failure(project: Project, report: MonitorReport, exc: ServiceError, started: float) -> MonitorReport:
    """A data source failed: record it, write the report anyway, exit 3."""
    report.service_error = exc.message
    report.add(Check("data source", False, exc.message, group="source", details={"hint": exc.hint}))
    write_report(report, project.reports_dir, html=render_html(project, report, None, None, {}),
                 duration=time.monotonic() - started)
    return report


# -- metrics --------------------------------------------------------------------------------------


def pushgateway_url(explicit: str | None, project: Project) -> str | None:
    return explicit or os.environ.get("MLCI_PUSHGATEWAY") or project.config.monitor.pushgateway


def monitor_metrics(report: Report) -> list[Metric]:
    """The report as Prometheus gauges (names follow the Prometheus naming rules)."""
    metrics = _drift_metrics(report) + _prediction_metrics(report) + _quality_metrics(report) \
        + _performance_metrics(report)
    metrics.append(Metric("mlci_monitor_decay_detected", "1 when drift or decay beyond the thresholds was found")
                   .add(0.0 if report.ok else 1.0))
    return [m for m in metrics if m.samples]


def _drift_metrics(report: Report) -> list[Metric]:
    score = Metric("mlci_drift_score", "Drift score per feature: p-value for ks/chi2, distance otherwise")
    threshold = Metric("mlci_drift_threshold", "Threshold the drift score is compared with")
    detected = Metric("mlci_drift_detected", "1 when the feature drifted")
    for check in report.checks:
        if check.group == "drift":
            feature, method = check.name.split(": ", 1)[1], check.details["method"]
            score.add(_number(check.value), feature=feature, method=method)
            threshold.add(_number(check.threshold), feature=feature, method=method)
            detected.add(0.0 if check.passed else 1.0, feature=feature)
    return [score, threshold, detected,
            Metric("mlci_drifted_feature_share", "Share of features that drifted").add(
                report.details.get("drifted_share", 0.0)),
            Metric("mlci_dataset_drift", "1 when the share of drifted features reached the threshold").add(
                0.0 if _passed(report, "dataset drift") else 1.0),
            Metric("mlci_monitor_rows", "Rows compared").add(report.details["rows"]["reference"],
                                                              dataset="reference")
            .add(report.details["rows"]["current"], dataset="current")]


def _prediction_metrics(report: Report) -> list[Metric]:
    prediction = next((c for c in report.checks if c.group == "prediction" and not c.skipped), None)
    if prediction is None:
        return []
    return [Metric("mlci_prediction_drift_score", "Drift score of the model's output").add(
                _number(prediction.value), method=prediction.details["method"]),
            Metric("mlci_prediction_drift_detected", "1 when the model's output drifted").add(
                0.0 if prediction.passed else 1.0)]


def _quality_metrics(report: Report) -> list[Metric]:
    missing = Metric("mlci_data_missing_ratio", "Share of missing values per feature in current data")
    out = Metric("mlci_data_out_of_schema_ratio", "Share of values outside the schema per feature")
    for feature, values in (report.details.get("quality") or {}).items():
        missing.add(values["missing_ratio"], feature=feature)
        out.add(values["out_of_schema_ratio"], feature=feature)
    return [missing, out]


def _performance_metrics(report: Report) -> list[Metric]:
    perf = report.details.get("performance")
    if not perf:
        return []
    current = Metric("mlci_model_metric", "Model metric on labelled current data")
    reference = Metric("mlci_model_metric_reference", "The same metric at evaluation time")
    decayed = Metric("mlci_model_decay_detected", "1 when the metric decayed beyond monitor.max_metric_drop")
    for name, value in perf["current"].items():
        current.add(_number(value), metric=name)
        reference.add(perf["reference"][name], metric=name)
        decayed.add(0.0 if _passed(report, f"performance: {name}") else 1.0, metric=name)
    return [current, reference, decayed]


def _passed(report: Report, name: str) -> bool:
    return next((c.passed for c in report.checks if c.name == name), True)


def _number(value: Any) -> float:
    return float("nan") if value is None else float(value)


def push_metrics(report: MonitorReport, project: Project, explicit_url: str | None,
                 record: dict[str, Any] | None) -> None:
    """Push the run's metrics, then (only if that worked) the last-success timestamp."""
    url = pushgateway_url(explicit_url, project)
    if not url:
        report.details["pushgateway"] = None
        return
    grouping = {"job": PUSH_JOB, "project": project.config.project,
                "model_version": str(record["version"]) if record else "none"}
    status: dict[str, Any] = {"grouping": grouping, "pushed": False}
    report.details["pushgateway"] = status
    try:
        gateway = Pushgateway(url)
        status["url"] = gateway.base
        gateway.push(grouping, monitor_metrics(report))
        gateway.push(grouping, [Metric("mlci_monitor_last_success_timestamp_seconds",
                                       "Unix time of the last monitor run that completed and pushed its metrics")
                                .add(time.time())])
        status["pushed"] = True
    except MlciError as exc:
        status["error"] = exc.message
        report.service_error = exc.message


# -- HTML -----------------------------------------------------------------------------------------


def render_html(project: Project, report: Report, ref: Profile | None, cur: Profile | None,
                kinds: dict[str, rules.Kind]) -> str:
    from mlci.ops.render import render

    plots = {}
    if ref is not None and cur is not None:
        plots = {name: distribution(name, ref.columns[name], cur.columns[name]) for name in kinds}
        if ref.prediction is not None and cur.prediction is not None:
            plots[PREDICTION] = distribution("model output", ref.prediction, cur.prediction)
    checks = {c.name: c for c in report.checks}
    return render("reports/monitor.html.j2", title=f"Monitoring · {project.config.project}", ok=report.ok,
                  report=report, checks=checks, plots=plots, details=report.details,
                  generated=time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime()))


def distribution(title: str, reference: stats.Sketch, current: stats.Sketch) -> dict[str, Any]:
    """Reference vs current shares for the report's SVG plot (drawn by the template): a histogram
    over equal-width bins spanning both samples for numbers, the most frequent categories otherwise."""
    if isinstance(reference, stats.NumericSketch):
        ref, cur = reference.values, current.values
        ends = [v for values in (ref, cur) if values.size for v in (values[0], values[-1])]
        lo, hi = (float(min(ends)), float(max(ends))) if ends else (0.0, 1.0)
        edges = np.linspace(lo, hi if hi > lo else lo + 1, HISTOGRAM_BINS + 1)
        shares = [_histogram(values, edges) for values in (ref, cur)]
        labels = [f"{lo:.4g}", f"{hi:.4g}"]
    else:
        categories, ref_counts, cur_counts = stats.aligned_counts(reference.counts, current.counts)
        top = np.argsort(-(ref_counts / max(ref_counts.sum(), 1) + cur_counts / max(cur_counts.sum(), 1)),
                         kind="stable")[:TOP_CATEGORIES]
        shares = [counts[top] / max(counts.sum(), 1) for counts in (ref_counts, cur_counts)]
        labels = [str(categories[i])[:12] for i in top]
    return {"title": title, "numeric": isinstance(reference, stats.NumericSketch), "labels": labels,
            "reference": shares[0].tolist(), "current": shares[1].tolist(),
            "top": max(max(shares[0], default=0), max(shares[1], default=0), 1e-12)}


def _histogram(sorted_values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Shares of sorted values per bin; the first bin includes its left edge."""
    cuts = np.searchsorted(sorted_values, edges, side="right")
    cuts[0] = np.searchsorted(sorted_values, edges[0], side="left")
    return np.diff(cuts) / max(sorted_values.size, 1)
