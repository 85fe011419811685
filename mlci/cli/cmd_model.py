"""``mlci train``, ``mlci evaluate``, ``mlci gate``."""

from __future__ import annotations

from pathlib import Path

import click

from mlci.cli.context import AppContext, pass_app
from mlci.cli.output import emit, log, plural, render_checks, table


@click.command()
@pass_app
def train(app: AppContext) -> int:
    """Fit the configured estimator with preprocessing derived from the schema, cross-validate,
    and register a new model version with its lineage and model card. Exit 0, or 2 for bad input."""
    from mlci.ops.model.train import train as train_model

    result = train_model(project=app.project())
    emit(app, result, _render_train)
    return 0


def _render_train(result) -> str:
    from mlci.core.records import ModelVersion
    from mlci.ops.model.registry import estimator_name

    record = ModelVersion.from_dict(result.record)
    lines = [f"registered model version {result.version} ({estimator_name(record)}, "
             f"{plural(record.train.rows or 0, 'row')}, {result.seconds:.1f}s)"]
    if result.cv:
        rows = [(name, f"{v['mean']:.4f} ± {v['std']:.4f}") for name, v in result.cv.items()]
        lines.append(table(rows, ("cv metric", "mean ± std")))
    return "\n".join(lines)


@click.command()
@click.option("--model", "ref", default="latest", show_default=True,
              help="Version number, alias or 'latest'.")
@pass_app
def evaluate(app: AppContext, ref: str) -> int:
    """Holdout metrics, per-slice metrics, confusion matrix, latency; writes metrics.json into the
    version and reports/evaluate.{json,junit.xml,html}. Exit 0, or 2 for bad input."""
    from mlci.ops.model.evaluate import evaluate as evaluate_model

    report = evaluate_model(project=app.project(), ref=ref)
    emit(app, report, _render_evaluate)
    return report.exit_code


def _render_evaluate(report) -> str:
    details = report.details
    rows = [(name, value) for name, value in details["metrics"].items()]
    lines = [f"model version {details['version']} on {details['holdout']['rows']} holdout rows",
             table(rows, ("metric", "value"))]
    for column, values in details["slices"].items():
        slice_rows = [(f"{column}={key}", entry["rows"], *[entry["metrics"].get(m) for m in details["slice_metrics"]])
                      for key, entry in values.items()]
        lines.append("")
        lines.append(table(slice_rows, ("slice", "rows", *details["slice_metrics"])))
    lines += [f"  {kind}: {path}" for kind, path in report.files.items()]
    return "\n".join(lines)


@click.command()
@click.option("--model", "ref", default="latest", show_default=True, help="The challenger: version or alias.")
@click.option("--champion", default=None, help="Alias or version to beat (default: gates.champion).")
@click.option("--metrics", "metrics_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Files-only mode: the challenger's metrics.json (no registry needed).")
@click.option("--baseline", "baseline_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Files-only mode: the champion's metrics.json (omit for a first run).")
@pass_app
def gate(app: AppContext, ref: str, champion: str | None, metrics_file: Path | None,
         baseline_file: Path | None) -> int:
    """Check the gate rules of mlci.yaml: thresholds, champion comparison (absolute or relative
    tolerance, optional paired bootstrap), slices. Exit 0 pass (warnings allowed), 1 a fail rule failed."""
    from mlci.errors import UsageError
    from mlci.ops.model.gate import gate_files, gate_registry

    if baseline_file and not metrics_file:
        raise UsageError("--baseline needs --metrics", hint="mlci gate --metrics NEW.json --baseline OLD.json")
    project = app.project()
    if metrics_file:
        report = gate_files(project=project, metrics_file=metrics_file, baseline_file=baseline_file)
    else:
        report = gate_registry(project=project, ref=ref, champion=champion)
    for check in report.checks:
        if check.group == "champion" and report.details.get("champion") is None:
            alias = report.details.get("champion_alias")
            log(f"notice: {check.message}")
            log(f"hint: set the champion with `mlci registry promote VERSION --to {alias}` "
                f"(or deploy to an environment named '{alias}'); see docs/tutorial.md")
            break
    emit(app, report, lambda r: render_checks(r, title=_gate_title(r)))
    return report.exit_code


def _gate_title(report) -> str:
    details = report.details
    champion = details.get("champion") or f"none (no '{details.get('champion_alias')}' yet)"
    notes = "".join(f"\nnote: {note}" for note in details.get("notes") or ())
    return f"gate: challenger {details.get('challenger')} vs champion {champion}{notes}"
