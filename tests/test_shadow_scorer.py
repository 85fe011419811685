"""The shadow challenger's scorer process (mlci.serve.shadow), on real servers and real model versions:

- it runs at idle CPU priority (every thread), and it, not the server, writes the challenger's rows;
- it dies with a server killed by SIGKILL, and nothing the server started outlives it;
- with several workers each has its own scorer, and a stopped server leaves none behind;
- while it cannot keep up, rows beyond its bound, or beyond what its pipe holds, are skipped and counted,
  exactly, and never wait; a body only partly written into a full pipe is never scored;
- it receives each accepted request's body as the server received it, in frames of at most PIPE_BUF bytes,
  and scores exactly the bodies the champion accepted;
- it keeps to its CPU budget over any stretch of time, however much work waits, and still gets its whole
  share when flooded.
"""

from __future__ import annotations

import json
import os
import random
import signal
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlci.ops.deliver.deploy import free_port
from mlci.ops.deliver.experiment import logged_rows
from mlci.serve.model import load_served_model
from mlci.serve.shadow import (
    BUDGET_WINDOW_SECONDS,
    FRAME_BYTES,
    PROCESS_NAME,
    CpuBudget,
    FrameReader,
    ScorerPlan,
    ShadowScorer,
    encode,
    write_frames,
)
from tests.serving_support import copy_example, holdout_records, register_version
from tests.slow_challenger import SECONDS_PER_ROW, SlowScorer

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent


class Served:
    """``python -m mlci.serve`` with a shadow experiment, as a deployment starts it."""

    def __init__(self, directory: Path, *, workers: int = 1) -> None:
        self.project = copy_example(directory)
        registry = self.project / ".mlci" / "registry"
        champion = register_version(self.project, seed=0)["version"]
        challenger = self.challenger = register_version(self.project, seed=1)["version"]
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
            assert self.post(json.dumps(records).encode(), ids[-1])[0] == 200
        return ids

    def post(self, body: bytes, request_id: str) -> tuple[int, dict]:
        request = urllib.request.Request(f"{self.url}/predict", data=body,
                                         headers={"Content-Type": "application/json", "X-Request-ID": request_id})
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as refused:
            return refused.code, json.loads(refused.read())

    def metric(self, name: str) -> float:
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=10) as answer:
            for line in answer.read().decode().splitlines():
                if line.startswith(name + " "):
                    return float(line.split()[1])
        return 0.0

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
    skipped, reports = [], []
    scorer = ShadowScorer(_plan(registry, record["version"], tmp_path / "logs"), capacity=200,
                          on_skip=skipped.append, on_report=reports.append)
    scorer.start()
    try:
        os.kill(scorer.process.pid, signal.SIGSTOP)  # a scorer that gets no CPU at all
        sizes = [random.Random(seed).randint(1, 40) for seed in range(60)]
        expected, in_flight = [], 0
        for size in sizes:  # what a bound of 200 rows in flight must accept, in order
            expected.append(in_flight + size <= 200)
            in_flight += size if expected[-1] else 0
        [record] = holdout_records(project, 1)
        started = time.perf_counter()
        accepted = [scorer.submit("2026-01-01T00:00:00.000Z", f"r{n}", json.dumps([record] * size).encode(), size)
                    for n, size in enumerate(sizes)]
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
        assert scorer.submit("2026-01-01T00:00:00.000Z", "after", json.dumps([record]).encode(), 1)  # free again
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
    skipped: list[int] = []
    scorer = ShadowScorer(_plan(registry, record["version"], None), capacity=1000, on_skip=skipped.append,
                          on_report=lambda report: None)
    scorer.start()
    body = json.dumps({"records": holdout_records(project, 1) * 5}).encode()  # 5 rows
    os.kill(scorer.process.pid, signal.SIGSTOP)
    assert all(scorer.submit("2026-01-01T00:00:00.000Z", f"r{n}", body, 5) for n in range(3))
    os.kill(scorer.process.pid, signal.SIGKILL)  # e.g. the kernel's OOM killer
    deadline, submitted = time.monotonic() + 30, 15
    while True:
        submitted += 5
        if not scorer.submit("2026-01-01T00:00:00.000Z", "later", body, 5):
            break
        assert time.monotonic() < deadline, "rows are still accepted for a dead scorer"
        time.sleep(0.05)
    # nothing was scored: every row, queued before the kill or offered after it, is counted as skipped
    assert sum(skipped) == submitted
    started = time.monotonic()
    scorer.close()
    assert time.monotonic() - started < 5


def _plan(registry: Path, version: int, log_dir: Path | None) -> ScorerPlan:
    """The scorer's plan for a challenger that is also the champion whose schema validates the bodies."""
    return ScorerPlan(registry=registry, version=version, experiment_id="exp1", role="challenger", log_dir=log_dir,
                      log_max_bytes=10_000_000, log_queue_rows=100_000,
                      schema=load_served_model(registry, version).schema)


def test_the_scorer_scores_exactly_the_bodies_the_champion_accepted_as_received(tmp_path):
    """The scorer parses and validates the bodies itself: a body the champion refused never reaches it, both
    body shapes and a body of many frames are read whole, and its predictions are the challenger's own."""
    server = Served(tmp_path)
    try:
        records = holdout_records(server.project, 600)
        wrong_type = [{**records[0], "age": "old"}]
        sent = {  # request id -> (body, rows the champion accepted or None)
            "list": (json.dumps(records[:2]).encode(), 2),
            "object": (json.dumps({"records": records[2:5]}, indent=2).encode(), 3),
            "unicode": (json.dumps(records[5:6], ensure_ascii=False).encode(), 1),
            "large": (json.dumps({"records": records}).encode(), 600),
            "invalid-row": (json.dumps(records[:3] + wrong_type).encode(), None),
            "not-json": (b'{"records": [', None),
            "empty": (b"[]", None),
        }
        assert len(sent["large"][0]) > 20 * FRAME_BYTES
        for request_id, (body, rows) in sent.items():
            status, _ = server.post(body, request_id)
            assert (status == 200) is (rows is not None)
        expected = {(request_id, row) for request_id, (_, rows) in sent.items() for row in range(rows or 0)}
        logged = server.wait_for_challenger_rows(len(expected))
        assert set(logged["challenger"]) == set(logged["champion"]) == expected
        challenger = load_served_model(server.project / ".mlci" / "registry", server.challenger)
        predictions, _ = challenger.predict({name: [r[name] for r in records] for name in challenger.features})
        assert [logged["challenger"][("large", row)]["prediction"] for row in range(600)] == predictions
        assert server.metric("mlci_experiment_shadow_skipped_total") == 0
        assert server.metric('mlci_experiment_errors_total{role="challenger"}') == 0
    finally:
        server.stop()


def test_a_full_pipe_skips_and_counts_exactly_and_never_scores_a_body_cut_short(tmp_path):
    """With the scorer stalled and no row bound in the way, the pipe fills: from then on requests are
    skipped and counted, never waited for. Bodies of several frames meet the full pipe part-way; none of
    those is scored, and every body that went in whole is."""
    project = copy_example(tmp_path)
    record = register_version(project, seed=1)
    registry = project / ".mlci" / "registry"
    skipped, reports = [], []
    scorer = ShadowScorer(_plan(registry, record["version"], tmp_path / "logs"), capacity=10**9,
                          on_skip=skipped.append, on_report=reports.append)
    scorer.start()
    try:
        os.kill(scorer.process.pid, signal.SIGSTOP)
        rows = [random.Random(seed).choice([1, 7, 30]) for seed in range(3000)]  # 1, 2 or 3+ frames
        bodies = [json.dumps(holdout_records(project, size)).encode() for size in (1, 7, 30)]
        by_size = dict(zip((1, 7, 30), bodies))
        started = time.perf_counter()
        accepted = [scorer.submit("2026-01-01T00:00:00.000Z", f"r{n}", by_size[size], size)
                    for n, size in enumerate(rows)]
        assert time.perf_counter() - started < 5.0  # never waits for the stalled scorer
        assert any(accepted) and not all(accepted)
        assert sum(skipped) == sum(size for size, ok in zip(rows, accepted) if not ok)
        os.kill(scorer.process.pid, signal.SIGCONT)
        wanted = sum(size for size, ok in zip(rows, accepted) if ok)
        deadline = time.monotonic() + 180
        while sum(sum(r.rows) for r in reports) < wanted:
            assert time.monotonic() < deadline, "the accepted rows were not scored"
            time.sleep(0.1)
    finally:
        os.kill(scorer.process.pid, signal.SIGCONT)
        scorer.close()
    assert not any(r.failed for r in reports)
    logged = logged_rows(tmp_path / "logs", "exp1")["challenger"]
    assert {request_id for request_id, _ in logged} == {f"r{n}" for n, ok in enumerate(accepted) if ok}
    assert len(logged) == wanted


@settings(max_examples=60, deadline=None)
@given(sizes=st.lists(st.integers(0, 3 * FRAME_BYTES), min_size=1, max_size=40),
       reads=st.lists(st.integers(1, 3 * FRAME_BYTES), min_size=1, max_size=20),
       drain_every=st.integers(1, 12))
def test_frames_through_a_real_pipe_give_back_exactly_the_bodies_written_whole(sizes, reads, drain_every):
    """Bodies of any size, written non-blocking into a small real pipe that fills up and read back in pieces
    of any size: the reader gives back exactly the bodies whose every frame went in, in order, byte for
    byte; a body cut short by a full pipe is dropped, never glued to the next one."""
    import fcntl

    read_end, write_end = os.pipe()
    try:
        fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, 4 * 4096)
        os.set_blocking(write_end, False)
        os.set_blocking(read_end, False)
        reader, received, written, reads_left = FrameReader(), [], [], list(reads)

        def drain() -> None:
            while True:
                try:
                    chunk = os.read(read_end, reads_left.pop(0) if reads_left else FRAME_BYTES)
                except BlockingIOError:
                    return
                received.extend(reader.feed(chunk))

        for number, size in enumerate(sizes):
            body = bytes(random.Random(number).randrange(256) for _ in range(size))
            request_id = f"req-{number}"
            if write_frames(write_end, encode("2026-01-01T00:00:00.000Z", request_id, number + 1, body)):
                written.append((request_id, number + 1, body))
            if number % drain_every == drain_every - 1:
                drain()
        drain()
        assert [(b.request_id, b.rows, b.body) for b in received] == written
        assert all(b.ts == "2026-01-01T00:00:00.000Z" for b in received)
    finally:
        os.close(read_end)
        os.close(write_end)


def test_a_body_cut_short_by_a_full_pipe_is_dropped_and_never_glued_to_the_next(tmp_path):
    import fcntl
    import termios

    def waiting(fd: int) -> int:
        return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]

    read_end, write_end = os.pipe()
    try:
        fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, 4 * 4096)
        os.set_blocking(write_end, False)
        three_frames = b"x" * (2 * FRAME_BYTES + 100)
        assert write_frames(write_end, encode("2026-01-01T00:00:00.000Z", "first", 1, three_frames))
        before = waiting(write_end)
        assert not write_frames(write_end, encode("2026-01-01T00:00:00.000Z", "cut", 1, three_frames))
        assert waiting(write_end) > before  # its first frame went in, the rest did not fit
        reader = FrameReader()
        received = reader.feed(os.read(read_end, 1 << 20))
        assert write_frames(write_end, encode("2026-01-01T00:00:00.000Z", "next", 2, b"[1]"))
        received += reader.feed(os.read(read_end, 1 << 20))
        assert [(b.request_id, b.rows, b.body) for b in received] == [("first", 1, three_frames), ("next", 2, b"[1]")]
    finally:
        os.close(read_end)
        os.close(write_end)


def test_a_body_the_scorer_cannot_read_fails_alone_and_the_others_are_scored(tmp_path):
    """Bodies reach the scorer only after the champion accepted them, so none should fail to parse or
    validate there; if one does, it counts as a failed challenger request (the error-rate guardrail sees it)
    and leaves the bound, and the bodies scored with it in the same call are scored as usual."""
    project = copy_example(tmp_path)
    record = register_version(project, seed=1)
    registry = project / ".mlci" / "registry"
    reports = []
    scorer = ShadowScorer(_plan(registry, record["version"], tmp_path / "logs"), capacity=100,
                          on_skip=lambda rows: None, on_report=reports.append)
    scorer.start()
    records = holdout_records(project, 2)
    bodies = {"good-1": (json.dumps(records).encode(), 2), "not-json": (b"[{", 3),
              "wrong-count": (json.dumps(records).encode(), 5), "invalid": (json.dumps([{"age": "x"}]).encode(), 1),
              "good-2": (json.dumps({"records": records[:1]}).encode(), 1)}
    try:
        os.kill(scorer.process.pid, signal.SIGSTOP)  # all five arrive before the scorer reads: one call
        for request_id, (body, rows) in bodies.items():
            assert scorer.submit("2026-01-01T00:00:00.000Z", request_id, body, rows)
        os.kill(scorer.process.pid, signal.SIGCONT)
        deadline = time.monotonic() + 60
        while sum(sum(r.rows) for r in reports) < 12:
            assert time.monotonic() < deadline, "not every body was reported"
            time.sleep(0.1)
        assert scorer.submit("2026-01-01T00:00:00.000Z", "after", json.dumps(records).encode(), 2)  # bound free
    finally:
        os.kill(scorer.process.pid, signal.SIGCONT)
        scorer.close()
    assert sorted(rows for r in reports if r.failed for rows in r.rows) == [1, 3, 5]
    assert sorted(rows for r in reports if not r.failed for rows in r.rows) == [1, 2, 2]
    logged = logged_rows(tmp_path / "logs", "exp1")["challenger"]
    assert set(logged) == {("good-1", 0), ("good-1", 1), ("good-2", 0), ("after", 0), ("after", 1)}


# -- the CPU budget -------------------------------------------------------------------------------


class _Process:
    """A process on fake clocks: its CPU time grows only while it runs, its wall-clock time always."""

    def __init__(self) -> None:
        self.wall = self.cpu = 0.0

    def run(self, seconds: float) -> None:
        self.wall += seconds
        self.cpu += seconds

    def idle(self, seconds: float) -> None:
        self.wall += seconds


@settings(max_examples=300, deadline=None)
@given(share=st.floats(0.01, 1.0), window=st.floats(0.05, 3.0),
       calls=st.lists(st.tuples(st.floats(0.0, 5.0), st.integers(1, 2000), st.floats(1e-6, 0.05)),
                      min_size=1, max_size=80))
def test_the_cpu_budget_holds_any_stretch_of_time_to_its_share(share, window, calls):
    """Calls of any cost (the cost per row may change from call to call), after idle spells of any length:
    between any two moments the process's CPU time grows by at most share * (elapsed + window), plus the
    cost of the call running at the later moment; each call takes no more rows than the budget allows."""
    process = _Process()
    budget = CpuBudget(share, window=window, cpu=lambda: process.cpu, clock=lambda: process.wall,
                       sleep=process.idle)
    moments = [(process.wall, process.cpu, 0.0)]  # (wall, cpu, the cost of the call running then)
    for gap, rows, seconds_per_row in calls:
        process.idle(gap)
        moments.append((process.wall, process.cpu, 0.0))
        rows = min(rows, budget.rows_per_call())
        process.run(rows * seconds_per_row)
        moments.append((process.wall, process.cpu, rows * seconds_per_row))
        budget.charge(rows)
        moments.append((process.wall, process.cpu, 0.0))
    for i, (wall_1, cpu_1, _) in enumerate(moments):
        for wall_2, cpu_2, running in moments[i + 1:]:
            assert cpu_2 - cpu_1 <= share * (wall_2 - wall_1 + window) + running + 1e-9


@settings(max_examples=200, deadline=None)
@given(share=st.floats(0.01, 1.0), window=st.floats(0.05, 3.0),
       costs=st.lists(st.floats(1e-5, 0.5), min_size=1, max_size=80))
def test_a_flooded_scorer_gets_its_whole_share(share, window, costs):
    """With work always waiting (no idle spell), the budget never holds the process below its share."""
    process = _Process()
    budget = CpuBudget(share, window=window, cpu=lambda: process.cpu, clock=lambda: process.wall,
                       sleep=process.idle)
    for cost in costs:
        process.run(cost)
        budget.charge(1)
        assert process.cpu >= share * process.wall - 1e-9


def test_a_cpu_share_outside_0_to_1_is_refused():
    for share in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="CPU share"):
            CpuBudget(share)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wait_for_reported_rows(reports: list, rows: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while sum(sum(r.rows) for r in reports) < rows:
        assert time.monotonic() < deadline, "the accepted rows were not scored"
        time.sleep(0.05)


def test_a_flooded_scorer_keeps_to_its_cpu_share_and_counts_every_skipped_row_once(tmp_path):
    """A real scorer process with a challenger that costs 2 ms of CPU per row, at normal priority (so that
    only its budget holds it back), flooded with one-row requests for several seconds: its CPU time stays
    within its share of the wall-clock time (plus one window and one call, as the budget promises); what it
    could not take is skipped and counted exactly once; what it took is all scored; and the CPU seconds it
    reports are the challenger's CPU time, not the time it waited for its budget."""
    share, flood_seconds = 0.2, 6.0
    project = copy_example(tmp_path)
    record = register_version(project, seed=1)
    registry = project / ".mlci" / "registry"
    skipped, reports = [], []
    scorer = SlowScorer(replace(_plan(registry, record["version"], tmp_path / "logs"), cpu_share=share),
                        capacity=300, on_skip=skipped.append, on_report=reports.append)
    scorer.start()
    body = json.dumps(holdout_records(project, 1)).encode()
    try:
        assert scorer.submit("2026-01-01T00:00:00.000Z", "warm", body, 1)
        _wait_for_reported_rows(reports, 1)  # loaded: from here on every CPU second is the budget's
        cpu_before, started = _cpu_seconds(scorer.process.pid), time.monotonic()
        accepted = []
        while time.monotonic() - started < flood_seconds:
            accepted.append(scorer.submit("2026-01-01T00:00:00.000Z", f"r{len(accepted)}", body, 1))
            time.sleep(0.0002)
        elapsed, cpu_used = time.monotonic() - started, _cpu_seconds(scorer.process.pid) - cpu_before
        _wait_for_reported_rows(reports, 1 + sum(accepted))
        cpu_total = _cpu_seconds(scorer.process.pid) - cpu_before
    finally:
        scorer.close()
    window = BUDGET_WINDOW_SECONDS
    # one window's burst, one call of about one window's worth, and /proc's clock ticks (10 ms) with room
    assert cpu_used <= share * (elapsed + 2 * window) + 0.1, (cpu_used, elapsed)
    assert 0 < sum(accepted) < len(accepted)  # some rows were taken, and the flood was more than its share
    assert sum(skipped) == len(accepted) - sum(accepted)
    assert sorted(rows for r in reports for rows in r.rows) == [1] * (1 + sum(accepted))
    assert not any(r.failed for r in reports)
    reported = sum(r.cpu_seconds for r in reports[1:])
    assert sum(accepted) * SECONDS_PER_ROW <= reported <= cpu_total + 0.02
    logged = logged_rows(tmp_path / "logs", "exp1")["challenger"]
    assert {request_id for request_id, _ in logged} == {"warm"} | {f"r{n}" for n, ok in enumerate(accepted) if ok}
