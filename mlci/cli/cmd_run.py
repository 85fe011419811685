"""``mlci run``: the pipeline stages locally, in order."""

from __future__ import annotations

import click

from mlci.cli.context import AppContext, pass_app
from mlci.cli.output import emit, log, render_checks, style_status, table
from mlci.core.stages import STAGE_NAMES


@click.command()
@click.option("--from", "start", type=click.Choice(STAGE_NAMES), help="First stage to run.")
@click.option("--to", "stop", type=click.Choice(STAGE_NAMES), help="Last stage to run.")
@click.option("--env", "env_name", help="Environment the deploy stage deploys to (needed when mlci.yaml has "
                                        "several `environments`).")
@pass_app
def run(app: AppContext, start: str | None, stop: str | None, env_name: str | None) -> int:
    """Run validate, train, evaluate, gate, build, push, deploy in order (stages the project does not
    configure are skipped). Stops at the first failure and exits with that stage's code."""
    from mlci.ops.project.run import run_stages

    def show(outcome) -> None:
        # With --json, stdout carries the summary alone; the stages' own output goes to stderr.
        if outcome.error is not None:
            from mlci.cli.main import print_error

            print_error(outcome.error)
        else:
            click.echo(_stage_text(outcome.stage, outcome.output), err=app.json)

    result = run_stages(project=app.project(), start=start, stop=stop, env_name=env_name,
                        on_stage=lambda stage: log(f"==> mlci {stage}"), on_line=log, on_result=show)
    emit(app, result, _render)
    summary = app.project().reports_dir / "summary.md"
    if summary.is_file():
        log(f"summary: {summary}")
    return result.exit_code


def _stage_text(stage: str, output) -> str:
    """A stage's result as its own command prints it."""
    if stage == "validate":
        from mlci.cli.cmd_data import render_validation

        return render_validation(output)
    if stage == "train":
        from mlci.cli.cmd_model import _render_train

        return _render_train(output)
    if stage == "evaluate":
        from mlci.cli.cmd_model import _render_evaluate

        return _render_evaluate(output)
    if stage == "gate":
        from mlci.cli.cmd_model import _gate_title

        return render_checks(output, title=_gate_title(output))
    if stage == "build":
        from mlci.cli.cmd_image import _timing

        return render_checks(output) + "\n" + _timing(output.details)
    return render_checks(output)


def _render(result) -> str:
    rows = [(s.stage, f"{s.seconds:.1f}s" if s.result != "skipped" else "-",
             style_status({"passed": "pass", "failed": "fail", "skipped": "skip"}[s.result])
             + (f" ({s.reason})" if s.reason else "") + (f" (exit {s.exit_code})" if s.result == "failed" else ""))
            for s in result.stages]
    verdict = "FAILED" if result.exit_code else "PASSED"
    return "\n" + table(rows, ("stage", "duration", "result")) + f"\n\n{style_status(verdict)}"
