"""Profiling for ``mlci monitor``: one source streamed into a ``Profile`` of column sketches
(``mlci.ml.drift``), with the model version's outputs and the labels that performance needs.

Files stay Arrow record batches from reader to sketch; Parquet without a model to feed is read one
column at a time. The model's side lives here too: loading the version's model, predicting on file
batches, and taking logged predictions and probabilities from prediction logs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from mlci.core import drift as rules
from mlci.core.config import Project
from mlci.core.dataschema import DataSchema
from mlci.core.progress import Progress
from mlci.core.records import ModelVersion
from mlci.errors import DataError, NotFound
from mlci.ml import drift as stats
from mlci.ops.monitor.sources import Source, batches

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class Profile:
    """The sketches of one dataset, plus what performance needs."""

    columns: dict[str, stats.Sketch]
    rows: int = 0
    prediction: stats.Sketch | None = None
    labels: list[np.ndarray] = field(default_factory=list)
    predicted: list[np.ndarray] = field(default_factory=list)
    probabilities: list[np.ndarray] = field(default_factory=list)


def profile(source: Source, project: Project, schema: DataSchema, kinds: dict[str, rules.Kind], model: Any,
            record: ModelVersion | None, show_progress: bool) -> Profile:
    """Stream a source into sketches, out-of-schema counts, predictions and labels."""
    expected = _estimated_rows(source)
    capacity = project.config.monitor.sample_values
    result = Profile({name: stats.new_sketch(kind, expected or 0, capacity) for name, kind in kinds.items()})
    if model is None and _parquet_only(source):
        _profile_by_column(result, source, project, schema, expected, show_progress)
        return result
    target = schema.target
    wanted = list(kinds) + ([target] if target and target not in kinds else [])
    if model is not None and record is not None:  # a model is only loaded for a record
        wanted += [c for c in record.features if c not in wanted]
    with Progress(f"reading {source.label}", total=expected, enabled=show_progress, estimated=True) as bar:
        for batch in batches(source, project, schema, [c for c in wanted if c in schema.columns]):
            stats.add_batch(result.columns, batch)
            rows = len(batch)
            if isinstance(batch, pa.RecordBatch) and model is not None:
                from mlci.ml.tabular import arrow_to_pandas

                batch = arrow_to_pandas(batch, schema)
            predict_batch(result, batch, model, record, source.is_log)
            if target and target in _names(batch) and not source.is_log:
                result.labels.append(_column_array(batch, target))
            result.rows += rows
            bar.advance(rows)
    return result


def _parquet_only(source: Source) -> bool:
    from mlci.ml.tabular import file_kind

    return not source.is_log and all(file_kind(p) == "parquet" for p in source.files)


def _profile_by_column(result: Profile, source: Source, project: Project, schema: DataSchema,
                       expected: int | None, show_progress: bool) -> None:
    """Parquet stores each column apart: with no model to feed whole rows, reading one column at a
    time holds one decoded column in memory instead of a row group of every column (a whole file,
    for files written in one row group). Columns are read in parallel threads, one per core: Arrow
    decodes and NumPy counts without holding the GIL, and each column has its own sketch."""
    from mlci.ml.tabular import column_names, parquet_rows

    names = list(result.columns)
    total = expected * len(names) if expected and names else None
    with Progress(f"reading {source.label}", total=total, enabled=show_progress) as bar, \
            ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        for path in source.files:
            rows, present = parquet_rows(path), set(column_names(path))
            result.rows += rows
            # one column of one file in one batch, up to the sketch's capacity: a numeric sketch keeps
            # that array as it is instead of copying batches into its own
            column_batch = max(project.config.data.batch_rows, min(rows or 0, project.config.monitor.sample_values))
            text = _text_columns(path) if names else set()
            for name in names:
                if name not in present:
                    result.columns[name].missing += rows
            read = [pool.submit(_read_column, path, name, result.columns[name], schema, column_batch,
                                name in text) for name in names if name in present]
            for future in read:
                bar.advance(future.result())


def _read_column(path: Path, name: str, sketch: stats.Sketch, schema: DataSchema, batch_rows: int,
                 stored_as_text: bool) -> int:
    """One column of one Parquet file into its sketch; the rows read."""
    from mlci.ml.tabular import iter_arrow_batches

    rows = 0
    if isinstance(sketch, stats.CategoricalSketch) and stored_as_text \
            and schema.columns[name].type in ("category", "string"):
        for array in _dictionary_batches(path, name, batch_rows):
            sketch.add(array)
            rows += len(array)
        return rows
    for item in iter_arrow_batches(path, schema=schema, batch_rows=batch_rows, columns=[name]):
        stats.add_batch({name: sketch}, item.batch)
        rows += item.batch.num_rows
    return rows


def _text_columns(path: Path) -> set[str]:
    from mlci.ml.tabular.parquet_reader import parquet_file

    arrow = parquet_file(path).schema_arrow
    return {f.name for f in arrow if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)}


def _dictionary_batches(path: Path, name: str, batch_rows: int) -> Iterator[pa.Array]:
    """A text column read as dictionary codes: Parquet stores most text that way, and counting codes
    skips decoding every text (the schema's text type needs no conversion)."""
    import pyarrow.parquet as pq

    try:
        for batch in pq.ParquetFile(path, read_dictionary=[name]).iter_batches(batch_size=batch_rows,
                                                                               columns=[name]):
            yield batch.column(0)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"{path}: corrupted Parquet data in column '{name}': "
                        f"{str(exc).splitlines()[0][:200]}") from None


def _names(batch: pa.RecordBatch | pd.DataFrame) -> list[str]:
    return batch.schema.names if isinstance(batch, pa.RecordBatch) else list(batch.columns)


def _column_array(batch: pa.RecordBatch | pd.DataFrame, name: str) -> np.ndarray:
    if isinstance(batch, pa.RecordBatch):
        return batch.column(name).to_numpy(zero_copy_only=False)
    return batch[name].to_numpy()


def _estimated_rows(source: Source) -> int | None:
    if source.is_log:
        return None
    from mlci.ml.tabular import table_rows

    counts = [table_rows(p) for p in source.files]
    known = [count for count in counts if count is not None]
    return sum(known) if len(known) == len(counts) else None


# -- the model's side -----------------------------------------------------------------------------


def load_model_for(project: Project, record: ModelVersion | None) -> Any:
    """The version's model when prediction drift or performance need it and it can be loaded."""
    if record is None or not record.features:
        return None
    from mlci.ops.model.registry import load_version_model

    try:
        model, _ = load_version_model(project, record.version)
    except NotFound:
        return None
    return model


def predict_batch(result: Profile, frame: pd.DataFrame, model: Any, record: ModelVersion | None,
                  from_logs: bool) -> None:
    """Add the model's outputs for a batch: logged ones for logs, fresh ones for files."""
    if from_logs:
        predicted = frame["__prediction"].to_numpy()
        probabilities = _logged_probabilities(frame["__probabilities"], model)
    elif model is not None and record is not None:
        X = frame[list(record.features)]
        predicted = model.predict(X)
        probabilities = model.predict_proba(X) if hasattr(model, "predict_proba") else None
    else:
        return
    result.predicted.append(np.asarray(predicted))
    if probabilities is not None:
        result.probabilities.append(probabilities)
    output = _output_values(predicted, probabilities)
    if result.prediction is None:
        result.prediction = stats.new_sketch("numeric" if output.dtype.kind == "f" else "categorical")
    if isinstance(result.prediction, stats.NumericSketch):
        result.prediction.add(output.astype(np.float64))
    else:
        result.prediction.add(pa.array(output))


def _logged_probabilities(column: pd.Series, model: Any) -> np.ndarray | None:
    if model is None or not hasattr(model, "classes_") or column.isna().all():
        return None
    classes = [str(c) for c in model.classes_]
    return np.array([[float((p or {}).get(c, np.nan)) for c in classes] for p in column])


def _output_values(predicted: np.ndarray, probabilities: np.ndarray | None) -> np.ndarray:
    """What prediction drift compares: the positive-class probability of a binary classifier, else
    the predictions (numbers for regression, labels for classes)."""
    if probabilities is not None and probabilities.shape[1] == 2:
        return probabilities[:, 1].astype(np.float64)
    predicted = np.asarray(predicted)
    if predicted.dtype.kind in "iub" or predicted.dtype == object:
        return predicted.astype(str)
    return predicted.astype(np.float64)
