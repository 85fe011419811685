"""Every external program mlci runs (pip, kubectl, git, groovyc), with a timeout.

``run_command`` maps a program that is missing, cannot start or outlives its timeout to ``ServiceError``
(exit 3); a non-zero exit is returned for the caller to judge (``check=True`` raises it as a
``ServiceError`` with the last lines of stderr). ``git_output`` is for optional facts (lineage, the
repository URL): it answers None instead of raising.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

from mlci.errors import ServiceError

PIP_DOWNLOAD_TIMEOUT = 900.0  # a cold wheelhouse of the server's packages
KUBECTL_TIMEOUT = 120.0  # kubectl apply/undo; `rollout status` gets its own --timeout plus this margin
GIT_TIMEOUT = 10.0


def run_command(argv: Sequence[str], *, what: str, timeout: float, hint: str, cwd: Path | None = None,
                check: bool = False, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` capturing text output; ``what`` names it in errors ("kubectl apply")."""
    try:
        result = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, cwd=cwd,
                                env=None if env is None else {**os.environ, **env}, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise ServiceError(f"{what} did not finish within {timeout:g}s", hint=hint) from None
    except OSError as exc:
        raise ServiceError(f"{what} could not run: {exc.strerror or exc}", hint=hint) from None
    if check and result.returncode != 0:
        raise ServiceError(f"{what} failed: {last_lines(result.stderr)}", hint=hint)
    return result


def last_lines(text: str, lines: int = 2, limit: int = 400) -> str:
    """The end of a program's stderr on one line, for an error message."""
    return " ".join(" ".join((text or "").strip().splitlines()[-lines:]).split())[:limit]


def git_output(root: Path, *args: str) -> str | None:
    """``git -C root ARGS``'s stripped stdout, or None when git is missing, fails or times out."""
    try:
        result = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=GIT_TIMEOUT,
                                stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def start_background(argv: Sequence[str], *, what: str, log_path: Path, cwd: Path,
                     env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start a long-running program in its own session, its output appended to ``log_path``."""
    try:
        with open(log_path, "ab") as log_file:
            return subprocess.Popen(list(argv), env=None if env is None else {**os.environ, **env}, stdout=log_file,
                                    stderr=log_file, stdin=subprocess.DEVNULL, start_new_session=True, cwd=cwd)
    except OSError as exc:
        raise ServiceError(f"{what} could not start: {exc.strerror or exc}",
                           hint=f"see {log_path}; the project directory must be writable") from None
