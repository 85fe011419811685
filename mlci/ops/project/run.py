"""``mlci run``: the pipeline stages in order, each through the same use case as its command.

The stages come from ``mlci.core.stages``. Each one calls its ``mlci.ops`` function with the project's
defaults (the defaults of its command), so its verdict and exit code are those of the command. Stages the
project does not configure (no ``image`` section for build/push/deploy, no environments for deploy) are
skipped, not failed. The first failing stage stops the run with its exit code; an mlci error raised by a
stage fails that stage with the error's exit code.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mlci.core.config import Project
from mlci.core.stages import STAGE_NAMES, Stage, select_stages, skip_reason
from mlci.errors import MlciError, UsageError

STAGES = STAGE_NAMES
LineSink = Callable[[str], None]


@dataclass
class StageResult:
    stage: str
    result: str  # passed, failed, skipped
    exit_code: int | None = None
    seconds: float = 0.0
    reason: str = ""
    output: Any = None  # the stage's own result (a report), for its command's renderer
    error: MlciError | None = None  # the error that failed the stage, if one did

    def to_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "result": self.result, "exit_code": self.exit_code,
                "seconds": round(self.seconds, 3), "reason": self.reason}


@dataclass
class RunResult:
    stages: list[StageResult] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        failed = [s for s in self.stages if s.result == "failed"]
        return failed[0].exit_code or 0 if failed else 0

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.exit_code == 0, "exit_code": self.exit_code,
                "stages": [s.to_dict() for s in self.stages]}


MANY_ENVIRONMENTS = "several environments: name one with --env"


def deploy_environment(project: Project, env_name: str | None) -> str | None:
    """The environment ``mlci run`` deploys to: ``--env``, else the only one of ``environments``; None
    when there are several and none was named (a local run never picks production by itself)."""
    environments = project.config.environments
    if env_name is not None and env_name not in environments:
        raise UsageError(f"--env {env_name}: no such environment in mlci.yaml",
                         hint="environments: " + (", ".join(environments) or "none configured"))
    if env_name is None and len(environments) == 1:
        return next(iter(environments))
    return env_name


def run_stage(project: Project, stage: Stage, *, env_name: str | None, on_line: LineSink) -> Any:
    """Run one stage's use case with its command's defaults; returns its result (it has ``exit_code``)."""
    if stage.name == "validate":
        from mlci.ops.data.validate import validate, validate_inputs

        files, schema_path = validate_inputs(project)
        data = project.config.data
        return validate(data=files, schema_path=schema_path, csv=data.csv, batch_rows=data.batch_rows,
                        reports_dir=project.reports_dir)
    if stage.name == "train":
        from mlci.ops.model.train import train

        return train(project=project)
    if stage.name == "evaluate":
        from mlci.ops.model.evaluate import evaluate

        return evaluate(project=project)
    if stage.name == "gate":
        from mlci.ops.model.gate import gate_registry

        return gate_registry(project=project)
    if stage.name == "build":
        from mlci.ops.deliver.image import build_image

        return build_image(project, on_line=on_line)
    if stage.name == "push":
        from mlci.ops.deliver.image import push_image

        return push_image(project, on_line=on_line)
    if stage.name == "deploy":
        from mlci.ops.deliver.deploy import deploy

        assert env_name is not None  # run_stages skips deploy without one
        return deploy(project, env_name=env_name, on_line=on_line)
    raise AssertionError(f"no use case for stage {stage.name}")


def run_stages(*, project: Project, start: str | None = None, stop: str | None = None, env_name: str | None = None,
               on_stage: Callable[[str], None] | None = None, on_line: LineSink = lambda line: None,
               on_result: Callable[[StageResult], None] | None = None) -> RunResult:
    """Run the selected stages in order; stop at the first one that fails."""
    selected = select_stages(start, stop)
    env = deploy_environment(project, env_name)
    result = RunResult()
    for stage in selected:
        reason = skip_reason(stage, project.config)
        if reason is None and stage.needs_environment and env is None:
            reason = MANY_ENVIRONMENTS
        if reason is not None:
            result.stages.append(StageResult(stage.name, "skipped", reason=reason))
            continue
        if on_stage:
            on_stage(stage.name)
        outcome = _run_one(project, stage, env, on_line)
        result.stages.append(outcome)
        if on_result:
            on_result(outcome)
        if outcome.result == "failed":
            break
    return result


def _run_one(project: Project, stage: Stage, env_name: str | None, on_line: LineSink) -> StageResult:
    started = time.monotonic()
    try:
        output = run_stage(project, stage, env_name=env_name, on_line=on_line)
    except MlciError as exc:
        return StageResult(stage.name, "failed", exc.exit_code, time.monotonic() - started, error=exc)
    code = getattr(output, "exit_code", 0)
    return StageResult(stage.name, "passed" if code == 0 else "failed", code, time.monotonic() - started,
                       output=output)
