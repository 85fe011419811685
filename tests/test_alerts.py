"""``mlci alerts``: the rules pass ``promtool check rules`` and fire (only) when they should
(``promtool test rules``)."""

from __future__ import annotations

import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest
import yaml

from mlci.cli.main import run
from tests.services import promtool  # noqa: F401  (fixture)

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "credit-risk"
MONITOR = 'job="mlci_monitor", project="credit-risk", model_version="3"'


@pytest.fixture(scope="module")
def rules_file(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("alerts")
    project = root / "credit-risk"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("reports", ".mlci"))
    out = root / "rules.yaml"
    assert run(["-C", str(project), "alerts", "-o", str(out)]) == 0
    return out


def test_rules_pass_promtool_check(rules_file, promtool):
    result = subprocess.run([promtool, "check", "rules", str(rules_file)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    names = {r["alert"] for g in yaml.safe_load(rules_file.read_text())["groups"] for r in g["rules"]}
    assert {"MlciDatasetDrift", "MlciModelDecay", "MlciMonitorStale", "MlciHighErrorRate",
            "MlciHighLatency"} <= names


def test_rules_fire_on_drift_staleness_errors_and_latency(rules_file, promtool, tmp_path):
    tests = tmp_path / "rules_test.yaml"
    tests.write_text(textwrap.dedent(f"""\
        rule_files: [{rules_file}]
        evaluation_interval: 1m
        tests:
          - interval: 1m
            input_series:
              - series: 'mlci_dataset_drift{{{MONITOR}}}'
                values: '1x30'
              - series: 'mlci_model_decay_detected{{{MONITOR}, metric="roc_auc"}}'
                values: '0x30'
              - series: 'mlci_monitor_last_success_timestamp_seconds{{{MONITOR}}}'
                values: '0x30'
              - series: 'mlci_http_requests_total{{job="serve", instance="a", endpoint="/predict", status="200"}}'
                values: '0+60x30'
              - series: 'mlci_http_requests_total{{job="serve", instance="a", endpoint="/predict", status="500"}}'
                values: '0+10x30'
              - series: 'mlci_http_request_duration_seconds_bucket{{job="serve", instance="a", le="0.1"}}'
                values: '0+10x30'
              - series: 'mlci_http_request_duration_seconds_bucket{{job="serve", instance="a", le="1"}}'
                values: '0+20x30'
              - series: 'mlci_http_request_duration_seconds_bucket{{job="serve", instance="a", le="+Inf"}}'
                values: '0+20x30'
            alert_rule_test:
              - eval_time: 2m
                alertname: MlciDatasetDrift
                exp_alerts:
                  - exp_labels: {{severity: warning, project: credit-risk, model_version: "3"}}
                    exp_annotations:
                      summary: Data drift in credit-risk
                      description: >-
                        The share of drifted features of model version 3 reached 0.3; see the nightly monitor report.
              - eval_time: 2m
                alertname: MlciModelDecay
                exp_alerts: []
              - eval_time: 2m
                alertname: MlciMonitorStale
                exp_alerts: []
              - eval_time: 2m
                alertname: MlciHighErrorRate
                exp_alerts: []
              - eval_time: 12m
                alertname: MlciHighErrorRate
                exp_alerts:
                  - exp_labels: {{severity: critical, project: credit-risk, job: serve, instance: a}}
                    exp_annotations:
                      summary: More than 5.0% of requests to credit-risk fail
                      description: 14.29% of requests on a answered 5xx over 5 minutes.
              - eval_time: 25m
                alertname: MlciHighLatency
                exp_alerts:
                  - exp_labels: {{severity: warning, project: credit-risk, job: serve, instance: a}}
                    exp_annotations:
                      summary: p99 latency of credit-risk above 0.5 s
                      description: p99 request latency on a is 982ms.
          - interval: 1h
            input_series:
              - series: 'mlci_monitor_last_success_timestamp_seconds{{{MONITOR}}}'
                values: '0x50'
              - series: 'mlci_http_requests_total{{job="serve", instance="a", endpoint="/predict", status="200"}}'
                values: '0+60x50'
            alert_rule_test:
              - eval_time: 30h
                alertname: MlciMonitorStale
                exp_alerts: []
              - eval_time: 40h
                alertname: MlciMonitorStale
                exp_alerts:
                  - exp_labels: {{severity: warning, project: credit-risk}}
                    exp_annotations:
                      summary: The nightly monitor of credit-risk has not succeeded for 36.0 hours
                      description: Its last success was 1d 16h 0m 0s ago; check the nightly Jenkins job.
        """))
    result = subprocess.run([promtool, "test", "rules", str(tests)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_thresholds_come_from_mlci_yaml(tmp_path):
    project = tmp_path / "p"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("reports", ".mlci"))
    config = project / "mlci.yaml"
    config.write_text(config.read_text().replace("\nmonitor:\n", "\nmonitor:\n  alert_latency_p99: 0.25\n"
                                                                 "  alert_error_rate: 0.01\n"))
    out = tmp_path / "rules.yaml"
    assert run(["-C", str(project), "alerts", "-o", str(out)]) == 0
    rules = {r["alert"]: r for g in yaml.safe_load(out.read_text())["groups"] for r in g["rules"]}
    assert rules["MlciHighLatency"]["expr"].endswith("> 0.25")
    assert rules["MlciHighErrorRate"]["expr"].endswith("> 0.01")
