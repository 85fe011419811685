#!/usr/bin/env python3
"""Drift benchmark: ``mlci monitor`` end to end vs Evidently's data-drift preset on the same data.

Data (as in the performance anchors): a reference and a current dataset of ROWS rows x 20 columns
(id, three integer, twelve float, three categorical columns and a flag), seeds 42 and 4242, with five
columns shifted in the current one: f_00 (mean +0.2 sd), f_01 (spread x1.3), f_02 (x e^0.01, tiny),
int_1 (Poisson 5 -> 5.5), cat_0 (top level 25% -> 20%). 19 columns are tested (id is not a feature).

Each tool runs as its own process; wall time covers the whole process (imports included) and peak
RSS is the command's own peak (``peak_rss.py``; a plain fork-and-wait4 would count this process's pages). Both use the
same tests: KS for numbers and
chi-square for categories at p < 0.05 (mlci: ``numeric_method: ks``, ``categorical_method: chi2``;
Evidently: ``DataDriftPreset(num_method="ks", cat_method="chisquare")``); Evidently's default preset
(Wasserstein / Jensen-Shannon above 1,000 rows) is timed too. Per-column verdicts are compared.

Evidently 0.7 needs pandas < 3, so it runs from its own venv: ``--evidently`` creates
``benchmarks/.venv-evidently`` on first use (``python3 -m venv`` + ``pip install`` of EVIDENTLY_PINS)
and reuses it afterwards; ``--evidently-python PATH`` uses an interpreter you made yourself. Numbers on
a busy machine are noisy: ``--repeat 3`` runs every tool three times and reports the median.

    python3 benchmarks/bench_drift.py [--rows 1000000] [--evidently] [--repeat 3] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from peak_rss import run_measured  # noqa: E402

EVIDENTLY_PINS = ["evidently==0.7.23", "pandas==2.3.3", "pyarrow"]
EVIDENTLY_VENV = Path(__file__).resolve().parent / ".venv-evidently"
SHIFTED = ["f_00", "f_01", "f_02", "int_1", "cat_0"]
CATEGORICAL = ["cat_0", "cat_1", "cat_2", "flag"]
NUMERIC = ["int_1", "int_2", "int_3"] + [f"f_{i:02d}" for i in range(12)]


def make_data(rows: int, seed: int, shifted: bool):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    data = {"id": np.arange(rows, dtype=np.int64),
            "int_1": rng.poisson(5.5 if shifted else 5.0, rows),
            "int_2": rng.integers(0, 1000, rows),
            "int_3": rng.integers(-50, 51, rows)}
    for i in range(12):
        kind = i % 3
        if kind == 0:
            values = rng.normal(0.2 if (shifted and i == 0) else 0.0, 1.0, rows)
        elif kind == 1:
            spread = 1.3 if (shifted and i == 1) else 1.0
            values = 50 + (rng.uniform(0, 100, rows) - 50) * spread
        else:
            values = rng.lognormal(0.0, 0.5, rows) * (np.exp(0.01) if (shifted and i == 2) else 1.0)
        if i < 4:
            values[rng.random(rows) < 0.01] = np.nan
        data[f"f_{i:02d}"] = values
    levels = [f"L{j}" for j in range(10)]
    top = 0.20 if shifted else 0.25
    p0 = [top] + [(1 - top) / 9] * 9
    for c in range(3):
        probabilities = p0 if c == 0 else [0.1] * 10
        column = rng.choice(levels, rows, p=probabilities).astype(object)
        if c == 0:
            column[rng.random(rows) < 0.01] = None
        data[f"cat_{c}"] = column
    data["flag"] = rng.random(rows) < 0.3
    return pd.DataFrame(data)


def prepare(workdir: Path, rows: int) -> None:
    """Parquet files, schema.yaml and mlci.yaml of the benchmark project (reused when present)."""
    marker = workdir / f".rows-{rows}"
    if marker.exists():
        return
    for name, seed, shifted in (("reference", 42, False), ("current", 4242, True)):
        make_data(rows, seed, shifted).to_parquet(workdir / f"{name}.parquet", index=False)
    columns = {"id": {"type": "integer", "nullable": False, "feature": False}}
    columns.update({n: {"type": "integer"} for n in ("int_1", "int_2", "int_3")})
    columns.update({f"f_{i:02d}": {"type": "float"} for i in range(12)})
    columns.update({f"cat_{c}": {"type": "category"} for c in range(3)})
    columns["flag"] = {"type": "boolean"}
    import yaml

    (workdir / "schema.yaml").write_text(yaml.safe_dump({"columns": columns}, sort_keys=False))
    (workdir / "mlci.yaml").write_text(textwrap.dedent("""\
        project: drift-bench
        data: {train: reference.parquet, schema: schema.yaml, batch_rows: 250000}
        model: {task: binary, estimator: sklearn.linear_model.LogisticRegression}
        monitor: {numeric_method: ks, categorical_method: chi2, p_value: 0.05, correction: none, drift_share: 0.5}
        """))
    marker.touch()


EVIDENTLY_SCRIPT = """
import json, sys, time
start = time.perf_counter()
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset
numeric, categorical, mode = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
ref = pd.read_parquet("reference.parquet").drop(columns=["id"])
cur = pd.read_parquet("current.parquet").drop(columns=["id"])
definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
preset = DataDriftPreset(num_method="ks", cat_method="chisquare") if mode == "same" else DataDriftPreset()
snapshot = Report([preset]).run(Dataset.from_pandas(cur, data_definition=definition),
                                Dataset.from_pandas(ref, data_definition=definition))
verdicts = {}
for metric in snapshot.dict()["metrics"]:
    config = metric.get("config", {})
    if config.get("type", "").endswith("ValueDrift"):
        method, threshold, value = config.get("method", ""), config.get("threshold"), float(metric["value"])
        p_value = method in ("ks", "chisquare", "z")  # tests; the other methods are distances
        verdicts[config["column"]] = {"method": method, "value": value,
                                      "drift": value <= threshold if p_value else value >= threshold}
print(json.dumps({"verdicts": verdicts, "in_process_s": time.perf_counter() - start}))
"""


def timed(command: list[str], cwd: Path, env: dict | None = None) -> tuple[float, float, str, int]:
    """(wall seconds, the command's own peak RSS MiB, stdout, exit code) of a child process."""
    measured = run_measured(command, cwd=cwd, env=env, capture=True)
    return measured.seconds, measured.peak_mib, measured.stdout, measured.returncode


def evidently_python() -> str:
    """The benchmark's own Evidently venv, created with the pinned packages when missing."""
    python = EVIDENTLY_VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {EVIDENTLY_VENV} with {' '.join(EVIDENTLY_PINS)} ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(EVIDENTLY_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *EVIDENTLY_PINS], check=True)
    return str(python)


def median_run(runs: list[dict]) -> dict:
    """The run with the median wall time, with every run's time and peak RSS listed."""
    chosen = sorted(runs, key=lambda r: r["wall_s"])[len(runs) // 2]
    return {**chosen, "runs_wall_s": [r["wall_s"] for r in runs],
            "runs_peak_rss_mib": [r["peak_rss_mib"] for r in runs],
            "median_peak_rss_mib": statistics.median(r["peak_rss_mib"] for r in runs)}


def run_mlci(workdir: Path) -> dict:
    mlci = [sys.executable, "-m", "mlci", "-C", str(workdir), "--json", "monitor", "--reference",
            "reference.parquet", "--current", "current.parquet"]
    wall, rss, out, code = timed(mlci, workdir)
    report = json.loads(out)
    verdicts = {c["name"].split(": ", 1)[1]: {"method": c["details"]["method"], "value": c["value"],
                                               "drift": not c["passed"]}
                for c in report["checks"] if c.get("group") == "drift"}
    return {"wall_s": wall, "peak_rss_mib": rss, "exit_code": code, "verdicts": verdicts}


def run_evidently(python: str, workdir: Path, mode: str) -> dict:
    command = [python, "-c", EVIDENTLY_SCRIPT, json.dumps(NUMERIC), json.dumps(CATEGORICAL), mode]
    wall, rss, out, code = timed(command, workdir)
    if code != 0:
        raise SystemExit(f"Evidently ({mode}) failed with exit code {code}")
    return {"wall_s": wall, "peak_rss_mib": rss, **json.loads(out.strip().splitlines()[-1])}


def agreement(a: dict, b: dict) -> tuple[int, list[str]]:
    columns = sorted(set(a) & set(b))
    differ = [c for c in columns if a[c]["drift"] != b[c]["drift"]]
    return len(columns) - len(differ), differ


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--evidently", action="store_true",
                        help=f"compare with Evidently from {EVIDENTLY_VENV.name} (created on first use)")
    parser.add_argument("--evidently-python", help="compare with Evidently from this interpreter instead")
    parser.add_argument("--repeat", type=int, default=1, help="runs per tool; the median is reported")
    parser.add_argument("--skip-default-preset", action="store_true", help="time only the same-tests preset")
    parser.add_argument("--workdir", type=Path, help="where data and reports go (default: a temp dir)")
    parser.add_argument("--output", type=Path, help="write the results as JSON here")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="mlci-drift-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    prepare(workdir, args.rows)

    results = {"rows": args.rows, "mlci": median_run([run_mlci(workdir) for _ in range(args.repeat)])}
    mlci = results["mlci"]
    print(f"mlci monitor: {mlci['wall_s']:.1f} s, {mlci['peak_rss_mib']:.0f} MiB, exit {mlci['exit_code']}, "
          f"drift in {sorted(c for c, v in mlci['verdicts'].items() if v['drift'])}"
          + (f" (runs: {', '.join(f'{t:.1f}' for t in mlci['runs_wall_s'])} s)" if args.repeat > 1 else ""))
    python = args.evidently_python or (evidently_python() if args.evidently else None)
    if python:
        modes = ["same"] + ([] if args.skip_default_preset else ["default"])
        for mode in modes:
            ev = results[f"evidently_{mode}"] = median_run([run_evidently(python, workdir, mode)
                                                            for _ in range(args.repeat)])
            agree, differ = agreement(mlci["verdicts"], ev["verdicts"])
            ev.update(agree=agree, differ=differ, speedup=ev["wall_s"] / mlci["wall_s"],
                      rss_ratio=mlci["peak_rss_mib"] / ev["peak_rss_mib"])
            print(f"Evidently ({mode} tests): {ev['wall_s']:.1f} s, {ev['peak_rss_mib']:.0f} MiB; "
                  f"mlci is {ev['speedup']:.1f}x faster at {ev['rss_ratio']:.2f}x the RSS; verdicts agree on "
                  f"{agree}/{len(ev['verdicts'])}" + (f" (differ: {', '.join(differ)})" if differ else "")
                  + (f"; runs: {', '.join(f'{t:.1f}' for t in ev['runs_wall_s'])} s" if args.repeat > 1 else ""))
    if args.output:
        args.output.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
