"""``mlci monitor`` and ``mlci alerts``."""

from __future__ import annotations

from pathlib import Path

import click

from mlci.cli.context import AppContext, pass_app
from mlci.cli.output import emit, log, render_checks, write_output


@click.command()
@click.option("--reference", metavar="FILE", help="Reference data (default: the deployed version's training data).")
@click.option("--current", metavar="FILE|GLOB", help="Current data (default: the server's prediction logs).")
@click.option("--since", metavar="SPAN", help="How far back prediction logs are read, e.g. 24h, 7d "
                                              "(default: monitor.window).")
@click.option("--labels", metavar="FILE", help="Labels arriving later, joined on request_id (and row).")
@click.option("--model-version", metavar="REF", help="Model version or alias (default: production, else the "
                                                      "newest deployment, else latest).")
@click.option("--pushgateway", metavar="URL", help="Pushgateway URL (default: MLCI_PUSHGATEWAY, then "
                                                   "monitor.pushgateway).")
@click.option("--no-plots", is_flag=True, help="Leave the distribution plots out of the HTML report.")
@pass_app
def monitor(app: AppContext, reference: str | None, current: str | None, since: str | None, labels: str | None,
            model_version: str | None, pushgateway: str | None, no_plots: bool) -> int:
    """Measure drift, data quality and performance of current data; push metrics.

    Exit 0: no drift. 1: dataset drift, prediction drift or performance decay beyond the thresholds
    (the JSON report says "retrain": true). 3: the Pushgateway or the prediction logs failed; the
    report files are written anyway.
    """
    from mlci.ops.monitor.run import run_monitor

    report = run_monitor(app.project(), reference=reference, current=current, since=since, labels=labels,
                         pushgateway=pushgateway, model_version=model_version, plots=not no_plots)
    emit(app, report, lambda r: render_checks(r, title="monitor"))
    if report.service_error:
        log(f"mlci: error: {report.service_error}")
    return report.exit_code


@click.command()
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the rules to this file ('-' or nothing: stdout).")
@pass_app
def alerts(app: AppContext, output: Path | None) -> int:
    """Write Prometheus alerting rules: drift, decay, data quality, stale monitor, error rate, latency."""
    from mlci.ops.monitor.alerts import alert_rules

    text = alert_rules(app.project())
    if app.json:
        import json

        import yaml

        text = json.dumps(yaml.safe_load(text), indent=2) + "\n"
    write_output(output, text)
    return 0
