"""`mlci validate` end to end: every rule, counts and example rows across batches, reports, exit codes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "credit-risk"

SCHEMA = """columns:
  id: {type: integer, nullable: false, unique: true}
  score: {type: float, min: 0, max: 1}
  kind: {type: category, nullable: false, values: [a, b]}
  code: {type: string, pattern: '^[A-Z]{2}[0-9]$'}
  when: {type: datetime, min: '2024-01-01', max: '2024-12-31'}
  flag: {type: boolean}
rows: {min: 1, max: 100000}
allow_duplicate_rows: false
"""


def write_rows(path: Path, rows: list[str]) -> Path:
    path.write_text("id,score,kind,code,when,flag\n" + "\n".join(rows) + "\n")
    return path


def good_row(i: int) -> str:
    return f"{i},0.5,a,AB{i % 10},2024-03-0{i % 9 + 1},true"


@pytest.fixture
def schema(tmp_path):
    path = tmp_path / "schema.yaml"
    path.write_text(SCHEMA)
    return path


def run_validate(run_cli, tmp_path, schema, data, *extra):
    code, out, err = run_cli("validate", data, "--schema", schema, "--reports", tmp_path / "reports",
                             *extra, cwd=tmp_path)
    report = json.loads((tmp_path / "reports" / "validate.json").read_text()) if code in (0, 1) else None
    return code, out, err, report


def check(report, name):
    return next(c for c in report["checks"] if c["name"] == name)


def test_valid_file_passes_and_writes_every_report(run_cli, tmp_path, schema):
    data = write_rows(tmp_path / "d.csv", [good_row(i) for i in range(1, 50)])
    code, out, err, report = run_validate(run_cli, tmp_path, schema, data)
    assert code == 0, out + err
    assert report["ok"] and report["summary"]["failed"] == 0
    assert "PASSED" in out
    junit = ET.parse(tmp_path / "reports" / "validate.junit.xml").getroot()
    cases = junit.findall(".//testcase")
    assert len(cases) == len(report["checks"]) and not junit.findall(".//failure")
    html = (tmp_path / "reports" / "validate.html").read_text()
    assert "Data validation" in html and "d.csv" in html


def test_every_rule_reports_counts_and_example_rows_across_batches(run_cli, tmp_path, schema):
    rows = [good_row(i) for i in range(1, 3001)]
    rows[10] = "11,1.5,a,AB1,2024-03-01,true"          # row 11: score above max
    rows[1500] = "1501,-0.1,c,ab1,2023-12-31,maybe"    # row 1501: min, values, pattern, datetime min, type
    rows[2999] = "7,0.25,a,AB7,2024-03-08,true"         # row 3000: repeats id 7 (another batch)
    rows[2500] = rows[100]                               # row 2501: duplicate of row 101
    rows[2000] = "2001,,,XY1,2024-13-45,"                # row 2001: null kind, unparseable date
    data = write_rows(tmp_path / "d.csv", rows)
    code, out, err, report = run_validate(run_cli, tmp_path, schema, data, "--batch-rows", "1000")
    assert code == 1, out + err

    def examples(name):
        return [(e["row"], e["value"]) for e in check(report, name)["details"]["examples"]]

    assert examples("score: max") == [(11, 1.5)]
    assert examples("score: min") == [(1501, -0.1)]
    assert examples("kind: allowed values") == [(1501, "c")]
    assert examples("kind: not null") == [(2001, None)]
    assert examples("code: pattern") == [(1501, "ab1")]
    assert examples("when: min") == [(1501, "2023-12-31T00:00:00")]
    assert examples("when: type") == [(2001, "2024-13-45")]
    assert examples("flag: type") == [(1501, "maybe")]
    assert examples("id: unique") == [(2501, 101), (3000, 7)]
    assert examples("duplicate rows") == [(2501, None)]
    failed = {c["name"] for c in report["checks"] if c["status"] == "fail"}
    assert failed == {"score: max", "score: min", "kind: allowed values", "kind: not null", "code: pattern",
                      "when: min", "when: type", "flag: type", "id: unique", "duplicate rows"}
    junit = ET.parse(tmp_path / "reports" / "validate.junit.xml").getroot()
    assert len(junit.findall(".//failure")) == len(failed)
    assert "1501: 'ab1'" in out


def test_examples_are_capped_and_values_truncated(run_cli, tmp_path, schema):
    long_code = "Z" * 500
    rows = [f"{i},0.5,a,{long_code},2024-03-01,true" for i in range(1, 1001)]
    code, _, _, report = run_validate(run_cli, tmp_path, schema, write_rows(tmp_path / "d.csv", rows))
    pattern = check(report, "code: pattern")
    assert code == 1
    assert pattern["details"]["failing_rows"] == 1000
    assert len(pattern["details"]["examples"]) == 5
    assert all(len(e["value"]) <= 60 for e in pattern["details"]["examples"])


def test_missing_and_unexpected_columns_and_row_bounds(run_cli, tmp_path):
    schema = tmp_path / "schema.yaml"
    schema.write_text("columns:\n  a: {type: integer}\n  b: {type: integer}\nrows: {min: 5}\n")
    data = tmp_path / "d.csv"
    data.write_text("a,c\n1,2\n3,4\n")
    code, _, _, report = run_validate(run_cli, tmp_path, schema, data)
    assert code == 1
    assert check(report, "columns: required")["details"]["missing"] == ["b"]
    assert check(report, "columns: unexpected")["details"]["unexpected"] == ["c"]
    assert check(report, "rows: count")["value"] == 2 and check(report, "rows: count")["status"] == "fail"


def test_parquet_is_validated_with_the_same_rules(run_cli, tmp_path, schema):
    table = pa.table({"id": [1, 2, 2], "score": [0.1, float("nan"), 2.0], "kind": ["a", "b", "z"],
                      "code": ["AB1", "AB2", "AB3"], "when": ["2024-01-05", "2024-02-01", "2024-03-01"],
                      "flag": [True, False, None]})
    data = tmp_path / "d.parquet"
    pq.write_table(table, data)
    code, _, _, report = run_validate(run_cli, tmp_path, schema, data)
    assert code == 1
    assert check(report, "id: unique")["details"]["examples"] == [{"row": 3, "value": 2}]
    assert check(report, "score: max")["details"]["failing_rows"] == 1
    assert check(report, "kind: allowed values")["details"]["examples"] == [{"row": 3, "value": "z"}]
    assert check(report, "when: type")["status"] == "pass"


def test_csv_options_from_mlci_yaml(run_cli, tmp_path):
    project = tmp_path / "p"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("reports", ".mlci", "predictions"))
    (project / "data" / "semi.csv").write_text(
        "customer_id;age;income;loan_amount;loan_term;credit_score;debt_ratio;num_accounts;region;employment;"
        "home_ownership;has_guarantor;application_date;default\n"
        + "".join(f"C{i:010d};40;1000,5;200,25;12;700;0,5;3;east;retired;own;False;2025-01-02;0\n"
                  for i in range(120)))
    config = (project / "mlci.yaml").read_text().replace(
        "  schema: schema.yaml", "  schema: schema.yaml\n  csv: {delimiter: ';', decimal: ','}")
    (project / "mlci.yaml").write_text(config)
    code, out, err = run_cli("-C", project, "validate", project / "data" / "semi.csv", cwd=project)
    assert code == 0, out + err


def test_defaults_come_from_mlci_yaml(run_cli, tmp_path):
    project = tmp_path / "p"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("reports", ".mlci", "predictions"))
    code, out, err = run_cli("-C", project, "--json", "validate", cwd=project)
    assert code == 0, out + err
    result = json.loads(out)
    assert [f["path"] for f in result["details"]["files"]] == ["data/train.csv", "data/holdout.csv"]
    assert (project / "reports" / "validate.junit.xml").exists()


def test_drifted_example_data_fails(run_cli, tmp_path):
    project = tmp_path / "p"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("reports", ".mlci", "predictions"))
    code, out, _ = run_cli("-C", project, "validate", "data/later.csv", cwd=project)
    assert code == 1
    assert "employment: allowed values" in out and "'contractor'" in out


def test_without_mlci_yaml_data_and_schema_are_required(run_cli, tmp_path):
    (tmp_path / "d.csv").write_text("a\n1\n")
    code, _, err = run_cli("validate", "d.csv", cwd=tmp_path)
    assert code == 2
    assert "give the DATA files and --schema" in err


def test_a_bad_schema_is_exit_2_with_its_location(run_cli, tmp_path):
    schema = tmp_path / "schema.yaml"
    schema.write_text("columns:\n  a: {type: integer, nullabel: false}\n")
    (tmp_path / "d.csv").write_text("a\n1\n")
    code, _, err = run_cli("validate", "d.csv", "--schema", schema, cwd=tmp_path)
    assert code == 2
    assert "schema.yaml:2" in err and "did you mean 'nullable'" in err


@pytest.mark.parametrize("rule, field", [("min: yesterday", "columns.d.min"),
                                         ("values: ['2024-01-01', soon]", "columns.d.values")])
def test_a_datetime_rule_that_is_no_date_is_exit_2_naming_the_field(run_cli, tmp_path, rule, field):
    schema = tmp_path / "schema.yaml"
    schema.write_text(f"columns:\n  d: {{type: datetime, {rule}}}\n")
    (tmp_path / "d.csv").write_text("d\n2024-01-02\n")
    code, _, err = run_cli("validate", "d.csv", "--schema", schema, cwd=tmp_path)
    assert code == 2, err
    assert "schema.yaml: " + field in err and "Traceback" not in err


def test_a_pattern_on_a_column_that_is_not_text_is_exit_2_naming_the_field(run_cli, tmp_path):
    """validate matched an integer's text while the server ignored the pattern: one meaning now, text only."""
    schema = tmp_path / "schema.yaml"
    schema.write_text("columns:\n  n: {type: integer, pattern: '[0-9]{2}'}\n")
    (tmp_path / "d.csv").write_text("n\n12\n")
    code, _, err = run_cli("validate", "d.csv", "--schema", schema, cwd=tmp_path)
    assert code == 2, err
    assert "schema.yaml:2: columns.n.pattern: a pattern applies to string and category columns" in err


def test_patterns_match_the_whole_value_and_offsets_are_converted_to_utc(run_cli, tmp_path):
    schema = tmp_path / "schema.yaml"
    schema.write_text("columns:\n  code: {type: string, pattern: '[A-Z]{2}'}\n"
                      "  when: {type: datetime, min: '2024-01-01', max: '2024-01-31T23:00:00-01:00'}\n")
    rows = ["AB,2024-01-01T00:00:00", "xxAByy,2024-01-01T01:00:00+02:00", "AB,2024-02-01T00:00:00Z",
            "ABC,2024-02-01T00:00:01Z", "ab,2024-01-31T23:00:00-01:00"]
    (tmp_path / "d.csv").write_text("code,when\n" + "\n".join(rows) + "\n")
    code, _, _, report = run_validate(run_cli, tmp_path, schema, "d.csv")
    assert code == 1
    assert [e["row"] for e in check(report, "code: pattern")["details"]["examples"]] == [2, 4, 5]
    assert [e["row"] for e in check(report, "when: min")["details"]["examples"]] == [2]
    assert [e["row"] for e in check(report, "when: max")["details"]["examples"]] == [4]


def test_progress_lines_when_not_a_terminal(tmp_path):
    import io

    from mlci.core.dataschema import load_schema
    from mlci.ops.data.validate import validate_file

    schema = tmp_path / "schema.yaml"
    schema.write_text("columns:\n  a: {type: integer}\n")
    data = tmp_path / "d.csv"
    data.write_text("a\n" + "\n".join(str(i) for i in range(5000)) + "\n")
    stream = io.StringIO()
    from mlci.core import progress as progress_module

    original = progress_module.Progress.__init__

    def to_stream(self, *args, **kwargs):
        original(self, *args, **{**kwargs, "stream": stream, "interval": 0.0})

    progress_module.Progress.__init__ = to_stream
    try:
        validate_file(data, load_schema(schema), batch_rows=1000)
    finally:
        progress_module.Progress.__init__ = original
    lines = stream.getvalue().splitlines()
    assert lines and all(line.startswith("validating d.csv: ") for line in lines)
    assert "5,000" in lines[-1]


def test_validation_imports_no_pandas(tmp_path, schema):
    """pandas costs a third of a second and 50 MiB at start-up; validation works on Arrow buffers."""
    rows = [good_row(i) for i in range(1, 3001)]
    rows[10] = "11,1.5,a,AB1,2024-03-01,true"
    rows[1500] = "1501,-0.1,c,ab1,2023-12-31,maybe"
    rows[2999] = "7,0.25,a,AB7,2024-03-08,true"
    rows[2500] = rows[100]
    rows[2000] = "2001,,,XY1,2024-13-45,"
    data = write_rows(tmp_path / "d.csv", rows)
    script = ("import sys; from mlci.cli.main import run; "
              f"code = run(['validate', {str(data)!r}, '--schema', {str(schema)!r}, '--reports', "
              f"{str(tmp_path / 'reports')!r}, '--batch-rows', '1000']); "
              "print(code, 'pandas' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
    assert done.stdout.split()[-2:] == ["1", "False"], done.stdout + done.stderr
    report = json.loads((tmp_path / "reports" / "validate.json").read_text())
    assert check(report, "when: min")["details"]["examples"] == [{"row": 1501, "value": "2023-12-31T00:00:00"}]
    assert check(report, "duplicate rows")["details"]["examples"] == [{"row": 2501, "value": None}]


def test_duplicate_rows_across_batches_with_nulls_and_text(tmp_path):
    from mlci.core.dataschema import load_schema
    from mlci.ops.data.validate import validate_file

    schema = tmp_path / "schema.yaml"
    schema.write_text("columns:\n  n: {type: integer}\n  x: {type: float}\n  t: {type: string}\n"
                      "  w: {type: datetime}\n  b: {type: boolean}\nallow_duplicate_rows: false\n")
    rows = [f"{i},{i / 7},text {i},2024-01-01T00:00:{i % 60:02d},{'true' if i % 2 else 'false'}"
            for i in range(1, 5001)]
    rows[3999] = rows[9]                 # row 4000 repeats row 10 (another batch)
    rows[20] = "21,,,,"                  # row 21: nulls everywhere
    rows[4499] = "21,,,,"                # row 4500 repeats it
    rows[4600] = "21,,text 21,,"         # row 4601: the same but one value: not a repeat
    rows[4700] = "21,0.0,,,"             # row 4701: 0.0 is not a missing value
    data = tmp_path / "d.csv"
    data.write_text("n,x,t,w,b\n" + "\n".join(rows) + "\n")
    checks = validate_file(data, load_schema(schema), batch_rows=500, progress=False)
    duplicates = next(c for c in checks if c.name == "duplicate rows")
    assert [e["row"] for e in duplicates.details["examples"]] == [4000, 4500]


@pytest.mark.parametrize("values, repeats", [
    ([5, 3, 1_000_000_000_000, 3, -(2**63), 2**63 - 1], [4]),   # too sparse to mark: sorted
    (list(range(1, 2001)) + [1999], [2001]),                      # dense (ids): marked
    ([0.5, 1.5, 0.5, None, None], [3]),
    (["a", "b", "a", None, None], [3]),
])
def test_unique_finds_repeats_of_every_kind(tmp_path, values, repeats):
    from mlci.core.dataschema import Column, DataSchema
    from mlci.ops.data.validate import validate_file

    kind = {int: "integer", float: "float", str: "string"}[type(values[0])]
    data = tmp_path / "d.parquet"
    pq.write_table(pa.table({"v": values}), data, row_group_size=3)
    schema = DataSchema(columns={"v": Column(type=kind, unique=True)})
    unique = next(c for c in validate_file(data, schema, batch_rows=3, progress=False) if c.name == "v: unique")
    assert [e["row"] for e in unique.details["examples"]] == repeats
