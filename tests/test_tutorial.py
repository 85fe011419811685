"""docs/tutorial.md, followed as a new user would: the commands it and the `mlci init` template give
work as written, the target survives regenerating the schema, and the champion is set where it says."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from tests.model_projects import write_project

TUTORIAL = Path(__file__).resolve().parent.parent / "docs" / "tutorial.md"


def test_init_template_regenerates_the_schema_with_its_target(tmp_path, run_cli, monkeypatch):
    root = tmp_path / "churn"
    assert run_cli("init", root)[0] == 0
    config_text = (root / "mlci.yaml").read_text()
    command = re.search(r"`mlci (schema infer [^`]+)`", config_text).group(1)
    target = yaml.safe_load((root / "schema.yaml").read_text())["target"]
    monkeypatch.chdir(root)
    (root / "schema.yaml").unlink()  # regenerating must write it, target included
    args = command.replace("COLUMN", target).split()
    code, _, err = run_cli(*args)
    assert code == 0, err
    assert yaml.safe_load((root / "schema.yaml").read_text())["target"] == target


def test_tutorial_champion_path(tmp_path, run_cli, monkeypatch):
    """Section 4: with no champion the gate passes under first_run and says how to set one; after the
    promote command the tutorial gives, the next gate compares against that version."""
    text = TUTORIAL.read_text()
    promote = re.search(r"^mlci (registry promote 1 --to production)$", text, re.M).group(1)
    rules = [{"metric": "roc_auc", "max_drop": 0.01}]
    root = write_project(tmp_path / "churn", gates={"champion": "production", "rules": rules})
    monkeypatch.chdir(root)
    assert run_cli("train")[0] == 0 and run_cli("evaluate")[0] == 0
    code, _, err = run_cli("gate")
    assert code == 0 and "first_run" in err and "mlci registry promote VERSION --to production" in err
    assert run_cli(*promote.split())[0] == 0
    assert run_cli("train")[0] == 0 and run_cli("evaluate")[0] == 0
    code, out, err = run_cli("gate", "--json")
    assert code in (0, 1), err
    import json

    details = json.loads(out)["details"]
    assert (details["challenger"], details["champion"]) == ("v2", "v1")
