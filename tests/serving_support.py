"""A registered model for the serving tests: the bundled credit-risk example, a small scikit-learn
pipeline fitted on it, registered through the real registry (as `mlci train` would)."""

from __future__ import annotations

import contextlib
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mlci.adapters.model_files import dump_model
from mlci.core.config import load_project
from mlci.core.dataschema import load_schema, schema_to_dict
from mlci.ops.model.lineage import sha256_file
from mlci.ops.model.registry import open_registry

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "credit-risk"
NUMERIC = ["age", "income", "loan_amount", "loan_term", "credit_score", "debt_ratio", "num_accounts"]
CATEGORIES = ["region", "employment", "home_ownership"]
FEATURES = NUMERIC + CATEGORIES


# Prepended to a script run with ``python -c``: pandas and matplotlib cannot be imported, as in the image.
WITHOUT_PANDAS = """import sys


class _Uninstalled:  # pandas and matplotlib behave as if not installed (as in the serving image)
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("pandas", "matplotlib"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


sys.meta_path.insert(0, _Uninstalled())
"""


def copy_example(directory: Path) -> Path:
    target = Path(directory) / "credit-risk"
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns(".mlci", "reports", "predictions"))
    return target


def fit_pipeline(train: pd.DataFrame, estimator: str = "logistic", *, seed: int = 0) -> Pipeline:
    numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    categories = Pipeline([("impute", SimpleImputer(strategy="constant", fill_value="missing")),
                           ("onehot", OneHotEncoder(handle_unknown="ignore"))])
    model = (LogisticRegression(max_iter=500, C=1.0 + seed) if estimator == "logistic"
             else RandomForestClassifier(n_estimators=100, random_state=seed, n_jobs=1))
    pipeline = Pipeline([("preprocess", ColumnTransformer([("num", numeric, NUMERIC), ("cat", categories,
                                                                                       CATEGORIES)])),
                         ("model", model)])
    return pipeline.fit(train[FEATURES], train["default"])


# mlci's own preprocessing (mlci.ml.features, as `mlci train` builds it) with booleans and date parts:
# "mlci" compiles; "mlci+pca" (a model.steps transformer) is scored by the scikit-learn pipeline itself.
MLCI_PIPELINES = ("mlci", "mlci+pca")
DATE_PARTS = ["year", "month", "dayofweek"]


def fit_mlci_pipeline(train: pd.DataFrame, kind: str = "mlci", *, seed: int = 0) -> tuple[Pipeline, list[str]]:
    from sklearn.decomposition import PCA

    from mlci.ml.features import build_pipeline, feature_columns

    schema = load_schema(EXAMPLE / "schema.yaml")
    steps = [("pca", PCA(n_components=5, random_state=seed))] if kind == "mlci+pca" else []
    pipeline = build_pipeline(schema, estimator=LogisticRegression(max_iter=500, C=1.0 + seed), steps=steps,
                              datetime_parts=DATE_PARTS)
    features = feature_columns(schema, DATE_PARTS)
    return pipeline.fit(train[features], train["default"]), features


def register_version(project_dir: Path, estimator: str = "logistic", *, seed: int = 0,
                     flip_labels: bool = False) -> dict:
    """Fit and register one model version of the example project; returns its record. ``estimator`` is
    "logistic" or "forest" (a hand-built pipeline), or one of ``MLCI_PIPELINES``. ``flip_labels``
    trains on the inverted target: a real model that is much worse than one trained on the truth."""
    project = load_project(project_dir)
    schema = load_schema(project.path(project.config.data.schema))
    train_path = project.path(project.config.data.train)
    train = pd.read_csv(train_path)
    if flip_labels:
        train = train.assign(default=1 - train["default"])
    if estimator in MLCI_PIPELINES:
        pipeline, features = fit_mlci_pipeline(train, estimator, seed=seed)
    else:
        pipeline, features = fit_pipeline(train, estimator, seed=seed), FEATURES
    record = {"task": "binary", "target": "default", "features": features, "schema": schema_to_dict(schema),
              "estimator": {"class": f"{type(pipeline[-1]).__module__}.{type(pipeline[-1]).__qualname__}",
                            "params": {}},  # the shape `mlci train` records
              "data": {"train": {"path": project.config.data.train, "sha256": sha256_file(train_path)}},
              "git": {"commit": "0123456789abcdef0123456789abcdef01234567"}, "metrics": {}}
    return open_registry(project).register(record, {"model.skops": dump_model(pipeline)})  # any backend


def holdout_records(project_dir: Path, rows: int = 5) -> list[dict]:
    frame = pd.read_csv(Path(project_dir) / "data" / "holdout.csv", nrows=rows).drop(columns=["default"])
    frame = frame.astype(object).where(frame.notna(), None)
    return frame.to_dict(orient="records")


def configure_delivery(project_dir: Path, *, registry: str, base_image: str, ports: tuple[int, int],
                       health_timeout: float = 30) -> str:
    """Point the example's image at the test registry and base image, and give it a docker and a local
    environment on free ports; returns the image repository (unique per call)."""
    import uuid

    import yaml

    path = Path(project_dir) / "mlci.yaml"
    config = yaml.safe_load(path.read_text())
    repository = f"{registry}/mlci-test-{uuid.uuid4().hex[:8]}"
    config["image"] = {"name": repository, "base": base_image}
    config["environments"]["staging"] = {"target": "docker", "port": ports[0], "health_timeout": health_timeout}
    config["environments"]["laptop"] = {"target": "local", "port": ports[1], "health_timeout": health_timeout}
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return repository


def pipeline_frame(model, columns: dict[str, list]) -> pd.DataFrame:
    """Validated request columns as the DataFrame the pipeline was trained on (numbers as float, a missing
    value as NaN): the reference that the server's scoring paths must match."""
    import numpy as np

    from mlci.core.dataschema import NUMERIC_TYPES

    data = {name: np.array([np.nan if v is None else v for v in columns[name]], dtype=float)
            if model.schema.columns[name].type in NUMERIC_TYPES else np.array(columns[name], dtype=object)
            for name in model.features}
    return pd.DataFrame(data, columns=model.features)


@dataclass(frozen=True)
class Answer:
    status: int | str  # the HTTP status, or the name of the transport error
    body: Any = None  # the JSON body, when there was one


@contextlib.contextmanager
def answers_during(url: str, *, json: Any = None, interval: float = 0.05) -> Iterator[list[Answer]]:
    """Ask ``url`` again and again while the ``with`` block runs (a deploy), each time on a new connection
    (GET, or POST of ``json``); yields the list of answers, complete once the block has ended."""
    import httpx

    answers: list[Answer] = []
    stop = threading.Event()

    def ask() -> Answer:
        try:
            answer = (httpx.post(url, json=json, timeout=10, headers={"Connection": "close"}) if json is not None
                      else httpx.get(url, timeout=10, headers={"Connection": "close"}))
        except httpx.TransportError as exc:
            return Answer(type(exc).__name__)
        try:
            return Answer(answer.status_code, answer.json())
        except ValueError:
            return Answer(answer.status_code)

    def keep_asking() -> None:
        while not stop.is_set():
            answers.append(ask())
            time.sleep(interval)

    asker = threading.Thread(target=keep_asking)
    asker.start()
    try:
        yield answers
    finally:
        stop.set()
        asker.join()
