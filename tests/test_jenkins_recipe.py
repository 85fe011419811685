"""The controller recipe in docker/jenkins against what the official image and JCasC do.

* only JDK 21/25 images are built and core needs Java 21+ (jenkinsci/docker docker-bake.hcl);
* ``/var/jenkins_home`` is a VOLUME: files the image copies there are hidden by an existing volume
  (jenkinsci/docker debian/Dockerfile);
* JCasC resolves an unset ``${VAR}`` to '' (configuration-as-code SecretSourceResolver.java);
* ``jenkins-plugin-cli --plugin-file`` takes ``id:version`` lines, comments allowed (PluginListParser.java).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import yaml

from tests.jenkins_emulator import JENKINS_VERSION

RECIPE = Path(__file__).resolve().parent.parent / "docker" / "jenkins"
# every plugin the generated pipelines and the multibranch job need
REQUIRED_PLUGINS = {"workflow-aggregator", "workflow-multibranch", "git", "pipeline-model-definition", "junit",
                    "htmlpublisher", "ws-cleanup", "credentials-binding", "kubernetes", "docker-workflow",
                    "timestamper", "configuration-as-code", "pipeline-milestone-step", "pipeline-input-step"}


def test_the_image_is_a_pinned_lts_on_java_21_and_the_emulator_claims_that_version():
    base = re.search(r"^FROM (\S+)", (RECIPE / "Dockerfile").read_text(), re.M).group(1)
    match = re.fullmatch(r"jenkins/jenkins:(\d+\.\d+\.\d+)-lts-jdk21", base)
    assert match, base
    assert match.group(1) == JENKINS_VERSION


def test_every_plugin_is_pinned_and_the_pipelines_plugins_are_there():
    lines = [line.strip() for line in (RECIPE / "plugins.txt").read_text().splitlines()]
    entries = [line for line in lines if line and not line.startswith("#")]
    assert all(re.fullmatch(r"[a-z0-9-]+:[0-9][\w.-]*", entry) for entry in entries), entries
    assert REQUIRED_PLUGINS <= {entry.split(":")[0] for entry in entries}


def test_the_configuration_is_outside_the_home_volume():
    dockerfile = (RECIPE / "Dockerfile").read_text()
    assert "/var/jenkins_home/casc" not in dockerfile
    config = re.search(r"CASC_JENKINS_CONFIG=(\S+)", dockerfile).group(1)
    assert not config.startswith("/var/jenkins_home")
    assert re.search(rf"^COPY casc\.yaml {re.escape(config)}$", dockerfile, re.M)


def test_the_admin_password_is_required():
    casc = yaml.safe_load((RECIPE / "casc.yaml").read_text())
    users = casc["jenkins"]["securityRealm"]["local"]["users"]
    assert users[0]["password"] == "${JENKINS_ADMIN_PASSWORD}"
    compose = yaml.safe_load((RECIPE / "compose.yaml").read_text())
    jenkins = compose["services"]["jenkins"]
    assert jenkins["environment"]["JENKINS_ADMIN_PASSWORD"].startswith("${JENKINS_ADMIN_PASSWORD:?")
    environment = {k: v for k, v in os.environ.items() if k != "JENKINS_ADMIN_PASSWORD"}
    refused = subprocess.run(["sh", str(RECIPE / "mlci-entrypoint.sh")], env=environment, capture_output=True,
                             text=True, timeout=10)
    assert refused.returncode == 1 and "JENKINS_ADMIN_PASSWORD" in refused.stderr


def test_the_docker_socket_group_is_added():
    jenkins = yaml.safe_load((RECIPE / "compose.yaml").read_text())["services"]["jenkins"]
    assert "/var/run/docker.sock:/var/run/docker.sock" in jenkins["volumes"]
    assert jenkins["group_add"] == ["${DOCKER_GID:?set DOCKER_GID=$(stat -c %g /var/run/docker.sock)}"]


def test_the_controller_seeds_no_jobs_and_offers_the_examples_label():
    """Jobs come from `mlci jenkins sync` (JCasC's Job DSL runs unsandboxed: configuration-as-code
    SeedJobConfigurator); the built-in node carries the label the example's pipelines ask for."""
    casc = yaml.safe_load((RECIPE / "casc.yaml").read_text())
    assert "jobs" not in casc
    example = yaml.safe_load((RECIPE.parent.parent / "examples" / "credit-risk" / "mlci.yaml").read_text())
    assert casc["jenkins"]["labelString"] == example["jenkins"]["agent"]["label"]


def test_the_jobs_share_an_mlflow_tracking_server_on_the_compose_network():
    """The example's jenkins.registry is {backend: mlflow} without a tracking_uri: the controller's
    MLFLOW_TRACKING_URI must name a server compose starts, which keeps its store and artifacts in a
    volume and serves the artifacts itself, so an agent needs nothing but HTTP."""
    compose = yaml.safe_load((RECIPE / "compose.yaml").read_text())
    services = compose["services"]
    assert services["jenkins"]["environment"]["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert "mlflow" in services["jenkins"]["depends_on"]
    mlflow = services["mlflow"]
    dockerfile = (RECIPE / mlflow["build"]["dockerfile"]).read_text()
    assert mlflow["build"]["context"] == "."
    assert re.search(r"^FROM python:3\.11-slim$", dockerfile, re.M)
    assert re.search(r'pip install --no-cache-dir "mlflow>=3\.5,<4"', dockerfile)
    command = json.loads(re.search(r"^CMD (\[.*?\])$", dockerfile, re.M | re.S).group(1).replace("\\\n", ""))
    assert command[:2] == ["mlflow", "server"] and "--serve-artifacts" in command
    assert command[command.index("--port") + 1] == "5000" and command[command.index("--host") + 1] == "0.0.0.0"
    store = command[command.index("--backend-store-uri") + 1]
    artifacts = command[command.index("--artifacts-destination") + 1]
    volume, mount = mlflow["volumes"][0].split(":")
    assert volume in compose["volumes"]
    assert store == f"sqlite:///{mount}/mlflow.db" and artifacts.startswith(mount + "/")
    # MLflow 3.5+ checks the Host header: the name the controller uses must be allowed
    assert "mlflow:5000" in mlflow["environment"]["MLFLOW_SERVER_ALLOWED_HOSTS"].split(",")
    assert all(port.startswith("127.0.0.1:") for port in mlflow.get("ports", []))
    example = yaml.safe_load((RECIPE.parent.parent / "examples" / "credit-risk" / "mlci.yaml").read_text())
    assert example["jenkins"]["registry"]["backend"] == "mlflow"
    assert "tracking_uri" not in example["jenkins"]["registry"]
    assert "mlflow" in example["jenkins"]["install"]
