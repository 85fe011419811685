"""Drift statistics on seeded synthetic data with known shifts, and agreement with SciPy."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from scipy import stats as scipy_stats
from scipy.spatial.distance import jensenshannon

from mlci.core import drift as rules
from mlci.ml import drift

NUMERIC = ["stable_normal", "stable_uniform", "stable_counts", "mean_shift", "scale_shift"]
CATEGORICAL = ["stable_color", "stable_flag", "reweighted"]
SHIFTED = {"mean_shift", "scale_shift", "reweighted"}


def synthetic(rows: int, *, seed: int, shifted: bool) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "stable_normal": rng.normal(50, 10, rows),
        "stable_uniform": rng.uniform(0, 100, rows),
        "stable_counts": rng.poisson(4, rows).astype(float),
        "mean_shift": rng.normal(0.8 if shifted else 0.0, 1.0, rows),
        "scale_shift": rng.normal(0, 2.0 if shifted else 1.0, rows),
        "stable_color": rng.choice(["red", "green", "blue", "grey"], rows, p=[0.4, 0.3, 0.2, 0.1]),
        "stable_flag": rng.random(rows) < 0.3,
        "reweighted": rng.choice(["a", "b", "c"], rows, p=[0.3, 0.3, 0.4] if shifted else [0.5, 0.3, 0.2]),
    })
    frame.loc[rng.random(rows) < 0.02, "stable_normal"] = np.nan
    return frame


def sketches(frame: pd.DataFrame, batch_rows: int = 7_000) -> dict[str, drift.Sketch]:
    out = {name: drift.new_sketch("numeric") for name in NUMERIC}
    out.update({name: drift.new_sketch("categorical") for name in CATEGORICAL})
    for start in range(0, len(frame), batch_rows):
        drift.add_batch(out, frame.iloc[start:start + batch_rows])
    return out


@pytest.fixture(scope="module")
def small():
    """5,000 rows each: the size where tests (ks, chi2) are the right tool."""
    return sketches(synthetic(5_000, seed=1, shifted=False)), sketches(synthetic(5_000, seed=2, shifted=True))


@pytest.fixture(scope="module")
def large():
    """60,000 rows each: large enough that distances are stable."""
    return sketches(synthetic(60_000, seed=3, shifted=False)), sketches(synthetic(60_000, seed=4, shifted=True))


def flagged(reference, current, numeric_method: str, categorical_method: str, correction: str = "none") -> set[str]:
    plans = [rules.Plan(name, "numeric", numeric_method, rules.threshold_for(numeric_method, p_value=0.05))
             for name in NUMERIC]
    plans += [rules.Plan(name, "categorical", categorical_method,
                         rules.threshold_for(categorical_method, p_value=0.05)) for name in CATEGORICAL]
    scores = {p.column: drift.score(p.method, reference[p.column], current[p.column])[0] for p in plans}
    return {v.column for v in rules.decide(plans, scores, correction) if v.drifted}


@pytest.mark.parametrize("correction", ["none", "bonferroni", "bh"])
def test_tests_flag_exactly_the_shifted_columns(small, correction):
    assert flagged(*small, "ks", "chi2", correction) == SHIFTED


@pytest.mark.parametrize("numeric_method, categorical_method",
                         [("wasserstein", "jensenshannon"), ("psi", "psi")])
def test_distances_flag_exactly_the_shifted_columns(large, numeric_method, categorical_method):
    assert flagged(*large, numeric_method, categorical_method) == SHIFTED


def test_identical_data_never_drifts(small):
    reference, _ = small
    for method in ("ks", "wasserstein", "psi"):
        assert flagged(reference, reference, method, {"ks": "chi2", "wasserstein": "jensenshannon"}.get(
            method, "psi")) == set()


def test_ks_matches_scipy_on_small_and_large_samples():
    rng = np.random.default_rng(7)
    for n in (800, 50_000, 200_000):
        a, b = np.sort(rng.normal(0, 1, n)), np.sort(rng.normal(0.02, 1, n + 13))
        d, p = drift.ks_test(a, b)
        expected = scipy_stats.ks_2samp(a, b, method="exact" if n <= drift.EXACT_KS_MAX else "asymp")
        assert d == pytest.approx(expected.statistic, abs=1e-9)
        assert p == pytest.approx(expected.pvalue, rel=1e-5, abs=1e-12)


def test_ks_with_tied_values_matches_scipy():
    rng = np.random.default_rng(9)
    a, b = np.sort(rng.poisson(5, 40_000).astype(float)), np.sort(rng.poisson(5.1, 30_000).astype(float))
    d, p = drift.ks_test(a, b)
    expected = scipy_stats.ks_2samp(a, b, method="asymp")
    assert d == pytest.approx(expected.statistic, abs=1e-9)
    assert p == pytest.approx(expected.pvalue, rel=1e-5, abs=1e-15)
    assert drift.wasserstein_normed(a, b) == pytest.approx(scipy_stats.wasserstein_distance(a, b) / np.std(a))


def test_wasserstein_matches_scipy_divided_by_the_reference_spread():
    rng = np.random.default_rng(8)
    a, b = np.sort(rng.gamma(2, 3, 20_000)), np.sort(rng.gamma(2.3, 3, 15_000))
    expected = scipy_stats.wasserstein_distance(a, b) / np.std(a)
    assert drift.wasserstein_normed(a, b) == pytest.approx(expected, rel=1e-9)


def test_chi2_is_the_homogeneity_test_and_new_categories_are_reported():
    reference = Counter({"a": 500, "b": 300, "c": 200})
    current = Counter({"a": 400, "b": 300, "c": 250, "new": 50})
    statistic, p = drift.chi2_test(reference, current)
    table = np.array([[500, 300, 200, 0], [400, 300, 250, 50]])
    expected = scipy_stats.chi2_contingency(table, correction=False)
    assert statistic == pytest.approx(expected.statistic)
    assert p == pytest.approx(expected.pvalue)
    assert drift.new_categories(reference, current) == {"new": 50}


def test_jensenshannon_is_base_two_and_bounded_by_one():
    reference, current = Counter({"a": 10, "b": 30}), Counter({"a": 30, "b": 10})
    expected = jensenshannon([0.25, 0.75], [0.75, 0.25], base=2)
    assert drift.jensenshannon_distance(reference, current) == pytest.approx(expected)
    assert drift.jensenshannon_distance(Counter({"a": 5}), Counter({"b": 5})) == pytest.approx(1.0)


def test_psi_uses_reference_deciles_and_floors_empty_bins():
    reference = np.sort(np.arange(1000, dtype=float))
    assert drift.numeric_psi(reference, reference) == pytest.approx(0.0)
    shares = drift.binned_shares(reference, drift.quantile_edges(reference))
    assert shares == pytest.approx(np.full(10, 0.1), abs=1e-3)
    far_away = np.sort(reference + 10_000)  # everything lands in the top bin
    expected = 9 * (1e-4 - 0.1) * np.log(1e-4 / 0.1) + (1 - 0.1) * np.log(1 / 0.1)
    assert drift.numeric_psi(reference, far_away) == pytest.approx(expected, rel=1e-3)


def test_sketches_built_in_batches_equal_one_pass_and_count_missing_values():
    frame = synthetic(10_000, seed=5, shifted=False)
    batched, whole = sketches(frame, batch_rows=999), sketches(frame, batch_rows=len(frame))
    assert np.array_equal(batched["stable_normal"].values, whole["stable_normal"].values)
    assert batched["stable_normal"].missing == int(frame["stable_normal"].isna().sum()) > 0
    assert batched["stable_color"].counts == whole["stable_color"].counts
    assert batched["stable_flag"].counts.keys() == {"True", "False"}


def test_integral_floats_from_columns_with_gaps_are_the_same_category_as_integers():
    with_gaps, plain = drift.CategoricalSketch(), drift.CategoricalSketch()
    with_gaps.add(pd.Series([12.0, 24.0, np.nan]))
    plain.add(pd.Series([12, 24]))
    assert with_gaps.counts == plain.counts and with_gaps.missing == 1


def test_datetimes_are_compared_as_seconds():
    series = pd.Series(pd.to_datetime(["2025-01-01", None, "2025-01-02"]))
    values = drift.numeric_values(series)
    assert values[2] - values[0] == 86_400 and np.isnan(values[1])


@pytest.mark.parametrize("n", [5_000, 50_000, 200_000])
def test_kolmogorov_sf_matches_scipy_where_scipy_sums_the_smirnov_series(n):
    from scipy import special

    for n_d_squared in (2.2, 2.9, 36.0, 369.0):
        d = (n_d_squared / n) ** 0.5
        assert drift.smirnov_sf(n, d) == pytest.approx(special.smirnov(n, d), rel=1e-8, abs=1e-300)
        assert drift.kolmogorov_sf(d, n) == pytest.approx(scipy_stats.kstwo.sf(d, n), rel=1e-8, abs=1e-300)
    for d in (0.5 / n ** 0.5, 0.6, 0.7 / n):  # outside that band SciPy's own answer is used
        assert drift.kolmogorov_sf(d, n) == scipy_stats.kstwo.sf(d, n)


def test_arrow_batches_give_the_same_sketches_as_pandas_frames():
    frame = synthetic(10_000, seed=6, shifted=True)
    frame["when"] = pd.to_datetime("2025-01-01") + pd.to_timedelta(np.arange(len(frame)), unit="min")
    frame.loc[::7, "when"] = pd.NaT
    frame["counts_with_gaps"] = frame["stable_counts"].where(frame.index % 5 != 0)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    kinds = {**{n: "numeric" for n in NUMERIC + ["when"]}, **{n: "categorical" for n in CATEGORICAL},
             "counts_with_gaps": "categorical"}
    from_pandas = {n: drift.new_sketch(k) for n, k in kinds.items()}
    from_arrow = {n: drift.new_sketch(k, expected_rows=4_000) for n, k in kinds.items()}  # must grow past it
    for start in range(0, len(frame), 3_001):  # slices: arrays with offsets into shared buffers
        drift.add_batch(from_pandas, frame.iloc[start:start + 3_001])
        drift.add_batch(from_arrow, table.slice(start, 3_001).to_batches(max_chunksize=3_001)[0])
    for name, kind in kinds.items():
        assert from_arrow[name].missing == from_pandas[name].missing, name
        if kind == "numeric":
            assert np.array_equal(from_arrow[name].values, from_pandas[name].values), name
            assert np.array_equal(from_arrow[name].values, np.sort(drift.numeric_values(frame[name])
                                                                   [~frame[name].isna().to_numpy()]))
        else:
            assert from_arrow[name].counts == from_pandas[name].counts, name
    assert from_arrow["when"].missing == int(frame["when"].isna().sum()) > 0
    assert from_arrow["stable_flag"].counts.keys() == {"True", "False"}
    assert set(from_arrow["counts_with_gaps"].counts) == {str(int(v)) for v in frame["counts_with_gaps"].dropna()}


def test_numbers_read_from_text_or_with_missing_values_become_nan():
    values = drift.numeric_values(pa.array(["1.5", "x", None, "4"]))
    assert values[[0, 3]].tolist() == [1.5, 4.0] and np.isnan(values[[1, 2]]).all()
    sliced = pa.array([1.0, None, 3.0, None, 5.0]).slice(1, 3)
    assert np.isnan(drift.numeric_values(sliced)[[0, 2]]).all() and drift.numeric_values(sliced)[1] == 3.0


def test_numeric_sketch_keeps_a_bounded_uniform_sample_past_its_capacity():
    from mlci.ml.drift import NumericSketch

    sketch = NumericSketch(capacity=2_000)
    positions = np.arange(200_000, dtype=np.float64)  # each value is its position in the stream
    for start in range(0, positions.size, 7_919):  # batches that straddle the capacity
        sketch.add(positions[start:start + 7_919])
    assert (sketch.count, sketch.seen, sketch.rows) == (2_000, 200_000, 200_000)
    kept = sketch.values
    assert np.all(np.diff(kept) > 0), "values are distinct positions, kept once each"
    # A uniform sample of the positions: late batches are as likely to be kept as early ones.
    assert scipy_stats.kstest(kept, scipy_stats.uniform(0, positions.size).cdf).pvalue > 0.001
    assert (kept >= 100_000).mean() == pytest.approx(0.5, abs=0.05)


def test_sampling_keeps_the_verdicts_and_scales_out_of_schema_counts():
    from mlci.core.dataschema import Column
    from mlci.ml.drift import NumericSketch, ks_test
    from mlci.ops.monitor.checks import out_of_schema

    rng = np.random.default_rng(5)
    full_ref, full_cur, shifted = (NumericSketch(capacity=10**7) for _ in range(3))
    small_ref, small_cur, small_shifted = (NumericSketch(capacity=20_000) for _ in range(3))
    for _ in range(10):
        ref, cur = rng.normal(0, 1, 50_000), rng.normal(0, 1, 50_000)
        moved = rng.normal(0.1, 1, 50_000)
        for sketch, values in ((full_ref, ref), (small_ref, ref), (full_cur, cur), (small_cur, cur),
                               (shifted, moved), (small_shifted, moved)):
            sketch.add(values)
    assert ks_test(small_ref.values, small_shifted.values)[1] < 1e-6  # the shift is still found
    assert ks_test(small_ref.values, small_cur.values)[1] > 0.001      # and nothing is invented
    rule = Column(type="float", max=1.0)
    exact = out_of_schema(full_cur, rule)
    assert out_of_schema(small_cur, rule) == pytest.approx(exact, rel=0.05)


def test_cramers_v_equals_scipys_association_and_ignores_sample_size():
    """The effect size beside chi-square's p-value: SciPy's own Cramér's V on the same 2×k table, and the
    same value when every count is multiplied (where the p-value would fall towards 0)."""
    from collections import Counter

    import numpy as np
    from scipy.stats.contingency import association

    from mlci.ml.drift import chi2_test, cramers_v

    rng = np.random.default_rng(3)
    for _ in range(20):
        k = int(rng.integers(2, 7))
        reference = Counter({f"c{i}": int(n) for i, n in enumerate(rng.integers(1, 300, k))})
        current = Counter({f"c{i}": int(n) for i, n in enumerate(rng.integers(1, 300, k))})
        statistic, _ = chi2_test(reference, current)
        table = np.vstack([[reference[f"c{i}"] for i in range(k)], [current[f"c{i}"] for i in range(k)]])
        assert cramers_v(statistic, reference, current) == pytest.approx(association(table, method="cramer"))
        bigger = (Counter({c: 10 * n for c, n in reference.items()}), Counter({c: 10 * n for c, n in current.items()}))
        assert cramers_v(chi2_test(*bigger)[0], *bigger) == pytest.approx(cramers_v(statistic, reference, current))
