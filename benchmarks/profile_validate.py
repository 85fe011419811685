"""Where `mlci validate`'s time goes: each phase's share of one end-to-end run, in process.

    python3 benchmarks/profile_validate.py [--rows 1000000] [--runs 3]

Runs ``mlci.ops.data.validate.validate`` (what the command runs) on the data set of ``bench_validate.py``,
in a fresh process per run, with each phase timed from outside (the functions are wrapped, not edited):
imports, schema, opening the file (header, first pieces handed to the parse), the imports that
``validate`` does after that (the rule and report code: they overlap the parse), the reader (the parse
runs on pyarrow's threads: this is the main thread reading the file's pieces and waiting for the
parse), the column rules, the column profile, uniqueness, the rest of
the per-batch bookkeeping, and the report (HTML rendering, then writing the files). Each phase is given
in wall seconds and in the main thread's CPU seconds, each with its share of the run (on a loaded
machine the wall shares mostly measure waiting for a core; the CPU shares do not). The table shows the
median over the runs. Statistics that several rules share are computed by the first rule that asks, so
they count as rules. To profile another checkout, run this from outside both checkouts with
``PYTHONPATH`` set to it (the current directory comes first on a child's path).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

PHASES = ["imports", "schema", "open (parse starts)", "late imports", "reader", "rules", "profile", "unique",
          "per-batch rest", "report render", "report write"]

_CHILD = r"""
import builtins, json, sys, time
from pathlib import Path
started = time.perf_counter()
import mlci.cli.main  # noqa: F401  (what `mlci validate` imports before it runs)
from mlci.ops.data import validate as V
spent = {"imports": [time.perf_counter() - started, time.thread_time()]}
def add(name, wall, cpu):
    total = spent.setdefault(name, [0.0, 0.0])
    total[0] += wall
    total[1] += cpu
def timed(name, function):
    def wrapper(*args, **kwargs):
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            return function(*args, **kwargs)
        finally:
            add(name, time.perf_counter() - wall, time.thread_time() - cpu)
    return wrapper
def timed_iterator(name, function):
    def wrapper(*args, **kwargs):
        return timed_items(name, function(*args, **kwargs))  # called now: the parse starts now
    return wrapper
def timed_items(name, iterator):
    while True:
        wall, cpu = time.perf_counter(), time.thread_time()
        item = next(iterator, None)
        add(name, time.perf_counter() - wall, time.thread_time() - cpu)
        if item is None:
            return
        yield item
def rules_timed(function):
    def wrapper(*args, **kwargs):
        rules = function(*args, **kwargs)
        for rule in rules:
            rule.find = timed("rules", rule.find)
        return rules
    return wrapper
def patch_report(module):
    if hasattr(module, "render"):
        module.render = timed("report render", module.render)
    else:
        module.write_report = timed("report write", module.write_report)
def patch_checks(F):  # when validate() imports the rule code, not before: it overlaps the parse
    F.column_rules = rules_timed(F.column_rules)
    F._ColumnProfile.add = timed("profile", F._ColumnProfile.add)
    F._UniqueValues.add = timed("unique add", F._UniqueValues.add)
    F._UniqueValues.check = timed("unique", F._UniqueValues.check)
    F._FileTally.add = timed("batch total", F._FileTally.add)
plain_import, depth, late, patched = builtins.__import__, [0], [False], set()
def timed_import(name, *args, **kwargs):
    wall, cpu = time.perf_counter(), time.thread_time()
    depth[0] += 1
    try:
        return plain_import(name, *args, **kwargs)
    finally:
        depth[0] -= 1
        if late[0] and not depth[0]:
            add("late imports", time.perf_counter() - wall, time.thread_time() - cpu)
        patch = {"mlci.ops.data.file_checks": patch_checks, "mlci.ops.reporting.render": patch_report,
                 "mlci.core.reports": patch_report}.get(name)
        if patch is not None and name not in patched and name in sys.modules:
            patched.add(name)
            patch(sys.modules[name])
builtins.__import__ = timed_import
def opened(function):
    def wrapper(*args, **kwargs):
        result = function(*args, **kwargs)
        late[0] = True
        return result
    return wrapper
V.load_schema = timed("schema", V.load_schema)
V.compile_schema = timed("schema", V.compile_schema)
V.open_file = opened(timed("open (parse starts)", V.open_file))
import mlci.ml.tabular as tabular
tabular.open_arrow_batches = timed_iterator("reader", tabular.open_arrow_batches)
cpu_started = time.process_time()
V.validate(data=[Path(sys.argv[1])], schema_path=Path(sys.argv[2]), reports_dir=Path(sys.argv[3]), progress=False)
spent["total"] = [time.perf_counter() - started, time.thread_time()]
spent["process cpu after imports"] = [0.0, time.process_time() - cpu_started]
unique_add = spent.pop("unique add", [0.0, 0.0])
batch = spent.pop("batch total", [0.0, 0.0])
spent["per-batch rest"] = [batch[i] - spent.get("rules", [0, 0])[i] - spent.get("profile", [0, 0])[i]
                           - unique_add[i] for i in (0, 1)]
spent["unique"] = [spent.get("unique", [0, 0])[i] + unique_add[i] for i in (0, 1)]
print(json.dumps(spent))
"""


def main() -> int:
    import bench_validate

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    data = bench_validate.generate(args.rows)
    schema = data.with_name(f"bench_{args.rows}.schema.yaml")
    runs = []
    for _ in range(args.runs + 1):  # the first run warms the page cache
        done = subprocess.run([sys.executable, "-c", _CHILD, str(data), str(schema),
                               str(bench_validate.DATA_DIR / "reports")], capture_output=True, text=True, check=True)
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    runs = runs[1:]

    def median(phase: str, index: int) -> float:
        return statistics.median(run.get(phase, [0.0, 0.0])[index] for run in runs)

    wall, cpu = median("total", 0), median("total", 1)
    print(f"mlci validate, {args.rows:,} rows x 20 columns, median of {len(runs)} runs in process: {wall:.3f} s "
          f"wall, {cpu:.3f} s CPU on the main thread; the parse's threads add "
          f"{median('process cpu after imports', 1) - (cpu - median('imports', 1)):.3f} s CPU\n")
    print(f"{'phase':<20}{'wall s':>8}{'share':>7}{'main-thread CPU s':>19}{'share':>7}")
    for phase in PHASES:
        print(f"{phase:<20}{median(phase, 0):>8.3f}{median(phase, 0) / wall:>7.0%}"
              f"{median(phase, 1):>19.3f}{median(phase, 1) / cpu:>7.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
