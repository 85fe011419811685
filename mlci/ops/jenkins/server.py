"""Drive a Jenkins server: sync the project's jobs, trigger and follow builds, show status, lint files.

The connection comes from ``JENKINS_URL`` (or ``jenkins.url``), ``JENKINS_USER`` and
``JENKINS_API_TOKEN``; the token is never taken from the command line and never printed.
"""

from __future__ import annotations

import difflib
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TypedDict

from mlci.adapters.commands import git_output, run_command
from mlci.adapters.jenkins_client import JenkinsClient, redact_url
from mlci.core.config import Project
from mlci.core.groovy import require_identifier, require_job_path
from mlci.core.reports import Check, Report, write_report
from mlci.errors import EXIT_CHECK_FAILED, EXIT_INTERRUPTED, EXIT_OK, ConfigError, ServiceError, UsageError
from mlci.ops.jenkins import jobxml
from mlci.ops.jenkins.pipelines import PIPELINE_PATHS, report_html, repository_root
from mlci.ops.jenkins.shared_state import WORKSPACE_REGISTRY_HINT, workspace_registry_problem

ENV_URL, ENV_USER, ENV_TOKEN = "JENKINS_URL", "JENKINS_USER", "JENKINS_API_TOKEN"
EXIT_BY_RESULT = {"SUCCESS": EXIT_OK, "UNSTABLE": EXIT_CHECK_FAILED, "FAILURE": EXIT_CHECK_FAILED,
                  "NOT_BUILT": EXIT_CHECK_FAILED, "ABORTED": EXIT_INTERRUPTED, "CANCELLED": EXIT_INTERRUPTED}
Log = Callable[[str], None]


def _quiet(_: str) -> None:
    """Default for optional log callbacks."""


# ---- connection -------------------------------------------------------------------------------------


def jenkins_url(project: Project | None, environ: Mapping[str, str] | None = None) -> str | None:
    variables = os.environ if environ is None else environ
    return variables.get(ENV_URL) or (project.config.jenkins.url if project else None)


def connect(project: Project | None, environ: Mapping[str, str] | None = None) -> JenkinsClient:
    """A client for the configured server; UsageError (exit 2) when no URL is configured."""
    environ = os.environ if environ is None else environ
    url = jenkins_url(project, environ)
    if not url:
        raise UsageError("no Jenkins server configured", hint=f"set {ENV_URL} (or jenkins.url in mlci.yaml), "
                                                             f"{ENV_USER} and {ENV_TOKEN}")
    timeout = project.config.jenkins.request_timeout if project else 30.0
    return JenkinsClient(url, user=environ.get(ENV_USER) or None, token=environ.get(ENV_TOKEN) or None,
                         timeout=timeout)


# ---- sync ---------------------------------------------------------------------------------------------


@dataclass
class JobChange:
    name: str
    action: str  # create, update, unchanged, delete, create-folder
    diff: str = ""

    def to_dict(self) -> dict:
        return {"job": self.name, "action": self.action, "diff": self.diff}


@dataclass
class SyncResult:
    server: str
    dry_run: bool
    changes: list[JobChange] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"server": self.server, "dry_run": self.dry_run, "jobs": [c.to_dict() for c in self.changes]}


def job_names(project: Project) -> dict[str, str]:
    """``{"commit": full job name, "nightly": full job name}``; names allow-listed."""
    jenkins = project.config.jenkins
    base = require_identifier(jenkins.job or project.config.project, key="jenkins.job")
    prefix = require_job_path(jenkins.folder, key="jenkins.folder") + "/" if jenkins.folder else ""
    return {"commit": f"{prefix}{base}", "nightly": f"{prefix}{base}-nightly"}


class _ScmFields(TypedDict):
    """What every job of the project shares: its project name and the repository it checks out."""

    project: str
    scm_url: str
    scm_credentials: str | None


def desired_jobs(project: Project) -> dict[str, str]:
    """``{full job name: config.xml}`` of the jobs this project should have: the commit pipeline as a
    multibranch project (default) or a single-branch job with an SCM trigger, the nightly one as a
    single-branch job with its cron trigger."""
    config = project.config
    jenkins = config.jenkins
    scm_url = jenkins.scm_url or _origin_url(project)
    branch = require_identifier(jenkins.branch, key="jenkins.branch", kind="branch")
    names = job_names(project)
    summaries = {"commit": f"Commit pipeline of {config.project}: validate, train, evaluate, gate, build, deploy.",
                 "nightly": f"Nightly monitoring of {config.project}: drift and performance; UNSTABLE on drift."}
    common: _ScmFields = {"project": config.project, "scm_url": scm_url, "scm_credentials": jenkins.scm_credentials}
    if jenkins.job_type == "multibranch":
        commit = jobxml.multibranch_project_xml(summary=summaries["commit"], script_path=PIPELINE_PATHS["commit"],
                                                **common)
    else:
        commit = jobxml.pipeline_job_xml(summary=summaries["commit"], branch=branch,
                                         script_path=PIPELINE_PATHS["commit"], poll=jenkins.poll, **common)
    nightly = jobxml.pipeline_job_xml(summary=summaries["nightly"], branch=branch,
                                      script_path=PIPELINE_PATHS["nightly"], cron=config.monitor.schedule, **common)
    return {names["commit"]: commit, names["nightly"]: nightly}


def sync_jobs(project: Project, client: JenkinsClient, *, dry_run: bool = False, prune: bool = False,
              log: Log = _quiet) -> SyncResult:
    """Create or update the project's jobs; unchanged jobs are not written; ``prune`` deletes jobs that
    carry this project's marker but are no longer wanted. ``dry_run`` only reports (with diffs).
    Refuses (exit 2) a registry the jobs cannot share."""
    wanted = desired_jobs(project)
    problem = workspace_registry_problem(project)
    if problem:
        raise ConfigError(f"{project.config_path.name}: {problem}", hint=WORKSPACE_REGISTRY_HINT)
    result = SyncResult(server=client.url, dry_run=dry_run)
    folder = project.config.jenkins.folder
    if folder:
        result.changes += _ensure_folders(client, folder, dry_run)
    for name, desired in wanted.items():
        change, current = _plan_job(client, name, desired)
        result.changes.append(change)
        if dry_run or change.action == "unchanged":
            continue
        log(f"{change.action} {name}")
        if current is None:  # the "create" action: no job of that name yet
            client.create_job(name, desired)
        else:
            client.update_job(name, jobxml.keep_unmanaged_properties(desired, current))
    if prune:
        result.changes += _prune_jobs(client, project, set(wanted), dry_run=dry_run, log=log)
    return result


def _prune_jobs(client: JenkinsClient, project: Project, wanted: set[str], *, dry_run: bool,
                log: Log) -> list[JobChange]:
    """Delete the jobs marked as this project's that are not ``wanted`` (names compared ignoring case)."""
    keep = {name.lower() for name in wanted}
    changes = []
    for name in _managed_jobs(client, project.config.jenkins.folder, project.config.project):
        if name.lower() in keep:
            continue
        changes.append(JobChange(name, "delete"))
        if not dry_run:
            log(f"delete {name}")
            client.delete_job(name)
    return changes


def _plan_job(client: JenkinsClient, name: str, desired: str) -> tuple[JobChange, str | None]:
    current = client.job_config(name)
    if current is None:
        return JobChange(name, "create", _diff(name, "", jobxml.pretty(desired))), None
    if jobxml.covers(desired, current):
        return JobChange(name, "unchanged"), current
    return JobChange(name, "update", _diff(name, jobxml.pretty(current), jobxml.pretty(desired))), current


def _ensure_folders(client: JenkinsClient, folder: str, dry_run: bool) -> list[JobChange]:
    parts = folder.split("/")
    changes = []
    for depth in range(1, len(parts) + 1):
        path = "/".join(parts[:depth])
        if client.job_info(path) is None:
            changes.append(JobChange(path, "create-folder"))
            if not dry_run:
                client.create_folder(path)
    return changes


def _managed_jobs(client: JenkinsClient, folder: str | None, project: str) -> list[str]:
    if folder:
        info = client.job_info(folder)
        children = info.get("jobs", []) if info else []
    else:
        children = client.root_jobs()
    names = [f"{folder}/{c['name']}" if folder else c["name"] for c in children if c.get("name")]
    return [n for n in names if (config := client.job_config(n)) and jobxml.is_managed(config, project)]


def _diff(name: str, before: str, after: str) -> str:
    return "".join(difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True),
                                        fromfile=f"{name}/config.xml (Jenkins)",
                                        tofile=f"{name}/config.xml (mlci)"))


def _origin_url(project: Project) -> str:
    url = git_output(repository_root(project), "config", "--get", "remote.origin.url") or ""
    if not url:
        raise ConfigError("jenkins.scm_url is not set and the repository has no origin remote",
                          hint="set jenkins.scm_url to the git URL Jenkins checks out")
    return redact_url(url) if "://" in url else url  # never copy credentials from the remote into Jenkins


# ---- build ----------------------------------------------------------------------------------------------


@dataclass
class BuildResult:
    job: str
    request_id: str
    queue_id: int | None = None
    number: int | None = None
    result: str | None = None  # None: triggered, not followed
    url: str | None = None
    scan: bool = False  # a multibranch project: branch indexing was scheduled, not a build

    @property
    def exit_code(self) -> int:
        return EXIT_OK if self.result is None else EXIT_BY_RESULT.get(self.result, EXIT_CHECK_FAILED)

    def to_dict(self) -> dict:
        return {"job": self.job, "request_id": self.request_id, "queue_id": self.queue_id, "number": self.number,
                "result": self.result, "url": self.url, "scan": self.scan, "exit_code": self.exit_code}


@dataclass
class Deadline:
    seconds: float | None
    started: float = field(default_factory=time.monotonic)

    def check(self, what: str) -> None:
        if self.seconds is not None and time.monotonic() - self.started > self.seconds:
            raise ServiceError(f"gave up after {self.seconds:g}s {what}",
                               hint="raise --timeout; the build itself keeps running in Jenkins")


def trigger_build(client: JenkinsClient, job: str, parameters: dict[str, str] | None = None, *,
                  follow: bool = False, timeout: float | None = None, poll_interval: float = 1.0,
                  on_console: Log = _quiet, log: Log = _quiet) -> BuildResult:
    """Queue a build with a unique request id, wait for its number and, with ``follow``, stream its
    console and return its result (exit code: 0 SUCCESS, 1 UNSTABLE/FAILURE, 130 ABORTED/cancelled)."""
    require_job_path(job, key="JOB")
    parameters = dict(parameters or {})
    info = client.job_info(job)
    if info is None:
        raise ServiceError(f"Jenkins at {client.url} has no job {job}", hint="run `mlci jenkins sync` first")
    result = BuildResult(job=job, request_id=uuid.uuid4().hex)
    if _is_multibranch(info):
        return _scan(client, job, parameters, result, log)
    _check_parameters(job, info, parameters)
    deadline = Deadline(timeout)
    queue_id = result.queue_id = _trigger(client, job, parameters, result.request_id, log)
    log(f"queued {job} (queue item {queue_id}, request {result.request_id})")
    number = _wait_for_number(client, result, queue_id, deadline, poll_interval, log)
    if number is None:
        result.result = "CANCELLED"
        log(f"{job}: the build was cancelled while queued")
        return result
    result.number = number
    log(f"started {job} #{number}")
    if not follow:
        result.url = _public_url(client.build_info(job, number))
        return result
    _stream_console(client, job, number, deadline, poll_interval, on_console)
    info = _wait_for_result(client, job, number, deadline, poll_interval)
    result.result, result.url = info["result"], _public_url(info)
    return result


def _public_url(build: dict) -> str | None:
    """The build's URL without credentials or query string (None when Jenkins gave none)."""
    return redact_url(build.get("url") or "") or None


def _is_multibranch(info: dict) -> bool:
    return info.get("_class") == jobxml.MULTIBRANCH_CLASS


def _scan(client: JenkinsClient, job: str, parameters: dict[str, str], result: BuildResult, log: Log) -> BuildResult:
    """``build`` on a multibranch project runs branch indexing: each new or changed branch is built by
    Jenkins (branch-api), there is no queue item to follow and no parameter to pass."""
    if parameters:
        raise UsageError(f"{job} is a multibranch project: a scan takes no parameters",
                         hint=f"build a branch job instead, e.g. `mlci jenkins build {job}/main`")
    client.scan(job)
    log(f"scheduled branch indexing of {job}; new and changed branches build as {job}/<branch>")
    result.scan = True
    return result


def _check_parameters(job: str, info: dict, parameters: dict[str, str]) -> None:
    declared = {d.get("name") for prop in info.get("property", []) for d in prop.get("parameterDefinitions", [])}
    if jobxml.REQUEST_ID_PARAMETER not in declared:
        raise UsageError(f"job {job} does not declare the {jobxml.REQUEST_ID_PARAMETER} parameter",
                         hint="run `mlci jenkins sync` (or add a string parameter of that name to the job); a "
                              "branch job of a multibranch project declares it in its first build, which branch "
                              "indexing starts")
    unknown = sorted(set(parameters) - declared)
    if unknown:
        raise UsageError(f"job {job} has no parameter {', '.join(unknown)}",
                         hint="declared: " + ", ".join(sorted(d for d in declared if d)))


def _trigger(client: JenkinsClient, job: str, parameters: dict[str, str], request_id: str, log: Log) -> int:
    try:
        return client.trigger(job, {**parameters, jobxml.REQUEST_ID_PARAMETER: request_id})
    except ServiceError as error:
        # The request may have been queued although its response was lost: look before giving up,
        # and never POST again (a second build would run).
        found = _find_request(client, job, request_id)
        if found is None:
            raise error from None
        log(f"the trigger's response was lost, but Jenkins queued request {request_id}")
        return found


def _find_request(client: JenkinsClient, job: str, request_id: str) -> int | None:
    """The queue id of the build or queue item carrying ``request_id``, if Jenkins has one."""
    try:
        for item in client.queued_items():
            if request_id in _parameter_values(item):
                return int(item["id"])
        return _queue_id_of_build(client, job, request_id)
    except ServiceError:
        return None


def _queue_id_of_build(client: JenkinsClient, job: str, request_id: str) -> int | None:
    build = _build_with_request(client, job, request_id)
    return build.get("queueId") if build is not None else None


def _build_with_request(client: JenkinsClient, job: str, request_id: str, recent: int = 20) -> dict | None:
    """The build info of the ``recent`` builds of ``job`` that carries ``request_id``, if any."""
    info = client.job_info(job) or {}
    for ref in info.get("builds", [])[:recent]:
        build = client.build_info(job, ref["number"])
        if request_id in _parameter_values(build):
            return build
    return None


def _parameter_values(data: dict) -> set[str]:
    return {str(p.get("value")) for action in data.get("actions", []) or [] if isinstance(action, dict)
            for p in action.get("parameters", []) or []}


def _wait_for_number(client: JenkinsClient, result: BuildResult, queue_id: int, deadline: Deadline, poll: float,
                     log: Log) -> int | None:
    last_reason = None
    while True:
        item = client.queue_item(queue_id)
        if item is None:  # Jenkins forgets queue items a few minutes after they leave the queue
            build = _build_with_request(client, result.job, result.request_id)
            if build is None:
                raise ServiceError(f"queue item {queue_id} of {result.job} expired before its build was seen",
                                   hint=f"check the build history of {result.job}")
            return int(build["number"])
        if item.get("cancelled"):
            return None
        executable = item.get("executable") or {}
        if executable.get("number") is not None:
            return int(executable["number"])
        if item.get("why") and item["why"] != last_reason:
            last_reason = item["why"]
            log(f"waiting: {last_reason}")
        deadline.check(f"waiting for {result.job} to leave the queue")
        time.sleep(poll)


def _stream_console(client: JenkinsClient, job: str, number: int, deadline: Deadline, poll: float,
                    on_console: Log) -> None:
    offset = 0
    while True:
        text, offset, more = client.console_chunks(job, number, offset)
        if text:
            on_console(text)
        if not more:
            return
        deadline.check(f"following {job} #{number}")
        time.sleep(poll)


def _wait_for_result(client: JenkinsClient, job: str, number: int, deadline: Deadline, poll: float) -> dict:
    while True:
        info = client.build_info(job, number)
        if not info.get("building") and info.get("result"):
            return info
        deadline.check(f"waiting for the result of {job} #{number}")
        time.sleep(poll)


# ---- status ------------------------------------------------------------------------------------------------


@dataclass
class StatusResult:
    server: str
    builds: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"server": self.server, "builds": self.builds}


def job_status(client: JenkinsClient, jobs: list[str], *, limit: int = 5) -> StatusResult:
    """The last ``limit`` builds of each job: number, result (or BUILDING), start time, duration; for a
    multibranch project, those of its branch jobs."""
    status = StatusResult(server=client.url)
    for job in jobs:
        require_job_path(job, key="JOB")
        status.builds += _job_builds(client, job, limit)
    return status


def _job_builds(client: JenkinsClient, job: str, limit: int) -> list[dict]:
    """Build rows of ``job``. Branch job names come from Jenkins (branch-api encodes '/' as %2F), so
    they are not checked against the allow-list for names users type; the client URL-quotes them."""
    info = client.job_info(job)
    if info is None:
        return [{"job": job, "number": None, "result": "no such job"}]
    if _is_multibranch(info):
        children = [c["name"] for c in info.get("jobs", []) if c.get("name")]
        if not children:
            return [{"job": job, "number": None, "result": "no branch indexed yet"}]
        return [row for name in children for row in _job_builds(client, f"{job}/{name}", limit)]
    refs = info.get("builds", [])[:limit]
    if not refs:
        return [{"job": job, "number": None, "result": "never built"}]
    rows = []
    for ref in refs:
        build = client.build_info(job, ref["number"])
        rows.append({"job": job, "number": build.get("number"),
                     "result": "BUILDING" if build.get("building") else build.get("result"),
                     "started": _iso(build.get("timestamp")),
                     "duration_s": round((build.get("duration") or 0) / 1000, 1)})
    return rows


def _iso(millis: int | None) -> str | None:
    return datetime.fromtimestamp(millis / 1000, UTC).isoformat(timespec="seconds") if millis else None


# ---- lint -------------------------------------------------------------------------------------------------


def lint_jenkinsfile(path: Path, *, client: JenkinsClient | None = None, project: Project | None = None) -> Report:
    """Validate a Jenkinsfile with the server's declarative validator, or offline with groovyc."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"{path}: cannot read ({type(error).__name__})") from None
    report = Report(kind="lint", details={"file": str(path)})
    if client is not None:
        report.details["validator"] = f"{client.url}pipeline-model-converter"
        errors = client.lint(text)
    else:
        report.details["validator"] = "groovyc (offline compile)"
        errors = _groovyc_errors(text)
    if errors:
        for message in errors:
            report.add(Check(name=Path(path).name, passed=False, message=message))
    else:
        report.add(Check(name=Path(path).name, passed=True, message="valid"))
    if project is not None:
        write_report(report, project.reports_dir, html=report_html(report, "Jenkinsfile lint", str(path)))
    return report


def _groovyc_errors(text: str) -> list[str]:
    """Compile (never run) the file with Groovy; returns the compiler's error lines."""
    groovyc = os.environ.get("MLCI_GROOVYC") or shutil.which("groovyc")
    if not groovyc:
        raise ServiceError("no Jenkins server configured and groovyc is not installed",
                           hint=f"set {ENV_URL} to use the server's validator, or install Groovy")
    with tempfile.TemporaryDirectory(prefix="mlci-lint-") as tmp:
        source = Path(tmp) / "Jenkinsfile.groovy"
        source.write_text(text, encoding="utf-8")
        proc = run_command([groovyc, "-d", str(Path(tmp) / "classes"), source.name], cwd=Path(tmp),
                           what="groovyc", timeout=300, hint="set JAVA_HOME to a JDK 17")
    if proc.returncode == 0:
        return []
    output = proc.stdout + proc.stderr
    if "startup failed" not in output:
        raise ServiceError("groovyc did not run: " + (output.strip().splitlines() or ["no output"])[-1][:200],
                           hint="set JAVA_HOME to a JDK 17")
    return [line.replace("Jenkinsfile.groovy: ", "line ").strip() for line in output.splitlines()
            if line.startswith("Jenkinsfile.groovy:")]
