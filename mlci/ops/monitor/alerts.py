"""``mlci alerts``: Prometheus alerting rules for the monitor's metrics and the model server's metrics."""

from __future__ import annotations

import json

from mlci.core.config import Project
from mlci.ops.monitor.metrics import PUSH_JOB
from mlci.ops.reporting.render import render


def alert_rules(project: Project) -> str:
    """The rules file (YAML) for this project, thresholds from the ``monitor`` section."""
    settings = project.config.monitor
    return render("prometheus/alerts.yaml.j2", project=project.config.project, job=PUSH_JOB,
                  error_rate=settings.alert_error_rate, latency_p99=settings.alert_latency_p99,
                  stale_seconds=int(settings.alert_stale_hours * 3600), stale_hours=settings.alert_stale_hours,
                  drift_share=settings.drift_share, max_out_of_schema=settings.max_out_of_schema,
                  quote=json.dumps)
