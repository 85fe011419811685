"""pandas conversion: the dtypes a schema's columns become, and Arrow tables or batches as DataFrames.

Only commands that hand data to scikit-learn (train, evaluate, monitor) convert; validation and
inference stay in Arrow and never import pandas.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa

from mlci.core.dataschema import DataSchema

if TYPE_CHECKING:
    import pandas


def pandas_types(schema: DataSchema) -> dict[str, str]:
    """The pandas dtype each schema type becomes.

    integer: int64, or float64 when the column is nullable (missing values are NaN, as scikit-learn
    expects); float: float64; boolean: bool, or "boolean" when nullable; category and string: object;
    datetime: datetime64[ns].
    """
    out = {}
    for name, col in schema.columns.items():
        out[name] = {"integer": "float64" if col.nullable else "int64", "float": "float64",
                     "boolean": "boolean" if col.nullable else "bool", "category": "object",
                     "string": "object", "datetime": "datetime64[ns]"}[col.type]
    return out


def arrow_to_pandas(data: pa.Table | pa.RecordBatch, schema: DataSchema | None) -> pandas.DataFrame:
    """A table or batch as a DataFrame, with the dtypes ``pandas_types`` gives the schema's columns."""
    table = data if isinstance(data, pa.Table) else pa.Table.from_batches([data])
    frame = table.to_pandas()
    if schema is None:
        return frame
    types = pandas_types(schema)
    for name in frame.columns:
        wanted = types.get(name)
        if wanted is None:
            continue
        column = frame[name]
        if wanted in ("int64", "bool") and column.isna().any():
            wanted = "float64" if wanted == "int64" else "boolean"  # invalid data; never fail the cast
        if str(column.dtype) != wanted:
            frame[name] = column.astype(wanted)
    return frame
