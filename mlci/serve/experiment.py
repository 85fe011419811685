"""A live experiment inside the server: a second model (the challenger) beside the served one (the champion).

- ``shadow``: the champion answers every request; the challenger scores the same rows on a worker thread
  fed by a bounded queue. When the queue is full the rows are skipped and counted
  (``mlci_experiment_shadow_skipped_total``): shadow scoring never waits and never slows an answer.
- ``canary``: a stable share of requests is answered by the challenger. With a key (a request header, or
  else a field of the first record, named by ``MLCI_SERVE_EXPERIMENT_KEY``) the choice is a hash of the
  key's value, so one customer always meets the same model; without one it is random per request.

Both models' rows go to the prediction log with their role and the experiment id, so they join with labels
that arrive later on request_id (``mlci experiment conclude``). The experiment's plan lives in the model
registry; the deployer passes it to every server it starts, so a restarted server resumes the experiment.
"""

from __future__ import annotations

import hashlib
import queue
import random
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from mlci.serve.metrics import ServerMetrics
from mlci.serve.model import ServedModel
from mlci.serve.predlog import LoggedBatch

MODES = ("shadow", "canary")
CHAMPION, CHALLENGER = "champion", "challenger"
_STOP = object()
COALESCE_ROWS = 1000  # shadow rows scored in one challenger call at most
# How long the shadow worker collects requests before one challenger call: below saturation requests
# rarely wait in the queue, and one call per request would cost the champion's process as much again.
COALESCE_SECONDS = 0.02


class IncompatibleChallenger(Exception):
    pass


def check_compatible(champion: ServedModel, challenger: ServedModel) -> None:
    """The challenger must score the rows the champion's schema validates: its features are among the
    champion's, with the same types (checked once, at load; the server is not ready otherwise)."""
    missing = [name for name in challenger.features if name not in champion.features]
    if missing:
        raise IncompatibleChallenger(f"challenger version {challenger.version} needs features {missing} that "
                                     f"champion version {champion.version} does not receive")
    for name in challenger.features:
        ours, theirs = champion.schema.columns[name].type, challenger.schema.columns[name].type
        if ours != theirs:
            raise IncompatibleChallenger(f"feature '{name}' is {theirs} for challenger version "
                                         f"{challenger.version} but {ours} for the champion")
    if champion.is_classifier != challenger.is_classifier:
        raise IncompatibleChallenger("champion and challenger must both be classifiers or both regressors")


def bucket(experiment_id: str, key: str) -> float:
    """A stable number in [0, 1) for a key: the same key lands in the same arm for the whole experiment."""
    digest = hashlib.sha256(f"{experiment_id}\0{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0 ** 64


class Experiment:
    def __init__(self, *, mode: str, experiment_id: str, challenger: ServedModel, share: float, key: str,
                 queue_rows: int, metrics: ServerMetrics, log: Callable[[LoggedBatch], Any] | None) -> None:
        if mode not in MODES:
            raise ValueError(f"experiment mode '{mode}' is not one of {', '.join(MODES)}")
        self.mode = mode
        self.id = experiment_id
        self.challenger = challenger
        self.share = share
        self.key = key
        self.metrics = metrics
        self.log = log
        self._capacity = queue_rows
        self._queued_rows = 0
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    # -- canary ---------------------------------------------------------------------------------

    def answers_with_challenger(self, headers: Mapping[str, str], records: list[Any]) -> bool:
        if self.mode != "canary" or self.share <= 0:
            return False
        value = self._key_value(headers, records)
        draw = bucket(self.id, value) if value is not None else random.random()
        return draw < self.share

    def _key_value(self, headers: Mapping[str, str], records: list[Any]) -> str | None:
        if not self.key:
            return None
        header = headers.get(self.key)
        if header:
            return header
        first = records[0] if records else None
        if isinstance(first, dict) and first.get(self.key) is not None:
            return str(first[self.key])
        return None

    # -- shadow ---------------------------------------------------------------------------------

    def start(self) -> None:
        if self.mode == "shadow":
            self._thread = threading.Thread(target=self._run, name="shadow-scorer", daemon=True)
            self._thread.start()

    def shadow(self, ts: str, request_id: str, columns: dict[str, list[Any]], rows: int) -> bool:
        """Queue the rows for the challenger; False (and counted) when the queue is full."""
        with self._lock:
            full = self._queued_rows + rows > self._capacity
            if not full:
                self._queued_rows += rows
        if full:
            self.metrics.shadow_skipped.inc(rows)
            return False
        self._queue.put((ts, request_id, columns, rows))
        return True

    def close(self, timeout: float = 30.0) -> None:
        """Score what is queued, then stop the worker (on shutdown, before the log closes)."""
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            items, stop = self._take()
            if items:
                try:
                    self._score_together(items)
                finally:
                    with self._lock:
                        self._queued_rows -= sum(item[3] for item in items)
            if stop:
                return

    def _take(self) -> tuple[list[tuple], bool]:
        """The next request's rows and every other one arriving within COALESCE_SECONDS (up to
        COALESCE_ROWS): one model call for many small requests costs little more than for one, so the
        challenger's share of the CPU shrinks instead of growing with the request rate."""
        first = self._queue.get()
        if first is _STOP:
            return [], True
        items, rows = [first], first[3]
        deadline = time.monotonic() + COALESCE_SECONDS
        while rows < COALESCE_ROWS:
            try:
                item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if item is _STOP:
                return items, True
            items.append(item)
            rows += item[3]
        return items, False

    def _score_together(self, items: list[tuple]) -> None:
        columns = {name: [v for item in items for v in item[2][name]] for name in self.challenger.features}
        started = time.perf_counter()
        try:
            predictions, probabilities = self.challenger.predict(columns)
        except Exception as exc:  # never reaches a client; counted for the error-rate guardrail
            self.metrics.experiment_errors.labels(CHALLENGER).inc(len(items))
            print(f"mlci.serve: challenger version {self.challenger.version} failed to score "
                  f"{len(items)} shadow requests: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            return
        elapsed = time.perf_counter() - started
        total = sum(item[3] for item in items)
        classes = [str(c) for c in self.challenger.classes] if self.challenger.classes is not None else None
        offset = 0
        for ts, request_id, _, rows in items:
            # each request's share of the call's time: what it cost to score its rows in the batch
            self.metrics.experiment_seconds.labels(CHALLENGER).observe(elapsed * rows / total)
            self.metrics.experiment_batches.labels(CHALLENGER).inc()
            if self.log is not None:
                part = slice(offset, offset + rows)
                # no features: the champion's line of the same request and row holds them
                self.log(LoggedBatch(ts, request_id, self.challenger.version, {}, predictions[part],
                                     probabilities[part] if probabilities is not None else None, classes,
                                     role=CHALLENGER, experiment=self.id))
            offset += rows

    # -- both -----------------------------------------------------------------------------------

    def score(self, role: str, model: ServedModel, ts: str, request_id: str,
              columns: dict[str, list[Any]]) -> tuple[list[Any], list[list[float]] | None] | None:
        """Score with ``model`` as ``role``: timed, counted and logged. None when the model failed."""
        started = time.perf_counter()
        try:
            predictions, probabilities = model.predict(columns)
        except Exception as exc:  # a shadow failure must not reach the client; canary's caller answers 500
            self.metrics.experiment_errors.labels(role).inc()
            print(f"mlci.serve: {role} version {model.version} failed to score request {request_id}: "
                  f"{type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            return None
        self.metrics.experiment_seconds.labels(role).observe(time.perf_counter() - started)
        self.metrics.experiment_batches.labels(role).inc()
        if self.log is not None:
            classes = [str(c) for c in model.classes] if model.classes is not None else None
            self.log(LoggedBatch(ts, request_id, model.version, columns, predictions, probabilities, classes,
                                 role=role, experiment=self.id))
        return predictions, probabilities
