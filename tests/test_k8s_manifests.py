"""Kubernetes manifests rendered by `mlci deploy` for a kubernetes environment, validated against the
Kubernetes API schemas (kubernetes-validate, strict: unknown fields are errors). No cluster runs here."""

from __future__ import annotations

import kubernetes_validate
import pytest
import yaml

from mlci.core.config import load_project
from mlci.ops.deliver.history import environment
from mlci.ops.deliver.kubernetes import kubernetes_manifests
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
