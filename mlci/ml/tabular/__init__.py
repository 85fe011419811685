"""Safe table reading: every command reads CSV and Parquet data through this package.

Files are read with pyarrow (a streaming CSV reader, Parquet row groups), so memory stays bounded by the
batch size. Hostile files never become a silently altered table: an empty file, a header without rows,
ragged rows, undecodable bytes, NUL bytes, an unclosed quote, duplicate column names and broken Parquet
files raise ``DataError`` (exit 2) with one line naming the file and, where one exists, the line.

Numbering: *rows* are 1-based data rows (the header is not a row); *lines* are 1-based physical lines of
the file. In a CSV without line breaks inside quoted values, line = row + 1.

A UTF-8 byte-order mark is accepted and stripped, so it never becomes part of the first column's name.

Where things are (import them from ``mlci.ml.tabular``, which re-exports the public names):

- ``reading``: the entry points: ``file_kind``, ``column_names``, ``table_rows``, ``read_table``,
  ``iter_batches``, ``iter_arrow_batches``, ``open_arrow_batches``.
- ``csv_reader``: the CSV reader (parallel pyarrow parse in pieces of lines, restarts).
- ``parquet_reader``: the Parquet reader.
- ``hostile``: hostile-file detection: exact passes that name the broken line.
- ``lines``: the file as raw bytes: pieces of whole lines, NUL bytes, byte positions.
- ``values``: schema types in Arrow, null/true/false words, text conversion, ``ArrowBatch``.
- ``arrow``: Arrow buffer helpers that keep validation free of pandas (re-exported from ``mlci.ml.arrow``).
- ``frames``: pandas dtypes and Arrow-to-DataFrame conversion.
"""

from __future__ import annotations

from mlci.ml.tabular.arrow import numpy_to_arrow, numpy_values, python_to_arrow, true_positions
from mlci.ml.tabular.frames import arrow_to_pandas, pandas_types
from mlci.ml.tabular.hostile import shorten
from mlci.ml.tabular.reading import (
    CSV_SUFFIXES,
    PARQUET_SUFFIXES,
    FileKind,
    column_names,
    file_kind,
    iter_arrow_batches,
    iter_batches,
    open_arrow_batches,
    parquet_rows,
    read_table,
    table_rows,
)
from mlci.ml.tabular.values import (
    ARROW_TYPES,
    FALSE_VALUES,
    INTEGER_PATTERN,
    NULL_VALUES,
    TRUE_VALUES,
    ArrowBatch,
    ParseFailures,
    convert_text,
    float_pattern,
)

__all__ = [
    "ARROW_TYPES", "CSV_SUFFIXES", "FALSE_VALUES", "INTEGER_PATTERN", "NULL_VALUES", "PARQUET_SUFFIXES",
    "TRUE_VALUES", "ArrowBatch", "FileKind", "ParseFailures", "arrow_to_pandas", "column_names",
    "convert_text", "file_kind", "float_pattern", "iter_arrow_batches", "iter_batches", "numpy_to_arrow",
    "numpy_values", "open_arrow_batches", "pandas_types", "parquet_rows", "python_to_arrow", "read_table",
    "shorten", "table_rows", "true_positions",
]
