"""``mlci gate``: the rules of ``gates:`` against the challenger's holdout metrics and the champion's.

The arithmetic is in ``mlci.core.gates``; this module finds the metrics (registry or files), pairs the
two models' per-row holdout predictions for the bootstrap, and writes gate.{json,junit.xml,html}.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from mlci.adapters.registry_store import ModelRegistry, sha256_bytes
from mlci.core.config import GateRule, Project
from mlci.core.gates import MetricSet, evaluate_gates, slice_key
from mlci.core.reports import Report, write_report
from mlci.core.summary import comparison_rows
from mlci.core.yamlsrc import config_issue
from mlci.errors import DataError, NotFound, UsageError
from mlci.ops import metrics
from mlci.ops.evaluate import predict, predictions_from_bytes, slice_keys, slice_metrics
from mlci.ops.registry import METRICS_FILE, PREDICTIONS_FILE, load_version_model, open_registry
from mlci.ops.train import configured_metrics, holdout_dataset, project_schema


class Evaluated:
    """One model's evaluation: its metrics and, when available, its per-row holdout predictions."""

    def __init__(self, result: dict[str, Any], label: str,
                 load_predictions: Callable[[], tuple[metrics.Predictions, dict[str, np.ndarray]]] | None) -> None:
        self.result = result
        self.metrics = MetricSet.from_dict(result, label)
        self._load = load_predictions
        self._cached: tuple[metrics.Predictions, dict[str, np.ndarray]] | None = None

    @property
    def holdout_id(self) -> tuple[Any, Any]:
        holdout = self.result.get("holdout") or {}
        return holdout.get("sha256"), json.dumps(holdout.get("split"), sort_keys=True)

    def predictions(self) -> tuple[metrics.Predictions, dict[str, np.ndarray]]:
        if self._load is None:
            raise LookupError(f"{self.metrics.label or 'a model'} has no per-row holdout predictions")
        if self._cached is None:
            self._cached = self._load()
        return self._cached


def gate_registry(*, project: Project, ref: str = "latest", champion: str | None = None) -> Report:
    """Challenger ``ref`` against the champion alias (gates.champion) in the project's registry."""
    started = time.monotonic()
    _check_rules(project)
    registry = open_registry(project)
    challenger_record = registry.get(ref)
    challenger = _from_registry(registry, challenger_record)
    champion_version = _champion_version(registry, champion or project.config.gates.champion, explicit=bool(champion))
    notes = []
    rival = None
    if champion_version is not None:
        rival = _from_registry(registry, registry.get(champion_version))
        if rival.holdout_id != challenger.holdout_id:
            rival = _rescore_champion(project, champion_version, challenger)
            notes.append(f"champion v{champion_version} was evaluated on other holdout data; "
                         f"it was re-scored on the challenger's holdout rows")
    return _finish(project, challenger, rival, notes, started)


def gate_files(*, project: Project, metrics_file: Path, baseline_file: Path | None) -> Report:
    """Files-only mode: metrics.json files (with their predictions.npz beside them, if present)."""
    started = time.monotonic()
    _check_rules(project)
    challenger = _from_file(metrics_file)
    rival = _from_file(baseline_file) if baseline_file else None
    return _finish(project, challenger, rival, [], started)


def _finish(project: Project, challenger: Evaluated, champion: Evaluated | None, notes: list[str],
            started: float) -> Report:
    gates = project.config.gates
    bootstrap = _bootstrap(challenger, champion, samples=gates.bootstrap_samples, seed=project.config.model.seed)
    report = evaluate_gates(gates, challenger.metrics, champion.metrics if champion else None,
                            bootstrap=bootstrap if champion else None)
    report.details["notes"] = notes
    report.details["bootstrap_samples"] = gates.bootstrap_samples
    report.details["comparison"] = comparison_rows(challenger.metrics, champion.metrics if champion else None,
                                                   challenger.result.get("slices"))
    from mlci.ops.render import render

    html = render("reports/gate.html.j2", title=f"Gate: {project.config.project}", report=report,
                  ok=report.ok, details=report.details)
    write_report(report, project.reports_dir, html=html, duration=time.monotonic() - started)
    return report


def _bootstrap(challenger: Evaluated, champion: Evaluated | None, *, samples: int, seed: int):
    def differences(rule: GateRule) -> np.ndarray:
        if champion is None or challenger.holdout_id != champion.holdout_id:
            raise LookupError("the two evaluations used different holdout data")
        new, new_slices = challenger.predictions()
        old, _ = champion.predictions()
        if len(new) != len(old) or not np.array_equal(new.y, old.y):
            raise LookupError("the two prediction files do not cover the same holdout rows")
        if rule.slice is not None:
            keys = new_slices.get(rule.slice.column)
            if keys is None:
                raise LookupError(f"no per-row values of slice column '{rule.slice.column}'")
            mask = keys == slice_key(rule.slice.value)
            new, old = new.subset(mask), old.subset(mask)
        return metrics.bootstrap_differences(new, old, rule.metric, samples=samples, seed=seed)
    return differences


def _check_rules(project: Project) -> None:
    task = project.config.model.task
    for i, rule in enumerate(project.config.gates.rules):
        problem = metrics.unsuitable_metric(rule.metric, task)
        if problem and rule.metric not in metrics.LATENCY_METRICS:
            raise config_issue(project.document, f"gates.rules.{i}.metric", problem, None)
        if rule.bootstrap and rule.metric in metrics.LATENCY_METRICS:
            raise config_issue(project.document, f"gates.rules.{i}.bootstrap",
                               "latency has no per-row bootstrap", "drop `bootstrap` for latency rules")


def _champion_version(registry: ModelRegistry, name: str, *, explicit: bool) -> int | None:
    if explicit:
        return registry.resolve(name)
    return registry.alias_of(name)


def _from_registry(registry: ModelRegistry, record: dict[str, Any]) -> Evaluated:
    version = record["version"]
    if METRICS_FILE not in (record.get("artifacts") or {}):
        raise UsageError(f"model version {version} has not been evaluated",
                         hint=f"run `mlci evaluate --model {version}` first")
    result = json.loads(registry.read_artifact(version, METRICS_FILE))

    def load() -> tuple[metrics.Predictions, dict[str, np.ndarray]]:
        data = registry.read_artifact(version, PREDICTIONS_FILE)
        return predictions_from_bytes(record["task"], data, f"model version {version} {PREDICTIONS_FILE}")

    return Evaluated(result, f"v{version}", load if PREDICTIONS_FILE in record["artifacts"] else None)


def _rescore_champion(project: Project, version: int, challenger: Evaluated) -> Evaluated:
    """The champion's metrics and predictions on the challenger's holdout rows (the current holdout
    file, which must still be the one the challenger was evaluated on)."""
    model, record = load_version_model(project, version)
    holdout = holdout_dataset(project, project_schema(project))
    if holdout.lineage.get("sha256") != challenger.holdout_id[0]:
        raise UsageError("the holdout data changed since the challenger was evaluated",
                         hint="run `mlci evaluate` again, then `mlci gate`")
    preds = predict(model, holdout, record["features"], record["task"])
    keys = slice_keys(project, holdout)
    result = {"metrics": metrics.compute(preds), "slices": slice_metrics(keys, preds, configured_metrics(project)),
              "holdout": challenger.result.get("holdout")}
    return Evaluated(result, f"v{version}", lambda: (preds, keys))


def _from_file(path: Path) -> Evaluated:
    try:
        result = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NotFound(f"{path}: no such metrics file", hint="`mlci evaluate` writes reports/metrics.json") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a JSON metrics file ({exc})") from None
    if not isinstance(result, dict):
        raise DataError(f"{path}: expected a JSON object of metrics")
    name = result.get("predictions")
    load = None
    if isinstance(name, str) and "/" not in name and "\\" not in name and (Path(path).parent / name).is_file():
        load = _file_predictions_loader(Path(path).parent / name, result)
    return Evaluated(result, str(path), load)


def _file_predictions_loader(path: Path, result: dict[str, Any]):
    def load() -> tuple[metrics.Predictions, dict[str, np.ndarray]]:
        data = path.read_bytes()
        if result.get("predictions_sha256") != sha256_bytes(data):
            raise LookupError(f"{path} does not match the sha256 in its metrics file")
        return predictions_from_bytes(result.get("task", "binary"), data, str(path))
    return load
