"""The compiled column rules (``mlci.ml.schema_rules``) evaluated on Arrow arrays, as ``mlci validate``
reads data: each rule is a vectorised pyarrow reduction, and element masks are built only when a
reduction says the array breaks the rule.

``finders(rules)`` gives each rule of a column as ``(rule name, find)`` where ``find(ColumnBatch)``
returns the 0-based positions of failing values. Everything a rule needs (bounds as Arrow scalars,
allowed values as an Arrow array, the anchored pattern) is prepared once, when the finders are made.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlci.ml.arrow import numpy_to_arrow, numpy_values, python_to_arrow, true_positions
from mlci.ml.schema_rules import ColumnRules, epoch_nanoseconds

Find = Callable[["ColumnBatch"], np.ndarray]
EMPTY = np.empty(0, dtype=np.int64)

# Arrow's regular expressions (RE2) read these classes as ASCII, Python's ``re`` as Unicode, and RE2
# reads ``[[:alpha:]]`` as a POSIX class where Python sees a set of characters: a pattern with one is
# matched by Python, so the two engines never get to disagree.
_ENGINES_DIFFER = re.compile(r"\\[dDwWsSbB]|\[:")


class ColumnBatch:
    """One column of one batch, with the statistics that the rules and the validation profile read,
    each computed once, when first asked for: one pass per statistic instead of one per rule.

    ``comparable`` is what range rules compare: the array itself, or for timestamps their int64
    nanoseconds (turning a nanosecond timestamp into Python would import pandas). A category column may
    come dictionary-encoded (``array``); ``plain`` is then its decoded text, for the rare paths that
    name failing rows.
    """

    def __init__(self, array: pa.Array) -> None:
        self.array = array
        self._plain: pa.Array | None = None
        self.comparable = array.view(pa.int64()) if pa.types.is_timestamp(array.type) else array
        self._extremes: dict[str, Any] | None = None
        self._total: Any = _UNKNOWN
        self._nan_count: int | None = None
        self._distinct: pa.Array | None = None

    @property
    def extremes(self) -> dict[str, Any]:
        """``{"min", "max"}`` of the present values, NaN skipped (all NaN: both NaN), as Arrow's
        ``min_max`` gives them; for floats NumPy's ``fmin``/``fmax`` give the same about ten times faster."""
        if self._extremes is None:
            array = self.comparable
            if pa.types.is_float64(array.type) and array.null_count < len(array):
                values = numpy_values(array.fill_null(_NAN) if array.null_count else array)
                self._extremes = {"min": float(np.fmin.reduce(values)), "max": float(np.fmax.reduce(values))}
            else:
                self._extremes = pc.min_max(array).as_py()
        return self._extremes

    @property
    def total(self) -> Any:
        """The sum of a numeric column's present values (None when there are none)."""
        if self._total is _UNKNOWN:
            self._total = pc.sum(self.array).as_py()
        return self._total

    @property
    def nan_count(self) -> int:
        """NaN values in a float column (0 for other types). A NaN makes the sum NaN, and so do both
        infinities together, so values are looked at one by one only when the sum is NaN."""
        if self._nan_count is None:
            total = self.total if pa.types.is_floating(self.array.type) else None
            self._nan_count = 0 if total is None or total == total \
                else int(pc.sum(pc.is_nan(self.array)).as_py() or 0)
        return self._nan_count

    @property
    def plain(self) -> pa.Array:
        if self._plain is None:
            dictionary = pa.types.is_dictionary(self.array.type)
            self._plain = self.array.dictionary_decode() if dictionary else self.array
        return self._plain

    @property
    def distinct(self) -> pa.StructArray:
        """The present values once each (``values``) with their ``counts``, as ``pc.value_counts`` gives
        them; from a dictionary-encoded array, by counting its indices."""
        if self._distinct is None:
            if pa.types.is_dictionary(self.array.type):
                self._distinct = _counted_dictionary(self.array)
            else:
                counts = pc.value_counts(self.array)
                if self.array.null_count:
                    counts = counts.filter(pc.is_valid(counts.field("values")))
                self._distinct = counts
        return self._distinct


def _counted_dictionary(array: pa.DictionaryArray) -> pa.StructArray:
    indices = numpy_values(array.indices)  # the slots of nulls hold anything: leave them out
    if array.null_count:
        indices = indices[numpy_values(pc.is_valid(array))]
    counts = np.bincount(indices, minlength=len(array.dictionary))
    used = np.flatnonzero(counts)
    return pa.StructArray.from_arrays([array.dictionary.take(numpy_to_arrow(used)), numpy_to_arrow(counts[used])],
                                      names=["values", "counts"])


_UNKNOWN = object()
_NAN = numpy_to_arrow(np.array([math.nan]))[0]  # an Arrow scalar: a Python float would import pandas


def finders(rules: ColumnRules) -> list[tuple[str, Find]]:
    """The per-batch rules of one column, in a fixed order: not null, finite, min, max, allowed values,
    pattern."""
    out: list[tuple[str, Find]] = []
    if not rules.nullable:
        out.append(("not null", _find_nulls))
    if rules.refuse_infinite:
        out.append(("finite", _find_infinite))
    if rules.low is not None:
        out.append(("min", _find_below(_comparable_bound(rules, rules.low), rules.infinity_is_unbounded)))
    if rules.high is not None:
        out.append(("max", _find_above(_comparable_bound(rules, rules.high), rules.infinity_is_unbounded)))
    few_distinct = rules.type == "category"  # judge the distinct values first: all pass, nothing to find
    if rules.allowed is not None:
        out.append(("allowed values", _find_not_allowed(_allowed_array(rules, rules.allowed), few_distinct)))
    if rules.pattern is not None:
        out.append(("pattern", _find_mismatches(rules.pattern, few_distinct)))
    return out


def _find_nulls(column: ColumnBatch) -> np.ndarray:
    array = column.array
    if array.null_count or column.nan_count:
        return true_positions(pc.is_null(array, nan_is_null=True))  # NaN is a missing value
    return EMPTY


def _find_infinite(column: ColumnBatch) -> np.ndarray:
    extremes = column.extremes
    if extremes["min"] is None or (np.isfinite(extremes["min"]) and np.isfinite(extremes["max"])):
        return EMPTY
    return true_positions(pc.is_inf(column.array))


def _comparable_bound(rules: ColumnRules, bound: Any) -> pa.Scalar:
    """A bound as a scalar comparable with ``ColumnBatch.comparable`` (datetimes in UTC nanoseconds)."""
    if rules.type == "datetime":
        return numpy_to_arrow(np.array([epoch_nanoseconds(bound)], dtype=np.int64))[0]  # pa.scalar imports pandas
    return python_to_arrow([bound])[0]


def _find_below(low: pa.Scalar, finite_only: bool) -> Find:
    limit = low.as_py()

    def find(column: ColumnBatch) -> np.ndarray:
        smallest = column.extremes["min"]
        if smallest is None or smallest >= limit:
            return EMPTY
        return true_positions(_finite(pc.less(column.comparable, low), column.array, finite_only))

    return find


def _find_above(high: pa.Scalar, finite_only: bool) -> Find:
    limit = high.as_py()

    def find(column: ColumnBatch) -> np.ndarray:
        largest = column.extremes["max"]
        if largest is None or largest <= limit:
            return EMPTY
        return true_positions(_finite(pc.greater(column.comparable, high), column.array, finite_only))

    return find


def _finite(mask: pa.Array, array: pa.Array, finite_only: bool) -> pa.Array:
    return pc.and_(mask, pc.is_finite(array)) if finite_only else mask


def _allowed_array(rules: ColumnRules, allowed: frozenset) -> pa.Array:
    values = sorted(allowed, key=repr)
    if not values:
        return python_to_arrow([""]).slice(0, 0) if rules.type in ("string", "category") \
            else numpy_to_arrow(np.empty(0, dtype=np.float64))
    if rules.type == "datetime":
        return python_to_arrow(values).cast(pa.timestamp("ns"))
    if rules.type == "float":
        return python_to_arrow([float(v) for v in values])
    return python_to_arrow(values)


def _find_not_allowed(allowed: pa.Array, few_distinct: bool) -> Find:
    def find(column: ColumnBatch) -> np.ndarray:
        if few_distinct:
            distinct = column.distinct.field("values")
            if bool(pc.all(pc.is_in(distinct, value_set=allowed.cast(distinct.type))).as_py()):
                return EMPTY
        array = column.plain  # decoded only here, where rows fail
        found = pc.index_in(array, value_set=allowed.cast(array.type))  # null: missing or not allowed
        if found.null_count == array.null_count:
            return EMPTY
        return true_positions(pc.and_(pc.is_null(found), pc.is_valid(array)))

    return find


def _find_mismatches(pattern: re.Pattern, few_distinct: bool) -> Find:
    """Values the pattern does not match in full: Arrow's RE2 anchored as ``^(?:pattern)$`` when the
    pattern means the same there, else Python's ``re.fullmatch`` value by value (slower, same answer)."""
    anchored = arrow_pattern(pattern.pattern)

    def mismatches(values: pa.Array) -> np.ndarray:
        text = values.cast(pa.string())
        if anchored is None:
            failing = [i for i, v in enumerate(text.to_pylist()) if v is not None and not pattern.fullmatch(v)]
            return np.array(failing, dtype=np.int64)
        matched = pc.match_substring_regex(text, anchored)
        if not text.null_count and bool(pc.all(matched).as_py()):
            return EMPTY
        return true_positions(pc.and_(pc.invert(matched), pc.is_valid(text)))

    def find(column: ColumnBatch) -> np.ndarray:
        if few_distinct and not len(mismatches(column.distinct.field("values"))):
            return EMPTY
        return mismatches(column.plain)

    return find


def arrow_pattern(pattern: str) -> str | None:
    """The pattern anchored for Arrow, or None when RE2 cannot run it or could read it differently."""
    if _ENGINES_DIFFER.search(pattern):
        return None
    anchored = f"^(?:{pattern})$"
    try:
        pc.match_substring_regex(python_to_arrow(["x"]), anchored)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # a Python-only construct (e.g. a look-ahead)
        return None
    return anchored


def failing_rows(rules: ColumnRules, array: pa.Array) -> dict[str, np.ndarray]:
    """Rule name -> failing positions of one array (every rule, also those that pass: empty)."""
    column = ColumnBatch(array)
    return {name: find(column) for name, find in finders(rules)}


__all__ = ["EMPTY", "ColumnBatch", "Find", "arrow_pattern", "failing_rows", "finders"]
