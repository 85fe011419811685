"""The repository's own lint and type checks ([tool.ruff] and [tool.mypy] in pyproject.toml), so the test
command (scripts/test.sh) runs them: ruff on everything, mypy on the package."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _tool(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: pip install -e '.[dev]'")
    return found


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_finds_nothing():
    result = _run([_tool("ruff"), "check", "--no-cache", "."])
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_finds_nothing():
    result = _run([_tool("mypy")])  # files and options: [tool.mypy] in pyproject.toml
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_merge_or_editor_leftovers_are_committed():
    tracked = _run(["git", "ls-files"]).stdout.splitlines()
    leftovers = [p for p in tracked if p.endswith((".orig", ".rej", ".bak", "~")) or "/.#" in f"/{p}"]
    assert leftovers == []
