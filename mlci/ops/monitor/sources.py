"""Where ``mlci monitor`` gets its rows: the model version to monitor and its schema, the reference data
(the version's training data, sha256 checked against the lineage, or a configured file), the current data
(files, globs allowed, or the model server's prediction logs over a time window), and labels joined to
logged predictions from a feedback file.

Files are read as Arrow record batches typed by the schema; prediction logs become pandas frames
(pandas is imported only there).
"""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import yaml

from mlci.core import drift as rules
from mlci.core.config import ColumnDrift, MonitorSection, Project
from mlci.core.dataschema import DataSchema, load_schema
from mlci.core.records import ModelVersion
from mlci.core.spec import build
from mlci.core.yamlsrc import load_yaml_text
from mlci.errors import ConfigError, DataError, IntegrityError, NotFound, ServiceError
from mlci.ops.model.lineage import sha256_file

if TYPE_CHECKING:
    import pandas as pd

CATEGORICAL_TYPES = ("category", "boolean", "string")


@dataclass
class Source:
    """Where rows come from: data files, or prediction-log files filtered to a time window."""

    label: str
    files: list[Path]
    logs_since: datetime | None = None
    skipped_lines: int = 0

    @property
    def is_log(self) -> bool:
        return self.logs_since is not None


def deployed_version(project: Project, ref: str | None) -> ModelVersion | None:
    """The version to monitor: ``ref``, else the ``production`` alias, else the newest deployment,
    else ``latest``; None when the registry holds no version at all."""
    from mlci.ops.model.registry import open_registry

    registry = open_registry(project)
    if ref:
        return registry.get_version(ref)
    versions = registry.versions()
    if not versions:
        return None
    production = registry.alias_of("production")
    if production is not None:
        return registry.get_version(production)
    deployed = [v for v in map(ModelVersion.from_dict, versions) if v.readable_deployments]
    return max(deployed, key=_last_deployed) if deployed else ModelVersion.from_dict(versions[-1])


def _last_deployed(version: ModelVersion) -> str:
    """The newest deployment time of a version (ISO text sorts in time order)."""
    return max(str(d.time) for d in version.readable_deployments)


def version_schema(project: Project, record: ModelVersion | None) -> DataSchema:
    """The schema the version was trained with, else the project's schema.yaml."""
    if record and isinstance(record.schema, dict):
        text = yaml.safe_dump(record.schema, sort_keys=False)
        return build(DataSchema, load_yaml_text(text, f"schema of model version {record.version}"))
    path = project.path(project.config.data.schema)
    if not path.exists():
        raise ConfigError(f"{path}: no such schema file", hint="run 'mlci schema infer' or set data.schema")
    return load_schema(path, display_name=os.path.relpath(path))


def column_settings(settings: MonitorSection, column: str) -> ColumnDrift:
    """The column's entry under ``monitor.columns``, else the defaults."""
    return settings.columns.get(column) or ColumnDrift()


def monitored_features(schema: DataSchema, record: ModelVersion | None, settings: MonitorSection) -> list[str]:
    names = list(record.features) if record and record.features else list(schema.features)
    unknown = [c for c in settings.columns if c not in schema.columns]
    if unknown:
        raise ConfigError(f"monitor.columns: '{unknown[0]}' is not a column of the schema",
                          hint="known columns: " + ", ".join(schema.columns))
    return [n for n in names if n in schema.columns and not column_settings(settings, n).ignore]


def column_kind(column) -> rules.Kind:
    """Categories, booleans, strings and columns with a fixed set of allowed values are categorical."""
    return "categorical" if column.type in CATEGORICAL_TYPES or column.values else "numeric"


def reference_source_for(project: Project, record: ModelVersion | None, explicit: str | None) -> Source:
    if explicit:
        return Source(explicit, expand_files(project, explicit))
    if record is None:
        raise NotFound("no model version to take the reference data from",
                       hint="train a model ('mlci train'), or give --reference FILE (or monitor.reference)")
    stored = stored_reference(project, record)
    if stored is not None:
        return stored
    train = record.train
    if not train.path:
        raise NotFound(f"model version {record.version} records no training data path",
                       hint="give --reference FILE (or monitor.reference)")
    path = project.path(train.path)
    if not path.is_file():
        raise DataError(f"{path}: the training data of model version {record.version} is missing",
                        hint="restore it, or give --reference FILE")
    if train.sha256 and sha256_file(path) != train.sha256:
        raise IntegrityError(f"{path}: sha256 differs from the one recorded by model version {record.version}",
                             hint="the training data changed since training; restore it or give --reference FILE")
    return Source(str(train.path), [path])


def stored_reference(project: Project, record: ModelVersion) -> Source | None:
    """The version's reference artifact from the registry (sha256 verified on read), as a file in the
    project's cache; None for versions registered before references were stored."""
    from mlci.core.atomic import atomic_write_bytes
    from mlci.ops.model.registry import open_registry, reference_name

    name = reference_name(record)
    if name is None:
        return None
    digest = record.artifact_sha256(name)
    if digest is None:  # what the registry's read_artifact answers for an artifact without a sha256
        raise NotFound(f"model version {record.version} has no artifact '{name}'")
    train_path = record.train.path
    file_name = Path(train_path or name).name  # the training file's own name, for reports
    path = project.path(".mlci/references") / f"v{record.version}-{digest[:16]}" / file_name
    if not (path.is_file() and sha256_file(path) == digest):
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, open_registry(project).read_artifact(record.version, name))
    return Source(f"{train_path or 'training data'} of model version {record.version} "
                  f"(from the registry)", [path])


def current_source_for(project: Project, explicit: str | None, window: str,
                       window_name: str = "monitor.window") -> Source:
    if explicit:
        return Source(explicit, expand_files(project, explicit))
    log_dir = project.path(project.config.serve.log_dir)
    since = datetime.now(UTC) - parse_window(window, window_name)
    cutoff = since.timestamp()
    files = sorted(p for p in log_dir.glob("predictions-*.jsonl") if p.stat().st_mtime >= cutoff)
    if not files:
        raise ServiceError(f"no prediction logs in {log_dir} since {since:%Y-%m-%d %H:%M}Z",
                           hint="is the server logging (serve.log_dir)? or give --current FILE")
    return Source(f"prediction logs in {log_dir}", files, logs_since=since)


def expand_files(project: Project, pattern: str) -> list[Path]:
    """A file, or a glob relative to the project; DataError when nothing matches."""
    full = project.path(pattern)
    if glob.has_magic(pattern):
        files = sorted(Path(p) for p in glob.glob(str(full)) if Path(p).is_file())
        if not files:
            raise DataError(f"no files match '{pattern}'", hint="check the glob (relative to the project)")
        return files
    if not full.is_file():
        raise DataError(f"{full}: no such file", hint="check the path (relative paths start at the project)")
    return [full]


def parse_window(text: str, name: str = "monitor.window") -> timedelta:
    """``90m``, ``24h``, ``7d``, ``2w`` as a time span; ``name`` (where the text came from) is for the error."""
    units = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
    text = str(text).strip()
    if len(text) < 2 or text[-1] not in units or not text[:-1].isdigit() or int(text[:-1]) == 0:
        raise ConfigError(f"{name}: '{text}' is not a time span", hint="e.g. 24h, 7d, 90m")
    return timedelta(**{units[text[-1]]: int(text[:-1])})


def batches(source: Source, project: Project, schema: DataSchema, columns: list[str]
            ) -> Iterator[pa.RecordBatch | pd.DataFrame]:
    """Arrow record batches of files, typed by the schema; DataFrames of prediction logs."""
    from mlci.ml.tabular import iter_arrow_batches

    batch_rows = project.config.data.batch_rows
    if source.is_log:
        yield from log_batches(source, schema, batch_rows)
        return
    for path in source.files:
        for item in iter_arrow_batches(path, csv=project.config.data.csv, schema=schema, batch_rows=batch_rows,
                                       columns=columns):
            yield item.batch


def log_batches(source: Source, schema: DataSchema, batch_rows: int) -> Iterator[pd.DataFrame]:
    """Prediction-log lines in the window as typed frames (features, prediction, ids)."""
    if source.logs_since is None:
        raise ValueError(f"{source.label}: not a prediction-log source")
    since = source.logs_since.strftime("%Y-%m-%dT%H:%M:%S")
    rows: list[dict[str, Any]] = []
    for path in source.files:
        with path.open("r", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                entry = _log_entry(line)
                if entry is None:
                    source.skipped_lines += bool(line.strip())
                    continue
                if str(entry.get("ts", ""))[:19] < since or entry.get("role") == "challenger":
                    continue  # a live experiment's challenger rows: the monitor watches the served model
                rows.append(entry)
                if len(rows) >= batch_rows:
                    yield log_frame(rows, schema)
                    rows = []
    if rows:
        yield log_frame(rows, schema)


def _log_entry(line: str) -> dict[str, Any] | None:
    try:
        entry = json.loads(line)
    except ValueError:
        return None  # a torn last line of a file being written
    return entry if isinstance(entry, dict) and isinstance(entry.get("features"), dict) else None


def log_frame(entries: list[dict[str, Any]], schema: DataSchema) -> pd.DataFrame:
    import pandas as pd

    frame = pd.DataFrame([e["features"] for e in entries])
    for name, column in schema.columns.items():
        if name in frame.columns:
            frame[name] = coerce(frame[name], column.type)
    frame["__request_id"] = [str(e.get("request_id", "")) for e in entries]
    frame["__row"] = [e.get("row", 0) for e in entries]
    frame["__prediction"] = [e.get("prediction") for e in entries]
    frame["__probabilities"] = [e.get("probabilities") for e in entries]
    return frame


def coerce(series: pd.Series, column_type: str) -> pd.Series:
    """JSON values as the schema's type; values that do not fit become missing and are counted out of schema."""
    import pandas as pd

    if column_type in ("integer", "float"):
        return pd.to_numeric(series, errors="coerce")
    if column_type == "datetime":
        return pd.to_datetime(series, errors="coerce", utc=True).dt.tz_localize(None)
    if column_type == "boolean":
        return series.map(lambda v: v if isinstance(v, bool) else None).astype("boolean")
    return series.astype(object)


def join_labels(project: Project, labels_file: str, source: Source, schema: DataSchema) -> np.ndarray:
    """Labels for logged rows from a feedback file with request_id (and row) and the target column."""
    import pandas as pd

    from mlci.ml.tabular import read_table

    target = schema.target
    feedback = pd.concat([read_table(p, csv=project.config.data.csv) for p in expand_files(project, labels_file)])
    if "request_id" not in feedback.columns or target not in feedback.columns:
        raise DataError(f"{labels_file}: a feedback file needs the columns request_id and {target}",
                        hint="optionally also row, for requests with several rows")
    keys = ["request_id", "row"] if "row" in feedback.columns else ["request_id"]
    feedback["request_id"] = feedback["request_id"].astype(str)
    rereading = Source(source.label, source.files, source.logs_since)  # its own count of skipped lines
    logged = pd.concat([f[["__request_id", "__row"]] for f in log_batches(rereading, schema, 1_000_000)])
    logged.columns = ["request_id", "row"]
    joined = logged.merge(feedback.drop_duplicates(keys)[keys + [target]], on=keys, how="left")
    return joined[target].to_numpy()
