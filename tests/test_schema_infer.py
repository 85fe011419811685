"""`mlci schema infer`: types, nullability, ranges, categories, uniqueness, target; the written schema
validates the file it came from."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "credit-risk"


def test_infers_the_example_and_validates_it(run_cli, tmp_path):
    out_file = tmp_path / "schema.yaml"
    data = EXAMPLE / "data" / "train.csv"
    code, _, err = run_cli("schema", "infer", data, "-o", out_file, "--target", "default", cwd=tmp_path)
    assert code == 0, err
    schema = yaml.safe_load(out_file.read_text())
    columns = schema["columns"]
    assert schema["target"] == "default"
    assert columns["customer_id"] == {"type": "string", "nullable": False, "unique": True, "feature": False}
    assert columns["age"]["type"] == "integer" and columns["age"]["min"] >= 18
    assert columns["income"]["type"] == "float" and "nullable" not in columns["income"]  # has nulls
    assert columns["region"] == {"type": "category", "nullable": False, "values": ["east", "north", "south", "west"]}
    assert columns["has_guarantor"] == {"type": "boolean", "nullable": False}
    assert columns["application_date"]["type"] == "datetime"
    assert columns["loan_term"]["values"] == [12, 24, 36, 48, 60]
    code, out, err = run_cli("validate", data, "--schema", out_file, "--reports", tmp_path / "r", cwd=tmp_path)
    assert code == 0, out + err


def test_mixed_and_edge_columns(run_cli, tmp_path):
    data = tmp_path / "d.csv"
    rows = [f"{i},{i * 0.5},{'x' if i % 2 else ''},{'yes' if i % 3 else 'no'},2024-01-{i % 28 + 1:02d},"
            f"{'oops' if i == 2999 else i}" for i in range(3000)]
    data.write_text("n,f,sparse,answer,day,late_text\n" + "\n".join(rows) + "\n")
    out_file = tmp_path / "schema.yaml"
    code, _, err = run_cli("schema", "infer", data, "-o", out_file, cwd=tmp_path)
    assert code == 0, err
    columns = yaml.safe_load(out_file.read_text())["columns"]
    assert columns["n"]["type"] == "integer" and columns["n"]["unique"] is True
    assert columns["f"] == {"type": "float", "nullable": False, "min": 0.0, "max": 1499.5}
    assert columns["sparse"] == {"type": "category", "values": ["x"]}
    assert columns["answer"] == {"type": "boolean", "nullable": False}
    assert columns["day"]["min"] == "2024-01-01" and columns["day"]["max"] == "2024-01-28"
    assert columns["late_text"]["type"] == "string"  # one text value at the very end
    code, out, err = run_cli("validate", data, "--schema", out_file, "--reports", tmp_path / "r", cwd=tmp_path)
    assert code == 0, out + err


def test_inf_makes_the_column_not_finite_so_the_file_still_validates(run_cli, tmp_path):
    data = tmp_path / "d.csv"
    data.write_text("x\n1.5\ninf\n-2\n")
    out_file = tmp_path / "schema.yaml"
    assert run_cli("schema", "infer", data, "-o", out_file, cwd=tmp_path)[0] == 0
    column = yaml.safe_load(out_file.read_text())["columns"]["x"]
    assert column == {"type": "float", "nullable": False, "min": -2.0, "max": 1.5, "finite": False}
    assert run_cli("validate", data, "--schema", out_file, "--reports", tmp_path / "r", cwd=tmp_path)[0] == 0


def test_parquet_keeps_stored_types(run_cli, tmp_path):
    data = tmp_path / "d.parquet"
    pq.write_table(pa.table({"i": pa.array([3, 1, None], pa.int32()), "s": ["a", "b", "a"],
                             "t": pa.array([0, 86_400, 172_800], pa.timestamp("s"))}), data)
    code, out, err = run_cli("schema", "infer", data, cwd=tmp_path)
    assert code == 0, err
    columns = yaml.safe_load(out)["columns"]
    assert columns["i"] == {"type": "integer", "min": 1, "max": 3, "values": [1, 3], "unique": True}
    assert columns["s"] == {"type": "category", "nullable": False, "values": ["a", "b"]}
    assert columns["t"]["type"] == "datetime" and columns["t"]["max"] == "1970-01-03"


def test_unknown_target_and_existing_output(run_cli, tmp_path):
    data = tmp_path / "d.csv"
    data.write_text("a\n1\n")
    code, _, err = run_cli("schema", "infer", data, "--target", "label", cwd=tmp_path)
    assert code == 2 and "--target 'label' is not a column" in err
    (tmp_path / "schema.yaml").write_text("keep me")
    code, _, err = run_cli("schema", "infer", data, "-o", tmp_path / "schema.yaml", cwd=tmp_path)
    assert code == 2 and "--force" in err
    assert (tmp_path / "schema.yaml").read_text() == "keep me"


def test_hostile_input_is_exit_2(run_cli, tmp_path):
    data = tmp_path / "d.csv"
    data.write_bytes(b"a,b\n1,2\n3\n")
    code, _, err = run_cli("schema", "infer", data, cwd=tmp_path)
    assert code == 2 and "d.csv:3: too few fields" in err and "Traceback" not in err
