"""JSON in and out of the server: parsed and written by orjson, with exactly the standard library's results.

On a 100-row batch the json module's parser and its float formatting cost more than scoring the batch
(``docs/serving.md``, where the time goes); orjson does both several times faster. It is a well-kept
library (Rust, wheels for every platform the image targets) whose answers differ from the json module's in
a few documented places, and each of those is handed back to the json module, so a request gets the same
verdict and the same values, and the log and the answer the same bytes, as with json alone:

- parsing: orjson refuses what is not strict JSON that the json module reads (``NaN``, ``Infinity``, lone
  surrogates, a byte-order mark, UTF-16/32 bodies): on any orjson error the json module parses the body and
  its answer, or its error, stands. orjson reads an integer beyond 64 bits as a float where the json
  module keeps it exact, so a body with a run of 19 digits or more is parsed by the json module;
- writing: orjson writes ``0.00001`` and ``1.5e-7`` where ``repr`` writes ``1e-05`` and ``1.5e-07`` (only
  for 0 < |x| < 1e-4), writes non-ASCII text and DEL (``\x7f``, which the json module escapes as
  ``\u007f``) unescaped, ``null`` for NaN and infinities (the json module refuses them with
  ``allow_nan=False``) and refuses integers beyond 64 bits: those texts are written by the json module.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

_DIGITS_AS_ZERO = bytes(0x30 if 0x30 <= byte <= 0x39 else 0x20 for byte in range(256))
_LONG_DIGIT_RUN = b"0" * 19  # 2**63 has 19 digits: any shorter integer is exact in orjson too
# How orjson writes 0 < |x| < 1e-4 (positional, or an exponent without repr's leading zero); every other
# finite float it writes as repr does (tests/test_serve_jsonio.py).
_SMALL_FLOAT = ("0.0000", "e-")
_SMALL_FLOAT_BYTES = tuple(marker.encode() for marker in _SMALL_FLOAT)
_STDLIB_ENCODE = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


def loads(body: bytes) -> Any:
    """``json.loads(body)``: the same value, or the same error (ValueError or RecursionError)."""
    if body.translate(_DIGITS_AS_ZERO).find(_LONG_DIGIT_RUN) < 0:
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass
    return json.loads(body)


def dumps(data: Any) -> bytes:
    """``json.dumps(data, separators=(",", ":"), allow_nan=False)`` as bytes, byte for byte."""
    try:
        text = orjson.dumps(data)
    except orjson.JSONEncodeError:
        text = None
    if text is None or not text.isascii() or b"\x7f" in text or b"null" in text \
            or any(m in text for m in _SMALL_FLOAT_BYTES):
        return _STDLIB_ENCODE(data).encode("ascii")
    return text


def number_texts(values: list[Any]) -> list[str]:
    """Each value's JSON text as ``json.dumps`` writes it; ``values`` holds only ints, floats, bools
    and None (whose texts never contain a comma). Raises ValueError for NaN or an infinity."""
    try:
        text = orjson.dumps(values).decode("ascii")
    except orjson.JSONEncodeError:  # an integer beyond 64 bits
        return [_STDLIB_ENCODE(value) for value in values]
    texts = text[1:-1].split(",") if values else []
    if "null" in text and texts.count("null") != values.count(None):
        raise ValueError("Out of range float values are not JSON compliant")
    if any(marker in text for marker in _SMALL_FLOAT):
        texts = [repr(float(t)) if "e-" in t or t.startswith(("0.0000", "-0.0000")) else t for t in texts]
    return texts
