"""The Pushgateway adapter against a real Pushgateway: retries through a flaky proxy, final 4xx, model
versions as labels so a retired version's values disappear, and legacy groups cleaned up."""

from __future__ import annotations

import http.server
import json
import threading
import urllib.request

import pytest

from mlci.adapters.pushgateway import Metric, Pushgateway
from mlci.errors import ServiceError
from tests.private_pushgateway import private_pushgateway  # noqa: F401 - fixture

GROUP = {"job": "mlci_monitor", "project": "fraud"}


def groups(url: str) -> list[dict]:
    with urllib.request.urlopen(f"{url}/api/v1/metrics", timeout=5) as response:
        return json.loads(response.read())["data"]


def samples(url: str, metric: str) -> list[tuple[dict, float]]:
    return [(m["labels"], float(m["value"])) for g in groups(url) if metric in g
            for m in g[metric]["metrics"]]


class FlakyProxy:
    """Answers the first ``failures`` requests with ``status``, then forwards to ``target``."""

    def __init__(self, target: str, failures: int, status: int = 503) -> None:
        self.target, self.failures, self.status, self.seen = target, failures, status, 0
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _forward(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                proxy.seen += 1
                if proxy.seen <= proxy.failures:
                    self.send_error(proxy.status)
                    return
                request = urllib.request.Request(proxy.target + self.path, data=body or None, method=self.command,
                                                 headers={"Content-Type": self.headers.get("Content-Type", "")})
                with urllib.request.urlopen(request, timeout=5) as answer:
                    payload, code = answer.read(), answer.status
                self.send_response(code)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_POST = do_PUT = do_GET = do_DELETE = _forward

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def drift(value: float) -> list[Metric]:
    return [Metric("mlci_dataset_drift", "1 when the dataset drifted").add(value)]


def test_a_push_is_retried_through_passing_5xx_answers(private_pushgateway):
    proxy = FlakyProxy(private_pushgateway, failures=2)
    delays = []
    try:
        Pushgateway(proxy.url, sleep=delays.append).push(GROUP, drift(1), labels={"model_version": "3"})
    finally:
        proxy.close()
    assert proxy.seen == 3 and delays == [0.5, 1.0]
    assert samples(private_pushgateway, "mlci_dataset_drift")[0][1] == 1.0


def test_a_gateway_that_stays_down_is_exit_3_after_every_retry(private_pushgateway):
    proxy = FlakyProxy(private_pushgateway, failures=100)
    delays = []
    try:
        with pytest.raises(ServiceError, match=r"refused the metrics: HTTP 503") as caught:
            Pushgateway(proxy.url, sleep=delays.append).push(GROUP, drift(1))
    finally:
        proxy.close()
    assert caught.value.exit_code == 3 and proxy.seen == 4 and delays == [0.5, 1.0, 2.0]


def test_a_4xx_answer_is_final(private_pushgateway):
    proxy = FlakyProxy(private_pushgateway, failures=100, status=400)
    try:
        with pytest.raises(ServiceError, match="HTTP 400"):
            Pushgateway(proxy.url, sleep=lambda s: None).push(GROUP, drift(1))
    finally:
        proxy.close()
    assert proxy.seen == 1


def test_a_new_model_version_replaces_the_retired_ones_samples(private_pushgateway):
    gateway = Pushgateway(private_pushgateway)
    gateway.push(GROUP, drift(1), labels={"model_version": "1"})
    gateway.push(GROUP, drift(0), labels={"model_version": "2"})
    assert samples(private_pushgateway, "mlci_dataset_drift") == [
        ({"job": "mlci_monitor", "project": "fraud", "model_version": "2", "instance": ""}, 0.0)]


def test_groups_keyed_by_model_version_are_deleted(private_pushgateway):
    legacy = f"{private_pushgateway}/metrics/job/mlci_monitor/project/fraud/model_version/1"
    body = b"# TYPE mlci_dataset_drift gauge\nmlci_dataset_drift 1\n"
    urllib.request.urlopen(urllib.request.Request(legacy, data=body, method="POST"), timeout=5).read()
    other = f"{private_pushgateway}/metrics/job/mlci_monitor/project/churn/model_version/1"
    urllib.request.urlopen(urllib.request.Request(other, data=body, method="POST"), timeout=5).read()
    gateway = Pushgateway(private_pushgateway)
    gateway.push(GROUP, drift(0), labels={"model_version": "2"})
    deleted = gateway.delete_groups_with(GROUP, "model_version")
    assert deleted == [{"job": "mlci_monitor", "project": "fraud", "model_version": "1"}]
    keys = sorted(json.dumps(g["labels"], sort_keys=True) for g in groups(private_pushgateway))
    assert keys == [json.dumps(k, sort_keys=True) for k in sorted(
        [{"job": "mlci_monitor", "project": "churn", "model_version": "1"},
         {"job": "mlci_monitor", "project": "fraud"}], key=lambda k: json.dumps(k, sort_keys=True))]


def test_credentials_in_the_url_never_reach_a_message():
    with pytest.raises(ServiceError) as caught:
        Pushgateway("http://user:s3cret@127.0.0.1:9/?token=abc", retry_delays=(), timeout=2).push(GROUP, drift(1))
    assert "s3cret" not in str(caught.value) and "token" not in str(caught.value)
    assert "unreachable" in str(caught.value)
