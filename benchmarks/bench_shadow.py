"""Shadow-scoring benchmark: does a shadow challenger raise the champion's p99 latency?

    python3 benchmarks/bench_shadow.py [--requests 3000] [--concurrency 8] [--rows 1] [--repeat 3]
                                       [--challenger logistic|forest] [--json out.json]

Two mlci servers (``python -m mlci.serve``, 1 worker, prediction log on) serve the same champion (the
logistic pipeline of tests/serving_support.py); one also runs a shadow experiment
(``MLCI_SERVE_EXPERIMENT_MODE=shadow``) whose challenger scores every request's rows on its worker thread.
The load generator ``hey`` (compiled, so it does not take the servers' CPU) sends the same requests to each,
the servers taking turns round by round, so a busy neighbour slows both alike. Reported: each round's
p50/p99, the median over rounds of the same-round p99 ratio (shadow / plain), the rows the shadow skipped
because its queue was full, and whether the ratio stays within the issue's 10%.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

LIMIT = 1.10  # the champion's p99 with shadow scoring may be at most 10% above it without


def _metric(url: str, name: str) -> float:
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as answer:
        for line in answer.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return 0.0


def _hey_at_rate(url: str, body: Path, *, requests: int, concurrency: int, rate: float) -> dict:
    """hey with a rate limit (``-q`` is per client): an open-ish load below saturation."""
    import re
    import subprocess

    requests = -(-requests // concurrency) * concurrency
    command = ["hey", "-n", str(requests), "-c", str(concurrency), "-q", f"{rate / concurrency:.3f}", "-m", "POST",
               "-T", "application/json", "-D", str(body), url]
    output = subprocess.run(command, capture_output=True, text=True, timeout=900, check=True).stdout
    statuses = {int(code): int(count) for code, count in re.findall(r"\[(\d+)\]\s+(\d+) responses", output)}
    if set(statuses) != {200}:
        raise RuntimeError(f"{url}: not every request answered 200: {statuses}")

    def quantile(percent: int) -> float:
        return float(re.search(rf"{percent}%+ in ([\d.]+) secs", output).group(1)) * 1000

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    return {"requests": sum(statuses.values()), "rps": rps, "p50_ms": quantile(50), "p99_ms": quantile(99)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="requests per round and server")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rows", type=int, default=1, help="rows per request")
    parser.add_argument("--repeat", type=int, default=3, help="rounds (servers interleaved)")
    parser.add_argument("--challenger", default="logistic", choices=("logistic", "forest"))
    parser.add_argument("--rate", type=float, default=0.0, help="requests/s in total (0: as fast as the server "
                        "answers, i.e. saturation)")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    args = parser.parse_args()
    if shutil.which("hey") is None:
        print("bench_shadow: needs the load generator hey (apt-get install hey)", file=sys.stderr)
        return 2

    from bench_serve import Server
    from bench_serve import hey as hey_unlimited

    def hey(url: str, body: Path, *, requests: int, concurrency: int) -> dict:
        if not args.rate:
            return hey_unlimited(url, body, requests=requests, concurrency=concurrency)
        return _hey_at_rate(url, body, requests=requests, concurrency=concurrency, rate=args.rate)
    from tests.serving_support import copy_example, holdout_records, register_version

    work = Path(tempfile.mkdtemp(prefix="mlci-bench-shadow-"))
    project = copy_example(work)
    registry = project / ".mlci" / "registry"
    champion = register_version(project, "logistic", seed=0)["version"]
    challenger = register_version(project, args.challenger, seed=1)["version"]
    body = work / "body.json"
    body.write_text(json.dumps({"records": holdout_records(project, args.rows)}))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "mlci.serve", "--registry", str(registry), "--model", str(champion),
               "--host", "127.0.0.1", "--port", "{port}", "--workers", "1"]
    shadow_env = {**env, "MLCI_SERVE_EXPERIMENT_MODE": "shadow", "MLCI_SERVE_EXPERIMENT_CHALLENGER": str(challenger),
                  "MLCI_SERVE_EXPERIMENT_ID": "bench"}
    servers = {"plain": Server("plain", command + ["--log-dir", str(work / "plain")], env, work),
               "shadow": Server("shadow", command + ["--log-dir", str(work / "shadow")], shadow_env, work)}
    results = []
    try:
        for server in servers.values():
            server.wait_ready()
        for server in servers.values():
            hey(server.predict_url, body, requests=300, concurrency=args.concurrency)  # warm-up
        for repeat in range(args.repeat):
            for name, server in servers.items():
                result = hey(server.predict_url, body, requests=args.requests, concurrency=args.concurrency)
                results.append({"server": name, "repeat": repeat, **result})
                print(f"round {repeat} {name:7} {result['rps']:8.1f} req/s  p50 {result['p50_ms']:6.2f} ms  "
                      f"p99 {result['p99_ms']:6.2f} ms", file=sys.stderr)
        skipped = _metric(servers["shadow"].url, "mlci_experiment_shadow_skipped_total")
        scored = _metric(servers["shadow"].url, 'mlci_experiment_batches_total{role="challenger"}')
    finally:
        for server in servers.values():
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
    by_round = {(r["server"], r["repeat"]): r for r in results}
    ratios = [by_round["shadow", k]["p99_ms"] / by_round["plain", k]["p99_ms"] for k in range(args.repeat)]
    ratio = statistics.median(ratios)
    print(f"champion p99 with shadow / without, same rounds: {', '.join(f'{r:.3f}' for r in ratios)}; "
          f"median {ratio:.3f} (limit {LIMIT:.2f}: {'within' if ratio <= LIMIT else 'ABOVE'})")
    print(f"shadow: challenger ({args.challenger}) scored {scored:,.0f} batches, skipped {skipped:,.0f} rows "
          f"(queue full)")
    if args.json:
        args.json.write_text(json.dumps({"results": results, "ratios": ratios, "median_ratio": ratio,
                                         "skipped_rows": skipped, "scored_batches": scored}, indent=2))
    return 0 if ratio <= LIMIT else 1


if __name__ == "__main__":
    sys.exit(main())
