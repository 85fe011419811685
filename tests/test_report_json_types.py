"""Every report file and every ``--json`` answer is typed JSON: booleans are booleans, counts integers,
metrics numbers or null. Never a Python value turned into a string (``"passed": "False"`` is truthy).

The commands run through the real CLI on one small project; each JSON document is checked twice: by a
schema of its kind (the documented fields and their types) and by a sweep over every value (keys that
name a verdict hold bool, keys that name a count hold int, and no string spells a Python repr).
"""

from __future__ import annotations

import json
import math
import subprocess

import numpy as np
import pytest

from mlci.core import jsonvalue
from tests.model_projects import write_project

BOOL_KEYS = {"passed", "ok", "pushed", "stale", "changed"}
INT_KEYS = {"version", "checks", "failed", "warnings", "rows", "resamples", "bootstrap_samples", "compared_rows",
            "holdout_rows", "champion_trained", "minimum_rows", "from", "to", "bytes", "distinct_rows"}
REPR_STRINGS = {"True", "False", "None", "nan", "NaN", "inf", "-inf"}


def sweep(value, path="$"):
    """Every value of the document, recursively: no Python repr in strings, typed verdicts and counts."""
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}"
            scalar = item is not None and not isinstance(item, (dict, list))
            if key in BOOL_KEYS and scalar:
                assert isinstance(item, bool), f"{where} = {item!r} is not a JSON boolean"
            if key in INT_KEYS and scalar:
                assert isinstance(item, int) and not isinstance(item, bool), f"{where} = {item!r} is not an int"
            sweep(item, where)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            sweep(item, f"{path}[{i}]")
    elif isinstance(value, str):
        assert value not in REPR_STRINGS, f"{path} = {value!r}: a Python value became a string"
    elif isinstance(value, float):
        assert math.isfinite(value), f"{path} = {value!r}"


def number_or_null(value):
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


def metrics_dict(values, where):
    assert isinstance(values, dict) and values, where
    for name, value in values.items():
        assert number_or_null(value), f"{where}.{name} = {value!r}"


def check_report(doc, kind):
    """The shape every checking command's report shares (mlci.core.reports.Report.to_dict)."""
    assert doc["kind"] == kind and isinstance(doc["ok"], bool)
    assert set(doc["summary"]) == {"checks", "failed", "warnings", "skipped"}
    assert all(type(v) is int for v in doc["summary"].values()), doc["summary"]
    assert doc["summary"]["checks"] == len(doc["checks"])
    for check in doc["checks"]:
        assert isinstance(check["name"], str) and isinstance(check["message"], str)
        assert type(check["passed"]) is bool, check
        assert check["status"] in ("pass", "fail", "warn", "skip") and check["severity"] in ("fail", "warn")
        assert check["passed"] == (check["status"] == "pass")
        assert isinstance(check.get("details", {}), dict)
    assert isinstance(doc["details"], dict)
    assert all(isinstance(v, str) for v in doc["files"].values())
    sweep(doc)


def check_gate(doc):
    check_report(doc, "gate")
    details = doc["details"]
    assert isinstance(details["confidence"], float) and type(details["bootstrap_samples"]) is int
    assert isinstance(details["notes"], list) and all(isinstance(n, str) for n in details["notes"])
    for check in doc["checks"]:
        if check.get("group") != "champion" or "delta" not in check.get("details", {}):
            continue
        d = check["details"]
        assert number_or_null(d["challenger"]) and number_or_null(d["champion"])
        assert isinstance(d["delta"], float) and isinstance(d["epsilon"], float)
        if "resamples" in d:
            assert type(d["resamples"]) is int and number_or_null(d["lower_bound"])
            assert isinstance(d["confidence"], float)


def check_evaluate(doc):
    check_report(doc, "evaluate")
    d = doc["details"]
    assert type(d["version"]) is int
    metrics_dict(d["metrics"], "details.metrics")
    for column, values in d["slices"].items():
        for value, entry in values.items():
            assert type(entry["rows"]) is int
            metrics_dict(entry["metrics"], f"details.slices.{column}.{value}.metrics")
    assert all(type(n) is int for row in d["confusion"] for n in row)
    assert type(d["latency"]["rows"]) is int and isinstance(d["latency"]["p95_ms"], float)
    assert type(d["holdout"]["rows"]) is int


def check_train(doc):
    assert type(doc["version"]) is int and isinstance(doc["seconds"], float)
    for stats in doc["cv"].values():
        assert isinstance(stats["mean"], float) and isinstance(stats["std"], float)
    assert type(doc["data"]["train"]["rows"]) is int
    assert type(doc["data"]["train"]["row_identity"]["distinct_rows"]) is int
    sweep(doc)


def check_registry_list(doc):
    assert doc["kind"] == "list" and doc["versions"]
    for row in doc["versions"]:
        assert type(row["version"]) is int and all(isinstance(a, str) for a in row["aliases"])
        for value in row["metrics"].values():
            assert number_or_null(value), row
    sweep(doc)


def check_registry_show(doc):
    record = doc["record"]
    assert doc["kind"] == "show" and type(record["version"]) is int
    for value in record["metrics"].values():
        assert number_or_null(value), record["metrics"]
    for artifact in record["artifacts"].values():
        assert type(artifact["bytes"]) is int and isinstance(artifact["sha256"], str)
    assert type(record["data"]["train"]["rows"]) is int
    sweep(doc)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    rules = [{"metric": "roc_auc", "min": 0.5},
             {"metric": "roc_auc", "max_drop": 0.0, "bootstrap": True},
             {"metric": "accuracy", "max_drop": 0.5},
             {"metric": "accuracy", "min": 0.0, "slice": {"column": "region", "value": "north"}}]
    root = write_project(tmp_path_factory.mktemp("types") / "p", rows=400, holdout_rows=200,
                         gates={"rules": rules, "bootstrap_samples": 200})
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    return root


def json_of(run_cli, root, *args, exit_codes=(0,)):
    code, out, err = run_cli("-C", root, "--json", *args)
    assert code in exit_codes, f"mlci {' '.join(map(str, args))}: exit {code}\n{err}"
    return json.loads(out)


def test_every_command_reports_typed_json(project, run_cli):
    root = project
    sweep(json_of(run_cli, root, "config", "check"))
    sweep(json_of(run_cli, root, "schema", "infer", root / "data/train.csv"))

    validate = json_of(run_cli, root, "validate", exit_codes=(0, 1))
    check_report(validate, "validate")
    check_report(json.loads((root / "reports/validate.json").read_text()), "validate")

    check_train(json_of(run_cli, root, "train"))
    check_evaluate(json_of(run_cli, root, "evaluate"))
    check_evaluate(json.loads((root / "reports/evaluate.json").read_text()))
    sweep(json.loads((root / "reports/metrics.json").read_text()))

    check_gate(json_of(run_cli, root, "gate", exit_codes=(0, 1)))   # first run
    sweep(json_of(run_cli, root, "registry", "promote", "1", "--to", "production"))
    check_train(json_of(run_cli, root, "train"))
    check_evaluate(json_of(run_cli, root, "evaluate"))
    gate = json_of(run_cli, root, "gate", exit_codes=(0, 1))
    check_gate(gate)
    assert any("resamples" in c.get("details", {}) for c in gate["checks"]), "a bootstrap champion rule ran"
    check_gate(json.loads((root / "reports/gate.json").read_text()))

    metrics_file = root / "reports/metrics.json"
    files = json_of(run_cli, root, "gate", "--metrics", metrics_file, "--baseline", metrics_file, exit_codes=(0, 1))
    check_gate(files)
    check_gate(json.loads((root / "reports/gate.json").read_text()))

    check_registry_list(json_of(run_cli, root, "registry", "list"))
    check_registry_show(json_of(run_cli, root, "registry", "show", "2"))
    sweep(json_of(run_cli, root, "registry", "diff", "1", "2"))
    sweep(json_of(run_cli, root, "registry", "promote", "2", "--to", "production"))
    sweep(json_of(run_cli, root, "registry", "rollback", "production"))

    monitor = json_of(run_cli, root, "monitor", "--no-plots", "--current", "data/holdout.csv", exit_codes=(0, 1))
    check_report(monitor, "monitor")
    check_report(json.loads((root / "reports/monitor.json").read_text()), "monitor")

    sweep(json_of(run_cli, root, "jenkinsfile"))
    check_report(json_of(run_cli, root, "jenkinsfile", "--check"), "jenkinsfile")

    summary = json_of(run_cli, root, "run", "--from", "validate", "--to", "validate", exit_codes=(0, 1))
    assert isinstance(summary["ok"], bool) and type(summary["exit_code"]) is int
    assert all(type(s["exit_code"]) is int and isinstance(s["seconds"], float) for s in summary["stages"])
    sweep(summary)
    made = json_of(run_cli, root, "init", root.parent / "fresh")
    assert isinstance(made["directory"], str) and all(isinstance(p, str) for p in made["written"])
    sweep(made)


def test_numpy_values_become_plain_json_and_unknown_types_raise(tmp_path):
    from mlci.core.atomic import atomic_write_json
    from mlci.core.reports import Check, Report, write_report

    report = Report(kind="gate")
    report.add(Check(name="bootstrap", passed=np.bool_(False), value=np.float64(-0.01),
                     details={"resamples": np.int64(200), "bounds": np.array([0.1, np.nan]),
                              "ok": np.bool_(True), "seen": (np.int32(1), 2)}))
    write_report(report, tmp_path)
    doc = json.loads((tmp_path / "gate.json").read_text())
    check = doc["checks"][0]
    assert check["passed"] is False and check["status"] == "fail"
    assert check["value"] == -0.01 and type(check["details"]["resamples"]) is int
    assert check["details"]["bounds"] == [0.1, None] and check["details"]["ok"] is True
    assert check["details"]["seen"] == [1, 2]
    with pytest.raises(TypeError, match=r"\$\.when: a datetime.datetime is not a JSON value"):
        import datetime

        atomic_write_json(tmp_path / "x.json", {"when": datetime.datetime(2026, 1, 1)})
    assert not (tmp_path / "x.json").exists()
    with pytest.raises(TypeError):
        jsonvalue.dumps({"path": tmp_path})
    with pytest.raises(TypeError):
        jsonvalue.dumps({"fn": print})


def test_an_unknown_type_in_json_output_is_an_internal_error_not_a_string(run_cli, monkeypatch, tmp_path):
    """``--json`` output of a value nobody converted fails loudly (exit 4), it does not print str(value)."""
    import mlci.ops.model.registry as registry_ops

    root = write_project(tmp_path / "p", rows=200, holdout_rows=100)
    assert run_cli("-C", root, "train")[0] == 0
    original = registry_ops.list_versions

    def with_a_set(**kwargs):
        view = original(**kwargs)
        view.data["odd"] = {1, 2}
        return view
    monkeypatch.setattr(registry_ops, "list_versions", with_a_set)
    code, out, err = run_cli("-C", root, "--json", "registry", "list")
    assert code == 4 and "{1, 2}" not in out
