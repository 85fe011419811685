"""Run the server on uvicorn: sockets opened with SO_REUSEPORT, optional worker processes, graceful stop.

SO_REUSEPORT lets several processes listen on one port; the kernel spreads connections over them. The
same mechanism serves two purposes: worker processes without a supervisor that owns the socket, and a
zero-downtime switch on one host (the new server joins the old one's port, is checked on its private
``check_port``, then the old one is stopped). SIGTERM stops accepting, finishes in-flight requests and
flushes the prediction log (uvicorn's shutdown runs the app's lifespan exit).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import tempfile
from dataclasses import replace

from mlci.serve.metrics import MULTIPROCESS_DIR_VARIABLE
from mlci.serve.settings import GRACEFUL_SHUTDOWN_SECONDS, ServeSettings


def open_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # The protocol must be named: asyncio sets TCP_NODELAY on accepted connections only when the socket's
    # proto is IPPROTO_TCP (asyncio.base_events._set_nodelay). With proto 0, Nagle's algorithm and the
    # client's delayed ACK stall every keep-alive response by about 40 ms.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def serve_forever(settings: ServeSettings) -> None:
    """One server process (blocks until SIGTERM/SIGINT)."""
    import uvicorn

    from mlci.serve.app import create_app

    check_port = settings.check_port  # set when joining a port that serves traffic
    app = create_app(settings, load_in_background=not check_port)
    sockets = []
    if check_port:
        # Joining a port that serves traffic: load first, and join only with a verified model, so the
        # kernel never hands a client to a server that would answer 503. A model that fails to load is
        # reported on the private check port alone, where the deployer reads the reason.
        state = app.state.server
        state.load()
        sockets.append(open_socket(settings.host, check_port))
        if state.model is not None:
            sockets.append(open_socket(settings.host, settings.port))
    else:
        sockets.append(open_socket(settings.host, settings.port))
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on",
                            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS, server_header=False)
    uvicorn.Server(config).run(sockets=sockets)


def run_server(settings: ServeSettings) -> int:
    """Serve with ``settings.workers`` processes; returns an exit code when they have stopped."""
    if settings.workers <= 1:
        serve_forever(settings)
        return 0
    # Bind once here so a busy port fails fast with one clear error, before any worker starts.
    probe = open_socket(settings.host, settings.port)
    probe.close()
    # The workers' metrics go to files in a directory of this run, which every scrape sums (a fresh
    # directory: files left by an earlier run would be summed too).
    with tempfile.TemporaryDirectory(prefix="mlci-metrics-") as metrics_dir:
        os.environ[MULTIPROCESS_DIR_VARIABLE] = metrics_dir
        return _run_workers(settings)


def _run_workers(settings: ServeSettings) -> int:
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=serve_forever, args=(replace(settings, workers=1),), daemon=False)
               for _ in range(settings.workers)]
    for worker in workers:
        worker.start()

    def forward(signum, frame) -> None:
        for worker in workers:
            if worker.is_alive():
                worker.terminate()  # SIGTERM: each worker shuts down gracefully

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for worker in workers:
        worker.join()
    return max((w.exitcode or 0) for w in workers)
