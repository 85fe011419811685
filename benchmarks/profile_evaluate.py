"""Where ``mlci evaluate``'s time goes: wall and CPU seconds of each phase, in one run in this process.

    python3 benchmarks/profile_evaluate.py PROJECT_DIR

Wraps the phases' functions in ``mlci.ops.model.evaluate`` (and the holdout read in ``train``) with a clock
and runs ``mlci -C PROJECT_DIR evaluate``; prints JSON ``{"imports": [wall, cpu], "command": [wall, cpu],
"phases": {name: [wall, cpu]}}``; "imports" are the CLI's and the evaluate and train modules' (pandas,
scikit-learn), which the command would import anyway. Nested phases (the slice intervals and plots inside the HTML) are
counted in their own line and in ``render_html``'s.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import time
from collections.abc import Callable
from typing import Any

START = (time.perf_counter(), time.process_time())

from mlci.cli.main import run  # noqa: E402

PHASES = {
    "mlci.ops.model.train": ["holdout_dataset"],
    "mlci.ops.model.evaluate": ["load_version_model", "predict", "slice_keys", "slice_metrics", "measure_latency",
                                "predictions_to_bytes", "_store", "permutation_importance", "render_html",
                                "slice_intervals", "plots", "write_report"],
}
LABELS = {"load_version_model": "load + verify model", "holdout_dataset": "read holdout (imports pandas, sklearn)",
          "predict": "predict + predict_proba", "slice_keys": "slice values", "slice_metrics": "slice metrics",
          "measure_latency": "latency (rows one by one)", "predictions_to_bytes": "predictions file",
          "_store": "registry write + model card", "permutation_importance": "permutation importance",
          "render_html": "HTML report (all below)", "slice_intervals": "  slice bootstrap intervals",
          "plots": "  plots (SVG)", "write_report": "report files"}


def clocked(function: Callable[..., Any], name: str, totals: dict[str, list[float]]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            return function(*args, **kwargs)
        finally:
            total = totals.setdefault(name, [0.0, 0.0])
            total[0] += time.perf_counter() - wall
            total[1] += time.process_time() - cpu
    return wrapper


def main() -> None:
    import importlib

    totals: dict[str, list[float]] = {}
    for module_name, names in PHASES.items():
        module = importlib.import_module(module_name)
        for name in names:
            setattr(module, name, clocked(getattr(module, name), LABELS[name], totals))
    imports = [time.perf_counter() - START[0], time.process_time() - START[1]]
    wall, cpu = time.perf_counter(), time.process_time()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = run(["-C", sys.argv[1], "evaluate"])
    command = [time.perf_counter() - wall, time.process_time() - cpu]
    if code != 0:
        raise SystemExit(f"mlci evaluate exited {code}")
    print(json.dumps({"imports": imports, "command": command, "phases": totals}))


if __name__ == "__main__":
    main()
