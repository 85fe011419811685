"""The one stage table (mlci/core/stages.py): mlci run, its --from/--to choices and the Jenkinsfile read it."""

from __future__ import annotations

import click
import pytest
import yaml

from mlci.cli.cmd_run import run as run_command
from mlci.core.config import load_project
from mlci.core.stages import STAGE_NAMES, select_stages, skip_reason, stage_named
from mlci.errors import UsageError
from mlci.ops.jenkins.pipelines import STAGE_KEYS
from mlci.ops.project.run import deploy_environment
from tests.model_projects import write_project


def test_the_stages_in_order():
    assert STAGE_NAMES == ("validate", "train", "evaluate", "gate", "build", "push", "deploy")
    assert [s.title for s in select_stages(None, None)][4:6] == ["Build image", "Push image"]
    assert [s.name for s in select_stages("evaluate", "push")] == ["evaluate", "gate", "build", "push"]


def test_the_cli_choices_and_the_jenkinsfile_keys_are_the_table():
    choices = {p.name: p.type.choices for p in run_command.params if isinstance(p.type, click.Choice)}
    assert choices == {"start": STAGE_NAMES, "stop": STAGE_NAMES}
    assert STAGE_KEYS == STAGE_NAMES


@pytest.mark.parametrize("start, stop, message", [("gate", "train", "--from gate comes after --to train"),
                                                  ("monitor", None, "unknown stage 'monitor'")])
def test_a_bad_range_is_a_usage_error(start, stop, message):
    with pytest.raises(UsageError, match=message):
        select_stages(start, stop)


def test_what_a_project_without_image_or_environments_skips(tmp_path):
    config = load_project(write_project(tmp_path / "p")).config
    reasons = {s.name: skip_reason(s, config) for s in select_stages(None, None)}
    assert reasons == {"validate": None, "train": None, "evaluate": None, "gate": None,
                       "build": "not configured: no `image` section", "push": "not configured: no `image` section",
                       "deploy": "not configured: no `image` section"}
    assert stage_named("deploy").needs_environment


def _with_environments(tmp_path, names):
    root = write_project(tmp_path / "p")
    config = yaml.safe_load((root / "mlci.yaml").read_text())
    config["environments"] = {name: {"target": "local", "port": 8000 + i} for i, name in enumerate(names)}
    (root / "mlci.yaml").write_text(yaml.safe_dump(config))
    return load_project(root)


def test_run_deploys_to_env_or_the_only_environment_not_a_hard_coded_name(tmp_path):
    project = _with_environments(tmp_path, ["production", "staging"])
    assert deploy_environment(project, None) is None  # several: run skips deploy rather than guess
    assert deploy_environment(project, "staging") == "staging"
    assert deploy_environment(_with_environments(tmp_path / "one", ["qa"]), None) == "qa"
    with pytest.raises(UsageError, match="--env qa: no such environment"):
        deploy_environment(project, "qa")


def test_mlci_run_refuses_an_unknown_env_before_running_anything(tmp_path, run_cli):
    project = _with_environments(tmp_path, ["staging"])
    code, out, err = run_cli("-C", project.root, "run", "--env", "qa")
    assert code == 2 and "--env qa: no such environment in mlci.yaml" in err and "environments: staging" in err
    assert not (project.root / "reports").exists()
