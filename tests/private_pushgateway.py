"""A Pushgateway of a test's own, on an ephemeral port: for tests that leave metric types or groups
behind, which would change what later tests on the shared gateway see."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
import urllib.request

import pytest

from tests.services import unavailable


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def private_pushgateway():
    """Base URL of a fresh ``prometheus-pushgateway`` process, stopped after the test."""
    binary = shutil.which("prometheus-pushgateway")
    if not binary:
        unavailable("prometheus-pushgateway is not installed (Debian package prometheus-pushgateway)")
    address = f"127.0.0.1:{_free_port()}"
    with tempfile.TemporaryDirectory() as scratch:
        # --persistence.file= keeps it in memory: Debian's default file would load other gateways' groups
        process = subprocess.Popen([binary, f"--web.listen-address={address}", "--log.level=warn",
                                    "--persistence.file="],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=scratch)
        url = f"http://{address}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    urllib.request.urlopen(f"{url}/-/ready", timeout=1).read()
                    break
                except OSError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        unavailable(f"prometheus-pushgateway did not start on {address}")
                    time.sleep(0.1)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
