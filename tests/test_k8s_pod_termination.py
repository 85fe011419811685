"""The pod stop that tests/kubelet_docker.py models, on the real Docker engine: the preStop hook runs inside
the container before SIGTERM, and the grace period bounds the whole stop, hook included (the kubelet's
``killContainer``). Containers here are plain Python processes on the base image, whose SIGTERM handler
writes what it saw into a claimed (host) directory that outlives the pod."""

from __future__ import annotations

import json
import time

import pytest

from tests.kubectl_docker import Readiness, service_endpoints
from tests.kubelet_docker import MINIMUM_GRACE_PERIOD, Pod

docker = pytest.mark.docker

# The app container: on SIGTERM, record whether the preStop hook's marker was there, then exit 0.
RECORD_ON_SIGTERM = """
import json, os, signal, sys, time
def on_term(signum, frame):
    json.dump({"marker_at_sigterm": os.path.exists("/data/marker")}, open("/data/sigterm.json", "w"))
    sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
open("/data/started", "w").close()
while True:
    time.sleep(0.1)
"""
IGNORE_SIGTERM = """
import signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
open("/data/started", "w").close()
while True:
    time.sleep(0.1)
"""


def _template(image: str, program: str, *, pre_stop: list[str] | None, grace: int) -> dict:
    container = {"name": "app", "image": image, "command": ["python", "-c", program],
                 "volumeMounts": [{"name": "data", "mountPath": "/data"}]}
    if pre_stop:
        container["lifecycle"] = {"preStop": {"exec": {"command": pre_stop}}}
    return {"spec": {"terminationGracePeriodSeconds": grace, "containers": [container],
                     "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]}}


def _started_pod(docker_engine, template: dict, data) -> Pod:
    data.chmod(0o777)
    pod = Pod(docker_engine, template, labels={"org.mlci.test": "pod-termination"}, claims={"data": str(data)})
    pod.start()
    deadline = time.monotonic() + 30
    while not (data / "started").exists():
        assert time.monotonic() < deadline, pod.containers[0].logs().decode(errors="replace")
        time.sleep(0.1)
    return pod


@docker
def test_the_pre_stop_hook_runs_to_its_end_before_sigterm(docker_engine, base_image, tmp_path):
    hook = ["python", "-c", "import time; time.sleep(1); open('/data/marker', 'w').close()"]
    pod = _started_pod(docker_engine, _template(base_image, RECORD_ON_SIGTERM, pre_stop=hook, grace=30), tmp_path)
    try:
        codes = pod.terminate()
    finally:
        pod.stop()
    assert codes == {"app": 0}  # it exited on SIGTERM, not SIGKILL
    assert json.loads((tmp_path / "sigterm.json").read_text()) == {"marker_at_sigterm": True}


@docker
def test_without_a_hook_sigterm_comes_at_once(docker_engine, base_image, tmp_path):
    """The same container without the hook sees no marker: the test above can tell the order."""
    pod = _started_pod(docker_engine, _template(base_image, RECORD_ON_SIGTERM, pre_stop=None, grace=30), tmp_path)
    try:
        assert pod.terminate() == {"app": 0}
    finally:
        pod.stop()
    assert json.loads((tmp_path / "sigterm.json").read_text()) == {"marker_at_sigterm": False}


@docker
def test_a_hook_longer_than_the_grace_period_still_ends_in_sigkill_when_it_runs_out(docker_engine, base_image,
                                                                                      tmp_path):
    """A 60 s hook in a 3 s grace period, in a container that ignores SIGTERM: the hook is left behind at
    3 s, SIGTERM follows with the 2 s minimum, then SIGKILL (exit 137): about 5 s, never the hook's 60."""
    grace = 3
    hook = ["python", "-c", "import time; time.sleep(60)"]
    pod = _started_pod(docker_engine, _template(base_image, IGNORE_SIGTERM, pre_stop=hook, grace=grace), tmp_path)
    started = time.monotonic()
    try:
        codes = pod.terminate()
    finally:
        pod.stop()
    took = time.monotonic() - started
    assert codes == {"app": 137}
    assert grace + MINIMUM_GRACE_PERIOD <= took < grace + MINIMUM_GRACE_PERIOD + 15, took


def test_the_stand_in_service_sends_no_new_connection_to_a_terminating_pod_even_while_it_is_ready():
    """The first step of a pod's termination (tests/kubectl_docker.py ``_terminate``) takes it out of the
    Service's endpoints: a pod marked terminating is left out although it still answers its readiness
    probe (it serves through its preStop wait), as is one that is not ready or whose init container failed."""
    def pod(port: int, **fields) -> dict:
        return {"name": f"p{port}", "port": port, "initFailed": None, **fields}

    state = {"pods": [pod(1), pod(2, deletionTimestamp="2026-12-01T00:00:00Z"), pod(3), pod(4, initFailed="exit 1")]}
    assert service_endpoints(state, lambda p: p["port"] != 3) == [1]
    assert service_endpoints(state, lambda p: True) == [1, 3]


def test_the_stand_in_service_keeps_a_ready_pod_through_fewer_failed_probes_than_the_threshold():
    """Ready, as the kubelet keeps it: not before a probe succeeded; lost only after ``failureThreshold``
    failures in a row (2 in mlci's manifests), not after one slow answer."""
    answers = {"a": [True, False, True, False, False, True], "b": [False, False, True]}
    pods = {name: {"name": name, "pod": {"template": {"spec": {"containers": [
        {"readinessProbe": {"httpGet": {"path": "/health/ready"}, "failureThreshold": 2}}]}}}} for name in answers}
    readiness = Readiness(lambda pod: answers[pod["name"]].pop(0))
    assert [readiness(pods["a"]) for _ in range(6)] == [True, True, True, True, False, True]
    assert [readiness(pods["b"]) for _ in range(3)] == [False, False, True]
