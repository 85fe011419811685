"""TensorBoard scalars of the model's history, written when ``tensorboard:`` in mlci.yaml names a folder:

- ``train``: cross-validation means per model version (step = version), and ``train/v<N>`` each fold;
- ``evaluate``: holdout metrics and per-slice metrics per model version (step = version);
- ``monitor``: every gauge the nightly run pushes to Prometheus (drift scores per feature, data quality,
  performance), with step = the run's Unix time, so the nightly history plots over time.

``tensorboard --logdir <folder>`` shows them; in Jenkins the pipelines archive the folder.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from mlci.adapters.pushgateway import Metric
from mlci.adapters.tensorboard_log import tag_part, write_scalars
from mlci.core.config import Project

if TYPE_CHECKING:
    from mlci.ml.metrics import CvSummary


def log_training(project: Project, version: int, cv: dict[str, CvSummary]) -> None:
    """``cv``: per metric ``{"mean", "std", "folds": [...]}`` as cross-validation reports it."""
    logdir = _logdir(project)
    if logdir is None:
        return
    write_scalars(logdir, "train", [(version, {f"cv/{name}": summary.get("mean") for name, summary in cv.items()})])
    folds = {name: summary.get("folds") or [] for name, summary in cv.items()}
    count = max((len(scores) for scores in folds.values()), default=0)
    write_scalars(logdir, f"train/v{version}",
                  [(fold + 1, {f"cv/{name}": scores[fold] for name, scores in folds.items() if fold < len(scores)})
                   for fold in range(count)])


def log_evaluation(project: Project, version: int, metrics: dict[str, Any],
                   slices: dict[str, dict[str, dict[str, Any]]]) -> None:
    logdir = _logdir(project)
    if logdir is None:
        return
    values = {f"holdout/{name}": value for name, value in metrics.items() if isinstance(value, (int, float))}
    for column, by_value in (slices or {}).items():
        for value, entry in by_value.items():
            for name, number in entry.get("metrics", {}).items():
                if isinstance(number, (int, float)) and not isinstance(number, bool):
                    values[f"slice/{tag_part(column)}_{tag_part(value)}/{name}"] = number
    write_scalars(logdir, "evaluate", [(version, values)])


def log_monitoring(project: Project, metrics: list[Metric], *, now: float | None = None) -> None:
    logdir = _logdir(project)
    if logdir is None:
        return
    now = time.time() if now is None else now
    values = {}
    for metric in metrics:
        for labels, value in metric.samples:
            suffix = "/".join(f"{k}_{tag_part(v)}" for k, v in sorted(labels.items()))
            values[metric.name + (f"/{suffix}" if suffix else "")] = value
    write_scalars(logdir, "monitor", [(int(now), values)], wall_time=now)


def _logdir(project: Project):
    folder = project.config.tensorboard
    return project.path(folder) if folder else None
