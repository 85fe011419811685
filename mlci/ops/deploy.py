"""``mlci deploy --env E`` and ``mlci rollback --env E``: health-gated rollout with automatic rollback.

docker and local targets switch on one host without downtime: the new server joins the old one's port
(SO_REUSEPORT) and also listens on a private check port; there it must become ready and answer a smoke
test with holdout rows before the old server is stopped. If it does not, it is removed and the old one
keeps serving (exit 1). kubernetes renders Deployment, Service (and HPA) and applies them with kubectl.

Every attempt is recorded in the registry, in the deployed version's record under ``deployments``:
``{id, env, version, target, image, time, status, kind, handle, url}`` with status ``active``,
``retired``, ``rolled_back`` or ``failed``. ``rollback`` redeploys the most recent earlier deployment
that was not itself rolled back.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlparse

import pandas as pd

from mlci.adapters.registry_api import Registry
from mlci.adapters.registry_store import ModelRegistry
from mlci.adapters.serving_probe import http_get, http_post_json, listening, local_listener, mlci_server_identity
from mlci.core.atomic import atomic_write_text
from mlci.core.config import Environment, Project
from mlci.core.reports import Check, Report, write_report
from mlci.core.spec import did_you_mean
from mlci.errors import NotFound, ServiceError, UsageError
from mlci.ops.image import image_section, registry_auth
from mlci.ops.registry import local_copy, open_registry
from mlci.ops.render import render
from mlci.serve.settings import ENV_PREFIX, ServeSettings

LineSink = Callable[[str], None]
CONTAINER_LOG_DIR = "/app/predictions"
CONTAINER_EXPERIMENT_REGISTRY = "/app/experiment-registry"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# -- serving settings (mlci serve, local target) --------------------------------------------------


def serve_settings(project: Project, *, ref: str = "latest", host: str = "127.0.0.1", port: int = 8080,
                   workers: int | None = None, log: bool = True, check_port: int | None = None,
                   env_name: str | None = None) -> ServeSettings:
    registry = open_registry(project)
    version = registry.resolve(ref)
    serve = project.config.serve
    return ServeSettings(registry=serving_registry(project, registry, version), model=str(version), host=host, port=port,
                         deployment=deployment_name(project, env_name) if env_name else "",
                         check_port=check_port, workers=workers or serve.workers,
                         max_body_bytes=serve.max_body_bytes, max_rows=serve.max_rows,
                         log_dir=project.path(serve.log_dir) if log and serve.log_predictions else None,
                         log_max_bytes=serve.log_max_bytes, log_queue_rows=serve.log_queue_rows,
                         unknown_categories=serve.unknown_categories)


def serving_registry(project: Project, registry: Registry, version: int) -> Path:
    """The directory the model server reads: the local registry itself, or a verified one-version copy
    of a remote (MLflow) registry's version."""
    if isinstance(registry, ModelRegistry):
        return project.registry_dir
    return local_copy(registry, version, project.path(".mlci/serving-registry"))


def serve_foreground(settings: ServeSettings) -> int:
    from mlci.serve.runner import run_server

    try:
        return run_server(settings)
    except OSError as exc:
        raise ServiceError(f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}",
                           hint="choose another --port or stop what uses it") from None


def _container_environment(settings: ServeSettings) -> dict[str, str]:
    """The server's settings for a container: the image knows its registry, model and host."""
    return settings.environment(omit=("registry", "model", "host"),
                                log_dir=CONTAINER_LOG_DIR if settings.log_dir else "")


# -- environments and their history ----------------------------------------------------------------


def deployment_name(project: Project, env_name: str) -> str:
    """How a deployed server names itself (/health/live), so a deployer can tell who holds a port."""
    return f"{project.config.project}/{env_name}"


def environment(project: Project, name: str) -> Environment:
    environments = project.config.environments
    if name not in environments:
        hint = did_you_mean(name, environments) or f"known: {', '.join(environments) or 'none'}"
        raise NotFound(f"no environment '{name}' in {project.config_path.name}", hint=hint)
    return environments[name]


def deployments(registry: Registry, env: str) -> list[dict[str, Any]]:
    """Every recorded deployment attempt of ``env``, oldest first."""
    entries = [d for record in registry.versions() for d in record.get("deployments", []) if d["env"] == env]
    return sorted(entries, key=lambda d: (d["time"], d.get("seq", 0)))


def active_deployment(registry: Registry, env: str) -> dict[str, Any] | None:
    active = [d for d in deployments(registry, env) if d["status"] == "active"]
    return active[-1] if active else None


def _set_status(registry: Registry, entry: dict[str, Any], status: str) -> None:
    def change(record: dict[str, Any]) -> None:
        for item in record.get("deployments", []):
            if item["id"] == entry["id"]:
                item["status"] = status
                item["ended"] = _now()
    registry.update(entry["version"], change)


def _record(registry: Registry, entry: dict[str, Any]) -> None:
    registry.update(entry["version"], lambda r: r.setdefault("deployments", []).append(entry))


def _activate(registry: Registry, entry: dict[str, Any]) -> None:
    """Record a deployment as serving, and point the alias named after its environment at its version:
    the `production` alias (the gate's default champion) is always the model production runs."""
    _record(registry, {**entry, "status": "active"})
    registry.set_alias(entry["env"], entry["version"])


# -- targets ----------------------------------------------------------------------------------------


class DockerTarget:
    """Containers on a Docker engine (local, or remote via DOCKER_HOST), on the host network."""

    name = "docker"

    def __init__(self, project: Project, env_name: str) -> None:
        from mlci.adapters.docker_client import DockerEngine

        self.project = project
        self.env_name = env_name
        self.engine = DockerEngine()

    @property
    def address(self) -> str:
        parsed = urlparse(os.environ.get("DOCKER_HOST", ""))
        return parsed.hostname if parsed.scheme in ("tcp", "ssh", "http", "https") and parsed.hostname else "127.0.0.1"

    def start(self, record: dict[str, Any], settings: ServeSettings) -> dict[str, Any]:
        image = record.get("image") or {}
        reference = image.get("reference")
        if not reference:
            raise UsageError(f"model version {record['version']} has no pushed image",
                             hint="run `mlci build` and `mlci push` first")
        self.engine.pull(reference, auth=registry_auth())
        name = f"mlci-{self.project.config.project}-{self.env_name}-v{record['version']}-{uuid.uuid4().hex[:6]}"
        volumes, user = self._log_volume(settings)
        environment = _container_environment(settings)
        if settings.experiment_mode:
            volumes.update(self._challenger_volume())
            environment[ENV_PREFIX + "EXPERIMENT_REGISTRY"] = CONTAINER_EXPERIMENT_REGISTRY
        container = self.engine.run(reference, name=name, environment=environment, user=user,
                                    labels={"org.mlci.project": self.project.config.project,
                                            "org.mlci.env": self.env_name,
                                            "org.mlci.version": str(record["version"])},
                                    volumes=volumes)
        return {"container": container, "name": name, "image": reference}

    def _challenger_volume(self) -> dict[str, dict[str, str]]:
        """The image holds the champion only: the challenger is read from the project's registry, mounted
        read-only (its sha256 is verified on load as for any model)."""
        if self.address != "127.0.0.1" or self.project.config.registry.backend != "local":
            raise UsageError("a docker experiment reads the challenger from the local registry directory, "
                             "which a remote Docker host or an MLflow registry cannot mount",
                             hint="run the experiment on a local Docker engine with the local registry")
        return {str(self.project.registry_dir): {"bind": CONTAINER_EXPERIMENT_REGISTRY, "mode": "ro"}}

    def _log_volume(self, settings: ServeSettings) -> tuple[dict[str, dict[str, str]], str | None]:
        """Mount the project's prediction log directory so `mlci monitor` reads what the container logs.
        The container writes as the image's non-root user, or as the calling user when that is not root."""
        if settings.log_dir is None or self.address != "127.0.0.1":
            return {}, None
        settings.log_dir.mkdir(parents=True, exist_ok=True)
        if os.getuid() == 0:
            os.chown(settings.log_dir, image_section(self.project).user_id, -1)
            user = None
        else:
            user = f"{os.getuid()}:{os.getgid()}"
        return {str(settings.log_dir): {"bind": CONTAINER_LOG_DIR, "mode": "rw"}}, user

    def alive(self, handle: dict[str, Any]) -> bool:
        state = self.engine.container_state(handle["container"])
        return bool(state.get("Running")) and not state.get("Restarting")

    def diagnostics(self, handle: dict[str, Any]) -> str:
        return self.engine.logs(handle["container"], tail=10)

    def stop(self, handle: dict[str, Any]) -> None:
        self.engine.retire(handle["container"])


class LocalTarget:
    """The server as a background process on this machine (a laptop without Docker)."""

    name = "local"
    address = "127.0.0.1"

    def __init__(self, project: Project, env_name: str) -> None:
        self.project = project
        self.env_name = env_name

    def start(self, record: dict[str, Any], settings: ServeSettings) -> dict[str, Any]:
        run_dir = self.project.path(".mlci/run")
        run_dir.mkdir(parents=True, exist_ok=True)
        log_path = run_dir / f"{self.env_name}-v{record['version']}-{uuid.uuid4().hex[:6]}.log"
        with open(log_path, "ab") as log_file:
            process = subprocess.Popen([sys.executable, "-m", "mlci.serve"],
                                       env={**os.environ, **settings.environment()},
                                       stdout=log_file, stderr=log_file, stdin=subprocess.DEVNULL,
                                       start_new_session=True, cwd=self.project.root)
        self._process = process
        return {"pid": process.pid, "log": str(log_path)}

    def alive(self, handle: dict[str, Any]) -> bool:
        process = getattr(self, "_process", None)
        if process is not None and process.pid == handle["pid"]:
            return process.poll() is None
        return _is_our_server(handle["pid"])

    def diagnostics(self, handle: dict[str, Any]) -> str:
        try:
            return "\n".join(Path(handle["log"]).read_text(errors="replace").splitlines()[-10:])
        except OSError:
            return ""

    def stop(self, handle: dict[str, Any], timeout: float = 30.0) -> None:
        pid = handle["pid"]
        if not _is_our_server(pid):
            return
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _is_our_server(pid) and time.monotonic() < deadline:
            process = getattr(self, "_process", None)
            if process is not None and process.pid == pid:
                process.poll()
            time.sleep(0.05)
        if _is_our_server(pid):
            os.kill(pid, signal.SIGKILL)


def _is_our_server(pid: int) -> bool:
    """True when ``pid`` runs mlci's server (so a recycled pid is never signalled)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return b"mlci.serve" in cmdline and state != "Z"


# -- the health-gated rollout -----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ensure_port_is_ours(project: Project, env_name: str, address: str, port: int,
                        previous: dict[str, Any] | None) -> None:
    """Refuse (exit 2) a port that serves anything but this environment's own deployment: SO_REUSEPORT
    would let two deployments share it and split the traffic, and a program without it makes the new
    server fail to bind."""
    if not listening(address, port):
        return
    identity = mlci_server_identity(f"http://{address}:{port}")
    ours = deployment_name(project, env_name)
    where = f"port {port} on {address}"
    hint = f"set environments.{env_name}.port to a free port, or stop what holds it"
    if identity is None:
        who = local_listener(port) if address == "127.0.0.1" else None
        raise UsageError(f"{where} is held by a program that is not an mlci server"
                         + (f": {who}" if who else ""), hint=hint)
    holder = identity.get("deployment")
    if holder == ours or (holder is None and previous is not None):
        return  # this environment's server (one started before servers named themselves, if unnamed)
    raise UsageError(f"{where} is held by mlci deployment '{holder or 'unknown'}', not '{ours}'", hint=hint)


def wait_ready(base_url: str, timeout: float, alive: Callable[[], bool]) -> tuple[bool, str]:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if not alive():
            return False, f"the server exited ({last})"
        try:
            status, body = http_get(f"{base_url}/health/ready")
            if status == 200:
                return True, "ready"
            last = json.loads(body or b"{}").get("reason") or f"HTTP {status}"
        except (OSError, ValueError) as exc:
            last = type(exc).__name__
        time.sleep(0.25)
    return False, f"not ready after {timeout:g}s ({last})"


def smoke_rows(project: Project, rows: int) -> list[dict[str, Any]]:
    data = project.config.data
    path = project.path(data.holdout or data.train)
    frame = pd.read_csv(path, nrows=rows, sep=data.csv.delimiter, encoding=data.csv.encoding,
                        decimal=data.csv.decimal)
    schema_target = open_schema_target(project)
    if schema_target in frame.columns:
        frame = frame.drop(columns=[schema_target])
    frame = frame.astype(object).where(frame.notna(), None)
    return frame.to_dict(orient="records")


def open_schema_target(project: Project) -> str | None:
    from mlci.core.dataschema import load_schema

    return load_schema(project.path(project.config.data.schema)).target


def smoke_test(base_url: str, records: list[dict[str, Any]], version: int,
               challenger: int | None = None) -> tuple[bool, str]:
    if not records:
        return True, "skipped (smoke_rows: 0)"
    try:
        status, raw = http_post_json(f"{base_url}/predict", records, timeout=30)
        body = json.loads(raw) if status == 200 else None
    except (OSError, ValueError) as exc:
        return False, f"/predict failed: {type(exc).__name__}"
    if not isinstance(body, dict):
        return False, f"/predict answered HTTP {status}"
    answering = {version, challenger} - {None}  # a canary may answer with its challenger
    if body.get("model_version") not in answering or len(body.get("predictions", [])) != len(records):
        return False, f"/predict answered version {body.get('model_version')} with {len(body.get('predictions', []))} predictions"
    return True, f"{len(records)} holdout rows predicted"


def _target(project: Project, env_name: str, env: Environment):
    return {"docker": DockerTarget, "local": LocalTarget}[env.target](project, env_name)


RESUME = "resume"


def deploy(project: Project, *, env_name: str, ref: str = "latest", kind: str = "deploy",
           replaced_status: str = "retired", render_only: bool = False, on_line: LineSink = lambda s: None,
           experiment: dict[str, Any] | None | str = RESUME) -> Report:
    """``experiment``: the live experiment the new server runs (mlci.ops.experiment); by default the
    environment's running one when this version is its champion, so a redeploy or restart keeps it."""
    env = environment(project, env_name)
    registry = open_registry(project)
    record = registry.get(ref)
    if experiment == RESUME and not render_only and env.target != "kubernetes":
        from mlci.ops.experiment import resumed_experiment

        experiment = resumed_experiment(project, env_name, record["version"])
    experiment = experiment if isinstance(experiment, dict) else None
    if env.target == "kubernetes":
        return deploy_kubernetes(project, env_name=env_name, env=env, record=record, kind=kind,
                                 render_only=render_only, on_line=on_line)
    target = _target(project, env_name, env)
    previous = active_deployment(registry, env_name)
    ensure_port_is_ours(project, env_name, target.address, env.port, previous)
    settings = serve_settings(project, ref=str(record["version"]), host="0.0.0.0", port=env.port,
                              check_port=free_port(), env_name=env_name)
    if experiment is not None:
        from mlci.ops.experiment import experiment_settings

        settings = replace(settings, **experiment_settings(experiment))
        on_line(f"{kind}: with {experiment['mode']} experiment {experiment['id']} "
                f"(challenger version {experiment['challenger']})")
    report = Report(kind=kind)
    report.details = {"env": env_name, "version": record["version"], "target": env.target,
                      "previous_version": previous["version"] if previous else None}
    started = time.monotonic()
    on_line(f"{kind}: starting model version {record['version']} on {env_name} ({env.target}, port {env.port})")
    handle = target.start(record, settings)
    report.add(Check("start", True, f"{target.name} {handle.get('name') or handle.get('pid')}"))
    check_url = f"http://{target.address}:{settings.check_port}"
    ready, why = wait_ready(check_url, env.health_timeout, lambda: target.alive(handle))
    report.add(Check("ready", ready, why, value=round(time.monotonic() - started, 2), threshold=env.health_timeout))
    smoke_ok, smoke_why = False, "not run: the server is not ready"
    if ready:
        smoke_ok, smoke_why = smoke_test(check_url, smoke_rows(project, env.smoke_rows), record["version"],
                                         experiment["challenger"] if experiment else None)
    report.add(Check("smoke test", smoke_ok, smoke_why, skipped=not ready))
    entry = {"id": uuid.uuid4().hex, "env": env_name, "version": record["version"], "target": env.target,
             "image": (record.get("image") or {}).get("reference"), "time": _now(), "kind": kind,
             "handle": handle, "url": f"http://{target.address}:{env.port}",
             "experiment": experiment["id"] if experiment else None}
    if not (ready and smoke_ok):
        on_line(f"{kind}: version {record['version']} failed ({why}; {smoke_why}); removing it")
        report.details["new_server_log"] = target.diagnostics(handle)[-2000:]
        target.stop(handle)
        _record(registry, {**entry, "status": "failed"})
        kept = f"version {previous['version']} keeps serving" if previous else "nothing was serving before"
        report.add(Check("switch", False, f"rolled back: {kept}"))
        return _finish(project, report)
    _activate(registry, entry)
    if previous:
        target.stop(previous["handle"])
        _set_status(registry, previous, replaced_status)
    report.add(Check("switch", True, f"version {record['version']} serves {entry['url']}"
                     + (f"; version {previous['version']} stopped" if previous else "")))
    report.details["url"] = entry["url"]
    report.details["seconds"] = round(time.monotonic() - started, 2)
    return _finish(project, report)


def rollback(project: Project, *, env_name: str, on_line: LineSink = lambda s: None) -> Report:
    """Redeploy the environment's previous deployment (health-gated like any deployment)."""
    environment(project, env_name)
    registry = open_registry(project)
    current = active_deployment(registry, env_name)
    if current is None:
        raise NotFound(f"nothing is deployed to '{env_name}'", hint=f"run `mlci deploy --env {env_name}`")
    history = deployments(registry, env_name)
    earlier = [d for d in history[:history.index(current)]
               if d["status"] == "retired" and d["version"] != current["version"]]
    if not earlier:
        raise NotFound(f"'{env_name}' has no previous deployment to roll back to",
                       hint="see `mlci registry show` for its deployments")
    target = earlier[-1]
    on_line(f"rollback: {env_name} from version {current['version']} to version {target['version']}")
    return deploy(project, env_name=env_name, ref=str(target["version"]), kind="rollback",
                  replaced_status="rolled_back", on_line=on_line)


def _finish(project: Project, report: Report) -> Report:
    """``reports/<deploy|rollback>-<env>.*``: one set per environment, so a production deploy in the same
    build does not overwrite staging's JUnit results."""
    name = f"{report.kind}-{report.details['env']}"
    write_report(report, project.reports_dir, name, html=render("reports/delivery.html.j2", title=f"mlci {report.kind}",
                                                          ok=report.ok, report=report))
    return report


# -- kubernetes -------------------------------------------------------------------------------------


def kubernetes_manifests(project: Project, *, env_name: str, env: Environment, record: dict[str, Any]) -> str:
    image = record.get("image") or {}
    if not image.get("reference"):
        raise UsageError(f"model version {record['version']} has no pushed image",
                         hint="run `mlci build` and `mlci push` first; Kubernetes pulls by digest")
    name = f"{project.config.project}-{env_name}"[:63].lower()
    context = {"name": name, "namespace": env.namespace, "project": project.config.project, "env": env_name,
               "version": record["version"], "image": image["reference"], "port": env.port,
               "replicas": env.replicas, "autoscale_max": env.autoscale_max, "cpu": env.cpu,
               "memory": env.memory, "health_timeout": int(env.health_timeout),
               "environment": _container_environment(serve_settings(project, ref=str(record["version"]),
                                                                    port=env.port, env_name=env_name)),
               "predictions_claim": env.predictions_claim, "user_id": image_section(project).user_id}
    documents = [render("kubernetes/deployment.yaml.j2", **context), render("kubernetes/service.yaml.j2", **context)]
    if env.autoscale_max:
        documents.append(render("kubernetes/hpa.yaml.j2", **context))
    return "---\n".join(documents)


def deploy_kubernetes(project: Project, *, env_name: str, env: Environment, record: dict[str, Any], kind: str,
                      render_only: bool, on_line: LineSink) -> Report:
    text = kubernetes_manifests(project, env_name=env_name, env=env, record=record)
    path = project.reports_dir / "kubernetes" / f"{env_name}.yaml"
    atomic_write_text(path, text)
    report = Report(kind=kind)
    report.details = {"env": env_name, "version": record["version"], "target": "kubernetes", "manifests": str(path)}
    report.add(Check("render", True, str(path)))
    if render_only:
        return _finish(project, report)
    kubectl = shutil.which("kubectl")
    if not kubectl:
        raise ServiceError("kubectl is not installed on this machine", hint=f"apply {path} yourself, or install kubectl; "
                           "--render-only writes the manifests without applying them")
    base = [kubectl] + (["--context", env.kubectl_context] if env.kubectl_context else []) + ["-n", env.namespace]
    name = f"deployment/{project.config.project}-{env_name}"[:74].lower()
    _kubectl(base + ["apply", "-f", str(path)], "apply")
    on_line(f"{kind}: waiting for the rollout of {name}")
    status = subprocess.run(base + ["rollout", "status", name, f"--timeout={int(env.health_timeout)}s"],
                            capture_output=True, text=True)
    ok = status.returncode == 0
    last_line = ((status.stdout or status.stderr).strip().splitlines() or [""])[-1]
    report.add(Check("rollout", ok, last_line))
    registry = open_registry(project)
    previous = active_deployment(registry, env_name)
    entry = {"id": uuid.uuid4().hex, "env": env_name, "version": record["version"], "target": "kubernetes",
             "image": record["image"]["reference"], "time": _now(), "kind": kind,
             "handle": {"namespace": env.namespace, "deployment": name}}
    if not ok:
        _kubectl(base + ["rollout", "undo", name], "rollout undo")
        _record(registry, {**entry, "status": "failed"})
        report.add(Check("switch", False, "rollout undone; the previous ReplicaSet serves"))
        return _finish(project, report)
    _activate(registry, entry)
    if previous:
        _set_status(registry, previous, "rolled_back" if kind == "rollback" else "retired")
    report.add(Check("switch", True, f"version {record['version']} rolled out"))
    return _finish(project, report)


def _kubectl(command: list[str], what: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise ServiceError(f"kubectl {what} failed: {' '.join(result.stderr.split())[:300]}",
                           hint="check the cluster connection (kubectl config current-context)")
