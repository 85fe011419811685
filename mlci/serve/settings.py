"""Server settings: one frozen object built from ``mlci.yaml`` (``mlci serve``) or from the command line
and environment inside the image (``python -m mlci.serve``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


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
