"""Drift statistics (NumPy/SciPy), computed from column sketches built batch by batch.

A sketch holds what the statistics need and nothing more: a numeric column keeps its non-missing
values as one float64 array (sorted once, at the end: KS, Wasserstein and PSI all read sorted
samples); a categorical column keeps value counts. So memory grows with 8 bytes per numeric cell and
with the number of distinct categories, never with a DataFrame of the whole file, and the same
sketches feed the HTML plots.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial.distance import jensenshannon as _js

PSI_BINS = 10
PSI_FLOOR = 1e-4  # an empty bin would make PSI infinite; this is the customary floor
EXACT_KS_MAX = 10_000  # above this, the asymptotic KS distribution is exact enough (scipy's own rule)


# -- sketches -------------------------------------------------------------------------------------


@dataclass
class NumericSketch:
    """Non-missing values of one numeric column, plus the count of missing ones."""

    chunks: list[np.ndarray] = field(default_factory=list)
    missing: int = 0
    _sorted: np.ndarray | None = None

    def add(self, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=np.float64)
        present = values[~np.isnan(values)]
        self.missing += values.size - present.size
        self.chunks.append(present)
        self._sorted = None

    @property
    def values(self) -> np.ndarray:
        """All values, sorted (computed once, chunks released)."""
        if self._sorted is None:
            merged = np.concatenate(self.chunks) if self.chunks else np.empty(0)
            merged.sort(kind="quicksort")
            self._sorted, self.chunks = merged, [merged]
        return self._sorted

    @property
    def count(self) -> int:
        return sum(c.size for c in self.chunks)

    @property
    def rows(self) -> int:
        return self.count + self.missing


@dataclass
class CategoricalSketch:
    """Value counts of one categorical column (values as text), plus the count of missing ones."""

    counts: Counter = field(default_factory=Counter)
    missing: int = 0

    def add(self, values: pd.Series) -> None:
        self.missing += int(values.isna().sum())
        present = values.dropna()
        if pd.api.types.is_float_dtype(present) and (present % 1 == 0).all():
            present = present.astype("int64")  # 12.0 read from a column with gaps is the category 12
        counted = present.astype(str).value_counts(sort=False)
        self.counts.update(dict(zip(counted.index, counted.to_numpy().tolist())))

    @property
    def count(self) -> int:
        return sum(self.counts.values())

    @property
    def rows(self) -> int:
        return self.count + self.missing


Sketch = NumericSketch | CategoricalSketch


def new_sketch(kind: str) -> Sketch:
    return NumericSketch() if kind == "numeric" else CategoricalSketch()


def numeric_values(series: pd.Series) -> np.ndarray:
    """A column as float64 (datetimes as seconds since the epoch); unparseable values become NaN."""
    if pd.api.types.is_datetime64_any_dtype(series):
        if series.dt.tz is not None:
            series = series.dt.tz_convert("UTC").dt.tz_localize(None)
        seconds = (series - pd.Timestamp(0)) / pd.Timedelta(seconds=1)  # any resolution (ns, us, s)
        return seconds.to_numpy(dtype=np.float64, na_value=np.nan)
    if pd.api.types.is_bool_dtype(series):
        return series.astype(np.float64).to_numpy()
    if pd.api.types.is_numeric_dtype(series):
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def add_batch(sketches: dict[str, Sketch], frame: pd.DataFrame) -> None:
    """Fold one batch into the sketches (columns missing from the batch count as missing)."""
    for column, sketch in sketches.items():
        if column not in frame.columns:
            sketch.missing += len(frame)
        elif isinstance(sketch, NumericSketch):
            sketch.add(numeric_values(frame[column]))
        else:
            sketch.add(frame[column])


# -- numeric statistics ---------------------------------------------------------------------------


def cdf_gap(reference: np.ndarray, current: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both sorted samples merged, and F_ref - F_cur just after each merged value.

    A stable argsort of two concatenated sorted runs is a linear merge, so this is O(n + m) where
    binary searches would be O(n log n); KS and Wasserstein both read it.
    """
    n, m = reference.size, current.size
    both = np.concatenate([reference, current])
    order = np.argsort(both, kind="stable")
    gap = np.cumsum(np.where(order < n, 1.0 / n, -1.0 / m))
    return both[order], gap


def ks_test(reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    """(D, p-value) of the two-sample Kolmogorov–Smirnov test on sorted samples.

    Small samples go through ``scipy.stats.ks_2samp`` (exact p-values); large ones take D from the
    merged CDFs and the asymptotic p-value, exactly as ``ks_2samp(method="asymp")`` does.
    """
    n, m = reference.size, current.size
    if not n or not m:
        return math.nan, math.nan
    if max(n, m) <= EXACT_KS_MAX:
        result = stats.ks_2samp(reference, current)
        return float(result.statistic), float(result.pvalue)
    merged, gap = cdf_gap(reference, current)
    group_ends = np.flatnonzero(merged[1:] != merged[:-1])  # the CDFs are compared after tied values
    d = float(np.max(np.abs(gap[group_ends]), initial=abs(gap[-1])))
    p = float(stats.kstwo.sf(d, np.round(n * m / (n + m))))
    return d, min(max(p, 0.0), 1.0)


def wasserstein_normed(reference: np.ndarray, current: np.ndarray) -> float:
    """The 1-Wasserstein distance on sorted samples, divided by the reference's standard deviation
    (so 0.1 means "the mass moved a tenth of a standard deviation on average")."""
    if not reference.size or not current.size:
        return math.nan
    merged, gap = cdf_gap(reference, current)
    distance = float(np.sum(np.abs(gap[:-1]) * np.diff(merged)))
    spread = float(np.std(reference))
    if spread == 0:
        return 0.0 if distance == 0 else math.inf
    return distance / spread


def quantile_edges(reference: np.ndarray, bins: int = PSI_BINS) -> np.ndarray:
    """Inner bin edges at the reference's quantiles (duplicates dropped for discrete columns)."""
    inner = np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1])
    return np.unique(inner)


def binned_shares(sorted_values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Share of values per bin ``(-inf, e0], (e0, e1], ..., (ek, inf)`` from sorted values."""
    cuts = np.searchsorted(sorted_values, edges, side="right")
    counts = np.diff(np.concatenate([[0], cuts, [sorted_values.size]]))
    return counts / max(sorted_values.size, 1)


def psi(reference_shares: np.ndarray, current_shares: np.ndarray) -> float:
    """Population stability index: sum((c - r) * ln(c / r)) with empty bins floored."""
    r = np.clip(np.asarray(reference_shares, dtype=float), PSI_FLOOR, None)
    c = np.clip(np.asarray(current_shares, dtype=float), PSI_FLOOR, None)
    return float(np.sum((c - r) * np.log(c / r)))


def numeric_psi(reference: np.ndarray, current: np.ndarray, bins: int = PSI_BINS) -> float:
    if not reference.size or not current.size:
        return math.nan
    edges = quantile_edges(reference, bins)
    return psi(binned_shares(reference, edges), binned_shares(current, edges))


# -- categorical statistics -----------------------------------------------------------------------


def aligned_counts(reference: Counter, current: Counter) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Both count vectors over the union of categories (reference order first)."""
    categories = list(reference) + [c for c in current if c not in reference]
    ref = np.array([reference.get(c, 0) for c in categories], dtype=float)
    cur = np.array([current.get(c, 0) for c in categories], dtype=float)
    return categories, ref, cur


def chi2_test(reference: Counter, current: Counter) -> tuple[float, float]:
    """(statistic, p-value) of the chi-square test of homogeneity on the 2×k table: both samples are
    samples (unlike a goodness-of-fit test that takes the reference as the truth)."""
    _, ref, cur = aligned_counts(reference, current)
    if not ref.sum() or not cur.sum():
        return math.nan, math.nan
    if len(ref) < 2:
        return 0.0, 1.0
    result = stats.chi2_contingency(np.vstack([ref, cur]), correction=False)
    return float(result.statistic), float(result.pvalue)


def jensenshannon_distance(reference: Counter, current: Counter) -> float:
    """The Jensen–Shannon distance (base 2, so it lies in [0, 1])."""
    _, ref, cur = aligned_counts(reference, current)
    if not ref.sum() or not cur.sum():
        return math.nan
    return float(_js(ref / ref.sum(), cur / cur.sum(), base=2))


def categorical_psi(reference: Counter, current: Counter) -> float:
    _, ref, cur = aligned_counts(reference, current)
    if not ref.sum() or not cur.sum():
        return math.nan
    return psi(ref / ref.sum(), cur / cur.sum())


def new_categories(reference: Counter, current: Counter) -> dict[str, int]:
    """Categories seen in current data but never in the reference, with their counts."""
    return {c: n for c, n in current.items() if c not in reference}


# -- one entry point ------------------------------------------------------------------------------


def score(method: str, reference: Sketch, current: Sketch) -> tuple[float, dict]:
    """The value compared with the threshold (p-value or distance) and supporting details."""
    if isinstance(reference, NumericSketch):
        ref, cur = reference.values, current.values
        if method == "ks":
            d, p = ks_test(ref, cur)
            return p, {"statistic": d, "p_value": p}
        if method == "wasserstein":
            return wasserstein_normed(ref, cur), {}
        if method == "psi":
            return numeric_psi(ref, cur), {"bins": PSI_BINS}
    else:
        ref_counts, cur_counts = reference.counts, current.counts
        if method == "chi2":
            statistic, p = chi2_test(ref_counts, cur_counts)
            return p, {"statistic": statistic, "p_value": p}
        if method == "jensenshannon":
            return jensenshannon_distance(ref_counts, cur_counts), {}
        if method == "psi":
            return categorical_psi(ref_counts, cur_counts), {}
    raise ValueError(f"method '{method}' does not apply to this column")
