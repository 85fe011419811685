"""Facts recorded with every model version: data hashes, code commit, library versions, CI build."""

from __future__ import annotations

import hashlib
import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

from mlci.adapters.commands import git_output

LIBRARIES = ("mlci", "scikit-learn", "numpy", "scipy", "pandas", "pyarrow", "skops")


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def git_state(root: Path) -> dict[str, Any]:
    """The commit and whether the work tree had uncommitted changes; empty outside git."""
    def git(*args: str) -> str | None:
        return git_output(root, *args)

    commit = git("rev-parse", "HEAD") or os.environ.get("GIT_COMMIT")
    if not commit:
        return {}
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status), "branch": git("rev-parse", "--abbrev-ref", "HEAD")}


def ci_build() -> dict[str, str]:
    """The Jenkins build that ran this, from the environment Jenkins sets."""
    keys = {"BUILD_URL": "url", "JOB_NAME": "job", "BUILD_NUMBER": "number", "BRANCH_NAME": "branch"}
    return {field: os.environ[var] for var, field in keys.items() if os.environ.get(var)}
