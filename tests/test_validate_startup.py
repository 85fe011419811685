"""`mlci validate`'s start-up: it imports only what validation needs, and the parse of the data starts
before the rule and report code is imported, so that the two overlap on a machine with a free core."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


@pytest.fixture
def bare_files(tmp_path):
    """A CSV of a few thousand rows and its schema, outside any project (no mlci.yaml)."""
    rows = ["id,score,level"] + [f"{i},{i * 0.5},{'ab'[i % 2]}" for i in range(1, 5001)]
    (tmp_path / "data.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "schema.yaml").write_text(
        "columns:\n  id: {type: integer, unique: true, nullable: false}\n  score: {type: float, min: 0}\n"
        "  level: {type: category, values: [a, b]}\n")
    return tmp_path


def _run_validate(directory, prelude: str = "") -> tuple[set[str], dict]:
    """Run `mlci validate` on the bare files in a fresh interpreter; the modules it loaded, and what the
    ``prelude`` recorded in ``events``."""
    code = ("import sys, io, contextlib, json\nevents = []\n" + prelude +
            "from mlci.cli.main import run\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    rc = run(['validate', 'data.csv', '--schema', 'schema.yaml', '--reports', 'reports'])\n"
            "print(json.dumps({'rc': rc, 'modules': sorted(sys.modules), 'events': events}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=directory, capture_output=True, text=True,
                         timeout=120, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["rc"] == 0, out.stderr
    return set(result["modules"]), result


def test_validating_bare_files_imports_no_pandas_scikit_learn_or_project_config(bare_files):
    loaded, _ = _run_validate(bare_files)
    report = json.loads((bare_files / "reports" / "validate.json").read_text())
    assert report["ok"] is True and len(report["checks"]) >= 8  # the checks ran and were written
    heavy = sorted(m for m in loaded if m.split(".")[0] in ("pandas", "sklearn", "scipy", "matplotlib"))
    assert heavy == [], f"`mlci validate` imports {heavy[:5]}"
    assert "mlci.core.config" not in loaded  # the project's config model: no mlci.yaml here


_LATE = ("pyarrow.compute", "jinja2", "mlci.ops.data.file_checks", "mlci.ml.arrow_rules", "mlci.core.reports")

_RECORD_FIRST_SUBMIT = f"""
LATE = {_LATE!r}
from concurrent.futures import ThreadPoolExecutor
submit = ThreadPoolExecutor.submit
def recorded(self, *args, **kwargs):
    if not events:  # the first task handed to a worker thread: the first piece of the parse
        events.append(sorted(m for m in LATE if m in sys.modules))
    return submit(self, *args, **kwargs)
ThreadPoolExecutor.submit = recorded
"""


def test_the_parse_starts_before_the_rule_and_report_code_is_imported(bare_files):
    """Those imports (about 90 ms of CPU) then run beside the parse instead of before it."""
    loaded, result = _run_validate(bare_files, _RECORD_FIRST_SUBMIT)
    assert result["events"], "no piece was handed to a parse thread"
    assert result["events"][0] == [], f"imported before the parse started: {result['events'][0]}"
    assert set(_LATE) <= loaded  # they did run, after it


def _numbered_file(tmp_path, rows: int = 60_000, bad_row: int | None = None):
    data = tmp_path / "d.csv"
    lines = [f"{i},{'x' if i == bad_row else i * 0.25},row {i}\n" for i in range(1, rows + 1)]
    data.write_text("n,f,t\n" + "".join(lines))
    return data


def test_a_started_read_parses_before_anyone_asks_for_a_batch(tmp_path, monkeypatch):
    import threading

    from mlci.core.dataschema import Column, DataSchema
    from mlci.ml.tabular import csv_reader, open_arrow_batches

    parsing = threading.Event()
    parse = csv_reader.CsvReader._parse

    def watched(self, *args, **kwargs):
        parsing.set()
        return parse(self, *args, **kwargs)

    monkeypatch.setattr(csv_reader.CsvReader, "_parse", watched)
    data = _numbered_file(tmp_path)
    schema = DataSchema(columns={"n": Column(type="integer"), "f": Column(type="float"), "t": Column(type="string")})
    batches = open_arrow_batches(data, schema=schema, batch_rows=1000)
    assert parsing.wait(30), "nothing was parsed before the first batch was asked for"
    numbers = [n for item in batches for n in item.batch.column("n").to_pylist()]
    assert numbers == list(range(1, 60_001))


@pytest.mark.parametrize("typed", ["all", "some"])  # "some": the first piece's parse types the rest
@pytest.mark.parametrize("at_start, ahead", [(1, 1), (1, 2), (2, 2), (4, 2), (6, 3), (3, 1)])
def test_pieces_started_early_keep_every_row_in_order(tmp_path, monkeypatch, typed, at_start, ahead):
    from mlci.core.dataschema import Column, DataSchema
    from mlci.ml.tabular import csv_reader, open_arrow_batches

    monkeypatch.setattr(csv_reader, "_PIECES_AT_START", at_start)
    monkeypatch.setattr(csv_reader, "_PIECES_AHEAD", ahead)
    data = _numbered_file(tmp_path)
    columns = {"n": Column(type="integer", nullable=False), "f": Column(type="float")}
    read = ["n", "f"] if typed == "some" else None  # "some": t is read with no schema type
    if typed == "all":
        columns["t"] = Column(type="string")
    items = list(open_arrow_batches(data, schema=DataSchema(columns=columns), batch_rows=1000,
                                    columns=None if read is None else [*read, "t"]))
    assert len(items) > 8  # several pieces of several blocks
    assert pa_column(items, "n") == list(range(1, 60_001))
    assert pa_column(items, "t") == [f"row {i}" for i in range(1, 60_001)]
    assert all(item.batch.column("n")[0].as_py() == item.first_row for item in items)


@pytest.mark.parametrize("at_start", [1, 4, 8])
def test_a_bad_value_in_a_late_piece_of_a_started_read_is_counted_on_its_row(tmp_path, monkeypatch, at_start):
    """The started pieces are dropped and the file is read again with the column as text (a restart)."""
    from mlci.core.dataschema import Column, DataSchema
    from mlci.ml.tabular import csv_reader, open_arrow_batches

    monkeypatch.setattr(csv_reader, "_PIECES_AT_START", at_start)
    data = _numbered_file(tmp_path, bad_row=55_555)
    schema = DataSchema(columns={"n": Column(type="integer"), "f": Column(type="float"), "t": Column(type="string")})
    items = list(open_arrow_batches(data, schema=schema, batch_rows=1000, lenient=True))
    failed = [(item.first_row + int(row)) for item in items for name, failures in item.failures.items()
              for row in failures.rows]
    assert failed == [55_555]
    assert pa_column(items, "n") == list(range(1, 60_001))


def pa_column(items, name: str) -> list:
    return [value for item in items for value in item.batch.column(name).to_pylist()]


_EXIT_PROBE = """
import atexit, sys
class Sentinel:
    def __del__(self):
        print("torn down", flush=True)
kept = Sentinel()
atexit.register(lambda: print("atexit ran"))
from mlci.cli.main import main
main(["validate", "data.csv", "--schema", "schema.yaml", "--reports", "reports"])
"""


@pytest.mark.parametrize("valid", [True, False])
def test_the_command_ends_without_tearing_the_interpreter_down(bare_files, valid):
    """Tearing down every module and object cost 80-110 ms of CPU after a validation; the exit code, the
    output and the atexit handlers are kept."""
    if not valid:
        with (bare_files / "data.csv").open("a") as handle:
            handle.write("5001,-1.0,c\n")
    out = subprocess.run([sys.executable, "-c", _EXIT_PROBE], cwd=bare_files, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == (0 if valid else 1), out.stderr
    assert ("PASSED" if valid else "FAILED") in out.stdout and out.stdout.rstrip().endswith("atexit ran")
    assert "torn down" not in out.stdout
    assert json.loads((bare_files / "reports" / "validate.json").read_text())["ok"] is valid


_BLAS_PROBE = """
import contextlib, io, os, sys
seen = []
def on_import(event, args):  # the setting NumPy (and so OpenBLAS) sees when it is imported
    if event == "import" and args[0] == "numpy" and not seen:
        seen.append(os.environ.get("OPENBLAS_NUM_THREADS"))
sys.addaudithook(on_import)
from mlci.cli.main import run
with contextlib.redirect_stdout(io.StringIO()):
    rc = run(["validate", "data.csv", "--schema", "schema.yaml", "--reports", "reports"])
print(rc, *seen)
"""


@pytest.mark.parametrize("chosen", [None, "2"])
def test_validation_starts_one_blas_thread_unless_the_user_chose(bare_files, chosen):
    """OpenBLAS threads, started when NumPy is imported, cost about 50 ms of CPU and validation does no
    linear algebra; a user's own setting is kept."""
    import os

    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    if chosen is not None:
        env["OPENBLAS_NUM_THREADS"] = chosen
    out = subprocess.run([sys.executable, "-c", _BLAS_PROBE], cwd=bare_files, capture_output=True, text=True,
                         timeout=120, check=True, env=env)
    assert out.stdout.split() == ["0", chosen or "1"]
