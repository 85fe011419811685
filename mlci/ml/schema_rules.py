"""The one compiler of the data schema's column rules, and the one datetime parser.

``compile_column`` turns a column of ``schema.yaml`` (``mlci.core.dataschema.Column``) into an immutable
``ColumnRules``: every rule normalised once, so that the three evaluators that read it agree by
construction (Arrow batches in ``mlci validate``: ``mlci.ml.arrow_rules``; request records in the model
server: ``mlci.ml.record_rules``; NumPy values and category counts in ``mlci monitor``:
``mlci.ml.numpy_rules``).

The meaning of each rule (docs/validation.md says the same):

- ``pattern`` must match the WHOLE text (``re.fullmatch``), on string and category columns;
- datetimes are ISO 8601 texts; one with a UTC offset is converted to UTC, one without (naive) IS UTC;
  a datetime must lie within what 64-bit nanoseconds since 1970 hold (1677-09-22 to 2262-04-10);
- ``min``/``max`` bound numbers and datetimes (compared as UTC instants), inclusive;
- ``finite: true`` refuses inf and -inf in float columns; with ``finite: false`` infinities are allowed
  and the bounds apply to finite values only. NaN is a missing value, never a number;
- integers are 64-bit signed; a float column's number too large for a double becomes an infinity;
- ``values`` lists the allowed values; categories compare as text, with ``12``, ``12.0`` and ``"12"``
  naming one category; datetimes compare as instants, numbers as numbers;
- ``nullable: false`` refuses a missing value (null, or NaN in a float column).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mlci.core.dataschema import Column, DataSchema
from mlci.errors import ConfigError

INT64_RANGE = (-(2 ** 63), 2 ** 63 - 1)
DATETIME_RANGE = (datetime(1677, 9, 22), datetime(2262, 4, 11))  # [low, high): int64 nanoseconds
TEXT_TYPES = ("string", "category")
_EPOCH = datetime(1970, 1, 1)


def parse_datetime(text: Any) -> datetime | None:
    """An ISO 8601 date or date-time text as a naive UTC datetime; None when it is not one or lies
    outside ``DATETIME_RANGE``. An offset is converted to UTC; a text without one is UTC already."""
    parsed = _parse_iso(text)
    return parsed if parsed is not None and DATETIME_RANGE[0] <= parsed < DATETIME_RANGE[1] else None


def _parse_iso(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:  # the common case first: a clean ISO text
        parsed = datetime.fromisoformat(text)
        return parsed if parsed.tzinfo is None else parsed.astimezone(UTC).replace(tzinfo=None)
    except (ValueError, OverflowError):
        pass
    text = text.strip()
    if len(text) > 10 and text[10] == "t":  # RFC 3339 allows a lower-case t and z
        text = f"{text[:10]}T{text[11:]}"
    if text.endswith("z"):
        text = text[:-1] + "Z"
    try:
        parsed = datetime.fromisoformat(text)
        if parsed.tzinfo is not None:
            parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    except (ValueError, OverflowError):
        return None
    return parsed


def epoch_nanoseconds(moment: datetime) -> int:
    """A naive UTC datetime as integer nanoseconds since 1970 (exact, as Arrow's timestamp[ns])."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def category_key(value: Any) -> str:
    """The name of a category: its text, with ``12.0`` and ``12`` naming the same category."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


@dataclass(frozen=True)
class ColumnRules:
    """Every rule of one column, normalised: what each evaluator reads, and nothing else.

    ``minimum``/``maximum`` are numbers (floats for float columns); ``earliest``/``latest`` naive UTC
    datetimes. ``allowed`` holds the allowed values in the column's own terms: category keys (text)
    for category and string columns, numbers, booleans, or naive UTC datetimes.
    """

    name: str
    type: str
    nullable: bool = True
    unique: bool = False
    refuse_infinite: bool = False
    minimum: float | int | None = None
    maximum: float | int | None = None
    earliest: datetime | None = None
    latest: datetime | None = None
    allowed: frozenset | None = None
    allowed_as_written: tuple | None = None
    pattern: re.Pattern | None = None

    @property
    def has_range(self) -> bool:
        return self.low is not None or self.high is not None

    @property
    def low(self) -> Any:
        return self.earliest if self.type == "datetime" else self.minimum

    @property
    def high(self) -> Any:
        return self.latest if self.type == "datetime" else self.maximum

    @property
    def infinity_is_unbounded(self) -> bool:
        """With ``finite: false`` infinities are allowed, so the bounds apply to finite values."""
        return self.type == "float" and not self.refuse_infinite

    def in_range(self, value: Any) -> str | None:
        """"min"/"max" for a number or naive UTC datetime outside the bounds, else None."""
        if self.infinity_is_unbounded and isinstance(value, float) and math.isinf(value):
            return None
        if self.low is not None and value < self.low:
            return "min"
        if self.high is not None and value > self.high:
            return "max"
        return None


def compile_column(name: str, column: Column) -> ColumnRules:
    """One column's rules, checked and normalised; a rule that cannot apply is a ``ConfigError``
    naming ``columns.<name>.<key>``."""
    where = f"columns.{name}"
    minimum = maximum = earliest = latest = None
    if column.type in ("integer", "float"):
        minimum, maximum = (_number_bound(getattr(column, k), column.type, f"{where}.{k}") for k in ("min", "max"))
    elif column.type == "datetime":
        earliest = _datetime_bound(column.min, f"{where}.min", lower=True)
        latest = _datetime_bound(column.max, f"{where}.max", lower=False)
    allowed = None if column.values is None else frozenset(_allowed(column, f"{where}.values"))
    pattern = None if column.pattern is None else re.compile(column.pattern)  # text columns: Column.check
    return ColumnRules(name=name, type=column.type, nullable=column.nullable, unique=column.unique,
                       refuse_infinite=column.type == "float" and column.finite,
                       minimum=minimum, maximum=maximum, earliest=earliest, latest=latest, allowed=allowed,
                       allowed_as_written=None if column.values is None else tuple(column.values),
                       pattern=pattern)


def compile_schema(schema: DataSchema) -> dict[str, ColumnRules]:
    """Every column's rules, in schema order (compile once per run, not per batch or request)."""
    return {name: compile_column(name, column) for name, column in schema.columns.items()}


def _number_bound(value: Any, col_type: str, where: str) -> float | int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where}: {value!r} is not a number", hint="write a number")
    if col_type == "float":
        return float(value)
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _datetime_bound(value: Any, where: str, *, lower: bool) -> datetime | None:
    """A bound beyond what a column can hold bounds nothing on its own side (``min: 0001-01-01``)."""
    if value is None:
        return None
    moment = _parse_iso(str(value))
    if moment is None:
        raise ConfigError(f"{where}: '{value}' is not an ISO 8601 date or time",
                          hint="write it quoted, as '2024-01-31' or '2024-01-31T12:00:00'")
    if (moment < DATETIME_RANGE[0]) if lower else (moment >= DATETIME_RANGE[1]):
        return None
    if not DATETIME_RANGE[0] <= moment < DATETIME_RANGE[1]:
        raise ConfigError(f"{where}: '{value}' leaves no datetime a column can hold "
                          f"({DATETIME_RANGE[0].date()} to {DATETIME_RANGE[1].date()})", hint="check the year")
    return moment


def _allowed(column: Column, where: str) -> list[Any]:
    def misfit() -> ConfigError:
        return ConfigError(f"{where}: {column.values!r} do not all fit the column type {column.type}",
                           hint="make the values match the column's type")

    values = list(column.values or [])
    if column.type in TEXT_TYPES:
        return [category_key(v) for v in values]
    if column.type == "boolean":
        if not all(isinstance(v, bool) for v in values):
            raise misfit()
        return values
    if column.type == "datetime":
        moments = [parse_datetime(str(v)) for v in values]
        if None in moments:
            raise misfit()
        return moments
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in values):
        raise misfit()
    if column.type == "integer":
        if any(isinstance(v, float) and not v.is_integer() for v in values):
            raise misfit()
        return [int(v) for v in values]
    return [float(v) for v in values]
