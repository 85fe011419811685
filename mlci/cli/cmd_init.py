"""``mlci init [DIR]``."""

from __future__ import annotations

from pathlib import Path

import click

from mlci.cli.context import AppContext, pass_app
from mlci.cli.output import emit


@click.command()
@click.argument("directory", required=False, default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace files that already exist.")
@pass_app
def init(app: AppContext, directory: Path, force: bool) -> int:
    """Create a project in DIRECTORY (default: here): a commented mlci.yaml, schema.yaml, example data
    (a credit-default dataset and a drifted batch), .gitignore and the Jenkins pipelines.
    Existing files are not overwritten without --force (exit 2)."""
    from mlci.ops.project.init import init_project

    emit(app, init_project(directory=directory, force=force), _render)
    return 0


def _render(result) -> str:
    lines = [f"created an mlci project in {result.directory}:"] + [f"  {name}" for name in result.written]
    lines += [f"  kept existing {path} (use --force to replace it)" for path in result.kept]
    lines.append("next: `mlci run` (validate, train, evaluate, gate), then edit mlci.yaml for your data")
    return "\n".join(lines)
