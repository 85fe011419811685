"""A shadow scorer whose challenger burns a known CPU time per row: the real scorer process (real pipe, real
registry model, real prediction log), with the model's ``predict`` slowed down, for the CPU budget's tests.

The scorer process imports this module (it is started with ``spawn``), so it holds no test state."""

from __future__ import annotations

import time
from typing import Any

from mlci.serve.shadow import ScorerPlan, ShadowScorer, run_scorer

SECONDS_PER_ROW = 0.002  # CPU time the slow challenger spends per row, on top of the real model's


def burn(seconds: float) -> None:
    """Spend ``seconds`` of this thread's CPU time."""
    started = time.thread_time()
    while time.thread_time() - started < seconds:
        pass


class SlowModel:
    """The loaded challenger, with ``predict`` costing SECONDS_PER_ROW more CPU per row."""

    def __init__(self, model: Any) -> None:
        self._model = model

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def predict(self, columns: dict[str, list[Any]]) -> Any:
        burn(SECONDS_PER_ROW * len(next(iter(columns.values()), [])))
        return self._model.predict(columns)


def run_slow_scorer(plan: ScorerPlan, requests: Any, reports: Any) -> None:
    """``run_scorer`` with a slow challenger, at normal priority: idle priority gets a busy host's scorer so
    little CPU that a budget would have nothing to hold back, while on an idle host (or in a container with
    spare CPU) it gets all it asks for. The budget must hold either way."""
    import mlci.serve.model as served
    import mlci.serve.shadow as shadow

    load = served.load_served_model
    served.load_served_model = lambda registry, version: SlowModel(load(registry, version))
    shadow.lower_priority = lambda: "normal"
    run_scorer(plan, requests, reports)


class SlowScorer(ShadowScorer):
    def entry_point(self):
        return run_slow_scorer
