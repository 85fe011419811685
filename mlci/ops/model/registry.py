"""Registry use cases: open the project's registry, load a verified model, list, show, promote,
roll back and diff versions, and write each version's model card."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlci.adapters.model_files import MODEL_FILE, load_model
from mlci.adapters.registry_store import ModelRegistry
from mlci.core.config import Project

METRICS_FILE = "metrics.json"
PREDICTIONS_FILE = "predictions.npz"
MODEL_CARD_FILE = "model_card.md"


def open_registry(project: Project) -> ModelRegistry:
    return ModelRegistry(project.registry_dir, lock_timeout=project.config.registry.lock_timeout)


def load_version_model(project: Project, ref: str | int = "latest") -> tuple[Any, dict[str, Any]]:
    """The model of version ``ref`` (number, alias or ``latest``) after verifying its sha256, and its record."""
    registry = open_registry(project)
    record = registry.get(ref)
    return load_model(registry.read_artifact(record["version"], MODEL_FILE)), record


def write_model_card(registry: ModelRegistry, version: int) -> dict[str, Any]:
    """(Re)write the version's Markdown model card from its record; returns the updated record."""
    from mlci.ops.reporting.render import render

    record = registry.get(version)
    card = render("model_card.md.j2", record=record, aliases=_aliases_of(registry, version))
    return registry.update(version, lambda r: None, artifacts={MODEL_CARD_FILE: card.encode("utf-8")})


def _aliases_of(registry: ModelRegistry, version: int) -> list[str]:
    return [name for name, entry in registry.aliases().items() if entry.get("version") == version]


@dataclass
class RegistryView:
    """What a registry command shows: ``kind`` is list, show, promote, rollback or diff."""

    kind: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **self.data}


def list_versions(*, project: Project) -> RegistryView:
    registry = open_registry(project)
    by_version: dict[int, list[str]] = {}
    for name, entry in sorted(registry.aliases().items()):
        by_version.setdefault(int(entry["version"]), []).append(name)
    rows = [{"version": r["version"], "created": r.get("created"), "estimator": r["estimator"]["class"],
             "metrics": r.get("metrics") or {}, "aliases": by_version.get(r["version"], []),
             "image": (r.get("image") or {}).get("digest")}
            for r in registry.versions()]
    from mlci.ml.metrics import wanted_metrics

    headline = wanted_metrics(project.config.model.metrics, project.config.model.task)
    return RegistryView("list", {"versions": rows, "aliases": registry.aliases(), "headline": headline})


def show_version(*, project: Project, ref: str) -> RegistryView:
    registry = open_registry(project)
    record = registry.get(ref)
    return RegistryView("show", {"record": record, "aliases": _aliases_of(registry, record["version"])})


def promote(*, project: Project, ref: str, alias: str) -> RegistryView:
    registry = open_registry(project)
    version = registry.resolve(ref)
    registry.read_artifact(version, MODEL_FILE)  # never point an alias at a damaged model
    previous = registry.alias_of(alias)
    entry = registry.set_alias(alias, version)
    write_model_card(registry, version)
    return RegistryView("promote", {"alias": alias, "version": version, "previous": previous,
                                    "history": entry["history"]})


def rollback(*, project: Project, alias: str) -> RegistryView:
    registry = open_registry(project)
    current, previous = registry.rollback_alias(alias)
    return RegistryView("rollback", {"alias": alias, "from": current, "to": previous})


def diff_versions(*, project: Project, left: str, right: str) -> RegistryView:
    """Parameters, metrics, data and libraries that differ between two versions."""
    registry = open_registry(project)
    a, b = registry.get(left), registry.get(right)
    sections = {
        "estimator": _changes({"class": a["estimator"]["class"]} | a["estimator"]["params"],
                              {"class": b["estimator"]["class"]} | b["estimator"]["params"]),
        "metrics": _changes(a.get("metrics") or {}, b.get("metrics") or {}),
        "cv": _changes({k: v.get("mean") for k, v in (a.get("cv") or {}).items()},
                       {k: v.get("mean") for k, v in (b.get("cv") or {}).items()}),
        "data": _changes(_flat(a.get("data") or {}), _flat(b.get("data") or {})),
        "features": _changes({"features": a.get("features")}, {"features": b.get("features")}),
        "schema": _changes({"schema_sha256": a.get("schema_sha256")}, {"schema_sha256": b.get("schema_sha256")}),
        "libraries": _changes(a.get("libraries") or {}, b.get("libraries") or {}),
        "git": _changes(a.get("git") or {}, b.get("git") or {}),
    }
    return RegistryView("diff", {"left": a["version"], "right": b["version"],
                                 "changes": {k: v for k, v in sections.items() if v}})


def _changes(left: dict[str, Any], right: dict[str, Any]) -> list[dict[str, Any]]:
    keys = list(dict.fromkeys([*left, *right]))
    return [{"key": k, "left": left.get(k), "right": right.get(k)} for k in keys if left.get(k) != right.get(k)]


def _flat(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flat(value, name + "."))
        else:
            out[name] = value
    return out


def estimator_name(record: dict[str, Any]) -> str:
    """The estimator as the config named it (the recorded class path may be a private module's)."""
    return record["estimator"].get("configured") or record["estimator"]["class"]
