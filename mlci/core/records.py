"""The registry's records as typed values: a model version, its image and its deployments.

A version's record is stored as JSON (``version.json`` in a local registry, a run artifact in MLflow).
This module is the one place that knows its format:

- ``stamp`` marks a record with the format it is written in (``"format": 2``) before any backend
  stores it;
- ``upgrade`` turns a stored record into the current format when it is read: a record without a
  ``format`` key was written by release 0.1.0 (format 1), whose fields are the same; a record from a
  newer mlci is refused rather than misread;
- ``ModelVersion``, ``ImageRef`` and ``Deployment`` are frozen views of a record for code that wants
  typed fields; readers take them from the registry's ``get_version``, writers change the stored
  dict through the registry's ``update``; ``to_dict()`` gives the stored form back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlci.errors import IntegrityError

FORMAT = 2  # the record format this release writes
FIRST_FORMAT = 1  # records without a "format" key: release 0.1.0


def stamp(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` marked with the current format (in place, and returned), ready to be stored."""
    record["format"] = FORMAT
    return record


def record_format(record: dict[str, Any]) -> int:
    """The format a stored record was written in."""
    value = record.get("format", FIRST_FORMAT)
    if isinstance(value, bool) or not isinstance(value, int) or value < FIRST_FORMAT:
        raise IntegrityError(f"model version record has an invalid format {value!r}",
                             hint="the registry file was changed outside mlci")
    return value


def upgrade(record: dict[str, Any]) -> dict[str, Any]:
    """A stored record in the current format (in place, and returned). Format 1 differs only in the
    missing ``format`` key; a format newer than this release's is refused."""
    found = record_format(record)
    if found > FORMAT:
        raise IntegrityError(f"model version {record.get('version')} was written by a newer mlci "
                             f"(record format {found}; this mlci reads up to {FORMAT})", hint="upgrade mlci")
    record["format"] = FORMAT
    return record


@dataclass(frozen=True)
class ImageRef:
    """The serving image of a version: built (``id``), then pushed (``digest``, ``reference``)."""

    name: str
    tags: tuple[str, ...] = ()
    id: str | None = None
    digest: str | None = None
    reference: str | None = None
    size_bytes: int | None = None
    built: str | None = None
    pushed: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImageRef:
        return cls(name=data["name"], tags=tuple(data.get("tags") or ()), id=data.get("id"),
                   digest=data.get("digest"), reference=data.get("reference"), size_bytes=data.get("size_bytes"),
                   built=data.get("built"), pushed=data.get("pushed"))

    def to_dict(self) -> dict[str, Any]:
        data = {"name": self.name, "tags": list(self.tags), "id": self.id, "digest": self.digest,
                "size_bytes": self.size_bytes, "built": self.built}
        data.update({k: v for k, v in (("reference", self.reference), ("pushed", self.pushed)) if v is not None})
        return data


@dataclass(frozen=True)
class Deployment:
    """One deployment attempt of a version to an environment (``status``: active, retired, rolled_back,
    failed)."""

    id: str
    env: str
    version: int
    target: str
    time: str
    status: str
    kind: str = "deploy"
    image: str | None = None
    url: str | None = None
    ended: str | None = None
    handle: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # keys of newer writers, kept on the way back

    _KNOWN = ("id", "env", "version", "target", "time", "status", "kind", "image", "url", "ended", "handle")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Deployment:
        return cls(id=data["id"], env=data["env"], version=int(data["version"]), target=data["target"],
                   time=data["time"], status=data.get("status", "active"), kind=data.get("kind", "deploy"),
                   image=data.get("image"), url=data.get("url"), ended=data.get("ended"),
                   handle=dict(data.get("handle") or {}),
                   extra={k: v for k, v in data.items() if k not in cls._KNOWN})

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "env": self.env, "version": self.version, "target": self.target,
                                "image": self.image, "time": self.time, "kind": self.kind, "handle": dict(self.handle)}
        data.update({k: v for k, v in (("url", self.url), ("status", self.status), ("ended", self.ended))
                     if v is not None})
        return {**data, **self.extra}


@dataclass(frozen=True)
class ModelVersion:
    """A registered model version: what it is, what made it, how good it is, and where it runs.

    The fields code reads by name are typed; the rest of the record (lineage details, libraries, CV
    results, schema) stays in ``record``, the stored form."""

    version: int
    created: str | None
    task: str | None
    estimator: str | None  # the estimator class's import path
    metrics: dict[str, float]
    artifacts: dict[str, dict[str, Any]]
    features: tuple[str, ...]  # the model's input columns, in training order (empty: the schema's)
    schema: dict[str, Any] | None  # the data schema it was trained with, as stored
    estimator_configured: str | None  # the class as mlci.yaml named it
    train: dict[str, Any]  # the training data's lineage: path, sha256, rows, row_identity
    git_commit: str | None
    record: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelVersion:
        record = upgrade(dict(data))
        estimator = record.get("estimator")
        return cls(version=int(record["version"]), created=record.get("created"), task=record.get("task"),
                   estimator=estimator.get("class") if isinstance(estimator, dict) else estimator,
                   metrics=dict(record.get("metrics") or {}), artifacts=dict(record.get("artifacts") or {}),
                   features=tuple(record.get("features") or ()), schema=record.get("schema"),
                   estimator_configured=estimator.get("configured") if isinstance(estimator, dict) else None,
                   train=dict((record.get("data") or {}).get("train") or {}),
                   git_commit=(record.get("git") or {}).get("commit"), record=record)

    def to_dict(self) -> dict[str, Any]:
        """The stored form, with this view's image and deployments, in the current format."""
        data = {**self.record, "version": self.version, "metrics": dict(self.metrics),
                "artifacts": dict(self.artifacts), "deployments": [d.to_dict() for d in self.deployments]}
        if self.image is not None:
            data["image"] = self.image.to_dict()
        return stamp(data)

    # The image and the deployments are read when asked for, so a reader of other fields (``registry
    # list``, ``registry show``) is not refused for an entry another tool wrote in part.
    @property
    def image(self) -> ImageRef | None:
        return ImageRef.from_dict(self.record["image"]) if self.record.get("image") else None

    @property
    def deployments(self) -> tuple[Deployment, ...]:
        return tuple(Deployment.from_dict(d) for d in self.record.get("deployments") or ())

    def artifact_sha256(self, name: str) -> str | None:
        """The sha256 recorded for artifact ``name`` at registration, None when there is no such artifact."""
        return (self.artifacts.get(name) or {}).get("sha256")

    @property
    def train_row_identity(self) -> dict[str, Any] | None:
        """How the training rows were fingerprinted (scheme, columns, file), None for older records."""
        return self.train.get("row_identity")

    def active_deployment(self, env: str) -> Deployment | None:
        active = [d for d in self.deployments if d.env == env and d.status == "active"]
        return active[-1] if active else None
