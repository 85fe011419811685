"""``mlci gate``: the rules of ``gates:`` against the challenger's holdout metrics and the champion's.

The arithmetic is in ``mlci.core.gates``; this module finds the metrics (registry or files), pairs the
two models' per-row holdout predictions for the bootstrap, and writes gate.{json,junit.xml,html}.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mlci.adapters.registry_api import Registry
from mlci.adapters.registry_store import sha256_bytes
from mlci.core.config import GateRule, Project
from mlci.core.gates import MetricSet, comparison_rows, evaluate_gates, slice_key
from mlci.core.records import ModelVersion
from mlci.core.reports import Report, write_report
from mlci.core.yamlsrc import config_issue
from mlci.errors import DataError, NotFound, UsageError
from mlci.ml import metrics
from mlci.ops.model.evaluate import predict, predictions_from_bytes, recorded_task, slice_metrics
from mlci.ops.model.registry import METRICS_FILE, PREDICTIONS_FILE, load_version_model, open_registry

if TYPE_CHECKING:
    from mlci.ops.model.train import Dataset

# Files-only gating (`mlci gate --metrics`, the command developers run most) needs no pandas or
# scikit-learn: the modules that read data (mlci.ops.model.train, mlci.ml.row_identity) are imported by the
# registry-mode functions that re-score rows.

MIN_COMPARISON_ROWS = 30
MIN_ROWS_PER_CLASS = 10


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
    challenger_record = registry.get_version(ref)
    challenger = _from_registry(registry, challenger_record)
    champion_version = _champion_version(registry, champion or project.config.gates.champion, explicit=bool(champion))
    rival, comparison = None, None
    if champion_version is not None:
        champion_record = registry.get_version(champion_version)
        rival = _from_registry(registry, champion_record)
        if rival.holdout_id != challenger.holdout_id or _shared_holdout_was_trained_on(
                project, registry, [champion_record, challenger_record], challenger):
            comparison = _compare_on_unseen_rows(project, registry, challenger_record, challenger,
                                                 champion_record, rival)
    return _finish(project, challenger, rival, started, comparison=comparison)


def gate_files(*, project: Project, metrics_file: Path, baseline_file: Path | None) -> Report:
    """Files-only mode: metrics.json files (with their predictions.npz beside them, if present)."""
    started = time.monotonic()
    _check_rules(project)
    challenger = _from_file(metrics_file)
    rival = _from_file(baseline_file) if baseline_file else None
    if rival is not None and _has_champion_rules(project) and _known_and_different(challenger.holdout_id,
                                                                                  rival.holdout_id):
        raise UsageError(f"{metrics_file} and {baseline_file} were evaluated on different holdout rows: files-only "
                         f"mode cannot re-score the champion on rows neither model trained on",
                         hint="evaluate both versions on one fixed holdout file (data.holdout), or gate in registry "
                              "mode (without --metrics), which re-scores the champion")
    return _finish(project, challenger, rival, started)


def _has_champion_rules(project: Project) -> bool:
    return any(rule.max_drop is not None for rule in project.config.gates.rules)


def _known_and_different(first: tuple[Any, Any], second: tuple[Any, Any]) -> bool:
    return first[0] is not None and second[0] is not None and first != second


class Comparison:
    """Both models on the challenger's holdout rows that neither trained on (the champion re-scored)."""

    def __init__(self, challenger: Evaluated, champion: Evaluated, facts: dict[str, Any]) -> None:
        self.challenger = challenger
        self.champion = champion
        self.facts = facts

    @property
    def summary(self) -> str:
        f = self.facts
        return (f"champion {f['champion']} re-scored: compared on {f['rows']} of {f['holdout_rows']} holdout rows "
                f"that neither model trained on ({f['champion_trained']} were in the champion's training data)")


def _finish(project: Project, challenger: Evaluated, champion: Evaluated | None, started: float, *,
            comparison: Comparison | None = None) -> Report:
    gates = project.config.gates
    if comparison is not None:
        champion = comparison.champion
    paired = comparison.challenger if comparison else challenger
    bootstrap = _bootstrap(paired, champion, samples=gates.bootstrap_samples, seed=project.config.model.seed)
    report = evaluate_gates(gates, challenger.metrics, champion.metrics if champion else None,
                            bootstrap=bootstrap if champion else None, paired=paired.metrics)
    report.details["notes"] = [comparison.summary] if comparison else []
    report.details["comparison"] = comparison.facts if comparison else None
    report.details["bootstrap_samples"] = gates.bootstrap_samples
    if comparison is not None:
        _mark_champion_checks(report, comparison)
    # every metric and slice side by side, on the rows the two models are compared on
    report.details["versus"] = comparison_rows(paired.metrics, champion.metrics if champion else None,
                                               paired.result.get("slices"))
    from mlci.ops.reporting.render import render

    html = render("reports/gate.html.j2", title=f"Gate: {project.config.project}", report=report,
                  ok=report.ok, details=report.details)
    write_report(report, project.reports_dir, html=html, duration=time.monotonic() - started)
    return report


def _mark_champion_checks(report: Report, comparison: Comparison) -> None:
    """Each champion rule says, in its message (JUnit failure text and console) and its details (JUnit
    system-out), on which rows the two models were compared."""
    for check in report.checks:
        if check.group == "champion":
            check.message = f"{check.message} [{comparison.summary}]"
            check.details["compared_rows"] = comparison.facts["rows"]
            check.details["comparison"] = comparison.summary


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


def _champion_version(registry: Registry, name: str, *, explicit: bool) -> int | None:
    if explicit:
        return registry.resolve(name)
    return registry.alias_of(name)


def _from_registry(registry: Registry, record: ModelVersion) -> Evaluated:
    version = record.version
    if METRICS_FILE not in record.artifacts:
        raise UsageError(f"model version {version} has not been evaluated",
                         hint=f"run `mlci evaluate --model {version}` first")
    result = json.loads(registry.read_artifact(version, METRICS_FILE))

    def load() -> tuple[metrics.Predictions, dict[str, np.ndarray]]:
        data = registry.read_artifact(version, PREDICTIONS_FILE)
        return predictions_from_bytes(recorded_task(record), data, f"model version {version} {PREDICTIONS_FILE}")

    return Evaluated(result, f"v{version}", load if PREDICTIONS_FILE in record.artifacts else None)


def minimum_comparison_rows(classes: int) -> int:
    """The fewest rows an honest champion comparison may rest on: 30, and 10 per class."""
    return max(MIN_COMPARISON_ROWS, MIN_ROWS_PER_CLASS * classes)


def _compare_on_unseen_rows(project: Project, registry: Registry, challenger_record: ModelVersion,
                            challenger: Evaluated, champion_record: ModelVersion,
                            champion: Evaluated) -> Comparison:
    """Re-score the champion on the challenger's holdout rows that are outside both models' recorded
    training rows, and take the challenger's own predictions on exactly those rows.

    Re-scoring on every challenger holdout row would count rows the champion trained on whenever the
    split differs (another seed or fraction, a training file that grew): its score would be inflated
    and an equal challenger rejected. Without a record of the champion's training rows, or with too few
    unseen rows left, there is no honest comparison, and the gate refuses (exit 2) rather than guess."""
    from mlci.ops.model.train import holdout_dataset, project_schema

    version = champion_record.version
    trained = _trained_rows(registry, champion_record)
    holdout = holdout_dataset(project, project_schema(project))
    if (holdout.lineage.get("sha256"), json.dumps(holdout.lineage.get("split"), sort_keys=True)) \
            != challenger.holdout_id:
        raise UsageError("the holdout data or split changed since the challenger was evaluated",
                         hint="run `mlci evaluate` again, then `mlci gate`")
    unseen = ~_seen_rows(holdout, champion_record, trained)
    champion_trained = int((~unseen).sum())
    challenger_trained = _recorded_trained_rows(registry, challenger_record)
    if challenger_trained is not None:
        unseen &= ~_seen_rows(holdout, challenger_record, challenger_trained)
    model, _ = load_version_model(project, version)
    old_all = predict(model, holdout, list(champion_record.features), recorded_task(champion_record))
    new_all, keys = _challenger_rows(challenger, old_all, len(holdout.frame))
    rows = int(unseen.sum())
    needed = minimum_comparison_rows(len(old_all.classes or ()))
    if rows < needed:
        raise UsageError(
            f"cannot compare with champion v{version}: only {rows} of the {len(holdout.frame)} holdout rows "
            f"were in neither model's training data (at least {needed} needed)",
            hint="set data.holdout to a fixed holdout file that no model trains on, or re-train the champion "
                 "on the current data and split")
    keys = {column: values[unseen] for column, values in keys.items()}
    compared_on = {"sha256": holdout.lineage.get("sha256"), "split": holdout.lineage.get("split")}
    facts = {"champion": f"v{version}", "rows": rows, "holdout_rows": len(holdout.frame),
             "champion_trained": champion_trained, "minimum_rows": needed, "holdout": compared_on}
    shared = {**compared_on, "compared_rows": rows}
    return Comparison(_view(challenger, new_all.subset(unseen), keys, shared, project),
                      _view(champion, old_all.subset(unseen), keys, shared, project), facts)


def _shared_holdout_was_trained_on(project: Project, registry: Registry, records: list[ModelVersion],
                                   challenger: Evaluated) -> bool:
    """Whether either model, both evaluated on the same fixed holdout file, trained on some of its rows
    (its training file held them). A seeded split of one file keeps holdout and training rows apart, so
    only a fixed holdout file needs the check; a model without a training-row record cannot be checked."""
    sha256, split = challenger.holdout_id
    recorded = [(record, trained) for record in records
                if (trained := _recorded_trained_rows(registry, record)) is not None] if split == "null" else []
    if not recorded:
        return False
    from mlci.ops.model.train import holdout_dataset, project_schema

    holdout = holdout_dataset(project, project_schema(project))
    if holdout.lineage.get("sha256") != sha256:
        raise UsageError("the holdout data changed since the challenger was evaluated",
                         hint="run `mlci evaluate` again, then `mlci gate`")
    return any(bool(_seen_rows(holdout, record, trained).any()) for record, trained in recorded)


def _trained_rows(registry: Registry, record: ModelVersion) -> np.ndarray:
    trained = _recorded_trained_rows(registry, record)
    if trained is None:
        raise UsageError(
            f"cannot compare with champion v{record.version}: it was evaluated on other holdout rows and "
            f"has no record of which rows it trained on (registered by an earlier mlci)",
            hint="re-train the champion with this mlci and promote it, or set data.holdout to a fixed holdout "
                 "file and evaluate both versions on it")
    return trained


def _recorded_trained_rows(registry: Registry, record: ModelVersion) -> np.ndarray | None:
    from mlci.ml import row_identity

    identity = record.train_row_identity
    if not isinstance(identity, dict) or identity.get("scheme") != row_identity.SCHEME \
            or row_identity.TRAIN_ROWS_FILE not in record.artifacts:
        return None
    data = registry.read_artifact(record.version, row_identity.TRAIN_ROWS_FILE)
    return row_identity.from_bytes(data, f"model version {record.version} {row_identity.TRAIN_ROWS_FILE}")


def _seen_rows(holdout: Dataset, record: ModelVersion, trained: np.ndarray) -> np.ndarray:
    from mlci.ml import row_identity

    columns = (record.train_row_identity or {})["columns"]
    absent = [c for c in columns if c not in holdout.frame.columns]
    if absent:
        raise UsageError(f"{holdout.lineage['path']}: column(s) {', '.join(absent)} of model version "
                         f"{record.version}'s training rows are missing, so its unseen rows cannot be found",
                         hint="evaluate both versions on data with the same columns")
    return row_identity.seen_mask(row_identity.row_fingerprints(holdout.frame, columns), trained)


def _challenger_rows(challenger: Evaluated, champion_preds: metrics.Predictions,
                     rows: int) -> tuple[metrics.Predictions, dict[str, np.ndarray]]:
    """The challenger's stored per-row predictions, checked to be the rows the champion was just scored on."""
    try:
        preds, keys = challenger.predictions()
    except LookupError as exc:
        raise UsageError(f"{exc}: the champion cannot be compared on the same rows",
                         hint="run `mlci evaluate` again, then `mlci gate`") from None
    if len(preds) != rows or not np.array_equal(_labels(preds), _labels(champion_preds)):
        raise UsageError(f"the stored predictions of {challenger.metrics.label} do not match the current holdout rows",
                         hint="run `mlci evaluate` again, then `mlci gate`")
    return preds, keys


def _labels(preds: metrics.Predictions) -> np.ndarray:
    if preds.classes is None:
        return np.asarray(preds.y)
    return np.asarray([str(c) for c in preds.classes])[np.asarray(preds.y, dtype=int)]


def _view(model: Evaluated, preds: metrics.Predictions, keys: dict[str, np.ndarray], holdout: dict[str, Any],
          project: Project) -> Evaluated:
    """A model's metrics and predictions on the compared rows; latency is a property of the model, not
    of rows, so it is kept from the model's own evaluation."""
    from mlci.ops.model.train import configured_metrics

    overall = metrics.compute(preds)
    overall.update({name: model.metrics.metrics[name] for name in metrics.LATENCY_METRICS
                    if name in model.metrics.metrics})
    result = {"metrics": overall, "slices": slice_metrics(keys, preds, configured_metrics(project)),
              "holdout": holdout}
    return Evaluated(result, model.metrics.label, lambda: (preds, keys))


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
