"""Shadow-scoring benchmark: does a shadow challenger raise the champion's p99 latency by more than 10%?

    python3 benchmarks/bench_shadow.py [--rounds 20] [--seconds 2] [--loads 1.0 0.5] [--concurrency 8]
                                       [--rows 1] [--challenger logistic|forest] [--cpu-share 0.25]
                                       [--confidence 0.95] [--json out.json]

Two mlci servers (``python -m mlci.serve``, 1 worker, prediction log on) serve the same champion (the
logistic pipeline of tests/serving_support.py); one also runs a shadow experiment
(``MLCI_SERVE_EXPERIMENT_MODE=shadow``), whose challenger scores every request's rows in its scorer process.
The load generator ``hey`` (compiled, so it does not take the servers' CPU the way a Python client would)
sends the same request to each for ``--seconds``:

- at each load of ``--loads``: 1.0 is saturation (no rate limit: ``--concurrency`` clients send as fast as
  the server answers); a fraction f < 1 sends f times the plain server's saturated rate, measured once
  after the warm-up;
- round by round three servers take turns, in ABBA order (``plain shadow plain+idle`` in even rounds, the
  reverse in odd ones), so that a drift in the machine's load between turns weighs on each side alike over
  two rounds: ``plain`` (no shadow), ``shadow`` (its scorer held to ``--cpu-share`` of one CPU), and
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
(its children's not included: where the challenger's work happens), the scorer's CPU time per request and
as a share of one CPU during the shadow turns, the same-round ratios p99(shadow) / p99(plain) and
p99(shadow) / p99(plain+idle), their medians over rounds with a distribution-free confidence interval
(order statistics of the binomial: no assumption about how the ratios are distributed, only that the rounds
are independent), and the share of the shadow turns' rows the challenger scored (the rest were skipped:
its pipe or row bound was full). The limit is decided at the interval's confidence, per comparison:
*met* when the whole interval is at most LIMIT, *not met* when it is all above, *undecided* when it
straddles LIMIT (more rounds narrow it). A shadow that skips everything costs nothing, so fewer than
MIN_SCORED of the rows scored counts as not met. The verdict is met when every comparison at every load is
met (exit 0), not met when any is not met (exit 1), undecided otherwise (exit 3).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
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
TURNS = ("plain", "shadow", "plain+idle")  # ABBA: shadow next to plain in every round
BASELINES = ("plain", "plain+idle")
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
    parser.add_argument("--rounds", type=int, default=20, help="rounds per load (servers interleaved, ABBA)")
    parser.add_argument("--seconds", type=float, default=2.0, help="seconds of load per turn")
    parser.add_argument("--loads", type=float, nargs="+", default=[1.0, 0.5],
                        help="1.0: saturation; f < 1: f times the plain server's saturated rate")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rows", type=int, default=1, help="rows per request")
    parser.add_argument("--challenger", default="logistic", choices=("logistic", "forest"))
    parser.add_argument("--cpu-share", type=float, help="the shadow scorer's CPU budget, a share of one CPU "
                        "(MLCI_SERVE_SHADOW_CPU_SHARE; default: the server's)")
    parser.add_argument("--confidence", type=float, default=0.95, help="of the interval around each median ratio")
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
    if args.cpu_share is not None:
        shadow_env["MLCI_SERVE_SHADOW_CPU_SHARE"] = str(args.cpu_share)
    flag = work / "idle-loops-on"
    with_idle_loops = [sys.executable, "-c", IDLE_LOOPS_THEN_SERVE, str(flag), *command[3:]]
    servers = {"plain": Server("plain", command + ["--log-dir", str(work / "plain")], env, work),
               "shadow": Server("shadow", command + ["--log-dir", str(work / "shadow")], shadow_env, work),
               "plain+idle": Server("plain+idle", with_idle_loops + ["--log-dir", str(work / "idle")], env, work)}
    if args.other_shadow:
        other_env = {**shadow_env, "PYTHONPATH": str(args.other_shadow.resolve())}
        servers[OTHER] = Server(OTHER, command + ["--log-dir", str(work / "other")], other_env, work)
    turns = tuple(servers)
    results = []
    try:
        for server in servers.values():
            server.wait_ready()
        warm = {name: run_turn(name, server, body, args, rate=0, flag=flag) for name, server in servers.items()}
        saturated = warm["plain"]["rps"]
        print(f"warm-up: plain {saturated:.0f} req/s, shadow {warm['shadow']['rps']:.0f} req/s at saturation",
              file=sys.stderr)
        for repeat in range(args.rounds):
            for load in args.loads:
                rate = 0.0 if load >= 1 else load * saturated
                for name in (turns if repeat % 2 == 0 else turns[::-1]):
                    result = run_turn(name, servers[name], body, args, rate=rate, flag=flag)
                    results.append({"server": name, "load": load, "round": repeat, **result})
                    print(f"load {load:.2f} round {repeat} {name:10} {result['rps']:7.1f} req/s  "
                          f"p50 {result['p50_ms']:6.2f} ms  p99 {result['p99_ms']:6.2f} ms  "
                          f"server CPU {result['server_cpu_us']:5.0f} us/req{scorer_line(result, args.rows)}",
                          file=sys.stderr)
    finally:
        for server in servers.values():
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"host: {os.cpu_count()} CPUs, load average {' '.join(f'{v:.2f}' for v in os.getloadavg())} "
          "(1, 5, 15 min, this benchmark's own processes included)")
    summary, verdict = summarise(results, args.loads, args.rounds, args.rows, saturated, turns,
                                 confidence=args.confidence)
    if args.json:
        args.json.write_text(json.dumps({"saturated_rps": saturated, "results": results, "loads": summary,
                                         "limit": LIMIT, "min_scored": MIN_SCORED, "confidence": args.confidence,
                                         "verdict": verdict}, indent=2))
    return {"met": 0, "not met": 1}.get(verdict, 3)


def run_turn(name: str, server: Server, body: Path, args: argparse.Namespace, *, rate: float,
             flag: Path) -> dict:
    """One turn of ``hey`` against ``server``, with the CPU its process (and, for a shadow server, its
    scorer) used; a shadow turn ends once every row it sent is scored or skipped."""
    shadow = name in SHADOWS
    before = shadow_counts(server.url) if shadow else {}
    cpu = cpu_seconds(server.process.pid)
    scorer = scorer_pid(server.process.pid) if shadow else None
    scorer_cpu = cpu_seconds(scorer) if scorer else 0.0
    started = time.monotonic()
    with idle_loops(flag, on=name == "plain+idle"):
        result = hey(server.predict_url, body, seconds=args.seconds, concurrency=args.concurrency, rate=rate)
    result["seconds"] = time.monotonic() - started
    # the server process's own CPU per answer: the challenger's work, where it runs in there
    result["server_cpu_us"] = (cpu_seconds(server.process.pid) - cpu) / result["requests"] * 1e6
    if scorer:  # the challenger's work, wherever it runs: during the turn, as a share of one CPU
        result["scorer_cpu_share"] = (cpu_seconds(scorer) - scorer_cpu) / result["seconds"]
    if shadow:
        result |= drained(server.url, before, requests=result["requests"], rows=args.rows)
        if scorer:  # ... and per request, the rows it scored after the turn included
            result["scorer_cpu_us"] = (cpu_seconds(scorer) - scorer_cpu) / result["requests"] * 1e6
    return result


def scorer_line(result: dict, rows: int) -> str:
    if "scored_rows" not in result:
        return ""
    line = f"  scored {result['scored_rows'] / (result['requests'] * rows):6.1%}"
    if "scorer_cpu_share" in result:
        line += f"  scorer {result['scorer_cpu_share']:5.1%} of a CPU, {result['scorer_cpu_us']:4.0f} us/req"
    return line


def median_interval(values: list[float], confidence: float) -> tuple[float, float]:
    """A distribution-free confidence interval for the median of what ``values`` were drawn from: the k-th
    smallest and k-th largest value, for the largest k at which the median lies between them with
    probability at least ``confidence`` (each value falls below the median with probability 1/2, so the
    number below it is Binomial(n, 1/2)). Infinite ends when there are too few values for that confidence
    (fewer than 6 for 95%)."""
    ordered, n = sorted(values), len(values)
    below = 0.0  # P(Binomial(n, 1/2) <= k - 1)
    k = 0
    while k < n // 2:
        below_next = below + math.comb(n, k) / 2 ** n
        if 2 * below_next > 1 - confidence:
            break
        below, k = below_next, k + 1
    if k == 0:
        return -math.inf, math.inf
    return ordered[k - 1], ordered[n - k]


def decide(interval: tuple[float, float], limit: float) -> str:
    low, high = interval
    return "met" if high <= limit else "not met" if low > limit else "undecided"


def overall(decisions: list[str]) -> str:
    return "not met" if "not met" in decisions else "met" if all(d == "met" for d in decisions) else "undecided"


def summarise(results: list[dict], loads: list[float], rounds: int, rows: int, saturated: float,
              turns: tuple[str, ...] = TURNS, *, confidence: float = 0.95) -> tuple[list[dict], str]:
    by_turn = {(r["server"], r["load"], r["round"]): r for r in results}
    summary, decisions = [], []
    print(f"limit: p99(shadow) / p99(baseline) at most {LIMIT:.2f} for baselines {', '.join(BASELINES)} (the "
          f"median of same-round ratios, decided on its {confidence:.0%} interval), with at least "
          f"{MIN_SCORED:.0%} of the shadow rows scored, at every load")
    for load in loads:
        ratios = {base: [by_turn["shadow", load, k]["p99_ms"] / by_turn[base, load, k]["p99_ms"]
                         for k in range(rounds)] for base in BASELINES}
        medians = {base: statistics.median(values) for base, values in ratios.items()}
        intervals = {base: median_interval(values, confidence) for base, values in ratios.items()}
        shadow_turns = [by_turn["shadow", load, k] for k in range(rounds)]
        sent = sum(t["requests"] * rows for t in shadow_turns)
        scored = sum(t["scored_rows"] for t in shadow_turns)
        skipped = sum(t["skipped_rows"] for t in shadow_turns)
        share = scored / sent
        load_decisions = {base: decide(intervals[base], LIMIT) for base in BASELINES}
        if share < MIN_SCORED:
            load_decisions = {base: "not met" for base in BASELINES}
        decisions += load_decisions.values()
        p99 = {name: statistics.median(by_turn[name, load, k]["p99_ms"] for k in range(rounds)) for name in turns}
        rps = {name: statistics.median(by_turn[name, load, k]["rps"] for k in range(rounds)) for name in turns}
        cpu = {name: statistics.median(by_turn[name, load, k]["server_cpu_us"] for k in range(rounds))
               for name in turns}
        what = "saturation" if load >= 1 else f"{load:.0%} of saturation ({load * saturated:.0f} req/s)"
        print(f"load {what}:")
        for base, values in ratios.items():
            low, high = intervals[base]
            print(f"  p99(shadow) / p99({base}) by round: {', '.join(f'{r:.3f}' for r in values)}")
            print(f"    median {medians[base]:.3f}, {confidence:.0%} interval [{low:.3f}, {high:.3f}] "
                  f"-> limit {LIMIT:.2f} {load_decisions[base]}")
        print("  median p99 " + ", ".join(f"{name} {p99[name]:.2f} ms" for name in turns)
              + "; median req/s " + ", ".join(f"{name} {rps[name]:.0f}" for name in turns))
        print("  median CPU of the server process per request " + ", ".join(f"{name} {cpu[name]:.0f} us"
                                                                              for name in turns))
        scorer_cpu = [t["scorer_cpu_us"] for t in shadow_turns if "scorer_cpu_us" in t]
        scorer_share = [t["scorer_cpu_share"] for t in shadow_turns if "scorer_cpu_share" in t]
        if scorer_cpu:
            print(f"  shadow scorer: median {statistics.median(scorer_cpu):.0f} us CPU per request; during the "
                  f"turns median {statistics.median(scorer_share):.1%}, highest {max(scorer_share):.1%} of one CPU")
        if OTHER in turns:  # for comparison only: the verdict is this checkout's
            other = [by_turn[OTHER, load, k]["p99_ms"] / by_turn["plain", load, k]["p99_ms"] for k in range(rounds)]
            other_turns = [by_turn[OTHER, load, k] for k in range(rounds)]
            other_share = (sum(t["scored_rows"] for t in other_turns)
                           / sum(t["requests"] * rows for t in other_turns))
            low, high = median_interval(other, confidence)
            print(f"  p99({OTHER}) / p99(plain) by round: {', '.join(f'{r:.3f}' for r in other)}; "
                  f"median {statistics.median(other):.3f} [{low:.3f}, {high:.3f}]; scored {other_share:.1%}")
        print(f"  shadow rows {sent:,}: scored {scored:,.0f} ({share:.1%}), skipped {skipped:,.0f}")
        summary.append({"load": load, "ratios": ratios, "median_ratios": medians, "intervals": intervals,
                        "decisions": load_decisions, "median_p99_ms": p99, "median_rps": rps,
                        "median_server_cpu_us": cpu, "scorer_cpu_share": scorer_share, "shadow_rows": sent,
                        "scored_rows": scored, "skipped_rows": skipped, "scored_share": share})
    verdict = overall(decisions)
    print(f"verdict: the {LIMIT:.2f} limit is {verdict} at {confidence:.0%} confidence")
    return summary, verdict


if __name__ == "__main__":
    sys.exit(main())
