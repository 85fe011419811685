"""Serving benchmark: /predict throughput and p50/p99 latency of mlci's server against a bare Starlette
app on the same model, for 1-row and 100-row requests at a few concurrency levels.

    python3 benchmarks/bench_serve.py [--seconds 3] [--concurrency 1 8 32] [--json out.json]

mlci runs exactly as deployed (``python -m mlci.serve``: schema validation, metrics and the prediction
log switched on). The peer is the floor: a Starlette route that parses JSON, builds the DataFrame and
calls ``predict_proba`` with nothing else. Both run as one uvicorn process (httptools, uvloop when
installed) on 127.0.0.1; the load generator is an asyncio HTTP/1.1 keep-alive client in this process,
with a bounded number of requests per client. Models: a logistic regression and a 100-tree random
forest fitted on the bundled credit-risk example.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

PEER_APP = textwrap.dedent('''
    import json, sys
    import numpy as np, pandas as pd
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route
    from mlci.adapters.model_files import load_model

    model = load_model(open(sys.argv[1], "rb").read())
    features = json.loads(sys.argv[2])

    async def predict(request):
        records = json.loads(await request.body())
        frame = pd.DataFrame(records, columns=features)
        probabilities = model.predict_proba(frame)
        labels = model.classes_[probabilities.argmax(axis=1)]
        return Response(json.dumps({"predictions": labels.tolist(), "probabilities": probabilities.tolist()}),
                        media_type="application/json")

    async def ready(request):
        return Response("{}", media_type="application/json")

    app = Starlette(routes=[Route("/predict", predict, methods=["POST"]), Route("/health/ready", ready)])
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[3]), log_level="warning", access_log=False)
''')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _one_client(port: int, request: bytes, deadline: float, limit: int, latencies: list[float],
                      statuses: dict[int, int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for _ in range(limit):
            if time.perf_counter() > deadline:
                break
            start = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:"))
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
            statuses[status] = statuses.get(status, 0) + 1
    finally:
        writer.close()


def load(port: int, body: bytes, *, concurrency: int, seconds: float, limit: int = 100_000) -> dict:
    request = (b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
               b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    latencies: list[float] = []
    statuses: dict[int, int] = {}

    async def run() -> float:
        started = time.perf_counter()
        deadline = started + seconds
        await asyncio.gather(*(_one_client(port, request, deadline, limit, latencies, statuses)
                               for _ in range(concurrency)))
        return time.perf_counter() - started

    elapsed = asyncio.run(run())
    latencies.sort()
    quantile = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000  # noqa: E731
    return {"requests": len(latencies), "rps": len(latencies) / elapsed, "p50_ms": quantile(0.5),
            "p99_ms": quantile(0.99), "mean_ms": statistics.fmean(latencies) * 1000, "statuses": statuses}


def wait_ready(port: int, process: subprocess.Popen, timeout: float = 60) -> None:
    import urllib.request
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("server not ready")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each measurement")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    from tests.serving_support import FEATURES, copy_example, holdout_records, register_version

    tmp = Path(tempfile.mkdtemp(prefix="mlci-bench-serve-"))
    project = copy_example(tmp)
    records = holdout_records(project, 100)
    bodies = {1: json.dumps(records[:1]).encode(), 100: json.dumps(records).encode()}
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    results = []
    for estimator in ("logistic", "forest"):
        version = register_version(project, estimator)["version"]
        model_file = project / ".mlci" / "registry" / "versions" / f"v{version}" / "model.skops"
        servers = {
            "mlci": lambda port: [sys.executable, "-m", "mlci.serve", "--registry", str(project / ".mlci" / "registry"),
                                  "--model", str(version), "--host", "127.0.0.1", "--port", str(port),
                                  "--log-dir", str(tmp / "predictions")],
            "starlette": lambda port: [sys.executable, "-c", PEER_APP, str(model_file), json.dumps(FEATURES), str(port)],
        }
        for server, command in servers.items():
            port = free_port()
            process = subprocess.Popen(command(port), env=env, cwd=tmp, stderr=subprocess.DEVNULL)
            try:
                wait_ready(port, process)
                load(port, bodies[1], concurrency=4, seconds=1.0)  # warm-up
                for rows, body in bodies.items():
                    for concurrency in args.concurrency:
                        result = load(port, body, concurrency=concurrency, seconds=args.seconds)
                        assert set(result["statuses"]) == {200}, result["statuses"]
                        results.append({"model": estimator, "server": server, "rows": rows,
                                        "concurrency": concurrency, **result})
                        print(f"{estimator:9} {server:9} rows={rows:<3} c={concurrency:<3} "
                              f"{result['rps']:8.1f} req/s  p50 {result['p50_ms']:7.2f} ms  "
                              f"p99 {result['p99_ms']:7.2f} ms", file=sys.stderr)
            finally:
                process.terminate()
                process.wait(timeout=30)
    logged = sum(len(f.read_text().splitlines()) for f in (tmp / "predictions").glob("*.jsonl"))
    print(_table(results))
    print(f"\nprediction log: {logged:,} rows written by mlci's servers during the run")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


def _table(results: list[dict]) -> str:
    peer = {(r["model"], r["rows"], r["concurrency"]): r for r in results if r["server"] == "starlette"}
    lines = ["| model | rows | clients | mlci req/s | mlci p50 ms | mlci p99 ms | bare Starlette req/s | "
             "bare p99 ms | mlci / bare |", "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        if r["server"] != "mlci":
            continue
        p = peer[(r["model"], r["rows"], r["concurrency"])]
        lines.append(f"| {r['model']} | {r['rows']} | {r['concurrency']} | {r['rps']:.0f} | {r['p50_ms']:.1f} | "
                     f"{r['p99_ms']:.1f} | {p['rps']:.0f} | {p['p99_ms']:.1f} | {r['rps'] / p['rps']:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
