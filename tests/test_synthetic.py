"""Tests of rltransfer.synthetic: shapes, determinism, hand-computed metrics, agreement with
rltransfer.metrics, and the exactness of each family's null and planted effect."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rltransfer import synthetic as sy
from rltransfer.errors import ConfigError, UnknownNameError
from rltransfer.metrics import area_under_curve, run_metrics

# ---------------------------------------------------------------------------------------------
# batch metrics


def test_batch_metrics_hand_computed() -> None:
    steps = [0, 10, 20]
    curves = np.array([[0.0, 50.0, 100.0], [100.0, 100.0, 100.0]])
    m = sy.batch_metrics(steps, curves, low=0.0, high=100.0, threshold=60.0, last_k=2)
    # trapezoid: (0 + 50) / 2 * 10 + (50 + 100) / 2 * 10 = 1000 over span 20 and range 100 -> 0.5
    np.testing.assert_allclose(m["auc"], [0.5, 1.0])
    np.testing.assert_allclose(m["initial"], [0.0, 100.0])
    np.testing.assert_allclose(m["asymptotic"], [75.0, 100.0])
    np.testing.assert_allclose(m["time_to_threshold"], [20.0, 0.0])
    assert m["ttt_censored"].tolist() == [False, False]
    never = sy.batch_metrics(steps, curves, low=0.0, high=100.0, threshold=200.0)
    np.testing.assert_allclose(never["time_to_threshold"], [20.0, 20.0])  # censored at the last step
    assert never["ttt_censored"].all()
    # last_k larger than the curve averages everything, as asymptotic_performance does
    np.testing.assert_allclose(sy.batch_metrics(steps, curves, low=0, high=100, threshold=1, last_k=9)
                               ["asymptotic"], [50.0, 100.0])


@pytest.mark.parametrize("family", sorted(sy.FAMILIES))
def test_batch_metrics_agree_with_run_metrics(family: str) -> None:
    batch = sy.simulate_pairs(family, 3, (2, 3), effect=1.5, random_state=4)
    mt, ms = batch.metrics()
    for arm, got in ((batch.transfer, mt), (batch.scratch, ms)):
        for i in range(arm.shape[0]):
            for j in range(arm.shape[1]):
                want = run_metrics(batch.steps, arm[i, j], batch.threshold, batch.low, batch.high, batch.last_k)
                for key, value in want.items():
                    assert float(got[key][i, j]) == pytest.approx(value, rel=1e-12, abs=1e-12), (key, i, j)


def test_metric_weights_reproduce_area_under_curve() -> None:
    steps = np.array([0, 1000, 3000, 7000])
    curve = np.array([5.0, 40.0, 90.0, 120.0])
    w, offset = sy.metric_weights("auc", steps, low=-10.0, high=150.0)
    assert w @ curve + offset == pytest.approx(area_under_curve(steps, curve, -10.0, 150.0))
    with pytest.raises(UnknownNameError, match="linear metric"):
        sy.metric_weights("median", steps)


def test_batch_metrics_validation() -> None:
    with pytest.raises(ConfigError, match="n_evals=3"):
        sy.batch_metrics([0, 1, 2], np.zeros((2, 4)), low=0, high=1, threshold=1)
    with pytest.raises(ConfigError, match="strictly increasing"):
        sy.batch_metrics([0, 2, 1], np.zeros((2, 3)), low=0, high=1, threshold=1)
    with pytest.raises(ConfigError, match="finite"):
        sy.batch_metrics([0, 1, 2], np.full((1, 3), np.nan), low=0, high=1, threshold=1)
    with pytest.raises(ConfigError, match="low < high"):
        sy.batch_metrics([0, 1, 2], np.zeros((1, 3)), low=1, high=1, threshold=1)


# ---------------------------------------------------------------------------------------------
# sampling: shapes, determinism, validation


def test_simulate_pairs_shapes_and_determinism() -> None:
    b = sy.simulate_pairs("logistic", 7, (3, 5), random_state=1)
    assert b.transfer.shape == (7, 3, 26) and b.scratch.shape == (7, 5, 26)
    assert b.steps.shape == (26,) and not b.steps.flags.writeable
    again = sy.simulate_pairs("logistic", 7, (3, 5), random_state=1)
    np.testing.assert_array_equal(b.transfer, again.transfer)
    np.testing.assert_array_equal(b.scratch, again.scratch)
    gen = sy.simulate_pairs("logistic", 7, (3, 5), random_state=np.random.default_rng(1))
    np.testing.assert_array_equal(b.transfer, gen.transfer)  # a Generator seeded alike gives the same draws
    other = sy.simulate_pairs("logistic", 7, (3, 5), random_state=2)
    assert not np.array_equal(b.transfer, other.transfer)
    custom = sy.simulate_pairs("bimodal", 2, 4, steps=[0, 50, 100], random_state=0)
    assert custom.transfer.shape == (2, 4, 3)
    assert sy.sample_curves("censored", (2, 3, 4), random_state=0).shape == (2, 3, 4, 26)


def test_unknown_family_and_bad_arguments() -> None:
    with pytest.raises(UnknownNameError, match=r"unknown curve family 'logistc'.*Did you mean: 'logistic'"):
        sy.simulate_pairs("logistc", 10, 5)
    with pytest.raises(ConfigError, match="n_pairs must be an integer >= 1, got 0"):
        sy.simulate_pairs("logistic", 0, 5)
    with pytest.raises(ConfigError, match="n_seeds"):
        sy.simulate_pairs("logistic", 3, (5, 5, 5))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="effect must be a finite"):
        sy.simulate_pairs("logistic", 3, 5, effect=math.inf)
    with pytest.raises(ConfigError, match="arm must be"):
        sy.sample_curves("logistic", (2,), arm="treated")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="random_state"):
        sy.simulate_pairs("logistic", 3, 5, random_state="x")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# exactness of the nulls and the planted effects


@pytest.mark.parametrize("family", sorted(sy.FAMILIES))
def test_effect_is_the_profile_added_to_the_same_draws(family: str) -> None:
    """A transfer seed is the scratch seed of the same draws, spread about the mean, plus delta * h."""
    scratch = sy.sample_curves(family, (4, 3), random_state=9)
    transfer = sy.sample_curves(family, (4, 3), arm="transfer", effect=2.0, random_state=9)
    fam = sy.get_family(family)
    m = sy.mean_curve(family)
    np.testing.assert_allclose(transfer, m + fam.spread * (scratch - m) + sy.effect_profile(family, 2.0),
                               atol=1e-9)
    assert not np.any(sy.effect_profile(family, 0.0))


def test_jumpstart_and_crossover_profiles() -> None:
    x = (sy.DEFAULT_STEPS - sy.DEFAULT_STEPS[0]) / (sy.DEFAULT_STEPS[-1] - sy.DEFAULT_STEPS[0])
    jump = sy.effect_profile("jumpstart", 2.0)
    _, sd_init = sy.metric_moments("jumpstart", "initial")
    assert jump[0] == pytest.approx(2.0 * sd_init)
    assert np.all(jump[x >= 0.3] == 0.0), "the later curve is unchanged"
    eff = sy.planted_effects("jumpstart", 2.0)
    assert eff["initial"] == pytest.approx(2.0) and eff["asymptotic"] == 0.0 and 0 < eff["auc"] < 0.2
    cross = sy.planted_effects("crossover", 3.0)
    assert cross["initial"] == pytest.approx(3.0) and cross["asymptotic"] == pytest.approx(-3.0)
    speed = sy.planted_effects("logistic", 2.0)
    assert speed["auc"] == pytest.approx(2.0) and speed["initial"] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("family", sorted(sy.FAMILIES))
def test_exact_moments_match_simulation(family: str) -> None:
    """Quadrature means and sds of the linear metrics against 40k simulated runs (within 4 se)."""
    n = 40_000
    b = sy.simulate_pairs(family, n, 1, effect=1.0, random_state=11)
    mt, ms = b.metrics()
    diffs = sy.planted_differences(family, 1.0)
    for metric in sy.LINEAR_METRICS:
        mean, sd = sy.metric_moments(family, metric)
        _, sd_t = sy.metric_moments(family, metric, arm="transfer")
        s = ms[metric][:, 0]
        t = mt[metric][:, 0]
        assert abs(s.mean() - mean) < 4 * sd / math.sqrt(n), (metric, s.mean(), mean)
        assert abs(s.std() / sd - 1) < 4 * math.sqrt(2 / n) + 0.01, (metric, s.std(), sd)
        assert abs(t.std() / sd_t - 1) < 4 * math.sqrt(2 / n) + 0.01, (metric, t.std(), sd_t)
        se = math.sqrt((sd**2 + sd_t**2) / n)
        assert abs((t.mean() - s.mean()) - diffs[metric]) < 4 * se, (metric, t.mean() - s.mean(), diffs[metric])


def test_unequal_spread_null_has_equal_means_and_3x_sd() -> None:
    for metric in sy.LINEAR_METRICS:
        m_s, sd_s = sy.metric_moments("unequal_spread", metric)
        m_t, sd_t = sy.metric_moments("unequal_spread", metric, arm="transfer")
        assert m_t == m_s and sd_t == pytest.approx(3 * sd_s)


def test_censored_family_is_mostly_censored() -> None:
    b = sy.simulate_pairs("censored", 2000, 1, random_state=3)
    _, ms = b.metrics()
    assert 0.7 < ms["ttt_censored"].mean() < 0.85
    b = sy.simulate_pairs("logistic", 2000, 1, random_state=3)
    assert b.metrics()[1]["ttt_censored"].mean() < 0.05


def test_bimodal_never_learners() -> None:
    b = sy.simulate_pairs("bimodal", 4000, 1, random_state=5)
    final = b.metrics()[1]["asymptotic"][:, 0]
    assert 0.17 < np.mean(final < 100) < 0.23  # one seed in five stays near 10
