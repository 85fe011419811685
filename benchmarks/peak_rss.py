"""Run a command and measure its own peak resident memory and wall time.

``ru_maxrss`` of a child that the benchmark forked counts the parent's pages from before ``exec``: Linux
keeps the highest RSS of the old address space across exec (``setmax_mm_hiwater_rss`` in fs/exec.c), and
a forked child starts with a copy of the parent's. A ``/bin/true`` child of a Python parent holding
250 MB reports 265 MiB. So the command is started by a small helper process (``python -S``, about
10 MiB), which forks it, waits for it and reports the grandchild's ``ru_maxrss``: what the command
itself used, plus at most the helper's few MiB. ``tests/test_bench_peak_rss.py`` checks the method with
a child of known size under a large parent.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

_HELPER = """
import os, sys
report, argv = sys.argv[1], sys.argv[2:]
pid = os.fork()
if pid == 0:
    try:
        os.execvp(argv[0], argv)
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
with open(report, "w") as handle:
    handle.write(f"{usage.ru_maxrss} {os.waitstatus_to_exitcode(status)} {usage.ru_utime + usage.ru_stime}")
"""


@dataclass(frozen=True)
class Measured:
    seconds: float
    peak_mib: float
    returncode: int
    stdout: str
    cpu_seconds: float = 0.0  # user + system, all of the command's threads


def run_measured(argv: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None,
                 capture: bool = False) -> Measured:
    """Wall seconds (spawn to exit, imports included), the command's own peak RSS in MiB, its exit code,
    its CPU seconds and (with ``capture``) its stdout."""
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as report:
        started = time.perf_counter()
        result = subprocess.run([sys.executable, "-S", "-c", _HELPER, report.name, *argv], cwd=cwd, env=env,
                                stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, text=True)
        seconds = time.perf_counter() - started
        fields = Path(report.name).read_text().split()
    if len(fields) != 3:
        raise RuntimeError(f"the measuring helper failed for {argv[0]} (exit {result.returncode})")
    return Measured(seconds, int(fields[0]) / 1024, int(fields[1]), result.stdout or "", float(fields[2]))
