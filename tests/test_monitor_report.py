"""The monitor HTML report's drift table and panels: no column that repeats another, the effect size
beside a p-value, and a failed prediction-drift check marked on its panel."""

from __future__ import annotations

import re

import pytest

from mlci.core.reports import Check, Report
from mlci.ops.reporting.render import render

PLOT = {"title": "x", "numeric": True, "labels": ["0", "1"], "reference": [0.5, 0.5], "current": [0.2, 0.8],
        "top": 0.8}


def _page(checks: list[Check], plots: dict) -> str:
    report = Report(kind="monitor", checks=checks, details={"model_version": 1, "drifted_features": [],
                                                            "drifted_share": 0.0, "retrain": False})
    return render("reports/monitor.html.j2", title="Monitoring · t", ok=report.ok, report=report,
                  checks={c.name: c for c in checks}, plots=plots, details=report.details, generated="now")


def _drift(name: str, score: float, decided_on: float, passed: bool = True) -> Check:
    return Check(f"drift: {name}", passed, "m", severity="warn", value=decided_on, threshold=0.05, group="drift",
                 details={"kind": "numeric", "method": "ks", "score": score, "decided_on": decided_on,
                          "statistic": 0.125, "effect_size": 0.125, "p_value": score})


@pytest.mark.parametrize("adjusted", [False, True])
def test_adjusted_column_only_when_a_correction_changed_the_p_values(adjusted):
    checks = [_drift("a", 0.2, 0.4 if adjusted else 0.2), _drift("b", 0.01, 0.02 if adjusted else 0.01)]
    page = _page(checks, {})
    assert ("<th>adjusted</th>" in page) is adjusted
    assert "<th>effect size (KS D, Cramér's V)</th>" in page
    row = re.search(r"<tr><td>a</td>(.*?)</tr>", page, re.S).group(1)
    assert len(re.findall(r"<td", row)) == (9 if adjusted else 8) and "0.125" in row


def test_failed_prediction_drift_is_marked_on_its_panel():
    failed = Check("prediction drift", False, "drift", severity="warn", group="prediction")
    page = _page([_drift("a", 0.5, 0.5), failed], {"a": PLOT, "prediction": PLOT})
    captions = dict(re.findall(r"<figcaption>(\w+)(.*?)</figcaption>", page, re.S))
    assert "drift" in captions["prediction"] and "drift" not in captions["a"]


def test_axis_text_is_readable():
    page = _page([_drift("a", 0.5, 0.5)], {"a": PLOT})
    sizes = [int(s) for s in re.findall(r'font-size="(\d+)"', page)]
    assert sizes and min(sizes) >= 11


@pytest.mark.parametrize("low, high", [(0, 3), (1, 12), (18, 40), (-5, 5)])
def test_integer_columns_get_one_bin_per_value_not_a_comb(low, high):
    import numpy as np

    from mlci.ml import drift as stats
    from mlci.ops.monitor.report import distribution

    rng = np.random.default_rng(low + high)
    sketches = []
    for size in (500, 300):
        sketch = stats.new_sketch("numeric", size)
        sketch.add(np.concatenate([np.arange(low, high + 1), rng.integers(low, high + 1, size)]).astype(float))
        sketches.append(sketch)
    plot = distribution("n", *sketches)
    assert len(plot["reference"]) == high - low + 1
    assert all(share > 0 for share in plot["reference"]) and all(share > 0 for share in plot["current"])
    assert sum(plot["reference"]) == pytest.approx(1.0)


def test_continuous_columns_keep_equal_width_bins():
    import numpy as np

    from mlci.ml import drift as stats
    from mlci.ops.monitor.report import HISTOGRAM_BINS, distribution

    sketches = []
    for seed in (1, 2):
        sketch = stats.new_sketch("numeric", 400)
        sketch.add(np.random.default_rng(seed).normal(size=400))
        sketches.append(sketch)
    assert len(distribution("x", *sketches)["reference"]) == HISTOGRAM_BINS
