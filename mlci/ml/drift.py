"""Drift statistics (NumPy/SciPy), computed from column sketches built batch by batch.

A sketch holds what the statistics need and nothing more: a numeric column keeps its non-missing
values as one float64 array (in arrival order; sorted in place only for the statistics that read
sorted samples, Wasserstein and PSI), a categorical column keeps value counts. So memory grows with 8
bytes per numeric cell and with the number of distinct categories, never with a DataFrame of the whole
file, and the same sketches feed the HTML plots.

KS reads unsorted samples: ``ks_statistic`` counts both samples into fine buckets in one pass each
and sorts only the few buckets where the largest CDF gap can lie, which gives SciPy's exact D at a
fraction of two full sorts. Its p-value (``kolmogorov_sf``) and chi-square's (``chi2_sf``) are computed
here for large samples, so a monitor run never imports ``scipy.stats`` (about a second of CPU).

Batches arrive as Arrow record batches (files) or pandas DataFrames (prediction logs); both end up
as Arrow arrays, so one code path turns a column into numbers or category counts. SciPy and pandas
are imported only where they are used: ``mlci monitor`` on files never needs pandas, and needs SciPy
only for small samples (exact KS p-values) and the Jensen-Shannon distance.
"""

from __future__ import annotations

import math
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
    ``capacity``), or is the first batch itself when that holds the whole column, and is sorted in
    place only when a statistic needs it, so a column costs its 8 bytes per value and no copies.
    Past ``capacity`` values the array becomes a seeded uniform reservoir sample, so memory stays
    bounded for any input size; ``seen`` counts every value, ``count`` the ones kept.
    """

    expected: int = 0
    capacity: int = SAMPLE_CAPACITY
    missing: int = 0
    seen: int = 0
    _data: np.ndarray = field(default_factory=lambda: np.empty(0))
    _size: int = 0
    _sorted: bool = True
    _owned: bool = True
    _rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))

    def add(self, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=np.float64)
        missing = np.isnan(values)
        if missing.any():
            values = values[~missing]
            self.missing += int(missing.sum())
        if self._size == 0 and values.size <= self.capacity and values.size >= self.expected:
            self._data, self._size = values, values.size  # a whole column in one batch: kept as it is
            self._owned = False  # the caller's array (or Arrow's buffer): copied before any write
            self.seen += values.size
            self._sorted = self._size == 0
            return
        room = self.capacity - self._size
        self._append(values[:room])
        if values.size > room:
            self._sample(values[room:], first_index=self.seen + room)
        self.seen += values.size
        self._sorted = self._size == 0

    def _append(self, values: np.ndarray) -> None:
        end = self._size + values.size
        if end > self._data.size or not self._owned:
            wanted = max(end, min(self.expected, self.capacity), min(2 * self._data.size, self.capacity))
            grown = np.empty(wanted)
            grown[:self._size] = self._data[:self._size]
            self._data, self._owned = grown, True
        self._data[self._size:end] = values
        self._size = end

    def _sample(self, values: np.ndarray, *, first_index: int) -> None:
        """Reservoir sampling (Algorithm R), one batch at a time: the value with overall index i
        replaces a random slot j in [0, i] when j falls inside the reservoir."""
        slots = self._rng.integers(0, first_index + np.arange(1, values.size + 1))
        kept = slots < self.capacity
        self._data[slots[kept]] = values[kept]

    @property
    def raw(self) -> np.ndarray:
        """The kept values in no particular order (a view, no copy): for what does not need them sorted."""
        return self._data[:self._size]

    @property
    def values(self) -> np.ndarray:
        """The kept values, sorted (once, in place; spare room beyond a quarter is given back)."""
        if not self._sorted:
            data = self._data[:self._size]
            spare = self._size < 0.75 * self._data.size
            self._data = data.copy() if spare or not self._owned else data
            self._owned = True
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
        if isinstance(values, (pa.Array, pa.ChunkedArray)) and _text_dictionary(_one_chunk(values)):
            self._add_dictionary(_one_chunk(values))
            return
        array = _arrow_categories(values)
        present = pc.drop_null(array)
        if pa.types.is_floating(present.type):
            present = present.filter(pc.invert(pc.is_nan(present)))  # NaN is missing too
        self.missing += len(array) - len(present)
        counted = pc.value_counts(present)
        for value, count in zip(counted.field("values").to_pylist(), counted.field("counts").to_pylist()):
            self.counts[category_text(value)] += count

    def _add_dictionary(self, array: pa.DictionaryArray) -> None:
        """Text stored as a dictionary (as Parquet stores it): the codes are counted, not the texts."""
        codes = array.indices
        self.missing += codes.null_count
        counted = np.bincount(numpy_values(codes.drop_null() if codes.null_count else codes),
                              minlength=len(array.dictionary))
        for value, count in zip(array.dictionary.to_pylist(), counted.tolist()):
            if count:
                self.counts[value] += count

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


def _text_dictionary(array: pa.Array) -> bool:
    """A dictionary of texts without missing entries: its codes can be counted in place of the texts."""
    kind = array.type
    return (pa.types.is_dictionary(kind) and (pa.types.is_string(kind.value_type)
                                              or pa.types.is_large_string(kind.value_type))
            and not array.dictionary.null_count)


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
    """(D, p-value) of the two-sample Kolmogorov–Smirnov test; the samples need not be sorted.

    Small samples go through ``scipy.stats.ks_2samp`` (exact p-values); large ones take SciPy's D from
    ``ks_statistic`` and the asymptotic p-value, exactly as ``ks_2samp(method="asymp")`` does.
    """
    n, m = reference.size, current.size
    if not n or not m:
        return math.nan, math.nan
    if max(n, m) <= EXACT_KS_MAX:
        result = _scipy_stats().ks_2samp(reference, current)
        return float(result.statistic), float(result.pvalue)
    d = ks_statistic(reference, current)
    p = kolmogorov_sf(d, int(np.round(n * m / (n + m))))
    return d, min(max(p, 0.0), 1.0)


KS_VALUES_PER_BUCKET = 16  # both samples together; finer buckets leave fewer values to sort
KS_MAX_BUCKETS = 1 << 20


def ks_statistic(reference: np.ndarray, current: np.ndarray) -> float:
    """The KS statistic D = max |F_ref(x) - F_cur(x)| of two unsorted samples without NaN, equal to
    ``scipy.stats.ks_2samp``'s bit for bit (the same ``count / n - count / m`` at the same points).

    Both samples are counted into equal-width buckets spanning the bulk of the data (values beyond go
    to an end bucket on each side). The bucket of a value only grows with the value, so the counts
    give both CDFs exactly at every bucket's end, and their largest gap there is a lower bound of D.
    Inside a bucket the gap can move by at most that bucket's share of each sample, so only buckets
    whose reach exceeds the bound can hold D: those values alone are sorted and the gap is taken at
    each of them. A bucket of one repeated value (discrete data) cannot, and is ruled out too.
    """
    n, m = reference.size, current.size
    lo, hi = _bulk_range(reference, current)
    if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
        return _ks_statistic_sorted(np.sort(reference), np.sort(current))
    count = int(min(max((n + m) // KS_VALUES_PER_BUCKET, 64), KS_MAX_BUCKETS))
    scale = count / (hi - lo)
    ref_bucket, cur_bucket = (_bucket_of(x, lo, scale, count) for x in (reference, current))
    ref_counts = np.bincount(ref_bucket, minlength=count + 2)
    cur_counts = np.bincount(cur_bucket, minlength=count + 2)
    ref_below, cur_below = np.cumsum(ref_counts) - ref_counts, np.cumsum(cur_counts) - cur_counts
    gap_at_end = (ref_below + ref_counts) / n - (cur_below + cur_counts) / m
    bound = float(np.max(np.abs(gap_at_end)))
    gap_before = np.concatenate([[0.0], gap_at_end[:-1]])
    reach = np.maximum(gap_before + ref_counts / n, cur_counts / m - gap_before)
    open_buckets = (reach > bound) & (ref_counts + cur_counts > 1)
    if ref_counts[open_buckets].sum() + cur_counts[open_buckets].sum() > (n + m) // 8:
        open_buckets &= ~_single_valued(reference, current, ref_bucket, cur_bucket, count + 2)
    if not open_buckets.any():
        return bound
    ref_open, cur_open = np.sort(reference[open_buckets[ref_bucket]]), np.sort(current[open_buckets[cur_bucket]])
    points = np.concatenate([ref_open, cur_open])
    bucket = _bucket_of(points, lo, scale, count)
    # values of each sample at or below a point: those in earlier buckets, plus the sorted ones of its own
    ref_offset = ref_below - (np.cumsum(ref_counts * open_buckets) - ref_counts * open_buckets)
    cur_offset = cur_below - (np.cumsum(cur_counts * open_buckets) - cur_counts * open_buckets)
    ref_at = ref_offset[bucket] + np.searchsorted(ref_open, points, side="right")
    cur_at = cur_offset[bucket] + np.searchsorted(cur_open, points, side="right")
    return max(bound, float(np.max(np.abs(ref_at / n - cur_at / m))))


def _bulk_range(reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    """Where the bulk of both samples lies (0.05% to 99.95%, from an evenly spaced subsample): outliers
    go to the end buckets instead of stretching the others."""
    step = max((reference.size + current.size) // 20_000, 1)
    sample = np.concatenate([reference[::step], current[::step]])
    lo, hi = np.quantile(sample, [0.0005, 0.9995])
    return float(lo), float(hi)


def _bucket_of(values: np.ndarray, lo: float, scale: float, count: int) -> np.ndarray:
    """Bucket 1..count for [lo, hi), 0 below, count + 1 above: a non-decreasing function of the value."""
    position = np.subtract(values, lo)
    position *= scale
    position += 1.0
    np.clip(position, 0.0, count + 1.0, out=position)
    return position.astype(np.intp)


def _single_valued(reference: np.ndarray, current: np.ndarray, ref_bucket: np.ndarray, cur_bucket: np.ndarray,
                   size: int) -> np.ndarray:
    """Buckets whose values (of both samples) are all equal."""
    low, high = np.full(size, np.inf), np.full(size, -np.inf)
    for values, bucket in ((reference, ref_bucket), (current, cur_bucket)):
        np.minimum.at(low, bucket, values)
        np.maximum.at(high, bucket, values)
    return low == high


def _ks_statistic_sorted(reference: np.ndarray, current: np.ndarray) -> float:
    """D from two sorted samples, at every value (the fallback when values have no finite bulk range)."""
    points = np.concatenate([reference, current])
    gap = np.searchsorted(reference, points, side="right") / reference.size \
        - np.searchsorted(current, points, side="right") / current.size
    return float(np.max(np.abs(gap)))


def kolmogorov_sf(d: float, n: int) -> float:
    """``scipy.stats.kstwo.sf(d, n)``, the p-value ``ks_2samp(method="asymp")`` reports, following SciPy's
    choice of method by region (``scipy/stats/_ksstats.py``, after Simard and L'Ecuyer, 2011).

    The regions a large sample reaches are computed here: n·d² ≥ 370 is 0; from 2.2 it is twice the
    exact one-sided Smirnov probability (SciPy adds its terms one by one, close to a second per
    column at n = 500,000; here one vectorised pass); below, for n > 100,000 (or n·d^1.5 > 1.4), one
    minus the Pelz–Good series. Elsewhere (small n, extreme d) SciPy's own function answers.
    """
    t = n * d
    if 140 < n and 1 < t < n - 1 and d < 0.5:
        nd2 = t * d
        if nd2 >= 370:
            return 0.0
        if nd2 >= 2.2 and n <= SMIRNOV_EXACT_MAX:
            return min(max(2 * smirnov_sf(n, d), 0.0), 1.0)
        if nd2 < 2.2 and (n > 100_000 or n * d ** 1.5 > 1.4):
            return min(max(1.0 - pelz_good_cdf(n, d), 0.0), 1.0)
    return float(_scipy_stats().kstwo.sf(d, n))


def pelz_good_cdf(n: int, d: float) -> float:
    """P(D_n <= d) by the Pelz–Good (1976) asymptotic series K0 + K1/√n + K2/n + K3/n^1.5 in z = d√n,
    in the form given by Simard and L'Ecuyer (2011, section 2.3): sums over odd m of polynomials in m²
    times exp(-π²m²/8z²), plus (for K2 and K3) sums over all k of terms in exp(-π²k²/2z²)."""
    z = d * math.sqrt(n)
    z2 = z * z
    if -math.pi ** 2 / 8 / z2 < -708:  # every term underflows
        return 0.0
    terms = math.ceil(16 * z / math.pi)
    m2 = (2 * np.arange(1, terms + 1, dtype=np.float64) - 1) ** 2
    odd = np.exp(-math.pi ** 2 * m2 / (8 * z2))
    pi2, pi4, pi6 = math.pi ** 2, math.pi ** 4, math.pi ** 6
    k0 = np.sum(odd)
    k1 = np.sum((pi2 * m2 / 4 - z2) * odd)
    k2 = np.sum((6 * z2 ** 3 + 2 * z2 ** 2 + (2 * z2 ** 2 - 5 * z2) * pi2 * m2 / 4
                 + pi4 * (1 - 2 * z2) * m2 ** 2 / 16) * odd)
    k3 = np.sum((-30 * z2 ** 3 - 90 * z2 ** 4 + pi2 * (135 * z2 ** 2 - 96 * z2 ** 3) * m2 / 4
                 + pi4 * (212 * z2 ** 2 - 60 * z2) * m2 ** 2 / 16 + pi6 * (5 - 30 * z2) * m2 ** 3 / 64) * odd)
    k = np.arange(1, terms + 1, dtype=np.float64)
    every = k * k * np.exp(-pi2 * k * k / (2 * z2))
    k2_all = float(np.sum(every))
    k3_all = float(np.sum((3 * z2 - pi2 * k * k) * every))
    root = math.sqrt(2 * math.pi)
    K0 = root * k0 / z
    K1 = root * k1 / (6 * z2 ** 2)
    K2 = root * k2 / (72 * z2 ** 3 * z) - pi2 * root * k2_all / (36 * z2 * z)
    K3 = root * k3 / (6480 * z2 ** 5) + pi2 * root * k3_all / (216 * z2 ** 3)
    return float(K0 + K1 / math.sqrt(n) + K2 / n + K3 / n ** 1.5)


def smirnov_sf(n: int, d: float) -> float:
    """P(D+ > d) for a sample of n (Birnbaum and Tingey, 1951):
    d · Σ_{v=0}^{⌊n(1-d)⌋} C(n, v) (d + v/n)^(v-1) (1 - d - v/n)^(n-v), summed in log space."""
    count = math.floor(n * (1 - d)) + 1
    v = np.arange(count, dtype=np.float64)
    rest = np.clip(1 - d - v / n, 0, None)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_terms = log_binomials(n, count) + (v - 1) * np.log(d + v / n) + (n - v) * np.log(rest)
    return float(d * np.sum(np.exp(log_terms[np.isfinite(log_terms)])))


def log_binomials(n: int, count: int, block: int = 1024) -> np.ndarray:
    """ln C(n, v) for v = 0 .. count - 1: ``math.lgamma`` at the start of every block of ``block`` values
    and a running sum of ln((n - v + 1) / v) inside it, so rounding adds up over one block at most
    (``scipy.special.gammaln`` on every v costs three times as much, and SciPy's import)."""
    blocks = -(-count // block)
    v = np.arange(blocks * block, dtype=np.float64)
    steps = np.log((n + 1 - v) / np.maximum(v, 1.0), out=np.zeros_like(v), where=v <= n)
    starts = range(0, count, block)
    steps[::block] = [math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) for k in starts]
    return np.cumsum(steps.reshape(blocks, block), axis=1).reshape(-1)[:count]


def chi2_sf(statistic: float, dof: int) -> float:
    """P(χ²_dof > statistic) (``scipy.stats.chi2.sf``): the regularized upper incomplete gamma function
    Q(dof/2, statistic/2), by its power series below a + 1 and by its continued fraction above
    (modified Lentz), each to full double precision."""
    a, x = dof / 2, statistic / 2
    if x <= 0:
        return 1.0
    log_prefix = a * math.log(x) - x - math.lgamma(a)
    if x < a + 1:
        term = total = 1.0 / a
        for k in range(1, 10_000):
            term *= x / (a + k)
            total += term
            if term < total * 1e-17:
                break
        return max(0.0, 1.0 - total * math.exp(log_prefix))
    tiny = 1e-300
    b = x + 1 - a
    c, f = 1 / tiny, 1 / b
    h = f
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2
        f = an * f + b
        f = tiny if abs(f) < tiny else f
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        f = 1 / f
        step = f * c
        h *= step
        if abs(step - 1) < 1e-16:
            break
    return min(1.0, math.exp(log_prefix) * h)


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
    samples (unlike a goodness-of-fit test that takes the reference as the truth). The same as
    ``scipy.stats.chi2_contingency(table, correction=False)``, without importing SciPy."""
    _, ref, cur = aligned_counts(reference, current)
    if not ref.sum() or not cur.sum():
        return math.nan, math.nan
    if len(ref) < 2:
        return 0.0, 1.0
    table = np.vstack([ref, cur])
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
    statistic = float(np.sum((table - expected) ** 2 / expected))
    return statistic, chi2_sf(statistic, len(ref) - 1)


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
        if method == "ks":  # reads the values unsorted
            d, p = ks_test(reference.raw, current.raw)
            return p, {"statistic": d, "effect_size": d, "p_value": p}
        if method == "wasserstein":
            return wasserstein_normed(reference.values, current.values), {}
        if method == "psi":
            return numeric_psi(reference.values, current.values), {"bins": PSI_BINS}
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
