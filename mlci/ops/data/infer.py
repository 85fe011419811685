"""``mlci schema infer``: derive a schema from a data file, streaming, so it validates that file.

CSV columns are read as text and profiled per batch: a column is boolean when every value is a true/false
word (``true``, ``False``, ``yes``, ...; 0/1 stay integers), else integer, float, or datetime (ISO 8601)
when every value parses as one, else category when it has at most ``max_levels`` distinct values, else
string. Parquet columns keep their stored types (their text columns are profiled the same way).
Numbers and datetimes get the observed min/max; categories and integer columns with at most
``INTEGER_LEVELS`` distinct values get their values; a column whose values never repeat is unique
(a unique text column is marked ``feature: false``, as identifiers are).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from mlci.core.atomic import atomic_write_text
from mlci.core.csvoptions import CsvOptions
from mlci.core.dataschema import Column, ColumnType, DataSchema, RowBounds, dump_schema
from mlci.core.progress import Progress
from mlci.errors import UsageError
from mlci.ml import tabular

INTEGER_LEVELS = 5
_DATETIME = r"^\s*\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?\s*$"
_TEXT_KINDS: tuple[ColumnType, ...] = ("boolean", "integer", "float", "datetime")


@dataclass
class Inferred:
    schema: DataSchema
    rows: int

    @property
    def yaml(self) -> str:
        return dump_schema(self.schema)

    def to_dict(self) -> dict[str, Any]:
        from mlci.core.dataschema import schema_to_dict

        return {"rows": self.rows, "schema": schema_to_dict(self.schema)}


class ColumnProfile:
    """What a column's values look like so far."""

    def __init__(self, name: str, decimal: str, max_levels: int) -> None:
        self.name = name
        self.decimal = decimal
        self.max_levels = max_levels  # a text column with more distinct values is a string, not a category
        self.kinds: set[str] | None = None  # candidate types of a text column, narrowed batch by batch
        self.stored: ColumnType | None = None  # the type of a typed (Parquet) column
        self.nulls = 0
        self.count = 0
        self.levels: set | None = set()  # distinct values while they are few
        self.low: Any = None
        self.high: Any = None
        self.infinite = False
        self.unique_chunks: list[pa.Array] | None = []

    def update(self, array: pa.Array) -> None:
        if pa.types.is_dictionary(array.type):
            array = array.dictionary_decode()
        self.nulls += array.null_count
        values = array.drop_null()
        self.count += len(values)
        if not len(values):
            return
        if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
            self._narrow_text(values.cast(pa.string()))
        else:
            self.stored = self.stored or _stored_kind(values.type)
            self._observe(self._typed(values, self.stored))
        self._track_levels(values)
        self._track_unique(values)

    def _narrow_text(self, values: pa.Array) -> None:
        kinds = set(_TEXT_KINDS) if self.kinds is None else self.kinds
        tests = {"boolean": lambda: pc.all(pc.is_in(values, pa.array(_BOOL_WORDS))),
                 "integer": lambda: pc.all(pc.match_substring_regex(values, tabular.INTEGER_PATTERN)),
                 "float": lambda: pc.all(pc.match_substring_regex(values, tabular.float_pattern(self.decimal))),
                 "datetime": lambda: pc.all(pc.match_substring_regex(values, _DATETIME))}
        self.kinds = {k for k in kinds if tests[k]().as_py()}
        if "datetime" in self.kinds:
            _, failures = tabular.convert_text(values, "datetime")
            if failures is not None:
                self.kinds.discard("datetime")
        kind = self.text_kind()
        if kind in _TEXT_KINDS:
            converted, _ = tabular.convert_text(values, kind, decimal=self.decimal)
            self._observe(converted)

    def text_kind(self) -> ColumnType | None:
        for kind in _TEXT_KINDS:
            if self.kinds and kind in self.kinds:
                return kind
        return None

    @staticmethod
    def _typed(values: pa.Array, kind: str) -> pa.Array:
        return values.cast(tabular.ARROW_TYPES[kind]) if kind in ("integer", "float", "datetime") else values

    def _observe(self, values: pa.Array) -> None:
        if not (pa.types.is_integer(values.type) or pa.types.is_floating(values.type)
                or pa.types.is_timestamp(values.type)):
            return
        if pa.types.is_floating(values.type):
            finite = pc.is_finite(values)
            self.infinite = self.infinite or not pc.all(finite).as_py()
            values = values.filter(finite)
            if not len(values):
                return
        extremes = pc.min_max(values).as_py()
        self.low = extremes["min"] if self.low is None else min(self.low, extremes["min"])
        self.high = extremes["max"] if self.high is None else max(self.high, extremes["max"])

    def _track_levels(self, values: pa.Array) -> None:
        if self.levels is None:
            return
        self.levels.update(pc.unique(values).to_pylist())
        if len(self.levels) > max(self.max_levels, INTEGER_LEVELS):
            self.levels = None

    def _track_unique(self, values: pa.Array) -> None:
        if self.unique_chunks is None:
            return
        if pa.types.is_floating(values.type) or pc.count_distinct(values).as_py() < len(values):
            self.unique_chunks = None
        else:
            self.unique_chunks.append(values)

    def is_unique(self) -> bool:
        if not self.unique_chunks or self.count < 2:
            return False
        values = pa.chunked_array(self.unique_chunks)
        return pc.count_distinct(values).as_py() == len(values)

    def column(self) -> Column:
        kind = self.stored or self.text_kind()
        levels = sorted(self.levels, key=str) if self.levels is not None else None
        if kind is None:
            few = levels is not None and len(levels) <= self.max_levels and self.count > 0
            kind = "category" if few and not self.is_unique() else "string"
        if kind == "boolean":
            return Column(type="boolean", nullable=bool(self.nulls))
        unique = kind in ("integer", "string") and self.is_unique()
        values = None
        if kind == "category":
            values = levels
        elif kind == "integer" and levels is not None and len(levels) <= INTEGER_LEVELS:
            values = [int(v) for v in levels]
        low, high = self._bounds(kind)
        return Column(type=kind, nullable=bool(self.nulls), min=low, max=high, values=values, unique=unique,
                      finite=not self.infinite, feature=not (unique and kind == "string"))

    def _bounds(self, kind: str) -> tuple[Any, Any]:
        if self.low is None or kind not in ("integer", "float", "datetime"):
            return None, None
        if kind == "datetime":
            return _iso(self.low), _iso(self.high)
        if kind == "integer":
            return int(self.low), int(self.high)
        return float(self.low), float(self.high)


_BOOL_WORDS = [w for w in tabular.TRUE_VALUES + tabular.FALSE_VALUES if not w.isdigit()]  # 0/1 stay integers


def _stored_kind(arrow_type: pa.DataType) -> ColumnType:
    if pa.types.is_boolean(arrow_type):
        return "boolean"
    if pa.types.is_integer(arrow_type):
        return "integer"
    if pa.types.is_floating(arrow_type) or pa.types.is_decimal(arrow_type):
        return "float"
    if pa.types.is_timestamp(arrow_type) or pa.types.is_date(arrow_type):
        return "datetime"
    return "string"


def _iso(value: datetime) -> str:
    if isinstance(value, datetime) and value.time() == datetime.min.time():
        return value.date().isoformat()
    return value.isoformat()


def infer_schema(path: Path, *, csv: CsvOptions | None = None, target: str | None = None,
                 max_levels: int = 20, batch_rows: int = 200_000, progress: bool = True) -> Inferred:
    """Profile ``path`` batch by batch and return a schema that the file satisfies."""
    csv = csv or CsvOptions()
    names = tabular.column_names(path, csv=csv)
    if target is not None and target not in names:
        raise UsageError(f"--target '{target}' is not a column of {path}",
                         hint="columns: " + ", ".join(names[:20]))
    profiles = {name: ColumnProfile(name, csv.decimal, max_levels) for name in names}
    rows = 0
    with Progress(f"profiling {os.path.basename(path)}", total=tabular.table_rows(path),
                  enabled=progress) as bar:
        for item in tabular.iter_arrow_batches(path, csv=csv, batch_rows=batch_rows, text=True):
            for index, name in enumerate(item.batch.schema.names):
                profiles[name].update(item.batch.column(index))
            rows += item.batch.num_rows
            bar.advance(item.batch.num_rows)
    columns = {name: profile.column() for name, profile in profiles.items()}
    schema = DataSchema(columns=columns, target=target, rows=RowBounds(min=1))
    return Inferred(schema=schema, rows=rows)


def write_schema(schema: DataSchema, path: Path) -> None:
    atomic_write_text(path, "# written by `mlci schema infer`; review the rules before relying on them\n"
                      + dump_schema(schema))
