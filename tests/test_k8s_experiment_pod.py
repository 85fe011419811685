"""Fidelity of a kubernetes experiment: the Deployment mlci renders for a shadow experiment, run on the real
Docker engine the way the kubelet runs its pod (tests/kubelet_docker.py): the init container's command on
the challenger's own image (pulled by digest) writes the challenger's model into an emptyDir, then the
server container from the champion's image starts with that volume read-only and the rendered env. Real
requests then show both versions scoring: the champion answers (X-Model-Version), and the prediction log
in the pod's predictions volume holds the challenger's rows of the same requests."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict

import httpx
import pytest
import yaml

from mlci.core.config import load_project
from mlci.ops.deliver.experiment import logged_rows, plan_for
from mlci.ops.deliver.health import free_port
from mlci.ops.deliver.history import environment
from mlci.ops.deliver.kubernetes import kubernetes_manifests
from mlci.ops.model.registry import open_registry
from tests.kubelet_docker import Pod
from tests.serving_support import configure_delivery, copy_example, holdout_records, register_version

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
    config["environments"]["production"]["port"] = free_port()
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    for seed, flip in ((0, False), (1, True)):
        version = register_version(directory, seed=seed, flip_labels=flip)["version"]
        assert run(["-C", str(directory), "build", "--model", str(version)]) == 0
        assert run(["-C", str(directory), "push", "--model", str(version)]) == 0
    yield directory
    for image in docker_engine.images.list(name=repository):
        docker_engine.images.remove(image.id, force=True)


def _experiment(project, champion: int, challenger: int, mode: str) -> dict:
    plan = plan_for(project, "production", mode=mode, share=0.5 if mode == "canary" else None)
    return {"id": uuid.uuid4().hex[:16], "env": "production", "mode": mode, "champion": champion,
            "challenger": challenger, "share": plan.share if mode == "canary" else None, "key": None,
            "plan": asdict(plan), "started": "2026-01-01T00:00:00Z", "status": "running", "looks": []}


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
            rows = logged_rows(pod.volume("predictions"), experiment["id"])
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
