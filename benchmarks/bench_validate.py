"""Validation speed: `mlci validate` against a bare `pandas.read_csv` and pandera, on 1M rows x 20 columns.

    python3 benchmarks/bench_validate.py [--rows 1000000 [10000000 ...]] [--rounds 3] [--duplicate-rows]

The dataset is generated once per size (seed 42) and cached under benchmarks/.data/. Each tool runs in a
fresh subprocess; rounds are interleaved (A B C A B C ...) and the table shows medians. With several
sizes, each size gets its table and a last line gives mlci's ratio to the bare read at every size (the
ratio must not grow with size). Wall time is measured
from spawn to exit (imports included); peak RSS is the command's own (see ``peak_rss.py``: not the
benchmark process's pages, which a plain fork-and-wait4 would count).
pandera comes from the `bench` extra: ``pip install -e '.[bench]'``. ``--duplicate-rows`` adds a run of
mlci with ``allow_duplicate_rows: false`` (a 64-bit code per row, kept for the whole file).
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


def run_once(argv: list[str]) -> tuple[float, float, int]:
    """Wall seconds, peak RSS MiB and exit code of one fresh process."""
    measured = run_measured(argv)
    return measured.seconds, measured.peak_mib, measured.returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duplicate-rows", action="store_true", help="also run mlci forbidding duplicate rows")
    args = parser.parse_args()
    ratios = {}
    for rows in args.rows:
        results = measure(rows, args.rounds, args.duplicate_rows)
        if results is None:
            return 2
        print_table(results, rows)
        print()
        ratios[rows] = _median_wall(results["mlci validate"]) / _median_wall(results["pandas.read_csv (floor)"])
    print("mlci validate / bare pandas.read_csv: "
          + ", ".join(f"{rows:,} rows {ratio:.2f}x" for rows, ratio in ratios.items()))
    return 0


def measure(rows: int, rounds: int, duplicate_rows: bool) -> dict[str, list[tuple[float, float]]] | None:
    """Wall seconds and peak RSS of every tool, ``rounds`` interleaved rounds after one warm-up round."""
    print(f"generating {rows:,} rows (cached under {DATA_DIR.relative_to(HERE.parent)}/) ...", file=sys.stderr)
    data = generate(rows)
    schema = data.with_name(f"bench_{rows}.schema.yaml")
    reports = DATA_DIR / "reports"
    tools = {
        "pandas.read_csv (floor)": [sys.executable, "-c", PANDAS_READ, str(data)],
        "mlci validate": [sys.executable, "-m", "mlci", "validate", str(data), "--schema", str(schema),
                          "--reports", str(reports)],
    }
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

    results: dict[str, list[tuple[float, float]]] = {name: [] for name in tools}
    for round_number in range(rounds + 1):
        for name, argv in tools.items():
            wall, rss, code = run_once(argv)
            if code not in (0, 1):
                print(f"{name} exited {code}", file=sys.stderr)
                return None
            if round_number:  # the first round warms the page cache
                results[name].append((wall, rss))
    return results


def _median_wall(samples: list[tuple[float, float]]) -> float:
    return statistics.median(wall for wall, _ in samples)


def print_table(results: dict[str, list[tuple[float, float]]], rows: int) -> None:
    floor = statistics.median(w for w, _ in results["pandas.read_csv (floor)"])
    pandera = results.get("pandera (lazy)")
    pandera_wall = statistics.median(w for w, _ in pandera) if pandera else None
    pandera_rss = statistics.median(r for _, r in pandera) if pandera else None
    print(f"{rows:,} rows x 20 columns, median of {len(next(iter(results.values())))} rounds\n")
    print(f"{'tool':<26}{'wall s':>9}{'[min..max]':>16}{'peak RSS MiB':>14}{'x read':>9}{'x pandera':>11}"
          f"{'RSS/pandera':>13}")
    for name, samples in results.items():
        walls = [w for w, _ in samples]
        wall = statistics.median(walls)
        rss = statistics.median(r for _, r in samples)
        vs_pandera = f"{wall / pandera_wall:.2f}" if pandera_wall else "-"
        rss_ratio = f"{rss / pandera_rss:.2f}" if pandera_rss else "-"
        print(f"{name:<26}{wall:>9.3f}{f'[{min(walls):.2f}..{max(walls):.2f}]':>16}{rss:>14.0f}"
              f"{wall / floor:>9.2f}{vs_pandera:>11}{rss_ratio:>13}")


if __name__ == "__main__":
    sys.exit(main())
