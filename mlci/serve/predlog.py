"""The prediction log that ``mlci monitor`` reads.

JSON Lines files ``<log_dir>/predictions-YYYYMMDD-HHMMSS-<host>-<pid>.jsonl``, one line per predicted row::

    {"ts": "2026-01-31T12:00:00.123Z", "request_id": "...", "row": 0, "model_version": 3,
     "features": {"age": 41, ...}, "prediction": 1, "probabilities": {"0": 0.2, "1": 0.8}}

(``probabilities`` for classifiers only; during an experiment also ``"role": "champion"|"challenger"`` and
``"experiment": "<id>"`` after ``model_version``, one line per row and model). A new file starts when the
current one reaches ``max_bytes``.
Requests only put a batch on a bounded queue; a background thread serialises and writes, so a slow disk
never blocks a request. When the queue is full the batch is dropped and counted, never waited for.
"""

from __future__ import annotations

import json
import os
import queue
import re
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import chain, repeat
from json.encoder import encode_basestring_ascii
from pathlib import Path
from typing import Any, TextIO

from mlci.serve.jsonio import number_texts

_STOP = object()


@dataclass
class LoggedBatch:
    ts: str
    request_id: str
    model_version: int
    columns: dict[str, list[Any]]
    predictions: list[Any]
    probabilities: list[list[float]] | None
    classes: list[str] | None
    # During an experiment: which model produced the row ("champion" or "challenger") and the experiment's
    # id, so `mlci experiment conclude` pairs both versions' rows by request id. Absent otherwise.
    role: str = ""
    experiment: str = ""

    @property
    def rows(self) -> int:
        return len(self.predictions)


def utc_timestamp() -> str:
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


class PredictionLog:
    def __init__(self, directory: Path, *, max_bytes: int, max_rows: int,
                 on_drop: Callable[[int], None], on_error: Callable[[], None]) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.on_drop = on_drop
        self.on_error = on_error
        # Bounded by rows, not batches: a queue of 1000-row batches would otherwise hold far more.
        self._capacity = max_rows
        self._queued_rows = 0
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._file: TextIO | None = None
        self._written = 0
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, batch: LoggedBatch) -> bool:
        """Queue a batch for writing; False (and counted) when the queue is full."""
        with self._lock:
            if self._queued_rows + batch.rows > self._capacity:
                full = True
            else:
                self._queued_rows += batch.rows
                full = False
        if full:
            self.on_drop(batch.rows)
            return False
        self._queue.put(batch)
        return True

    def close(self, timeout: float = 30.0) -> None:
        """Write everything queued so far, then stop the writer (called on shutdown)."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout)

    # -- writer thread ----------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                break
            self._write_safely(item)
            if self._queue.empty() and self._file is not None:
                self._flush()
        self._flush()
        if self._file is not None:
            self._file.close()

    def _write_safely(self, batch: LoggedBatch) -> None:
        try:
            self._write(batch)
        except (OSError, ValueError, TypeError) as exc:
            self.on_error()
            print(f"mlci.serve: prediction log write failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        finally:
            with self._lock:
                self._queued_rows -= batch.rows

    def _write(self, batch: LoggedBatch) -> None:
        text = batch_lines(batch)
        handle = self._current_file()
        handle.write(text)
        self._written += len(text) if text.isascii() else len(text.encode("utf-8"))  # ASCII: json escapes
        if self._written >= self.max_bytes:
            self._flush()
            handle.close()
            self._file = None

    def _flush(self) -> None:
        if self._file is not None:
            try:
                self._file.flush()
            except OSError:
                self.on_error()

    def _current_file(self) -> TextIO:
        if self._file is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            path = _new_file_path(self.directory)
            self._file = open(path, "a", encoding="utf-8")
            self._written = path.stat().st_size
        return self._file


def _new_file_path(directory: Path) -> Path:
    """``predictions-YYYYMMDD-HHMMSS-<host>-<pid>.jsonl``: the host name keeps replicas that share a
    volume (all pid 1 in their containers) apart. When a rotation lands in the same second as the last
    file, the next free second is used so a rotated file is never reopened."""
    stamp = time.time()
    writer = f"{_safe_host()}-{os.getpid()}"
    while True:
        name = time.strftime("predictions-%Y%m%d-%H%M%S", time.gmtime(stamp)) + f"-{writer}.jsonl"
        path = directory / name
        if not path.exists():
            return path
        stamp += 1


def _safe_host() -> str:
    return re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname())[:63] or "host"


def batch_lines(batch: LoggedBatch) -> str:
    """The batch's JSON lines, each exactly ``json.dumps(line, separators=(",", ":"), allow_nan=False)``
    of the documented line object. Built from the fixed pieces between the values, with the values
    encoded column by column (every number column of the batch in one encoder call) rather than a dict
    and an encoder call per row: the log thread shares the interpreter with requests."""
    pieces = ['{"ts":' + _encode(batch.ts) + ',"request_id":' + _encode(batch.request_id) + ',"row":']
    columns: list[list[Any]] = []
    experiment = (',"role":' + _encode(batch.role) + ',"experiment":' + _encode(batch.experiment)
                  if batch.experiment else "")
    pieces.append(',"model_version":' + _encode(batch.model_version) + experiment + ',"features":{')
    for index, (name, values) in enumerate(batch.columns.items()):
        pieces[-1] += ("," if index else "") + _encode(name) + ":"
        columns.append(values)
        pieces.append("")
    pieces[-1] += '},"prediction":'
    columns.append(batch.predictions)
    pieces.append("")
    if batch.probabilities is not None and batch.classes is not None:
        pieces[-1] += ',"probabilities":{'
        # as dict(zip(classes, row)) would: a repeated class name keeps its first place and last value
        positions = dict(zip(batch.classes, range(len(batch.classes))))
        by_class = list(zip(*batch.probabilities)) if batch.rows else [()] * len(batch.classes)
        for index, (name, position) in enumerate(positions.items()):
            pieces[-1] += ("," if index else "") + _encode(name) + ":"
            columns.append(list(by_class[position]))
            pieces.append("")
        pieces[-1] += "}"
    pieces[-1] += "}\n"
    texts = [_row_texts(batch.rows), *_encoded_columns(columns)]
    # each line is pieces[0] + texts[0][row] + pieces[1] + ... + pieces[-1], joined in one C-level pass
    interleaved = [part for piece, column in zip(pieces, texts) for part in (repeat(piece), column)]
    return "".join(chain.from_iterable(zip(*interleaved, repeat(pieces[-1]))))


def _row_texts(rows: int) -> list[str]:
    if rows > len(_ROW_TEXTS):
        _ROW_TEXTS.extend(map(str, range(len(_ROW_TEXTS), rows)))
    return _ROW_TEXTS[:rows]


_ROW_TEXTS: list[str] = []


_encode = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
_COMMA_FREE_TYPES = {int, float, bool, type(None)}  # their JSON forms never contain a comma
_TEXT_OR_NULL = {str, type(None)}


def _encoded_columns(columns: list[list[Any]]) -> list[list[str]]:
    """Each value's JSON text, column by column. The columns of plain numbers (and true, false, null) are
    encoded together, in a single encoder call: one call per column cost more than the numbers."""
    encoded: list[list[str] | None] = []
    numbers: list[list[Any]] = []
    for values in columns:
        types = set(map(type, values))
        if types == {str}:
            encoded.append(list(map(encode_basestring_ascii, values)))  # what the encoder does to text
        elif types <= _COMMA_FREE_TYPES:
            encoded.append(None)
            numbers.append(values)
        elif types == _TEXT_OR_NULL:  # a nullable category
            encoded.append([_NULL if value is None else encode_basestring_ascii(value) for value in values])
        else:
            encoded.append([_encode(value) for value in values])
    texts = number_texts(list(chain.from_iterable(numbers)))
    start = 0
    for index, values in enumerate(columns):
        if encoded[index] is None:
            encoded[index] = texts[start:start + len(values)]
            start += len(values)
    return encoded  # type: ignore[return-value]  # every None was replaced


_NULL = "null"
