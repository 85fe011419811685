"""The batch path of the server (issue 15): its column-at-a-time shortcuts answer exactly as the
record-by-record rules and the scikit-learn pipeline do."""

from __future__ import annotations

from datetime import datetime

from hypothesis import example, given, settings
from hypothesis import strategies as st

from mlci.core.dataschema import Column
from mlci.ml.record_rules import column_check, value_check
from mlci.ml.schema_rules import compile_column

DATETIME_RULES = [compile_column("when", Column(type="datetime")),
                  compile_column("when", Column(type="datetime", min="2020-01-01", max="2030-12-31T12:00:00"))]
MOMENTS = st.datetimes(min_value=datetime(1600, 1, 1), max_value=datetime(2300, 12, 31))
DATETIME_TEXTS = st.one_of(
    MOMENTS.map(datetime.isoformat), MOMENTS.map(lambda m: m.date().isoformat()),
    MOMENTS.map(lambda m: m.isoformat(sep=" ") + "+05:30"), MOMENTS.map(lambda m: m.isoformat() + "Z"),
    MOMENTS.map(lambda m: m.isoformat().replace("T", "t") + "z"), MOMENTS.map(lambda m: f" {m.isoformat()} "),
    st.sampled_from(["2024-02-30", "31/12/2024", "", "1677-09-21T23:59:59", "2262-04-11", "9999-12-31T23:59:59-01:00",
                     "0001-01-01T00:00:00+01:00", "2020-01-01", "2030-12-31T12:00:00", "2030-12-31T12:00:01"]))


@settings(max_examples=300, deadline=None)
@given(st.lists(DATETIME_TEXTS, min_size=1, max_size=6))
@example(["2025-01-01", "2025-01-01T00:00:00+01:00"])  # an aware text among naive ones
@example(["2025-01-01", "1600-01-01"])  # one text outside what a column holds
def test_a_datetime_column_passes_exactly_when_each_of_its_texts_does(texts):
    for rules in DATETIME_RULES:
        check = value_check(rules)
        assert column_check(rules)(texts) == all(check(text) is None for text in texts), (rules, texts)



NUMBER_RULES = [compile_column("x", Column(**options)) for options in (
    {"type": "float"}, {"type": "float", "finite": False}, {"type": "float", "min": 0, "max": 2},
    {"type": "float", "finite": False, "min": -1.5}, {"type": "float", "values": [0.5, 1, 2]},
    {"type": "integer"}, {"type": "integer", "min": 18, "max": 100}, {"type": "integer", "values": [12, 24, 36]})]
COLUMN_NUMBERS = st.one_of(
    st.integers(min_value=-5, max_value=120), st.integers(min_value=-(2 ** 70), max_value=2 ** 70),
    st.floats(), st.floats(min_value=-3, max_value=3), st.sampled_from([0.5, 1.0, 2.0, 12.0, 36.0, -0.0, 1e308]),
    st.booleans())


@settings(max_examples=400, deadline=None)
@given(st.lists(COLUMN_NUMBERS, min_size=1, max_size=8))
@example([1e308, 1e308])  # finite values whose sum is an infinity
@example([float("inf"), float("-inf")])  # infinities whose sum is NaN
@example([2 ** 63, 1])  # beyond 64 bits
def test_a_number_column_passes_exactly_when_each_of_its_values_does(values):
    """The column check finds a float column's NaN and infinities from its sum, and its bounds from one
    min and one max: the same verdict as checking value by value."""
    for rules in NUMBER_RULES:
        check = value_check(rules)
        assert column_check(rules)(values) == all(check(value) is None for value in values), (rules, values)

def test_metrics_keep_counting_through_their_cached_children():
    from prometheus_client.parser import text_string_to_metric_families

    from mlci.serve.metrics import ServerMetrics

    metrics = ServerMetrics()
    metrics.model_loaded(classifier=True, info={})
    for status in (200, 200, 422, 200):
        metrics.request_done("/predict", status, 0.002)
    metrics.record_predictions([1, 0, 1])
    metrics.record_predictions(["1", 1])
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(metrics.exposition().decode())
               for s in family.samples}
    assert samples[("mlci_http_requests_total", (("endpoint", "/predict"), ("status", "200")))] == 3
    assert samples[("mlci_http_requests_total", (("endpoint", "/predict"), ("status", "422")))] == 1
    assert samples[("mlci_http_request_duration_seconds_count", (("endpoint", "/predict"),))] == 4
    assert samples[("mlci_predictions_total", (("class", "1"),))] == 4
    assert samples[("mlci_predictions_total", (("class", "0"),))] == 1


# -- the prediction log ------------------------------------------------------------------------

JSON_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2 ** 70), max_value=2 ** 70),
    st.floats(allow_nan=False, allow_infinity=False), st.floats(min_value=-1e-3, max_value=1e-3),
    st.text(max_size=6), st.sampled_from(["a,b", '"', "\x7f", "é", "\u2028", "%s", "null", ""]))
NUMBERS = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2 ** 66), max_value=2 ** 66),
                    st.floats(allow_nan=False, allow_infinity=False), st.floats(min_value=-1e-4, max_value=1e-4))


@st.composite
def logged_batches(draw):
    from mlci.serve.predlog import LoggedBatch

    rows = draw(st.integers(min_value=0, max_value=5))
    column = lambda values: st.lists(values, min_size=rows, max_size=rows)  # noqa: E731
    names = draw(st.lists(st.text(max_size=4), max_size=5, unique=True))
    columns = {name: draw(column(draw(st.sampled_from([NUMBERS, JSON_SCALARS, st.text(max_size=5)]))))
               for name in names}
    predictions = draw(column(st.one_of(NUMBERS, st.text(max_size=3))))
    classes = draw(st.none() | st.lists(st.sampled_from(["0", "1", "yes", "é"]), min_size=1, max_size=3))
    probabilities = None if classes is None else draw(
        st.lists(st.lists(NUMBERS.filter(lambda v: not isinstance(v, bool) and v is not None),
                          min_size=len(classes), max_size=len(classes)), min_size=rows, max_size=rows))
    experiment = draw(st.sampled_from([("", ""), ("challenger", "exp-1")]))
    return LoggedBatch("2026-01-31T12:00:00.123Z", draw(st.text(max_size=5)), draw(st.integers(0, 99)), columns,
                       predictions, probabilities, classes, *experiment)


def _one_dumps_per_row(batch) -> str:
    """The documented line format, one json.dumps per row (the per-row path the formatter replaced)."""
    import json

    text = ""
    for row, prediction in enumerate(batch.predictions):
        line = {"ts": batch.ts, "request_id": batch.request_id, "row": row, "model_version": batch.model_version}
        if batch.experiment:
            line |= {"role": batch.role, "experiment": batch.experiment}
        line |= {"features": {name: values[row] for name, values in batch.columns.items()}, "prediction": prediction}
        if batch.probabilities is not None and batch.classes is not None:
            line["probabilities"] = dict(zip(batch.classes, batch.probabilities[row]))
        text += json.dumps(line, separators=(",", ":"), allow_nan=False) + "\n"
    return text


@settings(max_examples=400, deadline=None)
@given(logged_batches(), st.sampled_from([None, float("nan"), float("inf")]))
def test_a_batchs_log_lines_are_one_json_dumps_per_row(batch, non_finite):
    """Every number column of a batch is encoded in one call, then cut back into columns: the lines stay
    byte for byte the per-row json.dumps, and a NaN or infinity anywhere is refused as json.dumps does."""
    import pytest

    from mlci.serve.predlog import batch_lines

    if non_finite is not None and batch.rows and batch.columns:
        next(iter(batch.columns.values()))[-1] = non_finite
        with pytest.raises(ValueError):
            _one_dumps_per_row(batch)
        with pytest.raises(ValueError):
            batch_lines(batch)
        return
    assert batch_lines(batch) == _one_dumps_per_row(batch)
