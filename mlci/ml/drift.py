"""Drift statistics (NumPy/SciPy), computed from column sketches built batch by batch.

A sketch holds what the statistics need and nothing more: a numeric column keeps its non-missing
values as one float64 array (sorted once, at the end: KS, Wasserstein and PSI all read sorted
samples); a categorical column keeps value counts. So memory grows with 8 bytes per numeric cell and
with the number of distinct categories, never with a DataFrame of the whole file, and the same
sketches feed the HTML plots.

Batches arrive as Arrow record batches (files) or pandas DataFrames (prediction logs); both end up
as Arrow arrays, so one code path turns a column into numbers or category counts. SciPy and pandas
are imported only where they are used: ``mlci monitor`` on files never needs pandas, and SciPy's
import can run while the data is read (``preload_scipy``).
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlci.ml.tabular import convert_text, numpy_values

if TYPE_CHECKING:
    import pandas as pd

PSI_BINS = 10
PSI_FLOOR = 1e-4  # an empty bin would make PSI infinite; this is the customary floor
EXACT_KS_MAX = 10_000  # above this, the asymptotic KS distribution is exact enough (scipy's own rule)
SMIRNOV_EXACT_MAX = 1_000_000  # SciPy sums the exact Smirnov series up to this n
_SECONDS = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


# -- sketches -------------------------------------------------------------------------------------


SAMPLE_CAPACITY = 5_000_000  # numeric values kept per column: 40 MB, whatever the input's size


@dataclass
class NumericSketch:
    """Non-missing values of one numeric column in one array, plus the count of missing ones.

    The array is allocated once for ``expected`` rows (grown by doubling past that, up to
    ``capacity``) and sorted in place at the end, so a column costs its 8 bytes per value and no
    copies. Past ``capacity`` values the array becomes a seeded uniform reservoir sample, so memory
    stays bounded for any input size; ``seen`` counts every value, ``count`` the ones kept.
    """

    expected: int = 0
    capacity: int = SAMPLE_CAPACITY
    missing: int = 0
    seen: int = 0
    _data: np.ndarray = field(default_factory=lambda: np.empty(0))
    _size: int = 0
    _sorted: bool = True
    _rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))

    def add(self, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=np.float64)
        missing = np.isnan(values)
        if missing.any():
            values = values[~missing]
            self.missing += int(missing.sum())
        room = self.capacity - self._size
        self._append(values[:room])
        if values.size > room:
            self._sample(values[room:], first_index=self.seen + room)
        self.seen += values.size
        self._sorted = self._size == 0

    def _append(self, values: np.ndarray) -> None:
        end = self._size + values.size
        if end > self._data.size:
            wanted = max(end, min(self.expected, self.capacity), min(2 * self._data.size, self.capacity))
            grown = np.empty(wanted)
            grown[:self._size] = self._data[:self._size]
            self._data = grown
        self._data[self._size:end] = values
        self._size = end

    def _sample(self, values: np.ndarray, *, first_index: int) -> None:
        """Reservoir sampling (Algorithm R), one batch at a time: the value with overall index i
        replaces a random slot j in [0, i] when j falls inside the reservoir."""
        slots = self._rng.integers(0, first_index + np.arange(1, values.size + 1))
        kept = slots < self.capacity
        self._data[slots[kept]] = values[kept]

    @property
    def values(self) -> np.ndarray:
        """The kept values, sorted (once, in place; spare room beyond a quarter is given back)."""
        if not self._sorted:
            data = self._data[:self._size]
            self._data = data.copy() if self._size < 0.75 * self._data.size else data
            self._data.sort(kind="quicksort")
            self._sorted = True
        return self._data[:self._size]

    @property
    def count(self) -> int:
        """Values kept (the sample size the statistics use)."""
        return self._size

    @property
    def rows(self) -> int:
        return self.seen + self.missing


@dataclass
class CategoricalSketch:
    """Value counts of one categorical column (values as text), plus the count of missing ones."""

    counts: Counter = field(default_factory=Counter)
    missing: int = 0

    def add(self, values: pa.Array | pa.ChunkedArray | pd.Series) -> None:
        """Count one batch's values (an Arrow array or a pandas Series) by their text."""
        array = _arrow_categories(values)
        present = pc.drop_null(array)
        if pa.types.is_floating(present.type):
            present = present.filter(pc.invert(pc.is_nan(present)))  # NaN is missing too
        self.missing += len(array) - len(present)
        counted = pc.value_counts(present)
        for value, count in zip(counted.field("values").to_pylist(), counted.field("counts").to_pylist()):
            self.counts[category_text(value)] += count

    @property
    def count(self) -> int:
        return sum(self.counts.values())

    @property
    def rows(self) -> int:
        return self.count + self.missing


Sketch = NumericSketch | CategoricalSketch


def new_sketch(kind: str, expected_rows: int = 0, capacity: int = SAMPLE_CAPACITY) -> Sketch:
    """An empty sketch; ``expected_rows`` sizes a numeric column's array up front, ``capacity`` caps it."""
    if kind == "numeric":
        return NumericSketch(expected=expected_rows, capacity=capacity)
    return CategoricalSketch()


def category_text(value: Any) -> str:
    """The name of a category: its text, with ``12.0`` and ``12`` naming the same category (an
    integer column with gaps is read as floats)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def numeric_values(column: pa.Array | pa.ChunkedArray | pd.Series) -> np.ndarray:
    """A column as float64: datetimes as seconds since the epoch (UTC), booleans as 0/1; missing
    values and text that is not a number become NaN. Takes an Arrow array or a pandas Series."""
    array = _arrow_numbers(column)
    kind = array.type
    if pa.types.is_dictionary(kind):
        array = array.dictionary_decode()
        kind = array.type
    if pa.types.is_date(kind):
        array, kind = array.cast(pa.timestamp("s")), pa.timestamp("s")
    if pa.types.is_timestamp(kind):  # Arrow keeps instants with a time zone as UTC already
        return _float64_numpy(array.cast(pa.int64()).cast(pa.float64(), safe=False)) / _SECONDS[kind.unit]
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        array = convert_text(array, "float")[0]
    return _float64_numpy(array.cast(pa.float64(), safe=False))  # integers beyond 2**53 lose digits, as in NumPy


def _float64_numpy(array: pa.Array) -> np.ndarray:
    """A float64 Arrow array as NumPy, missing values as NaN; without a copy when nothing is missing."""
    values = numpy_values(array)
    if not array.null_count:
        return values
    return np.where(numpy_values(pc.is_valid(array)), values, np.nan)


def _arrow_numbers(column: pa.Array | pa.ChunkedArray | pd.Series) -> pa.Array:
    if isinstance(column, (pa.Array, pa.ChunkedArray)):
        return _one_chunk(column)
    import pandas as pd

    if column.dtype == object:
        column = pd.to_numeric(column, errors="coerce")
    return pa.Array.from_pandas(column)


def _arrow_categories(values: pa.Array | pa.ChunkedArray | pd.Series) -> pa.Array:
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        array = _one_chunk(values)
        return array.dictionary_decode() if pa.types.is_dictionary(array.type) else array
    try:
        return pa.Array.from_pandas(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed Python types (e.g. JSON numbers and text)
        return pa.Array.from_pandas(values.map(category_text, na_action="ignore"))


def _one_chunk(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(column, pa.ChunkedArray):
        return pa.concat_arrays(column.chunks) if column.num_chunks != 1 else column.chunk(0)
    return column


def add_batch(sketches: dict[str, Sketch], batch: pa.RecordBatch | pd.DataFrame) -> None:
    """Fold one batch (Arrow or pandas) into the sketches (columns missing from it count as missing)."""
    names = batch.schema.names if isinstance(batch, pa.RecordBatch) else batch.columns
    rows = batch.num_rows if isinstance(batch, pa.RecordBatch) else len(batch)
    for column, sketch in sketches.items():
        if column not in names:
            sketch.missing += rows
        elif isinstance(sketch, NumericSketch):
            sketch.add(numeric_values(batch[column]))
        else:
            sketch.add(batch[column])


def _scipy_stats() -> Any:
    from scipy import stats

    return stats


def preload_scipy() -> threading.Thread:
    """Import SciPy's statistics in the background: the import takes about a second, which
    overlaps with reading the data (Arrow decodes without holding the GIL)."""
    import importlib

    thread = threading.Thread(target=importlib.import_module, args=("scipy.stats",), daemon=True)
    thread.start()
    return thread


# -- numeric statistics ---------------------------------------------------------------------------


def cdf_gap(reference: np.ndarray, current: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both sorted samples merged, and F_ref - F_cur just after each merged value.

    A stable argsort of two concatenated sorted runs is a linear merge, so this is O(n + m) where
    binary searches would be O(n log n); KS and Wasserstein both read it.
    """
    n, m = reference.size, current.size
    both = np.concatenate([reference, current])
    order = np.argsort(both, kind="stable")
    merged = both[order]
    del both  # three arrays of n + m values at most at any time
    gap = np.where(order < n, 1.0 / n, -1.0 / m)
    del order
    return merged, np.cumsum(gap, out=gap)


def ks_test(reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    """(D, p-value) of the two-sample Kolmogorov–Smirnov test on sorted samples.

    Small samples go through ``scipy.stats.ks_2samp`` (exact p-values); large ones take D from the
    merged CDFs and the asymptotic p-value, exactly as ``ks_2samp(method="asymp")`` does.
    """
    n, m = reference.size, current.size
    if not n or not m:
        return math.nan, math.nan
    if max(n, m) <= EXACT_KS_MAX:
        result = _scipy_stats().ks_2samp(reference, current)
        return float(result.statistic), float(result.pvalue)
    merged, gap = cdf_gap(reference, current)
    last_of_value = np.empty(merged.size, dtype=bool)  # the CDFs are compared after tied values
    np.not_equal(merged[1:], merged[:-1], out=last_of_value[:-1])
    last_of_value[-1] = True
    d = float(np.max(np.abs(gap, out=gap), where=last_of_value, initial=0.0))
    p = kolmogorov_sf(d, int(np.round(n * m / (n + m))))
    return d, min(max(p, 0.0), 1.0)


def kolmogorov_sf(d: float, n: int) -> float:
    """``scipy.stats.kstwo.sf(d, n)``, the p-value ``ks_2samp(method="asymp")`` reports.

    Where SciPy takes twice the exact one-sided Smirnov probability (n > 140, 2.2 <= n·d² < 370: a
    small p-value), its ``special.smirnov`` adds up to n terms one by one for n up to a million (an
    approximation above), close to a second per column at n = 500,000. The same Birnbaum–Tingey
    sum is added here in one vectorised pass.
    """
    t = n * d
    if 140 < n <= SMIRNOV_EXACT_MAX and 1 < t < n - 1 and d < 0.5 and 2.2 <= t * d < 370:
        return min(max(2 * smirnov_sf(n, d), 0.0), 1.0)
    return float(_scipy_stats().kstwo.sf(d, n))


def smirnov_sf(n: int, d: float) -> float:
    """P(D+ > d) for a sample of n (Birnbaum and Tingey, 1951):
    d · Σ_{v=0}^{⌊n(1-d)⌋} C(n, v) (d + v/n)^(v-1) (1 - d - v/n)^(n-v), summed in log space."""
    from scipy.special import gammaln

    v = np.arange(math.floor(n * (1 - d)) + 1, dtype=np.float64)
    rest = np.clip(1 - d - v / n, 0, None)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_terms = (gammaln(n + 1) - gammaln(v + 1) - gammaln(n - v + 1)
                     + (v - 1) * np.log(d + v / n) + (n - v) * np.log(rest))
    return float(d * np.sum(np.exp(log_terms[np.isfinite(log_terms)])))


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
    result = _scipy_stats().chi2_contingency(np.vstack([ref, cur]), correction=False)
    return float(result.statistic), float(result.pvalue)


def cramers_v(statistic: float, reference: Counter, current: Counter) -> float:
    """Cramér's V of the 2×k table: how strongly the category shares differ, from 0 (alike) to 1, whatever
    the sample sizes (a p-value shrinks with size alone). sqrt(chi² / (n · (min(2, k) - 1)))."""
    _, ref, cur = aligned_counts(reference, current)
    total, smaller_side = ref.sum() + cur.sum(), min(2, len(ref)) - 1
    if not total or smaller_side < 1 or math.isnan(statistic):
        return 0.0 if not math.isnan(statistic) else math.nan
    return float(math.sqrt(statistic / (total * smaller_side)))


def jensenshannon_distance(reference: Counter, current: Counter) -> float:
    """The Jensen–Shannon distance (base 2, so it lies in [0, 1])."""
    _, ref, cur = aligned_counts(reference, current)
    if not ref.sum() or not cur.sum():
        return math.nan
    from scipy.special import rel_entr

    p, q = ref / ref.sum(), cur / cur.sum()
    middle = (p + q) / 2
    divergence = (np.sum(rel_entr(p, middle)) + np.sum(rel_entr(q, middle))) / 2
    return float(np.sqrt(max(divergence, 0.0) / np.log(2)))


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
    if isinstance(reference, NumericSketch) and isinstance(current, NumericSketch):
        ref, cur = reference.values, current.values
        if method == "ks":
            d, p = ks_test(ref, cur)
            return p, {"statistic": d, "effect_size": d, "p_value": p}
        if method == "wasserstein":
            return wasserstein_normed(ref, cur), {}
        if method == "psi":
            return numeric_psi(ref, cur), {"bins": PSI_BINS}
    elif isinstance(reference, CategoricalSketch) and isinstance(current, CategoricalSketch):
        ref_counts, cur_counts = reference.counts, current.counts
        if method == "chi2":
            statistic, p = chi2_test(ref_counts, cur_counts)
            return p, {"statistic": statistic, "effect_size": cramers_v(statistic, ref_counts, cur_counts),
                       "p_value": p}
        if method == "jensenshannon":
            return jensenshannon_distance(ref_counts, cur_counts), {}
        if method == "psi":
            return categorical_psi(ref_counts, cur_counts), {}
    raise ValueError(f"method '{method}' does not apply to this column")
