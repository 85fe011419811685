"""Atomic file writes and an inter-process lock, safe under concurrent Jenkins builds.

A write goes to a temporary file in the target's directory, is fsynced, then ``os.replace``d over the
target, so readers see the old file or the new one, never half of one. ``FileLock`` is a kernel lock
(``fcntl.flock``) on a lock file that stays in place; the kernel releases it when the holder dies, so a
killed build can neither wedge the registry nor let two processes hold the lock at once.
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import socket
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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
    tmp = _durable_temp(path, data)
    try:
        os.replace(tmp, path)
    except BaseException:
        with _ignore_missing():
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _durable_temp(path: Path, data: bytes) -> str:
    """``data`` in a new temporary file beside ``path``, fsynced; its name."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, _FILE_MODE)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        with _ignore_missing():
            os.unlink(tmp)
        raise
    return tmp


def atomic_write_files(files: Mapping[Path, bytes]) -> None:
    """Replace several files, each atomically as ``atomic_write_bytes`` does, waiting for the disk
    about once: each file is written and fsynced on a thread of its own (the file system commits them
    together), then all are renamed into place and each directory is fsynced once. One after the other,
    a report's files wait for two fsyncs each (about 10 ms apiece on a virtual disk)."""
    from concurrent.futures import ThreadPoolExecutor

    items = [(Path(path), data) for path, data in files.items()]
    temps: dict[Path, str] = {}
    try:
        for path, _ in items:
            _refused(path, path.parent.mkdir, parents=True, exist_ok=True)
        with ThreadPoolExecutor(max_workers=max(len(items), 1)) as pool:
            futures = {path: pool.submit(_durable_temp, path, data) for path, data in items}
        temps.update((path, future.result()) for path, future in futures.items() if future.exception() is None)
        for path, future in futures.items():
            _refused(path, future.result)
        for path, tmp in list(temps.items()):
            _refused(path, os.replace, tmp, path)
            del temps[path]
    finally:
        for tmp in temps.values():  # written but not renamed: a failure elsewhere
            with _ignore_missing():
                os.unlink(tmp)
    for directory in {path.parent for path, _ in items}:
        _fsync_dir(directory)


def _refused(path: Path, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``call(*args, **kwargs)``, its OSError as mlci's ServiceError (exit 3) naming ``path``."""
    try:
        return call(*args, **kwargs)
    except OSError as exc:
        raise ServiceError(f"cannot write {path}: {exc.strerror or exc}",
                           hint="check that the directory is writable and the disk has space") from None


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
    """An exclusive inter-process lock: ``fcntl.flock`` on ``path``, a lock file that is never deleted.

    The kernel releases the lock when its holder's last descriptor closes, so a SIGKILLed build can
    neither leave the lock behind nor let two waiters "break" it at once (there is nothing to break).
    The file's content (pid, host, time of the holder) is diagnostics only, shown when a wait times out.
    Not re-entrant: a process that takes the lock twice waits for itself until the timeout.
    """

    def __init__(self, path: Path, *, timeout: float = 60.0, poll: float = 0.02) -> None:
        self.path = Path(path)
        self.timeout = timeout
        self.poll = poll
        self._fd: int | None = None

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def acquire(self) -> None:
        if self._fd is not None:
            raise RuntimeError(f"{self.path} is already held by this FileLock")
        deadline = time.monotonic() + self.timeout
        while True:
            fd = self._open()
            try:
                locked = self._try_flock(fd, deadline)
            except BaseException:
                os.close(fd)
                raise
            if locked and self._is_current_file(fd):
                break
            os.close(fd)  # a file replaced by hand after we opened it: lock the one now at the path
        self._fd = fd
        self._write_owner(fd)

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)  # the owner line describes the holder only while it holds the lock
        except OSError:
            pass
        finally:
            os.close(fd)  # closing the last descriptor releases the flock

    def _open(self) -> int:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, _FILE_MODE)
        except OSError as exc:
            raise ServiceError(f"cannot open lock file {self.path}: {exc.strerror or exc}",
                               hint="check that the directory exists and is writable") from None

    def _try_flock(self, fd: int, deadline: float) -> bool:
        """Wait for the lock until ``deadline``; ServiceError (exit 3) on timeout or no lock support."""
        delay = self.poll
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except (BlockingIOError, InterruptedError):
                pass
            except OSError as exc:  # ENOLCK: e.g. NFSv3 without lockd, or a file system without locks
                raise ServiceError(f"cannot lock {self.path}: {exc.strerror or exc}",
                                   hint=STORAGE_HINT) from None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ServiceError(f"timed out after {self.timeout:g}s waiting for lock {self.path}"
                                   f"{_holder_description(self.path)}",
                                   hint="another mlci process is writing; wait for it or raise the timeout "
                                        "(registry.lock_timeout). The kernel frees the lock when its holder "
                                        "exits: do not delete the lock file")
            # Jittered backoff so many waiters do not poll in step; capped to stay responsive.
            time.sleep(min(remaining, delay * (0.5 + random.random())))
            delay = min(delay * 2, 0.25)

    def _is_current_file(self, fd: int) -> bool:
        try:
            held, current = os.fstat(fd), os.stat(self.path)
        except FileNotFoundError:
            return False
        return (held.st_dev, held.st_ino) == (current.st_dev, current.st_ino)

    @staticmethod
    def _write_owner(fd: int) -> None:
        owner = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()})
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, owner.encode() + b"\n", 0)
        except OSError:
            pass  # diagnostics only; the lock itself is held


STORAGE_HINT = ("the lock needs a file system with working flock(): a local disk, or NFS v4 "
                "(or v3 with lockd), not mounted with 'nolock' or 'local_lock'; see docs/model.md, Registry")


def _holder_description(path: Path) -> str:
    try:
        info = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError, UnicodeDecodeError):
        return ""
    if not isinstance(info, dict) or "pid" not in info:
        return ""
    since = info.get("since")
    held = f", for {time.time() - since:.0f}s" if isinstance(since, (int, float)) else ""
    return f" (held by pid {info.get('pid')} on {info.get('host', '?')}{held})"
