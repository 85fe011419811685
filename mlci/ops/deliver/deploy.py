"""``mlci deploy --env E`` and ``mlci rollback --env E``: health-gated rollout with automatic rollback.

docker and local targets switch on one host without downtime: the new server joins the old one's port
(SO_REUSEPORT) and also listens on a private check port; there it must become ready and answer a smoke
test with holdout rows before the old server is stopped. If it does not, it is removed and the old one
keeps serving (exit 1). kubernetes renders Deployment, Service (and HPA) and applies them with kubectl.

Every attempt is recorded in the registry, in the deployed version's record under ``deployments``
(``mlci.core.records.Deployment``: id, env, version, target, image, time, status, kind, handle, url)
with status ``active``, ``retired``, ``rolled_back`` or ``failed``. ``rollback`` redeploys the most
recent earlier deployment that was not itself rolled back.

This module holds the rollout itself; its parts live beside it in ``mlci.ops.deliver``: ``settings``
(the server's settings), ``history`` (environments and recorded deployments), ``local_target`` and
``docker_target``, ``health`` (port ownership, readiness, smoke test), ``kubernetes`` and ``report``.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import replace

from mlci.core.config import Environment, Project
from mlci.core.records import Deployment, Experiment
from mlci.core.reports import Check, Report
from mlci.errors import NotFound
from mlci.ops.deliver.docker_target import DockerTarget
from mlci.ops.deliver.health import ensure_port_is_ours, free_port, smoke_rows, smoke_test, wait_ready
from mlci.ops.deliver.history import (
    activate,
    active_deployment,
    deployments,
    environment,
    record_attempt,
    set_status,
    utc_now,
)
from mlci.ops.deliver.kubernetes import deploy_kubernetes
from mlci.ops.deliver.local_target import LocalTarget
from mlci.ops.deliver.report import LineSink, finish_report
from mlci.ops.deliver.settings import serve_settings, with_experiment
from mlci.ops.model.registry import open_registry


def _target(project: Project, env_name: str, env: Environment):
    return {"docker": DockerTarget, "local": LocalTarget}[env.target](project, env_name)


RESUME = "resume"


def deploy(project: Project, *, env_name: str, ref: str = "latest", kind: str = "deploy",
           replaced_status: str = "retired", render_only: bool = False, on_line: LineSink = lambda s: None,
           experiment: Experiment | None | str = RESUME) -> Report:
    """``experiment``: the live experiment the new server runs (mlci.ops.deliver.experiment); by default the
    environment's running one when this version is its champion, so a redeploy or restart keeps it."""
    env = environment(project, env_name)
    registry = open_registry(project)
    record = registry.get_version(ref)
    if experiment == RESUME:
        from mlci.ops.deliver.experiment_state import resumed_experiment, running_experiment

        if render_only and env.target == "kubernetes":  # what applying it would serve; supersedes nothing
            running = running_experiment(registry, env_name)
            experiment = running if running and running.champion == record.version else None
        else:
            experiment = resumed_experiment(project, env_name, record.version)
    experiment = experiment if isinstance(experiment, Experiment) else None
    if experiment is not None:
        on_line(f"{kind}: with {experiment.mode} experiment {experiment.id} "
                f"(challenger version {experiment.challenger})")
    if env.target == "kubernetes":
        return deploy_kubernetes(project, env_name=env_name, env=env, record=record, experiment=experiment,
                                 kind=kind, render_only=render_only, on_line=on_line)
    target = _target(project, env_name, env)
    previous = active_deployment(registry, env_name)
    ensure_port_is_ours(project, env_name, target.address, env.port, previous)
    settings = with_experiment(project, serve_settings(project, ref=str(record.version), host="0.0.0.0",
                                                       port=env.port, check_port=free_port(), env_name=env_name),
                               experiment)
    report = Report(kind=kind)
    report.details = {"env": env_name, "version": record.version, "target": env.target,
                      "previous_version": previous.version if previous else None}
    started = time.monotonic()
    on_line(f"{kind}: starting model version {record.version} on {env_name} ({env.target}, port {env.port})")
    handle = target.start(record, settings)
    report.add(Check("start", True, f"{target.name} {handle.get('name') or handle.get('pid')}"))
    check_url = f"http://{target.address}:{settings.check_port}"
    ready, why = wait_ready(check_url, env.health_timeout, lambda: target.alive(handle))
    report.add(Check("ready", ready, why, value=round(time.monotonic() - started, 2), threshold=env.health_timeout))
    smoke_ok, smoke_why = False, "not run: the server is not ready"
    if ready:
        smoke_ok, smoke_why = smoke_test(check_url, smoke_rows(project, env.smoke_rows), record.version,
                                         experiment.challenger if experiment else None)
    report.add(Check("smoke test", smoke_ok, smoke_why, skipped=not ready))
    entry = Deployment(id=uuid.uuid4().hex, env=env_name, version=record.version, target=env.target,
                       image=record.image.reference if record.image else None, time=utc_now(), kind=kind,
                       status="active", handle=handle, url=f"http://{target.address}:{env.port}",
                       extra={"experiment": experiment.id if experiment else None})
    if not (ready and smoke_ok):
        on_line(f"{kind}: version {record.version} failed ({why}; {smoke_why}); removing it")
        report.details["new_server_log"] = target.diagnostics(handle)[-2000:]
        target.stop(handle)
        record_attempt(registry, replace(entry, status="failed"))
        kept = f"version {previous.version} keeps serving" if previous else "nothing was serving before"
        report.add(Check("switch", False, f"rolled back: {kept}"))
        return finish_report(project, report)
    activate(registry, entry)
    if previous:
        target.stop(previous.handle)
        set_status(registry, previous, replaced_status)
    report.add(Check("switch", True, f"version {record.version} serves {entry.url}"
                     + (f"; version {previous.version} stopped" if previous else "")))
    report.details["url"] = entry.url
    report.details["seconds"] = round(time.monotonic() - started, 2)
    return finish_report(project, report)


def rollback(project: Project, *, env_name: str, on_line: LineSink = lambda s: None) -> Report:
    """Redeploy the environment's previous deployment (health-gated like any deployment)."""
    environment(project, env_name)
    registry = open_registry(project)
    current = active_deployment(registry, env_name)
    if current is None:
        raise NotFound(f"nothing is deployed to '{env_name}'", hint=f"run `mlci deploy --env {env_name}`")
    history = deployments(registry, env_name)
    earlier = [d for d in history[:history.index(current)]
               if d.status == "retired" and d.version != current.version]
    if not earlier:
        raise NotFound(f"'{env_name}' has no previous deployment to roll back to",
                       hint="see `mlci registry show` for its deployments")
    target = earlier[-1]
    on_line(f"rollback: {env_name} from version {current.version} to version {target.version}")
    return deploy(project, env_name=env_name, ref=str(target.version), kind="rollback",
                  replaced_status="rolled_back", on_line=on_line)
