"""The kubernetes target: Deployment, Service (and HPA) manifests, applied and rolled out with kubectl."""

from __future__ import annotations

import shutil
import uuid
from dataclasses import replace

from mlci.adapters.commands import KUBECTL_TIMEOUT, run_command
from mlci.core.atomic import atomic_write_text
from mlci.core.config import Environment, Project
from mlci.core.records import Deployment, ModelVersion
from mlci.core.reports import Check, Report
from mlci.errors import ServiceError
from mlci.ops.deliver.history import activate, active_deployment, record_attempt, set_status, utc_now
from mlci.ops.deliver.image import image_section, pushed_reference
from mlci.ops.deliver.report import LineSink, finish_report
from mlci.ops.deliver.settings import container_environment, serve_settings
from mlci.ops.model.registry import open_registry
from mlci.ops.reporting.render import render


def kubernetes_manifests(project: Project, *, env_name: str, env: Environment, record: ModelVersion) -> str:
    reference = pushed_reference(record, hint="run `mlci build` and `mlci push` first; Kubernetes pulls by digest")
    name = f"{project.config.project}-{env_name}"[:63].lower()
    context = {"name": name, "namespace": env.namespace, "project": project.config.project, "env": env_name,
               "version": record.version, "image": reference, "port": env.port,
               "replicas": env.replicas, "autoscale_max": env.autoscale_max, "cpu": env.cpu,
               "memory": env.memory, "health_timeout": int(env.health_timeout),
               "environment": container_environment(serve_settings(project, ref=str(record.version),
                                                                    port=env.port, env_name=env_name)),
               "predictions_claim": env.predictions_claim, "user_id": image_section(project).user_id}
    documents = [render("kubernetes/deployment.yaml.j2", **context), render("kubernetes/service.yaml.j2", **context)]
    if env.autoscale_max:
        documents.append(render("kubernetes/hpa.yaml.j2", **context))
    return "---\n".join(documents)


def deploy_kubernetes(project: Project, *, env_name: str, env: Environment, record: ModelVersion, kind: str,
                      render_only: bool, on_line: LineSink) -> Report:
    text = kubernetes_manifests(project, env_name=env_name, env=env, record=record)
    path = project.reports_dir / "kubernetes" / f"{env_name}.yaml"
    atomic_write_text(path, text)
    report = Report(kind=kind)
    report.details = {"env": env_name, "version": record.version, "target": "kubernetes", "manifests": str(path)}
    report.add(Check("render", True, str(path)))
    if render_only:
        return finish_report(project, report)
    kubectl = shutil.which("kubectl")
    if not kubectl:
        raise ServiceError("kubectl is not installed on this machine",
                           hint=f"apply {path} yourself, or install kubectl; "
                           "--render-only writes the manifests without applying them")
    base = [kubectl] + (["--context", env.kubectl_context] if env.kubectl_context else []) + ["-n", env.namespace]
    name = f"deployment/{project.config.project}-{env_name}"[:74].lower()
    _kubectl(base + ["apply", "-f", str(path)], "apply")
    on_line(f"{kind}: waiting for the rollout of {name}")
    status = run_command(base + ["rollout", "status", name, f"--timeout={int(env.health_timeout)}s"],
                         what="kubectl rollout status", timeout=env.health_timeout + KUBECTL_TIMEOUT,
                         hint=_KUBECTL_HINT)
    ok = status.returncode == 0
    last_line = ((status.stdout or status.stderr).strip().splitlines() or [""])[-1]
    report.add(Check("rollout", ok, last_line))
    registry = open_registry(project)
    previous = active_deployment(registry, env_name)
    entry = Deployment(id=uuid.uuid4().hex, env=env_name, version=record.version, target="kubernetes",
                       image=pushed_reference(record), time=utc_now(), kind=kind, status="active",
                       handle={"namespace": env.namespace, "deployment": name})
    if not ok:
        _kubectl(base + ["rollout", "undo", name], "rollout undo")
        record_attempt(registry, replace(entry, status="failed"))
        report.add(Check("switch", False, "rollout undone; the previous ReplicaSet serves"))
        return finish_report(project, report)
    activate(registry, entry)
    if previous:
        set_status(registry, previous, "rolled_back" if kind == "rollback" else "retired")
    report.add(Check("switch", True, f"version {record.version} rolled out"))
    return finish_report(project, report)


_KUBECTL_HINT = "check the cluster connection (kubectl config current-context)"


def _kubectl(command: list[str], what: str) -> None:
    run_command(command, what=f"kubectl {what}", timeout=KUBECTL_TIMEOUT, check=True, hint=_KUBECTL_HINT)
