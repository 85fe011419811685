"""Environments and their deployment history, recorded in the registry under each version's ``deployments``."""

from __future__ import annotations

import time
from typing import Any

from mlci.adapters.registry_api import Registry
from mlci.core.config import Environment, Project
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


def deployments(registry: Registry, env: str) -> list[dict[str, Any]]:
    """Every recorded deployment attempt of ``env``, oldest first."""
    entries = [d for record in registry.versions() for d in record.get("deployments", []) if d["env"] == env]
    return sorted(entries, key=lambda d: (d["time"], d.get("seq", 0)))


def active_deployment(registry: Registry, env: str) -> dict[str, Any] | None:
    active = [d for d in deployments(registry, env) if d["status"] == "active"]
    return active[-1] if active else None


def set_status(registry: Registry, entry: dict[str, Any], status: str) -> None:
    def change(record: dict[str, Any]) -> None:
        for item in record.get("deployments", []):
            if item["id"] == entry["id"]:
                item["status"] = status
                item["ended"] = utc_now()
    registry.update(entry["version"], change)


def record_attempt(registry: Registry, entry: dict[str, Any]) -> None:
    registry.update(entry["version"], lambda r: r.setdefault("deployments", []).append(entry))


def activate(registry: Registry, entry: dict[str, Any]) -> None:
    """Record a deployment as serving, and point the alias named after its environment at its version:
    the `production` alias (the gate's default champion) is always the model production runs."""
    record_attempt(registry, {**entry, "status": "active"})
    registry.set_alias(entry["env"], entry["version"])
