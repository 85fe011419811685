"""``mlci run``: the pipeline stages locally, in order."""

from __future__ import annotations

import click

from mlci.cli.context import AppContext, pass_app
from mlci.cli.output import emit, log, style_status, table

STAGE_NAMES = ("validate", "train", "evaluate", "gate", "build", "push", "deploy")


@click.command()
@click.option("--from", "start", type=click.Choice(STAGE_NAMES), help="First stage to run.")
@click.option("--to", "stop", type=click.Choice(STAGE_NAMES), help="Last stage to run.")
@pass_app
def run(app: AppContext, start: str | None, stop: str | None) -> int:
    """Run validate, train, evaluate, gate, build, push, deploy in order (stages the project does not
    configure are skipped). Stops at the first failure and exits with that stage's code."""
    import contextlib
    import sys

    from mlci.cli.main import run as invoke
    from mlci.ops.run import run_stages

    # With --json, stdout carries the summary alone; the stages' own output goes to stderr.
    stage_output = contextlib.redirect_stdout(sys.stderr) if app.json else contextlib.nullcontext()
    with stage_output:
        result = run_stages(project=app.project(), global_args=_global_args(app), start=start, stop=stop,
                            invoke=invoke, on_stage=lambda stage: log(f"==> mlci {stage}"))
    emit(app, result, _render)
    summary = app.project().reports_dir / "summary.md"
    if summary.is_file():
        log(f"summary: {summary}")
    return result.exit_code


def _global_args(app: AppContext) -> list[str]:
    """The global options the stages inherit. Stages print text: --json applies to the summary only."""
    args = []
    if app.project_dir is not None:
        args += ["-C", str(app.project_dir)]
    if app.config_file is not None:
        args += ["--config", str(app.config_file)]
    if app.debug:
        args.append("--debug")
    return args


def _render(result) -> str:
    rows = [(s.stage, f"{s.seconds:.1f}s" if s.result != "skipped" else "-",
             style_status({"passed": "pass", "failed": "fail", "skipped": "skip"}[s.result])
             + (f" ({s.reason})" if s.reason else "") + (f" (exit {s.exit_code})" if s.result == "failed" else ""))
            for s in result.stages]
    verdict = "FAILED" if result.exit_code else "PASSED"
    return "\n" + table(rows, ("stage", "duration", "result")) + f"\n\n{style_status(verdict)}"
