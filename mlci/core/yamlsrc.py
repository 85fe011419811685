"""Read YAML safely while remembering the line of every key, so errors can point at it.

This is the one YAML loader for mlci's own files (``mlci.yaml``, ``schema.yaml``, ``MLCI_*`` values). It is
bounded: nesting deeper than ``MAX_DEPTH`` and documents that expand (through aliases) to more than
``MAX_ALIASED`` values through aliases are refused, so a "billion laughs" file or a recursive anchor is a
one-line error, not a hang or a ``RecursionError``. Keys must be scalars; every scalar that YAML cannot construct
(unknown tag, impossible date, ``!!float abc``) is a located error.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mlci.errors import ConfigError, ConfigIssue

KeyPath = tuple[Any, ...]

MAX_DEPTH = 64
"""Deepest nesting of mappings and lists accepted; mlci's own files need fewer than ten levels."""
MAX_ALIASED = 100_000
"""Most values a document may produce by repeating aliased content (each use of an alias in full)."""


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
        node = _BoundedLoader(text).get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = exc.problem or exc.context or "not valid YAML"
        raise ConfigError([ConfigIssue(f"invalid YAML: {problem}", file=name, line=line,
                                       hint=_hint_for(problem))]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([ConfigIssue(f"invalid YAML: {' '.join(str(exc).split())}"[:300], file=name)]) from None
    doc = YamlDocument(data=None, file=name)
    if node is None:
        doc.data = {}
        return doc
    issues: list[ConfigIssue] = []
    try:
        doc.data = _Constructor(doc, issues).construct(node, ())
    except _TooLarge as exc:
        raise ConfigError([ConfigIssue(str(exc), file=name, line=exc.line,
                                       hint="write the values out instead of nesting aliases")]) from None
    if issues:
        raise ConfigError(issues)
    return doc


def _hint_for(problem: str) -> str | None:
    if "nested deeper" in problem:
        return "flatten the structure; mlci's files need only a few levels"
    if "undefined alias" in problem:
        return "define the anchor (&name) before using it (*name)"
    return None


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe composer with a nesting limit (its composer recurses once per level)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self._depth >= MAX_DEPTH and not self.check_event(yaml.AliasEvent, yaml.ScalarEvent):
            mark = self.peek_event().start_mark
            raise yaml.composer.ComposerError(None, None, f"nested deeper than {MAX_DEPTH} levels", mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


class _TooLarge(Exception):
    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.line = line


class _Constructor:
    """Turns composed nodes into plain values, recording lines, counting every value it produces.

    Aliases share nodes, so a small file can describe an exponentially large value (or, with a
    recursive anchor, an infinite one): counting the nodes built more than once, and the set of nodes
    being built, bound both. Content written out in the file is never limited by the count.
    """

    def __init__(self, doc: YamlDocument, issues: list[ConfigIssue]) -> None:
        self.doc = doc
        self.issues = issues
        self.repeated = 0
        self.seen: set[int] = set()
        self.open_nodes: set[int] = set()
        self.scalars = yaml.SafeLoader("")  # PyYAML's safe scalar rules; its cache lives as long as this load

    def construct(self, node: yaml.Node, path: KeyPath) -> Any:
        line = node.start_mark.line + 1
        if id(node) in self.seen:  # reached again through an alias: the document is being repeated
            self.repeated += 1
            if self.repeated > MAX_ALIASED:
                raise _TooLarge(f"aliases expand the document by more than {MAX_ALIASED:,} values",
                                self.doc.lines.get(path[:1], line))
        self.seen.add(id(node))
        if id(node) in self.open_nodes:
            raise _TooLarge("an alias refers to the node that contains it (recursive anchor)", line)
        if len(path) > MAX_DEPTH:
            raise _TooLarge(f"aliases nest the document deeper than {MAX_DEPTH} levels", line)
        self.doc.lines.setdefault(path, line)
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node, path)
        self.open_nodes.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, path)
            return [self.construct(item, path + (i,)) for i, item in enumerate(node.value)]
        finally:
            self.open_nodes.discard(id(node))

    def _mapping(self, node: yaml.MappingNode, path: KeyPath) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key_line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                self.issues.append(ConfigIssue(
                    "a key must be plain text or a number, not a list or mapping", file=self.doc.file,
                    line=key_line, path=format_path(path) or None, hint="remove the '?' complex key"))
                continue
            key = self._scalar(key_node, path)
            child = path + (key,)
            if key in result:
                self.issues.append(ConfigIssue(
                    f"duplicate key '{key}'", file=self.doc.file, line=key_line,
                    path=format_path(child), hint="YAML keeps only the last one; remove the other"))
            self.doc.lines[child] = key_line
            result[key] = self.construct(value_node, child)
        return result

    def _scalar(self, node: yaml.ScalarNode, path: KeyPath) -> Any:
        try:
            value = self.scalars.construct_object(node, deep=True)
        except Exception as exc:  # noqa: BLE001 - any scalar YAML cannot construct is bad input, not a bug
            problem = getattr(exc, "problem", None) or str(exc)
            self.issues.append(ConfigIssue(
                f"cannot read {node.value[:40]!r}: {' '.join(problem.split())}"[:300], file=self.doc.file,
                line=node.start_mark.line + 1, path=format_path(path) or None,
                hint="quote the value to keep it as text"))
            return None
        # An unquoted 2024-01-01 is a date to YAML; mlci's files take dates as ISO text.
        return value.isoformat() if isinstance(value, (datetime.date, datetime.datetime)) else value
