"""The embedded model registry: a directory of versions with their lineage, artifacts and aliases.

Layout::

    <root>/versions/v<N>/version.json   the version's record (lineage, metrics, artifacts, deployments)
    <root>/versions/v<N>/<artifact>      model file, metrics.json, model card, ...
    <root>/aliases.json                  alias -> {"version": N, "history": [older versions]}
    <root>/versions/v<N>/.update-journal.json   an update in progress (new record + staged artifacts)
    <root>/.lock                         flock()ed while anything is written; never deleted

A version exists once its ``version.json`` exists: that file is written last, atomically, so a process
killed mid-registration leaves only an incomplete directory that readers ignore, and that the next
writer removes (with any temp files) once it holds the lock. An update that replaces artifacts goes
through a journal, so a writer killed midway is rolled forward by the next one, and an artifact never
stays out of step with the sha256 in its record. Every artifact's sha256
is recorded and verified on every read; artifact names are plain file names, so a path read from the
registry cannot leave it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from mlci.adapters.registry_api import ARTIFACT_NAME, LATEST, unknown_reference, version_number
from mlci.core.atomic import FileLock, atomic_write_bytes, atomic_write_json
from mlci.core.records import ModelVersion, stamp, upgrade
from mlci.errors import ConfigError, IntegrityError, NotFound

RECORD = "version.json"
LOCK_FILE = ".lock"  # flock()ed, never deleted
JOURNAL = ".update-journal.json"  # an update in progress: its record and staged artifacts
_VERSION_DIR = re.compile(r"^v(\d+)$")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class ModelRegistry:
    def __init__(self, root: Path, *, lock_timeout: float = 60.0) -> None:
        self.root = Path(root)
        self.lock_timeout = lock_timeout

    def describe(self) -> str:
        return f"local registry {self.root}"

    # -- reading -------------------------------------------------------------------------------

    def versions(self) -> list[dict[str, Any]]:
        """Every complete version, oldest first."""
        return [self._read_record(n) for n in self._version_numbers()]

    def get(self, ref: str | int) -> dict[str, Any]:
        return self._read_record(self.resolve(ref))

    def get_version(self, ref: str | int) -> ModelVersion:
        return ModelVersion.from_dict(self.get(ref))

    def resolve(self, ref: str | int) -> int:
        """A version number from ``3``, ``"3"``, ``"v3"``, ``"latest"`` or an alias name."""
        text = str(ref).strip()
        number = version_number(text)
        if number is not None:
            if number in self._version_numbers():
                return number
            raise NotFound(f"model version {text} does not exist", hint="see 'mlci registry list'")
        if text == LATEST:
            numbers = self._version_numbers()
            if not numbers:
                raise NotFound("the registry has no model versions yet", hint="run 'mlci train'")
            return numbers[-1]
        aliases = self.aliases()
        alias = aliases.get(text)
        if alias is None:
            raise unknown_reference(text, aliases)
        if alias["version"] not in self._version_numbers():
            raise IntegrityError(f"{self.root / 'aliases.json'}: alias '{text}' points at version "
                                 f"{alias['version']}, which does not exist", hint=_REPAIR_HINT)
        return alias["version"]

    def aliases(self) -> dict[str, dict[str, Any]]:
        path = self.root / "aliases.json"
        if not path.exists():
            return {}
        aliases = self._read_json(path)
        problem = alias_file_problem(aliases)
        if problem:
            raise IntegrityError(f"{path}: {problem}", hint=_REPAIR_HINT)
        return aliases

    def alias_of(self, name: str) -> int | None:
        entry = self.aliases().get(name)
        return entry["version"] if entry else None

    def read_artifact(self, version: int, name: str) -> bytes:
        """An artifact's bytes, after checking its sha256 against the record."""
        record = self._read_record(version)
        expected = record.get("artifacts", {}).get(name, {}).get("sha256")
        if expected is None:
            raise NotFound(f"model version {version} has no artifact '{name}'")
        data = self.artifact_path(version, name).read_bytes()
        if sha256_bytes(data) != expected:
            raise IntegrityError(f"{self.artifact_path(version, name)}: sha256 does not match the registry record",
                                 hint="the file was changed after registration; retrain or restore it")
        return data

    def artifact_path(self, version: int, name: str) -> Path:
        if not ARTIFACT_NAME.match(name):
            raise IntegrityError(f"refusing artifact name {name!r}: not a plain file name")
        base = self._version_dir(version).resolve()
        path = (base / name).resolve()
        if path.parent != base:
            raise IntegrityError(f"refusing artifact path {name!r}: outside the registry")
        return path

    # -- writing (always under the lock) ------------------------------------------------------

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the registry lock; first remove what writers killed under it left behind."""
        with FileLock(self.root / LOCK_FILE, timeout=self.lock_timeout):
            self._remove_leftovers()
            yield

    def register(self, record: dict[str, Any], artifacts: dict[str, bytes]) -> dict[str, Any]:
        """Store a new version; returns its record with ``version`` and ``artifacts`` filled in."""
        with self.locked():
            numbers = self._all_version_dirs()
            number = (max(numbers) + 1) if numbers else 1
            directory = self._version_dir(number)
            directory.mkdir(parents=True, exist_ok=False)
            record = stamp({**record, "version": number, "created": record.get("created") or _now(),
                            "artifacts": {}})
            for name, data in artifacts.items():
                self._store_artifact(record, number, name, data)
            atomic_write_json(directory / RECORD, record)
        return record

    def update(self, version: int, change: Callable[[dict[str, Any]], None],
               artifacts: dict[str, bytes] | None = None) -> dict[str, Any]:
        """Apply ``change`` to a version's record (and replace or add artifacts) atomically.

        Replaced artifacts must change together with the record that holds their sha256, so they are
        staged first, then a journal (the new record and the staged files) is written, and only then
        are the files moved into place. A writer killed after the journal is finished by the next one.
        """
        with self.locked():
            record = self._read_record(version)
            directory = self._version_dir(version)
            staged = {}
            for name, data in (artifacts or {}).items():
                stage = self.artifact_path(version, name).with_name(f".{name}.staged.tmp")
                atomic_write_bytes(stage, data)  # a crash before the journal leaves only a temp file
                record.setdefault("artifacts", {})[name] = {"sha256": sha256_bytes(data), "bytes": len(data)}
                staged[name] = stage.name
            change(record)
            stamp(record)
            if staged:
                atomic_write_json(directory / JOURNAL, {"record": record, "staged": staged})
                self._finish_update(version)
            else:
                atomic_write_json(directory / RECORD, record)
        return record

    def set_alias(self, name: str, version: int) -> dict[str, Any]:
        if not ARTIFACT_NAME.match(name):
            raise ConfigError(f"'{name}' is not a valid alias name", hint="letters, digits, '.', '_', '-'")
        with self.locked():
            self._read_record(version)
            aliases = self.aliases()
            entry = aliases.get(name, {"version": None, "history": []})
            if entry["version"] is not None and entry["version"] != version:
                entry["history"] = entry["history"] + [entry["version"]]
            entry["version"] = version
            entry["updated"] = _now()
            aliases[name] = entry
            atomic_write_json(self.root / "aliases.json", aliases)
        return entry

    def rollback_alias(self, name: str) -> tuple[int, int]:
        """Point ``name`` back at its previous holder; returns (from_version, to_version)."""
        with self.locked():
            aliases = self.aliases()
            entry = aliases.get(name)
            if not entry:
                raise NotFound(f"alias '{name}' does not exist")
            if not entry["history"]:
                raise NotFound(f"alias '{name}' has no previous version to roll back to")
            current, previous = entry["version"], entry["history"][-1]
            aliases[name] = {"version": previous, "history": entry["history"][:-1], "updated": _now()}
            atomic_write_json(self.root / "aliases.json", aliases)
        return current, previous

    # -- internals ----------------------------------------------------------------------------

    def _remove_leftovers(self) -> None:
        """Temp files and version folders without a record, left by a writer that was killed.

        Called only while holding the lock. Every write into the registry happens under that lock, so
        nobody else is writing now: a temp file or an incomplete ``versions/vN`` found here is dead.
        """
        for number in self._all_version_dirs():
            if (self._version_dir(number) / JOURNAL).exists():
                self._finish_update(number)
        for directory in [self.root, *self._version_dir_paths()]:
            for leftover in directory.glob(".*.tmp"):
                with suppress(FileNotFoundError):
                    if leftover.is_file() and not leftover.is_symlink():
                        leftover.unlink()
        for directory in self._version_dir_paths():
            if not (directory / RECORD).exists():
                shutil.rmtree(directory, ignore_errors=True)

    def _finish_update(self, version: int) -> None:
        """Move an update's staged artifacts into place, then write its record (idempotent, under the lock)."""
        directory = self._version_dir(version)
        journal = self._read_json(directory / JOURNAL)
        for name in journal["staged"]:
            target = self.artifact_path(version, name)  # a plain name inside the version folder
            with suppress(FileNotFoundError):  # moved already, before the previous writer died
                os.replace(target.with_name(f".{name}.staged.tmp"), target)
        atomic_write_json(directory / RECORD, journal["record"])
        (directory / JOURNAL).unlink()

    def _version_dir_paths(self) -> list[Path]:
        return [d for d in (self._version_dir(n) for n in self._all_version_dirs())
                if d.is_dir() and not d.is_symlink()]

    def _store_artifact(self, record: dict[str, Any], version: int, name: str, data: bytes) -> None:
        atomic_write_bytes(self.artifact_path(version, name), data)
        record.setdefault("artifacts", {})[name] = {"sha256": sha256_bytes(data), "bytes": len(data)}

    def _version_dir(self, number: int) -> Path:
        return self.root / "versions" / f"v{int(number)}"

    def _all_version_dirs(self) -> list[int]:
        directory = self.root / "versions"
        if not directory.is_dir():
            return []
        return sorted(int(m.group(1)) for p in directory.iterdir() if (m := _VERSION_DIR.match(p.name)))

    def _version_numbers(self) -> list[int]:
        return [n for n in self._all_version_dirs() if (self._version_dir(n) / RECORD).exists()]

    def _read_record(self, number: int) -> dict[str, Any]:
        path = self._version_dir(number) / RECORD
        if not path.exists():
            raise NotFound(f"model version {number} does not exist", hint="see 'mlci registry list'")
        record = self._read_json(path)
        problem = record_problem(record, number)
        if problem:
            raise IntegrityError(f"{path}: {problem}", hint=_REPAIR_HINT)
        return upgrade(record)

    @staticmethod
    def _read_json(path: Path) -> Any:
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise IntegrityError(f"{path}: not a readable registry file ({exc})") from None


_REPAIR_HINT = "the registry file was changed outside mlci; restore it from a backup or re-register the model"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# Optional record keys other code reads, and the JSON type each must have when present (None allowed).
_OPTIONAL_TYPES: dict[str, type | tuple[type, ...]] = {
    "created": str, "task": str, "estimator": (dict, str), "metrics": dict, "features": list, "classes": list,
    "data": dict, "schema": dict, "image": dict, "deployments": list, "git": dict}


def record_problem(record: Any, number: int) -> str | None:
    """Why ``record`` is not the version.json of version ``number`` (``None`` when its shape is right)."""
    if not isinstance(record, dict):
        return f"expected a JSON object, got {type(record).__name__}"
    if not _is_version_number(record.get("version")) or record["version"] != number:
        return f"'version' is {record.get('version')!r}, expected {number}"
    artifacts = record.get("artifacts")
    if not isinstance(artifacts, dict):
        return "'artifacts' is missing or not an object"
    for name, entry in artifacts.items():  # names are checked where they are used: artifact_path
        if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str) \
                or not _SHA256.match(entry["sha256"]):
            return f"artifact '{name}' has no valid sha256"
    for key, expected in _OPTIONAL_TYPES.items():
        if record.get(key) is not None and not isinstance(record[key], expected):
            return f"'{key}' has the wrong type ({type(record[key]).__name__})"
    return None


def alias_file_problem(aliases: Any) -> str | None:
    """Why ``aliases`` is not a valid aliases.json (``None`` when it is)."""
    if not isinstance(aliases, dict):
        return f"expected a JSON object, got {type(aliases).__name__}"
    for name, entry in aliases.items():
        if not ARTIFACT_NAME.match(str(name)):
            return f"alias name {str(name)[:60]!r} is not a valid name"
        if not isinstance(entry, dict) or not _is_version_number(entry.get("version")):
            shown = entry.get("version") if isinstance(entry, dict) else entry
            return f"alias '{name}' does not point at a version number ({str(shown)[:60]!r})"
        history = entry.get("history", [])
        if not isinstance(history, list) or not all(map(_is_version_number, history)):
            return f"alias '{name}' has a history that is not a list of version numbers"
        entry.setdefault("history", [])
    return None


def _is_version_number(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
