"""Kubernetes manifests rendered by `mlci deploy` for a kubernetes environment, validated against the
Kubernetes API schemas (kubernetes-validate, strict: unknown fields are errors). No cluster runs here."""

from __future__ import annotations

import uuid

import kubernetes_validate
import pytest
import yaml

from mlci.core.config import load_project
from mlci.ops.deliver.history import environment
from mlci.ops.deliver.kubernetes import EXPERIMENT_LABEL, kubernetes_manifests
from mlci.ops.model.registry import open_registry
from tests.serving_support import copy_example, register_version

DIGEST = "sha256:" + "ab" * 32
K8S_VERSIONS = ("1.28.0", kubernetes_validate.latest_version())


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    directory = copy_example(tmp_path_factory.mktemp("k8s"))
    record = register_version(directory)
    project = load_project(directory)
    reference = f"{project.config.image.name}@{DIGEST}"
    open_registry(project).update(record["version"], lambda r: r.__setitem__(
        "image", {"name": project.config.image.name, "tags": ["v1"], "digest": DIGEST, "reference": reference}))
    return directory


def _documents(project_dir):
    project = load_project(project_dir)
    record = open_registry(project).get_version("latest")
    text = kubernetes_manifests(project, env_name="production", env=environment(project, "production"), record=record)
    return [doc for doc in yaml.safe_load_all(text) if doc]


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_manifests_validate_strictly_against_the_kubernetes_schemas(project, version):
    documents = _documents(project)
    assert [d["kind"] for d in documents] == ["Deployment", "Service", "HorizontalPodAutoscaler"]
    for document in documents:
        kubernetes_validate.validate(document, version, strict=True)


def test_deployment_pulls_by_digest_with_probes_resources_and_a_non_root_user(project):
    deployment, service, hpa = _documents(project)
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"].endswith(f"@{DIGEST}")
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert container["resources"]["requests"] == {"cpu": "500m", "memory": "512Mi"}
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001
    assert deployment["spec"]["replicas"] == 2 and hpa["spec"]["maxReplicas"] == 6
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert service["spec"]["ports"][0]["port"] == 8080
    env = {item["name"]: item["value"] for item in container["env"]}
    assert env["MLCI_SERVE_PORT"] == "8080" and env["MLCI_SERVE_MAX_ROWS"] == "1000"


def test_a_broken_manifest_is_caught_by_the_validator(project):
    deployment = _documents(project)[0]
    deployment["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSIONS[-1], strict=True)


def test_cli_render_only_writes_the_manifests_and_without_kubectl_exits_3(project, run_cli, tmp_path):
    code, out, err = run_cli("-C", project, "deploy", "--env", "production", "--render-only")
    assert code == 0, err
    written = project / "reports" / "kubernetes" / "production.yaml"
    assert written.exists() and DIGEST in written.read_text()
    code, out, err = run_cli("-C", project, "deploy", "--env", "production", env={"PATH": str(tmp_path)})
    assert code == 3
    assert "kubectl is not installed" in err and "Traceback" not in err


def test_prediction_logs_go_to_a_claimed_volume_when_configured(project, tmp_path):
    import dataclasses

    loaded = load_project(project)
    record = open_registry(loaded).get_version("latest")
    claimed = dataclasses.replace(environment(loaded, "production"), predictions_claim="credit-risk-predictions")
    for env, expected in ((environment(loaded, "production"), {"emptyDir": {}}),
                          (claimed, {"persistentVolumeClaim": {"claimName": "credit-risk-predictions"}})):
        text = kubernetes_manifests(loaded, env_name="production", env=env, record=record)
        deployment = next(doc for doc in yaml.safe_load_all(text) if doc and doc["kind"] == "Deployment")
        kubernetes_validate.validate(deployment, K8S_VERSIONS[0], strict=True)
        volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
        assert {k: v for k, v in volumes["predictions"].items() if k != "name"} == expected


@pytest.mark.parametrize("seconds", [0, 1, 5, 300])
def test_a_terminating_pod_waits_in_its_pre_stop_hook_within_its_grace_period(project, seconds):
    """The preStop hook runs the image's Python to wait ``pre_stop_seconds`` before SIGTERM; the hook's time
    counts against the grace period, which still leaves the server its whole graceful shutdown."""
    import dataclasses
    import subprocess
    import sys
    import time

    from mlci.serve.settings import GRACEFUL_SHUTDOWN_SECONDS

    loaded = load_project(project)
    record = open_registry(loaded).get_version("latest")
    env = dataclasses.replace(environment(loaded, "production"), pre_stop_seconds=seconds)
    text = kubernetes_manifests(loaded, env_name="production", env=env, record=record)
    deployment = next(doc for doc in yaml.safe_load_all(text) if doc and doc["kind"] == "Deployment")
    for version in K8S_VERSIONS:
        kubernetes_validate.validate(deployment, version, strict=True)
    pod = deployment["spec"]["template"]["spec"]
    server = pod["containers"][0]
    assert pod["terminationGracePeriodSeconds"] >= seconds + GRACEFUL_SHUTDOWN_SECONDS + 1
    if not seconds:
        assert "lifecycle" not in server
        return
    command = server["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "python"  # the image's ENTRYPOINT runs it too: no shell or coreutils needed
    if seconds > 1:
        return
    started = time.monotonic()
    subprocess.run([sys.executable, *command[1:]], check=True, timeout=30)
    assert time.monotonic() - started >= seconds


def test_pre_stop_seconds_out_of_range_is_refused_in_one_line(tmp_path, run_cli):
    directory = copy_example(tmp_path)
    path = directory / "mlci.yaml"
    config = yaml.safe_load(path.read_text())
    config["environments"]["production"]["pre_stop_seconds"] = -1
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    code, out, err = run_cli("-C", directory, "deploy", "--env", "production", "--render-only")
    assert code == 2, out + err
    assert "pre_stop_seconds" in err and "mlci.yaml" in err and "Traceback" not in err


# -- live experiments on the kubernetes target -------------------------------------------------------------

CHALLENGER_DIGEST = "sha256:" + "cd" * 32


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory):
    """Version 1 (the champion) and version 2 (the challenger), each with its own pushed image."""
    directory = copy_example(tmp_path_factory.mktemp("k8s-exp"))
    project = load_project(directory)
    registry = open_registry(project)
    name = project.config.image.name
    for digest in (DIGEST, CHALLENGER_DIGEST):
        version = register_version(directory)["version"]
        image = {"name": name, "tags": [f"v{version}"], "digest": digest, "reference": f"{name}@{digest}"}
        registry.update(version, lambda r, i=image: r.__setitem__("image", i))
    return directory


def _experiment(project, mode: str):

    from mlci.core.records import Experiment
    from mlci.ops.deliver.experiment import plan_for

    plan = plan_for(project, "production", mode=mode, share=0.25 if mode == "canary" else None)
    return Experiment(id=f"exp-{mode}", env="production", mode=mode, champion=1, challenger=2,
                      share=plan.share if mode == "canary" else None, key="X-Customer" if mode == "canary" else None,
                      plan=plan, started="2026-01-01T00:00:00Z", status="running")


def _deployment(project, record, experiment=None) -> dict:
    text = kubernetes_manifests(project, env_name="production", env=environment(project, "production"),
                                record=record, experiment=experiment)
    return next(doc for doc in yaml.safe_load_all(text) if doc and doc["kind"] == "Deployment")


@pytest.mark.parametrize("mode", ["shadow", "canary"])
@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_an_experiment_adds_an_init_container_with_the_challengers_image_and_a_shared_volume(two_versions, mode,
                                                                                              version):
    project = load_project(two_versions)
    registry = open_registry(project)
    experiment = _experiment(project, mode)
    deployment = _deployment(project, registry.get_version(1), experiment)
    kubernetes_validate.validate(deployment, version, strict=True)
    pod = deployment["spec"]["template"]["spec"]
    (init,), (server,) = pod["initContainers"], pod["containers"]
    assert init["image"].endswith(f"@{CHALLENGER_DIGEST}") and server["image"].endswith(f"@{DIGEST}")
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["challenger-model"] == {"name": "challenger-model", "emptyDir": {}}
    assert init["volumeMounts"] == [{"name": "challenger-model", "mountPath": "/app/experiment-registry"}]
    assert {"name": "challenger-model", "mountPath": "/app/experiment-registry", "readOnly": True} \
        in server["volumeMounts"]
    assert init["command"][:2] == ["python", "-c"] and init["command"][-2:] == ["/app/registry",
                                                                                 "/app/experiment-registry"]
    env = {item["name"]: item["value"] for item in server["env"]}
    assert env["MLCI_SERVE_EXPERIMENT_MODE"] == mode and env["MLCI_SERVE_EXPERIMENT_CHALLENGER"] == "2"
    assert env["MLCI_SERVE_EXPERIMENT_ID"] == experiment.id
    assert env["MLCI_SERVE_EXPERIMENT_REGISTRY"] == "/app/experiment-registry"
    assert float(env["MLCI_SERVE_EXPERIMENT_SHARE"]) == (0.25 if mode == "canary" else 0.0)
    assert env["MLCI_SERVE_EXPERIMENT_KEY"] == (experiment.key or "")
    assert "MLCI_SERVE_REGISTRY" not in env and "MLCI_SERVE_MODEL" not in env  # the image knows its own
    annotations = deployment["metadata"]["annotations"]
    assert annotations["mlci/experiment"] == experiment.id and annotations["mlci/challenger-version"] == "2"
    # the pods carry the experiment, so its guardrails list them by label (and no pod of another template)
    assert deployment["spec"]["template"]["metadata"]["labels"][EXPERIMENT_LABEL] == experiment.id
    assert EXPERIMENT_LABEL not in deployment["spec"]["selector"]["matchLabels"]  # the selector is immutable


def test_the_docker_and_kubernetes_targets_give_the_server_the_same_experiment_settings(two_versions):
    """One home for the experiment's settings: the env the docker target passes is the kubernetes one."""
    from mlci.ops.deliver.settings import container_environment, serve_settings, with_experiment

    project = load_project(two_versions)
    experiment = _experiment(project, "canary")
    settings = with_experiment(project, serve_settings(project, ref="1", port=8080, env_name="production"),
                               experiment)
    server = _deployment(project, open_registry(project).get_version(1), experiment)
    rendered = {item["name"]: item["value"] for item in server["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert rendered == container_environment(settings)


@pytest.mark.parametrize("outcome", ["promote", "stop"])
def test_promote_and_stop_render_one_version_without_the_init_container(two_versions, outcome):
    project = load_project(two_versions)
    registry = open_registry(project)
    stays = registry.get_version(2 if outcome == "promote" else 1)
    deployment = _deployment(project, stays, None)  # what conclude redeploys (experiment=None)
    kubernetes_validate.validate(deployment, K8S_VERSIONS[-1], strict=True)
    pod = deployment["spec"]["template"]["spec"]
    assert "initContainers" not in pod
    assert {v["name"] for v in pod["volumes"]} == {"predictions", "tmp"}
    (server,) = pod["containers"]
    assert server["image"].endswith(f"@{CHALLENGER_DIGEST if outcome == 'promote' else DIGEST}")
    assert all(m["name"] != "challenger-model" for m in server["volumeMounts"])
    env = {item["name"]: item["value"] for item in server["env"]}
    assert env["MLCI_SERVE_EXPERIMENT_MODE"] == "" and env["MLCI_SERVE_EXPERIMENT_REGISTRY"] == ""
    assert deployment["spec"]["template"]["metadata"]["labels"]["mlci/model-version"] == str(stays.version)


def _serving(project_dir, version: int) -> None:
    """Record ``version`` as serving production (what a kubectl rollout would have recorded)."""
    from mlci.core.records import Deployment
    from mlci.ops.deliver.history import activate

    registry = open_registry(load_project(project_dir))
    activate(registry, Deployment(id=uuid.uuid4().hex, env="production", version=version, target="kubernetes",
                                  time="2026-01-01T00:00:00Z", status="active"))


def test_starting_an_experiment_renders_it_and_without_kubectl_leaves_nothing_running(tmp_path, run_cli):
    """The start is wired to the kubernetes target: the manifests written hold the experiment, and a
    rollout that could not happen (exit 3) records the experiment as failed, not running."""
    from mlci.ops.deliver.experiment_state import experiments_of, running_experiment

    directory = copy_example(tmp_path)
    project = load_project(directory)
    registry = open_registry(project)
    name = project.config.image.name
    for digest in (DIGEST, CHALLENGER_DIGEST):
        version = register_version(directory)["version"]
        registry.update(version, lambda r, d=digest: r.__setitem__(
            "image", {"name": name, "tags": ["x"], "digest": d, "reference": f"{name}@{d}"}))
    _serving(directory, 1)
    code, out, err = run_cli("-C", directory, "deploy", "--env", "production", "--shadow", "2",
                             env={"PATH": str(tmp_path)})
    assert code == 3 and "kubectl is not installed" in err and "Traceback" not in err
    written = yaml.safe_load_all((directory / "reports" / "kubernetes" / "production.yaml").read_text())
    pod = next(d for d in written if d and d["kind"] == "Deployment")["spec"]["template"]["spec"]
    assert pod["initContainers"][0]["image"].endswith(f"@{CHALLENGER_DIGEST}")
    assert running_experiment(registry, "production") is None
    assert [e.status for e in experiments_of(registry, "production")] == ["failed"]
    # --render-only of the champion while an experiment runs renders it, and changes no record
    registry.update(2, lambda r: r["experiments"][-1].update(status="running"))
    code, out, err = run_cli("-C", directory, "deploy", "--env", "production", "--model", "1", "--render-only")
    assert code == 0, err
    written = yaml.safe_load_all((directory / "reports" / "kubernetes" / "production.yaml").read_text())
    assert "initContainers" in next(d for d in written if d and d["kind"] == "Deployment")["spec"]["template"]["spec"]
    assert running_experiment(registry, "production").challenger == 2


def test_a_challenger_without_a_pushed_image_is_refused_in_one_line(tmp_path, run_cli):
    from mlci.ops.deliver.experiment_state import running_experiment

    directory = copy_example(tmp_path)
    project = load_project(directory)
    registry = open_registry(project)
    register_version(directory)
    register_version(directory)  # never built: no image to run the init container with
    registry.update(1, lambda r: r.__setitem__("image", {"name": project.config.image.name, "tags": ["v1"],
                                                         "digest": DIGEST,
                                                         "reference": f"{project.config.image.name}@{DIGEST}"}))
    _serving(directory, 1)
    code, out, err = run_cli("-C", directory, "deploy", "--env", "production", "--canary", "2")
    assert code == 2 and "model version 2 has no pushed image" in err and "challenger's image" in err
    assert "Traceback" not in err and running_experiment(registry, "production") is None


def test_render_only_never_starts_an_experiment(two_versions, run_cli):
    from mlci.ops.deliver.experiment_state import experiments_of

    code, out, err = run_cli("-C", two_versions, "deploy", "--env", "production", "--shadow", "2", "--render-only")
    assert code == 2 and "--render-only does not start an experiment" in err and "Traceback" not in err
    assert experiments_of(open_registry(load_project(two_versions)), "production") == []
