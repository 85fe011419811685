"""The registry lock excludes for real: a SIGKILLed holder, many waiters, and writers killed mid-write.

The lock is ``fcntl.flock`` on ``<registry>/.lock``; these tests kill real processes while they hold it.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from mlci.adapters.registry_store import JOURNAL, LOCK_FILE, RECORD, ModelRegistry
from mlci.core.atomic import FileLock
from mlci.errors import EXIT_SERVICE, ServiceError

REPO = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(REPO)}

# Takes the registry lock, says so from inside the critical section, and stays there until killed.
HOLDER = textwrap.dedent("""
    import sys, time
    from mlci.adapters.registry_store import ModelRegistry
    with ModelRegistry(sys.argv[1]).locked():
        print("held", flush=True)
        time.sleep(600)
        print("left", flush=True)
""")

# Forks N waiters. Each announces itself, then sets its own alias through the real set_alias; the
# Probe subclass marks the whole critical section so that a second holder inside it is seen.
WAITERS = textwrap.dedent("""
    import os, sys, time
    from contextlib import contextmanager
    from pathlib import Path
    from mlci.adapters.registry_store import ModelRegistry

    root, work, count, tag = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4]

    class Probe(ModelRegistry):
        @contextmanager
        def locked(self):
            with super().locked():
                me = work / "inside" / str(os.getpid())
                me.touch(exist_ok=False)
                others = len(os.listdir(work / "inside")) - 1
                if others:
                    with open(work / "overlaps", "a") as log:
                        log.write(f"{os.getpid()} saw {others}\\n")
                time.sleep(0.01)  # widen the window in which a second holder would be seen
                try:
                    yield
                finally:
                    time.sleep(0.01)
                    me.unlink()

    def waiter(index):
        registry = Probe(root, lock_timeout=120)
        (work / "ready" / f"{tag}-{index}").touch()
        registry.set_alias(f"{tag}-{index}", 1)

    children = []
    for index in range(count):
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                waiter(index)
            except BaseException as exc:
                print(f"waiter {index}: {exc!r}", file=sys.stderr, flush=True)
                code = 1
            os._exit(code)
        children.append(pid)
    failed = sum(os.waitpid(pid, 0)[1] != 0 for pid in children)
    sys.exit(1 if failed else 0)
""")


def start_holder(root: Path) -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(root)], env=ENV, stdout=subprocess.PIPE, text=True)
    ready, _, _ = select.select([holder.stdout], [], [], 60)
    assert ready and holder.stdout.readline().strip() == "held", "the holder never took the lock"
    return holder


def kill_while_holding(holder: subprocess.Popen) -> None:
    assert holder.poll() is None, "the holder left before the kill"
    holder.send_signal(signal.SIGKILL)
    assert holder.wait(timeout=30) == -signal.SIGKILL
    assert "left" not in holder.stdout.read(), "the holder left its critical section before the kill"


def wait_for(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def kernel_lock_holders(path: Path) -> set[int]:
    """PIDs holding a FLOCK on ``path``'s inode, as the kernel reports them in /proc/locks."""
    stat = os.stat(path)
    holders = set()
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if "->" in fields:  # a waiter queued behind a lock, not a holder
            continue
        kind, pid, (major, minor, inode) = fields[1], fields[4], fields[5].split(":")
        same_file = (int(major, 16), int(minor, 16), int(inode)) == (os.major(stat.st_dev), os.minor(stat.st_dev),
                                                                     stat.st_ino)
        if kind == "FLOCK" and same_file:
            holders.add(int(pid))
    return holders


@pytest.fixture
def registry(tmp_path) -> ModelRegistry:
    registry = ModelRegistry(tmp_path / "reg", lock_timeout=30)
    registry.register({"n": 0}, {"model.skops": b"model"})
    return registry


def test_sixteen_waiters_after_a_sigkilled_holder_never_overlap_nor_lose_an_alias(registry, tmp_path):
    rounds, waiters = 12, 16
    work = tmp_path / "work"
    for folder in ("inside", "ready"):
        (work / folder).mkdir(parents=True)
    for round_number in range(rounds):
        holder = start_holder(registry.root)
        tag = f"r{round_number}"
        crowd = subprocess.Popen([sys.executable, "-c", WAITERS, str(registry.root), str(work), str(waiters), tag],
                                 env=ENV, stderr=subprocess.PIPE, text=True)
        wait_for(lambda tag=tag: len([p for p in (work / "ready").iterdir()
                                      if p.name.startswith(f"{tag}-")]) == waiters)
        time.sleep(0.2)  # all waiters are polling the lock now
        assert not list((work / "inside").iterdir()), "a waiter entered while the holder held the lock"
        assert not any(a.startswith(tag) for a in registry.aliases()), "a waiter wrote while the holder held the lock"
        assert kernel_lock_holders(registry.root / LOCK_FILE) == {holder.pid}
        kill_while_holding(holder)
        _, err = crowd.communicate(timeout=120)
        assert crowd.returncode == 0, err
    overlaps = (work / "overlaps").read_text() if (work / "overlaps").exists() else ""
    assert overlaps == "", f"two processes held the lock at once:\n{overlaps}"
    aliases = registry.aliases()
    lost = [f"r{r}-{i}" for r in range(rounds) for i in range(waiters) if f"r{r}-{i}" not in aliases]
    assert lost == [], f"alias updates lost: {lost}"


def test_the_lock_is_a_kernel_lock_that_a_dead_holder_cannot_keep(registry):
    lock_file = registry.root / LOCK_FILE
    holder = start_holder(registry.root)
    assert kernel_lock_holders(lock_file) == {holder.pid}
    with pytest.raises(ServiceError) as refused:
        FileLock(lock_file, timeout=0.3).acquire()
    assert refused.value.exit_code == EXIT_SERVICE
    assert str(lock_file) in refused.value.message and f"pid {holder.pid}" in refused.value.message
    assert "do not delete the lock file" in refused.value.hint
    inode = lock_file.stat().st_ino
    kill_while_holding(holder)
    assert kernel_lock_holders(lock_file) == set()
    started = time.monotonic()
    with FileLock(lock_file, timeout=0.5):
        assert kernel_lock_holders(lock_file) == {os.getpid()}
        assert json.loads(lock_file.read_text())["pid"] == os.getpid()  # diagnostics for a waiter
    assert time.monotonic() - started < 0.5
    assert lock_file.stat().st_ino == inode, "the lock file must stay in place (never deleted)"
    assert kernel_lock_holders(lock_file) == set()


def test_a_waiter_whose_lock_file_was_replaced_does_not_run_beside_the_new_holder(tmp_path):
    """Someone deletes the lock file while it is held and a newcomer locks the fresh file. A waiter that
    opened the old file must not take the old, now nameless, file's lock and run beside the newcomer."""
    lock_file = tmp_path / ".lock"
    first = FileLock(lock_file, timeout=5)
    first.acquire()
    events: list[str] = []
    waiter_lock = FileLock(lock_file, timeout=10)
    waiter = threading.Thread(target=lambda: (waiter_lock.acquire(), events.append("waiter")))
    waiter.start()
    time.sleep(0.3)  # the waiter has opened the old file and polls it
    lock_file.unlink()  # by hand, against the documentation
    newcomer = FileLock(lock_file, timeout=1)
    newcomer.acquire()
    first.release()
    time.sleep(0.5)
    assert events == [], "the waiter took the old file's lock while the newcomer holds the current one"
    events.append("newcomer released")
    newcomer.release()
    waiter.join(timeout=10)
    assert events == ["newcomer released", "waiter"]
    waiter_lock.release()


# Registers a version (or sets an alias) and stops for good inside the temp file's fsync, so the kill
# lands mid-write: after the temp file exists and before it replaces its target.
STUCK_WRITER = textwrap.dedent("""
    import os, sys, time
    from mlci.adapters.registry_store import ModelRegistry
    root, action, stop_at = sys.argv[1], sys.argv[2], sys.argv[3]
    real_fsync = os.fsync

    def fsync(fd):
        name = os.readlink(f"/proc/self/fd/{fd}")
        if os.path.basename(name).startswith(stop_at) and name.endswith(".tmp"):
            print("mid-write", name, flush=True)
            time.sleep(600)
        return real_fsync(fd)

    os.fsync = fsync
    registry = ModelRegistry(root)
    if action == "register":
        registry.register({"n": 99}, {"notes.txt": b"notes", "model.skops": os.urandom(100_000)})
    elif action == "update":
        registry.update(1, lambda r: r.__setitem__("updated", True),
                        {"model.skops": b"new model", "metrics.json": b"{}"})
    else:
        registry.set_alias("production", 1)
""")


def kill_mid_write(root: Path, action: str, stop_at: str) -> Path:
    writer = subprocess.Popen([sys.executable, "-c", STUCK_WRITER, str(root), action, stop_at], env=ENV,
                              stdout=subprocess.PIPE, text=True)
    ready, _, _ = select.select([writer.stdout], [], [], 60)
    assert ready, "the writer never reached the write"
    word, temp = writer.stdout.readline().split()
    assert word == "mid-write" and Path(temp).exists()
    assert kernel_lock_holders(root / LOCK_FILE) == {writer.pid}, "the kill must land while the lock is held"
    kill_while_holding(writer)
    return Path(temp)


def leftovers(root: Path) -> list[str]:
    temps = [str(p.relative_to(root)) for p in root.rglob("*.tmp")]
    incomplete = [str(d.relative_to(root)) for d in (root / "versions").iterdir() if not (d / RECORD).exists()]
    return temps + incomplete


def test_a_writer_killed_mid_write_leaves_nothing_after_the_next_write(registry):
    root = registry.root
    registry.set_alias("production", 1)
    aliases_before = (root / "aliases.json").read_text()
    model_temp = kill_mid_write(root, "register", ".model.skops.")
    assert model_temp.parent == root / "versions/v2"
    assert sorted(leftovers(root)) == ["versions/v2", f"versions/v2/{model_temp.name}"]
    assert [v["version"] for v in registry.versions()] == [1]  # readers never see the dead writer's work

    alias_temp = kill_mid_write(root, "set_alias", ".aliases.json.")  # this writer cleaned up, then died
    assert alias_temp.parent == root
    assert leftovers(root) == [alias_temp.name]
    assert (root / "aliases.json").read_text() == aliases_before

    record = registry.register({"n": 1}, {"model.skops": b"next"})
    assert leftovers(root) == []
    assert [v["version"] for v in registry.versions()] == [1, record["version"]]
    assert registry.read_artifact(record["version"], "model.skops") == b"next"
    assert registry.alias_of("production") == 1


def test_a_registry_write_that_cannot_get_the_lock_exits_3_naming_the_lock(tmp_path, run_cli):
    from tests.model_projects import write_project

    root = write_project(tmp_path / "proj", extra={"registry": {"lock_timeout": 0.5}})
    assert run_cli("-C", root, "train")[0] == 0
    holder = start_holder(root / ".mlci/registry")
    try:
        started = time.monotonic()
        code, _, err = run_cli("-C", root, "registry", "promote", "1", "--to", "production")
        assert code == EXIT_SERVICE, err
        assert time.monotonic() - started < 10
        assert "timed out after 0.5s waiting for lock" in err and ".mlci/registry/.lock" in err
        assert f"held by pid {holder.pid}" in err and "Traceback" not in err
        assert "production" not in ModelRegistry(root / ".mlci/registry").aliases()
    finally:
        kill_while_holding(holder)
    code, _, err = run_cli("-C", root, "registry", "promote", "1", "--to", "production")
    assert code == 0, err


def test_storage_without_lock_support_is_exit_3_with_what_to_do(tmp_path, monkeypatch):
    import errno
    import fcntl

    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, "flock", no_locks)  # what an NFS v3 mount without lockd answers
    with pytest.raises(ServiceError) as refused:
        ModelRegistry(tmp_path / "reg").register({}, {"model.skops": b"m"})
    assert refused.value.exit_code == EXIT_SERVICE
    assert "cannot lock" in refused.value.message and "NFS" in refused.value.hint
    assert not (tmp_path / "reg/versions").exists(), "nothing may be written without the lock"


def test_an_update_killed_between_its_artifacts_and_its_record_is_finished_by_the_next_writer(registry):
    root = registry.root
    kill_mid_write(root, "update", ".version.json.")  # artifacts staged or moved, the record not yet written
    registry.set_alias("production", 1)  # any next write
    assert registry.get(1)["updated"] is True
    assert registry.read_artifact(1, "model.skops") == b"new model"  # sha256 matches the record
    assert registry.read_artifact(1, "metrics.json") == b"{}"
    assert leftovers(root) == [] and not (root / "versions/v1" / JOURNAL).exists()


def test_an_update_whose_change_fails_leaves_artifacts_and_record_as_they_were(registry):
    def failing_change(record):
        raise ValueError("refused")

    with pytest.raises(ValueError):
        registry.update(1, failing_change, artifacts={"model.skops": b"replacement"})
    assert registry.read_artifact(1, "model.skops") == b"model"
    registry.set_alias("production", 1)
    assert leftovers(registry.root) == []
