"""Progress for long work: a bar on a terminal, plain periodic lines elsewhere (a Jenkins console)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """``with Progress("validating", total=n) as p: p.advance(k)``. Writes to stderr only."""

    def __init__(self, label: str, total: float | None = None, *, unit: str = "rows",
                 stream: TextIO | None = None, interval: float | None = None, enabled: bool = True) -> None:
        self.label = label
        self.total = total
        self.unit = unit
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = interval if interval is not None else (0.1 if self.tty else 10.0)
        self.enabled = enabled
        self.done = 0.0
        self._start = time.monotonic()
        self._last = self._start
        self._shown = -1.0  # `done` at the last line written

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.finish()

    def advance(self, amount: float = 1) -> None:
        self.done += amount
        now = time.monotonic()
        if self.enabled and now - self._last >= self.interval:
            self._last = now
            self._write(final=False)

    def finish(self) -> None:
        long_enough = self.tty or time.monotonic() - self._start >= self.interval
        if not (self.enabled and long_enough):
            return
        if self.done != self._shown:
            self._write(final=True)
        elif self.tty:
            self.stream.write("\n")  # end the bar's line

    def _write(self, *, final: bool) -> None:
        self._shown = self.done
        elapsed = time.monotonic() - self._start
        count = f"{self.done:,.0f}" + (f"/{self.total:,.0f}" if self.total else "")
        rate = f"{self.done / elapsed:,.0f} {self.unit}/s" if elapsed > 0 else ""
        if self.tty:
            bar = ""
            if self.total:
                filled = int(30 * min(self.done / self.total, 1.0))
                bar = "[" + "#" * filled + "." * (30 - filled) + "] "
            end = "\n" if final else ""
            self.stream.write(f"\r{self.label}: {bar}{count} {self.unit} {rate}   {end}")
        else:
            self.stream.write(f"{self.label}: {count} {self.unit} ({rate}, {elapsed:.0f}s)\n")
        self.stream.flush()
