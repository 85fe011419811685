"""The shadow challenger's own process, at the lowest CPU priority, so the champion always wins the CPU.

Scoring the challenger on a thread of the server competes with the champion for the interpreter lock and
for the CPU: with the server saturated the champion's p99 rose by 7-35%. Here each server process (each
worker) starts one scorer process beside it, and the response path does as little as it can for it:

- a request the champion accepted hands its body, the bytes exactly as received, to
  ``ShadowScorer.submit`` with its request id, timestamp and row count. ``submit`` counts the rows against a
  bound (``capacity`` rows in flight, i.e. in the pipe or being scored) and writes them straight into the
  pipe to the scorer, non-blocking, in frames of at most ``PIPE_BUF`` bytes, which the kernel writes whole
  or not at all. Nothing is copied into a queue, pickled or handed to another thread. When the bound is
  reached or the pipe is full the rows are skipped and counted, never waited for; a body whose first
  frames went in but not the rest is dropped by the scorer, and its rows are counted as skipped;
- the scorer loads and verifies the challenger from the registry itself (models are never pickled across
  processes), then moves every one of its threads to ``SCHED_IDLE`` (nice 19 where that policy does not
  exist): it runs only on CPU time nobody else wants. Idle priority alone still lets it take a CPU whenever
  one is idle for a moment, and the server's next wake-up may then wait for it or move away from its
  cache, so it also keeps to a budget of its own: ``CpuBudget`` holds its CPU time to ``cpu_share`` of one
  CPU by sleeping after a call that overdrew it (meanwhile requests wait in the pipe, and once it is full
  they are skipped and counted). It wakes at most once per ``COLLECT_SECONDS`` (a
  write into the pipe wakes nobody while it sleeps), parses and validates the bodies itself with the
  champion's schema (the champion accepted each of them) and scores what is waiting together (up to
  ``COALESCE_ROWS`` rows per model call);
- it writes the challenger's rows to the prediction log itself, into a file of its own (the file name holds
  the writer's pid, so every file keeps a single writer), then reports each call back (rows, CPU seconds,
  failure, log drops) on a second pipe; a reporter thread in the server turns the reports into metrics and
  frees the rows from the bound.

It dies with the server: it holds the only read end of the request pipe, so when the server exits in any way
(SIGKILL included) the next read returns end-of-file and the scorer exits. ``PR_SET_PDEATHSIG`` is not used:
it fires when the *thread* that started the child ends, and the model (and so the scorer) is loaded on a
thread that ends once it has loaded. The scorer ignores SIGINT and SIGTERM (a Ctrl-C or a ``kill`` of the
process group reaches both): the server stops it, after it has scored what is queued (``close``).
"""

from __future__ import annotations

import multiprocessing
import os
import select
import signal
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlci.core.config import SHADOW_CPU_SHARE
from mlci.core.dataschema import DataSchema

COALESCE_ROWS = 1000  # rows scored in one challenger call at most
# How long the scorer waits, once something has arrived, before it reads the pipe again: it then finds many
# requests at once, and the writes in between wake nobody (a wake-up costs the writing request its time).
COLLECT_SECONDS = 0.05
PROCESS_NAME = "mlci-shadow"  # what ps and top show for the scorer
PIPE_BYTES = 1 << 20  # the request pipe's capacity where the system lets it be raised (Linux: F_SETPIPE_SZ)
# The scorer's CPU budget refills at ``cpu_share`` CPU seconds per second up to ``cpu_share`` times this: after
# an idle spell it may spend that much at once, and no more.
BUDGET_WINDOW_SECONDS = 1.0

# The request pipe carries frames: a 2-byte length, then a kind and its payload. A frame is at most
# PIPE_BUF bytes so that a non-blocking write puts all of it into the pipe or none of it (POSIX), and the
# stream never holds half a frame. A body starts in a START frame (after its request's rows, body length,
# timestamp and id) and goes on in MORE frames; STOP asks the scorer to finish what it has and exit.
FRAME_BYTES = select.PIPE_BUF
_LENGTH = struct.Struct("<H")
_HEAD = struct.Struct("<cIIBB")  # START, rows, body length, timestamp length, request id length
START, MORE, STOP = b"S", b"M", b"X"


@dataclass(frozen=True)
class ScorerPlan:
    """What the scorer process needs to load the challenger, read the champion's requests and log its rows."""

    registry: Path
    version: int
    experiment_id: str
    role: str
    log_dir: Path | None
    log_max_bytes: int
    log_queue_rows: int
    schema: DataSchema  # the champion's: the bodies are the champion's requests, validated as it does
    accept_unknown_categories: bool = True
    cpu_share: float = SHADOW_CPU_SHARE  # of one CPU: the scorer's CpuBudget


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


@dataclass(frozen=True)
class Body:
    """One request as the scorer receives it."""

    ts: str
    request_id: str
    rows: int
    body: bytes


# -- frames -----------------------------------------------------------------------------------------


def encode(ts: str, request_id: str, rows: int, body: bytes) -> list[bytes]:
    """The frames that carry one request's body, each at most FRAME_BYTES long."""
    stamp, name = ts.encode(), request_id.encode()
    head = _HEAD.pack(START, rows, len(body), len(stamp), len(name)) + stamp + name
    room = FRAME_BYTES - _LENGTH.size - len(head)
    frames = [_frame(head + body[:room])]
    step = FRAME_BYTES - _LENGTH.size - len(MORE)
    for start in range(room, len(body), step):
        frames.append(_frame(MORE + body[start:start + step]))
    return frames


def _frame(payload: bytes) -> bytes:
    return _LENGTH.pack(len(payload)) + payload


STOP_FRAME = _frame(STOP)


class FrameReader:
    """Turns the bytes read from the pipe, in pieces of any size, back into bodies. A body whose MORE frames
    never came (the pipe was full before its last frame went in) is dropped when the next START or STOP
    arrives: its rows were counted as skipped by the server."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._current: tuple[Body, list[bytes], int] | None = None  # the body being assembled, bytes missing
        self.stopped = False

    def feed(self, data: bytes) -> list[Body]:
        self._buffer += data
        bodies, offset = [], 0
        while len(self._buffer) - offset >= _LENGTH.size:
            (length,) = _LENGTH.unpack_from(self._buffer, offset)
            end = offset + _LENGTH.size + length
            if end > len(self._buffer):
                break
            body = self._frame(bytes(self._buffer[offset + _LENGTH.size:end]))
            offset = end
            if body is not None:
                bodies.append(body)
        del self._buffer[:offset]
        return bodies

    def _frame(self, frame: bytes) -> Body | None:
        kind = frame[:1]
        if kind == START:
            _, rows, size, stamp, name = _HEAD.unpack_from(frame)
            ts, request_id = frame[_HEAD.size:_HEAD.size + stamp], frame[_HEAD.size + stamp:_HEAD.size + stamp + name]
            piece = frame[_HEAD.size + stamp + name:]
            self._current = (Body(ts.decode(), request_id.decode(), rows, b""), [piece], size - len(piece))
        elif kind == MORE and self._current is not None:
            head, pieces, missing = self._current
            pieces.append(frame[1:])
            self._current = (head, pieces, missing - (len(frame) - 1))
        elif kind == STOP:
            self.stopped, self._current = True, None
            return None
        if self._current is None or self._current[2] > 0:
            return None
        head, pieces, missing = self._current
        self._current = None
        if missing < 0:  # more bytes than announced: not a body this server wrote; dropped
            return None
        return Body(head.ts, head.request_id, head.rows, b"".join(pieces))


def write_frames(fd: int, frames: list[bytes]) -> bool:
    """Write the frames into the non-blocking pipe ``fd``; False as soon as one does not fit (or the reader
    is gone). Each frame goes in whole or not at all, so the frames before it stay readable."""
    try:
        for frame in frames:
            os.write(fd, frame)
    except OSError:  # full (EAGAIN), the scorer is gone (EPIPE), or the pipe is closed: never the client's error
        return False
    return True


# -- the server's side ----------------------------------------------------------------------------


class ShadowScorer:
    """The server's handle on its scorer process."""

    def __init__(self, plan: ScorerPlan, *, capacity: int, on_skip: Callable[[int], None],
                 on_report: Callable[[Report], None]) -> None:
        self.plan = plan
        self.capacity = capacity
        self.on_skip = on_skip
        self.on_report = on_report
        self.process: multiprocessing.process.BaseProcess | None = None
        self._in_flight = 0
        self._gone = False  # the scorer exited (or could not start): every row is skipped
        self._closing = False
        self._lock = threading.Lock()  # one writer at a time: one body's frames are never interleaved
        self._fd = -1
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        context = multiprocessing.get_context("spawn")  # no fork of a process with threads
        requests_in, self._requests = context.Pipe(duplex=False)  # duplex=False: an os.pipe on POSIX
        self._reports, reports_out = context.Pipe(duplex=False)
        self._fd = self._requests.fileno()
        _widen(self._fd)
        os.set_blocking(self._fd, False)
        self.process = context.Process(target=self.entry_point(), args=(self.plan, requests_in, reports_out),
                                       name="mlci-shadow-scorer", daemon=True)
        self.process.start()
        # The scorer holds the only other ends: its exit ends the reports, the server's ends the requests.
        requests_in.close()
        reports_out.close()
        self._thread = threading.Thread(target=self._receive, name="shadow-reports", daemon=True)
        self._thread.start()

    def entry_point(self) -> Callable[[ScorerPlan, Any, Any], None]:
        """What the scorer process runs (a subclass may wrap it, e.g. to slow the challenger down)."""
        return run_scorer

    def submit(self, ts: str, request_id: str, body: bytes, rows: int) -> bool:
        """Write the request's body into the scorer's pipe; False (and counted) when ``capacity`` rows are in
        flight or the pipe is full. Never waits for the scorer."""
        frames = encode(ts, request_id, rows, body)
        with self._lock:
            sent = (not self._gone and not self._closing and self._in_flight + rows <= self.capacity
                    and write_frames(self._fd, frames))
            if sent:
                self._in_flight += rows
        if not sent:
            self.on_skip(rows)
        return sent

    def close(self, timeout: float = 20.0) -> None:
        """Let the scorer score what is queued, then stop it (killed if it has not finished in time)."""
        if self.process is None:
            return
        deadline = time.monotonic() + timeout
        with self._lock:
            self._closing = True
        self._write_stop(deadline)
        if self._thread is not None:
            self._thread.join(max(0.0, deadline - time.monotonic()))
        self.process.join(max(0.0, deadline - time.monotonic()))
        if self.process.is_alive():
            print(f"mlci.serve: the shadow scorer had not finished after {timeout:.0f} s; stopped, its queued "
                  "rows are not scored", file=sys.stderr, flush=True)
            self.process.kill()
            self.process.join()
        self._requests.close()
        self._reports.close()

    def _write_stop(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            try:
                os.write(self._fd, STOP_FRAME)
                return
            except BlockingIOError:  # the pipe is full: wait until the scorer has read some of it
                select.select([], [self._fd], [], max(0.0, deadline - time.monotonic()))
            except OSError:
                return  # the scorer is gone

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


def _widen(fd: int) -> None:
    """A larger pipe holds more requests while the scorer waits for CPU (Linux; elsewhere the default)."""
    try:
        import fcntl

        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    except (ImportError, AttributeError, OSError):  # not Linux, or above the system's pipe-max-size
        pass


# -- the scorer process ---------------------------------------------------------------------------


def run_scorer(plan: ScorerPlan, requests: Any, reports: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _name_process(PROCESS_NAME)
    from mlci.serve.model import load_served_model
    from mlci.serve.predlog import PredictionLog
    from mlci.serve.validation import RecordValidator

    # Loaded at normal priority: start-up is a one-off, and at idle priority on a busy host it could take
    # minutes. Everything after this line runs only on CPU time nobody else wants.
    try:
        model = load_served_model(plan.registry, plan.version)
    except Exception as exc:
        print(f"mlci.serve: the shadow scorer could not load challenger version {plan.version}: "
              f"{type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
    validator = RecordValidator(plan.schema, model.features, accept_unknown_categories=plan.accept_unknown_categories)
    lower_priority()
    counts = {"dropped": 0, "errors": 0}
    log = None
    if plan.log_dir is not None:
        log = PredictionLog(plan.log_dir, max_bytes=plan.log_max_bytes, max_rows=plan.log_queue_rows,
                            on_drop=lambda rows: counts.__setitem__("dropped", counts["dropped"] + rows),
                            on_error=lambda: counts.__setitem__("errors", counts["errors"] + 1))
        log.start()
    scorer = _Scorer(model, validator, plan, log, counts, reports)
    budget = CpuBudget(plan.cpu_share)
    for bodies in _batches(requests.fileno(), budget.rows_per_call):
        scorer.score(bodies)
        budget.charge(sum(body.rows for body in bodies))
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


class CpuBudget:
    """Holds the process's CPU time (every thread's: parsing, scoring, the log writer) to ``share`` of one
    CPU, whatever the host or container lets it take: a token bucket that refills at ``share`` CPU seconds
    per second of wall-clock time, up to ``share * window``. ``charge`` takes the CPU used since the last
    charge out of it and, when that overdrew it, sleeps until it is back at zero. So over any stretch of T
    seconds the process uses at most ``share * (T + window)`` CPU seconds, plus the call it is in (which
    ``rows_per_call`` keeps to about ``share * window``, at least one request, at the recent cost per row).
    The clocks are parameters so that the bound can be checked without waiting for it."""

    def __init__(self, share: float, *, window: float = BUDGET_WINDOW_SECONDS,
                 cpu: Callable[[], float] = time.process_time, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if not 0 < share <= 1:
            raise ValueError(f"a CPU share must be above 0 and at most 1, not {share}")
        self.share, self.limit = share, share * window
        self._cpu, self._clock, self._sleep = cpu, clock, sleep
        self._credit = self.limit  # CPU seconds it may spend now
        self._cpu_seen, self._seen = cpu(), clock()
        self._seconds_per_row: float | None = None  # the last call's CPU per row, overhead included

    def charge(self, rows: int) -> None:
        """Take the CPU used since the last charge (a call of ``rows`` rows and whatever came with it) out
        of the budget; sleep while it is overdrawn."""
        now, cpu = self._clock(), self._cpu()
        elapsed, used = now - self._seen, cpu - self._cpu_seen
        busy = min(elapsed, used)
        # Taken as an idle spell, then the call: the refill while idle stops at the limit; the refill during
        # the call (which spends faster than that) does not.
        self._credit = min(self.limit, self._credit + self.share * (elapsed - busy)) + self.share * busy - used
        self._cpu_seen, self._seen = cpu, now
        if rows > 0:
            self._seconds_per_row = used / rows
        if self._credit < 0:  # refilled by the time it wakes; the next charge counts the refill
            self._sleep(-self._credit / self.share)

    def rows_per_call(self) -> int:
        """How many rows one call may take: what ``share * window`` pays for at the last call's cost per
        row, between 1 and COALESCE_ROWS (the first call, with no cost known yet, may take them all)."""
        if not self._seconds_per_row:
            return COALESCE_ROWS
        return max(1, min(COALESCE_ROWS, int(self.limit / self._seconds_per_row)))


def _batches(fd: int, rows_per_call: Callable[[], int]) -> Iterator[list[Body]]:
    """The bodies the server sends, the oldest first, up to ``rows_per_call()`` rows (at least one body) at
    a time, until it says STOP (and everything before it is scored). Exits the process when the server is
    gone, however it ended."""
    os.set_blocking(fd, False)
    reader, backlog = FrameReader(), deque[Body]()
    while backlog or not reader.stopped:
        if not reader.stopped:
            if not backlog:
                select.select([fd], [], [])
                time.sleep(COLLECT_SECONDS)  # let the next requests arrive: one wake-up for them all
            backlog.extend(reader.feed(_read_waiting(fd)))
        if backlog:
            yield _take(backlog, rows_per_call())


def _read_waiting(fd: int) -> bytes:
    chunks: list[bytes] = []
    while True:
        try:
            chunk = os.read(fd, PIPE_BYTES)
        except BlockingIOError:
            return b"".join(chunks)
        except OSError:
            chunk = b""
        if not chunk:  # end of file: the server is gone, and so is its scorer
            os._exit(0)
        chunks.append(chunk)


def _take(backlog: deque, limit: int) -> list[Body]:
    """The oldest requests, up to ``limit`` rows (at least one request): one model call for many small
    requests costs little more than for one."""
    items = [backlog.popleft()]
    rows = items[0].rows
    while backlog and rows + backlog[0].rows <= limit:
        items.append(backlog.popleft())
        rows += items[-1].rows
    return items


class _Scorer:
    def __init__(self, model: Any, validator: Any, plan: ScorerPlan, log: Any, counts: dict[str, int],
                 reports: Any) -> None:
        self.model, self.validator, self.plan, self.log = model, validator, plan, log
        self.counts, self.reports = counts, reports

    def score(self, items: list[Body]) -> None:
        items, columns = self._read(items)
        if not items:
            return
        model = self.model
        rows = tuple(item.rows for item in items)
        started = time.thread_time()
        try:
            predictions, probabilities = model.predict(columns)
        except Exception as exc:  # never reaches a client; counted for the error-rate guardrail
            print(f"mlci.serve: challenger version {model.version} failed to score {len(items)} shadow requests: "
                  f"{type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            _report(self.reports, Report(rows, time.thread_time() - started, failed=True))
            return
        cpu_seconds = time.thread_time() - started
        if self.log is not None:
            self._log(items, predictions, probabilities)
        dropped, errors = self.counts["dropped"], self.counts["errors"]
        self.counts["dropped"] = self.counts["errors"] = 0
        _report(self.reports, Report(rows, cpu_seconds, log_dropped=dropped, log_errors=errors))

    def _read(self, items: list[Body]) -> tuple[list[Body], dict[str, list[Any]]]:
        """The bodies that parse and validate as the champion's schema says, and the challenger's columns of
        them. The others (there should be none: the champion accepted each body before it was sent) are
        reported as failed, so they count toward the challenger's error rate and leave the bound."""
        good = [(item, records) for item in items if (records := _records(item)) is not None]
        columns, problems = self.validator.validate([r for _, records in good for r in records])
        if problems:  # find the bodies refused, score the others
            good = [(item, records) for item, records in good if not self.validator.validate(records)[1]]
            columns, _ = self.validator.validate([r for _, records in good for r in records])
        if len(good) < len(items):
            kept = {id(item) for item, _ in good}
            bad = tuple(item.rows for item in items if id(item) not in kept)
            print(f"mlci.serve: the shadow scorer could not read {len(bad)} request bodies the champion accepted",
                  file=sys.stderr, flush=True)
            _report(self.reports, Report(bad, 0.0, failed=True))
        return [item for item, _ in good], columns

    def _log(self, items: list[Body], predictions: list[Any], probabilities: list[list[float]] | None) -> None:
        from mlci.serve.predlog import LoggedBatch

        model = self.model
        classes = [str(c) for c in model.classes] if model.classes is not None else None
        offset = 0
        for item in items:
            part = slice(offset, offset + item.rows)
            # no features: the champion's line of the same request and row holds them
            self.log.submit(LoggedBatch(item.ts, item.request_id, model.version, {}, predictions[part],
                                        probabilities[part] if probabilities is not None else None, classes,
                                        role=self.plan.role, experiment=self.plan.experiment_id))
            offset += item.rows


def _records(item: Body) -> list[Any] | None:
    """The body's records, or None when it does not parse into as many records as the server counted."""
    from mlci.serve import jsonio
    from mlci.serve.payload import records_of

    try:
        records = records_of(jsonio.loads(item.body))
    except (ValueError, RecursionError):
        return None
    return records if records is not None and len(records) == item.rows else None


def _report(reports: Any, report: Report) -> None:
    try:
        reports.send(report)
    except OSError:  # the server is gone
        os._exit(0)
