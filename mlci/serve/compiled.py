"""The fitted pipeline compiled into plain NumPy: validated columns -> feature matrix -> estimator output.

scikit-learn's ColumnTransformer spends milliseconds per call on DataFrame handling and input checks,
whatever the batch size, which caps a one-row request far below what the estimator itself allows. At
start-up the server reads the fitted state (imputer statistics, scaler mean and scale, one-hot
categories) and rebuilds each transformer as a few array operations; tree ensembles are scored by
summing their trees' outputs directly and linear models by their dot product, as scikit-learn does but
without its input checks (the matrix built here is always dense, finite where it must be, and float).

Only steps whose exact class is known here are compiled (``Unsupported`` otherwise), and ``verify``
compares the compiled output with the pipeline's own on generated rows that cover missing values,
unknown categories and the schema's bounds. The server uses the compiled path only when both succeed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from itertools import chain, repeat
from typing import Any, Protocol

import numpy as np
from scipy import sparse
from scipy.special import expit
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import ExtraTreesClassifier, ExtraTreesRegressor, RandomForestClassifier, RandomForestRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import ElasticNet, Lasso, LinearRegression, LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.utils.extmath import softmax

from mlci.core.dataschema import NUMERIC_TYPES, DataSchema
from mlci.ml.feature_values import boolean_as_float, category_text
from mlci.ml.features import BooleanAsFloat, CategoryText, DateParts

TOLERANCE = 1e-9
_TREE_CLASSIFIERS = (RandomForestClassifier, ExtraTreesClassifier)
_TREE_REGRESSORS = (RandomForestRegressor, ExtraTreesRegressor)
_LINEAR_REGRESSORS = (LinearRegression, Ridge, Lasso, ElasticNet)

Columns = dict[str, list[Any]]
# A block's data between steps: a list of value lists (one per column) or a float matrix (rows x columns).
Step = Callable[[Any], Any]


class Unsupported(Exception):
    """The pipeline holds something this module does not compile; the server keeps the sklearn path."""


@dataclass(frozen=True)
class Block:
    """One ColumnTransformer entry: its input columns, whether they arrive as numbers, and its steps."""
    columns: tuple[str, ...]
    numeric: bool
    steps: tuple[Step, ...]

    def transform(self, columns: Columns) -> np.ndarray:
        values = [columns[name] for name in self.columns]
        data: Any = np.array(values, dtype=float).T if self.numeric else values
        for step in self.steps:
            data = step(data)
        return data


@dataclass(frozen=True)
class CompiledPipeline:
    blocks: tuple[Block, ...]
    estimator: Any
    score: Callable[[np.ndarray], np.ndarray]  # predict_proba for classifiers, predict otherwise

    def features(self, columns: Columns) -> np.ndarray:
        parts = [block.transform(columns) for block in self.blocks]
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)

    def __call__(self, columns: Columns) -> np.ndarray:
        return self.score(self.features(columns))


def compile_pipeline(pipeline: Any, numeric_columns: set[str], *, classifier: bool) -> CompiledPipeline:
    """``pipeline`` = [ColumnTransformer, estimator], compiled; raises Unsupported naming what is not."""
    if type(pipeline) is not Pipeline or len(pipeline.steps) != 2:
        raise Unsupported("the model is not a two-step Pipeline (preprocessing, estimator)")
    preprocess, estimator = pipeline.steps[0][1], pipeline.steps[1][1]
    if type(preprocess) is not ColumnTransformer:
        raise Unsupported(f"the preprocessing step is a {type(preprocess).__name__}, not a ColumnTransformer")
    if getattr(estimator, "feature_names_in_", None) is not None:
        raise Unsupported("the estimator was fitted on named columns")
    blocks = tuple(_compile_block(name, transformer, columns, numeric_columns)
                   for name, transformer, columns in preprocess.transformers_
                   if not _is_dropped(transformer, columns))
    if not blocks:
        raise Unsupported("the ColumnTransformer passes no columns on")
    return CompiledPipeline(blocks=blocks, estimator=estimator, score=_compile_estimator(estimator, classifier))


class Reference(Protocol):
    """The pipeline itself as the server scores with it (``mlci.serve.pipeline_path.PipelineScorer``)."""

    def features(self, columns: Columns) -> Any: ...

    def __call__(self, columns: Columns) -> np.ndarray: ...


def verify(compiled: CompiledPipeline, reference: Reference, columns: Columns) -> None:
    """Raises Unsupported unless the compiled features and outputs equal the pipeline's on ``columns``."""
    try:
        expected = reference.features(columns)
        expected_out = reference(columns)
    except Exception as exc:  # the pipeline itself refuses these rows: nothing to compare against
        raise Unsupported(f"the pipeline cannot score the verification rows ({type(exc).__name__}: {exc})") from None
    expected = expected.toarray() if sparse.issparse(expected) else np.asarray(expected, dtype=float)
    got = compiled.features(columns)
    if got.shape != expected.shape:
        raise Unsupported(f"compiled features have shape {got.shape}, the pipeline's {expected.shape}")
    _require_close("features", got, expected)
    _require_close("outputs", compiled(columns), np.asarray(expected_out, dtype=float))


def _require_close(what: str, got: np.ndarray, expected: np.ndarray) -> None:
    if got.shape != expected.shape or not np.array_equal(np.isnan(got), np.isnan(expected)):
        raise Unsupported(f"compiled {what} differ from the pipeline's")
    difference = np.nanmax(np.abs(got - expected)) if got.size else 0.0
    if difference > TOLERANCE:
        raise Unsupported(f"compiled {what} differ from the pipeline's by {difference:.3g}")


# -- the ColumnTransformer ----------------------------------------------------------------------


def _is_dropped(transformer: Any, columns: Any) -> bool:
    return isinstance(transformer, str) and transformer == "drop" or _is_empty(columns)


def _is_empty(columns: Any) -> bool:
    return isinstance(columns, (list, tuple, np.ndarray)) and len(columns) == 0


def _compile_block(name: str, transformer: Any, columns: Any, numeric_columns: set[str]) -> Block:
    if not isinstance(columns, (list, tuple, np.ndarray)) or not all(isinstance(c, str) for c in columns):
        raise Unsupported(f"transformer '{name}' selects columns by something other than a list of names")
    if isinstance(transformer, str):
        raise Unsupported(f"transformer '{name}' is '{transformer}'")
    steps = [step for _, step in transformer.steps] if type(transformer) is Pipeline else [transformer]
    numeric = [c in numeric_columns for c in columns]
    if any(numeric) and not all(numeric):
        raise Unsupported(f"transformer '{name}' mixes numeric and other columns")
    is_matrix = all(numeric)
    compiled = []
    for step in steps:
        function, is_matrix = _compile_step(step, is_matrix)
        compiled.append(function)
    if not is_matrix:
        raise Unsupported(f"transformer '{name}' does not end in numbers")
    return Block(columns=tuple(columns), numeric=all(numeric), steps=tuple(compiled))


def _compile_step(step: Any, is_matrix: bool) -> tuple[Step, bool]:
    """The step as a function on the block's data, and whether its output is a float matrix."""
    kind = type(step)
    if kind is SimpleImputer:
        return _imputer(step, is_matrix), is_matrix
    if kind is StandardScaler and is_matrix:
        return _scaler(step), True
    if kind is OneHotEncoder:
        return _one_hot(step, is_matrix), True
    if kind is CategoryText and not is_matrix:
        return _category_text, False
    if kind is BooleanAsFloat and not is_matrix:
        return _boolean_as_float, True
    if kind is DateParts and not is_matrix:
        return lambda values: step.transform(np.array(values, dtype=object).T), True
    raise Unsupported(f"no compiled form for {kind.__name__} on {'numbers' if is_matrix else 'values'}")


def _is_missing(value: Any) -> bool:
    return value is None or isinstance(value, float) and math.isnan(value)


def _imputer(imputer: SimpleImputer, is_matrix: bool) -> Step:
    missing = imputer.missing_values
    if not (isinstance(missing, float) and math.isnan(missing)) or imputer.add_indicator:
        raise Unsupported("SimpleImputer with missing_values other than NaN, or with an indicator")
    statistics = imputer.statistics_
    if is_matrix:
        statistics = np.asarray(statistics, dtype=float)
        if not np.isfinite(statistics).all():
            raise Unsupported("SimpleImputer with empty features")
        return lambda matrix: np.where(np.isnan(matrix), statistics, matrix)
    fills = list(statistics)
    if any(_is_missing(fill) for fill in fills):
        raise Unsupported("SimpleImputer with empty features")
    return lambda values: [_filled(column, fill) for column, fill in zip(values, fills)]


_NEVER_NAN = frozenset({str, int, bool, type(None)})  # exact types whose only missing value is None


def _filled(column: list[Any], fill: Any) -> list[Any]:
    """The column with each missing value replaced by ``fill`` (the column itself when none is missing)."""
    if _NEVER_NAN.issuperset(map(type, column)):
        return [fill if v is None else v for v in column] if None in column else column
    return [fill if _is_missing(v) else v for v in column]


def _scaler(scaler: StandardScaler) -> Step:
    mean = np.asarray(scaler.mean_, dtype=float) if scaler.with_mean else None
    scale = np.asarray(scaler.scale_, dtype=float) if scaler.with_std else None

    def scale_matrix(matrix: np.ndarray) -> np.ndarray:
        if mean is not None:
            matrix = matrix - mean
        if scale is not None:
            matrix = matrix / scale
        return matrix
    return scale_matrix


def _one_hot(encoder: OneHotEncoder, is_matrix: bool) -> Step:
    if encoder.drop_idx_ is not None or getattr(encoder, "_infrequent_enabled", False):
        raise Unsupported("OneHotEncoder with drop or infrequent categories")
    if encoder.handle_unknown != "ignore":
        raise Unsupported(f"OneHotEncoder with handle_unknown='{encoder.handle_unknown}'")
    # each category's output column; an unknown value's is one past the end, dropped after the encoding
    # (all zeros, like handle_unknown="ignore")
    tables: list[dict[Any, int]] = []
    width = 0
    for categories in encoder.categories_:
        if any(_is_missing(c) for c in categories.tolist()):
            raise Unsupported("OneHotEncoder with a missing-value category")
        tables.append({category: width + index for index, category in enumerate(categories.tolist())})
        width += len(categories)

    def encode(data: Any) -> np.ndarray:
        values = [column.tolist() for column in data.T] if is_matrix else data
        rows = len(values[0])
        codes = np.fromiter(chain.from_iterable(map(table.get, column, repeat(width))
                                                for column, table in zip(values, tables)),
                            dtype=np.intp, count=rows * len(tables)).reshape(len(tables), rows)
        out = np.zeros((rows, width + 1))
        out[np.arange(rows), codes] = 1.0
        return out[:, :width]
    return encode


def _category_text(values: list[list[Any]]) -> list[list[Any]]:
    return [category_text(column) for column in values]


def _boolean_as_float(values: list[list[Any]]) -> np.ndarray:
    return np.column_stack([boolean_as_float(column) for column in values])


# -- the estimator ------------------------------------------------------------------------------


def _compile_estimator(estimator: Any, classifier: bool) -> Callable[[np.ndarray], np.ndarray]:
    if type(estimator) in _TREE_CLASSIFIERS and classifier and estimator.n_outputs_ == 1:
        return _tree_sum(estimator, width=int(estimator.n_classes_))
    if type(estimator) in _TREE_REGRESSORS and not classifier and estimator.n_outputs_ == 1:
        summed = _tree_sum(estimator, width=1)
        return lambda matrix: summed(matrix)[:, 0]
    if type(estimator) is LogisticRegression and classifier:
        return _logistic(estimator)
    if type(estimator) in _LINEAR_REGRESSORS and not classifier and np.ndim(estimator.coef_) == 1:
        coef, intercept = estimator.coef_, estimator.intercept_
        return lambda matrix: matrix @ coef + intercept
    return estimator.predict_proba if classifier else estimator.predict


def _logistic(model: LogisticRegression) -> Callable[[np.ndarray], np.ndarray]:
    """``predict_proba``: the logistic of the score for two classes, the softmax of the scores for more."""
    coef_t, intercept = model.coef_.T, model.intercept_
    if len(model.classes_) == 2:
        def binary(matrix: np.ndarray) -> np.ndarray:
            positive = expit((matrix @ coef_t + intercept).reshape(-1))
            out = np.empty((len(positive), 2))
            out[:, 0] = 1 - positive
            out[:, 1] = positive
            return out
        return binary
    return lambda matrix: softmax(matrix @ coef_t + intercept, copy=False)


def _tree_sum(forest: Any, width: int) -> Callable[[np.ndarray], np.ndarray]:
    """The forest's average of its trees' outputs, accumulated in the same order and float32 input as
    scikit-learn, without its per-tree input validation and job dispatch."""
    trees = [tree.tree_ for tree in forest.estimators_]

    def average(matrix: np.ndarray) -> np.ndarray:
        inputs = np.ascontiguousarray(matrix, dtype=np.float32)
        total = np.zeros((inputs.shape[0], width))
        for tree in trees:
            total += tree.predict(inputs)[:, :width]
        total /= len(trees)
        return total
    return average


# -- verification rows --------------------------------------------------------------------------


def verification_columns(schema: DataSchema, features: list[str], rows: int = 64, seed: int = 0) -> Columns:
    """Rows that pass request validation and cover each feature's cases: values across its range,
    every allowed category, a category the model never saw, and missing values where allowed."""
    rng = np.random.default_rng(seed)
    cases = {name: _cases(schema.columns[name], rng, draws=16) + ([None] if schema.columns[name].nullable else [])
             for name in features}
    rows = max([rows, *(len(values) for values in cases.values())])
    columns: Columns = {}
    for name, values in cases.items():
        # every case at least once, shuffled so the cases of different columns meet in varied rows
        order = rng.permutation(np.resize(np.arange(len(values)), rows))
        columns[name] = [values[i] for i in order.tolist()]
    return columns


def _cases(column: Any, rng: np.random.Generator, draws: int) -> list[Any]:
    if column.values is not None:
        return list(column.values) + ([] if column.type in NUMERIC_TYPES else ["__unseen__"])
    if column.type in NUMERIC_TYPES:
        low = float(column.min) if isinstance(column.min, (int, float)) else -1000.0
        high = float(column.max) if isinstance(column.max, (int, float)) else low + 2000.0
        values = rng.uniform(low, high, draws)
        return [int(v) for v in np.rint(values)] if column.type == "integer" else values.tolist()
    if column.type == "boolean":
        return [True, False]
    if column.type == "datetime":
        bounds = [b for b in (column.min, column.max) if isinstance(b, str)]
        return bounds + ["2024-02-29", "2025-06-15T13:45:00", "2023-12-31 23:59:59"]
    return ["text", "__unseen__"]
