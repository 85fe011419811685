"""Cost curves: how `mlci validate` and `mlci monitor` scale with the number of rows.

    python3 benchmarks/bench_cost.py [--sizes 100000 1000000 10000000] [--rounds 3]

For each size, runs each command in a fresh process (rounds interleaved, medians reported) and prints the
time per million rows and the command's own peak RSS (``peak_rss.py``). Time should grow linearly (a
flat time per million rows) and memory should stay flat, apart from what a rule needs by nature:

- validate's ``unique: true`` keeps the column's values (8 bytes a row for integers, plus a byte per
  possible value while dense ids are checked: about 9 bytes a row at 10M): the run with the ``id``
  column's uniqueness rule shows it, and a second run without the rule shows the flat floor;
- monitor keeps per-column sketches and at most ``monitor.sample_values`` numeric values per column
  and side (5,000,000 by default), so its memory grows until that cap and then stays flat.

Data: the validation data set of ``bench_validate.py`` (20 columns) and the drift data set of
``bench_drift.py`` (reference and current, 20 columns, five shifted), generated once per size and
cached under benchmarks/.data/.

What ``mlci evaluate`` costs over the library calls it wraps:

    python3 benchmarks/bench_cost.py --evaluate [--sizes 100000 1000000] [--rounds 3]

For each size, a copy of the credit-risk example with a logistic regression (``bench_overhead.prepare``),
its holdout resampled to that many rows (incomes and loan amounts jittered by up to 10%, so the scores are
not a few thousand repeated values); ``mlci train`` once. Then, in fresh processes, rounds interleaved:
``mlci evaluate``, and ``evaluate_bare.py``: the same imports' worth of work done bare (``skops.io.load``,
``pandas.read_csv``, ``predict`` + ``predict_proba``, scikit-learn's metric functions overall and per
slice). It prints medians of wall and CPU seconds and two ratios: to the bare process (imports, model and
holdout included) and to the bare calls alone (``predict`` + ``predict_proba`` + the metric functions,
as timed inside the bare process). One more run of ``profile_evaluate.py`` shows evaluate's phases.

The server's cost curve:

    python3 benchmarks/bench_cost.py --serve [--workers 1 2 3 4] [--rows 1 100] [--concurrency 16]
                                     [--rounds 3] [--seconds 2]

starts ``python -m mlci.serve --workers N`` for each N on the example's logistic regression (one server
per N, all started first, with the prediction log on) and sends each a fixed number of 1-row and
100-row requests from ``hey`` at a fixed client concurrency, servers interleaved round by round. Each
request opens its own connection (``hey -disable-keepalive``), so the kernel spreads them evenly over
the workers' SO_REUSEPORT sockets (a few kept-alive connections would be spread unevenly). It prints
req/s and the ratio to 1 worker (medians over rounds of same-round ratios), and after every cell
scrapes ``/metrics`` and checks, exiting 1 otherwise, that the request counter summed over the workers
(``mlci.serve.metrics``' multiprocess collector), the latency histogram's count and the rows
histogram's count equal exactly the requests sent, and the rows histogram's sum the rows sent.
Throughput can grow with N only up to the cores the servers and the client share (``nproc``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_drift  # noqa: E402
import bench_serve  # noqa: E402
import bench_validate  # noqa: E402
from peak_rss import run_measured  # noqa: E402

DEFAULT_SIZES = (100_000, 1_000_000, 10_000_000)


def validate_commands(rows: int) -> dict[str, list[str]]:
    data = bench_validate.generate(rows)
    schema = data.with_name(f"bench_{rows}.schema.yaml")
    floor = schema.with_name(f"bench_{rows}.not-unique.schema.yaml")
    floor.write_text(schema.read_text().replace(", unique: true", ""))
    reports = bench_validate.DATA_DIR / "reports"
    base = [sys.executable, "-m", "mlci", "validate", str(data), "--reports", str(reports), "--schema"]
    return {"validate (id unique)": base + [str(schema)], "validate (no unique rule)": base + [str(floor)]}


def monitor_command(rows: int) -> tuple[list[str], Path]:
    workdir = bench_validate.DATA_DIR / f"drift_{rows}"
    workdir.mkdir(parents=True, exist_ok=True)
    bench_drift.prepare(workdir, rows)
    return ([sys.executable, "-m", "mlci", "monitor", "--reference", "reference.parquet", "--current",
             "current.parquet", "--no-plots"], workdir)


def measure(sizes: list[int], rounds: int) -> list[dict]:
    results = []
    for rows in sizes:
        print(f"preparing {rows:,} rows ...", file=sys.stderr)
        commands = {name: (argv, None) for name, argv in validate_commands(rows).items()}
        commands["monitor"] = monitor_command(rows)
        samples: dict[str, list] = {name: [] for name in commands}
        for round_number in range(rounds + 1):
            for name, (argv, cwd) in commands.items():
                measured = run_measured(argv, cwd=cwd)
                if measured.returncode not in (0, 1):
                    raise SystemExit(f"{name} at {rows:,} rows exited {measured.returncode}")
                if round_number:  # the first round warms the page cache
                    samples[name].append(measured)
        for name, runs in samples.items():
            seconds = statistics.median(m.seconds for m in runs)
            results.append({"command": name, "rows": rows, "seconds": seconds,
                            "seconds_per_million": seconds / (rows / 1e6),
                            "peak_mib": statistics.median(m.peak_mib for m in runs)})
            print(f"{name:<26}{rows:>12,}{seconds:>9.2f} s", file=sys.stderr)
    return results


def print_table(results: list[dict]) -> None:
    print(f"{'command':<26}{'rows':>12}{'wall s':>9}{'s / M rows':>12}{'peak RSS MiB':>14}")
    for r in results:
        print(f"{r['command']:<26}{r['rows']:>12,}{r['seconds']:>9.2f}{r['seconds_per_million']:>12.2f}"
              f"{r['peak_mib']:>14.0f}")
    print()
    for command in dict.fromkeys(r["command"] for r in results):
        rows = [r for r in results if r["command"] == command]
        if len(rows) > 1:
            first, last = rows[0], rows[-1]
            print(f"{command}: {last['rows'] // first['rows']}x the rows -> "
                  f"{last['seconds'] / first['seconds']:.1f}x the time, "
                  f"{last['peak_mib'] / first['peak_mib']:.2f}x the peak RSS")


# -- mlci evaluate against the bare library calls ------------------------------------------------------


def evaluate_project(rows: int) -> Path:
    """A trained copy of the example whose holdout has ``rows`` rows (made once, kept under .data/)."""
    import bench_overhead
    import numpy as np
    import pandas as pd

    folder = bench_validate.DATA_DIR / f"evaluate_{rows}"
    project = folder / "credit-risk"
    if (project / ".mlci" / "registry").exists():
        return project
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    bench_overhead.prepare(folder, None, "logistic")
    holdout = pd.read_csv(project / "data" / "holdout.csv", dtype=str, keep_default_na=False)
    rng = np.random.default_rng(1)
    picked = holdout.iloc[rng.integers(0, len(holdout), rows)].reset_index(drop=True)
    picked["customer_id"] = [f"H{8_000_000_000 + i:010d}" for i in range(rows)]
    for column in ("income", "loan_amount"):
        picked[column] = (pd.to_numeric(picked[column]) * rng.uniform(0.9, 1.1, rows)).round(2)  # blanks stay blank
    picked.to_csv(project / "data" / "holdout.csv", index=False)
    measured = run_measured([sys.executable, "-m", "mlci", "-C", str(project), "train"])
    if measured.returncode != 0:
        raise SystemExit(f"mlci train for the {rows:,}-row evaluate project exited {measured.returncode}")
    return project


def evaluate_cost(sizes: list[int], rounds: int) -> list[dict]:
    results = []
    for rows in sizes:
        print(f"preparing the {rows:,}-row holdout ...", file=sys.stderr)
        project = evaluate_project(rows)
        mlci_argv = [sys.executable, "-m", "mlci", "-C", str(project), "evaluate"]
        bare_argv = [sys.executable, str(HERE / "evaluate_bare.py"), str(project)]
        samples: dict[str, list] = {"mlci": [], "bare": [], "calls": []}
        for round_number in range(rounds + 1):
            mlci = run_measured(mlci_argv)
            bare = run_measured(bare_argv, capture=True)
            if mlci.returncode != 0 or bare.returncode != 0:
                raise SystemExit(f"evaluate at {rows:,} rows: mlci exited {mlci.returncode}, bare {bare.returncode}")
            if round_number:  # the first round warms the page cache
                samples["mlci"].append(mlci)
                samples["bare"].append(bare)
                samples["calls"].append(json.loads(bare.stdout)["calls"])
            print(f"evaluate {rows:>9,} round {round_number}: mlci {mlci.seconds:.2f} s (CPU {mlci.cpu_seconds:.2f}), "
                  f"bare {bare.seconds:.2f} s (CPU {bare.cpu_seconds:.2f}), load {os.getloadavg()[0]:.1f}",
                  file=sys.stderr)
        profile = run_measured([sys.executable, str(HERE / "profile_evaluate.py"), str(project)], capture=True)
        results.append({"rows": rows, **samples, "phases": json.loads(profile.stdout) if profile.stdout else None})
    return results


def print_evaluate_table(results: list[dict]) -> None:
    median = statistics.median
    print(f"mlci evaluate vs the bare library calls, fresh processes, medians of interleaved rounds; "
          f"nproc {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}")
    print(f"{'holdout rows':>12}{'mlci s':>8}{'CPU s':>7}{'bare s':>8}{'CPU s':>7}{'calls s':>9}{'CPU s':>7}"
          f"{'x bare':>8}{'CPU x':>7}{'x calls':>9}{'CPU x':>7}")
    for r in results:
        mlci_wall, mlci_cpu = median(m.seconds for m in r["mlci"]), median(m.cpu_seconds for m in r["mlci"])
        bare_wall, bare_cpu = median(m.seconds for m in r["bare"]), median(m.cpu_seconds for m in r["bare"])
        calls_wall, calls_cpu = median(c[0] for c in r["calls"]), median(c[1] for c in r["calls"])
        print(f"{r['rows']:>12,}{mlci_wall:>8.2f}{mlci_cpu:>7.2f}{bare_wall:>8.2f}{bare_cpu:>7.2f}{calls_wall:>9.2f}"
              f"{calls_cpu:>7.2f}{median(m.seconds / b.seconds for m, b in zip(r['mlci'], r['bare'])):>7.2f}x"
              f"{median(m.cpu_seconds / b.cpu_seconds for m, b in zip(r['mlci'], r['bare'])):>6.2f}x"
              f"{median(m.seconds / c[0] for m, c in zip(r['mlci'], r['calls'])):>8.1f}x"
              f"{median(m.cpu_seconds / c[1] for m, c in zip(r['mlci'], r['calls'])):>6.1f}x")
    print("x bare: over the bare process (imports, model load, holdout read, calls); "
          "x calls: over predict + predict_proba + the metric functions alone (same-round ratios)")
    for r in results:
        profile = r["phases"]
        if not profile:
            continue
        print(f"\nmlci evaluate, {r['rows']:,} holdout rows, one run by phase (wall s, CPU s):")
        print(f"  {'imports (mlci, pandas, scikit-learn)':40}{profile['imports'][0]:7.2f}{profile['imports'][1]:7.2f}")
        for name, (wall, cpu) in profile["phases"].items():
            print(f"  {name:40}{wall:7.2f}{cpu:7.2f}")
        print(f"  {'the whole command':40}{profile['command'][0]:7.2f}{profile['command'][1]:7.2f}")


# -- the server's throughput from 1 to N workers --------------------------------------------------


class CounterMismatch(Exception):
    """The server's /metrics disagree with the requests the client sent."""


def scraped(url: str) -> dict[str, float]:
    """The /predict series of one /metrics scrape (on a new connection, so any worker may answer)."""
    request = urllib.request.Request(f"{url}/metrics", headers={"Connection": "close"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        text = answer.read().decode()
    series = {
        "requests": r'^mlci_http_requests_total\{endpoint="/predict",status="200"\} (\S+)$',
        "latency_count": r'^mlci_http_request_duration_seconds_count\{endpoint="/predict"\} (\S+)$',
        "rows_count": r"^mlci_predict_rows_count (\S+)$",
        "rows_sum": r"^mlci_predict_rows_sum (\S+)$",
    }
    found = {name: re.search(pattern, text, re.M) for name, pattern in series.items()}
    return {name: float(match.group(1)) if match else 0.0 for name, match in found.items()}


def check_counters(name: str, url: str, sent: int, rows_sent: int) -> dict[str, float]:
    """The scrape, after checking each series against what was sent (CounterMismatch otherwise)."""
    values = scraped(url)
    expected = {"requests": sent, "latency_count": sent, "rows_count": sent, "rows_sum": rows_sent}
    wrong = {key: (values[key], want) for key, want in expected.items() if values[key] != want}
    if wrong:
        raise CounterMismatch(f"{name}: /metrics disagree with the client: "
                              + ", ".join(f"{key} {got:g} (sent {want})" for key, (got, want) in wrong.items()))
    return values


def serve_curve(workers: list[int], row_sizes: list[int], *, concurrency: int, rounds: int,
                seconds: float) -> list[dict]:
    from bench_serve import REPO, Server

    from tests.serving_support import copy_example, holdout_records, register_version

    work = Path(tempfile.mkdtemp(prefix="mlci-bench-cost-serve-"))
    try:
        project = copy_example(work)
        version = register_version(project, "logistic")["version"]
        bodies = {}
        for rows in row_sizes:
            bodies[rows] = work / f"body-{rows}.json"
            bodies[rows].write_text(json.dumps({"records": holdout_records(project, rows)}))
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        servers = {n: Server(f"{n} worker(s)", [sys.executable, "-m", "mlci.serve", "--registry",
                                                str(project / ".mlci" / "registry"), "--model", str(version),
                                                "--host", "127.0.0.1", "--port", "{port}", "--workers", str(n),
                                                "--log-dir", str(work / f"predictions-{n}")], env, work)
                   for n in workers}
        try:
            return _measure_servers(servers, bodies, concurrency=concurrency, rounds=rounds, seconds=seconds)
        finally:
            for server in servers.values():
                server.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _measure_servers(servers: dict, bodies: dict[int, Path], *, concurrency: int, rounds: int,
                     seconds: float) -> list[dict]:
    for server in servers.values():
        server.wait_ready()
    sent = {n: 0 for n in servers}
    rows_sent = {n: 0 for n in servers}

    def send(n: int, rows: int, requests: int) -> dict:
        result = bench_serve.hey(servers[n].predict_url, bodies[rows], requests=requests, concurrency=concurrency,
                                        new_connections=True)
        sent[n] += result["requests"]
        rows_sent[n] += result["requests"] * rows
        check_counters(servers[n].name, servers[n].url, sent[n], rows_sent[n])
        return result

    sizes = {}
    for n in servers:  # warm up every worker, and size each cell to about `seconds` of its throughput
        for rows in bodies:
            warm = send(n, rows, max(200, 50 * n))
            sizes[n, rows] = int(max(200, warm["rps"] * seconds))
    results = []
    for round_number in range(rounds):
        for rows in bodies:
            for n in servers:
                result = send(n, rows, sizes[n, rows])
                results.append({"workers": n, "rows": rows, "round": round_number, **result})
                print(f"round {round_number} rows={rows:<3} workers={n}: {result['rps']:8.1f} req/s, counters "
                      f"match ({sent[n]:,} requests so far), load {os.getloadavg()[0]:.1f}", file=sys.stderr)
    return results


def print_serve_table(results: list[dict], concurrency: int) -> None:
    cores = os.cpu_count()
    print(f"mlci serve, logistic regression, {concurrency} clients (hey, a connection per request); "
          f"nproc {cores}, load average {os.getloadavg()[0]:.1f}")
    print(f"{'rows':>5}{'workers':>9}{'req/s':>10}{'x 1 worker':>12}{'p50 ms':>9}{'p99 ms':>9}")
    for rows in dict.fromkeys(r["rows"] for r in results):
        cells = [r for r in results if r["rows"] == rows]
        single = {r["round"]: r["rps"] for r in cells if r["workers"] == min(c["workers"] for c in cells)}
        for n in dict.fromkeys(r["workers"] for r in cells):
            mine = [r for r in cells if r["workers"] == n]
            speedup = statistics.median(r["rps"] / single[r["round"]] for r in mine)
            print(f"{rows:>5}{n:>9}{statistics.median(r['rps'] for r in mine):>10.0f}{speedup:>11.2f}x"
                  f"{statistics.median(r['p50_ms'] for r in mine):>9.1f}"
                  f"{statistics.median(r['p99_ms'] for r in mine):>9.1f}")
    print("every cell: /metrics request counter, latency and rows histograms equal the requests sent")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--serve", action="store_true", help="the server's throughput from 1 to N workers")
    parser.add_argument("--evaluate", action="store_true", help="mlci evaluate against its bare library calls")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 3, 4])
    parser.add_argument("--rows", type=int, nargs="+", default=[1, 100], help="rows per request (--serve)")
    parser.add_argument("--concurrency", type=int, default=16, help="hey's clients (--serve)")
    parser.add_argument("--seconds", type=float, default=2.0, help="about this long per cell (--serve)")
    args = parser.parse_args()
    if args.serve:
        if shutil.which("hey") is None:
            print("bench_cost --serve: needs the load generator hey (apt-get install hey)", file=sys.stderr)
            return 2
        try:
            results = serve_curve(args.workers, args.rows, concurrency=args.concurrency, rounds=args.rounds,
                                  seconds=args.seconds)
        except (CounterMismatch, RuntimeError) as exc:  # counters off, or a request not answered 200
            print(f"bench_cost --serve: FAILED: {exc}", file=sys.stderr)
            return 1
        print_serve_table(results, args.concurrency)
        return 0
    if args.evaluate:
        print_evaluate_table(evaluate_cost(args.sizes, args.rounds))
        return 0
    print_table(measure(args.sizes, args.rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
