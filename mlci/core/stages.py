"""The stages of the commit pipeline, in order: the one table that ``mlci run``, the CLI's stage choices
and the Jenkinsfile renderer read.

Each stage is an ``mlci`` command of the same name. A stage that needs an ``image`` section (build,
push, deploy) or an environment (deploy) is skipped by ``mlci run`` and left out of the Jenkinsfile when
the project does not configure one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mlci.errors import UsageError

if TYPE_CHECKING:
    from mlci.core.config import Config


@dataclass(frozen=True)
class Stage:
    name: str  # the command (`mlci <name>`) and the stage's key in `jenkins.stage_agents`
    title: str  # the stage's name in the commit Jenkinsfile (deploy: one stage per environment)
    needs_image: bool = False  # skipped without an `image` section
    needs_environment: bool = False  # skipped without `environments`


STAGES = (
    Stage("validate", "Validate"),
    Stage("train", "Train"),
    Stage("evaluate", "Evaluate"),
    Stage("gate", "Gate"),
    Stage("build", "Build image", needs_image=True),
    Stage("push", "Push image", needs_image=True),
    Stage("deploy", "Deploy", needs_image=True, needs_environment=True),
)
STAGE_NAMES = tuple(stage.name for stage in STAGES)


def stage_named(name: str) -> Stage:
    for stage in STAGES:
        if stage.name == name:
            return stage
    raise UsageError(f"unknown stage '{name}'", hint="stages: " + ", ".join(STAGE_NAMES))


def select_stages(start: str | None, stop: str | None) -> list[Stage]:
    """The stages from ``start`` to ``stop`` (both included; default: all), in order."""
    first = STAGES.index(stage_named(start)) if start else 0
    last = STAGES.index(stage_named(stop)) if stop else len(STAGES) - 1
    if first > last:
        raise UsageError(f"--from {start} comes after --to {stop}",
                         hint="stages run in order: " + ", ".join(STAGE_NAMES))
    return list(STAGES[first:last + 1])


def skip_reason(stage: Stage, config: Config) -> str | None:
    """Why the project does not run ``stage`` (it lacks what the stage needs), or None."""
    if stage.needs_image and config.image is None:
        return "not configured: no `image` section"
    if stage.needs_environment and not config.environments:
        return "not configured: no environments"
    return None
