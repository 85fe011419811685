"""Each real component the suite relies on really works (see tests/services.py)."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
import urllib.request
import uuid

import docker
from tests.services import groovy_parse, groovy_parse_many, http_get, registry_catalog

VALID_PIPELINE = """\
pipeline {
    agent any
    options { timeout(time: 30, unit: 'MINUTES') }
    environment { MODEL_DIR = 'models' }
    stages {
        stage('x') {
            when { branch 'main' }
            steps {
                sh 'echo'
                script { def n = 1; echo "n=${n}" }
            }
        }
    }
    post { always { echo 'done' } }
}
"""

INVALID_PIPELINE = "pipeline {\n    agent any\n    stages { stage('x') { steps { sh 'echo' }\n"


def test_docker_engine_answers(docker_engine):
    version = docker_engine.version()
    assert version["ApiVersion"]
    assert version["Os"] == "linux"


def _tiny_image_tar(payload: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("selftest.txt")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    return buf.getvalue()


def test_image_registry_push_and_pull(docker_engine, image_registry):
    assert isinstance(registry_catalog(image_registry), list)
    repo, tag = f"{image_registry}/mlci-selftest", uuid.uuid4().hex[:12]
    ref = f"{repo}:{tag}"
    docker_engine.api.import_image_from_data(_tiny_image_tar(tag.encode()), repository=repo, tag=tag)
    try:
        pushed = None
        for chunk in docker_engine.api.push(repo, tag=tag, stream=True, decode=True):
            assert "error" not in chunk, chunk
            pushed = chunk.get("aux", {}).get("Digest", pushed)
        assert pushed and pushed.startswith("sha256:")

        status, body = http_get(f"http://{image_registry}/v2/mlci-selftest/tags/list")
        assert status == 200 and tag in json.loads(body)["tags"]
        assert "mlci-selftest" in registry_catalog(image_registry)

        docker_engine.images.remove(ref, force=True)
        pulled = docker_engine.images.pull(repo, tag=tag)
        assert f"{repo}@{pushed}" in pulled.attrs["RepoDigests"]
    finally:
        try:
            docker_engine.images.remove(ref, force=True)
        except docker.errors.NotFound:
            pass
        # Leave no tag behind (the registry is configured with deletes enabled).
        if pushed:
            req = urllib.request.Request(f"http://{image_registry}/v2/mlci-selftest/manifests/{pushed}",
                                         method="DELETE")
            urllib.request.urlopen(req, timeout=10).close()


def test_pushgateway_roundtrip(pushgateway):
    instance = uuid.uuid4().hex
    group = f"{pushgateway}/metrics/job/mlci_selftest/instance/{instance}"
    body = b"# TYPE mlci_selftest_value gauge\nmlci_selftest_value 42\n"
    with urllib.request.urlopen(urllib.request.Request(group, data=body, method="PUT"), timeout=10) as resp:
        assert resp.status in (200, 202)
    try:
        status, raw = http_get(f"{pushgateway}/api/v1/metrics")
        assert status == 200
        groups = [g for g in json.loads(raw)["data"] if g["labels"].get("instance") == instance]
        assert len(groups) == 1
        values = [m["value"] for m in groups[0]["mlci_selftest_value"]["metrics"]]
        assert values == ["42"]
    finally:
        urllib.request.urlopen(urllib.request.Request(group, method="DELETE"), timeout=10).close()


def test_groovy_compiles_valid_and_rejects_invalid(groovy, tmp_path):
    jenkinsfile = tmp_path / "Jenkinsfile"
    jenkinsfile.write_text(VALID_PIPELINE)
    one_liner = "pipeline { agent any; stages { stage('x') { steps { sh 'echo' } } } }"

    results = groovy.parse_many([jenkinsfile, one_liner, INVALID_PIPELINE])  # one JVM for all three

    assert results[jenkinsfile] == (True, "")
    assert results[one_liner] == (True, "")
    ok, message = results[INVALID_PIPELINE]
    assert not ok
    assert "line 4" in message and "Jenkinsfile" in message


def test_groovy_parse_helpers(groovy, tmp_path):
    broken = tmp_path / "broken.groovy"
    broken.write_text("def x = \n")
    assert groovy(str(broken))[0] is False  # a str naming an existing file is read as a path
    assert groovy_parse("println 'compiled, never run'") == (True, "")
    assert groovy_parse_many([]) == {}


def test_promtool_checks_rules(promtool, tmp_path):
    valid = tmp_path / "valid.yml"
    valid.write_text(
        "groups:\n"
        "  - name: mlci\n"
        "    rules:\n"
        "      - alert: MlciDrift\n"
        "        expr: mlci_drift_score > 0.2\n"
        "        for: 5m\n"
        "        labels: {severity: warning}\n"
        "        annotations: {summary: drift}\n"
    )
    invalid = tmp_path / "invalid.yml"
    invalid.write_text("groups:\n  - name: mlci\n    rules:\n      - alert: Broken\n        expr: rate(x[5m]\n")

    ok = subprocess.run([promtool, "check", "rules", str(valid)], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = subprocess.run([promtool, "check", "rules", str(invalid)], capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0
    assert "invalid.yml" in bad.stdout + bad.stderr


def test_base_image_runs_python(docker_engine, base_image):
    out = docker_engine.containers.run(base_image, ["python3", "--version"], remove=True, network_mode="none")
    assert out.decode().startswith("Python 3.")
