"""Prometheus metrics in the text exposition format (0.0.4), written by hand: a few counters and
histograms updated from the event loop only, so they need no locks.

Names follow Prometheus' rules: one ``mlci_`` prefix, base units (seconds), ``_total`` for counters.
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from typing import Iterable

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
ROWS_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000)
# Regression outputs of unknown scale: symmetric powers of ten cover them well enough for drift alerts.
VALUE_BUCKETS = tuple(sorted({s * 10.0 ** e for e in range(-2, 7) for s in (-1, 1)} | {0.0}))


def _escape(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    text = ",".join(f'{k}="{_escape(v)}"' for k, v in pairs)
    return "{" + text + "}" if text else ""


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class Counter:
    def __init__(self, name: str, help_text: str, label_names: tuple[str, ...] = ()) -> None:
        self.name, self.help, self.label_names = name, help_text, label_names
        self.values: dict[tuple[str, ...], float] = defaultdict(float)

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        self.values[labels] += amount

    def value(self, *labels: str) -> float:
        return self.values.get(labels, 0.0)

    def exposition(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} counter"]
        if not self.label_names and not self.values:
            lines.append(f"{self.name} 0")
        for labels, value in sorted(self.values.items()):
            lines.append(f"{self.name}{_labels(zip(self.label_names, labels))} {_number(value)}")
        return lines


class Histogram:
    def __init__(self, name: str, help_text: str, buckets: tuple[float, ...],
                 label_names: tuple[str, ...] = ()) -> None:
        self.name, self.help, self.label_names = name, help_text, label_names
        self.buckets = tuple(buckets)
        self.series: dict[tuple[str, ...], list[float]] = {}  # per bucket counts + [sum, count]

    def observe(self, value: float, *labels: str) -> None:
        counts = self.series.get(labels)
        if counts is None:
            counts = self.series[labels] = [0.0] * (len(self.buckets) + 2)
        index = bisect.bisect_left(self.buckets, value)
        if index < len(self.buckets):
            counts[index] += 1
        counts[-2] += value
        counts[-1] += 1

    def exposition(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        for labels, counts in sorted(self.series.items()):
            base = list(zip(self.label_names, labels))
            running = 0.0
            for bound, count in zip(self.buckets, counts):
                running += count
                lines.append(f"{self.name}_bucket{_labels(base + [('le', _number(bound))])} {_number(running)}")
            lines.append(f"{self.name}_bucket{_labels(base + [('le', '+Inf')])} {_number(counts[-1])}")
            lines.append(f"{self.name}_sum{_labels(base)} {_number(counts[-2])}")
            lines.append(f"{self.name}_count{_labels(base)} {_number(counts[-1])}")
        return lines


class ServerMetrics:
    """Everything ``GET /metrics`` reports."""

    def __init__(self) -> None:
        self.requests = Counter("mlci_http_requests_total", "HTTP requests by endpoint and status code.",
                                ("endpoint", "status"))
        self.latency = Histogram("mlci_http_request_duration_seconds", "Time to answer an HTTP request.",
                                 LATENCY_BUCKETS, ("endpoint",))
        self.rows = Histogram("mlci_predict_rows", "Rows per accepted /predict request.", ROWS_BUCKETS)
        self.invalid_rows = Counter("mlci_invalid_records_total", "Records refused by schema validation.")
        self.classifier: bool | None = None  # known once the model is loaded
        self.predictions = Counter("mlci_predictions_total", "Predicted rows by class.", ("class",))
        self.prediction_values = Histogram("mlci_prediction_value", "Predicted values (regression).",
                                           VALUE_BUCKETS)
        self.log_dropped = Counter("mlci_prediction_log_dropped_total",
                                   "Predicted rows not logged because the log queue was full.")
        self.log_errors = Counter("mlci_prediction_log_errors_total", "Prediction log writes that failed.")
        self.info: dict[str, str] = {}

    def record_predictions(self, predictions: list) -> None:
        if self.classifier:
            for value in predictions:
                self.predictions.inc(str(value))
        else:
            for value in predictions:
                self.prediction_values.observe(float(value))

    def exposition(self) -> str:
        families = [self.requests, self.latency, self.rows, self.invalid_rows, self.log_dropped, self.log_errors]
        if self.classifier is not None:
            families.append(self.predictions if self.classifier else self.prediction_values)
        lines: list[str] = []
        for family in families:
            lines += family.exposition()
        lines += ["# HELP mlci_model_info The model version being served.", "# TYPE mlci_model_info gauge"]
        if self.info:
            lines.append(f"mlci_model_info{_labels(sorted(self.info.items()))} 1")
        return "\n".join(lines) + "\n"
