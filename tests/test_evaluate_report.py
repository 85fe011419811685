"""The evaluate HTML report as a data scientist reads it: AUC/AP in the legends, calibration and score
distributions, a threshold table, residuals vs predicted, slices with row counts and bootstrap intervals.
Numbers are checked against scikit-learn on the holdout predictions the report was drawn from."""

from __future__ import annotations

import html as html_lib
import io
import json
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from mlci.ml import metrics
from mlci.ops.model.evaluate import slice_intervals, threshold_table
from tests.model_projects import write_project


def _evaluate(tmp_path, run_cli, task):
    root = write_project(tmp_path / task, task=task)
    assert run_cli("-C", root, "train")[0] == 0
    code, out, err = run_cli("-C", root, "--json", "evaluate")
    assert code == 0, err
    reports = root / "reports"
    with np.load(io.BytesIO((reports / "predictions.npz").read_bytes()), allow_pickle=False) as arrays:
        preds = metrics.Predictions.from_arrays(task, {k: arrays[k] for k in arrays.files})
    return json.loads(out), (reports / "evaluate.html").read_text(), preds


def _texts(page: str) -> set[str]:
    """The texts drawn in the report's plots (each an SVG ``<text>`` element)."""
    return {html_lib.unescape(t) for t in re.findall(r"<text[^>]*>(.*?)</text>", page, re.S)}


def test_binary_report_has_curves_with_scores_calibration_thresholds_and_slice_counts(tmp_path, run_cli):
    report, page, preds = _evaluate(tmp_path, run_cli, "binary")
    positive = preds.y == 1
    texts = _texts(page)
    auc = skm.roc_auc_score(positive, preds.proba[:, 1])
    ap = skm.average_precision_score(positive, preds.proba[:, 1])
    assert f"model (AUC {auc:.3f})" in texts and f"model (AP {ap:.3f})" in texts
    assert abs(report["details"]["metrics"]["roc_auc"] - auc) < 1e-9
    for caption in ("Calibration", "Score distribution per class", "Decision thresholds", "Permutation importance"):
        assert caption in page
    assert {f"actual {c} ({int(np.sum(preds.y == i)):,} rows)" for i, c in enumerate(preds.classes)} <= texts
    slices = report["details"]["slices"]["region"]
    assert {f"n={entry['rows']:,}" for entry in slices.values()} <= texts
    flagged = preds.proba[:, 1] >= 0.5
    row = re.search(r"<tr><td class=\"num\">0.5</td>(.*?)</tr>", page, re.S).group(1)
    cells = re.findall(r">([^<]*)</td>", row)
    assert float(cells[1]) == pytest.approx(skm.precision_score(positive, flagged), abs=5e-4)
    assert float(cells[2]) == pytest.approx(skm.recall_score(positive, flagged), abs=5e-4)
    assert int(cells[4]) == int(np.sum(flagged & positive))


def test_regression_report_has_residuals_vs_predicted(tmp_path, run_cli):
    _, page, _ = _evaluate(tmp_path, run_cli, "regression")
    assert "Residuals vs predicted" in page and "rmse 95% interval" in page


def test_multiclass_report_has_per_class_probabilities(tmp_path, run_cli):
    _, page, preds = _evaluate(tmp_path, run_cli, "multiclass")
    assert "Probability of the true class, per class" in page
    texts = _texts(page)
    assert {f"{c} ({int(np.sum(preds.y == i)):,} rows)" for i, c in enumerate(preds.classes)} <= texts


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), rows=st.integers(20, 400))
def test_slice_intervals_hold_the_estimate_and_narrow_with_rows(seed, rows):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, rows)
    pred = np.where(rng.random(rows) < 0.8, y, 1 - y)
    preds = metrics.Predictions("binary", y, pred, None, ["0", "1"])
    keys = {"k": np.where(np.arange(rows) < rows // 5, "small", "large")}
    spans = slice_intervals(preds, keys, ["accuracy"], seed=seed)["k"]
    for key, mask in (("small", keys["k"] == "small"), ("large", keys["k"] == "large")):
        value = float(np.mean(y[mask] == pred[mask]))
        low, high = spans[key]["accuracy"]
        assert low <= value + 1e-12 and value - 1e-12 <= high
    width = {k: spans[k]["accuracy"][1] - spans[k]["accuracy"][0] for k in spans}
    if rows >= 200:
        assert width["small"] > width["large"]


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), rows=st.integers(2, 300))
def test_threshold_table_matches_scikit_learn(seed, rows):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, rows)
    p = rng.random(rows)
    preds = metrics.Predictions("binary", y, (p >= 0.5).astype(int), np.column_stack([1 - p, p]), ["0", "1"])
    for row in threshold_table(preds):
        flagged = p >= row["threshold"]
        assert row["tp"] + row["fp"] + row["fn"] + row["tn"] == rows
        assert row["flagged_share"] == pytest.approx(flagged.mean())
        if flagged.any():
            assert row["precision"] == pytest.approx(skm.precision_score(y, flagged, zero_division=0))
        if y.any():
            assert row["recall"] == pytest.approx(skm.recall_score(y, flagged))


def test_permutation_importance_finds_the_signal_column(tmp_path):
    """A model that reads only column `signal`: shuffling it costs accuracy, shuffling `noise` nothing."""
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from mlci.ops.model.evaluate import permutation_importance
    from mlci.ops.model.train import Dataset

    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"signal": rng.normal(size=600), "noise": rng.normal(size=600)})
    y = pd.Series((frame["signal"] > 0).astype(int), name="y")
    model = LogisticRegression().fit(frame[["signal"]].assign(noise=0.0), y)
    model.coef_[0, 1] = 0.0
    data = Dataset(frame=frame, y=y, lineage={"path": "mem"})
    preds = metrics.predictions_of(model, frame, y, "binary")
    ranking = permutation_importance(model, data, ["signal", "noise"], preds, "accuracy", seed=0)
    assert [e["feature"] for e in ranking] == ["signal", "noise"]
    assert ranking[0]["mean"] > 0.3 and ranking[1]["mean"] == 0.0 and ranking[1]["std"] == 0.0


def test_permutation_importance_can_be_turned_off(tmp_path, run_cli):
    import yaml

    root = write_project(tmp_path / "off", task="binary")
    config = root / "mlci.yaml"
    settings = yaml.safe_load(config.read_text())
    settings["evaluation"]["importance"] = False
    config.write_text(yaml.safe_dump(settings))
    assert run_cli("-C", root, "train")[0] == 0
    code, _, err = run_cli("-C", root, "evaluate")
    assert code == 0, err
    page = (root / "reports" / "evaluate.html").read_text()
    assert "Permutation importance" not in page and "Calibration" in page
