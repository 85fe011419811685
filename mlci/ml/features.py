"""Preprocessing derived from the data schema, and the estimator named in ``mlci.yaml``.

Numbers are imputed (median) and optionally standardised; categories are imputed and one-hot encoded
with unknown values ignored, so a category first seen at predict time cannot crash the server;
booleans become 0/1; datetime columns give the configured parts (year, month, ...). ``string`` columns
are free text and are not model inputs. The transformer classes defined here are stored inside model
files, so their exact names (``mlci.ml.features.CategoryText``, ...) are on the model-file allow-list
(``mlci.adapters.model_files.ALLOWED``): keep their state to plain numbers, strings and lists, and list
a new class there.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, is_classifier, is_regressor
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mlci.core.config import ModelSection, PipelineStep
from mlci.core.dataschema import NUMERIC_TYPES, DataSchema
from mlci.core.yamlsrc import YamlDocument, config_issue
from mlci.errors import ConfigError
from mlci.ml.feature_values import boolean_as_float, category_text, date_parts, value_columns

# The transformers compute with mlci.ml.feature_values on NumPy object arrays: the serving image has no
# pandas, and a DataFrame given to them (at training) is read through its own methods.

class CategoryText(TransformerMixin, BaseEstimator):
    """Categories as text (so 1 and "1" are one category), missing values as one explicit category."""

    def fit(self, X: Any, y: Any = None) -> CategoryText:
        return self

    def transform(self, X: Any) -> np.ndarray:
        return _stack([np.array(category_text(column), dtype=object) for column in value_columns(X)], X, dtype=object)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(input_features, dtype=object)


class BooleanAsFloat(TransformerMixin, BaseEstimator):
    """True/False (also "true"/"yes"/"1" text) as 1.0/0.0, anything else missing (NaN)."""

    def fit(self, X: Any, y: Any = None) -> BooleanAsFloat:
        return self

    def transform(self, X: Any) -> np.ndarray:
        return _stack([boolean_as_float(column) for column in value_columns(X)], X, dtype=float)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(input_features, dtype=object)


class DateParts(TransformerMixin, BaseEstimator):
    """Numeric parts (year, month, day, dayofweek, hour) of datetime columns; unparseable -> NaN."""

    def __init__(self, parts: tuple[str, ...] = ("year", "month")) -> None:
        self.parts = parts

    def fit(self, X: Any, y: Any = None) -> DateParts:
        self.n_features_in_ = len(value_columns(X, as_objects=False))
        return self

    def transform(self, X: Any) -> np.ndarray:
        blocks = [date_parts(column, self.parts) for column in value_columns(X, as_objects=False)]
        return np.hstack(blocks) if blocks else np.empty((len(X), 0))

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray([f"{c}_{p}" for c in input_features for p in self.parts], dtype=object)


def _stack(columns: list[np.ndarray], X: Any, *, dtype: Any) -> np.ndarray:
    return np.column_stack(columns).astype(dtype, copy=False) if columns else np.empty((len(X), 0), dtype=dtype)


def feature_columns(schema: DataSchema, datetime_parts: Sequence[str] = ()) -> list[str]:
    """The model's input columns, in schema order."""
    return [name for name, col in schema.features.items() if _column_group(col.type, datetime_parts)]


def _column_group(column_type: str, datetime_parts: Sequence[str]) -> str | None:
    if column_type in NUMERIC_TYPES:
        return "numeric"
    if column_type == "category":
        return "category"
    if column_type == "boolean":
        return "boolean"
    if column_type == "datetime" and datetime_parts:
        return "datetime"
    return None  # free text, or datetimes without configured parts


def build_preprocessor(schema: DataSchema, *, scale_numeric: bool = True,
                       datetime_parts: Sequence[str] = ()) -> ColumnTransformer:
    groups: dict[str, list[str]] = {}
    for name, col in schema.features.items():
        group = _column_group(col.type, datetime_parts)
        if group:
            groups.setdefault(group, []).append(name)
    numeric_steps = [("impute", SimpleImputer(strategy="median"))]
    if scale_numeric:
        numeric_steps.append(("scale", StandardScaler()))
    blocks = {
        "numeric": Pipeline(numeric_steps),
        "category": Pipeline([("text", CategoryText()),
                              ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False))]),
        "boolean": Pipeline([("as_float", BooleanAsFloat()),
                             ("impute", SimpleImputer(strategy="most_frequent"))]),
        "datetime": Pipeline([("parts", DateParts(parts=tuple(datetime_parts))),
                              ("impute", SimpleImputer(strategy="median", keep_empty_features=True))]),
    }
    transformers = [(group, blocks[group], columns) for group, columns in groups.items()]
    if not transformers:
        raise ConfigError("the schema has no usable feature columns",
                          hint="mark numeric, category or boolean columns as features (feature: true)")
    return ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=False)


ESTIMATOR_METHODS = ("fit", "predict", "get_params")
TRANSFORMER_METHODS = ("fit", "transform", "get_params")


def estimator_class(import_path: str, *, document: YamlDocument | None = None, key: str = "model.estimator",
                    methods: tuple[str, ...] = ESTIMATOR_METHODS) -> type:
    """The class named by ``import_path`` at config key ``key``, checked to have ``methods``."""
    module_name, _, class_name = import_path.rpartition(".")
    if not module_name:
        raise config_issue(document, key, f"'{import_path}' is not an import path",
                           "e.g. sklearn.linear_model.LogisticRegression")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise config_issue(document, key, f"cannot import module '{module_name}' ({exc})",
                           "check the spelling or install it") from None
    cls = getattr(module, class_name, None)
    if cls is None:
        close = [n for n in dir(module) if n.lower() == class_name.lower()]
        raise config_issue(document, key, f"module '{module_name}' has no class '{class_name}'",
                            f"did you mean '{close[0]}'?" if close else None)
    if not inspect.isclass(cls) or not all(callable(getattr(cls, m, None)) for m in methods):
        kind = "estimator" if methods == ESTIMATOR_METHODS else "transformer"
        raise config_issue(document, key, f"'{import_path}' is not a scikit-learn compatible {kind}",
                            f"it needs {', '.join(methods)}")
    return cls


def _instantiate(cls: type, params: dict[str, Any], *, seed: int, key: str, document: YamlDocument | None) -> Any:
    try:
        instance = cls(**params)
    except TypeError as exc:
        raise config_issue(document, key, f"{cls.__name__} does not accept these parameters ({exc})",
                           "see its documentation") from None
    _check_param_values(instance, params, key=key, document=document)
    if "random_state" in instance.get_params() and "random_state" not in params:
        instance.set_params(random_state=seed)
    return instance


def _check_param_values(instance: Any, params: dict[str, Any], *, key: str, document: YamlDocument | None) -> None:
    """Check each configured parameter against the class's declared constraints before any fit.

    scikit-learn declares them in ``_parameter_constraints`` and checks them only inside ``fit``
    (``BaseEstimator._validate_params`` in sklearn/base.py), where a bad value would surface as an
    internal error after the data was read. Checking one parameter at a time locates every bad one.
    """
    constraints = getattr(instance, "_parameter_constraints", None)
    if not isinstance(constraints, dict) or not params:
        return
    try:
        from sklearn.utils._param_validation import InvalidParameterError, validate_parameter_constraints
    except ImportError:  # a scikit-learn without declared constraints: fit will say it
        return
    issues = []
    for name in params:
        if name not in constraints:
            continue
        try:
            validate_parameter_constraints({name: constraints[name]}, {name: params[name]},
                                           caller_name=type(instance).__name__)
        except InvalidParameterError as exc:
            message = " ".join(str(exc).split())[:300]
            issues += config_issue(document, f"{key}.{name}", message, "see the class's documentation").issues
    if issues:
        raise ConfigError(issues)


def make_estimator(import_path: str, params: dict[str, Any], *, task: str, seed: int,
                   document: YamlDocument | None = None) -> Any:
    """An instance of the configured estimator, seeded, checked to be a classifier/regressor for ``task``."""
    cls = estimator_class(import_path, document=document)
    estimator = _instantiate(cls, params, seed=seed, key="model.params", document=document)
    wants_classifier = task != "regression"
    if wants_classifier and not is_classifier(estimator) or not wants_classifier and not is_regressor(estimator):
        kind = "classifier" if wants_classifier else "regressor"
        raise config_issue(document, "model.estimator", f"'{import_path}' is not a {kind}, but model.task is '{task}'",
                            f"choose a {kind} or change model.task")
    return estimator


@contextmanager
def parameter_errors_located(model: ModelSection, document: YamlDocument | None) -> Iterator[None]:
    """Turn an estimator's ``ValueError`` that names a configured parameter into a located ``ConfigError``.

    Some settings are valid alone and refused only together, inside ``fit`` (LogisticRegression's
    ``penalty='l1'`` with the default solver, PCA's ``n_components`` above the feature count); the
    estimator's message names the parameter. A message that names none is not ours to reinterpret.
    """
    try:
        yield
    except ValueError as exc:
        message = " ".join(str(exc).split())
        key = _configured_parameter_in(message, model)
        if key is None:
            raise
        raise config_issue(document, key, f"refused by the estimator: {message}"[:300],
                           "change this parameter or the ones it depends on") from None


def _configured_parameter_in(message: str, model: ModelSection) -> str | None:
    keys = [(f"model.params.{name}", name) for name in model.params]
    keys += [(f"model.steps.{i}.params.{name}", name) for i, step in enumerate(model.steps) for name in step.params]
    for key, name in keys:
        if re.search(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])", message):
            return key
    return None


def make_steps(steps: Sequence[PipelineStep], *, seed: int,
               document: YamlDocument | None = None) -> list[tuple[str, Any]]:
    """The configured ``model.steps`` as (name, transformer) pairs, each seeded like the estimator."""
    made = []
    for index, step in enumerate(steps):
        key = f"model.steps.{index}"
        cls = estimator_class(step.transformer, document=document, key=f"{key}.transformer",
                              methods=TRANSFORMER_METHODS)
        made.append((step.name, _instantiate(cls, step.params, seed=seed, key=f"{key}.params", document=document)))
    return made


def build_pipeline(schema: DataSchema, *, estimator: Any, steps: Sequence[tuple[str, Any]] = (),
                   scale_numeric: bool = True, datetime_parts: Sequence[str] = ()) -> Pipeline:
    """preprocess (from the schema) → the configured steps → model (the estimator)."""
    preprocess = build_preprocessor(schema, scale_numeric=scale_numeric, datetime_parts=datetime_parts)
    return Pipeline([("preprocess", preprocess), *steps, ("model", estimator)])
