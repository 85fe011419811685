"""``mlci registry list|show|promote|rollback|diff|export|import``."""

from __future__ import annotations

import json

import click

from mlci.cli.context import AppContext, pass_app
from mlci.cli.output import emit, plural, table


@click.group()
def registry() -> None:
    """The model registry (local directory or MLflow): versions with lineage, metrics and aliases."""


@registry.command("list")
@pass_app
def list_command(app: AppContext) -> int:
    """Every version, oldest first, with its aliases and headline metrics."""
    from mlci.ops.model.registry import list_versions

    emit(app, list_versions(project=app.project()), _render_list)
    return 0


def _render_list(view) -> str:
    versions = view.data["versions"]
    if not versions:
        return "no model versions yet (run `mlci train`)"
    headline = view.data["headline"]
    rows = [(f"v{v['version']}", v["created"], v["estimator"].rsplit(".", 1)[-1], ", ".join(v["aliases"]),
             *[v["metrics"].get(m) for m in headline]) for v in versions]
    return table(rows, ("version", "created", "estimator", "aliases", *headline))


@registry.command()
@click.argument("ref")
@pass_app
def show(app: AppContext, ref: str) -> int:
    """One version's record: data hashes, schema, estimator, metrics, git, CI build, image, deployments."""
    from mlci.ops.model.registry import show_version

    emit(app, show_version(project=app.project(), ref=ref), _render_show)
    return 0


def _render_show(view) -> str:
    from mlci.core.records import ModelVersion
    from mlci.ops.model.registry import estimator_name

    version = ModelVersion.from_dict(view.data["record"])  # the stored form, as --json prints it
    lines = [f"version     v{version.version}  ({', '.join(view.data['aliases']) or 'no aliases'})",
             f"created     {version.created}",
             f"task        {version.task} (target {version.target})",
             f"estimator   {estimator_name(version)}",
             f"params      {json.dumps(version.params, sort_keys=True)}"]
    for name, info in version.data.items():
        rows = plural(info.rows or 0, "row")
        lines.append(f"{name + ' data':<11} {info.path} ({rows}, sha256 {info.sha256})")
    lines.append(f"schema      sha256 {version.schema_sha256}")
    if version.git_commit is not None:
        lines.append(f"git         {version.git_commit}{' (dirty)' if version.git_dirty else ''}")
    if version.ci_url:
        lines.append(f"build       {version.ci_url}")
    if version.image is not None:
        lines.append(f"image       {version.image.name}@{version.image.digest}")
    for deployment in version.stored_deployments:
        lines.append(f"deployed    {json.dumps(deployment, sort_keys=True)}")
    for experiment in version.experiments:
        lines.append(f"experiment  {experiment.mode} against version {experiment.champion} on "
                     f"{experiment.env}, started {experiment.started}: {experiment.outcome}")
    metrics = version.metrics
    if metrics:
        lines.append(table(sorted(metrics.items()), ("metric", "value")))
    else:
        lines.append("metrics     not evaluated yet (`mlci evaluate`)")
    return "\n".join(lines)


@registry.command()
@click.argument("ref")
@click.option("--to", "alias", required=True, help="Alias to point at the version, e.g. production.")
@pass_app
def promote(app: AppContext, ref: str, alias: str) -> int:
    """Point ALIAS at version REF (the old holder is remembered for rollback)."""
    from mlci.ops.model.registry import promote as promote_version

    view = promote_version(project=app.project(), ref=ref, alias=alias)
    emit(app, view, lambda v: f"{v.data['alias']} -> v{v.data['version']}"
         + (f" (was v{v.data['previous']})" if v.data["previous"] else ""))
    return 0


@registry.command()
@click.argument("alias")
@pass_app
def rollback(app: AppContext, alias: str) -> int:
    """Point ALIAS back at its previous holder."""
    from mlci.ops.model.registry import rollback as rollback_alias

    view = rollback_alias(project=app.project(), alias=alias)
    emit(app, view, lambda v: f"{v.data['alias']} -> v{v.data['to']} (was v{v.data['from']})")
    return 0


@registry.command()
@click.argument("left")
@click.argument("right")
@pass_app
def diff(app: AppContext, left: str, right: str) -> int:
    """What differs between two versions: parameters, metrics, data, libraries, code."""
    from mlci.ops.model.registry import diff_versions

    emit(app, diff_versions(project=app.project(), left=left, right=right), _render_diff)
    return 0


def _render_diff(view) -> str:
    changes = view.data["changes"]
    if not changes:
        return f"v{view.data['left']} and v{view.data['right']} do not differ"
    rows = [(section, c["key"], c["left"], c["right"]) for section, items in changes.items() for c in items]
    return table(rows, ("section", "key", f"v{view.data['left']}", f"v{view.data['right']}"))


@registry.command("export")
@click.option("--to", "directory", required=True, type=click.Path(file_okay=False),
              help="New or empty directory to write a local registry into.")
@pass_app
def export_command(app: AppContext, directory: str) -> int:
    """Copy every version (lineage, artifacts) and alias (with history) into a local registry directory."""
    from pathlib import Path

    from mlci.ops.model.registry import export_versions

    emit(app, export_versions(project=app.project(), directory=Path(directory)), _render_copy)
    return 0


@registry.command("import")
@click.option("--from", "directory", required=True, type=click.Path(file_okay=False),
              help="A local registry directory (e.g. written by 'mlci registry export').")
@pass_app
def import_command(app: AppContext, directory: str) -> int:
    """Copy every version and alias of a local registry directory into the configured registry."""
    from pathlib import Path

    from mlci.ops.model.registry import import_versions

    emit(app, import_versions(project=app.project(), directory=Path(directory)), _render_copy)
    return 0


def _render_copy(view) -> str:
    versions = view.data["versions"]
    moved = ", ".join(f"v{old}->v{new}" for old, new in versions.items()) or "no versions"
    aliases = ", ".join(f"{name}->v{v}" for name, v in view.data["aliases"].items()) or "no aliases"
    return f"copied {len(versions)} version(s) from {view.data['from']} to {view.data['to']}: {moved}; {aliases}"
