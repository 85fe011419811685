"""Binary, multiclass and regression end to end through the CLI: train, evaluate, gate, promote,
retrain, gate against the champion with the paired bootstrap."""

from __future__ import annotations

import json

import pytest

from tests.model_projects import write_project

CASES = {
    "binary": ([{"metric": "roc_auc", "min": 0.6}, {"metric": "roc_auc", "max_drop": 0.02, "bootstrap": True},
                {"metric": "accuracy", "slice": {"column": "region", "value": "east"}, "min": 0.5}],
               "roc_auc"),
    "multiclass": ([{"metric": "f1_macro", "min": 0.3}, {"metric": "log_loss", "max_drop": 0.05, "relative": True,
                                                         "bootstrap": True}], "f1_macro"),
    "regression": ([{"metric": "r2", "min": 0.3}, {"metric": "rmse", "max_drop": 0.05, "relative": True,
                                                   "bootstrap": True}, {"metric": "mape", "max": 5}], "r2"),
}


@pytest.mark.parametrize("task", list(CASES))
def test_end_to_end(tmp_path, run_cli, task):
    rules, headline = CASES[task]
    root = write_project(tmp_path / task, task=task, gates={"rules": rules, "bootstrap_samples": 300})
    code, out, err = run_cli("-C", root, "--json", "train")
    assert code == 0, err
    assert headline in json.loads(out)["cv"] or task == "regression"
    code, out, err = run_cli("-C", root, "--json", "evaluate")
    assert code == 0, err
    assert headline in json.loads(out)["details"]["metrics"]
    code, out, err = run_cli("-C", root, "--json", "gate")
    assert code == 0, out
    first = json.loads(out)
    assert first["details"]["champion"] is None
    assert run_cli("-C", root, "registry", "promote", "1", "--to", "production")[0] == 0
    assert run_cli("-C", root, "train")[0] == 0 and run_cli("-C", root, "evaluate")[0] == 0
    code, out, _ = run_cli("-C", root, "--json", "gate")
    second = json.loads(out)
    assert code == 0 and second["details"]["champion"] == "v1"
    bootstrap = next(c for c in second["checks"] if "bootstrap" in c["name"])
    assert bootstrap["details"]["resamples"] == 300 and bootstrap["value"] == pytest.approx(0.0)
