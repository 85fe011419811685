"""``mlci jenkinsfile`` and ``mlci jenkins sync|build|status|lint``."""

from __future__ import annotations

from pathlib import Path

import click

from mlci.cli.context import AppContext, pass_app
from mlci.cli.output import emit, log, render_checks, table

PIPELINE_CHOICE = click.Choice(["commit", "nightly", "all"])


@click.command()
@click.option("--pipeline", type=PIPELINE_CHOICE, default="all", show_default=True,
              help="Which pipeline to write.")
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="File to write (one pipeline; '-' for stdout) or directory for the layout (all).")
@click.option("--check", is_flag=True, help="Write nothing; exit 1 when a file on disk is stale (diff on stderr).")
@pass_app
def jenkinsfile(app: AppContext, pipeline: str, output: Path | None, check: bool) -> int:
    """Write the commit pipeline (Jenkinsfile) and the nightly one (pipelines/nightly.Jenkinsfile).

    Paths are relative to the git repository that holds the project. Exit 0 written or up to date,
    1 stale (--check), 2 configuration error.
    """
    from mlci.ops import jenkinsfiles

    project = app.project()
    if output is not None and str(output) == "-":
        return _print_pipeline(project, pipeline)
    if check:
        report = jenkinsfiles.check_pipelines(project, pipeline=pipeline, output=output)
        for item in report.failed:
            log(item.details.get("diff") or f"{item.name}: {item.message}")
        emit(app, report, lambda r: render_checks(r, "Jenkins pipelines"))
        return report.exit_code
    result = jenkinsfiles.write_pipelines(project, pipeline=pipeline, output=output)
    emit(app, result, lambda r: "\n".join([*(f"wrote {p}" for p in r.written),
                                          *(f"unchanged {p}" for p in r.unchanged)]))
    return 0


def _print_pipeline(project, pipeline: str) -> int:
    from mlci.errors import UsageError
    from mlci.ops import jenkinsfiles

    rendered = jenkinsfiles.render_pipelines(project, pipeline=pipeline)
    if len(rendered) != 1:
        raise UsageError("-o - prints one pipeline", hint="add --pipeline commit or --pipeline nightly")
    click.echo(next(iter(rendered.values())), nl=False)
    return 0
