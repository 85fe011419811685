"""HTTP and socket probes of model servers: readiness, identity and who listens on a port.

Every call has a timeout; callers get plain results (a status and a body, or None) and decide.
"""

from __future__ import annotations

import json
import os
import socket
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any


def http_get(url: str, timeout: float = 3.0) -> tuple[int, bytes]:
    """GET ``url``; (status, body) for any HTTP answer. Raises OSError when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def http_post_json(url: str, payload: Any, timeout: float = 30.0) -> tuple[int, bytes]:
    """POST ``payload`` as JSON; (status, body) for any HTTP answer. Raises OSError when nothing answers."""
    request = urllib.request.Request(url, data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def listening(host: str, port: int, timeout: float = 1.0) -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def mlci_server_identity(base_url: str, timeout: float = 2.0) -> dict[str, Any] | None:
    """What an mlci server on ``base_url`` says of itself at /health/live (``{"live": true,
    "deployment": "<project>/<env>"}``), or None when what answers is not an mlci server."""
    try:
        status, body = http_get(f"{base_url}/health/live", timeout=timeout)
        answer = json.loads(body)
    except (OSError, ValueError):
        return None
    if status != 200 or not isinstance(answer, dict) or answer.get("live") is not True:
        return None
    return answer


def local_listener(port: int) -> str | None:
    """'pid N (name)' of the process on this machine listening on TCP ``port``, when /proc tells."""
    inodes = _listening_inodes(port)
    if not inodes:
        return None
    for pid_dir in Path("/proc").iterdir():
        if not pid_dir.name.isdigit():
            continue
        try:
            for fd in (pid_dir / "fd").iterdir():
                link = os.readlink(fd)
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    name = (pid_dir / "comm").read_text().strip()
                    return f"pid {pid_dir.name} ({name})"
        except OSError:
            continue
    return None


def _listening_inodes(port: int) -> set[str]:
    """Socket inodes in state LISTEN on ``port`` (from /proc/net/tcp and tcp6)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                inodes.add(inode)
    return inodes
