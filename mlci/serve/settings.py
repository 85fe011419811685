"""Server settings: one frozen object built from ``mlci.yaml`` (``mlci serve``) or from the command line
and environment inside the image (``python -m mlci.serve``)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

from mlci.core.config import SHADOW_CPU_SHARE

ENV_PREFIX = "MLCI_SERVE_"
# After SIGTERM the server finishes in-flight requests for at most this long (uvicorn's
# timeout_graceful_shutdown); a Kubernetes pod's grace period leaves room for it.
GRACEFUL_SHUTDOWN_SECONDS = 30


@dataclass(frozen=True)
class ServeSettings:
    registry: Path
    model: str = "latest"
    host: str = "127.0.0.1"
    port: int = 8080
    # A second port only this server instance listens on: the deployer checks readiness and smoke-tests
    # the new instance there while the old one still shares ``port`` with it (SO_REUSEPORT).
    check_port: int | None = None
    workers: int = 1
    max_body_bytes: int = 1_048_576
    max_rows: int = 1000
    log_dir: Path | None = None
    log_max_bytes: int = 50_000_000
    log_queue_rows: int = 100_000
    unknown_categories: str = "accept"
    # "<project>/<environment>" for a deployed server, so a deployer can tell who holds a port.
    deployment: str = ""
    # A live experiment (mlci.serve.experiment): "" none, "shadow" or "canary"; the challenger is a version
    # number of the same registry; ``experiment_key`` names a header or record field canary routing hashes.
    experiment_mode: str = ""
    experiment_challenger: str = ""
    experiment_share: float = 0.0
    experiment_key: str = ""
    experiment_id: str = ""
    experiment_queue_rows: int = 10_000
    shadow_cpu_share: float = SHADOW_CPU_SHARE  # of one CPU, for each shadow scorer process
    # Where the challenger's version is read from when not ``registry`` (a container's image holds only the
    # champion; the docker target mounts the project's registry here, read-only).
    experiment_registry: Path | None = None

    def environment(self, *, omit: tuple[str, ...] = (), **overrides: object) -> dict[str, str]:
        """These settings as the ``MLCI_SERVE_*`` variables ``python -m mlci.serve`` reads, with
        ``overrides`` (e.g. a container's own paths) and without the ``omit``ted ones."""
        values = {f.name: getattr(self, f.name) for f in fields(self)} | overrides
        return {ENV_PREFIX + name.upper(): "" if value is None else str(value)
                for name, value in values.items() if name not in omit}
