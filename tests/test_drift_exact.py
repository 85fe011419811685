"""The drift statistics mlci computes itself for speed give SciPy's answers: the KS statistic from buckets
(``ks_statistic``) equals ``scipy.stats.ks_2samp``'s bit for bit, and the p-values (``kolmogorov_sf``,
``chi2_sf``) agree with ``scipy.stats`` to near double precision, over random samples and arguments."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special
from scipy import stats as scipy_stats

from mlci.ml import drift
from mlci.ops.monitor.report import _histogram

FAMILIES = ["normal", "shifted", "rounded", "integers", "cauchy", "lognormal", "constant", "outliers", "infinite",
            "signed_zeros"]


def sample(family: str, rng: np.random.Generator, size: int, shift: float) -> np.ndarray:
    """One sample of a family of inputs that stress the buckets: ties, heavy tails, a single value,
    far outliers, infinities, and -0.0 beside 0.0 (equal values with different bits)."""
    if family == "normal":
        return rng.normal(0, 1, size)
    if family == "shifted":
        return rng.normal(shift, 1 + shift, size)
    if family == "rounded":
        return np.round(rng.normal(shift, 1, size), 2)
    if family == "integers":
        return rng.poisson(5 + shift, size).astype(float)
    if family == "cauchy":
        return rng.standard_cauchy(size)
    if family == "lognormal":
        return rng.lognormal(shift, 2, size)
    if family == "constant":
        return np.full(size, 3.0) if shift < 0.5 else np.where(rng.random(size) < 0.5, 3.0, 4.0)
    if family == "outliers":
        values = rng.normal(0, 1, size)
        values[rng.random(size) < 0.01] = 1e12 * (1 + shift)
        return values
    if family == "infinite":
        values = rng.normal(shift, 1, size)
        values[rng.random(size) < 0.001] = np.inf
        values[rng.random(size) < 0.001] = -np.inf
        return values
    values = rng.normal(0, 1e-300, size)  # signed zeros and subnormals
    values[rng.random(size) < 0.3 + shift / 4] = 0.0
    values[rng.random(size) < 0.3] = -0.0
    return values


@settings(max_examples=60, deadline=None)
@given(family=st.sampled_from(FAMILIES), n=st.integers(1, 40_000), m=st.integers(1, 40_000),
       shift=st.floats(0, 1), seed=st.integers(0, 2**32 - 1))
def test_ks_statistic_from_buckets_is_scipys_exactly(family, n, m, shift, seed):
    rng = np.random.default_rng(seed)
    reference, current = sample(family, rng, n, 0.0), sample(family, rng, m, shift)
    assert drift.ks_statistic(reference, current) == scipy_stats.ks_2samp(reference, current, method="asymp").statistic


@pytest.mark.parametrize("family", FAMILIES)
def test_ks_test_on_a_million_values_matches_scipy(family):
    """At the benchmark's size, where the bucket pruning matters; p-values to near double precision."""
    rng = np.random.default_rng(len(family))
    reference, current = sample(family, rng, 1_000_000, 0.0), sample(family, rng, 999_000, 0.003)
    d, p = drift.ks_test(reference, current)
    expected = scipy_stats.ks_2samp(reference, current, method="asymp")
    assert d == expected.statistic
    assert p == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)


@settings(max_examples=200, deadline=None)
@given(n=st.integers(141, 5_000_000), n_d_squared=st.floats(0.01, 400))
def test_kolmogorov_sf_matches_scipy_kstwo(n, n_d_squared):
    d = (n_d_squared / n) ** 0.5
    assert drift.kolmogorov_sf(d, n) == pytest.approx(scipy_stats.kstwo.sf(d, n), rel=1e-8, abs=1e-300)


@settings(max_examples=200, deadline=None)
@given(dof=st.integers(1, 400), statistic=st.floats(0, 3_000))
def test_chi2_sf_matches_scipy(dof, statistic):
    assert drift.chi2_sf(statistic, dof) == pytest.approx(scipy_stats.chi2.sf(statistic, dof), rel=1e-11, abs=1e-300)


@settings(max_examples=100, deadline=None)
@given(reference=st.lists(st.integers(0, 10**6), min_size=2, max_size=30),
       current=st.lists(st.integers(0, 10**6), min_size=2, max_size=30))
def test_chi2_test_matches_scipys_contingency_test(reference, current):
    k = min(len(reference), len(current))
    ref = Counter({f"c{i}": v for i, v in enumerate(reference[:k]) if v})
    cur = Counter({f"c{i}": v for i, v in enumerate(current[:k]) if v})
    if not ref or not cur or len(set(ref) | set(cur)) < 2:
        return
    _, ref_counts, cur_counts = drift.aligned_counts(ref, cur)
    expected = scipy_stats.chi2_contingency(np.vstack([ref_counts, cur_counts]), correction=False)
    statistic, p = drift.chi2_test(ref, cur)
    assert statistic == pytest.approx(expected.statistic, rel=1e-10)
    assert p == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)


@pytest.mark.parametrize("n", [10, 1_000, 99_999, 1_000_000])
def test_log_binomials_match_scipy(n):
    v = np.arange(n + 1, dtype=float)
    expected = special.gammaln(n + 1) - special.gammaln(v + 1) - special.gammaln(n - v + 1)
    assert np.allclose(drift.log_binomials(n, n + 1), expected, rtol=1e-12, atol=1e-8)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), size=st.integers(1, 5_000), integral=st.booleans())
def test_histogram_without_sorting_counts_as_the_sorted_search_did(seed, size, integral):
    """(e_i, e_i+1] bins with the first one closed, as the searchsorted version on sorted values counted."""
    rng = np.random.default_rng(seed)
    values = rng.integers(-5, 6, size).astype(float) if integral else rng.normal(0, 1, size)
    lo, hi = float(values.min()), float(values.max())
    edges = np.arange(lo - 0.5, hi + 1.0) if integral else np.linspace(lo, hi if hi > lo else lo + 1, 31)
    ordered = np.sort(values)
    cuts = np.searchsorted(ordered, edges, side="right")
    cuts[0] = np.searchsorted(ordered, edges[0], side="left")
    assert np.array_equal(_histogram(values, edges), np.diff(cuts) / size)


def test_large_samples_are_scored_without_importing_scipy_stats():
    """scipy.stats costs about a second of CPU to import; KS and chi-square on large samples do without."""
    code = """
import sys
from collections import Counter
import numpy as np
from mlci.ml import drift
rng = np.random.default_rng(0)
ref, cur = drift.new_sketch("numeric"), drift.new_sketch("numeric")
ref.add(rng.normal(0, 1, 200_000)); cur.add(rng.normal(0.001, 1, 200_000))
p, details = drift.score("ks", ref, cur)
a, b = drift.new_sketch("categorical"), drift.new_sketch("categorical")
import pyarrow as pa
a.add(pa.array(["x", "y"] * 50_000)); b.add(pa.array(["x", "y", "y"] * 30_000))
drift.score("chi2", a, b)
assert 0 < p < 1, p
print("scipy.stats" in sys.modules)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


@settings(max_examples=60, deadline=None)
@given(texts=st.lists(st.one_of(st.none(), st.text(max_size=3)), max_size=300), chunks=st.integers(1, 4))
def test_text_read_as_dictionary_codes_counts_as_the_texts(tmp_path_factory, texts, chunks):
    """Parquet text columns are counted by their dictionary codes; the counts and missing values must
    be those of the decoded texts, whatever the batches."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mlci.ops.monitor.profile import _dictionary_batches

    path = tmp_path_factory.mktemp("dictionary") / "texts.parquet"
    pq.write_table(pa.table({"t": pa.array(texts, pa.string())}), path)
    plain, coded = drift.new_sketch("categorical"), drift.new_sketch("categorical")
    plain.add(pa.array(texts, pa.string()))
    for array in _dictionary_batches(path, "t", max(len(texts) // chunks, 1)):
        assert pa.types.is_dictionary(array.type)
        coded.add(array)
    assert (coded.counts, coded.missing) == (plain.counts, plain.missing)


def test_a_column_kept_as_it_was_read_is_never_written():
    """A whole column in one batch is kept without a copy; sorting it (Wasserstein, PSI) or adding
    more batches must copy first, never reorder or overwrite the caller's array."""
    values = np.random.default_rng(3).normal(size=50_000)
    original = values.copy()
    sketch = drift.NumericSketch(expected=50_000)
    sketch.add(values)
    assert np.shares_memory(sketch.raw, values)  # kept as it was, no copy
    assert np.array_equal(sketch.values, np.sort(original))
    sketch.add(np.arange(10.0))
    assert np.array_equal(values, original) and sketch.count == 50_010
