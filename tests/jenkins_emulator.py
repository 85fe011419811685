"""An in-process emulator of the Jenkins REST API for tests.

No Jenkins controller can run in the test environment, so the Jenkins code is tested through the
real python-jenkins client against this emulator. It binds 127.0.0.1 on an ephemeral port and
implements the parts of the API that python-jenkins 1.8.3 and mlci use:

* HTTP basic auth on every request, a crumb issuer whose crumbs are bound to a session cookie,
  CSRF checks on POSTs of password logins (API tokens and the declarative linter are exempt, as in
  Jenkins);
* jobs, folders and multibranch projects (``createItem``, ``config.xml`` re-serialized without unknown
  fields, ``api/json`` with ``tree=``, ``doDelete``, ``enable``/``disable``, branch indexing on ``build``),
  names looked up case-insensitively like Jenkins does; declarative's job-property rewrite on each build;
* the build queue (``build``/``buildWithParameters`` -> ``201 Location: .../queue/item/N/``;
  ``buildWithParameters`` answers ``303`` for an identical request merged into a queued item, ``build`` still
  201; ``cancelled`` items, expired items);
* builds (``api/json``, ``consoleText``, ``logText/progressiveText`` with ``X-Text-Size`` and
  ``X-More-Data``, ``stop``), progressing *per poll*, never by wall-clock time;
* the declarative linter (``pipeline-model-converter/validate`` and ``validateJenkinsfile``) with the
  option, agent-type and step-parameter allow-lists of the installed plugins;
* injectable faults (status codes, delays, silent server, dropped connections).

Everything a test needs is on :class:`JenkinsEmulator`; see its docstring.
Standard library only.
"""

from __future__ import annotations

import base64
import bisect
import collections
import email.parser
import email.policy
import hashlib
import hmac
import html
import itertools
import json
import math
import re
import secrets
import socket
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, unquote, urlsplit

__all__ = [
    "CRUMB_FIELD",
    "Fault",
    "JENKINS_VERSION",
    "JenkinsEmulator",
    "NO_VALID_CRUMB",
    "RecordedRequest",
    "Scenario",
    "lint_jenkinsfile",
    "pipeline_config",
]

JENKINS_VERSION = "2.580.2"  # the LTS docker/jenkins/Dockerfile pins
CRUMB_FIELD = "Jenkins-Crumb"
NO_VALID_CRUMB = "No valid crumb was included in the request"
WAITING_FOR_EXECUTOR = "Waiting for next available executor"

RESULTS = ("SUCCESS", "UNSTABLE", "FAILURE", "ABORTED", "NOT_BUILT")
_COLORS = {"SUCCESS": "blue", "UNSTABLE": "yellow", "FAILURE": "red", "ABORTED": "aborted",
           "NOT_BUILT": "notbuilt"}

_FOLDER_CLASS = "com.cloudbees.hudson.plugins.folder.Folder"
_JOB_CLASSES = {  # config.xml root tag -> (job class, run class)
    "flow-definition": ("org.jenkinsci.plugins.workflow.job.WorkflowJob",
                        "org.jenkinsci.plugins.workflow.job.WorkflowRun"),
    "project": ("hudson.model.FreeStyleProject", "hudson.model.FreeStyleBuild"),
    _FOLDER_CLASS: (_FOLDER_CLASS, None),
    "org.jenkinsci.plugins.workflow.multibranch.WorkflowMultiBranchProject": (
        "org.jenkinsci.plugins.workflow.multibranch.WorkflowMultiBranchProject", None),
}
_MODE_TAGS = {  # createItem ?mode= -> config.xml root tag
    _FOLDER_CLASS: _FOLDER_CLASS,
    "org.jenkinsci.plugins.workflow.job.WorkflowJob": "flow-definition",
    "hudson.model.FreeStyleProject": "project",
    "org.jenkinsci.plugins.workflow.multibranch.WorkflowMultiBranchProject":
        "org.jenkinsci.plugins.workflow.multibranch.WorkflowMultiBranchProject",
}
_PARAM_VALUE_CLASSES = {
    "hudson.model.StringParameterDefinition": "hudson.model.StringParameterValue",
    "hudson.model.TextParameterDefinition": "hudson.model.TextParameterValue",
    "hudson.model.BooleanParameterDefinition": "hudson.model.BooleanParameterValue",
    "hudson.model.ChoiceParameterDefinition": "hudson.model.StringParameterValue",
    "hudson.model.PasswordParameterDefinition": "hudson.model.PasswordParameterValue",
}
# Jenkins.checkGoodName refuses these characters in item names.
_UNSAFE_NAME_CHARS = set("?*/\\%!@#$^&|<>[]:;")
_PERMALINKS = ("lastBuild", "lastCompletedBuild", "lastSuccessfulBuild", "lastStableBuild",
               "lastUnstableBuild", "lastFailedBuild", "lastUnsuccessfulBuild", "firstBuild")


# --------------------------------------------------------------------------------------------
# public value types
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Scenario:
    """What a build of a job does. Captured when the build request is queued.

    * ``queue_polls``: how many GETs of ``queue/item/N/api/json`` report ``why`` before the item
      leaves the queue. ``0`` starts the build at trigger time (idle executor).
    * ``build_polls``: how many reads of the build (``N/api/json``, ``consoleText``,
      ``logText/progressive*``, permalinks) report ``building: true``; console lines appear
      proportionally over those reads; the next read after that sees the final result and the
      complete log ending in ``Finished: RESULT``. ``0`` means the first read sees it finished.
    * ``cancel_in_queue``: after ``queue_polls`` polls the item reports ``cancelled: true``.
    * ``queue_expires_after``: after that many polls the queue item answers 404 (Jenkins forgets
      left items after about five minutes); an item still waiting then starts its build first.
    """

    result: str = "SUCCESS"
    console: tuple[str, ...] = ()
    queue_polls: int = 1
    build_polls: int = 1
    cancel_in_queue: bool = False
    queue_expires_after: int | None = None
    why: str = WAITING_FOR_EXECUTOR
    duration_ms: int = 1234


@dataclass
class Fault:
    """An injected fault; returned by :meth:`JenkinsEmulator.fault`. ``hits`` counts uses."""

    pattern: re.Pattern
    method: str | None
    status: int | None
    times: int | None
    delay: float
    silent: bool
    drop: bool
    process: bool
    body: bytes | None
    headers: dict
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        if self.method is not None and self.method != method:
            return False
        return self.pattern.search(path) is not None


@dataclass
class RecordedRequest:
    """One request as the emulator received it. ``Authorization`` is never recorded."""

    method: str
    path: str  # raw (percent-encoded) path, without the query string
    query: str  # raw query string ('' when absent)
    headers: dict  # header name -> value, minus Authorization
    body: bytes
    status: int | None = None  # None: no response was sent (silent or dropped)

    @property
    def params(self) -> dict:
        """Query string parsed into ``{name: [values]}``."""
        return parse_qs(self.query, keep_blank_values=True)

    @property
    def form(self) -> dict:
        """Body parsed as a form (urlencoded or multipart) into ``{name: [values]}``."""
        return _parse_form(self.headers.get("Content-Type", ""), self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def header(self, name: str) -> str | None:
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None


# --------------------------------------------------------------------------------------------
# internal state
# --------------------------------------------------------------------------------------------

@dataclass
class _ParamDef:
    name: str
    kind: str
    default: object
    choices: tuple[str, ...] = ()
    description: str = ""


@dataclass
class _Job:
    name: str  # full name with the case it was created with, e.g. "ml/train"
    config: str  # as GET config.xml returns it
    root_tag: str
    description: str = ""
    params: list = field(default_factory=list)
    builds: dict = field(default_factory=dict)  # number -> _Build
    next_build_number: int = 1
    disabled: bool = False
    declared: tuple = (set(), set(), set())  # DeclarativeJobPropertyTrackerAction: props, triggers, params
    branch: str | None = None  # a multibranch project's branch job
    revision: str | None = None  # the branch head it last built
    scans: int = 0  # branch indexing runs of a multibranch project

    @property
    def short_name(self) -> str:
        return self.name.rsplit("/", 1)[-1]

    @property
    def is_folder(self) -> bool:
        """Folders and multibranch projects hold items and have no builds of their own."""
        return self.root_tag in (_FOLDER_CLASS, _MULTIBRANCH_CLASS)

    @property
    def is_multibranch(self) -> bool:
        return self.root_tag == _MULTIBRANCH_CLASS

    @property
    def job_class(self) -> str:
        return _JOB_CLASSES.get(self.root_tag, (self.root_tag, None))[0]

    @property
    def run_class(self) -> str:
        return _JOB_CLASSES.get(self.root_tag, (None, None))[1] or "hudson.model.Run"


@dataclass
class _QueueItem:
    id: int
    job: _Job
    params: tuple | None  # ((name, value), ...) or None for a job without parameters
    scenario: Scenario
    since_ms: int
    causes: int = 1
    polls: int = 0
    state: str = "waiting"  # waiting | left | cancelled
    build: _Build | None = None
    forgotten: bool = False


@dataclass
class _Build:
    job: _Job
    number: int
    params: tuple | None
    scenario: Scenario
    queue_id: int
    timestamp_ms: int
    lines: list
    visible: int = 1
    polls: int = 0
    result: str | None = None

    @property
    def building(self) -> bool:
        return self.result is None

    def text(self) -> str:
        out = "".join(line + "\n" for line in self.lines[:self.visible])
        if self.result is not None:
            out += f"Finished: {self.result}\n"
        return out


@dataclass
class _Response:
    status: int
    body: bytes = b""
    content_type: str = "text/plain;charset=utf-8"
    headers: dict = field(default_factory=dict)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Jetty(10.0.20)"
    sys_version = ""
    disable_nagle_algorithm = True  # headers and body go out in separate writes

    def log_message(self, format, *args):  # noqa: A002 - silence the default stderr log
        pass

    def setup(self):
        super().setup()
        self.server.emulator._track(self.connection, add=True)

    def finish(self):
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.server.emulator._track(self.connection, add=False)

    def _dispatch(self):
        self.server.emulator._serve(self)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _dispatch


# --------------------------------------------------------------------------------------------
# the emulator
# --------------------------------------------------------------------------------------------

class JenkinsEmulator:
    """A Jenkins REST API on ``http://127.0.0.1:<ephemeral port>/``.

    ``JenkinsEmulator(user="mlci", token="...", crumbs=True, latency=0.0,
    normalize_config=True)`` is a context manager (or call :meth:`start`/:meth:`stop`).

    * ``url``: base URL with a trailing slash; ``jenkins.Jenkins(emu.url, "mlci", token, timeout=5)``.
    * ``user``/``token`` may be changed while running (e.g. to emulate a revoked token).
    * ``crumbs=False``: the crumb issuer answers 404 and POSTs need no crumb.
    * ``latency``: seconds slept before every request is handled.
    * ``normalize_config``: store configs the way Jenkins re-serialises them (XML 1.1 declaration,
      attributes and empty elements rewritten, comments dropped), so ``GET config.xml`` is *not*
      byte-identical to what was posted. ``posted_configs`` keeps the raw bytes' text.

    Inspection: ``jobs`` (full name -> stored config), ``posted_configs``, ``config_writes``
    (Counter of createItem/config.xml writes per full name), ``requests`` (list of
    :class:`RecordedRequest`), ``crumbs_issued``, :meth:`build_info`, :meth:`queue_item`,
    :meth:`builds`, :meth:`console_text`.

    Control: :meth:`add_job`, :meth:`add_folder`, :meth:`script_job`, :meth:`trigger`,
    :meth:`start_queued`, :meth:`complete_build`, :meth:`forget_queue_item`,
    :meth:`rotate_crumbs`, :meth:`expire_sessions`, :meth:`fault`, :meth:`clear_faults`.

    Progress is driven by polls only: GETs of ``queue/item/N/api/json`` move a queue item on,
    reads of a build (``N/api/json``, ``consoleText``, ``logText/progressive*``, permalinks such
    as ``lastBuild/api/json``) move that build on. Job-level ``api/json`` moves nothing; use
    ``queue_polls=0``, :meth:`start_queued` or :meth:`complete_build` for clients that only
    watch the job.

    Authentication (jenkinsci/jenkins): HTTP basic with ``token`` (an API token: exempt from CSRF crumbs,
    ``ApiCrumbExclusion``) or ``password`` (a login: crumbs required); anonymous requests get 403, wrong
    credentials 401. Repositories for SCM jobs and multibranch projects come from
    :meth:`add_repository`; a declarative build applies ``Utils.updateJobProperties`` to its job.

    Deliberate limits: builds run no script (their result and console come from :meth:`script_job`);
    only String, Text, Boolean, Choice and Password parameters are understood; only the top-level fields
    and job property classes listed in ``_KNOWN_FIELDS``/``_KNOWN_JOB_PROPERTIES`` are checked when a config
    is re-serialized; the validator's allow-lists cover the plugins of docker/jenkins/plugins.txt.
    """

    def __init__(self, user: str = "mlci", token: str = "mlci-test-token", crumbs: bool = True,
                 *, latency: float = 0.0, normalize_config: bool = True, password: str | None = None):
        self.user = user
        self.token = token
        self.password = password
        self._repositories: dict[str, dict[str, dict[str, str]]] = {}
        self.crumbs = crumbs
        self.latency = latency
        self.normalize_config = normalize_config
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._conns: set = set()
        self._jobs: dict[str, _Job] = {}  # lower-cased full name -> job
        self._posted: dict[str, str] = {}
        self._writes: collections.Counter = collections.Counter()
        self._scenarios: dict[str, Scenario] = {}
        self._scenario_queue: dict[str, collections.deque] = collections.defaultdict(
            collections.deque)
        self._queue: dict[int, _QueueItem] = {}
        self._queue_ids = itertools.count(1)
        self._requests: list[RecordedRequest] = []
        self._faults: list[Fault] = []
        self._sessions: set = set()
        self._crumb_salt = secrets.token_bytes(16)
        self._crumbs_issued = 0
        self._cookie_name = "JSESSIONID." + secrets.token_hex(4)
        self._instance = secrets.token_hex(4)
        self._port: int | None = None

    # ---- lifecycle ----------------------------------------------------------------------

    def start(self) -> JenkinsEmulator:
        if self._server is not None:
            return self
        self._stopping.clear()
        server = _Server(("127.0.0.1", 0), _Handler)
        server.emulator = self
        self._server = server
        self._port = server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="jenkins-emulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving. Open and silent connections are closed; new connections are refused."""
        server = self._server
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> JenkinsEmulator:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the emulator has not been started")
        return self._port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def _track(self, conn, add: bool) -> None:
        with self._lock:
            if add:
                self._conns.add(conn)
            else:
                self._conns.discard(conn)

    # ---- inspection -----------------------------------------------------------------------

    @property
    def jobs(self) -> dict:
        """Snapshot ``{full name: config.xml text as GET config.xml returns it}`` (folders too)."""
        with self._lock:
            return {job.name: job.config for job in self._jobs.values()}

    @property
    def posted_configs(self) -> dict:
        """Snapshot ``{full name: last config.xml text as posted}``."""
        with self._lock:
            return dict(self._posted)

    @property
    def config_writes(self) -> collections.Counter:
        """Snapshot Counter ``{full name: number of createItem + POST config.xml}``."""
        with self._lock:
            return collections.Counter(self._writes)

    @property
    def requests(self) -> list:
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def requests_to(self, path_regex: str, method: str | None = None) -> list:
        """Recorded requests whose raw path matches ``path_regex`` (``re.search``)."""
        rx = re.compile(path_regex)
        return [r for r in self.requests
                if rx.search(r.path) and (method is None or r.method == method)]

    @property
    def crumbs_issued(self) -> int:
        with self._lock:
            return self._crumbs_issued

    def builds(self, job: str) -> list:
        """Snapshots (see :meth:`build_info`) of the job's builds, oldest first."""
        with self._lock:
            j = self._require_job(job)
            return [self._build_snapshot(b) for _, b in sorted(j.builds.items())]

    def build_info(self, job: str, number: int | None = None) -> dict:
        """Snapshot of a build (default: the last): number, result, building, params (dict),
        console (text visible so far), full_console, queue_id, polls. Reading it is not a poll."""
        with self._lock:
            j = self._require_job(job)
            if not j.builds:
                raise KeyError(f"job {job!r} has no builds")
            b = j.builds[max(j.builds) if number is None else number]
            return self._build_snapshot(b)

    def console_text(self, job: str, number: int | None = None) -> str:
        """The console text of a build as it currently reads (not a poll)."""
        return self.build_info(job, number)["console"]

    def queue_item(self, item_id: int) -> dict:
        """Snapshot of a queue item: id, job, state (waiting|left|cancelled), params, polls,
        causes (how many requests were merged into it), build (number or None)."""
        with self._lock:
            item = self._queue[item_id]
            return {"id": item.id, "job": item.job.name, "state": item.state,
                    "params": dict(item.params or ()), "polls": item.polls,
                    "causes": item.causes, "build": item.build.number if item.build else None,
                    "forgotten": item.forgotten}

    @property
    def queue(self) -> list:
        """Snapshots of every queue item ever created, in id order."""
        with self._lock:
            ids = sorted(self._queue)
        return [self.queue_item(i) for i in ids]

    # ---- control --------------------------------------------------------------------------

    def add_job(self, name: str, config_xml: str | None = None, *,
                params: dict | None = None) -> None:
        """Create a job directly (not counted in ``config_writes``). Missing parent folders are
        created. Without ``config_xml`` a sandboxed Pipeline job is generated that declares
        ``params`` (``{name: default}``; bool defaults give boolean parameters)."""
        if config_xml is None:
            config_xml = pipeline_config(params or {})
        with self._lock:
            parts = name.split("/")
            for i in range(1, len(parts)):
                parent = "/".join(parts[:i])
                if self._find(parent) is None:
                    self._store_new(parent, _empty_config(_FOLDER_CLASS))
            if self._find(name) is not None:
                raise ValueError(f"job {name!r} already exists")
            self._store_new(name, config_xml.encode("utf-8"))

    def add_repository(self, url: str, branches: dict) -> None:
        """The Git repository at ``url`` as Jenkins checks it out: ``{branch: {path: text}}``. Calling it
        again is a push: the next branch indexing builds the branches whose files changed, and single-branch
        jobs read the new Jenkinsfile on their next build."""
        with self._lock:
            self._repositories[url] = {b: dict(files) for b, files in branches.items()}

    def scans(self, project: str) -> int:
        """How many branch indexing runs the multibranch ``project`` had."""
        with self._lock:
            return self._require_job(project).scans

    def add_folder(self, name: str) -> None:
        self.add_job(name, _empty_config(_FOLDER_CLASS).decode("utf-8"))

    def script_job(self, name: str, result: str = "SUCCESS", console=(), *, queue_polls: int = 1,
                   build_polls: int = 1, cancel_in_queue: bool = False,
                   queue_expires_after: int | None = None, why: str = WAITING_FOR_EXECUTOR,
                   duration_ms: int = 1234, once: bool = False) -> Scenario:
        """Decide what builds of ``name`` do (see :class:`Scenario`). The job need not exist yet.
        ``once=True`` queues the scenario for the next build request only (FIFO); otherwise it
        becomes the job's default. Returns the Scenario."""
        if result not in RESULTS:
            raise ValueError(f"result must be one of {RESULTS}")
        scenario = Scenario(result=result, console=tuple(console), queue_polls=queue_polls,
                            build_polls=build_polls, cancel_in_queue=cancel_in_queue,
                            queue_expires_after=queue_expires_after, why=why,
                            duration_ms=duration_ms)
        with self._lock:
            key = _key(name)
            if once:
                self._scenario_queue[key].append(scenario)
            else:
                self._scenarios[key] = scenario
        return scenario

    def trigger(self, job: str, params: dict | None = None) -> int:
        """Queue a build as another user would (no HTTP). Returns the queue item id."""
        with self._lock:
            j = self._require_job(job)
            values = self._param_values(j, {k: [str(v)] for k, v in (params or {}).items()})
            return self._enqueue(j, values)[0].id

    def start_queued(self, job: str | None = None) -> list:
        """Start every waiting queue item (of ``job`` or all); returns the build numbers."""
        started = []
        with self._lock:
            for item in list(self._queue.values()):
                if item.state == "waiting" and (job is None or item.job is self._find(job)):
                    started.append(self._start_build(item).number)
        return started

    def complete_build(self, job: str, number: int | None = None,
                       result: str | None = None) -> None:
        """Finish a running build now, with all console lines and ``result`` (default: the
        scenario's)."""
        with self._lock:
            j = self._require_job(job)
            b = j.builds[max(j.builds) if number is None else number]
            if b.building:
                b.visible = len(b.lines)
                b.result = result or b.scenario.result

    def forget_queue_item(self, item_id: int) -> None:
        """Make ``queue/item/<id>/api/json`` answer 404 from now on (Jenkins' expiry)."""
        with self._lock:
            item = self._queue[item_id]
            if item.state == "waiting":
                self._start_build(item)
            item.forgotten = True

    def rotate_crumbs(self) -> None:
        """Invalidate every crumb issued so far (clients holding one get 403 on POST)."""
        with self._lock:
            self._crumb_salt = secrets.token_bytes(16)

    def expire_sessions(self) -> None:
        """Forget all sessions (like a controller restart): old cookies and their crumbs are
        invalid; the next response sets a new session cookie."""
        with self._lock:
            self._sessions.clear()

    def fault(self, path_regex: str, status: int | None = None, *, times: int | None = 1,
              method: str | None = None, delay: float = 0.0, silent: bool = False,
              drop: bool = False, process: bool = False, body: str | bytes | None = None,
              headers: dict | None = None) -> Fault:
        """Inject a fault for requests whose raw path (no query) matches ``path_regex``
        (``re.search``) and, if given, whose ``method`` matches. Applies to the next ``times``
        matching requests (``None``: forever). Faults are checked before authentication.

        * ``status``: answer with this status (and ``body``/``headers``) instead.
          ``fault(path)`` with nothing else means ``status=503``.
        * ``delay``: sleep this many seconds first (alone: a slow but normal response).
        * ``silent``: accept the request and never answer until :meth:`stop`.
        * ``drop``: close the connection without any response.
        * ``process``: handle the request normally first (state changes happen, e.g. a build is
          queued) and then apply ``status``/``drop``: "the response was lost".
        """
        if status is None and not (delay or silent or drop):
            status = 503
        if isinstance(body, str):
            body = body.encode("utf-8")
        f = Fault(re.compile(path_regex), method, status, times, delay, silent, drop, process,
                  body, dict(headers or {}))
        with self._lock:
            self._faults.append(f)
        return f

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    # ---- request handling -------------------------------------------------------------------

    def _serve(self, handler: _Handler) -> None:
        method = handler.command
        try:
            length = int(handler.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        body = handler.rfile.read(length) if length > 0 else b""
        split = urlsplit(handler.path)
        headers = {k: v for k, v in handler.headers.items() if k.lower() != "authorization"}
        record = RecordedRequest(method, split.path, split.query, headers, body)
        with self._lock:
            self._requests.append(record)
            fault = next((f for f in self._faults if f.matches(method, split.path)), None)
            if fault is not None:
                fault.hits += 1
        if self.latency and self._stopping.wait(self.latency):
            return self._abort(handler)
        if fault is not None:
            if fault.delay and self._stopping.wait(fault.delay):
                return self._abort(handler)
            if fault.silent:
                self._stopping.wait()
                return self._abort(handler)
            if fault.drop or fault.status is not None:
                if fault.process:
                    self._safe_handle(method, split.path, split.query, handler.headers, body)
                if fault.drop:
                    return self._abort(handler)
                reason = handler.responses.get(fault.status, ("Error",))[0]
                text = fault.body if fault.body is not None else _error_page(
                    fault.status, reason, split.path).encode("utf-8")
                resp = _Response(fault.status, text, "text/html;charset=utf-8",
                                 dict(fault.headers))
                return self._send(handler, record, resp)
        resp = self._safe_handle(method, split.path, split.query, handler.headers, body)
        self._send(handler, record, resp)

    def _safe_handle(self, method, path, query, headers, body) -> _Response:
        try:
            return self._handle(method, path, query, headers, body)
        except Exception as e:  # an emulator bug must still answer, like Jenkins' 500 page
            return _html_error(500, f"{type(e).__name__}: {e}", path)

    def _abort(self, handler: _Handler) -> None:
        handler.close_connection = True
        try:
            handler.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _send(self, handler: _Handler, record: RecordedRequest, resp: _Response) -> None:
        record.status = resp.status
        try:
            handler.send_response(resp.status)
            handler.send_header("X-Jenkins", JENKINS_VERSION)
            handler.send_header("X-Hudson", "1.395")
            handler.send_header("X-Jenkins-Session", self._instance)
            handler.send_header("Content-Type", resp.content_type)
            for key, value in resp.headers.items():
                # Jetty sends header values as ISO-8859-1 and replaces what does not fit.
                value = re.sub(r"[\r\n]", " ", str(value))
                handler.send_header(key, value.encode("latin-1", "replace").decode("latin-1"))
            handler.send_header("Content-Length", str(len(resp.body)))
            handler.end_headers()
            if handler.command != "HEAD":
                handler.wfile.write(resp.body)
            handler.wfile.flush()
        except OSError:
            handler.close_connection = True

    def _handle(self, method, path, query, headers, body) -> _Response:
        with self._lock:
            if path.rstrip("/") == "/git/notifyCommit":  # an UnprotectedRootAction, exempt from crumbs
                return self._notify_commit(parse_qs(query, keep_blank_values=True))
            denied, by_token = self._check_auth(headers.get("Authorization"), path)
            if denied is not None:
                return denied
            session, set_cookie = self._session(headers.get("Cookie", ""))
            resp = None if by_token else self._check_crumb(method, path, session, headers, body)
            if resp is None:
                try:
                    resp = self._route(method, path, query, headers, body, session)
                except _HttpError as e:
                    resp = _html_error(e.status, e.message, path, e.headers)
            if set_cookie:
                resp.headers["Set-Cookie"] = (f"{self._cookie_name}={session}; Path=/; HttpOnly")
            return resp

    def _check_auth(self, value: str | None, path: str) -> tuple[_Response | None, bool]:
        """``(refusal or None, authenticated with an API token)``.

        Anonymous requests get 403 (jenkinsci/jenkins ``HudsonAuthenticationEntryPoint``: anonymous lacks
        Overall/Read on a secured controller); a wrong password or token gets 401 ("Invalid password/token
        for user", ``BasicHeaderProcessor``). Requests authenticated with an API token are exempt from
        CSRF crumbs (``ApiCrumbExclusion.java``); password logins need one (``CrumbFilter``).
        """
        if not value or not value.startswith("Basic "):
            return _html_error(403, "Authentication required", path, {
                "X-You-Are-Authenticated-As": "anonymous", "X-You-Are-In-Group-Disabled":
                "JENKINS-39402: use -Dhudson.security.AccessDeniedException2.REPORT_GROUP_HEADERS=true",
                "X-Required-Permission": "hudson.model.Hudson.Read"}), False
        try:
            user, _, secret = base64.b64decode(value[6:]).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return _html_error(401, "Authentication required", path,
                               {"WWW-Authenticate": 'Basic realm="Jenkins"'}), False
        if hmac.compare_digest(user.encode(), self.user.encode()):
            if hmac.compare_digest(secret.encode(), self.token.encode()):
                return None, True
            if self.password is not None and hmac.compare_digest(secret.encode(), self.password.encode()):
                return None, False
        return _html_error(401, f"Invalid password/token for user: {user}", path,
                           {"WWW-Authenticate": 'Basic realm="Jenkins"'}), False

    def _session(self, cookie_header: str) -> tuple[str, bool]:
        for part in cookie_header.split(";"):
            name, _, value = part.strip().partition("=")
            if name == self._cookie_name and value in self._sessions:
                return value, False
        session = secrets.token_hex(12)
        self._sessions.add(session)
        return session, True

    def _crumb_for(self, session: str) -> str:
        return hmac.new(self._crumb_salt, f"{self.user}:{session}".encode(),
                        hashlib.sha256).hexdigest()

    def _check_crumb(self, method, path, session, headers, body) -> _Response | None:
        if not self.crumbs or method != "POST" or path.startswith("/pipeline-model-converter/"):
            return None
        sent = headers.get(CRUMB_FIELD)
        if sent is None:
            sent = (_parse_form(headers.get("Content-Type", ""), body).get(CRUMB_FIELD)
                    or [None])[0]
        if sent is not None and hmac.compare_digest(sent, self._crumb_for(session)):
            return None
        return _html_error(403, NO_VALID_CRUMB, path)

    # ---- routing ------------------------------------------------------------------------------

    def _route(self, method, path, query, headers, body, session) -> _Response:
        segs = [unquote(s) for s in path.split("/")[1:]]
        while segs and segs[-1] == "":
            segs.pop()
        qs = parse_qs(query, keep_blank_values=True)
        tree = (qs.get("tree") or [None])[0]
        form = _parse_form(headers.get("Content-Type", ""), body)
        names = []
        while len(segs) >= 2 and segs[0] == "job":
            names.append(segs[1])
            segs = segs[2:]
        if names:
            job = self._find("/".join(names))
            if job is None:
                raise _HttpError(404, "Not Found")
            return self._route_job(method, job, segs, qs, tree, headers, body, form)
        rest = "/".join(segs)
        if rest == "":
            return _Response(200, b"<html><head><title>Dashboard [Jenkins]</title></head></html>",
                             "text/html;charset=utf-8")
        if rest == "api/json":
            return self._json(self._root_json(deep=tree is not None), tree)
        if rest == "crumbIssuer/api/json":
            if not self.crumbs:
                raise _HttpError(404, "Not Found")
            self._crumbs_issued += 1
            return self._json({"_class": "hudson.security.csrf.DefaultCrumbIssuer",
                               "crumb": self._crumb_for(session),
                               "crumbRequestField": CRUMB_FIELD}, tree)
        if rest == "me/api/json":
            return self._json({"_class": "hudson.model.User", "absoluteUrl":
                               f"{self.url}user/{quote(self.user)}", "description": None,
                               "fullName": self.user, "id": self.user, "property": []}, tree)
        if rest == "whoAmI/api/json":
            return self._json({"_class": "hudson.security.WhoAmI", "anonymous": False,
                               "authenticated": True, "authorities": ["authenticated"],
                               "name": self.user}, tree)
        if rest == "createItem":
            self._require_post(method)
            return self._create_item("", qs, headers, body, form)
        if rest == "queue/api/json":
            items = [self._queue_json(i) for i in sorted(self._queue.values(), key=lambda i: i.id)
                     if i.state == "waiting"]
            return self._json({"_class": "hudson.model.Queue", "discoverableItems": [],
                               "items": items}, tree)
        m = re.fullmatch(r"queue/item/(\d+)", rest)
        if m:
            # Queue.Item.doIndex: a known item (waiting or left) answers a short text, not JSON. python-jenkins'
            # build_job lands here when it follows a 303.
            item = self._queue.get(int(m.group(1)))
            if item is None or item.forgotten:
                raise _HttpError(404, "Not Found")
            uri = f"/queue/item/{item.id}/"
            return _Response(200, f"Queue item exists. For details check, for example, {uri}api/json?tree=cancelled,"
                                  f"executable[url]".encode())
        m = re.fullmatch(r"queue/item/(\d+)/api/json", rest)
        if m:
            item = self._queue.get(int(m.group(1)))
            if item is None or item.forgotten:
                raise _HttpError(404, "Not Found")
            self._poll_queue_item(item)
            if item.forgotten:
                raise _HttpError(404, "Not Found")
            return self._json(self._queue_json(item), tree)
        if rest == "queue/cancelItem":
            self._require_post(method)
            item_id = (qs.get("id") or form.get("id") or [""])[0]
            item = self._queue.get(int(item_id)) if item_id.isdigit() else None
            if item is None:
                raise _HttpError(404, "Not Found")
            if item.state == "waiting":
                item.state = "cancelled"
            return _Response(204)
        if rest in ("pipeline-model-converter/validate",
                    "pipeline-model-converter/validateJenkinsfile"):
            self._require_post(method)
            text = (form.get("jenkinsfile") or qs.get("jenkinsfile") or [None])[0]
            return _validate_response(rest.endswith("Jenkinsfile"), text)
        raise _HttpError(404, "Not Found")

    def _route_job(self, method, job, segs, qs, tree, headers, body, form) -> _Response:
        rest = "/".join(segs)
        if rest == "":
            return _Response(200, f"<html><title>{html.escape(job.name)} [Jenkins]</title></html>"
                             .encode(), "text/html;charset=utf-8")
        if rest == "api/json":
            data = self._job_json(job, deep=tree is not None)
            if tree is None:
                data.pop("allBuilds", None)
            return self._json(data, tree)
        if rest == "config.xml":
            if method == "GET":
                return _Response(200, job.config.encode("utf-8"), "application/xml;charset=utf-8")
            self._require_post(method)
            self._write_config(job, body)
            return _Response(200)
        if rest == "createItem":
            self._require_post(method)
            if not job.is_folder or job.is_multibranch:  # a multibranch project's items come from indexing
                raise _HttpError(404, "Not Found")
            return self._create_item(job.name + "/", qs, headers, body, form)
        if rest == "doDelete":
            self._require_post(method)
            prefix = job.name.lower() + "/"
            for key in [k for k in self._jobs if k == job.name.lower() or k.startswith(prefix)]:
                del self._jobs[key]
            for item in self._queue.values():
                if item.job is job and item.state == "waiting":
                    item.state = "cancelled"
            parent = job.name.rpartition("/")[0]
            return _Response(302, headers={"Location": self._job_url(parent) if parent
                                           else self.url})
        if rest == "doRename":
            self._require_post(method)
            return self._rename(job, (qs.get("newName") or form.get("newName") or [""])[0])
        if job.is_multibranch and rest == "build":
            # ComputedFolder.doBuild (cloudbees-folder): schedules branch indexing, forwards to the project page.
            self._require_post(method)
            self._index(job)
            return _Response(302, headers={"Location": self._job_url(job.name)})
        if job.is_folder:
            raise _HttpError(404, "Not Found")
        if rest in ("enable", "disable"):
            self._require_post(method)
            job.disabled = rest == "disable"
            return _Response(302, headers={"Location": self._job_url(job.name)})
        if rest == "build":
            return self._build(method, job, qs, form)
        if rest == "buildWithParameters":
            return self._build_with_parameters(method, job, qs, form)
        build = self._resolve_build(job, segs[0])
        sub = "/".join(segs[1:])
        if sub == "":
            return _Response(200, f"<html><title>{html.escape(job.name)} #{build.number}"
                             f"</title></html>".encode(), "text/html;charset=utf-8")
        if sub == "api/json":
            self._poll_build(build)
            return self._json(self._build_json(build), tree)
        if sub == "consoleText":
            self._poll_build(build)
            return _Response(200, build.text().encode("utf-8"))
        if sub in ("logText/progressiveText", "logText/progressiveHtml"):
            self._poll_build(build)
            data = build.text().encode("utf-8")
            start_s = (qs.get("start") or ["0"])[0]
            if not start_s.lstrip("-").isdigit():
                raise _HttpError(400, f"Bad start offset: {start_s}")
            start = int(start_s)
            if start > len(data) or start < 0:  # Jenkins: the log rolled over, start again
                start = 0
            hdrs = {"X-Text-Size": str(len(data))}
            if build.building:
                hdrs["X-More-Data"] = "true"
            return _Response(200, data[start:], "text/plain;charset=utf-8", hdrs)
        if sub == "stop":
            self._require_post(method)
            if build.building:
                build.visible = min(build.visible, len(build.lines))
                del build.lines[build.visible:]
                build.lines.append(f"Aborted by {self.user}")
                build.visible = len(build.lines)
                build.result = "ABORTED"
            return _Response(302, headers={"Location": self._build_url(build)})
        raise _HttpError(404, "Not Found")

    @staticmethod
    def _require_post(method: str) -> None:
        if method != "POST":
            raise _HttpError(405, "This URL requires POST")

    def _json(self, data, tree: str | None) -> _Response:
        if tree is not None:
            try:
                spec = _parse_tree(tree)
            except ValueError as e:
                raise _HttpError(400, f"Malformed tree expression: {e}") from None
            data = _apply_tree(data, spec)
        return _Response(200, json.dumps(data, separators=(",", ":")).encode("utf-8"),
                         "application/json;charset=utf-8")

    # ---- jobs ---------------------------------------------------------------------------------

    def _find(self, full_name: str) -> _Job | None:
        return self._jobs.get(_key(full_name))

    def _require_job(self, name: str) -> _Job:
        job = self._find(name)
        if job is None:
            raise KeyError(f"no job {name!r}")
        return job

    def _store_new(self, full_name: str, raw: bytes) -> _Job:
        root, text = self._parse_config(raw)
        job = _Job(name=full_name, config=text, root_tag=root.tag)
        self._apply_config(job, root)
        self._jobs[_key(full_name)] = job
        return job

    def _parse_config(self, raw: bytes) -> tuple[ET.Element, str]:
        try:
            root = ET.fromstring(raw)
        except ET.ParseError as e:
            raise _HttpError(500, f"Failed to persist config.xml: {e}") from None
        if self.normalize_config:
            _drop_unknown_fields(root)
            text = "<?xml version='1.1' encoding='UTF-8'?>\n" + ET.tostring(root, "unicode")
        else:
            text = raw.decode("utf-8")
        return root, text

    @staticmethod
    def _apply_config(job: _Job, root: ET.Element) -> None:
        job.description = (root.findtext("description") or "").strip()
        job.disabled = (root.findtext("disabled") or "").strip() == "true"
        job.params = _param_defs(root)

    def _write_config(self, job: _Job, raw: bytes) -> None:
        root, text = self._parse_config(raw)
        if root.tag != job.root_tag:
            raise _HttpError(500, f"Expecting {job.job_class} but got {root.tag} instead")
        job.config = text
        self._apply_config(job, root)
        self._posted[job.name] = raw.decode("utf-8", "replace")
        self._writes[job.name] += 1

    def _create_item(self, prefix, qs, headers, body, form) -> _Response:
        name = (qs.get("name") or form.get("name") or [""])[0]
        problem = _bad_name(name)
        if problem:
            raise _HttpError(400, problem, {"X-Error": problem})
        full = prefix + name
        if self._find(full) is not None:
            msg = f"A job already exists with the name \u2018{name}\u2019"
            raise _HttpError(400, msg, {"X-Error": msg})
        mode = (qs.get("mode") or form.get("mode") or [None])[0]
        ctype = headers.get("Content-Type", "")
        if mode == "copy":
            source = self._find(prefix + (qs.get("from") or form.get("from") or [""])[0])
            if source is None:
                raise _HttpError(400, "No such job")
            raw = source.config.encode("utf-8")
        elif ctype.startswith(("application/xml", "text/xml")):
            raw = body
        elif mode in _MODE_TAGS:
            raw = _empty_config(_MODE_TAGS[mode])
        elif mode is None:
            raise _HttpError(400, "No mode given")
        else:
            raise _HttpError(400, f"No item type \u2018{mode}\u2019 is known")
        job = self._store_new(full, raw)
        self._posted[job.name] = raw.decode("utf-8", "replace")
        self._writes[job.name] += 1
        return _Response(200)

    def _rename(self, job: _Job, new_name: str) -> _Response:
        problem = _bad_name(new_name)
        if problem:
            raise _HttpError(400, problem)
        parent = job.name.rpartition("/")[0]
        full = f"{parent}/{new_name}" if parent else new_name
        if self._find(full) is not None and self._find(full) is not job:
            raise _HttpError(400, f"The name \u201c{new_name}\u201d is already in use.")
        old_key = _key(job.name)
        for key in [k for k in self._jobs if k == old_key or k.startswith(old_key + "/")]:
            moved = self._jobs.pop(key)
            moved.name = full + moved.name[len(job.name):]
            self._jobs[_key(moved.name)] = moved
        return _Response(302, headers={"Location": self._job_url(full)})

    def _job_url(self, full_name: str) -> str:
        return self.url + "".join(f"job/{quote(p, safe='')}/" for p in full_name.split("/"))

    def _build_url(self, build: _Build) -> str:
        return f"{self._job_url(build.job.name)}{build.number}/"

    def _color(self, job: _Job) -> str:
        if job.disabled:
            return "disabled"
        done = [b for _, b in sorted(job.builds.items()) if not b.building]
        color = _COLORS[done[-1].result] if done else "notbuilt"
        if any(b.building for b in job.builds.values()):
            color += "_anime"
        return color

    def _job_summary(self, job: _Job, deep: bool) -> dict:
        data = {"_class": job.job_class, "name": job.short_name, "url": self._job_url(job.name)}
        if job.is_folder:
            if deep:
                data["jobs"] = [self._job_summary(c, deep) for c in self._children(job.name)]
        else:
            data["color"] = self._color(job)
        return data

    def _children(self, folder: str) -> list:
        prefix = _key(folder) + "/" if folder else ""
        depth = prefix.count("/")
        return sorted((j for k, j in self._jobs.items()
                       if k.startswith(prefix) and k.count("/") == depth),
                      key=lambda j: j.name.lower())

    def _root_json(self, deep: bool) -> dict:
        return {
            "_class": "hudson.model.Hudson", "assignedLabels": [{"name": "built-in"}],
            "mode": "NORMAL", "nodeDescription": "the Jenkins controller's built-in node",
            "nodeName": "", "numExecutors": 2, "description": None,
            "jobs": [self._job_summary(j, deep) for j in self._children("")],
            "primaryView": {"_class": "hudson.model.AllView", "name": "all", "url": self.url},
            "quietingDown": False, "slaveAgentPort": -1, "url": self.url,
            "useCrumbs": self.crumbs, "useSecurity": True,
            "views": [{"_class": "hudson.model.AllView", "name": "all", "url": self.url}],
        }

    def _build_ref(self, build: _Build | None) -> dict | None:
        if build is None:
            return None
        return {"_class": build.job.run_class, "number": build.number, "url": self._build_url(build)}

    def _job_json(self, job: _Job, deep: bool) -> dict:
        base = {
            "_class": job.job_class, "actions": [], "description": job.description,
            "displayName": job.short_name, "displayNameOrNull": None,
            "fullDisplayName": job.name.replace("/", " \u00bb "), "fullName": job.name,
            "name": job.short_name, "url": self._job_url(job.name),
        }
        if job.is_folder:
            base.update({"healthReport": [], "jobs": [self._job_summary(c, deep)
                                                      for c in self._children(job.name)],
                         "primaryView": {"_class": "hudson.model.AllView", "name": "All",
                                         "url": self._job_url(job.name)},
                         "views": [{"_class": "hudson.model.AllView", "name": "All",
                                    "url": self._job_url(job.name)}]})
            return base
        builds = [b for _, b in sorted(job.builds.items(), reverse=True)]
        done = [b for b in builds if not b.building]

        def first(pred):
            return self._build_ref(next((b for b in done if pred(b)), None))

        queued = [i for i in self._queue.values() if i.job is job and i.state == "waiting"]
        prop = []
        if job.params:
            prop.append({"_class": "hudson.model.ParametersDefinitionProperty",
                         "parameterDefinitions": [_param_def_json(p) for p in job.params]})
        base.update({
            "buildable": not job.disabled,
            "builds": [self._build_ref(b) for b in builds[:100]],
            "allBuilds": [self._build_ref(b) for b in builds],
            "color": self._color(job),
            "firstBuild": self._build_ref(builds[-1] if builds else None),
            "healthReport": [], "inQueue": bool(queued), "keepDependencies": False,
            "lastBuild": self._build_ref(builds[0] if builds else None),
            "lastCompletedBuild": first(lambda b: True),
            "lastFailedBuild": first(lambda b: b.result == "FAILURE"),
            "lastStableBuild": first(lambda b: b.result == "SUCCESS"),
            "lastSuccessfulBuild": first(lambda b: b.result in ("SUCCESS", "UNSTABLE")),
            "lastUnstableBuild": first(lambda b: b.result == "UNSTABLE"),
            "lastUnsuccessfulBuild": first(lambda b: b.result != "SUCCESS"),
            "nextBuildNumber": job.next_build_number,
            "property": prop,
            "queueItem": self._queue_json(queued[0]) if queued else None,
            "concurrentBuild": True, "disabled": job.disabled, "resumeBlocked": False,
        })
        return base

    # ---- queue and builds -----------------------------------------------------------------

    def _param_values(self, job: _Job, values: dict) -> tuple | None:
        """The parameters Jenkins keeps: declared ones only, defaults for absent ones."""
        if not job.params:
            return None
        out = []
        for p in job.params:
            given = values.get(p.name)
            if given is None:
                value = p.default
            elif len(given) != 1:
                raise _HttpError(500, f"Illegal number of parameter values for {p.name}: "
                                      f"{len(given)}")
            elif p.kind == "hudson.model.BooleanParameterDefinition":
                value = given[0].lower() == "true"
            else:
                value = given[0]
                if p.choices and value not in p.choices:
                    raise _HttpError(500, f"Illegal choice for parameter {p.name}: {value}")
            out.append((p.name, value))
        return tuple(out)

    # The two trigger endpoints, as jenkinsci/jenkins answers them (read at commit ff9430ee1dc6, 2.578+; the same
    # in 2.568.2 LTS): ParameterizedJobMixIn.doBuild / doBuildWithParameters, ParametersDefinitionProperty._doBuild /
    # buildWithParameters, BuildAuthorizationToken.checkPermission, Queue.schedule2. Redirects carry an absolute
    # Location (stapler ResponseImpl.sendRedirect(int, String)).

    def _build(self, method: str, job: _Job, qs: dict, form: dict) -> _Response:
        """``doBuild``: 409 for a job that is not buildable; on a parameterized job a GET shows the parameter form
        and a POST is the form's submission (``_doBuild``); otherwise POST only, and always 201 with the queue item,
        merged or not (``// TODO JENKINS-66105 use SC_SEE_OTHER if !ScheduleResult.created``)."""
        if job.disabled:
            raise _HttpError(409, f"{job.name} is not buildable")
        if job.params and method != "POST":
            return _Response(200, f"<html><title>{html.escape(job.name)} [Jenkins]</title></html>".encode(),
                             "text/html;charset=utf-8")
        self._require_build_post(method)
        if job.params:
            return self._submit_parameter_form(job, qs, form)
        item, _ = self._enqueue(job, None)
        return _Response(201, headers={"Location": f"{self.url}queue/item/{item.id}/"})

    def _build_with_parameters(self, method: str, job: _Job, qs: dict, form: dict) -> _Response:
        """``doBuildWithParameters``: POST only, then 409 for a job that is not buildable, 400 ``<full name> is not
        parameterized`` for a job without parameters (since 2.524, commit 521ecfdbfc35; before it an
        IllegalStateException, i.e. 500); then 201 for a new queue item and 303 See Other naming the waiting item an
        identical request was merged into (``!ScheduleResult.isCreated()``)."""
        self._require_build_post(method)
        if job.disabled:
            raise _HttpError(409, f"{job.name} is not buildable")
        if not job.params:
            raise _HttpError(400, f"{job.name} is not parameterized")
        values = {k: v for k, v in qs.items()}
        for k, v in form.items():
            values.setdefault(k, v)
        item, created = self._enqueue(job, self._param_values(job, values))
        return _Response(201 if created else 303, headers={"Location": f"{self.url}queue/item/{item.id}/"})

    @staticmethod
    def _require_build_post(method: str) -> None:
        if method != "POST":  # BuildAuthorizationToken.checkPermission
            raise _HttpError(405, "Method Not Allowed", {"Allow": "POST"})

    def _submit_parameter_form(self, job: _Job, qs: dict, form: dict) -> _Response:
        """``ParametersDefinitionProperty._doBuild``: the UI's form, a ``json`` field ``{"parameter": [{"name",
        "value"}, …]}`` (stapler ``RequestImpl.getSubmittedForm``: without it 400 ``Nothing is submitted``, or ``This
        page expects a form submission`` when other fields came). Only the submitted parameters are kept; an unknown
        name is an IllegalArgumentException (500). ``Queue.schedule`` returns no item for a merged request, and the
        answer is then a 302 to the job's page; a new item gets 201 (or the form's ``statusCode``)."""
        submitted = (form.get("json") or qs.get("json") or [""])[0]
        if not submitted:
            given = {k for k in (*qs, *form) if k != CRUMB_FIELD}
            raise _HttpError(400, "This page expects a form submission" if given else "Nothing is submitted")
        try:
            data = json.loads(submitted)
        except ValueError:
            raise _HttpError(500, f"Failed to parse JSON:{submitted}") from None
        entries = data.get("parameter") or [] if isinstance(data, dict) else []
        values = []
        for entry in entries if isinstance(entries, list) else [entries]:
            definition = next((p for p in job.params if p.name == entry.get("name")), None)
            if definition is None:
                raise _HttpError(500, f"No such parameter definition: {entry.get('name')}")
            values.append((definition.name, self._form_value(definition, entry.get("value"))))
        item, created = self._enqueue(job, tuple(values))
        if not created:
            return _Response(302, headers={"Location": self._job_url(job.name)})
        return _Response(int(data.get("statusCode", 201)), headers={"Location": f"{self.url}queue/item/{item.id}/"})

    @staticmethod
    def _form_value(definition: _ParamDef, value) -> object:
        if definition.kind == "hudson.model.BooleanParameterDefinition":
            return value is True or str(value).lower() == "true"
        if definition.choices and value not in definition.choices:
            raise _HttpError(500, f"Illegal choice for parameter {definition.name}: {value}")
        return "" if value is None else str(value)

    def _enqueue(self, job: _Job, params: tuple | None) -> tuple[_QueueItem, bool]:
        """``(item, created)``; an identical waiting request is folded into the queued item
        (Queue.schedule2 -> ScheduleResult.existing, Queue.java)."""
        for item in self._queue.values():
            if item.job is job and item.state == "waiting" and _same_parameters(item.params, params):
                item.causes += 1
                return item, False
        key = _key(job.name)
        pending = self._scenario_queue.get(key)
        scenario = pending.popleft() if pending else self._scenarios.get(key, Scenario())
        item = _QueueItem(id=next(self._queue_ids), job=job, params=params, scenario=scenario,
                          since_ms=int(time.time() * 1000))
        self._queue[item.id] = item
        if scenario.queue_polls <= 0:
            self._leave_queue(item)
        return item, True

    def _leave_queue(self, item: _QueueItem) -> None:
        if item.scenario.cancel_in_queue:
            item.state = "cancelled"
        else:
            self._start_build(item)

    def _start_build(self, item: _QueueItem) -> _Build:
        job = item.job
        self._run_declarative(job)
        if job.branch is None and job.root_tag == "flow-definition":
            job.revision = self._branch_revision(job)  # what the build checked out, for SCM polling
        number = job.next_build_number
        job.next_build_number += 1
        lines = [f"Started by user {self.user}", *item.scenario.console]
        build = _Build(job=job, number=number, params=item.params, scenario=item.scenario,
                       queue_id=item.id, timestamp_ms=int(time.time() * 1000), lines=lines)
        job.builds[number] = build
        item.state = "left"
        item.build = build
        return build

    def _index(self, project: _Job) -> None:
        """Branch indexing (branch-api MultiBranchProject.computeChildren): a branch job per branch whose tree
        has the factory's scriptPath (WorkflowBranchProjectFactory's SCMSourceCriteria); new and changed
        branches are built (BranchIndexingCause); dead branches are deleted when pruneDeadBranches is on
        (DefaultOrphanedItemStrategy)."""
        project.scans += 1
        root = ET.fromstring(project.config)
        source = next(root.iter("source"), None)
        remote = (source.findtext("remote") or "").strip() if source is not None else ""
        source_id = (source.findtext("id") or "").strip() if source is not None else ""
        script = (root.findtext("factory/scriptPath") or "Jenkinsfile").strip()
        branches = {b: f for b, f in self._repositories.get(remote, {}).items() if script in f}
        for branch, files in sorted(branches.items()):
            full = f"{project.name}/{_branch_item_name(branch)}"
            child = self._find(full) or self._store_new(full, _branch_job_config(source_id, branch, script))
            child.branch = branch
            revision = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()
            if child.revision != revision:
                child.revision = revision
                self._enqueue(child, self._param_values(child, {}))
        if (root.findtext("orphanedItemStrategy/pruneDeadBranches") or "true").strip() == "true":
            live = {_key(f"{project.name}/{_branch_item_name(b)}") for b in branches}
            for key in [k for k in self._jobs if k.startswith(_key(project.name) + "/") and k not in live]:
                del self._jobs[key]

    def _script_for(self, job: _Job) -> str | None:
        """The Jenkinsfile a build of ``job`` runs: inline (CpsFlowDefinition), from the job's Git SCM
        (CpsScmFlowDefinition: branch spec ``*/b``), or the branch's file (SCMBinder); None when unknown."""
        root = ET.fromstring(job.config)
        definition = root.find("definition")
        kind = definition.get("class", "") if definition is not None else ""
        if kind.endswith("CpsFlowDefinition"):
            return definition.findtext("script")
        if kind.endswith("CpsScmFlowDefinition"):
            url = (definition.findtext(".//hudson.plugins.git.UserRemoteConfig/url") or "").strip()
            spec = (definition.findtext(".//hudson.plugins.git.BranchSpec/name") or "").strip()
            branch = spec.split("/", 1)[1] if spec.startswith("*/") else spec
            path = (definition.findtext("scriptPath") or "Jenkinsfile").strip()
            return self._repositories.get(url, {}).get(branch, {}).get(path)
        if kind.endswith("SCMBinder") and job.branch is not None:
            project = self._find(job.name.rpartition("/")[0])
            project_root = ET.fromstring(project.config) if project is not None else None
            source = next(project_root.iter("source"), None) if project_root is not None else None
            url = (source.findtext("remote") or "").strip() if source is not None else ""
            path = (definition.findtext("scriptPath") or "Jenkinsfile").strip()
            return self._repositories.get(url, {}).get(job.branch, {}).get(path)
        return None

    def _notify_commit(self, qs: dict) -> _Response:
        """git-plugin GitStatus.doNotifyCommit: jobs whose GitSCM remote loosely matches ``url`` and that have
        an SCMTrigger (not ignoring post-commit hooks) are polled, or built when ``sha1`` is given; other jobs
        are ignored. Multibranch projects whose GitSCMSource remote matches re-index (GitSCMSource's listener
        fires an SCM event that branch-api handles). Polling builds when the branch changed since the last
        build. Not modelled: the notifyCommit access token newer git plugins can require."""
        url = (qs.get("url") or [""])[0]
        branches = [b for b in (qs.get("branches") or [""])[0].split(",") if b]
        sha1 = (qs.get("sha1") or [""])[0]
        lines, scm_found, url_found = [], False, False
        for job in sorted(self._jobs.values(), key=lambda j: j.name.lower()):
            root = ET.fromstring(job.config)
            if job.is_multibranch:
                source = next(root.iter("source"), None)
                if source is not None and _loosely_matches(url, source.findtext("remote") or ""):
                    self._index(job)
                continue
            definition = root.find("definition")
            remote = (definition.findtext(".//hudson.plugins.git.UserRemoteConfig/url")
                      if definition is not None else None)
            if remote is None:
                continue
            scm_found = True
            if not _loosely_matches(url, remote):
                continue
            trigger = root.find(f".//{_PTJP}/triggers/hudson.triggers.SCMTrigger")
            if trigger is None or (trigger.findtext("ignorePostCommitHooks") or "").strip() == "true":
                continue
            specs = [(e.findtext("name") or "").strip() for e in root.iter("hudson.plugins.git.BranchSpec")]
            if branches and not any(spec in (f"*/{b}", b, f"origin/{b}", "**") for spec in specs for b in branches):
                continue
            url_found = True
            if job.disabled:
                continue
            if sha1:
                self._enqueue(job, self._param_values(job, {}))
                lines.append(f"Scheduled {job.name}")
            else:
                if self._branch_revision(job) != job.revision:
                    self._enqueue(job, self._param_values(job, {}))
                lines.append(f"Scheduled polling of {job.name.replace('/', ' » ')}")
        if not scm_found and not lines:
            lines.append("No git jobs found")
        elif not url_found and not lines:
            lines.append(f"No git jobs using repository: {url} and branches: {','.join(branches)}")
        return _Response(200, ("\n".join(lines) + "\n").encode("utf-8"), "text/plain;charset=utf-8")

    def _branch_revision(self, job: _Job) -> str | None:
        """The head of the branch a single-branch SCM job builds, as polling sees it."""
        root = ET.fromstring(job.config)
        url = (root.findtext(".//hudson.plugins.git.UserRemoteConfig/url") or "").strip()
        spec = (root.findtext(".//hudson.plugins.git.BranchSpec/name") or "").strip()
        files = self._repositories.get(url, {}).get(spec.split("/", 1)[1] if spec.startswith("*/") else spec)
        return hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest() if files else None

    def _run_declarative(self, job: _Job) -> None:
        """A declarative build rewrites its job's properties when it starts (Utils.updateJobProperties)."""
        if job.root_tag != "flow-definition":
            return
        script = self._script_for(job)
        if not script or not _pipeline_sections(script):
            return
        root = ET.fromstring(job.config)
        job.declared = update_job_properties(root, declared_job_properties(script), job.declared)
        job.config = "<?xml version='1.1' encoding='UTF-8'?>\n" + ET.tostring(root, "unicode")
        job.params = _param_defs(root)

    def _poll_queue_item(self, item: _QueueItem) -> None:
        item.polls += 1
        sc = item.scenario
        if item.state == "waiting" and item.polls > sc.queue_polls:
            self._leave_queue(item)
        if sc.queue_expires_after is not None and item.polls > sc.queue_expires_after:
            if item.state == "waiting":
                self._start_build(item)
            item.forgotten = True

    def _poll_build(self, build: _Build) -> None:
        if not build.building:
            return
        build.polls += 1
        total = build.scenario.build_polls
        body = len(build.lines) - 1
        if build.polls > total:
            build.visible = len(build.lines)
            build.result = build.scenario.result
        else:
            build.visible = max(build.visible, 1 + math.floor(body * build.polls / (total + 1)))

    def _resolve_build(self, job: _Job, token: str) -> _Build:
        if token.isdigit():
            build = job.builds.get(int(token))
        elif token in _PERMALINKS:
            builds = [b for _, b in sorted(job.builds.items(), reverse=True)]
            done = [b for b in builds if not b.building]
            pick = {
                "lastBuild": builds[:1], "firstBuild": builds[-1:], "lastCompletedBuild": done,
                "lastSuccessfulBuild": [b for b in done if b.result in ("SUCCESS", "UNSTABLE")],
                "lastStableBuild": [b for b in done if b.result == "SUCCESS"],
                "lastUnstableBuild": [b for b in done if b.result == "UNSTABLE"],
                "lastFailedBuild": [b for b in done if b.result == "FAILURE"],
                "lastUnsuccessfulBuild": [b for b in done if b.result != "SUCCESS"],
            }[token]
            build = pick[0] if pick else None
        else:
            build = None
        if build is None:
            raise _HttpError(404, "Not Found")
        return build

    def _params_action(self, job: _Job, params: tuple | None) -> dict:
        if params is None:
            return {}
        kinds = {p.name: p.kind for p in job.params}
        values = []
        for name, value in params:
            cls = _PARAM_VALUE_CLASSES.get(kinds.get(name), "hudson.model.StringParameterValue")
            entry = {"_class": cls, "name": name}
            if cls != "hudson.model.PasswordParameterValue":
                entry["value"] = value
            values.append(entry)
        return {"_class": "hudson.model.ParametersAction", "parameters": values}

    def _cause_action(self, count: int = 1) -> dict:
        return {"_class": "hudson.model.CauseAction", "causes": [
            {"_class": "hudson.model.Cause$UserIdCause",
             "shortDescription": f"Started by user {self.user}", "userId": self.user,
             "userName": self.user}] * count}

    def _queue_json(self, item: _QueueItem) -> dict:
        job = item.job
        data = {
            "_class": "hudson.model.Queue$BuildableItem",
            "actions": [a for a in (self._params_action(job, item.params),
                                    self._cause_action(item.causes)) if a],
            "blocked": False, "buildable": True, "id": item.id, "inQueueSince": item.since_ms,
            "params": "".join(f"\n{k}={v}" for k, v in item.params or ()),
            "stuck": False,
            "task": {"_class": job.job_class, "name": job.short_name,
                     "url": self._job_url(job.name), "color": self._color(job)},
            "url": f"queue/item/{item.id}/", "why": item.scenario.why,
            "buildableStartMilliseconds": item.since_ms,
        }
        if item.state != "waiting":
            data.update({"_class": "hudson.model.Queue$LeftItem", "buildable": False,
                         "why": None, "cancelled": item.state == "cancelled",
                         "executable": None})
            if item.build is not None:
                data["executable"] = self._build_ref(item.build)
        return data

    def _build_json(self, build: _Build) -> dict:
        job = build.job
        prev = max((n for n in job.builds if n < build.number), default=None)
        nxt = min((n for n in job.builds if n > build.number), default=None)
        return {
            "_class": job.run_class,
            "actions": [a for a in (self._params_action(job, build.params),
                                    self._cause_action()) if a],
            "artifacts": [], "building": build.building, "description": None,
            "displayName": f"#{build.number}",
            "duration": 0 if build.building else build.scenario.duration_ms,
            "estimatedDuration": build.scenario.duration_ms, "executor": None,
            "fullDisplayName": f"{job.name.replace('/', ' » ')} #{build.number}",
            "id": str(build.number), "keepLog": False, "number": build.number,
            "queueId": build.queue_id, "result": build.result,
            "timestamp": build.timestamp_ms, "url": self._build_url(build),
            "changeSets": [], "culprits": [], "inProgress": build.building,
            "nextBuild": self._build_ref(job.builds.get(nxt)) if nxt else None,
            "previousBuild": self._build_ref(job.builds.get(prev)) if prev else None,
        }

    def _build_snapshot(self, b: _Build) -> dict:
        return {"number": b.number, "result": b.result, "building": b.building,
                "params": dict(b.params or ()), "console": b.text(),
                "full_console": "".join(line + "\n" for line in b.lines)
                + (f"Finished: {b.result or b.scenario.result}\n"),
                "queue_id": b.queue_id, "polls": b.polls}


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------

class _HttpError(Exception):
    def __init__(self, status: int, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


def _same_parameters(queued: tuple | None, requested: tuple | None) -> bool:
    """ParametersAction.shouldSchedule: a request is a duplicate when its parameter values equal, as a set, those of
    the queued item."""
    return set(queued or ()) == set(requested or ())


def _key(full_name: str) -> str:
    return full_name.lower()


def _error_page(status: int, message: str, uri: str) -> str:
    """Jenkins' (Jetty's) HTML error page. Shows the path, never the query string."""
    m, u = html.escape(message), html.escape(uri)
    return ("<html>\n<head>\n<meta http-equiv=\"Content-Type\" content=\"text/html;charset=utf-8\"/>\n"
            f"<title>Error {status} {m}</title>\n</head>\n<body><h2>HTTP ERROR {status} {m}</h2>\n"
            f"<table>\n<tr><th>URI:</th><td>{u}</td></tr>\n<tr><th>STATUS:</th><td>{status}"
            f"</td></tr>\n<tr><th>MESSAGE:</th><td>{m}</td></tr>\n"
            "<tr><th>SERVLET:</th><td>Stapler</td></tr>\n</table>\n<hr/>"
            "<a href=\"https://eclipse.org/jetty\">Powered by Jetty:// 10.0.20</a><hr/>\n\n"
            "</body>\n</html>\n")


def _html_error(status: int, message: str, uri: str, headers: dict | None = None) -> _Response:
    return _Response(status, _error_page(status, message, uri).encode("utf-8"),
                     "text/html;charset=utf-8", dict(headers or {}))


def _bad_name(name: str) -> str | None:
    """Jenkins.checkGoodName."""
    if not name or not name.strip():
        return "No name is specified"
    if name in (".", ".."):
        return f"\u201c{name}\u201d is not an allowed name"
    if name.endswith("."):  # Jenkins.checkGoodName, SECURITY-2424 (Messages: Hudson.TrailingDot)
        return "A name cannot end with \u2018.\u2019"
    for ch in name:
        if ch in _UNSAFE_NAME_CHARS or ord(ch) < 32:
            return f"\u2018{ch}\u2019 is an unsafe character"
    return None


def _parse_form(content_type: str, body: bytes) -> dict:
    if not body:
        return {}
    ctype = content_type.lower()
    if ctype.startswith("application/x-www-form-urlencoded"):
        return parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    if ctype.startswith("multipart/form-data"):
        msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body)
        out: dict = {}
        for part in msg.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if name:
                payload = part.get_payload(decode=True) or b""
                out.setdefault(name, []).append(payload.decode("utf-8", "replace"))
        return out
    return {}


def _empty_config(root_tag: str) -> bytes:
    if root_tag == _FOLDER_CLASS:
        return (f"<?xml version='1.1' encoding='UTF-8'?>\n<{_FOLDER_CLASS}>\n  <actions/>\n"
                f"  <description></description>\n  <properties/>\n</{_FOLDER_CLASS}>").encode()
    return (f"<?xml version='1.1' encoding='UTF-8'?>\n<{root_tag}>\n  <description></description>\n"
            f"  <keepDependencies>false</keepDependencies>\n  <properties/>\n"
            f"  <disabled>false</disabled>\n</{root_tag}>").encode()


def pipeline_config(params: dict | None = None, script: str | None = None) -> str:
    """A minimal sandboxed Pipeline job config.xml declaring ``params`` ({name: default})."""
    root = ET.Element("flow-definition", {"plugin": "workflow-job"})
    ET.SubElement(root, "description").text = "created by the Jenkins emulator"
    ET.SubElement(root, "keepDependencies").text = "false"
    props = ET.SubElement(root, "properties")
    if params:
        pdp = ET.SubElement(props, "hudson.model.ParametersDefinitionProperty")
        defs = ET.SubElement(pdp, "parameterDefinitions")
        for name, default in params.items():
            kind = ("hudson.model.BooleanParameterDefinition" if isinstance(default, bool)
                    else "hudson.model.StringParameterDefinition")
            d = ET.SubElement(defs, kind)
            ET.SubElement(d, "name").text = name
            ET.SubElement(d, "description").text = ""
            ET.SubElement(d, "defaultValue").text = (str(default).lower()
                                                     if isinstance(default, bool) else
                                                     str(default))
    definition = ET.SubElement(root, "definition", {
        "class": "org.jenkinsci.plugins.workflow.cps.CpsFlowDefinition", "plugin": "workflow-cps"})
    ET.SubElement(definition, "script").text = script or (
        "pipeline {\n  agent any\n  stages {\n    stage('x') {\n      steps { echo 'x' }\n"
        "    }\n  }\n}\n")
    ET.SubElement(definition, "sandbox").text = "true"
    ET.SubElement(root, "triggers")
    ET.SubElement(root, "disabled").text = "false"
    return "<?xml version='1.1' encoding='UTF-8'?>\n" + ET.tostring(root, "unicode")


def _param_defs(root: ET.Element) -> list:
    defs_el = next(root.iter("parameterDefinitions"), None)
    if defs_el is None:
        return []
    out = []
    for d in defs_el:
        name = (d.findtext("name") or "").strip()
        if not name:
            continue
        choices = tuple(s.text or "" for s in d.iter("string"))
        default: object = d.findtext("defaultValue")
        if d.tag == "hudson.model.BooleanParameterDefinition":
            default = (default or "").strip() == "true"
        elif d.tag == "hudson.model.ChoiceParameterDefinition":
            default = choices[0] if choices else ""
        elif default is None:
            default = ""
        out.append(_ParamDef(name, d.tag, default, choices, d.findtext("description") or ""))
    return out


def _param_def_json(p: _ParamDef) -> dict:
    kind = p.kind.rsplit(".", 1)[-1]
    value_class = _PARAM_VALUE_CLASSES.get(p.kind, "hudson.model.StringParameterValue")
    default = {"_class": value_class, "name": p.name}
    if value_class != "hudson.model.PasswordParameterValue":
        default["value"] = p.default
    data = {"_class": p.kind, "defaultParameterValue": default, "description": p.description,
            "name": p.name, "type": kind}
    if p.choices:
        data["choices"] = list(p.choices)
    return data


# ---- what XStream keeps of a posted config.xml ---------------------------------------------------------------
#
# AbstractItem.doConfigDotXml / updateByXml (jenkinsci/jenkins AbstractItem.java) unmarshal the posted XML onto
# the item through XStream and save it again: elements that are no field of the item's class (or of an
# installed plugin's class) are dropped, so GET config.xml never returns them. Modelled per item class for the
# top-level fields and the job property classes of the plugins in docker/jenkins/plugins.txt; deeper elements
# are kept as posted.

_MULTIBRANCH_CLASS = "org.jenkinsci.plugins.workflow.multibranch.WorkflowMultiBranchProject"
_KNOWN_FIELDS = {
    # WorkflowJob (workflow-job) and its Job/AbstractItem fields
    "flow-definition": {"actions", "description", "displayName", "keepDependencies", "properties", "definition",
                        "triggers", "concurrentBuild", "quietPeriod", "authToken", "disabled", "resumeBlocked"},
    # WorkflowMultiBranchProject -> MultiBranchProject (branch-api) -> ComputedFolder/AbstractFolder
    _MULTIBRANCH_CLASS: {"actions", "description", "displayName", "properties", "folderViews", "healthMetrics",
                         "icon", "orphanedItemStrategy", "triggers", "disabled", "sources", "factory"},
    # Folder (cloudbees-folder)
    "com.cloudbees.hudson.plugins.folder.Folder": {"actions", "description", "displayName", "properties",
                                                   "folderViews", "healthMetrics", "icon"},
}
_KNOWN_JOB_PROPERTIES = {
    "hudson.model.ParametersDefinitionProperty",
    "org.jenkinsci.plugins.workflow.job.properties.PipelineTriggersJobProperty",
    "jenkins.model.BuildDiscarderProperty",
    "org.jenkinsci.plugins.workflow.job.properties.DisableConcurrentBuildsJobProperty",
    "org.jenkinsci.plugins.workflow.job.properties.DisableResumeJobProperty",
    "org.jenkinsci.plugins.workflow.job.properties.DurabilityHintJobProperty",
    "org.jenkinsci.plugins.workflow.multibranch.BranchJobProperty",
    "com.cloudbees.hudson.plugins.folder.properties.FolderCredentialsProvider$FolderCredentialsProperty",
}


def _drop_unknown_fields(root: ET.Element) -> None:
    known = _KNOWN_FIELDS.get(root.tag)
    if known is None:
        return
    for child in list(root):
        if child.tag not in known:
            root.remove(child)
    properties = root.find("properties")
    if properties is not None and root.tag == "flow-definition":
        for prop in list(properties):
            if prop.tag not in _KNOWN_JOB_PROPERTIES:
                properties.remove(prop)


def _branch_job_config(source_id: str, branch: str, script_path: str) -> bytes:
    """A branch job as WorkflowBranchProjectFactory creates it: the branch property and SCMBinder,
    which reads the Jenkinsfile of that branch (workflow-multibranch SCMBinder.java)."""
    root = ET.Element("flow-definition", {"plugin": "workflow-job"})
    ET.SubElement(root, "actions")
    ET.SubElement(root, "description")
    ET.SubElement(root, "keepDependencies").text = "false"
    props = ET.SubElement(root, "properties")
    prop = ET.SubElement(props, "org.jenkinsci.plugins.workflow.multibranch.BranchJobProperty",
                         {"plugin": "workflow-multibranch"})
    holder = ET.SubElement(prop, "branch", {"plugin": "branch-api"})
    ET.SubElement(holder, "sourceId").text = source_id
    head = ET.SubElement(holder, "head", {"class": "jenkins.plugins.git.GitBranchSCMHead", "plugin": "git"})
    ET.SubElement(head, "name").text = branch
    definition = ET.SubElement(root, "definition", {
        "class": "org.jenkinsci.plugins.workflow.multibranch.SCMBinder", "plugin": "workflow-multibranch"})
    ET.SubElement(definition, "scriptPath").text = script_path
    ET.SubElement(root, "triggers")
    ET.SubElement(root, "disabled").text = "false"
    return ("<?xml version='1.1' encoding='UTF-8'?>\n" + ET.tostring(root, "unicode")).encode("utf-8")


def _loosely_matches(left: str, right: str) -> bool:
    """GitStatus.looselyMatches: same host and same path, ignoring leading/trailing '/' and '.git'."""
    def parts(url: str) -> tuple[str, str]:
        split = urlsplit(url.strip()) if "://" in url else urlsplit("ssh://" + url.strip().replace(":", "/", 1))
        path = split.path.strip("/")
        return (split.hostname or ""), (path[:-4] if path.endswith(".git") else path)
    return parts(left) == parts(right)


def _branch_item_name(branch: str) -> str:
    """branch-api NameEncoder: characters not allowed in item names are %-encoded ('/' -> %2F)."""
    return "".join(f"%{ord(c):02X}" if c in _UNSAFE_NAME_CHARS or c == "%" else c for c in branch)


# ---- declarative: what a Jenkinsfile declares, and what its first build writes into the job ----------------
#
# pipeline-model-definition ``Utils.updateJobProperties`` (Utils.groovy) runs when a declarative build starts:
# it replaces same-named parameters, same-class triggers and same-class job properties with the declared ones,
# keeps what it did not declare before (DeclarativeJobPropertyTrackerAction), and re-adds the properties in the
# order: PipelineTriggersJobProperty, ParametersDefinitionProperty, then the other job properties.

_PDP = "hudson.model.ParametersDefinitionProperty"
_PTJP = "org.jenkinsci.plugins.workflow.job.properties.PipelineTriggersJobProperty"
_PARAMETER_CLASSES = {  # declarative symbol -> ParameterDefinition class (@Symbol of each descriptor)
    "string": "hudson.model.StringParameterDefinition", "text": "hudson.model.TextParameterDefinition",
    "booleanParam": "hudson.model.BooleanParameterDefinition",
    "choice": "hudson.model.ChoiceParameterDefinition", "password": "hudson.model.PasswordParameterDefinition",
}
_TRIGGER_CLASSES = {"cron": "hudson.triggers.TimerTrigger", "pollSCM": "hudson.triggers.SCMTrigger",
                    "upstream": "jenkins.triggers.ReverseBuildTrigger"}
_OPTION_PROPERTIES = {  # options {} entries that are JobProperties (the rest are wrappers/declarative options)
    "buildDiscarder": "jenkins.model.BuildDiscarderProperty",
    "disableConcurrentBuilds": "org.jenkinsci.plugins.workflow.job.properties.DisableConcurrentBuildsJobProperty",
    "disableResume": "org.jenkinsci.plugins.workflow.job.properties.DisableResumeJobProperty",
    "durabilityHint": "org.jenkinsci.plugins.workflow.job.properties.DurabilityHintJobProperty",
}
_TOKEN = re.compile(r"""(?P<ws>\s+)|(?P<comment>//[^\n]*|/\*.*?\*/)"""  # noqa: ISC003
                    r"""|(?P<str>'''.*?'''|\"\"\".*?\"\"\"|'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*")"""
                    r"""|(?P<num>\d+(?:\.\d+)?)|(?P<id>[A-Za-z_$][A-Za-z0-9_$]*)|(?P<punct>.)""", re.S)


@dataclass
class _Call:
    name: str
    args: list  # positional values
    named: dict  # key -> value; values: str, bool, int, list, or _Call
    offset: int


def _groovy_tokens(source: str) -> list:
    out = []
    for m in _TOKEN.finditer(source):
        kind = m.lastgroup
        if kind in ("ws", "comment"):
            continue
        text = m.group()
        if kind == "str":
            quote_len = 3 if text[:3] in ("'''", '"""') else 1
            text = re.sub(r"\\(.)", r"\1", text[quote_len:-quote_len])
        out.append((kind, text, m.start()))
    return out


class _CallParser:
    """Method calls with literal arguments, the subset of Groovy that declarative sections use."""

    def __init__(self, tokens: list, pos: int = 0):
        self.tokens, self.pos = tokens, pos

    def peek(self, ahead: int = 0):
        i = self.pos + ahead
        return self.tokens[i] if i < len(self.tokens) else ("eof", "", -1)

    def take(self):
        token = self.peek()
        self.pos += 1
        return token

    def value(self):
        kind, text, offset = self.take()
        if kind == "str":
            return text
        if kind == "num":
            return int(text) if text.isdigit() else float(text)
        if kind == "id" and text in ("true", "false"):
            return text == "true"
        if kind == "id" and self.peek()[1] == "(":
            return self.call(text, offset)
        if kind == "punct" and text == "[":
            items = []
            while self.peek()[1] != "]" and self.peek()[0] != "eof":
                items.append(self.value())
                if self.peek()[1] == ",":
                    self.take()
            self.take()
            return items
        return ("expr", text)

    def call(self, name: str, offset: int) -> _Call:
        self.take()  # (
        call = _Call(name, [], {}, offset)
        while self.peek()[1] != ")" and self.peek()[0] != "eof":
            if self.peek()[0] in ("id", "str") and self.peek(1)[1] == ":":
                key = self.take()[1]
                self.take()
                call.named[key] = self.value()
            else:
                call.args.append(self.value())
            if self.peek()[1] == ",":
                self.take()
        self.take()  # )
        return call


def _pipeline_sections(source: str) -> dict:
    """``{section name: [tokens of its body]}`` for the blocks directly inside ``pipeline { }``."""
    tokens = _groovy_tokens(source)
    start = next((i for i, t in enumerate(tokens[:-1]) if t[1] == "pipeline" and tokens[i + 1][1] == "{"), None)
    if start is None:
        return {}
    sections, depth, i = {}, 0, start + 1
    while i < len(tokens):
        kind, text, _ = tokens[i]
        if text in ("{", "(", "["):
            depth += 1
        elif text in ("}", ")", "]"):
            depth -= 1
            if depth == 0:
                break
        elif depth == 1 and kind == "id" and i + 1 < len(tokens) and tokens[i + 1][1] == "{":
            body, level, j = [], 0, i + 1
            while j < len(tokens):
                if tokens[j][1] == "{":
                    level += 1
                elif tokens[j][1] == "}":
                    level -= 1
                    if level == 0:
                        break
                body.append(tokens[j])
                j += 1
            sections[text] = body[1:]
        i += 1
    return sections


def _section_calls(tokens: list) -> list:
    """Top-level calls of a section body: ``name(args)`` or ``name`` alone."""
    parser, calls = _CallParser(tokens), []
    while parser.peek()[0] != "eof":
        kind, text, offset = parser.take()
        if kind != "id":
            continue
        if parser.peek()[1] == "(":
            calls.append(parser.call(text, offset))
        else:
            calls.append(_Call(text, [], {}, offset))
    return calls


def declared_job_properties(jenkinsfile: str) -> tuple[list, list, list]:
    """``(parameter elements, trigger elements, job property elements)`` as the first build stores them."""
    sections = _pipeline_sections(jenkinsfile)
    parameters = [p for c in _section_calls(sections.get("parameters", [])) if (p := _parameter_xml(c)) is not None]
    triggers = [t for c in _section_calls(sections.get("triggers", [])) if (t := _trigger_xml(c)) is not None]
    options = [o for c in _section_calls(sections.get("options", [])) if (o := _option_xml(c)) is not None]
    return parameters, triggers, options


def _sub(parent: ET.Element, tag: str, text) -> None:
    ET.SubElement(parent, tag).text = str(text).lower() if isinstance(text, bool) else str(text)


def _parameter_xml(call: _Call) -> ET.Element | None:
    cls = _PARAMETER_CLASSES.get(call.name)
    if cls is None or "name" not in call.named:
        return None
    element = ET.Element(cls)
    _sub(element, "name", call.named["name"])
    if call.named.get("description"):  # ParameterDefinition keeps null for an empty description
        _sub(element, "description", call.named["description"])
    default = call.named.get("defaultValue")
    if call.name == "booleanParam":
        _sub(element, "defaultValue", bool(default))
    elif call.name == "choice":
        choices = call.named.get("choices") or []
        choices = choices.split("\n") if isinstance(choices, str) else choices
        holder = ET.SubElement(element, "choices", {"class": "java.util.Arrays$ArrayList"})
        array = ET.SubElement(holder, "a", {"class": "string-array"})
        for choice in choices:
            _sub(array, "string", choice)
    elif default not in (None, ""):
        # StringParameterDefinition.setDefaultValue: Util.fixEmpty -- '' is stored as null, not written
        _sub(element, "defaultValue", default)
    if call.name == "string":
        _sub(element, "trim", bool(call.named.get("trim", False)))
    return element


def _trigger_xml(call: _Call) -> ET.Element | None:
    cls = _TRIGGER_CLASSES.get(call.name)
    if cls is None:
        return None
    element = ET.Element(cls)
    spec = call.args[0] if call.args else call.named.get("spec", call.named.get("upstreamProjects", ""))
    _sub(element, "spec", spec)
    if cls == "hudson.triggers.SCMTrigger":
        _sub(element, "ignorePostCommitHooks", bool(call.named.get("ignorePostCommitHooks", False)))
    return element


def _option_xml(call: _Call) -> ET.Element | None:
    cls = _OPTION_PROPERTIES.get(call.name)
    if cls is None:
        return None
    element = ET.Element(cls)
    if call.name == "buildDiscarder":
        rotator = call.args[0] if call.args and isinstance(call.args[0], _Call) else None
        strategy = ET.SubElement(element, "strategy", {"class": "hudson.tasks.LogRotator"})
        named = rotator.named if rotator else {}
        for tag, key in (("daysToKeep", "daysToKeepStr"), ("numToKeep", "numToKeepStr"),
                         ("artifactDaysToKeep", "artifactDaysToKeepStr"),
                         ("artifactNumToKeep", "artifactNumToKeepStr")):
            value = str(named.get(key, "")).strip()
            _sub(strategy, tag, value if value.lstrip("-").isdigit() else -1)
    elif call.name == "disableConcurrentBuilds":
        _sub(element, "abortPrevious", bool(call.named.get("abortPrevious", False)))
    elif call.name == "durabilityHint":
        _sub(element, "hint", call.args[0] if call.args else "MAX_SURVIVABILITY")
    return element


def update_job_properties(root: ET.Element, declared: tuple[list, list, list],
                          previous: tuple[set, set, set]) -> tuple[set, set, set]:
    """Apply declarative's rewrite to a job config (in place); returns what is now tracked as declared."""
    new_params, new_triggers, new_props = declared
    prev_props, prev_triggers, prev_params = previous
    properties = root.find("properties")
    if properties is None:
        properties = ET.SubElement(root, "properties")
    current = list(properties)
    existing_props = [p for p in current if p.tag not in (_PDP, _PTJP)]
    existing_triggers = [t for holder in current if holder.tag == _PTJP for t in holder.findall("triggers/*")]
    existing_params = [p for holder in current if holder.tag == _PDP for p in holder.findall("parameterDefinitions/*")]

    seen = {p.tag for p in new_props}
    to_apply, to_remove = list(new_props), []
    for prop in existing_props:
        if prop.tag in seen:
            continue
        if prop.tag in prev_props:
            to_remove.append(prop)
        elif not any(p.tag == prop.tag for p in to_apply):
            to_apply.append(prop)
    trigger_tags = {t.tag for t in new_triggers}
    triggers = new_triggers + [t for t in existing_triggers
                               if t.tag not in trigger_tags and t.tag not in prev_triggers]
    names = {p.findtext("name") for p in new_params}
    parameters = new_params + [p for p in existing_params
                               if p.findtext("name") not in names and p.findtext("name") not in prev_params]

    applied = {p.tag for p in to_apply}
    kept = [p for p in existing_props if p not in to_remove and p.tag not in applied]
    for child in current:
        properties.remove(child)
    for prop in kept:
        properties.append(prop)
    if triggers:
        ET.SubElement(ET.SubElement(properties, _PTJP), "triggers").extend(triggers)
    if parameters:
        ET.SubElement(ET.SubElement(properties, _PDP), "parameterDefinitions").extend(parameters)
    properties.extend(to_apply)
    return seen, trigger_tags, names


# ---- ?tree= ---------------------------------------------------------------------------------

_TREE_NAME = re.compile(r"[A-Za-z0-9_$]+")


def _parse_tree(spec: str) -> dict:
    """Parse Jenkins' ``tree`` syntax: ``a,b[c,d[e]]{0,10}`` -> {name: (subtree|None, slice)}."""
    pos = 0

    def parse_list() -> dict:
        nonlocal pos
        out = {}
        while True:
            m = _TREE_NAME.match(spec, pos)
            if not m:
                raise ValueError(f"expected a name at {pos}")
            name, pos = m.group(), m.end()
            sub, rng = None, None
            if pos < len(spec) and spec[pos] == "[":
                pos += 1
                sub = parse_list()
                if pos >= len(spec) or spec[pos] != "]":
                    raise ValueError(f"expected ']' at {pos}")
                pos += 1
            if pos < len(spec) and spec[pos] == "{":
                end = spec.find("}", pos)
                if end < 0:
                    raise ValueError("unclosed '{'")
                rng = _parse_range(spec[pos + 1:end])
                pos = end + 1
            out[name] = (sub, rng)
            if pos < len(spec) and spec[pos] == ",":
                pos += 1
                continue
            return out

    result = parse_list()
    if pos != len(spec):
        raise ValueError(f"unexpected {spec[pos]!r} at {pos}")
    return result


def _parse_range(text: str) -> slice:
    lo, comma, hi = text.partition(",")
    try:
        start = int(lo) if lo.strip() else None
        if not comma:
            return slice(start, start + 1 if start is not None else None)
        return slice(start, int(hi) if hi.strip() else None)
    except ValueError:
        raise ValueError(f"bad range {{{text}}}") from None


def _strip_objects(value):
    if isinstance(value, list):
        return [_strip_objects(v) for v in value]
    if isinstance(value, dict):
        return {"_class": value["_class"]} if "_class" in value else {}
    return value


def _apply_tree(value, spec: dict):
    if isinstance(value, list):
        return [_apply_tree(v, spec) for v in value]
    if not isinstance(value, dict):
        return value
    out = {"_class": value["_class"]} if "_class" in value else {}
    for name, (sub, rng) in spec.items():
        if name not in value:
            continue
        v = value[name]
        if rng is not None and isinstance(v, list):
            v = v[rng]
        out[name] = _strip_objects(v) if sub is None else _apply_tree(v, sub)
    return out


# ---- declarative linter ------------------------------------------------------------------------

_PIPELINE_SECTIONS = {"agent", "stages", "environment", "options", "parameters", "triggers",
                      "tools", "post", "libraries", "input"}
_STAGE_BODIES = {"steps", "stages", "parallel", "matrix"}
_CLOSERS = {"{": "}", "(": ")", "[": "]"}


@dataclass
class _Block:
    name: str | None
    arg: str | None
    line: int
    col: int
    paren: int = 0
    ids: list = field(default_factory=list)
    children: list = field(default_factory=list)


def lint_jenkinsfile(source: str) -> tuple[bool, list]:
    """A light structural check of a declarative Jenkinsfile.

    Returns ``(has_pipeline, errors)``; each error is ``(line, column, message)``. Checks
    balanced braces/parentheses/brackets, terminated strings and comments, a top-level
    ``pipeline { }`` block with ``agent`` and ``stages``, at least one stage, and a body
    (``steps``/``stages``/``parallel``/``matrix``) in every stage, and the validator's allow-lists
    (:func:`allow_list_errors`). It is not a Groovy parser.
    """
    line_starts = [0] + [m.end() for m in re.finditer("\n", source)]

    def at(offset: int) -> tuple[int, int]:
        ln = bisect.bisect_right(line_starts, offset)
        return ln, offset - line_starts[ln - 1] + 1

    tokens = []
    stack = []
    i, n = 0, len(source)
    while i < n:
        c = source[i]
        if source.startswith("//", i):
            j = source.find("\n", i)
            i = n if j < 0 else j
            continue
        if source.startswith("/*", i):
            j = source.find("*/", i + 2)
            if j < 0:
                return True, [(*at(n), "unexpected char: 0xFFFF")]
            i = j + 2
            continue
        if source.startswith(("'''", '"""'), i):
            quote_ = source[i:i + 3]
            j = i + 3
            while j < n and not source.startswith(quote_, j):
                j += 2 if source[j] == "\\" else 1
            if j >= n:
                return True, [(*at(n), "unexpected char: 0xFFFF")]
            tokens.append(("str", source[i + 3:j], *at(i)))
            i = j + 3
            continue
        if c in "'\"":
            j = i + 1
            while j < n and source[j] not in (c, "\n"):
                j += 2 if source[j] == "\\" else 1
            if j >= n:
                return True, [(*at(n), "unexpected char: 0xFFFF")]
            if source[j] == "\n":
                return True, [(*at(j), f"expecting '{c}', found '\\n'")]
            tokens.append(("str", source[i + 1:j], *at(i)))
            i = j + 1
            continue
        if c.isalpha() or c in "_$":
            m = re.compile(r"[A-Za-z0-9_$]+").match(source, i)
            tokens.append(("id", m.group(), *at(i)))
            i = m.end()
            continue
        if c in "{([":
            stack.append((c, *at(i)))
            tokens.append((c, c, *at(i)))
        elif c in "})]":
            if not stack or _CLOSERS[stack[-1][0]] != c:
                return True, [(*at(i), f"unexpected token: {c}")]
            stack.pop()
            tokens.append((c, c, *at(i)))
        elif not c.isspace():
            tokens.append(("op", c, *at(i)))
        i += 1
    if stack:
        opener = stack[-1][0]
        return True, [(*at(n), f"expecting '{_CLOSERS[opener]}', found ''")]

    root = _Block(None, None, 1, 1)
    blocks = [root]
    for idx, (kind, value, _line, _col) in enumerate(tokens):
        node = blocks[-1]
        if kind in ("(", "["):
            node.paren += 1
        elif kind in (")", "]"):
            node.paren -= 1
        elif kind == "{":
            name, arg, hline, hcol = _block_head(tokens, idx)
            child = _Block(name, arg, hline, hcol)
            node.children.append(child)
            blocks.append(child)
        elif kind == "}":
            blocks.pop()
        elif kind == "id" and node.paren == 0:
            node.ids.append(value)

    pipeline = next((b for b in root.children if b.name == "pipeline"), None)
    if pipeline is None:
        return False, []
    errors = []
    names = {b.name for b in pipeline.children} | set(pipeline.ids)
    for b in pipeline.children:
        if b.name not in _PIPELINE_SECTIONS:
            errors.append((b.line, b.col, f'Undefined section "{b.name}"'))
    if "agent" not in names:
        errors.append((pipeline.line, pipeline.col, 'Missing required section "agent"'))
    stages = next((b for b in pipeline.children if b.name == "stages"), None)
    if stages is None:
        errors.append((pipeline.line, pipeline.col, 'Missing required section "stages"'))
    else:
        stage_blocks = [b for b in stages.children if b.name == "stage"]
        if not stage_blocks:
            errors.append((stages.line, stages.col, "No stages specified"))
        for st in stage_blocks:
            body = {b.name for b in st.children} | set(st.ids)
            if not body & _STAGE_BODIES:
                errors.append((st.line, st.col, 'Expected one of "steps", "stages", or '
                                                f'"parallel" for stage "{st.arg}"'))
    errors += [(*at(offset), message) for offset, message in allow_list_errors(source)]
    return True, sorted(errors)


# ---- the validator's allow-lists (ModelValidatorImpl) --------------------------------------------------------
#
# The real validator builds these tables from the installed plugins' extensions: option types from job
# property descriptors, DeclarativeOptions and block-scoped steps (Options.groovy getAllowedOptionTypes), agent
# types from DeclarativeAgentDescriptor symbols, step parameters from each step's @DataBoundConstructor and
# @DataBoundSetter (DescribableModel). These are the symbols of the plugins in docker/jenkins/plugins.txt.
# A step the validator has no model for is NOT an error at validation time (validateElement(ModelASTStep) skips
# it; the build fails later with "No such DSL method"), so unknown steps pass here too.

_ALLOWED_OPTIONS = sorted({
    # job properties (core, workflow-job, branch-api, pipeline-model-definition)
    "buildDiscarder", "disableConcurrentBuilds", "disableResume", "durabilityHint", "overrideIndexTriggers",
    "preserveStashes", "rateLimitBuilds",
    # DeclarativeOptions (pipeline-model-definition)
    "checkoutToSubdirectory", "disableRestartFromStage", "newContainerPerStage", "parallelsAlwaysFailFast",
    "quietPeriod", "skipDefaultCheckout", "skipStagesAfterUnstable",
    # block-scoped steps (workflow-basic-steps, timestamper, credentials-binding, docker-workflow, kubernetes)
    "catchError", "container", "retry", "timeout", "timestamps", "waitUntil", "warnError", "withCredentials",
    "withDockerContainer", "withDockerRegistry", "withDockerServer", "withEnv", "ws",
})
_ALLOWED_AGENTS = sorted({"any", "none", "label", "node", "docker", "dockerfile", "kubernetes"})
_STEP_PARAMETERS = {
    "sh": {"script", "encoding", "label", "returnStatus", "returnStdout"},  # workflow-durable-task-step
    "echo": {"message"},
    "error": {"message"},
    "unstable": {"message"},
    "junit": {"testResults", "allowEmptyResults", "checksName", "healthScaleFactor", "keepLongStdio",
              "keepProperties", "keepTestNames", "skipMarkingBuildUnstable", "skipOldReports",
              "skipPublishingChecks", "stdioRetention", "testDataPublishers"},  # junit
    "archiveArtifacts": {"artifacts", "allowEmptyArchive", "caseSensitive", "defaultExcludes", "excludes",
                         "fingerprint", "followSymlinks", "onlyIfSuccessful"},  # core ArtifactArchiver
    "publishHTML": {"target"},  # htmlpublisher
    "cleanWs": {"cleanWhenAborted", "cleanWhenFailure", "cleanWhenNotBuilt", "cleanWhenSuccess",
                "cleanWhenUnstable", "cleanupMatrixParent", "deleteDirs", "disableDeferredWipeout",
                "externalDelete", "notFailBuild", "patterns", "skipWhenFailed"},  # ws-cleanup WsCleanup
    "checkout": {"scm", "changelog", "poll"},  # workflow-scm-step
    "timeout": {"time", "unit", "activity"},
    "retry": {"count", "conditions"},
    "withCredentials": {"bindings"},
    "usernamePassword": {"credentialsId", "usernameVariable", "passwordVariable"},  # credentials-binding
    "file": {"credentialsId", "variable"},
    "milestone": {"ordinal", "label", "unsafe"},  # pipeline-milestone-step
    "input": {"message", "id", "ok", "parameters", "submitter", "submitterParameter"},  # pipeline-input-step
    "dir": {"path"},
    "writeFile": {"file", "text", "encoding"},
    "readFile": {"file", "encoding"},
    "catchError": {"buildResult", "catchInterruptions", "message", "stageResult"},
    "stash": {"name", "includes", "excludes", "useDefaultExcludes", "allowEmpty"},
    "unstash": {"name"},
    "deleteDir": set(),
    "container": {"name", "shell"},  # kubernetes
    "withEnv": {"overrides"},
    "mail": {"to", "subject", "body", "cc", "bcc", "from", "replyTo", "mimeType", "charset"},
}
# blocks whose calls are not steps (directives, build parameters, triggers, options, conditions)
_NOT_STEP_BLOCKS = {"parameters", "triggers", "options", "environment", "when", "agent", "input", "tools",
                    "libraries", "matrix", "axes"}


def _nearest(word: str, candidates) -> str:
    """EditDistance.findNearest (jenkinsci/jenkins hudson.util.EditDistance): the candidate with the
    smallest Levenshtein distance."""
    def distance(a: str, b: str) -> int:
        row = list(range(len(b) + 1))
        for i, ca in enumerate(a, 1):
            prev, row[0] = row[0], i
            for j, cb in enumerate(b, 1):
                prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
        return row[-1]
    return min(sorted(candidates), key=lambda c: distance(word, c), default="")


def _java_list(items) -> str:
    return "[" + ", ".join(items) + "]"


def allow_list_errors(source: str) -> list:
    """``(offset, message)`` for unknown options, agent types and step parameters, with the messages of
    pipeline-model-definition's Messages.properties (ModelValidatorImpl.InvalidSectionType,
    InvalidAgentType, InvalidStepParameter)."""
    tokens = _groovy_tokens(source)
    errors = []
    for option_block in _blocks_named(tokens, "options"):
        for call in _section_calls(option_block):
            if call.name not in _ALLOWED_OPTIONS:
                errors.append((call.offset, f'Invalid option type "{call.name}". '
                                            f"Valid option types: {_java_list(_ALLOWED_OPTIONS)}"))
    for agent_block in _blocks_named(tokens, "agent"):
        first = next((t for t in agent_block if t[0] == "id"), None)
        if first is not None and first[1] not in _ALLOWED_AGENTS:
            errors.append((first[2], f'Invalid agent type "{first[1]}" specified. '
                                     f"Must be one of {_java_list(_ALLOWED_AGENTS)}"))
    skipped = set()
    for name in _NOT_STEP_BLOCKS:
        for block in _blocks_named(tokens, name):
            skipped.update(t[2] for t in block)
    parser = _CallParser(tokens)
    while parser.peek()[0] != "eof":
        before = parser.tokens[parser.pos - 1][1] if parser.pos else ""
        kind, text, offset = parser.take()
        if kind != "id" or text not in _STEP_PARAMETERS or offset in skipped or before == ".":
            continue
        if parser.peek()[1] == "(":
            named = parser.call(text, offset).named
        else:
            named = {}
            while parser.peek()[0] in ("id", "str") and parser.peek(1)[1] == ":":
                key = parser.take()[1]
                parser.take()
                named[key] = parser.value()
                if parser.peek()[1] != ",":
                    break
                parser.take()
        for key in named:
            if key not in _STEP_PARAMETERS[text]:
                errors.append((offset, f'Invalid parameter "{key}", did you mean '
                                       f'"{_nearest(key, _STEP_PARAMETERS[text])}"?'))
    return errors


def _blocks_named(tokens: list, name: str) -> list:
    """The token lists of every ``name { ... }`` block."""
    blocks = []
    for i, token in enumerate(tokens[:-1]):
        if token[0] == "id" and token[1] == name and tokens[i + 1][1] == "{":
            depth, j, body = 0, i + 1, []
            while j < len(tokens):
                if tokens[j][1] == "{":
                    depth += 1
                elif tokens[j][1] == "}":
                    depth -= 1
                    if depth == 0:
                        break
                body.append(tokens[j])
                j += 1
            blocks.append(body[1:])
    return blocks


def _block_head(tokens: list, idx: int) -> tuple:
    """Name (and first string argument) of the block opened at ``tokens[idx]``."""
    if idx == 0:
        return None, None, *tokens[idx][2:]
    kind, value, line, col = tokens[idx - 1]
    if kind == "id":
        return value, None, line, col
    if kind == ")":
        depth, j = 0, idx - 1
        while j >= 0:
            if tokens[j][0] == ")":
                depth += 1
            elif tokens[j][0] == "(":
                depth -= 1
                if depth == 0:
                    break
            j -= 1
        arg = next((t[1] for t in tokens[j + 1:idx - 1] if t[0] == "str"), None)
        if j > 0 and tokens[j - 1][0] == "id":
            return tokens[j - 1][1], arg, tokens[j - 1][2], tokens[j - 1][3]
    return None, None, line, col


def _validate_response(as_json: bool, text: str | None) -> _Response:
    """``validateJenkinsfile`` (JSON, used by python-jenkins) or ``validate`` (plain text),
    with the messages and shapes of pipeline-model-definition's ModelConverterAction."""

    def failure(messages: list) -> _Response:
        if as_json:
            err = messages[0] if len(messages) == 1 else messages
            return _json_ok({"result": "failure", "errors": [{"error": err}]})
        return _Response(200, "\n".join(messages).encode("utf-8"))

    if text is None or (as_json and text == ""):
        return failure(["No content found for 'jenkinsfile' parameter" if as_json
                        else "No Jenkinsfile specified"])
    has_pipeline, errors = lint_jenkinsfile(text)
    if not has_pipeline:
        # Note: the text endpoint does not prefix this with "Errors encountered".
        return failure([f"Jenkinsfile content '{text}' did not contain the 'pipeline' step"])
    if not errors:
        if as_json:
            return _json_ok({"result": "success"})
        return _Response(200, b"Jenkinsfile successfully validated.")
    messages = [f"{msg} @ line {ln}, column {col}." for ln, col, msg in errors]
    if as_json:
        return failure(messages)
    lines = text.split("\n")
    out = ["Errors encountered validating Jenkinsfile:"]
    for (ln, col, _), message in zip(errors, messages):
        src = lines[ln - 1] if 0 < ln <= len(lines) else ""
        out.append(f"WorkflowScript: {ln}: {message}\n   {src}\n   {' ' * (col - 1)}^\n")
    return _Response(200, "\n".join(out).encode("utf-8"))


def _json_ok(data: dict) -> _Response:
    return _Response(200, json.dumps({"status": "ok", "data": data}).encode("utf-8"),
                     "application/json;charset=utf-8")
