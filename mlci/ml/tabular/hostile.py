"""Hostile-file detection for CSV: the slow, exact passes of Python's csv module that say what is wrong
and on which line (empty file, duplicate or unnamed columns, bytes that do not decode, ragged rows, an
unclosed quote, a value that does not convert), each as a one-line ``DataError``.

The CSV reader parses with pyarrow, fast; when pyarrow fails or something looks wrong, it asks this
module where the problem is. The Parquet reader uses ``check_header`` and ``shorten`` too.
"""

from __future__ import annotations

import csv as pycsv
from pathlib import Path
from typing import overload

import pyarrow as pa

from mlci.core.csvoptions import CsvOptions
from mlci.core.dataschema import DataSchema
from mlci.errors import DataError
from mlci.ml.tabular.lines import find_undecodable
from mlci.ml.tabular.values import NULL_VALUES, convert_text


def csv_header(path: Path, options: CsvOptions) -> list[str]:
    """The column names, read with Python's csv module (BOM stripped)."""
    with _open_text(path, options) as text:
        try:
            reader = pycsv.reader(text, delimiter=options.delimiter, strict=True)
            for row in reader:
                if any(cell.strip() for cell in row):
                    return row
        except UnicodeDecodeError:
            raise _decode_error(path, options) from None
        except pycsv.Error as exc:
            raise DataError(f"{path}:1: cannot read the header: {exc}") from None
    raise DataError(f"{path}: the file is empty", hint="a CSV file needs a header line and data rows")


def check_header(path: Path, header: list[str]) -> None:
    seen = set()
    for position, name in enumerate(header, start=1):
        if name in seen:
            raise DataError(f"{path}:1: duplicate column name '{name[:80]}' (column {position})",
                            hint="every column needs its own name")
        if not name.strip():
            raise DataError(f"{path}:1: column {position} has no name", hint="name every column in the header")
        seen.add(name)


def _open_text(path: Path, options: CsvOptions):
    encoding = "utf-8-sig" if is_utf8(options.encoding) else options.encoding
    return path.open("r", encoding=encoding, errors="strict", newline="")


def is_utf8(encoding: str) -> bool:
    """UTF-8 under any of its spellings, with or without a byte-order mark (both readers strip one)."""
    return encoding.lower().replace("-", "").replace("_", "") in ("utf8", "utf8sig")


def _decode_error(path: Path, options: CsvOptions) -> DataError:
    offset, line = find_undecodable(path, options.encoding)
    return DataError(f"{path}:{line}: bytes that are not valid {options.encoding} at byte offset {offset}",
                     hint="set data.csv.encoding in mlci.yaml (e.g. latin-1) or re-encode the file")


@overload
def diagnose(path: Path, options: CsvOptions, arrow_message: str) -> DataError: ...
@overload
def diagnose(path: Path, options: CsvOptions, arrow_message: None) -> DataError | None: ...


def diagnose(path: Path, options: CsvOptions, arrow_message: str | None) -> DataError | None:
    """Find what is wrong, and where, with an exact (slow) pass of Python's csv module.

    Without ``arrow_message`` (a suspicion, not a failure) it returns None when nothing is wrong.
    """
    try:
        with _open_text(path, options) as text:
            reader = pycsv.reader(text, delimiter=options.delimiter, strict=True)
            expected = None
            record_line = 1
            for row in reader:
                if not row:
                    record_line = reader.line_num + 1
                    continue
                if expected is None:
                    expected = len(row)
                elif len(row) != expected:
                    kind = "too many" if len(row) > expected else "too few"
                    return DataError(f"{path}:{record_line}: {kind} fields: expected {expected}, found {len(row)}",
                                     hint="check the delimiter (data.csv.delimiter) and quoting of this line")
                record_line = reader.line_num + 1
    except UnicodeDecodeError:
        return _decode_error(path, options)
    except pycsv.Error as exc:
        if any(sign in str(exc) for sign in ("unexpected end of data", "EOF", "field larger than field limit")):
            return DataError(f"{path}:{record_line}: unclosed quote: the quoted field starting on this line "
                             "never ends", hint="close the quote, or double quotes inside a quoted field (\"\")")
        return DataError(f"{path}:{record_line}: {exc}")
    if arrow_message is None:
        return None
    return DataError(f"{path}: cannot read the file as CSV: {arrow_message.splitlines()[0][:200]}")


def diagnose_conversion(path: Path, options: CsvOptions, header: list[str], name: str,
                         schema: DataSchema | None) -> DataError:
    col_type = schema.columns[name].type if schema is not None else "the inferred type"
    index = header.index(name)
    with _open_text(path, options) as text:
        reader = pycsv.reader(text, delimiter=options.delimiter, strict=True)
        next(reader)
        for row_number, row in enumerate(reader, start=1):
            raw = row[index] if index < len(row) else ""
            if raw in NULL_VALUES:
                continue
            _, failures = convert_text(pa.array([raw], pa.string()), col_type, decimal=options.decimal)
            if failures is not None:
                return DataError(f"{path}:{reader.line_num}: column '{name}', row {row_number}: "
                                 f"{shorten(raw)!r} is not a valid {col_type}",
                                 hint="fix the value, or change the column's type in the schema")
    return DataError(f"{path}: column '{name}' has values that are not a valid {col_type}")


def shorten(text: str, limit: int = 60) -> str:
    """``text`` cut to ``limit`` characters, the last one an ellipsis when it was cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
