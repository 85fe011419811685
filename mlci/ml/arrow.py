"""Arrow buffer helpers: values move between Arrow and NumPy through their buffers, without pandas.

pyarrow imports pandas (about 0.3 s and 50 MiB) the first time it converts Python or NumPy values to
Arrow, Arrow to NumPy, or a nanosecond timestamp to Python. Validation needs none of pandas, so it moves
values through buffers with the helpers below instead.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pyarrow as pa


def numpy_values(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A fixed-width array's values as NumPy (a zero-copy view for one chunk); slots of nulls are undefined.

    Timestamps become their int64 count of units.
    """
    if isinstance(array, pa.ChunkedArray):
        chunks = [numpy_values(chunk) for chunk in array.chunks]
        if len(chunks) == 1:
            return chunks[0]
        return np.concatenate(chunks) if chunks else np.empty(0, dtype=_numpy_dtype(array.type))
    if pa.types.is_boolean(array.type):
        bits = np.frombuffer(array.buffers()[1], dtype=np.uint8)
        return np.unpackbits(bits, bitorder="little")[array.offset:array.offset + len(array)].astype(bool)
    dtype = _numpy_dtype(array.type)
    return np.frombuffer(array.buffers()[1], dtype=dtype, count=len(array), offset=array.offset * dtype.itemsize)


def _numpy_dtype(arrow_type: pa.DataType) -> np.dtype:
    if pa.types.is_boolean(arrow_type):
        return np.dtype(bool)
    kind = "f" if pa.types.is_floating(arrow_type) else "u" if pa.types.is_unsigned_integer(arrow_type) else "i"
    return np.dtype(f"{kind}{arrow_type.bit_width // 8}")


def true_positions(mask: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """0-based positions where a boolean array is true (a null is not true)."""
    import pyarrow.compute as pc  # here, not at the top: a CSV's parse starts before this 30 ms import

    return numpy_values(pc.indices_nonzero(mask)).astype(np.int64)


def numpy_to_arrow(values: np.ndarray) -> pa.Array:
    """A 1-D numeric NumPy array as Arrow, without copying."""
    values = np.ascontiguousarray(values)
    return pa.Array.from_buffers(pa.from_numpy_dtype(values.dtype), len(values), [None, pa.py_buffer(values)])


def python_to_arrow(values: list) -> pa.Array:
    """Non-null Python values as Arrow, typed as ``pa.array`` would type them."""
    if not values:
        return pa.array(values)
    if all(isinstance(v, str) for v in values):
        data = [v.encode() for v in values]
        offsets = np.zeros(len(data) + 1, dtype=np.int32)
        np.cumsum([len(d) for d in data], out=offsets[1:])
        return pa.Array.from_buffers(pa.string(), len(data),
                                     [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(data))])
    if all(isinstance(v, bool) for v in values):
        bits = np.packbits(np.array(values, dtype=bool), bitorder="little")
        return pa.Array.from_buffers(pa.bool_(), len(values), [None, pa.py_buffer(bits)])
    if all(isinstance(v, datetime) and v.tzinfo is None for v in values):
        microseconds = np.array(values, dtype="datetime64[us]").view(np.int64)
        return pa.Array.from_buffers(pa.timestamp("us"), len(values), [None, pa.py_buffer(microseconds)])
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values) \
            and all(-(1 << 63) <= v < (1 << 63) for v in values):
        return numpy_to_arrow(np.array(values, dtype=np.int64))
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return numpy_to_arrow(np.array(values, dtype=np.float64))
    return pa.array(values)  # mixed or unusual values: let pyarrow decide (and fail) as it always does
