"""Shadow-scoring benchmark: does a shadow challenger raise the champion's p99 latency by more than 10%?

    python3 benchmarks/bench_shadow.py [--rounds 7] [--seconds 4] [--loads 1.0 0.5] [--concurrency 8]
                                       [--rows 1] [--challenger logistic|forest] [--json out.json]

Two mlci servers (``python -m mlci.serve``, 1 worker, prediction log on) serve the same champion (the
logistic pipeline of tests/serving_support.py); one also runs a shadow experiment
(``MLCI_SERVE_EXPERIMENT_MODE=shadow``), whose challenger scores every request's rows in its scorer process.
The load generator ``hey`` (compiled, so it does not take the servers' CPU the way a Python client would)
sends the same request to each for ``--seconds``:

- at each load of ``--loads``: 1.0 is saturation (no rate limit: ``--concurrency`` clients send as fast as
  the server answers); a fraction f < 1 sends f times the plain server's saturated rate, measured once
  after the warm-up;
- round by round three servers take turns, in an order that rotates every round, so a busy neighbour on
  the machine or a drift in its load slows all alike: ``plain`` (no shadow), ``shadow``, and
  ``plain+idle``: a plain server with one busy loop per CPU at idle priority (``SCHED_IDLE``) in its
  session, spinning during its turns only. Each server runs in a session of its own, as the local target
  starts it (a container's cgroup is the same kind of group). The third server is there because Linux
  shares the CPU between groups (sessions' autogroups, cgroups) first and between their processes second:
  a group that always has something runnable keeps its place, while a server that sleeps between requests
  waits behind the other groups when it wakes. On this busy shared host that alone made a plain server two
  to three times faster at saturation. The shadow scorer has that effect whenever it has rows to score,
  so the comparison with ``plain`` flatters the shadow; ``plain+idle`` has it all the time, so the
  comparison with it is the conservative one;
- with ``--other-shadow CHECKOUT`` a fourth server, ``shadow@other``, runs the same shadow experiment from
  another checkout of mlci (e.g. main before a change), in the same rounds: before and after side by side;
- after each shadow turn the benchmark waits until every row of that turn is either scored or skipped
  before the next turn starts: a backlog scored later would take CPU from the next turn's server.

Reported for each load: each turn's p50/p99 and the CPU time the server process itself spent per request
(its children's not included: where the challenger's work happens), the same-round ratios p99(shadow) / p99(plain) and
p99(shadow) / p99(plain+idle) and their medians over rounds, and the share of the shadow turns' rows the
challenger scored (the rest were skipped because its queue was full). A shadow that skips everything costs
nothing, so the verdict needs both: PASS when, at every load, both median ratios are at most LIMIT and the
challenger scored at least MIN_SCORED of the rows.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_serve import Server  # noqa: E402

LIMIT = 1.10  # the champion's p99 with shadow scoring may be at most 10% above it without
MIN_SCORED = 0.5  # ... while the challenger scores at least half of the rows
DRAIN_SECONDS = 120  # how long to wait, after a shadow turn, for its rows to be scored or skipped
TURNS = ("plain", "plain+idle", "shadow")
OTHER = "shadow@other"  # --other-shadow: the same shadow server from another checkout
SHADOWS = ("shadow", OTHER)


def hey(url: str, body: Path, *, seconds: float, concurrency: int, rate: float) -> dict:
    """``hey`` for ``seconds``; ``rate`` requests/s in total (``-q`` is per client), 0 for no limit."""
    command = ["hey", "-z", f"{seconds}s", "-c", str(concurrency), "-m", "POST", "-T", "application/json",
               "-D", str(body)]
    if rate:
        command += ["-q", f"{rate / concurrency:.3f}"]
    output = subprocess.run(command + [url], capture_output=True, text=True, timeout=seconds + 600,
                            check=True).stdout
    statuses = {int(code): int(count) for code, count in re.findall(r"\[(\d+)\]\s+(\d+) responses", output)}
    if set(statuses) != {200} or "Error distribution" in output:
        raise RuntimeError(f"{url}: not every request answered 200: {statuses}")

    def quantile(percent: int) -> float:
        return float(re.search(rf"{percent}%+ in ([\d.]+) secs", output).group(1)) * 1000

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    return {"requests": sum(statuses.values()), "rps": rps, "p50_ms": quantile(50), "p99_ms": quantile(99)}


# A plain server with one busy loop per CPU at idle priority in its session, spinning while a flag file
# exists: ``python -c IDLE_LOOPS_THEN_SERVE <flag> <arguments of python -m mlci.serve>``.
IDLE_LOOPS_THEN_SERVE = """
import os, runpy, sys, time
flag, server = sys.argv.pop(1), os.getpid()
for _ in range(os.cpu_count() or 1):
    if os.fork() == 0:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        while os.getppid() == server:
            if os.path.exists(flag):
                until = time.monotonic() + 0.05
                while time.monotonic() < until:
                    pass
            else:
                time.sleep(0.05)
        os._exit(0)
sys.argv[0] = "python -m mlci.serve"
runpy.run_module("mlci.serve", run_name="__main__")
"""


@contextlib.contextmanager
def idle_loops(flag: Path, *, on: bool):
    """The plain+idle server's loops spin while the block runs (when ``on``)."""
    if on:
        flag.touch()
    try:
        yield
    finally:
        flag.unlink(missing_ok=True)


def cpu_seconds(pid: int) -> float:
    """The CPU time (user + system) the process itself has used, its children's not included."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def scorer_pid(server_pid: int) -> int | None:
    """The shadow scorer process among the server's children (``mlci-shadow`` in ps)."""
    for entry in Path("/proc").iterdir():
        try:
            if (entry.name.isdigit() and (entry / "comm").read_text().strip() == "mlci-shadow"
                    and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == server_pid):
                return int(entry.name)
        except (OSError, IndexError):
            continue
    return None


def shadow_counts(url: str) -> dict[str, float]:
    """The shadow server's counters: requests the challenger scored (or failed on), rows it skipped."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=30) as answer:
        text = answer.read().decode()

    def value(name: str) -> float:
        match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
        return float(match.group(1)) if match else 0.0

    return {"scored": value('mlci_experiment_batches_total{role="challenger"}')
            + value('mlci_experiment_errors_total{role="challenger"}'),
            "skipped": value("mlci_experiment_shadow_skipped_total")}


def drained(url: str, before: dict[str, float], *, requests: int, rows: int) -> dict[str, float]:
    """Wait until the turn's rows are all scored or skipped; the turn's counts (``pending``: neither yet)."""
    deadline = time.monotonic() + DRAIN_SECONDS
    while True:
        now = shadow_counts(url)
        scored = (now["scored"] - before["scored"]) * rows
        skipped = now["skipped"] - before["skipped"]
        if scored + skipped >= requests * rows or time.monotonic() > deadline:
            return {"scored_rows": scored, "skipped_rows": skipped,
                    "pending_rows": requests * rows - scored - skipped}
        time.sleep(0.2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="rounds per load (servers interleaved)")
    parser.add_argument("--seconds", type=float, default=4.0, help="seconds of load per turn")
    parser.add_argument("--loads", type=float, nargs="+", default=[1.0, 0.5],
                        help="1.0: saturation; f < 1: f times the plain server's saturated rate")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rows", type=int, default=1, help="rows per request")
    parser.add_argument("--challenger", default="logistic", choices=("logistic", "forest"))
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument("--other-shadow", type=Path, metavar="CHECKOUT",
                        help="also run a shadow server from another checkout of mlci (e.g. the last release), "
                             "as a fourth turn `shadow@other`: before and after a change in the same rounds")
    args = parser.parse_args()
    if shutil.which("hey") is None:
        print("bench_shadow: needs the load generator hey (apt-get install hey)", file=sys.stderr)
        return 2

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
    flag = work / "idle-loops-on"
    with_idle_loops = [sys.executable, "-c", IDLE_LOOPS_THEN_SERVE, str(flag), *command[3:]]
    servers = {"plain": Server("plain", command + ["--log-dir", str(work / "plain")], env, work),
               "plain+idle": Server("plain+idle", with_idle_loops + ["--log-dir", str(work / "idle")], env, work),
               "shadow": Server("shadow", command + ["--log-dir", str(work / "shadow")], shadow_env, work)}
    if args.other_shadow:
        other_env = {**shadow_env, "PYTHONPATH": str(args.other_shadow.resolve())}
        servers[OTHER] = Server(OTHER, command + ["--log-dir", str(work / "other")], other_env, work)
    turns = tuple(servers)
    results = []
    try:
        for server in servers.values():
            server.wait_ready()
        warm = {}
        for name, server in servers.items():
            before = shadow_counts(server.url) if name in SHADOWS else {}
            with idle_loops(flag, on=name == "plain+idle"):
                warm[name] = hey(server.predict_url, body, seconds=args.seconds, concurrency=args.concurrency,
                                 rate=0)
            if name in SHADOWS:
                drained(server.url, before, requests=warm[name]["requests"], rows=args.rows)
        saturated = warm["plain"]["rps"]
        print(f"warm-up: plain {saturated:.0f} req/s, shadow {warm['shadow']['rps']:.0f} req/s at saturation",
              file=sys.stderr)
        for repeat in range(args.rounds):
            for load in args.loads:
                rate = 0.0 if load >= 1 else load * saturated
                order = turns[repeat % len(turns):] + turns[:repeat % len(turns)]
                for name in order:
                    shadow_url = servers[name].url
                    before = shadow_counts(shadow_url) if name in SHADOWS else {}
                    cpu = cpu_seconds(servers[name].process.pid)
                    scorer = scorer_pid(servers[name].process.pid) if name in SHADOWS else None
                    scorer_cpu = cpu_seconds(scorer) if scorer else 0.0
                    with idle_loops(flag, on=name == "plain+idle"):
                        result = hey(servers[name].predict_url, body, seconds=args.seconds,
                                     concurrency=args.concurrency, rate=rate)
                    # the server process's own CPU per answer: the challenger's work, where it runs in there
                    result["server_cpu_us"] = (cpu_seconds(servers[name].process.pid) - cpu) / result["requests"] * 1e6
                    if name in SHADOWS:
                        result |= drained(shadow_url, before, requests=result["requests"], rows=args.rows)
                        if scorer:  # the challenger's work, wherever it runs
                            result["scorer_cpu_us"] = (cpu_seconds(scorer) - scorer_cpu) / result["requests"] * 1e6
                    results.append({"server": name, "load": load, "round": repeat, **result})
                    scored = (f"  scored {result['scored_rows'] / (result['requests'] * args.rows):6.1%}"
                              if name in SHADOWS else "")
                    print(f"load {load:.2f} round {repeat} {name:10} {result['rps']:7.1f} req/s  "
                          f"p50 {result['p50_ms']:6.2f} ms  p99 {result['p99_ms']:6.2f} ms  "
                          f"server CPU {result['server_cpu_us']:5.0f} us/req{scored}", file=sys.stderr)
    finally:
        for server in servers.values():
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
    summary, verdict = summarise(results, args.loads, args.rounds, args.rows, saturated, turns)
    if args.json:
        args.json.write_text(json.dumps({"saturated_rps": saturated, "results": results, "loads": summary,
                                         "limit": LIMIT, "min_scored": MIN_SCORED, "pass": verdict}, indent=2))
    return 0 if verdict else 1


def summarise(results: list[dict], loads: list[float], rounds: int, rows: int,
              saturated: float, turns: tuple[str, ...] = TURNS) -> tuple[list[dict], bool]:
    by_turn = {(r["server"], r["load"], r["round"]): r for r in results}
    summary, verdict = [], True
    print(f"limit: median p99(shadow) / p99(plain) and / p99(plain+idle) <= {LIMIT:.2f}, with at least "
          f"{MIN_SCORED:.0%} of the shadow rows scored, at every load")
    for load in loads:
        ratios = {base: [by_turn["shadow", load, k]["p99_ms"] / by_turn[base, load, k]["p99_ms"]
                         for k in range(rounds)] for base in ("plain", "plain+idle")}
        medians = {base: statistics.median(values) for base, values in ratios.items()}
        shadow_turns = [by_turn["shadow", load, k] for k in range(rounds)]
        sent = sum(t["requests"] * rows for t in shadow_turns)
        scored = sum(t["scored_rows"] for t in shadow_turns)
        skipped = sum(t["skipped_rows"] for t in shadow_turns)
        share = scored / sent
        ok = max(medians.values()) <= LIMIT and share >= MIN_SCORED
        verdict = verdict and ok
        p99 = {name: statistics.median(by_turn[name, load, k]["p99_ms"] for k in range(rounds)) for name in turns}
        rps = {name: statistics.median(by_turn[name, load, k]["rps"] for k in range(rounds)) for name in turns}
        cpu = {name: statistics.median(by_turn[name, load, k]["server_cpu_us"] for k in range(rounds))
               for name in turns}
        what = "saturation" if load >= 1 else f"{load:.0%} of saturation ({load * saturated:.0f} req/s)"
        print(f"load {what}:")
        for base, values in ratios.items():
            print(f"  p99(shadow) / p99({base}) by round: {', '.join(f'{r:.3f}' for r in values)}; "
                  f"median {medians[base]:.3f}")
        print("  median p99 " + ", ".join(f"{name} {p99[name]:.2f} ms" for name in turns)
              + "; median req/s " + ", ".join(f"{name} {rps[name]:.0f}" for name in turns))
        print("  median CPU of the server process per request " + ", ".join(f"{name} {cpu[name]:.0f} us"
                                                                              for name in turns))
        scorer_cpu = [t["scorer_cpu_us"] for t in shadow_turns if "scorer_cpu_us" in t]
        if scorer_cpu:
            print(f"  median CPU of the shadow scorer process per request {statistics.median(scorer_cpu):.0f} us")
        if OTHER in turns:  # for comparison only: the verdict is this checkout's
            other = [by_turn[OTHER, load, k]["p99_ms"] / by_turn["plain", load, k]["p99_ms"] for k in range(rounds)]
            other_turns = [by_turn[OTHER, load, k] for k in range(rounds)]
            other_share = (sum(t["scored_rows"] for t in other_turns)
                           / sum(t["requests"] * rows for t in other_turns))
            print(f"  p99({OTHER}) / p99(plain) by round: {', '.join(f'{r:.3f}' for r in other)}; "
                  f"median {statistics.median(other):.3f}; scored {other_share:.1%}")
        print(f"  shadow rows {sent:,}: scored {scored:,.0f} ({share:.1%}), skipped {skipped:,.0f} "
              f"-> {'PASS' if ok else 'FAIL'}")
        summary.append({"load": load, "ratios": ratios, "median_ratios": medians, "median_p99_ms": p99,
                        "median_rps": rps, "median_server_cpu_us": cpu, "shadow_rows": sent, "scored_rows": scored,
                        "skipped_rows": skipped,
                        "scored_share": share, "pass": ok})
    print(f"verdict: {'PASS' if verdict else 'FAIL'}")
    return summary, verdict


if __name__ == "__main__":
    sys.exit(main())
