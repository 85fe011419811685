"""TensorBoard scalars, read back with TensorBoard's own event reader: the nightly monitor's history per
feature over time, and the model's history per version (cross-validation folds, holdout metrics)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from mlci.adapters.pushgateway import Metric
from mlci.cli.main import run
from mlci.core.config import load_project
from mlci.ops.model.scalars import log_evaluation, log_monitoring, log_training

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "credit-risk"


def scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    events = EventAccumulator(str(run_dir))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


@pytest.fixture
def project(tmp_path) -> Path:
    root = tmp_path / "credit-risk"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns("reports", ".mlci", "predictions"))
    config = root / "mlci.yaml"
    config.write_text(config.read_text() + "\ntensorboard: runs/tensorboard\n")
    return root


def test_every_nightly_run_adds_each_features_drift_score_at_its_time(project, capsys):
    for _ in range(2):
        code = run(["-C", str(project), "--json", "monitor", "--no-plots", "--reference", "data/train.csv"])
        assert code == 1
        report = json.loads(capsys.readouterr().out)
    history = scalars(project / "runs" / "tensorboard" / "monitor")
    scores = {c["name"].split(": ", 1)[1]: c["details"]["score"] for c in report["checks"] if c["group"] == "drift"}
    income = history["mlci_drift_score/feature_income/method_ks"]
    assert len(income) == 2 and income[0][0] <= income[1][0]
    assert income[-1][1] == pytest.approx(scores["income"], rel=1e-6, abs=1e-30)
    assert history["mlci_dataset_drift"][-1][1] == 1.0
    assert {"mlci_data_missing_ratio/feature_age",
            "mlci_monitor_checks_failed"} <= history.keys()


def test_train_and_evaluate_write_their_history_per_version(project, capsys):
    for _ in range(2):
        assert run(["-C", str(project), "train"]) == 0
        assert run(["-C", str(project), "evaluate"]) == 0
    logdir = project / "runs" / "tensorboard"
    trained = scalars(logdir / "train")
    assert [step for step, _ in trained["cv/roc_auc"]] == [1, 2]
    assert [step for step, _ in scalars(logdir / "train" / "v2")["cv/roc_auc"]] == [1, 2, 3, 4, 5]
    record = json.loads((project / ".mlci" / "registry" / "versions" / "v2" / "version.json").read_text())
    assert trained["cv/roc_auc"][1][1] == pytest.approx(record["cv"]["roc_auc"]["mean"], rel=1e-6)
    evaluated = scalars(logdir / "evaluate")
    assert [step for step, _ in evaluated["holdout/roc_auc"]] == [1, 2]
    assert any(tag.startswith("slice/region_east/") for tag in evaluated)


def test_training_and_evaluation_scalars_per_version(project):
    loaded = load_project(project)
    log_training(loaded, 1, {"roc_auc": {"mean": 0.71, "std": 0.01, "folds": [0.70, 0.72, 0.71]}})
    log_training(loaded, 2, {"roc_auc": {"mean": 0.74, "std": 0.01, "folds": [0.73, 0.75, 0.74]}})
    log_evaluation(loaded, 2, {"roc_auc": 0.76, "p50_ms": 1.5},
                   {"region": {"east": {"rows": 26, "metrics": {"accuracy": 0.8}}}})
    logdir = project / "runs" / "tensorboard"
    assert scalars(logdir / "train")["cv/roc_auc"] == [(1, pytest.approx(0.71)), (2, pytest.approx(0.74))]
    assert [step for step, _ in scalars(logdir / "train" / "v2")["cv/roc_auc"]] == [1, 2, 3]
    evaluated = scalars(logdir / "evaluate")
    assert evaluated["holdout/roc_auc"] == [(2, pytest.approx(0.76))]
    assert evaluated["slice/region_east/accuracy"] == [(2, pytest.approx(0.8))]


def test_nothing_is_written_without_the_setting_and_non_finite_values_are_left_out(tmp_path, project):
    plain = tmp_path / "plain"
    shutil.copytree(EXAMPLE, plain, ignore=shutil.ignore_patterns("reports", ".mlci", "predictions"))
    log_monitoring(load_project(plain), [Metric("mlci_dataset_drift", "x").add(1.0)], now=1.0)
    assert not any(p.name.startswith("events.out") for p in plain.rglob("*"))
    log_monitoring(load_project(project), [Metric("mlci_drift_score", "x").add(float("nan"), feature="a")
                                           .add(0.5, feature="b")], now=100.0)
    history = scalars(project / "runs" / "tensorboard" / "monitor")
    assert history == {"mlci_drift_score/feature_b": [(100, 0.5)]}


def test_the_pipelines_archive_a_tensorboard_folder_in_the_workspace(project, tmp_path):
    """archiveArtifacts takes a comma-separated list of Ant patterns (Jenkins core ArtifactArchiver), so each
    build keeps its event files and `tensorboard --logdir $JENKINS_HOME/jobs/<job>/builds` shows them all."""
    from mlci.ops.jenkins.pipelines import render_pipelines

    texts = render_pipelines(load_project(project))
    for text in texts.values():
        assert "archiveArtifacts artifacts: 'reports/**, runs/tensorboard/**'" in text
    config = project / "mlci.yaml"
    config.write_text(config.read_text().replace("tensorboard: runs/tensorboard", f"tensorboard: {tmp_path / 'tb'}"))
    for text in render_pipelines(load_project(project)).values():
        assert "archiveArtifacts artifacts: 'reports/**'," in text
