"""``mlci experiment status|conclude --env E [--labels FILE]``."""

from __future__ import annotations

import click

from mlci.cli.context import AppContext, pass_app
from mlci.cli.output import emit, log, render_checks

_LABELS_HELP = "Labels joined on request_id (columns request_id[, row] and the target; default: monitor.labels)."


@click.group()
def experiment() -> None:
    """Live experiments started by `mlci deploy --shadow V` or `--canary V`."""


@experiment.command()
@click.option("--env", "env_name", required=True, help="Environment name from mlci.yaml `environments`.")
@click.option("--labels", "labels_file", metavar="FILE", help=_LABELS_HELP)
@pass_app
def status(app: AppContext, env_name: str, labels_file: str | None) -> int:
    """Where the running experiment stands; changes nothing.

    Exit 0 promote or continue, 1 the evidence or a guardrail says stop, 2 no experiment or no labels.
    """
    from mlci.ops.deliver.experiment import experiment_status

    report = experiment_status(app.project(), env_name=env_name, labels_file=labels_file)
    emit(app, report, lambda r: _render(r))
    return report.exit_code


@experiment.command()
@click.option("--env", "env_name", required=True, help="Environment name from mlci.yaml `environments`.")
@click.option("--labels", "labels_file", metavar="FILE", help=_LABELS_HELP)
@click.option("--if-running", is_flag=True, help="Exit 0 when no experiment runs (the nightly pipeline's use).")
@pass_app
def conclude(app: AppContext, env_name: str, labels_file: str | None, if_running: bool) -> int:
    """Decide and act: promote (the challenger serves alone and the aliases move), stop (the champion
    serves alone) or continue (the look is recorded; the experiment keeps running).

    Exit 0 promote or continue, 1 stop (or a redeploy failed), 2 no experiment or no labels, 3 a service failed.
    """
    from mlci.ops.deliver.experiment import conclude_experiment, experiment_running

    if if_running and not experiment_running(app.project(), env_name=env_name):
        log(f"no experiment runs on '{env_name}': nothing to conclude")
        return 0
    report = conclude_experiment(app.project(), env_name=env_name, labels_file=labels_file, on_line=log)
    emit(app, report, lambda r: _render(r))
    return report.exit_code


def _render(report) -> str:
    details = report.details
    head = (f"{details['mode']} experiment {details['experiment']} on {details['env']}: challenger version "
            f"{details['challenger']} against version {details['champion']} -> {details['decision'].upper()}")
    return head + "\n" + render_checks(report)
