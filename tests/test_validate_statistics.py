"""The per-batch statistics that validate's rules and its column profile share (``ColumnBatch`` in
``mlci.ml.arrow_rules``), computed once per column and batch: whatever shortcut computes them, the
rules' verdicts must equal the schema's meaning value by value, and the profile must equal a plain
computation, for arrays as Parquet delivers them (NaN, infinities, nulls, slices with an offset).
"""

from __future__ import annotations

import math
import re

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from hypothesis import given, settings
from hypothesis import strategies as st

from mlci.core.dataschema import Column, load_schema
from mlci.ml.arrow_rules import ColumnBatch, failing_rows
from mlci.ml.schema_rules import compile_column
from mlci.ops.data.validate import _ColumnProfile, _UniqueValues, check_file

NUMBERS = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=64),
                    st.sampled_from([0.0, -0.0, 1.5, -1.5, math.nan, math.inf, -math.inf]))
FLOATS = st.one_of(st.none(), NUMBERS)
FLOAT_LISTS = st.one_of(st.lists(FLOATS, max_size=40), st.lists(NUMBERS, max_size=40))  # also without nulls
BOUNDS = st.one_of(st.none(), st.sampled_from([-1.0, 0.0, 0.5, 2.0]))


def _sliced(values: list, offset: int, type_: pa.DataType) -> pa.Array:
    """The values as Arrow; with an offset, as a slice of a longer array (as a restarted read yields)."""
    return pa.array([None] * offset + values, type=type_).slice(offset)


def _is_missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _expected_float_failures(values: list, nullable: bool, finite: bool, low, high) -> dict[str, list[int]]:
    """The schema's meaning, value by value (``mlci.ml.schema_rules``): NaN is missing; with
    ``finite: false`` infinities are allowed and the bounds apply to finite values only."""
    out: dict[str, list[int]] = {}
    present = [(i, v) for i, v in enumerate(values) if not _is_missing(v)]
    bounded = [(i, v) for i, v in present if finite or math.isfinite(v)]
    if not nullable:
        out["not null"] = [i for i, v in enumerate(values) if _is_missing(v)]
    if finite:
        out["finite"] = [i for i, v in present if math.isinf(v)]
    if low is not None:
        out["min"] = [i for i, v in bounded if v < low]
    if high is not None:
        out["max"] = [i for i, v in bounded if v > high]
    return out


@settings(max_examples=300, deadline=None)
@given(values=FLOAT_LISTS, offset=st.integers(0, 3), nullable=st.booleans(),
       finite=st.booleans(), low=BOUNDS, high=BOUNDS)
def test_float_rules_find_exactly_the_values_the_schema_refuses(values, offset, nullable, finite, low, high):
    rules = compile_column("x", Column(type="float", nullable=nullable, finite=finite, min=low, max=high))
    found = {name: positions.tolist() for name, positions in
             failing_rows(rules, _sliced(values, offset, pa.float64())).items()}
    assert found == _expected_float_failures(values, nullable, finite, low, high)


@settings(max_examples=300, deadline=None)
@given(values=FLOAT_LISTS, offset=st.integers(0, 3))
def test_float_statistics_equal_arrow_s_own_kernels(values, offset):
    array = _sliced(values, offset, pa.float64())
    column = ColumnBatch(array)
    expected = pc.min_max(array).as_py()
    for key in ("min", "max"):
        got, want = column.extremes[key], expected[key]
        if got is None or want is None:
            assert got is want, key
        else:  # the same number or both NaN (which of 0.0 and -0.0 is the minimum depends on order in Arrow too)
            assert got == want or (math.isnan(got) and math.isnan(want)), key
    assert column.nan_count == sum(v is not None and math.isnan(v) for v in values)


@settings(max_examples=200, deadline=None)
@given(values=FLOAT_LISTS, offset=st.integers(0, 3), cut=st.integers(0, 40))
def test_the_float_profile_states_missing_range_and_mean_of_the_finite_values(values, offset, cut):
    profile = _ColumnProfile("float")
    for part in (values[:cut], values[cut:]):  # two batches
        profile.add(ColumnBatch(_sliced(part, offset, pa.float64())))
    summary = profile.summary()
    finite = [v for v in values if v is not None and math.isfinite(v)]
    assert summary["missing"] == sum(_is_missing(v) for v in values)
    assert (summary.get("min"), summary.get("max")) == ((min(finite), max(finite)) if finite else (None, None))
    if not finite:
        assert "mean" not in summary
    elif all(abs(v) < 1e300 for v in finite):  # else the sum may overflow, here and in any float sum
        scale = max(abs(v) for v in finite)  # a float sum cancels large terms only up to their size
        assert math.isclose(summary["mean"], math.fsum(finite) / len(finite), rel_tol=1e-9, abs_tol=1e-12 * scale)


@settings(max_examples=100, deadline=None)
@given(values=st.lists(st.one_of(st.none(), st.booleans()), max_size=30), offset=st.integers(0, 3))
def test_the_boolean_profile_counts_true_and_false(values, offset):
    profile = _ColumnProfile("boolean")
    profile.add(ColumnBatch(_sliced(values, offset, pa.bool_())))
    summary = profile.summary()
    expected = {flag: values.count(flag) for flag in (True, False) if values.count(flag)}
    assert {top["value"]: top["rows"] for top in summary.get("top", [])} == expected
    assert summary["missing"] == values.count(None)


def test_nan_among_numbers_in_a_parquet_float_column_is_a_missing_value(tmp_path):
    """Arrow's min/max skip NaN, so a NaN beside numbers must be found another way."""
    schema = tmp_path / "schema.yaml"
    schema.write_text("columns:\n  x: {type: float, nullable: false}\n")
    data = tmp_path / "d.parquet"
    pq.write_table(pa.table({"x": [1.0, math.nan, 2.0, math.nan]}), data)
    result = check_file(data, load_schema(schema), progress=False)
    not_null = next(c for c in result.checks if c.name == "x: not null")
    assert not_null.value == 2 and [e["row"] for e in not_null.details["examples"]] == [2, 4]
    assert result.profile["x"]["missing"] == 2 and result.profile["x"]["mean"] == 1.5


WORDS = st.one_of(st.none(), st.sampled_from(["a", "b", "12", "z", "A", "a b", ""]))


@settings(max_examples=200, deadline=None)
@given(values=st.lists(WORDS, max_size=30), offset=st.integers(0, 3), nullable=st.booleans(),
       allowed=st.one_of(st.none(), st.lists(st.sampled_from(["a", "b", "12"]), unique=True)),
       pattern=st.sampled_from([None, "[a-z0-9]+", "[ab]", r"\w+"]))
def test_category_rules_and_counts_are_the_same_from_text_and_from_a_dictionary(values, offset, nullable, allowed,
                                                                                pattern):
    """``mlci validate`` reads category columns dictionary-encoded; the rules judge the distinct values
    first. Verdicts and counts must be those of the plain text, value by value."""
    rules = compile_column("c", Column(type="category", nullable=nullable, values=allowed, pattern=pattern))
    text = _sliced(values, offset, pa.string())
    encoded = pa.array([None] * offset + values, type=pa.string()).dictionary_encode().slice(offset)
    expected: dict[str, list[int]] = {}
    if not nullable:
        expected["not null"] = [i for i, v in enumerate(values) if v is None]
    if allowed is not None:
        expected["allowed values"] = [i for i, v in enumerate(values) if v is not None and v not in allowed]
    if pattern is not None:
        expected["pattern"] = [i for i, v in enumerate(values) if v is not None and not re.fullmatch(pattern, v)]
    for array in (text, encoded):
        found = {name: positions.tolist() for name, positions in failing_rows(rules, array).items()}
        assert found == expected, array.type
        counted = {entry["values"]: entry["counts"] for entry in ColumnBatch(array).distinct.to_pylist()}
        assert counted == {v: values.count(v) for v in set(values) - {None}}


@settings(max_examples=200, deadline=None)
@given(values=st.lists(st.one_of(st.none(), st.integers(-5, 40), st.integers(-(2 ** 63), 2 ** 63 - 1)), max_size=40),
       cuts=st.lists(st.integers(0, 40), max_size=3), as_float=st.booleans())
def test_uniqueness_counts_every_repeat_across_batches(values, cuts, as_float):
    """Dense integers are marked batch by batch, others sorted: either way every later occurrence of a
    value counts once, nulls never."""
    if as_float:
        values = [None if v is None else float(v) for v in values]
    unique = _UniqueValues("v")
    bounds = [0, *sorted(cuts), len(values)]
    for start, end in zip(bounds, bounds[1:]):
        unique.add(pa.array(values[start:end], type=pa.float64() if as_float else pa.int64()))
    seen: set = set()
    repeats = 0
    for value in values:
        if value is not None:
            repeats += value in seen
            seen.add(value)
    assert unique.check("g", len(values)).value == repeats


def test_uniqueness_of_dense_ids_does_not_copy_the_column():
    """The ids stay in the batches they came in; checking them needs one byte per possible value, not a
    second 8-byte copy of the column (NumPy's allocations are what tracemalloc sees)."""
    import tracemalloc

    import numpy as np

    from mlci.ml.arrow import numpy_to_arrow

    rows = 2_000_000
    unique = _UniqueValues("id")
    ids = np.random.default_rng(1).permutation(rows).astype(np.int64) + 1
    for chunk in np.array_split(ids, 20):
        unique.add(numpy_to_arrow(chunk))
    tracemalloc.start()
    try:
        assert unique.check("g", rows).value == 0
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * rows, f"{peak / 2**20:.1f} MiB while checking {rows * 8 / 2**20:.0f} MiB of ids"
