"""What mlci's own preprocessing steps compute, on plain values and NumPy arrays (no pandas).

The transformers stored in model files (``mlci.ml.features``: ``CategoryText``, ``BooleanAsFloat``,
``DateParts``) and the server's compiled path (``mlci.serve.compiled``) both call these functions, so
training and serving compute one thing, and the serving image needs no pandas:

- a category is its text (``str``), a missing value the one category ``MISSING_CATEGORY``;
- a boolean is 1.0 for true/"true"/"yes"/"1"/"1.0", 0.0 for false/"false"/"no"/"0"/"0.0" (any case,
  surrounding spaces ignored), NaN for anything else or a missing value;
- a datetime is read by the schema's one parser (``mlci.ml.schema_rules.parse_datetime``: ISO 8601, an
  offset converted to UTC, a text without one is UTC), as the training reader reads it; its parts are
  those of that UTC moment, NaN when missing or not a datetime.

A missing value is what pandas' ``isna`` calls one: None, NaN, NaT, ``pandas.NA``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from typing import Any

import numpy as np

from mlci.ml.schema_rules import parse_datetime

MISSING_CATEGORY = "__missing__"
DATETIME_PARTS = ("year", "month", "day", "dayofweek", "hour")
TRUE_TEXT = frozenset({"true", "1", "yes", "1.0"})
FALSE_TEXT = frozenset({"false", "0", "no", "0.0"})


def is_missing(value: Any) -> bool:
    """None, NaN (any float type, Decimal), NaT (NumPy's or pandas'), or ``pandas.NA``."""
    if value is None:
        return True
    if type(value) is str:
        return False
    try:
        return bool(value != value)  # NaN and NaT are the values unequal to themselves
    except TypeError:  # pandas.NA: any comparison with it is NA, whose truth value is ambiguous
        return True


def value_columns(data: Any, *, as_objects: bool = True) -> list[np.ndarray]:
    """The columns of a 2-D input (an array, a list of rows, or a pandas DataFrame, which is read by
    its own methods so that pandas is never imported here) as 1-D arrays. ``as_objects`` gives object
    arrays holding Python scalars, as ``DataFrame.astype(object)`` does; otherwise each column keeps
    its dtype (a datetime64 column stays one)."""
    dtype = object if as_objects else None
    if hasattr(data, "iloc") and getattr(data, "ndim", 2) == 2:
        return [data.iloc[:, index].to_numpy(dtype=dtype) for index in range(data.shape[1])]
    array = np.asarray(data.to_numpy() if hasattr(data, "to_numpy") else data)
    if as_objects:
        array = array.astype(object)
    if array.ndim == 1:
        array = array.reshape(-1, 1)
    return [array[:, index] for index in range(array.shape[1])]


def category_text(values: Iterable[Any]) -> list[str]:
    if type(values) is list and set(map(type, values)) == {str}:  # a batch of texts: each is its own text
        return values.copy()
    return [MISSING_CATEGORY if is_missing(value) else str(value) for value in values]


def boolean_value(value: Any) -> float:
    if is_missing(value):
        return float("nan")
    text = str(value).strip().lower()
    return 1.0 if text in TRUE_TEXT else 0.0 if text in FALSE_TEXT else float("nan")


def boolean_as_float(values: Iterable[Any]) -> np.ndarray:
    return np.array([boolean_value(value) for value in values], dtype=float)


def utc_moments(values: Sequence[Any] | np.ndarray) -> np.ndarray:
    """Values as datetime64[us] (naive UTC; NaT when missing or not a datetime). A datetime64 array is
    taken as it is (the training reader's datetime columns are naive UTC already)."""
    if isinstance(values, np.ndarray) and values.dtype.kind == "M":
        # in microseconds, like the parsed path: day and hour arithmetic in nanoseconds overflows near
        # the datetime64[ns] limits (1677 and 2262)
        return values.astype("datetime64[us]")
    return np.array([_utc_moment(value) for value in values], dtype="datetime64[us]")


def _utc_moment(value: Any) -> datetime | np.datetime64 | None:
    if isinstance(value, str):
        return parse_datetime(value)
    if isinstance(value, datetime):  # also pandas.Timestamp (a datetime subclass); NaT is missing
        if is_missing(value):
            return None
        return value if value.tzinfo is None else value.astimezone(UTC).replace(tzinfo=None)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    if isinstance(value, np.datetime64):
        return value
    return None


def date_parts(values: Sequence[Any] | np.ndarray, parts: Sequence[str]) -> np.ndarray:
    """One float column per part (year, month, day, dayofweek with Monday 0, hour) of each moment."""
    moments = utc_moments(values)
    missing = np.isnat(moments)
    years = moments.astype("datetime64[Y]")
    months = moments.astype("datetime64[M]")
    days = moments.astype("datetime64[D]")  # NumPy floors, so times before 1970 keep their day
    computed = {
        "year": lambda: years.astype(np.int64) + 1970,
        "month": lambda: (months - years).astype(np.int64) + 1,
        "day": lambda: (days - months).astype(np.int64) + 1,
        "dayofweek": lambda: (days.astype(np.int64) + 3) % 7,  # 1970-01-01 was a Thursday
        "hour": lambda: (moments.astype("datetime64[h]") - days).astype(np.int64),
    }
    unknown = [part for part in parts if part not in computed]
    if unknown:
        raise ValueError(f"unknown datetime parts {unknown}; known: {', '.join(DATETIME_PARTS)}")
    out = np.empty((len(moments), len(parts)))
    for index, part in enumerate(parts):
        out[:, index] = np.where(missing, np.nan, computed[part]().astype(float))
    return out
