"""mlci train does no more work than the scikit-learn calls it wraps, and its shortcuts give the same
results: a pipeline's preprocessing runs once for a fold's labels and probabilities."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.svm import LinearSVC
from sklearn.tree import DecisionTreeClassifier

from mlci.ml import metrics


class CountingScaler(TransformerMixin, BaseEstimator):
    """StandardScaler's output, counting the rows it transforms (class attribute: clones share it)."""

    rows_transformed = 0

    def fit(self, X, y=None):
        self.scaler_ = StandardScaler().fit(X)
        return self

    def transform(self, X):
        CountingScaler.rows_transformed += len(X)
        return self.scaler_.transform(X)


def _frame(rows: int, seed: int) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"x": rng.normal(size=rows), "z": rng.normal(size=rows),
                          "c": rng.choice(["a", "b", "c"], size=rows)})
    y = pd.Series(np.where(frame["x"] + rng.normal(scale=0.5, size=rows) > 0, "yes", "no"), name="y")
    return frame, y


@pytest.mark.parametrize("estimator", [LogisticRegression(), DecisionTreeClassifier(random_state=0), LinearSVC()],
                         ids=lambda e: type(e).__name__)
@pytest.mark.parametrize("seed", range(3))
def test_a_pipelines_preprocessing_runs_once_for_labels_and_probabilities(estimator, seed):
    frame, y = _frame(300, seed)
    columns = ColumnTransformer([("num", CountingScaler(), ["x", "z"]),
                                 ("cat", OneHotEncoder(handle_unknown="ignore"), ["c"])])
    model = Pipeline([("pre", columns), ("model", estimator)]).fit(frame.iloc[:200], y.iloc[:200])
    test, truth = frame.iloc[200:], y.iloc[200:]

    CountingScaler.rows_transformed = 0
    preds = metrics.predictions_of(model, test, truth, "binary")
    assert CountingScaler.rows_transformed == len(test)

    classes = list(model.classes_)
    assert preds.pred.tolist() == [classes.index(label) for label in model.predict(test)]
    if hasattr(model, "predict_proba"):
        assert np.array_equal(preds.proba, model.predict_proba(test))
    else:
        assert preds.proba is None
    assert preds.y.tolist() == [classes.index(label) for label in truth]


def test_a_bare_estimator_is_scored_as_it_is():
    frame, y = _frame(200, 0)
    numbers = frame[["x", "z"]]
    model = LogisticRegression().fit(numbers, y)
    preds = metrics.predictions_of(model, numbers, y, "binary")
    assert np.array_equal(preds.proba, model.predict_proba(numbers))
    assert preds.pred.tolist() == [list(model.classes_).index(label) for label in model.predict(numbers)]


def test_training_row_fingerprints_are_written_while_cross_validation_runs(tmp_path, monkeypatch):
    """The fingerprints need only the rows, so they overlap the fits: each side sees the other running
    (one after the other, the first would wait for the second in vain)."""
    import threading

    from mlci.core.config import load_project
    from mlci.ml import row_identity
    from mlci.ops.model import train as train_module
    from tests.model_projects import write_project

    cv_running, fingerprints_running = threading.Event(), threading.Event()
    seen = {}
    real_cv, real_rows = train_module.cross_validate, train_module.training_rows

    def cross_validate(*args, **kwargs):
        cv_running.set()
        seen["fingerprints during cv"] = fingerprints_running.wait(timeout=10)
        return real_cv(*args, **kwargs)

    def training_rows(*args, **kwargs):
        fingerprints_running.set()
        seen["cv during fingerprints"] = cv_running.wait(timeout=10)
        return real_rows(*args, **kwargs)

    monkeypatch.setattr(train_module, "cross_validate", cross_validate)
    monkeypatch.setattr(train_module, "training_rows", training_rows)
    root = write_project(tmp_path / "p")
    result = train_module.train(project=load_project(root), quiet=True)
    assert seen == {"fingerprints during cv": True, "cv during fingerprints": True}

    stored = result.record["data"]["train"]["row_identity"]
    frame = train_module.train_and_holdout(load_project(root), train_module.project_schema(load_project(root)))[0]
    expected = row_identity.fingerprint_set(frame.frame, stored["columns"])
    assert stored["distinct_rows"] == expected.size


def test_a_failure_while_writing_fingerprints_registers_nothing(tmp_path, monkeypatch, run_cli):
    from mlci.errors import DataError
    from mlci.ops.model import train as train_module
    from tests.model_projects import write_project

    def broken(*args, **kwargs):
        raise DataError("train.csv: a cell the fingerprints cannot read", hint="fix it")

    monkeypatch.setattr(train_module, "training_rows", broken)
    root = write_project(tmp_path / "p")
    code, _, err = run_cli("-C", root, "train")
    assert code == 2 and "a cell the fingerprints cannot read" in err and "Traceback" not in err
    assert not (root / ".mlci" / "registry" / "versions").exists()
