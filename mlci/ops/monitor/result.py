"""The report of ``mlci monitor``, in its own module so the steps that read it import no use case."""

from __future__ import annotations

from mlci.core.reports import Report


class MonitorReport(Report):
    """A monitor report; exit 3 when a service (Pushgateway, prediction logs) failed."""

    service_error: str | None = None

    @property
    def exit_code(self) -> int:
        return 3 if self.service_error else super().exit_code
