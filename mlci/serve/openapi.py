"""The OpenAPI 3.1 document of the server, with the request schema generated from the data schema."""

from __future__ import annotations

from typing import Any

from mlci.core.dataschema import Column

_JSON_TYPES = {"integer": "integer", "float": "number", "boolean": "boolean", "category": None,
               "string": "string", "datetime": "string"}


def column_schema(column: Column, *, accept_unknown_categories: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    json_type = _JSON_TYPES[column.type]
    if json_type:
        out["type"] = [json_type, "null"] if column.nullable else json_type
    if column.type == "datetime":
        out["format"] = "date-time"
    for key, name in (("min", "minimum"), ("max", "maximum")):
        bound = getattr(column, key)
        if bound is not None and column.type in ("integer", "float"):
            out[name] = bound
    if column.values is not None:
        listed = "examples" if accept_unknown_categories and column.type in ("category", "string") else "enum"
        out[listed] = list(column.values) + ([None] if column.nullable and listed == "enum" else [])
    if column.pattern and column.type == "string":
        out["pattern"] = column.pattern
    return out


def openapi_document(model, *, max_rows: int, accept_unknown_categories: bool) -> dict[str, Any]:
    schema = model.schema
    properties = {name: column_schema(col, accept_unknown_categories=accept_unknown_categories)
                  for name, col in schema.columns.items() if name != schema.target}
    required = [name for name in model.features if not schema.columns[name].nullable]
    record = {"type": "object", "properties": properties, "required": required,
              "additionalProperties": bool(schema.allow_extra_columns)}
    records = {"type": "array", "items": {"$ref": "#/components/schemas/Record"}, "minItems": 1,
               "maxItems": max_rows}
    request = {"oneOf": [{"type": "object", "properties": {"records": records}, "required": ["records"]}, records]}
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
