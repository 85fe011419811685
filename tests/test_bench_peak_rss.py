"""The benchmarks' memory figures: a command's own peak RSS, not its parent's pages (benchmarks/peak_rss.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

from peak_rss import run_measured  # noqa: E402

CHILD_MIB = 64
# The child touches CHILD_MIB of memory, then prints its own high-water mark as the kernel counts it.
CHILD = f"""
block = bytearray({CHILD_MIB} * 2**20)
for i in range(0, len(block), 4096):
    block[i] = 1
print(next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM')) / 1024)
"""


def test_a_child_is_measured_at_its_own_size_under_a_large_parent():
    ballast = bytearray(400 * 2**20)
    for i in range(0, len(ballast), 4096):
        ballast[i] = 1  # the parent holds 400 MiB, as a benchmark holding a data set does
    measured = run_measured([sys.executable, "-c", CHILD], capture=True)
    own_peak = float(measured.stdout)
    assert measured.returncode == 0
    assert own_peak >= CHILD_MIB
    assert abs(measured.peak_mib - own_peak) < 16, (measured.peak_mib, own_peak)
    # the naive method (fork from this process, read wait4's ru_maxrss) counts the parent's pages
    process = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.DEVNULL)
    _, _, usage = os.wait4(process.pid, 0)
    assert usage.ru_maxrss / 1024 > 400
    del ballast


def test_exit_codes_and_output_come_through():
    measured = run_measured([sys.executable, "-c", "print('hi'); raise SystemExit(3)"], capture=True)
    assert (measured.returncode, measured.stdout.strip()) == (3, "hi")
