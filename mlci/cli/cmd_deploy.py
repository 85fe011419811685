"""``mlci deploy --env E`` and ``mlci rollback --env E``."""

from __future__ import annotations

import click

from mlci.cli.context import AppContext, pass_app
from mlci.cli.output import emit, log, render_checks


@click.command()
@click.option("--env", "env_name", required=True, help="Environment name from mlci.yaml `environments`.")
@click.option("--model", "ref", default="latest", show_default=True, help="Model version, alias or 'latest'.")
@click.option("--render-only", is_flag=True, help="kubernetes: write the manifests, do not apply them.")
@pass_app
def deploy(app: AppContext, env_name: str, ref: str, render_only: bool) -> int:
    """Roll a model version out to an environment, health-gated.

    The new server must become ready and answer a smoke test with holdout rows before the old one is
    stopped; otherwise it is removed and the old one keeps serving.
    Exit 0 deployed, 1 not healthy (rolled back), 2 bad config or no pushed image, 3 Docker/kubectl failed.
    """
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
