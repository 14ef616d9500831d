"""Error control of the verdicts on independent synthetic curve families (rltransfer.synthetic).

What is asserted, for every family's null at 3, 5 and 10 seeds per arm:

* the TOTAL false-verdict rate of :func:`verdict` (false "positive" + false "negative") is at most 5%
  and the upper end of its 95% Clopper-Pearson interval is below 6%;
* :func:`profile_verdict` names a pattern ("better", "worse", "jumpstart only", "crossover",
  "slow start") on at most 5% of null pairs, with the same bound;
* the log-rank (permutation) and RMST tests of time to threshold reject at most 5% of null pairs.

Plus power, the profile's naming of crossover and jumpstart-only transfers, TOST's error at the margin,
the planning function against simulation, and agreement of the vectorized labels with the per-pair
functions. Everything is vectorized over pairs with analytic tests; the whole file runs in about 30 s.
The tables with power at d = 1, 2, 3 are printed by ``benchmarks/scripts/verdict_error_rates.py``.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest

from rltransfer import synthetic as sy
from rltransfer.statistics import (
    PROFILE_LABELS,
    clopper_pearson,
    logrank_test,
    pilot_sd,
    profile_labels,
    profile_verdict,
    rmst_difference,
    seeds_for_margin,
    verdict,
    verdict_labels,
)

ALPHA = 0.05
BOUND = 0.06
SEEDS = (3, 5, 10)
FAMILIES = tuple(sorted(sy.FAMILIES))
#: Null pairs per (family, seeds) case. At an observed 5%, the Clopper-Pearson upper bound falls below
#: 6% from 2090 pairs on (test_enough_pairs); 8000 leaves room and keeps the estimate's se near 0.2%.
N_NULL = 8000
PATTERNS = [label for label in PROFILE_LABELS if label not in ("equivalent", "inconclusive")]


@cache
def null_metrics(family: str, n: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], tuple[float, float]]:
    seed = 1000 * FAMILIES.index(family) + n
    batch = sy.simulate_pairs(family, N_NULL, n, random_state=seed)
    mt, ms = batch.metrics()
    return mt, ms, (batch.low, batch.high)


def rate_with_bound(hits: np.ndarray) -> tuple[float, float, float]:
    k, n = int(np.sum(hits)), int(np.size(hits))
    low, high = clopper_pearson(k, n)
    return k / n, low, high


def test_enough_pairs_for_the_binomial_bound() -> None:
    needed = next(n for n in range(500, 20_000, 10) if clopper_pearson(round(ALPHA * n), n)[1] < BOUND)
    print(f"\npairs needed for a CP upper bound < {BOUND:.0%} at an observed {ALPHA:.0%}: {needed}")
    assert needed <= N_NULL


# ---------------------------------------------------------------------------------------------
# nulls: total false-verdict rates


@pytest.mark.parametrize("n", SEEDS)
@pytest.mark.parametrize("family", FAMILIES)
def test_verdict_total_false_rate_on_null(family: str, n: int) -> None:
    mt, ms, _ = null_metrics(family, n)
    labels = verdict_labels(mt["auc"], ms["auc"], alpha=ALPHA)
    rate, low, high = rate_with_bound(labels != "inconclusive")
    print(f"\n{family}, {n} seeds: false verdicts {rate:.2%} [{low:.2%}, {high:.2%}] "
          f"(positive {np.mean(labels == 'positive'):.2%}, negative {np.mean(labels == 'negative'):.2%})")
    assert rate <= ALPHA
    assert high < BOUND


@pytest.mark.parametrize("n", SEEDS)
@pytest.mark.parametrize("family", FAMILIES)
def test_profile_names_no_pattern_on_null(family: str, n: int) -> None:
    mt, ms, rng = null_metrics(family, n)
    labels = profile_labels(mt, ms, return_range=rng, alpha=ALPHA)
    rate, low, high = rate_with_bound(np.isin(labels, PATTERNS))
    print(f"\n{family}, {n} seeds: profile patterns on null pairs {rate:.2%} [{low:.2%}, {high:.2%}]")
    assert rate <= ALPHA
    assert high < BOUND


def test_welch_satterthwaite_is_the_liberal_one() -> None:
    """What the user measured: Welch-Satterthwaite df go above 5% when the spreads differ; Hsu df do not."""
    for n in (3, 5):
        mt, ms, _ = null_metrics("unequal_spread", n)
        hsu = np.mean(verdict_labels(mt["auc"], ms["auc"]) != "inconclusive")
        satt = np.mean(verdict_labels(mt["auc"], ms["auc"], df="satterthwaite") != "inconclusive")
        print(f"\nunequal spread, {n} seeds: Hsu {hsu:.2%}, Satterthwaite {satt:.2%}")
        assert hsu < satt


TTT_FAMILIES = ("bimodal", "censored", "logistic")  # same-distribution nulls (unequal_spread's is not one)


@pytest.mark.parametrize("n", SEEDS)
@pytest.mark.parametrize("family", TTT_FAMILIES)
def test_time_to_threshold_tests_on_null(family: str, n: int) -> None:
    mt, ms, _ = null_metrics(family, n)
    k = 3000  # the permutation log-rank is the slow part; 199 random splits give a valid test
    args = (mt["time_to_threshold"][:k], mt["ttt_censored"][:k], ms["time_to_threshold"][:k],
            ms["ttt_censored"][:k])
    logrank = logrank_test(*args, n_perm=199, random_state=n)
    rmst = rmst_difference(*args)
    for name, p in (("log-rank", logrank), ("RMST", rmst.p_value)):
        rate, low, high = rate_with_bound(np.asarray(p) < ALPHA)
        print(f"\n{family}, {n} seeds, {name}: false rejections {rate:.2%} [{low:.2%}, {high:.2%}]")
        # the permutation log-rank is exact: its expected rate is alpha (4.5% with 199 splits) where the
        # statistic has few ties, so the observed rate is asserted consistent with <= alpha, not below it
        assert low <= ALPHA
        assert high < BOUND
    if n == 3:
        assert np.all(np.asarray(logrank) >= 0.1)  # 20 splits: the exact test cannot go below 2/20


# ---------------------------------------------------------------------------------------------
# power, and the profile's patterns at planted effects

N_EFFECT = 2000


@cache
def effect_metrics(family: str, n: int, d: float) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray],
                                                         tuple[float, float]]:
    batch = sy.simulate_pairs(family, N_EFFECT, n, effect=d, random_state=int(100 * d) + n)
    mt, ms = batch.metrics()
    return mt, ms, (batch.low, batch.high)


def test_verdict_power_grows_with_effect_and_seeds() -> None:
    power = {}
    for n in SEEDS:
        for d in (1.0, 2.0, 3.0):
            mt, ms, _ = effect_metrics("logistic", n, d)
            labels = verdict_labels(mt["auc"], ms["auc"])
            power[n, d] = float(np.mean(labels == "positive"))
            assert not np.any(labels == "negative")
    print("\nlogistic AUC power:", {k: round(v, 3) for k, v in power.items()})
    for n in SEEDS:
        assert power[n, 1.0] < power[n, 2.0] < power[n, 3.0]
    for d in (1.0, 2.0):
        assert power[3, d] < power[5, d] < power[10, d]
    assert power[10, 2.0] >= 0.9 and power[10, 3.0] >= 0.99 and power[5, 3.0] >= 0.85


@pytest.mark.parametrize(
    ("family", "label", "d", "n", "at_least"),
    [
        ("crossover", "crossover", 2.0, 10, 0.85),
        ("crossover", "crossover", 3.0, 10, 0.97),
        ("crossover", "crossover", 3.0, 5, 0.6),
        ("jumpstart", "jumpstart only", 2.0, 10, 0.85),
        ("jumpstart", "jumpstart only", 3.0, 10, 0.95),
        ("jumpstart", "jumpstart only", 3.0, 5, 0.6),
        ("logistic", "better", 3.0, 10, 0.95),
    ],
)
def test_profile_names_the_planted_pattern(family: str, label: str, d: float, n: int, at_least: float) -> None:
    mt, ms, rng = effect_metrics(family, n, d)
    labels = profile_labels(mt, ms, return_range=rng)
    values, counts = np.unique(labels, return_counts=True)
    print(f"\n{family} d={d} {n} seeds:", {str(v): round(c / labels.size, 3) for v, c in zip(values, counts)})
    assert np.mean(labels == label) >= at_least
    if family == "crossover":  # the AUC-only verdict misses it: the AUC effect is small and negative
        assert np.mean(verdict_labels(mt["auc"], ms["auc"]) == "positive") == 0.0


# ---------------------------------------------------------------------------------------------
# equivalence and planning


@pytest.mark.parametrize("family", ("logistic", "unequal_spread", "bimodal"))
def test_tost_false_equivalence_at_the_margin(family: str) -> None:
    """True AUC difference exactly one margin: 'equivalent' at most 5% of the time."""
    margin = sy.planted_differences(family, 1.0)["auc"]  # d = 1, i.e. one pooled sd of AUC
    for n in SEEDS:
        batch = sy.simulate_pairs(family, N_NULL // 2, n, effect=1.0, random_state=70 + n)
        mt, ms = batch.metrics()
        labels = verdict_labels(mt["auc"], ms["auc"], margin=margin)
        rate, low, high = rate_with_bound(labels == "equivalent")
        print(f"\n{family}, {n} seeds, true difference = margin {margin:.3f}: equivalent {rate:.2%} [{low:.2%}, {high:.2%}]")
        assert rate <= ALPHA and high < BOUND


def test_planning_figures_deliver_their_power() -> None:
    """seeds_for_margin from a pilot's sd: simulate at the planned n and get about the planned power."""
    _, sd = sy.metric_moments("logistic", "auc")
    margin = 1.5 * sd
    n_diff = int(seeds_for_margin(sd, margin, power=0.8))
    n_eq = int(seeds_for_margin(sd, margin, goal="equivalence", power=0.8))
    assert 5 < n_diff < 30 and 5 < n_eq < 30
    effect = margin / sy.planted_differences("logistic", 1.0)["auc"]  # planted AUC difference = margin
    b = sy.simulate_pairs("logistic", N_EFFECT, n_diff, effect=effect, random_state=5)
    mt, ms = b.metrics()
    detected = np.mean(verdict_labels(mt["auc"], ms["auc"]) == "positive")
    b = sy.simulate_pairs("logistic", N_EFFECT, n_eq, random_state=6)
    mt, ms = b.metrics()
    shown = np.mean(verdict_labels(mt["auc"], ms["auc"], margin=margin) == "equivalent")
    print(f"\nmargin {margin:.3f}: {n_diff} seeds detect it in {detected:.1%}, {n_eq} seeds show "
          f"equivalence in {shown:.1%} (planned 80%)")
    assert 0.75 <= detected <= 0.9 and 0.75 <= shown <= 0.9
    # the verdict's seeds_needed is this planning figure, whatever the observed effect
    t, s = mt["auc"][0], ms["auc"][0]
    v0, v1 = verdict(t, s, margin=margin, n_boot=50), verdict(t + 1.0, s, margin=margin, n_boot=50)
    assert v0.seeds_needed == v1.seeds_needed == seeds_for_margin(pilot_sd(t, s), margin)


# ---------------------------------------------------------------------------------------------
# the vectorized labels are the per-pair functions' labels


@pytest.mark.parametrize("family", FAMILIES)
def test_vectorized_labels_agree_with_per_pair_functions(family: str) -> None:
    mt, ms, rng = effect_metrics(family, 5, 2.0)
    k = 40
    fast = verdict_labels(mt["auc"][:k], ms["auc"][:k])
    slow = [verdict(mt["auc"][i], ms["auc"][i], n_boot=20).label for i in range(k)]
    assert fast.tolist() == slow
    sub_t = {m: v[:k] for m, v in mt.items()}
    sub_s = {m: v[:k] for m, v in ms.items()}
    fast_p = profile_labels(sub_t, sub_s, return_range=rng)
    slow_p = [profile_verdict({m: sub_t[m][i] for m in ("initial", "auc", "asymptotic")},
                              {m: sub_s[m][i] for m in ("initial", "auc", "asymptotic")},
                              return_range=rng).label for i in range(k)]
    assert fast_p.tolist() == slow_p
