"""Live experiments end to end: real servers on loopback (the local deploy target) with two real model
versions, real requests, labels that arrive later, and `mlci experiment conclude` deciding and acting.

- a truly better challenger (shadow) is promoted once enough labelled requests arrive;
- a truly worse one (canary) is stopped, and the champion serves alone again;
- an equal one ends in `continue` (the false-promotion rate under repeated looks is simulated in
  tests/test_sequential.py), and the experiment survives a killed server (state in the registry);
- canary routing is stable per key and near the configured share;
- a full shadow queue is counted and never fails a request.
"""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import time
import urllib.request
import uuid
from datetime import UTC
from pathlib import Path

import pandas as pd
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from mlci.adapters.serving_probe import listening
from mlci.core.config import load_project
from mlci.ops.deliver.deploy import LocalTarget, active_deployment, free_port
from mlci.ops.deliver.experiment import logged_rows
from mlci.ops.deliver.experiment_state import experiments_of, running_experiment
from mlci.ops.model.registry import open_registry
from mlci.serve.experiment import bucket
from tests.serving_support import copy_example, register_version

pytestmark = pytest.mark.slow


def _project(directory: Path, experiment: dict | None = None) -> Path:
    project_dir = copy_example(directory)
    path = project_dir / "mlci.yaml"
    config = yaml.safe_load(path.read_text())
    config["project"] = f"exp-{uuid.uuid4().hex[:6]}"
    env = {"target": "local", "port": free_port(), "health_timeout": 60, "smoke_rows": 2}
    if experiment is not None:
        env["experiment"] = experiment
    config["environments"] = {"laptop": env}
    config.pop("image", None)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return project_dir


def _url(project_dir: Path) -> str:
    return active_deployment(open_registry(load_project(project_dir)), "laptop").url


def _post(url: str, records: list[dict], request_id: str, headers: dict | None = None) -> tuple[int, dict, dict]:
    request = urllib.request.Request(f"{url}/predict", data=json.dumps(records).encode(), method="POST",
                                     headers={"Content-Type": "application/json", "X-Request-ID": request_id,
                                              **(headers or {})})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, json.loads(response.read()), {k.lower(): v for k, v in response.headers.items()}


def _holdout(project_dir: Path) -> pd.DataFrame:
    return pd.read_csv(project_dir / "data" / "holdout.csv")


def _records(frame: pd.DataFrame) -> list[dict]:
    features = frame.drop(columns=["default"])
    return features.astype(object).where(features.notna(), None).to_dict(orient="records")


def _send(project_dir: Path, start: int, rows: int, batch: int = 10, labels: list | None = None) -> list[dict]:
    """Send holdout rows [start, start + rows) in batches; append their labels (request_id, row, default)."""
    url, frame = _url(project_dir), _holdout(project_dir)
    answers = []
    for offset in range(start, start + rows, batch):
        part = frame.iloc[offset:offset + batch]
        request_id = f"r{offset}-{uuid.uuid4().hex[:6]}"
        status, body, headers = _post(url, _records(part), request_id)
        assert status == 200
        answers.append({"body": body, "headers": headers})
        if labels is not None:
            labels.extend((request_id, row, int(label)) for row, label in enumerate(part["default"]))
    return answers


def _write_labels(project_dir: Path, labels: list) -> Path:
    path = project_dir / "labels.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["request_id", "row", "default"])
        writer.writerows(labels)
    return path


def _wait_for_rows(project_dir: Path, role: str, rows: int, timeout: float = 30.0) -> None:
    """Shadow scoring and the log writer run off the response path: wait until they have caught up."""
    project = load_project(project_dir)
    experiment = running_experiment(open_registry(project), "laptop")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = logged_rows(project.path(project.config.serve.log_dir), experiment.id)[role]
        if len(found) >= rows:
            return
        time.sleep(0.2)
    raise AssertionError(f"only {len(found)} {role} rows logged, expected {rows}")


def _stop(project_dir: Path) -> None:
    project = load_project(project_dir)
    current = active_deployment(open_registry(project), "laptop")
    if current:
        LocalTarget(project, "laptop").stop(current.handle)


def _metric(url: str, name: str) -> float:
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        text = response.read().decode()
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


PLAN = {"metric": "accuracy", "max_drop": 0.0, "expected_rows": 300, "min_rows": 100,
        "guardrails": {"max_latency_ratio": 20}}


def test_a_better_challenger_in_shadow_is_promoted_and_the_aliases_move(tmp_path, run_cli):
    project_dir = _project(tmp_path, {**PLAN, "mode": "shadow"})
    worse = register_version(project_dir, flip_labels=True)["version"]
    better = register_version(project_dir)["version"]
    try:
        assert run_cli("-C", project_dir, "deploy", "--env", "laptop", "--model", str(worse))[0] == 0
        registry = open_registry(load_project(project_dir))
        registry.set_alias("production", worse)  # the gate's champion was this environment's model
        code, out, err = run_cli("-C", project_dir, "deploy", "--env", "laptop", "--shadow", str(better))
        assert code == 0, err
        labels: list = []
        answers = _send(project_dir, 0, 300, labels=labels)
        # the champion answers every request in shadow mode, and says so
        assert {a["headers"]["x-model-version"] for a in answers} == {str(worse)}
        assert {a["body"]["model_role"] for a in answers} == {"champion"}
        _wait_for_rows(project_dir, "challenger", 300)
        labels_file = _write_labels(project_dir, labels)

        code, out, err = run_cli("-C", project_dir, "--json", "experiment", "status", "--env", "laptop",
                                 "--labels", labels_file)
        assert code == 0, err
        status = json.loads(out)
        assert status["details"]["decision"] == "promote" and status["details"]["bound"]["rows"] == 300
        assert active_deployment(registry, "laptop").version == worse  # status changes nothing

        code, out, err = run_cli("-C", project_dir, "--json", "experiment", "conclude", "--env", "laptop",
                                 "--labels", labels_file)
        assert code == 0, err
        result = json.loads(out)["details"]
        assert result["decision"] == "promote"
        assert result["bound"]["lower"] > 0  # the challenger is better, not merely no worse
        assert active_deployment(registry, "laptop").version == better
        assert registry.alias_of("laptop") == better and registry.alias_of("production") == better
        record = registry.get(better)
        assert record["experiments"][-1]["status"] == "promoted"
        assert record["experiments"][-1]["result"]["decision"] == "promote"
        assert running_experiment(registry, "laptop") is None
        # the new server runs without an experiment
        status_code, body, headers = _post(_url(project_dir), _records(_holdout(project_dir).iloc[:3]), "after")
        assert body["model_version"] == better and "model_role" not in body
        reports = load_project(project_dir).reports_dir
        page = (reports / "experiment.html").read_text()
        assert '<img src="experiment-bound.svg"' in page and '<link rel="stylesheet" href="experiment.css">' in page
        assert "<style" not in page and "style=" not in page and "<script" not in page
        assert "<polygon" in (reports / "experiment-bound.svg").read_text()
        assert "experiment" in (reports / "experiment.junit.xml").read_text()
    finally:
        _stop(project_dir)


def test_a_worse_challenger_in_canary_is_stopped_and_the_champion_serves_alone(tmp_path, run_cli):
    project_dir = _project(tmp_path, {**PLAN, "mode": "canary", "share": 0.5})
    better = register_version(project_dir)["version"]
    worse = register_version(project_dir, flip_labels=True)["version"]
    try:
        assert run_cli("-C", project_dir, "deploy", "--env", "laptop", "--model", str(better))[0] == 0
        code, out, err = run_cli("-C", project_dir, "deploy", "--env", "laptop", "--canary", str(worse),
                                 "--share", "0.5")
        assert code == 0, err
        labels: list = []
        answers = _send(project_dir, 0, 1000, labels=labels)
        for answer in answers:  # every answer names the version that produced it, in body and header
            assert answer["headers"]["x-model-version"] == str(answer["body"]["model_version"])
            role = answer["body"]["model_role"]
            assert answer["body"]["model_version"] == (worse if role == "challenger" else better)
        roles = [a["body"]["model_role"] for a in answers]
        assert 25 <= roles.count("challenger") <= 75  # 100 requests at share 0.5
        _wait_for_rows(project_dir, "challenger", 10 * roles.count("challenger"))
        labels_file = _write_labels(project_dir, labels)
        code, out, err = run_cli("-C", project_dir, "--json", "experiment", "conclude", "--env", "laptop",
                                 "--labels", labels_file)
        assert code == 1, err
        result = json.loads(out)["details"]
        assert result["decision"] == "stop" and result["bound"]["upper"] < 0
        registry = open_registry(load_project(project_dir))
        assert active_deployment(registry, "laptop").version == better
        assert registry.alias_of("laptop") == better
        assert registry.get_version(worse).experiments[-1].status == "stopped"
        answers = _send(project_dir, 0, 50)
        assert {a["body"]["model_version"] for a in answers} == {better}
    finally:
        _stop(project_dir)


def test_an_equal_challenger_continues_and_the_experiment_survives_a_killed_server(tmp_path, run_cli):
    project_dir = _project(tmp_path, {**PLAN, "mode": "shadow"})
    champion = register_version(project_dir, seed=0)["version"]
    challenger = register_version(project_dir, seed=0)["version"]  # the same model, registered twice
    try:
        assert run_cli("-C", project_dir, "deploy", "--env", "laptop", "--model", str(champion))[0] == 0
        assert run_cli("-C", project_dir, "deploy", "--env", "laptop", "--experiment")[0] == 0  # configured
        labels: list = []
        _send(project_dir, 0, 150, labels=labels)
        _wait_for_rows(project_dir, "challenger", 150)
        project = load_project(project_dir)
        registry = open_registry(project)
        before = running_experiment(registry, "laptop")
        os.kill(active_deployment(registry, "laptop").handle["pid"], signal.SIGKILL)  # a crash, not a stop
        port = project.config.environments["laptop"].port
        deadline = time.monotonic() + 10
        while listening("127.0.0.1", port) and time.monotonic() < deadline:
            time.sleep(0.1)
        code, out, err = run_cli("-C", project_dir, "deploy", "--env", "laptop", "--model", str(champion))
        assert code == 0, err
        with urllib.request.urlopen(f"{_url(project_dir)}/version", timeout=10) as response:
            served = json.loads(response.read())
        assert served["model_version"] == champion
        assert served["experiment"]["id"] == before.id
        assert served["experiment"]["challenger_version"] == challenger
        _send(project_dir, 150, 150, labels=labels)
        _wait_for_rows(project_dir, "challenger", 300)
        labels_file = _write_labels(project_dir, labels)
        code, out, err = run_cli("-C", project_dir, "--json", "experiment", "conclude", "--env", "laptop",
                                 "--labels", labels_file)
        assert code == 0, err
        result = json.loads(out)["details"]
        assert result["decision"] == "continue"
        assert result["bound"]["rows"] == 300  # both servers' rows count
        assert result["bound"]["estimate"] == 0.0
        assert result["bound"]["lower"] < 0 < result["bound"]["upper"]
        after = running_experiment(registry, "laptop")
        assert after.id == before.id and len(after.looks) == 1
        assert active_deployment(registry, "laptop").version == champion
    finally:
        _stop(project_dir)


def test_canary_routing_is_stable_per_key_and_near_the_share(tmp_path, run_cli):
    project_dir = _project(tmp_path, {**PLAN, "mode": "canary", "share": 0.3, "key": "X-Customer"})
    champion = register_version(project_dir, seed=0)["version"]
    register_version(project_dir, seed=1)
    try:
        assert run_cli("-C", project_dir, "deploy", "--env", "laptop", "--model", str(champion))[0] == 0
        assert run_cli("-C", project_dir, "deploy", "--env", "laptop", "--experiment")[0] == 0
        url, records = _url(project_dir), _records(_holdout(project_dir).iloc[:1])
        seen: dict[str, set] = {}
        for repeat in range(3):
            for customer in range(200):
                _, body, _ = _post(url, records, f"c{customer}-{repeat}", {"X-Customer": f"cust-{customer}"})
                seen.setdefault(f"cust-{customer}", set()).add(body["model_role"])
        assert all(len(roles) == 1 for roles in seen.values())  # one customer, one model
        share = sum(roles == {"challenger"} for roles in seen.values()) / len(seen)
        assert abs(share - 0.3) < 4 * (0.3 * 0.7 / 200) ** 0.5
    finally:
        _stop(project_dir)


def test_a_full_shadow_queue_is_counted_and_never_fails_a_request(tmp_path, run_cli):
    project_dir = _project(tmp_path, {**PLAN, "mode": "shadow", "queue_rows": 100})
    champion = register_version(project_dir, seed=0)["version"]
    register_version(project_dir, seed=1)
    try:
        assert run_cli("-C", project_dir, "deploy", "--env", "laptop", "--model", str(champion))[0] == 0
        assert run_cli("-C", project_dir, "deploy", "--env", "laptop", "--experiment")[0] == 0
        url = _url(project_dir)
        before = _metric(url, "mlci_experiment_shadow_skipped_total")
        answers = _send(project_dir, 0, 1200, batch=150)  # every batch is larger than the whole queue
        assert all(a["body"]["model_version"] == champion for a in answers)
        assert _metric(url, "mlci_experiment_shadow_skipped_total") - before == 1200
        _wait_for_rows(project_dir, "champion", 1200)
        project = load_project(project_dir)
        experiment = running_experiment(open_registry(project), "laptop")
        logged = logged_rows(project.path(project.config.serve.log_dir), experiment.id)
        assert not [key for key in logged["challenger"] if key[0].startswith("r")]
    finally:
        _stop(project_dir)


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=12), st.text(max_size=40))
def test_canary_buckets_are_stable_and_in_the_unit_interval(experiment_id, key):
    assert bucket(experiment_id, key) == bucket(experiment_id, key)
    assert 0.0 <= bucket(experiment_id, key) < 1.0


def test_canary_buckets_are_uniform():
    draws = [bucket("exp", f"customer-{i}") for i in range(20_000)]
    for share in (0.01, 0.1, 0.5, 0.9):
        hit = sum(d < share for d in draws) / len(draws)
        assert abs(hit - share) < 4 * (share * (1 - share) / len(draws)) ** 0.5


def test_the_pipeline_commands_on_a_fresh_environment_and_a_second_experiment_is_refused(tmp_path, run_cli):
    project_dir = _project(tmp_path, {**PLAN, "mode": "shadow"})
    champion = register_version(project_dir, seed=0)["version"]
    newest = register_version(project_dir, seed=1)["version"]
    registry = open_registry(load_project(project_dir))
    try:
        code, out, err = run_cli("-C", project_dir, "experiment", "conclude", "--env", "laptop", "--if-running")
        assert code == 0 and "nothing to conclude" in err
        # nothing serves yet: the configured experiment has no champion, so the commit pipeline deploys
        assert run_cli("-C", project_dir, "deploy", "--env", "laptop", "--experiment")[0] == 0
        assert active_deployment(registry, "laptop").version == newest
        assert running_experiment(registry, "laptop") is None
        assert run_cli("-C", project_dir, "deploy", "--env", "laptop", "--model", str(champion))[0] == 0
        assert run_cli("-C", project_dir, "deploy", "--env", "laptop", "--experiment")[0] == 0
        assert running_experiment(registry, "laptop").challenger == newest
        code, out, err = run_cli("-C", project_dir, "deploy", "--env", "laptop", "--canary", "2")
        assert code == 2 and "already runs on 'laptop'" in err and "Traceback" not in err
        code, out, err = run_cli("-C", project_dir, "experiment", "conclude", "--env", "laptop")
        assert code == 2 and "--labels" in err
        assert len(experiments_of(open_registry(load_project(project_dir)), "laptop")) == 1
    finally:
        _stop(project_dir)


def test_the_monitor_reads_the_served_rows_and_not_a_shadow_challengers(tmp_path):
    from datetime import datetime

    from mlci.core.dataschema import load_schema
    from mlci.ops.monitor.sources import Source, log_batches
    from mlci.serve.predlog import LoggedBatch, batch_lines

    schema = load_schema(copy_example(tmp_path) / "schema.yaml")
    columns = {"age": [41, 52], "region": ["north", "south"]}
    lines = (batch_lines(LoggedBatch("2030-01-01T00:00:00.000Z", "a", 1, columns, [0, 1], None, None))
             + batch_lines(LoggedBatch("2030-01-01T00:00:00.000Z", "b", 1, columns, [1, 1], None, None,
                                       role="champion", experiment="e1"))
             + batch_lines(LoggedBatch("2030-01-01T00:00:00.000Z", "b", 2, {}, [0, 0], None, None,
                                       role="challenger", experiment="e1")))
    path = tmp_path / "predictions-20300101-000000-host-1.jsonl"
    path.write_text(lines)
    source = Source("log", [path], datetime(2029, 1, 1, tzinfo=UTC))
    frame = pd.concat(list(log_batches(source, schema, 100)))
    assert list(frame["__request_id"]) == ["a", "a", "b", "b"]
    assert list(frame["__prediction"]) == [0, 1, 1, 1]
    assert [json.loads(line).get("role") for line in lines.splitlines()] == [None, None, "champion", "champion",
                                                                            "challenger", "challenger"]


def test_histogram_quantile_interpolates_inside_the_bucket_as_prometheus_does():
    from mlci.ops.deliver.experiment import histogram_quantile

    # 100 observations: 90 up to 1 ms, 9 in (1, 2] ms, 1 in (2, 5] ms
    buckets = [(0.001, 90.0), (0.002, 99.0), (0.005, 100.0), (float("inf"), 100.0)]
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.001 * 50 / 90)
    assert histogram_quantile(0.99, buckets) == pytest.approx(0.002)
    assert histogram_quantile(0.995, buckets) == pytest.approx(0.002 + 0.003 * 0.5)
    assert histogram_quantile(0.99, [(0.001, 0.0), (float("inf"), 0.0)]) is None


@pytest.mark.parametrize("errors, champion_p99, challenger_p99, failed", [
    (0, 0.001, 0.0012, []),
    (5, 0.001, 0.0012, ["challenger error rate"]),
    (0, 0.001, 0.003, ["challenger p99 latency"]),
])
def test_guardrails_stop_on_errors_or_slowness(errors, champion_p99, challenger_p99, failed):
    from mlci.core.config import ExperimentGuardrails, ExperimentSection
    from mlci.core.records import Experiment
    from mlci.ops.deliver.experiment import ServerNumbers, guardrail_checks

    experiment = Experiment(id="e1", env="laptop", mode="shadow", champion=1, challenger=2, share=None, key=None,
                            plan=ExperimentSection(guardrails=ExperimentGuardrails(max_error_rate=0.01,
                                                                                   max_latency_ratio=1.5)),
                            started="2026-12-01T00:00:00Z", status="running")
    numbers = ServerNumbers(batches={"champion": 200.0, "challenger": 200.0}, errors={"challenger": float(errors)},
                            p99={"champion": champion_p99, "challenger": challenger_p99})
    checks = guardrail_checks(experiment, numbers)
    assert [c.name for c in checks if not c.passed] == failed
    unread = guardrail_checks(experiment, "http://127.0.0.1:1/metrics did not answer")
    assert [c.status for c in unread] == ["skip"]


@pytest.mark.parametrize("args, message", [
    (("--shadow", "1", "--canary", "1"), "--shadow and --canary exclude each other"),
    (("--share", "0.2"), "--share applies to a canary"),
    (("--canary", "1", "--share", "1.5"), "--share 1.5 is outside (0, 1]"),
    (("--env", "staging", "--shadow", "1"), "nothing is deployed to 'staging'"),
])
def test_bad_experiment_requests_are_refused_in_one_line(tmp_path, run_cli, args, message):
    project_dir = _project(tmp_path)
    config = yaml.safe_load((project_dir / "mlci.yaml").read_text())
    config["environments"]["staging"] = {"target": "kubernetes"}
    (project_dir / "mlci.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    register_version(project_dir)
    env = () if "--env" in args else ("--env", "laptop")
    code, out, err = run_cli("-C", project_dir, "deploy", *env, *args)
    assert code == 2 and message in err and "Traceback" not in err
    code, out, err = run_cli("-C", project_dir, "experiment", "status", "--env", "laptop", "--labels", "x.csv")
    assert code == 2 and "no experiment runs on 'laptop'" in err


@pytest.mark.parametrize("mode, counts_waiting", [("shadow", False), ("canary", True)])
def test_both_roles_are_timed_with_the_clock_of_the_mode(mode, counts_waiting):
    """Shadow's latency guardrail compares CPU time with CPU time (the scorer process measures its calls'
    CPU time), canary's compares what users wait: a model that waits 50 ms without computing costs
    nothing in shadow mode and 50 ms in canary mode."""
    from mlci.serve.experiment import scoring_clock

    clock = scoring_clock(mode)
    started = clock()
    time.sleep(0.05)
    elapsed = clock() - started
    assert (elapsed >= 0.05) is counts_waiting and (elapsed < 0.01) is not counts_waiting
