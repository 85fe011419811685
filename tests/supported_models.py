"""Every estimator and transformer mlci supports, fitted the way ``mlci train`` fits them (schema-derived
preprocessing → steps → estimator) on small binary, multiclass and regression data, and the skops node
kinds and type names their model files contain. ``mlci.adapters.model_files.ALLOWED`` is reviewed
against this list; ``python -m tests.supported_models`` prints it (kind, type name, how many models)."""

from __future__ import annotations

import json
import warnings
import zipfile
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

import pandas as pd

from mlci.adapters.model_files import dump_model, schema_nodes
from mlci.core.config import PipelineStep
from mlci.core.dataschema import load_schema
from mlci.ml.features import build_pipeline, feature_columns, make_estimator, make_steps

CLASSIFIERS = (
    "sklearn.linear_model.LogisticRegression", "sklearn.linear_model.RidgeClassifier",
    "sklearn.linear_model.SGDClassifier", "sklearn.linear_model.Perceptron",
    "sklearn.tree.DecisionTreeClassifier", "sklearn.tree.ExtraTreeClassifier",
    "sklearn.ensemble.RandomForestClassifier", "sklearn.ensemble.ExtraTreesClassifier",
    "sklearn.ensemble.GradientBoostingClassifier", "sklearn.ensemble.HistGradientBoostingClassifier",
    "sklearn.ensemble.AdaBoostClassifier", "sklearn.svm.SVC", "sklearn.svm.LinearSVC",
    "sklearn.neighbors.KNeighborsClassifier", "sklearn.naive_bayes.GaussianNB",
    "sklearn.naive_bayes.BernoulliNB", "sklearn.neural_network.MLPClassifier",
    "sklearn.discriminant_analysis.LinearDiscriminantAnalysis",
)
REGRESSORS = (
    "sklearn.linear_model.LinearRegression", "sklearn.linear_model.Ridge", "sklearn.linear_model.Lasso",
    "sklearn.linear_model.ElasticNet", "sklearn.linear_model.SGDRegressor",
    "sklearn.linear_model.HuberRegressor",
    "sklearn.tree.DecisionTreeRegressor", "sklearn.ensemble.RandomForestRegressor",
    "sklearn.ensemble.ExtraTreesRegressor", "sklearn.ensemble.GradientBoostingRegressor",
    "sklearn.ensemble.HistGradientBoostingRegressor", "sklearn.ensemble.AdaBoostRegressor",
    "sklearn.svm.SVR", "sklearn.svm.LinearSVR", "sklearn.neighbors.KNeighborsRegressor",
    "sklearn.neural_network.MLPRegressor",
)
# other losses and solvers of the estimators above: they store other internal types
CLASSIFIER_VARIANTS = (
    ("sklearn.linear_model.SGDClassifier", {"loss": "log_loss"}),
    ("sklearn.linear_model.SGDClassifier", {"loss": "modified_huber"}),
    ("sklearn.neural_network.MLPClassifier", {"solver": "sgd", "max_iter": 20, "hidden_layer_sizes": [8]}),
    ("sklearn.svm.SVC", {"probability": True}),
)
REGRESSOR_VARIANTS = (
    ("sklearn.ensemble.GradientBoostingRegressor", {"loss": "huber", "n_estimators": 5}),
    ("sklearn.ensemble.GradientBoostingRegressor", {"loss": "absolute_error", "n_estimators": 5}),
    ("sklearn.ensemble.GradientBoostingRegressor", {"loss": "quantile", "n_estimators": 5}),
    ("sklearn.ensemble.HistGradientBoostingRegressor", {"loss": "absolute_error", "max_iter": 5}),
    ("sklearn.linear_model.SGDRegressor", {"loss": "huber"}),
    ("sklearn.linear_model.SGDRegressor", {"loss": "epsilon_insensitive"}),
)
# model.steps: transformers between the preprocessing and the estimator
STEPS = (
    ("sklearn.decomposition.PCA", {"n_components": 5}),
    ("sklearn.decomposition.TruncatedSVD", {"n_components": 5}),
    ("sklearn.feature_selection.SelectKBest", {"k": 8}),
    ("sklearn.feature_selection.VarianceThreshold", {}),
    ("sklearn.preprocessing.StandardScaler", {}),
    ("sklearn.preprocessing.MinMaxScaler", {}),
    ("sklearn.preprocessing.RobustScaler", {}),
    ("sklearn.preprocessing.PolynomialFeatures", {"degree": 2}),
    ("sklearn.kernel_approximation.Nystroem", {"n_components": 20}),
)
# estimators whose params are cut down so the catalogue trains in seconds
FAST_PARAMS = {
    "RandomForestClassifier": {"n_estimators": 5}, "ExtraTreesClassifier": {"n_estimators": 5},
    "RandomForestRegressor": {"n_estimators": 5}, "ExtraTreesRegressor": {"n_estimators": 5},
    "GradientBoostingClassifier": {"n_estimators": 5}, "GradientBoostingRegressor": {"n_estimators": 5},
    "HistGradientBoostingClassifier": {"max_iter": 5}, "HistGradientBoostingRegressor": {"max_iter": 5},
    "AdaBoostClassifier": {"n_estimators": 5}, "AdaBoostRegressor": {"n_estimators": 5},
    "MLPClassifier": {"max_iter": 20, "hidden_layer_sizes": [8]},
    "MLPRegressor": {"max_iter": 20, "hidden_layer_sizes": [8]},
    "LogisticRegression": {"max_iter": 200},
}
TASKS = ("binary", "multiclass", "regression")


def fitted_models(root: Path) -> Iterator[tuple[str, Any, Any]]:
    """(description, fitted pipeline, the rows it was fitted on) for every supported combination."""
    from tests.model_projects import write_project

    warnings.filterwarnings("ignore")  # convergence warnings of the cut-down fits
    for task in TASKS:
        project = write_project(root / task, task=task, rows=160, holdout_rows=10)
        schema = load_schema(project / "schema.yaml")
        data = pd.read_csv(project / "data/train.csv")
        columns = feature_columns(schema, ["year", "month"])
        x, y = data[columns], data[schema.target]
        estimators = REGRESSORS if task == "regression" else CLASSIFIERS
        for path in estimators:
            yield f"{task} {path}", _fit(schema, path, [], task, x, y), x
        for path, params in REGRESSOR_VARIANTS if task == "regression" else CLASSIFIER_VARIANTS:
            yield f"{task} {path} {params}", _fit(schema, path, [], task, x, y, params), x
        for path, params in STEPS:
            default = ("sklearn.linear_model.Ridge" if task == "regression"
                       else "sklearn.linear_model.LogisticRegression")
            step = PipelineStep(name="step", transformer=path, params=params)
            yield f"{task} {default} + step {path}", _fit(schema, default, [step], task, x, y), x


def _fit(schema: Any, path: str, steps: list[PipelineStep], task: str, x: Any, y: Any,
         params: dict[str, Any] | None = None) -> Any:
    params = params if params is not None else FAST_PARAMS.get(path.rsplit(".", 1)[1], {})
    estimator = make_estimator(path, params, task=task, seed=7)
    pipeline = build_pipeline(schema, estimator=estimator, steps=make_steps(steps, seed=7),
                              datetime_parts=["year", "month"])
    return pipeline.fit(x, y)


def node_names(model_bytes: bytes) -> set[tuple[str, str]]:
    """Every (skops loader, type name) pair in a model file."""
    return {(loader, name) for loader, name in schema_nodes(_schema(model_bytes))}


def _schema(model_bytes: bytes) -> Any:
    with zipfile.ZipFile(BytesIO(model_bytes)) as archive:
        return json.loads(archive.read("schema.json"))


def collect(root: Path) -> dict[tuple[str, str], list[str]]:
    """(loader, type name) → the models that need it."""
    needed: dict[tuple[str, str], list[str]] = {}
    for description, model, _ in fitted_models(root):
        for pair in node_names(dump_model(model)):
            needed.setdefault(pair, []).append(description)
    return needed


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        for (loader, name), users in sorted(collect(Path(tmp)).items()):
            print(f"{loader:28} {name:70} {len(users)}")
