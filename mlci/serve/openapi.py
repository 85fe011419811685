"""The OpenAPI 3.1 document of the server, with the request schema generated from the data schema's
compiled rules: the document states every rule the server enforces on a record.

Datetime bounds have no keyword in JSON Schema 2020-12; they are stated as ``formatMinimum`` and
``formatMaximum`` (the keywords of ajv-formats and the JSON Schema format-assertion proposal), RFC 3339 in UTC.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mlci.ml.schema_rules import INT64_RANGE, TEXT_TYPES, ColumnRules, category_key, compile_schema

_JSON_TYPES = {"integer": ["integer"], "float": ["number"], "boolean": ["boolean"],
               "category": ["string", "number", "boolean"], "string": ["string"], "datetime": ["string"]}
_LARGEST_DOUBLE = 1.7976931348623157e308


def column_schema(rules: ColumnRules, *, accept_unknown_categories: bool) -> dict[str, Any]:
    """The JSON Schema of one column's values: every rule the server enforces on them, read from the
    same compiled rules (``mlci.ml.schema_rules``) that the server's checks read."""
    types = _JSON_TYPES[rules.type] + (["null"] if rules.nullable else [])
    out: dict[str, Any] = {"type": types if len(types) > 1 else types[0]}
    if rules.type == "integer":
        out["format"] = "int64"
        out["minimum"] = max(INT64_RANGE[0], rules.minimum) if rules.minimum is not None else INT64_RANGE[0]
        out["maximum"] = min(INT64_RANGE[1], rules.maximum) if rules.maximum is not None else INT64_RANGE[1]
    elif rules.type == "float":
        out["format"] = "double"  # JSON has no infinity: every number sent is finite
        out["minimum"] = rules.minimum if rules.minimum is not None else -_LARGEST_DOUBLE
        out["maximum"] = rules.maximum if rules.maximum is not None else _LARGEST_DOUBLE
    elif rules.type == "datetime":
        out["format"] = "date-time"
        out["description"] = "ISO 8601; an offset is converted to UTC, a time without one is UTC"
        if rules.earliest is not None:
            out["formatMinimum"] = _rfc3339(rules.earliest)
        if rules.latest is not None:
            out["formatMaximum"] = _rfc3339(rules.latest)
    written = rules.allowed_as_written  # set exactly when ``allowed`` is
    if written is not None and rules.type != "datetime":
        if accept_unknown_categories and rules.type in TEXT_TYPES:
            out["examples"] = _keys_in_schema_order(written)
        else:
            out["enum"] = _enum(rules.type, written) + ([None] if rules.nullable else [])
    if rules.pattern is not None and rules.type in TEXT_TYPES:
        out["pattern"] = f"^(?:{rules.pattern.pattern})$"  # JSON Schema searches; the server matches in full
    return out


def _rfc3339(moment: datetime) -> str:
    return moment.isoformat() + "Z"


def _enum(col_type: str, written: tuple[Any, ...]) -> list[Any]:
    """The allowed values as JSON: for a category, every JSON value naming it (``12`` and ``"12"``)."""
    if col_type == "category":
        return [form for key in _keys_in_schema_order(written) for form in _category_forms(key)]
    if col_type == "string":
        return _keys_in_schema_order(written)
    return list(dict.fromkeys(written))


def _keys_in_schema_order(written: tuple[Any, ...]) -> list[str]:
    return list(dict.fromkeys(category_key(v) for v in written))


def _category_forms(key: str) -> list[Any]:
    forms: list[Any] = [key]
    if key in ("True", "False"):
        forms.append(key == "True")
        return forms
    try:
        number: Any = int(key)
    except ValueError:
        try:
            number = float(key)
        except ValueError:
            return forms
        if not (number == number and abs(number) != float("inf") and repr(number) == key):
            return forms
    else:
        if str(number) != key:
            return forms
    forms.append(number)
    return forms


def openapi_document(model, *, max_rows: int, accept_unknown_categories: bool,
                     max_body_bytes: int | None = None) -> dict[str, Any]:
    schema = model.schema
    rules = compile_schema(schema)
    properties: dict[str, Any] = {name: column_schema(r, accept_unknown_categories=accept_unknown_categories)
                                  for name, r in rules.items() if name != schema.target}
    if schema.target and schema.allow_extra_columns:
        properties[schema.target] = False  # never an input, even where other extra fields are
    required = [name for name in model.features if not rules[name].nullable]
    record = {"type": "object", "properties": properties, "required": required,
              "additionalProperties": bool(schema.allow_extra_columns)}
    records = {"type": "array", "items": {"$ref": "#/components/schemas/Record"}, "minItems": 1,
               "maxItems": max_rows}
    request = {"oneOf": [{"type": "object", "properties": {"records": records}, "required": ["records"],
                          "additionalProperties": False}, records]}
    label = {"type": ["string", "number", "boolean"]}
    response = {"type": "object", "required": ["predictions", "model_version", "request_id"], "properties": {
        "predictions": {"type": "array", "items": label if model.is_classifier else {"type": "number"}},
        "probabilities": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}},
        "classes": {"type": "array", "items": label},
        "model_version": {"type": "integer"}, "request_id": {"type": "string"}}}
    errors = {"type": "object", "properties": {"errors": {"type": "array", "items": {
        "type": "object", "properties": {"row": {"type": ["integer", "null"]}, "field": {"type": ["string", "null"]},
                                         "message": {"type": "string"}}}}}}

    def answer(description: str, ref: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"description": description}
        if ref:
            out["content"] = {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}
        return out

    plain = {"200": {"description": "OK"}}
    return {
        "openapi": "3.1.0",
        "info": {"title": f"model version {model.version}", "version": str(model.version)},
        "paths": {
            "/predict": {"post": {
                "summary": "Predict a batch of records",
                "description": _limits(max_rows, max_body_bytes),
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/PredictRequest"}}}},
                "responses": {"200": answer("predictions", "PredictResponse"),
                              "400": answer("the body is not JSON", "Errors"),
                              "413": answer("the body or the batch is too large", "Errors"),
                              "415": answer("the content type is not application/json", "Errors"),
                              "422": answer("records do not match the schema", "Errors"),
                              "503": answer("the model is not loaded yet", "Errors")}}},
            "/health/live": {"get": {"summary": "The process is up", "responses": plain}},
            "/health/ready": {"get": {"summary": "The model is loaded and verified",
                                      "responses": {**plain, "503": {"description": "not ready"}}}},
            "/version": {"get": {"summary": "Model version, data sha256, git commit", "responses": plain}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": plain}},
        },
        "components": {"schemas": {"Record": record, "PredictRequest": request, "PredictResponse": response,
                                   "Errors": errors}},
    }


def _limits(max_rows: int, max_body_bytes: int | None) -> str:
    body = f" and a body of at most {max_body_bytes} bytes (else 413)" if max_body_bytes else ""
    return f"At most {max_rows} records per request{body}. Records must match the data schema (else 422)."
