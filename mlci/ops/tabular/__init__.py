"""Safe table reading: every command reads CSV and Parquet data through this module.

Files are read with pyarrow (a streaming CSV reader, Parquet row groups), so memory stays bounded by the
batch size. Hostile files never become a silently altered table: an empty file, a header without rows,
ragged rows, undecodable bytes, NUL bytes, an unclosed quote, duplicate column names and broken Parquet
files raise ``DataError`` (exit 2) with one line naming the file and, where one exists, the line.

Numbering: *rows* are 1-based data rows (the header is not a row); *lines* are 1-based physical lines of
the file. In a CSV without line breaks inside quoted values, line = row + 1.

A UTF-8 byte-order mark is accepted and stripped, so it never becomes part of the first column's name.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Literal

import pyarrow as pa

from mlci.core.config import CsvOptions
from mlci.core.dataschema import DataSchema
from mlci.errors import DataError
from mlci.ops.tabular.arrow import numpy_to_arrow, numpy_values, python_to_arrow, true_positions
from mlci.ops.tabular.csv_reader import CsvReader
from mlci.ops.tabular.hostile import csv_header, shorten
from mlci.ops.tabular.lines import SAMPLE_BYTES
from mlci.ops.tabular.parquet_reader import ParquetReader, parquet_file
from mlci.ops.tabular.values import (ARROW_TYPES, FALSE_VALUES, INTEGER_PATTERN, NULL_VALUES, TRUE_VALUES,
                                     ArrowBatch, ParseFailures, convert_text, float_pattern, target_type)

if TYPE_CHECKING:
    import pandas

CSV_SUFFIXES = (".csv", ".tsv", ".txt")
PARQUET_SUFFIXES = (".parquet", ".pq")
FileKind = Literal["csv", "parquet"]


def file_kind(path: str | os.PathLike) -> FileKind:
    """``csv`` or ``parquet`` from the file's extension; DataError for anything that cannot be read."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path}: is a directory, not a data file", hint="give a .csv or .parquet file")
    if not path.exists():
        raise DataError(f"{path}: no such file", hint="check the path (relative paths start at the project)")
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        return "csv"
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    raise DataError(f"{path}: unsupported file type '{suffix or '(none)'}'",
                    hint="mlci reads .csv (.tsv, .txt) and .parquet (.pq) files")


def column_names(path: str | os.PathLike, *, csv: CsvOptions | None = None) -> list[str]:
    """The file's column names, in order (read from the header or the Parquet schema)."""
    path = Path(path)
    if file_kind(path) == "parquet":
        return parquet_file(path).schema_arrow.names
    return csv_header(path, csv or CsvOptions())


def table_rows(path: str | os.PathLike) -> int | None:
    """The number of data rows: exact for Parquet, estimated from a sample for CSV (for progress)."""
    path = Path(path)
    if file_kind(path) == "parquet":
        return parquet_file(path).metadata.num_rows
    size = path.stat().st_size
    with path.open("rb") as handle:
        sample = handle.read(SAMPLE_BYTES)
    lines = sample.count(b"\n")
    if lines <= 1:
        return max(lines, 0) if len(sample) == size else None
    if len(sample) == size:
        return lines - 1 + (0 if sample.endswith(b"\n") else 1)
    return int(size / (len(sample) / lines)) - 1


def read_table(path: str | os.PathLike, *, csv: CsvOptions | None = None, schema: DataSchema | None = None,
               columns: list[str] | None = None) -> pandas.DataFrame:
    """The whole file as a DataFrame, typed from ``schema`` where given (see ``pandas_types``)."""
    batches = [b.batch for b in iter_arrow_batches(path, csv=csv, schema=schema, columns=columns)]
    table = _concat(batches) if batches else _empty_table(path, csv, schema, columns)
    return arrow_to_pandas(table, schema)


def iter_batches(path: str | os.PathLike, *, csv: CsvOptions | None = None, schema: DataSchema | None = None,
                 batch_rows: int = 200_000, columns: list[str] | None = None
                 ) -> Iterator[tuple[int, pandas.DataFrame]]:
    """``(first_row_number, DataFrame)`` batches in bounded memory; row numbers are 1-based data rows."""
    for item in iter_arrow_batches(path, csv=csv, schema=schema, batch_rows=batch_rows, columns=columns):
        yield item.first_row, arrow_to_pandas(item.batch, schema)


def iter_arrow_batches(path: str | os.PathLike, *, csv: CsvOptions | None = None,
                       schema: DataSchema | None = None, batch_rows: int = 200_000,
                       columns: list[str] | None = None, lenient: bool = False, text: bool = False
                       ) -> Iterator[ArrowBatch]:
    """Batches as pyarrow RecordBatches, columns typed from ``schema``.

    ``text`` reads every CSV column as text (for type inference); Parquet columns keep their types.
    Values that do not parse as their column's type raise DataError, or with ``lenient`` become nulls
    reported in ``ArrowBatch.failures`` (so validation can count them and name their rows).
    A file with a header and no rows raises DataError unless the schema allows zero rows.
    """
    path = Path(path)
    kind = file_kind(path)
    reader = CsvReader(path, csv or CsvOptions(), schema, batch_rows, columns, lenient, text) \
        if kind == "csv" else ParquetReader(path, schema, batch_rows, columns, lenient)
    rows = 0
    for item in reader:
        rows += item.batch.num_rows
        yield item
    if rows == 0 and (schema is None or schema.rows.min > 0):
        raise DataError(f"{path}: no data rows (only a header)",
                        hint="add rows, or set `rows: {min: 0}` in the schema to allow an empty table")


def pandas_types(schema: DataSchema) -> dict[str, str]:
    """The pandas dtype each schema type becomes.

    integer: int64, or float64 when the column is nullable (missing values are NaN, as scikit-learn
    expects); float: float64; boolean: bool, or "boolean" when nullable; category and string: object;
    datetime: datetime64[ns].
    """
    out = {}
    for name, col in schema.columns.items():
        out[name] = {"integer": "float64" if col.nullable else "int64", "float": "float64",
                     "boolean": "boolean" if col.nullable else "bool", "category": "object",
                     "string": "object", "datetime": "datetime64[ns]"}[col.type]
    return out


def _concat(batches: list[pa.RecordBatch]) -> pa.Table:
    """One table; without a schema, a column that became text in later batches is text throughout."""
    names = batches[0].schema.names
    mixed = {n for n in names if len({b.schema.field(n).type for b in batches}) > 1}
    if mixed:
        batches = [pa.RecordBatch.from_arrays(
            [b.column(n).cast(pa.string()) if n in mixed else b.column(n) for n in names], names=names)
            for b in batches]
    return pa.Table.from_batches(batches)


def arrow_to_pandas(data: pa.Table | pa.RecordBatch, schema: DataSchema | None) -> pandas.DataFrame:
    """A table or batch as a DataFrame, with the dtypes ``pandas_types`` gives the schema's columns."""
    table = data if isinstance(data, pa.Table) else pa.Table.from_batches([data])
    frame = table.to_pandas()
    if schema is None:
        return frame
    types = pandas_types(schema)
    for name in frame.columns:
        wanted = types.get(name)
        if wanted is None:
            continue
        column = frame[name]
        if wanted in ("int64", "bool") and column.isna().any():
            wanted = "float64" if wanted == "int64" else "boolean"  # invalid data; never fail the cast
        if str(column.dtype) != wanted:
            frame[name] = column.astype(wanted)
    return frame


def _empty_table(path: Path, csv: CsvOptions | None, schema: DataSchema | None,
                 columns: list[str] | None) -> pa.Table:
    if file_kind(path) == "parquet":
        arrow_schema = parquet_file(path).schema_arrow
    else:
        names = csv_header(path, csv or CsvOptions())
        arrow_schema = pa.schema([(n, pa.string()) for n in names])
    fields = [f for f in arrow_schema if columns is None or f.name in columns]
    if schema is not None:
        fields = [pa.field(f.name, target_type(schema, f.name) or f.type) for f in fields]
    return pa.schema(fields).empty_table()
