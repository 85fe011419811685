"""The cheaper evaluate paths give the values the earlier ones gave: ROC AUC and average precision on rows
laid out down axis 0 with one sort per predictions, bootstrap resamples drawn in blocks, slice values mapped
once per distinct value. Sums of whole numbers (ROC AUC, accuracy, F1, the slice texts) are equal bit for
bit; sums of fractions (average precision, log loss) may round their last digit differently. The reference
functions below are the earlier code, kept verbatim. Last, the latency timing's stopping rule, against
timing all the rows as before."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlci.core.gates import slice_key
from mlci.ml import metrics
from mlci.ops.model import evaluate as evaluate_module
from mlci.ops.model.evaluate import MISSING_SLICE, SLICE_CONFIDENCE, SLICE_RESAMPLES, slice_intervals


def _earlier_roc_auc(preds, weights):
    proba = preds.probabilities()
    order = np.argsort(proba[:, 1], kind="mergesort")
    scores = proba[order, 1]
    positive = (preds.y[order] == 1).astype(float)
    starts = np.flatnonzero(np.r_[True, scores[1:] != scores[:-1]])
    ordered = weights[:, order]
    pos = np.add.reduceat(ordered * positive, starts, axis=1)
    neg = np.add.reduceat(ordered * (1.0 - positive), starts, axis=1)
    neg_below = np.cumsum(neg, axis=1) - neg
    total_pos, total_neg = pos.sum(axis=1), neg.sum(axis=1)
    wins = (pos * (neg_below + 0.5 * neg)).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((total_pos > 0) & (total_neg > 0), wins / (total_pos * total_neg), np.nan)


def _earlier_average_precision(preds, weights):
    proba = preds.probabilities()
    order = np.argsort(-proba[:, 1], kind="mergesort")
    scores = proba[order, 1]
    positive = (preds.y[order] == 1).astype(float)
    ends = np.r_[np.flatnonzero(scores[1:] != scores[:-1]), len(scores) - 1]
    ordered = weights[:, order]
    true_pos = np.cumsum(ordered * positive, axis=1)[:, ends]
    all_pos = np.cumsum(ordered, axis=1)[:, ends]
    total_pos = true_pos[:, -1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(all_pos > 0, true_pos / np.where(all_pos > 0, all_pos, 1), 0.0)
        recall_gain = np.diff(np.c_[np.zeros(len(weights)), true_pos], axis=1) / np.where(total_pos > 0, total_pos, 1)
        return np.where(total_pos[:, 0] > 0, (recall_gain * precision).sum(axis=1), np.nan)


def _earlier_slice_intervals(preds, keys, names, *, seed):
    rng = np.random.default_rng(seed)
    alpha = (1 - SLICE_CONFIDENCE) / 2
    out = {}
    for column, values in keys.items():
        out[column] = {}
        for key in sorted(set(values)):
            subset = preds.subset(values == key)
            weights = metrics.resample_weights(rng, SLICE_RESAMPLES, len(subset))
            out[column][key] = {}
            for name in names:
                try:
                    scores = metrics.weighted(subset, name, weights)
                except ValueError:
                    scores = np.array([np.nan])
                scores = scores[np.isfinite(scores)]
                out[column][key][name] = (None if scores.size < SLICE_RESAMPLES // 2 else
                                          (float(np.quantile(scores, alpha)), float(np.quantile(scores, 1 - alpha))))
    return out


# metrics whose weighted sums are of whole numbers (counts, 0/1 outcomes, halves): exact in any order
WHOLE_NUMBER_SUMS = ("roc_auc", "accuracy", "f1")


def _binary(seed: int, rows: int, distinct: int) -> metrics.Predictions:
    """Binary predictions whose scores take ``distinct`` values (few: many ties; 0: continuous)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, rows)
    score = rng.random(rows) if distinct == 0 else rng.integers(0, distinct, rows) / distinct
    score = np.clip(score + 0.3 * (y - 0.5) * rng.random(rows), 0, 1)
    if distinct:
        score = np.round(score * distinct) / distinct
    return metrics.Predictions("binary", y, (score >= 0.5).astype(int), np.column_stack([1 - score, score]),
                               ["no", "yes"])


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), rows=st.integers(1, 400), distinct=st.sampled_from([0, 2, 5, 40]),
       samples=st.integers(1, 320))
def test_roc_auc_and_average_precision_equal_the_earlier_code(seed, rows, distinct, samples):
    preds = _binary(seed, rows, distinct)
    weights = metrics.resample_weights(np.random.default_rng(seed), samples, rows)
    for name, earlier in (("roc_auc", _earlier_roc_auc), ("pr_auc", _earlier_average_precision)):
        for w in (weights, np.ones((1, rows))):
            new, old = metrics.weighted(preds, name, w), earlier(preds, w)
            assert np.array_equal(np.isnan(new), np.isnan(old))
            if name in WHOLE_NUMBER_SUMS:
                assert np.array_equal(new, old, equal_nan=True), (name, new, old)
            else:  # a sum of fractions, in another order than the earlier layout's: the last digit may differ
                assert new[~np.isnan(new)] == pytest.approx(old[~np.isnan(old)], rel=1e-12)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), rows=st.integers(2, 300), block_cells=st.sampled_from([1, 97, 1000, 4_000_000]),
       name=st.sampled_from(["roc_auc", "pr_auc", "accuracy", "f1", "log_loss"]))
def test_slice_intervals_in_resample_blocks_equal_the_earlier_all_at_once_intervals(seed, rows, block_cells, name):
    preds = _binary(seed, rows, distinct=seed % 3 * 10)
    keys = {"k": np.where(np.random.default_rng(seed).random(rows) < 0.3, "small", "large")}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(metrics, "_BLOCK_CELLS", block_cells)
        new = slice_intervals(preds, keys, [name], seed=seed)
    earlier = _earlier_slice_intervals(preds, keys, [name], seed=seed)
    if name in WHOLE_NUMBER_SUMS:
        assert new == earlier
    else:  # a mean of fractions by a matrix product: a block of another shape may round the last digit
        assert new.keys() == earlier.keys()
        for key, spans in earlier["k"].items():
            assert (new["k"][key][name] is None) == (spans[name] is None)
            if spans[name] is not None:
                assert new["k"][key][name] == pytest.approx(spans[name], rel=1e-12, abs=1e-15)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), rows=st.integers(2, 200), block_cells=st.sampled_from([1, 50, 4_000_000]))
def test_the_gates_paired_bootstrap_is_the_same_in_any_block_size(seed, rows, block_cells):
    challenger, champion = _binary(seed, rows, 0), _binary(seed + 1, rows, 7)
    expected = metrics.bootstrap_differences(challenger, champion, "roc_auc", samples=60, seed=seed)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(metrics, "_BLOCK_CELLS", block_cells)
        got = metrics.bootstrap_differences(_binary(seed, rows, 0), _binary(seed + 1, rows, 7), "roc_auc",
                                            samples=60, seed=seed)
    assert np.array_equal(got, expected, equal_nan=True)


def _earlier_slice_texts(column):
    return column.map(lambda v: MISSING_SLICE if v is None or v != v else slice_key(v)).to_numpy(dtype=str)


_SLICE_VALUES = st.one_of(st.none(), st.just(float("nan")), st.text(max_size=6), st.integers(-3, 3),
                          st.floats(-3, 3, allow_nan=False), st.booleans())


@settings(max_examples=150, deadline=None)
@given(values=st.lists(_SLICE_VALUES, max_size=40),
       dtype=st.sampled_from([None, "object", "float64", "int64", "category", "string"]))
def test_slice_texts_equal_the_value_by_value_mapping(values, dtype):
    column = pd.Series(values, dtype=object)
    if dtype is not None:
        try:
            column = column.astype(dtype)
        except (TypeError, ValueError):
            return  # not convertible: no such column comes from a read
    try:
        earlier = _earlier_slice_texts(column)
    except TypeError:  # pandas' NA has no truth value: the earlier mapping failed on it
        return
    new = evaluate_module.slice_texts(column)
    # the same texts row by row; the array's width is not compared (pandas' map of a category column can
    # give a wider one than its texts need)
    assert new.dtype.kind == "U" and new.tolist() == earlier.tolist()


def _row_times(rng: np.random.Generator, kind: str, n: int) -> np.ndarray:
    """Row times around 5 ms: steady, log-normally spread, or with a share of 3x outliers."""
    if kind == "steady":
        return 5 + 0.2 * rng.random(n)
    if kind == "lognormal":
        return 5 * np.exp(rng.normal(0, 0.3, n))
    return 5 * (1 + 0.05 * rng.random(n)) * np.where(rng.random(n) < float(kind), 3.0, 1.0)


@pytest.mark.parametrize("kind", ["steady", "lognormal", "0.01", "0.03", "0.05", "0.08", "0.15"])
def test_stopping_early_misses_the_true_percentiles_hardly_more_often_than_timing_all_200_rows(kind):
    """Over 300 seeded runs, how often the p50 or p95 is more than 10% off the distribution's own (from a
    million draws): with the stopping rule, and with all 200 rows as before. Rare outliers can be missed
    by a short run, so the rule is a bet; it may lose at most 3 points more often than 200 rows do."""
    rng = np.random.default_rng(0)
    population = _row_times(rng, kind, 1_000_000)
    truth = {q: np.percentile(population, q) for q in (50, 95)}

    def off(times: np.ndarray) -> bool:
        return any(abs(np.percentile(times, q) / truth[q] - 1) > 0.1 for q in (50, 95))
    early = full = 0
    for _ in range(300):
        times = _row_times(rng, kind, 200)
        stop = next((n for n in range(1, 201) if evaluate_module.latency_settled(list(times[:n]))), 200)
        assert stop >= evaluate_module.LATENCY_MIN_ROWS
        early += off(times[:stop])
        full += off(times)
    assert early / 300 <= full / 300 + 0.03


def test_steady_row_times_settle_at_the_minimum_and_noisy_ones_do_not():
    steady = list(5.0 + np.random.default_rng(0).random(200) * 0.2)
    assert evaluate_module.latency_settled(steady[:50])
    noisy = list(5.0 * np.where(np.random.default_rng(1).random(200) < 0.1, 4.0, 1.0))
    assert not any(evaluate_module.latency_settled(noisy[:n]) for n in range(1, 201))


class _Clocked:
    """A model whose predict takes `seconds[i]` on its i-th call (a fake clock, not a sleep)."""

    def __init__(self, seconds, clock):
        self.seconds, self.clock, self.calls = seconds, clock, 0

    def predict(self, row):
        self.clock[0] += self.seconds[self.calls]
        self.calls += 1


def test_measure_latency_times_the_rows_it_reports_and_respects_the_cap(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(evaluate_module.time, "perf_counter", lambda: clock[0])
    frame = pd.DataFrame({"x": range(300)})
    noisy = 0.005 * np.exp(np.random.default_rng(2).normal(0, 0.5, 300))  # spread: never settles
    model = _Clocked(noisy, clock)
    out = evaluate_module.measure_latency(model, frame, 120, budget=60, quiet=True)
    assert out["rows"] == model.calls == 120
    assert out["p50_ms"] == pytest.approx(np.percentile(noisy[:120] * 1000, 50))
    assert out["p95_ms"] == pytest.approx(np.percentile(noisy[:120] * 1000, 95))
    steady = _Clocked(np.full(300, 0.005), clock)
    assert evaluate_module.measure_latency(steady, frame, 200, budget=60, quiet=True)["rows"] == 50
