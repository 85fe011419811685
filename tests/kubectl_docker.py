"""``kubectl`` for one Deployment on the real Docker engine, so `mlci deploy` and `mlci experiment` drive
the kubernetes target end to end on a machine without a cluster. Installed as ``kubectl`` on PATH by the
test; state in ``$KUBECTL_DOCKER_STATE/state.json``; claims (PersistentVolumeClaims) map to host
directories in ``$KUBECTL_DOCKER_CLAIMS`` (JSON). Each pod runs as tests/kubelet_docker.py models it.

The calls mlci makes (mlci/ops/deliver/kubernetes.py), with kubectl's exit codes and the last line mlci
reports:

- ``apply -f FILE``: records the Deployment's pod template and returns; a controller process then rolls it
  out in the background as the Deployment controller's RollingUpdate does (kubernetes
  pkg/controller/deployment/rolling.go, ``rolloutRolling``): scale the new ReplicaSet up while the total
  stays within ``replicas + maxSurge`` (``NewRSNewReplicas`` in pkg/controller/deployment/util/
  deployment_util.go, maxSurge rounded up), and scale old pods down only while ``replicas -
  maxUnavailable`` pods stay available (``reconcileOldReplicaSets``: unhealthy old pods first, then
  ``availablePodCount - minAvailable``; maxUnavailable rounded down, and 1 when both round to 0:
  ``ResolveFenceposts``). Both default to 25% (``SetDefaults_Deployment`` in pkg/apis/apps/v1/defaults.go);
  mlci renders ``maxUnavailable: 0, maxSurge: 1``: a new pod starts, and the old one is terminated only
  once the new one is Ready. A pod whose init container fails never starts its app container (as the
  kubelet does) and never becomes ready, so the rollout stops progressing and the old pods keep serving.
- ``rollout status deployment/NAME --timeout=Ns``: exit 0 once the rollout completed, else 1 with
  kubectl's ``error: timed out waiting for the condition``.
- ``rollout undo deployment/NAME``: the previous pod template is rolled out again (its pods, still
  running, are the new ReplicaSet's again, as the template hash matches).
- ``get pods -l K=V[,K=V] -o json``: a v1 ``List`` of Pods (``metadata.name/labels/deletionTimestamp``,
  ``status.phase/podIP/conditions[type=Ready]``), Ready from the readiness probe, as the API server answers.
- ``get --raw /api/v1/namespaces/NS/pods/NAME:PORT/proxy/PATH``: the API server's pod proxy; the body
  on stdout, or ``Error from server (NotFound): pods "NAME" not found`` (exit 1) for a pod that is gone.

Addresses: the pods use the host network, so a pod's own address (its pod IP and ``containerPort``) is
modelled as a port of its own: the server listens there alone (``MLCI_SERVE_PORT``). The Service is a
proxy process on the Service's port (``run_service``, as kube-proxy's former userspace mode was; the
iptables mode, like it, does not retry a refused connection on another endpoint): each new connection
goes to a random one of the endpoints, the pods that are Ready and not terminating (the EndpointSlice
controller's ready endpoints: kubernetes.io/docs/concepts/services-networking/endpoint-slices/#conditions),
which it re-reads every ``ENDPOINTS_REFRESH`` seconds, so it learns of a change a little late, as kube-proxy
does. Terminating a pod (``_terminate``) follows the order of
kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/#pod-termination: the pod is marked terminating
(``deletionTimestamp``), which takes it out of the endpoints, and the kubelet's stop runs at the same time
(tests/kubelet_docker.py ``Pod.terminate``: the preStop hook, SIGTERM, SIGKILL when the grace period runs
out). A connection the Service made before the pod left its endpoints is served to its end.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import json
import math
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

import docker
from tests.kubelet_docker import Pod

CONTROLLER_STOP_TIMEOUT = 200.0
# Seconds between the Service's reads of its endpoints: kube-proxy too learns of an endpoint change only
# after the EndpointSlice controller wrote it and the change reached its node.
ENDPOINTS_REFRESH = 1.0
# The readiness probes run on their own clock, as the kubelet's do (not in the endpoints' loop, so a slow
# probe never delays taking a terminating pod out); 1 s is a probe's default timeoutSeconds.
PROBE_PERIOD = 1.0
PROBE_TIMEOUT = 1.0


def _state_dir() -> Path:
    return Path(os.environ["KUBECTL_DOCKER_STATE"])


def _load(directory: Path | None = None) -> dict:
    path = (directory or _state_dir()) / "state.json"
    return json.loads(path.read_text()) if path.exists() else {
        "deployment": None, "templates": [], "pods": [], "failed": None, "complete": None}


def _save(state: dict, directory: Path | None = None) -> None:
    path = (directory or _state_dir()) / "state.json"
    path.with_suffix(".tmp").write_text(json.dumps(state))
    os.replace(path.with_suffix(".tmp"), path)  # readers (get pods) never see half a state


def template_hash(template: dict) -> str:
    return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def scaled(value: Any, replicas: int, *, round_up: bool) -> int:
    """An int-or-percent of ``replicas`` (intstr.GetScaledValueFromIntOrPercent)."""
    if isinstance(value, str) and value.endswith("%"):
        exact = int(value[:-1]) * replicas / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    return int(value)


def fenceposts(deployment: dict) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) in pods (ResolveFenceposts), from the Deployment's strategy or the
    apps/v1 defaults (25%, 25%)."""
    rolling = deployment.get("strategy", {}).get("rollingUpdate", {})
    replicas = deployment["replicas"]
    surge = scaled(rolling.get("maxSurge", "25%"), replicas, round_up=True)
    unavailable = scaled(rolling.get("maxUnavailable", "25%"), replicas, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


# -- pods ---------------------------------------------------------------------------------------------


def _attach(engine, pod: dict) -> Pod:
    return Pod.attach(engine, pod["pod"])


def _ready(engine, pod: dict) -> bool:
    if pod.get("deletionTimestamp"):
        return False
    attached = _attach(engine, pod)
    return attached.alive() and attached.ready(pod["port"])


def _create_pod(engine, state: dict, template: dict) -> dict:
    """A pod of the template's ReplicaSet: ``<deployment>-<template hash>-<suffix>``, with its own address."""
    digest = template_hash(template)
    name = f"{state['deployment']['name']}-{digest}-{secrets.token_hex(3)}"[:63]
    port = _free_port()
    own = copy.deepcopy(template)
    server = own["spec"]["containers"][0]
    server["env"] = [e for e in server.get("env", []) if e["name"] != "MLCI_SERVE_PORT"] + [
        {"name": "MLCI_SERVE_PORT", "value": str(port)}]
    pod = Pod(engine, own, labels={"org.mlci.test": "kubectl-docker", "org.mlci.kubectl-docker": str(_state_dir())},
              claims=json.loads(os.environ.get("KUBECTL_DOCKER_CLAIMS", "{}")), hostname=name)
    entry = {"name": name, "hash": digest, "port": port, "created": _now(),
             "labels": {**template["metadata"].get("labels", {}), "pod-template-hash": digest}, "pod": None,
             "initFailed": None}
    try:
        pod.start()
    except AssertionError as exc:  # an init container failed: the app container never starts
        entry["initFailed"] = str(exc)[-300:]
    entry["pod"] = pod.state()
    return entry


def _terminate(engine, state: dict, pod: dict) -> None:
    """Pod termination: marked terminating (listed so, not Ready, and out of the Service's endpoints)
    while the kubelet stops it (preStop, SIGTERM, SIGKILL at the end of the grace period)."""
    pod["deletionTimestamp"] = _now()
    _save(state)
    _log(f"terminating pod {pod['name']} (port {pod['port']})")
    codes = _attach(engine, pod).terminate()
    _log(f"terminated pod {pod['name']}: exit codes {codes}")
    state["pods"].remove(pod)
    _save(state)


# -- the Service ----------------------------------------------------------------------------------------


def service_endpoints(state: dict, ready) -> list[int]:
    """The addresses (ports) the Service sends new connections to: pods that are not terminating and
    answer ``ready(pod)``."""
    return [p["port"] for p in state["pods"] if not p.get("deletionTimestamp") and not p["initFailed"] and ready(p)]


class Readiness:
    """Each pod's Ready condition as the kubelet keeps it from its readiness probe (``probe(pod)``): not
    Ready until a probe succeeds, and Ready again only after a success; a Ready pod stays Ready until
    ``failureThreshold`` probes in a row fail (default 3, pkg/apis/core/v1/defaults.go;
    kubernetes.io/docs/concepts/configuration/liveness-readiness-startup-probes/), so one slow answer on
    a loaded machine does not take a pod out of the Service."""

    def __init__(self, probe) -> None:
        self.probe = probe
        self.ready: dict[str, bool] = {}
        self.failures: dict[str, int] = {}

    def is_ready(self, pod: dict) -> bool:
        """The condition as the last probe left it."""
        return self.ready.get(pod["name"], False)

    def __call__(self, pod: dict) -> bool:
        """Probe ``pod`` once; its condition after that probe."""
        name = pod["name"]
        if self.probe(pod):
            self.ready[name], self.failures[name] = True, 0
        else:
            self.failures[name] = self.failures.get(name, 0) + 1
            threshold = pod["pod"]["template"]["spec"]["containers"][0]["readinessProbe"].get("failureThreshold", 3)
            if self.failures[name] >= threshold:
                self.ready[name] = False
        return self.is_ready(pod)


def _answers_readiness(pod: dict) -> bool:
    container = pod["pod"]["template"]["spec"]["containers"][0]
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{pod['port']}{container['readinessProbe']['httpGet']['path']}",
                                    timeout=PROBE_TIMEOUT) as answer:
            return 200 <= answer.status < 400
    except OSError:
        return False


def run_service(port: int) -> int:
    asyncio.run(_serve(port))
    return 0


async def _serve(port: int) -> None:
    endpoints: list[int] = []
    readiness = Readiness(_answers_readiness)

    async def probe_pods() -> None:
        while True:
            pods = [p for p in _load()["pods"] if not p.get("deletionTimestamp") and not p["initFailed"]]
            await asyncio.gather(*(asyncio.to_thread(readiness, pod) for pod in pods))
            await asyncio.sleep(PROBE_PERIOD)

    async def follow_endpoints() -> None:
        while True:
            now = service_endpoints(_load(), readiness.is_ready)
            if now != endpoints:
                _log(f"endpoints {now}")
            endpoints[:] = now
            await asyncio.sleep(ENDPOINTS_REFRESH)

    async def connect(client_reader, client_writer) -> None:
        if not endpoints:  # a Service without endpoints rejects the connection
            _log("no endpoints: connection closed")
            client_writer.close()
            return
        target = random.choice(endpoints)
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", target)
        except OSError as exc:
            _log(f"endpoint {target} refused ({exc}): connection closed")
            client_writer.close()
            return
        if not await _relay(client_reader, client_writer, upstream_reader, upstream_writer):
            _log(f"endpoint {target} closed the connection without answering")

    tasks = [asyncio.ensure_future(probe_pods()), asyncio.ensure_future(follow_endpoints())]
    server = await asyncio.start_server(connect, "127.0.0.1", port, reuse_address=True)
    async with server:
        await asyncio.gather(server.serve_forever(), *tasks)


def _log(message: str) -> None:
    print(f"{datetime.now(UTC):%H:%M:%S.%f} {message}", file=sys.stderr, flush=True)


async def _relay(client_reader, client_writer, upstream_reader, upstream_writer) -> int:
    """Bytes both ways until the pod's side ends (the client's end is passed on as a half-close); returns
    how many bytes the pod sent."""
    async def pipe(reader, writer) -> int:
        sent = 0
        while data := await reader.read(65536):
            writer.write(data)
            sent += len(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
        return sent

    forward = asyncio.ensure_future(pipe(client_reader, upstream_writer))
    answered = 0
    try:
        answered = await pipe(upstream_reader, client_writer)
    except OSError:
        pass
    finally:
        forward.cancel()
        await asyncio.gather(forward, return_exceptions=True)
        for writer in (client_writer, upstream_writer):
            writer.close()
    return answered


def _start_service(port: int) -> None:
    """The Service's proxy, once per state directory; returns when it accepts connections."""
    pid_file = _state_dir() / "service.pid"
    if pid_file.exists() and _running(int(pid_file.read_text())):
        return
    with open(_state_dir() / "service.log", "ab") as log:
        process = subprocess.Popen([sys.executable, "-m", "tests.kubectl_docker", "--service", str(port)],
                                   stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
    pid_file.write_text(str(process.pid))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.1)
    raise SystemExit(f"kubectl (docker): the Service's proxy did not start on port {port}")


# -- the Deployment controller ------------------------------------------------------------------------

_stopping = False


def _on_sigterm(signum, frame) -> None:
    global _stopping
    _stopping = True


def run_controller() -> int:
    """Roll the newest template out (see the module's docstring), then exit."""
    signal.signal(signal.SIGTERM, _on_sigterm)
    engine = docker.from_env(timeout=120)
    state = _load()
    deadline = time.monotonic() + state["deployment"]["progressDeadlineSeconds"]
    while not _stopping:
        state = _load()
        deployment = state["deployment"]
        replicas = deployment["replicas"]
        surge, unavailable = fenceposts(deployment)
        current = template_hash(state["templates"][-1])
        for pod in [p for p in state["pods"] if not _attach(engine, p).alive() and not p["initFailed"]]:
            _attach(engine, pod).stop()  # a pod taken away: the ReplicaSet replaces it below
            state["pods"].remove(pod)
        new = [p for p in state["pods"] if p["hash"] == current]
        old = [p for p in state["pods"] if p["hash"] != current]
        ready = {p["name"]: _ready(engine, p) for p in state["pods"]}
        if len(new) == replicas and all(ready[p["name"]] for p in new) and not old:
            state["complete"] = current
            _save(state)
            return 0
        if any(p["initFailed"] for p in new):
            state["failed"] = next(p["initFailed"] for p in new if p["initFailed"])
        # scale up the new ReplicaSet within replicas + maxSurge
        for _ in range(max(0, min(replicas + surge - len(state["pods"]), replicas - len(new)))):
            state["pods"].append(_create_pod(engine, state, state["templates"][-1]))
            _save(state)
        # scale down old pods while replicas - maxUnavailable stay available; unhealthy ones first
        min_available = replicas - unavailable
        new_unavailable = sum(not ready[p["name"]] for p in new)
        room = len(state["pods"]) - min_available - new_unavailable
        for pod in [p for p in old if not ready[p["name"]]][:max(0, room)]:
            _terminate(engine, state, pod)
        available = sum(ready.get(p["name"], False) for p in state["pods"])
        for pod in [p for p in old if ready[p["name"]]][:max(0, available - min_available)]:
            _terminate(engine, state, pod)
        if time.monotonic() > deadline:
            state["failed"] = state["failed"] or "exceeded its progress deadline"
            _save(state)
            return 1
        _save(state)
        time.sleep(0.5)
    return 0


def _start_controller() -> None:
    """The controller reads the state saved before it starts; it is the state's only writer while it runs."""
    with open(_state_dir() / "controller.log", "ab") as log:
        process = subprocess.Popen([sys.executable, "-m", "tests.kubectl_docker", "--controller"], stdout=log,
                                   stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
    (_state_dir() / "controller.pid").write_text(str(process.pid))


def _stop_controller(directory: Path | None = None, sig: int = signal.SIGTERM) -> None:
    """Stop a rollout in progress (between two steps; the next controller takes over from there)."""
    pid_file = (directory or _state_dir()) / "controller.pid"
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text())
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    deadline = time.monotonic() + CONTROLLER_STOP_TIMEOUT
    while time.monotonic() < deadline and _running(pid):
        time.sleep(0.2)
    pid_file.unlink()


def _running(pid: int) -> bool:
    try:
        finished, _ = os.waitpid(pid, os.WNOHANG)  # reaped by us if it was our child
        if finished:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split()[2] == "Z")


def delete_everything(state_dir: Path, engine) -> None:
    """The test's teardown: stop the controller and remove every pod this stand-in started."""
    _stop_controller(state_dir, signal.SIGKILL)
    service = state_dir / "service.pid"
    if service.exists():
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(service.read_text()), signal.SIGKILL)
    state = _load(state_dir)
    for pod in state["pods"]:
        Pod.attach(engine, pod["pod"]).stop()
    for container in engine.containers.list(all=True, filters={"label": f"org.mlci.kubectl-docker={state_dir}"}):
        container.remove(force=True)


# -- the API answers ----------------------------------------------------------------------------------


def _matches(labels: dict[str, str], selector: str) -> bool:
    pairs = [term.split("=", 1) for term in selector.split(",") if term]
    return all(labels.get(key) == value for key, value in pairs)


def pod_object(engine, state: dict, pod: dict) -> dict:
    """The v1 Pod as ``kubectl get pods -o json`` shows it (the fields a client reads)."""
    ready = _ready(engine, pod)
    metadata = {"name": pod["name"], "namespace": state["deployment"]["namespace"], "labels": pod["labels"],
                "creationTimestamp": pod["created"]}
    if pod.get("deletionTimestamp"):
        metadata["deletionTimestamp"] = pod["deletionTimestamp"]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata,
            "spec": {"containers": [{"name": c["name"], "ports": c.get("ports", [])}
                                    for c in pod["pod"]["template"]["spec"]["containers"]]},
            "status": {"phase": "Pending" if pod["initFailed"] else "Running", "podIP": "127.0.0.1",
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def _get_pods(engine, state: dict, selector: str) -> int:
    items = [pod_object(engine, state, p) for p in state["pods"]
             if _matches(p["labels"], selector) and (p["initFailed"] or _attach(engine, p).alive())]
    print(json.dumps({"apiVersion": "v1", "kind": "List", "items": items, "metadata": {"resourceVersion": ""}}))
    # A test hook: the named pod goes away right after this listing (an eviction or a scale-down racing a
    # client that listed it), so the next read through the pod proxy finds it gone.
    gone = os.environ.get("KUBECTL_DOCKER_TAKE_AWAY_AFTER_LISTING")
    for pod in [p for p in state["pods"] if p["name"] == gone]:
        _attach(engine, pod).stop()
    return 0


def _get_raw(engine, state: dict, path: str) -> int:
    parts = path.strip("/").split("/")
    if parts[:3] != ["api", "v1", "namespaces"] or parts[4] != "pods" or parts[6] != "proxy":
        print(f"kubectl (docker): get --raw {path} is not modelled", file=sys.stderr)
        return 1
    name, _, port = parts[5].partition(":")
    pod = next((p for p in state["pods"] if p["name"] == name), None)
    if pod is None or not _attach(engine, pod).alive():
        print(f'Error from server (NotFound): pods "{name}" not found', file=sys.stderr)
        return 1
    container_ports = {str(p["containerPort"]) for c in pod["pod"]["template"]["spec"]["containers"]
                       for p in c.get("ports", [])}
    if port and port not in container_ports:
        print("Error from server (ServiceUnavailable): the server is currently unable to handle the request",
              file=sys.stderr)
        return 1
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{pod['port']}/{'/'.join(parts[7:])}", timeout=10) as answer:
            sys.stdout.write(answer.read().decode())
            return 0
    except urllib.error.HTTPError as err:
        print(f"Error from server: {err.read().decode(errors='replace')[:200]}", file=sys.stderr)
    except OSError:
        print("Error from server (ServiceUnavailable): the server is currently unable to handle the request",
              file=sys.stderr)
    return 1


def main(argv: list[str]) -> int:
    if argv == ["--controller"]:
        return run_controller()
    if argv[:1] == ["--service"]:
        return run_service(int(argv[1]))
    args = list(argv)
    for flag in ("--context", "-n"):
        if flag in args:
            index = args.index(flag)
            del args[index:index + 2]
    engine = docker.from_env(timeout=120)
    state = _load()
    if args[:2] == ["apply", "-f"]:
        documents = [d for d in yaml.safe_load_all(Path(args[2]).read_text()) if d]
        deployment = next(d for d in documents if d["kind"] == "Deployment")
        _stop_controller()
        state = _load()
        spec = deployment["spec"]
        state["deployment"] = {"name": deployment["metadata"]["name"],
                               "namespace": deployment["metadata"].get("namespace", "default"),
                               "replicas": spec.get("replicas", 1), "strategy": spec.get("strategy", {}),
                               "progressDeadlineSeconds": spec.get("progressDeadlineSeconds", 600)}
        state["templates"].append(spec["template"])
        state.update(failed=None, complete=None)
        _save(state)
        _start_controller()
        for service in (d for d in documents if d["kind"] == "Service"):
            _start_service(service["spec"]["ports"][0]["port"])
        print(f"deployment.apps/{state['deployment']['name']} configured")
        return 0
    if args[:2] == ["rollout", "status"]:
        timeout = float(next(a for a in args if a.startswith("--timeout=")).split("=")[1].rstrip("s"))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = _load()
            if state["complete"] == template_hash(state["templates"][-1]):
                print(f'deployment "{args[2].split("/")[1]}" successfully rolled out')
                return 0
            if state["failed"] == "exceeded its progress deadline":
                print(f'error: deployment "{args[2].split("/")[1]}" exceeded its progress deadline', file=sys.stderr)
                return 1
            time.sleep(0.5)
        print("error: timed out waiting for the condition", file=sys.stderr)
        return 1
    if args[:2] == ["rollout", "undo"]:
        _stop_controller()
        state = _load()
        state["templates"].pop()
        state.update(failed=None, complete=None)
        _save(state)
        _start_controller()
        print(f"deployment.apps/{state['deployment']['name']} rolled back")
        return 0
    if args[:2] == ["get", "pods"] and "-l" in args and args[-2:] == ["-o", "json"]:
        return _get_pods(engine, state, args[args.index("-l") + 1])
    if args[:2] == ["get", "--raw"]:
        return _get_raw(engine, state, args[2])
    print(f"kubectl (docker): {args} is not modelled", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
