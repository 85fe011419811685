"""What ``mlci monitor`` pushes to the Prometheus Pushgateway: the report as gauges (drift scores and
verdicts, prediction drift, data quality, model metrics against evaluation, overall decay), pushed under
the ``mlci_monitor`` job, and the last-success timestamp pushed only after everything else was.
"""

from __future__ import annotations

import os
import time
from typing import Any

from mlci.adapters.pushgateway import Metric, Pushgateway
from mlci.core.config import Project
from mlci.core.records import ModelVersion
from mlci.core.reports import Report
from mlci.errors import MlciError
from mlci.ops.monitor.result import MonitorReport

PUSH_JOB = "mlci_monitor"


def pushgateway_url(explicit: str | None, project: Project) -> str | None:
    return explicit or os.environ.get("MLCI_PUSHGATEWAY") or project.config.monitor.pushgateway


def monitor_metrics(report: Report) -> list[Metric]:
    """The report as Prometheus gauges (names follow the Prometheus naming rules)."""
    metrics = _drift_metrics(report) + _prediction_metrics(report) + _quality_metrics(report) \
        + _performance_metrics(report)
    metrics.append(Metric("mlci_monitor_checks_failed", "1 when any monitor check failed (drift, data quality "
                          "or decay): the run's exit code 1").add(0.0 if report.ok else 1.0))
    return [m for m in metrics if m.samples]


def _drift_metrics(report: Report) -> list[Metric]:
    score = Metric("mlci_drift_score", "Drift score per feature: p-value for ks/chi2, distance otherwise")
    threshold = Metric("mlci_drift_threshold", "Threshold the drift score is compared with")
    detected = Metric("mlci_drift_detected", "1 when the feature drifted")
    for check in report.checks:
        if check.group == "drift" and check.column is not None:  # a drift check names its feature
            feature, method = check.column, check.details["method"]
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


def push_metrics(report: MonitorReport, metrics: list[Metric], project: Project, explicit_url: str | None,
                 record: ModelVersion | None) -> None:
    """Push the run's ``metrics`` (``monitor_metrics(report)``), then (only if that worked) the last-success
    timestamp; the outcome goes into the report."""
    url = pushgateway_url(explicit_url, project)
    if not url:
        report.details["pushgateway"] = None
        return
    # model_version is a label, not part of the group: each push replaces the previous version's samples,
    # so alerts follow the deployed version instead of firing on a retired one's last values.
    grouping = {"job": PUSH_JOB, "project": project.config.project}
    labels = {"model_version": str(record.version) if record else "none"}
    status: dict[str, Any] = {"grouping": grouping, "labels": labels, "pushed": False}
    report.details["pushgateway"] = status
    try:
        gateway = Pushgateway(url)
        status["url"] = gateway.base
        gateway.push(grouping, metrics, labels=labels)
        gateway.push(grouping, [Metric("mlci_monitor_last_success_timestamp_seconds",
                                       "Unix time of the last monitor run that completed and pushed its metrics")
                                .add(time.time())], labels=labels)
        status["pushed"] = True
        status["deleted_groups"] = gateway.delete_groups_with(grouping, "model_version")
    except MlciError as exc:
        status["error"] = exc.message
        report.service_error = exc.message
