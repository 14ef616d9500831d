"""Tests of rltransfer.metrics on tiny hand-computed curves."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rltransfer.errors import ConfigError
from rltransfer.metrics import (
    area_under_curve,
    asymptotic_performance,
    initial_performance,
    jumpstart,
    run_metrics,
    time_to_threshold,
    transfer_ratio,
)

STEPS = np.array([0, 10, 20])
RETURNS = np.array([0.0, 5.0, 10.0])


def test_area_under_curve_hand_computed() -> None:
    # trapezoids: (0+5)/2*10 + (5+10)/2*10 = 100; normalized by span 20 * range 10 -> 0.5
    assert area_under_curve(STEPS, RETURNS, low=0, high=10) == pytest.approx(0.5)
    # shifting by low: returns 10..20 with low=10 is the same curve
    assert area_under_curve(STEPS, RETURNS + 10, low=10, high=20) == pytest.approx(0.5)
    # constant at the top of the range is 1, at the bottom 0
    assert area_under_curve(STEPS, [10, 10, 10], 0, 10) == pytest.approx(1.0)
    assert area_under_curve(STEPS, [0, 0, 0], 0, 10) == pytest.approx(0.0)
    # uneven spacing: steps [0, 10, 40], returns [0, 10, 10] -> 50 + 300 = 350 / (40 * 10)
    assert area_under_curve([0, 10, 40], [0, 10, 10], 0, 10) == pytest.approx(350 / 400)
    # CartPole-like scale
    assert area_under_curve([0, 100], [0, 500], 0, 500) == pytest.approx(0.5)


def test_area_under_curve_span_not_origin() -> None:
    # a schedule that starts at step 5 is normalized by its span (20 - 5)
    assert area_under_curve([5, 20], [4, 4], 0, 8) == pytest.approx(0.5)


def test_area_under_curve_single_evaluation() -> None:
    assert area_under_curve([0], [250.0], 0, 500) == pytest.approx(0.5)
    assert area_under_curve([1000], [500.0], 0, 500) == pytest.approx(1.0)


def test_area_under_curve_not_clipped() -> None:
    assert area_under_curve(STEPS, [20, 20, 20], 0, 10) == pytest.approx(2.0)


def test_initial_and_jumpstart() -> None:
    assert initial_performance(STEPS, RETURNS) == 0.0
    assert initial_performance([5, 10], [3.0, 4.0]) == 3.0
    assert jumpstart(30.0, 10.0) == pytest.approx(20.0)
    assert jumpstart([30.0, 50.0], [10.0, 20.0, 30.0]) == pytest.approx(20.0)


def test_asymptotic_performance() -> None:
    r = [0.0, 1.0, 2.0, 3.0, 4.0]
    assert asymptotic_performance(r) == pytest.approx(3.0)
    assert asymptotic_performance(r, last_k=1) == pytest.approx(4.0)
    assert asymptotic_performance(r, last_k=10) == pytest.approx(2.0)  # fewer evals than k: all
    with pytest.raises(ConfigError, match="last_k"):
        asymptotic_performance(r, last_k=0)


def test_time_to_threshold_first_evaluation_at_or_above() -> None:
    assert time_to_threshold(STEPS, RETURNS, 5.0) == (10.0, False)  # equality counts
    assert time_to_threshold(STEPS, RETURNS, 4.9) == (10.0, False)  # no interpolation
    assert time_to_threshold(STEPS, RETURNS, -1.0) == (0.0, False)
    # a run that reaches the threshold and falls back still counts from the first crossing
    assert time_to_threshold([0, 10, 20], [0, 9, 2], 8) == (10.0, False)


def test_time_to_threshold_censored() -> None:
    value, censored = time_to_threshold(STEPS, RETURNS, 10.5)
    assert censored is True
    assert value == 20.0  # last evaluation step: a lower bound
    with pytest.raises(ConfigError, match="threshold"):
        time_to_threshold(STEPS, RETURNS, math.nan)


def test_transfer_ratio_and_guard() -> None:
    assert transfer_ratio(0.6, 0.4) == pytest.approx(0.5)
    assert transfer_ratio(0.2, 0.4) == pytest.approx(-0.5)
    assert math.isnan(transfer_ratio(0.3, 0.0))
    assert math.isnan(transfer_ratio(0.3, 1e-12))


def test_run_metrics_keys_and_values() -> None:
    m = run_metrics(STEPS, RETURNS, threshold=5.0, low=0, high=10, last_k=2)
    assert m == {
        "initial": 0.0,
        "asymptotic": 7.5,
        "auc": pytest.approx(0.5),
        "time_to_threshold": 10.0,
        "ttt_censored": 0.0,
    }
    assert all(isinstance(v, float) for v in m.values())
    assert run_metrics(STEPS, RETURNS, threshold=11, low=0, high=10)["ttt_censored"] == 1.0


@pytest.mark.parametrize(
    ("steps", "returns", "match"),
    [
        ([0, 10], [1.0, 2.0, 3.0], r"same length.*steps: 2 values, returns: 3 values"),
        ([], [], "empty"),
        ([0, 10, 10], [1, 2, 3], r"strictly increasing.*steps\[1\]=10 then steps\[2\]=10"),
        ([0, 20, 10], [1, 2, 3], "strictly increasing"),
        ([0, 1.5], [1, 2], "non-negative integers"),
        ([-10, 0], [1, 2], "non-negative integers"),
        ([0, 10], [1.0, math.nan], "finite"),
        ([[0, 10]], [[1, 2]], "1-D"),
    ],
    ids=["length", "empty", "repeated-step", "decreasing", "fractional", "negative", "nan-return", "2d"],
)
def test_bad_curves_raise_config_error(steps: list, returns: list, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        run_metrics(steps, returns, threshold=1, low=0, high=10)


def test_bad_range_raises() -> None:
    with pytest.raises(ConfigError, match=r"low=10, high=10"):
        area_under_curve(STEPS, RETURNS, 10, 10)
    with pytest.raises(ConfigError, match="low < high"):
        area_under_curve(STEPS, RETURNS, 5, 0)


def test_config_error_is_value_error() -> None:
    with pytest.raises(ValueError):
        area_under_curve([0, 0], [1, 2], 0, 1)
