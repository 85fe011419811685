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
