"""Validation speed: `mlci validate` against a bare `pandas.read_csv` and pandera, on 1M rows x 20 columns.

    python3 benchmarks/bench_validate.py [--rows 1000000 [10000000 ...]] [--rounds 3] [--duplicate-rows]
                                         [--before CHECKOUT]

The dataset is generated once per size (seed 42) and cached under benchmarks/.data/. Each tool runs in a
fresh subprocess; rounds are interleaved (A B C A B C ...) and the table shows medians. With several
sizes, each size gets its table and the last lines give mlci's and pandera's ratios to the bare read at
every size (the ratio must not grow with size), in wall time and in CPU seconds (user + system of all of
a command's threads: on a loaded machine the wall ratio tends to the CPU ratio), with the load average
before and after each size. Wall time is measured
from spawn to exit (imports included); peak RSS is the command's own (see ``peak_rss.py``: not the
benchmark process's pages, which a plain fork-and-wait4 would count).
pandera comes from the `bench` extra: ``pip install -e '.[bench]'``. ``--duplicate-rows`` adds a run of
mlci with ``allow_duplicate_rows: false`` (a 64-bit code per row, kept for the whole file).
``--before CHECKOUT`` adds another checkout of mlci (run with ``PYTHONPATH=CHECKOUT`` from outside both)
to the same rounds, to compare a change with what it changes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from peak_rss import run_measured  # noqa: E402

DATA_DIR = HERE / ".data"
SEED = 42
LEVELS = [f"level_{i}" for i in range(10)]
INT_BOUNDS = {"id": None, "int_1": (0, 100), "int_2": (0, 999), "int_3": (-50, 50)}
FLOAT_BOUNDS = (-1e6, 1e6)
NULLABLE = {"f_00", "f_01", "f_02", "f_03", "cat_0"}


def generate(rows: int) -> Path:
    """Write the seeded CSV and its schema.yaml (cached); return the CSV path."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    path = DATA_DIR / f"bench_{rows}.csv"
    if path.exists() and (DATA_DIR / f"bench_{rows}.schema.yaml").exists():
        return path
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    columns: dict[str, pa.Array] = {
        "id": pa.array(rng.permutation(rows).astype(np.int64) + 1),
        "int_1": pa.array(rng.poisson(5, rows).astype(np.int64)),
        "int_2": pa.array(rng.integers(0, 1000, rows)),
        "int_3": pa.array(rng.integers(-50, 51, rows)),
    }
    for i in range(12):
        kind = i % 3
        values = (rng.normal(0, 1, rows) if kind == 0 else rng.uniform(0, 100, rows) if kind == 1
                  else rng.lognormal(0, 1, rows)).round(6)
        name = f"f_{i:02d}"
        mask = rng.random(rows) < 0.01 if name in NULLABLE else None
        columns[name] = pa.array(values, mask=mask)
    for i in range(3):
        name = f"cat_{i}"
        values = np.array(LEVELS, dtype=object)[rng.integers(0, len(LEVELS), rows)]
        mask = rng.random(rows) < 0.01 if name in NULLABLE else None
        columns[name] = pa.array(values, type=pa.string(), mask=mask)
    columns["flag"] = pa.array(rng.random(rows) < 0.5)
    table = pa.table(columns)
    tmp = path.with_suffix(".tmp")
    pa_csv.write_csv(table, tmp, write_options=pa_csv.WriteOptions(quoting_style="none"))
    os.replace(tmp, path)
    (DATA_DIR / f"bench_{rows}.schema.yaml").write_text(schema_yaml())
    return path


def schema_yaml() -> str:
    """The mlci schema: the same rules as the pandera schema below."""
    lines = ["columns:"]
    for name, bounds in INT_BOUNDS.items():
        extra = ", unique: true, min: 1" if bounds is None else f", min: {bounds[0]}, max: {bounds[1]}"
        lines.append(f"  {name}: {{type: integer, nullable: false{extra}}}")
    for i in range(12):
        name = f"f_{i:02d}"
        lines.append(f"  {name}: {{type: float, nullable: {str(name in NULLABLE).lower()}, "
                     f"min: {FLOAT_BOUNDS[0]:.1f}, max: {FLOAT_BOUNDS[1]:.1f}}}")
    for i in range(3):
        name = f"cat_{i}"
        lines.append(f"  {name}: {{type: category, nullable: {str(name in NULLABLE).lower()}, "
                     f"values: [{', '.join(LEVELS)}]}}")
    lines.append("  flag: {type: boolean, nullable: false}")
    lines.append("rows: {min: 1}")
    return "\n".join(lines) + "\n"


PANDAS_READ = "import pandas, sys; pandas.read_csv(sys.argv[1])"

PANDERA = """
import sys
import pandas
import pandera.pandas as pa
levels = %r
cols = {}
for name in ["int_1", "int_2", "int_3"]:
    lo, hi = %r[name]
    cols[name] = pa.Column("int64", [pa.Check.ge(lo), pa.Check.le(hi)], nullable=False)
cols["id"] = pa.Column("int64", [pa.Check.ge(1)], nullable=False, unique=True)
for i in range(12):
    name = f"f_{i:02d}"
    cols[name] = pa.Column("float64", [pa.Check.ge(-1e6), pa.Check.le(1e6)], nullable=name in %r)
for i in range(3):
    name = f"cat_{i}"
    cols[name] = pa.Column(str, pa.Check.isin(levels), nullable=name in %r)
cols["flag"] = pa.Column(bool, nullable=False)
schema = pa.DataFrameSchema(cols, strict=True)
frame = pandas.read_csv(sys.argv[1])
schema.validate(frame, lazy=True)
"""


def pandera_script() -> str:
    return PANDERA % (LEVELS, INT_BOUNDS, NULLABLE, NULLABLE)


Sample = tuple[float, float, float]  # wall seconds, peak RSS MiB, CPU seconds


def run_once(argv: list[str], env: dict[str, str] | None = None) -> tuple[Sample, int]:
    """Wall seconds, peak RSS MiB and CPU seconds of one fresh process, and its exit code."""
    measured = run_measured(argv, env=env, cwd=DATA_DIR)
    return (measured.seconds, measured.peak_mib, measured.cpu_seconds), measured.returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duplicate-rows", action="store_true", help="also run mlci forbidding duplicate rows")
    parser.add_argument("--before", type=Path, help="another mlci checkout to run in the same rounds")
    args = parser.parse_args()
    summary: dict[int, dict[str, list[Sample]]] = {}
    for rows in args.rows:
        load = os.getloadavg()[0]
        results = measure(rows, args.rounds, args.duplicate_rows, args.before)
        if results is None:
            return 2
        print_table(results, rows)
        print(f"load average (1 min): {load:.1f} before, {os.getloadavg()[0]:.1f} after\n")
        summary[rows] = results
    for tool in [name for name in summary[args.rows[0]] if name != FLOOR]:
        for index, kind in ((0, "wall"), (2, "CPU")):
            print(f"{tool} / bare pandas.read_csv, {kind}: "
                  + ", ".join(f"{rows:,} rows {_median(r[tool], index) / _median(r[FLOOR], index):.2f}x"
                              for rows, r in summary.items()))
    return 0


FLOOR = "pandas.read_csv (floor)"


def measure(rows: int, rounds: int, duplicate_rows: bool, before: Path | None) -> dict[str, list[Sample]] | None:
    """Wall seconds, peak RSS and CPU seconds of every tool, ``rounds`` interleaved rounds after one warm-up
    round."""
    print(f"generating {rows:,} rows (cached under {DATA_DIR.relative_to(HERE.parent)}/) ...", file=sys.stderr)
    data = generate(rows)
    schema = data.with_name(f"bench_{rows}.schema.yaml")
    reports = DATA_DIR / "reports"
    mlci = [sys.executable, "-m", "mlci", "validate", str(data), "--schema", str(schema), "--reports", str(reports)]
    tools = {FLOOR: [sys.executable, "-c", PANDAS_READ, str(data)], "mlci validate": mlci}
    envs: dict[str, dict[str, str]] = {}
    if before is not None:
        tools["mlci, --before checkout"] = mlci
        envs["mlci, --before checkout"] = dict(os.environ, PYTHONPATH=str(before.resolve()))
    if duplicate_rows:
        strict = schema.with_name(f"bench_{rows}.no-duplicates.schema.yaml")
        strict.write_text(schema.read_text() + "allow_duplicate_rows: false\n")
        tools["mlci, no duplicate rows"] = [sys.executable, "-m", "mlci", "validate", str(data), "--schema",
                                            str(strict), "--reports", str(reports)]
    try:
        import pandera  # noqa: F401
        tools["pandera (lazy)"] = [sys.executable, "-c", pandera_script(), str(data)]
    except ImportError:
        print("pandera is not installed (pip install -e '.[bench]'): skipping it", file=sys.stderr)

    results: dict[str, list[Sample]] = {name: [] for name in tools}
    for round_number in range(rounds + 1):
        for name, argv in tools.items():
            sample, code = run_once(argv, envs.get(name))
            if code not in (0, 1):
                print(f"{name} exited {code}", file=sys.stderr)
                return None
            if round_number:  # the first round warms the page cache
                results[name].append(sample)
    return results


def _median(samples: list[Sample], index: int) -> float:
    return statistics.median(sample[index] for sample in samples)


def print_table(results: dict[str, list[Sample]], rows: int) -> None:
    floor, floor_cpu = _median(results[FLOOR], 0), _median(results[FLOOR], 2)
    pandera = results.get("pandera (lazy)")
    pandera_wall = _median(pandera, 0) if pandera else None
    pandera_rss = _median(pandera, 1) if pandera else None
    print(f"{rows:,} rows x 20 columns, median of {len(next(iter(results.values())))} rounds\n")
    print(f"{'tool':<26}{'wall s':>9}{'[min..max]':>16}{'CPU s':>8}{'peak RSS MiB':>14}{'x read':>9}"
          f"{'CPU x read':>12}{'x pandera':>11}{'RSS/pandera':>13}")
    for name, samples in results.items():
        walls = [w for w, _, _ in samples]
        wall, rss, cpu = statistics.median(walls), _median(samples, 1), _median(samples, 2)
        vs_pandera = f"{wall / pandera_wall:.2f}" if pandera_wall else "-"
        rss_ratio = f"{rss / pandera_rss:.2f}" if pandera_rss else "-"
        print(f"{name:<26}{wall:>9.3f}{f'[{min(walls):.2f}..{max(walls):.2f}]':>16}{cpu:>8.2f}{rss:>14.0f}"
              f"{wall / floor:>9.2f}{cpu / floor_cpu:>12.2f}{vs_pandera:>11}{rss_ratio:>13}")


if __name__ == "__main__":
    sys.exit(main())
