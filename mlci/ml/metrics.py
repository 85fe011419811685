"""Model metrics, computed once for a point estimate and, with the same code, for bootstrap resamples.

Every metric is a *weighted* metric over the holdout rows: the point estimate uses weight 1 per row, a
bootstrap resample uses how often each row was drawn. That keeps one implementation per metric and
lets a paired bootstrap evaluate 1000 resamples as a few matrix products (``weights`` is a
resamples x rows matrix). Multiclass ROC AUC has no vectorised form here: it falls back to
scikit-learn with ``sample_weight``, one resample at a time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypedDict

import numpy as np

from mlci.core.gates import improvement

BINARY_ONLY = ("precision", "recall", "f1", "pr_auc", "brier")
CLASSIFICATION_METRICS = ("accuracy", "balanced_accuracy", "precision", "recall", "f1",
                          "precision_macro", "recall_macro", "f1_macro",
                          "precision_weighted", "recall_weighted", "f1_weighted",
                          "roc_auc", "pr_auc", "log_loss", "brier")
REGRESSION_METRICS = ("rmse", "mae", "r2", "mape")
LATENCY_METRICS = ("latency_p50_ms", "latency_p95_ms")  # measured by evaluate, gateable with min/max
NEEDS_PROBABILITIES = ("roc_auc", "pr_auc", "log_loss", "brier")
DEFAULT_METRICS = {"binary": ["roc_auc", "accuracy", "f1"], "multiclass": ["accuracy", "f1_macro"],
                   "regression": ["rmse", "r2"]}
_EPS = np.finfo(np.float64).eps


def wanted_metrics(configured: list[str], task: str) -> list[str]:
    """``model.metrics`` as configured, or the task's defaults when it is empty."""
    return configured or DEFAULT_METRICS.get(task, [])

_BLOCK_CELLS = 4_000_000  # resamples x rows evaluated at once (bounded memory on large holdouts)


class CvSummary(TypedDict):
    """One metric over the folds of a cross-validation (``mlci train``)."""

    mean: float
    std: float
    folds: list[float]


@dataclass
class Predictions:
    """A model's predictions on holdout rows. Classification: ``y``/``pred`` are class indices into
    ``classes`` and ``proba`` the class probabilities (None without ``predict_proba``)."""

    task: str
    y: np.ndarray
    pred: np.ndarray
    proba: np.ndarray | None = None
    classes: list[Any] | None = None
    cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)  # see _score_order

    def __len__(self) -> int:
        return len(self.y)

    def labels(self) -> list[Any]:
        """The classes, which classification predictions always carry."""
        if self.classes is None:
            raise ValueError(f"{self.task} predictions have no classes")
        return self.classes

    def probabilities(self) -> np.ndarray:
        """The class probabilities, for the metrics that need them (``weighted`` checks first)."""
        if self.proba is None:
            raise ValueError("class probabilities are needed; the estimator has no predict_proba")
        return self.proba

    def subset(self, mask: np.ndarray) -> Predictions:
        return Predictions(self.task, self.y[mask], self.pred[mask],
                           None if self.proba is None else self.proba[mask], self.classes)

    def to_arrays(self) -> dict[str, np.ndarray]:
        arrays = {"y": self.y, "pred": self.pred}
        if self.proba is not None:
            arrays["proba"] = self.proba
        if self.classes is not None:
            arrays["classes"] = np.asarray([str(c) for c in self.classes])
        return arrays

    @classmethod
    def from_arrays(cls, task: str, arrays: Any) -> Predictions:
        classes = [str(c) for c in arrays["classes"]] if "classes" in arrays else None
        proba = arrays["proba"] if "proba" in arrays else None
        return cls(task, arrays["y"], arrays["pred"], proba, classes)


def metrics_for_task(task: str) -> tuple[str, ...]:
    if task == "regression":
        return REGRESSION_METRICS
    if task == "multiclass":
        return tuple(m for m in CLASSIFICATION_METRICS if m not in BINARY_ONLY)
    return CLASSIFICATION_METRICS


def unsuitable_metric(name: str, task: str) -> str | None:
    """Why ``name`` cannot be computed for ``task`` (None when it can)."""
    if name in metrics_for_task(task):
        return None
    if name in BINARY_ONLY and task == "multiclass":
        return f"'{name}' is a binary metric; for multiclass use {name}_macro or {name}_weighted" \
            if name in ("precision", "recall", "f1") else f"'{name}' is only defined for binary tasks"
    known = ", ".join(metrics_for_task(task))
    return f"'{name}' is not a {task} metric (known: {known})"


def compute(preds: Predictions, names: list[str] | tuple[str, ...] | None = None) -> dict[str, float]:
    """Point estimates of ``names`` (default: every metric the predictions allow)."""
    names = list(names) if names is not None else available(preds)
    ones = np.ones((1, len(preds)))
    return {name: float(weighted(preds, name, ones)[0]) for name in names}


def available(preds: Predictions) -> list[str]:
    return [m for m in metrics_for_task(preds.task) if preds.proba is not None or m not in NEEDS_PROBABILITIES]


def weighted(preds: Predictions, name: str, weights: np.ndarray) -> np.ndarray:
    """The metric under each row of ``weights`` (resamples x rows); NaN where it is undefined."""
    if name in NEEDS_PROBABILITIES and preds.proba is None:
        raise ValueError(f"metric '{name}' needs class probabilities; the estimator has no predict_proba")
    function = _VECTORISED.get(name)
    if function is None:
        return _sklearn_weighted(preds, name, weights)
    with np.errstate(divide="ignore", invalid="ignore"):
        return function(preds, weights)


def bootstrap_differences(challenger: Predictions, champion: Predictions, name: str, *, samples: int,
                          seed: int) -> np.ndarray:
    """Paired bootstrap of the improvement Δ = s*(challenger - champion) (``mlci.core.gates.improvement``):
    both models are scored on the same resampled rows in every resample."""
    if len(challenger) != len(champion):
        raise ValueError("paired bootstrap needs predictions on the same holdout rows")
    rng = np.random.default_rng(seed)
    return np.concatenate([improvement(name, weighted(challenger, name, weights), weighted(champion, name, weights))
                           for weights in resample_blocks(rng, samples, len(challenger))])


def resample_blocks(rng: np.random.Generator, samples: int, rows: int) -> Iterator[np.ndarray]:
    """``resample_weights(rng, samples, rows)`` a few resamples at a time, so memory stays bounded on a large
    holdout. The generator draws the same numbers in blocks as in one call, so the weights are the same."""
    block = max(1, _BLOCK_CELLS // max(rows, 1))
    for start in range(0, samples, block):
        yield resample_weights(rng, min(block, samples - start), rows)


def resample_weights(rng: np.random.Generator, samples: int, rows: int) -> np.ndarray:
    """How often each row is drawn in each of ``samples`` resamples of ``rows`` rows with replacement."""
    draws = rng.integers(0, rows, size=(samples, rows)) + (np.arange(samples) * rows)[:, None]
    return np.bincount(draws.ravel(), minlength=samples * rows).reshape(samples, rows).astype(float)


# -- vectorised weighted metrics ----------------------------------------------------------------

def _mean(weights: np.ndarray, values: np.ndarray) -> np.ndarray:
    return (weights @ values) / weights.sum(axis=1)


def _confusion(preds: Predictions, weights: np.ndarray) -> np.ndarray:
    """Weighted confusion matrices, resamples x true class x predicted class."""
    k = len(preds.labels())
    cell = preds.y.astype(int) * k + preds.pred.astype(int)
    onehot = np.zeros((len(cell), k * k))
    onehot[np.arange(len(cell)), cell] = 1.0
    return (weights @ onehot).reshape(-1, k, k)


def _per_class(preds: Predictions, weights: np.ndarray) -> dict[str, np.ndarray]:
    matrix = _confusion(preds, weights)
    tp = np.diagonal(matrix, axis1=1, axis2=2)
    support = matrix.sum(axis=2)
    predicted = matrix.sum(axis=1)
    precision = np.where(predicted > 0, tp / np.where(predicted > 0, predicted, 1), 0.0)
    recall = np.where(support > 0, tp / np.where(support > 0, support, 1), 0.0)
    denominator = support + predicted
    f1 = np.where(denominator > 0, 2 * tp / np.where(denominator > 0, denominator, 1), 0.0)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support}


def _class_metric(kind: str, average: str) -> Callable[[Predictions, np.ndarray], np.ndarray]:
    def metric(preds: Predictions, weights: np.ndarray) -> np.ndarray:
        stats = _per_class(preds, weights)
        values, support = stats[kind], stats["support"]
        if average == "binary":
            return values[:, 1]
        if average == "macro":
            return values.mean(axis=1)
        return (values * support).sum(axis=1) / support.sum(axis=1)
    return metric


def _balanced_accuracy(preds: Predictions, weights: np.ndarray) -> np.ndarray:
    stats = _per_class(preds, weights)
    present = stats["support"] > 0
    return (stats["recall"] * present).sum(axis=1) / present.sum(axis=1)


def _accuracy(preds: Predictions, weights: np.ndarray) -> np.ndarray:
    return _mean(weights, (preds.y == preds.pred).astype(float))


def _log_loss(preds: Predictions, weights: np.ndarray) -> np.ndarray:
    proba = np.clip(preds.probabilities(), _EPS, 1.0)
    proba = proba / proba.sum(axis=1, keepdims=True)
    return _mean(weights, -np.log(proba[np.arange(len(preds)), preds.y.astype(int)]))


def _brier(preds: Predictions, weights: np.ndarray) -> np.ndarray:
    return _mean(weights, (preds.probabilities()[:, 1] - (preds.y == 1)) ** 2)


def _score_order(preds: Predictions, descending: bool) -> tuple[np.ndarray, np.ndarray]:
    """The rows in order of P(positive) (stable) and the scores in that order; computed once per
    ``Predictions``, so the resample blocks of a bootstrap share one sort."""
    key = "descending" if descending else "ascending"
    if key not in preds.cache:
        positive = preds.probabilities()[:, 1]
        order = np.argsort(-positive if descending else positive, kind="mergesort")
        preds.cache[key] = (order, positive[order])
    return preds.cache[key]


def _binary_roc_auc(preds: Predictions, weights: np.ndarray) -> np.ndarray:
    """Weighted Mann-Whitney AUC: P(score of a positive > score of a negative), ties count one half.
    Tied scores form one group; its weights are summed as differences of running sums at the group ends
    (``reduceat`` pays a call per group). The weights are whole counts (ones for a point estimate), so
    every sum here is of whole numbers or halves of them: exact in float64 in any order."""
    proba = preds.probabilities()
    if proba.shape[1] != 2:
        return _sklearn_weighted(preds, "roc_auc", weights)
    order, scores = _score_order(preds, descending=False)
    ordered = np.take(weights, order, axis=1)  # the same as weights[:, order], several times faster
    pos = ordered * (preds.y[order] == 1)
    neg = np.subtract(ordered, pos, out=ordered)  # in place: fewer fresh pages on a large block
    neg_up_to = np.cumsum(neg, axis=1)
    if len(scores) > 1 and (scores[1:] == scores[:-1]).any():  # tied scores: one group per distinct score
        ends = np.r_[np.flatnonzero(scores[1:] != scores[:-1]), len(scores) - 1]
        pos = np.diff(np.cumsum(pos, axis=1)[:, ends], axis=1, prepend=0.0)
        neg_up_to = neg_up_to[:, ends]
        neg = np.diff(neg_up_to, axis=1, prepend=0.0)
    total_pos, total_neg = pos.sum(axis=1), neg_up_to[:, -1].copy()
    # wins = (pos * (neg_up_to - 0.5 * neg)).sum(axis=1), the same operations, in place
    below = np.subtract(neg_up_to, np.multiply(neg, 0.5, out=neg), out=neg_up_to)
    wins = np.multiply(pos, below, out=pos).sum(axis=1)
    return np.where((total_pos > 0) & (total_neg > 0), wins / (total_pos * total_neg), np.nan)


def _binary_average_precision(preds: Predictions, weights: np.ndarray) -> np.ndarray:
    """Weighted average precision: the sum over score thresholds (high to low) of
    (recall gained at the threshold) x (precision at the threshold), as scikit-learn computes it."""
    order, scores = _score_order(preds, descending=True)
    positive = (preds.y[order] == 1).astype(float)
    ends = np.r_[np.flatnonzero(scores[1:] != scores[:-1]), len(scores) - 1]
    ordered = np.take(weights, order, axis=1)  # the same as weights[:, order], several times faster
    true_pos = np.cumsum(ordered * positive, axis=1)[:, ends]
    all_pos = np.cumsum(ordered, axis=1)[:, ends]
    total_pos = true_pos[:, -1:]
    precision = np.where(all_pos > 0, true_pos / np.where(all_pos > 0, all_pos, 1), 0.0)
    recall_gain = np.diff(np.c_[np.zeros(len(weights)), true_pos], axis=1) / np.where(total_pos > 0, total_pos, 1)
    return np.where(total_pos[:, 0] > 0, (recall_gain * precision).sum(axis=1), np.nan)


def _rmse(preds: Predictions, weights: np.ndarray) -> np.ndarray:
    return np.sqrt(_mean(weights, (preds.y - preds.pred) ** 2))


def _mae(preds: Predictions, weights: np.ndarray) -> np.ndarray:
    return _mean(weights, np.abs(preds.y - preds.pred))


def _mape(preds: Predictions, weights: np.ndarray) -> np.ndarray:
    return _mean(weights, np.abs(preds.y - preds.pred) / np.maximum(np.abs(preds.y), _EPS))


def _r2(preds: Predictions, weights: np.ndarray) -> np.ndarray:
    total = weights.sum(axis=1)
    residual = weights @ (preds.y - preds.pred) ** 2
    mean = (weights @ preds.y) / total
    spread = weights @ preds.y ** 2 - total * mean ** 2
    return np.where(spread > 0, 1.0 - residual / np.where(spread > 0, spread, 1), np.nan)


_VECTORISED: dict[str, Callable[[Predictions, np.ndarray], np.ndarray]] = {
    "accuracy": _accuracy, "balanced_accuracy": _balanced_accuracy,
    **{f"{kind}": _class_metric(kind, "binary") for kind in ("precision", "recall", "f1")},
    **{f"{kind}_{avg}": _class_metric(kind, avg) for kind in ("precision", "recall", "f1")
       for avg in ("macro", "weighted")},
    "log_loss": _log_loss, "brier": _brier, "roc_auc": _binary_roc_auc, "pr_auc": _binary_average_precision,
    "rmse": _rmse, "mae": _mae, "mape": _mape, "r2": _r2,
}


def _sklearn_weighted(preds: Predictions, name: str, weights: np.ndarray) -> np.ndarray:
    if name != "roc_auc":
        raise ValueError(f"unknown metric '{name}'")
    from sklearn.metrics import roc_auc_score

    labels = list(range(len(preds.labels())))
    out = np.full(len(weights), np.nan)
    for i, row in enumerate(weights):
        try:
            out[i] = roc_auc_score(preds.y, preds.proba, sample_weight=row, multi_class="ovr",
                                   average="macro", labels=labels)
        except ValueError:
            out[i] = np.nan  # undefined on this sample, e.g. one class only
    return out


def predictions_of(model: Any, frame: Any, y: Any, task: str, timing: dict[str, float] | None = None) -> Predictions:
    """Run ``model`` on ``frame`` and pair its output with the true values ``y``. With ``timing``, its
    ``"predict"`` gets the seconds of what ``model.predict(frame)`` runs (not ``predict_proba``)."""
    started = time.perf_counter()
    if task == "regression":
        predicted = np.asarray(model.predict(frame), dtype=float)
        _took(timing, started)
        return Predictions(task, np.asarray(y, dtype=float), predicted)
    classes = list(model.classes_)
    index = {label_text(c): i for i, c in enumerate(classes)}
    truth = label_indices(y, index)
    if (truth == -1).any():
        unseen = sorted({label_text(v) for v in y if label_text(v) not in index})[:5]
        raise LookupError(f"target values the model never saw in training: {', '.join(unseen)}")
    started = time.perf_counter()
    final, rows = _final_step_and_input(model, frame)
    labels = final.predict(rows)
    _took(timing, started)
    pred = label_indices(labels, index)
    proba = np.asarray(final.predict_proba(rows), dtype=float) if hasattr(final, "predict_proba") else None
    return Predictions(task, truth, pred, proba, [label_text(c) for c in classes])


def _took(timing: dict[str, float] | None, started: float) -> None:
    if timing is not None:
        timing["predict"] = time.perf_counter() - started


def _final_step_and_input(model: Any, frame: Any) -> tuple[Any, Any]:
    """A fitted pipeline's last step and ``frame`` through the steps before it, so the labels and the
    probabilities share one pass of the preprocessing. ``Pipeline.predict`` and ``predict_proba`` each
    run exactly these transforms and then the last step (sklearn/pipeline.py), so the outputs are the
    same; scikit-learn's ``cross_validate`` runs them once per scorer's method instead."""
    from sklearn.pipeline import Pipeline  # only with a model, which has imported scikit-learn already

    if isinstance(model, Pipeline) and len(model.steps) > 1:
        return model.steps[-1][1], model[:-1].transform(frame)
    return model, frame


def label_indices(values: Any, index: dict[str, int]) -> np.ndarray:
    """The position in ``index`` of each value's ``label_text`` (-1 for a label not in it). A column of
    numbers, booleans or text is mapped once per distinct value; other columns value by value (in an
    object column, 1, 1.0 and True are equal but have different texts)."""
    array = np.asarray(values)
    if array.dtype.kind in "biufU" and array.ndim == 1:
        distinct, inverse = np.unique(array, return_inverse=True)
        codes = np.array([index.get(label_text(v), -1) for v in distinct], dtype=np.int64)
        return codes[inverse.reshape(-1)]
    return np.array([index.get(label_text(v), -1) for v in values], dtype=np.int64)


def label_text(value: Any) -> str:
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        value = int(value)
    return str(value.item() if hasattr(value, "item") else value)
