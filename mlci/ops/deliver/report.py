"""The report of ``mlci deploy`` and ``mlci rollback``: one set of files per environment."""

from __future__ import annotations

from collections.abc import Callable

from mlci.core.config import Project
from mlci.core.reports import Report, write_report
from mlci.ops.reporting.render import render

LineSink = Callable[[str], None]


def finish_report(project: Project, report: Report) -> Report:
    """``reports/<deploy|rollback>-<env>.*``: one set per environment, so a production deploy in the same
    build does not overwrite staging's JUnit results."""
    name = f"{report.kind}-{report.details['env']}"
    write_report(report, project.reports_dir, name, html=render("reports/delivery.html.j2", title=f"mlci {report.kind}",
                                                          ok=report.ok, report=report))
    return report
