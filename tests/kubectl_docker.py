"""``kubectl`` for one Deployment on the real Docker engine, so `mlci deploy` and `mlci experiment` drive
the kubernetes target end to end on a machine without a cluster. Installed as ``kubectl`` on PATH by the
test; state in ``$KUBECTL_DOCKER_STATE/state.json``; claims (PersistentVolumeClaims) map to host
directories in ``$KUBECTL_DOCKER_CLAIMS`` (JSON). The pod itself runs as tests/kubelet_docker.py models it.

Only the three calls mlci makes (mlci/ops/deliver/kubernetes.py), with kubectl's exit codes and the last
line mlci reports:

- ``apply -f FILE``: the Deployment's pod template replaces the running pod. Unlike the Deployment's
  RollingUpdate (``maxUnavailable: 0``), the old pod is stopped first: on one host both would need the same
  port. A pod whose init container fails never starts its app container (as the kubelet does).
- ``rollout status deployment/NAME --timeout=Ns``: exit 0 once the startup probe passes, else 1 with
  kubectl's ``error: timed out waiting for the condition``.
- ``rollout undo deployment/NAME``: the previous pod template runs again.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import yaml

import docker
from tests.kubelet_docker import Pod


def _state_path() -> Path:
    return Path(os.environ["KUBECTL_DOCKER_STATE"]) / "state.json"


def _load() -> dict:
    path = _state_path()
    return json.loads(path.read_text()) if path.exists() else {"pod": None, "failed": None, "templates": []}


def _save(state: dict) -> None:
    _state_path().write_text(json.dumps(state))


def _replace_pod(engine, state: dict, template: dict) -> None:
    if state["pod"]:
        Pod.attach(engine, state["pod"]).stop()
    state["pod"], state["failed"] = None, None
    pod = Pod(engine, template, labels={"org.mlci.test": "kubectl-docker"},
              claims=json.loads(os.environ.get("KUBECTL_DOCKER_CLAIMS", "{}")))
    try:
        pod.start()
    except AssertionError as exc:  # an init container failed: the app container never starts
        pod.stop()
        state["failed"] = str(exc)[-300:]
        return
    state["pod"] = pod.state()


def main(argv: list[str]) -> int:
    args = list(argv)
    for flag in ("--context", "-n"):
        if flag in args:
            index = args.index(flag)
            del args[index:index + 2]
    engine = docker.from_env(timeout=120)
    state = _load()
    if args[:2] == ["apply", "-f"]:
        documents = [d for d in yaml.safe_load_all(Path(args[2]).read_text()) if d]
        template = next(d for d in documents if d["kind"] == "Deployment")["spec"]["template"]
        state["templates"].append(template)
        _replace_pod(engine, state, template)
        _save(state)
        print("deployment.apps/configured")
        return 0
    if args[:2] == ["rollout", "status"]:
        timeout = float(next(a for a in args if a.startswith("--timeout=")).split("=")[1].rstrip("s"))
        if state["pod"]:
            try:
                Pod.attach(engine, state["pod"]).wait_ready(timeout)
                print(f'deployment "{args[2].split("/")[1]}" successfully rolled out')
                return 0
            except AssertionError:
                pass
        print("error: timed out waiting for the condition", file=sys.stderr)
        return 1
    if args[:2] == ["rollout", "undo"]:
        state["templates"].pop()
        _replace_pod(engine, state, state["templates"][-1])
        _save(state)
        print("deployment.apps/rolled back")
        return 0
    print(f"kubectl (docker): {args} is not modelled", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
