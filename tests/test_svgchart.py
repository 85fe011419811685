"""The report charts drawn directly as SVG: ticks, thinned lines, escaped texts, no CSS, bounded size."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from mlci.ml import metrics
from mlci.ops.model import evaluate
from mlci.ops.reporting import svgchart
from mlci.ops.reporting.svgchart import Chart, nice_ticks, texts

_FINITE = st.floats(-1e6, 1e6, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(low=_FINITE, relative=st.floats(1e-6, 1e3))
def test_ticks_are_evenly_spaced_round_numbers_inside_the_range(low, relative):
    span = relative * max(1.0, abs(low))
    high = low + span
    ticks = nice_ticks(low, high)
    assert 2 <= len(ticks) <= 11
    assert all(low - 1e-9 * span <= t <= high + 1e-9 * span for t in ticks)
    steps = np.diff(ticks)
    assert np.allclose(steps, steps[0], rtol=1e-4)
    mantissa = steps[0] / 10 ** np.floor(np.log10(steps[0]))
    assert min(abs(mantissa - m) for m in (1, 2, 5, 10)) < 1e-4


@settings(max_examples=100, deadline=None)
@given(xs=st.lists(st.floats(0, 400), min_size=1, max_size=300), seed=st.integers(0, 100))
def test_a_thinned_line_keeps_its_ends_and_moves_at_most_a_pixel_between_kept_points(xs, seed):
    ys = np.random.default_rng(seed).uniform(0, 300, len(xs))
    points = np.column_stack([np.sort(xs), ys])
    kept = svgchart._thinned(points)
    assert np.array_equal(kept[0], points[0]) and np.array_equal(kept[-1], points[-1])
    # every dropped point lies in the half-pixel cell of the point drawn before it
    cells = np.round(points * 2)
    dropped = ~np.isin(np.arange(len(points)), [i for i in range(len(points))
                                                if any(np.array_equal(points[i], k) for k in kept)])
    for i in np.flatnonzero(dropped):
        assert np.array_equal(cells[i], cells[i - 1])


_LABEL = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=20)


@settings(max_examples=50, deadline=None)
@given(label=_LABEL, categories=st.lists(_LABEL, min_size=1, max_size=6, unique=True))
def test_every_text_is_escaped_and_read_back_and_the_svg_has_no_css(label, categories):
    chart = Chart(x_label=label, y_label="rows", x_categories=categories)
    chart.category_bars([1.0] * len(categories), errors=([0.1] * len(categories), [0.2] * len(categories)),
                        inside=[f"n={i}" for i in range(len(categories))])
    chart.hline(0.5, label=label)
    svg = chart.svg()
    ET.fromstring(svg)  # well-formed XML
    assert {label, *categories, *(f"n={i}" for i in range(len(categories)))} <= texts(svg)
    assert not re.search(r"\sstyle=|<style", svg)


def test_a_roc_curve_over_a_million_rows_is_a_small_svg():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 1_000_000)
    p = np.clip(rng.random(len(y)) * 0.7 + 0.3 * y, 0, 1)
    preds = metrics.Predictions("binary", y, (p >= 0.5).astype(int), np.column_stack([1 - p, p]), ["0", "1"])
    for draw in (evaluate._roc_plot, evaluate._pr_plot):
        svg = draw(preds)
        ET.fromstring(svg)
        assert len(svg) < 100_000


def test_a_regression_scatter_draws_a_bounded_seeded_sample_and_says_so():
    rng = np.random.default_rng(1)
    y = rng.normal(size=20_000)
    preds = metrics.Predictions("regression", y, y + rng.normal(size=len(y)))
    svg = evaluate._predicted_vs_actual(preds)
    assert svg.count("<circle") == svgchart.SCATTER_POINTS
    assert f"actual ({svgchart.SCATTER_POINTS:,} of 20,000 rows)" in texts(svg)
    assert svg == evaluate._predicted_vs_actual(preds)
    small = metrics.Predictions("regression", y[:300], y[:300])
    assert evaluate._predicted_vs_actual(small).count("<circle") == 300
