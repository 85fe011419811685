#!/usr/bin/env python3
"""Regenerate the files derived from mlci's config classes: schemas/*.json and docs/config.md."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

from mlci.core.config import Config
from mlci.core.dataschema import DataSchema
from mlci.core.spec import MISSING
from mlci.ops.project.schemas import json_schema_text

ROOT = Path(__file__).resolve().parent.parent


def type_text(tp) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if origin is list:
        return f"list of {type_text(args[0])}"
    if origin is dict:
        return f"map of {type_text(args[1])}"
    if args and type(None) in args:
        inner = [a for a in args if a is not type(None)]
        return " or ".join(type_text(a) for a in inner) + " (optional)"
    if dataclasses.is_dataclass(tp):
        return "section"
    return getattr(tp, "__name__", str(tp))


def default_text(field) -> str:
    if field.default is not MISSING:
        return "–" if field.default is None else f"`{field.default}`"
    if field.default_factory is not MISSING:
        value = field.default_factory()
        return f"`{value}`" if isinstance(value, (list, dict)) else "see section"
    return "**required**"


def section_rows(cls, prefix: str, out: list[str], seen: set) -> None:
    hints = typing.get_type_hints(cls)
    nested = []
    for field in dataclasses.fields(cls):
        key = f"{prefix}{field.name}"
        out.append(f"| `{key}` | {type_text(hints[field.name])} | {default_text(field)} | "
                   f"{field.metadata.get('help', '')} |")
        inner = [a for a in (hints[field.name], *typing.get_args(hints[field.name])) if dataclasses.is_dataclass(a)]
        for sub in inner:
            sub_prefix = f"{key}[]." if typing.get_origin(hints[field.name]) in (list,) else (
                f"{key}.<name>." if typing.get_origin(hints[field.name]) is dict else f"{key}.")
            nested.append((sub, sub_prefix))
    for sub, sub_prefix in nested:
        if (sub, sub_prefix) not in seen:
            seen.add((sub, sub_prefix))
            section_rows(sub, sub_prefix, out, seen)


def config_doc() -> str:
    lines = ["# Configuration reference", "",
             "Generated from mlci's config classes by `scripts/gen_docs.py`; do not edit by hand.",
             "Editors can check both files with the JSON Schemas in `schemas/`.", "",
             "Precedence: command-line flag > `MLCI_*` environment variable > file > default. "
             "An environment variable names a key path with double underscores, e.g. "
             "`MLCI_MODEL__SEED=7` or `MLCI_MONITOR__PUSHGATEWAY=http://pushgateway:9091`.", "",
             "Unknown keys are errors (with a did-you-mean suggestion), so a mistyped threshold is never ignored.",
             ""]
    for title, cls in (("`mlci.yaml`", Config), ("`schema.yaml` (the data schema)", DataSchema)):
        lines += [f"## {title}", "", "| key | type | default | meaning |", "|---|---|---|---|"]
        section_rows(cls, "", lines, set())
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    (ROOT / "schemas").mkdir(exist_ok=True)
    (ROOT / "schemas" / "mlci.schema.json").write_text(json_schema_text())
    (ROOT / "schemas" / "schema.schema.json").write_text(json_schema_text(data=True))
    (ROOT / "docs" / "config.md").write_text(config_doc())
    print("wrote schemas/mlci.schema.json, schemas/schema.schema.json, docs/config.md")


if __name__ == "__main__":
    main()
