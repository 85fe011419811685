#!/usr/bin/env python3
"""Drift benchmark: ``mlci monitor`` end to end vs Evidently's data-drift preset on the same data, with the
same tests, the same verdicts required.

Data (as in the performance anchors): a reference and a current dataset of ROWS rows x 20 columns
(id, three integer, twelve float, three categorical columns and a flag), seeds 42 and 4242, with five
columns shifted in the current one: f_00 (mean +0.2 sd), f_01 (spread x1.3), f_02 (x e^0.01, tiny),
int_1 (Poisson 5 -> 5.5), cat_0 (top level 25% -> 20%). 19 columns are tested (id is not a feature).

The tests are the same on both sides, at p < 0.05 without correction:

- numbers: the two-sample Kolmogorov-Smirnov test (mlci ``numeric_method: ks``; Evidently ``ks``, which
  calls ``scipy.stats.ks_2samp``);
- categories: the chi-square test of homogeneity on the 2 x k table of counts (mlci ``categorical_method:
  chi2``). Evidently's own ``chisquare`` is a goodness-of-fit test that takes the reference shares as
  exact (``chisquare_stattest.py``), a different test that flags more columns; so the benchmark registers
  the homogeneity test with Evidently's stat-test registry (``register_stattest``, the documented way to
  add a test) as ``chi2_homogeneity`` (``scipy.stats.chi2_contingency`` without continuity correction).

Per-column verdicts (drifted or not) are printed side by side; any disagreement fails the benchmark
(exit 1). ``--default-preset`` also times Evidently's default preset (Wasserstein / Jensen-Shannon
above 1,000 rows): different tests by design, so its verdicts are shown but do not fail the run.

Each tool runs as its own process, in interleaved rounds (the order alternates); wall time covers the
whole process (imports included), peak RSS is the command's own (``peak_rss.py``; a plain
fork-and-wait4 would count this process's pages). The ratio printed is the median Evidently time over
the median mlci time; every round's times and ratio are listed too (the machine may be shared).

Evidently 0.7 needs pandas < 3, so it runs from a virtualenv of its own, made on first use from the
fully pinned ``evidently-requirements.txt`` in a cache directory outside the repository
(``$MLCI_BENCH_CACHE``, else ``$XDG_CACHE_HOME/mlci-bench``, else ``~/.cache/mlci-bench``), named after a
hash of that file and the Python version, so a rerun reuses it and a change of pins makes a new one.
``--evidently-python PATH`` uses an interpreter you made yourself.

    python3 benchmarks/bench_drift.py [--rows 1000000] [--evidently] [--repeat 3] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from peak_rss import run_measured  # noqa: E402

EVIDENTLY_REQUIREMENTS = Path(__file__).resolve().parent / "evidently-requirements.txt"
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
from scipy.stats import chi2_contingency
from evidently import DataDefinition, Dataset, Report
from evidently.legacy.core import ColumnType
from evidently.legacy.calculations.stattests.registry import StatTest, register_stattest
from evidently.presets import DataDriftPreset


def chi2_homogeneity(reference, current, feature_type, threshold):
    # The chi-square test of homogeneity on the 2 x k table of both samples' counts (mlci's chi2).
    table = pd.concat([reference.value_counts(), current.value_counts()], axis=1).fillna(0).to_numpy().T
    p_value = float(chi2_contingency(table, correction=False).pvalue) if table.shape[1] > 1 else 1.0
    return p_value, p_value < threshold


register_stattest(StatTest(name="chi2_homogeneity", display_name="chi-square test of homogeneity p_value",
                           allowed_feature_types=[ColumnType.Categorical]), default_impl=chi2_homogeneity)
P_VALUE_TESTS = ("ks", "chisquare", "z", "chi2_homogeneity")
numeric, categorical, mode = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
ref = pd.read_parquet("reference.parquet").drop(columns=["id"])
cur = pd.read_parquet("current.parquet").drop(columns=["id"])
definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
preset = DataDriftPreset(num_method="ks", cat_method="chi2_homogeneity") if mode == "same" else DataDriftPreset()
snapshot = Report([preset]).run(Dataset.from_pandas(cur, data_definition=definition),
                                Dataset.from_pandas(ref, data_definition=definition))
verdicts = {}
for metric in snapshot.dict()["metrics"]:
    config = metric.get("config", {})
    if config.get("type", "").endswith("ValueDrift"):
        method, threshold, value = config.get("method", ""), config.get("threshold"), float(metric["value"])
        p_value = method in P_VALUE_TESTS  # tests; the other methods are distances
        verdicts[config["column"]] = {"method": method, "value": value,
                                      "drift": value < threshold if p_value else value >= threshold}
print(json.dumps({"verdicts": verdicts, "in_process_s": time.perf_counter() - start}))
"""


def timed(command: list[str], cwd: Path, env: dict | None = None) -> tuple[float, float, str, int]:
    """(wall seconds, the command's own peak RSS MiB, stdout, exit code) of a child process."""
    measured = run_measured(command, cwd=cwd, env=env, capture=True)
    return measured.seconds, measured.peak_mib, measured.stdout, measured.returncode


def cache_root() -> Path:
    """Where the benchmark keeps what it builds once (outside the repository)."""
    if os.environ.get("MLCI_BENCH_CACHE"):
        return Path(os.environ["MLCI_BENCH_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mlci-bench"


def evidently_venv() -> Path:
    """The Evidently venv's folder: named after the pins and the Python version, so a change of either
    makes a new one and a rerun reuses the old one."""
    key = hashlib.sha256(EVIDENTLY_REQUIREMENTS.read_bytes() + sys.version.split()[0].encode()).hexdigest()[:12]
    return cache_root() / f"evidently-py{sys.version_info[0]}{sys.version_info[1]}-{key}"


def evidently_python() -> str:
    """The benchmark's own Evidently venv, created from the pinned requirements when missing or when an
    earlier creation did not finish (no ``.complete`` marker)."""
    venv = evidently_venv()
    python, complete = venv / "bin" / "python", venv / ".complete"
    if not complete.exists():
        shutil.rmtree(venv, ignore_errors=True)
        print(f"creating {venv} from {EVIDENTLY_REQUIREMENTS.name} ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        "-r", str(EVIDENTLY_REQUIREMENTS)], check=True)
        complete.write_text(EVIDENTLY_REQUIREMENTS.read_text())
    return str(python)


def summary(runs: list[dict]) -> dict:
    """Medians of wall time and peak RSS over the rounds, with every round listed; verdicts of the
    first run (they are the same in every run: the data and the tests are fixed)."""
    return {"wall_s": statistics.median(r["wall_s"] for r in runs),
            "peak_rss_mib": statistics.median(r["peak_rss_mib"] for r in runs),
            "runs_wall_s": [r["wall_s"] for r in runs], "runs_peak_rss_mib": [r["peak_rss_mib"] for r in runs],
            "exit_code": runs[0].get("exit_code"), "verdicts": runs[0]["verdicts"],
            "verdicts_stable": all(r["verdicts"] == runs[0]["verdicts"] for r in runs)}


def run_mlci(workdir: Path, source: Path | None = None) -> dict:
    """``mlci monitor`` on the benchmark's files; ``source``: a checkout of another mlci version to run
    instead (its folder goes first on PYTHONPATH)."""
    mlci = [sys.executable, "-m", "mlci", "-C", str(workdir), "--json", "monitor", "--reference",
            "reference.parquet", "--current", "current.parquet"]
    env = {**os.environ, "PYTHONPATH": str(source.resolve())} if source else None
    wall, rss, out, code = timed(mlci, workdir, env)
    if code not in (0, 1):
        raise SystemExit(f"mlci monitor failed with exit code {code}")
    report = json.loads(out)
    verdicts = {c["column"]: {"method": c["details"]["method"], "value": c["value"], "drift": not c["passed"]}
                for c in report["checks"] if c.get("group") == "drift"}
    return {"wall_s": wall, "peak_rss_mib": rss, "exit_code": code, "verdicts": verdicts}


def run_evidently(python: str, workdir: Path, mode: str) -> dict:
    command = [python, "-c", EVIDENTLY_SCRIPT, json.dumps(NUMERIC), json.dumps(CATEGORICAL), mode]
    wall, rss, out, code = timed(command, workdir)
    if code != 0:
        raise SystemExit(f"Evidently ({mode}) failed with exit code {code}")
    return {"wall_s": wall, "peak_rss_mib": rss, **json.loads(out.strip().splitlines()[-1])}


def verdict_table(mlci: dict, evidently: dict) -> tuple[list[str], list[str]]:
    """Lines of the per-column table, and the columns whose verdicts differ (or that one side lacks)."""
    lines = [f"{'column':8} {'mlci test':>10} {'value':>10} {'verdict':>8}   {'Evidently test':>16} {'value':>10} "
             f"{'verdict':>8}  agree"]
    differ = []
    for column in sorted(set(mlci) | set(evidently), key=lambda c: (c not in SHIFTED, c)):
        a, b = mlci.get(column), evidently.get(column)
        same = a is not None and b is not None and a["drift"] == b["drift"]
        if not same:
            differ.append(column)
        side = [(x["method"], f"{x['value']:.4g}", "drift" if x["drift"] else "-") if x else ("missing", "", "")
                for x in (a, b)]
        lines.append(f"{column:8} {side[0][0]:>10} {side[0][1]:>10} {side[0][2]:>8}   {side[1][0]:>16} "
                     f"{side[1][1]:>10} {side[1][2]:>8}  {'yes' if same else 'NO'}")
    return lines, differ


def interleaved_rounds(workdir: Path, python: str | None, modes: list[str], repeat: int,
                       baseline: Path | None = None) -> dict[str, list[dict]]:
    """Every tool once per round, the order alternating between rounds, so that a change of load on a
    shared machine falls on both sides."""
    tools = ["mlci"] + (["baseline"] if baseline else []) + ([f"evidently_{m}" for m in modes] if python else [])
    runs: dict[str, list[dict]] = {t: [] for t in tools}
    for round_index in range(repeat):
        for tool in (tools if round_index % 2 == 0 else tools[::-1]):
            if tool == "mlci":
                result = run_mlci(workdir)
            elif tool == "baseline":
                result = run_mlci(workdir, baseline)
            else:
                result = run_evidently(python, workdir, tool.split("_", 1)[1])
            runs[tool].append(result)
            print(f"  round {round_index + 1}: {tool} {result['wall_s']:.1f} s, {result['peak_rss_mib']:.0f} MiB",
                  file=sys.stderr)
    return runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--evidently", action="store_true",
                        help="compare with Evidently from the benchmark's own venv (created on first use)")
    parser.add_argument("--evidently-python", help="compare with Evidently from this interpreter instead")
    parser.add_argument("--repeat", type=int, default=1, help="interleaved rounds; medians are reported")
    parser.add_argument("--default-preset", action="store_true",
                        help="also time Evidently's default preset (other tests: verdicts shown, not required)")
    parser.add_argument("--baseline", type=Path, metavar="SRC",
                        help="also run mlci from this source tree (e.g. `git archive` of an older commit) in the "
                             "same rounds, to measure a change against the same Evidently runs")
    parser.add_argument("--workdir", type=Path, help="where data and reports go (default: a temp dir)")
    parser.add_argument("--output", type=Path, help="write the results as JSON here")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="mlci-drift-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    prepare(workdir, args.rows)

    python = args.evidently_python or (evidently_python() if args.evidently else None)
    modes = ["same"] + (["default"] if args.default_preset else [])
    runs = interleaved_rounds(workdir, python, modes, args.repeat, args.baseline)
    results = {"rows": args.rows, "rounds": args.repeat, **{tool: summary(r) for tool, r in runs.items()}}
    mlci = results["mlci"]
    print(f"mlci monitor: median {mlci['wall_s']:.2f} s (rounds: {', '.join(f'{t:.2f}' for t in mlci['runs_wall_s'])}),"
          f" peak RSS {mlci['peak_rss_mib']:.0f} MiB, exit {mlci['exit_code']}")
    failed = not mlci["verdicts_stable"]
    if args.baseline:
        base = results["baseline"]
        _, changed = verdict_table(mlci["verdicts"], base["verdicts"])
        print(f"baseline mlci ({args.baseline}): median {base['wall_s']:.2f} s (rounds: "
              f"{', '.join(f'{t:.2f}' for t in base['runs_wall_s'])}), peak RSS {base['peak_rss_mib']:.0f} MiB; "
              + (f"verdicts DIFFER on {', '.join(changed)}" if changed else "the same verdicts"))
        failed |= bool(changed)
    for mode in (modes if python else []):
        ev = results[f"evidently_{mode}"]
        lines, differ = verdict_table(mlci["verdicts"], ev["verdicts"])
        round_ratios = [e / m for e, m in zip(ev["runs_wall_s"], mlci["runs_wall_s"])]
        ev.update(differ=differ, speedup=ev["wall_s"] / mlci["wall_s"], round_speedups=round_ratios,
                  rss_ratio=mlci["peak_rss_mib"] / ev["peak_rss_mib"])
        title = "the same tests" if mode == "same" else "its default tests (different by design)"
        print(f"\nEvidently, {title}: median {ev['wall_s']:.1f} s (rounds: "
              f"{', '.join(f'{t:.1f}' for t in ev['runs_wall_s'])}), peak RSS {ev['peak_rss_mib']:.0f} MiB")
        print(f"mlci is {ev['speedup']:.1f}x faster (median over median; per round: "
              f"{', '.join(f'{r:.1f}x' for r in round_ratios)}) at {ev['rss_ratio']:.2f}x the peak RSS")
        if args.baseline:
            base = results["baseline"]
            ev["baseline_speedup"] = ev["wall_s"] / base["wall_s"]
            print(f"the baseline is {ev['baseline_speedup']:.1f}x faster (per round: " + ", ".join(
                f"{e / b:.1f}x" for e, b in zip(ev["runs_wall_s"], base["runs_wall_s"])) + ")")
        print("\n".join(lines))
        print(f"verdicts agree on {len(lines) - 1 - len(differ)}/{len(lines) - 1} columns"
              + (f"; differ: {', '.join(differ)}" if differ else ""))
        if mode == "same" and (differ or not ev["verdicts_stable"]):
            failed = True
    if args.output:
        args.output.write_text(json.dumps(results, indent=2, default=str))
    if failed:
        print("FAILED: the verdicts differ between mlci and Evidently with the same tests (or between rounds)",
              file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
