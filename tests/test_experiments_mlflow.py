"""Live experiments with the MLflow registry backend: the experiment's state (its record, the looks, the
deployments and the aliases) lives in a real MLflow tracking server, the model servers run on loopback
(local target) with two real versions read from MLflow, and `mlci experiment status|conclude` decide and act.

- a truly better challenger (shadow) is promoted: the MLflow aliases move, and the version's lineage in
  MLflow records the experiment;
- a truly worse one (canary) is stopped: the champion serves alone and the aliases stay.
"""

from __future__ import annotations

import json

import pytest
import yaml

from mlci.core.config import load_project
from mlci.ops.deliver.deploy import active_deployment
from mlci.ops.deliver.experiment_state import running_experiment
from mlci.ops.model.registry import open_registry
from tests.serving_support import register_version
from tests.test_experiments import (
    PLAN,
    _holdout,
    _post,
    _project,
    _records,
    _send,
    _stop,
    _url,
    _wait_for_rows,
    _write_labels,
)

pytestmark = pytest.mark.slow


def _mlflow_project(tmp_path, mlflow_url: str, plan: dict) -> tuple:
    project_dir = _project(tmp_path, plan)
    path = project_dir / "mlci.yaml"
    config = yaml.safe_load(path.read_text())
    model_name = f"{config['project']}-model"
    config["registry"] = {"backend": "mlflow", "tracking_uri": mlflow_url, "model_name": model_name}
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    registry = open_registry(load_project(project_dir))
    assert registry.describe().startswith("MLflow "), registry.describe()  # not a silent local fallback
    return project_dir, registry, model_name


def _mlflow_alias(mlflow_url: str, model_name: str, alias: str) -> int:
    from mlflow import MlflowClient

    return int(MlflowClient(tracking_uri=mlflow_url).get_model_version_by_alias(model_name, alias).version)


def test_with_mlflow_a_better_challenger_is_promoted_and_a_worse_one_stopped(tmp_path, mlflow_server, run_cli):
    project_dir, registry, model_name = _mlflow_project(tmp_path, mlflow_server, {**PLAN, "mode": "shadow"})
    worse = register_version(project_dir, flip_labels=True)["version"]
    better = register_version(project_dir)["version"]
    try:
        assert run_cli("-C", project_dir, "deploy", "--env", "laptop", "--model", str(worse))[0] == 0
        registry.set_alias("production", worse)  # the gate's champion was this environment's model
        code, out, err = run_cli("-C", project_dir, "deploy", "--env", "laptop", "--shadow", str(better))
        assert code == 0, err
        assert running_experiment(registry, "laptop").challenger == better  # the state is in MLflow
        labels: list = []
        answers = _send(project_dir, 0, 300, labels=labels)
        assert {a["headers"]["x-model-version"] for a in answers} == {str(worse)}
        _wait_for_rows(project_dir, "challenger", 300)
        labels_file = _write_labels(project_dir, labels)

        code, out, err = run_cli("-C", project_dir, "--json", "experiment", "status", "--env", "laptop",
                                 "--labels", labels_file)
        assert code == 0, err
        assert json.loads(out)["details"]["decision"] == "promote"
        code, out, err = run_cli("-C", project_dir, "--json", "experiment", "conclude", "--env", "laptop",
                                 "--labels", labels_file)
        assert code == 0, err
        assert json.loads(out)["details"]["decision"] == "promote"
        # read back from MLflow itself, not through mlci's cache
        assert _mlflow_alias(mlflow_server, model_name, "laptop") == better
        assert _mlflow_alias(mlflow_server, model_name, "production") == better
        fresh = open_registry(load_project(project_dir))
        lineage = fresh.get(better)["experiments"][-1]
        assert lineage["status"] == "promoted" and lineage["champion"] == worse
        assert lineage["result"]["aliases_moved"] == ["laptop", "production"] and len(lineage["looks"]) == 1
        assert active_deployment(fresh, "laptop").version == better
        status, body, _ = _post(_url(project_dir), _records(_holdout(project_dir).iloc[:3]), "after-promote")
        assert body["model_version"] == better and "model_role" not in body

        # the promoted version is now the champion; a worse canary against it is stopped
        code, out, err = run_cli("-C", project_dir, "deploy", "--env", "laptop", "--canary", str(worse),
                                 "--share", "0.5")
        assert code == 0, err
        labels = []
        answers = _send(project_dir, 300, 1000, labels=labels)
        roles = [a["body"]["model_role"] for a in answers]
        _wait_for_rows(project_dir, "challenger", 10 * roles.count("challenger"))
        labels_file = _write_labels(project_dir, labels)
        code, out, err = run_cli("-C", project_dir, "--json", "experiment", "conclude", "--env", "laptop",
                                 "--labels", labels_file)
        assert code == 1, err
        assert json.loads(out)["details"]["decision"] == "stop"
        fresh = open_registry(load_project(project_dir))
        assert fresh.get(worse)["experiments"][-1]["status"] == "stopped"
        assert running_experiment(fresh, "laptop") is None
        assert _mlflow_alias(mlflow_server, model_name, "laptop") == better
        assert _mlflow_alias(mlflow_server, model_name, "production") == better
        assert active_deployment(fresh, "laptop").version == better
        answers = _send(project_dir, 0, 50)
        assert {a["body"]["model_version"] for a in answers} == {better}
    finally:
        _stop(project_dir)
