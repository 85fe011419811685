"""All user-facing printing: results to stdout (text or ``--json``), logs and progress to stderr."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TextIO

import click

STATUS_STYLE = {"pass": "green", "ok": "green", "fail": "red", "warn": "yellow", "skip": "cyan",
                "FAILED": "red", "PASSED": "green"}


ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def colour(stream: TextIO | None = None) -> bool:
    """Whether to colour ``stream`` (stdout by default): NO_COLOR (https://no-color.org) turns colour
    off, FORCE_COLOR turns it on off a terminal (Jenkins' AnsiColor plugin renders it), else a TTY decides."""
    if os.environ.get("NO_COLOR"):
        return False
    force = os.environ.get("FORCE_COLOR", "")
    if force and force.lower() not in ("0", "false", "no", "off"):
        return True
    stream = stream or sys.stdout
    return bool(getattr(stream, "isatty", lambda: False)())


def echo(text: str, *, err: bool = False) -> None:
    """Print ``text`` with its colour kept or stripped as ``colour`` decides for that stream."""
    click.echo(text, err=err, color=colour(sys.stderr if err else sys.stdout))


def log(message: str) -> None:
    """A progress or log line (stderr)."""
    echo(message, err=True)


def warn(message: str) -> None:
    echo(click.style("warning: ", fg="yellow") + message, err=True)


def style_status(status: str) -> str:
    return click.style(status, fg=STATUS_STYLE.get(status)) if colour() else status


def plural(count: int, noun: str, suffix: str = "s") -> str:
    """``1 check``, ``2 checks``, ``1,000 rows``."""
    return f"{count:,} {noun}" + ("" if count == 1 else suffix)


def visible_width(text: str) -> int:
    """Width on screen: ANSI escape codes take none."""
    return len(ANSI.sub("", text))


def _pad(text: str, width: int) -> str:
    return text + " " * (width - visible_width(text))


def table(rows: Iterable[Sequence[Any]], headers: Sequence[str], *, max_width: int | None = None) -> str:
    """A plain aligned text table. On a terminal cells are cut at ``max_width`` (60) characters to keep
    lines readable; elsewhere (a Jenkins console, a pipe) nothing is cut, so no value is lost."""
    if max_width is None and sys.stdout.isatty():
        max_width = 60
    cells = [[_cell(v, max_width) for v in row] for row in rows]
    widths = [max([visible_width(h)] + [visible_width(r[i]) for r in cells]) for i, h in enumerate(headers)]
    out = ["  ".join(_pad(h, w) for h, w in zip(headers, widths)).rstrip(), "  ".join("-" * w for w in widths)]
    for row in cells:
        out.append("  ".join(_pad(c, w) for c, w in zip(row, widths)).rstrip())
    return "\n".join(out)


def _cell(value: Any, max_width: int | None) -> str:
    if isinstance(value, float):
        text = f"{value:.4g}"
    elif value is None:
        text = "-"
    else:
        text = str(value)
    text = text.replace("\n", " ")
    if max_width is None or visible_width(text) <= max_width or ANSI.search(text):
        return text
    return text[: max_width - 1] + "…"


def write_output(output: Any, text: str) -> None:
    """Write command output to the file ``output``, or to stdout when it is ``-`` (or not given)."""
    if output is None or str(output) == "-":
        click.echo(text, nl=False)
        return
    from mlci.core.atomic import atomic_write_text

    atomic_write_text(output, text)
    log(f"wrote {output}")


def emit(app, result: Any, render_text: Callable[[Any], str]) -> None:
    """Print a result: ``result.to_dict()`` as JSON with ``--json``, else ``render_text(result)``."""
    if app.json:
        from mlci.core.jsonvalue import dumps

        data = result.to_dict() if hasattr(result, "to_dict") else result
        click.echo(dumps(data))
    else:
        text = render_text(result)
        if text:
            echo(text)


def render_checks(report, title: str | None = None) -> str:
    """The standard table of a ``Report``: check, value, threshold, verdict, message."""
    from mlci.core.summary import check_value

    rows = [(c.name, check_value(c.to_dict()), c.threshold, style_status(c.status), c.message) for c in report.checks]
    lines = [title] if title else []
    lines.append(table(rows, ("check", "value", "threshold", "result", "message")))
    failed, warned = len(report.failed), len(report.warnings)
    verdict = "FAILED" if failed else "PASSED"
    lines.append(f"\n{style_status(verdict)}: {plural(len(report.checks), 'check')}, {failed} failed, "
                 f"{plural(warned, 'warning')}")
    for kind, path in report.files.items():
        lines.append(f"  {kind}: {path}")
    return "\n".join(lines)
