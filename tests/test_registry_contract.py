"""One contract, two backends: every registry command behaves the same on a local (shared-storage)
directory and on a real MLflow tracking server (started by scripts/setup-services.sh)."""

from __future__ import annotations

import json

import pytest

from mlci.adapters.model_files import MODEL_FILE, load_model
from tests.registry_backends import backend  # noqa: F401 - fixture

pytestmark = pytest.mark.slow


def _train(run_cli, root, *extra):
    code, out, err = run_cli("-C", root, *extra, "train")
    assert code == 0, err
    return out


def test_register_get_resolve_latest_and_lineage(backend, tmp_path, run_cli):
    root = backend.project(tmp_path / "proj")
    _train(run_cli, root)
    _train(run_cli, root)
    registry = backend.registry(root)
    assert [r["version"] for r in registry.versions()] == [1, 2]
    assert registry.resolve("latest") == 2 and registry.resolve("v1") == 1 and registry.resolve("1") == 1
    record = registry.get("latest")
    assert record["data"]["train"]["sha256"] and record["schema_sha256"] and record["libraries"]["scikit-learn"]
    assert set(record["artifacts"]) >= {MODEL_FILE, "model_card.md", "reference.csv"}
    model = load_model(registry.read_artifact(2, MODEL_FILE))
    assert hasattr(model, "predict_proba")
    assert registry.read_artifact(2, "reference.csv") == (root / "data/train.csv").read_bytes()
    code, _, err = run_cli("-C", root, "registry", "show", "9")
    assert code == 2 and err.startswith("mlci: error: ") and "Traceback" not in err


def test_promote_rollback_history_list_show_diff_and_card(backend, tmp_path, run_cli):
    root = backend.project(tmp_path / "proj")
    _train(run_cli, root)
    config = (root / "mlci.yaml").read_text().replace("max_iter: 500", "max_iter: 400\n    C: 0.5")
    (root / "mlci.yaml").write_text(config)
    _train(run_cli, root)
    assert run_cli("-C", root, "evaluate", "--model", "2")[0] == 0
    assert run_cli("-C", root, "registry", "promote", "1", "--to", "production")[0] == 0
    code, out, _ = run_cli("-C", root, "registry", "promote", "latest", "--to", "production")
    assert code == 0 and "production -> v2 (was v1)" in out
    code, out, _ = run_cli("-C", root, "--json", "registry", "list")
    listing = json.loads(out)
    assert [v["aliases"] for v in listing["versions"]] == [[], ["production"]]
    assert listing["aliases"]["production"]["history"] == [1]
    assert listing["versions"][1]["metrics"]["roc_auc"] > 0.5
    code, out, _ = run_cli("-C", root, "registry", "rollback", "production")
    assert code == 0 and "production -> v1 (was v2)" in out
    code, out, _ = run_cli("-C", root, "--json", "registry", "show", "production")
    shown = json.loads(out)
    assert shown["record"]["version"] == 1 and shown["aliases"] == ["production"]
    code, out, _ = run_cli("-C", root, "--json", "registry", "diff", "1", "2")
    changes = json.loads(out)["changes"]
    assert {"key": "C", "left": 1.0, "right": 0.5} in changes["estimator"]
    code, _, err = run_cli("-C", root, "registry", "rollback", "production")
    assert code == 2 and "no previous version" in err
    registry = backend.registry(root)
    card = registry.read_artifact(1, "model_card.md").decode()
    assert "# Model card: test-binary v1" in card and "production" in card


def test_update_records_deployments_and_image_digest(backend, tmp_path, run_cli):
    root = backend.project(tmp_path / "proj")
    _train(run_cli, root)
    registry = backend.registry(root)
    deployment = {"id": "d1", "env": "staging", "version": 1, "status": "active", "time": "2026-01-01T00:00:00Z"}
    registry.update(1, lambda r: r.setdefault("deployments", []).append(deployment))
    registry.update(1, lambda r: r.__setitem__("image", {"name": "reg/x", "digest": "sha256:" + "a" * 64}))
    again = backend.registry(root).get(1)  # a fresh reader sees both changes
    assert again["deployments"] == [deployment] and again["image"]["digest"] == "sha256:" + "a" * 64
    code, out, _ = run_cli("-C", root, "registry", "show", "1")
    assert code == 0 and "sha256:" + "a" * 64 in out and '"env": "staging"' in out


def test_a_tampered_model_artifact_is_refused_with_exit_1(backend, tmp_path, run_cli):
    root = backend.project(tmp_path / "proj")
    _train(run_cli, root)
    backend.tamper(1)
    code, _, err = run_cli("-C", root, "evaluate")
    assert code == 1 and "sha256" in err and "Traceback" not in err
    code, _, err = run_cli("-C", root, "registry", "promote", "1", "--to", "production")
    assert code == 1 and "sha256" in err
    assert backend.registry(root).aliases() == {}


def test_a_tampered_reference_is_refused_by_the_monitor(backend, tmp_path, run_cli):
    root = backend.project(tmp_path / "proj")
    _train(run_cli, root)
    backend.tamper(1, "reference.csv")
    code, _, err = run_cli("-C", root, "monitor", "--current", "data/holdout.csv")
    assert code == 1 and "sha256" in err and "Traceback" not in err


def test_the_model_server_reads_a_verified_copy_of_the_version(backend, tmp_path, run_cli):
    from mlci.core.config import load_project
    from mlci.ops.deliver.settings import serve_settings
    from mlci.serve.model import load_served_model

    root = backend.project(tmp_path / "proj")
    _train(run_cli, root)
    settings = serve_settings(load_project(root), ref="latest")
    served = load_served_model(settings.registry, settings.model)
    assert served.record.version == 1 and served.record.artifacts == backend.registry(root).get(1)["artifacts"]
    if backend.name == "mlflow":  # the copy is checked against the record too: a changed byte is refused
        backend.tamper(1)
        with pytest.raises(Exception, match="sha256"):
            serve_settings(load_project(root), ref="latest")


def test_config_check_warns_about_a_registry_inside_the_workspace(tmp_path, run_cli):
    from tests.model_projects import write_project

    laptop = write_project(tmp_path / "laptop")
    code, out, err = run_cli("-C", laptop, "config", "check")
    assert code == 0 and "registry.path '.mlci/registry' is inside the workspace" in err
    shared = write_project(tmp_path / "shared", extra={"registry": {"path": str(tmp_path / "reg")}})
    code, out, err = run_cli("-C", shared, "config", "check")
    assert code == 0 and "warning" not in err
