"""One schema, one meaning: the same generated tables through the three evaluators of the compiled
schema rules — ``mlci validate`` (CSV read by the safe reader, Arrow checks), the model server's
request validation (record path and column path) and the monitor's out-of-schema share (NumPy values
and category counts) — must give the same verdict for every value, row by row.

A value is written the way each side receives it: CSV text for validate and monitor, a JSON value for
the server. NaN is a missing value: the CSV spells it ``NaN`` (read as null), JSON spells it ``null``.
The monitor judges present values only (missing ones are its separate ``missing:`` check).
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlci.core.dataschema import load_schema
from mlci.ml import tabular
from mlci.ml.drift import CategoricalSketch, NumericSketch, category_text, numeric_values
from mlci.ml.numpy_rules import outside_numbers, outside_text
from mlci.ml.schema_rules import compile_schema
from mlci.ops.data.validate import ColumnBatch, column_rules, validate_file
from mlci.ops.monitor.checks import out_of_schema
from mlci.serve.validation import RecordValidator

SCHEMA = """\
columns:
  code: {type: string, pattern: '[A-Z]{2}'}
  tag: {type: category, nullable: false, values: [a, b, '12'], pattern: '[a-z0-9]+'}
  digits: {type: string, pattern: '\\d+'}
  when: {type: datetime, min: '2024-01-01T00:00:00', max: '2024-12-31T00:00:00+02:00'}
  amount: {type: float, nullable: false, min: 0, max: 100}
  ratio: {type: float, finite: false, min: -1, max: 1}
  count: {type: integer, min: 0, max: 1000000000000}
  flag: {type: boolean, nullable: false, feature: false}
"""
NAN = float("nan")
HUGE = 10 ** 400

# Values on both sides of every rule. Each column lists values that CSV and JSON can both carry.
EDGES: dict[str, list] = {
    "code": ["AB", "xxAByy", "ABC", "ab", "A", "xAB", "ABx", "A B", "ZZ", None],
    "tag": ["a", "b", "12", "c", "A", "12.0", "a b", None],
    "digits": ["123", "\u0661\u0662\u0663", "12a", "7", None],
    "when": ["2024-01-01T00:00:00", "2023-12-31T23:59:59.999999", "2024-01-01T01:00:00+02:00",
             "2024-01-01T00:00:00-01:00", "2024-12-30T22:00:00Z", "2024-12-30T22:00:00.000001Z",
             "2024-12-31T00:00:00+02:00", "2024-12-31", "2024-06-01", "2024-06-01t10:00:00z",
             "2024-12-31T01:59:59+02:00", "2024-12-31T02:00:00+02:00", "not a date", "2024-13-45",
             "2300-01-01", "1600-01-01T00:00:00", None],
    "amount": [0.0, -0.0, 100.0, 100.0000001, -1e-9, 50.5, math.inf, -math.inf, NAN, HUGE, -HUGE, 7, True,
               "abc", None],
    "ratio": [math.inf, -math.inf, 1.5, -1.0, 1.0, 0.25, HUGE, NAN, "x", None],
    "count": [0, -1, 10 ** 12, 10 ** 12 + 1, 2 ** 63 - 1, 2 ** 63, -(2 ** 63) - 1, 5, True, "x", None],
    "flag": [True, False, None, "maybe"],
}
COLUMNS = list(EDGES)
NUMERIC = {"when", "amount", "ratio", "count"}  # the monitor's numeric columns (no allowed values)


@pytest.fixture(scope="module")
def schema_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("conformance") / "schema.yaml"
    path.write_text(SCHEMA)
    return path


def csv_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "NaN" if value != value else repr(value)
    return str(value)


def json_value(value):
    """The value as the server receives it: JSON, where a missing value (NaN too) is null."""
    if isinstance(value, float) and value != value:
        return None
    return json.loads(json.dumps(value))


def validate_verdicts(path: Path, schema) -> tuple[list[dict[str, set[str]]], dict[str, list]]:
    """Per row, per column: the names of the rules validate's checks say the value breaks; and the
    Arrow arrays the reader produced (what the monitor reads too)."""
    compiled = compile_schema(schema)
    rules = {name: column_rules(name, schema.columns[name], compiled[name]) for name in COLUMNS}
    verdicts: list[dict[str, set[str]]] = []
    arrays: dict[str, list] = {name: [] for name in COLUMNS}
    for item in tabular.iter_arrow_batches(path, schema=schema, batch_rows=7, lenient=True):
        batch_verdicts = [{name: set() for name in COLUMNS} for _ in range(item.batch.num_rows)]
        for name, failures in item.failures.items():
            for position in failures.rows:
                batch_verdicts[position][name].add("type")
        for name in COLUMNS:
            array = item.batch.column(name)
            arrays[name].append(array)
            column = ColumnBatch(array)
            for rule in rules[name]:
                for position in rule.find(column):
                    batch_verdicts[position][name].add(rule.name)
        verdicts.extend(batch_verdicts)
    return verdicts, arrays


def serve_verdicts(schema, rows: list[dict]) -> list[dict[str, bool]]:
    """Per row, per column: does the server refuse the value (422 field error)? Each record is sent
    alone, so the record path and the column path are both asked, and must agree."""
    features = [name for name in COLUMNS if schema.columns[name].feature]
    validator = RecordValidator(schema, features, accept_unknown_categories=False)
    verdicts = []
    for row in rows:
        record = {name: json_value(value) for name, value in row.items()}
        _, errors = validator.validate([record])
        assert (validator._valid_columns([record]) is None) == bool(errors), record
        refused = {error.field for error in errors}
        verdicts.append({name: name in refused for name in COLUMNS})
    records = [{name: json_value(value) for name, value in row.items()} for row in rows]
    whole_batch_ok = not validator.validate(records)[1]
    assert whole_batch_ok == all(not any(v.values()) for v in verdicts)
    return verdicts


def monitor_verdicts(schema, arrays: dict[str, list]) -> dict[str, list[bool]]:
    """Per column, per row: is the value outside the schema for the monitor (its NumPy and category
    evaluators); missing values are never outside."""
    compiled = compile_schema(schema)
    out = {}
    for name in COLUMNS:
        values = [v for array in arrays[name] for v in _monitor_values(name, array)]
        rules = compiled[name]
        if name in NUMERIC:
            flags = outside_numbers(rules, np.array([np.nan if v is None else v for v in values], dtype=float))
            out[name] = [bool(f) for f in flags]
        else:
            out[name] = [v is not None and outside_text(rules, category_text(v)) for v in values]
    return out


def _monitor_values(name: str, array) -> list:
    if name in NUMERIC:
        return [None if math.isnan(v) else float(v) for v in numeric_values(array)]
    return array.to_pylist()


def check_conformance(tmp_path: Path, schema_file: Path, rows: list[dict]) -> None:
    schema = load_schema(schema_file)
    data = tmp_path / "table.csv"
    with data.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        writer.writerows([[csv_text(row[name]) for name in COLUMNS] for row in rows])
    by_validate, arrays = validate_verdicts(data, schema)
    by_server = serve_verdicts(schema, rows)
    by_monitor = monitor_verdicts(schema, arrays)
    assert len(by_validate) == len(rows)
    for index, row in enumerate(rows):
        for name in COLUMNS:
            broken = by_validate[index][name]
            assert bool(broken) == by_server[index][name], \
                f"row {index} {name}={row[name]!r}: validate says {sorted(broken) or 'valid'}, " \
                f"server says {'refused' if by_server[index][name] else 'valid'}"
            if "type" in broken or arrays_missing(arrays, name, index):
                continue  # the monitor sees an unparseable or missing value as missing
            value_rules = broken - {"not null"}
            assert bool(value_rules) == by_monitor[name][index], \
                f"row {index} {name}={row[name]!r}: validate says {sorted(broken) or 'valid'}, " \
                f"monitor says {'outside' if by_monitor[name][index] else 'inside'}"
    checks = validate_file(data, schema, batch_rows=5, progress=False)
    for check in checks:
        if check.column in COLUMNS and check.rule not in ("type", "unique"):
            expected = sum(check.rule in verdict[check.column] for verdict in by_validate)
            assert check.value == expected, check.name
    for name in NUMERIC:
        sketch = NumericSketch()
        for array in arrays[name]:
            sketch.add(numeric_values(array))
        assert out_of_schema(sketch, schema.columns[name]) == sum(by_monitor[name])
    for name in set(COLUMNS) - NUMERIC:
        categories = CategoricalSketch()
        for array in arrays[name]:
            categories.add(array)
        assert out_of_schema(categories, compile_schema(schema)[name]) == sum(by_monitor[name])


def arrays_missing(arrays: dict[str, list], name: str, index: int) -> bool:
    values = [v for array in arrays[name] for v in array.to_pylist()]
    value = values[index]
    return value is None or (isinstance(value, float) and value != value)


def test_every_edge_value_gets_one_verdict_from_validate_the_server_and_the_monitor(tmp_path, schema_file):
    longest = max(len(values) for values in EDGES.values())
    rows = [{name: values[i % len(values)] for name, values in EDGES.items()} for i in range(longest)]
    check_conformance(tmp_path, schema_file, rows)


def _near_bound_datetimes() -> st.SearchStrategy[str]:
    """Datetimes around the bounds, naive or with an offset (whole quarter hours, as real zones)."""
    offsets = st.sampled_from(["", "Z", "+00:00", "+02:00", "-01:00", "+05:45", "-09:30", "+14:00"])
    days = st.sampled_from(["2023-12-31", "2024-01-01", "2024-06-15", "2024-12-30", "2024-12-31", "2025-01-01"])
    times = st.tuples(st.integers(0, 23), st.sampled_from([0, 15, 59]), st.sampled_from([0, 1, 59]))
    return st.builds(lambda d, t, o: f"{d}T{t[0]:02d}:{t[1]:02d}:{t[2]:02d}{o}", days, times, offsets)


def _text(alphabet: str) -> st.SearchStrategy[str]:
    null_words = set(tabular.NULL_VALUES)
    return st.text(alphabet, min_size=1, max_size=5).filter(lambda s: s.strip() == s and s not in null_words)


COLUMN_STRATEGIES = {
    "code": st.one_of(st.sampled_from(EDGES["code"]), _text("ABxy1")),
    "tag": st.one_of(st.sampled_from(EDGES["tag"]), _text("ab12cA")),
    "digits": st.one_of(st.sampled_from(EDGES["digits"]), _text("12a\u0661\u0663")),
    "when": st.one_of(st.sampled_from(EDGES["when"]), _near_bound_datetimes()),
    "amount": st.one_of(st.sampled_from(EDGES["amount"]),
                        st.floats(-10, 110, allow_nan=False), st.integers(-(2 ** 70), 2 ** 70)),
    "ratio": st.one_of(st.sampled_from(EDGES["ratio"]), st.floats(-2, 2, allow_nan=False)),
    "count": st.one_of(st.sampled_from(EDGES["count"]), st.integers(-(2 ** 64), 2 ** 64)),
    "flag": st.sampled_from(EDGES["flag"]),
}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.fixed_dictionaries(COLUMN_STRATEGIES), min_size=1, max_size=30))
def test_generated_tables_get_one_verdict_row_by_row(tmp_path, schema_file, rows):
    check_conformance(tmp_path, schema_file, rows)


ISSUE_SCHEMA = """\
columns:
  code: {type: string, nullable: false, pattern: '[A-Z]{2}'}
  when: {type: datetime, nullable: false, min: '2024-01-01T00:00:00'}
  x: {type: float, nullable: false}
"""


def test_the_issue_example_gets_the_same_verdict_from_mlci_validate_and_the_server(tmp_path):
    """``xxAByy`` for ``[A-Z]{2}`` passed ``mlci validate`` (searched) and got a 422 (full match); an
    offset datetime just past the bound was converted by one and cut by the other."""
    from mlci.cli.main import run

    (tmp_path / "schema.yaml").write_text(ISSUE_SCHEMA)
    schema = load_schema(tmp_path / "schema.yaml")
    rows = [("xxAByy", "2024-01-01T00:30:00+00:00", 1.0),      # partial match only: invalid
            ("AB", "2024-01-01T01:00:00+02:00", 1.0),          # 2023-12-31T23:00Z: below the minimum
            ("AB", "2024-01-01T01:00:00-02:00", 1.0)]          # 03:00Z: valid
    expected = [True, True, False]
    for (code, when, x), invalid in zip(rows, expected):
        data = tmp_path / "one.csv"
        data.write_text(f"code,when,x\n{code},{when},{x}\n")
        code_of_validate = run(["validate", str(data), "--schema", str(tmp_path / "schema.yaml"),
                                "--reports", str(tmp_path / "reports")])
        _, errors = RecordValidator(schema, ["code", "when", "x"], accept_unknown_categories=False).validate(
            [{"code": code, "when": when, "x": x}])
        assert code_of_validate == (1 if invalid else 0), (code, when)
        assert bool(errors) == invalid, (code, when, errors)
