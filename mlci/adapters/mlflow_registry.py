"""The MLflow Model Registry backend of :class:`mlci.adapters.registry_api.Registry`.

How a version maps onto MLflow:

- a version is a registered model version (same number); its run (experiment ``mlci-<model>``) holds the
  parameters, the CV and holdout metrics, the lineage tags, the datasets as run inputs with their
  digests, and the artifacts;
- the model is logged as an MLflow sklearn-flavour model in skops format under ``model/`` (``MLmodel``,
  ``model.skops``), so ``mlflow.sklearn.load_model("models:/<name>/<N>")`` works for MLflow users; mlci
  itself only ever reads the bytes of ``model/model.skops`` and checks them against the sha256 recorded
  at registration as the version tag ``mlci.sha256.model.skops`` (the tracking database, not the
  artifact store, is the source of truth), then loads them with its skops allow-list;
- the mlci record (lineage, metrics, deployments, image) is a content-addressed run artifact
  ``mlci/records/<sha256>.json``; the version tag ``mlci.record`` names the current one. That tag is set
  last: a version without it is half-registered and never listed, and every record change is switched in
  by one tag write;
- aliases are MLflow aliases; their history (for rollback) is the registered-model tag
  ``mlci.alias_history`` (JSON).

The client is imported lazily. Its HTTP timeout and retries are bounded here (MLFLOW_HTTP_REQUEST_TIMEOUT,
MLFLOW_HTTP_REQUEST_MAX_RETRIES, unless the environment sets them); credentials come from MLflow's own
variables (MLFLOW_TRACKING_USERNAME/PASSWORD or MLFLOW_TRACKING_TOKEN) and never reach a message: URLs are
redacted. Every client error becomes a ServiceError (exit 3) naming the server, except "does not exist"
(NotFound, exit 2).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mlci.adapters.registry_api import ARTIFACT_NAME, LATEST, unknown_reference, version_number
from mlci.core.records import ModelVersion, stamp, upgrade
from mlci.core.redact import redact_url as redact
from mlci.core.redact import scrub_text
from mlci.errors import ConfigError, IntegrityError, MlciError, NotFound, ServiceError

MODEL_DIR = "model"          # the MLflow model (MLmodel + model.skops) inside the run's artifacts
MLCI_DIR = "mlci"            # every other mlci artifact
RECORD_TAG = "mlci.record"   # set last: the version is complete
SHA_TAG = "mlci.sha256."     # + artifact name
HISTORY_TAG = "mlci.alias_history"
_ALIAS_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,62}$")
_HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_TIMEOUT": "20", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
                  "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1", "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.2"}
# The client prints "View run ... at: <url>" to stdout when a run ends; stdout is for mlci's results.
_QUIET = {"MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true"}
_PARAM_MAX = 500


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def redact_text(text: str, uri: str) -> str:
    """``text`` without secrets: the tracking URI's user info and query, MLflow's credential variables,
    and everything ``core.redact.scrub_text`` masks in any message."""
    parts = urllib.parse.urlsplit(uri or "")
    secrets = {parts.password, parts.query, parts.username, os.environ.get("MLFLOW_TRACKING_PASSWORD"),
               os.environ.get("MLFLOW_TRACKING_TOKEN")}
    text = text.replace(uri, redact(uri)) if uri else text
    return scrub_text(text, {s for s in secrets if s and len(s) >= 3})


def reason(text: str) -> str:
    """The cause in a few words, from the client's long message (which repeats URLs and retry counts)."""
    causes = [(r"ConnectionRefused|NewConnectionError|Connection refused|Failed to establish", "connection refused"),
              (r"[Tt]imed? ?out|ReadTimeout|ConnectTimeout", "timed out"),
              (r"Name or service not known|nodename nor servname|getaddrinfo", "unknown host"),
              (r"\b(401|Unauthorized|UNAUTHENTICATED)\b", "authentication failed (HTTP 401)"),
              (r"\b(403|Forbidden|PERMISSION_DENIED)\b", "permission denied (HTTP 403)")]
    for pattern, words in causes:
        if re.search(pattern, text):
            return words
    status = re.search(r"too many (\d{3}) error responses|status code (\d{3})|HTTP (\d{3})|\b(5\d\d)\b", text)
    if status:
        return f"the server answered HTTP {next(g for g in status.groups() if g)}"
    return text[:200]


class MlflowRegistry:
    """The versions of registered model ``model_name`` on the tracking server ``tracking_uri``."""

    def __init__(self, tracking_uri: str, model_name: str) -> None:
        self.tracking_uri = tracking_uri
        self.model_name = model_name
        self.experiment_name = f"mlci-{model_name}"
        self._client_obj: Any = None
        self._records: dict[str, dict[str, Any]] = {}  # record sha256 -> record

    def describe(self) -> str:
        return f"MLflow {redact(self.tracking_uri)} (model {self.model_name})"

    # -- reading -------------------------------------------------------------------------------

    def versions(self) -> list[dict[str, Any]]:
        return [self._record_of(mv) for mv in self._complete_versions()]

    def get(self, ref: str | int) -> dict[str, Any]:
        return self._record_of(self._model_version(self.resolve(ref)))

    def get_version(self, ref: str | int) -> ModelVersion:
        return ModelVersion.from_dict(self.get(ref))

    def resolve(self, ref: str | int) -> int:
        text = str(ref).strip()
        number = version_number(text)
        if number is not None:
            self._model_version(number)
            return number
        if text == LATEST:
            complete = self._complete_versions()
            if not complete:
                raise NotFound(f"the registry {self.describe()} has no model versions yet", hint="run 'mlci train'")
            return int(complete[-1].version)
        holder = self.alias_of(text)
        if holder is None:
            raise unknown_reference(text, self.aliases())
        return holder

    def aliases(self) -> dict[str, dict[str, Any]]:
        model = self._registered_model()
        if model is None:
            return {}
        history = _history(model)
        return {name: {"version": int(version), "history": history.get(name, {}).get("history", []),
                       "updated": history.get(name, {}).get("updated")}
                for name, version in sorted(_aliases_dict(model).items())}

    def alias_of(self, name: str) -> int | None:
        entry = self.aliases().get(name)
        return int(entry["version"]) if entry else None

    def read_artifact(self, version: int, name: str) -> bytes:
        mv = self._model_version(version)
        expected = (mv.tags or {}).get(SHA_TAG + name)
        if expected is None:
            raise NotFound(f"model version {version} has no artifact '{name}'")
        data = self._download(mv.run_id, _artifact_path(name))
        if sha256_bytes(data) != expected:
            raise IntegrityError(f"{self.describe()} version {version}: artifact {name} does not match the sha256 "
                                 "recorded at registration", hint="the artifact store was changed after "
                                 "registration; retrain, or restore the artifact")
        return data

    # -- writing -------------------------------------------------------------------------------

    def register(self, record: dict[str, Any], artifacts: dict[str, bytes]) -> dict[str, Any]:
        """Log a run with everything, then create the model version, then mark it complete (last)."""
        client = self._client()
        self._ensure_registered_model()
        experiment_id = self._experiment_id()
        record = {**record, "created": record.get("created") or _now(), "artifacts": {}}
        with self._calls("start a training run"):
            run = client.create_run(experiment_id, run_name=f"{self.model_name}-train",
                                    tags=_run_tags(record))
        run_id = run.info.run_id
        number: int | None = None
        try:
            self._log_run(run_id, record)
            for name, data in artifacts.items():
                self._upload(run_id, name, data, record)
            with self._calls("create the model version"):
                mv = client.create_model_version(self.model_name, f"runs:/{run_id}/{MODEL_DIR}", run_id=run_id,
                                                 tags={SHA_TAG + n: i["sha256"]
                                                       for n, i in record["artifacts"].items()})
            number = int(mv.version)
            record["version"] = number
            self._write_record(number, run_id, record)
            with self._calls("finish the training run"):
                client.set_terminated(run_id, "FINISHED")
        except BaseException:
            self._abandon(run_id, number)
            raise
        return record

    def update(self, version: int, change: Callable[[dict[str, Any]], None],
               artifacts: dict[str, bytes] | None = None) -> dict[str, Any]:
        mv = self._model_version(version)
        record = self._record_of(mv)
        for name, data in (artifacts or {}).items():
            self._upload(mv.run_id, name, data, record)
            with self._calls("record an artifact's sha256"):
                self._client().set_model_version_tag(self.model_name, str(version), SHA_TAG + name,
                                                     record["artifacts"][name]["sha256"])
        before = json.dumps(record.get("metrics") or {}, sort_keys=True)
        change(record)
        if json.dumps(record.get("metrics") or {}, sort_keys=True) != before:
            self._log_metrics(mv.run_id, {f"holdout_{k}": v for k, v in (record.get("metrics") or {}).items()})
        self._write_record(version, mv.run_id, record)
        return record

    def set_alias(self, name: str, version: int) -> dict[str, Any]:
        if not _ALIAS_NAME.match(name) or re.fullmatch(r"v\d+|latest", name):
            raise ConfigError(f"'{name}' is not a valid alias name",
                              hint="a letter, then letters, digits, '_' or '-' (not 'latest' or 'v<N>')")
        self._model_version(version)
        model = self._registered_model()
        history = _history(model) if model else {}
        current = _aliases_dict(model).get(name) if model else None
        entry = history.get(name, {"history": []})
        if current is not None and int(current) != version:
            entry["history"] = list(entry.get("history", [])) + [int(current)]
        entry["updated"] = _now()
        history[name] = entry
        self._set_history(history)
        with self._calls(f"set alias {name}"):
            self._client().set_registered_model_alias(self.model_name, name, str(version))
        return {"version": version, "history": entry["history"], "updated": entry["updated"]}

    def rollback_alias(self, name: str) -> tuple[int, int]:
        model = self._registered_model()
        current = _aliases_dict(model).get(name) if model else None
        if current is None:
            raise NotFound(f"alias '{name}' does not exist")
        history = _history(model)
        older = list(history.get(name, {}).get("history", []))
        if not older:
            raise NotFound(f"alias '{name}' has no previous version to roll back to")
        previous = int(older[-1])
        history[name] = {"history": older[:-1], "updated": _now()}
        with self._calls(f"set alias {name}"):
            self._client().set_registered_model_alias(self.model_name, name, str(previous))
        self._set_history(history)
        return int(current), previous

    # -- the client, and its errors -----------------------------------------------------------------

    def _client(self) -> Any:
        if self._client_obj is None:
            for key, value in _HTTP_DEFAULTS.items():
                os.environ.setdefault(key, value)
            os.environ.update(_QUIET)
            try:
                from mlflow import MlflowClient
            except ImportError:
                raise ConfigError("registry.backend is mlflow but the MLflow client is not installed",
                                  hint="pip install 'mlci[mlflow]'") from None
            self._client_obj = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
        return self._client_obj

    @contextmanager
    def _calls(self, action: str) -> Iterator[None]:
        """Map the client's errors: "does not exist" -> NotFound, anything else -> ServiceError (exit 3)."""
        try:
            yield
        except MlciError:
            raise
        except Exception as exc:  # the client raises MlflowException, requests' and OS errors
            code = getattr(exc, "error_code", "")
            message = reason(redact_text(_first_line(exc), self.tracking_uri))
            if code == "RESOURCE_DOES_NOT_EXIST":
                raise NotFound(f"{self.describe()}: {message}") from None
            hint = ("check MLFLOW_TRACKING_USERNAME/PASSWORD or MLFLOW_TRACKING_TOKEN"
                    if code in ("UNAUTHENTICATED", "PERMISSION_DENIED") or "HTTP 40" in message
                    else "is the MLflow server running and reachable? (registry.tracking_uri)")
            raise ServiceError(f"MLflow server {redact(self.tracking_uri)}: cannot {action}: {message}",
                               hint=hint) from None

    # -- internals -------------------------------------------------------------------------------

    def _registered_model(self) -> Any | None:
        try:
            with self._calls("read the registered model"):
                return self._client().get_registered_model(self.model_name)
        except NotFound:
            return None

    def _ensure_registered_model(self) -> None:
        if self._registered_model() is not None:
            return
        try:
            with self._calls("create the registered model"):
                self._client().create_registered_model(self.model_name, description="registered by mlci")
        except ServiceError:
            if self._registered_model() is None:  # not a lost race with a concurrent training
                raise

    def _experiment_id(self) -> str:
        client = self._client()
        with self._calls("read the experiment"):
            experiment = client.get_experiment_by_name(self.experiment_name)
        if experiment is not None:
            return experiment.experiment_id
        try:
            with self._calls("create the experiment"):
                return client.create_experiment(self.experiment_name)
        except ServiceError:
            with self._calls("read the experiment"):
                experiment = client.get_experiment_by_name(self.experiment_name)
            if experiment is None:
                raise
            return experiment.experiment_id

    def _all_versions(self) -> list[Any]:
        client = self._client()
        found: list[Any] = []
        token = None
        with self._calls("list the model versions"):
            while True:
                page = client.search_model_versions(f"name = '{self.model_name}'", page_token=token)
                found.extend(page)
                token = page.token
                if not token:
                    break
        return sorted(found, key=lambda mv: int(mv.version))

    def _complete_versions(self) -> list[Any]:
        return [mv for mv in self._all_versions() if (mv.tags or {}).get(RECORD_TAG)]

    def _model_version(self, number: int) -> Any:
        try:
            with self._calls(f"read model version {number}"):
                mv = self._client().get_model_version(self.model_name, str(int(number)))
        except NotFound:
            mv = None
        if mv is None or not (mv.tags or {}).get(RECORD_TAG):
            raise NotFound(f"model version {number} does not exist in {self.describe()}",
                           hint="see 'mlci registry list'")
        return mv

    def _record_of(self, mv: Any) -> dict[str, Any]:
        digest = mv.tags[RECORD_TAG]
        if digest not in self._records:
            data = self._download(mv.run_id, f"{MLCI_DIR}/records/{digest}.json")
            if sha256_bytes(data) != digest:
                raise IntegrityError(f"{self.describe()} version {mv.version}: its record does not match the "
                                     "sha256 recorded for it", hint="the artifact store was changed; restore it")
            self._records[digest] = json.loads(data)
        return upgrade(json.loads(json.dumps(self._records[digest])))

    def _write_record(self, number: int, run_id: str, record: dict[str, Any]) -> None:
        stamp(record)
        data = json.dumps(record, sort_keys=True, indent=1).encode("utf-8")
        digest = sha256_bytes(data)
        self._put(run_id, f"{MLCI_DIR}/records", f"{digest}.json", data)
        client = self._client()
        with self._calls(f"tag model version {number}"):
            for key, value in _version_tags(record).items():
                client.set_model_version_tag(self.model_name, str(number), key, value)
            client.set_model_version_tag(self.model_name, str(number), RECORD_TAG, digest)
        self._records[digest] = json.loads(data)

    def _upload(self, run_id: str, name: str, data: bytes, record: dict[str, Any]) -> None:
        if not ARTIFACT_NAME.match(name):
            raise IntegrityError(f"refusing artifact name {name!r}: not a plain file name")
        if name == _model_file():
            self._put_model(run_id, data, record)
        else:
            self._put(run_id, MLCI_DIR, name, data)
        record.setdefault("artifacts", {})[name] = {"sha256": sha256_bytes(data), "bytes": len(data)}

    def _put(self, run_id: str, directory: str, name: str, data: bytes) -> None:
        with tempfile.TemporaryDirectory(prefix="mlci-mlflow-") as tmp:
            path = Path(tmp) / name
            path.write_bytes(data)
            with self._calls(f"upload {directory}/{name}"):
                self._client().log_artifact(run_id, str(path), artifact_path=directory)

    def _put_model(self, run_id: str, data: bytes, record: dict[str, Any]) -> None:
        """The skops bytes in MLflow's sklearn-flavour layout (what ``mlflow.sklearn.log_model(...,
        serialization_format="skops")`` writes), so MLflow users load exactly the bytes mlci verified."""
        with tempfile.TemporaryDirectory(prefix="mlci-mlflow-") as tmp:
            directory = Path(tmp) / MODEL_DIR
            directory.mkdir()
            (directory / _model_file()).write_bytes(data)
            for name, text in mlflow_model_files(record, run_id, data).items():
                (directory / name).write_text(text, encoding="utf-8")
            with self._calls("upload the model"):
                self._client().log_artifacts(run_id, str(directory), artifact_path=MODEL_DIR)

    def _download(self, run_id: str, path: str) -> bytes:
        from mlflow.artifacts import download_artifacts

        with tempfile.TemporaryDirectory(prefix="mlci-mlflow-") as tmp:
            with self._calls(f"download {path}"):
                self._client()  # sets the bounded HTTP settings before the first request
                local = download_artifacts(run_id=run_id, artifact_path=path, dst_path=tmp,
                                           tracking_uri=self.tracking_uri)
            return Path(local).read_bytes()

    def _log_run(self, run_id: str, record: dict[str, Any]) -> None:
        from mlflow.entities import Dataset, DatasetInput, InputTag, Param

        params = [Param(k, v) for k, v in _params(record).items()]
        cv = {f"cv_{name}_{stat}": value for name, entry in (record.get("cv") or {}).items()
              for stat, value in entry.items() if isinstance(value, (int, float))}
        inputs = [DatasetInput(Dataset(name=f"{self.model_name}-{part}", digest=str(info["sha256"])[:32],
                                       source_type="local", source=json.dumps({"uri": str(info.get("path"))}),
                                       profile=json.dumps({"rows": info.get("rows"), "sha256": info["sha256"]})),
                               tags=[InputTag("mlflow.data.context", "training" if part == "train" else "eval")])
                  for part, info in (record.get("data") or {}).items() if isinstance(info, dict) and info.get("sha256")]
        with self._calls("log the training run"):
            self._client().log_batch(run_id, params=params)
        if inputs:
            self._log_inputs(run_id, inputs)
        self._log_metrics(run_id, cv)

    def _log_inputs(self, run_id: str, inputs: list[Any]) -> None:
        """The server checks for an existing dataset, then inserts it: concurrent trainings on the same data
        can both insert and one fails on the unique key (mlflow/store/tracking/sqlalchemy_store.py
        log_inputs). A second attempt finds the dataset the other one stored."""
        for attempt in range(3):
            try:
                with self._calls("log the training datasets"):
                    self._client().log_inputs(run_id, datasets=inputs)
                return
            except ServiceError:
                if attempt == 2:
                    raise
                time.sleep(0.2 * (attempt + 1))

    def _log_metrics(self, run_id: str, values: dict[str, Any]) -> None:
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        metrics = [Metric(re.sub(r"[^A-Za-z0-9_./ -]", "_", k), float(v), stamp, 0)
                   for k, v in values.items() if isinstance(v, (int, float)) and v == v]
        if metrics:
            with self._calls("log metrics"):
                self._client().log_batch(run_id, metrics=metrics)

    def _set_history(self, history: dict[str, Any]) -> None:
        with self._calls("record the alias history"):
            self._client().set_registered_model_tag(self.model_name, HISTORY_TAG, json.dumps(history, sort_keys=True))

    def _abandon(self, run_id: str, number: int | None) -> None:
        """Best effort after a failed registration: the version was never marked complete, so it is not
        listed either way; deleting it and failing the run keeps the MLflow UI clean too."""
        client = self._client_obj
        try:
            if number is not None:
                client.delete_model_version(self.model_name, str(number))
            client.set_terminated(run_id, "FAILED")
        except Exception:  # the server may be the reason we are here
            pass


def mlflow_model_files(record: dict[str, Any], run_id: str, model: bytes) -> dict[str, str]:
    """MLmodel, requirements and environment files of the sklearn flavour in skops format, as
    ``mlflow.sklearn.save_model(..., serialization_format="skops")`` writes them (mlflow/sklearn/__init__.py).
    ``skops_trusted_types`` lists the model's non-default types, which mlci's own allow-list already
    accepted at training time: MLflow's loader then needs no further trust decision."""
    import yaml
    from skops.io import get_untrusted_types

    libraries = record.get("libraries") or {}
    python = libraries.get("python") or ".".join(map(str, sys.version_info[:3]))
    sklearn = libraries.get("scikit-learn", "")
    requirements = [f"{name}=={libraries[name]}" for name in ("scikit-learn", "skops", "numpy", "scipy", "pandas")
                    if libraries.get(name)]
    mlmodel = {
        "artifact_path": MODEL_DIR,
        "flavors": {
            "python_function": {"env": {"conda": "conda.yaml", "virtualenv": "python_env.yaml"},
                                "loader_module": "mlflow.sklearn", "model_path": _model_file(),
                                "predict_fn": "predict", "python_version": python},
            "sklearn": {"code": None, "pickled_model": _model_file(), "serialization_format": "skops",
                        "sklearn_version": sklearn, "skops_trusted_types": get_untrusted_types(data=model)},
        },
        "run_id": run_id,
        "utc_time_created": record.get("created"),
        "mlflow_version": _mlflow_version(),
        "metadata": {"mlci_version": str(record.get("version", "")), "mlci_features": record.get("features")},
    }
    return {
        "MLmodel": yaml.safe_dump(mlmodel, sort_keys=False),
        "requirements.txt": "\n".join(["mlflow", *requirements]) + "\n",
        "python_env.yaml": yaml.safe_dump({"python": python, "build_dependencies": ["pip"],
                                           "dependencies": ["-r requirements.txt"]}, sort_keys=False),
        "conda.yaml": yaml.safe_dump({"name": "mlflow-env", "channels": ["conda-forge"],
                                      "dependencies": [f"python={python}", "pip",
                                                       {"pip": ["mlflow", *requirements]}]}, sort_keys=False),
    }


def _model_file() -> str:
    from mlci.adapters.model_files import MODEL_FILE

    return MODEL_FILE


def _artifact_path(name: str) -> str:
    if not ARTIFACT_NAME.match(name):
        raise IntegrityError(f"refusing artifact name {name!r}: not a plain file name")
    return f"{MODEL_DIR}/{name}" if name == _model_file() else f"{MLCI_DIR}/{name}"


def _mlflow_version() -> str:
    from importlib import metadata

    for dist in ("mlflow", "mlflow-skinny"):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return ""


def _aliases_dict(model: Any) -> dict[str, str]:
    aliases = getattr(model, "aliases", None) or {}
    if isinstance(aliases, dict):
        return {str(k): str(v) for k, v in aliases.items()}
    return {a.alias: str(a.version) for a in aliases}


def _history(model: Any) -> dict[str, Any]:
    text = (getattr(model, "tags", None) or {}).get(HISTORY_TAG)
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        raise IntegrityError(f"registered model tag {HISTORY_TAG} is not JSON",
                             hint="fix or delete the tag in MLflow") from None
    return value if isinstance(value, dict) else {}


def _params(record: dict[str, Any]) -> dict[str, str]:
    estimator = record.get("estimator") or {}
    params = {"estimator": str(estimator.get("configured") or estimator.get("class")),
              "task": str(record.get("task")), "seed": str(record.get("seed"))}
    for key, value in (estimator.get("params") or {}).items():
        params[f"model.{key}"] = str(value)
    for step in estimator.get("steps") or []:
        for key, value in (step.get("params") or {}).items():
            params[f"{step.get('name')}.{key}"] = str(value)
    return {re.sub(r"[^A-Za-z0-9_./ -]", "_", k)[:250]: v[:_PARAM_MAX] for k, v in params.items()}


def _run_tags(record: dict[str, Any]) -> dict[str, str]:
    tags = {"mlci.project": str(record.get("project")), "mlci.schema.sha256": str(record.get("schema_sha256"))}
    for part, info in (record.get("data") or {}).items():
        if isinstance(info, dict) and info.get("sha256"):
            tags[f"mlci.data.{part}.sha256"] = str(info["sha256"])
    git = record.get("git") or {}
    if git.get("commit"):
        tags["mlflow.source.git.commit"] = str(git["commit"])
        tags["mlci.git.dirty"] = str(bool(git.get("dirty"))).lower()
    ci = record.get("ci") or {}
    if ci.get("url"):
        tags["mlci.ci.url"] = redact(str(ci["url"]))
    for name, version in (record.get("libraries") or {}).items():
        tags[f"mlci.library.{name}"] = str(version)
    return tags


def _version_tags(record: dict[str, Any]) -> dict[str, str]:
    """Key fields of the record as version tags, for people browsing MLflow."""
    tags = {k: v for k, v in _run_tags(record).items() if not k.startswith("mlci.library.")}
    image = record.get("image") or {}
    if image.get("digest"):
        tags["mlci.image.digest"] = str(image["digest"])
    if image.get("reference"):
        tags["mlci.image.reference"] = str(image["reference"])
    active = sorted({str(d.get("env")) for d in record.get("deployments") or []
                     if isinstance(d, dict) and d.get("status") == "active"})
    if active:
        tags["mlci.deployed.active"] = ",".join(active)
    for name, value in (record.get("metrics") or {}).items():
        if isinstance(value, (int, float)):
            tags[f"mlci.metric.{name}"] = repr(value)
    return tags


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "message", None) or exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line[:300]


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
