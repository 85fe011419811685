"""mlci's own transformers (CategoryText, BooleanAsFloat, DateParts) compute without pandas, and give
exactly what their former pandas implementation (kept below as the reference) gave, on generated
inputs of both kinds they meet: DataFrames with the training reader's dtypes, and the server's 2-D object
arrays of JSON values, datetimes in every ISO 8601 form that both pandas' ``to_datetime(format="mixed")``
and the schema's one datetime parser (``mlci.ml.schema_rules.parse_datetime``) accept.

Where the pandas implementation answered something else, the new one follows the schema and training,
and the tests below say so case by case: pandas read an offset other than UTC as local time (training
reads it as UTC, as the schema says), refused a batch that mixes offsets or an offset with none, read
ISO week dates as missing, and crashed on pandas.NA in a nullable boolean column.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlci.ml.feature_values import date_parts, is_missing
from mlci.ml.features import BooleanAsFloat, CategoryText, DateParts
from mlci.ml.schema_rules import parse_datetime
from tests.serving_support import WITHOUT_PANDAS

ALL_PARTS = ("year", "month", "day", "dayofweek", "hour")


# -- the pandas implementation these transformers had, verbatim ----------------------------------------

def pandas_category_text(X):
    frame = pd.DataFrame(X)
    out = frame.astype(object).where(frame.notna(), "__missing__")
    return out.map(str).to_numpy(dtype=object)


def pandas_boolean_as_float(X):
    frame = pd.DataFrame(X)

    def column(values):
        text = values.astype(object).map(lambda v: str(v).strip().lower() if v is not None and v == v else "")
        return np.where(text.isin(["true", "1", "yes", "1.0"]), 1.0,
                        np.where(text.isin(["false", "0", "no", "0.0"]), 0.0, np.nan))
    return np.column_stack([column(frame.iloc[:, i]) for i in range(frame.shape[1])])


def pandas_date_parts(X, parts):
    frame = pd.DataFrame(X)
    columns = []
    for i in range(frame.shape[1]):
        stamps = pd.to_datetime(frame.iloc[:, i], errors="coerce", format="mixed")
        columns += [getattr(stamps.dt, {"dayofweek": "day_of_week"}.get(part, part)).astype(float).to_numpy()
                    for part in parts]
    return np.column_stack(columns) if columns else np.empty((len(frame), 0))


def assert_same(new, old):
    assert new.shape == old.shape
    if new.dtype == object:
        assert new.tolist() == old.tolist()
    else:
        np.testing.assert_array_equal(new, old)  # NaN equals NaN here; any other difference fails


# -- generated inputs ---------------------------------------------------------------------------------

TEXTS = st.sampled_from(["true", "False", " YES ", "no", "1", "0", "1.0", "0.0", "y", "", "north", "12",
                         "12.0", "é", "__missing__", "None", "nan"]) | st.text(max_size=8)
JSON_VALUES = st.one_of(st.none(), st.just(math.nan), st.booleans(), st.integers(-10**6, 10**6),
                        st.floats(allow_nan=False, width=64), TEXTS)
SCALARS = st.one_of(JSON_VALUES, st.floats(allow_nan=True, width=32).map(np.float32),
                    st.integers(-1000, 1000).map(np.int64), st.just(np.float64("nan")), st.just(pd.NaT),
                    st.just(np.datetime64("NaT")))


@st.composite
def object_arrays(draw, values=JSON_VALUES):
    rows, columns = draw(st.integers(1, 12)), draw(st.integers(1, 4))
    cells = draw(st.lists(values, min_size=rows * columns, max_size=rows * columns))
    out = np.empty((rows, columns), dtype=object)
    out.ravel()[:] = cells
    return out


def _typed_column(draw, kind, rows):
    if kind == "float64":
        return np.array(draw(st.lists(st.floats(allow_nan=True) | st.none(), min_size=rows, max_size=rows)),
                        dtype=float)
    if kind == "float32":
        return np.array(draw(st.lists(st.floats(width=32), min_size=rows, max_size=rows)), dtype=np.float32)
    if kind == "int64":
        return np.array(draw(st.lists(st.integers(-2**62, 2**62), min_size=rows, max_size=rows)), dtype=np.int64)
    if kind == "bool":
        return np.array(draw(st.lists(st.booleans(), min_size=rows, max_size=rows)), dtype=bool)
    if kind == "nullable boolean":  # the training reader's nullable boolean, with no value missing
        return pd.array(draw(st.lists(st.booleans(), min_size=rows, max_size=rows)), dtype="boolean")
    return np.array(draw(st.lists(TEXTS | st.none(), min_size=rows, max_size=rows)), dtype=object)


@st.composite
def frames(draw):
    """DataFrames with the dtypes the training reader gives (mlci.ml.tabular.frames.pandas_types)."""
    rows = draw(st.integers(1, 12))
    kinds = draw(st.lists(st.sampled_from(["float64", "float32", "int64", "bool", "nullable boolean", "object"]),
                          min_size=1, max_size=4))
    return pd.DataFrame({f"c{i}": _typed_column(draw, kind, rows) for i, kind in enumerate(kinds)})


PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(st.one_of(object_arrays(), object_arrays(SCALARS), frames()))
def test_category_text_equals_the_pandas_implementation(X):
    assert_same(CategoryText().fit(X).transform(X), pandas_category_text(X))


@PROPERTY
@given(st.one_of(object_arrays(), object_arrays(SCALARS), frames()))
def test_boolean_as_float_equals_the_pandas_implementation(X):
    assert_same(BooleanAsFloat().fit(X).transform(X), pandas_boolean_as_float(X))


# Datetimes: every moment that 64-bit nanoseconds hold (the schema's range), written in the ISO 8601 forms
# that pandas' format="mixed" and the schema's parser both read; a column has one kind of UTC designator.
MOMENTS = st.datetimes(min_value=datetime(1677, 9, 22), max_value=datetime(2262, 4, 10, 23, 59, 59, 999999))
UTC_SUFFIXES = ["Z", "z", "+00:00", "-00:00", "+0000", "+00"]


def _iso_text(moment: datetime, form: int, digits: int, separator: str, space: bool) -> str:
    day = f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
    fraction = f"{moment.microsecond:06d}{'123'[:max(0, digits - 6)]}"[:digits]
    text = [day,
            f"{day}{separator}{moment.hour:02d}",
            f"{day}{separator}{moment.hour:02d}:{moment.minute:02d}",
            f"{day}{separator}{moment:%H:%M:%S}",
            f"{day}{separator}{moment:%H:%M:%S}.{fraction}",
            f"{day}{separator}{moment:%H:%M:%S},{fraction}",
            f"{moment.year:04d}{moment.month:02d}{moment.day:02d}",
            f"{moment.year:04d}{moment.month:02d}{moment.day:02d}T{moment:%H%M%S}",
            f"{day}T{moment:%H%M%S}"][form]
    return f" {text} " if space else text


_TIMED_FORMS = (1, 2, 3, 4, 5, 7, 8)


@st.composite
def datetime_columns(draw):
    rows = draw(st.integers(1, 10))
    suffix = draw(st.sampled_from(["", "", *UTC_SUFFIXES]))
    column = []
    for _ in range(rows):
        if draw(st.integers(0, 9)) == 0:
            column.append(draw(st.sampled_from([None, math.nan, ""])))
            continue
        form = draw(st.sampled_from(_TIMED_FORMS if suffix else range(9)))  # a date alone is naive
        text = _iso_text(draw(MOMENTS), form, draw(st.integers(1, 9)), draw(st.sampled_from(["T", "t", " "])),
                         draw(st.booleans()))
        column.append(text.rstrip() + suffix if suffix else text)
    return column


@st.composite
def datetime_inputs(draw):
    columns = draw(st.lists(datetime_columns(), min_size=1, max_size=3))
    rows = min(len(c) for c in columns)
    return np.array([c[:rows] for c in columns], dtype=object).T


@PROPERTY
@given(datetime_inputs(), st.lists(st.sampled_from(ALL_PARTS), min_size=1, max_size=5, unique=True))
def test_date_parts_of_iso_texts_equal_the_pandas_implementation(X, parts):
    for column in X.T:  # every text is one the schema allows (so one the server lets through)
        assert all(is_missing(v) or v == "" or parse_datetime(v) is not None for v in column)
    step = DateParts(parts=tuple(parts)).fit(X)
    assert_same(step.transform(X), pandas_date_parts(X, parts))


@PROPERTY
@given(st.lists(MOMENTS | st.none(), min_size=1, max_size=12), st.integers(0, 10**9 - 1))
def test_date_parts_of_the_training_readers_datetime64_columns_equal_the_pandas_implementation(moments, nanos):
    # the reader's datetime64[ns] column, nanoseconds included (parts before 1970 floor, never round)
    stamps = pd.Series(pd.to_datetime(moments)).astype("datetime64[ns]") + pd.Timedelta(nanoseconds=nanos % 1000)
    X = pd.DataFrame({"when": stamps, "also": stamps[::-1].to_numpy()})
    step = DateParts(parts=ALL_PARTS).fit(X)
    assert_same(step.transform(X), pandas_date_parts(X, ALL_PARTS))
    objects = np.array([[None if m is None else m, m] for m in moments], dtype=object)
    assert_same(DateParts(parts=ALL_PARTS).transform(objects), pandas_date_parts(objects, ALL_PARTS))


# -- where pandas answered otherwise, the schema and training decide ----------------------------------

def test_an_offset_is_read_as_utc_as_the_training_reader_reads_it():
    texts = np.array([["2024-02-29T23:30:00-05:00"], ["2024-03-01T09:15:00+05:30"]], dtype=object)
    parts = DateParts(parts=ALL_PARTS).transform(texts)
    # 04:30 and 03:45 UTC on Friday 1 March
    assert parts.tolist() == [[2024, 3, 1, 4, 4], [2024, 3, 1, 4, 3]]
    with pytest.raises(ValueError, match="Mixed timezones"):  # pandas refused this batch outright
        pandas_date_parts(texts, ALL_PARTS)
    assert pandas_date_parts(texts[:1], ALL_PARTS).tolist() == [[2024, 2, 29, 3, 23]]  # local time, not UTC


def test_a_batch_mixing_utc_and_naive_texts_is_scored_row_by_row():
    texts = np.array([["2024-02-29T13:45:00Z"], ["2024-02-29T13:45:00"], [None]], dtype=object)
    expected = [[2024, 13], [2024, 13], [math.nan, math.nan]]
    np.testing.assert_array_equal(DateParts(parts=("year", "hour")).transform(texts), expected)
    with pytest.raises(ValueError, match="Mixed timezones"):
        pandas_date_parts(texts, ("year", "hour"))


def test_every_text_the_schema_accepts_has_parts_and_every_other_is_missing():
    texts = ["2024-W09-4", "2024-02-29T24:00:00", "31/12/2024", "2024", "1500-01-01", "not a date"]
    parts = date_parts(np.array(texts, dtype=object), ("year", "month", "day"))
    for text, row in zip(texts, parts.tolist()):
        moment = parse_datetime(text)
        if moment is None:
            assert all(math.isnan(v) for v in row), text
        else:
            assert row == [moment.year, moment.month, moment.day], text
    assert parts[0].tolist() == [2024, 2, 29]  # the ISO week date pandas read as missing


def test_a_missing_value_in_a_nullable_boolean_column_is_missing_not_a_crash():
    frame = pd.DataFrame({"flag": pd.array([True, None, False], dtype="boolean")})
    with pytest.raises(TypeError, match="NA"):
        pandas_boolean_as_float(frame)
    np.testing.assert_array_equal(BooleanAsFloat().transform(frame), [[1.0], [math.nan], [0.0]])
    assert CategoryText().transform(frame).tolist() == pandas_category_text(frame).tolist()


@pytest.mark.parametrize("value", [None, math.nan, np.float32("nan"), pd.NaT, np.datetime64("NaT"), pd.NA,
                                   float("nan")])
def test_missing_values_are_those_pandas_calls_missing(value):
    assert is_missing(value) and pd.isna(value)


@pytest.mark.parametrize("value", ["", "nan", 0, 0.0, False, np.inf, datetime(2024, 1, 1, tzinfo=UTC),
                                   timedelta(0)])
def test_present_values_are_present(value):
    assert not is_missing(value) and not pd.isna(value)


def test_the_transformers_and_the_server_need_no_pandas():
    import subprocess
    import sys

    script = WITHOUT_PANDAS + ("import numpy as np\n"
              "from mlci.ml.features import BooleanAsFloat, CategoryText, DateParts\n"
              "X = np.array([['2024-02-29T13:45:00Z', 'yes', None]], dtype=object)\n"
              "print(DateParts(parts=('year', 'hour')).transform(X[:, :1]).tolist(),"
              " BooleanAsFloat().transform(X[:, 1:2]).tolist(), CategoryText().transform(X[:, 2:]).tolist())\n"
              "import mlci.serve.app\n"
              "assert 'pandas' not in sys.modules\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[[2024.0, 13.0]] [[1.0]] [['__missing__']]"


def test_date_parts_near_the_nanosecond_limits_of_datetime64():
    """Found by the property test above: day and hour arithmetic in datetime64[ns] overflowed near 1677."""
    import numpy as np

    from mlci.ml.feature_values import date_parts

    moments = np.array(["1677-09-22T00:00:00", "2262-04-11T23:00:00"], dtype="datetime64[ns]")
    assert date_parts(moments, ["year", "month", "day", "dayofweek", "hour"]).tolist() == [
        [1677, 9, 22, 2, 0], [2262, 4, 11, 4, 23]]
