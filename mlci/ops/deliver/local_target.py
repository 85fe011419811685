"""The local target: the server as a background process on this host."""

from __future__ import annotations

import os
import signal
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from mlci.adapters.commands import start_background
from mlci.core.config import Project
from mlci.core.records import ModelVersion
from mlci.serve.settings import ServeSettings


class LocalTarget:
    """The server as a background process on this machine (a laptop without Docker)."""

    name = "local"
    address = "127.0.0.1"

    def __init__(self, project: Project, env_name: str) -> None:
        self.project = project
        self.env_name = env_name

    def start(self, record: ModelVersion, settings: ServeSettings) -> dict[str, Any]:
        run_dir = self.project.path(".mlci/run")
        run_dir.mkdir(parents=True, exist_ok=True)
        log_path = run_dir / f"{self.env_name}-v{record.version}-{uuid.uuid4().hex[:6]}.log"
        process = start_background([sys.executable, "-m", "mlci.serve"], what="the model server", log_path=log_path,
                                   cwd=self.project.root, env=settings.environment())
        self._process = process
        return {"pid": process.pid, "log": str(log_path)}

    def alive(self, handle: dict[str, Any]) -> bool:
        process = getattr(self, "_process", None)
        if process is not None and process.pid == handle["pid"]:
            return process.poll() is None
        return is_our_server(handle["pid"])

    def diagnostics(self, handle: dict[str, Any]) -> str:
        try:
            return "\n".join(Path(handle["log"]).read_text(errors="replace").splitlines()[-10:])
        except OSError:
            return ""

    def stop(self, handle: dict[str, Any], timeout: float = 30.0) -> None:
        pid = handle["pid"]
        if not is_our_server(pid):
            return
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while is_our_server(pid) and time.monotonic() < deadline:
            process = getattr(self, "_process", None)
            if process is not None and process.pid == pid:
                process.poll()
            time.sleep(0.05)
        if is_our_server(pid):
            os.kill(pid, signal.SIGKILL)


def is_our_server(pid: int) -> bool:
    """True when ``pid`` runs mlci's server (so a recycled pid is never signalled)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return b"mlci.serve" in cmdline and state != "Z"
