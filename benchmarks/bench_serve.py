"""Serving benchmark: /predict throughput and p50/p99 latency of mlci's server, MLflow's scoring server and
two bare Starlette apps, on the same fitted pipelines, for 1-row and 100-row requests.

    python3 benchmarks/bench_serve.py [--requests-per-cell 3000] [--concurrency 1 8 32] [--repeat 3]
                                      [--servers mlci starlette-numpy] [--json out.json]

Servers (each one uvicorn process on 127.0.0.1, 1 worker):
- mlci: ``python -m mlci.serve`` as deployed, with schema validation, metrics and the prediction log on;
- mlflow: ``mlflow models serve --env-manager local`` on the same pipeline, saved with
  ``mlflow.sklearn.save_model(pyfunc_predict_fn="predict_proba")`` (skops format, MLflow's default) in its own virtual
  environment
  (``benchmarks/.venv-mlflow``, created on the first run with the host's scikit-learn, NumPy, SciPy and
  pandas versions, so the same model loads);
- starlette-frame: a bare route that builds a DataFrame and calls the pipeline's ``predict_proba``;
- starlette-numpy: the limit: a bare route that calls the fitted estimator on rows the client has already
  encoded as numbers (no preprocessing, no validation, no logging).

The load generator is ``hey`` (``apt-get install hey``): compiled, so it does not take the CPU from the
servers the way a Python client would. Every cell sends a bounded number of requests (about
``--seconds`` worth, measured by a warm-up), and the servers take turns cell by cell, ``--repeat``
times, so a busy neighbour on the machine slows all of them alike. Reported: medians over the repeats
and the median of the same-run ratios.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from functools import partial
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

MLFLOW_VERSION = "3.17.2"
MLFLOW_VENV = REPO / "benchmarks" / ".venv-mlflow"
SERVERS = ("mlci", "mlflow", "starlette-frame", "starlette-numpy")
TARGETS = {"logistic": 10.0, "forest": 3.0}  # mlci / MLflow, single rows, 8 clients (issue 5)
BATCH_TARGET = 0.8  # mlci / Starlette+NumPy, 100-row batches, logistic regression (issue 15)

PEER_APP = textwrap.dedent('''
    import json, sys
    import numpy as np, pandas as pd
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route
    from mlci.adapters.model_files import load_model

    pipeline = load_model(open(sys.argv[1], "rb").read())
    features, port, encoded = json.loads(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "numpy"
    model = pipeline[-1] if encoded else pipeline
    if hasattr(pipeline[-1], "n_jobs"):
        pipeline[-1].n_jobs = 1

    async def predict(request):
        rows = json.loads(await request.body())
        data = np.asarray(rows, dtype=float) if encoded else pd.DataFrame(rows, columns=features)
        probabilities = model.predict_proba(data)
        labels = model.classes_[probabilities.argmax(axis=1)]
        return Response(json.dumps({"predictions": labels.tolist(), "probabilities": probabilities.tolist()}),
                        media_type="application/json")

    async def ready(request):
        return Response("{}", media_type="application/json")

    app = Starlette(routes=[Route("/predict", predict, methods=["POST"]), Route("/health/ready", ready)])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
''')

SAVE_FOR_MLFLOW = textwrap.dedent('''
    import sys
    import mlflow.sklearn
    import skops.io as sio

    source, target = sys.argv[1], sys.argv[2]
    types = sio.get_untrusted_types(file=source)
    pipeline = sio.load(source, trusted=types)
    mlflow.sklearn.save_model(pipeline, target, serialization_format="skops", skops_trusted_types=types,
                              pyfunc_predict_fn="predict_proba")
''')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- MLflow's environment -----------------------------------------------------------------------


def mlflow_venv(version: str) -> Path:
    """The venv's bin directory, created (or refreshed) with MLflow and the host's library versions."""
    import numpy
    import pandas
    import scipy
    import sklearn

    pins = [f"mlflow=={version}", f"scikit-learn=={sklearn.__version__}", f"numpy=={numpy.__version__}",
            f"scipy=={scipy.__version__}", f"pandas=={pandas.__version__}"]
    stamp = MLFLOW_VENV / "pins.txt"
    if stamp.is_file() and stamp.read_text() == "\n".join(pins):
        return MLFLOW_VENV / "bin"
    print(f"creating {MLFLOW_VENV.name} with {', '.join(pins)}", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(MLFLOW_VENV)], check=True)
    subprocess.run([str(MLFLOW_VENV / "bin" / "pip"), "install", "-q", *pins], check=True)
    stamp.write_text("\n".join(pins))
    return MLFLOW_VENV / "bin"


def save_for_mlflow(bin_dir: Path, model_file: Path, target: Path) -> Path:
    if target.exists():
        shutil.rmtree(target)
    subprocess.run([str(bin_dir / "python"), "-c", SAVE_FOR_MLFLOW, str(model_file), str(target)], check=True,
                   stdout=subprocess.DEVNULL)
    return target


# -- servers ------------------------------------------------------------------------------------


class Server:
    """One server process in its own process group (MLflow's CLI starts uvicorn as a child)."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], cwd: Path, *,
                 ready_path: str = "/health/ready", predict_path: str = "/predict") -> None:
        self.name, self.port = name, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ready_path, self.predict_url = ready_path, self.url + predict_path
        self.process = subprocess.Popen([part.replace("{port}", str(self.port)) for part in command], env=env,
                                        cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                        start_new_session=True)

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}: "
                                   f"{self.process.stderr.read().decode(errors='replace')[-2000:]}")
            try:
                with urllib.request.urlopen(self.url + self.ready_path, timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready after {timeout:.0f} s")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def start_servers(model: str, model_file: Path, mlflow_dir: Path | None, mlflow_bin: Path | None, *,
                  registry: Path, version: int, log_dir: Path, work: Path,
                  names: tuple[str, ...] = SERVERS) -> dict[str, Server]:
    from tests.serving_support import FEATURES

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    peer = [sys.executable, "-c", PEER_APP, str(model_file), json.dumps(FEATURES), "{port}"]

    def mlflow() -> Server:
        mlflow_env = {**env, "PATH": f"{mlflow_bin}{os.pathsep}{env['PATH']}",
                      "MLFLOW_TRACKING_URI": str(work / "mlruns")}
        return Server("mlflow", [str(mlflow_bin / "mlflow"), "models", "serve", "--env-manager", "local",
                                 "-m", str(mlflow_dir), "-h", "127.0.0.1", "-p", "{port}", "-w", "1"],
                      mlflow_env, work, ready_path="/ping", predict_path="/invocations")

    starts = {
        "mlci": lambda: Server("mlci", [sys.executable, "-m", "mlci.serve", "--registry", str(registry), "--model",
                                        str(version), "--host", "127.0.0.1", "--port", "{port}", "--workers", "1",
                                        "--log-dir", str(log_dir)], env, work),
        "mlflow": mlflow,
        "starlette-frame": lambda: Server("starlette-frame", peer + ["frame"], env, work),
        "starlette-numpy": lambda: Server("starlette-numpy", peer + ["numpy"], env, work),
    }
    servers = {name: starts[name]() for name in SERVERS if name in names}
    try:
        for server in servers.values():
            server.wait_ready()
        with urllib.request.urlopen(servers["mlci"].url + "/version") as answer:
            scoring = json.load(answer)["scoring"]
        print(f"{model}: mlci scores with the {scoring} path", file=sys.stderr)
    except BaseException:
        for server in servers.values():
            server.stop()
        raise
    return servers


# -- request bodies -----------------------------------------------------------------------------


def bodies(project: Path, model_file: Path, rows: int, directory: Path) -> dict[str, Path]:
    """The same rows in each server's own request format, written to files for hey."""
    import numpy as np
    import pandas as pd
    from scipy import sparse

    from mlci.adapters.model_files import load_model
    from tests.serving_support import FEATURES, holdout_records

    records = holdout_records(project, rows)
    frame_rows = [{name: record[name] for name in FEATURES} for record in records]
    pipeline = load_model(model_file.read_bytes())
    encoded = pipeline[0].transform(pd.DataFrame(frame_rows, columns=FEATURES))
    encoded = encoded.toarray() if sparse.issparse(encoded) else np.asarray(encoded)
    payloads = {
        "mlci": {"records": records},
        "mlflow": {"dataframe_split": {"columns": FEATURES,
                                       "data": [[row[name] for name in FEATURES] for row in frame_rows]}},
        "starlette-frame": frame_rows,
        "starlette-numpy": encoded.tolist(),
    }
    files = {}
    for server, payload in payloads.items():
        files[server] = directory / f"{server}-{rows}.json"
        files[server].write_text(json.dumps(payload))
    return files


# -- load ---------------------------------------------------------------------------------------


def hey(url: str, body: Path, *, requests: int, concurrency: int, new_connections: bool = False) -> dict:
    """``hey``'s run of ``requests`` POSTs from ``concurrency`` clients (each on a new connection with
    ``new_connections``): the requests sent, req/s, p50 and p99 in ms. Raises unless every one answered 200."""
    requests = -(-requests // concurrency) * concurrency  # hey sends requests // concurrency per client
    command = ["hey", "-n", str(requests), "-c", str(concurrency), *(["-disable-keepalive"] * new_connections),
               "-m", "POST", "-T", "application/json", "-D", str(body), url]
    output = subprocess.run(command, capture_output=True, text=True, timeout=600, check=True).stdout
    statuses = {int(code): int(count) for code, count in re.findall(r"\[(\d+)\]\s+(\d+) responses", output)}
    if set(statuses) != {200} or sum(statuses.values()) != requests or "Error distribution" in output:
        raise RuntimeError(f"{url}: not every one of {requests} requests answered 200: {statuses}")

    def quantile(percent: int) -> float:
        return float(re.search(rf"{percent}%+ in ([\d.]+) secs", output).group(1)) * 1000

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    return {"requests": requests, "rps": rps, "p50_ms": quantile(50), "p99_ms": quantile(99)}


def keepalive(url: str, body: Path, *, requests: int) -> dict:
    """One pooled client: sequential requests on one persistent connection, as an application's HTTP
    client sends them. A server that leaves Nagle's algorithm on stalls each answer ~40 ms here.

    The client is a bare socket that sends each prebuilt request in one ``send`` and reads the answer by
    its Content-Length: ``http.client`` spent 200-300 us of CPU per request (and its own waits for a CPU
    on a busy host) inside every measured latency."""
    from urllib.parse import urlparse

    target, payload = urlparse(url), body.read_bytes()
    request = (f"POST {target.path} HTTP/1.1\r\nHost: {target.hostname}:{target.port}\r\n"
               f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n").encode() + payload
    times = []
    with socket.create_connection((target.hostname, target.port), timeout=30) as connection:
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pending = b""
        for _ in range(requests):
            started = time.perf_counter()
            connection.sendall(request)
            status, pending = _read_answer(connection, pending)
            times.append((time.perf_counter() - started) * 1000)
            if status != 200:
                raise RuntimeError(f"{url}: keep-alive request answered {status}")
    times.sort()
    return {"requests": requests, "rps": requests / (sum(times) / 1000), "p50_ms": times[len(times) // 2],
            "p99_ms": times[int(len(times) * 0.99)]}


def _read_answer(connection: socket.socket, pending: bytes) -> tuple[int, bytes]:
    """The status of one HTTP/1.1 answer with a Content-Length, and any bytes read past it."""
    while b"\r\n\r\n" not in pending:
        chunk = connection.recv(65536)
        if not chunk:
            raise RuntimeError("the server closed the keep-alive connection")
        pending += chunk
    head, _, rest = pending.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?im)^content-length:\s*(\d+)", head).group(1))
    while len(rest) < length:
        chunk = connection.recv(65536)
        if not chunk:
            raise RuntimeError("the server closed the keep-alive connection")
        rest += chunk
    return int(head.split(b" ", 2)[1]), rest[length:]


def scheduler_times(group: int) -> tuple[int, int]:
    """CPU time and time spent waiting for a CPU (run queue), in ns, summed over the threads of the
    processes of one process group (a server and its children), from ``/proc/PID/task/TID/schedstat``.
    (0, 0) where the kernel does not keep them."""
    cpu = waited = 0
    for pid in filter(str.isdigit, os.listdir("/proc") if os.path.isdir("/proc") else []):
        try:
            if os.getpgid(int(pid)) != group:
                continue
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/schedstat") as stats:
                    ran, queued, _ = stats.read().split()
                cpu, waited = cpu + int(ran), waited + int(queued)
        except OSError:  # gone meanwhile, or no schedstat
            continue
    return cpu, waited


def timed(server: Server, run, requests_key: str = "requests") -> dict:
    """``run()``'s result with the server's CPU and run-queue wait per request, and the bench process's
    own wait (the keep-alive client runs in it), in microseconds."""
    server_before, own_before = scheduler_times(server.process.pid), scheduler_times(os.getpgid(0))
    result = run()
    server_after, own_after = scheduler_times(server.process.pid), scheduler_times(os.getpgid(0))
    per = lambda after, before: (after - before) / result[requests_key] / 1000  # noqa: E731
    return {**result, "server_cpu_us": per(server_after[0], server_before[0]),
            "server_wait_us": per(server_after[1], server_before[1]),
            "client_wait_us": per(own_after[1], own_before[1])}


def requests_for(server: Server, body: Path, seconds: float, cap: int) -> int:
    """Warms the server up and sizes a cell to about ``seconds`` of its throughput, within [200, cap]
    (hey prints its 99th percentile only from 100 answers on)."""
    warm = hey(server.predict_url, body, requests=200, concurrency=8)
    return int(min(cap, max(200, warm["rps"] * seconds)))


# -- report -------------------------------------------------------------------------------------


def median_of(results: list[dict], key: str, **where) -> float:
    """The median over the matching results; NaN when a server was not in the run (``--servers``)."""
    values = [r[key] for r in results if all(r[k] == v for k, v in where.items())]
    return statistics.median(values) if values else math.nan


def ratio(results: list[dict], key: str, top: str, bottom: str, **where) -> float:
    """The median over repeats of ``top / bottom``, each ratio taken within one repeat (NaN when either
    server was not in the run)."""
    present = {r["server"] for r in results}
    if top not in present or bottom not in present:
        return math.nan
    runs = sorted({r["repeat"] for r in results})
    pick = lambda server, run: next(r[key] for r in results  # noqa: E731
                                    if r["server"] == server and r["repeat"] == run
                                    and all(r[k] == v for k, v in where.items()))
    return statistics.median(pick(top, run) / pick(bottom, run) for run in runs)


def table(results: list[dict]) -> str:
    lines = ["| model | rows | clients | mlci req/s | mlci p50 / p99 ms | MLflow req/s | MLflow p50 / p99 ms | "
             "Starlette+DataFrame req/s | Starlette+NumPy req/s | mlci / MLflow | mlci / Starlette+NumPy |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    cells = sorted({(r["model"], r["rows"], r["concurrency"]) for r in results},
                   key=lambda c: (list(TARGETS).index(c[0]), c[1], str(c[2]).zfill(4)))
    for model, rows, clients in cells:
        where = {"model": model, "rows": rows, "concurrency": clients}
        med = lambda server, key, where=where: median_of(results, key, server=server, **where)  # noqa: E731
        lines.append(
            f"| {model} | {rows} | {clients} | {med('mlci', 'rps'):.0f} | {med('mlci', 'p50_ms'):.1f} / "
            f"{med('mlci', 'p99_ms'):.1f} | {med('mlflow', 'rps'):.0f} | {med('mlflow', 'p50_ms'):.1f} / "
            f"{med('mlflow', 'p99_ms'):.1f} | {med('starlette-frame', 'rps'):.0f} | "
            f"{med('starlette-numpy', 'rps'):.0f} | {ratio(results, 'rps', 'mlci', 'mlflow', **where):.1f}× | "
            f"{ratio(results, 'rps', 'mlci', 'starlette-numpy', **where):.2f} |")
    return "\n".join(lines)


def verdicts(results: list[dict]) -> list[str]:
    lines = []
    present = {r["server"] for r in results}
    for model, target in TARGETS.items():
        where = {"model": model, "rows": 1, "concurrency": 8}
        if not any(all(r[k] == v for k, v in where.items()) for r in results) or "mlflow" not in present:
            continue
        speed = ratio(results, "rps", "mlci", "mlflow", **where)
        p99 = ratio(results, "p99_ms", "mlci", "mlflow", **where)
        met = speed >= target and p99 < 1
        lines.append(f"{model}, 1 row, 8 clients: mlci {speed:.1f}× MLflow's throughput (target ≥ {target:g}×), "
                     f"p99 {p99:.2f}× MLflow's (target < 1): {'met' if met else 'NOT met'}")
    for model in TARGETS:
        where = {"model": model, "rows": 1, "concurrency": "keep-alive", "server": "mlci"}
        if any(all(r[k] == v for k, v in where.items()) for r in results):
            p50 = median_of(results, "p50_ms", **where)
            waits = (median_of(results, "server_wait_us", **where), median_of(results, "client_wait_us", **where))
            bare = median_of(results, "p50_ms", **{**where, "server": "starlette-numpy"})
            lines.append(f"{model}, 1 row, one keep-alive client: mlci p50 {p50:.2f} ms (target ≤ 2 ms): "
                         f"{'met' if p50 <= 2 else 'NOT met'}; per request the server waited {waits[0]:.0f} us "
                         f"for a CPU and the client {waits[1]:.0f} us; the bare app's p50 {bare:.2f} ms")
    for clients in sorted({r["concurrency"] for r in results if r["model"] == "logistic" and r["rows"] == 100},
                          key=lambda c: str(c).zfill(4)):
        speed = ratio(results, "rps", "mlci", "starlette-numpy", model="logistic", rows=100, concurrency=clients)
        if not math.isnan(speed):
            # what the ratio is where the server's own CPU is the only limit: less moved by other load
            cpu = ratio(results, "server_cpu_us", "starlette-numpy", "mlci", model="logistic", rows=100,
                        concurrency=clients)
            lines.append(f"logistic, 100 rows, {clients} clients: mlci {speed:.2f}× the bare Starlette+NumPy "
                         f"throughput (target ≥ {BATCH_TARGET:g}×): {'met' if speed >= BATCH_TARGET else 'NOT met'}; "
                         f"by server CPU per request {cpu:.2f}×")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="about this long per cell and server")
    parser.add_argument("--requests-per-cell", type=int, default=20_000, help="at most this many requests per cell")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--rows", type=int, nargs="+", default=[1, 100])
    parser.add_argument("--models", nargs="+", default=list(TARGETS), choices=list(TARGETS))
    parser.add_argument("--repeat", type=int, default=3, help="rounds over all cells (servers interleaved)")
    parser.add_argument("--keepalive-requests", type=int, default=300,
                        help="sequential requests of the one pooled keep-alive client per cell")
    parser.add_argument("--mlflow-version", default=MLFLOW_VERSION)
    parser.add_argument("--servers", nargs="+", default=list(SERVERS), choices=SERVERS,
                        help="which servers to run (mlci and starlette-numpy give the batch ratio alone)")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    args = parser.parse_args()
    if shutil.which("hey") is None:
        print("bench_serve: needs the load generator hey (apt-get install hey)", file=sys.stderr)
        return 2

    from tests.serving_support import copy_example, register_version

    if "mlci" not in args.servers:
        parser.error("--servers must include mlci")
    mlflow_bin = mlflow_venv(args.mlflow_version) if "mlflow" in args.servers else None
    work = Path(tempfile.mkdtemp(prefix="mlci-bench-serve-"))
    project = copy_example(work)
    registry, log_dir = project / ".mlci" / "registry", work / "predictions"
    results: list[dict] = []
    try:
        for model in args.models:
            version = register_version(project, model)["version"]
            model_file = registry / "versions" / f"v{version}" / "model.skops"
            mlflow_dir = save_for_mlflow(mlflow_bin, model_file, work / f"mlflow-{model}") if mlflow_bin else None
            files = {rows: bodies(project, model_file, rows, work) for rows in args.rows}
            servers = start_servers(model, model_file, mlflow_dir, mlflow_bin, registry=registry, version=version,
                                    log_dir=log_dir, work=work, names=tuple(args.servers))
            try:
                results += measure(model, servers, files, args)
            finally:
                for server in servers.values():
                    server.stop()
    finally:
        logged = sum(len(f.read_text().splitlines()) for f in log_dir.glob("*.jsonl"))
        shutil.rmtree(work, ignore_errors=True)
    print(table(results))
    print()
    print("\n".join(verdicts(results)))
    print(f"\nprediction log: {logged:,} rows written by mlci's server during the run")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


def measure(model: str, servers: dict[str, Server], files: dict[int, dict[str, Path]], args) -> list[dict]:
    sizes = {(name, rows): requests_for(server, files[rows][name], args.seconds, args.requests_per_cell)
             for rows in files for name, server in servers.items()}
    results = []
    for repeat in range(args.repeat):
        for rows in files:
            for concurrency in args.concurrency:
                for name, server in servers.items():
                    result = timed(server, partial(hey, server.predict_url, files[rows][name],
                                                   requests=sizes[name, rows], concurrency=concurrency))
                    results.append({"model": model, "server": name, "rows": rows, "concurrency": concurrency,
                                    "repeat": repeat, **result})
                    print(f"{model:8} {name:15} rows={rows:<3} c={concurrency:<3} {result['rps']:8.1f} req/s  "
                          f"p50 {result['p50_ms']:7.1f} ms  p99 {result['p99_ms']:7.1f} ms  "
                          f"server CPU {result['server_cpu_us']:5.0f} us/req", file=sys.stderr)
            for name, server in servers.items():
                result = timed(server, partial(keepalive, server.predict_url, files[rows][name],
                                               requests=args.keepalive_requests))
                results.append({"model": model, "server": name, "rows": rows, "concurrency": "keep-alive",
                                "repeat": repeat, **result})
                print(f"{model:8} {name:15} rows={rows:<3} keep-alive p50 {result['p50_ms']:7.2f} ms  "
                      f"p99 {result['p99_ms']:7.2f} ms  server CPU {result['server_cpu_us']:5.0f} us/req, "
                      f"waited for a CPU {result['server_wait_us']:5.0f} us/req "
                      f"(client {result['client_wait_us']:5.0f})", file=sys.stderr)
    return results


if __name__ == "__main__":
    sys.exit(main())
