"""``mlci build`` and ``mlci push``: the serving image of a model version."""

from __future__ import annotations

import click

from mlci.cli.context import AppContext, pass_app
from mlci.cli.output import emit, log, render_checks


@click.command()
@click.option("--model", "ref", default="latest", show_default=True, help="Model version, alias or 'latest'.")
@click.option("--no-cache", is_flag=True, help="Build every layer again.")
@pass_app
def build(app: AppContext, ref: str, no_cache: bool) -> int:
    """Build the serving image of a model version (docker SDK; wheelhouse built on this host).

    Exit 0 built, 1 the build failed, 2 bad config, 3 Docker engine or package download failed.
    """
    from mlci.ops.deliver.image import build_image

    report = build_image(app.project(), ref=ref, no_cache=no_cache, on_line=log)
    emit(app, report, lambda r: render_checks(r) + "\n" + _timing(r.details))
    return report.exit_code


@click.command()
@click.option("--model", "ref", default="latest", show_default=True, help="Model version, alias or 'latest'.")
@pass_app
def push(app: AppContext, ref: str) -> int:
    """Push the image to its registry and record the digest.

    Credentials: MLCI_REGISTRY_USER/MLCI_REGISTRY_PASSWORD, else Docker's config (docker login).
    Exit 0 pushed, 2 nothing built yet, 3 the engine or the registry failed or refused.
    """
    from mlci.ops.deliver.image import push_image

    report = push_image(app.project(), ref=ref, on_line=log)
    emit(app, report, render_checks)
    return report.exit_code


def _timing(details: dict) -> str:
    seconds = details["seconds"]
    return (f"built in {seconds['total']}s (context {seconds['context']}s, engine {seconds['build']}s, "
            f"{details['cached_steps']} cached steps); image {details['size_mb']} MB, "
            f"{details['added_mb']} MB over the base")
