"""Environments and their deployment history, recorded in the registry under each version's ``deployments``
as typed entries (``mlci.core.records.Deployment``)."""

from __future__ import annotations

import time
from dataclasses import replace

from mlci.adapters.registry_api import Registry
from mlci.core.config import Environment, Project
from mlci.core.records import Deployment, ModelVersion, append_entry, change_entry
from mlci.core.spec import did_you_mean
from mlci.errors import NotFound


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def environment(project: Project, name: str) -> Environment:
    environments = project.config.environments
    if name not in environments:
        hint = did_you_mean(name, environments) or f"known: {', '.join(environments) or 'none'}"
        raise NotFound(f"no environment '{name}' in {project.config_path.name}", hint=hint)
    return environments[name]


def deployments(registry: Registry, env: str) -> list[Deployment]:
    """Every recorded deployment attempt of ``env``, oldest first."""
    entries = [d for record in registry.versions() for d in ModelVersion.from_dict(record).deployments if d.env == env]
    return sorted(entries, key=lambda d: (d.time, d.extra.get("seq", 0)))


def active_deployment(registry: Registry, env: str) -> Deployment | None:
    active = [d for d in deployments(registry, env) if d.status == "active"]
    return active[-1] if active else None


def set_status(registry: Registry, entry: Deployment, status: str) -> None:
    registry.update(entry.version, lambda r: change_entry(r, entry, status=status, ended=utc_now()))


def record_attempt(registry: Registry, entry: Deployment) -> None:
    registry.update(entry.version, lambda r: append_entry(r, entry))


def activate(registry: Registry, entry: Deployment) -> None:
    """Record a deployment as serving, and point the alias named after its environment at its version:
    the `production` alias (the gate's default champion) is always the model production runs."""
    record_attempt(registry, replace(entry, status="active"))
    registry.set_alias(entry.env, entry.version)
