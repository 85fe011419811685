"""The generated pipelines and the CLI agree: every `mlci ...` a Jenkinsfile runs is a command that exists
and accepts those options (pipelines and commands are built separately; this holds them together)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from mlci.cli.main import run

REPO = Path(__file__).resolve().parent.parent
PIPELINES = [REPO / "Jenkinsfile", REPO / "pipelines" / "nightly.Jenkinsfile"]


def pipeline_invocations() -> list[tuple[str, list[str]]]:
    found = []
    for path in PIPELINES:
        for line in re.findall(r"\.venv/bin/mlci ([^'\n]*)", path.read_text()):
            words = [w if not w.startswith("$") else "staging" for w in shlex.split(line)]
            words = words[:next((i for i, w in enumerate(words) if w in ("||", "&&") or ">" in w), len(words))]
            found.append((path.name, words))
    return found


def test_the_pipelines_run_every_stage():
    commands = {words[0] for _, words in pipeline_invocations() if not words[0].startswith("-")}
    assert commands == {"validate", "train", "evaluate", "gate", "build", "push", "deploy", "monitor", "jenkins"}
    assert ["jenkins", "describe"] in [words for _, words in pipeline_invocations()]  # the build page's verdict


@pytest.mark.parametrize("where, words", pipeline_invocations(), ids=lambda v: v if isinstance(v, str) else " ".join(v))
def test_each_invocation_parses(where, words, capsys):
    assert run([*words, "--help"]) == 0, f"{where}: mlci {' '.join(words)}: {capsys.readouterr().err}"
