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
    from mlci.ops.jenkins import pipelines as jenkinsfiles

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
    from mlci.ops.jenkins import pipelines as jenkinsfiles

    rendered = jenkinsfiles.render_pipelines(project, pipeline=pipeline)
    if len(rendered) != 1:
        raise UsageError("-o - prints one pipeline", hint="add --pipeline commit or --pipeline nightly")
    click.echo(next(iter(rendered.values())), nl=False)
    return 0


@click.group()
def jenkins() -> None:
    """Drive a Jenkins server: sync the jobs, trigger and follow builds, show status, lint.

    The server comes from JENKINS_URL (or jenkins.url in mlci.yaml), the user from JENKINS_USER and
    the API token from JENKINS_API_TOKEN; the token is never a command-line option. Exit 3 when
    Jenkins is unreachable, times out or refuses.
    """


@jenkins.command()
@click.option("--dry-run", is_flag=True, help="Print what would change (a diff of config.xml), change nothing.")
@click.option("--prune", is_flag=True, help="Delete jobs managed by mlci for this project that are no longer wanted.")
@pass_app
def sync(app: AppContext, dry_run: bool, prune: bool) -> int:
    """Create or update the commit job (a multibranch project, or a single-branch job with an SCM trigger)
    and the nightly job; unchanged jobs are not touched. Exit 2 when the registry is inside the workspace
    (each job has its own)."""
    from mlci.ops.jenkins import server as ops

    project = app.project()
    result = ops.sync_jobs(project, ops.connect(project), dry_run=dry_run, prune=prune, log=log)
    if dry_run:
        for change in result.changes:
            if change.diff:
                log(change.diff)
    emit(app, result, _render_sync)
    return 0


def _render_sync(result) -> str:
    verb = "would " if result.dry_run else ""
    rows = [(c.name, c.action if c.action == "unchanged" else f"{verb}{c.action}") for c in result.changes]
    return table(rows, ("job", "action")) + f"\n{result.server}"


def _parse_parameters(values: tuple[str, ...]) -> dict[str, str]:
    from mlci.errors import UsageError

    out = {}
    for value in values:
        key, sep, text = value.partition("=")
        if not sep or not key:
            raise UsageError(f"parameter {value!r} is not KEY=VALUE")
        out[key] = text
    return out


@jenkins.command()
@click.argument("job")
@click.option("-p", "--param", "params", multiple=True, metavar="KEY=VALUE", help="A build parameter (repeatable).")
@click.option("--follow", is_flag=True, help="Stream the console and exit with the build's result.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Give up waiting after this many seconds (exit 3).")
@click.option("--poll", "poll_interval", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Seconds between polls of the queue and the console.")
@pass_app
def build(app: AppContext, job: str, params: tuple[str, ...], follow: bool, timeout: float | None,
          poll_interval: float) -> int:
    """Trigger JOB and wait for its build number; with --follow, stream its console. On a multibranch
    project (e.g. the commit job) this schedules branch indexing; build a branch with JOB/BRANCH.

    Exit 0 SUCCESS (or triggered, without --follow), 1 UNSTABLE or FAILURE, 130 ABORTED or cancelled
    in the queue, 3 Jenkins unreachable or refusing.
    """
    from mlci.ops.jenkins import server as ops

    project = _optional_project(app)
    console = log if app.json else (lambda text: click.echo(text, nl=False))
    result = ops.trigger_build(ops.connect(project), job, _parse_parameters(params), follow=follow,
                               timeout=timeout, poll_interval=poll_interval, on_console=console, log=log)
    emit(app, result, _render_build)
    return result.exit_code


def _render_build(result) -> str:
    if result.scan:
        return f"{result.job}: branch indexing scheduled (new and changed branches build as {result.job}/<branch>)"
    if result.number is None:
        return f"{result.job}: cancelled while queued"
    state = result.result or "started"
    return f"{result.job} #{result.number}: {state}" + (f" ({result.url})" if result.url else "")


@jenkins.command()
@click.argument("job", required=False)
@click.option("-n", "--limit", type=click.IntRange(min=1), default=5, show_default=True, help="Builds per job.")
@pass_app
def status(app: AppContext, job: str | None, limit: int) -> int:
    """The last builds of JOB (default: the project's commit and nightly jobs) and their results."""
    from mlci.errors import UsageError
    from mlci.ops.jenkins import server as ops

    project = _optional_project(app)
    if job:
        jobs = [job]
    elif project is not None:
        jobs = list(ops.job_names(project).values())
    else:
        raise UsageError("name a JOB or run inside an mlci project")
    result = ops.job_status(ops.connect(project), jobs, limit=limit)
    emit(app, result, lambda r: table([(b["job"], b["number"], b["result"], b.get("started"), b.get("duration_s"))
                                       for b in r.builds], ("job", "build", "result", "started", "seconds")))
    return 0


@jenkins.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--offline", is_flag=True, help="Compile with groovyc even when a server is configured.")
@pass_app
def lint(app: AppContext, file: Path, offline: bool) -> int:
    """Validate FILE with the server's declarative validator, or offline with the Groovy compiler.

    Exit 0 valid, 1 invalid, 3 no validator available or the server failed.
    """
    from mlci.ops.jenkins import server as ops

    project = _optional_project(app)
    client = None if offline or not ops.jenkins_url(project) else ops.connect(project)
    report = ops.lint_jenkinsfile(file, client=client, project=project)
    emit(app, report, lambda r: render_checks(r, f"{file} ({r.details['validator']})"))
    return report.exit_code


def _optional_project(app: AppContext):
    """The project when an mlci.yaml is there; commands that only talk to Jenkins work without one."""
    from mlci.core.config import CONFIG_FILE

    config = app.config_file or app.root / CONFIG_FILE
    return app.project() if Path(config).exists() else None


@jenkins.command()
@pass_app
def describe(app: AppContext) -> int:
    """Print the build page's one-line verdict from the gate report, e.g. `v3 roc_auc 0.743 Δ+0.007 PASSED`.

    The commit pipeline sets `currentBuild.description` from it. Prints nothing when there is no
    gate report yet. Exit 0, 2 unreadable report.
    """
    from mlci.ops.jenkins import pipelines as jenkinsfiles

    line = jenkinsfiles.build_description(app.project())
    emit(app, {"description": line}, lambda r: r["description"])
    return 0
