"""The JSON Schemas of mlci.yaml and schema.yaml, published under ``schemas/`` for editors."""

from __future__ import annotations

import json

from mlci.core.config import Config
from mlci.core.dataschema import DataSchema
from mlci.core.spec import json_schema


def json_schema_text(*, data: bool = False) -> str:
    cls, title = (DataSchema, "mlci data schema (schema.yaml)") if data else (Config, "mlci project (mlci.yaml)")
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": title, **json_schema(cls)}
    return json.dumps(schema, indent=2) + "\n"
