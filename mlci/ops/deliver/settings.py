"""The model server's settings for a deployment: ``mlci serve`` in the foreground, and the environment a
container gets."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from mlci.adapters.registry_api import Registry
from mlci.adapters.registry_store import ModelRegistry
from mlci.core.config import Project
from mlci.core.records import Experiment
from mlci.errors import ServiceError
from mlci.ops.deliver.experiment_state import experiment_settings
from mlci.ops.model.registry import local_copy, open_registry
from mlci.serve.settings import ServeSettings

CONTAINER_LOG_DIR = "/app/predictions"
# Where a container's server reads an experiment's challenger: the image holds the champion only, and each
# target fills this directory with a registry holding the challenger (docker: the project's registry
# mounted read-only; kubernetes: an init container copies it out of the challenger's own image).
CONTAINER_EXPERIMENT_REGISTRY = "/app/experiment-registry"


def serve_settings(project: Project, *, ref: str = "latest", host: str = "127.0.0.1", port: int = 8080,
                   workers: int | None = None, log: bool = True, check_port: int | None = None,
                   env_name: str | None = None) -> ServeSettings:
    registry = open_registry(project)
    version = registry.resolve(ref)
    serve = project.config.serve
    return ServeSettings(registry=serving_registry(project, registry, version), model=str(version), host=host,
                         port=port,
                         deployment=deployment_name(project, env_name) if env_name else "",
                         check_port=check_port, workers=workers or serve.workers,
                         max_body_bytes=serve.max_body_bytes, max_rows=serve.max_rows,
                         log_dir=project.path(serve.log_dir) if log and serve.log_predictions else None,
                         log_max_bytes=serve.log_max_bytes, log_queue_rows=serve.log_queue_rows,
                         unknown_categories=serve.unknown_categories, shadow_cpu_share=serve.shadow_cpu_share)


def serving_registry(project: Project, registry: Registry, version: int) -> Path:
    """The directory the model server reads: the local registry itself, or a verified one-version copy
    of a remote (MLflow) registry's version."""
    if isinstance(registry, ModelRegistry):
        return project.registry_dir
    return local_copy(registry, version, project.path(".mlci/serving-registry"))


def with_experiment(project: Project, settings: ServeSettings, experiment: Experiment | None) -> ServeSettings:
    """``settings`` for a server that runs ``experiment`` (None: no experiment), on every target. The
    challenger is read from ``experiment_registry``: the local registry itself, or a verified one-version
    copy of a remote (MLflow) registry's version, as for the champion."""
    changes: dict[str, Any] = experiment_settings(experiment)
    if experiment is not None:
        changes["experiment_registry"] = serving_registry(project, open_registry(project),
                                                          int(experiment.challenger))
    return replace(settings, **changes)


def serve_foreground(settings: ServeSettings) -> int:
    from mlci.serve.runner import run_server

    try:
        return run_server(settings)
    except OSError as exc:
        raise ServiceError(f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}",
                           hint="choose another --port or stop what uses it") from None


def container_environment(settings: ServeSettings) -> dict[str, str]:
    """The server's settings for a container: the image knows its registry, model and host; a running
    experiment's challenger is read from CONTAINER_EXPERIMENT_REGISTRY."""
    challenger_registry = CONTAINER_EXPERIMENT_REGISTRY if settings.experiment_mode else ""
    return settings.environment(omit=("registry", "model", "host"),
                                log_dir=CONTAINER_LOG_DIR if settings.log_dir else "",
                                experiment_registry=challenger_registry)


def deployment_name(project: Project, env_name: str) -> str:
    """How a deployed server names itself (/health/live), so a deployer can tell who holds a port."""
    return f"{project.config.project}/{env_name}"
