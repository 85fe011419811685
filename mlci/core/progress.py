"""Progress for long work: a bar on a terminal, plain periodic lines elsewhere (a Jenkins console).

``Progress`` counts items with a rate that stays meaningful for slow items (``12.5 s/fold`` rather than
``0 folds/s``) and an ETA when the total is known. A total that is an estimate (a CSV's row count from
a sample) is shown as ``~N`` and never as less than what was counted. ``Heartbeat`` shows that
uncountable work (a final model fit) is alive: a spinner on a terminal, a line per interval elsewhere.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

SPINNER = "|/-\\"


def plural(count: float, noun: str) -> str:
    """``1 row``, ``2 rows``, ``1,234 rows`` (nouns that take an ``s``)."""
    return f"{count:,.0f} {noun}" + ("" if count == 1 else "s")


def rate_text(done: float, elapsed: float, unit: str) -> str:
    """Items per second, or seconds per item when that reads better (fewer than one item a second)."""
    if done <= 0 or elapsed <= 0:
        return ""
    per_second = done / elapsed
    if per_second >= 10:
        return f"{per_second:,.0f} {unit}/s"
    if per_second >= 1:
        return f"{per_second:.1f} {unit}/s"
    singular = unit[:-1] if unit.endswith("s") else unit
    return f"{elapsed / done:.1f} s/{singular}"


def duration_text(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class Progress:
    """``with Progress("validating", total=n) as p: p.advance(k)``. Writes to stderr only."""

    def __init__(self, label: str, total: float | None = None, *, unit: str = "rows",
                 stream: TextIO | None = None, interval: float | None = None, enabled: bool = True,
                 estimated: bool = False) -> None:
        self.label = label
        self.total = total
        self.estimated = estimated
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

    def line(self, *, final: bool) -> str:
        """The text of one progress line (without the bar)."""
        elapsed = time.monotonic() - self._start
        total = self.total
        if total and self.estimated:
            total = max(total, self.done)
        if total and not (final and self.estimated):
            mark = "~" if self.estimated else ""
            count = f"{self.done:,.0f}/{mark}{total:,.0f} {self.unit}"
        else:
            count = f"{self.done:,.0f} {self.unit[:-1] if self.done == 1 and self.unit.endswith('s') else self.unit}"
        parts = [p for p in (rate_text(self.done, elapsed, self.unit),) if p]
        if not final and total and self.done > 0 and self.done < total:
            parts.append(f"ETA {duration_text((total - self.done) * elapsed / self.done)}")
        parts.append(f"{'took' if final else 'elapsed'} {duration_text(elapsed)}")
        return f"{self.label}: {count} ({', '.join(parts)})"

    def _write(self, *, final: bool) -> None:
        self._shown = self.done
        text = self.line(final=final)
        if self.tty:
            bar = ""
            if self.total and not final:
                filled = int(30 * min(self.done / max(self.total, self.done), 1.0))
                bar = "[" + "#" * filled + "." * (30 - filled) + "] "
            label, _, rest = text.partition(": ")
            end = "\n" if final else ""
            self.stream.write(f"\r\x1b[2K{label}: {bar}{rest}{end}")
        else:
            self.stream.write(text + "\n")
        self.stream.flush()


class Heartbeat:
    """``with Heartbeat("final fit"): model.fit(...)``: a spinner with the elapsed time on a terminal,
    a line every ``interval`` seconds elsewhere, and a closing line with the time taken."""

    def __init__(self, label: str, *, stream: TextIO | None = None, interval: float | None = None,
                 enabled: bool = True) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = interval if interval is not None else (0.1 if self.tty else 30.0)
        self.enabled = enabled
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._start = time.monotonic()
        self.beats = 0

    def __enter__(self) -> Heartbeat:
        self._start = time.monotonic()
        if self.enabled:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.enabled:
            return
        self._stop.set()
        self._thread.join()
        took = duration_text(time.monotonic() - self._start)
        self.stream.write(("\r\x1b[2K" if self.tty else "") + f"{self.label}: done (took {took})\n")
        self.stream.flush()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.beats += 1
            elapsed = duration_text(time.monotonic() - self._start)
            if self.tty:
                self.stream.write(f"\r\x1b[2K{self.label}: {SPINNER[self.beats % len(SPINNER)]} {elapsed}")
            else:
                self.stream.write(f"{self.label}: still running ({elapsed})\n")
            self.stream.flush()
