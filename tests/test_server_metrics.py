"""The server's /metrics through prometheus_client: counters that never go backwards when several workers
share the port, process metrics for one worker, and an exposition promtool accepts.

Real servers (``python -m mlci.serve``) on loopback; promtool from Debian's prometheus package.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from mlci.ops.deliver.health import free_port
from tests.serving_support import copy_example, holdout_records, register_version

pytestmark = pytest.mark.slow

PREDICT_OK = re.compile(r'^mlci_http_requests_total\{endpoint="/predict",status="200"\} (\S+)$', re.M)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    directory = copy_example(tmp_path_factory.mktemp("metrics"))
    register_version(directory, seed=0)
    return directory


def start_server(project, workers: int):
    port = free_port()
    env = {**os.environ, "MLCI_SERVE_REGISTRY": str(project / ".mlci" / "registry"), "MLCI_SERVE_MODEL": "1",
           "MLCI_SERVE_HOST": "127.0.0.1", "MLCI_SERVE_PORT": str(port), "MLCI_SERVE_WORKERS": str(workers),
           "MLCI_SERVE_LOG_DIR": ""}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    process = subprocess.Popen([sys.executable, "-m", "mlci.serve"], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    ready = 0
    while time.monotonic() < deadline and ready < workers * 4:
        try:  # several answers in a row: with 2 workers, both have loaded the model
            ready = ready + 1 if httpx.get(f"{url}/health/ready", timeout=2).status_code == 200 else 0
        except httpx.HTTPError:
            ready = 0
        time.sleep(0.1)
    if ready < workers * 4:
        process.kill()
        raise AssertionError(f"the server did not become ready: {process.stderr.read().decode()[-2000:]}")
    return process, url


def stop(process) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


def predicted_ok(url: str) -> float:
    # a new connection per scrape, so the kernel hands scrapes to either worker
    text = httpx.get(f"{url}/metrics", timeout=5, headers={"Connection": "close"}).text
    match = PREDICT_OK.search(text)
    return float(match.group(1)) if match else 0.0


def test_two_workers_count_every_request_and_counters_never_go_back(project):
    process, url = start_server(project, workers=2)
    records = holdout_records(project, 1)
    try:
        seen, sent = [], 0
        for _ in range(15):
            for _ in range(4):
                answer = httpx.post(f"{url}/predict", json=records, timeout=10, headers={"Connection": "close"})
                assert answer.status_code == 200
                sent += 1
            seen += [predicted_ok(url) for _ in range(3)]
        assert seen == sorted(seen), f"a counter went backwards between scrapes: {seen}"
        assert seen[-1] == sent
    finally:
        stop(process)


def test_one_worker_exports_process_metrics_and_promtool_accepts_the_exposition(project, promtool, tmp_path):
    process, url = start_server(project, workers=1)
    try:
        httpx.post(f"{url}/predict", json=holdout_records(project, 3), timeout=10)
        httpx.post(f"{url}/predict", json=[{"age": "old"}], timeout=10)
        text = httpx.get(f"{url}/metrics", timeout=5).text
    finally:
        stop(process)
    assert re.search(r"^process_resident_memory_bytes \S+$", text, re.M)
    assert re.search(r'^mlci_model_info\{.*version="1"\} 1\.0$', text, re.M)
    assert re.search(r"^mlci_invalid_records_total 1\.0$", text, re.M)
    checked = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0 and not checked.stdout.strip() and not checked.stderr.strip(), \
        checked.stdout + checked.stderr


SERIES = {
    "requests": PREDICT_OK,
    "latency_count": re.compile(r'^mlci_http_request_duration_seconds_count\{endpoint="/predict"\} (\S+)$', re.M),
    "rows_count": re.compile(r"^mlci_predict_rows_count (\S+)$", re.M),
    "rows_sum": re.compile(r"^mlci_predict_rows_sum (\S+)$", re.M),
}


def worker_request_counts(process) -> list[float]:
    """Each worker's own /predict count, read from its file in the run's multiprocess directory."""
    from prometheus_client.mmap_dict import MmapedDict

    children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
    environ = Path(f"/proc/{children[0]}/environ").read_bytes().split(b"\0")
    directory = next(v.split(b"=", 1)[1].decode() for v in environ if v.startswith(b"PROMETHEUS_MULTIPROC_DIR="))
    counts = []
    for worker in children:  # (multiprocessing may add a helper process, which keeps no metrics)
        file = Path(directory) / f"counter_{worker}.db"
        if file.exists():
            counts.append(sum(value for key, value, *_ in MmapedDict.read_all_values_from_file(str(file))
                              if '"mlci_http_requests_total"' in key and '"/predict"' in key))
    return counts


def test_three_workers_under_concurrent_clients_count_exactly_the_requests_and_rows_sent(project):
    """Summed over the workers' files by the multiprocess collector: the request counter, the latency
    histogram's count and the rows histogram equal what eight concurrent clients sent."""
    from concurrent.futures import ThreadPoolExecutor

    process, url = start_server(project, workers=3)
    batches = [holdout_records(project, rows) for rows in (1, 7, 20)]
    plan = [batches[i % 3] for i in range(240)]
    try:
        def send(records) -> int:
            # a connection per request, so the kernel hands requests to all three workers
            answer = httpx.post(f"{url}/predict", json=records, timeout=30, headers={"Connection": "close"})
            return answer.status_code
        with ThreadPoolExecutor(8) as clients:
            statuses = list(clients.map(send, plan))
        text = httpx.get(f"{url}/metrics", timeout=5, headers={"Connection": "close"}).text
        per_worker = worker_request_counts(process)
    finally:
        stop(process)
    assert statuses == [200] * len(plan)
    assert len(per_worker) == 3 and sum(c > 0 for c in per_worker) >= 2, per_worker  # the sum spans workers
    found = {name: float(m.group(1)) if (m := pattern.search(text)) else None for name, pattern in SERIES.items()}
    assert found == {"requests": len(plan), "latency_count": len(plan), "rows_count": len(plan),
                     "rows_sum": sum(map(len, plan))}
