"""The checks of ``mlci validate`` on one file, streaming, reporting every violation.

Each file is read in batches (``mlci.ml.tabular``); every rule is a vectorised pyarrow/NumPy reduction
per batch, and element masks are built only when a reduction says a batch breaks the rule. Rules that
span the whole file (uniqueness, duplicate rows, row counts) keep only what they need: the values of
``unique`` columns and a 64-bit hash per row when duplicate rows are forbidden.

Every check reports the number of failing rows and up to ``MAX_EXAMPLES`` examples, each with its
1-based data row number (the header is not a row) and the value, truncated to ``MAX_VALUE_CHARS``.

``mlci.ops.data.validate`` (the command's entry point) starts the parse of the first file before it
imports this module, so that the imports here overlap with the parse.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlci.core.csvoptions import CsvOptions
from mlci.core.dataschema import Column, DataSchema
from mlci.core.progress import Progress
from mlci.core.reports import Check
from mlci.ml import tabular
from mlci.ml.arrow_rules import EMPTY, ColumnBatch, finders
from mlci.ml.schema_rules import ColumnRules, compile_column, compile_schema
from mlci.ops.data.opening import OpenedFile, open_file

MAX_EXAMPLES = 5
MAX_VALUE_CHARS = 60


@dataclass
class Tally:
    """Failing rows of one rule: how many, and the first few as examples."""

    count: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)

    def add(self, first_row: int, positions: np.ndarray, values: pa.Array | list | None = None) -> None:
        if not len(positions):
            return
        self.count += len(positions)
        room = MAX_EXAMPLES - len(self.examples)
        if room <= 0:
            return
        chosen = positions[:room]
        if values is None:
            shown = [None] * len(chosen)
        elif isinstance(values, list):
            shown = values[:room]
        else:
            taken = values.take(tabular.numpy_to_arrow(chosen))
            if pa.types.is_timestamp(taken.type):  # nanoseconds become pandas Timestamps: show microseconds
                taken = taken.cast(pa.timestamp("us", taken.type.tz), safe=False)
            shown = taken.to_pylist()
        for position, value in zip(chosen, shown):
            self.examples.append({"row": first_row + int(position), "value": _show(value)})


def _show(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if np.isfinite(value) else str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return tabular.shorten(str(value), MAX_VALUE_CHARS)


@dataclass
class Rule:
    """A per-column rule: ``find(column) -> positions`` of failing values within a batch."""

    column: str
    name: str
    threshold: Any
    find: Callable[[ColumnBatch], np.ndarray]
    tally: Tally = field(default_factory=Tally)

    def check(self, group: str, rows: int) -> Check:
        message = "ok" if not self.tally.count else f"{self.tally.count:,} of {rows:,} rows fail"
        return Check(name=f"{self.column}: {self.name}", passed=not self.tally.count, message=message,
                     value=self.tally.count, threshold=self.threshold, group=group, column=self.column,
                     rule=self.name,
                     details={"column": self.column, "rule": self.name, "failing_rows": self.tally.count,
                              "examples": self.tally.examples})


_EMPTY = EMPTY


def column_rules(name: str, col: Column, compiled: ColumnRules | None = None) -> list[Rule]:
    """The per-batch rules of one column, in a fixed order, read from its compiled rules
    (``mlci.ml.schema_rules``: the same rules the model server and the monitor read)."""
    compiled = compiled or compile_column(name, col)
    thresholds = {"not null": "no nulls", "finite": "no inf", "min": col.min, "max": col.max,
                  "allowed values": _shown_values(col.values), "pattern": col.pattern}
    return [Rule(name, rule, thresholds[rule], find) for rule, find in finders(compiled)]


def _shown_values(values: list | None) -> list | None:
    if values is None:
        return None
    return values if len(values) <= 10 else values[:10] + ["…"]


class _UniqueValues:
    """Keeps a unique column's values (and their row numbers) to find repeats across batches."""

    def __init__(self, column: str) -> None:
        self.column = column
        self.chunks: list[pa.Array] = []

    def add(self, array: pa.Array) -> None:
        self.chunks.append(array)

    def check(self, group: str, rows: int) -> Check:
        tally = Tally()
        if self.chunks:
            values = pa.chunked_array(self.chunks)
            if self._has_repeats(values):
                counts = pc.value_counts(values.drop_null())
                several = np.flatnonzero(tabular.numpy_values(counts.field("counts")) > 1)
                repeated = counts.field("values").take(tabular.numpy_to_arrow(several))
                mask = pc.is_in(values, value_set=repeated).combine_chunks()
                positions = tabular.true_positions(mask)
                first_seen = _later_occurrences(values.take(tabular.numpy_to_arrow(positions)), positions)
                tally.add(1, first_seen, values.combine_chunks())
        rule = Rule(self.column, "unique", True, lambda _: _EMPTY, tally)
        check = rule.check(group, rows)
        if tally.count:
            check.message = f"{tally.count:,} rows repeat an earlier value"
        return check

    @staticmethod
    def _has_repeats(values: pa.ChunkedArray) -> bool:
        if pa.types.is_integer(values.type) or pa.types.is_floating(values.type):
            chunks = [tabular.numpy_values(chunk.drop_null() if chunk.null_count else chunk)
                      for chunk in values.chunks]  # views of the kept batches: no copy of the column
            return _has_repeated_numbers(chunks, integers=pa.types.is_integer(values.type))
        return pc.count_distinct(values).as_py() < len(values) - values.null_count


def _has_repeated_numbers(chunks: list[np.ndarray], *, integers: bool) -> bool:
    """Dense integers (such as ids) mark one byte per possible value, chunk by chunk, about 30 times
    faster than a sort and without a copy of the column; other numbers are sorted, which is faster than
    hashing them."""
    count = sum(len(chunk) for chunk in chunks)
    present = [chunk for chunk in chunks if len(chunk)]
    if integers and present:
        low, high = min(int(chunk.min()) for chunk in present), max(int(chunk.max()) for chunk in present)
        if high - low < 8 * count:
            marks = np.zeros(high - low + 1, dtype=bool)
            for chunk in present:
                marks[chunk - low] = True
            return int(np.count_nonzero(marks)) < count
    ordered = np.sort(np.concatenate(present)) if present else np.empty(0)
    return bool(np.any(ordered[1:] == ordered[:-1]))


def _later_occurrences(values: pa.Array, positions: np.ndarray) -> np.ndarray:
    """Positions of the repeats (every occurrence after a value's first)."""
    seen: set = set()
    out = []
    for value, position in zip(values.to_pylist(), positions):
        if value in seen:
            out.append(position)
        else:
            seen.add(value)
    return np.array(out, dtype=np.int64)


class _RowHashes:
    """A 64-bit hash per row, to find duplicate rows across batches without keeping the rows.

    Each column's values become 64-bit codes (the bits of a number, a hash of a text), mixed so that
    a linear combination of the columns' codes keeps accidental collisions at about 2**-64 per pair.
    Every batch has the schema's Arrow types, so equal rows get equal codes in any batch.
    """

    def __init__(self) -> None:
        self.hashes: list[np.ndarray] = []

    def add(self, batch: pa.RecordBatch) -> None:
        combined = np.zeros(batch.num_rows, dtype=np.uint64)
        for column in batch.columns:
            combined = combined * _COMBINE + _mix(_value_codes(column))
        self.hashes.append(_mix(combined))

    def check(self, group: str, rows: int) -> Check:
        tally = Tally()
        if self.hashes:
            hashes = np.concatenate(self.hashes)
            ordered = np.sort(hashes)  # twice as fast as the stable argsort that names the rows
            if np.any(ordered[1:] == ordered[:-1]):
                order = np.argsort(hashes, kind="stable")
                sorted_hashes = hashes[order]
                repeats = order[1:][sorted_hashes[1:] == sorted_hashes[:-1]]
                tally.add(1, np.sort(repeats))
        rule = Rule("(row)", "no duplicate rows", "allow_duplicate_rows: false", lambda _: _EMPTY, tally)
        check = rule.check(group, rows)
        check.name = "duplicate rows"
        if tally.count:
            check.message = f"{tally.count:,} rows repeat an earlier row"
        return check


_COMBINE = np.uint64(0x9E3779B97F4A7C15)
_NULL_CODE = np.uint64(0x5BD1E9955BD1E995)


def _value_codes(array: pa.Array) -> np.ndarray:
    """64 bits per value, equal for equal values; a null has its own code."""
    if pa.types.is_string(array.type) or pa.types.is_large_string(array.type) or pa.types.is_dictionary(array.type):
        encoded = array if pa.types.is_dictionary(array.type) else array.dictionary_encode()
        words = np.array([hash(word) for word in encoded.dictionary.to_pylist()], dtype=np.int64)
        codes = words.view(np.uint64)[tabular.numpy_values(encoded.indices)] if len(words) \
            else np.zeros(len(array), dtype=np.uint64)
    else:
        values = tabular.numpy_values(array)
        codes = values.view(np.uint64) if values.dtype.itemsize == 8 else values.astype(np.uint64)
    if array.null_count:
        codes = np.where(tabular.numpy_values(pc.is_null(array)), _NULL_CODE, codes)
    return codes


def _mix(codes: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser: every input bit affects every output bit (unsigned arithmetic wraps)."""
    codes = (codes ^ (codes >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    codes = (codes ^ (codes >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return codes ^ (codes >> np.uint64(31))


@dataclass(frozen=True)
class FileValidation:
    """What validating one file found: its checks and its number of data rows."""

    checks: list[Check]
    rows: int
    profile: dict[str, dict[str, Any]] = field(default_factory=dict)


PROFILE_LEVELS = 10  # most frequent values shown per category or boolean column
PROFILE_MAX_DISTINCT = 1000  # past this many distinct values a column's counts stop (memory stays flat)


class _ColumnProfile:
    """What a person wants to see of a column beside its checks: missing values, range, mean, frequent
    values. Arrow kernels over each batch, so it adds little to the pass the checks make anyway."""

    def __init__(self, column_type: str) -> None:
        self.type = column_type
        self.rows = self.missing = 0
        self.low: Any = None
        self.high: Any = None
        self.total = 0.0
        self.counted = 0
        self.levels: dict[Any, int] | None = {} if column_type in ("category", "boolean") else None
        self.many_levels = False

    def add(self, column: ColumnBatch) -> None:
        """One batch of the column, read through the statistics its rules computed already."""
        array = column.array
        self.rows += len(array)
        self.missing += array.null_count + column.nan_count
        if pa.types.is_boolean(array.type):
            self._add_booleans(column)
        elif pa.types.is_temporal(array.type):
            self._add_moments(array)
        elif pa.types.is_integer(array.type) or pa.types.is_floating(array.type):
            self._add_numbers(column)
        elif self.levels is not None:
            self._add_levels(column.distinct.to_pylist())

    def _add_levels(self, counted: list[dict[str, Any]]) -> None:
        assert self.levels is not None
        for entry in counted:
            self.levels[entry["values"]] = self.levels.get(entry["values"], 0) + entry["counts"]
        if len(self.levels) > PROFILE_MAX_DISTINCT:
            self.levels, self.many_levels = None, True

    def _add_booleans(self, column: ColumnBatch) -> None:
        if self.levels is None:
            return
        trues = int(column.total or 0)
        falses = len(column.array) - column.array.null_count - trues
        self._add_levels([{"values": value, "counts": count}
                          for value, count in ((True, trues), (False, falses)) if count])

    def _add_numbers(self, column: ColumnBatch) -> None:
        extremes = column.extremes
        if column.nan_count or (pa.types.is_floating(column.array.type) and extremes["min"] is not None
                                and not (math.isfinite(extremes["min"]) and math.isfinite(extremes["max"]))):
            finite = pc.filter(column.array, pc.is_finite(column.array))  # NaN or an infinity: leave them out
            extremes, total = pc.min_max(finite).as_py(), pc.sum(finite).as_py()
            present = len(finite) - finite.null_count
        else:
            total, present = column.total, len(column.array) - column.array.null_count
        self._add_range(extremes)
        self.total += total or 0.0
        self.counted += present

    def _add_moments(self, array: pa.Array) -> None:
        if pa.types.is_timestamp(array.type):  # pyarrow turns nanosecond scalars into pandas objects
            array = pc.cast(array, pa.timestamp("us", array.type.tz), safe=False)
        self._add_range(pc.min_max(array).as_py())

    def _add_range(self, extremes: dict[str, Any]) -> None:
        if extremes["min"] is not None:
            self.low = extremes["min"] if self.low is None else min(self.low, extremes["min"])
            self.high = extremes["max"] if self.high is None else max(self.high, extremes["max"])

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "rows": self.rows, "missing": self.missing,
                               "missing_share": self.missing / self.rows if self.rows else 0.0}
        if self.low is not None:
            out["min"], out["max"] = _plain(self.low), _plain(self.high)
        if self.counted:
            out["mean"] = self.total / self.counted
        if self.levels:
            top = sorted(self.levels.items(), key=lambda kv: (-kv[1], str(kv[0])))[:PROFILE_LEVELS]
            out["distinct"] = len(self.levels)
            out["top"] = [{"value": _plain(value), "rows": count} for value, count in top]
        elif self.many_levels:
            out["distinct_over"] = PROFILE_MAX_DISTINCT
        return out


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def validate_file(path: Path, schema: DataSchema, *, csv: CsvOptions | None = None, batch_rows: int = 200_000,
                  group: str | None = None, progress: bool = True,
                  compiled: dict[str, ColumnRules] | None = None) -> list[Check]:
    """Every check of ``schema`` against one file."""
    return check_file(path, schema, csv=csv, batch_rows=batch_rows, group=group, progress=progress,
                      compiled=compiled).checks


def check_file(path: Path, schema: DataSchema, *, csv: CsvOptions | None = None, batch_rows: int = 200_000,
               group: str | None = None, progress: bool = True,
               compiled: dict[str, ColumnRules] | None = None, opened: OpenedFile | None = None) -> FileValidation:
    """Every check of ``schema`` against one file, with its row count; ``compiled`` (``compile_schema``)
    lets a run compile the rules once for all its files, and ``opened`` (``open_file``) continues a read
    whose parse has started."""
    group = group or path.name
    opened = opened or open_file(path, schema, csv=csv, batch_rows=batch_rows)
    header, present = opened.header, opened.present
    compiled = compiled if compiled is not None else compile_schema(schema)
    tally = _FileTally(schema, present, compiled)
    # a CSV's row count is estimated from a sample, so the total may be below the rows that come
    with Progress(f"validating {group}", total=tabular.table_rows(path), enabled=progress,
                  estimated=tabular.file_kind(path) != "parquet") as bar:
        for item in opened.batches:
            tally.add(item)
            bar.advance(item.batch.num_rows)
    return FileValidation(_column_set_checks(header, schema, group) + tally.checks(group), tally.rows,
                          {name: profile.summary() for name, profile in tally.profiles.items()})


class _FileTally:
    """Every rule's state while one file's batches go by, and the checks it adds up to."""

    def __init__(self, schema: DataSchema, present: list[str], compiled: dict[str, ColumnRules]) -> None:
        self.schema = schema
        self.present = present
        self.rules = {name: column_rules(name, schema.columns[name], compiled[name]) for name in present}
        self.type_tallies = {name: Tally() for name in present}
        self.unique = {name: _UniqueValues(name) for name in present if schema.columns[name].unique}
        self.row_hashes = _RowHashes() if not schema.allow_duplicate_rows else None
        self.profiles = {name: _ColumnProfile(schema.columns[name].type) for name in present}
        self.rows = 0

    def add(self, item: tabular.ArrowBatch) -> None:
        batch = item.batch
        for name, failures in item.failures.items():
            self.type_tallies[name].add(item.first_row, failures.rows, failures.values)
        for index, name in enumerate(batch.schema.names):
            array = batch.column(index)
            column = ColumnBatch(array)
            for rule in self.rules.get(name, ()):
                rule.tally.add(item.first_row, rule.find(column), array)
            if name in self.unique:
                self.unique[name].add(column.plain)
            if name in self.profiles:
                self.profiles[name].add(column)
        if self.row_hashes is not None:
            self.row_hashes.add(batch)
        self.rows += batch.num_rows

    def checks(self, group: str) -> list[Check]:
        checks = []
        for name in self.present:
            checks.append(self._type_check(name, group))
            checks.extend(rule.check(group, self.rows) for rule in self.rules[name])
            if name in self.unique:
                checks.append(self.unique[name].check(group, self.rows))
        if self.row_hashes is not None:
            checks.append(self.row_hashes.check(group, self.rows))
        checks.append(_row_count_check(self.rows, self.schema, group))
        return checks

    def _type_check(self, name: str, group: str) -> Check:
        col_type = self.schema.columns[name].type
        tally = self.type_tallies[name]
        check = Rule(name, "type", col_type, lambda _: _EMPTY, tally).check(group, self.rows)
        if tally.count:
            check.message = f"{tally.count:,} values are not a valid {col_type}"
        return check


def _column_set_checks(header: list[str], schema: DataSchema, group: str) -> list[Check]:
    missing = [n for n in schema.columns if n not in header]
    checks = [Check(name="columns: required", passed=not missing, group=group, value=len(missing), threshold=0,
                    message=f"missing: {', '.join(missing)}" if missing else "ok",
                    details={"missing": missing})]
    if not schema.allow_extra_columns:
        extra = [n for n in header if n not in schema.columns]
        checks.append(Check(name="columns: unexpected", passed=not extra, group=group, value=len(extra),
                            threshold=0, message=f"not in the schema: {', '.join(extra)}" if extra else "ok",
                            details={"unexpected": extra}))
    return checks


def _row_count_check(rows: int, schema: DataSchema, group: str) -> Check:
    low, high = schema.rows.min, schema.rows.max
    passed = rows >= low and (high is None or rows <= high)
    bounds = f">= {low}" + (f" and <= {high}" if high is not None else "")
    return Check(name="rows: count", passed=passed, value=rows, threshold=bounds, group=group, rule="rows",
                 message="ok" if passed else f"{rows:,} rows, expected {bounds}")
