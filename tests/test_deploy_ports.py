"""A deployment owns its port: deploy refuses a port held by another project's or environment's server, or
by a program that is not an mlci server, and the servers it starts answer keep-alive clients without the
Nagle/delayed-ACK stall.

Runs real servers as background processes (the local target) on loopback.
"""

from __future__ import annotations

import asyncio
import http.server
import os
import socket
import threading
from pathlib import Path

import pytest
import yaml

from mlci.core.config import load_project
from mlci.ops.deliver.health import free_port
from mlci.ops.deliver.history import active_deployment, deployments
from mlci.ops.deliver.local_target import LocalTarget
from mlci.ops.model.registry import open_registry
from mlci.serve.runner import open_socket
from tests.serving_support import copy_example, register_version

pytestmark = pytest.mark.slow


def _local_project(directory: Path, name: str, port: int) -> Path:
    project_dir = copy_example(directory)
    path = project_dir / "mlci.yaml"
    config = yaml.safe_load(path.read_text())
    config["project"] = name
    config["environments"] = {"laptop": {"target": "local", "port": port, "health_timeout": 30, "smoke_rows": 2}}
    config.pop("image", None)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    register_version(project_dir, seed=0)
    return project_dir


def _stop_active(project_dir: Path, env: str = "laptop") -> None:
    project = load_project(project_dir)
    current = active_deployment(open_registry(project), env)
    if current:
        LocalTarget(project, env).stop(current.handle)


def test_a_port_held_by_another_project_is_refused_and_the_holder_keeps_serving(tmp_path, run_cli):
    port = free_port()
    first = _local_project(tmp_path / "a", "fraud", port)
    second = _local_project(tmp_path / "b", "churn", port)
    try:
        code, out, err = run_cli("-C", first, "deploy", "--env", "laptop")
        assert code == 0, err
        code, out, err = run_cli("-C", second, "deploy", "--env", "laptop")
        assert code == 2, err
        assert f"port {port} on 127.0.0.1 is held by mlci deployment 'fraud/laptop', not 'churn/laptop'" in err
        assert "environments.laptop.port" in err and "Traceback" not in err
        assert deployments(open_registry(load_project(second)), "laptop") == []
        # the holder's own next version takes the port over as usual
        register_version(first, seed=1)
        code, out, err = run_cli("-C", first, "deploy", "--env", "laptop")
        assert code == 0, err
        assert [d.status for d in deployments(open_registry(load_project(first)), "laptop")] == ["retired", "active"]
    finally:
        _stop_active(first)
        _stop_active(second)


class _NotFound(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's naming
        self.send_error(404)

    def log_message(self, *args):
        pass


def test_a_port_held_by_another_program_is_refused_naming_it(tmp_path, run_cli):
    server = http.server.HTTPServer(("127.0.0.1", 0), _NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        project_dir = _local_project(tmp_path, "fraud", server.server_address[1])
        code, out, err = run_cli("-C", project_dir, "deploy", "--env", "laptop")
        assert code == 2, err
        assert "is held by a program that is not an mlci server" in err
        assert f"pid {os.getpid()} (" in err  # this test process holds it
        assert deployments(open_registry(load_project(project_dir)), "laptop") == []
    finally:
        server.shutdown()
        server.server_close()


def test_accepted_connections_have_tcp_nodelay():
    """asyncio sets TCP_NODELAY on an accepted connection only when the listening socket's proto is
    IPPROTO_TCP (CPython asyncio/base_events.py ``_set_nodelay``); uvicorn serves on that transport."""
    listener = open_socket("127.0.0.1", 0)
    seen = []

    class Probe(asyncio.Protocol):
        def connection_made(self, transport):
            sock = transport.get_extra_info("socket")
            seen.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            transport.close()

    async def accept_one():
        server = await asyncio.get_running_loop().create_server(Probe, sock=listener)
        port = listener.getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(100):
            if seen:
                break
            await asyncio.sleep(0.01)
        writer.close()
        server.close()
        await server.wait_closed()

    asyncio.run(accept_one())
    assert seen and seen[0] != 0
