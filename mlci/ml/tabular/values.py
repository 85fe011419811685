"""Typed values: the Arrow type of each schema type, the words read as null, true and false, and the
conversion of text to a column's type that reports the values that do not parse (``ParseFailures``),
with ``ArrowBatch``, the batch both readers yield.

pyarrow.compute is imported inside the functions that use it: a CSV's parse starts before that import
(see ``mlci.ops.data.validate``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pyarrow as pa

from mlci.core.dataschema import DataSchema
from mlci.ml.schema_rules import INT64_RANGE, parse_datetime
from mlci.ml.tabular.arrow import numpy_to_arrow, python_to_arrow, true_positions

ARROW_TYPES = {"integer": pa.int64(), "float": pa.float64(), "boolean": pa.bool_(), "category": pa.string(),
               "string": pa.string(), "datetime": pa.timestamp("ns")}
TRUE_VALUES = ["1", "true", "True", "TRUE", "yes", "Yes", "YES"]
FALSE_VALUES = ["0", "false", "False", "FALSE", "no", "No", "NO"]
NULL_VALUES = ["", "NA", "N/A", "n/a", "NaN", "nan", "NULL", "null", "None", "#N/A"]


@dataclass
class ParseFailures:
    """Values of one column in one batch that do not parse as the schema's type."""

    rows: np.ndarray  # 0-based positions inside the batch
    values: list[str]


@dataclass
class ArrowBatch:
    """A batch as pyarrow sees it, with the values that failed to convert (lenient reading only)."""

    first_row: int
    batch: pa.RecordBatch
    failures: dict[str, ParseFailures] = field(default_factory=dict)


def target_type(schema: DataSchema | None, name: str) -> pa.DataType | None:
    """The Arrow type the schema gives column ``name``; None without a schema or for a column it lacks."""
    if schema is None or name not in schema.columns:
        return None
    return ARROW_TYPES[schema.columns[name].type]


INTEGER_PATTERN = r"^\s*[+-]?[0-9]+\s*$"
_BOOL = TRUE_VALUES + FALSE_VALUES


def float_pattern(decimal: str) -> str:
    """A regular expression for a float written with ``decimal`` as its decimal mark (or inf/nan)."""
    d = re.escape(decimal)
    return (rf"^\s*[+-]?(([0-9]+({d}[0-9]*)?|{d}[0-9]+)([eE][+-]?[0-9]+)?|(?i:inf|infinity|nan))\s*$")


def convert_text(array: pa.Array, col_type: str, *, decimal: str = ".") -> tuple[pa.Array, ParseFailures | None]:
    """Convert text values to ``col_type``; values that do not parse become null and are returned."""
    import pyarrow.compute as pc

    target = ARROW_TYPES[col_type]
    if pa.types.is_string(target):
        return array.cast(pa.string()), None
    array = array.cast(pa.string())
    if col_type == "integer":
        ok = _fits_int64(array, pc.match_substring_regex(array, INTEGER_PATTERN))
    elif col_type == "float":
        ok = pc.match_substring_regex(array, float_pattern(decimal))
    elif col_type == "boolean":
        ok = pc.is_in(array, python_to_arrow(_BOOL))
    else:
        ok = pc.is_valid(_parse_datetimes(array))
    ok = pc.or_kleene(ok, pc.is_null(array))  # a missing value is not a parse failure
    bad = true_positions(pc.invert(ok))
    clean = pc.if_else(ok, array, pa.nulls(1, pa.string())[0])
    converted = _cast_text(clean, col_type, decimal)
    failures = ParseFailures(rows=bad, values=array.take(numpy_to_arrow(bad)).to_pylist()) if len(bad) else None
    return converted, failures


def _fits_int64(array: pa.Array, integral: pa.Array) -> pa.Array:
    """``integral`` (texts that are integers) narrowed to the 64-bit ones: a longer one is a type
    failure, as in the model server. Only texts of 19 or more characters are looked at one by one."""
    import pyarrow.compute as pc

    lengths = pc.utf8_length(array)
    longest = pc.max(lengths).as_py()
    if longest is None or longest < 19:
        return integral
    long_positions = true_positions(pc.and_kleene(integral, pc.greater_equal(lengths, 19)))
    if not len(long_positions):
        return integral
    texts = array.take(numpy_to_arrow(long_positions)).to_pylist()
    fits = np.array([INT64_RANGE[0] <= int(text) <= INT64_RANGE[1] for text in texts], dtype=bool)
    mask = np.asarray(integral.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool).copy()
    mask[long_positions[~fits]] = False
    return numpy_to_arrow(mask.view(np.uint8)).cast(pa.bool_())


def _cast_text(array: pa.Array, col_type: str, decimal: str) -> pa.Array:
    import pyarrow.compute as pc

    if col_type == "boolean":
        return pc.if_else(pc.is_valid(array), pc.is_in(array, python_to_arrow(TRUE_VALUES)),
                          pa.nulls(len(array), pa.bool_()))
    if col_type == "datetime":
        return _parse_datetimes(array)
    if col_type == "float" and decimal != ".":
        array = pc.replace_substring(array, decimal, ".")
    return pc.cast(pc.utf8_trim_whitespace(array), ARROW_TYPES[col_type])


def _parse_datetimes(array: pa.Array) -> pa.Array:
    """ISO 8601 dates and times, read by the one datetime parser of the schema rules (an offset is
    converted to UTC, a text without one is UTC); others (and moments that nanoseconds since 1970 in
    64 bits cannot hold) become null."""
    parsed = [parse_datetime(value) for value in array.to_pylist()]
    valid = np.array([moment is not None for moment in parsed], dtype=bool)
    microseconds = np.array([moment or _EPOCH for moment in parsed], dtype="datetime64[us]").view(np.int64)
    return pa.Array.from_buffers(pa.timestamp("us"), len(parsed), [
        pa.py_buffer(np.packbits(valid, bitorder="little")), pa.py_buffer(microseconds)]).cast(pa.timestamp("ns"))


_EPOCH = datetime(1970, 1, 1)
