"""mlci.ml.tabular: typed reading, bounded batches with row numbers, file kinds and row estimates."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlci.core.dataschema import Column, DataSchema
from mlci.errors import DataError
from mlci.ml.tabular import file_kind, iter_arrow_batches, iter_batches, read_table, table_rows

SCHEMA = DataSchema(columns={"n": Column(type="integer", nullable=False), "m": Column(type="integer"),
                             "b": Column(type="boolean", nullable=False), "c": Column(type="category"),
                             "d": Column(type="datetime")})


def test_read_table_types_columns_from_the_schema(tmp_path):
    data = tmp_path / "d.csv"
    data.write_text("n,m,b,c,d\n1,,true,x,2024-01-02\n2,5,False,,2024-01-03T10:00:00\n")
    frame = read_table(data, schema=SCHEMA)
    assert [str(t) for t in frame.dtypes] == ["int64", "float64", "bool", "object", "datetime64[ns]"]
    assert frame["m"].isna().tolist() == [True, False]
    assert frame["c"].tolist()[0] == "x" and frame["c"].isna().tolist() == [False, True]


def test_read_table_raises_on_an_unparseable_value_with_its_line(tmp_path):
    data = tmp_path / "d.csv"
    data.write_text("n,m,b,c,d\n1,2,true,x,2024-01-02\n2,3.5,true,x,2024-01-02\n")
    with pytest.raises(DataError) as caught:
        read_table(data, schema=SCHEMA)
    assert f"{data}:3: column 'm', row 2: '3.5' is not a valid integer" == str(caught.value)


def test_iter_batches_streams_with_row_numbers(tmp_path):
    data = tmp_path / "d.csv"
    data.write_text("n\n" + "".join(f"{i}\n" for i in range(1, 50_001)))
    seen = []
    for first_row, frame in iter_batches(data, batch_rows=1000):
        assert frame["n"].iloc[0] == first_row  # the value equals its 1-based row number
        seen.append(len(frame))
    assert sum(seen) == 50_000 and len(seen) >= 4 and max(seen) < 50_000


def test_parquet_batches_and_exact_row_count(tmp_path):
    data = tmp_path / "d.parquet"
    pq.write_table(pa.table({"n": list(range(1, 2501))}), data, row_group_size=1000)
    batches = list(iter_batches(data, batch_rows=1000))
    assert [first for first, _ in batches] == [1, 1001, 2001]
    assert table_rows(data) == 2500


def test_table_rows_estimates_a_csv(tmp_path):
    data = tmp_path / "d.csv"
    data.write_text("n\n" + "".join(f"{i:06d}\n" for i in range(100_000)))
    assert abs(table_rows(data) - 100_000) < 1000


def test_file_kind(tmp_path):
    assert file_kind(_touch(tmp_path / "a.CSV")) == "csv"
    assert file_kind(_touch(tmp_path / "a.pq")) == "parquet"
    for path, message in ((tmp_path, "is a directory"), (tmp_path / "none.csv", "no such file"),
                          (_touch(tmp_path / "a.json"), "unsupported file type '.json'")):
        with pytest.raises(DataError, match=message):
            file_kind(path)


def _touch(path):
    path.write_text("a\n1\n")
    return path


def test_numpy_values_follow_offsets_types_and_chunks():
    from mlci.ml.tabular import numpy_values, true_positions

    assert numpy_values(pa.array([1, 2, 3, 4]).slice(1, 2)).tolist() == [2, 3]
    assert numpy_values(pa.array([0.5, -1.0])).dtype.kind == "f"
    assert numpy_values(pa.array([True, False, True, True, False, True, False, False, True]).slice(7)).tolist() \
        == [False, True]
    moment = pa.array([datetime(2024, 1, 2)], pa.timestamp("ns"))
    assert numpy_values(moment).tolist() == [1704153600 * 10**9]
    assert numpy_values(pa.chunked_array([[1, 2], [3]])).tolist() == [1, 2, 3]
    mask = pa.array([False, True, None, True, False, True]).slice(1)
    assert true_positions(mask).tolist() == [0, 2, 4]


@pytest.mark.parametrize("values", [["a", "ü", ""], [True, False], [1, -2], [1, 2.5], [2.0],
                                    [datetime(2024, 5, 6, 7, 8, 9)]])
def test_python_to_arrow_types_values_as_pa_array_does(values):
    from mlci.ml.tabular import python_to_arrow

    converted, expected = python_to_arrow(values), pa.array(values)
    assert converted.type == expected.type and converted.equals(expected)


def test_python_to_arrow_refuses_mixed_values_as_pa_array_does():
    from mlci.ml.tabular import python_to_arrow

    with pytest.raises((pa.ArrowInvalid, pa.ArrowTypeError)):
        python_to_arrow([1, "a"])


def test_numpy_to_arrow_is_zero_copy():
    import numpy as np

    from mlci.ml.tabular import numpy_to_arrow

    values = np.arange(5, dtype=np.int64)[1:]
    converted = numpy_to_arrow(values)
    assert converted.type == pa.int64() and converted.to_pylist() == [1, 2, 3, 4]


def test_pieces_end_after_line_breaks_and_cover_the_file(tmp_path):
    from mlci.ml.tabular.lines import pieces_of_lines

    data = tmp_path / "d.csv"
    content = b"h\r\n" + b"".join(b"%d\r\n" % i for i in range(50)) + b"x" * 40 + b"\nlast-without-newline"
    data.write_bytes(content)
    pieces = [bytes(p) for p in pieces_of_lines(data, 16)]
    assert b"".join(pieces) == content
    assert all(p.endswith((b"\r", b"\n")) for p in pieces[:-1]) and pieces[-1] == b"last-without-newline"
    assert b"x" * 40 + b"\n" in pieces  # a line longer than a piece stays whole


@settings(max_examples=200, deadline=None)
@given(lines=st.lists(st.tuples(st.text(alphabet="ab,\"x", max_size=30), st.sampled_from([b"\n", b"\r\n", b"\r"])),
                      max_size=30),
       tail=st.text(alphabet="ab", max_size=5), size=st.integers(1, 40))
def test_pieces_are_whole_lines_that_add_up_to_the_file_for_any_piece_size(tmp_path_factory, lines, tail, size):
    from mlci.ml.tabular.lines import pieces_of_lines

    data = tmp_path_factory.mktemp("pieces") / "d.csv"
    content = b"".join(text.encode() + end for text, end in lines) + tail.encode()
    data.write_bytes(content)
    pieces = [bytes(p) for p in pieces_of_lines(data, size)]
    assert b"".join(pieces) == content and all(pieces)
    assert all(p.endswith((b"\r", b"\n")) for p in pieces[:-1])
    ends = {sum(len(p) for p in pieces[:i + 1]) for i in range(len(pieces))}
    line_ends = {i + 1 for i, byte in enumerate(content) if byte in b"\r\n"} | {len(content)}
    assert ends <= line_ends  # a piece never ends inside a line


@pytest.mark.parametrize("ahead", [1, 2, 3])
def test_a_file_read_in_many_pieces_keeps_every_row_in_order(tmp_path, monkeypatch, ahead):
    from mlci.ml.tabular import csv_reader

    monkeypatch.setattr(csv_reader, "_PIECES_AHEAD", ahead)  # pieces parsed while the caller works
    data = tmp_path / "d.csv"
    data.write_text("n,t\n" + "".join(f"{i},row {i}\n" for i in range(1, 100_001)))
    schema = DataSchema(columns={"n": Column(type="integer", nullable=False), "t": Column(type="string")})
    batches = list(iter_arrow_batches(data, schema=schema, batch_rows=1000))
    assert len(batches) > 8  # several pieces of several blocks
    numbers = pa.chunked_array([b.batch.column("n") for b in batches]).to_pylist()
    assert numbers == list(range(1, 100_001))
    assert all(b.batch.column("n")[0].as_py() == b.first_row for b in batches)


def test_a_nul_byte_in_a_late_piece_names_its_line(tmp_path):
    data = tmp_path / "d.csv"
    data.write_bytes(b"n\n" + b"".join(b"%d\n" % i for i in range(1, 200_001)) + b"1\x002\n")
    with pytest.raises(DataError) as caught:
        list(iter_arrow_batches(data, batch_rows=1000))
    assert str(caught.value).startswith(f"{data}:200002: NUL byte at byte offset")


def test_quoted_line_breaks_across_pieces_are_read_whole(tmp_path):
    data = tmp_path / "d.csv"
    data.write_text("n,note\n" + "".join(f'{i},"line one\nline two {i}"\n' for i in range(1, 30_001)))
    schema = DataSchema(columns={"n": Column(type="integer"), "note": Column(type="string")})
    batches = list(iter_arrow_batches(data, schema=schema, batch_rows=1000))
    notes = pa.chunked_array([b.batch.column("note") for b in batches]).to_pylist()
    assert notes == [f"line one\nline two {i}" for i in range(1, 30_001)]
    assert all(b.batch.column("n")[0].as_py() == b.first_row for b in batches)


def test_without_a_schema_later_pieces_keep_the_first_pieces_types(tmp_path):
    data = tmp_path / "d.csv"
    data.write_text("m,k\n" + "".join(f"{i},{i}\n" for i in range(100_000)) + "2.5,7\n")
    batches = list(iter_arrow_batches(data, batch_rows=1000))
    assert len(batches) > 4
    assert batches[-1].batch.schema.field("m").type == pa.string()  # a late float: the column is read as text
    assert batches[-1].batch.column("m")[-1].as_py() == "2.5"
    assert {b.batch.schema.field("k").type for b in batches} == {pa.int64()}
    assert sum(b.batch.num_rows for b in batches) == 100_001


@pytest.mark.parametrize("newline", ["\r", "\r\n"], ids=["cr", "crlf"])
def test_pieces_cut_at_any_line_ending(tmp_path, newline):
    data = tmp_path / "d.csv"
    data.write_bytes(("n" + newline + "".join(f"{i}{newline}" for i in range(1, 100_001))).encode())
    batches = list(iter_arrow_batches(data, schema=DataSchema(columns={"n": Column(type="integer")}),
                                      batch_rows=999))
    assert len(batches) > 8
    assert pa.chunked_array([b.batch.column("n") for b in batches]).to_pylist() == list(range(1, 100_001))


_QUOTED_TEXT = st.text(alphabet='ab \n,"', max_size=12)


@settings(max_examples=300, deadline=None)
@given(rows=st.lists(st.tuples(st.integers(0, 99), _QUOTED_TEXT, _QUOTED_TEXT), min_size=1, max_size=60),
       piece=st.integers(8, 160), read=st.sampled_from([None, ["n", "t"], ["n", "u"], ["t"]]))
def test_quoted_line_breaks_at_any_piece_end_read_as_a_csv_parser_reads_them(tmp_path_factory, rows, piece, read):
    """Whichever column holds a quoted line break where a piece ends, read or not, every value read is
    the one Python's csv module reads (a piece cut inside a quote used to end a value there)."""
    import csv
    import io
    from unittest import mock

    from mlci.ml.tabular import csv_reader

    data = tmp_path_factory.mktemp("quoted") / "d.csv"
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows([["n", "t", "u"], *rows])
    data.write_text(text.getvalue(), newline="")
    schema = DataSchema(columns={"n": Column(type="integer"), "t": Column(type="string"), "u": Column(type="string")})
    pieces = csv_reader.pieces_of_lines
    with mock.patch.object(csv_reader, "pieces_of_lines", lambda path, size: pieces(path, piece)):
        batches = list(iter_arrow_batches(data, schema=schema, columns=read))
    names = read or ["n", "t", "u"]
    got = pa.Table.from_batches([b.batch for b in batches]).select(names).to_pylist()
    expected = [dict(zip(["n", "t", "u"], (n, t or None, u or None))) for n, t, u in rows]
    assert got == [{name: row[name] for name in names} for row in expected]
    assert [b.first_row for b in batches] == list(np.cumsum([0] + [b.batch.num_rows for b in batches[:-1]]) + 1)
