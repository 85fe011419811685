"""``mlci train``: fit the configured estimator with schema-derived preprocessing, cross-validate,
register a model version with its lineage and a model card."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.model_selection import KFold, StratifiedKFold, train_test_split

from mlci.adapters.model_files import dump_model, untrusted_types
from mlci.adapters.registry_store import sha256_bytes
from mlci.core.config import Project
from mlci.core.dataschema import DataSchema, load_schema, schema_to_dict
from mlci.core.progress import Heartbeat, Progress
from mlci.core.records import ModelVersion
from mlci.core.yamlsrc import config_issue
from mlci.errors import DataError, IntegrityError
from mlci.ml import metrics, row_identity
from mlci.ml.features import build_pipeline, feature_columns, make_estimator, make_steps, parameter_errors_located
from mlci.ml.metrics import CvSummary
from mlci.ml.tabular import read_table
from mlci.ops.model import lineage
from mlci.ops.model.registry import MODEL_FILE, open_registry, reference_artifact, write_model_card
from mlci.ops.model.scalars import log_training


@dataclass
class Dataset:
    """Rows for fitting or scoring, with the lineage of the file they came from."""

    frame: pd.DataFrame
    y: pd.Series
    lineage: dict[str, Any]


@dataclass
class TrainResult:
    version: int
    record: dict[str, Any]
    seconds: float
    cv: dict[str, CvSummary] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "seconds": round(self.seconds, 3), "cv": self.cv,
                "estimator": self.record["estimator"], "data": self.record["data"],
                "artifacts": self.record["artifacts"]}


def project_schema(project: Project) -> DataSchema:
    path = project.path(project.config.data.schema)
    if not path.exists():
        raise config_issue(project.document, "data.schema", f"schema file {path.name} does not exist",
                           "write one with `mlci schema infer DATA --target COLUMN -o SCHEMA`")
    schema = load_schema(path, display_name=str(Path(project.config.data.schema)))
    schema_target(project, schema)
    return schema


def schema_target(project: Project, schema: DataSchema) -> str:
    """The column the model learns; a schema without one is a DataError."""
    if not schema.target:
        raise DataError(f"{project.config.data.schema}: no `target` column is set",
                        hint="add `target: <column>` to the schema, or regenerate it with "
                             "`mlci schema infer DATA --target COLUMN -o schema.yaml --force`")
    return schema.target


def train_and_holdout(project: Project, schema: DataSchema) -> tuple[Dataset, Dataset]:
    """The training rows and the holdout rows: the `holdout` file, or a seeded split of `train`."""
    data = project.config.data
    train_path = project.path(data.train)
    train = _read(project, train_path, data.train, schema)
    if data.holdout:
        holdout_path = project.path(data.holdout)
        return train, _read(project, holdout_path, data.holdout, schema)
    stratify = train.y if project.config.model.task != "regression" else None
    fit_idx, hold_idx = train_test_split(np.arange(len(train.frame)), test_size=data.holdout_fraction,
                                         random_state=project.config.model.seed, stratify=stratify)
    split = {"fraction": data.holdout_fraction, "seed": project.config.model.seed}
    return (_subset(train, fit_idx, {**train.lineage, "split": {**split, "part": "train"}}),
            _subset(train, hold_idx, {**train.lineage, "split": {**split, "part": "holdout"}}))


def holdout_dataset(project: Project, schema: DataSchema) -> Dataset:
    """The evaluation rows alone (the same rows ``train_and_holdout`` holds out)."""
    data = project.config.data
    if data.holdout:
        return _read(project, project.path(data.holdout), data.holdout, schema)
    return train_and_holdout(project, schema)[1]


def _read(project: Project, path: Path, display: str, schema: DataSchema) -> Dataset:
    frame = read_table(path, csv=project.config.data.csv, schema=schema)
    target = schema.target
    if target not in frame.columns:
        raise DataError(f"{display}: target column '{target}' is missing",
                        hint=f"columns are: {', '.join(map(str, frame.columns[:12]))}")
    missing = int(frame[target].isna().sum())
    if missing:
        raise DataError(f"{display}: {missing} row(s) have no value in target column '{target}'",
                        hint="drop or label them; `mlci validate` lists them")
    absent = [c for c in feature_columns(schema, project.config.model.datetime_parts) if c not in frame.columns]
    if absent:
        raise DataError(f"{display}: feature column(s) missing: {', '.join(absent)}",
                        hint="the data must have every feature column of the schema")
    info = {"path": display, "sha256": lineage.sha256_file(path), "rows": len(frame)}
    return Dataset(frame, frame[target], info)


def _subset(data: Dataset, index: np.ndarray, info: dict[str, Any]) -> Dataset:
    frame = data.frame.iloc[index].reset_index(drop=True)
    return Dataset(frame, frame[data.y.name], {**info, "rows": len(frame)})


def configured_metrics(project: Project) -> list[str]:
    model = project.config.model
    names = metrics.wanted_metrics(model.metrics, model.task)
    for i, name in enumerate(names):
        problem = metrics.unsuitable_metric(name, model.task)
        if problem:
            raise config_issue(project.document, f"model.metrics.{i}", problem, None)
    return names


def train(*, project: Project, quiet: bool = False) -> TrainResult:
    with parameter_errors_located(project.config.model, project.document):
        return _train(project=project, quiet=quiet)


def _train(*, project: Project, quiet: bool) -> TrainResult:
    started = time.monotonic()
    model_cfg = project.config.model
    schema = project_schema(project)
    target = schema_target(project, schema)
    names = configured_metrics(project)
    estimator = make_estimator(model_cfg.estimator, model_cfg.params, task=model_cfg.task, seed=model_cfg.seed,
                               document=project.document)
    steps = make_steps(model_cfg.steps, seed=model_cfg.seed, document=project.document)
    pipeline = build_pipeline(schema, estimator=estimator, steps=steps, scale_numeric=model_cfg.scale_numeric,
                              datetime_parts=model_cfg.datetime_parts)
    fit_data, holdout = train_and_holdout(project, schema)
    _check_task_fits_target(project, fit_data)
    columns = feature_columns(schema, model_cfg.datetime_parts)
    with ThreadPoolExecutor(1, thread_name_prefix="mlci-train-rows") as background:
        # The fingerprints need only the rows: they are written while scikit-learn fits, whose numeric
        # work releases the GIL (on a machine with a spare core they cost almost nothing).
        fingerprints = background.submit(training_rows, fit_data, columns, target)
        cv = cross_validate(pipeline, fit_data, columns, names, task=model_cfg.task, folds=model_cfg.cv_folds,
                            seed=model_cfg.seed, quiet=quiet)
        with Heartbeat(f"final fit on {len(fit_data.frame):,} rows", enabled=not quiet):
            fitted = clone(pipeline).fit(fit_data.frame[columns], fit_data.y)
    model_bytes = dump_model(fitted)
    refused = untrusted_types(model_bytes)
    if refused:
        raise IntegrityError(f"the trained model contains types outside the trusted list: {', '.join(refused[:5])}",
                             hint="use scikit-learn estimators; the registry was not changed")
    record = _record(project, schema, fitted, columns, fit_data, holdout, cv)
    trained_rows = fingerprints.result()
    record["data"]["train"]["row_identity"] = {"scheme": row_identity.SCHEME,
                                               "columns": row_identity.identity_columns(columns, target),
                                               "distinct_rows": int(trained_rows.size),
                                               "file": row_identity.TRAIN_ROWS_FILE}
    registry = open_registry(project)
    version = ModelVersion.from_dict(registry.register(record, {
        MODEL_FILE: model_bytes, row_identity.TRAIN_ROWS_FILE: row_identity.to_bytes(trained_rows),
        **reference_artifact(project)})).version
    record = write_model_card(registry, version)
    log_training(project, version, cv)
    return TrainResult(version, record, time.monotonic() - started, cv)


def training_rows(fit_data: Dataset, features: list[str], target: str) -> np.ndarray:
    """The fingerprint set of the rows the model is fitted on, so a later gate can tell which holdout
    rows this version never saw (see ``mlci.ml.row_identity``)."""
    return row_identity.fingerprint_set(fit_data.frame, row_identity.identity_columns(features, target))


def _check_task_fits_target(project: Project, data: Dataset) -> None:
    task = project.config.model.task
    distinct = data.y.nunique()
    if task == "binary" and distinct != 2:
        raise DataError(f"model.task is binary but target '{data.y.name}' has {distinct} distinct value(s)",
                        hint="use task: multiclass" if distinct > 2 else "the training data needs both classes")
    if task == "multiclass" and distinct < 2:
        raise DataError(f"target '{data.y.name}' has a single value", hint="a classifier needs two classes or more")
    if task == "regression" and not pd.api.types.is_numeric_dtype(data.y):
        raise DataError(f"model.task is regression but target '{data.y.name}' is not numeric",
                        hint="use task: binary or multiclass for labels")


def cross_validate(pipeline: Any, data: Dataset, columns: list[str], names: list[str], *, task: str,
                   folds: int, seed: int, quiet: bool = False) -> dict[str, CvSummary]:
    """Mean and standard deviation of each metric over seeded k folds (empty when folds < 2)."""
    if folds < 2:
        return {}
    splitter = (KFold(folds, shuffle=True, random_state=seed) if task == "regression"
                else StratifiedKFold(folds, shuffle=True, random_state=seed))
    X, y = data.frame[columns], data.y
    scores: dict[str, list[float]] = {name: [] for name in names}
    with Progress("cross-validation", total=folds, unit="folds", interval=0, enabled=not quiet) as progress:
        for fit_idx, test_idx in splitter.split(X, y if task != "regression" else None):
            model = clone(pipeline).fit(X.iloc[fit_idx], y.iloc[fit_idx])
            preds = metrics.predictions_of(model, X.iloc[test_idx], y.iloc[test_idx], task)
            for name, value in metrics.compute(preds, names).items():
                scores[name].append(value)
            progress.advance(1)
    return {name: {"mean": float(np.nanmean(v)), "std": float(np.nanstd(v)), "folds": [float(x) for x in v]}
            for name, v in scores.items()}


def _record(project: Project, schema: DataSchema, fitted: Any, columns: list[str], fit_data: Dataset,
            holdout: Dataset, cv: dict[str, CvSummary]) -> dict[str, Any]:
    model_cfg = project.config.model
    schema_dict = schema_to_dict(schema)
    estimator = fitted.named_steps["model"]
    return {
        "project": project.config.project,
        "task": model_cfg.task,
        "target": schema.target,
        "estimator": {"class": f"{type(estimator).__module__}.{type(estimator).__qualname__}",
                      "configured": model_cfg.estimator, "params": _plain_params(estimator.get_params()),
                      "steps": [{"name": step.name, "transformer": step.transformer,
                                 "params": _plain_params(fitted.named_steps[step.name].get_params())}
                                for step in model_cfg.steps]},
        "features": columns,
        "classes": [metrics.label_text(c) for c in fitted.classes_] if model_cfg.task != "regression" else None,
        "schema": schema_dict,
        "schema_sha256": sha256_bytes(json.dumps(schema_dict, sort_keys=True).encode()),
        "seed": model_cfg.seed,
        "data": {"train": fit_data.lineage, "holdout": holdout.lineage},
        "metrics": {},
        "cv": cv,
        "libraries": lineage.library_versions(),
        "git": lineage.git_state(project.root),
        "ci": lineage.ci_build(),
        "deployments": [],
    }


def _plain_params(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v if v is None or isinstance(v, (bool, int, float, str)) else repr(v) for k, v in params.items()}
