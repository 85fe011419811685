"""Scoring with the fitted scikit-learn pipeline itself, on NumPy arrays: the serving image has no pandas.

The server uses this path when the pipeline does not compile (``mlci.serve.compiled``), and checks the
compiled path against it. The request's columns become one 2-D object array in feature order (numbers as
float, NaN where a value is missing). mlci's pipelines start with a ColumnTransformer fitted on a DataFrame, which
names its columns; scikit-learn selects columns by name only in a DataFrame and refuses an array
("Specifying the columns using strings is only supported for dataframes": ``ColumnTransformer.transform``
and ``_safe_indexing`` in sklearn/compose/_column_transformer.py and sklearn/utils/_indexing.py, 1.9). So
this path selects by position what ``transform`` would select by name: each fitted transformer of the
ColumnTransformer gets its columns of the array (a float array when they are all numeric, as the
DataFrame's columns were), weighted and stacked in the transformers' order as ``transform`` does, and the
pipeline's remaining steps (``model.steps`` and the estimator) score the result. A pipeline that does
not start with a ColumnTransformer gets the whole array.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import sparse
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline

from mlci.errors import IntegrityError

Columns = dict[str, list[Any]]

# Transformers fitted on a DataFrame remember its column names and warn when given an array; here the
# array holds the same columns by construction, so exactly this warning is silenced.
_FEATURE_NAMES_WARNING = r"X does not have valid feature names, but \w+ was fitted with feature names"


@dataclass(frozen=True)
class _Selection:
    transformer: Any
    positions: tuple[int, ...]  # into the feature-order array
    numeric: bool
    weight: float | None


class PipelineScorer:
    """``features(columns)``: the ColumnTransformer's output; ``scorer(columns)``: predict_proba for
    classifiers, predict otherwise (the same interface as ``CompiledPipeline``)."""

    def __init__(self, pipeline: Any, features: list[str], numeric: set[str], *, classifier: bool) -> None:
        warnings.filterwarnings("ignore", message=_FEATURE_NAMES_WARNING, category=UserWarning)
        self.features_order = list(features)
        self._numeric = [name in numeric for name in features]
        first = pipeline.steps[0][1] if isinstance(pipeline, Pipeline) else None
        if isinstance(first, ColumnTransformer):
            self._selections: tuple[_Selection, ...] | None = _selections(first, self.features_order, numeric)
            self._sparse = bool(getattr(first, "sparse_output_", False))
            rest = pipeline[1:]
        else:
            self._selections, self._sparse, rest = None, False, pipeline
        self._score = rest.predict_proba if classifier else rest.predict

    def array(self, columns: Columns) -> np.ndarray:
        """The request as a 2-D object array in feature order: numbers as float, a missing value as NaN
        (as the training data's DataFrame holds it, text columns included)."""
        rows = len(columns[self.features_order[0]]) if self.features_order else 0
        out = np.empty((rows, len(self.features_order)), dtype=object)
        for index, (name, numeric) in enumerate(zip(self.features_order, self._numeric)):
            values = columns[name]
            out[:, index] = [np.nan if v is None else float(v) if numeric else v for v in values]
        return out

    def features(self, columns: Columns) -> Any:
        array = self.array(columns)
        if self._selections is None:
            return array
        parts = []
        for selection in self._selections:
            block = array[:, list(selection.positions)]
            part = selection.transformer.transform(block.astype(float) if selection.numeric else block)
            if selection.weight is not None:
                part = part * selection.weight
            parts.append(part)
        if self._sparse:
            return sparse.hstack(parts).tocsr()
        return np.hstack([part.toarray() if sparse.issparse(part) else np.asarray(part) for part in parts])

    def __call__(self, columns: Columns) -> np.ndarray:
        return self._score(self.features(columns))


def _selections(transformer: ColumnTransformer, features: list[str], numeric: set[str]) -> tuple[_Selection, ...]:
    fitted_on = [str(name) for name in getattr(transformer, "feature_names_in_", features)]
    position = {name: index for index, name in enumerate(features)}
    weights = transformer.transformer_weights or {}
    out = []
    for name, fitted, columns in transformer.transformers_:
        if isinstance(fitted, str) and fitted == "drop" or _is_empty(columns):
            continue
        names = _column_names(name, columns, fitted_on)
        missing = [column for column in names if column not in position]
        if missing:
            raise IntegrityError(f"the model's transformer '{name}' reads columns {missing} that are not among "
                                 "its features")
        out.append(_Selection(fitted, tuple(position[column] for column in names),
                              all(column in numeric for column in names), weights.get(name)))
    return tuple(out)


def _column_names(name: str, columns: Any, fitted_on: list[str]) -> list[str]:
    """The names of a transformer's columns: given by name (as mlci's preprocessing does), or by position
    in the columns the ColumnTransformer was fitted on."""
    selected = list(columns) if isinstance(columns, (list, tuple, np.ndarray)) else [columns]
    if all(isinstance(c, str) for c in selected):
        return selected
    if all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) for c in selected):
        return [fitted_on[int(c)] for c in selected]
    raise IntegrityError(f"the model's transformer '{name}' selects columns by {type(selected[0]).__name__}",
                         hint="select columns by name or position")


def _is_empty(columns: Any) -> bool:
    return isinstance(columns, (list, tuple, np.ndarray)) and len(columns) == 0
