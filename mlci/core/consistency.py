"""Rules that span ``mlci.yaml`` and ``schema.yaml``: a config that names columns the schema cannot back
is refused by ``mlci config check`` (and before evaluation), not discovered as a useless report later.

Only projects with a schema (that evaluate their own models) are checked: ``mlci gate --metrics`` on
files from elsewhere takes its slices from those files. A slice column must be a column of the schema, not the target,
and have few values: per-slice metrics
on a float column (one slice per row) or a column with hundreds of values are noise, and a gate on
one of them cannot be trusted. ``MAX_SLICE_VALUES`` is the limit (documented at evaluation.slices).
"""

from __future__ import annotations

from collections.abc import Iterator

from mlci.core.config import Config
from mlci.core.dataschema import DataSchema
from mlci.core.gates import slice_key
from mlci.core.spec import did_you_mean
from mlci.core.yamlsrc import YamlDocument, config_issue
from mlci.errors import ConfigError, ConfigIssue

MAX_SLICE_VALUES = 50
SLICEABLE_TYPES = ("category", "boolean", "integer")

Problem = tuple[str, str, str | None]  # dotted key path, message, hint


def check_against_schema(config: Config, schema: DataSchema, document: YamlDocument | None) -> None:
    """Raise ``ConfigError`` listing every slice that the schema cannot back."""
    issues: list[ConfigIssue] = []
    for dotted, message, hint in slice_problems(config, schema):
        issues += config_issue(document, dotted, message, hint).issues
    if issues:
        raise ConfigError(issues)


def slice_problems(config: Config, schema: DataSchema) -> Iterator[Problem]:
    for index, column in enumerate(config.evaluation.slices):
        problem = _slice_column_problem(column, schema)
        if problem:
            yield (f"evaluation.slices.{index}", *problem)
    for index, rule in enumerate(config.gates.rules):
        if rule.slice is None:
            continue
        key = f"gates.rules.{index}.slice"
        problem = _slice_column_problem(rule.slice.column, schema)
        if problem:
            yield (f"{key}.column", *problem)
            continue
        if rule.slice.column not in config.evaluation.slices:  # evaluate computes no metrics for it
            yield (f"{key}.column", f"slice column '{rule.slice.column}' is not listed under evaluation.slices, "
                   "so the rule cannot be evaluated", f"add '{rule.slice.column}' to evaluation.slices")
            continue
        allowed = schema.columns[rule.slice.column].values
        if allowed is not None and slice_key(rule.slice.value) not in {slice_key(v) for v in allowed}:
            yield (f"{key}.value", f"'{rule.slice.value}' is not a value of column '{rule.slice.column}', so the "
                   "rule cannot be evaluated", "one of: " + ", ".join(map(str, allowed[:10])))


def _slice_column_problem(column: str, schema: DataSchema) -> tuple[str, str | None] | None:
    if column not in schema.columns:
        return (f"slice column '{column}' is not in the schema",
                did_you_mean(column, schema.columns) or "name a column of schema.yaml")
    if column == schema.target:
        return (f"'{column}' is the target: slicing by it measures each class alone, not the model",
                "slice by an input column")
    spec = schema.columns[column]
    if spec.type not in SLICEABLE_TYPES:
        return (f"'{column}' is a {spec.type} column: it has about one value per row, not a few slices",
                f"slice by a {', '.join(SLICEABLE_TYPES[:-1])} or {SLICEABLE_TYPES[-1]} column (bin numbers "
                "into a category column first)")
    if spec.values is not None and len(spec.values) > MAX_SLICE_VALUES:
        return (f"'{column}' has {len(spec.values)} values; slices are limited to {MAX_SLICE_VALUES}",
                "group its values into a coarser category column")
    return None
