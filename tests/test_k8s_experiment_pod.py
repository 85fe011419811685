"""Fidelity of a kubernetes experiment: the Deployment mlci renders for a shadow experiment, run on the real
Docker engine the way the kubelet runs its pod (tests/kubelet_docker.py): the init container's command on
the challenger's own image (pulled by digest) writes the challenger's model into an emptyDir, then the
server container from the champion's image starts with that volume read-only and the rendered env. Real
requests then show both versions scoring: the champion answers (X-Model-Version), and the prediction log
in the pod's predictions volume holds the challenger's rows of the same requests."""

from __future__ import annotations

import contextlib
import json
import time
import uuid

import httpx
import pytest
import yaml

from mlci.core.config import load_project
from mlci.core.records import Experiment
from mlci.ops.deliver.experiment import logged_rows, plan_for
from mlci.ops.deliver.health import free_port
from mlci.ops.deliver.history import environment
from mlci.ops.deliver.kubernetes import kubernetes_manifests
from mlci.ops.model.registry import open_registry
from tests.kubelet_docker import Pod
from tests.serving_support import (
    answers_during,
    configure_delivery,
    copy_example,
    holdout_records,
    register_version,
)

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture(scope="module")
def pushed(tmp_path_factory, docker_engine, image_registry, base_image):
    """Versions 1 (champion) and 2 (challenger), each built and pushed as its own image."""
    from mlci.cli.main import run

    directory = copy_example(tmp_path_factory.mktemp("k8s-pod"))
    repository = configure_delivery(directory, registry=image_registry, base_image=base_image,
                                    ports=(free_port(), free_port()))
    path = directory / "mlci.yaml"
    config = yaml.safe_load(path.read_text())
    # A preStop wait longer than the stand-in Service takes to drop a terminating pod (ENDPOINTS_REFRESH and
    # a round of readiness probes). With no wait, the rollout below lost 3 polls to connections the Service
    # still sent to a pod that had stopped listening.
    config["environments"]["production"].update(port=free_port(), pre_stop_seconds=3)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    for seed, flip in ((0, False), (1, True)):
        version = register_version(directory, seed=seed, flip_labels=flip)["version"]
        assert run(["-C", str(directory), "build", "--model", str(version)]) == 0
        assert run(["-C", str(directory), "push", "--model", str(version)]) == 0
    yield directory
    for image in docker_engine.images.list(name=repository):
        docker_engine.images.remove(image.id, force=True)


def _experiment(project, champion: int, challenger: int, mode: str) -> Experiment:
    plan = plan_for(project, "production", mode=mode, share=0.5 if mode == "canary" else None)
    return Experiment(id=uuid.uuid4().hex[:16], env="production", mode=mode, champion=champion,
                      challenger=challenger, share=plan.share if mode == "canary" else None, key=None,
                      plan=plan, started="2026-01-01T00:00:00Z", status="running")


def test_the_rendered_experiment_pod_runs_both_versions_like_the_kubelet_would(pushed, docker_engine):
    project = load_project(pushed)
    registry = open_registry(project)
    champion, challenger = registry.get_version(1), registry.get_version(2)
    experiment = _experiment(project, 1, 2, "shadow")
    text = kubernetes_manifests(project, env_name="production", env=environment(project, "production"),
                                record=champion, experiment=experiment)
    deployment = next(d for d in yaml.safe_load_all(text) if d and d["kind"] == "Deployment")
    template = deployment["spec"]["template"]
    # the images are the pushed digests, pulled as the kubelet would (by digest, not by tag)
    for reference in (champion.image.reference, challenger.image.reference):
        assert "@sha256:" in reference
        docker_engine.images.pull(reference)
    assert template["spec"]["initContainers"][0]["image"] == challenger.image.reference
    assert template["spec"]["containers"][0]["image"] == champion.image.reference

    pod = Pod(docker_engine, template, labels={"org.mlci.project": project.config.project})
    try:
        pod.start()
        copied = pod.volume("challenger-model")
        assert sorted(p.name for p in (copied / "versions").iterdir()) == ["v2"]  # only the challenger's image
        base = pod.wait_ready()
        served = httpx.get(f"{base}/version", timeout=10).json()
        assert served["model_version"] == 1
        assert served["experiment"] == {**served["experiment"], "mode": "shadow", "challenger_version": 2}
        records = holdout_records(pushed, 20)
        for batch in range(4):
            answer = httpx.post(f"{base}/predict", json=records[batch * 5:batch * 5 + 5],
                                headers={"X-Request-ID": f"pod-{batch}"}, timeout=10)
            assert answer.status_code == 200, answer.text
            assert answer.headers["x-model-version"] == "1" and answer.headers["x-model-role"] == "champion"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            rows = logged_rows(pod.volume("predictions"), experiment.id)
            if len(rows["challenger"]) >= 20 and len(rows["champion"]) >= 20:
                break
            time.sleep(0.5)
        assert {line["model_version"] for line in rows["champion"].values()} == {1}
        assert {line["model_version"] for line in rows["challenger"].values()} == {2}
        assert rows["challenger"].keys() == rows["champion"].keys()  # the same rows, joinable on request id
        # the read-only mount is read-only for the server
        probe = docker_engine.containers.get(pod.containers[0].id).attrs["Mounts"]
        mounts = {m["Destination"]: m["RW"] for m in probe}
        assert mounts["/app/experiment-registry"] is False and mounts["/app/predictions"] is True
    finally:
        pod.stop()


def test_without_the_experiment_the_same_pod_serves_one_version(pushed, docker_engine):
    """What promote renders: the challenger as the only model, no init container, no extra volume."""
    project = load_project(pushed)
    challenger = open_registry(project).get_version(2)
    text = kubernetes_manifests(project, env_name="production", env=environment(project, "production"),
                                record=challenger)
    template = next(d for d in yaml.safe_load_all(text) if d and d["kind"] == "Deployment")["spec"]["template"]
    assert "initContainers" not in template["spec"]
    pod = Pod(docker_engine, template, labels={"org.mlci.project": project.config.project})
    try:
        pod.start()
        base = pod.wait_ready()
        served = httpx.get(f"{base}/version", timeout=10).json()
        assert served["model_version"] == 2 and not served.get("experiment")
        answer = httpx.post(f"{base}/predict", json=holdout_records(pushed, 3), timeout=10)
        assert answer.status_code == 200 and answer.headers["x-model-version"] == "2"
        assert "x-model-role" not in answer.headers and json.loads(answer.text)["model_version"] == 2
    finally:
        pod.stop()


# The latency guardrail is tested in tests/test_experiments.py; here, where a loaded machine can preempt one of
# the few shadow batches, it is set loose so the test is about the kubernetes wiring (the error-rate
# guardrail is still read from the pod and checked).
PLAN = {"metric": "accuracy", "max_drop": 0.0, "expected_rows": 300, "min_rows": 100,
        "guardrails": {"max_latency_ratio": 1000}}


def _send(base: str, records: list[dict], truth: list[int], start: int, rows: int, labels: list) -> list[str]:
    """POST rows [start, start + rows) in batches of 10; collect labels; return each answer's role."""
    roles = []
    for offset in range(start, start + rows, 10):
        request_id = f"k8s-{offset}-{uuid.uuid4().hex[:6]}"
        answer = httpx.post(f"{base}/predict", json=records[offset:offset + 10], timeout=10,
                            headers={"X-Request-ID": request_id})
        assert answer.status_code == 200, answer.text
        assert answer.headers["x-model-version"] == str(answer.json()["model_version"])
        roles.append(answer.json().get("model_role"))
        labels.extend((request_id, row, truth[offset + row]) for row in range(len(records[offset:offset + 10])))
    return roles


def _labels_file(directory, labels: list):
    path = directory / f"labels-{uuid.uuid4().hex[:6]}.csv"
    path.write_text("request_id,row,default\n" + "".join(f"{r},{i},{v}\n" for r, i, v in labels))
    return path


def _wait_logged(log_dir, experiment_id: str, role: str, rows: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if len(logged_rows(log_dir, experiment_id)[role]) >= rows:
            return
        time.sleep(0.5)
    raise AssertionError(f"fewer than {rows} {role} rows logged")


@pytest.fixture
def cluster(pushed, docker_engine, tmp_path, monkeypatch):
    """tests/kubectl_docker.py as ``kubectl`` on PATH (its state directory is yielded); the predictions
    claim is the project's ``predictions`` directory. Every pod it started is removed afterwards."""
    import os
    import sys

    from tests.kubectl_docker import delete_everything
    from tests.serving_support import REPO

    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "kubectl").write_text(f'#!/bin/sh\nexec {sys.executable} -m tests.kubectl_docker "$@"\n')
    (bindir / "kubectl").chmod(0o755)
    state_dir = tmp_path / "cluster"
    state_dir.mkdir()
    log_dir = pushed / "predictions"
    log_dir.mkdir(exist_ok=True)
    log_dir.chmod(0o777)  # the pods write as the image's user, as to a ReadWriteMany volume
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.setenv("KUBECTL_DOCKER_STATE", str(state_dir))
    monkeypatch.setenv("KUBECTL_DOCKER_CLAIMS", json.dumps({"mlci-predictions": str(log_dir)}))
    yield state_dir
    delete_everything(state_dir, docker_engine)


def _cluster_pods(state_dir) -> list[dict]:
    return json.loads((state_dir / "state.json").read_text())["pods"]


def test_on_the_kubernetes_target_a_better_challenger_is_promoted_and_a_worse_one_stopped(
        pushed, cluster, run_cli):
    """The whole loop through `mlci` on the kubernetes target, with kubectl driving the Docker engine as
    the kubelet would (tests/kubectl_docker.py): deploy, shadow, conclude (promote), canary, conclude (stop)."""
    import pandas as pd

    from mlci.ops.deliver.experiment_state import experiments_of, running_experiment
    from mlci.ops.deliver.history import active_deployment

    log_dir = pushed / "predictions"
    path = pushed / "mlci.yaml"
    config = yaml.safe_load(path.read_text())
    production = config["environments"]["production"]
    base = f"http://127.0.0.1:{production['port']}"
    production.update(url=base, predictions_claim="mlci-predictions", health_timeout=90,
                      experiment={**PLAN, "mode": "shadow"})
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    holdout = pd.read_csv(pushed / "data" / "holdout.csv")
    records, truth = holdout_records(pushed, len(holdout)), [int(v) for v in holdout["default"]]
    project = load_project(pushed)
    registry = open_registry(project)
    better, worse = 1, 2  # version 2 was trained on inverted labels
    code, out, err = run_cli("-C", pushed, "deploy", "--env", "production", "--model", str(worse))
    assert code == 0, err
    code, out, err = run_cli("-C", pushed, "deploy", "--env", "production", "--shadow", str(better))
    assert code == 0, err
    experiment = running_experiment(registry, "production")
    assert httpx.get(f"{base}/version", timeout=10).json()["experiment"]["challenger_version"] == better
    labels: list = []
    assert set(_send(base, records, truth, 0, 300, labels)) == {"champion"}
    _wait_logged(log_dir, experiment.id, "challenger", 300)
    code, out, err = run_cli("-C", pushed, "--json", "experiment", "conclude", "--env", "production",
                             "--labels", _labels_file(pushed, labels))
    assert code == 0, out + err
    result = json.loads(out)
    assert result["details"]["decision"] == "promote", result
    guardrail = next(c for c in result["checks"] if c["name"] == "challenger error rate")
    assert guardrail["status"] == "pass"  # read from every pod through the API server's pod proxy
    assert len(result["details"]["metrics_read_from"]) == 2
    assert registry.alias_of("production") == better
    assert active_deployment(registry, "production").version == better
    assert experiments_of(registry, "production")[-1].status == "promoted"
    served = httpx.get(f"{base}/version", timeout=10).json()
    assert served["model_version"] == better and not served.get("experiment")
    # promote dropped the init container from every replica
    assert [p["pod"]["template"]["spec"].get("initContainers") for p in _cluster_pods(cluster)] == [None, None]

    code, out, err = run_cli("-C", pushed, "deploy", "--env", "production", "--canary", str(worse),
                             "--share", "0.5")
    assert code == 0, err
    experiment = running_experiment(registry, "production")
    labels = []
    roles = _send(base, records, truth, 300, min(1000, len(records) - 300), labels)
    assert 0 < roles.count("challenger") < len(roles)
    _wait_logged(log_dir, experiment.id, "challenger", 10 * roles.count("challenger") - 10)
    code, out, err = run_cli("-C", pushed, "--json", "experiment", "conclude", "--env", "production",
                             "--labels", _labels_file(pushed, labels))
    assert code == 1, err
    assert json.loads(out)["details"]["decision"] == "stop"
    assert experiments_of(registry, "production")[-1].status == "stopped"
    assert registry.alias_of("production") == better
    for pod in (p["pod"]["template"]["spec"] for p in _cluster_pods(cluster)):
        assert "initContainers" not in pod and {v["name"] for v in pod["volumes"]} == {"predictions", "tmp"}
    answer = httpx.post(f"{base}/predict", json=records[:5], timeout=10)
    assert answer.headers["x-model-version"] == str(better) and "x-model-role" not in answer.headers


def _wait_for_endpoints(base: str) -> None:
    """The first rollout creates the Service's endpoints; like kube-proxy's, the stand-in's learn of them a
    moment after the rollout completed, and until then a connection is rejected."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{base}/health/ready", timeout=5).status_code == 200:
                return
        time.sleep(0.2)
    raise AssertionError(f"the Service at {base} never answered")


def _metrics(port: int) -> str:
    return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text


def test_guardrails_read_every_replica_and_a_rollout_never_leaves_the_service_without_a_ready_pod(
        pushed, cluster, run_cli, monkeypatch):
    """Two replicas. Starting the experiment rolls both pods over one at a time (maxSurge 1, maxUnavailable
    0): while it does, every request to the Service's port is answered, first by the old pods, then by the
    new ones. Then one replica gets most of the traffic: `experiment status` reads both pods through the
    API server's pod proxy and merges them (the counts are the sum; the p99 comes from the summed buckets),
    where a look through the Service would have read one. A pod that goes away between the listing and its
    read is left out and named."""
    import pandas as pd

    from mlci.ops.deliver.experiment import histogram_quantile, merged_server_numbers

    path = pushed / "mlci.yaml"
    config = yaml.safe_load(path.read_text())
    production = config["environments"]["production"]
    base = f"http://127.0.0.1:{production['port']}"
    production.update(url=base, predictions_claim="mlci-predictions", health_timeout=90, replicas=2,
                      experiment={**PLAN, "mode": "shadow"})
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    code, out, err = run_cli("-C", pushed, "deploy", "--env", "production", "--model", "2")
    assert code == 0, err
    before = {p["name"] for p in _cluster_pods(cluster)}
    assert len(before) == 2
    _wait_for_endpoints(base)

    with answers_during(f"{base}/version") as answers:
        code, out, err = run_cli("-C", pushed, "deploy", "--env", "production", "--shadow", "1")
    assert code == 0, err
    assert [a.status for a in answers if a.status != 200] == []  # no gap: a ready pod answered every request
    assert bool(answers[0].body.get("experiment")) is False and bool(answers[-1].body.get("experiment")) is True
    pods = _cluster_pods(cluster)
    assert len(pods) == 2 and not before & {p["name"] for p in pods}  # both replicas were replaced

    # most of the traffic to one replica, a little to the other, each at its own address (its pod IP)
    holdout = pd.read_csv(pushed / "data" / "holdout.csv")
    records, truth = holdout_records(pushed, len(holdout)), [int(v) for v in holdout["default"]]
    busy, quiet = pods
    labels: list = []
    _send(f"http://127.0.0.1:{busy['port']}", records, truth, 0, 150, labels)
    _send(f"http://127.0.0.1:{quiet['port']}", records, truth, 150, 30, labels)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        each = {p["name"]: merged_server_numbers({p["name"]: _metrics(p["port"])}) for p in (busy, quiet)}
        if [n.batches.get("challenger") for n in each.values()] == [15.0, 3.0]:
            break
        time.sleep(0.5)
    assert [n.batches.get("challenger") for n in each.values()] == [15.0, 3.0]
    labels_file = _labels_file(pushed, labels)
    code, out, err = run_cli("-C", pushed, "--json", "experiment", "status", "--env", "production",
                             "--labels", labels_file)
    assert code == 0, out + err
    result = json.loads(out)
    assert result["details"]["metrics_read_from"] == sorted(each)
    checks = {c["name"]: c for c in result["checks"]}
    assert checks["challenger error rate"]["message"] == "0 of 18 batches failed"  # 15 + 3, not one pod's
    summed = {role: {} for role in ("champion", "challenger")}
    for numbers in each.values():
        for role, points in numbers.buckets.items():
            for bound, count in points.items():
                summed[role][bound] = summed[role].get(bound, 0.0) + count
    p99 = {role: histogram_quantile(0.99, list(points.items())) for role, points in summed.items()}
    assert checks["challenger p99 latency"]["value"] == round(p99["challenger"] / p99["champion"], 3)

    monkeypatch.setenv("KUBECTL_DOCKER_TAKE_AWAY_AFTER_LISTING", quiet["name"])
    code, out, err = run_cli("-C", pushed, "--json", "experiment", "status", "--env", "production",
                             "--labels", labels_file)
    assert code == 0, out + err
    result = json.loads(out)
    assert result["details"]["metrics_read_from"] == [busy["name"]]
    assert result["details"]["metrics_left_out"] == [f"pod {quiet['name']} went away before it was read"]
    assert {c["name"]: c for c in result["checks"]}["challenger error rate"]["message"] == "0 of 15 batches failed"
