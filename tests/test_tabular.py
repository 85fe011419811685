"""mlci.ops.tabular: typed reading, bounded batches with row numbers, file kinds and row estimates."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlci.core.dataschema import Column, DataSchema
from mlci.errors import DataError
from mlci.ops.tabular import file_kind, iter_batches, read_table, table_rows

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
