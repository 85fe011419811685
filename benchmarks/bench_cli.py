#!/usr/bin/env python3
"""CLI start-up: `mlci --help` against the floor, `python -c 'import click'`, measured in the same run.

Runs are interleaved so machine noise hits both alike; prints medians and the ratio (target <= 1.3x).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
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


def once(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
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
