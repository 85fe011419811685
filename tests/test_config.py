"""mlci.yaml loading: every problem at once, located by file:line and key path, with a hint."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from mlci.core.config import load_project
from mlci.core.dataschema import load_schema
from mlci.errors import ConfigError

MINIMAL = """\
project: demo
data:
  train: data/train.csv
model:
  task: binary
  estimator: sklearn.linear_model.LogisticRegression
"""


def write(tmp_path: Path, text: str, name: str = "mlci.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def issues_of(tmp_path: Path, text: str, environ: dict | None = None) -> list[str]:
    write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_project(tmp_path, environ=environ or {})
    return [issue.format() for issue in caught.value.issues]


def test_minimal_config_gets_documented_defaults(tmp_path):
    write(tmp_path, MINIMAL)
    project = load_project(tmp_path, environ={})
    assert project.config.project == "demo"
    assert project.config.model.seed == 42
    assert project.config.gates.champion == "production"
    assert project.config.monitor.schedule == "H 2 * * *"
    assert project.path("data/train.csv") == (tmp_path / "data/train.csv").resolve()


def test_mistyped_threshold_is_an_error_with_suggestion_and_line(tmp_path):
    text = MINIMAL + "gates:\n  rules:\n    - metric: roc_auc\n      mni: 0.8\n"
    issues = issues_of(tmp_path, text)
    assert any("mlci.yaml:10: gates.rules[0].mni: unknown key 'mni'" in i and "did you mean 'min'" in i
               for i in issues), issues


def test_every_problem_is_reported_at_once(tmp_path):
    text = MINIMAL.replace("task: binary", "task: binery") + "reprots: out\nregistry:\n  lock_timeout: fast\n"
    issues = issues_of(tmp_path, text)
    assert len(issues) == 3, issues
    assert any("model.task: 'binery' is not allowed" in i and "did you mean 'binary'" in i for i in issues)
    assert any("mlci.yaml:7: reprots: unknown key" in i and "did you mean 'reports'" in i for i in issues)
    assert any("registry.lock_timeout: expected a number, got text 'fast'" in i for i in issues)


def test_missing_required_keys_and_ranges(tmp_path):
    issues = issues_of(tmp_path, "project: demo\nmodel:\n  task: binary\n  estimator: x\n  cv_folds: 99\n")
    assert any("data: missing required key 'data'" in i for i in issues), issues
    assert any("model.cv_folds: 99 is above the maximum 50" in i for i in issues), issues


def test_identifiers_are_refused_not_escaped(tmp_path):
    issues = issues_of(tmp_path, MINIMAL.replace("project: demo", "project: \"demo'; rm -rf /\""))
    assert any("project: 'demo'; rm -rf /' is not a valid name" in i for i in issues), issues


def test_duplicate_keys_are_errors(tmp_path):
    issues = issues_of(tmp_path, MINIMAL + "project: other\n")
    assert any("mlci.yaml:7: project: duplicate key 'project'" in i for i in issues), issues


def test_invalid_yaml_names_the_line(tmp_path):
    issues = issues_of(tmp_path, MINIMAL + "gates: [unclosed\n")
    assert len(issues) == 1 and "mlci.yaml:8: invalid YAML" in issues[0], issues


def test_environment_overrides_the_file(tmp_path):
    write(tmp_path, MINIMAL + "model_extra: 1\n".replace("model_extra: 1\n", ""))
    project = load_project(tmp_path, environ={"MLCI_MODEL__SEED": "7", "MLCI_JENKINS__URL": "http://j:8080"})
    assert project.config.model.seed == 7
    assert project.config.jenkins.url == "http://j:8080"


def test_environment_override_errors_name_the_variable(tmp_path):
    issues = issues_of(tmp_path, MINIMAL, environ={"MLCI_MODEL__SEDE": "7"})
    assert issues == ["environment variable MLCI_MODEL__SEDE: model.sede: unknown key 'sede' "
                      "(hint: did you mean 'seed'?)"]


def test_gate_rule_needs_a_threshold(tmp_path):
    issues = issues_of(tmp_path, MINIMAL + "gates:\n  rules:\n    - metric: f1\n      bootstrap: true\n")
    assert any("gates.rules[0]: a rule needs min, max or max_drop" in i for i in issues), issues
    assert any("gates.rules[0].bootstrap: bootstrap needs max_drop" in i for i in issues), issues


def test_bundled_example_config_and_schema_load():
    root = Path(__file__).resolve().parent.parent / "examples" / "credit-risk"
    project = load_project(root, environ={})
    schema = load_schema(project.path(project.config.data.schema))
    assert schema.target == "default"
    assert "customer_id" not in schema.features


def test_schema_file_errors_are_located(tmp_path):
    path = write(tmp_path, "columns:\n  age: {type: integr, min: 5, max: 1}\ntarget: y\n", "schema.yaml")
    with pytest.raises(ConfigError) as caught:
        load_schema(path, "schema.yaml")
    text = str(caught.value)
    assert "schema.yaml:2: columns.age.type: 'integr' is not allowed (hint: did you mean 'integer'?)" in text
    assert "schema.yaml:3: target: target 'y' is not a column" in text


def test_published_json_schemas_are_current():
    from mlci.ops.project.schemas import json_schema_text
    from scripts.gen_docs import config_doc

    root = Path(__file__).resolve().parent.parent / "schemas"
    assert (root / "mlci.schema.json").read_text() == json_schema_text(), "run scripts/gen_docs.py"
    assert (root / "schema.schema.json").read_text() == json_schema_text(data=True), "run scripts/gen_docs.py"
    docs = Path(__file__).resolve().parent.parent / "docs" / "config.md"
    assert docs.read_text() == config_doc(), "run scripts/gen_docs.py"
    assert json.loads(json_schema_text())["properties"]["gates"]["properties"]["rules"]["items"][
        "additionalProperties"] is False


def test_atomic_writes_get_ordinary_permissions(tmp_path):
    import os

    from mlci.core.atomic import atomic_write_text

    atomic_write_text(tmp_path / "report.json", "{}")
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "report.json").stat().st_mode & 0o777 == 0o666 & ~mask


def test_unquoted_dates_are_read_as_iso_text(tmp_path):
    path = write(tmp_path, "columns:\n  day: {type: datetime, min: 2024-01-01, max: 2024-12-31 10:00:00}\n",
                 "schema.yaml")
    column = load_schema(path).columns["day"]
    assert (column.min, column.max) == ("2024-01-01", "2024-12-31T10:00:00")


def test_unwritable_output_is_a_service_error_not_a_crash(tmp_path):
    from mlci.core.atomic import atomic_write_text
    from mlci.errors import ServiceError

    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ServiceError, match="cannot write .*file/out.json"):
        atomic_write_text(blocker / "out.json", "{}")
