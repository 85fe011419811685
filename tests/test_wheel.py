"""The built wheel, installed into a fresh virtualenv, runs mlci with its templates from the wheel."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                    "-w", str(work / "dist"), str(REPO)], check=True, timeout=300)
    (wheel,) = (work / "dist").glob("mlci-*.whl")
    env_dir = work / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    # Dependencies come from the index (through pip's cache); mlci itself only from the wheel.
    subprocess.run([str(python), "-m", "pip", "install", "-q", str(wheel)], check=True, timeout=900)
    return env_dir


def mlci(env_dir: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run([str(env_dir / "bin" / "mlci"), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_wheel_installs_and_runs_outside_the_source_tree(wheel_venv, tmp_path):
    data = tmp_path / "train.csv"
    shutil.copy(REPO / "examples" / "credit-risk" / "data" / "train.csv", data)

    version = mlci(wheel_venv, "--version", cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.startswith("mlci, version")

    where = subprocess.run([str(wheel_venv / "bin" / "python"), "-c", "import mlci; print(mlci.__file__)"],
                           cwd=tmp_path, capture_output=True, text=True, check=True)
    assert str(REPO) not in where.stdout, "the test must exercise the installed wheel, not the source tree"

    infer = mlci(wheel_venv, "schema", "infer", str(data), "--target", "default", "-o", "schema.yaml", cwd=tmp_path)
    assert infer.returncode == 0, infer.stderr
    valid = mlci(wheel_venv, "validate", str(data), "--schema", "schema.yaml", cwd=tmp_path)
    assert valid.returncode == 0, valid.stdout + valid.stderr
    assert (tmp_path / "reports" / "validate.html").read_text().startswith("<!doctype html>")
