#!/usr/bin/env python3
"""CLI start-up: `mlci --help` against the floor, `python -c 'import click'`, measured in the same run.

Also `mlci gate` in files-only mode (`--metrics NEW.json --baseline OLD.json`, with the per-row
predictions beside them, so the paired bootstrap runs too): the command developers run locally most,
which imports neither pandas nor scikit-learn.

Runs are interleaved so machine noise hits both alike; prints medians and the ratio (target <= 1.3x for
`--help`).
"""

from __future__ import annotations

import hashlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUNS = 30
# The console script installed beside this interpreter: what users run.
MLCI = str(Path(sys.executable).with_name("mlci"))
COMMANDS = {
    "python -c 'import click'": [sys.executable, "-c", "import click"],
    "mlci --help": [MLCI, "--help"],
    "mlci config --help": [MLCI, "config", "--help"],
}


def files_only_gate(folder: Path) -> list[str]:
    """A project with threshold, slice and bootstrap rules, and two evaluations of 2,000 rows each."""
    import numpy as np
    import yaml

    from mlci.ml.metrics import Predictions
    from mlci.ops.model.evaluate import predictions_to_bytes

    rules = [{"metric": "roc_auc", "min": 0.6}, {"metric": "roc_auc", "max_drop": 0.02, "bootstrap": True},
             {"metric": "accuracy", "min": 0.5, "slice": {"column": "region", "value": "east"}}]
    (folder / "mlci.yaml").write_text(yaml.safe_dump({
        "project": "bench", "data": {"train": "train.csv"}, "gates": {"rules": rules},
        "model": {"task": "binary", "estimator": "sklearn.linear_model.LogisticRegression"}}))
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 2000)
    proba = np.clip(0.5 + (y - 0.5) * 0.5 + rng.normal(0, 0.25, 2000), 0.01, 0.99)
    preds = Predictions("binary", y, (proba > 0.5).astype(int), np.column_stack([1 - proba, proba]), ["0", "1"])
    data = predictions_to_bytes(preds, {"region": np.array(["east", "west"] * 1000)})
    paths = []
    for name in ("new", "old"):  # one model evaluated twice: the gate passes (exit 0)
        (folder / name).mkdir()
        (folder / name / "predictions.npz").write_bytes(data)
        (folder / name / "metrics.json").write_text(json.dumps({
            "task": "binary", "metrics": {"roc_auc": 0.85, "accuracy": 0.78},
            "slices": {"region": {"east": {"accuracy": 0.78, "rows": 1000}}}, "predictions": "predictions.npz",
            "predictions_sha256": hashlib.sha256(data).hexdigest()}))
        paths.append(str(folder / name / "metrics.json"))
    return [MLCI, "-C", str(folder), "gate", "--metrics", paths[0], "--baseline", paths[1]]


def once(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        COMMANDS["mlci gate (files only)"] = files_only_gate(Path(folder))
        measure()


def measure() -> None:
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for argv in COMMANDS.values():
        once(argv)  # warm the file-system cache
    for _ in range(RUNS):
        for name, argv in COMMANDS.items():
            times[name].append(once(argv))
    floor = statistics.median(times["python -c 'import click'"])
    print(f"{'command':28} {'median ms':>10} {'ratio':>7}")
    for name, samples in times.items():
        median = statistics.median(samples)
        print(f"{name:28} {median * 1000:10.1f} {median / floor:6.2f}x")


if __name__ == "__main__":
    main()
