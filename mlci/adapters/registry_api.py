"""The one interface every registry user goes through, whatever the backend.

Two backends implement it: :class:`mlci.adapters.registry_store.ModelRegistry` (a directory, local or on
shared storage) and :class:`mlci.adapters.mlflow_registry.MlflowRegistry` (an MLflow tracking server's
Model Registry). A version is a record (a dict: lineage, metrics, deployments, ``artifacts`` with the
sha256 of every artifact) plus its artifacts (bytes, verified against that sha256 on every read).
Nothing outside the backends knows where the bytes live.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from mlci.core.records import ModelVersion
from mlci.errors import NotFound

LATEST = "latest"
_VERSION_REF = re.compile(r"v?(\d+)")
# Artifact and alias names are plain file names, so a name read from a registry can never leave it.
ARTIFACT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")

# What a record change looks like: a function that edits the record in place.
Change = Callable[[dict[str, Any]], None]


@runtime_checkable
class Registry(Protocol):
    """Versions numbered from 1, aliases with a history, verified artifacts."""

    def versions(self) -> list[dict[str, Any]]:
        """Every complete version's record, oldest first (a half-registered version is never listed)."""

    def get(self, ref: str | int) -> dict[str, Any]:
        """The record of ``ref``: a number, ``vN``, ``latest`` or an alias name; NotFound otherwise."""

    def get_version(self, ref: str | int) -> ModelVersion:
        """The record of ``ref`` as a typed, read-only view (for readers; writers use ``update``)."""

    def resolve(self, ref: str | int) -> int:
        """The version number ``ref`` names."""

    def aliases(self) -> dict[str, dict[str, Any]]:
        """alias -> {"version": N, "history": [older holders, oldest first], "updated": time}."""

    def alias_of(self, name: str) -> int | None:
        """The version ``name`` points at, None when the alias does not exist."""

    def read_artifact(self, version: int, name: str) -> bytes:
        """An artifact's bytes after checking them against the sha256 recorded at registration
        (IntegrityError, exit 1, when they differ)."""

    def register(self, record: dict[str, Any], artifacts: dict[str, bytes]) -> dict[str, Any]:
        """Store a new version; returns its record with ``version``, ``created`` and ``artifacts`` set."""

    def update(self, version: int, change: Change, artifacts: dict[str, bytes] | None = None) -> dict[str, Any]:
        """Apply ``change`` to a version's record and add ``artifacts``; returns the new record."""

    def set_alias(self, name: str, version: int) -> dict[str, Any]:
        """Point ``name`` at ``version``, remembering the previous holder; returns the alias entry."""

    def rollback_alias(self, name: str) -> tuple[int, int]:
        """Point ``name`` back at its previous holder; returns (from_version, to_version)."""

    def describe(self) -> str:
        """Where the registry is, safe to print (no credentials)."""


def version_number(ref: str | int) -> int | None:
    """The version number a reference names directly (``3``, ``"3"``, ``"v3"``); None for ``latest`` or an
    alias. The one grammar of version references, which every backend's ``resolve`` reads."""
    match = _VERSION_REF.fullmatch(str(ref).strip())
    return int(match.group(1)) if match else None


def unknown_reference(text: str, aliases: dict[str, Any]) -> NotFound:
    """The error for a reference that is neither a version number, ``latest`` nor a known alias."""
    known = ", ".join(sorted(aliases)) or "none"
    return NotFound(f"no model version or alias named '{text}' (aliases: {known})", hint="see 'mlci registry list'")

