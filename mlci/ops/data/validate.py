"""``mlci validate``: check data files against the schema (the checks are in ``file_checks``).

This entry point is light at import. ``validate`` loads and compiles the schema, starts parsing the first
file on pyarrow's threads, and only then imports the rule and report code (``file_checks``,
``mlci.ml.arrow_rules``, the report writer, Jinja2) and compiles the report's template: on a machine
with a free core, about 60 ms of imports and 20 ms of compiling run beside the parse instead of before
or after it. The names of ``file_checks`` are re-exported here.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlci.core.csvoptions import CsvOptions
from mlci.core.dataschema import DataSchema, load_schema
from mlci.errors import ConfigError
from mlci.ml.schema_rules import ColumnRules, compile_schema
from mlci.ops.data.opening import open_file

if TYPE_CHECKING:
    from mlci.core.config import Project
    from mlci.core.reports import Report


_TEMPLATE = "reports/validate.html.j2"


def validate_inputs(project: Project) -> tuple[list[Path], Path]:
    """What ``mlci validate`` checks in a project by default: data.train and data.holdout, against data.schema."""
    section = project.config.data
    return [project.path(p) for p in (section.train, section.holdout) if p], project.path(section.schema)


def validate(*, data: list[Path], schema_path: Path, csv: CsvOptions | None = None, batch_rows: int = 200_000,
             reports_dir: Path | None = None, progress: bool = True) -> Report:
    """Validate every file in ``data`` against the schema; write JSON, JUnit and HTML reports."""
    started = time.monotonic()
    schema = load_schema(schema_path, _display(schema_path))
    compiled = _compiled(schema, schema_path)
    opened = open_file(data[0], schema, csv=csv, batch_rows=batch_rows) if data else None
    # Imported now, while the first file is parsed on other threads (see the module's docstring).
    from mlci.core.reports import Report, write_report
    from mlci.ops.data.file_checks import check_file
    from mlci.ops.reporting.render import compile_template, render

    if reports_dir is not None:
        compile_template(_TEMPLATE)  # about 20 ms of CPU, beside the parse rather than after it
    report = Report(kind="validate", details={"schema": _display(schema_path), "files": []})
    for path in data:
        file_started = time.monotonic()
        result = check_file(path, schema, csv=csv, batch_rows=batch_rows, group=_display(path),
                            progress=progress, compiled=compiled, opened=opened)
        opened = None  # later files are opened when their turn comes
        checks = result.checks
        report.checks.extend(checks)
        report.details["files"].append({"path": _display(path), "rows": result.rows,
                                        "failed": sum(not c.passed for c in checks),
                                        "seconds": round(time.monotonic() - file_started, 3),
                                        "profile": result.profile})
    if reports_dir is not None:
        html = render(_TEMPLATE, title="Data validation", ok=report.ok, report=report,
                      files=report.details["files"], schema=report.details["schema"])
        write_report(report, reports_dir, html=html, duration=time.monotonic() - started)
    return report


def _compiled(schema: DataSchema, schema_path: Path) -> dict[str, ColumnRules]:
    try:
        return compile_schema(schema)
    except ConfigError as exc:  # a rule of the schema that cannot be applied: name the schema file
        for issue in exc.issues:
            issue.file = issue.file or _display(schema_path)
        raise ConfigError(exc.issues) from None


def _display(path: Path) -> str:
    try:
        relative = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path) if relative.startswith("..") else relative


def __getattr__(name: str) -> Any:
    """``Tally``, ``check_file``, ``validate_file`` and the other names of ``file_checks``, imported on
    first use."""
    if name.startswith("__"):
        raise AttributeError(name)
    from mlci.ops.data import file_checks

    try:
        return getattr(file_checks, name)
    except AttributeError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
