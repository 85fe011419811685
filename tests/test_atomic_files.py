"""Several report files replaced at once (``mlci.core.atomic.atomic_write_files``): each file is
replaced atomically and durably as ``atomic_write_bytes`` does, but the waits for the disk overlap."""

from __future__ import annotations

import os
import threading

import pytest

from mlci.core import atomic
from mlci.core.atomic import atomic_write_files
from mlci.core.reports import Check, Report, write_report
from mlci.errors import ServiceError


def test_every_file_gets_its_content_and_ordinary_permissions(tmp_path):
    files = {tmp_path / "a.json": b"{}\n", tmp_path / "sub" / "b.xml": b"<x/>", tmp_path / "c.html": b""}
    (tmp_path / "a.json").write_bytes(b"old")
    atomic_write_files(files)
    mask = os.umask(0)
    os.umask(mask)
    for path, data in files.items():
        assert path.read_bytes() == data
        assert path.stat().st_mode & 0o777 == 0o666 & ~mask
    assert not [p for p in tmp_path.rglob("*.tmp")]


def test_a_refused_file_is_a_service_error_naming_it_and_leaves_no_temporary_file(tmp_path):
    (tmp_path / "taken").mkdir()  # a directory where a file should go: the rename is refused
    (tmp_path / "taken" / "inside").write_text("x")
    with pytest.raises(ServiceError, match="cannot write .*taken"):
        atomic_write_files({tmp_path / "ok.json": b"{}", tmp_path / "taken": b"data"})
    assert not [p for p in tmp_path.rglob("*.tmp")]
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ServiceError, match="cannot write .*file/out.json"):
        atomic_write_files({blocker / "out.json": b"{}"})


def test_every_file_is_fsynced_before_it_replaces_the_old_one(tmp_path, monkeypatch):
    synced: set[str] = set()
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        synced.add(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    def replace(source, target):
        assert os.path.realpath(source) in synced, f"{source} replaced {target} before it was fsynced"
        real_replace(source, target)

    monkeypatch.setattr(atomic.os, "fsync", fsync)
    monkeypatch.setattr(atomic.os, "replace", replace)
    atomic_write_files({tmp_path / f"f{i}": b"x" * i for i in range(4)})
    assert str(tmp_path) in synced  # the directory, after the renames


def test_a_report_waits_for_the_disk_about_once_not_once_per_file(tmp_path, monkeypatch):
    """A report's four files (JSON, JUnit, HTML and stylesheet) are fsynced at the same time, not one after
    the other: each of their fsyncs waits until all four are in flight. One after the other, the first
    would wait alone until the deadline, and the test fails without depending on how fast the disk is."""
    real_fsync = os.fsync
    report_files = ("validate.json", "validate.junit.xml", "validate.html", "mlci.css")
    together = threading.Condition()
    in_flight, calls, timed_out = [0], [], []

    def fsync_meeting_the_others(fd):
        name = os.readlink(f"/proc/self/fd/{fd}")
        calls.append(name)
        if any(f".{file}." in name for file in report_files):
            with together:
                in_flight[0] += 1
                together.notify_all()
                if not together.wait_for(lambda: in_flight[0] >= len(report_files), timeout=10):
                    timed_out.append(name)
        real_fsync(fd)

    monkeypatch.setattr(atomic.os, "fsync", fsync_meeting_the_others)
    report = Report(kind="validate", checks=[Check(name="a", passed=True)])
    write_report(report, tmp_path, html="<html></html>")
    assert len(calls) >= 6  # every file and the directory are still fsynced
    assert in_flight[0] == len(report_files) and timed_out == []
    assert {p.name for p in tmp_path.iterdir()} >= {"validate.json", "validate.junit.xml", "validate.html",
                                                   "mlci.css", "summary.md", "description.txt"}
