"""The gate arithmetic of mlci.core.gates, rule by rule, with hand-computed expectations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mlci.core.config import GateRule, GatesSection, SliceRef
from mlci.core.gates import (
    MetricSet,
    allowed_drop,
    check_champion,
    check_threshold,
    evaluate_gates,
    improvement,
    lower_bound,
)


def metrics(values: dict, slices: dict | None = None, label: str = "") -> MetricSet:
    return MetricSet(values, slices or {}, label)


@pytest.mark.parametrize("value,low,high,passed", [
    (0.80, 0.8, None, True),      # bounds are inclusive
    (0.7999, 0.8, None, False),
    (0.30, None, 0.3, True),
    (0.31, None, 0.3, False),
    (0.5, 0.4, 0.6, True),
    (0.7, 0.4, 0.6, False),
])
def test_threshold_bounds_are_inclusive(value, low, high, passed):
    check = check_threshold(GateRule(metric="roc_auc", min=low, max=high), metrics({"roc_auc": value}))
    assert check.passed is passed


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), None, "0.9"])
def test_missing_or_non_finite_metric_fails_closed(bad):
    check = check_threshold(GateRule(metric="accuracy", min=0.0), metrics({"accuracy": bad}))
    assert not check.passed
    assert "fail closed" in check.message


def test_threshold_on_a_slice_and_on_a_missing_slice():
    slices = {"region": {"east": {"accuracy": 0.6}, "west": {"accuracy": 0.9}}}
    rule = GateRule(metric="accuracy", min=0.65, slice=SliceRef(column="region", value="east"))
    assert not check_threshold(rule, metrics({"accuracy": 0.8}, slices)).passed
    rule_west = GateRule(metric="accuracy", min=0.65, slice=SliceRef(column="region", value="west"))
    assert check_threshold(rule_west, metrics({"accuracy": 0.8}, slices)).passed
    missing = GateRule(metric="accuracy", min=0.1, slice=SliceRef(column="region", value="south"))
    check = check_threshold(missing, metrics({"accuracy": 0.8}, slices))
    assert not check.passed and "no slice region=south" in check.message


def test_slice_values_match_as_text():
    slices = {"loan_term": {"12": {"accuracy": 0.7}}}
    rule = GateRule(metric="accuracy", min=0.5, slice=SliceRef(column="loan_term", value=12))
    assert check_threshold(rule, metrics({}, slices)).passed


def test_absolute_tolerance_is_one_sided():
    rule = GateRule(metric="roc_auc", max_drop=0.01)
    champion = metrics({"roc_auc": 0.80})
    assert check_champion(rule, metrics({"roc_auc": 0.791}), champion).passed      # drop 0.009
    assert check_champion(rule, metrics({"roc_auc": 0.790}), champion).passed      # drop exactly ε
    assert not check_champion(rule, metrics({"roc_auc": 0.789}), champion).passed  # drop 0.011
    assert check_champion(rule, metrics({"roc_auc": 0.95}), champion).passed       # improvements always pass


def test_relative_tolerance_scales_with_the_champion_magnitude():
    rule = GateRule(metric="r2", max_drop=0.1, relative=True)
    # ε = 0.1 * |0.5| = 0.05
    assert check_champion(rule, metrics({"r2": 0.451}), metrics({"r2": 0.5})).passed
    assert not check_champion(rule, metrics({"r2": 0.449}), metrics({"r2": 0.5})).passed
    # a negative champion value: ε = 0.1 * |-0.2| = 0.02, still "may drop by at most"
    assert check_champion(rule, metrics({"r2": -0.219}), metrics({"r2": -0.2})).passed
    assert not check_champion(rule, metrics({"r2": -0.221}), metrics({"r2": -0.2})).passed


def test_lower_is_better_metrics_are_oriented():
    rule = GateRule(metric="rmse", max_drop=5.0)
    assert improvement("rmse", 90.0, 100.0) == 10.0
    assert check_champion(rule, metrics({"rmse": 104.9}), metrics({"rmse": 100.0})).passed
    assert not check_champion(rule, metrics({"rmse": 105.1}), metrics({"rmse": 100.0})).passed
    assert allowed_drop(0.05, relative=True, champion=-4.0) == pytest.approx(0.2)


def test_lower_bound_equals_numpy_quantile():
    values = np.random.default_rng(0).normal(0.01, 0.02, 997)
    for confidence in (0.9, 0.95, 0.99):
        assert lower_bound(values.tolist(), confidence) == pytest.approx(np.quantile(values, 1 - confidence))
    assert lower_bound([math.nan, math.nan], 0.95) is None
    assert lower_bound([math.nan, 1.0, 2.0], 0.5) == pytest.approx(1.5)


def test_bootstrap_bound_decides_not_the_point_estimate():
    rule = GateRule(metric="roc_auc", max_drop=0.01, bootstrap=True)
    challenger, champion = metrics({"roc_auc": 0.81}), metrics({"roc_auc": 0.80})
    noisy = np.linspace(-0.05, 0.07, 1000)   # point estimate better, lower 95% bound -0.044
    check = check_champion(rule, challenger, champion, differences=noisy, confidence=0.95)
    assert not check.passed
    assert check.value == pytest.approx(np.quantile(noisy, 0.05))
    tight = np.linspace(-0.009, 0.03, 1000)
    assert check_champion(rule, challenger, champion, differences=tight, confidence=0.95).passed


def gates(**kwargs) -> GatesSection:
    return GatesSection(**kwargs)


def test_first_run_policy_pass_and_fail():
    rules = [GateRule(metric="roc_auc", max_drop=0.0), GateRule(metric="roc_auc", min=0.5)]
    passing = evaluate_gates(gates(rules=rules), metrics({"roc_auc": 0.7}), None)
    assert passing.exit_code == 0
    assert "no champion 'production' yet" in passing.checks[0].message
    failing = evaluate_gates(gates(rules=rules, first_run="fail"), metrics({"roc_auc": 0.7}), None)
    assert failing.exit_code == 1


def test_warn_rules_report_but_exit_zero_and_fail_rules_exit_one():
    rules = [GateRule(metric="accuracy", min=0.9, severity="warn"), GateRule(metric="roc_auc", min=0.5)]
    report = evaluate_gates(gates(rules=rules), metrics({"accuracy": 0.8, "roc_auc": 0.7}), None)
    assert [c.status for c in report.checks] == ["warn", "pass"]
    assert report.exit_code == 0
    rules[1] = GateRule(metric="roc_auc", min=0.75)
    assert evaluate_gates(gates(rules=rules), metrics({"accuracy": 0.8, "roc_auc": 0.7}), None).exit_code == 1


def test_a_rule_with_bounds_and_max_drop_gives_two_checks():
    rule = GateRule(metric="f1", min=0.5, max_drop=0.02)
    report = evaluate_gates(gates(rules=[rule]), metrics({"f1": 0.6}), metrics({"f1": 0.7}, label="v1"))
    assert [c.group for c in report.checks] == ["threshold", "champion"]
    assert [c.passed for c in report.checks] == [True, False]


def test_bootstrap_rule_without_predictions_fails_closed():
    rule = GateRule(metric="roc_auc", max_drop=0.05, bootstrap=True)
    report = evaluate_gates(gates(rules=[rule]), metrics({"roc_auc": 0.8}), metrics({"roc_auc": 0.8}), bootstrap=None)
    assert report.exit_code == 1
    assert "per-row holdout predictions" in report.checks[0].message
