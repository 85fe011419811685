"""Generate the commit and nightly Jenkins pipelines of a project, write them, and check them for staleness.

Layout, relative to the repository that holds the project (the nearest parent with ``.git``, else
the project directory): ``Jenkinsfile`` is the commit pipeline, ``pipelines/nightly.Jenkinsfile``
the nightly monitoring pipeline. The jobs ``mlci jenkins sync`` creates point at these paths.

Every user value passes through ``mlci.core.groovy`` (the ``groovy`` template filter); identifiers
are allow-listed before rendering and refused otherwise.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path

from mlci import __version__
from mlci.core.atomic import atomic_write_text
from mlci.core.config import CONFIG_FILE, Project
from mlci.core.groovy import groovy_int, groovy_literal, require_identifier, require_job_path
from mlci.core.reports import Check, Report, write_report
from mlci.core.yamlsrc import config_issue
from mlci.errors import ConfigError, UsageError
from mlci.ops.image import REGISTRY_PASSWORD_ENV, REGISTRY_USER_ENV
from mlci.ops.render import register_filter, render

PIPELINE_PATHS = {"commit": "Jenkinsfile", "nightly": "pipelines/nightly.Jenkinsfile"}
TEMPLATES = {"commit": "jenkins/Jenkinsfile.commit.j2", "nightly": "jenkins/Jenkinsfile.nightly.j2"}
COMMIT_STAGES = (("Validate", "validate"), ("Train", "train"), ("Evaluate", "evaluate"), ("Gate", "gate"))
COMMIT_HTML = ("validate.html", "evaluate.html", "gate.html")
NIGHTLY_HTML = ("monitor.html",)
EXPERIMENT_HTML = ("experiment.html",)  # with its plot and stylesheet beside it in the reports directory

register_filter("groovy", groovy_literal)
register_filter("groovy_int", groovy_int)


def repository_root(project: Project) -> Path:
    """The directory Jenkins checks out: the git work tree holding the project, else the project."""
    for directory in (project.root, *project.root.parents):
        if (directory / ".git").exists():
            return directory
    return project.root


def pipeline_names(pipeline: str) -> tuple[str, ...]:
    if pipeline == "all":
        return tuple(PIPELINE_PATHS)
    if pipeline not in PIPELINE_PATHS:
        raise UsageError(f"unknown pipeline '{pipeline}'", hint="use commit, nightly or all")
    return (pipeline,)


def render_pipelines(project: Project, *, pipeline: str = "all") -> dict[str, str]:
    """``{path relative to the repository root: Jenkinsfile text}`` for the selected pipelines."""
    names = pipeline_names(pipeline)
    try:
        context = _context(project)
        nightly_html = NIGHTLY_HTML + (EXPERIMENT_HTML if context["experiments"] else ())
        return {PIPELINE_PATHS[name]: render(TEMPLATES[name], **context,
                                             html_reports=COMMIT_HTML if name == "commit" else nightly_html)
                for name in names}
    except ConfigError as error:
        raise _with_locations(project, error) from None


@dataclass
class PipelineFiles:
    """Where each rendered pipeline goes (absolute path) and its text."""

    files: dict[Path, str] = field(default_factory=dict)
    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"written": self.written, "unchanged": self.unchanged}


def planned_files(project: Project, *, pipeline: str = "all", output: Path | None = None) -> PipelineFiles:
    """Render and place the pipelines: under the repository root, or at ``output``.

    ``output`` is the file itself when one pipeline is selected, else the root directory of the layout.
    """
    rendered = render_pipelines(project, pipeline=pipeline)
    if output is not None and len(rendered) == 1:
        return PipelineFiles({Path(output): next(iter(rendered.values()))})
    base = Path(output) if output is not None else repository_root(project)
    return PipelineFiles({base / relative: text for relative, text in rendered.items()})


def write_pipelines(project: Project, *, pipeline: str = "all", output: Path | None = None) -> PipelineFiles:
    """Write the pipelines atomically; files whose content is already current are left untouched."""
    plan = planned_files(project, pipeline=pipeline, output=output)
    for path, text in plan.files.items():
        if _read(path) == text:
            plan.unchanged.append(_display(path))
        else:
            atomic_write_text(path, text)
            plan.written.append(_display(path))
    return plan


def check_pipelines(project: Project, *, pipeline: str = "all", output: Path | None = None,
                    write_reports: bool = True) -> Report:
    """One check per pipeline file: does the file on disk equal what the config generates now?"""
    plan = planned_files(project, pipeline=pipeline, output=output)
    report = Report(kind="jenkinsfile")
    for path, expected in plan.files.items():
        shown = _display(path)
        current = _read(path)
        if current == expected:
            report.add(Check(name=shown, passed=True, message="up to date"))
            continue
        diff = "".join(difflib.unified_diff((current or "").splitlines(keepends=True),
                                            expected.splitlines(keepends=True),
                                            fromfile=f"{shown} (on disk)", tofile=f"{shown} (generated)"))
        message = "missing" if current is None else "stale: regenerate with `mlci jenkinsfile`"
        report.add(Check(name=shown, passed=False, message=message, details={"diff": diff}))
    if write_reports:
        write_report(report, project.reports_dir, html=report_html(report, "Jenkins pipelines",
                                                                  f"project {project.config.project}"))
    return report


def report_html(report: Report, title: str, subtitle: str) -> str:
    """The HTML form of a Jenkins report (pipelines staleness, lint): checks, then any diffs."""
    return render("jenkins/report.html.j2", report=report, title=title, subtitle=subtitle, ok=report.ok)


def _context(project: Project) -> dict:
    config = project.config
    jenkins = config.jenkins
    root = repository_root(project)
    agent = jenkins.agent
    _check_agent(project)
    return {
        "version": __version__,
        "config_path": _inside(project, project.config_path, root, "config"),
        "project_dir": _inside(project, project.root, root, "project directory"),
        "config_override": _config_override(project, root),
        "install": jenkins.install or f"mlci=={__version__}",
        "agent": {
            "label": agent.label and require_identifier(agent.label, key="jenkins.agent.label"),
            "docker_image": agent.docker_image and require_identifier(
                agent.docker_image, key="jenkins.agent.docker_image", kind="image"),
            "kubernetes_yaml": agent.kubernetes_yaml and _inside(
                project, project.path(agent.kubernetes_yaml), root, "jenkins.agent.kubernetes_yaml"),
        },
        "timeout_minutes": jenkins.timeout_minutes,
        "keep_builds": jenkins.keep_builds,
        "publish_html": jenkins.publish_html,
        "stages": _commit_stages(project),
        "image": config.image is not None,
        "registry_credentials": config.image and config.image.registry_credentials and require_identifier(
            config.image.registry_credentials, key="image.registry_credentials"),
        "registry_user_env": REGISTRY_USER_ENV,
        "registry_password_env": REGISTRY_PASSWORD_ENV,
        "deployments": _deployments(project) if config.image is not None else [],
        "experiments": _experiments(project),
        "schedule": config.monitor.schedule,
        "retrain_job": config.monitor.retrain_job and require_job_path(
            config.monitor.retrain_job, key="monitor.retrain_job"),
        **_report_patterns(project, root),
    }


def _commit_stages(project: Project) -> list[dict]:
    stages = list(COMMIT_STAGES)
    if project.config.image is not None:
        stages.append(("Build image", "build"))
    return [{"title": title, "command": f".venv/bin/mlci {command}"} for title, command in stages]


def _deployments(project: Project) -> list[dict]:
    config = project.config
    out = []
    for name, environment in config.environments.items():
        require_identifier(name, key=f"environments.{name}")
        branch, branch_key = environment.branch, f"environments.{name}.branch"
        if branch is None and name == "production":
            branch, branch_key = config.jenkins.branch, "jenkins.branch"
        if branch is not None:
            require_identifier(branch, key=branch_key, kind="branch")
        out.append({"name": name, "title": f"Deploy {name}", "branch": branch, "branch_key": branch_key,
                    "approval": environment.approval, "question": f"Deploy to {name}?",
                    "experiment": environment.experiment is not None})
    return out


def _experiments(project: Project) -> list[dict]:
    """Environments whose live experiment the nightly pipeline concludes."""
    return [{"name": require_identifier(name, key=f"environments.{name}"), "title": f"Experiment {name}"}
            for name, environment in project.config.environments.items() if environment.experiment is not None]


def _check_agent(project: Project) -> None:
    agent = project.config.jenkins.agent
    if agent.kubernetes_yaml and agent.docker_image:
        raise config_issue(project.document, "jenkins.agent", "set docker_image or kubernetes_yaml, not both",
                           "a Kubernetes pod template names its own containers")


def _report_patterns(project: Project, root: Path) -> dict:
    reports = _inside(project, project.reports_dir, root, "reports")
    return {"reports_dir": reports, "junit_pattern": f"{reports}/*.junit.xml", "archive_pattern": f"{reports}/**",
            "kept_registry": _kept_registry(project, root)}


def _kept_registry(project: Project, root: Path) -> str | None:
    """The workspace clean-up pattern that keeps a registry living in the workspace; None for one outside."""
    relative = _relative_inside(project.registry_dir, root)
    return f"{relative}/**" if relative is not None else None


def _inside(project: Project, path: Path, root: Path, key: str) -> str:
    """``path`` relative to the repository root, in POSIX form; refused when it lies outside."""
    relative = _relative_inside(path, root)
    if relative is None:
        raise config_issue(project.document, key, f"{_display(path)} is outside the repository {root.name}",
                           "Jenkins only sees files inside the checked-out repository")
    return relative


def _relative_inside(path: Path, root: Path) -> str | None:
    """``path`` relative to ``root`` in POSIX form, or None when it lies outside ``root``."""
    relative = os.path.relpath(Path(path).resolve(), root.resolve())
    if relative == ".." or relative.startswith(".." + os.sep) or os.path.isabs(relative):
        return None
    return Path(relative).as_posix()


def _config_override(project: Project, root: Path) -> str | None:
    """The config path Jenkins must pass to mlci, when it is not ``<project>/mlci.yaml``."""
    if project.config_path.resolve() == (project.root / CONFIG_FILE).resolve():
        return None
    return _inside(project, project.config_path, root, "config")


def _with_locations(project: Project, error: ConfigError) -> ConfigError:
    """Point each refused value at its file and line in mlci.yaml."""
    for issue in error.issues:
        if issue.path and issue.file is None:
            key_path = tuple(issue.path.split("."))
            issue.file = project.document.origin_of(key_path)
            issue.line = project.document.line_of(key_path)
    return ConfigError(error.issues)


def _read(path: Path) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


def _display(path: Path) -> str:
    relative = os.path.relpath(path)
    return relative if not relative.startswith("..") else str(path)
