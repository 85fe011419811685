"""Request validation against the data schema: every problem of every row, as ``{row, field, message}``.

Messages name the rule, never the offending value, so a 422 response cannot echo personal data back.

A batch is first checked column by column (one pass per field over its values), which only answers
whether every value is valid; when anything is not, the record-by-record checks build the error list,
so the errors, their order and their messages never depend on which path found them.
"""

from __future__ import annotations

import math
import re
import sys
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Callable

from mlci.core.dataschema import NUMERIC_TYPES, Column, DataSchema

MAX_ERRORS = 100  # per response: a 1000-row batch of garbage must not produce a huge answer

FieldCheck = Callable[[Any], "str | None"]
ColumnCheck = Callable[[list[Any]], bool]  # True when every (non-null) value of a column passes


@dataclass
class FieldError:
    row: int | None
    field: str | None
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"row": self.row, "field": self.field, "message": self.message}


class RecordValidator:
    """Checks a batch of records (dicts) against the schema's columns.

    Feature columns are required unless nullable; other schema columns (ids) may be sent and are checked
    but not passed to the model; the target and unknown fields are refused unless the schema allows extras.
    """

    def __init__(self, schema: DataSchema, features: list[str], *, accept_unknown_categories: bool) -> None:
        self.features = list(features)
        self.allow_extra = schema.allow_extra_columns
        self.target = schema.target
        self._checks = {name: _column_check(col, accept_unknown_categories)
                        for name, col in schema.columns.items() if name != schema.target}
        self._column_checks = {name: _whole_column_check(col, accept_unknown_categories)
                               for name, col in schema.columns.items() if name != schema.target}
        self._required = [name for name in self.features
                          if name in schema.columns and not schema.columns[name].nullable]

    def validate(self, records: list[Any]) -> tuple[dict[str, list[Any]], list[FieldError]]:
        """The feature columns (name -> values, None for missing) and the problems found."""
        columns = self._valid_columns(records)
        if columns is not None:
            return columns, []
        return self._validate_records(records)

    def _valid_columns(self, records: list[Any]) -> dict[str, list[Any]] | None:
        """The feature columns when every record is valid, checked a column at a time; else None."""
        if not all(isinstance(record, dict) for record in records):
            return None
        present = set().union(*records)
        unchecked = present.difference(self._column_checks)
        if unchecked and (not self.allow_extra or self.target in unchecked):
            return None
        columns: dict[str, list[Any]] = {}
        for name in present.intersection(self._column_checks).union(self.features):
            values = [record.get(name) for record in records]
            given = [value for value in values if value is not None]
            if len(given) < len(values) and name in self._required:
                return None
            if given and name in self._column_checks and not self._column_checks[name](given):
                return None
            columns[name] = values
        return {name: columns[name] for name in self.features}

    def _validate_records(self, records: list[Any]) -> tuple[dict[str, list[Any]], list[FieldError]]:
        columns: dict[str, list[Any]] = {name: [] for name in self.features}
        errors: list[FieldError] = []
        for index, record in enumerate(records):
            if not isinstance(record, dict):
                errors.append(FieldError(index, None, "a record must be a JSON object"))
                continue
            self._check_record(index, record, errors)
            if len(errors) >= MAX_ERRORS:
                break
            for name in self.features:
                columns[name].append(record.get(name))
        return columns, errors[:MAX_ERRORS]

    def _check_record(self, index: int, record: dict[str, Any], errors: list[FieldError]) -> None:
        for name in self._required:
            if record.get(name) is None:
                errors.append(FieldError(index, name, "required field is missing or null"))
        for name, value in record.items():
            check = self._checks.get(name)
            if check is None:
                if name == self.target:
                    errors.append(FieldError(index, name, "the target column is not an input"))
                elif not self.allow_extra:
                    errors.append(FieldError(index, str(name)[:100], "unknown field"))
                continue
            if value is None:
                continue
            problem = check(value)
            if problem:
                errors.append(FieldError(index, name, problem))


def _column_check(column: Column, accept_unknown_categories: bool) -> FieldCheck:
    type_check = _TYPE_CHECKS[column.type]
    rules: list[FieldCheck] = []
    if column.type in NUMERIC_TYPES:
        rules += _range_rules(column.min, column.max, lambda v: v)
    if column.type == "datetime":
        low, high = (_parse_datetime(b) if isinstance(b, str) else None for b in (column.min, column.max))
        rules += _range_rules(low, high, _parse_datetime)
    if column.values is not None and not (accept_unknown_categories and column.type in ("category", "string")):
        allowed = {_category_key(v) for v in column.values}
        rules.append(lambda v: None if _category_key(v) in allowed else "not one of the allowed values")
    if column.pattern is not None and column.type == "string":
        regex = re.compile(column.pattern)
        rules.append(lambda v: None if regex.fullmatch(v) else "does not match the required pattern")

    def check(value: Any) -> str | None:
        problem = type_check(value)
        if problem:
            return problem
        for rule in rules:
            problem = rule(value)
            if problem:
                return problem
        return None

    return check


def _whole_column_check(column: Column, accept_unknown_categories: bool) -> ColumnCheck:
    """The column's rules (as in ``_column_check``) over a list of values at once."""
    checks: list[ColumnCheck]
    if column.type in NUMERIC_TYPES:
        checks = [_all_integers if column.type == "integer" else _all_finite_numbers]
        checks += _column_range_checks(column.min, column.max)
    elif column.type == "boolean":
        checks = [lambda values: _types(values) <= {bool}]
    elif column.type == "category":
        checks = [_all_category_values]
    elif column.type == "string":
        checks = [_all_text] + ([] if column.pattern is None else [_all_matching(re.compile(column.pattern))])
    else:
        low, high = (_parse_datetime(b) if isinstance(b, str) else None for b in (column.min, column.max))
        checks = [_all_datetimes_within(low, high)]
    if column.values is not None and not (accept_unknown_categories and column.type in ("category", "string")):
        allowed = {_category_key(v) for v in column.values}
        checks.append(lambda values: allowed.issuperset(map(_category_key, values)))
    return lambda values: all(rule(values) for rule in checks)


def _types(values: list[Any]) -> set[type]:
    """The exact types (subclasses such as bool are not int here), as the JSON parser makes them."""
    return set(map(type, values))


def _all_finite_numbers(values: list[Any]) -> bool:
    if not _types(values) <= {int, float}:
        return False
    return all(map(math.isfinite, (v for v in values if type(v) is float))) and _all_ints_fit(values)


def _all_integers(values: list[Any]) -> bool:
    if not _types(values) <= {int, float}:
        return False
    return all(map(float.is_integer, (v for v in values if type(v) is float))) and _all_ints_fit(values)


# JSON integers have no size limit, the model's float64 columns do: a larger one would overflow (500).
_LARGEST_FLOAT_INT = int(sys.float_info.max)
_TOO_LARGE = "number too large (beyond the float64 range)"


def _all_ints_fit(values: list[Any]) -> bool:
    return all(-_LARGEST_FLOAT_INT <= v <= _LARGEST_FLOAT_INT for v in values if type(v) is int)


def _int_too_large(value: Any) -> bool:
    return type(value) is int and not -_LARGEST_FLOAT_INT <= value <= _LARGEST_FLOAT_INT


def _all_category_values(values: list[Any]) -> bool:
    if _types(values) == {str}:
        return True
    return all(type(v) in (str, bool) or (type(v) in (int, float) and _check_float(v) is None) for v in values)


def _all_text(values: list[Any]) -> bool:
    return _types(values) == {str}


def _all_matching(regex: re.Pattern) -> ColumnCheck:
    return lambda values: all(map(regex.fullmatch, values))


def _all_datetimes_within(low: datetime | None, high: datetime | None) -> ColumnCheck:
    range_checks = _column_range_checks(low, high)

    def check(values: list[Any]) -> bool:
        if not _all_text(values):
            return False
        parsed = [_parse_datetime(value) for value in values]
        return None not in parsed and all(rule(parsed) for rule in range_checks)
    return check


def _column_range_checks(low: Any, high: Any) -> list[ColumnCheck]:
    checks: list[ColumnCheck] = []
    if low is not None:
        checks.append(lambda values: min(values) >= low)
    if high is not None:
        checks.append(lambda values: max(values) <= high)
    return checks


def _range_rules(low: Any, high: Any, convert: Callable[[Any], Any]) -> list[FieldCheck]:
    rules: list[FieldCheck] = []
    if low is not None:
        rules.append(lambda v: f"below the minimum {_show(low)}" if convert(v) < low else None)
    if high is not None:
        rules.append(lambda v: f"above the maximum {_show(high)}" if convert(v) > high else None)
    return rules


def _show(bound: Any) -> str:
    return bound.isoformat() if isinstance(bound, (date, datetime)) else f"{bound:g}"


def _category_key(value: Any) -> str:
    """Categories compare as text, so 12 and "12" (and 12.0) are one value."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_integer(value: Any) -> str | None:
    if not _is_number(value):
        return "expected an integer"
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        return "expected an integer"
    return _TOO_LARGE if _int_too_large(value) else None


def _check_float(value: Any) -> str | None:
    if not _is_number(value):
        return "expected a number"
    if isinstance(value, float) and not math.isfinite(value):
        return "expected a finite number (NaN and infinity are not allowed)"
    return _TOO_LARGE if _int_too_large(value) else None


def _check_boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else "expected true or false"


def _check_category(value: Any) -> str | None:
    if isinstance(value, (str, bool)) or (_is_number(value) and _check_float(value) is None):
        return None
    return "expected a category value (text or number)"


def _check_string(value: Any) -> str | None:
    return None if isinstance(value, str) else "expected text"


def _check_datetime(value: Any) -> str | None:
    if not isinstance(value, str) or _parse_datetime(value) is None:
        return "expected an ISO 8601 date or date-time text"
    return None


def _parse_datetime(text: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.replace(tzinfo=None)


_TYPE_CHECKS: dict[str, FieldCheck] = {
    "integer": _check_integer, "float": _check_float, "boolean": _check_boolean,
    "category": _check_category, "string": _check_string, "datetime": _check_datetime,
}
