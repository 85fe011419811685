"""The server's Prometheus metrics, kept by prometheus_client.

One worker keeps them in memory, in a registry of its own (so several apps in one process, as in tests,
do not mix), with the standard ``process_*`` metrics. Several workers (``serve.workers``) share one
port, and a scrape reaches any one of them: there each worker writes its values to files in
``PROMETHEUS_MULTIPROC_DIR`` (set by ``mlci.serve.runner`` before the workers start) and every scrape
sums all workers' files, so counters never go backwards between scrapes. prometheus_client does not
export ``process_*`` metrics in that mode.

Names follow Prometheus' rules: one ``mlci_`` prefix, base units (seconds), ``_total`` for counters.
"""

from __future__ import annotations

import os
from collections import Counter as Tally
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MULTIPROCESS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
ROWS_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000)
# Regression outputs of unknown scale: symmetric powers of ten cover them well enough for drift alerts.
VALUE_BUCKETS = tuple(sorted({s * 10.0 ** e for e in range(-2, 7) for s in (-1, 1)} | {0.0}))
MODEL_INFO_LABELS = ("data_sha256", "git_commit", "task", "version")

disable_created_metrics()  # the *_created series only add noise for a server's counters


def multiprocess_mode() -> bool:
    return bool(os.environ.get(MULTIPROCESS_DIR_VARIABLE))


class ServerMetrics:
    """Everything ``GET /metrics`` reports."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        if not multiprocess_mode():
            ProcessCollector(registry=self.registry)
        own = self.registry
        self.requests = Counter("mlci_http_requests", "HTTP requests by endpoint and status code.",
                                ("endpoint", "status"), registry=own)
        self.latency = Histogram("mlci_http_request_duration_seconds", "Time to answer an HTTP request.",
                                 ("endpoint",), buckets=LATENCY_BUCKETS, registry=own)
        self.rows = Histogram("mlci_predict_rows", "Rows per accepted /predict request.", buckets=ROWS_BUCKETS,
                              registry=own)
        self.invalid_rows = Counter("mlci_invalid_records", "Records refused by schema validation.", registry=own)
        self.predictions = Counter("mlci_predictions", "Predicted rows by class (classifiers).", ("class",),
                                   registry=own)
        self.prediction_values = Histogram("mlci_prediction_value", "Predicted values (regression).",
                                           buckets=VALUE_BUCKETS, registry=own)
        self.log_dropped = Counter("mlci_prediction_log_dropped", "Predicted rows not logged because the log "
                                   "queue was full.", registry=own)
        self.log_errors = Counter("mlci_prediction_log_errors", "Prediction log writes that failed.", registry=own)
        self.model_info = Gauge("mlci_model_info", "The model version being served (value 1).", MODEL_INFO_LABELS,
                                multiprocess_mode="max", registry=own)
        # A live experiment (mlci.serve.experiment): the guardrails of `mlci experiment conclude` read these.
        self.experiment_batches = Counter("mlci_experiment_batches", "Batches scored during an experiment, by "
                                          "role (champion, challenger).", ("role",), registry=own)
        self.experiment_errors = Counter("mlci_experiment_errors", "Batches a model failed to score during an "
                                         "experiment, by role.", ("role",), registry=own)
        self.experiment_seconds = Histogram("mlci_experiment_scoring_seconds", "Time a model took to score a "
                                            "batch during an experiment, by role.", ("role",),
                                            buckets=LATENCY_BUCKETS, registry=own)
        self.shadow_skipped = Counter("mlci_experiment_shadow_skipped", "Rows the challenger did not score in "
                                      "shadow mode because its queue was full.", registry=own)
        self.classifier: bool | None = None  # known once the model is loaded
        # Labelled children, looked up once rather than per request (labels() takes a lock and
        # validates the labels each time); bounded by the endpoints, status codes and classes.
        self._request_children: dict[tuple[str, int], tuple[Any, Any]] = {}
        self._class_children: dict[str, Any] = {}

    def request_done(self, endpoint: str, status: int, seconds: float) -> None:
        children = self._request_children.get((endpoint, status))
        if children is None:
            children = (self.requests.labels(endpoint, str(status)), self.latency.labels(endpoint))
            self._request_children[endpoint, status] = children
        children[0].inc()
        children[1].observe(seconds)

    def model_loaded(self, *, classifier: bool, info: dict[str, str]) -> None:
        self.classifier = classifier
        self.model_info.labels(*(info.get(name, "") for name in MODEL_INFO_LABELS)).set(1)

    def record_predictions(self, predictions: list) -> None:
        if self.classifier:
            for label, count in Tally(map(str, predictions)).items():
                child = self._class_children.get(label)
                if child is None:
                    child = self._class_children[label] = self.predictions.labels(label)
                child.inc(count)
        else:
            for value in predictions:
                self.prediction_values.observe(float(value))

    def exposition(self) -> bytes:
        if multiprocess_mode():
            merged = CollectorRegistry()
            MultiProcessCollector(merged)
            return generate_latest(merged)
        return generate_latest(self.registry)
