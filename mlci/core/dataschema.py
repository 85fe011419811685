"""The data schema (``schema.yaml``): what each column of a dataset must look like.

``mlci schema infer`` writes one; ``mlci validate`` checks data against it; ``mlci train`` derives its
preprocessing from it; the model server validates requests with it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml

from mlci.core.spec import build, opt, section
from mlci.core.yamlsrc import load_yaml_file

ColumnType = Literal["integer", "float", "boolean", "category", "string", "datetime"]
NUMERIC_TYPES = ("integer", "float")


@section
class Column:
    """Rules for one column."""

    type: ColumnType = opt(help="integer, float, boolean, category, string or datetime")
    nullable: bool = opt(True, help="missing values are allowed")
    min: float | str | None = opt(None, help="smallest allowed value (numbers; ISO dates for datetime, "
                                             "without an offset meaning UTC)")
    max: float | str | None = opt(None, help="largest allowed value")
    values: list[str | int | float | bool] | None = opt(None, help="the allowed values (categories)")
    pattern: str | None = opt(None, help="regular expression every value must match in full, not just "
                                         "contain (string and category columns)")
    unique: bool = opt(False, help="no value may repeat")
    finite: bool = opt(True, help="float values must be finite (no inf or -inf); NaN is a missing value")
    feature: bool = opt(True, help="used as a model input (false for ids and the like)")

    def check(self):
        if self.pattern is not None:
            import re
            try:
                re.compile(self.pattern)
            except re.error as exc:
                yield ("pattern",), f"invalid regular expression: {exc}", "check the escaping"
            if self.type not in ("string", "category"):
                yield ("pattern",), f"a pattern applies to string and category columns, not {self.type}", \
                    "remove it, or make the column a string"
        if self.type in NUMERIC_TYPES:
            for key in ("min", "max"):
                if isinstance(getattr(self, key), str):
                    yield (key,), f"{key} of a {self.type} column must be a number", None
        if self.min is not None and self.max is not None and type(self.min) is type(self.max) \
                and self.min > self.max:
            yield ("min",), f"min {self.min} is above max {self.max}", "swap them"


@section
class RowBounds:
    min: int = opt(1, min=0, help="fewest rows (0 allows an empty file with a header)")
    max: int | None = opt(None, min=0, help="most rows")

    def check(self):
        if self.max is not None and self.min > self.max:
            yield ("min",), f"min {self.min} is above max {self.max}: no file can pass", "swap them"


@section
class DataSchema:
    """Columns, the target, and table-level rules."""

    columns: dict[str, Column] = opt(help="column name -> rules, in file order")
    target: str | None = opt(None, help="the column the model predicts")
    rows: RowBounds = opt(RowBounds, help="row-count bounds")
    allow_duplicate_rows: bool = opt(True, help="identical rows are allowed")
    allow_extra_columns: bool = opt(False, help="columns not listed here are allowed")

    def check(self):
        if not self.columns:
            yield ("columns",), "a schema needs at least one column", "run `mlci schema infer DATA`"
        if self.target is not None and self.target not in self.columns:
            yield ("target",), f"target '{self.target}' is not a column", None

    @property
    def features(self) -> dict[str, Column]:
        return {n: c for n, c in self.columns.items() if c.feature and n != self.target}


def load_schema(path: Path, display_name: str | None = None) -> DataSchema:
    return build(DataSchema, load_yaml_file(path, display_name=display_name))


def schema_to_dict(schema: DataSchema) -> dict[str, Any]:
    """A plain, minimal mapping (defaults left out) suitable for YAML."""
    columns = {}
    for name, col in schema.columns.items():
        entry: dict[str, Any] = {"type": col.type}
        for key, default in (("nullable", True), ("min", None), ("max", None), ("values", None),
                             ("pattern", None), ("unique", False), ("finite", True),
                             ("feature", True)):
            value = getattr(col, key)
            if value != default:
                entry[key] = value
        columns[name] = entry
    out: dict[str, Any] = {"columns": columns}
    if schema.target:
        out["target"] = schema.target
    out["rows"] = {"min": schema.rows.min, **({"max": schema.rows.max} if schema.rows.max else {})}
    if not schema.allow_duplicate_rows:
        out["allow_duplicate_rows"] = False
    return out


def dump_schema(schema: DataSchema) -> str:
    return yaml.safe_dump(schema_to_dict(schema), sort_keys=False, allow_unicode=True)
