"""The shadow challenger's own process, at the lowest CPU priority, so the champion always wins the CPU.

Scoring the challenger on a thread of the server competes with the champion for the interpreter lock and
for the CPU: with the server saturated the champion's p99 rose by 7-35%. Here each server process (each
worker) starts one scorer process beside it:

- requests hand their validated rows to ``ShadowScorer.submit``, which only counts them against a bound
  (``capacity`` rows in flight, i.e. queued, in the pipe or being scored) and appends them to an in-memory
  queue; a sender thread pickles what arrived every ``SEND_SECONDS`` into the pipe to the scorer. When the
  bound is reached the rows are skipped and counted, never waited for;
- the scorer loads and verifies the challenger from the registry itself (models are never pickled across
  processes), then moves every one of its threads to ``SCHED_IDLE`` (nice 19 where that policy does not
  exist): it runs only on CPU time nobody else wants;
- it scores what is waiting together (up to ``COALESCE_ROWS`` rows per model call) and writes the
  challenger's rows to the prediction log itself, into a file of its own (the file name holds the writer's
  pid, so every file keeps a single writer), then reports each call back (rows, CPU seconds, failure, log
  drops) on a second pipe; a reporter thread in the server turns the reports into metrics and frees the
  rows from the bound.

It dies with the server: it holds the only read end of the request pipe, so when the server exits in any way
(SIGKILL included) the next read returns end-of-file and the scorer exits. ``PR_SET_PDEATHSIG`` is not used:
it fires when the *thread* that started the child ends, and the model (and so the scorer) is loaded on a
thread that ends once it has loaded. The scorer ignores SIGINT and SIGTERM (a Ctrl-C or a ``kill`` of the
process group reaches both): the server stops it, after it has scored what is queued (``close``).
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

COALESCE_ROWS = 1000  # rows scored in one challenger call at most
# How often the sender thread wakes to pass queued requests on: one pickle and one write per interval
# rather than per request, so the server's process spends next to nothing on shadow traffic.
SEND_SECONDS = 0.01
PROCESS_NAME = "mlci-shadow"  # what ps and top show for the scorer
_STOP = object()


@dataclass(frozen=True)
class ScorerPlan:
    """What the scorer process needs to load the challenger and log its rows."""

    registry: Path
    version: int
    experiment_id: str
    role: str
    log_dir: Path | None
    log_max_bytes: int
    log_queue_rows: int


@dataclass(frozen=True)
class Report:
    """One challenger call, as the scorer reports it: the rows of each request it covered, the CPU time it
    took (the scorer's wall-clock time measures the server's load, not the challenger), whether it failed,
    and the rows its prediction log dropped or failed to write since the last report."""

    rows: tuple[int, ...]
    cpu_seconds: float
    failed: bool = False
    log_dropped: int = 0
    log_errors: int = 0


class ShadowScorer:
    """The server's handle on its scorer process."""

    def __init__(self, plan: ScorerPlan, features: list[str], *, capacity: int,
                 on_skip: Callable[[int], None], on_report: Callable[[Report], None]) -> None:
        self.plan = plan
        self.features = features
        self.capacity = capacity
        self.on_skip = on_skip
        self.on_report = on_report
        self.process: multiprocessing.process.BaseProcess | None = None
        self._in_flight = 0
        self._gone = False  # the scorer exited (or could not start): every row is skipped
        self._closing = False
        self._lock = threading.Lock()
        self._outbox: queue.SimpleQueue = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        context = multiprocessing.get_context("spawn")  # no fork of a process with threads
        requests_in, self._requests = context.Pipe(duplex=False)
        self._reports, reports_out = context.Pipe(duplex=False)
        self.process = context.Process(target=run_scorer, args=(self.plan, requests_in, reports_out),
                                       name="mlci-shadow-scorer", daemon=True)
        self.process.start()
        # The scorer holds the only other ends: its exit ends the reports, the server's ends the requests.
        requests_in.close()
        reports_out.close()
        for target, name in ((self._send, "shadow-sender"), (self._receive, "shadow-reports")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def submit(self, ts: str, request_id: str, columns: dict[str, list[Any]], rows: int) -> bool:
        """Queue the rows for the challenger; False (and counted) when ``capacity`` rows are in flight."""
        with self._lock:
            full = self._gone or self._in_flight + rows > self.capacity
            if not full:
                self._in_flight += rows
        if full:
            self.on_skip(rows)
            return False
        self._outbox.put((ts, request_id, columns, rows))
        return True

    def close(self, timeout: float = 20.0) -> None:
        """Let the scorer score what is queued, then stop it (killed if it has not finished in time)."""
        if self.process is None:
            return
        deadline = time.monotonic() + timeout
        self._closing = True
        self._outbox.put(_STOP)
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self.process.join(max(0.0, deadline - time.monotonic()))
        if self.process.is_alive():
            print(f"mlci.serve: the shadow scorer had not finished after {timeout:.0f} s; stopped, its queued "
                  "rows are not scored", file=sys.stderr, flush=True)
            self.process.kill()
            self.process.join()
        self._requests.close()
        self._reports.close()

    # -- the server's threads ---------------------------------------------------------------------

    def _send(self) -> None:
        while True:
            items = [self._outbox.get()]
            time.sleep(SEND_SECONDS)
            while True:
                try:
                    items.append(self._outbox.get_nowait())
                except queue.Empty:
                    break
            stop = _STOP in items
            batch = [(ts, request_id, {name: columns[name] for name in self.features}, rows)
                     for ts, request_id, columns, rows in (item for item in items if item is not _STOP)]
            try:
                if batch:
                    self._requests.send(batch)
                if stop:
                    self._requests.send(None)
            except OSError:
                pass  # the scorer is gone: the reporter thread counts every row in flight as skipped
            if stop:
                return

    def _receive(self) -> None:
        while True:
            try:
                report = self._reports.recv()
            except (EOFError, OSError):
                break
            self.on_report(report)
            with self._lock:
                self._in_flight -= sum(report.rows)
        with self._lock:  # rows accepted from now on could not be scored: none are
            self._gone = True
            lost, self._in_flight = self._in_flight, 0
        if lost:
            self.on_skip(lost)
        if not self._closing:
            print("mlci.serve: the shadow scorer has exited; shadow rows are skipped and counted from now on",
                  file=sys.stderr, flush=True)


# -- the scorer process ---------------------------------------------------------------------------


def run_scorer(plan: ScorerPlan, requests: Any, reports: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _name_process(PROCESS_NAME)
    from mlci.serve.model import load_served_model
    from mlci.serve.predlog import PredictionLog

    # Loaded at normal priority: start-up is a one-off, and at idle priority on a busy host it could take
    # minutes. Everything after this line runs only on CPU time nobody else wants.
    try:
        model = load_served_model(plan.registry, plan.version)
    except Exception as exc:
        print(f"mlci.serve: the shadow scorer could not load challenger version {plan.version}: "
              f"{type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
    lower_priority()
    counts = {"dropped": 0, "errors": 0}
    log = None
    if plan.log_dir is not None:
        log = PredictionLog(plan.log_dir, max_bytes=plan.log_max_bytes, max_rows=plan.log_queue_rows,
                            on_drop=lambda rows: counts.__setitem__("dropped", counts["dropped"] + rows),
                            on_error=lambda: counts.__setitem__("errors", counts["errors"] + 1))
        log.start()
    _serve(model, plan, log, counts, requests, reports)
    if log is not None:
        log.close()
    if counts["dropped"] or counts["errors"]:
        _report(reports, Report((), 0.0, log_dropped=counts["dropped"], log_errors=counts["errors"]))


def _name_process(name: str) -> None:
    try:
        with open("/proc/self/comm", "w") as handle:
            handle.write(name)
    except OSError:  # not Linux: the name is only a convenience
        pass


def lower_priority() -> str:
    """Every thread of this process (libraries may have started some while the model loaded) to SCHED_IDLE,
    or nice 19 where that policy does not exist. Returns which."""
    tasks = [int(t) for t in os.listdir("/proc/self/task")] if os.path.isdir("/proc/self/task") else [0]
    try:
        for task in tasks:
            os.sched_setscheduler(task, os.SCHED_IDLE, os.sched_param(0))
        return "idle"
    except (AttributeError, OSError):
        os.nice(19 - os.nice(0))
        return "nice 19"


def _serve(model: Any, plan: ScorerPlan, log: Any, counts: dict[str, int], requests: Any, reports: Any) -> None:
    backlog: deque = deque()
    stopping = False
    while backlog or not stopping:
        if not stopping:
            stopping = _receive(requests, backlog, block=not backlog)
        if backlog:
            _score(model, plan, _take(backlog), log, counts, reports)


def _receive(requests: Any, backlog: deque, *, block: bool) -> bool:
    """Move every waiting message (at least one when ``block``) to ``backlog``; True once told to stop."""
    while block or requests.poll():
        block = False
        try:
            message = requests.recv()
        except (EOFError, OSError):  # the server is gone, however it ended: so is its scorer
            os._exit(0)
        if message is None:
            return True
        backlog.extend(message)
    return False


def _take(backlog: deque) -> list[tuple]:
    """The oldest requests, up to COALESCE_ROWS rows (at least one request): one model call for many small
    requests costs little more than for one."""
    items = [backlog.popleft()]
    rows = items[0][3]
    while backlog and rows + backlog[0][3] <= COALESCE_ROWS:
        items.append(backlog.popleft())
        rows += items[-1][3]
    return items


def _score(model: Any, plan: ScorerPlan, items: list[tuple], log: Any, counts: dict[str, int],
           reports: Any) -> None:
    from mlci.serve.predlog import LoggedBatch

    rows = tuple(item[3] for item in items)
    columns = {name: [v for item in items for v in item[2][name]] for name in model.features}
    started = time.thread_time()
    try:
        predictions, probabilities = model.predict(columns)
    except Exception as exc:  # never reaches a client; counted for the error-rate guardrail
        print(f"mlci.serve: challenger version {model.version} failed to score {len(items)} shadow requests: "
              f"{type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        _report(reports, Report(rows, time.thread_time() - started, failed=True))
        return
    cpu_seconds = time.thread_time() - started
    if log is not None:
        classes = [str(c) for c in model.classes] if model.classes is not None else None
        offset = 0
        for ts, request_id, _, count in items:
            part = slice(offset, offset + count)
            # no features: the champion's line of the same request and row holds them
            log.submit(LoggedBatch(ts, request_id, model.version, {}, predictions[part],
                                   probabilities[part] if probabilities is not None else None, classes,
                                   role=plan.role, experiment=plan.experiment_id))
            offset += count
    dropped, errors = counts["dropped"], counts["errors"]
    counts["dropped"] = counts["errors"] = 0
    _report(reports, Report(rows, cpu_seconds, log_dropped=dropped, log_errors=errors))


def _report(reports: Any, report: Report) -> None:
    try:
        reports.send(report)
    except OSError:  # the server is gone
        os._exit(0)
