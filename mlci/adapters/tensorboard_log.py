"""TensorBoard event files, written with tensorboardX (TensorBoard's own format, without TensorFlow).
Tags keep to the characters TensorBoard allows (letters, digits, `_ . - /`).

Each run is a folder below the log directory (``train``, ``evaluate``, ``monitor``, ...), which
``tensorboard --logdir`` shows as one line per run.
"""

from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from mlci.errors import ServiceError


def tag_part(text: str) -> str:
    """``text`` with the characters TensorBoard tags do not allow replaced by ``_``."""
    return re.sub(r"[^A-Za-z0-9_.\-]", "_", str(text))


Point = tuple[int, Mapping[str, float | None]]  # (step, tag -> value)


def write_scalars(logdir: Path, run: str, points: Sequence[Point], *, wall_time: float | None = None) -> int:
    """Append ``points`` to a new event file of the run (None and non-finite values are left out);
    returns how many values were written. ServiceError (exit 3) when the folder is not writable."""
    finite = [(step, {tag: float(v) for tag, v in values.items() if v is not None and math.isfinite(float(v))})
              for step, values in points]
    finite = [(step, values) for step, values in finite if values]
    if not finite:
        return 0
    from tensorboardX import SummaryWriter

    try:
        # A file of its own per write, named so files sort in the order they were written: TensorBoard
        # reads a run's files in name order and drops values whose step goes backwards.
        writer = SummaryWriter(logdir=str(Path(logdir) / run), flush_secs=3600,
                               filename_suffix=f".{time.time_ns():020d}.{os.getpid()}")
        try:
            for step, values in finite:
                for tag, value in values.items():
                    writer.add_scalar(tag, value, global_step=step, walltime=wall_time)
        finally:
            writer.close()
    except OSError as exc:
        raise ServiceError(f"cannot write TensorBoard scalars to {logdir}: {exc.strerror or exc}",
                           hint="check that the `tensorboard` directory of mlci.yaml is writable") from None
    return sum(len(values) for _, values in finite)
