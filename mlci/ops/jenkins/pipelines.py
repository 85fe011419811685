"""Generate the commit and nightly Jenkins pipelines of a project, write them, and check them for staleness.

Layout, relative to the repository that holds the project (the nearest parent with ``.git``, else
the project directory): ``Jenkinsfile`` is the commit pipeline, ``pipelines/nightly.Jenkinsfile``
the nightly monitoring pipeline. The jobs ``mlci jenkins sync`` creates point at these paths.

Every user value passes through ``mlci.core.groovy`` (the ``groovy`` template filter); identifiers
are allow-listed before rendering and refused otherwise.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from mlci import __version__
from mlci.core.atomic import atomic_write_text
from mlci.core.config import CONFIG_FILE, Project, RegistrySection
from mlci.core.groovy import groovy_int, groovy_literal, require_identifier, require_job_path
from mlci.core.reports import Check, Report, write_report
from mlci.core.stages import STAGE_NAMES, STAGES, skip_reason
from mlci.core.yamlsrc import config_issue
from mlci.errors import ConfigError, ConfigIssue, UsageError
from mlci.ops.deliver.image import REGISTRY_PASSWORD_ENV, REGISTRY_USER_ENV
from mlci.ops.jenkins.shared_state import jenkins_registry
from mlci.ops.reporting.render import render, render_with

PIPELINE_PATHS = {"commit": "Jenkinsfile", "nightly": "pipelines/nightly.Jenkinsfile"}
TEMPLATES = {"commit": "jenkins/Jenkinsfile.commit.j2", "nightly": "jenkins/Jenkinsfile.nightly.j2"}
COMMIT_HTML = ("validate.html", "evaluate.html", "gate.html")
NIGHTLY_HTML = ("monitor.html",)
EXPERIMENT_HTML = ("experiment.html",)  # with its plot and stylesheet beside it in the reports directory


def _post_condition(name: str) -> str:
    """A declarative ``post`` condition name, emitted as code: allow-listed, never escaped."""
    if name not in POST_CONDITIONS:
        raise ConfigError([ConfigIssue(f"'{name}' is not a post condition", path="jenkins.notify",
                                       hint=", ".join(POST_CONDITIONS))])
    return name


def _chomp(text: str) -> str:
    """A macro's block ends with a newline; the line that calls it supplies its own."""
    return text.rstrip("\n")


# The filters of the Jenkinsfile templates: every user value reaches Groovy through one of them.
GROOVY_FILTERS = (("groovy", groovy_literal), ("groovy_int", groovy_int), ("groovy_condition", _post_condition),
                  ("chomp", _chomp))


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
        return {PIPELINE_PATHS[name]: render_with(GROOVY_FILTERS, TEMPLATES[name], **context,
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


STAGE_KEYS = STAGE_NAMES
POST_CONDITIONS = ("always", "changed", "fixed", "regression", "aborted", "success", "unstable", "failure")
MLFLOW_USER_ENV, MLFLOW_PASSWORD_ENV = "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"
# Commands that open the model registry, so they get the MLflow credentials when there are any.
REGISTRY_COMMANDS = ("train", "evaluate", "gate", "build", "push", "deploy", "monitor")


def _context(project: Project) -> dict:
    config = project.config
    jenkins = config.jenkins
    root = repository_root(project)
    _check_agent(project, jenkins.agent, "jenkins.agent")
    return {
        "version": __version__,
        "config_path": _inside(project, project.config_path, root, "config"),
        "project_dir": _inside(project, project.root, root, "project directory"),
        "config_override": _config_override(project, root),
        "install": jenkins.install or "",
        "index_url": jenkins.index_url,
        "tracking_uri": _tracking_uri(project),
        "registry_env": _registry_env(project),
        "job_type": jenkins.job_type,
        "agent": _agent(project, jenkins.agent, "jenkins.agent", root),
        "timeout_minutes": jenkins.timeout_minutes,
        "keep_builds": jenkins.keep_builds,
        "publish_html": jenkins.publish_html,
        "parts": _commit_parts(project, root),
        "experiments": _experiments(project),
        "schedule": config.monitor.schedule,
        "retrain_job": config.monitor.retrain_job and require_job_path(
            config.monitor.retrain_job, key="monitor.retrain_job"),
        "monitor": {"script": ".venv/bin/mlci monitor", "credentials": _credentials(project, "monitor")},
        "notify": _notifications(project),
        **_report_patterns(project, root),
    }


def _agent(project: Project, agent, key: str, root: Path) -> dict:
    return {
        "key": key,
        "label": agent.label and require_identifier(agent.label, key=f"{key}.label"),
        "docker_image": agent.docker_image and require_identifier(agent.docker_image, key=f"{key}.docker_image",
                                                                  kind="image"),
        "docker_args": agent.docker_args,
        "kubernetes_yaml": agent.kubernetes_yaml and _inside(project, project.path(agent.kubernetes_yaml), root,
                                                             f"{key}.kubernetes_yaml"),
        "default_container": require_identifier(agent.default_container, key=f"{key}.default_container"),
    }


def _tracking_uri(project: Project) -> str | None:
    registry, _ = jenkins_registry(project.config)
    return registry.tracking_uri if registry.backend == "mlflow" else None


def _registry_env(project: Project) -> dict[str, str]:
    """``{field: value}`` of ``jenkins.registry``, passed to every mlci step as ``MLCI_REGISTRY__<FIELD>``.

    Empty without ``jenkins.registry`` (the steps read ``registry`` from mlci.yaml). mlci parses these
    variables as YAML (config.py ``_apply_env_overrides``), so a text value is passed as a JSON string
    (valid YAML) and stays text whatever it holds; an unset field is ``null``, so nothing of the file's
    ``registry`` section leaks into the Jenkins registry. The template names each variable.
    """
    registry = project.config.jenkins.registry
    if registry is None:
        return {}
    out = {}
    for name in (f.name for f in dataclasses.fields(RegistrySection)):
        value = getattr(registry, name)
        if isinstance(value, str):
            groovy_literal(value, f"jenkins.registry.{name}")  # the raw value's refusals apply too
            out[name] = json.dumps(value, ensure_ascii=False)
        else:
            out[name] = "null" if value is None else json.dumps(value)
    return out


def _credentials(project: Project, command: str) -> list[dict]:
    """The username/password bindings a command's ``sh`` step needs (MLflow, the image registry)."""
    config = project.config
    registry, registry_key = jenkins_registry(config)
    out = []
    if command in REGISTRY_COMMANDS and registry.backend == "mlflow" and registry.credentials:
        key = f"{registry_key}.credentials"
        out.append({"id": require_identifier(registry.credentials, key=key),
                    "key": key, "user": MLFLOW_USER_ENV, "password": MLFLOW_PASSWORD_ENV})
    if command == "push" and config.image is not None and config.image.registry_credentials:
        out.append({"id": require_identifier(config.image.registry_credentials, key="image.registry_credentials"),
                    "key": "image.registry_credentials", "user": REGISTRY_USER_ENV, "password": REGISTRY_PASSWORD_ENV})
    return out


def _commit_steps(project: Project) -> list[dict]:
    """Every stage that runs on an agent, in order, with the agent key (``stage_agents``) it runs on."""
    config = project.config
    delivering = _delivery_condition(project, _delivery_branches(project))
    # deploy is one stage per environment (below); build and push run on delivery branches only
    stages = [stage for stage in STAGES if not stage.needs_environment and skip_reason(stage, config) is None]
    steps = [{"title": stage.title, "title_key": "stage", "agent_key": stage.name,
              "condition": delivering if stage.needs_image else None,
              "key": "stage", "script": f".venv/bin/mlci {stage.name}", "env_name": None,
              "credentials": _credentials(project, stage.name)} for stage in stages]
    _insert_extra_stages(project, steps)
    for deploy in _deployments(project) if config.image is not None else []:
        steps.append({**deploy, "title_key": "environments", "agent_key": "deploy", "key": "stage",
                      # environments.<env>.experiment: the new version joins the running one as a live experiment
                      "script": '.venv/bin/mlci deploy --env "$MLCI_DEPLOY_ENV"'
                                + (" --experiment" if deploy["experiment"] else ""),
                      "credentials": _credentials(project, "deploy")})
    return steps


def _insert_extra_stages(project: Project, steps: list[dict]) -> None:
    taken = {step["title"] for step in steps} | {"Checkout", "Set up Python"}
    for index, extra in enumerate(project.config.jenkins.extra_stages):
        key = f"jenkins.extra_stages.{index}"
        try:
            title = require_identifier(extra.name, key=f"{key}.name")
        except ConfigError as error:  # located by config_issue, like the checks below
            raise config_issue(project.document, f"{key}.name", error.issues[0].message, error.issues[0].hint) from None
        anchor = extra.before or extra.after
        place = [i for i, step in enumerate(steps) if step.get("agent_key") == anchor and step["key"] == "stage"]
        if title in taken:
            raise config_issue(project.document, f"{key}.name", f"stage name '{title}' is taken",
                               "stage names must be unique in a pipeline")
        if not place:
            raise config_issue(project.document, f"{key}.{'before' if extra.before else 'after'}",
                               f"no stage '{anchor}' in this pipeline",
                               "use validate, train, evaluate, gate, or build/push with an image section")
        taken.add(title)
        at = place[0] if extra.before else place[0] + 1
        steps.insert(at, {"title": title, "title_key": f"{key}.name", "agent_key": anchor, "key": f"{key}.sh",
                          "condition": steps[place[0]]["condition"], "script": extra.sh, "env_name": None,
                          "credentials": [], "extra": True})


def _commit_parts(project: Project, root: Path) -> list[dict]:
    """The commit pipeline's top-level stages: runs of steps on one agent, and approvals between them.

    The pipeline has ``agent none``; an approval is a stage without an agent, so it holds no executor
    and no workspace while it waits (pipeline-model-definition: ModelInterpreter runs a stage's steps
    inside its own agent only). Each run of steps checks out and installs mlci again.
    """
    agents = _stage_agents(project, root)
    parts: list[dict] = []
    ordinal = 1
    for step in _commit_steps(project):
        if step.get("approval"):
            parts.append(_approval_part(step, ordinal))
            ordinal += 2
        agent = agents.get(step["agent_key"], agents[None])
        last = parts[-1] if parts else None
        if last is None or last.get("approval") or last["agent"] != agent:
            parts.append({"approval": False, "agent": agent, "stages": []})
        parts[-1]["stages"].append(step)
    runs = [part for part in parts if not part.get("approval")]
    for number, part in enumerate(runs, start=1):
        _finish_part(project, part, number, root)
    return parts


def _approval_part(step: dict, ordinal: int) -> dict:
    name = step["env_name"]
    return {"approval": True, "title": f"Approve {name}", "condition": step["condition"], "ordinal": ordinal,
            "key": f"environments.{name}", "question": step["question"], "submitter": step["submitter"],
            "timeout_hours": step["timeout_hours"], "waiting_label": f"{name}: waiting for approval",
            "approved_label": f"{name}: approved"}


def _finish_part(project: Project, part: dict, number: int, root: Path) -> None:
    """Title, set-up stages, reports and condition of one run of steps on an agent."""
    stages = part["stages"]
    titles = [stage["title"] for stage in stages]
    part["title"] = "On an agent: " + (titles[0] if len(titles) == 1 else f"{titles[0]} to {titles[-1]}")
    suffix = "" if number == 1 else f" ({number})"
    part["checkout_title"], part["setup_title"] = f"Checkout{suffix}", f"Set up Python{suffix}"
    commands = {stage["agent_key"] for stage in stages if not stage.get("extra")}
    reports = _inside(project, project.reports_dir, root, "reports")
    if commands == {"deploy"}:
        names = [stage["env_name"] for stage in stages]
        part["junit_pattern"] = ",".join(f"{reports}/deploy-{name}.junit.xml" for name in names)
        part["html_reports"] = [f"deploy-{name}.html" for name in names]
    else:
        part["junit_pattern"] = f"{reports}/*.junit.xml"
        part["html_reports"] = [name for name in COMMIT_HTML if name.split(".")[0] in commands]
        part["html_reports"] += [f"deploy-{s['env_name']}.html" for s in stages if s["agent_key"] == "deploy"]
    part["html_name"] = "mlci reports" if number == 1 else f"mlci reports ({number})"
    part["describes"] = "gate" in commands
    conditions = [stage["condition"] for stage in stages]
    part["condition"] = conditions[0] if conditions[0] and all(c == conditions[0] for c in conditions) else None
    if part["condition"]:
        for stage in stages:
            stage["condition"] = None


def _stage_agents(project: Project, root: Path) -> dict:
    jenkins = project.config.jenkins
    agents: dict[str | None, dict] = {None: _agent(project, jenkins.agent, "jenkins.agent", root)}  # None: default
    for name, agent in jenkins.stage_agents.items():
        key = f"jenkins.stage_agents.{name}"
        if name not in STAGE_KEYS:
            raise config_issue(project.document, key, f"'{name}' is not a stage of the commit pipeline",
                               "use validate, train, evaluate, gate, build, push or deploy")
        _check_agent(project, agent, key)
        agents[name] = _agent(project, agent, key, root)
    return agents


def _delivery_branches(project: Project) -> list[tuple[str, str]]:
    """(branch, config key) of every environment, without repeats; an image is built for these only."""
    out: list[tuple[str, str]] = []
    for name in project.config.environments:
        branch = _environment_branch(project, name)
        if branch[0] not in [b for b, _ in out]:
            out.append(branch)
    return out or [(require_identifier(project.config.jenkins.branch, key="jenkins.branch", kind="branch"),
                    "jenkins.branch")]


def _environment_branch(project: Project, name: str) -> tuple[str, str]:
    """An environment deploys from its own ``branch``, else from ``jenkins.branch``: never from a pull
    request or a feature branch."""
    environment = project.config.environments[name]
    branch, key = environment.branch, f"environments.{name}.branch"
    if branch is None:
        branch, key = project.config.jenkins.branch, "jenkins.branch"
    return require_identifier(branch, key=key, kind="branch"), key


def _delivery_condition(project: Project, branches: list[tuple[str, str]]) -> dict:
    """How a stage is limited to ``branches``.

    multibranch: ``when { branch }`` reads BRANCH_NAME, which the branch project sets (a pull request's
    is ``PR-<n>``), else GIT_LOCAL_BRANCH (pipeline-model-definition: BranchConditionalScript.groovy).
    pipeline: neither is set in a single-branch job with ``skipDefaultCheckout()`` (CheckoutScript.groovy
    copies the checkout's variables to env only in the default checkout), so the generated Checkout stage
    stores ``checkout scm``'s ``GIT_BRANCH`` (``origin/<branch>``, git-plugin GitSCM.buildEnvironment) in
    MLCI_GIT_BRANCH and an ``expression`` compares it.
    """
    key = branches[0][1]
    if project.config.jenkins.job_type == "multibranch":
        return {"kind": "branch", "branches": [b for b, _ in branches], "key": key}
    return {"kind": "expression", "names": [n for b, _ in branches for n in (b, f"origin/{b}")], "key": key}


def _deployments(project: Project) -> list[dict]:
    config = project.config
    out = []
    for name, environment in config.environments.items():
        require_identifier(name, key=f"environments.{name}")
        approvers = [require_identifier(user, key=f"environments.{name}.approvers")
                     for user in environment.approvers]
        out.append({"env_name": name, "title": f"Deploy {name}", "approval": environment.approval,
                    "condition": _delivery_condition(project, [_environment_branch(project, name)]),
                    "question": f"Deploy to {name}?", "submitter": ",".join(approvers) or None,
                    "timeout_hours": environment.approval_timeout_hours,
                    "experiment": environment.experiment is not None})
    return out


def _notifications(project: Project) -> dict[str, list[dict]]:
    """``{post condition: [message]}`` in the order Jenkins runs post conditions."""
    out: dict[str, list[dict]] = {}
    subject = f"mlci {project.config.project}: "
    for index, note in enumerate(project.config.jenkins.notify):
        out.setdefault(note.when, []).append({"slack": note.slack, "mail": note.mail, "subject": subject,
                                              "key": f"jenkins.notify.{index}"})
    return {condition: out[condition] for condition in POST_CONDITIONS if condition in out}


def _experiments(project: Project) -> list[dict]:
    """Environments whose live experiment the nightly pipeline concludes."""
    return [{"name": require_identifier(name, key=f"environments.{name}"), "title": f"Experiment {name}"}
            for name, environment in project.config.environments.items() if environment.experiment is not None]


def _check_agent(project: Project, agent, key: str) -> None:
    if agent.kubernetes_yaml and agent.docker_image:
        raise config_issue(project.document, key, "set docker_image or kubernetes_yaml, not both",
                           "a Kubernetes pod template names its own containers")


def _report_patterns(project: Project, root: Path) -> dict:
    reports = _inside(project, project.reports_dir, root, "reports")
    archived = [f"{reports}/**"]
    tensorboard = project.config.tensorboard and _relative_inside(project.path(project.config.tensorboard), root)
    if tensorboard:  # a folder on shared storage outside the workspace keeps the history by itself
        archived.append(f"{tensorboard}/**")
    return {"reports_dir": reports, "junit_pattern": f"{reports}/*.junit.xml", "archive_pattern": ", ".join(archived),
            "kept_registry": _kept_registry(project, root)}


def _kept_registry(project: Project, root: Path) -> str | None:
    """The clean-up pattern that keeps a local registry living in the workspace; None otherwise.

    ws-cleanup (Cleanup.java) scans with a raw Ant DirectoryScanner, without Ant's default excludes:
    an EXCLUDE pattern for the registry alone would delete every file inside ``.git`` too, and the next
    ``checkout scm`` would re-clone over the workspace, registry included. The template therefore
    always excludes ``.git/**`` as well.
    """
    registry, _ = jenkins_registry(project.config)
    if registry.backend != "local":
        return None
    relative = _relative_inside(project.path(registry.path), root)
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


def build_description(project: Project) -> str:
    """The one-line verdict a build page shows, from ``<reports>/gate.json``; '' without a gate report.

    ``v3 roc_auc 0.743 Δ+0.007 PASSED``: the challenger, the first rule's metric, its value, the change
    against the champion (when one was compared) and the verdict (``PASSED``, ``PASSED, 1 warning``,
    ``FAILED: <first failed rule>``).
    """
    import json

    try:
        report = json.loads((project.reports_dir / "gate.json").read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError):
        return ""
    except (OSError, ValueError) as exc:
        raise UsageError(f"{_display(project.reports_dir / 'gate.json')}: cannot read the gate report ({exc})",
                         hint="run `mlci gate` again") from None
    return describe_gate(report)


def describe_gate(report: dict) -> str:
    """Format a gate report (``Report.to_dict``) as one line; see ``build_description``."""
    checks = [c for c in report.get("checks", []) if isinstance(c, dict)]
    details = report.get("details") or {}
    words = [str(details.get("challenger") or "")]
    threshold = next((c for c in checks if c.get("group") == "threshold" and _is_number(c.get("value"))), None)
    champion = next((c for c in checks if c.get("group") == "champion" and c.get("details")), None)
    if threshold is not None:
        words.append(f"{_metric(threshold['name'])} {threshold['value']:.3f}")
    elif champion is not None and _is_number(champion["details"].get("challenger")):
        words.append(f"{_metric(champion['name'])} {champion['details']['challenger']:.3f}")
    if champion is not None and _is_number(champion["details"].get("delta")):
        words.append(f"Δ{champion['details']['delta']:+.3f}")
    failed = [c for c in checks if c.get("status") == "fail"]
    warned = [c for c in checks if c.get("status") == "warn"]
    if failed:
        words.append(f"FAILED: {failed[0].get('name')}")
    else:
        words.append("PASSED" + (f", {len(warned)} warning{'s' if len(warned) > 1 else ''}" if warned else ""))
    return " ".join(w for w in words if w).replace("\n", " ")[:200]


def _metric(rule_name: object) -> str:
    return str(rule_name).split()[0] if str(rule_name).strip() else "metric"


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
