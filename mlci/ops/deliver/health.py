"""Health gate of a rollout: port ownership, readiness on the private check port, and the smoke test."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from typing import Any

import pandas as pd

from mlci.adapters.serving_probe import http_get, http_post_json, listening, local_listener, mlci_server_identity
from mlci.core.config import Project
from mlci.core.records import Deployment
from mlci.errors import UsageError
from mlci.ops.deliver.settings import deployment_name


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ensure_port_is_ours(project: Project, env_name: str, address: str, port: int,
                        previous: Deployment | None) -> None:
    """Refuse (exit 2) a port that serves anything but this environment's own deployment: SO_REUSEPORT
    would let two deployments share it and split the traffic, and a program without it makes the new
    server fail to bind."""
    if not listening(address, port):
        return
    identity = mlci_server_identity(f"http://{address}:{port}")
    ours = deployment_name(project, env_name)
    where = f"port {port} on {address}"
    hint = f"set environments.{env_name}.port to a free port, or stop what holds it"
    if identity is None:
        who = local_listener(port) if address == "127.0.0.1" else None
        raise UsageError(f"{where} is held by a program that is not an mlci server"
                         + (f": {who}" if who else ""), hint=hint)
    holder = identity.get("deployment")
    if holder == ours or (holder is None and previous is not None):
        return  # this environment's server (one started before servers named themselves, if unnamed)
    raise UsageError(f"{where} is held by mlci deployment '{holder or 'unknown'}', not '{ours}'", hint=hint)


def wait_ready(base_url: str, timeout: float, alive: Callable[[], bool]) -> tuple[bool, str]:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if not alive():
            return False, f"the server exited ({last})"
        try:
            status, body = http_get(f"{base_url}/health/ready")
            if status == 200:
                return True, "ready"
            last = json.loads(body or b"{}").get("reason") or f"HTTP {status}"
        except (OSError, ValueError) as exc:
            last = type(exc).__name__
        time.sleep(0.25)
    return False, f"not ready after {timeout:g}s ({last})"


def smoke_rows(project: Project, rows: int) -> list[dict[str, Any]]:
    data = project.config.data
    path = project.path(data.holdout or data.train)
    frame = pd.read_csv(path, nrows=rows, sep=data.csv.delimiter, encoding=data.csv.encoding,
                        decimal=data.csv.decimal)
    schema_target = open_schema_target(project)
    if schema_target in frame.columns:
        frame = frame.drop(columns=[schema_target])
    frame = frame.astype(object).where(frame.notna(), None)
    return frame.to_dict(orient="records")


def open_schema_target(project: Project) -> str | None:
    from mlci.core.dataschema import load_schema

    return load_schema(project.path(project.config.data.schema)).target


def smoke_test(base_url: str, records: list[dict[str, Any]], version: int,
               challenger: int | None = None) -> tuple[bool, str]:
    if not records:
        return True, "skipped (smoke_rows: 0)"
    try:
        status, raw = http_post_json(f"{base_url}/predict", records, timeout=30)
        body = json.loads(raw) if status == 200 else None
    except (OSError, ValueError) as exc:
        return False, f"/predict failed: {type(exc).__name__}"
    if not isinstance(body, dict):
        return False, f"/predict answered HTTP {status}"
    answering = {version, challenger} - {None}  # a canary may answer with its challenger
    if body.get("model_version") not in answering or len(body.get("predictions", [])) != len(records):
        answered = len(body.get("predictions", []))
        return False, f"/predict answered version {body.get('model_version')} with {answered} predictions"
    return True, f"{len(records)} holdout rows predicted"
