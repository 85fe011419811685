"""The embedded model registry: a directory of versions with their lineage, artifacts and aliases.

Layout::

    <root>/versions/v<N>/version.json   the version's record (lineage, metrics, artifacts, deployments)
    <root>/versions/v<N>/<artifact>      model file, metrics.json, model card, ...
    <root>/aliases.json                  alias -> {"version": N, "history": [older versions]}
    <root>/.lock                         held while anything is written

A version exists once its ``version.json`` exists: that file is written last, atomically, so a process
killed mid-registration leaves only an incomplete directory that readers ignore. Every artifact's sha256
is recorded and verified on every read; artifact names are plain file names, so a path read from the
registry cannot leave it.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from mlci.core.atomic import FileLock, atomic_write_bytes, atomic_write_json
from mlci.errors import ConfigError, IntegrityError, NotFound

RECORD = "version.json"
_ARTIFACT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
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

    def resolve(self, ref: str | int) -> int:
        """A version number from ``3``, ``"3"``, ``"v3"``, ``"latest"`` or an alias name."""
        text = str(ref).strip()
        match = re.fullmatch(r"v?(\d+)", text)
        if match:
            number = int(match.group(1))
            if number in self._version_numbers():
                return number
            raise NotFound(f"model version {text} does not exist", hint="see 'mlci registry list'")
        if text == "latest":
            numbers = self._version_numbers()
            if not numbers:
                raise NotFound("the registry has no model versions yet", hint="run 'mlci train'")
            return numbers[-1]
        alias = self.aliases().get(text)
        if alias is None:
            known = ", ".join(sorted(self.aliases())) or "none"
            raise NotFound(f"no model version or alias named '{text}' (aliases: {known})",
                           hint="see 'mlci registry list'")
        return int(alias["version"])

    def aliases(self) -> dict[str, dict[str, Any]]:
        path = self.root / "aliases.json"
        if not path.exists():
            return {}
        return self._read_json(path)

    def alias_of(self, name: str) -> int | None:
        entry = self.aliases().get(name)
        return int(entry["version"]) if entry else None

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
        if not _ARTIFACT_NAME.match(name):
            raise IntegrityError(f"refusing artifact name {name!r}: not a plain file name")
        base = self._version_dir(version).resolve()
        path = (base / name).resolve()
        if path.parent != base:
            raise IntegrityError(f"refusing artifact path {name!r}: outside the registry")
        return path

    # -- writing (always under the lock) ------------------------------------------------------

    @contextmanager
    def locked(self) -> Iterator[None]:
        with FileLock(self.root / ".lock", timeout=self.lock_timeout):
            yield

    def register(self, record: dict[str, Any], artifacts: dict[str, bytes]) -> dict[str, Any]:
        """Store a new version; returns its record with ``version`` and ``artifacts`` filled in."""
        with self.locked():
            numbers = self._all_version_dirs()
            number = (max(numbers) + 1) if numbers else 1
            directory = self._version_dir(number)
            directory.mkdir(parents=True, exist_ok=False)
            record = {**record, "version": number, "created": record.get("created") or _now(),
                      "artifacts": {}}
            for name, data in artifacts.items():
                self._store_artifact(record, number, name, data)
            atomic_write_json(directory / RECORD, record)
        return record

    def update(self, version: int, change: Callable[[dict[str, Any]], None],
               artifacts: dict[str, bytes] | None = None) -> dict[str, Any]:
        """Apply ``change`` to a version's record (and add artifacts) atomically."""
        with self.locked():
            record = self._read_record(version)
            for name, data in (artifacts or {}).items():
                self._store_artifact(record, version, name, data)
            change(record)
            atomic_write_json(self._version_dir(version) / RECORD, record)
        return record

    def set_alias(self, name: str, version: int) -> dict[str, Any]:
        if not _ARTIFACT_NAME.match(name):
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
        return self._read_json(path)

    @staticmethod
    def _read_json(path: Path) -> Any:
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise IntegrityError(f"{path}: not a readable registry file ({exc})") from None


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
