"""Registry use cases: open the project's registry, load a verified model, list, show, promote,
roll back and diff versions, and write each version's model card."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlci.adapters.model_files import MODEL_FILE, load_model
from mlci.adapters.registry_api import Change, Registry
from mlci.adapters.registry_store import RECORD, ModelRegistry
from mlci.core.atomic import atomic_write_bytes
from mlci.core.config import Project
from mlci.core.records import ModelVersion
from mlci.errors import ConfigError

METRICS_FILE = "metrics.json"
PREDICTIONS_FILE = "predictions.npz"
MODEL_CARD_FILE = "model_card.md"
REFERENCE_STEM = "reference"  # reference.<ext of the training file>: the monitor's reference data


def reference_artifact(project: Project) -> dict[str, bytes]:
    """The training file as the version's reference artifact: the nightly monitor, in a workspace without
    the training data, compares against exactly the data that made the model."""
    path = project.path(project.config.data.train)
    suffix = "".join(path.suffixes[-2:]) if path.suffix in (".gz", ".zst", ".bz2", ".xz") else path.suffix
    return {f"{REFERENCE_STEM}{suffix.lower()}": path.read_bytes()}


def reference_name(record: ModelVersion) -> str | None:
    """The name of the version's reference artifact, None for versions trained before it existed."""
    names = [n for n in record.artifacts if n.split(".", 1)[0] == REFERENCE_STEM]
    return names[0] if names else None


def open_registry(project: Project) -> Registry:
    """The configured backend: ``registry.backend`` local (a directory) or mlflow (a tracking server)."""
    settings = project.config.registry
    if settings.backend == "mlflow":
        from mlci.adapters.mlflow_registry import MlflowRegistry

        uri = settings.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
        if not uri:
            raise ConfigError("registry.backend is mlflow but no tracking server is set",
                              hint="set registry.tracking_uri in mlci.yaml or the MLFLOW_TRACKING_URI variable")
        return MlflowRegistry(uri, settings.model_name or project.config.project)
    return ModelRegistry(project.registry_dir, lock_timeout=settings.lock_timeout)


def local_copy(registry: Registry, version: int, directory: Path) -> Path:
    """A one-version local registry at ``directory`` (record + verified model), for the model server and
    the image: they read a directory, whatever backend holds the version. Returns ``directory``."""
    record = registry.get(version)
    model = registry.read_artifact(version, MODEL_FILE)  # verified read
    target = Path(directory) / "versions" / f"v{int(version)}"
    target.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(target / MODEL_FILE, model)
    atomic_write_bytes(target / RECORD, json.dumps(record, indent=1, sort_keys=True).encode("utf-8"))
    return Path(directory)


def load_version_model(project: Project, ref: str | int = "latest") -> tuple[Any, ModelVersion]:
    """The model of version ``ref`` (number, alias or ``latest``) after verifying its sha256, and its record."""
    registry = open_registry(project)
    record = registry.get_version(ref)
    return load_model(registry.read_artifact(record.version, MODEL_FILE)), record


def write_model_card(registry: Registry, version: int) -> dict[str, Any]:
    """(Re)write the version's Markdown model card from its record; returns the updated record."""
    from mlci.ops.reporting.render import render

    card = render("model_card.md.j2", record=registry.get_version(version), aliases=_aliases_of(registry, version))
    return registry.update(version, lambda r: None, artifacts={MODEL_CARD_FILE: card.encode("utf-8")})


def _aliases_of(registry: Registry, version: int) -> list[str]:
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
    rows = [{"version": v.version, "created": v.created, "estimator": v.estimator, "metrics": v.metrics,
             "aliases": by_version.get(v.version, []), "image": v.image.digest if v.image else None}
            for v in map(ModelVersion.from_dict, registry.versions())]
    from mlci.ml.metrics import wanted_metrics

    headline = wanted_metrics(project.config.model.metrics, project.config.model.task)
    return RegistryView("list", {"versions": rows, "aliases": registry.aliases(), "headline": headline})


def show_version(*, project: Project, ref: str) -> RegistryView:
    registry = open_registry(project)
    version = registry.get_version(ref)
    return RegistryView("show", {"record": version.record, "aliases": _aliases_of(registry, version.version)})


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
    a, b = registry.get_version(left), registry.get_version(right)
    compared_a, compared_b = _compared(a), _compared(b)
    sections = {name: _changes(compared_a[name], compared_b[name]) for name in compared_a}
    return RegistryView("diff", {"left": a.version, "right": b.version,
                                 "changes": {k: v for k, v in sections.items() if v}})


def _compared(version: ModelVersion) -> dict[str, dict[str, Any]]:
    """What ``diff`` compares of a version, by section: key -> value, keys in the order they are stored."""
    return {
        "estimator": {"class": version.estimator} | version.params,
        "metrics": version.metrics,
        "cv": {name: score.mean for name, score in version.cv.items()},
        "data": _flat({name: data_file.to_dict() for name, data_file in version.data.items()}),
        "features": {"features": list(version.features) or None},  # None: the record names none
        "schema": {"schema_sha256": version.schema_sha256},
        "libraries": version.libraries,
        "git": {} if version.git_commit is None else  # outside git, lineage records no git state
        {"commit": version.git_commit, "dirty": version.git_dirty, "branch": version.git_branch},
    }


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


def estimator_name(record: ModelVersion) -> str | None:
    """The estimator as the config named it (the recorded class path may be a private module's)."""
    return record.estimator_configured or record.estimator


def copy_versions(source: Registry, target: Registry) -> dict[str, Any]:
    """Copy every version of ``source`` (record, lineage, deployments, artifacts) and every alias with its
    history into ``target``, in version order. Each artifact is read verified from ``source`` and its
    sha256 is checked again in ``target``; returns the version number map and the aliases copied."""
    from mlci.errors import IntegrityError

    numbers: dict[int, int] = {}
    for record in source.versions():
        typed = ModelVersion.from_dict(record)
        old = typed.version
        artifacts = {name: source.read_artifact(old, name) for name in sorted(typed.artifacts)}
        copied = {k: v for k, v in record.items() if k not in ("version", "artifacts")}
        copied["copied_from"] = {"registry": source.describe(), "version": old}
        new = target.register(copied, artifacts)
        numbers[old] = int(new["version"])
        if numbers[old] != old and copied.get("deployments"):  # deployments name their version
            target.update(numbers[old], _deployments_of(numbers[old]))
        for name, data in artifacts.items():
            if target.read_artifact(numbers[old], name) != data:
                raise IntegrityError(f"{target.describe()}: version {numbers[old]} artifact {name} differs after copy")
    aliases: dict[str, int | None] = {}
    for name, entry in sorted(source.aliases().items()):
        chain = [numbers[v] for v in [*entry.get("history", []), entry["version"]] if v in numbers]
        for version in chain:  # replaying the holders rebuilds the history
            target.set_alias(name, version)
        aliases[name] = chain[-1] if chain else None
    return {"versions": {str(k): v for k, v in numbers.items()}, "aliases": aliases}


def _deployments_of(version: int) -> Change:
    """A record change pointing every deployment of a copied version at its new number."""
    def change(record: dict[str, Any]) -> None:
        for deployment in record.get("deployments") or []:
            deployment["version"] = version
    return change


def export_versions(*, project: Project, directory: Path) -> RegistryView:
    """Copy the configured registry into a local registry at ``directory`` (which must be empty)."""
    target = _empty_local(directory)
    return RegistryView("export", {"from": open_registry(project).describe(), "to": str(directory),
                                   **copy_versions(open_registry(project), target)})


def import_versions(*, project: Project, directory: Path) -> RegistryView:
    """Copy a local registry at ``directory`` (e.g. an export) into the configured registry."""
    from mlci.errors import NotFound

    if not (Path(directory) / "versions").is_dir():
        raise NotFound(f"{directory}: not a registry directory (no versions/)", hint="give a directory "
                       "written by 'mlci registry export', or a local registry's registry.path")
    target = open_registry(project)
    return RegistryView("import", {"from": str(directory), "to": target.describe(),
                                   **copy_versions(ModelRegistry(Path(directory)), target)})


def _empty_local(directory: Path) -> ModelRegistry:
    from mlci.errors import UsageError

    directory = Path(directory)
    if directory.exists() and any(directory.iterdir()):
        raise UsageError(f"{directory}: not empty", hint="export into a new or empty directory")
    directory.mkdir(parents=True, exist_ok=True)
    return ModelRegistry(directory)
