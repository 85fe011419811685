"""The server's JSON reader and writers (mlci/serve/jsonio.py) against the json module they stand in for:
the same values (and types) or the same error when parsing, the same bytes when writing."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mlci.serve.jsonio import dumps, loads, number_texts

NUMBERS = st.one_of(st.integers(), st.integers(min_value=-(2 ** 70), max_value=2 ** 70),
                    st.floats(allow_nan=False, allow_infinity=False), st.booleans(), st.none(),
                    st.floats(min_value=-1e-3, max_value=1e-3), st.sampled_from([1e-05, -1.5e-07, 1e16, 1e22, -0.0]))
SCALARS = st.one_of(NUMBERS, st.text(), st.text(alphabet=st.characters(max_codepoint=0x7f)))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=6),
                                                       st.dictionaries(st.text(max_size=5), inner, max_size=6)),
                      max_leaves=40)


def exact(value):
    """A form of a parsed value in which 1 and 1.0, or True and 1, differ (and NaN equals NaN)."""
    return repr(value)


def _stdlib_loads(body: bytes):
    try:
        return ("value", exact(json.loads(body)))
    except (ValueError, RecursionError) as error:
        return ("error", type(error).__name__)


def _loads(body: bytes):
    try:
        return ("value", exact(loads(body)))
    except (ValueError, RecursionError) as error:
        return ("error", type(error).__name__)


@settings(max_examples=400, deadline=None)
@given(VALUES, st.booleans())
@example({"records": [{"a": 2 ** 64, "b": -(2 ** 63) - 1, "c": 10 ** 20 + 1}]}, False)
@example([float("nan"), float("inf"), -float("inf")], False)
@example(["\ud800", "\udfff x"], False)
@example({"a": 1, "b": [1e-400, 1e400]}, False)
def test_loads_reads_every_body_as_the_json_module_does(value, ascii_only):
    body = json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    assert _loads(body) == _stdlib_loads(body)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40) | st.text(alphabet='[]{}",:0123456789.eE+-truefalsnNIity \\u\n', max_size=30).map(
    str.encode))
@example(b'\xef\xbb\xbf{"records": []}')
@example('{"records": [1]}'.encode("utf-16"))
@example(b'{"a": 1, "a": 2}')
@example(b"[" * 5000 + b"]" * 5000)
@example(b'["a\x01"]')
@example(b"[1] x")
def test_loads_gives_the_json_modules_verdict_on_any_bytes(body):
    assert _loads(body) == _stdlib_loads(body)


@settings(max_examples=400, deadline=None)
@given(VALUES)
@example({"probabilities": [[0.99999, 1.2e-05], [0.5, 0.5]], "predictions": [1, 0], "classes": [0, 1]})
@example({"x": "é\u2028\x7f\x00\x1f\"\\/"})
@example("\x7f")  # ASCII, yet escaped by the json module only
@example([2 ** 64, -(2 ** 63) - 1])
def test_dumps_writes_the_json_modules_bytes(value):
    assert dumps(value) == json.dumps(value, separators=(",", ":"), allow_nan=False).encode()


@pytest.mark.parametrize("value", [[float("nan")], {"p": [1.0, float("inf")]}, [None, -float("inf")]])
def test_dumps_refuses_non_finite_numbers_like_the_json_module(value):
    with pytest.raises(ValueError):
        dumps(value)


@settings(max_examples=400, deadline=None)
@given(st.lists(NUMBERS, max_size=30))
@example([1e-05, -2.5e-06, 10.00001, 0.0001, 0.0, -0.0, None, True, 2 ** 64])
def test_number_texts_are_each_values_json_dumps(values):
    assert number_texts(values) == [json.dumps(value) for value in values]


@pytest.mark.parametrize("values", [[float("nan")], [1.0, None, float("inf")], [None, -math.inf, None]])
def test_number_texts_refuse_non_finite_numbers_like_the_json_module(values):
    with pytest.raises(ValueError):
        number_texts(values)
