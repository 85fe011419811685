"""mlci evaluate: holdout metrics equal scikit-learn's on the real model, slices, confusion matrix,
latency, metrics.json and predictions stored in the version, HTML with plots."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from mlci.core.config import load_project
from mlci.ops.model.registry import load_version_model
from tests.model_projects import write_project


@pytest.fixture
def evaluated(tmp_path, run_cli):
    root = write_project(tmp_path / "p")
    assert run_cli("-C", root, "train")[0] == 0
    code, out, err = run_cli("-C", root, "--json", "evaluate")
    assert code == 0, err
    return root, json.loads(out)


def test_metrics_match_scikit_learn_on_the_holdout(evaluated):
    root, report = evaluated
    model, record = load_version_model(load_project(root), 1)
    holdout = pd.read_csv(root / "data/holdout.csv")
    proba = model.predict_proba(holdout[list(record.features)])[:, 1]
    y = holdout["default"]
    values = report["details"]["metrics"]
    assert values["roc_auc"] == pytest.approx(skm.roc_auc_score(y, proba))
    assert values["pr_auc"] == pytest.approx(skm.average_precision_score(y, proba))
    assert values["brier"] == pytest.approx(skm.brier_score_loss(y, proba))
    assert values["f1_macro"] == pytest.approx(skm.f1_score(y, proba > 0.5, average="macro"))
    assert values["latency_p95_ms"] >= values["latency_p50_ms"] > 0
    matrix = report["details"]["confusion"]
    assert matrix == skm.confusion_matrix(y, (proba > 0.5).astype(int)).tolist()
    east = holdout["region"] == "east"
    slice_entry = report["details"]["slices"]["region"]["east"]
    assert slice_entry["rows"] == int(east.sum())
    assert slice_entry["metrics"]["roc_auc"] == pytest.approx(skm.roc_auc_score(y[east], proba[east]))


def test_results_are_stored_in_the_version_and_reports(evaluated):
    root, report = evaluated
    version = root / ".mlci/registry/versions/v1"
    stored = json.loads((version / "metrics.json").read_text())
    record = json.loads((version / "version.json").read_text())
    assert record["metrics"]["roc_auc"] == stored["metrics"]["roc_auc"]
    assert set(record["artifacts"]) >= {"model.skops", "metrics.json", "predictions.npz", "model_card.md"}
    with np.load(io.BytesIO((version / "predictions.npz").read_bytes()), allow_pickle=False) as arrays:
        assert len(arrays["y"]) == 300 and arrays["proba"].shape == (300, 2) and "slice:region" in arrays.files
    html = (root / "reports/evaluate.html").read_text()
    assert html.count("<svg") >= 4   # confusion matrix, ROC, PR, slice comparison
    assert "Slices by" in html and "Holdout metrics" in html
    assert json.loads((root / "reports/evaluate.json").read_text())["kind"] == "evaluate"
    assert (root / "reports/evaluate.junit.xml").exists() and (root / "reports/metrics.json").exists()
    assert "| roc_auc |" in (version / "model_card.md").read_text()


def test_unknown_slice_column_is_a_config_error(tmp_path, run_cli):
    root = write_project(tmp_path / "p")
    text = (root / "mlci.yaml").read_text().replace("- region", "- regoin")
    (root / "mlci.yaml").write_text(text)
    assert run_cli("-C", root, "train")[0] == 0
    code, _, err = run_cli("-C", root, "evaluate")
    assert code == 2 and "evaluation.slices[0]" in err and "regoin" in err
