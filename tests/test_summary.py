"""reports/summary.md after a run, and the gate report's challenger-vs-champion table: the numbers
shown are the ones in the JSON reports, and a bootstrap rule shows Δ with its bound everywhere."""

from __future__ import annotations

import json
import re

import yaml

from mlci.core.summary import check_value, summary_markdown
from tests.model_projects import write_project

RULES = [{"metric": "roc_auc", "min": 0.6},
         {"metric": "roc_auc", "max_drop": 0.01, "bootstrap": True},
         {"metric": "accuracy", "max_drop": 0.02}]


def _project(tmp_path, run_cli):
    root = write_project(tmp_path / "p", gates={"rules": RULES, "bootstrap_samples": 200})
    assert run_cli("-C", root, "run", "--to", "gate")[0] == 0
    assert run_cli("-C", root, "registry", "promote", "1", "--to", "production")[0] == 0
    config = yaml.safe_load((root / "mlci.yaml").read_text())
    config["model"]["params"] = {"C": 0.05, "max_iter": 500}
    (root / "mlci.yaml").write_text(yaml.safe_dump(config))
    code, _, err = run_cli("-C", root, "run", "--to", "gate")
    assert code in (0, 1), err
    return root


def test_summary_after_a_run_has_every_stage_and_the_gate_numbers(tmp_path, run_cli):
    root = _project(tmp_path, run_cli)
    reports = root / "reports"
    text = (reports / "summary.md").read_text()
    gate = json.loads((reports / "gate.json").read_text())
    evaluate = json.loads((reports / "evaluate.json").read_text())
    for stage in ("validate", "evaluate", "gate"):
        assert re.search(rf"^\| {stage} \| .* \| \[{stage}\.html\]\({stage}\.html\) \| [0-9-]+ [0-9:]+Z \|$",
                         text, re.M), text
    assert "gate: v2 vs v1" in text.splitlines()[2]
    description = (reports / "description.txt").read_text()
    assert description.count("\n") == 1 and description.startswith(("PASSED · gate: v2 vs v1", "FAILED at gate"))
    bootstrap = gate["checks"][1]["details"]
    shown = f"Δ {bootstrap['delta']:+.4g} (95% lower bound {bootstrap['lower_bound']:+.4g})"
    assert shown in text
    assert f"roc_auc {evaluate['details']['metrics']['roc_auc']:.4g}" in text
    east = evaluate["details"]["slices"]["region"]["east"]["metrics"]["accuracy"]
    assert re.search(rf"^\| accuracy \| region = east \| {east:.4g} \| [0-9.]+ \| [+-][0-9.e-]+ \|$", text, re.M)


def test_gate_report_value_matches_its_message_and_compares_every_metric_and_slice(tmp_path, run_cli):
    root = _project(tmp_path, run_cli)
    html = (root / "reports" / "gate.html").read_text()
    gate = json.loads((root / "reports" / "gate.json").read_text())
    details = gate["checks"][1]["details"]
    value_cell = f"Δ {details['delta']:+.4g} (95% lower bound {details['lower_bound']:+.4g})"
    assert value_cell in html
    assert f"Δ = {details['delta']:+.4g}" in gate["checks"][1]["message"]
    assert f"lower bound {details['lower_bound']:+.4g}" in gate["checks"][1]["message"]
    evaluate = json.loads((root / "reports" / "evaluate.json").read_text())["details"]
    rows = gate["details"]["versus"]
    expected = {(m, None) for m in evaluate["metrics"]}
    expected |= {(m, f"region = {k}") for k, e in evaluate["slices"]["region"].items() for m in e["metrics"]}
    assert {(r["metric"], r["slice"]) for r in rows} == expected
    for row in rows:
        assert f"<td>{row['metric']}</td><td>{row['slice'] or 'all rows'}</td>" in html
    east = next(r for r in rows if r["slice"] == "region = east" and r["metric"] == "accuracy")
    assert east["rows"] == evaluate["slices"]["region"]["east"]["rows"]
    assert east["delta"] == east["challenger"] - east["champion"]


def test_first_run_gate_says_how_to_set_a_champion(tmp_path, run_cli):
    root = write_project(tmp_path / "p", gates={"rules": RULES, "bootstrap_samples": 200})
    assert run_cli("-C", root, "train")[0] == 0 and run_cli("-C", root, "evaluate")[0] == 0
    code, _, err = run_cli("-C", root, "gate")
    assert code == 0
    assert "hint: set the champion with `mlci registry promote VERSION --to production`" in err
    html = (root / "reports" / "gate.html").read_text()
    assert "<code>mlci registry promote VERSION --to production</code>" in html
    assert "no champion ('production' not set)" in (root / "reports" / "summary.md").read_text()


def test_a_failed_stage_leads_the_summary():
    reports = {"validate": {"ok": True, "summary": {"checks": 3, "failed": 0, "warnings": 0},
                            "details": {"files": [{"path": "d.csv", "rows": 1}]}},
               "gate": {"ok": False, "summary": {"checks": 1, "failed": 1, "warnings": 0},
                        "checks": [{"name": "roc_auc >= 0.9", "status": "fail", "value": 0.8, "message": "low|er"}],
                        "details": {"challenger": "v2", "champion": None, "champion_alias": "production"}}}
    text = summary_markdown(reports)
    assert "**FAILED** at gate" in text
    assert "| validate | ✅ passed | d.csv: 1 row | [validate.json](validate.json) |" in text
    assert "❌ failed (1 of 1 check)" in text and "low\\|er" in text


def test_check_value_of_plain_and_champion_checks():
    assert check_value({"value": 0.81234567}) == "0.8123"
    assert check_value({"value": 0.1, "details": {"delta": 0.1}}) == "Δ +0.1"
    assert check_value({"value": -0.02, "details": {"delta": 0.01, "lower_bound": -0.02, "confidence": 0.9}}) \
        == "Δ +0.01 (90% lower bound -0.02)"
