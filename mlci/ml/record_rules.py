"""The compiled column rules (``mlci.ml.schema_rules``) evaluated on JSON values, as the model server
receives them: one value at a time (``value_check``: the first problem, as a message), or a whole
column of values at once (``column_check``: only whether every value passes, for the fast path).

Messages name the rule, never the value, so an answer cannot echo personal data back. JSON types are
exact: ``true`` is not the integer 1, and ``"12"`` is not the number 12 (except as a category).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from datetime import datetime
from operator import attrgetter
from typing import Any

from mlci.ml.schema_rules import (
    DATETIME_RANGE,
    INT64_RANGE,
    TEXT_TYPES,
    ColumnRules,
    category_key,
    parse_datetime,
)

ValueCheck = Callable[[Any], "str | None"]  # the first problem of one present value, or None
ColumnCheck = Callable[[list[Any]], bool]  # True when every present value of a column passes

MISSING = "required field is missing or null"
_TYPE_MESSAGES = {
    "integer": "expected an integer", "float": "expected a number", "boolean": "expected true or false",
    "category": "expected a category value (text or number)", "string": "expected text",
    "datetime": "expected an ISO 8601 date or date-time text",
}
_INFINITE = "expected a finite number (NaN and infinity are not allowed)"
_NAN = "expected a number (NaN is not one: send null for a missing value)"
_NOT_ALLOWED = "not one of the allowed values"
_NO_MATCH = "does not match the required pattern"


def is_missing(rules: ColumnRules, value: Any) -> bool:
    """JSON spells a missing value ``null``. (NaN, a missing value in data files, is no JSON number: the
    ``NaN`` token that Python's parser lets through is refused as a type error.)"""
    return value is None


def typed(rules: ColumnRules, value: Any) -> Any:
    """A present JSON value as the rules compare it, or ``_WRONG_TYPE``: an int (64-bit), a float
    (a float column's integer beyond a double's range is an infinity, as when Arrow reads its text),
    a bool, a category key, a text, or a naive UTC datetime."""
    kind = type(value)
    if rules.type == "integer":
        if kind is float and value.is_integer():
            value, kind = int(value), int
        return value if kind is int and INT64_RANGE[0] <= value <= INT64_RANGE[1] else _WRONG_TYPE
    if rules.type == "float":
        if kind is int:
            # A JSON integer is exact: past the largest double it is an infinity even where rounding to
            # the nearest double would give the largest one (as the published `maximum` says).
            if abs(value) > _LARGEST_DOUBLE_AS_INT:
                return math.inf if value > 0 else -math.inf
            return float(value)
        return value if kind is float and value == value else _WRONG_TYPE
    if rules.type == "boolean":
        return value if kind is bool else _WRONG_TYPE
    if rules.type == "category":
        if kind is str or kind is bool or (kind in (int, float) and math.isfinite(value)):
            return category_key(value)
        return _WRONG_TYPE
    if rules.type == "string":
        return value if kind is str else _WRONG_TYPE
    moment = parse_datetime(value)
    return _WRONG_TYPE if moment is None else moment


_WRONG_TYPE = object()
_LARGEST_DOUBLE_AS_INT = int(sys.float_info.max)


def value_check(rules: ColumnRules, *, accept_unknown_categories: bool = False) -> ValueCheck:
    """The first problem of one present (not missing) value, as a message; None when it passes."""
    type_message = _TYPE_MESSAGES[rules.type]
    allowed = _allowed(rules, accept_unknown_categories)
    low, high = _shown(rules.low), _shown(rules.high)

    def check(value: Any) -> str | None:
        if type(value) is float and value != value:
            return _INFINITE if rules.refuse_infinite else _NAN
        value = typed(rules, value)
        if value is _WRONG_TYPE:
            return type_message
        if rules.refuse_infinite and math.isinf(value):
            return _INFINITE
        broken = rules.in_range(value) if rules.has_range else None
        if broken:
            return f"below the minimum {low}" if broken == "min" else f"above the maximum {high}"
        if allowed is not None and value not in allowed:
            return _NOT_ALLOWED
        if rules.pattern is not None and rules.type in TEXT_TYPES and not rules.pattern.fullmatch(value):
            return _NO_MATCH
        return None

    return check


def column_check(rules: ColumnRules, *, accept_unknown_categories: bool = False) -> ColumnCheck:
    """Whether every present value of a column passes ``value_check``: the common case (all text, all
    numbers) is answered with one pass per rule over the column."""
    one = value_check(rules, accept_unknown_categories=accept_unknown_categories)
    allowed = _allowed(rules, accept_unknown_categories)
    pattern = rules.pattern if rules.type in TEXT_TYPES else None

    def check(values: list[Any]) -> bool:
        kinds = set(map(type, values))
        if rules.type in TEXT_TYPES and kinds == {str}:  # a text is its own category key
            return (allowed is None or allowed.issuperset(values)) \
                and (pattern is None or all(map(pattern.fullmatch, values)))
        if rules.type == "float" and kinds <= {float, int} and (kinds == {float} or _small_ints(values)):
            numbers = [float(v) for v in values] if int in kinds else values
            if abs(sum(numbers)) < math.inf:  # no NaN and no infinity: either would make the sum one
                return _bounds_pass(rules, min(numbers), max(numbers)) \
                    and (allowed is None or allowed.issuperset(numbers))
            return not any(map(math.isnan, numbers)) and _numbers_pass(rules, numbers, allowed)
        if rules.type == "boolean" and kinds == {bool}:
            return allowed is None or allowed.issuperset(values)
        if rules.type == "integer" and kinds <= {int, float}:
            if float in kinds and not all(map(float.is_integer, values if kinds == {float} else
                                              [v for v in values if type(v) is float])):
                return False
            # whole numbers within 64 bits: finite, so only the bounds and the allowed values are left
            low, high = min(values), max(values)
            return INT64_RANGE[0] <= low and high <= INT64_RANGE[1] and _bounds_pass(rules, low, high) \
                and (allowed is None or allowed.issuperset(values))
        if rules.type == "datetime" and kinds == {str}:
            moments = _moments(values)
            return None not in moments and _within(rules, moments) \
                and (allowed is None or allowed.issuperset(moments))
        return all(one(v) is None for v in values)

    return check


def _moments(texts: list[str]) -> list[datetime | None]:
    """``parse_datetime`` of each text: in one C-level pass when every text is a naive ISO 8601 text
    within ``DATETIME_RANGE`` (the usual batch), else text by text."""
    try:
        moments = list(map(datetime.fromisoformat, texts))
    except (ValueError, OverflowError):
        return list(map(parse_datetime, texts))
    if moments and set(map(_TZINFO, moments)) == {None} \
            and DATETIME_RANGE[0] <= min(moments) and max(moments) < DATETIME_RANGE[1]:
        return list[datetime | None](moments)
    return list(map(parse_datetime, texts))


_TZINFO = attrgetter("tzinfo")


def _small_ints(values: list[Any]) -> bool:
    return all(-(2 ** 1000) < v < 2 ** 1000 for v in values if type(v) is int)


def _within(rules: ColumnRules, values: list[Any]) -> bool:
    return (rules.low is None or min(values) >= rules.low) and (rules.high is None or max(values) <= rules.high)


def _bounds_pass(rules: ColumnRules, low: Any, high: Any) -> bool:
    """``_within`` from a column's smallest and largest value, found once."""
    return (rules.low is None or low >= rules.low) and (rules.high is None or high <= rules.high)


def _numbers_pass(rules: ColumnRules, numbers: list[Any], allowed: frozenset | None) -> bool:
    if rules.refuse_infinite or rules.type == "integer":
        if not all(map(math.isfinite, numbers)):
            return False
        in_range = numbers
    else:
        in_range = [v for v in numbers if not math.isinf(v)] if any(map(math.isinf, numbers)) else numbers
    if in_range and not _within(rules, in_range):
        return False
    return allowed is None or allowed.issuperset(numbers)


def _allowed(rules: ColumnRules, accept_unknown_categories: bool) -> frozenset | None:
    """The allowed values, unless the server takes unknown categories (its models encode them)."""
    if accept_unknown_categories and rules.type in TEXT_TYPES:
        return None
    return rules.allowed


def _shown(bound: Any) -> str:
    if bound is None:
        return ""
    return bound.isoformat() if isinstance(bound, datetime) else f"{bound:g}"
