"""The bare library calls that ``mlci evaluate`` wraps, in a fresh process, for ``bench_cost.py --evaluate``.

    python3 benchmarks/evaluate_bare.py PROJECT_DIR

Imports, ``skops.io.load`` of the latest version's model and ``pandas.read_csv`` of the holdout, then
``predict`` + ``predict_proba`` + scikit-learn's metric functions overall and per slice
(``bench_overhead.bare_evaluate_calls``). Prints JSON: wall and CPU seconds of the inputs (model and
holdout) and of the calls alone.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_overhead import Stages, bare_evaluate_calls  # noqa: E402


def clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def since(start: tuple[float, float]) -> list[float]:
    wall, cpu = clock()
    return [wall - start[0], cpu - start[1]]


def main() -> None:
    stages = Stages(Path(sys.argv[1]))
    start = clock()
    model, frame, features = stages.bare_evaluate_inputs()
    inputs = since(start)
    start = clock()
    bare_evaluate_calls(model, frame, features, stages.project.config.evaluation.slices)
    print(json.dumps({"inputs": inputs, "calls": since(start)}))


if __name__ == "__main__":
    main()
