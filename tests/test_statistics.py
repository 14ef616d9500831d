"""Tests of rltransfer.statistics: hand-computed answers on tiny arrays, determinism, validation.

The error rates and power of the verdicts on synthetic curve families are in tests/test_error_control.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from rltransfer import statistics as st
from rltransfer.errors import ConfigError, UnknownNameError
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
    stud = bootstrap_ci_diff(t, s, n_boot=500, random_state=1, method="studentized")
    assert bootstrap_ci_diff(t, s, n_boot=500, random_state=2, method="studentized") != stud
    gen = bootstrap_ci_diff(t, s, n_boot=500, random_state=np.random.default_rng(1), method="studentized")
    assert gen == stud  # a Generator seeded alike gives the same draws
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
        want = stats.ttest_ind(t, s, equal_var=False).pvalue
        assert welch_p(t, s, df="satterthwaite") == pytest.approx(want, rel=1e-9)
        assert welch_p(t, s) >= welch_p(t, s, df="satterthwaite")  # Hsu df = 4 <= Satterthwaite df
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


def test_verdict_inconclusive_reports_planned_seeds_not_post_hoc_power() -> None:
    rng = np.random.default_rng(3)
    t, s = rng.normal(0.55, 0.1, 5), rng.normal(0.5, 0.1, 5)
    v = verdict(t, s, n_boot=500)
    assert v.label == "inconclusive"
    assert v.margin == 0.05  # DEFAULT_MARGINS["auc"]
    sd = st.pilot_sd(t, s)
    assert v.seeds_needed == st.seeds_for_margin(sd, 0.05) > 5
    assert v.seeds_needed_equivalence == st.seeds_for_margin(sd, 0.05, goal="equivalence")
    assert "would need ~" in v.reason and "not the observed effect" in v.reason
    # the planning figure does not move with the observed effect (post-hoc power would)
    assert verdict(t + 0.03, s, n_boot=50).seeds_needed == v.seeds_needed
    # a metric without a default margin gets no planning figure unless one is given
    ttt = verdict(t * 1000, s * 1000, metric="time_to_threshold", n_boot=50)
    assert math.isnan(ttt.seeds_needed) and "pass margin=" in ttt.reason
    assert verdict(t * 1000, s * 1000, metric="time_to_threshold", margin=50.0, n_boot=50).seeds_needed > 5


def test_verdict_constant_arms_fall_back_to_an_exact_permutation_test() -> None:
    v = verdict([500.0] * 5, [200.0] * 5, n_boot=100)
    assert v.test == "permutation"
    assert v.p_value == pytest.approx(2 / 252)  # the observed split and its mirror, of C(10, 5)
    assert v.label == "positive"
    assert v.ci == Interval(300.0, 300.0, 300.0)
    small = verdict([500.0] * 3, [200.0] * 3, n_boot=100)  # 2 / C(6, 3) = 0.1 is the best it can do
    assert small.label == "inconclusive" and "cannot go below p=0.1" in small.reason
    assert math.isnan(small.seeds_needed) and "do not vary" in small.reason


def test_verdict_deterministic() -> None:
    t, s = [0.6, 0.7, 0.65, 0.62], [0.5, 0.55, 0.6, 0.52]
    assert verdict(t, s, random_state=7, n_boot=300) == verdict(t, s, random_state=7, n_boot=300)


def test_verdict_rule_text_mentions_the_rule() -> None:
    phrases = ("min_seeds", "Hsu", "Welch", "Holm", "wholly above 0", "wholly below 0", "inconclusive",
               "equivalent", "planning figure", "not post-hoc power", "Clopper-Pearson")
    for phrase in phrases:
        assert phrase in VERDICT_RULE


def test_judge_suite_applies_holm_across_comparisons() -> None:
    t = np.array([0.62, 0.71, 0.65, 0.58, 0.69])
    s = np.array([0.50, 0.61, 0.55, 0.60, 0.52])
    alone = verdict(t, s, n_boot=500)
    assert alone.label == "positive" and 0.01 < alone.p_value < 0.05  # Hsu df 4: p = 0.042
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
    # smallest of m = 5 p-values: adjusted = 5 * 0.042 = 0.21 -> the lone "positive" is now inconclusive
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


def test_judge_suite_passes_margins_and_equivalence() -> None:
    tight = [0.50, 0.51, 0.49, 0.50, 0.505, 0.495] * 3
    comps = {"same": Comparison(tight, tight[::-1], margin=0.05), "few": ([0.5, 0.5], [0.5, 0.51])}
    out = judge_suite(comps, n_boot=50, equivalence=True)
    assert out["same"].label == "equivalent" and out["same"].equivalence_p < 0.05
    assert out["few"].label == "inconclusive"
    assert judge_suite(comps, n_boot=50)["same"].label == "inconclusive"  # equivalence is opt-in


# ---------------------------------------------------------------------------------------------
# the t machinery, permutation tests, equivalence, planning


def test_welch_test_hand_computed() -> None:
    # [1, 2, 3] vs [4, 5, 6]: diff -3, each variance 1, se = sqrt(1/3 + 1/3) = 0.8165, t = -3.674
    hsu = st.welch_test([1, 2, 3], [4, 5, 6])
    assert hsu.diff == -3.0 and hsu.se == pytest.approx(math.sqrt(2 / 3)) and hsu.df == 2.0
    assert hsu.p_value == pytest.approx(2 * stats.t.sf(3 / math.sqrt(2 / 3), 2))  # 0.0667
    half = stats.t.ppf(0.975, 2) * math.sqrt(2 / 3)  # 4.303 * 0.8165 = 3.513
    assert (hsu.low, hsu.high) == pytest.approx((-3 - half, -3 + half))
    satt = st.welch_test([1, 2, 3], [4, 5, 6], df="satterthwaite")
    assert satt.df == pytest.approx(4.0) and satt.p_value == pytest.approx(0.0213, abs=1e-4)
    flipped = st.welch_test([1, 2, 3], [4, 5, 6], higher_is_better=False)
    assert flipped.diff == 3.0 and flipped.p_value == hsu.p_value
    # vectorized over leading axes: the same numbers row by row
    batch = st.welch_test(np.array([[1, 2, 3], [4, 5, 6.5]]), np.array([[4, 5, 6], [1, 2, 3.0]]))
    assert np.asarray(batch.p_value).shape == (2,)
    assert float(batch.p_value[0]) == pytest.approx(hsu.p_value)
    # constant arms: no test, the interval collapses; float noise in a "constant" arm is ignored
    const = st.welch_test([0.1, 0.1, 0.1], [0.1, 0.1, 0.1])
    assert math.isnan(const.p_value) and const.low == const.high == 0.0
    with pytest.raises(ConfigError, match="df must be"):
        st.welch_test([1, 2], [3, 4], df="student")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"n_seeds >= 2"):
        st.welch_test([1.0], [3, 4])


def test_permutation_p_exact_hand_computed() -> None:
    # 3 vs 3 fully separated: the split and its mirror are the most extreme of C(6, 3) = 20
    assert st.permutation_p([1, 2, 3], [4, 5, 6]) == pytest.approx(2 / 20)
    assert st.permutation_p([1, 2, 3], [4, 5, 6], statistic="mean") == pytest.approx(2 / 20)
    assert st.permutation_p([1, 2, 3, 4, 5], [6, 7, 8, 9, 10]) == pytest.approx(2 / 252)
    # unequal sizes have no mirror split: 1 / C(5, 2)
    assert st.permutation_p([9, 10], [1, 2, 3], statistic="mean") == pytest.approx(1 / 10)
    assert st.permutation_p([2, 2], [2, 2, 2]) == 1.0
    # Monte Carlo when the splits are too many; deterministic for a seed
    big_t, big_s = np.arange(12.0), np.arange(12.0) + 0.5
    p1 = st.permutation_p(big_t, big_s, max_exact=100, n_perm=999, random_state=1)
    assert p1 == st.permutation_p(big_t, big_s, max_exact=100, n_perm=999, random_state=1)
    assert 0.5 < p1 <= 1.0 and (p1 * 1000) == pytest.approx(round(p1 * 1000))


def test_tost_hand_computed() -> None:
    # diff 0, se = sqrt(0.01/3 + 0.0025/3) = 0.06455, Hsu df 2: p = t_2.sf(0.3 / 0.06455) = 0.02166
    eq = st.tost([0.0, 0.1, -0.1], [0.05, 0.0, -0.05], 0.3)
    se = math.sqrt(0.01 / 3 + 0.0025 / 3)
    assert eq.equivalent and eq.p_value == pytest.approx(stats.t.sf(0.3 / se, 2))
    assert eq.ci.high == pytest.approx(stats.t.ppf(0.95, 2) * se)  # the 90% interval for alpha = 0.05
    assert not st.tost([0.0, 0.1, -0.1], [0.05, 0.0, -0.05], 0.15).equivalent
    shifted = st.tost([1.0, 1.1, 0.9], [0.05, 0.0, -0.05], 0.3)
    assert not shifted.equivalent and shifted.p_value > 0.5
    with pytest.raises(ConfigError, match="margin must be a positive"):
        st.tost([0, 1], [0, 1], -0.1)


def test_seeds_for_margin_textbook_values() -> None:
    # d = 1, two-sided 5%, 80% power: 17 per arm with 2n - 2 df (the textbook number), 18 with Hsu df
    assert st.seeds_for_margin(1.0, 1.0, df="satterthwaite") == 17
    assert st.seeds_for_margin(1.0, 1.0) == 18
    # TOST with the margin at 1 sd, true difference 0: 2 (z_.95 + z_.90)^2 = 17.1 -> 18 with t, 19 Hsu
    assert st.seeds_for_margin(1.0, 1.0, goal="equivalence", df="satterthwaite") == 18
    assert st.seeds_for_margin(1.0, 1.0, goal="equivalence") == 19
    # scale-free, monotone, capped
    assert st.seeds_for_margin(0.08, 0.08) == 18
    assert st.seeds_for_margin(1.0, 0.5) > st.seeds_for_margin(1.0, 1.0)
    assert math.isinf(st.seeds_for_margin(1.0, 0.01))
    assert st.seeds_for_margin(0.0, 1.0) == 2
    assert st.seeds_for_margin(1.0, 1.0, goal="equivalence", true_difference=0.5) > 19
    with pytest.raises(ConfigError, match="true_difference"):
        st.seeds_for_margin(1.0, 1.0, goal="equivalence", true_difference=1.0)
    with pytest.raises(ConfigError, match="goal"):
        st.seeds_for_margin(1.0, 1.0, goal="power")  # type: ignore[arg-type]
    # the pilot sd: sqrt of the mean of the two variances
    assert st.pilot_sd([1, 2, 3], [2, 4, 6]) == pytest.approx(math.sqrt((1 + 4) / 2))


def test_clopper_pearson_hand_computed() -> None:
    assert st.clopper_pearson(0, 10) == pytest.approx((0.0, 1 - 0.025 ** 0.1))
    assert st.clopper_pearson(10, 10) == pytest.approx((0.025 ** 0.1, 1.0))
    low, high = st.clopper_pearson(50, 1000)
    assert low < 0.05 < high and high == pytest.approx(stats.beta.ppf(0.975, 51, 950))
    with pytest.raises(ConfigError, match="successes"):
        st.clopper_pearson(11, 10)


def test_bootstrap_methods() -> None:
    t, s = [5.0, 6.0, 7.0, 8.0], [1.0, 2.0, 3.0]
    auto = bootstrap_ci_diff(t, s)
    w = st.welch_test(t, s)
    assert auto == Interval(w.diff, w.low, w.high)  # "auto" for the mean is the Welch-Hsu t interval
    stud = bootstrap_ci_diff(t, s, method="studentized", n_boot=500, random_state=3)
    assert stud == bootstrap_ci_diff(t, s, method="studentized", n_boot=500, random_state=3)
    assert stud.low < 4.5 < stud.high
    pct = bootstrap_ci_diff(t, s, method="percentile", n_boot=500, random_state=3)
    assert pct.high - pct.low < auto.high - auto.low  # the percentile interval is the narrow one
    bca = bootstrap_ci_diff(t, s, stat=np.median, n_boot=500)
    assert bca.point == 4.5 and bca.low <= 4.5 <= bca.high
    with pytest.raises(ConfigError, match="needs stat=np.mean"):
        bootstrap_ci_diff(t, s, stat=np.median, method="studentized")
    with pytest.raises(ConfigError, match="method must be"):
        bootstrap_ci_diff(t, s, method="basic")  # type: ignore[arg-type]


def test_verdict_labels_hand_made() -> None:
    t = np.array([[0.8, 0.82, 0.85], [0.5, 0.52, 0.48], [0.50, 0.51, 0.49]])
    s = np.array([[0.5, 0.52, 0.48], [0.8, 0.82, 0.85], [0.50, 0.49, 0.51]])
    assert st.verdict_labels(t, s).tolist() == ["positive", "negative", "inconclusive"]
    assert st.verdict_labels(t, s, margin=0.05).tolist() == ["positive", "negative", "equivalent"]
    assert st.verdict_labels(t, s, min_seeds=4).tolist() == ["inconclusive"] * 3
    assert st.verdict_labels(t, s, higher_is_better=False).tolist() == ["negative", "positive", "inconclusive"]
    const = st.verdict_labels(np.full((1, 5), 500.0), np.full((1, 5), 200.0))
    assert const.tolist() == ["positive"]  # both arms constant: the exact permutation test


# ---------------------------------------------------------------------------------------------
# the profile verdict

START_T, START_S = [60.0, 62.0, 58.0, 61.0, 59.0], [10.0, 12.0, 8.0, 11.0, 9.0]
SAME_A, SAME_B = [0.50, 0.52, 0.48, 0.51, 0.49], [0.51, 0.49, 0.50, 0.48, 0.52]
HIGH_F, LOW_F = [450.0, 455.0, 445.0, 452.0, 448.0], [300.0, 305.0, 295.0, 302.0, 298.0]


def _metrics(initial: list[float], auc: list[float], final: list[float]) -> dict[str, list[float]]:
    return {"initial": initial, "auc": auc, "asymptotic": final}


@pytest.mark.parametrize(
    ("transfer", "scratch", "label"),
    [
        (_metrics(START_T, SAME_A, LOW_F), _metrics(START_S, SAME_B, HIGH_F), "crossover"),
        (_metrics(START_S, SAME_A, HIGH_F), _metrics(START_T, SAME_B, LOW_F), "slow start"),
        (_metrics(START_T, SAME_A, HIGH_F), _metrics(START_S, SAME_B, HIGH_F[::-1]), "jumpstart only"),
        (_metrics(START_T, [0.7, 0.72, 0.68, 0.71, 0.69], HIGH_F), _metrics(START_S, SAME_B, HIGH_F[::-1]),
         "jumpstart only"),  # a higher AUC with it: still a head start, the end is level
        (_metrics(START_S, [0.7, 0.72, 0.68, 0.71, 0.69], HIGH_F), _metrics(START_S[::-1], SAME_B, HIGH_F[::-1]),
         "better"),  # faster learning from the same start
        (_metrics(START_T, SAME_A, HIGH_F), _metrics(START_S, SAME_B, LOW_F), "better"),
        (_metrics(START_S, SAME_A, LOW_F), _metrics(START_S[::-1], SAME_B, HIGH_F), "worse"),
        (_metrics(START_S, SAME_A, HIGH_F), _metrics(START_S[::-1], SAME_B, HIGH_F[::-1]), "equivalent"),
        (_metrics([0.0, 50, 100, 20, 80], SAME_A, [0.0, 500, 250, 100, 400]),
         _metrics(START_S, SAME_B, HIGH_F), "inconclusive"),
    ],
)
def test_profile_verdict_patterns(transfer: dict, scratch: dict, label: str) -> None:
    prof = st.profile_verdict(transfer, scratch, return_range=(0.0, 500.0))
    assert prof.label == label, prof.reason
    assert list(prof.metrics) == ["initial", "auc", "asymptotic"]
    # Holm over the three metrics, as holm() computes it
    raw = [prof.metrics[m].p_value for m in prof.metrics]
    np.testing.assert_allclose([prof.metrics[m].p_adjusted for m in prof.metrics], holm(raw))
    batch = st.profile_labels({k: np.array([v]) for k, v in transfer.items()},
                              {k: np.array([v]) for k, v in scratch.items()}, return_range=(0.0, 500.0))
    assert batch.tolist() == [label]


def test_profile_verdict_details() -> None:
    t, s = _metrics(START_T, SAME_A, LOW_F), _metrics(START_S, SAME_B, HIGH_F)
    prof = st.profile_verdict(t, s)
    assert prof.label == "crossover" and "jumpstart +50" in prof.reason and "final -150" in prof.reason
    assert prof.metrics["initial"].direction == "better" and prof.metrics["asymptotic"].direction == "worse"
    assert math.isnan(prof.metrics["initial"].margin)  # no return range: jumpstart and final not assessed
    assert prof.metrics["auc"].margin == 0.05 and prof.metrics["auc"].equivalent
    # without a return range nothing can be "equivalent" on all three
    eq = st.profile_verdict(_metrics(START_S, SAME_A, HIGH_F), _metrics(START_S[::-1], SAME_B, HIGH_F[::-1]))
    assert eq.label == "inconclusive"
    assert st.profile_verdict(_metrics(START_S, SAME_A, HIGH_F), _metrics(START_S[::-1], SAME_B, HIGH_F[::-1]),
                              margins={"jumpstart": 25.0, "final": 25.0}).label == "equivalent"
    few = st.profile_verdict(_metrics(START_T[:2], SAME_A[:2], LOW_F[:2]), _metrics(START_S, SAME_B, HIGH_F))
    assert few.label == "inconclusive" and "too few seeds" in few.reason
    aliases = st.profile_verdict({"jumpstart": START_T, "auc": SAME_A, "final": LOW_F}, s)
    assert aliases.label == "crossover"
    with pytest.raises(ConfigError, match="lacks the profile metric"):
        st.profile_verdict({"auc": SAME_A}, s)
    with pytest.raises(UnknownNameError, match="profile metric"):
        st.profile_verdict(t, s, margins={"ttt": 1.0})
    with pytest.raises(ConfigError, match="one value per run"):
        st.profile_verdict(_metrics(START_T, SAME_A[:4], LOW_F), s)


def test_profile_suite_holm_across_pairs_and_metrics() -> None:
    cross = (_metrics(START_T, SAME_A, LOW_F), _metrics(START_S, SAME_B, HIGH_F))
    rng = np.random.default_rng(0)
    comps = {"cross": cross}
    for k in range(3):
        comps[f"null{k}"] = tuple(_metrics(*(rng.normal(0, 1, 5).tolist() for _ in range(3))) for _ in range(2))
    out = st.profile_suite(comps)
    assert list(out) == list(comps)
    raw = [out[k].metrics[m].p_value for k in comps for m in st.PROFILE_METRICS]
    adj = [out[k].metrics[m].p_adjusted for k in comps for m in st.PROFILE_METRICS]
    np.testing.assert_allclose(adj, holm(raw))  # one family of 4 pairs x 3 metrics = 12
    assert out["cross"].label == "crossover"
    assert all(out[f"null{k}"].label == "inconclusive" for k in range(3))


# ---------------------------------------------------------------------------------------------
# variance from the source


def test_hierarchical_bootstrap_and_source_reliance() -> None:
    # between-source spread only: targets within a source agree
    nested = np.array([[0.6, 0.6, 0.6], [0.8, 0.8, 0.8], [0.7, 0.7, 0.7]])
    scratch = [0.5, 0.52, 0.48, 0.5]
    ci = st.hierarchical_bootstrap_ci_diff(nested, scratch, n_boot=1000, random_state=0)
    assert ci.point == pytest.approx(0.7 - 0.5)
    flat = bootstrap_ci_diff(nested.ravel(), scratch, method="percentile", n_boot=1000, random_state=0)
    assert ci.high - ci.low > flat.high - flat.low  # 3 sources, not 9 independent seeds
    assert ci == st.hierarchical_bootstrap_ci_diff(nested, scratch, n_boot=1000, random_state=0)
    rel = st.source_reliance(nested, scratch, n_boot=500)
    assert rel.n_sources == 3 and rel.n_targets == 9
    assert rel.icc == pytest.approx(1.0) and rel.design_effect == pytest.approx(3.0)
    assert rel.effective_n == pytest.approx(3.0)
    assert not rel.single_source and len(rel.leave_one_out) == 3
    one = st.source_reliance([[0.8, 0.82, 0.79, 0.81]], scratch, n_boot=200)
    assert one.single_source and "single source" in one.reason and one.leave_one_out == ()
    # one source carries the whole effect: the flat test (18 seeds as if independent) is significant,
    # without source 0 it is not; the hierarchical interval already includes 0
    noise = np.array([0.01, -0.01, 0.0, 0.005, -0.005, 0.0])
    hinge = [0.9 + noise, 0.5 + noise, 0.5 - noise]
    wide = [0.5, 0.52, 0.48, 0.5, 0.51, 0.49, 0.5, 0.5]
    dep = st.source_reliance(hinge, wide, n_boot=1000)
    assert dep.flat.above(0.0) and not dep.leave_one_out[0].above(0.0)
    assert dep.single_source and "[0]" in dep.reason
    assert not dep.ci.above(0.0)
    # sources as units: the t-test of the 3 source means against scratch's seeds
    cl = st.cluster_t_ci_diff(hinge, wide)
    means = [g.mean() for g in hinge]
    assert cl.diff == pytest.approx(np.mean(means) - np.mean(wide)) and cl.df == 2.0
    assert cl.se == pytest.approx(math.sqrt(np.var(means, ddof=1) / 3 + np.var(wide, ddof=1) / 8))
    assert dep.cluster.low == pytest.approx(cl.low) and not dep.cluster.above(0.0)
    with pytest.raises(ConfigError, match="at least two sources"):
        st.cluster_t_ci_diff([[0.8, 0.9, 0.85]], wide)
    # ragged sources and a lower-is-better orientation
    ragged = st.hierarchical_bootstrap_ci_diff([[1.0, 2.0], [3.0]], [4.0, 5.0], n_boot=100, higher_is_better=False)
    assert ragged.point == pytest.approx(4.5 - 2.0)


# ---------------------------------------------------------------------------------------------
# aggregates across a suite


def test_iqm_and_aggregate_interval_hand_computed() -> None:
    assert st.iqm([1, 2, 3, 4, 100, 5, 6, 7]) == pytest.approx(4.5)  # mean of 3, 4, 5, 6
    np.testing.assert_allclose(st.iqm(np.array([[1, 2, 3, 4], [5, 6, 7, 80]]), axis=1), [2.5, 6.5])
    scores = np.array([[0.1, 0.5], [0.2, 0.6], [0.3, 0.7], [0.4, 100.0]])  # (runs, tasks), one outlier
    agg = st.aggregate_interval(scores, n_boot=500)
    assert agg.point == pytest.approx(st.iqm(scores))
    assert agg.low <= agg.point <= agg.high
    assert st.aggregate_interval(scores, aggregate="mean", n_boot=10).point == pytest.approx(scores.mean())
    const = st.aggregate_interval(np.full((3, 2), 0.4), n_boot=50)
    assert const == Interval(0.4, 0.4, 0.4)
    diff = st.aggregate_difference(scores + 0.1, scores, n_boot=200)
    assert diff.point == pytest.approx(0.1)
    with pytest.raises(UnknownNameError, match="aggregate"):
        st.aggregate_interval(scores, aggregate="mode")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="same tasks"):
        st.aggregate_difference(scores, scores[:, :1])


def test_performance_profile_hand_computed() -> None:
    prof = st.performance_profile([[0.2], [0.6], [0.9]], [0.0, 0.5, 0.95], n_boot=200)
    np.testing.assert_allclose(prof.fraction, [1.0, 2 / 3, 0.0])
    assert np.all(prof.low <= prof.fraction) and np.all(prof.fraction <= prof.high)
    # tasks weigh equally: task 0 has 1 of 2 runs above 0.5, task 1 has 2 of 2 -> (0.5 + 1) / 2
    two = st.performance_profile(np.array([[0.2, 0.7], [0.9, 0.8]]), [0.5], n_boot=10)
    np.testing.assert_allclose(two.fraction, [0.75])


def test_aggregate_probability_of_improvement() -> None:
    # task 0: transfer always wins (1.0); task 1: identical arms (0.5) -> mean 0.75
    agg = st.aggregate_probability_of_improvement([[3.0, 4.0], [1.0, 2.0]], [[1.0, 2.0], [1.0, 2.0]], n_boot=200)
    assert agg.point == pytest.approx(0.75) and 0.0 <= agg.low <= agg.point <= agg.high <= 1.0
    arr = st.aggregate_probability_of_improvement(np.array([[3.0, 1.0], [4.0, 2.0]]),
                                                  np.array([[1.0, 1.0], [2.0, 2.0]]), n_boot=50)
    assert arr.point == pytest.approx(0.75)


# ---------------------------------------------------------------------------------------------
# time to threshold with censoring


def test_kaplan_meier_hand_computed() -> None:
    km = st.kaplan_meier([1, 2, 2, 3], [False, False, False, True])
    np.testing.assert_allclose(km.times, [1, 2])
    np.testing.assert_allclose(km.survival, [0.75, 0.25])  # 3/4, then 3/4 * (1 - 2/3)
    assert km.at_risk.tolist() == [4, 3] and km.events.tolist() == [1, 2]
    assert np.all(km.low <= km.survival) and np.all(km.survival <= km.high)
    none = st.kaplan_meier([5, 5], [True, True])
    assert none.times.size == 0


def test_logrank_hand_computed() -> None:
    # transfer reaches at 1 and 2, scratch at 3 and 4. At t=1: 2 + 2 at risk, 1 event: E = 0.5,
    # V = 0.25; at t=2: 1 + 2 at risk: E = 1/3, V = 2/9. z = (2 - 5/6) / sqrt(17/36) = 1.698
    z = (2 - 5 / 6) / math.sqrt(0.25 + 2 / 9)
    p = st.logrank_test([1, 2], [False, False], [3, 4], [False, False], method="asymptotic")
    assert p == pytest.approx(2 * stats.norm.sf(z))
    # exact permutation: 6 splits, the observed one and its mirror are the most extreme
    assert st.logrank_test([1, 2], [False, False], [3, 4], [False, False]) == pytest.approx(2 / 6)
    assert st.logrank_test([5, 5], [True, True], [5, 5], [True, True]) == 1.0  # nobody reached it
    batch = st.logrank_test(np.array([[1, 2], [3, 4]]), np.zeros((2, 2), bool), np.array([[3, 4], [1, 2]]),
                            np.zeros((2, 2), bool))
    np.testing.assert_allclose(batch, [2 / 6, 2 / 6])


def test_rmst_difference_hand_computed() -> None:
    # tau = 20. Transfer: S = 1 on [0, 10), 1/2 on [10, 20) -> 15; scratch: nobody before 30 -> 20.
    res = st.rmst_difference([10, 20], [False, False], [30, 40], [False, True], tau=20)
    assert res.tau == 20 and res.rmst_transfer == pytest.approx(15.0) and res.rmst_scratch == pytest.approx(20.0)
    assert res.ci.point == pytest.approx(5.0)  # scratch minus transfer: transfer is 5 steps sooner
    # censoring only at tau: the variance is that of min(T, tau) / n, here var([10, 20]) / 2 = 25
    half = stats.t.ppf(0.975, 1) * 5.0
    assert (res.ci.low, res.ci.high) == pytest.approx((5 - half, 5 + half))
    assert res.p_value == pytest.approx(0.5)
    # default tau: the transfer curve is 0 from step 20 on (known for ever), scratch's is known to its
    # censored 40 -> tau 40; scratch: 30 + 1/2 * 10 = 35; each variance 2 * (5^2 * 1 / (2 * 1)) = 25
    res = st.rmst_difference([10, 20], [False, False], [30, 40], [False, True])
    assert res.tau == 40 and res.rmst_scratch == pytest.approx(35.0) and res.ci.point == pytest.approx(20.0)
    assert res.ci.high - res.ci.point == pytest.approx(stats.t.ppf(0.975, 1) * math.sqrt(50.0))
    # with a budget and administrative censoring the RMST is the mean of the capped times
    t = np.array([100, 400, 1000, 1000, 250])
    c = t == 1000
    s = np.array([1000, 1000, 900, 1000, 1000])
    r = st.rmst_difference(t, c, s, s == 1000, tau=1000)
    assert r.rmst_transfer == pytest.approx(t.mean()) and r.rmst_scratch == pytest.approx(s.mean())
    assert r.ci.point == pytest.approx(s.mean() - t.mean())
    with pytest.raises(ConfigError, match="shape of its times"):
        st.rmst_difference([1, 2], [True], [1, 2], [True, True])
