"""A data file opened as ``mlci validate`` reads it, its parse started (light at import: no rule or report
code, so the command can start the parse before importing those)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mlci.core.csvoptions import CsvOptions
from mlci.core.dataschema import DataSchema
from mlci.ml import tabular


@dataclass
class OpenedFile:
    """A data file whose read has started: its header, the schema's columns it has, and its batches."""

    header: list[str]
    present: list[str]
    batches: Iterator[tabular.ArrowBatch]


def open_file(path: Path, schema: DataSchema, *, csv: CsvOptions | None = None,
              batch_rows: int = 200_000) -> OpenedFile:
    """Start reading ``path`` as validation reads it: the schema's columns, leniently (values that do not
    convert are counted, not fatal), category columns dictionary-encoded by the parse."""
    header = tabular.column_names(path, csv=csv)
    present = [name for name in schema.columns if name in header]
    batches = tabular.open_arrow_batches(path, csv=csv, schema=schema, batch_rows=batch_rows, columns=present,
                                         lenient=True, dictionary_categories=True)
    return OpenedFile(header, present, batches)
