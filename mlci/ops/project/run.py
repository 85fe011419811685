"""``mlci run``: the pipeline stages in order, each through the same entry point as its command.

A stage runs through the CLI's own entry point (``mlci.cli.main.run``, passed in by the command) in
this process, so its behaviour and exit code are exactly those of the command. Stages the project does
not configure (no ``image`` section for build/push/deploy, no environments for deploy) are skipped,
not failed. The first failing stage stops the run with its exit code.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

from mlci.core.config import Project
from mlci.errors import UsageError

STAGES = ("validate", "train", "evaluate", "gate", "build", "push", "deploy")
NEEDS_IMAGE = ("build", "push", "deploy")


@dataclass
class StageResult:
    stage: str
    result: str  # passed, failed, skipped
    exit_code: int | None = None
    seconds: float = 0.0
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "result": self.result, "exit_code": self.exit_code,
                "seconds": round(self.seconds, 3), "reason": self.reason}


@dataclass
class RunResult:
    stages: list[StageResult] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        failed = [s for s in self.stages if s.result == "failed"]
        return failed[0].exit_code if failed else 0

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.exit_code == 0, "exit_code": self.exit_code,
                "stages": [s.to_dict() for s in self.stages]}


def select_stages(start: str | None, stop: str | None) -> list[str]:
    for name in (start, stop):
        if name is not None and name not in STAGES:
            raise UsageError(f"unknown stage '{name}'", hint="stages: " + ", ".join(STAGES))
    first = STAGES.index(start) if start else 0
    last = STAGES.index(stop) if stop else len(STAGES) - 1
    if first > last:
        raise UsageError(f"--from {start} comes after --to {stop}", hint="stages run in order: " + ", ".join(STAGES))
    return list(STAGES[first:last + 1])


def stage_arguments(project: Project, stage: str) -> list[str] | str:
    """The command line of ``stage``, or why it is skipped."""
    if stage in NEEDS_IMAGE and project.config.image is None:
        return "not configured: no `image` section"
    if stage == "deploy":
        environments = project.config.environments
        if not environments:
            return "not configured: no environments"
        return ["deploy", "--env", "staging" if "staging" in environments else next(iter(environments))]
    return [stage]


def run_stages(*, project: Project, global_args: list[str], start: str | None = None, stop: str | None = None,
               invoke: Callable[[list[str]], int], on_stage: Callable[[str], None] | None = None) -> RunResult:
    """Run the selected stages; ``invoke`` runs one command line and returns its exit code."""
    result = RunResult()
    for stage in select_stages(start, stop):
        arguments = stage_arguments(project, stage)
        if isinstance(arguments, str):
            result.stages.append(StageResult(stage, "skipped", reason=arguments))
            continue
        if on_stage:
            on_stage(stage)
        started = time.monotonic()
        code = invoke([*global_args, *arguments])
        outcome = StageResult(stage, "passed" if code == 0 else "failed", code, time.monotonic() - started)
        result.stages.append(outcome)
        if code != 0:
            break
    return result
