"""The shadow challenger's scorer process (mlci.serve.shadow), on real servers and real model versions:

- it runs at idle CPU priority (every thread), and it, not the server, writes the challenger's rows;
- it dies with a server killed by SIGKILL, and nothing the server started outlives it;
- with several workers each has its own scorer, and a stopped server leaves none behind;
- while it cannot keep up, rows beyond its bound are skipped and counted, exactly, and never wait.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from mlci.ops.deliver.deploy import free_port
from mlci.ops.deliver.experiment import logged_rows
from mlci.serve.model import load_served_model
from mlci.serve.shadow import PROCESS_NAME, ScorerPlan, ShadowScorer
from tests.serving_support import copy_example, holdout_records, register_version

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent


class Served:
    """``python -m mlci.serve`` with a shadow experiment, as a deployment starts it."""

    def __init__(self, directory: Path, *, workers: int = 1) -> None:
        self.project = copy_example(directory)
        registry = self.project / ".mlci" / "registry"
        champion = register_version(self.project, seed=0)["version"]
        challenger = register_version(self.project, seed=1)["version"]
        self.log_dir = directory / "logs"
        self.url = f"http://127.0.0.1:{free_port()}"
        env = {**os.environ, "PYTHONPATH": str(ROOT), "MLCI_SERVE_EXPERIMENT_MODE": "shadow",
               "MLCI_SERVE_EXPERIMENT_CHALLENGER": str(challenger), "MLCI_SERVE_EXPERIMENT_ID": "exp1"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mlci.serve", "--registry", str(registry), "--model", str(champion),
             "--host", "127.0.0.1", "--port", self.url.rsplit(":", 1)[1], "--workers", str(workers),
             "--log-dir", str(self.log_dir)], env=env, stdout=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 120
        while not self._ready():
            assert self.process.poll() is None and time.monotonic() < deadline, "the server did not become ready"
            time.sleep(0.2)

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health/ready", timeout=2) as answer:
                return answer.status == 200
        except OSError:
            return False

    def send(self, requests: int, rows: int = 3) -> list[str]:
        records, ids = holdout_records(self.project, rows), []
        for number in range(requests):
            ids.append(f"req-{number}")
            request = urllib.request.Request(f"{self.url}/predict", data=json.dumps(records).encode(),
                                             headers={"Content-Type": "application/json", "X-Request-ID": ids[-1]})
            with urllib.request.urlopen(request, timeout=30) as answer:
                assert json.loads(answer.read())["model_role"] == "champion"
        return ids

    def wait_for_challenger_rows(self, rows: int, timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        while len(logged_rows(self.log_dir, "exp1")["challenger"]) < rows:
            assert time.monotonic() < deadline, "the challenger's rows were not all logged"
            time.sleep(0.2)
        return logged_rows(self.log_dir, "exp1")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def _parents() -> dict[int, int]:
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                found[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                pass
    return found


def _descendants(pid: int) -> list[int]:
    parents, found, frontier = _parents(), [], [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def _name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    """Running, not a zombie waiting for a reaper."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _scorers(server_pid: int, count: int, timeout: float = 120) -> list[int]:
    deadline = time.monotonic() + timeout
    while True:
        found = [pid for pid in _descendants(server_pid) if _name(pid) == PROCESS_NAME]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def _wait_gone(pids: list[int], timeout: float = 60) -> list[int]:
    deadline = time.monotonic() + timeout
    while [pid for pid in pids if _alive(pid)] and time.monotonic() < deadline:
        time.sleep(0.1)
    return [pid for pid in pids if _alive(pid)]


def _policies(pid: int) -> set[int]:
    return {os.sched_getscheduler(int(task)) for task in os.listdir(f"/proc/{pid}/task")}


def test_the_scorer_runs_at_idle_priority_and_writes_the_challengers_rows(tmp_path):
    server = Served(tmp_path)
    try:
        [scorer] = _scorers(server.process.pid, 1)
        ids = server.send(20, rows=3)
        logged = server.wait_for_challenger_rows(60)
        # every thread of the scorer: threads a library started while the model loaded included
        assert _policies(scorer) == {os.SCHED_IDLE}
        assert os.sched_getscheduler(server.process.pid) == os.SCHED_OTHER
        assert set(logged["challenger"]) == set(logged["champion"]) == {(i, row) for i in ids for row in range(3)}
        writers = {role: {path.name.rsplit("-", 1)[1] for path in server.log_dir.glob("predictions-*.jsonl")
                          if f'"role":"{role}"' in path.read_text()} for role in ("champion", "challenger")}
        assert writers == {"champion": {f"{server.process.pid}.jsonl"}, "challenger": {f"{scorer}.jsonl"}}
    finally:
        server.stop()


def test_the_scorer_exits_when_the_server_is_killed_with_sigkill(tmp_path):
    server = Served(tmp_path)
    try:
        [scorer] = _scorers(server.process.pid, 1)
        server.send(5)
        server.wait_for_challenger_rows(15)
        started = _descendants(server.process.pid)  # the scorer and multiprocessing's resource tracker
        assert scorer in started
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait()
        assert _wait_gone(started) == []
    finally:
        server.stop()


def test_each_worker_has_its_scorer_and_a_stopped_server_leaves_none(tmp_path):
    server = Served(tmp_path, workers=2)
    try:
        scorers = _scorers(server.process.pid, 2)
        assert len(scorers) == 2 and len({_parents()[pid] for pid in scorers}) == 2  # one per worker
        ids = server.send(40, rows=2)
        logged = server.wait_for_challenger_rows(80)
        assert set(logged["challenger"]) == set(logged["champion"]) == {(i, row) for i in ids for row in range(2)}
        writers = {path.name.rsplit("-", 1)[1] for path in server.log_dir.glob("predictions-*.jsonl")
                   if '"role":"challenger"' in path.read_text()}
        assert writers <= {f"{pid}.jsonl" for pid in scorers}
        started = _descendants(server.process.pid)
        os.kill(server.process.pid, signal.SIGTERM)  # a stop
        server.process.wait(timeout=90)
        assert _wait_gone(started) == []
    finally:
        server.stop()


def test_rows_beyond_the_bound_are_skipped_and_counted_while_the_scorer_is_stalled(tmp_path):
    project = copy_example(tmp_path)
    record = register_version(project, seed=1)
    registry = project / ".mlci" / "registry"
    plan = ScorerPlan(registry=registry, version=record["version"], experiment_id="exp1", role="challenger",
                      log_dir=tmp_path / "logs", log_max_bytes=10_000_000, log_queue_rows=100_000)
    features = load_served_model(registry, record["version"]).features
    skipped, reports = [], []
    scorer = ShadowScorer(plan, features, capacity=200, on_skip=skipped.append, on_report=reports.append)
    scorer.start()
    try:
        os.kill(scorer.process.pid, signal.SIGSTOP)  # a scorer that gets no CPU at all
        sizes = [random.Random(seed).randint(1, 40) for seed in range(60)]
        expected, in_flight = [], 0
        for size in sizes:  # what a bound of 200 rows in flight must accept, in order
            expected.append(in_flight + size <= 200)
            in_flight += size if expected[-1] else 0
        columns = {name: [value] for name, value in holdout_records(project, 1)[0].items()}
        started = time.perf_counter()
        accepted = [scorer.submit("2026-01-01T00:00:00.000Z", f"r{n}", {k: v * size for k, v in columns.items()},
                                  size) for n, size in enumerate(sizes)]
        assert time.perf_counter() - started < 1.0  # never waits for the stalled scorer
        assert accepted == expected and not all(accepted)
        assert sum(skipped) == sum(size for size, ok in zip(sizes, accepted) if not ok)
        os.kill(scorer.process.pid, signal.SIGCONT)
        deadline = time.monotonic() + 120
        while sum(sum(r.rows) for r in reports) < in_flight:
            assert time.monotonic() < deadline, "the accepted rows were not scored"
            time.sleep(0.1)
        assert not any(r.failed for r in reports)
        assert sorted(rows for r in reports for rows in r.rows) == sorted(s for s, ok in zip(sizes, accepted) if ok)
        assert scorer.submit("2026-01-01T00:00:00.000Z", "after", columns, 1)  # the bound is free again
    finally:
        os.kill(scorer.process.pid, signal.SIGCONT)
        scorer.close()
    assert scorer.process.exitcode == 0
    logged = logged_rows(tmp_path / "logs", "exp1")["challenger"]
    assert len(logged) == in_flight + 1


def test_a_scorer_that_dies_turns_its_rows_into_counted_skips_and_the_server_carries_on(tmp_path):
    project = copy_example(tmp_path)
    record = register_version(project, seed=1)
    registry = project / ".mlci" / "registry"
    plan = ScorerPlan(registry=registry, version=record["version"], experiment_id="exp1", role="challenger",
                      log_dir=None, log_max_bytes=10_000_000, log_queue_rows=100_000)
    skipped: list[int] = []
    scorer = ShadowScorer(plan, load_served_model(registry, record["version"]).features, capacity=1000,
                          on_skip=skipped.append, on_report=lambda report: None)
    scorer.start()
    columns = {name: [value] * 5 for name, value in holdout_records(project, 1)[0].items()}
    os.kill(scorer.process.pid, signal.SIGSTOP)
    assert all(scorer.submit("2026-01-01T00:00:00.000Z", f"r{n}", columns, 5) for n in range(3))
    os.kill(scorer.process.pid, signal.SIGKILL)  # e.g. the kernel's OOM killer
    deadline, submitted = time.monotonic() + 30, 15
    while True:
        submitted += 5
        if not scorer.submit("2026-01-01T00:00:00.000Z", "later", columns, 5):
            break
        assert time.monotonic() < deadline, "rows are still accepted for a dead scorer"
        time.sleep(0.05)
    # nothing was scored: every row, queued before the kill or offered after it, is counted as skipped
    assert sum(skipped) == submitted
    started = time.monotonic()
    scorer.close()
    assert time.monotonic() - started < 5
