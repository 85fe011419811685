"""The registry's records as typed values: a model version, its image and its deployments.

A version's record is stored as JSON (``version.json`` in a local registry, a run artifact in MLflow).
This module is the one place that knows its format:

- ``stamp`` marks a record with the format it is written in (``"format": 2``) before any backend
  stores it;
- ``upgrade`` turns a stored record into the current format when it is read: a record without a
  ``format`` key was written by release 0.1.0 (format 1), whose fields are the same; a record from a
  newer mlci is refused rather than misread;
- ``ModelVersion``, ``ImageRef``, ``Deployment``, ``Experiment``, ``DataFile`` and ``CvScore`` are
  frozen views of a record for code that wants typed fields; readers take them from the registry's
  ``get_version``; ``to_dict()`` gives the stored form back;
- the deployment and experiment history inside a record is written here too: ``append_entry`` and
  ``change_entry`` are the changes the deployer and the experiment runner pass to the registry's
  ``update``, so an entry always goes in through its typed class.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from mlci.core.config import ExperimentGuardrails, ExperimentSection
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


@contextmanager
def _entry_reader(kind: str, data: Any) -> Iterator[None]:
    """A history entry that lacks a field, or holds one of the wrong type, is an integrity error (exit 1)
    naming the entry, not a crash."""
    try:
        yield
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        name = data.get("id") if isinstance(data, dict) else None
        problem = f"no {exc}" if isinstance(exc, KeyError) else str(exc)
        raise IntegrityError(f"a recorded {kind} entry{f' {name}' if name else ''} is incomplete ({problem})",
                             hint="the registry file was changed outside mlci") from None


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
        with _entry_reader("deployment", data):
            return cls._from_dict(data)

    @classmethod
    def _from_dict(cls, data: dict[str, Any]) -> Deployment:
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
class Experiment:
    """A live experiment, recorded in the challenger's record under ``experiments`` (``status``: running,
    promoted, stopped, failed, superseded). ``plan`` is the environment's experiment section as it was
    configured when the experiment started (metric, bound and guardrail settings), stored as plain fields;
    a setting an older release did not store reads as the config's default, and plan keys this release does
    not know are kept in ``plan_extra`` to be stored back."""

    id: str
    env: str
    mode: str  # shadow or canary
    champion: int
    challenger: int
    share: float | None  # canary: the challenger's share of requests
    key: str | None
    plan: ExperimentSection
    started: str
    status: str
    looks: tuple[dict[str, Any], ...] = ()
    ended: str | None = None
    result: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    plan_extra: dict[str, Any] = field(default_factory=dict)

    _KNOWN = ("id", "env", "mode", "champion", "challenger", "share", "key", "plan", "started", "status",
              "looks", "ended", "result")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Experiment:
        with _entry_reader("experiment", data):
            return cls._from_dict(data)

    @classmethod
    def _from_dict(cls, data: dict[str, Any]) -> Experiment:
        return cls(id=data["id"], env=data["env"], mode=data["mode"], champion=int(data["champion"]),
                   challenger=int(data["challenger"]), share=data.get("share"), key=data.get("key"),
                   plan=_plan(data.get("plan") or {}), started=data["started"], status=data["status"],
                   looks=tuple(data.get("looks") or ()), ended=data.get("ended"), result=data.get("result"),
                   extra={k: v for k, v in data.items() if k not in cls._KNOWN},
                   plan_extra={k: v for k, v in (data.get("plan") or {}).items() if k not in _PLAN_KEYS})

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "env": self.env, "mode": self.mode, "champion": self.champion,
                                "challenger": self.challenger, "share": self.share, "key": self.key,
                                "plan": self.stored_plan, "started": self.started, "status": self.status,
                                "looks": list(self.looks)}
        data.update({k: v for k, v in (("ended", self.ended), ("result", self.result)) if v is not None})
        return {**data, **self.extra}

    @property
    def stored_plan(self) -> dict[str, Any]:
        """The plan as it is stored (and reported): every setting, then the keys of newer writers."""
        return {**asdict(self.plan), **self.plan_extra}

    @property
    def outcome(self) -> str:
        """The decision that ended it, else its status."""
        return (self.result or {}).get("decision") or self.status


_PLAN_KEYS = frozenset(f.name for f in fields(ExperimentSection))
_GUARDRAIL_KEYS = frozenset(f.name for f in fields(ExperimentGuardrails))


def _plan(stored: dict[str, Any]) -> ExperimentSection:
    """A stored plan as the config section it was made from; a setting it lacks takes the config's default."""
    settings = {k: v for k, v in stored.items() if k in _PLAN_KEYS and k != "guardrails"}
    limits = {k: v for k, v in (stored.get("guardrails") or {}).items() if k in _GUARDRAIL_KEYS}
    return ExperimentSection(**settings, guardrails=ExperimentGuardrails(**limits))


# The histories a record keeps, by the key they are stored under.
_HISTORY: dict[str, type[Deployment] | type[Experiment]] = {"deployments": Deployment, "experiments": Experiment}


def append_entry(record: dict[str, Any], entry: Deployment | Experiment) -> None:
    """Add ``entry`` to its history in the stored ``record`` (a change for the registry's ``update``)."""
    record.setdefault(_history_key(entry), []).append(entry.to_dict())


def change_entry(record: dict[str, Any], entry: Deployment | Experiment, **changes: Any) -> None:
    """Apply ``changes`` (field values) to the stored entry with ``entry``'s id, as it is stored now
    (a change for the registry's ``update``, which runs it under the registry's lock)."""
    key = _history_key(entry)
    stored = record.get(key) or []
    for i, item in enumerate(stored):
        if item.get("id") == entry.id:
            stored[i] = replace(_HISTORY[key].from_dict(item), **changes).to_dict()


def _history_key(entry: Deployment | Experiment) -> str:
    return next(key for key, kind in _HISTORY.items() if isinstance(entry, kind))


@dataclass(frozen=True)
class DataFile:
    """A data file a version was trained or evaluated on, as its lineage recorded it."""

    path: str | None
    sha256: str | None
    rows: int | None
    split: dict[str, Any] | None = None  # a seeded split of the training file: fraction, seed, part
    row_identity: dict[str, Any] | None = None  # training rows: how they were fingerprinted (scheme, columns, file)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DataFile:
        return cls(path=data.get("path"), sha256=data.get("sha256"), rows=data.get("rows"), split=data.get("split"),
                   row_identity=data.get("row_identity"))

    def to_dict(self) -> dict[str, Any]:
        """The stored form: the fields that are set, in the order training writes them."""
        fields = (("path", self.path), ("sha256", self.sha256), ("rows", self.rows), ("split", self.split),
                  ("row_identity", self.row_identity))
        return {k: v for k, v in fields if v is not None}


@dataclass(frozen=True)
class CvScore:
    """A metric's cross-validation result: mean and standard deviation over the folds."""

    mean: float | None
    std: float | None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CvScore:
        return cls(mean=data.get("mean"), std=data.get("std"))


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
    git_commit: str | None
    record: dict[str, Any] = field(repr=False, compare=False)
    project: str | None = None
    target: str | None = None  # the label column
    params: dict[str, Any] = field(default_factory=dict)  # the estimator's parameters as fitted
    schema_sha256: str | None = None
    data: dict[str, DataFile] = field(default_factory=dict)  # train, holdout: the lineage of each data file
    git_dirty: bool = False  # the work tree had uncommitted changes
    git_branch: str | None = None
    ci_url: str | None = None  # the Jenkins build that trained it
    cv: dict[str, CvScore] = field(default_factory=dict)
    libraries: dict[str, str] = field(default_factory=dict)  # name -> version at training

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelVersion:
        record = upgrade(dict(data))
        estimator = record.get("estimator")
        return cls(version=int(record["version"]), created=record.get("created"), task=record.get("task"),
                   estimator=estimator.get("class") if isinstance(estimator, dict) else estimator,
                   metrics=dict(record.get("metrics") or {}), artifacts=dict(record.get("artifacts") or {}),
                   features=tuple(record.get("features") or ()), schema=record.get("schema"),
                   estimator_configured=estimator.get("configured") if isinstance(estimator, dict) else None,
                   git_commit=(record.get("git") or {}).get("commit"), record=record,
                   project=record.get("project"), target=record.get("target"),
                   params=dict(estimator.get("params") or {}) if isinstance(estimator, dict) else {},
                   schema_sha256=record.get("schema_sha256"),
                   data={name: DataFile.from_dict(info) for name, info in (record.get("data") or {}).items()},
                   git_dirty=bool((record.get("git") or {}).get("dirty")),
                   git_branch=(record.get("git") or {}).get("branch"), ci_url=(record.get("ci") or {}).get("url"),
                   cv={name: CvScore.from_dict(score) for name, score in (record.get("cv") or {}).items()},
                   libraries=dict(record.get("libraries") or {}))

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

    @property
    def readable_deployments(self) -> tuple[Deployment, ...]:
        """The deployments that read typed, skipping an entry another tool wrote in part: for readers that
        must not stop on one (the nightly monitor), where ``deployments`` refuses it."""
        readable = []
        for entry in self.record.get("deployments") or ():
            try:
                readable.append(Deployment.from_dict(entry))
            except IntegrityError:
                continue
        return tuple(readable)

    @property
    def stored_deployments(self) -> tuple[dict[str, Any], ...]:
        """The deployment entries as stored, for display (``registry show`` prints each as JSON): an entry
        another tool wrote in part is shown as it is, where ``deployments`` refuses it."""
        return tuple(dict(d) for d in self.record.get("deployments") or ())

    @property
    def experiments(self) -> tuple[Experiment, ...]:
        """The experiments this version was the challenger of, oldest first."""
        return tuple(Experiment.from_dict(e) for e in self.record.get("experiments") or ())

    def artifact_sha256(self, name: str) -> str | None:
        """The sha256 recorded for artifact ``name`` at registration, None when there is no such artifact."""
        return (self.artifacts.get(name) or {}).get("sha256")

    @property
    def train(self) -> DataFile:
        """The training data's lineage (every field None when the record names none)."""
        return self.data.get("train") or DataFile(path=None, sha256=None, rows=None)

    @property
    def train_row_identity(self) -> dict[str, Any] | None:
        """How the training rows were fingerprinted (scheme, columns, file), None for older records."""
        return self.train.row_identity

    def active_deployment(self, env: str) -> Deployment | None:
        active = [d for d in self.deployments if d.env == env and d.status == "active"]
        return active[-1] if active else None
