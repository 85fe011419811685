"""The entry points every command calls: what kind a file is, its columns and row count, and its data
as a DataFrame or in bounded batches (pandas or Arrow), chosen between the CSV and Parquet readers.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import pyarrow as pa

from mlci.core.csvoptions import CsvOptions
from mlci.core.dataschema import DataSchema
from mlci.errors import DataError
from mlci.ml.tabular.csv_reader import CsvReader
from mlci.ml.tabular.frames import arrow_to_pandas
from mlci.ml.tabular.hostile import csv_header
from mlci.ml.tabular.lines import SAMPLE_BYTES
from mlci.ml.tabular.parquet_reader import ParquetReader, parquet_file
from mlci.ml.tabular.values import ArrowBatch, target_type

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


def parquet_rows(path: str | os.PathLike) -> int:
    """The number of rows of a Parquet file, from its footer."""
    return parquet_file(Path(path)).metadata.num_rows


def table_rows(path: str | os.PathLike) -> int | None:
    """The number of data rows: exact for Parquet, estimated from a sample for CSV (for progress)."""
    path = Path(path)
    if file_kind(path) == "parquet":
        return parquet_rows(path)
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
    table = _concat(batches) if batches else _empty_table(Path(path), csv, schema, columns)
    return arrow_to_pandas(table, schema)


def iter_batches(path: str | os.PathLike, *, csv: CsvOptions | None = None, schema: DataSchema | None = None,
                 batch_rows: int = 200_000, columns: list[str] | None = None
                 ) -> Iterator[tuple[int, pandas.DataFrame]]:
    """``(first_row_number, DataFrame)`` batches in bounded memory; row numbers are 1-based data rows."""
    for item in iter_arrow_batches(path, csv=csv, schema=schema, batch_rows=batch_rows, columns=columns):
        yield item.first_row, arrow_to_pandas(item.batch, schema)


def iter_arrow_batches(path: str | os.PathLike, *, csv: CsvOptions | None = None,
                       schema: DataSchema | None = None, batch_rows: int = 200_000,
                       columns: list[str] | None = None, lenient: bool = False, text: bool = False,
                       dictionary_categories: bool = False) -> Iterator[ArrowBatch]:
    """Batches as pyarrow RecordBatches, columns typed from ``schema``.

    ``text`` reads every CSV column as text (for type inference); Parquet columns keep their types.
    Values that do not parse as their column's type raise DataError, or with ``lenient`` become nulls
    reported in ``ArrowBatch.failures`` (so validation can count them and name their rows).
    A file with a header and no rows raises DataError unless the schema allows zero rows.
    ``dictionary_categories`` reads a CSV's category columns dictionary-encoded (each batch its own
    dictionary of the values it holds), which the parse does in parallel at little cost.
    """
    yield from open_arrow_batches(path, csv=csv, schema=schema, batch_rows=batch_rows, columns=columns,
                                  lenient=lenient, text=text, dictionary_categories=dictionary_categories)


def open_arrow_batches(path: str | os.PathLike, *, csv: CsvOptions | None = None,
                       schema: DataSchema | None = None, batch_rows: int = 200_000,
                       columns: list[str] | None = None, lenient: bool = False, text: bool = False,
                       dictionary_categories: bool = False) -> Iterator[ArrowBatch]:
    """``iter_arrow_batches``, with a CSV's parse started before this returns: its first pieces are
    parsed on worker threads while the caller gets ready, and iterating continues from them. A file that
    cannot be opened, or a bad header, raises DataError here."""
    path = Path(path)
    kind = file_kind(path)
    if kind == "parquet":
        return _counted(ParquetReader(path, schema, batch_rows, columns, lenient), path, schema)
    reader = CsvReader(path, csv or CsvOptions(), schema, batch_rows, columns, lenient, text, dictionary_categories)
    reader.start()
    return _counted(reader, path, schema)


def _counted(reader: CsvReader | ParquetReader, path: Path, schema: DataSchema | None) -> Iterator[ArrowBatch]:
    rows = 0
    for item in reader:
        rows += item.batch.num_rows
        yield item
    if rows == 0 and (schema is None or schema.rows.min > 0):
        raise DataError(f"{path}: no data rows (only a header)",
                        hint="add rows, or set `rows: {min: 0}` in the schema to allow an empty table")


def _concat(batches: list[pa.RecordBatch]) -> pa.Table:
    """One table; without a schema, a column that became text in later batches is text throughout."""
    names = batches[0].schema.names
    mixed = {n for n in names if len({b.schema.field(n).type for b in batches}) > 1}
    if mixed:
        batches = [pa.RecordBatch.from_arrays(
            [b.column(n).cast(pa.string()) if n in mixed else b.column(n) for n in names], names=names)
            for b in batches]
    return pa.Table.from_batches(batches)


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
