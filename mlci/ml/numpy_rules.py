"""The compiled column rules (``mlci.ml.schema_rules``) evaluated as ``mlci monitor`` profiles data:
numeric columns as float64 NumPy arrays (datetimes as seconds since 1970 UTC, missing values as NaN),
categorical columns as the text of each distinct value with its count.

Both answer which present values break a value rule (type, finiteness, bounds, allowed values,
pattern); a missing value is never "outside the schema" here: the monitor counts missing values
apart, against the reference's share.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import numpy as np

from mlci.ml.schema_rules import INT64_RANGE, TEXT_TYPES, ColumnRules, epoch_nanoseconds, parse_datetime

_NANOSECONDS = np.float64(1e9)


def outside_numbers(rules: ColumnRules, values: np.ndarray) -> np.ndarray:
    """A boolean mask of the values that break a rule; NaN (missing) never does."""
    values = np.asarray(values, dtype=np.float64)
    present = ~np.isnan(values)
    bad = np.zeros(values.shape, dtype=bool)
    infinite = np.isinf(values)
    if rules.type == "integer":
        bad |= present & (infinite | (values != np.floor(values)) | (values < INT64_RANGE[0])
                          | (values > 2.0 ** 63))
    elif rules.refuse_infinite:
        bad |= infinite
    low, high = _number_bounds(rules)
    bounded = present & ~infinite if rules.infinity_is_unbounded else present
    if low is not None:
        bad |= bounded & (values < low)
    if high is not None:
        bad |= bounded & (values > high)
    if rules.allowed is not None:
        allowed = np.array(sorted(_allowed_numbers(rules.type, rules.allowed)), dtype=np.float64)
        bad |= present & ~np.isin(values, allowed)
    return bad


def _number_bounds(rules: ColumnRules) -> tuple[float | None, float | None]:
    """Bounds in the arrays' terms: datetimes as float seconds, computed as the values are (int64
    nanoseconds to float64, divided by 1e9) so a value equal to a bound compares equal."""
    if rules.type == "datetime":
        return _seconds_or_none(rules.earliest), _seconds_or_none(rules.latest)
    return rules.minimum, rules.maximum


def _seconds_or_none(moment: datetime | None) -> float | None:
    return None if moment is None else _seconds(moment)


def _seconds(moment: datetime) -> float:
    return np.float64(epoch_nanoseconds(moment)) / _NANOSECONDS


def _allowed_numbers(col_type: str, allowed: Iterable[Any]) -> list[float]:
    if col_type == "datetime":
        return [_seconds(v) for v in allowed]
    return [float(v) for v in allowed]


def outside_text(rules: ColumnRules, text: str) -> bool:
    """Whether one distinct categorical value, as its text (``category_key``), breaks a rule."""
    if rules.type in TEXT_TYPES:
        if rules.allowed is not None and text not in rules.allowed:
            return True
        return rules.pattern is not None and not rules.pattern.fullmatch(text)
    if rules.type == "boolean":
        value = {"True": True, "False": False}.get(text)
        return value is None or (rules.allowed is not None and value not in rules.allowed)
    if rules.type == "datetime":
        moment = parse_datetime(text)
        return moment is None or rules.in_range(moment) is not None \
            or (rules.allowed is not None and moment not in rules.allowed)
    try:
        number = float(text)
    except ValueError:
        return True
    return bool(outside_numbers(rules, np.array([number]))[0])


def outside_counts(rules: ColumnRules, counts: dict[str, int]) -> int:
    """How many of the counted categorical values break a rule."""
    return sum(count for text, count in counts.items() if outside_text(rules, text))


__all__ = ["outside_counts", "outside_numbers", "outside_text"]
