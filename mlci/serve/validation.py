"""Request validation against the data schema: every problem of every row, as ``{row, field, message}``.

Messages name the rule, never the offending value, so a 422 response cannot echo personal data back.
The rules are the schema's compiled rules (``mlci.ml.schema_rules``), the same that ``mlci validate``
and ``mlci monitor`` read; ``mlci.ml.record_rules`` evaluates them on JSON values.

A batch is first checked column by column (one pass per field over its values), which only answers
whether every value is valid; when anything is not, the record-by-record checks build the error list,
so the errors, their order and their messages never depend on which path found them.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import repeat
from operator import itemgetter
from typing import Any

from mlci.core.dataschema import DataSchema
from mlci.ml.record_rules import MISSING, column_check, is_missing, value_check
from mlci.ml.schema_rules import compile_schema

MAX_ERRORS = 100  # per response: a 1000-row batch of garbage must not produce a huge answer


@dataclass
class FieldError:
    row: int | None
    field: str | None
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"row": self.row, "field": self.field, "message": self.message}


def _columns(records: list[dict[str, Any]], present: set[str], names: set[str]) -> dict[str, list[Any]]:
    """The values of each of ``names`` (None where a record lacks it), one list per name. When every
    record has every field (the usual batch), the records are read and transposed in C."""
    if set(map(len, records)) == {len(present)} and len(present) > 1:
        fields = list(present)
        columns = dict(zip(fields, map(list, zip(*map(itemgetter(*fields), records)))))
        absent = [None] * len(records)
        return {name: columns[name] if name in columns else absent.copy() for name in names}
    return {name: [record.get(name) for record in records] for name in names}


class RecordValidator:
    """Checks a batch of records (dicts) against the schema's columns.

    Feature columns are required unless nullable; other schema columns (ids) may be sent and are checked
    (a non-nullable one may be left out, but not sent as null) and not passed to the model; the target
    and unknown fields are refused unless the schema allows extras.
    """

    def __init__(self, schema: DataSchema, features: list[str], *, accept_unknown_categories: bool) -> None:
        self.features = list(features)
        self.allow_extra = schema.allow_extra_columns
        self.target = schema.target
        rules = {name: r for name, r in compile_schema(schema).items() if name != schema.target}
        self._rules = rules
        self._checks = {name: value_check(r, accept_unknown_categories=accept_unknown_categories)
                        for name, r in rules.items()}
        self._column_checks = {name: column_check(r, accept_unknown_categories=accept_unknown_categories)
                               for name, r in rules.items()}
        self._required = [name for name in self.features if name in rules and not rules[name].nullable]
        self._not_null = {name for name, r in rules.items() if not r.nullable}

    def validate(self, records: list[Any]) -> tuple[dict[str, list[Any]], list[FieldError]]:
        """The feature columns (name -> values, None for missing) and the problems found."""
        columns = self._valid_columns(records)
        if columns is not None:
            return columns, []
        return self._validate_records(records)

    def _valid_columns(self, records: list[Any]) -> dict[str, list[Any]] | None:
        """The feature columns when every record is valid, checked a column at a time; else None."""
        if not all(map(isinstance, records, repeat(dict))):
            return None
        present = set().union(*records)
        unchecked = present.difference(self._column_checks)
        if unchecked and (not self.allow_extra or self.target in unchecked):
            return None
        names = present.intersection(self._column_checks).union(self.features)
        columns = _columns(records, present, names)
        for name in names:
            values = columns[name]
            given = values
            if None in values:  # JSON's missing value (``is_missing``)
                given = [v for v in values if v is not None]
                if name in self._not_null and (
                        name in self._required or any(name in r and r[name] is None for r in records)):
                    return None  # a non-nullable column may be left out (unless required), never sent as null
            if given and name in self._column_checks and not self._column_checks[name](given):
                return None
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
            if name not in record or is_missing(self._rules[name], record[name]):
                errors.append(FieldError(index, name, MISSING))
        for name, value in record.items():
            check = self._checks.get(name)
            if check is None:
                if name == self.target:
                    errors.append(FieldError(index, name, "the target column is not an input"))
                elif not self.allow_extra:
                    errors.append(FieldError(index, str(name)[:100], "unknown field"))
                continue
            if is_missing(self._rules[name], value):
                if name in self._not_null and name not in self._required:  # sent as null: refused too
                    errors.append(FieldError(index, name, MISSING))
                continue
            problem = check(value)
            if problem:
                errors.append(FieldError(index, name, problem))
