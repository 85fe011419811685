"""`mlci deploy` / `mlci rollback` against the real Docker engine and registry (docker target) and as
background processes (local target): build → push → pull → deploy → /predict on the running server,
a second version over it, a broken image rolled back while the old server keeps answering, rollback."""

from __future__ import annotations

import json
import time

import docker.errors
import httpx
import pytest

from mlci.core.config import load_project
from mlci.ops.deliver.health import free_port
from mlci.ops.deliver.history import active_deployment, deployments
from mlci.ops.model.registry import open_registry
from tests.serving_support import (
    answers_during,
    configure_delivery,
    copy_example,
    holdout_records,
    register_version,
)

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture(scope="module")
def delivered(tmp_path_factory, docker_engine, image_registry, base_image):
    """Versions 1 and 2 built and pushed; containers of this project removed afterwards."""
    from mlci.cli.main import run

    directory = copy_example(tmp_path_factory.mktemp("deploy"))
    ports = (free_port(), free_port())
    repository = configure_delivery(directory, registry=image_registry, base_image=base_image, ports=ports,
                                    health_timeout=20)
    for seed in (0, 1):
        version = register_version(directory, seed=seed)["version"]
        assert run(["-C", str(directory), "build", "--model", str(version)]) == 0
        assert run(["-C", str(directory), "push", "--model", str(version)]) == 0
    yield directory, repository, ports
    for container in docker_engine.containers.list(all=True, filters={"label": "org.mlci.project=credit-risk"}):
        if container.image.tags and container.image.tags[0].startswith(repository) or \
                repository in container.attrs["Config"]["Image"]:
            container.remove(force=True)
    for image in docker_engine.images.list(name=repository):
        docker_engine.images.remove(image.id, force=True)


def _predict(port: int, records: list[dict]) -> dict:
    answer = httpx.post(f"http://127.0.0.1:{port}/predict", json=records, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _registry(directory):
    return open_registry(load_project(directory))


def test_docker_deploy_then_a_second_version_then_a_broken_image_then_rollback(delivered, docker_engine,
                                                                                run_cli, image_registry):
    directory, repository, (port, _) = delivered
    records = holdout_records(directory, 3)

    code, out, err = run_cli("-C", directory, "deploy", "--env", "staging", "--model", "1")
    assert code == 0, err
    assert _predict(port, records)["model_version"] == 1
    first = active_deployment(_registry(directory), "staging")
    container = docker_engine.containers.get(first.handle["container"])
    assert container.attrs["Config"]["Image"] == _registry(directory).get(1)["image"]["reference"]
    log_files = list((directory / "predictions").glob("predictions-*.jsonl"))
    assert log_files, "the container's prediction log is written into the project"

    # version 2 over it, with requests running the whole time: none may fail
    with answers_during(f"http://127.0.0.1:{port}/predict", json=records, interval=0.02) as answers:
        code, out, err = run_cli("-C", directory, "deploy", "--env", "staging", "--model", "2")
    assert code == 0, err
    assert answers and [a.status for a in answers if a.status != 200] == []
    assert _predict(port, records)["model_version"] == 2
    with pytest.raises(docker.errors.NotFound):  # the old container was removed, not just stopped
        docker_engine.containers.get(first.handle["container"])

    # a broken image: version 3 whose model file was altered after registration
    broken = f"{repository}:broken"
    dockerfile = (f"FROM {repository}:v2\nUSER root\n"
                  "RUN echo tampered >> /app/registry/versions/v2/model.skops\nUSER 10001\n").encode()
    import io
    docker_engine.images.build(fileobj=io.BytesIO(dockerfile), tag=broken, rm=True)
    digest = None
    for message in docker_engine.api.push(repository, tag="broken", stream=True, decode=True):
        digest = (message.get("aux") or {}).get("Digest") or digest
    registry = _registry(directory)
    version = register_version(directory, seed=2)["version"]
    registry.update(version, lambda r: r.__setitem__("image", {"name": repository, "tags": ["broken"],
                                                               "reference": f"{repository}@{digest}"}))
    code, out, err = run_cli("-C", directory, "--json", "deploy", "--env", "staging", "--model", str(version))
    assert code == 1, err
    report = json.loads(out)
    assert {c["name"]: c["status"] for c in report["checks"]} == {
        "start": "pass", "ready": "fail", "smoke test": "skip", "switch": "fail"}
    assert "sha256 does not match" in report["checks"][1]["message"]
    assert _predict(port, records)["model_version"] == 2, "the old version keeps answering"
    statuses = [(d.version, d.status) for d in deployments(_registry(directory), "staging")]
    assert statuses == [(1, "retired"), (2, "active"), (version, "failed")]
    assert _registry(directory).alias_of("staging") == 2, "the environment's alias follows what serves"
    assert not docker_engine.containers.list(all=True, filters={"label": f"org.mlci.version={version}"})

    # rollback: back to version 1, and then there is nothing earlier to return to
    code, out, err = run_cli("-C", directory, "rollback", "--env", "staging")
    assert code == 0, err
    assert _predict(port, records)["model_version"] == 1
    statuses = [(d.version, d.status, d.kind) for d in deployments(_registry(directory), "staging")]
    assert statuses[1] == (2, "rolled_back", "deploy") and statuses[-1] == (1, "active", "rollback")
    assert _registry(directory).alias_of("staging") == 1
    code, out, err = run_cli("-C", directory, "rollback", "--env", "staging")
    assert code == 2 and "no previous deployment" in err
    assert (directory / "reports" / "rollback-staging.junit.xml").exists()  # one set per environment


def test_local_target_runs_background_servers_and_switches_versions(delivered, run_cli):
    directory, _, (_, port) = delivered
    records = holdout_records(directory, 2)
    try:
        code, out, err = run_cli("-C", directory, "deploy", "--env", "laptop", "--model", "1")
        assert code == 0, err
        assert _predict(port, records)["model_version"] == 1
        first = active_deployment(_registry(directory), "laptop")
        code, out, err = run_cli("-C", directory, "deploy", "--env", "laptop", "--model", "2")
        assert code == 0, err
        assert _predict(port, records)["model_version"] == 2
        assert not _alive(first.handle["pid"])
    finally:
        current = active_deployment(_registry(directory), "laptop")
        if current:
            from mlci.ops.deliver.local_target import LocalTarget
            LocalTarget(load_project(directory), "laptop").stop(current.handle)


def _alive(pid: int) -> bool:
    from mlci.ops.deliver.local_target import is_our_server
    return is_our_server(pid)


def test_deploy_needs_a_pushed_image_and_a_known_environment(delivered, run_cli):
    directory, _, _ = delivered
    code, out, err = run_cli("-C", directory, "deploy", "--env", "stagin")
    assert code == 2 and "did you mean 'staging'" in err
    version = register_version(directory, seed=3)["version"]
    code, out, err = run_cli("-C", directory, "deploy", "--env", "staging", "--model", str(version))
    assert code == 2 and "has no pushed image" in err


def test_docker_target_runs_a_shadow_experiment_with_the_challenger_read_from_the_registry(delivered, run_cli):
    """The image holds one version; the deployer mounts the project's registry read-only for the challenger,
    and both models' rows reach the project's prediction log through the mounted log directory."""
    import pandas as pd

    from mlci.ops.deliver.experiment import logged_rows
    from mlci.ops.deliver.experiment_state import running_experiment

    directory, repository, (port, _) = delivered
    assert run_cli("-C", directory, "deploy", "--env", "staging", "--model", "1")[0] == 0
    code, out, err = run_cli("-C", directory, "deploy", "--env", "staging", "--shadow", "2")
    assert code == 0, err
    served = httpx.get(f"http://127.0.0.1:{port}/version", timeout=10).json()
    assert served["model_version"] == 1
    assert served["experiment"]["mode"] == "shadow" and served["experiment"]["challenger_version"] == 2
    holdout = pd.read_csv(directory / "data" / "holdout.csv", nrows=50)
    records = holdout.drop(columns=["default"]).astype(object)
    records = records.where(records.notna(), None).to_dict(orient="records")
    labels = directory / "docker-labels.csv"
    lines = ["request_id,row,default"]
    for batch in range(10):
        answer = httpx.post(f"http://127.0.0.1:{port}/predict", json=records[batch * 5:batch * 5 + 5],
                            headers={"X-Request-ID": f"dock-{batch}"}, timeout=10)
        assert answer.status_code == 200 and answer.headers["x-model-version"] == "1"
        assert answer.json()["model_role"] == "champion"
        lines += [f"dock-{batch},{row},{holdout['default'][batch * 5 + row]}" for row in range(5)]
    labels.write_text("\n".join(lines) + "\n")
    project = load_project(directory)
    experiment = running_experiment(_registry(directory), "staging")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = logged_rows(project.path(project.config.serve.log_dir), experiment.id)
        if len(found["challenger"]) >= 50 and len(found["champion"]) >= 50:
            break
        time.sleep(0.5)
    code, out, err = run_cli("-C", directory, "--json", "experiment", "status", "--env", "staging",
                             "--labels", labels)
    assert code == 0, err
    details = json.loads(out)["details"]
    assert details["labelled_rows"] == {"champion": 50, "challenger": 50}
    assert details["bound"]["rows"] == 50
