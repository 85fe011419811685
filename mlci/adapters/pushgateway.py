"""The only code that talks to a Prometheus Pushgateway: text exposition format over HTTP.

Pushes use POST, which replaces only the metrics of the same names inside the group, so the
last-success gauge from an earlier run survives a run that fails before pushing it. Label values in
the grouping-key path that contain ``/`` (or are empty) are sent base64url-encoded (``name@base64``).
Credentials may sit in the URL's userinfo; they are sent as basic auth and never appear in messages.
"""

from __future__ import annotations

import base64
import math
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field

from mlci.core.redact import redact_url as redact
from mlci.core.redact import url_problem
from mlci.errors import ConfigError, ServiceError

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


@dataclass
class Metric:
    """One gauge family: a name, its help text, and samples ``(labels, value)``."""

    name: str
    help: str
    samples: list[tuple[dict[str, str], float]] = field(default_factory=list)

    def add(self, value: float, **labels: str) -> Metric:
        self.samples.append((labels, value))
        return self


def exposition(metrics: list[Metric]) -> str:
    """The Prometheus text format (0.0.4) of ``metrics``, without timestamps (the Pushgateway refuses them)."""
    lines = []
    for metric in metrics:
        if not _METRIC_NAME.match(metric.name):
            raise ValueError(f"invalid metric name {metric.name!r}")
        lines.append(f"# HELP {metric.name} {_escape_help(metric.help)}")
        lines.append(f"# TYPE {metric.name} gauge")
        for labels, value in metric.samples:
            lines.append(f"{metric.name}{_labels(labels)} {_value(value)}")
    return "\n".join(lines) + "\n"


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    parts = []
    for name, value in labels.items():
        if not _LABEL_NAME.match(name) or name.startswith("__"):
            raise ValueError(f"invalid label name {name!r}")
        text = str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
        parts.append(f'{name}="{text}"')
    return "{" + ",".join(parts) + "}"


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _value(value: float) -> str:
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def grouping_path(grouping: dict[str, str]) -> str:
    """``/metrics/job/<job>/<label>/<value>...``; ``job`` must be first and present."""
    if "job" not in grouping:
        raise ValueError("the grouping key needs a job")
    ordered = {"job": grouping["job"], **{k: v for k, v in grouping.items() if k != "job"}}
    segments = []
    for name, value in ordered.items():
        value = str(value)
        if "/" in value or not value:
            encoded = base64.urlsafe_b64encode(value.encode("utf-8")).decode("ascii") or "="
            segments.append(f"{name}@base64/{encoded}")
        else:
            segments.append(f"{name}/{urllib.parse.quote(value, safe='')}")
    return "/metrics/" + "/".join(segments)


class Pushgateway:
    """A Pushgateway at ``url`` (``http(s)://[user:password@]host:port``)."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        if url_problem(url.strip()):
            raise ConfigError(f"invalid Pushgateway URL '{redact(url)}': {url_problem(url.strip())}",
                               hint="use http://host:9091 (monitor.pushgateway, --pushgateway or MLCI_PUSHGATEWAY)")
        parts = urllib.parse.urlsplit(url.strip())
        self._auth = None
        if parts.username is not None:
            user = urllib.parse.unquote(parts.username)
            password = urllib.parse.unquote(parts.password or "")
            self._auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        self.base = redact(url.strip()).rstrip("/")
        self.timeout = timeout

    def push(self, grouping: dict[str, str], metrics: list[Metric]) -> None:
        """POST ``metrics`` into the group; ServiceError (exit 3) when the gateway is down or refuses."""
        self._request("POST", self.base + grouping_path(grouping), exposition(metrics).encode("utf-8"))

    def _request(self, method: str, url: str, body: bytes) -> None:
        request = urllib.request.Request(url, data=body, method=method, headers={"Content-Type": CONTENT_TYPE})
        if self._auth:
            request.add_header("Authorization", self._auth)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read(300).decode("utf-8", "replace").strip().splitlines()
            reason = detail[0][:200] if detail else exc.reason
            raise ServiceError(f"the Pushgateway at {self.base} refused the metrics: HTTP {exc.code} {reason}",
                               hint="metrics whose type or help differ from already pushed ones are refused; "
                                    "see the Pushgateway's log") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ServiceError(f"the Pushgateway at {self.base} is unreachable: {reason}",
                               hint="check the URL and that the Pushgateway runs; the report files were "
                                    "written anyway") from None
