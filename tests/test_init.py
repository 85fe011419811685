"""mlci init: a working project (the pipeline runs on it), commented config, no silent overwrite."""

from __future__ import annotations

import pandas as pd

from mlci.core.config import load_project


def test_init_writes_a_project_that_checks_and_refuses_to_overwrite(tmp_path, run_cli):
    target = tmp_path / "my project"
    code, out, err = run_cli("init", target)
    assert code == 0, err
    for name in ("mlci.yaml", "schema.yaml", ".gitignore", "data/train.csv", "data/holdout.csv", "data/later.csv"):
        assert (target / name).is_file(), name
    assert "# " in (target / "mlci.yaml").read_text() and ".mlci/" in (target / ".gitignore").read_text()
    project = load_project(target)
    assert project.config.project == "my-project" and project.config.model.task == "binary"
    assert len(pd.read_csv(target / "data/train.csv")) == 6000
    assert run_cli("-C", target, "config", "check")[0] == 0
    if (target / "Jenkinsfile").exists():
        assert "mlci" in (target / "Jenkinsfile").read_text()
    (target / "mlci.yaml").write_text("project: mine\n")
    code, _, err = run_cli("init", target)
    assert code == 2 and "would overwrite" in err and "--force" in err
    assert (target / "mlci.yaml").read_text() == "project: mine\n"
    assert run_cli("init", target, "--force")[0] == 0
    assert "project: my-project" in (target / "mlci.yaml").read_text()


def test_init_data_is_the_bundled_example(tmp_path, run_cli):
    assert run_cli("init", tmp_path / "x")[0] == 0
    example = __import__("pathlib").Path(__file__).resolve().parent.parent / "examples/credit-risk/data"
    for name in ("train.csv", "holdout.csv", "later.csv"):
        assert (tmp_path / "x/data" / name).read_bytes() == (example / name).read_bytes()


def test_init_where_no_directory_can_be_made_is_a_usage_error(tmp_path, run_cli):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code, _, err = run_cli("init", blocker / "project")
    assert code == 2, err
    assert "cannot create the project directory" in err and str(blocker / "project") in err
