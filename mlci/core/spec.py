"""A small declarative schema for YAML files, built on dataclasses.

A section is a frozen dataclass; each field's type hint says what the value must be, and
``opt(...)`` adds a default, bounds, a pattern and a help text. ``build(cls, data, doc)`` turns parsed
YAML into instances, collecting *every* problem with its file, line, key path and a hint; unknown keys
get a did-you-mean suggestion. ``json_schema(cls)`` publishes the same rules for editors.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
import re
import types
import typing
from typing import Any, Literal, Union

from mlci.core.redact import redact_url, url_problem
from mlci.core.yamlsrc import KeyPath, YamlDocument, format_path
from mlci.errors import ConfigError, ConfigIssue

MISSING = dataclasses.MISSING


def opt(default: Any = MISSING, *, help: str = "", min: float | None = None, max: float | None = None,
        pattern: str | None = None, min_items: int | None = None, path: bool = False, url: bool = False) -> Any:
    """A field with constraints. ``default`` may be a callable (used as a factory).

    ``path=True``: a file or directory path (no control characters at all, not even tab or newline).
    ``url=True``: an http(s) URL whose port, when given, is a number; errors show it redacted.
    """
    meta = {"help": help, "min": min, "max": max, "pattern": pattern, "min_items": min_items,
            "path": path, "url": url}
    if callable(default):
        return dataclasses.field(default_factory=default, metadata=meta)
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=functools.partial(copy.copy, default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


_T = typing.TypeVar("_T")


# ``opt`` is not declared a field specifier: type checkers recognise a specifier's default only when it is
# passed by keyword, and ``opt`` takes it positionally. So a required field (``opt()`` without a default)
# type-checks as optional; the config loader reports it missing at run time.
@typing.dataclass_transform(frozen_default=True, kw_only_default=True, field_specifiers=(dataclasses.field,))
def section(cls: type[_T]) -> type[_T]:
    """Decorator for a config section: a frozen dataclass with keyword-only fields."""
    return dataclasses.dataclass(frozen=True, kw_only=True)(cls)

IDENTIFIER = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"

# No text value may hold a C0/C1 control character other than tab, newline and carriage return (YAML's
# double-quoted "\0" or an environment variable can carry them); a path may not hold those three either.
_CONTROL_IN_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_CONTROL_IN_PATH = re.compile(r"[\x00-\x1f\x7f-\x9f]")
PATH_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*$"


def did_you_mean(word: str, candidates: typing.Iterable[str]) -> str | None:
    match = difflib.get_close_matches(str(word), list(candidates), n=1, cutoff=0.6)
    return f"did you mean '{match[0]}'?" if match else None


class _Builder:
    def __init__(self, doc: YamlDocument) -> None:
        self.doc = doc
        self.issues: list[ConfigIssue] = []

    def fail(self, path: KeyPath, message: str, hint: str | None = None) -> None:
        self.issues.append(ConfigIssue(message, file=self.doc.origin_of(path), line=self.doc.line_of(path),
                                       path=format_path(path) or None, hint=hint))

    def value(self, tp: Any, data: Any, path: KeyPath, meta: dict) -> Any:
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if origin in (Union, types.UnionType):
            if data is None and type(None) in args:
                return None
            inner = [a for a in args if a is not type(None)]
            if len(inner) == 1:
                return self.value(inner[0], data, path, meta)
            return self._union(inner, data, path, meta)
        if origin is Literal:
            if data not in args:
                hint = did_you_mean(data, map(str, args)) or "one of: " + ", ".join(map(str, args))
                self.fail(path, f"'{data}' is not allowed", hint)
            return data
        if origin is list:
            return self._list(args[0], data, path, meta)
        if origin is dict:
            return self._dict(args[1], data, path)
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            return self.section(tp, data, path)
        return self._scalar(tp, data, path, meta)

    def _union(self, inner: list, data: Any, path: KeyPath, meta: dict) -> Any:
        for candidate in inner:
            trial = _Builder(self.doc)
            result = trial.value(candidate, data, path, meta)
            if not trial.issues:
                return result
        self.fail(path, f"expected {' or '.join(_type_name(t) for t in inner)}, got {_type_name(type(data))}")
        return None

    def _list(self, item_tp: Any, data: Any, path: KeyPath, meta: dict) -> list:
        if not isinstance(data, list):
            self.fail(path, f"expected a list, got {_type_name(type(data))}")
            return []
        if meta.get("min_items") and len(data) < meta["min_items"]:
            self.fail(path, f"needs at least {meta['min_items']} item(s)")
        return [self.value(item_tp, item, path + (i,), meta) for i, item in enumerate(data)]

    def _dict(self, value_tp: Any, data: Any, path: KeyPath) -> dict:
        if not isinstance(data, dict):
            self.fail(path, f"expected a mapping, got {_type_name(type(data))}")
            return {}
        return {str(k): self.value(value_tp, v, path + (k,), {}) for k, v in data.items()}

    def _scalar(self, tp: Any, data: Any, path: KeyPath, meta: dict) -> Any:
        if tp is Any:
            return data
        ok = isinstance(data, tp) and not (tp in (int, float) and isinstance(data, bool))
        if tp is float and isinstance(data, int) and not isinstance(data, bool):
            data, ok = float(data), True
        if not ok:
            self.fail(path, f"expected {_type_name(tp)}, got {_type_name(type(data))} {data!r}"[:200])
            return data
        if meta.get("min") is not None and data < meta["min"]:
            self.fail(path, f"{data} is below the minimum {meta['min']}")
        if meta.get("max") is not None and data > meta["max"]:
            self.fail(path, f"{data} is above the maximum {meta['max']}")
        if isinstance(data, str) and not self._text_ok(data, path, meta):
            return data
        if meta.get("pattern") and not re.match(meta["pattern"], data):
            self.fail(path, f"'{data}' is not a valid name", f"use letters, digits, '.', '_' or '-' "
                      f"(pattern {meta['pattern']})")
        return data

    def _text_ok(self, data: str, path: KeyPath, meta: dict) -> bool:
        bad = (_CONTROL_IN_PATH if meta.get("path") else _CONTROL_IN_TEXT).search(data)
        if bad:
            what = "path" if meta.get("path") else "value"
            self.fail(path, f"the {what} contains control character U+{ord(bad.group()):04X}",
                      "remove it (it often comes from a \\ escape in double quotes or an environment variable)")
            return False
        problem = url_problem(data) if meta.get("url") and data else None
        if problem:
            self.fail(path, f"'{redact_url(data)}' is not a valid URL: {problem}",
                      "use http(s)://host[:port]/path; keep credentials out of mlci.yaml")
            return False
        return True

    def section(self, cls: type, data: Any, path: KeyPath) -> Any:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            self.fail(path, f"expected a mapping, got {_type_name(type(data))}")
            data = {}
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        kwargs = {}
        for key, raw in data.items():
            if key not in fields:
                hint = did_you_mean(key, fields) or "known keys: " + ", ".join(fields)
                self.fail(path + (key,), f"unknown key '{key}'", hint)
                continue
            kwargs[key] = self.value(hints[key], raw, path + (key,), dict(fields[key].metadata))
        for name, f in fields.items():
            if name not in kwargs and f.default is MISSING and f.default_factory is MISSING:
                self.fail(path + (name,), f"missing required key '{name}'", f.metadata.get("help") or None)
        if self.issues:
            # Keep collecting: a value that failed (None) falls back to its default, so the section's
            # own check() can still report its problems; a missing required one ends this section.
            kwargs = {k: v for k, v in kwargs.items() if v is not None or _optional(hints[k])}
        try:
            obj = cls(**kwargs)
        except TypeError:
            return None
        check = getattr(obj, "check", None)
        if check is not None:
            for sub_path, message, hint in check():
                self.fail(path + tuple(sub_path), message, hint)
        return obj


def _optional(tp: Any) -> bool:
    return type(None) in typing.get_args(tp)


def _type_name(tp: Any) -> str:
    return {str: "text", int: "an integer", float: "a number", bool: "true/false", list: "a list",
            dict: "a mapping", type(None): "nothing"}.get(tp, getattr(tp, "__name__", str(tp)))


def build(cls: type, doc: YamlDocument) -> Any:
    """Build ``cls`` from ``doc.data`` or raise ``ConfigError`` listing every problem."""
    builder = _Builder(doc)
    result = builder.section(cls, doc.data, ())
    if builder.issues:
        raise ConfigError(builder.issues)
    return result


def json_schema(cls: type) -> dict:
    """A JSON Schema (draft 2020-12) equivalent to what ``build`` accepts."""
    return _schema_of(cls, {})


def _schema_of(tp: Any, meta: dict) -> dict:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    out: dict[str, Any] = {}
    if origin in (Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        variants = [_schema_of(a, meta) for a in inner]
        if type(None) in args:
            variants.append({"type": "null"})
        out = variants[0] if len(variants) == 1 else {"anyOf": variants}
    elif origin is Literal:
        out = {"enum": list(args)}
    elif origin is list:
        out = {"type": "array", "items": _schema_of(args[0], {})}
        if meta.get("min_items"):
            out["minItems"] = meta["min_items"]
    elif origin is dict:
        out = {"type": "object", "additionalProperties": _schema_of(args[1], {})}
    elif isinstance(tp, type) and dataclasses.is_dataclass(tp):
        out = _section_schema(tp)
    else:
        out = {str: {"type": "string"}, int: {"type": "integer"}, float: {"type": "number"},
               bool: {"type": "boolean"}}.get(tp, {})
        for key, schema_key in (("min", "minimum"), ("max", "maximum"), ("pattern", "pattern")):
            if meta.get(key) is not None:
                out[schema_key] = meta[key]
        if meta.get("path"):
            out["pattern"] = PATH_PATTERN
        if meta.get("url"):
            out["format"] = "uri"
    if meta.get("help"):
        out = {**out, "description": meta["help"]}
    return out


def _section_schema(cls: type) -> dict:
    hints = typing.get_type_hints(cls)
    props, required = {}, []
    for f in dataclasses.fields(cls):
        schema = _schema_of(hints[f.name], dict(f.metadata))
        if f.default is not MISSING and isinstance(f.default, (str, int, float, bool)):
            schema["default"] = f.default
        props[f.name] = schema
        if f.default is MISSING and f.default_factory is MISSING:
            required.append(f.name)
    out: dict[str, Any] = {"type": "object", "properties": props, "additionalProperties": False}
    if cls.__doc__:
        out["description"] = " ".join(cls.__doc__.split())
    if required:
        out["required"] = required
    return out
