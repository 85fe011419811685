"""Drift decisions: method choice, thresholds, multiple-testing corrections, dataset share, decay."""

from __future__ import annotations

import pytest

from mlci.core import drift


def test_auto_uses_tests_on_small_samples_and_distances_on_large_ones():
    small, large = drift.AUTO_LARGE_SAMPLE, drift.AUTO_LARGE_SAMPLE + 1
    assert drift.choose_method("numeric", "auto", small) == "ks"
    assert drift.choose_method("numeric", "auto", large) == "wasserstein"
    assert drift.choose_method("categorical", "auto", small) == "chi2"
    assert drift.choose_method("categorical", "auto", large) == "jensenshannon"


def test_configured_method_wins_and_must_fit_the_column_kind():
    assert drift.choose_method("numeric", "psi", 10**6) == "psi"
    assert drift.choose_method("categorical", "psi", 10) == "psi"
    with pytest.raises(ValueError, match="chi2.*numeric"):
        drift.choose_method("numeric", "chi2", 10)
    with pytest.raises(ValueError, match="ks.*categorical"):
        drift.choose_method("categorical", "ks", 10)


def test_thresholds_come_from_p_value_distances_or_the_column_override():
    assert drift.threshold_for("ks", p_value=0.01) == 0.01
    assert drift.threshold_for("psi", p_value=0.01) == drift.DEFAULT_THRESHOLDS["psi"]
    assert drift.threshold_for("wasserstein", p_value=0.01, distances={"wasserstein": 0.3}) == 0.3
    assert drift.threshold_for("chi2", p_value=0.05, override=0.001) == 0.001


def test_bonferroni_multiplies_by_the_number_of_tests_and_caps_at_one():
    assert drift.bonferroni([0.01, 0.02, 0.5]) == pytest.approx([0.03, 0.06, 1.0])


def test_benjamini_hochberg_matches_the_textbook_example():
    # Benjamini & Hochberg step-up: p_(i) * m / i, made monotone from the largest rank down.
    p = [0.01, 0.04, 0.03, 0.005, 0.20]
    expected = [0.025, 0.05, 0.05, 0.025, 0.20]
    assert drift.benjamini_hochberg(p) == pytest.approx(expected)


def test_benjamini_hochberg_agrees_with_scipy():
    stats = pytest.importorskip("scipy.stats")
    p = [0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205, 0.212, 0.216, 0.222, 0.251, 0.269, 0.275, 0.34]
    assert drift.benjamini_hochberg(p) == pytest.approx(list(stats.false_discovery_control(p, method="bh")))


def _plans(*specs):
    return [drift.Plan(name, "numeric", method, threshold) for name, method, threshold in specs]


def test_correction_turns_a_marginal_p_value_into_no_drift_and_leaves_distances_alone():
    plans = _plans(("a", "ks", 0.05), ("b", "ks", 0.05), ("c", "ks", 0.05), ("d", "wasserstein", 0.1))
    scores = {"a": 0.0001, "b": 0.03, "c": 0.9, "d": 0.12}
    plain = {v.column: v.drifted for v in drift.decide(plans, scores, "none")}
    corrected = {v.column: v for v in drift.decide(plans, scores, "bonferroni")}
    assert plain == {"a": True, "b": True, "c": False, "d": True}
    assert {c: v.drifted for c, v in corrected.items()} == {"a": True, "b": False, "c": False, "d": True}
    assert corrected["b"].decided_on == pytest.approx(0.09)  # three tests, the distance is not one
    assert corrected["d"].decided_on == 0.12
    assert corrected["b"].score == 0.03  # the raw score is kept


def test_distance_drift_is_at_or_above_the_threshold_and_nan_never_drifts():
    plans = _plans(("a", "psi", 0.2), ("b", "psi", 0.2), ("c", "ks", 0.05))
    verdicts = drift.decide(plans, {"a": 0.2, "b": 0.1999, "c": float("nan")}, "bh")
    assert [v.drifted for v in verdicts] == [True, False, False]


def test_dataset_drift_needs_the_share_and_at_least_one_drifted_feature():
    verdicts = drift.decide(_plans(("a", "ks", 0.05), ("b", "ks", 0.05), ("c", "ks", 0.05)),
                            {"a": 0.001, "b": 0.5, "c": 0.5})
    share = drift.drifted_share(verdicts)
    assert share == pytest.approx(1 / 3)
    assert drift.dataset_drifted(share, 0.3)
    assert not drift.dataset_drifted(share, 0.5)
    assert not drift.dataset_drifted(0.0, 0.0)


def test_metric_decay_is_absolute_for_scores_and_relative_for_errors():
    assert drift.metric_decay("roc_auc", 0.80, 0.76, 0.05) == (pytest.approx(0.04), False)
    assert drift.metric_decay("roc_auc", 0.80, 0.74, 0.05)[1]
    assert drift.metric_decay("rmse", 10.0, 10.4, 0.05) == (pytest.approx(0.04), False)
    assert drift.metric_decay("rmse", 10.0, 10.6, 0.05)[1]
    assert not drift.metric_decay("accuracy", 0.8, 0.9, 0.0)[1]  # an improvement is no decay


def test_quality_excess_compares_with_the_reference_rate():
    assert not drift.quality_excess(0.06, 0.02, 0.05)
    assert drift.quality_excess(0.08, 0.02, 0.05)
