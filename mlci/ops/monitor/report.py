"""The HTML report of ``mlci monitor``: the checks and details rendered by ``reports/monitor.html.j2``,
with reference-vs-current distributions per feature and for the model's output (histograms over
equal-width bins for numbers, the most frequent categories otherwise) for the template's SVG plots.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from mlci.core import drift as rules
from mlci.core.config import Project
from mlci.core.reports import Report
from mlci.ml import drift as stats
from mlci.ops.monitor.checks import PREDICTION
from mlci.ops.monitor.profile import Profile

HISTOGRAM_BINS = 30
TOP_CATEGORIES = 12


def render_html(project: Project, report: Report, ref: Profile | None, cur: Profile | None,
                kinds: dict[str, rules.Kind]) -> str:
    from mlci.ops.reporting.render import render

    plots = {}
    if ref is not None and cur is not None:
        plots = {name: distribution(name, ref.columns[name], cur.columns[name]) for name in kinds}
        if ref.prediction is not None and cur.prediction is not None:
            plots[PREDICTION] = distribution("model output", ref.prediction, cur.prediction)
    checks = {c.name: c for c in report.checks}
    return render("reports/monitor.html.j2", title=f"Monitoring · {project.config.project}", ok=report.ok,
                  report=report, checks=checks, plots=plots, details=report.details,
                  generated=time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime()))


def distribution(title: str, reference: stats.Sketch, current: stats.Sketch) -> dict[str, Any]:
    """Reference vs current shares for the report's SVG plot (drawn by the template): a histogram
    over equal-width bins spanning both samples for numbers, the most frequent categories otherwise."""
    if isinstance(reference, stats.NumericSketch) and isinstance(current, stats.NumericSketch):
        ref, cur = reference.raw, current.raw  # unsorted: a histogram needs no order
        ends = [v for values in (ref, cur) if values.size for v in (values.min(), values.max())]
        lo, hi = (float(min(ends)), float(max(ends))) if ends else (0.0, 1.0)
        if ends and hi - lo < HISTOGRAM_BINS and _integral(ref) and _integral(cur):
            # one bin per integer: equal-width bins over a few integers leave empty bins between them (a comb)
            edges = np.arange(lo - 0.5, hi + 1.0)
        else:
            edges = np.linspace(lo, hi if hi > lo else lo + 1, HISTOGRAM_BINS + 1)
        shares = [_histogram(values, edges) for values in (ref, cur)]
        labels = [f"{lo:.4g}", f"{hi:.4g}"]
    elif isinstance(reference, stats.CategoricalSketch) and isinstance(current, stats.CategoricalSketch):
        categories, ref_counts, cur_counts = stats.aligned_counts(reference.counts, current.counts)
        top = np.argsort(-(ref_counts / max(ref_counts.sum(), 1) + cur_counts / max(cur_counts.sum(), 1)),
                         kind="stable")[:TOP_CATEGORIES]
        shares = [counts[top] / max(counts.sum(), 1) for counts in (ref_counts, cur_counts)]
        labels = [str(categories[i])[:12] for i in top]
    else:
        raise TypeError(f"{title}: the reference and current sketches are of different kinds")
    return {"title": title, "numeric": isinstance(reference, stats.NumericSketch), "labels": labels,
            "reference": shares[0].tolist(), "current": shares[1].tolist(),
            "top": max(max(shares[0], default=0), max(shares[1], default=0), 1e-12)}


def _integral(values: np.ndarray) -> bool:
    head = values[:1_000]  # most columns that are not integral show it in their first values
    return bool(np.array_equal(np.floor(head), head) and np.array_equal(np.floor(values), values))


def _histogram(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Shares of values per bin of equal-width ``edges``: (e_i, e_i+1], the first bin with its left
    edge, as ``np.histogram`` would count them but in one pass without sorting."""
    bins = edges.size - 1
    position = np.subtract(values, edges[0])
    position *= bins / (edges[-1] - edges[0])
    index = np.ceil(position, out=position).astype(np.intp)
    index -= 1
    np.clip(index, 0, bins - 1, out=index)
    return np.bincount(index, minlength=bins)[:bins] / max(values.size, 1)
