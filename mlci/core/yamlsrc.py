"""Read YAML safely while remembering the line of every key, so errors can point at it."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mlci.errors import ConfigError, ConfigIssue

KeyPath = tuple[Any, ...]


@dataclass
class YamlDocument:
    """A parsed YAML mapping plus the 1-based line of each key path."""

    data: Any
    file: str
    lines: dict[KeyPath, int] = field(default_factory=dict)
    origins: dict[KeyPath, str] = field(default_factory=dict)  # key paths set from elsewhere (environment)

    def origin_of(self, path: KeyPath) -> str:
        while path:
            if path in self.origins:
                return self.origins[path]
            path = path[:-1]
        return self.file

    def line_of(self, path: KeyPath) -> int | None:
        """The line of ``path`` or of its nearest ancestor that has one."""
        if self.origin_of(path) != self.file:
            return None
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), None)


def config_issue(document: YamlDocument | None, dotted: str, message: str, hint: str | None) -> ConfigError:
    """A ConfigError located at ``dotted`` (e.g. ``model.params``, ``model.steps.0.params``) in ``document``."""
    keys = tuple(int(part) if part.isdigit() else part for part in dotted.split("."))
    file = document.origin_of(keys) if document else "mlci.yaml"
    line = document.line_of(keys) if document else None
    return ConfigError([ConfigIssue(message, file=file, line=line, path=format_path(keys), hint=hint)])


def format_path(path: KeyPath) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def load_yaml_file(path: Path, *, display_name: str | None = None) -> YamlDocument:
    name = display_name or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{name}: file not found", hint="run 'mlci init' or pass --config FILE") from None
    except IsADirectoryError:
        raise ConfigError(f"{name}: is a directory, expected a YAML file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{name}: not UTF-8 text (byte {exc.start})") from None
    return load_yaml_text(text, name)


def load_yaml_text(text: str, name: str) -> YamlDocument:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise ConfigError([ConfigIssue(f"invalid YAML: {exc.problem}", file=name, line=line)]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([ConfigIssue(f"invalid YAML: {exc}", file=name)]) from None
    doc = YamlDocument(data=None, file=name)
    if node is None:
        doc.data = {}
        return doc
    issues: list[ConfigIssue] = []
    doc.data = _construct(node, (), doc, issues)
    if issues:
        raise ConfigError(issues)
    return doc


_scalar_constructor = yaml.SafeLoader("")


def _construct(node: yaml.Node, path: KeyPath, doc: YamlDocument, issues: list[ConfigIssue]) -> Any:
    doc.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _scalar_constructor.construct_object(key_node, deep=True)
            child = path + (key,)
            if key in result:
                issues.append(ConfigIssue(
                    f"duplicate key '{key}'", file=doc.file, line=key_node.start_mark.line + 1,
                    path=format_path(child), hint="YAML keeps only the last one; remove the other"))
            doc.lines[child] = key_node.start_mark.line + 1
            result[key] = _construct(value_node, child, doc, issues)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, path + (i,), doc, issues) for i, item in enumerate(node.value)]
    value = _scalar_constructor.construct_object(node, deep=True)
    # An unquoted 2024-01-01 is a date to YAML; mlci's files take dates as ISO text.
    return value.isoformat() if isinstance(value, (datetime.date, datetime.datetime)) else value
