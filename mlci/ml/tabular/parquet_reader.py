"""The Parquet reader: row groups in batches, each column cast to the schema's type.

Text columns convert as CSV text does (``convert_text``); values that do not convert raise DataError,
or with lenient reading become nulls reported in ``ArrowBatch.failures``. A file that is not valid
Parquet, or corrupted data inside one, raises DataError naming the file (and the row, where known).
pyarrow.parquet is imported on first use, not at import: CSV reads start 10 ms sooner.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from mlci.core.dataschema import DataSchema
from mlci.errors import DataError
from mlci.ml.tabular.hostile import check_header, shorten
from mlci.ml.tabular.values import ArrowBatch, ParseFailures, convert_text, target_type

if TYPE_CHECKING:
    import pyarrow.parquet as pq


class ParquetReader:
    """Streams a Parquet file in batches of ``batch_rows`` rows, columns typed from ``schema``."""

    def __init__(self, path: Path, schema: DataSchema | None, batch_rows: int, columns: list[str] | None,
                 lenient: bool) -> None:
        self.path = path
        self.schema = schema
        self.batch_rows = batch_rows
        self.columns = columns
        self.lenient = lenient

    def __iter__(self) -> Iterator[ArrowBatch]:
        parquet = parquet_file(self.path)
        names = parquet.schema_arrow.names
        check_header(self.path, names)
        columns = [n for n in names if n in self.columns] if self.columns is not None else None
        first_row = 1
        try:
            for batch in parquet.iter_batches(batch_size=self.batch_rows, columns=columns):
                item = ArrowBatch(first_row, batch)
                item.batch = self._conform(item)
                first_row += batch.num_rows
                yield item
        except (pa.ArrowInvalid, OSError) as exc:
            raise DataError(f"{self.path}: corrupted Parquet data near row {first_row}: "
                            f"{str(exc).splitlines()[0][:200]}") from None

    def _conform(self, item: ArrowBatch) -> pa.RecordBatch:
        """Cast each column to the schema's type; text that does not parse is a failure."""
        batch = item.batch
        for index, name in enumerate(batch.schema.names):
            target = target_type(self.schema, name)
            column = batch.column(index)
            if self.schema is None or target is None or column.type == target:  # no schema: no target
                continue
            col_type = self.schema.columns[name].type
            converted, failures = _cast_parquet_column(column, col_type, target)
            if failures is not None:
                if not self.lenient:
                    row = item.first_row + int(failures.rows[0])
                    raise DataError(f"{self.path}: column '{name}', row {row}: "
                                    f"{shorten(str(failures.values[0]))!r} is not a valid {col_type}",
                                    hint="fix the value, or change the column's type in the schema")
                item.failures[name] = failures
            batch = batch.set_column(index, name, converted)
        return batch


def _cast_parquet_column(column: pa.Array, col_type: str, target: pa.DataType
                         ) -> tuple[pa.Array, ParseFailures | None]:
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return convert_text(column, col_type)
    if pa.types.is_string(target):
        return column.cast(pa.string()), None
    try:
        return column.cast(target), None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        text = column.cast(pa.string())
        return convert_text(text, col_type)


def parquet_file(path: Path) -> pq.ParquetFile:
    """The open Parquet file; DataError when it is not valid Parquet."""
    import pyarrow.parquet as pq  # here, not at the top: CSV reads start 10 ms sooner

    try:
        return pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        reason = str(exc).splitlines()[0][:160]
        raise DataError(f"{path}: not a valid Parquet file ({reason})",
                        hint="the file may be truncated or not Parquet at all; re-export it") from None
