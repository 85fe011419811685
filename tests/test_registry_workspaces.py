"""State lives outside the workspace: a second directory (the nightly job's fresh workspace, another agent)
that shares only mlci.yaml, the schema and the current data gates and monitors against the registry,
on both backends; and a registry moves between the backends with everything, verified by sha256."""

from __future__ import annotations

import json
import shutil

import pytest

from mlci.core.config import load_project
from mlci.ops.model.registry import open_registry
from tests.registry_backends import Backend, backend  # noqa: F401 - fixture

pytestmark = pytest.mark.slow


def test_a_fresh_workspace_gates_and_monitors_against_the_registry(backend, tmp_path, run_cli):
    gates = {"rules": [{"metric": "roc_auc", "min": 0.5}, {"metric": "roc_auc", "max_drop": 0.01}]}
    commit_job = backend.project(tmp_path / "commit-job", gates=gates)
    for args in (("train",), ("evaluate",), ("registry", "promote", "latest", "--to", "production")):
        code, _, err = run_cli("-C", commit_job, *args)
        assert code == 0, (args, err)
    nightly = tmp_path / "nightly-job"
    (nightly / "data").mkdir(parents=True)
    for name in ("mlci.yaml", "schema.yaml", "data/holdout.csv"):  # NOT the training file
        shutil.copyfile(commit_job / name, nightly / name)
    assert not (nightly / "data/train.csv").exists()
    code, out, err = run_cli("-C", nightly, "--json", "monitor", "--current", "data/holdout.csv")
    assert code in (0, 1), err  # drift or not, it compared
    report = json.loads(out)
    trained_on = open_registry(load_project(commit_job)).get("production")["data"]["train"]["sha256"]
    assert report["details"]["model_version"] == 1
    assert report["details"]["reference"]["files"][0].startswith(str(nightly / ".mlci/references"))
    stored = [p for p in (nightly / ".mlci/references").rglob("*") if p.is_file()]
    assert len(stored) == 1 and stored[0].read_bytes() == (commit_job / "data/train.csv").read_bytes()
    assert trained_on  # the reference is exactly the data that made the deployed model
    code, out, err = run_cli("-C", nightly, "--json", "gate")  # the champion comes from the shared registry
    assert code == 0, err
    assert json.loads(out)["details"]["champion"] == "v1" and json.loads(out)["details"]["challenger"] == "v1"


def test_export_to_mlflow_and_back_keeps_versions_aliases_history_and_artifacts(mlflow_server, tmp_path, run_cli):
    local = Backend("local", tmp_path / "a", None)
    root = local.project(tmp_path / "proj")
    for args in (("train",), ("train",), ("evaluate", "--model", "1"), ("registry", "promote", "1", "--to",
                 "production"), ("registry", "promote", "2", "--to", "production")):
        code, _, err = run_cli("-C", root, *args)
        assert code == 0, (args, err)
    source = open_registry(load_project(root))
    code, out, err = run_cli("-C", root, "--json", "registry", "export", "--to", tmp_path / "export1")
    assert code == 0, err

    remote = Backend("mlflow", tmp_path / "b", mlflow_server)
    config = (root / "mlci.yaml").read_text()
    (root / "mlci.yaml").write_text(config.split("registry:")[0] + "registry:\n" + "".join(
        f"  {k}: {v}\n" for k, v in remote.section().items()))
    code, out, err = run_cli("-C", root, "--json", "registry", "import", "--from", tmp_path / "export1")
    assert code == 0, err
    assert json.loads(out)["versions"] == {"1": 1, "2": 2}
    in_mlflow = open_registry(load_project(root))
    assert in_mlflow.aliases()["production"]["version"] == 2
    assert in_mlflow.aliases()["production"]["history"] == [1]
    code, out, err = run_cli("-C", root, "--json", "registry", "export", "--to", tmp_path / "export2")
    assert code == 0, err

    back = open_registry(load_project(root))  # still mlflow; compare both local copies with the source
    from mlci.adapters.registry_store import ModelRegistry

    again = ModelRegistry(tmp_path / "export2")
    for registry in (in_mlflow, again):
        for before, after in zip(source.versions(), registry.versions(), strict=True):
            assert after["version"] == before["version"]
            assert after["data"] == before["data"] and after["metrics"] == before["metrics"]
            assert after["git"] == before["git"] and after["estimator"] == before["estimator"]
            assert {n: a["sha256"] for n, a in after["artifacts"].items()} == \
                {n: a["sha256"] for n, a in before["artifacts"].items()}
            for name in before["artifacts"]:
                assert registry.read_artifact(after["version"], name) == source.read_artifact(before["version"], name)
    assert again.aliases()["production"]["version"] == 2 and again.aliases()["production"]["history"] == [1]
    assert back.describe().startswith("MLflow ")
    code, _, err = run_cli("-C", root, "registry", "export", "--to", tmp_path / "export2")
    assert code == 2 and "not empty" in err
