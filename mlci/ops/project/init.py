"""``mlci init [DIR]``: a new project with a commented mlci.yaml, a schema, example data and a
.gitignore (and the Jenkinsfiles, when the Jenkins pipeline generator is installed)."""

from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlci.core.atomic import atomic_write_bytes, atomic_write_text
from mlci.errors import UsageError

# The bundled example's data: (file, rows, seed, drift, first application date).
EXAMPLE_DATA = (("data/train.csv", 6000, 1, False, "2025-01-01"),
                ("data/holdout.csv", 2000, 2, False, "2025-01-01"),
                ("data/later.csv", 3000, 3, True, "2026-01-01"))
SCHEMA_FILE = "schema.yaml"


@dataclass
class InitResult:
    directory: Path
    written: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # existing Jenkinsfiles left alone

    def to_dict(self) -> dict[str, Any]:
        return {"directory": str(self.directory), "written": self.written, "kept": self.kept}


def project_name(directory: Path) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", directory.resolve().name).strip("-._")
    return name[:64] or "ml-project"


def planned_files(directory: Path) -> dict[str, bytes]:
    from mlci.ops.reporting.render import render, template_text

    files = {"mlci.yaml": render("init/mlci.yaml.j2", project=project_name(directory)).encode(),
             SCHEMA_FILE: template_text("init/schema.yaml").encode(),
             ".gitignore": template_text("init/gitignore").encode()}
    files.update(_example_data())
    return files


def _example_data() -> dict[str, bytes]:
    from mlci.ops.project.example import credit_data

    return {name: credit_data(rows, seed=seed, drift=drift, start=start).to_csv(index=False).encode()
            for name, rows, seed, drift, start in EXAMPLE_DATA}


def init_project(*, directory: Path, force: bool = False) -> InitResult:
    directory = Path(directory)
    files = planned_files(directory)
    existing = [name for name in files if (directory / name).exists()]
    if existing and not force:
        raise UsageError(f"{directory}: would overwrite {', '.join(existing)}",
                         hint="use --force to replace them, or choose an empty directory")
    _make_directory(directory)
    result = InitResult(directory.resolve())
    for name, data in files.items():
        atomic_write_bytes(directory / name, data)
        result.written.append(name)
    _write_jenkinsfiles(directory, result, force=force)
    return result


def _make_directory(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{directory}: cannot create the project directory ({exc.strerror or exc})",
                         hint="choose a directory that can be created") from None


def _write_jenkinsfiles(directory: Path, result: InitResult, *, force: bool) -> None:
    """The Jenkins pipelines, through the Jenkins module's own writer, when it is installed. They go
    where ``mlci jenkinsfile`` puts them (the root of the enclosing git repository, else the project);
    a different existing Jenkinsfile is kept unless ``force``."""
    if importlib.util.find_spec("mlci.ops.jenkins.pipelines") is None:
        return
    from mlci.core.config import load_project
    from mlci.ops.jenkins.pipelines import planned_files as planned_pipelines

    plan = planned_pipelines(load_project(directory))
    for path, text in plan.files.items():
        if path.exists() and not force and path.read_text(encoding="utf-8", errors="replace") != text:
            result.kept.append(str(path))
            continue
        atomic_write_text(path, text)
        result.written.append(os.path.relpath(path, directory))
