"""The one conversion of mlci's results to JSON values, used by every report file and every ``--json``.

JSON has bool, number, string, null, array and object; a consumer must get each as its own type.
NumPy scalars and arrays are converted explicitly (``numpy.bool_`` to bool, ``numpy.int64`` to int,
``numpy.ndarray`` to a list), tuples become lists, NaN and infinities become null (JSON has no NaN).
Anything else raises ``TypeError``: a value of an unknown type is a bug to fix at its source, never a
string made by ``str()`` in its place (which is how ``"passed": "False"`` once reached a report).
NumPy is recognised by its module name, so this module needs only the standard library.
"""

from __future__ import annotations

import json
import math
from typing import Any

_SCALARS = (str, bool, int, type(None))


def to_json_value(value: Any, path: str = "$") -> Any:
    """``value`` as plain JSON types; ``path`` names where an unknown type was found in the error."""
    if isinstance(value, _SCALARS):
        return _plain_scalar(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {_key(k, path): to_json_value(v, f"{path}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json_value(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if _is_numpy(value):
        if hasattr(value, "tolist") and getattr(value, "ndim", 0) > 0:
            return to_json_value(value.tolist(), path)
        return to_json_value(value.item(), path)
    raise TypeError(f"{path}: a {type(value).__module__}.{type(value).__qualname__} is not a JSON value")


def dumps(value: Any, *, indent: int | None = 2, sort_keys: bool = False) -> str:
    """JSON text of ``value`` (see ``to_json_value``); never NaN, never a stringified object."""
    return json.dumps(to_json_value(value), indent=indent, sort_keys=sort_keys, allow_nan=False)


def _plain_scalar(value: Any) -> Any:
    # subclasses (an IntEnum, a str Enum) become their plain base type
    for kind in (bool, int, str):
        if isinstance(value, kind):
            return kind(value)
    return None


def _key(key: Any, path: str) -> str:
    if isinstance(key, str):
        return str(key)
    if isinstance(key, bool) or key is None:  # as json.dumps spells them
        return json.dumps(key)
    if isinstance(key, (int, float)) or _is_numpy(key):
        plain = to_json_value(key, path)
        return json.dumps(plain) if not isinstance(plain, str) else plain
    raise TypeError(f"{path}: a {type(key).__qualname__} key is not a JSON object key")


def _is_numpy(value: Any) -> bool:
    return type(value).__module__ == "numpy"
