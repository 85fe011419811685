"""Run a rendered pod template on the real Docker engine the way the kubelet runs it, for the fidelity of
what mlci renders (no cluster runs here). Only the parts of the pod model mlci's manifests use, each from
Kubernetes' documentation or source:

- volumes: an ``emptyDir`` is a fresh directory per pod, mode 0777 (``defaultPerm`` in
  pkg/volume/emptydir/empty_dir.go), shared by every container of the pod that mounts it
  (kubernetes.io/docs/concepts/storage/volumes/#emptydir); a ``persistentVolumeClaim`` is a directory
  given by the caller, outliving the pod (a ReadWriteMany volume the nightly job also mounts);
  ``readOnly: true`` mounts it read-only;
- init containers run one after the other, each to completion, and each must succeed before the next one
  starts; app containers start only after all of them (kubernetes.io/docs/concepts/workloads/pods/init-containers/);
- ``command`` replaces the image's ENTRYPOINT and ``args`` its CMD
  (kubernetes.io/docs/tasks/inject-data-application/define-command-argument-container/);
- ``env``; the pod's ``securityContext.runAsUser`` unless the container sets its own; a container's
  ``readOnlyRootFilesystem`` and ``capabilities.drop: [ALL]``;
- the startup/readiness probe's ``httpGet`` on a named port (``ports[].name``) says when the pod is ready;
- stopping a pod (``terminate``) as the kubelet's ``killContainer`` does
  (pkg/kubelet/kuberuntime/kuberuntime_container.go), every container at once: the container's
  ``lifecycle.preStop.exec`` command runs inside it (``executePreStopHook``: waited for at most the grace
  period, then left behind), and only then is the container stopped with what is left of the grace period,
  but never less than ``minimumGracePeriodInSeconds`` (2 s): SIGTERM, then SIGKILL when that runs out
  (the runtime's StopContainer; Docker's stop does the same). The grace period is the pod's
  ``terminationGracePeriodSeconds`` (default 30). The docs say the same:
  kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/#pod-termination and
  .../concepts/containers/container-lifecycle-hooks/#hook-handler-execution.

Containers use the host network (how this machine's Docker reaches them), so ``containerPort`` is the
host's port. Anything else in a pod spec (other volume kinds, probes' exec, sidecars) is refused, not
silently ignored.
"""

from __future__ import annotations

import math
import os
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

SUPPORTED_VOLUMES = {"emptyDir", "persistentVolumeClaim"}
MINIMUM_GRACE_PERIOD = 2  # minimumGracePeriodInSeconds in kuberuntime_container.go
DEFAULT_GRACE_PERIOD = 30  # terminationGracePeriodSeconds' default (pkg/apis/core/v1/defaults.go)


class Pod:
    """One pod of a Deployment's template, on Docker; ``stop()`` removes its containers and volumes."""

    def __init__(self, engine, template: dict[str, Any], *, labels: dict[str, str],
                 claims: dict[str, str] | None = None, hostname: str | None = None) -> None:
        self.engine = engine
        self.hostname = hostname  # the kubelet sets a pod's hostname to its name (metadata.name)
        self.template = template
        self.spec = template["spec"]
        self.labels = labels
        self.claims = claims or {}
        self.root = Path(tempfile.mkdtemp(prefix="pod-"))
        self.volumes: dict[str, Path] = {}
        self.containers: list[Any] = []
        self.init_logs: dict[str, str] = {}

    def state(self) -> dict[str, Any]:
        """What another process needs to find this pod again (``Pod.attach``)."""
        return {"template": self.template, "root": str(self.root), "labels": self.labels,
                "volumes": {k: str(v) for k, v in self.volumes.items()},
                "containers": [c.id for c in self.containers]}

    @classmethod
    def attach(cls, engine, state: dict[str, Any]) -> Pod:
        pod = cls.__new__(cls)
        pod.engine, pod.template, pod.spec = engine, state["template"], state["template"]["spec"]
        pod.labels, pod.claims, pod.root, pod.init_logs = state["labels"], {}, Path(state["root"]), {}
        pod.volumes = {k: Path(v) for k, v in state["volumes"].items()}
        pod.containers = []
        for container_id in state["containers"]:
            try:
                pod.containers.append(engine.containers.get(container_id))
            except Exception as exc:  # the container is gone: so is this pod (see ``alive``)
                if "No such container" not in str(exc) and "404" not in str(exc):
                    raise
        pod.expected = len(state["containers"])
        return pod

    def alive(self) -> bool:
        """Every app container exists and runs."""
        if len(self.containers) < getattr(self, "expected", len(self.containers)) or not self.containers:
            return False
        for container in self.containers:
            try:
                container.reload()
            except Exception:
                return False
            if container.status != "running":
                return False
        return True

    def volume(self, name: str) -> Path:
        """The host directory behind a volume (to read what the pod wrote)."""
        return self.volumes[name]

    def start(self) -> None:
        for volume in self.spec.get("volumes", []):
            kinds = set(volume) - {"name"}
            if kinds - SUPPORTED_VOLUMES:
                raise NotImplementedError(f"volume {volume['name']}: {sorted(kinds)} is not modelled here")
            if "persistentVolumeClaim" in volume:
                self.volumes[volume["name"]] = Path(self.claims[volume["persistentVolumeClaim"]["claimName"]])
                continue
            path = self.root / volume["name"]
            path.mkdir()
            os.chmod(path, 0o777)  # emptyDir's defaultPerm (mkdir is subject to the umask)
            self.volumes[volume["name"]] = path
        for container in self.spec.get("initContainers", []):
            self._run_to_completion(container)
        for container in self.spec["containers"]:
            self.containers.append(self.engine.containers.run(detach=True, **self._options(container)))

    def _run_to_completion(self, container: dict[str, Any]) -> None:
        created = self.engine.containers.run(detach=True, **self._options(container))
        try:
            result = created.wait(timeout=120)
            self.init_logs[container["name"]] = created.logs().decode(errors="replace")
            if result["StatusCode"] != 0:
                raise AssertionError(f"init container {container['name']} exited {result['StatusCode']}: "
                                     f"{self.init_logs[container['name']][-2000:]}")
        finally:
            created.remove(force=True)

    def _options(self, container: dict[str, Any]) -> dict[str, Any]:
        pod_security = self.spec.get("securityContext", {})
        security = container.get("securityContext", {})
        user = security.get("runAsUser", pod_security.get("runAsUser"))
        options: dict[str, Any] = {
            "image": container["image"], "name": f"{self.root.name}-{container['name']}", "labels": self.labels,
            "environment": {item["name"]: item["value"] for item in container.get("env", [])},
            "network_mode": "host", "hostname": getattr(self, "hostname", None),
            "user": str(user) if user is not None else None,
            "read_only": bool(security.get("readOnlyRootFilesystem")),
            "cap_drop": security.get("capabilities", {}).get("drop"),
            "security_opt": ["no-new-privileges"] if security.get("allowPrivilegeEscalation") is False else None,
            "volumes": {str(self.volumes[m["name"]]): {"bind": m["mountPath"], "mode": "ro" if m.get("readOnly")
                                                       else "rw"} for m in container.get("volumeMounts", [])}}
        if "command" in container:
            options["entrypoint"] = container["command"]
            options["command"] = container.get("args", [])
        elif "args" in container:
            options["command"] = container["args"]
        return options

    def wait_ready(self, timeout: float = 90.0) -> str:
        """Poll the first container's startup probe like the kubelet; returns the pod's base URL."""
        container = self.spec["containers"][0]
        probe = container["startupProbe"]["httpGet"]
        port = probe["port"]
        if isinstance(port, str):
            port = next(p["containerPort"] for p in container["ports"] if p["name"] == port)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(base + probe["path"], timeout=2) as answer:
                    if 200 <= answer.status < 400:  # the kubelet's HTTP probe success range
                        return base
            except OSError:
                pass
            self.containers[0].reload()
            if self.containers[0].status == "exited":
                break
            time.sleep(0.5)
        raise AssertionError(f"pod not ready: {self.containers[0].logs(tail=20).decode(errors='replace')}")

    def ready(self, port: int) -> bool:
        """One readiness probe (the first container's ``readinessProbe.httpGet`` path) on ``port``."""
        path = self.spec["containers"][0]["readinessProbe"]["httpGet"]["path"]
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as answer:
                return 200 <= answer.status < 400
        except OSError:
            return False

    def terminate(self) -> dict[str, int | None]:
        """The kubelet's stop of every container at once (see the module's docstring); returns each
        container's exit code (137: SIGKILLed), then removes the pod."""
        grace = int(self.spec.get("terminationGracePeriodSeconds", DEFAULT_GRACE_PERIOD))
        specs = {f"{self.root.name}-{c['name']}": c for c in self.spec["containers"]}
        codes: dict[str, int | None] = {}

        def kill(container) -> None:
            codes[specs[container.name]["name"]] = self._kill_container(container, specs[container.name], grace)

        threads = [threading.Thread(target=kill, args=(c,)) for c in self.containers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.stop()
        return codes

    def _kill_container(self, container, spec: dict[str, Any], grace: int) -> int | None:
        started = time.monotonic()
        hook = ((spec.get("lifecycle") or {}).get("preStop") or {}).get("exec")
        if hook:
            runner = threading.Thread(target=self._run_hook, args=(container, hook["command"]), daemon=True)
            runner.start()
            runner.join(timeout=grace)  # a hook still running then is left behind, as the kubelet does
        left = max(grace - (time.monotonic() - started), MINIMUM_GRACE_PERIOD)
        try:
            container.stop(timeout=math.ceil(left))  # SIGTERM, then SIGKILL when ``left`` runs out
            container.reload()
        except Exception:  # already gone
            return None
        return container.attrs["State"]["ExitCode"]

    @staticmethod
    def _run_hook(container, command: list[str]) -> None:
        try:
            container.exec_run(command)  # as the container's user, in its namespaces (CRI ExecSync)
        except Exception:  # the container went away under the hook: the kubelet only logs a failed hook
            pass

    def stop(self) -> None:
        for container in self.containers:
            try:
                container.remove(force=True)
            except Exception as exc:  # removed already (a test may take a pod away)
                if "No such container" not in str(exc) and "404" not in str(exc):
                    raise
        import shutil

        shutil.rmtree(self.root, ignore_errors=True)
