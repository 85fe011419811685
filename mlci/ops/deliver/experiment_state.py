"""The record of live experiments in the registry: the running one per environment, and the server
settings that make a (re)started server run it. ``deploy`` reads it; ``mlci.ops.deliver.experiment``
starts and concludes experiments."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from mlci.core.config import Project
from mlci.core.records import Experiment, ModelVersion, append_entry, change_entry
from mlci.ops.model.registry import open_registry

RUNNING = "running"


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# -- the record in the registry ---------------------------------------------------------------------


def experiments_of(registry, env_name: str) -> list[Experiment]:
    """Every experiment ever started on ``env_name``, oldest first."""
    found = [e for record in registry.versions() for e in ModelVersion.from_dict(record).experiments
             if e.env == env_name]
    return sorted(found, key=lambda e: e.started)


def running_experiment(registry, env_name: str) -> Experiment | None:
    running = [e for e in experiments_of(registry, env_name) if e.status == RUNNING]
    return running[-1] if running else None


def record_experiment(registry, experiment: Experiment) -> None:
    """Add a new experiment to its challenger's record."""
    registry.update(experiment.challenger, lambda r: append_entry(r, experiment))


def change_experiment(registry, experiment: Experiment, **changes: Any) -> Experiment:
    """Record ``changes`` (field values) of ``experiment``; returns it with them."""
    registry.update(experiment.challenger, lambda r: change_entry(r, experiment, **changes))
    return replace(experiment, **changes)


def experiment_settings(experiment: Experiment | None) -> dict[str, Any]:
    """The server settings (``MLCI_SERVE_EXPERIMENT_*``) that make a server run ``experiment``."""
    if experiment is None:
        return {"experiment_mode": "", "experiment_challenger": "", "experiment_share": 0.0,
                "experiment_key": "", "experiment_id": ""}
    return {"experiment_mode": experiment.mode, "experiment_challenger": str(experiment.challenger),
            "experiment_share": float(experiment.share or 0.0) if experiment.mode == "canary" else 0.0,
            "experiment_key": experiment.key or "", "experiment_id": experiment.id,
            "experiment_queue_rows": int(experiment.plan.queue_rows)}


def resumed_experiment(project: Project, env_name: str, version: int) -> Experiment | None:
    """What a deploy of ``version`` to ``env_name`` serves beside it: the running experiment when
    ``version`` is its champion (a restart); an experiment against another champion is superseded."""
    registry = open_registry(project)
    experiment = running_experiment(registry, env_name)
    if experiment is None or experiment.champion == version:
        return experiment
    change_experiment(registry, experiment, status="superseded", ended=utc_now(),
            result={"decision": "superseded", "reason": f"version {version} was deployed to {env_name}"})
    return None
