"""Registry use cases: open the project's registry, load a verified model."""

from __future__ import annotations

from typing import Any

from mlci.adapters.model_files import load_model
from mlci.adapters.registry_store import ModelRegistry
from mlci.core.config import Project

MODEL_FILE = "model.skops"


def open_registry(project: Project) -> ModelRegistry:
    return ModelRegistry(project.registry_dir, lock_timeout=project.config.registry.lock_timeout)


def load_version_model(project: Project, ref: str | int = "latest") -> tuple[Any, dict[str, Any]]:
    """The model of version ``ref`` (number, alias or ``latest``) after verifying its sha256, and its record."""
    registry = open_registry(project)
    record = registry.get(ref)
    return load_model(registry.read_artifact(record["version"], MODEL_FILE)), record
