"""The record of live experiments in the registry: the running one per environment, and the server
settings that make a (re)started server run it. ``deploy`` reads it; ``mlci.ops.deliver.experiment``
starts and concludes experiments."""

from __future__ import annotations

import time
from typing import Any

from mlci.core.config import Project
from mlci.ops.model.registry import open_registry

RUNNING = "running"


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# -- the record in the registry ---------------------------------------------------------------------


def experiments_of(registry, env_name: str) -> list[dict[str, Any]]:
    """Every experiment ever started on ``env_name``, oldest first."""
    found = [e for record in registry.versions() for e in record.get("experiments", []) if e["env"] == env_name]
    return sorted(found, key=lambda e: e["started"])


def running_experiment(registry, env_name: str) -> dict[str, Any] | None:
    running = [e for e in experiments_of(registry, env_name) if e["status"] == RUNNING]
    return running[-1] if running else None


def change_experiment(registry, experiment: dict[str, Any], **changes: Any) -> None:
    def apply(record: dict[str, Any]) -> None:
        for item in record.get("experiments", []):
            if item["id"] == experiment["id"]:
                item.update(changes)
    registry.update(experiment["challenger"], apply)
    experiment.update(changes)


def experiment_settings(experiment: dict[str, Any] | None) -> dict[str, Any]:
    """The server settings (``MLCI_SERVE_EXPERIMENT_*``) that make a server run ``experiment``."""
    if experiment is None:
        return {"experiment_mode": "", "experiment_challenger": "", "experiment_share": 0.0,
                "experiment_key": "", "experiment_id": ""}
    return {"experiment_mode": experiment["mode"], "experiment_challenger": str(experiment["challenger"]),
            "experiment_share": float(experiment["share"] if experiment["mode"] == "canary" else 0.0),
            "experiment_key": experiment.get("key") or "", "experiment_id": experiment["id"],
            "experiment_queue_rows": int(experiment["plan"]["queue_rows"])}


def resumed_experiment(project: Project, env_name: str, version: int) -> dict[str, Any] | None:
    """What a deploy of ``version`` to ``env_name`` serves beside it: the running experiment when
    ``version`` is its champion (a restart); an experiment against another champion is superseded."""
    registry = open_registry(project)
    experiment = running_experiment(registry, env_name)
    if experiment is None or experiment["champion"] == version:
        return experiment
    change_experiment(registry, experiment, status="superseded", ended=utc_now(),
            result={"decision": "superseded", "reason": f"version {version} was deployed to {env_name}"})
    return None
