"""Tests of rltransfer.statistics: hand-computed answers, determinism, and a synthetic validation of
the verdict rule's error rates and power on simulated learning curves."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from rltransfer.errors import ConfigError
from rltransfer.metrics import area_under_curve
from rltransfer.statistics import (
    VERDICT_RULE,
    Comparison,
    Interval,
    bootstrap_ci_diff,
    censored_as_budget,
    cohens_d,
    holm,
    judge_suite,
    mann_whitney_p,
    probability_of_improvement,
    required_seeds,
    verdict,
    welch_p,
)

# ---------------------------------------------------------------------------------------------
# hand-computed answers


def test_probability_of_improvement_hand_computed() -> None:
    # transfer [3, 4] vs scratch [1, 2, 3]: 3 beats 1 and 2 and ties 3 -> 2.5; 4 beats all -> 3
    poi = probability_of_improvement([3, 4], [1, 2, 3], n_boot=200)
    assert poi.point == pytest.approx(5.5 / 6)
    assert 0.0 <= poi.low <= poi.point <= poi.high <= 1.0
    # same as Mann-Whitney U / (n_t n_s)
    u = stats.mannwhitneyu([3, 4], [1, 2, 3]).statistic
    assert poi.point == pytest.approx(u / 6)
    # ties everywhere count half
    assert probability_of_improvement([1, 2, 3], [2, 2], n_boot=50).point == pytest.approx(0.5)
    # lower is better: a win is a smaller transfer value
    low = probability_of_improvement([3, 4], [1, 2, 3], n_boot=50, higher_is_better=False)
    assert low.point == pytest.approx(0.5 / 6)


def test_holm_known_vector() -> None:
    # sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> running max 0.02, 0.03, 0.06, 0.06
    got = holm([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(got, [0.03, 0.06, 0.06, 0.02])
    # nan is not tested and does not count in m (m=2 here)
    got = holm([0.01, math.nan, 0.04])
    np.testing.assert_allclose(got, [0.02, math.nan, 0.04])
    # capped at 1 and monotone
    np.testing.assert_allclose(holm([0.5, 0.6]), [1.0, 1.0])
    assert np.all(np.isnan(holm([math.nan, math.nan])))
    np.testing.assert_allclose(holm([0.2]), [0.2])
    with pytest.raises(ConfigError, match="p-values must lie in"):
        holm([0.1, 1.5])


def test_bootstrap_ci_diff_point_orientation_and_determinism() -> None:
    t, s = [5.0, 6.0, 7.0, 8.0], [1.0, 2.0, 3.0]
    ci = bootstrap_ci_diff(t, s, n_boot=500, random_state=1)
    assert ci.point == pytest.approx(6.5 - 2.0)
    assert ci.low <= ci.point <= ci.high
    assert ci.above(0.0) and not ci.below(0.0)
    assert bootstrap_ci_diff(t, s, n_boot=500, random_state=1) == ci
    assert bootstrap_ci_diff(t, s, n_boot=500, random_state=2) != ci
    gen = bootstrap_ci_diff(t, s, n_boot=500, random_state=np.random.default_rng(1))
    assert gen == ci  # a Generator seeded alike gives the same draws
    flipped = bootstrap_ci_diff(t, s, n_boot=500, random_state=1, higher_is_better=False)
    assert flipped.point == pytest.approx(-4.5)
    assert flipped.below(0.0)
    # a median works too
    assert bootstrap_ci_diff(t, s, stat=np.median, n_boot=100).point == pytest.approx(4.5)
    # constant arms: the interval collapses onto the point
    assert bootstrap_ci_diff([2, 2, 2], [1, 1], n_boot=100) == Interval(1.0, 1.0, 1.0)


def test_welch_matches_scipy_and_degenerate_cases() -> None:
    rng = np.random.default_rng(0)
    for _ in range(5):
        t, s = rng.normal(0, 1, 5), rng.normal(0.5, 2, 7)
        assert welch_p(t, s) == pytest.approx(stats.ttest_ind(t, s, equal_var=False).pvalue, rel=1e-9)
    assert math.isnan(welch_p([1.0], [1.0, 2.0]))  # n < 2
    assert math.isnan(welch_p([3.0, 3.0, 3.0], [1.0, 1.0]))  # both constant
    assert 0.0 < welch_p([3.0, 3.0, 3.0], [1.0, 2.0, 1.5]) < 1.0  # one constant arm is fine


def test_mann_whitney_degenerate_cases() -> None:
    assert math.isnan(mann_whitney_p([1.0], [1.0, 2.0]))
    assert math.isnan(mann_whitney_p([2.0, 2.0], [2.0, 2.0, 2.0]))
    p = mann_whitney_p([2.0, 2.0, 2.0], [1.0, 1.0, 1.0])
    assert 0.0 < p < 0.1
    assert mann_whitney_p([1, 2, 3, 4, 5], [6, 7, 8, 9, 10]) == pytest.approx(2 / 252)  # exact


def test_required_seeds_sanity() -> None:
    base = np.array([-1.0, 1.0, -1.0, 1.0, 0.0, 0.0])
    base = base / base.std(ddof=1)  # sd exactly 1 so d is the shift
    assert cohens_d(base + 1.0, base) == pytest.approx(1.0)
    # normal approximation: 2 * (1.96 + 0.8416)^2 / 1 = 15.7 -> 16; the t-test needs one more
    assert required_seeds(base + 1.0, base, exact=False) == 16
    assert required_seeds(base + 1.0, base) == 17
    needed = [required_seeds(base + d, base) for d in (0.5, 1.0, 2.0, 3.0)]
    assert needed == sorted(needed, reverse=True)
    assert needed[-1] >= 2
    assert required_seeds(base - 1.0, base) == required_seeds(base + 1.0, base)  # sign-free
    assert math.isinf(required_seeds(base, base))  # no effect
    assert math.isinf(required_seeds(base + 0.05, base))  # ~6300 > cap 1000
    assert required_seeds(base + 0.05, base, cap=10_000) > 1000
    assert math.isnan(required_seeds([1.0], base))


def test_censored_as_budget() -> None:
    got = censored_as_budget([100.0, 4000.0, 500.0], [False, True, False], budget=5000)
    np.testing.assert_allclose(got, [100.0, 5000.0, 500.0])
    with pytest.raises(ConfigError, match="budget"):
        censored_as_budget([6000.0], [False], budget=5000)


def test_random_state_validation() -> None:
    with pytest.raises(ConfigError, match="random_state"):
        bootstrap_ci_diff([1, 2], [3, 4], random_state="seed")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="finite"):
        verdict([1.0, math.nan, 2.0], [1.0, 2.0, 3.0])


# ---------------------------------------------------------------------------------------------
# the verdict


def test_verdict_inconclusive_with_two_seeds() -> None:
    v = verdict([10.0, 10.1], [0.0, 0.1, 0.2, 0.05], n_boot=200)
    assert v.label == "inconclusive"
    assert "too few seeds" in v.reason and "2 transfer" in v.reason
    assert v.ci.above(0.0)  # the effect is obvious, the rule still refuses to call it
    assert math.isnan(v.p_adjusted)


def test_verdict_positive_negative_and_orientation() -> None:
    t = [0.80, 0.82, 0.85, 0.79, 0.83]
    s = [0.50, 0.55, 0.52, 0.48, 0.51]
    pos = verdict(t, s, n_boot=500)
    assert pos.label == "positive", pos.reason
    assert pos.p_value < 0.05 and pos.p_adjusted == pos.p_value  # m = 1
    assert pos.prob_improvement.point == 1.0
    assert pos.effect_size > 0
    neg = verdict(s, t, n_boot=500)
    assert neg.label == "negative" and neg.ci.below(0.0)
    # time to threshold: transfer reaches it sooner -> positive with higher_is_better=False
    ttt = verdict([1000, 1200, 900, 1100, 1000], [4000, 5000, 4500, 3900, 4800], higher_is_better=False,
                  metric="time_to_threshold", n_boot=500)
    assert ttt.label == "positive"
    assert ttt.ci.point == pytest.approx(4440 - 1040)


def test_verdict_inconclusive_reports_seeds_needed() -> None:
    rng = np.random.default_rng(3)
    t, s = rng.normal(0.55, 0.1, 5), rng.normal(0.5, 0.1, 5)
    v = verdict(t, s, n_boot=500)
    assert v.label == "inconclusive"
    assert v.seeds_needed > 5
    assert "would need ~" in v.reason or "too small" in v.reason


def test_verdict_constant_arms_fall_back_to_mann_whitney() -> None:
    v = verdict([500.0] * 5, [200.0] * 5, n_boot=100)
    assert v.test == "mannwhitney"
    assert v.label == "positive"


def test_verdict_deterministic() -> None:
    t, s = [0.6, 0.7, 0.65, 0.62], [0.5, 0.55, 0.6, 0.52]
    assert verdict(t, s, random_state=7, n_boot=300) == verdict(t, s, random_state=7, n_boot=300)


def test_verdict_rule_text_mentions_the_rule() -> None:
    phrases = ("min_seeds", "bootstrap", "Welch", "Holm", "wholly above 0", "wholly below 0", "inconclusive")
    for phrase in phrases:
        assert phrase in VERDICT_RULE


def test_judge_suite_applies_holm_across_comparisons() -> None:
    t = np.array([0.62, 0.71, 0.65, 0.58, 0.69])
    s = np.array([0.50, 0.61, 0.55, 0.60, 0.52])
    alone = verdict(t, s, n_boot=500)
    assert alone.label == "positive" and 0.01 < alone.p_value < 0.05  # p = 0.0186
    rng = np.random.default_rng(0)
    comps: dict[tuple[str, str], Comparison | tuple[np.ndarray, np.ndarray]] = {
        ("a->b", "finetune"): (t, s)
    }
    for k in range(4):
        comps[("a->b", f"null{k}")] = Comparison(rng.normal(0.5, 0.05, 5), rng.normal(0.5, 0.05, 5))
    comps[("a->b", "few-seeds")] = ([0.9, 0.91], [0.1, 0.12, 0.11])
    out = judge_suite(comps, n_boot=500, random_state=0)
    assert list(out) == list(comps)
    tested = [k for k in comps if k[1] != "few-seeds"]
    np.testing.assert_allclose([out[k].p_adjusted for k in tested], holm([out[k].p_value for k in tested]))
    first = out[("a->b", "finetune")]
    # smallest of m = 5 p-values: adjusted = 5 * 0.0186 = 0.093 -> the lone "positive" is now inconclusive
    assert first.p_adjusted == pytest.approx(5 * alone.p_value)
    assert first.label == "inconclusive"
    assert first.ci.above(0.0)
    # too few seeds: left out of the Holm family and inconclusive however large the effect
    assert math.isnan(out[("a->b", "few-seeds")].p_adjusted)
    assert out[("a->b", "few-seeds")].label == "inconclusive"
    again = judge_suite(comps, n_boot=500, random_state=0)
    assert repr(again) == repr(out)  # repr: nan fields compare unequal
    with pytest.raises(ConfigError, match="Comparison or a"):
        judge_suite({"x": [1, 2, 3]}, n_boot=10)  # type: ignore[dict-item]


# ---------------------------------------------------------------------------------------------
# synthetic validation of the verdict rule

STEPS = np.arange(0, 100_001, 4000)  # 26 evaluations over a 100k-step budget
N_SIM = 1000
SEEDS = 5


def synthetic_curves(rng: np.random.Generator, shape: tuple[int, ...], mid_shift: float = 0.0) -> np.ndarray:
    """Logistic learning curves on a 0..500 return scale, shape ``shape + (len(STEPS),)``.

    Per seed: asymptote ~ N(430, 40), midpoint (fraction of the budget) ~ N(0.45, 0.08) + mid_shift,
    steepness ~ logN(log 10, 0.25); plus N(0, 20) evaluation noise; clipped to [0, 500].
    """
    x = STEPS / STEPS[-1]
    asym = np.clip(rng.normal(430, 40, shape), 0, 500)
    mid = rng.normal(0.45, 0.08, shape) + mid_shift
    rate = np.exp(rng.normal(np.log(10), 0.25, shape))
    mean = asym[..., None] / (1 + np.exp(-rate[..., None] * (x - mid[..., None])))
    return np.clip(mean + rng.normal(0, 20, mean.shape), 0, 500)


def batch_auc(curves: np.ndarray) -> np.ndarray:
    """Vectorized :func:`area_under_curve` over the last axis (checked against it below)."""
    y = curves / 500.0
    return (np.diff(STEPS) * (y[..., 1:] + y[..., :-1]) / 2).sum(-1) / (STEPS[-1] - STEPS[0])


def simulate_labels(mid_shift: float, seed: int, n_sim: int = N_SIM, test: str = "welch") -> dict[str, float]:
    """Rates of each verdict over ``n_sim`` simulated (transfer, scratch) pairs of 5 seeds each."""
    rng = np.random.default_rng(seed)
    t_auc = batch_auc(synthetic_curves(rng, (n_sim, SEEDS), mid_shift))
    s_auc = batch_auc(synthetic_curves(rng, (n_sim, SEEDS)))
    labels = [verdict(t_auc[i], s_auc[i], n_boot=500, test=test, random_state=i).label  # type: ignore[arg-type]
              for i in range(n_sim)]
    return {k: labels.count(k) / n_sim for k in ("positive", "negative", "inconclusive")}


def realized_d(mid_shift: float) -> float:
    """Effect size (AUC difference over pooled sd) that a midpoint shift plants, from 20k runs."""
    rng = np.random.default_rng(123)
    a = batch_auc(synthetic_curves(rng, (20_000,), mid_shift))
    b = batch_auc(synthetic_curves(rng, (20_000,)))
    return float((a.mean() - b.mean()) / math.sqrt((a.var() + b.var()) / 2))


def test_batch_auc_matches_area_under_curve() -> None:
    c = synthetic_curves(np.random.default_rng(0), (4,))
    np.testing.assert_allclose(batch_auc(c), [area_under_curve(STEPS, r, 0, 500) for r in c])


def test_verdict_error_rates_on_null_curves() -> None:
    rates = simulate_labels(0.0, seed=10)
    print(f"\nnull, {N_SIM} simulated pairs x {SEEDS} seeds (Welch): {rates}")
    assert rates["positive"] <= 0.05
    assert rates["negative"] <= 0.05


def test_verdict_error_rates_on_null_curves_mann_whitney() -> None:
    rates = simulate_labels(0.0, seed=11, n_sim=500, test="mannwhitney")
    print(f"\nnull, 500 simulated pairs x {SEEDS} seeds (Mann-Whitney): {rates}")
    assert rates["positive"] <= 0.05
    assert rates["negative"] <= 0.05


# Midpoint shifts that plant an AUC effect of about 2.5 pooled sd in each direction (printed).
LARGE_NEGATIVE_SHIFT = 0.23
LARGE_POSITIVE_SHIFT = -0.27


def test_verdict_detects_large_negative_effect() -> None:
    d = realized_d(LARGE_NEGATIVE_SHIFT)
    rates = simulate_labels(LARGE_NEGATIVE_SHIFT, seed=20)
    print(f"\nnegative effect d={d:.2f}: {rates}")
    assert d < -2.2
    assert rates["negative"] >= 0.80
    assert rates["positive"] == 0.0


def test_verdict_detects_large_positive_effect() -> None:
    d = realized_d(LARGE_POSITIVE_SHIFT)
    rates = simulate_labels(LARGE_POSITIVE_SHIFT, seed=30)
    print(f"\npositive effect d={d:.2f}: {rates}")
    assert d > 2.2
    assert rates["positive"] >= 0.80
    assert rates["negative"] == 0.0


def test_verdict_power_curve_is_monotone() -> None:
    """Power with 5 seeds per arm at smaller effects: reported, and it must grow with the effect."""
    powers = []
    for shift in (0.0, 0.14, 0.18):  # d ~ 0, -1.5, -2.0
        rates = simulate_labels(shift, seed=40, n_sim=500)
        powers.append(rates["negative"])
        print(f"\nshift {shift:+.2f} (d={realized_d(shift):.2f}): negative rate {rates['negative']:.3f}")
    assert powers[0] < powers[1] < powers[2]
