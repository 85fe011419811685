"""Which rows a model version trained on: a set of per-row content fingerprints.

A row's identity is its content in the columns the model learns from (its features and the target),
not its position in a file: a training file that grows, is re-ordered or is split with another seed or
fraction still yields the same fingerprint for the same row. Two rows with equal features and target
are the same example to the model, so a holdout row equal to any training row counts as seen (duplicates
are never "unseen" because another copy sat elsewhere in a file).

Each cell is written as canonical text (missing values as one token whatever their spelling, integral
numbers without a fractional part, so 3 and 3.0 agree; timestamps in ISO 8601), the cells of a row are
joined in sorted column order, and the row is hashed with BLAKE2b to 64 bits. A collision can only make
an unseen row look seen, which removes it from a comparison: the safe direction. The set is stored as a
sorted array of unique uint64 in an .npz read without pickle (8 bytes per distinct row, compressed).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import zipfile
from typing import Any

import numpy as np
import pandas as pd

from mlci.errors import DataError

SCHEME = "mlci-row-blake2b64-v1"
TRAIN_ROWS_FILE = "train_rows.npz"
_MISSING = "\x00"
_CELL_SEPARATOR = "\x1f"


def identity_columns(features: list[str], target: str) -> list[str]:
    """The columns that make a row's identity, in the one order every writer and reader uses."""
    return sorted(set(features) | {target})


def row_fingerprints(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """One uint64 per row of ``frame`` (in row order), from the canonical text of ``columns``."""
    texts = [_cell_texts(frame[column]) for column in columns]
    blake2b, separator = hashlib.blake2b, _CELL_SEPARATOR
    digests = b"".join([blake2b(separator.join(cells).encode("utf-8", "surrogatepass"), digest_size=8).digest()
                        for cells in zip(*texts)])
    return np.frombuffer(digests, dtype="<u8").astype(np.uint64)  # each digest read as a little-endian int


def fingerprint_set(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """The sorted unique fingerprints of ``frame``'s rows."""
    return np.unique(row_fingerprints(frame, columns))


def seen_mask(fingerprints: np.ndarray, trained: np.ndarray) -> np.ndarray:
    """True where a row's fingerprint is in the sorted set ``trained``."""
    if trained.size == 0:
        return np.zeros(fingerprints.shape, dtype=bool)
    position = np.searchsorted(trained, fingerprints)
    position[position == trained.size] = 0
    return trained[position] == fingerprints


def to_bytes(trained: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, fingerprints=np.asarray(trained, dtype=np.uint64))
    return buffer.getvalue()


def from_bytes(data: bytes, source: str) -> np.ndarray:
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
            trained = arrays["fingerprints"]
    except (KeyError, ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{source}: not a readable training-row file ({exc})") from None
    if trained.dtype != np.uint64 or trained.ndim != 1:
        raise DataError(f"{source}: expected a 1-D uint64 array of row fingerprints, got {trained.dtype} "
                        f"{trained.shape}")
    if trained.size > 1 and not bool(np.all(trained[1:] > trained[:-1])):
        trained = np.unique(trained)
    return trained


def _cell_texts(series: pd.Series) -> list[str]:
    """Each cell's canonical text (``_column_texts``), written once per distinct value where a column
    repeats its values (a column of 100k rows often holds a few hundred)."""
    distinct = _distinct_values(series)
    if distinct is None:
        return _column_texts(series)
    values, codes = distinct
    texts = _column_texts(values)
    texts.append(_MISSING)  # code -1: a missing value in an object column
    return np.array(texts, dtype=object)[codes].tolist()


# Object columns whose distinct values can be found by equality: their equal values have one text
# (3.0 and -0.0 equal 3.0 and 0.0 and have their texts) and a missing value is None or NaN. In other
# object columns equal values can have different texts (1, 1.0 and True).
_FACTORISED_TYPES = (frozenset({str, float, type(None)}), frozenset({bool, type(None)}))
_SAMPLE = 2048  # a numeric column whose first rows are mostly distinct is written value by value


def _distinct_values(series: pd.Series) -> tuple[pd.Series, np.ndarray] | None:
    """The distinct values of ``series`` (a Series of its dtype) and each row's position among them
    (-1 for a missing value in an object column), or None to write the column value by value."""
    if not isinstance(series.dtype, np.dtype):
        return None
    values = series.to_numpy()
    if series.dtype.kind in "iufbM":
        if len(values) > _SAMPLE and len(np.unique(values[:_SAMPLE])) > _SAMPLE // 2:
            return None  # sorting would cost more than it saves
        distinct, codes = np.unique(values, return_inverse=True)  # NaN and NaT have the missing text
        return pd.Series(distinct, dtype=series.dtype), codes.reshape(-1)
    if series.dtype.kind == "O":
        types = frozenset(map(type, values.tolist()))
        if any(types <= allowed for allowed in _FACTORISED_TYPES):
            codes, distinct = pd.factorize(values)  # None and NaN get code -1
            return pd.Series(distinct, dtype=object), codes
    return None


def _column_texts(series: pd.Series) -> list[str]:
    """Each cell's canonical text; NumPy columns by whole-column operations (the same texts as
    ``_cell_text`` gives their values one by one), other columns value by value."""
    kind = series.dtype.kind if isinstance(series.dtype, np.dtype) else "O"
    if kind in "iu":
        return list(map(str, series.tolist()))
    if kind == "f":
        return _float_texts(series.to_numpy(dtype=np.float64))
    if kind == "b":
        return np.where(series.to_numpy(), "true", "false").tolist()
    if kind == "M":
        return _datetime_texts(series)
    return list(map(_cell_text, series.tolist()))


def _float_texts(values: np.ndarray) -> list[str]:
    """``_float_text`` of each value: integral ones (below 2**63) as integers, NaN as missing, others by repr."""
    missing = np.isnan(values)
    integral = np.isfinite(values) & (values == np.trunc(values)) & (np.abs(values) < 2.0 ** 63)
    out = np.empty(len(values), dtype=object)
    out[integral] = list(map(str, values[integral].astype(np.int64).tolist()))
    other = ~integral & ~missing
    out[other] = list(map(repr, values[other].tolist()))
    out[missing] = _MISSING
    return out.tolist()


def _datetime_texts(series: pd.Series) -> list[str]:
    """``Timestamp.isoformat()`` of each value (NaT missing); whole seconds in one NumPy call."""
    values = series.to_numpy()
    seconds = values.astype("datetime64[s]")
    out = np.datetime_as_string(seconds, unit="s").astype(object)
    missing = np.isnat(values)
    out[missing] = _MISSING
    for index in np.flatnonzero(~missing & (values != seconds)):  # a fraction of a second
        out[index] = series.iloc[index].isoformat()
    return out.tolist()


def _cell_text(value: Any) -> str:
    kind = type(value)  # exact-type fast paths for the common cells; everything else below
    if kind is str:
        return "s:" + value
    if kind is float:
        return _float_text(value)
    if kind is int:
        return str(value)
    return _other_cell_text(value)


def _float_text(value: float) -> str:
    if value != value:
        return _MISSING
    if value.is_integer() and abs(value) < 2 ** 63:
        return str(int(value))
    return repr(value)


def _other_cell_text(value: Any) -> str:
    if value is None or value is pd.NaT or value is pd.NA:
        return _MISSING
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return _float_text(float(value))
    if isinstance(value, (pd.Timestamp, dt.datetime, dt.date)):
        return value.isoformat()
    return "s:" + str(value)
