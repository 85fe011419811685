"""All user-facing printing: results to stdout (text or ``--json``), logs and progress to stderr."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import click

STATUS_STYLE = {"pass": "green", "ok": "green", "fail": "red", "warn": "yellow", "skip": "cyan",
                "FAILED": "red", "PASSED": "green"}


def log(message: str) -> None:
    """A progress or log line (stderr)."""
    click.echo(message, err=True)


def warn(message: str) -> None:
    click.echo(click.style("warning: ", fg="yellow") + message, err=True)


def style_status(status: str) -> str:
    return click.style(status, fg=STATUS_STYLE.get(status)) if sys.stdout.isatty() else status


def table(rows: Iterable[Sequence[Any]], headers: Sequence[str], *, max_width: int = 60) -> str:
    """A plain aligned text table; cells are truncated to ``max_width`` characters."""
    cells = [[_cell(v, max_width) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()
    out = [line, "  ".join("-" * w for w in widths)]
    for row in cells:
        out.append("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    return "\n".join(out)


def _cell(value: Any, max_width: int) -> str:
    if isinstance(value, float):
        text = f"{value:.4g}"
    elif value is None:
        text = "-"
    else:
        text = str(value)
    text = text.replace("\n", " ")
    return text if len(text) <= max_width else text[: max_width - 1] + "…"


def emit(app, result: Any, render_text: Callable[[Any], str]) -> None:
    """Print a result: ``result.to_dict()`` as JSON with ``--json``, else ``render_text(result)``."""
    if app.json:
        from mlci.core.jsonvalue import dumps

        data = result.to_dict() if hasattr(result, "to_dict") else result
        click.echo(dumps(data))
    else:
        text = render_text(result)
        if text:
            click.echo(text)


def render_checks(report, title: str | None = None) -> str:
    """The standard table of a ``Report``: check, value, threshold, verdict, message."""
    rows = [(c.name, c.value, c.threshold, style_status(c.status), c.message) for c in report.checks]
    lines = [title] if title else []
    lines.append(table(rows, ("check", "value", "threshold", "result", "message")))
    failed, warned = len(report.failed), len(report.warnings)
    verdict = "FAILED" if failed else "PASSED"
    lines.append(f"\n{style_status(verdict)}: {len(report.checks)} checks, {failed} failed, {warned} warnings")
    for kind, path in report.files.items():
        lines.append(f"  {kind}: {path}")
    return "\n".join(lines)
