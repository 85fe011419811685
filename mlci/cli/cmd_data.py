"""``mlci schema infer`` and ``mlci validate``."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from mlci.cli.context import AppContext, pass_app
from mlci.cli.output import emit, log, plural, style_status, table
from mlci.errors import UsageError

_DATA_PATH = click.Path(path_type=Path)


@click.group()
def schema() -> None:
    """Infer a data schema (schema.yaml) from a CSV or Parquet file."""


@schema.command("infer")
@click.argument("data", type=_DATA_PATH)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the schema here ('-' or nothing: print it).")
@click.option("--target", help="The column the model predicts.")
@click.option("--max-levels", type=click.IntRange(1, 1000), default=20, show_default=True,
              help="Text columns with at most this many distinct values become categories.")
@click.option("--force", is_flag=True, help="Overwrite an existing output file.")
@pass_app
def infer(app: AppContext, data: Path, output: Path | None, target: str | None, max_levels: int,
          force: bool) -> int:
    """Infer types, nullability, ranges, categories and uniqueness from DATA.

    The schema it writes validates the file it came from; review it before relying on it.
    """
    from mlci.ops.data.infer import infer_schema, write_schema

    if output is not None and str(output) == "-":
        output = None
    if output is not None and output.exists() and not force:
        raise UsageError(f"{output} exists", hint="pass --force to overwrite it")
    csv = _csv_options(_project_if_any(app), None, None, None)
    result = infer_schema(data, csv=csv, target=target, max_levels=max_levels)
    if output is not None:
        write_schema(result.schema, output)
        log(f"wrote {output} ({plural(len(result.schema.columns), 'column')}, {plural(result.rows, 'row')} read)")
    emit(app, result, lambda r: "" if output is not None else r.yaml)
    return 0


@click.command()
@click.argument("data", nargs=-1, type=_DATA_PATH)
@click.option("--schema", "schema_file", type=_DATA_PATH,
              help="Schema file (default: data.schema of mlci.yaml).")
@click.option("--reports", "reports_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where validate.json, .junit.xml and .html go (default: the project's reports dir).")
@click.option("--delimiter", help="CSV field separator (default: data.csv.delimiter, or ',').")
@click.option("--encoding", help="CSV text encoding (default: data.csv.encoding, or utf-8).")
@click.option("--decimal", help="CSV decimal mark (default: data.csv.decimal, or '.').")
@click.option("--batch-rows", type=click.IntRange(1000), help="Rows per batch (default: data.batch_rows).")
@pass_app
def validate(app: AppContext, data: tuple[Path, ...], schema_file: Path | None, reports_dir: Path | None,
             delimiter: str | None, encoding: str | None, decimal: str | None, batch_rows: int | None) -> int:
    """Check DATA files against the schema: columns, types, nulls, ranges, values, patterns, uniqueness,
    duplicate rows and row counts.

    Without DATA, checks data.train and data.holdout of mlci.yaml. Every violation is counted and shown
    with example rows (1-based data rows; the header is not a row). Exit 0 valid, 1 invalid,
    2 unreadable file or bad schema.
    """
    _one_blas_thread()
    from mlci.ops.data.validate import validate as run_validation

    project = _project_if_any(app)
    files, schema_path = _inputs(project, data, schema_file)
    reports = reports_dir or (project.reports_dir if project else Path("reports"))
    rows = batch_rows or (project.config.data.batch_rows if project else 200_000)
    csv = _csv_options(project, delimiter, encoding, decimal)
    report = run_validation(data=files, schema_path=schema_path, csv=csv, batch_rows=rows, reports_dir=reports,
                            progress=not app.json)
    emit(app, report, render_validation)
    return report.exit_code


def _one_blas_thread() -> None:
    """Validation does no linear algebra, but importing NumPy (pyarrow does) starts an OpenBLAS thread per
    core, which then spin for a while: about 50 ms of CPU in a 1 s validation. One thread, unless the user
    set it, and only in this command's process, before NumPy is imported."""
    if "numpy" not in sys.modules:
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def _project_if_any(app: AppContext):
    """The project, or None without an mlci.yaml: both commands also work on bare files."""
    return app.project() if (app.config_file or app.root / "mlci.yaml").exists() else None


def _inputs(project, data: tuple[Path, ...], schema_file: Path | None) -> tuple[list[Path], Path]:
    if project is None:
        if not data or schema_file is None:
            raise UsageError("no mlci.yaml here: give the DATA files and --schema",
                             hint="e.g. `mlci validate data.csv --schema schema.yaml`, or run in a project (-C DIR)")
        return list(data), schema_file
    from mlci.ops.data.validate import validate_inputs

    default_files, default_schema = validate_inputs(project)
    return list(data) or default_files, schema_file or default_schema


def _csv_options(project, delimiter: str | None, encoding: str | None, decimal: str | None):
    """The project's CSV options (or the defaults), with the command-line ones on top."""
    from dataclasses import replace

    from mlci.core.csvoptions import CsvOptions

    base = project.config.data.csv if project is not None else CsvOptions()
    overrides = {k: v for k, v in (("delimiter", delimiter), ("encoding", encoding), ("decimal", decimal)) if v}
    if overrides.get("delimiter") is not None and len(overrides["delimiter"]) != 1:
        raise UsageError(f"--delimiter must be one character, got {overrides['delimiter']!r}")
    return replace(base, **overrides)


def render_validation(report) -> str:
    """Per file a summary line and a table of the failed checks with example rows."""
    lines = []
    for info in report.details["files"]:
        checks = [c for c in report.checks if c.group == info["path"]]
        failed = [c for c in checks if not c.passed]
        lines.append(f"{info['path']}: {plural(info['rows'], 'row')}, {plural(len(checks), 'check')}, "
                     f"{len(failed)} failed")
        if failed:
            rows = [(c.name, style_status(c.status), c.message, _examples(c)) for c in failed]
            lines.append(table(rows, ("check", "result", "message", "examples (row: value)")))
        lines.append("")
    verdict = "FAILED" if report.failed else "PASSED"
    lines.append(f"{style_status(verdict)}: {plural(len(report.checks), 'check')}, {len(report.failed)} failed")
    for kind, path in report.files.items():
        lines.append(f"  {kind}: {path}")
    return "\n".join(lines)


def _examples(check) -> str:
    shown = []
    for example in check.details.get("examples", [])[:3]:
        value = example.get("value")
        shown.append(f"{example['row']}" + ("" if value is None else f": {value!r}"))
    return ", ".join(shown)
