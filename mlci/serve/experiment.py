"""A live experiment inside the server: a second model (the challenger) beside the served one (the champion).

- ``shadow``: the champion answers every request; the challenger scores the same rows in a process of its
  own at the lowest CPU priority (``mlci.serve.shadow``), which is handed each accepted request's body
  through a bounded pipe. When the pipe or its row bound is full the rows are skipped and counted
  (``mlci_experiment_shadow_skipped_total``): shadow scoring never waits, and it takes neither the
  server's interpreter lock nor CPU time the server wants.
- ``canary``: a stable share of requests is answered by the challenger. With a key (a request header, or
  else a field of the first record, named by ``MLCI_SERVE_EXPERIMENT_KEY``) the choice is a hash of the
  key's value, so one customer always meets the same model; without one it is random per request.

Both models' rows go to the prediction log with their role and the experiment id, so they join with labels
that arrive later on request_id (``mlci experiment conclude``). The experiment's plan lives in the model
registry; the deployer passes it to every server it starts, so a restarted server resumes the experiment.
"""

from __future__ import annotations

import hashlib
import random
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlci.core.dataschema import DataSchema
from mlci.serve.metrics import ServerMetrics
from mlci.serve.model import ServedModel
from mlci.serve.predlog import LoggedBatch
from mlci.serve.shadow import Report, ScorerPlan, ShadowScorer

MODES = ("shadow", "canary")
CHAMPION, CHALLENGER = "champion", "challenger"


@dataclass(frozen=True)
class LogPlan:
    """The server's prediction log settings, which the shadow scorer process writes its rows with."""

    directory: Path | None
    max_bytes: int = 50_000_000
    queue_rows: int = 100_000


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


def scoring_clock(mode: str) -> Callable[[], float]:
    """What ``mlci_experiment_scoring_seconds`` measures for both roles: in shadow mode the CPU time of the
    scoring thread, as the idle-priority scorer process measures its own (its wall-clock time would measure
    the server's load); in canary mode the wall-clock time a user of each role waits."""
    return time.thread_time if mode == "shadow" else time.perf_counter


class Experiment:
    def __init__(self, *, mode: str, experiment_id: str, challenger: ServedModel, share: float, key: str,
                 queue_rows: int, cpu_share: float, metrics: ServerMetrics, log: Callable[[LoggedBatch], Any] | None,
                 challenger_registry: Path | None = None, log_plan: LogPlan | None = None,
                 champion_schema: DataSchema | None = None, accept_unknown_categories: bool = True) -> None:
        if mode not in MODES:
            raise ValueError(f"experiment mode '{mode}' is not one of {', '.join(MODES)}")
        self.mode = mode
        self.id = experiment_id
        self.challenger = challenger
        self.share = share
        self.key = key
        self.metrics = metrics
        self.log = log
        self.scorer: ShadowScorer | None = None
        # each role's series, looked up once rather than on every request
        self._seconds = {role: metrics.experiment_seconds.labels(role) for role in (CHAMPION, CHALLENGER)}
        self._batches = {role: metrics.experiment_batches.labels(role) for role in (CHAMPION, CHALLENGER)}
        if mode == "shadow":
            if challenger_registry is None or champion_schema is None:
                raise ValueError("a shadow experiment needs the registry its challenger is read from and the "
                                 "champion's schema its requests are validated with")
            logs = log_plan or LogPlan(None)
            plan = ScorerPlan(registry=challenger_registry, version=challenger.version, experiment_id=experiment_id,
                              role=CHALLENGER, log_dir=logs.directory, log_max_bytes=logs.max_bytes,
                              log_queue_rows=logs.queue_rows, schema=champion_schema,
                              accept_unknown_categories=accept_unknown_categories, cpu_share=cpu_share)
            self.scorer = ShadowScorer(plan, capacity=queue_rows, on_skip=self._skipped, on_report=self._scored)

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
        if self.scorer is not None:
            self.scorer.start()

    def shadow(self, ts: str, request_id: str, body: bytes, rows: int) -> bool:
        """Hand the request's body (as received; the champion accepted it) to the challenger's scorer
        process; False (and counted) when its queue is full."""
        if self.scorer is None:
            return False
        return self.scorer.submit(ts, request_id, body, rows)

    def close(self) -> None:
        """Let the scorer score what is queued, then stop it (on shutdown)."""
        if self.scorer is not None:
            self.scorer.close()

    def _skipped(self, rows: int) -> None:
        self.metrics.shadow_skipped.inc(rows)

    def _scored(self, report: Report) -> None:
        if report.failed:
            self.metrics.experiment_errors.labels(CHALLENGER).inc(len(report.rows))
        elif report.rows:
            total, seconds = sum(report.rows), self._seconds[CHALLENGER]
            for rows in report.rows:
                # each request's share of the call's time: what it cost to score its rows in the batch
                seconds.observe(report.cpu_seconds * rows / total)
            self._batches[CHALLENGER].inc(len(report.rows))
        if report.log_dropped:
            self.metrics.log_dropped.inc(report.log_dropped)
        if report.log_errors:
            self.metrics.log_errors.inc(report.log_errors)

    # -- both -----------------------------------------------------------------------------------

    def score(self, role: str, model: ServedModel, ts: str, request_id: str,
              columns: dict[str, list[Any]]) -> tuple[list[Any], list[list[float]] | None] | None:
        """Score with ``model`` as ``role``: timed, counted and logged. None when the model failed."""
        clock = scoring_clock(self.mode)
        started = clock()
        try:
            predictions, probabilities = model.predict(columns)
        except Exception as exc:  # a shadow failure must not reach the client; canary's caller answers 500
            self.metrics.experiment_errors.labels(role).inc()
            print(f"mlci.serve: {role} version {model.version} failed to score request {request_id}: "
                  f"{type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            return None
        self._seconds[role].observe(clock() - started)
        self._batches[role].inc()
        if self.log is not None:
            classes = [str(c) for c in model.classes] if model.classes is not None else None
            self.log(LoggedBatch(ts, request_id, model.version, columns, predictions, probabilities, classes,
                                 role=role, experiment=self.id))
        return predictions, probabilities
