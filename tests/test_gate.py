"""mlci gate: vectorised metrics and the paired bootstrap against scikit-learn, files-only mode through
the real CLI (verdicts, exit codes, JUnit), and registry mode against a promoted champion."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from mlci.ml import metrics
from mlci.ml.metrics import Predictions
from tests.model_projects import write_project


def classification(n=2000, k=2, seed=0, skill=1.0) -> Predictions:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    logits = rng.normal(0, 1, (n, k))
    logits[np.arange(n), y] += skill
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return Predictions("binary" if k == 2 else "multiclass", y, proba.argmax(axis=1), proba,
                       [str(i) for i in range(k)])


def regression(n=2000, seed=0, noise=1.0) -> Predictions:
    rng = np.random.default_rng(seed)
    y = rng.normal(10, 3, n)
    return Predictions("regression", y, y + rng.normal(0, noise, n))


def sklearn_value(name, p: Predictions, w):
    labels = list(range(len(p.classes))) if p.classes else None
    binary = {"pos_label": 1, "zero_division": 0}
    table = {
        "accuracy": lambda: skm.accuracy_score(p.y, p.pred, sample_weight=w),
        "balanced_accuracy": lambda: skm.balanced_accuracy_score(p.y, p.pred, sample_weight=w),
        "precision": lambda: skm.precision_score(p.y, p.pred, sample_weight=w, **binary),
        "recall": lambda: skm.recall_score(p.y, p.pred, sample_weight=w, **binary),
        "f1": lambda: skm.f1_score(p.y, p.pred, sample_weight=w, **binary),
        "roc_auc": lambda: (skm.roc_auc_score(p.y, p.proba[:, 1], sample_weight=w) if len(p.classes) == 2 else
                            skm.roc_auc_score(p.y, p.proba, multi_class="ovr", sample_weight=w, labels=labels)),
        "pr_auc": lambda: skm.average_precision_score(p.y, p.proba[:, 1], sample_weight=w),
        "log_loss": lambda: skm.log_loss(p.y, p.proba, sample_weight=w, labels=labels),
        "brier": lambda: skm.brier_score_loss(p.y, p.proba[:, 1], sample_weight=w),
        "rmse": lambda: skm.root_mean_squared_error(p.y, p.pred, sample_weight=w),
        "mae": lambda: skm.mean_absolute_error(p.y, p.pred, sample_weight=w),
        "r2": lambda: skm.r2_score(p.y, p.pred, sample_weight=w),
        "mape": lambda: skm.mean_absolute_percentage_error(p.y, p.pred, sample_weight=w),
    }
    for avg in ("macro", "weighted"):
        for kind, fn in (("precision", skm.precision_score), ("recall", skm.recall_score), ("f1", skm.f1_score)):
            table[f"{kind}_{avg}"] = (lambda fn=fn, avg=avg: fn(p.y, p.pred, average=avg, sample_weight=w,
                                                                labels=labels, zero_division=0))
    return table[name]()


@pytest.mark.parametrize("preds", [classification(500), classification(500, k=3), regression(500)],
                         ids=["binary", "multiclass", "regression"])
def test_every_metric_equals_scikit_learn_with_bootstrap_weights(preds):
    weights = metrics.resample_weights(np.random.default_rng(3), 4, len(preds)).astype(float)
    for name in metrics.available(preds):
        ours = metrics.weighted(preds, name, weights)
        expected = [sklearn_value(name, preds, w) for w in weights]
        assert ours == pytest.approx(expected, rel=1e-9, abs=1e-12), name
        assert metrics.compute(preds, [name])[name] == pytest.approx(sklearn_value(name, preds, None)), name


def test_ranking_metrics_handle_tied_scores_like_scikit_learn():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 400)
    score = np.round(rng.random(400), 1)   # many ties
    preds = Predictions("binary", y, (score > 0.5).astype(int), np.column_stack([1 - score, score]), ["0", "1"])
    assert metrics.compute(preds, ["roc_auc"])["roc_auc"] == pytest.approx(skm.roc_auc_score(y, score))
    weights = metrics.resample_weights(np.random.default_rng(1), 3, 400)
    assert metrics.weighted(preds, "pr_auc", weights) == pytest.approx(
        [skm.average_precision_score(y, score, sample_weight=w) for w in weights])


def test_paired_bootstrap_is_seeded_and_paired():
    """Its speed is a benchmark's business (a wall-clock bound in a unit test fails on a loaded machine)."""
    champion = classification(2000, seed=1, skill=1.0)
    better = Predictions("binary", champion.y, champion.pred, champion.proba.copy(), champion.classes)
    better.proba[:, 1] = np.clip(better.proba[:, 1] + 0.3 * (better.y - 0.5), 0, 1)
    better.proba[:, 0] = 1 - better.proba[:, 1]
    diffs = metrics.bootstrap_differences(better, champion, "roc_auc", samples=1000, seed=7)
    assert diffs.shape == (1000,)
    assert np.array_equal(diffs, metrics.bootstrap_differences(better, champion, "roc_auc", samples=1000, seed=7))
    assert (diffs > 0).all()  # the improvement holds on every resample: the draws are paired
    same = metrics.bootstrap_differences(champion, champion, "log_loss", samples=200, seed=1)
    assert np.all(same == 0)


_LABELS = {
    "int": st.lists(st.integers(-3, 3), max_size=40).map(lambda v: np.array(v, dtype=np.int64)),
    "float": st.lists(st.sampled_from([0.0, -0.0, 1.0, 2.5, float("nan"), 1e20]), max_size=40).map(np.array),
    "bool": st.lists(st.booleans(), max_size=40).map(lambda v: np.array(v, dtype=bool)),
    "text": st.lists(st.sampled_from(["yes", "no", "1", "", "é"]), max_size=40).map(np.array),
    "object": st.lists(st.sampled_from([1, 1.0, True, "1", "a", None, 2]), max_size=40).map(
        lambda v: np.array(v, dtype=object)),
}


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(list(_LABELS)).flatmap(lambda kind: _LABELS[kind]), st.data())
def test_labels_are_mapped_to_class_positions_as_value_by_value(values, data):
    """The per-distinct-value mapping used on whole columns equals label_text on each value."""
    texts = sorted({metrics.label_text(v) for v in values.tolist()} | {"0", "True", "nan"})
    index = {text: i for i, text in enumerate(data.draw(st.permutations(texts))) if i % 3 != 2}
    expected = [index.get(metrics.label_text(v), -1) for v in values]
    assert metrics.label_indices(values, index).tolist() == expected


def test_bootstrap_sign_makes_lower_is_better_metrics_positive_when_improving():
    worse = regression(1000, seed=2, noise=2.0)
    better = Predictions("regression", worse.y, worse.y + (worse.pred - worse.y) * 0.5)
    assert np.all(metrics.bootstrap_differences(better, worse, "rmse", samples=100, seed=0) > 0)


# -- files-only mode through the CLI ----------------------------------------------------------------

def gate_project(tmp_path, rules, task="binary", **gates):
    root = tmp_path / "p"
    root.mkdir(parents=True)
    config = {"project": "files", "data": {"train": "train.csv"}, "model": {"task": task,
              "estimator": "sklearn.linear_model.LogisticRegression"}, "gates": {"rules": rules, **gates}}
    (root / "mlci.yaml").write_text(yaml.safe_dump(config))
    return root


def write_metrics(path, values, slices=None):
    path.write_text(json.dumps({"metrics": values, "slices": slices or {}}))
    return path


def test_files_only_thresholds_slices_and_junit(tmp_path, run_cli):
    root = gate_project(tmp_path, [
        {"metric": "roc_auc", "min": 0.7},
        {"metric": "accuracy", "min": 0.8, "slice": {"column": "region", "value": "east"}, "severity": "warn"},
    ])
    new = write_metrics(tmp_path / "new.json", {"roc_auc": 0.75},
                        {"region": {"east": {"rows": 50, "metrics": {"accuracy": 0.7}}}})
    code, out, err = run_cli("-C", root, "gate", "--metrics", new)
    assert code == 0, err
    assert "warn" in out
    suite = ET.parse(root / "reports/gate.junit.xml").getroot().find("testsuite")
    assert suite.get("tests") == "2" and suite.get("failures") == "1"
    failed = [c.get("name") for c in suite.iter("testcase") if c.find("failure") is not None]
    assert failed == ["accuracy[region=east] >= 0.8"]
    report = json.loads((root / "reports/gate.json").read_text())
    assert [c["status"] for c in report["checks"]] == ["pass", "warn"]
    assert (root / "reports/gate.html").read_text().count("<tr>") >= 3


def test_files_only_champion_comparison_and_exit_codes(tmp_path, run_cli):
    root = gate_project(tmp_path, [{"metric": "rmse", "max_drop": 0.1, "relative": True}], task="regression")
    old = write_metrics(tmp_path / "old.json", {"rmse": 10.0})
    code, out, _ = run_cli("-C", root, "--json", "gate", "--metrics", write_metrics(tmp_path / "a.json",
                                                                                    {"rmse": 10.9}),
                           "--baseline", old)
    assert code == 0 and json.loads(out)["checks"][0]["status"] == "pass"
    code, out, _ = run_cli("-C", root, "--json", "gate", "--metrics", write_metrics(tmp_path / "b.json",
                                                                                    {"rmse": 11.2}),
                           "--baseline", old)
    assert code == 1
    check = json.loads(out)["checks"][0]
    assert check["value"] == pytest.approx(-1.2) and check["details"]["epsilon"] == pytest.approx(1.0)


def test_files_only_first_run_notice_and_nan_fails_closed(tmp_path, run_cli):
    root = gate_project(tmp_path, [{"metric": "roc_auc", "max_drop": 0.0}, {"metric": "accuracy", "min": 0.1}])
    new = tmp_path / "nan.json"
    new.write_text('{"metrics": {"roc_auc": 0.8, "accuracy": NaN}}')
    code, out, err = run_cli("-C", root, "--json", "gate", "--metrics", new)
    assert code == 1
    assert "notice: no champion 'production' yet" in err
    checks = json.loads(out)["checks"]
    assert [c["status"] for c in checks] == ["pass", "fail"]
    assert "fail closed" in checks[1]["message"]


def test_files_only_bad_input(tmp_path, run_cli):
    root = gate_project(tmp_path, [{"metric": "roc_auc", "min": 0.5}])
    (tmp_path / "broken.json").write_text("{not json")
    code, _, err = run_cli("-C", root, "gate", "--metrics", tmp_path / "broken.json")
    assert code == 2 and "not a JSON metrics file" in err
    code, _, err = run_cli("-C", root, "gate", "--baseline", tmp_path / "broken.json")
    assert code == 2 and "--baseline needs --metrics" in err
    bad = gate_project(tmp_path / "x", [{"metric": "rmse", "min": 0.5}])
    code, _, err = run_cli("-C", bad, "gate", "--metrics", write_metrics(tmp_path / "m.json", {"rmse": 1}))
    assert code == 2 and "gates.rules[0].metric" in err and "not a binary metric" in err


# -- registry mode: a real champion, the paired bootstrap on the same holdout rows ------------------

def test_registry_gate_bootstrap_against_a_promoted_champion(tmp_path, run_cli):
    rules = [{"metric": "roc_auc", "max_drop": 0.0, "bootstrap": True},
             {"metric": "roc_auc", "max_drop": 0.01}]
    root = write_project(tmp_path / "reg", gates={"rules": rules, "bootstrap_samples": 500})
    assert run_cli("-C", root, "train")[0] == 0
    assert run_cli("-C", root, "evaluate")[0] == 0
    code, _, err = run_cli("-C", root, "gate")
    assert code == 0 and "first_run policy" in err
    assert run_cli("-C", root, "registry", "promote", "1", "--to", "production")[0] == 0
    # a much weaker challenger: a model that sees two features only
    config = yaml.safe_load((root / "mlci.yaml").read_text())
    config["model"]["params"] = {"C": 1e-4, "max_iter": 500}
    (root / "mlci.yaml").write_text(yaml.safe_dump(config))
    assert run_cli("-C", root, "train")[0] == 0
    assert run_cli("-C", root, "evaluate")[0] == 0
    code, out, _ = run_cli("-C", root, "--json", "gate")
    report = json.loads(out)
    assert report["details"]["challenger"] == "v2" and report["details"]["champion"] == "v1"
    bootstrap = report["checks"][0]
    assert bootstrap["details"]["resamples"] == 500
    assert bootstrap["value"] < bootstrap["details"]["delta"]   # the lower bound sits below the point estimate
    assert code == (0 if all(c["passed"] for c in report["checks"]) else 1)
    # the champion against itself passes: Δ = 0 on every resample
    code, out, _ = run_cli("-C", root, "--json", "gate", "--model", "1")
    assert code == 0 and json.loads(out)["checks"][0]["value"] == 0


def test_files_only_unreadable_predictions_are_a_one_line_data_error(tmp_path, run_cli):
    import hashlib

    root = gate_project(tmp_path, [{"metric": "roc_auc", "max_drop": 0.01, "bootstrap": True}])
    paths = []
    for name in ("new", "old"):
        folder = tmp_path / name
        folder.mkdir()
        garbage = b"PK\x03\x04 not a zip archive"
        (folder / "predictions.npz").write_bytes(garbage)
        (folder / "metrics.json").write_text(json.dumps({
            "metrics": {"roc_auc": 0.8}, "task": "binary", "predictions": "predictions.npz",
            "predictions_sha256": hashlib.sha256(garbage).hexdigest()}))
        paths.append(folder / "metrics.json")
    code, _, err = run_cli("-C", root, "gate", "--metrics", paths[0], "--baseline", paths[1])
    assert code == 2, err
    assert "predictions.npz" in err and "not a readable predictions file" in err
    assert "Traceback" not in err
