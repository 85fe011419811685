"""Validation's verdicts do not depend on how the file is cut: the reader parses a CSV in pieces (one batch
each, a size set by the reader), and every check, count, example row and profile must be what one piece
holding the whole file gives, for generated tables with every kind of failure."""

from __future__ import annotations

import csv
import io
import math
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlci.core.dataschema import Column, DataSchema, RowBounds
from mlci.ml.tabular import csv_reader
from mlci.ops.data.validate import check_file

SCHEMA = DataSchema(
    columns={
        "id": Column(type="integer", nullable=False, unique=True, min=1),
        "x": Column(type="float", min=-1.0, max=1.0),
        "kind": Column(type="category", values=["a", "b"]),
        "code": Column(type="string", pattern="[A-Z][0-9]"),
        "flag": Column(type="boolean", nullable=False),
        "when": Column(type="datetime", min="2024-01-01"),
    },
    rows=RowBounds(min=1), allow_duplicate_rows=False)

_CELLS = {
    "id": st.one_of(st.integers(-2, 40).map(str), st.sampled_from(["", "x"])),
    "x": st.one_of(st.floats(-2, 2, allow_nan=False).map(lambda v: f"{v:.3f}"),
                   st.sampled_from(["", "nan", "inf", "-inf", "NA", "1e9", "y"])),
    "kind": st.sampled_from(["a", "b", "c", "", "a b"]),
    "code": st.sampled_from(["A1", "B2", "a1", "", "AA", 'Z9"', "C3\nD4"]),
    "flag": st.sampled_from(["true", "false", "", "yes", "0", "maybe"]),
    "when": st.sampled_from(["2024-03-01", "2023-12-31", "", "2024-01-01T10:00:00", "soon"]),
}
_ROWS = st.lists(st.fixed_dictionaries(_CELLS), min_size=1, max_size=80)


def _write(path, rows: list[dict[str, str]]) -> None:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(_CELLS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path.write_text(text.getvalue(), newline="")


def _validated(path, piece_bytes: int) -> tuple[list[dict], int, dict]:
    pieces = csv_reader.pieces_of_lines
    with mock.patch.object(csv_reader, "pieces_of_lines", lambda file, size: pieces(file, piece_bytes)):
        result = check_file(path, SCHEMA, progress=False)
    return [check.to_dict() for check in result.checks], result.rows, result.profile


def _same_profile(cut: dict, whole: dict) -> bool:
    """Equal, but for a mean's last bits: its float sum is added up in another order."""
    if cut.keys() != whole.keys():
        return False
    for name, summary in cut.items():
        other = whole[name]
        if {k: v for k, v in summary.items() if k != "mean"} != {k: v for k, v in other.items() if k != "mean"}:
            return False
        if "mean" in summary and not math.isclose(summary["mean"], other["mean"], rel_tol=1e-12, abs_tol=1e-12):
            return False
    return True


@settings(max_examples=150, deadline=None)
@given(rows=_ROWS, piece_bytes=st.integers(1, 200))
def test_checks_counts_examples_and_profile_do_not_depend_on_the_pieces(tmp_path_factory, rows, piece_bytes):
    data = tmp_path_factory.mktemp("pieces") / "d.csv"
    _write(data, rows)
    cut_checks, cut_rows, cut_profile = _validated(data, piece_bytes)
    whole_checks, whole_rows, whole_profile = _validated(data, 1 << 30)
    assert cut_rows == whole_rows == len(rows)
    assert cut_checks == whole_checks
    assert _same_profile(cut_profile, whole_profile)


@pytest.mark.parametrize("piece_bytes", [7, 64, 1 << 30])
def test_the_pieces_find_each_failure_on_its_row(tmp_path, piece_bytes):
    """A fixed table: the property above could hold with every piece size wrong in the same way."""
    rows = [{"id": str(i), "x": "0.5", "kind": "a", "code": "A1", "flag": "true", "when": "2024-02-02"}
            for i in range(1, 41)]
    rows[6]["x"], rows[17]["kind"], rows[25]["code"], rows[33]["id"] = "3.5", "c", "C3\nD4", "5"
    rows[33]["x"] = "0.25"  # not a duplicate of row 5
    data = tmp_path / "d.csv"
    _write(data, rows)
    checks = {c["name"]: c for c in _validated(data, piece_bytes)[0]}
    examples = {name: [e["row"] for e in checks[name]["details"]["examples"]]
                for name in ("x: max", "kind: allowed values", "code: pattern", "id: unique")}
    assert examples == {"x: max": [7], "kind: allowed values": [18], "code: pattern": [26], "id: unique": [34]}
    assert sorted(name for name, c in checks.items() if not c["passed"]) == sorted(examples)
