"""The one module that talks to Jenkins (through python-jenkins).

python-jenkins raises its own exceptions for some failures and raw ``requests`` errors for others
(400, 502, 503, refused connections), and some of them carry the request URL with its query string,
where a build token would be. Every call here goes through ``_call``, which

* always has a timeout (python-jenkins' default is none: a silent server would hang forever);
* refreshes a stale CSRF crumb once (``403 No valid crumb``: session expired, controller restarted);
* turns every failure into ``ServiceError`` (exit 3) with a one-line message built here, naming only
  the redacted server URL, never the response body, the query string or the credentials.
"""

from __future__ import annotations

import logging
import re
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jenkins
import requests

from mlci.core.redact import redact_url, scrub_text, url_problem
from mlci.errors import ServiceError, UsageError

NO_VALID_CRUMB = "No valid crumb"
# ParameterizedJobMixIn.doBuildWithParameters answers 400 "<job> is not parameterized" for a job without parameters
# (jenkinsci/jenkins since 2.524; a 500 before).
NOT_PARAMETERIZED_HINT = ("the job declares no parameters (Jenkins answers 400 `… is not parameterized`); "
                          "run `mlci jenkins sync` to give it the MLCI_REQUEST_ID parameter")
# ... and 409 "<job> is not buildable" for a disabled job (or one inside a disabled multibranch project).
NOT_BUILDABLE_HINT = "the job is disabled (Jenkins answers 409 `… is not buildable`); enable it in Jenkins"
_KEPT_LOCATION = "X-Mlci-Kept-Location"  # a redirect's Location, moved where requests does not follow it
_STATUS_IN_MESSAGE = re.compile(r"\[(\d{3})\]")


class _DropHeaderLog(logging.Filter):
    """python-jenkins logs the values of JENKINS_API_EXTRA_HEADERS (often a bearer token) at WARNING."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("JENKINS_API_EXTRA_HEADERS")


_HEADER_LOG_FILTER = _DropHeaderLog()


def drop_header_logs() -> None:
    """Keep python-jenkins' header log line (it logs through the root logger) out of every log.

    Installed by each client before it creates its python-jenkins server, not at import; idempotent."""
    root = logging.getLogger()
    if _HEADER_LOG_FILTER not in root.filters:
        root.addFilter(_HEADER_LOG_FILTER)


@dataclass(frozen=True)
class Credentials:
    url: str
    user: str | None
    token: str | None


def split_credentials(url: str, user: str | None, token: str | None) -> Credentials:
    """Move user info out of the URL (``https://u:t@host``); explicit user and token win."""
    problem = url_problem(url)
    if problem:
        raise UsageError(f"Jenkins URL {redact_url(url)!r} is not usable: {problem}",
                         hint="set jenkins.url or JENKINS_URL, e.g. https://jenkins.example.com/")
    parts = urllib.parse.urlsplit(url)
    clean = redact_url(url)
    if not clean.endswith("/"):
        clean += "/"
    url_user = urllib.parse.unquote(parts.username) if parts.username else None
    url_token = urllib.parse.unquote(parts.password) if parts.password else None
    return Credentials(url=clean, user=user or url_user, token=token or url_token)


class JenkinsClient:
    """A Jenkins server: jobs, builds, queue, console and the declarative linter."""

    def __init__(self, url: str, *, user: str | None = None, token: str | None = None,
                 timeout: float = 30.0) -> None:
        drop_header_logs()
        credentials = split_credentials(url, user, token)
        self.url = credentials.url
        self.timeout = timeout
        self._server = jenkins.Jenkins(credentials.url, username=credentials.user, password=credentials.token,
                                       timeout=timeout)

    # ---- jobs ---------------------------------------------------------------------------------

    def job_config(self, name: str) -> str | None:
        """The job's config.xml, or None when there is no such job."""
        try:
            return self._call(f"reading job {name}", self._server.get_job_config, name, missing_ok=True)
        except _Missing:
            return None

    def create_job(self, name: str, config_xml: str) -> None:
        self._call(f"creating job {name}", self._post_config, _job_path(name, parent=True) + "createItem",
                   config_xml, {"name": name.rsplit("/", 1)[-1]})

    def update_job(self, name: str, config_xml: str) -> None:
        self._call(f"updating job {name}", self._post_config, _job_path(name) + "config.xml", config_xml, None)

    def delete_job(self, name: str) -> None:
        self._call(f"deleting job {name}", self._server.delete_job, name)

    def create_folder(self, name: str) -> None:
        self._call(f"creating folder {name}", self._server.create_folder, name)

    def job_info(self, name: str) -> dict | None:
        """``job/<name>/api/json`` (builds, parameters, child jobs of a folder), None when missing."""
        try:
            return self._get_json(f"reading job {name}", _job_path(name) + "api/json", missing_ok=True)
        except _Missing:
            return None

    def root_jobs(self) -> list[dict]:
        return self._get_json("listing jobs", "api/json?tree=jobs[name,url,color]").get("jobs", [])

    # ---- builds -------------------------------------------------------------------------------

    def trigger(self, name: str, parameters: dict[str, str]) -> int:
        """POST buildWithParameters; returns the queue item id. Never retried blindly: a lost
        response does not mean the build was not queued.

        Parameters go in the form body, not in the query string as python-jenkins' ``build_job``
        puts them: URLs end up in proxy and access logs, and in its error messages.
        """
        return self._call(f"triggering job {name}", self._post_build, name, parameters,
                          hints={400: NOT_PARAMETERIZED_HINT, 409: NOT_BUILDABLE_HINT})

    def _post_build(self, name: str, parameters: dict[str, str]) -> int:
        """201 + ``Location: …/queue/item/N/`` for a new queue item; 303 See Other + the Location of the queued
        item an identical request was merged into (jenkinsci/jenkins ``ParametersDefinitionProperty.java``
        ``buildWithParameters``). requests would follow the 303 with a GET to the item's page, which answers 200
        without a Location (``Queue.Item.doIndex``), so redirects are not followed."""
        response = self._request("POST", _job_path(name) + "buildWithParameters", data=parameters,
                                 follow_redirects=False)
        location = response.headers.get("Location") or response.headers.get(_KEPT_LOCATION, "")
        match = re.search(r"/queue/item/(\d+)/?$", location)
        if response.status_code not in (201, 303) or not match:
            raise ServiceError(f"Jenkins at {self.url} queued {name} without saying where (no queue item)")
        return int(match.group(1))

    def scan(self, name: str) -> None:
        """Schedule branch indexing of a multibranch project (POST ``build``: cloudbees-folder
        ``ComputedFolder.doBuild``); it discovers branches and builds the new or changed ones."""
        self._call(f"scanning {name}", self._request, "POST", _job_path(name) + "build?delay=0")

    def queue_item(self, item_id: int) -> dict | None:
        """The queue item, or None when Jenkins has forgotten it (about five minutes after it left)."""
        try:
            return self._get_json(f"reading queue item {item_id}", f"queue/item/{int(item_id)}/api/json",
                                  missing_ok=True)
        except _Missing:
            return None

    def queued_items(self) -> list[dict]:
        return self._get_json("reading the queue", "queue/api/json").get("items", [])

    def build_info(self, name: str, number: int) -> dict:
        return self._get_json(f"reading build {name} #{number}", f"{_job_path(name)}{int(number)}/api/json")

    def console_chunks(self, name: str, number: int, start: int = 0) -> tuple[str, int, bool]:
        """One progressive-text read: (new text, next offset, more data coming)."""
        path = f"{_job_path(name)}{int(number)}/logText/progressiveText?start={int(start)}"
        response = self._call(f"reading the console of {name} #{number}", self._request, "GET", path)
        size = response.headers.get("X-Text-Size")
        more = response.headers.get("X-More-Data", "").lower() == "true"
        text = response.content.decode("utf-8", "replace")
        return text, int(size) if size and size.isdigit() else start + len(response.content), more

    # ---- linter -------------------------------------------------------------------------------

    def lint(self, jenkinsfile: str) -> list[str]:
        """Errors of the server's declarative validator (empty when the file is valid)."""
        errors = self._call("validating the Jenkinsfile", self._server.check_jenkinsfile_syntax, jenkinsfile)
        return [_lint_message(e) for e in errors]

    # ---- plumbing -----------------------------------------------------------------------------

    def _get_json(self, what: str, path: str, missing_ok: bool = False) -> Any:
        response = self._call(what, self._request, "GET", path, missing_ok=missing_ok)
        try:
            return response.json()
        except ValueError:
            raise ServiceError(f"Jenkins at {self.url} answered {what} with something that is not JSON",
                               hint="is JENKINS_URL the Jenkins root URL?") from None

    def _request(self, method: str, path: str, data: bytes | dict | None = None, headers: dict | None = None,
                 params: dict | None = None, follow_redirects: bool = True) -> requests.Response:
        hooks = {} if follow_redirects else {"response": _keep_redirect}
        request = requests.Request(method, urllib.parse.urljoin(self.url, path), data=data,
                                   headers=headers or {}, params=params, hooks=hooks)
        return self._server.jenkins_request(request)

    def _post_config(self, path: str, config_xml: str, params: dict | None) -> None:
        self._request("POST", path, config_xml.encode("utf-8"), {"Content-Type": "text/xml; charset=utf-8"},
                      params)

    def _call(self, what: str, function: Callable, *args: Any, missing_ok: bool = False,
              hints: dict[int, str] | None = None) -> Any:
        for attempt in (1, 2):
            try:
                return function(*args)
            except jenkins.NotFoundException:
                if missing_ok:
                    raise _Missing() from None
                raise ServiceError(f"Jenkins at {self.url} answered 404 when {what}",
                                   hint="check the job name and that the user may see it") from None
            except jenkins.TimeoutException:
                raise ServiceError(f"Jenkins at {self.url} did not respond within {self.timeout:g}s when {what}",
                                   hint="raise jenkins.request_timeout or check the server") from None
            except jenkins.JenkinsException as error:
                if attempt == 1 and NO_VALID_CRUMB in str(error):
                    self._server.crumb = None  # fetched again, with the session cookie, on the retry
                    continue
                raise self._jenkins_error(what, str(error)) from None
            except requests.HTTPError as error:
                status = error.response.status_code if error.response is not None else 0
                raise ServiceError(f"Jenkins at {self.url} answered HTTP {status} when {what}",
                                   hint=(hints or {}).get(status) or _hint_for(status)) from None
            except requests.ConnectionError:
                raise ServiceError(f"cannot connect to Jenkins at {self.url} ({what})",
                                   hint="check JENKINS_URL and that the server is up") from None
            except requests.RequestException as error:
                raise ServiceError(f"request to Jenkins at {self.url} failed when {what}: "
                                   f"{type(error).__name__}") from None
        raise AssertionError("unreachable")

    def _jenkins_error(self, what: str, text: str) -> ServiceError:
        match = _STATUS_IN_MESSAGE.search(text)
        status = int(match.group(1)) if match else 0
        if status == 401:
            return ServiceError(f"authentication failed at {self.url} when {what} (HTTP 401)",
                                hint="check JENKINS_USER and JENKINS_API_TOKEN")
        if status == 403:
            reason = "the CSRF crumb was refused twice" if NO_VALID_CRUMB in text else "permission denied"
            return ServiceError(f"Jenkins at {self.url} refused {what} (HTTP 403: {reason})",
                                hint="check the user's permissions and JENKINS_API_TOKEN")
        if status:
            return ServiceError(f"Jenkins at {self.url} failed when {what} (HTTP {status})", hint=_hint_for(status))
        first_line = text.splitlines()[0][:200] if text else "unknown error"
        return ServiceError(f"Jenkins at {self.url} failed when {what}: {_scrub(first_line)}")


def _keep_redirect(response: requests.Response, *args: Any, **kwargs: Any) -> requests.Response:
    """A response hook that stops requests from following a redirect: python-jenkins sends through a
    session with redirects on, and the Location of a 303 is the answer, not a page to fetch."""
    if response.is_redirect:
        response.headers[_KEPT_LOCATION] = response.headers.pop("Location", "")
    return response


class _Missing(Exception):
    """Internal: a 404 the caller asked to see as 'not there'."""


def _job_path(name: str, *, parent: bool = False) -> str:
    """``job/a/job/b/`` for ``a/b`` (with ``parent``: the folder holding it, '' at the root)."""
    parts = name.split("/")
    if parent:
        parts = parts[:-1]
    return "".join(f"job/{urllib.parse.quote(p, safe='')}/" for p in parts)


def _hint_for(status: int) -> str | None:
    if status in (502, 503, 504):
        return "Jenkins or a proxy in front of it is unavailable; try again later"
    if status == 400:
        return "Jenkins rejected the request; check the job's parameters"
    return None


def _scrub(text: str) -> str:
    """Drop anything URL-like with a query string or user info from a message."""
    return scrub_text(text)


def _lint_message(error: Any) -> str:
    if isinstance(error, dict):
        inner = error.get("error", error)
        return "; ".join(inner) if isinstance(inner, list) else str(inner)
    return str(error)
