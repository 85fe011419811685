"""Hostile data files: a one-line error naming the file (and line), exit 2, never a traceback or a silently
altered table. inf and mixed types are validation failures (exit 1) with row numbers."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

SCHEMA = """columns:
  a: {type: integer, nullable: false}
  b: {type: string}
rows: {min: 1}
"""


@pytest.fixture
def schema(tmp_path):
    path = tmp_path / "schema.yaml"
    path.write_text(SCHEMA)
    return path


def validate(run_cli, tmp_path, schema, name: str, content: bytes):
    data = tmp_path / name
    data.write_bytes(content)
    code, out, err = run_cli("validate", data, "--schema", schema, "--reports", tmp_path / "reports",
                             cwd=tmp_path)
    return code, out, err, data


def assert_one_line_error(err: str, data, line: int | None = None) -> str:
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("mlci: error:")]
    assert len(errors) == 1, err
    message = errors[0]
    expected = f"{data.name}:{line}:" if line is not None else data.name
    assert expected in message, message
    return message


@pytest.mark.parametrize("content", [b"", b"   \n\n"], ids=["zero-bytes", "whitespace-only"])
def test_empty_file(run_cli, tmp_path, schema, content):
    code, _, err, data = validate(run_cli, tmp_path, schema, "d.csv", content)
    assert code == 2
    assert "empty" in assert_one_line_error(err, data)


def test_header_only_is_an_error(run_cli, tmp_path, schema):
    code, _, err, data = validate(run_cli, tmp_path, schema, "d.csv", b"a,b\n")
    assert code == 2
    assert "no data rows" in assert_one_line_error(err, data)


def test_header_only_passes_when_the_schema_allows_zero_rows(run_cli, tmp_path):
    schema = tmp_path / "schema.yaml"
    schema.write_text(SCHEMA.replace("min: 1", "min: 0"))
    code, out, err, _ = validate(run_cli, tmp_path, schema, "d.csv", b"a,b\n")
    assert code == 0, err
    assert "0 rows" in out


@pytest.mark.parametrize("content,line,kind", [
    (b"a,b\n1,x\n2,y,extra\n3,z\n", 3, "too many fields: expected 2, found 3"),
    (b"a,b\n1,x\n2\n3,z\n", 3, "too few fields: expected 2, found 1"),
    (b"a,b\n1,x,9\n2,y,9\n3,z,9\n", 2, "too many fields"),  # pandas would make `a` the index
], ids=["too-many", "too-few", "every-row-one-extra"])
def test_ragged_rows(run_cli, tmp_path, schema, content, line, kind):
    code, _, err, data = validate(run_cli, tmp_path, schema, "d.csv", content)
    assert code == 2
    assert kind in assert_one_line_error(err, data, line)


def test_undecodable_bytes_name_the_line_and_offset(run_cli, tmp_path, schema):
    code, _, err, data = validate(run_cli, tmp_path, schema, "d.csv", b"a,b\n1,ok\n2,caf\xe9\n")
    assert code == 2
    message = assert_one_line_error(err, data, 3)
    assert "not valid utf-8 at byte offset 14" in message
    assert "encoding" in err  # the hint says how to fix it


def test_undecodable_bytes_far_into_a_large_file(tmp_path):
    from mlci.errors import DataError
    from mlci.ml.tabular import read_table

    rows = b"".join(b"%d,text\n" % i for i in range(300_000))
    data = tmp_path / "d.csv"
    data.write_bytes(b"a,b\n" + rows + b"1,\xff\n")
    with pytest.raises(DataError) as caught:
        read_table(data)
    assert f"{data}:300002:" in str(caught.value)


def test_configured_encoding_reads_latin1(run_cli, tmp_path, schema):
    data = tmp_path / "d.csv"
    data.write_bytes("a,b\n1,café\n".encode("latin-1"))
    code, _, err = run_cli("validate", data, "--schema", schema, "--encoding", "latin-1", "--reports",
                           tmp_path / "r", cwd=tmp_path)
    assert code == 0, err


def test_utf8_bom_is_stripped_from_the_first_column_name(run_cli, tmp_path, schema):
    code, out, err, _ = validate(run_cli, tmp_path, schema, "d.csv", b"\xef\xbb\xbfa,b\n1,x\n")
    assert code == 0, out + err
    from mlci.ml.tabular import read_table

    assert list(read_table(tmp_path / "d.csv").columns) == ["a", "b"]


def test_nul_byte(run_cli, tmp_path, schema):
    code, _, err, data = validate(run_cli, tmp_path, schema, "d.csv", b"a,b\n1,x\n2,x\x00y\n")
    assert code == 2
    assert "NUL byte" in assert_one_line_error(err, data, 3)


def test_unclosed_quote(run_cli, tmp_path, schema):
    code, _, err, data = validate(run_cli, tmp_path, schema, "d.csv", b'a,b\n1,x\n2,"never closed\n3,z\n')
    assert code == 2
    assert "unclosed quote" in assert_one_line_error(err, data, 3)


def test_quoted_fields_with_quotes_and_newlines_are_fine(run_cli, tmp_path, schema):
    code, out, err, _ = validate(run_cli, tmp_path, schema, "d.csv",
                                 b'a,b\n1,"say ""hi"""\n2,"two\nlines"\n3,5" screen\n')
    assert code == 0, out + err


def test_duplicate_column_names(run_cli, tmp_path, schema):
    code, _, err, data = validate(run_cli, tmp_path, schema, "d.csv", b"a,b,a\n1,x,2\n")
    assert code == 2
    assert "duplicate column name 'a'" in assert_one_line_error(err, data, 1)


def test_inf_in_a_float_column_is_a_validation_failure(run_cli, tmp_path):
    schema = tmp_path / "schema.yaml"
    schema.write_text("columns:\n  x: {type: float}\n")
    code, out, err, _ = validate(run_cli, tmp_path, schema, "d.csv", b"x\n1.5\ninf\n2\n-inf\n1e309\n")
    assert code == 1, err
    report = json.loads((tmp_path / "reports" / "validate.json").read_text())
    finite = next(c for c in report["checks"] if c["name"] == "x: finite")
    assert finite["details"]["failing_rows"] == 3
    assert [e["row"] for e in finite["details"]["examples"]] == [2, 4, 5]
    assert "x: finite" in out


def test_inf_is_allowed_when_the_schema_says_so(run_cli, tmp_path):
    schema = tmp_path / "schema.yaml"
    schema.write_text("columns:\n  x: {type: float, finite: false}\n")
    code, _, err, _ = validate(run_cli, tmp_path, schema, "d.csv", b"x\n1.5\ninf\n")
    assert code == 0, err


def test_mixed_types_are_reported_with_row_numbers(run_cli, tmp_path, schema):
    rows = b"".join(b"%d,x\n" % i for i in range(1, 50)) + b"oops,x\n50,x\n7.5,x\n"
    code, out, err, _ = validate(run_cli, tmp_path, schema, "d.csv", b"a,b\n" + rows)
    assert code == 1, err
    report = json.loads((tmp_path / "reports" / "validate.json").read_text())
    type_check = next(c for c in report["checks"] if c["name"] == "a: type")
    assert type_check["details"]["failing_rows"] == 2
    assert type_check["details"]["examples"] == [{"row": 50, "value": "oops"}, {"row": 52, "value": "7.5"}]
    assert "50: 'oops'" in out


def test_dates_beyond_the_nanosecond_range_are_type_failures(run_cli, tmp_path):
    schema = tmp_path / "schema.yaml"
    schema.write_text("columns:\n  when: {type: datetime}\n")
    content = b"when\n2024-01-02\n3000-01-01\n1500-06-01T10:00:00+02:00\n2262-04-10T23:00:00\n"
    code, _, err, _ = validate(run_cli, tmp_path, schema, "d.csv", content)
    assert code == 1 and "Traceback" not in err, err
    report = json.loads((tmp_path / "reports" / "validate.json").read_text())
    type_check = next(c for c in report["checks"] if c["name"] == "when: type")
    assert type_check["details"]["examples"] == [{"row": 2, "value": "3000-01-01"},
                                                 {"row": 3, "value": "1500-06-01T10:00:00+02:00"}]


@pytest.mark.parametrize("content", [b"", b"a,b\n1,2\n", b"PAR1" + b"\x00" * 20],
                         ids=["zero-bytes", "csv-named-parquet", "garbage-with-magic"])
def test_not_a_parquet_file(run_cli, tmp_path, schema, content):
    code, _, err, data = validate(run_cli, tmp_path, schema, "d.parquet", content)
    assert code == 2
    assert "not a valid Parquet file" in assert_one_line_error(err, data)


def test_truncated_parquet(run_cli, tmp_path, schema):
    whole = tmp_path / "whole.parquet"
    pq.write_table(pa.table({"a": list(range(1000)), "b": ["x"] * 1000}), whole)
    content = whole.read_bytes()
    code, _, err, data = validate(run_cli, tmp_path, schema, "d.parquet", content[: len(content) // 2])
    assert code == 2
    assert "not a valid Parquet file" in assert_one_line_error(err, data)


def test_a_directory(run_cli, tmp_path, schema):
    folder = tmp_path / "data.csv"
    folder.mkdir()
    code, _, err = run_cli("validate", folder, "--schema", schema, cwd=tmp_path)
    assert code == 2
    assert "is a directory" in assert_one_line_error(err, folder)


def test_a_missing_file(run_cli, tmp_path, schema):
    code, _, err = run_cli("validate", tmp_path / "nope.csv", "--schema", schema, cwd=tmp_path)
    assert code == 2
    assert "no such file" in assert_one_line_error(err, tmp_path / "nope.csv")


def test_an_unsupported_extension(run_cli, tmp_path, schema):
    code, _, err, data = validate(run_cli, tmp_path, schema, "d.xlsx", b"PK\x03\x04")
    assert code == 2
    assert "unsupported file type '.xlsx'" in assert_one_line_error(err, data)


def test_no_traceback_in_a_real_process(mlci_subprocess, tmp_path, schema):
    data = tmp_path / "d.csv"
    data.write_bytes(b"a,b\n1,x\n2\n")
    result = mlci_subprocess("validate", data, "--schema", schema, cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "d.csv:3: too few fields" in result.stderr
