"""The only code that talks to a Prometheus Pushgateway, through prometheus_client.

Pushes use POST (``pushadd_to_gateway``), which replaces only the metrics of the same names inside the
group, so the last-success gauge from an earlier run survives a run that fails before pushing it.
prometheus_client encodes grouping-key values that contain ``/`` (or are empty) as base64. A push has a
timeout and is retried on connection failures and 5xx answers (a network blip must not fail a nightly
build); a 4xx answer is final. Credentials may sit in the URL's userinfo; they are sent as basic auth
and never appear in messages.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from mlci.core.redact import redact_url as redact
from mlci.core.redact import url_problem
from mlci.errors import ConfigError, ServiceError

RETRY_DELAYS = (0.5, 1.0, 2.0)  # seconds before the 2nd, 3rd and 4th attempt


@dataclass
class Metric:
    """One gauge family: a name, its help text, and samples ``(labels, value)``."""

    name: str
    help: str
    samples: list[tuple[dict[str, str], float]] = field(default_factory=list)

    def add(self, value: float, **labels: str) -> Metric:
        self.samples.append((labels, value))
        return self


class _Gauges:
    """A prometheus_client collector that yields ``Metric`` families as gauges, with ``common`` labels
    added to every sample."""

    def __init__(self, metrics: list[Metric], common: dict[str, str]) -> None:
        self.metrics, self.common = metrics, common

    def collect(self) -> Iterator:
        from prometheus_client.core import GaugeMetricFamily

        for metric in self.metrics:
            names = sorted({name for labels, _ in metric.samples for name in labels} | set(self.common))
            family = GaugeMetricFamily(metric.name, metric.help, labels=names)
            for labels, value in metric.samples:
                merged = {**self.common, **labels}
                family.add_metric([str(merged.get(name, "")) for name in names], float(value))
            yield family


class Pushgateway:
    """A Pushgateway at ``url`` (``http(s)://[user:password@]host:port``)."""

    def __init__(self, url: str, *, timeout: float = 10.0, retry_delays: tuple[float, ...] = RETRY_DELAYS,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        problem = url_problem(url.strip())
        if problem:
            raise ConfigError(f"invalid Pushgateway URL '{redact(url)}': {problem}",
                              hint="use http://host:9091 (monitor.pushgateway, --pushgateway or MLCI_PUSHGATEWAY)")
        parts = urllib.parse.urlsplit(url.strip())
        self._credentials = None
        if parts.username is not None:
            self._credentials = (urllib.parse.unquote(parts.username), urllib.parse.unquote(parts.password or ""))
        self.base = redact(url.strip()).rstrip("/")
        self.timeout = timeout
        self.retry_delays = retry_delays
        self._sleep = sleep

    def push(self, grouping: dict[str, str], metrics: list[Metric], *, labels: dict[str, str] | None = None) -> None:
        """POST ``metrics`` (with ``labels`` on every sample) into the group ``grouping`` (``job`` first);
        ServiceError (exit 3) when the gateway stays down or refuses."""
        from prometheus_client import CollectorRegistry

        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Gauges(metrics, labels or {}))
        key = {k: v for k, v in grouping.items() if k != "job"}
        for attempt, delay in enumerate((0.0, *self.retry_delays)):
            if delay:
                self._sleep(delay)
            try:
                self._send(grouping["job"], key, registry)
                return
            except urllib.error.HTTPError as exc:
                if exc.code < 500 or attempt == len(self.retry_delays):
                    raise self._refused(exc) from None
            except OSError as exc:
                if attempt == len(self.retry_delays):
                    raise ServiceError(f"the Pushgateway at {self.base} is unreachable: {getattr(exc, 'reason', exc)}",
                                       hint="check the URL and that the Pushgateway runs; the report files were "
                                            "written anyway") from None

    def delete_groups_with(self, grouping: dict[str, str], extra_label: str) -> list[dict[str, str]]:
        """Delete the groups that match ``grouping`` and also carry ``extra_label`` in their grouping key
        (groups an earlier layout of the key left behind); returns their keys. Best effort: the gateway
        answers as it can, and nothing here fails the run."""
        from prometheus_client.exposition import delete_from_gateway

        deleted = []
        for labels in self._group_keys():
            if extra_label in labels and all(labels.get(k) == v for k, v in grouping.items()):
                key = {k: v for k, v in labels.items() if k != "job"}
                try:
                    delete_from_gateway(self.base, job=labels["job"], grouping_key=key, timeout=self.timeout,
                                        handler=self._handler())
                except OSError:
                    continue
                deleted.append(labels)
        return deleted

    def _group_keys(self) -> list[dict[str, str]]:
        import json
        import urllib.request

        request = urllib.request.Request(f"{self.base}/api/v1/metrics")
        if self._credentials:
            import base64
            token = base64.b64encode(":".join(self._credentials).encode()).decode("ascii")
            request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                groups = json.loads(response.read()).get("data") or []
        except (OSError, ValueError):
            return []
        return [g["labels"] for g in groups if isinstance(g, dict) and isinstance(g.get("labels"), dict)]

    def _handler(self):
        from prometheus_client.exposition import basic_auth_handler, default_handler

        if not self._credentials:
            return default_handler
        user, password = self._credentials

        def authenticated(url, method, timeout, headers, data):
            return basic_auth_handler(url, method, timeout, headers, data, user, password)
        return authenticated

    def _send(self, job: str, key: dict[str, str], registry) -> None:
        from prometheus_client.exposition import pushadd_to_gateway

        pushadd_to_gateway(self.base, job=job, registry=registry, grouping_key=key, timeout=self.timeout,
                           handler=self._handler())

    def _refused(self, exc: urllib.error.HTTPError) -> ServiceError:
        detail = (exc.read(300) or b"").decode("utf-8", "replace").strip().splitlines()
        reason = detail[0][:200] if detail else exc.reason
        return ServiceError(f"the Pushgateway at {self.base} refused the metrics: HTTP {exc.code} {reason}",
                            hint="metrics whose type or help differ from already pushed ones are refused; "
                                 "see the Pushgateway's log")
