"""Shared fixtures. Real components (Docker, registry, Pushgateway, Groovy) come from tests/services.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.services import *  # noqa: F401,F403 - session fixtures for the real components

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def run_cli(monkeypatch):
    """Run ``mlci ARGS`` in-process through the real entry point; returns (exit_code, stdout, stderr)."""
    from mlci.cli.main import run

    def invoke(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None):
        if cwd is not None:
            monkeypatch.chdir(cwd)
        for key, value in (env or {}).items():
            monkeypatch.setenv(key, value)
        runner = CliRunner()
        with runner.isolation() as (out, err, *_):
            code = run([str(a) for a in args])
        return code, out.getvalue().decode(), err.getvalue().decode()

    return invoke


@pytest.fixture
def mlci_subprocess():
    """Run ``python -m mlci ARGS`` in a subprocess (for exit codes, imports and signals)."""

    def invoke(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 120):
        full_env = {**os.environ, **(env or {}), "PYTHONPATH": str(REPO)}
        return subprocess.run([sys.executable, "-m", "mlci", *map(str, args)], cwd=cwd, env=full_env,
                              capture_output=True, text=True, timeout=timeout)

    return invoke
