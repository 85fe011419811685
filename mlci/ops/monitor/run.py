"""``mlci monitor``: drift, data quality and performance of current data against the reference.

Reference: the training data of the deployed model version (its sha256 checked against the lineage),
or a configured file. Current: files (CSV/Parquet, globs allowed) or the model server's prediction logs
over a time window. Both are streamed in batches into column sketches (``mlci.ml.drift``); decisions
come from ``mlci.core.drift``. Every score is recorded, drifted or not. Metrics go to the Pushgateway;
the last-success timestamp only after everything else was pushed.

Files stay Arrow record batches from reader to sketch: pandas is imported only for prediction logs,
labels and the model's predictions. Columns are scored in parallel threads (NumPy sorts and merges
without holding the GIL).

This module holds the use case, ``run_monitor``; the steps live beside it in ``mlci.ops.monitor``:

- ``sources``: the version to monitor, its schema, reference and current data, prediction logs, labels
- ``profile``: a source streamed into column sketches, with the model's outputs and the labels
- ``checks``: drift per feature, dataset drift, prediction drift, data quality, performance
- ``metrics``: the report as Prometheus gauges, pushed to the Pushgateway
- ``report``: the HTML report and its distribution plots
- ``result``: the monitor's report type
"""

from __future__ import annotations

import time

from mlci.core.config import Project
from mlci.core.reports import Check, write_report
from mlci.errors import ServiceError, UsageError
from mlci.ops.model.scalars import log_monitoring
from mlci.ops.monitor.checks import data_quality, dataset_drift, feature_drift, performance, prediction_drift
from mlci.ops.monitor.metrics import monitor_metrics, push_metrics
from mlci.ops.monitor.profile import load_model_for, profile
from mlci.ops.monitor.report import render_html
from mlci.ops.monitor.result import MonitorReport
from mlci.ops.monitor.sources import (
    column_kind,
    current_source_for,
    deployed_version,
    join_labels,
    monitored_features,
    reference_source_for,
    version_schema,
)

# -- the use case ---------------------------------------------------------------------------------


def run_monitor(project: Project, *, reference: str | None = None, current: str | None = None,
                since: str | None = None, labels: str | None = None, pushgateway: str | None = None,
                model_version: str | None = None, progress: bool = True, plots: bool = True) -> MonitorReport:
    """Measure drift and performance; write monitor.json/.junit.xml/.html; push metrics if configured."""
    started = time.monotonic()
    settings = project.config.monitor
    record = deployed_version(project, model_version)
    schema = version_schema(project, record)
    features = monitored_features(schema, record, settings)
    report = MonitorReport(kind="monitor")
    report.details.update({"project": project.config.project,
                           "model_version": record.version if record else None})
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
    if current_source.logs_since is not None:  # is_log
        report.details["current"]["since"] = current_source.logs_since.strftime("%Y-%m-%dT%H:%M:%SZ")

    kinds = {name: column_kind(schema.columns[name]) for name in features}
    ref = profile(reference_source, project, schema, kinds, model, record, progress)
    cur = profile(current_source, project, schema, kinds, model, record, progress)
    if current_source.is_log:
        report.details["current"]["skipped_lines"] = current_source.skipped_lines
        labels_file = labels or settings.labels
        if labels_file:
            cur.labels = [join_labels(project, labels_file, current_source, schema)]
    if cur.rows == 0:
        no_rows = ServiceError(f"no current rows in {current_source.label}",
                               hint="the server logged no predictions in the window; widen --since")
        return _service_failure(project, report, no_rows, started)
    report.details["rows"] = {"reference": ref.rows, "current": cur.rows}

    verdicts = feature_drift(report, ref, cur, kinds, settings)
    dataset_drift(report, verdicts, settings)
    prediction_drift(report, ref, cur, settings)
    data_quality(report, ref, cur, schema, settings)
    performance(report, cur, record, model, settings, project.config.model.metrics)
    report.details["retrain"] = not report.ok
    report.details["retrain_job"] = settings.retrain_job

    gauges = monitor_metrics(report)  # one derivation for the Pushgateway and TensorBoard
    push_metrics(report, gauges, project, pushgateway, record)
    log_monitoring(project, gauges)
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
