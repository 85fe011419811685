"""``mlci config check|schema``."""

from __future__ import annotations

from pathlib import Path

import click

from mlci.cli.context import AppContext, pass_app
from mlci.cli.output import emit, warn, write_output


@click.group()
def config() -> None:
    """Check mlci.yaml or print the JSON Schema of mlci's files."""


@config.command()
@pass_app
def check(app: AppContext) -> int:
    """Validate mlci.yaml and schema.yaml, and that they agree (slices, estimator parameters).

    Every problem is listed with file, line and key. Exit 0 or 2.
    """
    from mlci.ops.jenkins.shared_state import registry_warnings
    from mlci.ops.project.config_check import check_config

    project = app.project()
    result = check_config(project)
    result["warnings"] = registry_warnings(project)
    for warning in result["warnings"]:
        warn(warning)
    emit(app, result, lambda r: f"{r['config']}: ok (project {r['project']})"
         + (f"\n{r['schema']}: ok" if r["schema"] else ""))
    return 0


@config.command("schema")
@click.option("--data", "data_schema", is_flag=True, help="The schema of schema.yaml instead of mlci.yaml.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to a file ('-': stdout).")
def schema_command(data_schema: bool, output: Path | None) -> int:
    """Print the JSON Schema of mlci.yaml (or of schema.yaml with --data), for editors."""
    from mlci.ops.project.schemas import json_schema_text

    write_output(output, json_schema_text(data=data_schema))
    return 0



