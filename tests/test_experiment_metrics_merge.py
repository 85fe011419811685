"""The guardrails' numbers over several replicas (mlci.ops.deliver.experiment.merged_server_numbers), read
from real server metrics expositions (mlci.serve.metrics): replicas that shared the traffic between them
must give exactly what one server that saw all of it gives."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlci.ops.deliver.experiment import histogram_quantile, merged_server_numbers
from mlci.serve.metrics import ServerMetrics

ROLES = ("champion", "challenger")
seconds = st.floats(min_value=0.0, max_value=3.0, allow_nan=False)
replica = st.fixed_dictionaries({
    "champion": st.lists(seconds, max_size=30), "challenger": st.lists(seconds, max_size=30),
    "errors": st.integers(0, 5), "skipped": st.integers(0, 50)})


def _exposition(replicas: list[dict]) -> str:
    """What one server's /metrics shows after scoring every replica's traffic."""
    metrics = ServerMetrics()
    for traffic in replicas:
        for role in ROLES:
            for value in traffic[role]:
                metrics.experiment_seconds.labels(role).observe(value)
                metrics.experiment_batches.labels(role).inc()
        if traffic["errors"]:
            metrics.experiment_errors.labels("challenger").inc(traffic["errors"])
        if traffic["skipped"]:
            metrics.shadow_skipped.inc(traffic["skipped"])
    return metrics.exposition().decode()


@settings(max_examples=60, deadline=None)
@given(st.lists(replica, min_size=1, max_size=4))
def test_replicas_merge_into_what_one_server_with_all_their_traffic_reports(replicas):
    merged = merged_server_numbers({f"pod-{i}": _exposition([r]) for i, r in enumerate(replicas)})
    whole = merged_server_numbers({"one": _exposition(replicas)})
    assert merged.batches == whole.batches and merged.errors == whole.errors
    assert merged.skipped_rows == whole.skipped_rows == sum(r["skipped"] for r in replicas)
    assert merged.buckets == whole.buckets
    assert merged.p99 == whole.p99
    for role in ROLES:
        assert merged.batches.get(role, 0.0) == sum(len(r[role]) for r in replicas)
    assert merged.sources == [f"pod-{i}" for i in range(len(replicas))]


def test_the_p99_comes_from_the_summed_buckets_and_not_from_the_replicas_p99s():
    # a busy replica with 98 fast batches, a quiet one with 2 slow ones: 2% of all batches are slow, so
    # the p99 over both lies among the slow ones; a mean of the two p99s would halve it
    fast, slow = {"champion": [0.001] * 98, "challenger": [0.001] * 98, "errors": 0, "skipped": 0}, \
        {"champion": [0.001] * 2, "challenger": [2.0] * 2, "errors": 3, "skipped": 0}
    merged = merged_server_numbers({"busy": _exposition([fast]), "quiet": _exposition([slow])})
    each = [merged_server_numbers({name: _exposition([r])}) for name, r in (("busy", fast), ("quiet", slow))]
    points = sorted(merged.buckets["challenger"].items())
    assert merged.p99["challenger"] == histogram_quantile(0.99, points)
    assert merged.p99["challenger"] > 1.0  # among the slow batches (the 2.5 s bucket)
    mean = sum(n.p99["challenger"] for n in each) / 2
    assert merged.p99["challenger"] != pytest.approx(mean)
    assert merged.errors == {"challenger": 3.0} and merged.batches["challenger"] == 100.0
