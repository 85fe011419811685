"""mlci run: stages in order through the real commands, stop at the first failure with its exit code,
skip what is not configured, summary on stdout."""

from __future__ import annotations

import json

import yaml

from tests.model_projects import write_project


def test_run_validate_to_gate_then_skips_unconfigured_stages(tmp_path, run_cli):
    root = write_project(tmp_path / "p", gates={"rules": [{"metric": "roc_auc", "min": 0.5}]})
    code, out, err = run_cli("-C", root, "--json", "run")
    summary = json.loads(out)
    assert code == 0, err
    assert [(s["stage"], s["result"]) for s in summary["stages"]] == [
        ("validate", "passed"), ("train", "passed"), ("evaluate", "passed"), ("gate", "passed"),
        ("build", "skipped"), ("push", "skipped"), ("deploy", "skipped")]
    assert summary["stages"][4]["reason"] == "not configured: no `image` section"
    assert "==> mlci train" in err and (root / "reports/gate.json").exists()


def test_run_stops_at_the_first_failure_with_its_exit_code(tmp_path, run_cli):
    root = write_project(tmp_path / "p", gates={"rules": [{"metric": "roc_auc", "min": 0.99}]})
    code, out, _ = run_cli("-C", root, "run", "--from", "train")
    assert code == 1
    lines = [line.split()[:3] for line in out.splitlines() if line.startswith(("train ", "evaluate", "gate "))]
    assert [line[0] for line in lines[-3:]] == ["train", "evaluate", "gate"]
    assert "fail" in out.splitlines()[-3] and "build" not in out.split("stage")[-1]


def test_run_bad_config_exit_2_at_train(tmp_path, run_cli):
    root = write_project(tmp_path / "p")
    config = yaml.safe_load((root / "mlci.yaml").read_text())
    config["model"]["estimator"] = "sklearn.nope.Model"
    (root / "mlci.yaml").write_text(yaml.safe_dump(config))
    code, out, err = run_cli("-C", root, "run", "--from", "train", "--to", "gate")
    assert code == 2 and "cannot import module 'sklearn.nope'" in err
    assert "evaluate" not in out.split("stage")[-1]


def test_run_rejects_reversed_range(tmp_path, run_cli):
    root = write_project(tmp_path / "p")
    code, _, err = run_cli("-C", root, "run", "--from", "gate", "--to", "train")
    assert code == 2 and "comes after" in err


def test_the_laptop_demo_keeps_the_examples_local_registry(tmp_path, run_cli, monkeypatch):
    """The example names a Jenkins registry (MLflow, jenkins.registry); outside Jenkins nothing exports
    MLCI_REGISTRY__*, so `mlci run` on a copy of it writes to its local .mlci/registry, no MLflow needed."""
    import shutil
    from pathlib import Path

    example = Path(__file__).resolve().parent.parent / "examples" / "credit-risk"
    root = tmp_path / "credit-risk"
    shutil.copytree(example, root, ignore=shutil.ignore_patterns(".mlci", "reports"))
    assert yaml.safe_load((root / "mlci.yaml").read_text())["jenkins"]["registry"]["backend"] == "mlflow"
    for name in ("MLFLOW_TRACKING_URI", "MLCI_REGISTRY__BACKEND", "MLCI_REGISTRY__PATH"):
        monkeypatch.delenv(name, raising=False)
    code, out, err = run_cli("-C", root, "--json", "run", "--to", "train")
    assert code == 0, err
    assert [(s["stage"], s["result"]) for s in json.loads(out)["stages"]][:2] == [("validate", "passed"),
                                                                                 ("train", "passed")]
    assert any((root / ".mlci" / "registry").rglob("*.skops"))
