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
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_drift  # noqa: E402
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES))
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print_table(measure(args.sizes, args.rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
