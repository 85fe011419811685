"""``mlci deploy --env E`` and ``mlci rollback --env E``."""

from __future__ import annotations

import click

from mlci.cli.context import AppContext, pass_app
from mlci.cli.output import emit, log, render_checks


@click.command()
@click.option("--env", "env_name", required=True, help="Environment name from mlci.yaml `environments`.")
@click.option("--model", "ref", default="latest", show_default=True, help="Model version, alias or 'latest'.")
@click.option("--render-only", is_flag=True, help="kubernetes: write the manifests, do not apply them.")
@click.option("--shadow", "shadow", metavar="V", help="Start a shadow experiment: version V scores every request "
              "beside the environment's model, which keeps answering.")
@click.option("--canary", "canary", metavar="V",
              help="Start a canary experiment: version V answers --share of requests.")
@click.option("--share", type=float, default=None, help="Canary: share of requests the challenger answers "
              "(default: environments.E.experiment.share, else 0.1).")
@click.option("--experiment", "configured", is_flag=True, help="Start the experiment configured in "
              "environments.E.experiment (what the commit pipeline runs).")
@pass_app
def deploy(app: AppContext, env_name: str, ref: str, render_only: bool, shadow: str | None, canary: str | None,
           share: float | None, configured: bool) -> int:
    """Roll a model version out to an environment, health-gated.

    The new server must become ready and answer a smoke test with holdout rows before the old one is
    stopped; otherwise it is removed and the old one keeps serving. With --shadow, --canary or
    --experiment the environment's model keeps serving and a challenger joins it (see `mlci experiment`).
    Exit 0 deployed, 1 not healthy (rolled back), 2 bad config or no pushed image, 3 Docker/kubectl failed.
    """
    from mlci.errors import UsageError

    chosen = [name for name, value in (("--shadow", shadow), ("--canary", canary), ("--experiment", configured))
              if value]
    if len(chosen) > 1:
        raise UsageError(f"{' and '.join(chosen)} exclude each other", hint="start one experiment at a time")
    if chosen and render_only:
        raise UsageError(f"--render-only does not start an experiment ({chosen[0]} would apply it)",
                         hint="start it without --render-only; --render-only alone shows a running one")
    if share is not None and not (canary or configured):
        raise UsageError("--share applies to a canary", hint="add --canary V")
    if chosen:
        from mlci.ops.deliver.experiment import start_experiment

        mode = "shadow" if shadow else "canary" if canary else None
        report = start_experiment(app.project(), env_name=env_name, challenger_ref=shadow or canary, mode=mode,
                                  share=share, first_deploy=configured, on_line=log)
        emit(app, report, render_checks)
        return report.exit_code
    from mlci.ops.deliver.deploy import deploy as deploy_version

    report = deploy_version(app.project(), env_name=env_name, ref=ref, render_only=render_only, on_line=log)
    emit(app, report, render_checks)
    return report.exit_code


@click.command()
@click.option("--env", "env_name", required=True, help="Environment name from mlci.yaml `environments`.")
@pass_app
def rollback(app: AppContext, env_name: str) -> int:
    """Return an environment to its previous deployment (health-gated like deploy).

    Exit 0 rolled back, 1 the previous version is not healthy, 2 nothing to roll back to, 3 Docker failed.
    """
    from mlci.ops.deliver.deploy import rollback as rollback_environment

    report = rollback_environment(app.project(), env_name=env_name, on_line=log)
    emit(app, report, render_checks)
    return report.exit_code
