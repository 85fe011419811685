"""Application state shared by all commands (``ctx.obj``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from mlci.core.config import Project


@dataclass
class AppContext:
    project_dir: Path | None = None
    config_file: Path | None = None
    json: bool = False
    debug: bool = False
    _project: Project | None = field(default=None, repr=False)

    def project(self) -> Project:
        """The loaded ``mlci.yaml`` (loaded once, on first use)."""
        if self._project is None:
            from mlci.core.config import load_project

            self._project = load_project(self.project_dir, self.config_file)
        return self._project

    @property
    def root(self) -> Path:
        return Path(self.project_dir or ".").resolve()


pass_app = click.make_pass_decorator(AppContext, ensure=True)
