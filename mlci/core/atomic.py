"""Atomic file writes and an inter-process lock, safe under concurrent Jenkins builds.

A write goes to a temporary file in the target's directory, is fsynced, then ``os.replace``d over the
target, so readers see the old file or the new one, never half of one. ``FileLock`` uses ``O_EXCL``
lock files holding the owner's pid and host; a lock whose owner is gone (or older than ``stale_after``)
is broken, so a killed build cannot wedge the registry.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from mlci.errors import ServiceError


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp creates files as 0600; written files get the usual permissions (0666 less the umask).
_FILE_MODE = 0o666 & ~_current_umask()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically; ServiceError (exit 3) when the file system refuses."""
    path = Path(path)
    try:
        _replace_atomically(path, data)
    except OSError as exc:
        raise ServiceError(f"cannot write {path}: {exc.strerror or exc}",
                           hint="check that the directory is writable and the disk has space") from None


def _replace_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, _FILE_MODE)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with _ignore_missing():
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, data: Any) -> None:
    """``data`` as JSON (``mlci.core.jsonvalue``: NumPy values converted, an unknown type raises TypeError)."""
    from mlci.core.jsonvalue import dumps

    atomic_write_text(path, dumps(data) + "\n")


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def _ignore_missing() -> Iterator[None]:
    try:
        yield
    except FileNotFoundError:
        pass


class FileLock:
    """An exclusive lock on ``path`` (a lock file), with a timeout and stale-lock recovery."""

    def __init__(self, path: Path, *, timeout: float = 60.0, stale_after: float = 600.0,
                 poll: float = 0.02) -> None:
        self.path = Path(path)
        self.timeout = timeout
        self.stale_after = stale_after
        self.poll = poll

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.timeout
        owner = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "time": time.time()})
        while True:
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if self._break_if_stale():
                    continue
                if time.monotonic() > deadline:
                    raise ServiceError(f"timed out after {self.timeout:g}s waiting for lock {self.path}",
                                       hint="another mlci process holds it; if none runs, delete the file")
                time.sleep(self.poll)
                continue
            with os.fdopen(fd, "w") as handle:
                handle.write(owner)
            return

    def release(self) -> None:
        with _ignore_missing():
            os.unlink(self.path)

    def _break_if_stale(self) -> bool:
        try:
            info = json.loads(self.path.read_text() or "{}")
        except (FileNotFoundError, ValueError):
            info = {}
        try:
            age = time.time() - self.path.stat().st_mtime
        except FileNotFoundError:
            return True
        same_host = info.get("host") == socket.gethostname()
        dead = same_host and isinstance(info.get("pid"), int) and not _pid_alive(info["pid"])
        if not info and age < 2.0:
            return False  # being written right now
        if dead or age > self.stale_after or not info:
            # Rename first so two processes cannot both break the same lock and then delete a new one.
            grave = self.path.with_name(f"{self.path.name}.stale.{os.getpid()}")
            try:
                os.rename(self.path, grave)
                os.unlink(grave)
            except FileNotFoundError:
                pass
            return True
        return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
