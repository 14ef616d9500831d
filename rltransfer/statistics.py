"""Comparisons of a transfer arm with a from-scratch arm over seeds: tests, intervals, verdicts.

Inputs are per-seed values of one metric from :mod:`rltransfer.metrics`:

* ``transfer: (n_t,)`` one value per transfer run (seed),
* ``scratch: (n_s,)`` one value per from-scratch run.

The arms are independent runs, so every comparison here is *unpaired* (two-sample); ``n_t`` and
``n_s`` may differ. Bootstrap resampling is stratified by arm (each arm is resampled on its own,
as rliable's ``StratifiedBootstrap`` does with tasks).

What is here:

* **the test and interval of every verdict**: Welch's t statistic with Hsu's conservative degrees of
  freedom ``min(n_t, n_s) - 1`` (:func:`welch_test`). Under normal per-seed values its false-positive
  rate is at most ``alpha`` for *every* ratio of the arms' variances and every ``n_t, n_s`` (Mickey &
  Brown, 1966); Welch-Satterthwaite degrees of freedom (``df="satterthwaite"``, scipy's Welch test) are
  liberal at 3-5 seeds when the arms' spreads differ (5.3-5.9% at 3 vs 3 seeds and 6.6% at 3 vs 5 on
  normal data with sd ratios 3-9). The interval is the matching t interval, so "interval excludes 0"
  and "p < alpha" agree. Exact permutation tests (:func:`permutation_p`) are used where the t test is
  undefined (both arms constant);
* **verdicts**: :func:`verdict` and :func:`judge_suite` on one primary metric (rule in
  :data:`VERDICT_RULE`), :func:`profile_verdict` / :func:`profile_suite` that read jumpstart, AUC and
  final performance together and name the pattern, and their vectorized forms
  (:func:`verdict_labels`, :func:`profile_labels`) used by the error-rate simulations;
* **equivalence and planning**: :func:`tost` (two one-sided tests within a margin) and
  :func:`seeds_for_margin` (seeds per arm to detect a difference of the margin, or to show equivalence,
  from a pilot's sd: never from the observed effect);
* **variance from the source**: :func:`hierarchical_bootstrap_ci_diff` for target seeds nested in
  source seeds and :func:`source_reliance`, which says when a verdict rests on a single source;
* **aggregates across a suite** (rliable-grade, reimplemented with numpy/scipy because rliable pulls in
  arch, seaborn and pandas): :func:`iqm`, :func:`aggregate_interval`, :func:`aggregate_difference`,
  :func:`performance_profile`, :func:`aggregate_probability_of_improvement`;
* **censored time to threshold**: :func:`kaplan_meier`, :func:`logrank_test`, :func:`rmst_difference`
  instead of filling censored runs with the budget (:func:`censored_as_budget`, kept for tables). When
  every censored run sits at the budget the RMST up to the budget *is* the mean of the censored-as-budget
  values (its test gives the same answers); the log-rank test weighs the event times instead.

Orientation: every function that talks about "improvement" takes ``higher_is_better``. With
``higher_is_better=False`` (time to threshold) the sign is flipped, so that throughout this module a
*positive* difference, a probability of improvement above 0.5 and a ``"positive"`` verdict all mean
"transfer is better".

Measured error rates (``benchmarks/scripts/verdict_error_rates.py``, six synthetic curve families of
:mod:`rltransfer.synthetic`, 3/5/10 seeds per arm, 10,000 null pairs per cell): the total false-verdict
rate (either sign) of :func:`verdict` is 1.1-4.4% on every family's null (upper 95% bounds at most 4.8%);
:func:`profile_verdict` names a pattern on 0.5-3.8% of null pairs. Percentile bootstrap intervals of the
AUC difference missed the truth in 7.7-22.3% of null pairs at 3-10 seeds where 5% is promised; the
Welch-Hsu t interval the verdicts use misses 0.7-4.1%.

Randomness: every function that resamples takes ``random_state`` (an ``int`` seed, a
``numpy.random.Generator`` or ``None`` for fresh entropy) and is deterministic for a given seed.
The module imports only numpy and scipy.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

import numpy as np
from numpy.typing import ArrayLike
from scipy import special, stats

from rltransfer.errors import ConfigError, unknown_name

__all__ = [
    "DEFAULT_MARGINS",
    "as_generator",
    "PROFILE_LABELS",
    "PROFILE_METRICS",
    "RMST",
    "VERDICT_RULE",
    "Comparison",
    "Equivalence",
    "Interval",
    "MetricTest",
    "PerformanceProfile",
    "Profile",
    "SourceReliance",
    "SurvivalCurve",
    "TTest",
    "Verdict",
    "aggregate_difference",
    "aggregate_interval",
    "aggregate_probability_of_improvement",
    "bootstrap_ci_diff",
    "censored_as_budget",
    "clopper_pearson",
    "cluster_t_ci_diff",
    "cohens_d",
    "hierarchical_bootstrap_ci_diff",
    "holm",
    "iqm",
    "judge_suite",
    "kaplan_meier",
    "logrank_test",
    "mann_whitney_p",
    "performance_profile",
    "permutation_p",
    "pilot_sd",
    "probability_of_improvement",
    "profile_labels",
    "profile_suite",
    "profile_verdict",
    "required_seeds",
    "rmst_difference",
    "seeds_for_margin",
    "source_reliance",
    "tost",
    "verdict",
    "verdict_labels",
    "welch_p",
    "welch_test",
]

RandomState = int | np.integer | np.random.Generator | None
Test = Literal["welch", "mannwhitney", "permutation"]
DfRule = Literal["hsu", "satterthwaite"]
Label = Literal["positive", "negative", "inconclusive", "equivalent"]
ProfileLabel = Literal["better", "worse", "jumpstart only", "crossover", "slow start", "equivalent",
                       "inconclusive"]
K = TypeVar("K", bound=Hashable)

#: Equivalence margins by metric name, in the metric's units (normalized AUC: 5% of the return range).
DEFAULT_MARGINS: dict[str, float] = {"auc": 0.05, "normalized AUC": 0.05}

#: The metrics a profile reads, in time order: jumpstart (initial return), AUC, final performance.
PROFILE_METRICS: tuple[str, ...] = ("initial", "auc", "asymptotic")
_PROFILE_ALIASES = {"jumpstart": "initial", "final": "asymptotic"}

#: Every label :func:`profile_verdict` can return (index = the code used by :func:`profile_labels`).
PROFILE_LABELS: tuple[str, ...] = ("inconclusive", "better", "worse", "jumpstart only", "crossover",
                                   "slow start", "equivalent")

VERDICT_RULE = """\
Verdict rule. Each (task pair, strategy) comparison is judged on one primary metric, the normalized
area under the evaluation curve (AUC) by default, oriented so that a positive difference means the
transfer arm is better (the sign is flipped for lower-is-better metrics such as time to threshold).

1. Too few seeds: if either arm has fewer than `min_seeds` runs (default 3), the verdict is
   "inconclusive" (too few seeds), whatever the numbers say.
2. Effect and interval: the difference of the arms' means, transfer minus scratch, with the (1 - alpha)
   Welch t interval (default 95%) with Hsu's conservative degrees of freedom min(n_t, n_s) - 1: valid
   for any ratio of the arms' spreads (the percentile bootstrap interval used before missed 8-22% at
   3-10 seeds where 5% is promised; this one misses 0.7-4.1%).
3. Test: the matching two-sided Welch t-test (Hsu df), so the interval excludes 0 exactly when p < alpha
   (an exact permutation test when both arms are constant; Mann-Whitney U or a permutation test with
   test="mannwhitney" / "permutation"), Holm-Bonferroni adjusted across all comparisons of the suite
   that have enough seeds (m = 1 for a lone comparison).
4. "positive" when the interval lies wholly above 0 AND the adjusted p < alpha (default 0.05);
   "negative" when the interval lies wholly below 0 AND the adjusted p < alpha;
   otherwise "inconclusive" ("equivalent" instead, when asked for with equivalence=True, if the
   1 - 2 alpha interval lies within +-margin: two one-sided tests).
5. Seeds needed (a planning figure, not post-hoc power): the seeds per arm with which this test would
   detect a true difference of one margin (default 0.05 normalized AUC) with 80% power, and separately
   the seeds to show equivalence within the margin, both from this comparison's pooled sd (the pilot),
   never from the observed effect.
Measured on six synthetic curve families (logistic, bimodal, unequal spread, heavy censoring,
crossover, jumpstart) at 3, 5 and 10 seeds per arm, 10,000 null pairs each: false "positive" + false
"negative" 1.1-4.4% in total (upper 95% Clopper-Pearson bounds at most 4.8%); Welch-Satterthwaite df
gave up to 5.3% (unequal spreads). Power at a planted AUC effect of d = 1 / 2 / 3 pooled sds (logistic
curves): 5% / 18% / 42% with 3 seeds per arm, 18% / 64% / 95% with 5, 51% / 98% / 100% with 10.
The interval is per comparison (not adjusted for multiplicity); the p-value is adjusted.
The AUC alone hides crossovers (better start, worse end) and head starts: the profile verdict reads the
jumpstart, the AUC and the final performance together (Holm across the three) and names the pattern."""


# ---------------------------------------------------------------------------------------------
# result types


@dataclass(frozen=True)
class Interval:
    """A point estimate with a confidence interval.

    Attributes:
        point: the estimate on the original data.
        low: lower end of the interval.
        high: upper end of the interval.
    """

    point: float
    low: float
    high: float

    def above(self, value: float = 0.0) -> bool:
        """Whether the whole interval lies strictly above ``value``."""
        return bool(self.low > value)

    def below(self, value: float = 0.0) -> bool:
        """Whether the whole interval lies strictly below ``value``."""
        return bool(self.high < value)

    def within(self, margin: float) -> bool:
        """Whether the whole interval lies strictly inside ``(-margin, margin)``."""
        return bool(-margin < self.low and self.high < margin)


@dataclass(frozen=True)
class TTest:
    """Welch t-test of the oriented difference of means (arrays for batched input, floats otherwise).

    Attributes:
        diff: oriented difference of means (transfer better > 0).
        low, high: the ``1 - alpha`` t interval.
        p_value: two-sided p-value (``nan`` when both arms are constant).
        se: standard error ``sqrt(v_t / n_t + v_s / n_s)``.
        df: degrees of freedom used.
    """

    diff: np.ndarray | float
    low: np.ndarray | float
    high: np.ndarray | float
    p_value: np.ndarray | float
    se: np.ndarray | float
    df: np.ndarray | float


@dataclass(frozen=True)
class Equivalence:
    """Two one-sided tests (TOST) of ``|difference| < margin``.

    Attributes:
        equivalent: both one-sided tests reject at ``alpha`` (the ``1 - 2 alpha`` interval lies within
            ``(-margin, margin)``).
        p_value: the larger of the two one-sided p-values.
        ci: the oriented difference with its ``1 - 2 alpha`` t interval.
        margin: the margin, in the metric's units.
    """

    equivalent: bool
    p_value: float
    ci: Interval
    margin: float


@dataclass(frozen=True)
class Verdict:
    """Outcome of the verdict rule for one comparison (see :data:`VERDICT_RULE`).

    Attributes:
        label: ``"positive"`` (transfer better), ``"negative"`` (transfer worse), ``"inconclusive"``,
            or ``"equivalent"`` (only with ``equivalence=True``).
        reason: one sentence saying why, with the numbers.
        ci: oriented difference of means (transfer better > 0) with its Welch-Hsu t interval.
        p_value: raw two-sided p-value of the test (``nan`` when undefined).
        p_adjusted: Holm-adjusted p-value within the suite (``nan`` when not tested).
        prob_improvement: P(transfer run > scratch run), oriented, with a bootstrap interval.
        seeds_needed: *planning figure*: seeds per arm with which the verdict's test detects a true
            difference of ``margin`` with the requested power, from this comparison's pooled sd (not
            from the observed effect). ``inf`` above 1000, ``nan`` when no margin is known or fewer than
            two runs per arm.
        effect_size: oriented Cohen's d (pooled sd); ``nan`` when undefined.
        n_transfer: number of transfer runs.
        n_scratch: number of scratch runs.
        metric: name of the metric judged.
        higher_is_better: orientation used.
        test: the test whose p-value was used (``"welch"``, ``"mannwhitney"`` or ``"permutation"``).
        margin: equivalence margin in the metric's units (``nan`` when none).
        equivalence_p: TOST p-value within ``margin`` (``nan`` when none).
        seeds_needed_equivalence: seeds per arm to show equivalence within ``margin`` with the requested
            power if the true difference is 0, from the same pooled sd.
        df: degrees of freedom of the t interval.
    """

    label: Label
    reason: str
    ci: Interval
    p_value: float
    p_adjusted: float
    prob_improvement: Interval
    seeds_needed: float
    effect_size: float = math.nan
    n_transfer: int = 0
    n_scratch: int = 0
    metric: str = "auc"
    higher_is_better: bool = True
    test: str = "welch"
    margin: float = math.nan
    equivalence_p: float = math.nan
    seeds_needed_equivalence: float = math.nan
    df: float = math.nan


@dataclass(frozen=True, eq=False)
class Comparison:
    """One comparison of a suite: per-seed values of a metric for the two arms.

    Attributes:
        transfer: (n_t,) per-seed metric values of the transfer arm.
        scratch: (n_s,) per-seed metric values of the from-scratch arm.
        higher_is_better: ``False`` for metrics such as time to threshold.
        metric: name of the metric, used in the verdict's reason.
        margin: equivalence margin in the metric's units; ``None``: :data:`DEFAULT_MARGINS` by name.
    """

    transfer: ArrayLike
    scratch: ArrayLike
    higher_is_better: bool = True
    metric: str = "auc"
    margin: float | None = None


@dataclass(frozen=True)
class MetricTest:
    """One metric of a profile: test, interval and equivalence.

    Attributes:
        metric: ``"initial"`` (jumpstart), ``"auc"`` or ``"asymptotic"`` (final performance).
        ci: transfer minus scratch with its ``1 - alpha`` Welch-Hsu t interval.
        p_value: raw two-sided p-value.
        p_adjusted: Holm-adjusted across the profile's metrics (and the suite's pairs in
            :func:`profile_suite`).
        direction: ``"better"``, ``"worse"`` (adjusted p < alpha) or ``"none"``.
        margin: equivalence margin (``nan``: not assessed).
        equivalence_p: TOST p-value (``nan`` when not assessed).
        equivalent: TOST rejects at ``alpha``.
    """

    metric: str
    ci: Interval
    p_value: float
    p_adjusted: float
    direction: Literal["better", "worse", "none"]
    margin: float
    equivalence_p: float
    equivalent: bool


@dataclass(frozen=True)
class Profile:
    """Outcome of :func:`profile_verdict`.

    Attributes:
        label: one of :data:`PROFILE_LABELS`.
        reason: one sentence with the numbers.
        metrics: ``{metric: MetricTest}`` in :data:`PROFILE_METRICS` order.
        n_transfer, n_scratch: runs per arm.
    """

    label: ProfileLabel
    reason: str
    metrics: dict[str, MetricTest]
    n_transfer: int
    n_scratch: int


@dataclass(frozen=True)
class SourceReliance:
    """Whether a nested (sources x target seeds) comparison rests on a single source.

    Attributes:
        single_source: ``True`` when there is one source, or when leaving out one source makes the flat
            interval include 0 (or flip) while the full one excludes 0.
        reason: one sentence.
        n_sources: number of source seeds.
        n_targets: total number of target seeds.
        icc: share of the transfer arm's variance between sources (one-way ANOVA estimate, >= 0).
        design_effect: ``1 + (mean targets per source - 1) * icc``.
        effective_n: ``n_targets / design_effect``: independent seeds the nested arm is worth.
        ci: the hierarchical bootstrap interval of the difference (all sources).
        flat: the Welch-Hsu t interval with all target seeds pooled (what :func:`verdict` sees).
        leave_one_out: the flat interval with each source left out in turn (empty with one source).
        cluster: the :func:`cluster_t_ci_diff` interval (sources as units); ``nan`` with one source.
    """

    single_source: bool
    reason: str
    n_sources: int
    n_targets: int
    icc: float
    design_effect: float
    effective_n: float
    ci: Interval
    flat: Interval
    leave_one_out: tuple[Interval, ...] = ()
    cluster: Interval = Interval(math.nan, math.nan, math.nan)


@dataclass(frozen=True)
class PerformanceProfile:
    """A run-score distribution (rliable's performance profile) with pointwise bootstrap bands.

    Attributes:
        taus: (n_tau,) thresholds.
        fraction: (n_tau,) fraction of runs with score > tau (mean over tasks of each task's fraction).
        low, high: (n_tau,) pointwise ``1 - alpha`` stratified-bootstrap percentile band.
    """

    taus: np.ndarray
    fraction: np.ndarray
    low: np.ndarray
    high: np.ndarray


@dataclass(frozen=True)
class SurvivalCurve:
    """Kaplan-Meier estimate of P(threshold not yet reached at step t).

    A right-continuous step function: ``S(t) = survival[i]`` for ``times[i] <= t < times[i + 1]`` and 1
    before ``times[0]``.

    Attributes:
        times: (k,) distinct event times (steps at which some run first reached the threshold).
        survival: (k,) the estimate just after each event time.
        low, high: (k,) pointwise ``1 - alpha`` interval (Greenwood variance, log-log transform).
        at_risk: (k,) runs not yet at the threshold and not censored just before each time.
        events: (k,) runs reaching the threshold at each time.
    """

    times: np.ndarray
    survival: np.ndarray
    low: np.ndarray
    high: np.ndarray
    at_risk: np.ndarray
    events: np.ndarray


@dataclass(frozen=True)
class RMST:
    """Difference of restricted mean survival times (steps to threshold, capped at ``tau``).

    Attributes:
        ci: oriented difference (``higher_is_better=False``: scratch minus transfer, positive = transfer
            reaches the threshold sooner) with its ``1 - alpha`` interval.
        p_value: two-sided p-value of the same statistic.
        tau: the restriction time.
        rmst_transfer, rmst_scratch: each arm's restricted mean.
    """

    ci: Interval
    p_value: float
    tau: float
    rmst_transfer: float
    rmst_scratch: float


# ---------------------------------------------------------------------------------------------
# helpers


def as_generator(random_state: RandomState) -> np.random.Generator:
    """``random_state`` as a numpy Generator: an int seed (or None: fresh entropy), or a Generator as is.

    Raises:
        ConfigError: anything else (a float, a bool, a legacy ``RandomState``).
    """
    if isinstance(random_state, np.random.Generator):
        return random_state
    is_int = isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool)
    if random_state is None or is_int:
        return np.random.default_rng(random_state)
    raise ConfigError(
        f"random_state must be an int seed, a numpy.random.Generator or None, got {random_state!r}"
    )


def _arm(values: ArrayLike, name: str, min_size: int = 1) -> np.ndarray:
    """Validate one arm: a (n,) array of finite floats with at least ``min_size`` values."""
    arr = np.asarray(values, dtype=float)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise ConfigError(
            f"{name} must be a 1-D array of per-seed values, shape (n_seeds,), got shape {arr.shape}"
        )
    if arr.size < min_size:
        raise ConfigError(f"{name} needs at least {min_size} value(s), got {arr.size}")
    if not np.all(np.isfinite(arr)):
        raise ConfigError(
            f"{name} must hold finite per-seed values, got {arr.tolist()}; drop failed runs explicitly "
            "(and report them) or use censored_as_budget for time to threshold"
        )
    return arr


def _batch(values: ArrayLike, name: str, min_size: int = 2) -> np.ndarray:
    """Validate a batch of arms: (..., n) finite floats with ``n >= min_size``."""
    arr = np.asarray(values, dtype=float)
    if arr.ndim == 0 or arr.shape[-1] < min_size:
        raise ConfigError(f"{name} must have shape (..., n_seeds) with n_seeds >= {min_size}, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ConfigError(f"{name} must hold finite per-seed values")
    return arr


def _check_alpha(alpha: float, name: str = "alpha") -> float:
    a = float(alpha)
    if not 0.0 < a < 1.0:
        raise ConfigError(f"{name} must be in (0, 1), got {alpha!r}")
    return a


def _check_n_boot(n_boot: int, name: str = "n_boot") -> int:
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ConfigError(f"{name} must be a positive integer, got {n_boot!r}")
    return int(n_boot)


def _check_df(df: str) -> str:
    if df not in ("hsu", "satterthwaite"):
        raise ConfigError(f"df must be 'hsu' or 'satterthwaite', got {df!r}")
    return df


def _check_margin(margin: float | None, name: str = "margin") -> float:
    if margin is None:
        return math.nan
    m = float(margin)
    if not (math.isfinite(m) and m > 0) and not math.isnan(m):
        raise ConfigError(f"{name} must be a positive finite number in the metric's units, got {margin!r}")
    return m


def _orient(
    transfer: np.ndarray, scratch: np.ndarray, higher_is_better: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Negate both arms for lower-is-better metrics so that larger always means better."""
    if higher_is_better:
        return transfer, scratch
    return -transfer, -scratch


def _apply_stat(stat: Callable[..., ArrayLike], samples: np.ndarray) -> np.ndarray:
    """Apply ``stat`` to each row of ``samples: (n_boot, n)``; vectorized when it takes ``axis``."""
    try:
        out = np.asarray(stat(samples, axis=1), dtype=float)
        if out.shape == (samples.shape[0],):
            return out
    except TypeError:
        pass
    return np.array([np.asarray(stat(row), dtype=float).item() for row in samples])


def _fmt(x: float) -> str:
    return "nan" if not math.isfinite(x) else f"{x:+.4g}"


def _min_p(n_t: int, n_s: int, test: str) -> float:
    """Smallest two-sided p-value an exact rank or permutation test can reach with these arm sizes."""
    splits = math.comb(n_t + n_s, n_t)
    return min(1.0, (2.0 if (test == "mannwhitney" or n_t == n_s) else 1.0) / splits)


# ---------------------------------------------------------------------------------------------
# the t machinery (vectorized over leading axes)


def _t_parts(t: np.ndarray, s: np.ndarray, df_rule: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Difference of means, Welch standard error and degrees of freedom over the last axis.

    Constant arms (``ptp == 0``) get a variance of exactly 0 (no rounding residue).
    """
    nt, ns = t.shape[-1], s.shape[-1]
    diff = t.mean(axis=-1) - s.mean(axis=-1)
    vt = np.where(np.ptp(t, axis=-1) == 0, 0.0, t.var(axis=-1, ddof=1)) / nt
    vs = np.where(np.ptp(s, axis=-1) == 0, 0.0, s.var(axis=-1, ddof=1)) / ns
    se = np.sqrt(vt + vs)
    if df_rule == "hsu":
        df = np.full(np.shape(se), float(min(nt, ns) - 1))
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            df = (vt + vs) ** 2 / (vt**2 / (nt - 1) + vs**2 / (ns - 1))
    return diff, se, df


def _t_test(t: np.ndarray, s: np.ndarray, alpha: float, df_rule: str) -> TTest:
    diff, se, df = _t_parts(t, s, df_rule)
    with np.errstate(divide="ignore", invalid="ignore"):
        stat = np.where(se > 0, np.abs(diff) / np.where(se > 0, se, 1.0), np.nan)
        p = np.minimum(1.0, 2.0 * special.stdtr(df, -stat))
        half = np.where(se > 0, stats.t.ppf(1.0 - alpha / 2.0, np.where(se > 0, df, 1.0)) * se, 0.0)
    return TTest(diff, diff - half, diff + half, np.where(se > 0, p, np.nan), se, df)


def welch_test(
    transfer: ArrayLike,
    scratch: ArrayLike,
    *,
    alpha: float = 0.05,
    df: DfRule = "hsu",
    higher_is_better: bool = True,
) -> TTest:
    """Welch's t-test and t interval for the oriented difference of means, vectorized over pairs.

    ``t = (m_t - m_s) / sqrt(v_t / n_t + v_s / n_s)``. Degrees of freedom:

    * ``df="hsu"`` (default): ``min(n_t, n_s) - 1``. Conservative: under normal per-seed values the
      false-positive rate is at most ``alpha`` whatever the ratio of the arms' variances (the
      statistic's distribution lies between ``t(min(n) - 1)`` and ``t(n_t + n_s - 2)``; Mickey & Brown
      1966). Measured on normal data (200,000 pairs per cell): 1.3-5.0% at 3 seeds, 2.4-5.0% at 5,
      3.7-5.0% at 10 for sd ratios 1-30. Costs power at 3 seeds (critical value 4.30 instead of about 3).
    * ``df="satterthwaite"``: Welch-Satterthwaite, as ``scipy.stats.ttest_ind(equal_var=False)``. Liberal
      at small n with unequal spreads: 5.9% at 3 vs 3 and 6.6% at 3 vs 5 seeds (sd ratio 3-9, normal
      data); 4.9% / 5.3% / 5.2% on the ``unequal_spread`` curve family at 3 / 5 / 10 seeds (Hsu: 2.5% /
      3.7% / 4.4%).

    Args:
        transfer: (..., n_t) per-seed values, ``n_t >= 2``; leading axes are independent comparisons.
        scratch: (..., n_s) per-seed values, ``n_s >= 2``, leading axes broadcastable with transfer's.
        alpha: the interval has level ``1 - alpha``.
        df: ``"hsu"`` or ``"satterthwaite"``.
        higher_is_better: orientation (``False`` negates both arms).

    Returns:
        A :class:`TTest` of floats for 1-D input, of arrays of the leading shape otherwise. When both
        arms of a comparison are constant, ``p_value`` is ``nan`` and the interval collapses on the point.
    """
    t = _batch(transfer, "transfer")
    s = _batch(scratch, "scratch")
    a = _check_alpha(alpha)
    t, s = _orient(t, s, higher_is_better)
    res = _t_test(t, s, a, _check_df(df))
    if t.ndim == 1 and s.ndim == 1:
        return TTest(*(float(v) for v in (res.diff, res.low, res.high, res.p_value, res.se, res.df)))
    return res


def welch_p(transfer: ArrayLike, scratch: ArrayLike, df: DfRule = "hsu") -> float:
    """Two-sided p-value of Welch's unequal-variance t-test.

    ``t = (m_t - m_s) / sqrt(v_t/n_t + v_s/n_s)`` in closed form. With ``df="hsu"`` (default) the
    degrees of freedom are ``min(n_t, n_s) - 1``, valid at any variance ratio (see :func:`welch_test`);
    ``df="satterthwaite"`` gives the numbers of ``scipy.stats.ttest_ind(equal_var=False)``.

    Args:
        transfer: (n_t,) per-seed values.
        scratch: (n_s,) per-seed values.
        df: ``"hsu"`` or ``"satterthwaite"``.

    Returns:
        The p-value, or ``nan`` when an arm has fewer than two values or both arms are constant
        (the test is then undefined; :func:`permutation_p` still works if the constants differ).
    """
    t = _arm(transfer, "transfer")
    s = _arm(scratch, "scratch")
    rule = _check_df(df)
    if t.size < 2 or s.size < 2:
        return math.nan
    return float(_t_test(t, s, 0.05, rule).p_value)


def _perm_stat(t: np.ndarray, s: np.ndarray, statistic: str) -> np.ndarray:
    diff, se, _ = _t_parts(t, s, "hsu")
    if statistic == "mean":
        return np.abs(diff)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.abs(diff) / se
    return np.where(np.isnan(out), 0.0, out)


def permutation_p(
    transfer: ArrayLike,
    scratch: ArrayLike,
    *,
    statistic: Literal["welch", "mean"] = "welch",
    n_perm: int = 10_000,
    max_exact: int = 20_000,
    random_state: RandomState = 0,
) -> float:
    """Two-sided permutation test of the two arms (exact when the splits can be enumerated).

    The arm labels are reassigned over all ``C(n_t + n_s, n_t)`` splits when that is at most
    ``max_exact`` (exact p-value, no randomness), else over ``n_perm`` random splits with the usual
    ``(1 + count) / (1 + n_perm)``. Exact under exchangeability (both arms from one distribution), so
    it suits tiny or tied arms; the studentized statistic (``"welch"``, default) also keeps it
    approximately valid when only the means are equal (Janssen 1997). The smallest p-value it can reach
    is ``2 / C(n_t + n_s, n_t)`` for equal arms: 0.1 at 3 vs 3, 0.0079 at 5 vs 5.

    Args:
        transfer: (n_t,) per-seed values, at least two.
        scratch: (n_s,) per-seed values, at least two.
        statistic: ``"welch"`` (|Welch t|; a split with zero spread and a nonzero difference is infinite)
            or ``"mean"`` (|difference of means|).
        n_perm: random splits when the exact enumeration is too large.
        max_exact: enumerate when there are at most this many splits.
        random_state: seed or generator for the random splits.

    Returns:
        The p-value in ``(0, 1]``; ``1.0`` when all values are equal.
    """
    t = _arm(transfer, "transfer", 2)
    s = _arm(scratch, "scratch", 2)
    if statistic not in ("welch", "mean"):
        raise ConfigError(f"statistic must be 'welch' or 'mean', got {statistic!r}")
    b = _check_n_boot(n_perm, "n_perm")
    cap = _check_n_boot(max_exact, "max_exact")
    pooled = np.concatenate([t, s])
    n, k = pooled.size, t.size
    observed = float(_perm_stat(t[None], s[None], statistic)[0])
    if math.isnan(observed) or observed == 0.0:
        return 1.0
    total = math.comb(n, k)
    if total <= cap:
        idx = np.array(list(itertools.combinations(range(n), k)))
        mask = np.zeros((total, n), dtype=bool)
        mask[np.arange(total)[:, None], idx] = True
    else:
        keys = as_generator(random_state).random((b, n))
        mask = np.zeros((b, n), dtype=bool)
        np.put_along_axis(mask, np.argsort(keys, axis=1)[:, :k], True, axis=1)
    rows = mask.shape[0]
    tt = np.broadcast_to(pooled, (rows, n))[mask].reshape(rows, k)
    ss = np.broadcast_to(pooled, (rows, n))[~mask].reshape(rows, n - k)
    perm = _perm_stat(tt, ss, statistic)
    tol = 1e-9 * max(1.0, abs(observed)) if math.isfinite(observed) else 0.0
    count = int(np.sum(perm >= observed - tol))
    if total <= cap:
        return count / total
    return (1 + count) / (1 + b)


def mann_whitney_p(transfer: ArrayLike, scratch: ArrayLike) -> float:
    """Two-sided p-value of the Mann-Whitney U test (``scipy.stats.mannwhitneyu``, method ``auto``).

    Exact for small samples without ties, normal approximation with tie correction otherwise. The
    exact test cannot go below ``2 / C(n_t + n_s, n_t)``: 0.1 at 3 vs 3 seeds, so it can never reach
    ``p < 0.05`` there (0.057 at 3 vs 4, 0.029 at 4 vs 4).

    Args:
        transfer: (n_t,) per-seed values.
        scratch: (n_s,) per-seed values.

    Returns:
        The p-value, or ``nan`` when an arm has fewer than two values or all values of both arms are
        identical.
    """
    t = _arm(transfer, "transfer")
    s = _arm(scratch, "scratch")
    if t.size < 2 or s.size < 2:
        return math.nan
    pooled = np.concatenate([t, s])
    if np.all(pooled == pooled[0]):
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        p = float(stats.mannwhitneyu(t, s, alternative="two-sided", method="auto").pvalue)
    return p if math.isfinite(p) else math.nan


def _tost_p(t: np.ndarray, s: np.ndarray, margin: float, alpha: float, df_rule: str
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """TOST p-value and the ``1 - 2 alpha`` interval, vectorized; ``(p, diff, low, high)``."""
    diff, se, df = _t_parts(t, s, df_rule)
    with np.errstate(divide="ignore", invalid="ignore"):
        safe = np.where(se > 0, se, 1.0)
        dfs = np.where(np.isfinite(df) & (df > 0), df, 1.0)
        p_low = special.stdtr(dfs, -(diff + margin) / safe)  # H0: diff <= -margin
        p_high = special.stdtr(dfs, (diff - margin) / safe)  # H0: diff >= +margin
        p = np.maximum(p_low, p_high)
        p = np.where(se > 0, p, np.where(np.abs(diff) < margin, 0.0, 1.0))
        half = np.where(se > 0, stats.t.ppf(1.0 - alpha, dfs) * se, 0.0)
    return p, diff, diff - half, diff + half


def tost(
    transfer: ArrayLike,
    scratch: ArrayLike,
    margin: float,
    *,
    alpha: float = 0.05,
    df: DfRule = "hsu",
    higher_is_better: bool = True,
) -> Equivalence:
    """Equivalence within ``+-margin`` by two one-sided Welch t-tests (TOST, Schuirmann 1987).

    The null is ``|difference of means| >= margin``; it is rejected at level ``alpha`` when both
    one-sided tests reject, i.e. when the ``1 - 2 alpha`` t interval lies inside ``(-margin, margin)``.
    The chance of declaring equivalence when the true difference is exactly at the margin is at most
    ``alpha`` (with Hsu df, for any variance ratio under normality); measured 0.2-4.6% on four curve
    families at 3-10 seeds (margin one pooled sd of AUC, 2500 pairs each). With 5 seeds per arm and an AUC sd
    of 0.08 a 0.05 margin is rarely reached (:func:`seeds_for_margin` says how many seeds it needs).

    Args:
        transfer: (n_t,) per-seed values, at least two.
        scratch: (n_s,) per-seed values, at least two.
        margin: the equivalence margin in the metric's units (e.g. 0.05 normalized AUC), ``> 0``.
        alpha: level of each one-sided test.
        df: degrees-of-freedom rule (see :func:`welch_test`).
        higher_is_better: orientation of the reported difference.

    Returns:
        An :class:`Equivalence`.
    """
    t = _arm(transfer, "transfer", 2)
    s = _arm(scratch, "scratch", 2)
    a = _check_alpha(alpha)
    m = _check_margin(margin)
    if math.isnan(m):
        raise ConfigError("margin must be a positive finite number in the metric's units, got nan")
    t, s = _orient(t, s, higher_is_better)
    p, diff, low, high = (float(v) for v in _tost_p(t, s, m, a, _check_df(df)))
    return Equivalence(bool(p < a), p, Interval(diff, low, high), m)


def holm(pvalues: ArrayLike) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (step-down, controls the family-wise error rate).

    With the ``m`` finite p-values sorted ascending, ``p_(1) <= ... <= p_(m)``, the adjusted value of
    the ``i``-th is ``max_{j <= i} min(1, (m - j + 1) * p_(j))``. Rejecting where the adjusted value
    is below ``alpha`` is Holm's procedure at level ``alpha``. ``nan`` entries (untested
    comparisons) stay ``nan`` and do not count in ``m``.

    Args:
        pvalues: (m,) raw p-values in ``[0, 1]`` or ``nan``.

    Returns:
        (m,) adjusted p-values in the input order.
    """
    p = np.asarray(pvalues, dtype=float)
    if p.ndim == 0:
        p = p.reshape(1)
    if p.ndim != 1:
        raise ConfigError(f"pvalues must be a 1-D array of shape (m,), got shape {p.shape}")
    finite = ~np.isnan(p)
    if np.any((p[finite] < 0) | (p[finite] > 1)):
        raise ConfigError(f"p-values must lie in [0, 1] (or be nan), got {p.tolist()}")
    out = np.full(p.shape, np.nan)
    idx = np.flatnonzero(finite)
    m = idx.size
    if m == 0:
        return out
    order = idx[np.argsort(p[idx], kind="stable")]
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(scaled)
    return out


def _holm_rows(p: np.ndarray) -> np.ndarray:
    """Holm over the last axis of ``p: (..., m)`` (no nan), vectorized."""
    m = p.shape[-1]
    order = np.argsort(p, axis=-1, kind="stable")
    ps = np.take_along_axis(p, order, axis=-1)
    adj = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * ps), axis=-1)
    out = np.empty_like(adj)
    np.put_along_axis(out, order, adj, axis=-1)
    return out


def clopper_pearson(successes: int, trials: int, alpha: float = 0.05) -> tuple[float, float]:
    """Exact (Clopper-Pearson) ``1 - alpha`` interval of a binomial proportion.

    Args:
        successes: number of events, ``0 <= successes <= trials``.
        trials: number of trials, ``>= 1``.
        alpha: the interval has level ``1 - alpha``.

    Returns:
        ``(low, high)``.
    """
    a = _check_alpha(alpha)
    n = _check_n_boot(trials, "trials")
    if isinstance(successes, bool) or not isinstance(successes, (int, np.integer)) or not 0 <= successes <= n:
        raise ConfigError(f"successes must be an integer in [0, trials={n}], got {successes!r}")
    k = int(successes)
    low = 0.0 if k == 0 else float(stats.beta.ppf(a / 2.0, k, n - k + 1))
    high = 1.0 if k == n else float(stats.beta.ppf(1.0 - a / 2.0, k + 1, n - k))
    return low, high


# ---------------------------------------------------------------------------------------------
# effect estimates with intervals


def bootstrap_ci_diff(
    transfer: ArrayLike,
    scratch: ArrayLike,
    stat: Callable[..., ArrayLike] = np.mean,
    n_boot: int = 2000,
    alpha: float = 0.05,
    random_state: RandomState = 0,
    higher_is_better: bool = True,
    method: Literal["auto", "t", "studentized", "bca", "percentile"] = "auto",
) -> Interval:
    """Difference ``stat(transfer) - stat(scratch)`` with a confidence interval for few seeds.

    Methods (measured on the logistic, bimodal and unequal-spread families of :mod:`rltransfer.synthetic`,
    normalized AUC, 1500 null pairs each, 999 resamples: share of 95% intervals that miss the true
    difference at 3 / 5 / 10 seeds per arm):

    * ``"t"`` (what ``"auto"`` picks for ``stat=np.mean``): the Welch t interval with Hsu df
      ``min(n_t, n_s) - 1`` (:func:`welch_test`), no resampling. At most ``alpha`` under normality for
      any ratio of the arms' spreads; misses 0.7-2.5% / 1.7-4.0% / 3.1-4.1%.
    * ``"studentized"`` (bootstrap-t): quantiles of ``(diff* - diff) / se*`` with the Welch standard
      error, inverted around the observed difference; misses 0.8-3.3% / 3.5-4.9% / 4.8-5.8% (up to 6.3%
      in a second run). Only for the mean.
    * ``"bca"`` (what ``"auto"`` picks for any other statistic): bias-corrected and accelerated
      percentiles (Efron 1987), acceleration from the two-sample jackknife. As narrow as the
      percentile interval at few seeds (misses 20-24% / 14-17% / 7-9%): prefer the mean.
    * ``"percentile"``: the ``alpha/2`` and ``1 - alpha/2`` percentiles of the resampled differences;
      misses 17-22% / 13-15% / 8-9% where 5% is promised. Kept for comparison.

    Resampling methods draw each arm with replacement on its own (stratified), ``n_boot`` times.

    Args:
        transfer: (n_t,) per-seed values of the transfer arm.
        scratch: (n_s,) per-seed values of the scratch arm.
        stat: reduction applied to each arm, ideally accepting ``axis=`` (``np.mean``, ``np.median``).
        n_boot: number of bootstrap resamples.
        alpha: the interval has level ``1 - alpha``.
        random_state: seed or generator for the resampling.
        higher_is_better: if ``False`` the difference is ``stat(scratch) - stat(transfer)`` so that
            positive still means "transfer better".
        method: ``"auto"`` (``"t"`` for the mean, ``"bca"`` otherwise), ``"t"``, ``"studentized"``,
            ``"bca"`` or ``"percentile"``.

    Returns:
        ``Interval(point, low, high)`` of the (oriented) difference; a collapsed interval when both
        arms are constant.
    """
    t = _arm(transfer, "transfer")
    s = _arm(scratch, "scratch")
    a = _check_alpha(alpha)
    b = _check_n_boot(n_boot)
    if method not in ("auto", "t", "studentized", "bca", "percentile"):
        raise ConfigError(f"method must be 'auto', 't', 'studentized', 'bca' or 'percentile', got {method!r}")
    is_mean = stat is np.mean or stat is np.nanmean
    if method == "auto":
        method = "t" if is_mean else "bca"
    if method in ("t", "studentized") and not is_mean:
        raise ConfigError(f"method={method!r} needs stat=np.mean (the Welch standard error is that of a mean)")
    t, s = _orient(t, s, higher_is_better)
    rng = as_generator(random_state)
    if method == "t":
        if t.size < 2 or s.size < 2:
            raise ConfigError("method='t' needs at least two values per arm")
        res = _t_test(t, s, a, "hsu")
        return Interval(float(res.diff), float(res.low), float(res.high))
    point = float(_apply_stat(stat, t[None, :])[0] - _apply_stat(stat, s[None, :])[0])
    bt = t[rng.integers(0, t.size, size=(b, t.size))]
    bs = s[rng.integers(0, s.size, size=(b, s.size))]
    diffs = _apply_stat(stat, bt) - _apply_stat(stat, bs)
    if np.ptp(t) == 0 and np.ptp(s) == 0:
        return Interval(point, point, point)
    if method == "percentile":
        low, high = np.quantile(diffs, [a / 2.0, 1.0 - a / 2.0])
        return Interval(point, float(low), float(high))
    if method == "studentized":
        if t.size < 2 or s.size < 2:
            raise ConfigError("method='studentized' needs at least two values per arm")
        _, se, _ = _t_parts(t, s, "hsu")
        _, se_b, _ = _t_parts(bt, bs, "hsu")
        num = diffs - point
        with np.errstate(divide="ignore", invalid="ignore"):
            tb = np.where(se_b > 0, num / np.where(se_b > 0, se_b, 1.0),
                          np.where(np.abs(num) < 1e-12 * max(1.0, abs(point)), 0.0, np.sign(num) * np.inf))
        q_lo, q_hi = np.quantile(tb, [a / 2.0, 1.0 - a / 2.0], method="linear")
        return Interval(point, float(point - q_hi * se), float(point - q_lo * se))
    # BCa
    below = float(np.mean(diffs < point)) + 0.5 * float(np.mean(diffs == point))
    z0 = float(stats.norm.ppf(min(max(below, 1.0 / (b + 1)), b / (b + 1))))
    def jackknife(x: np.ndarray) -> np.ndarray:
        if x.size < 2:
            return np.zeros(1)
        return np.array([_apply_stat(stat, np.delete(x, i)[None, :])[0] for i in range(x.size)])

    jack_t, jack_s = jackknife(t), jackknife(s)
    ut, us = jack_t.mean() - jack_t, jack_s.mean() - jack_s
    num = float(np.sum(ut**3) / t.size**3 + np.sum(us**3) / s.size**3)
    den = float(np.sum(ut**2) / t.size**2 + np.sum(us**2) / s.size**2)
    acc = num / (6.0 * den**1.5) if den > 0 else 0.0
    z = stats.norm.ppf([a / 2.0, 1.0 - a / 2.0])
    adj = stats.norm.cdf(z0 + (z0 + z) / (1.0 - acc * (z0 + z)))
    low, high = np.quantile(diffs, np.clip(adj, 0.0, 1.0))
    return Interval(point, float(low), float(high))


def _poi_rows(t: np.ndarray, s: np.ndarray) -> np.ndarray:
    """P(X_t > X_s) + 0.5 P(X_t = X_s) for each row pair of ``t: (b, n_t)``, ``s: (b, n_s)``."""
    out = np.empty(t.shape[0])
    chunk = max(1, 2_000_000 // max(1, t.shape[1] * s.shape[1]))
    for i in range(0, t.shape[0], chunk):
        tt = t[i : i + chunk, :, None]
        ss = s[i : i + chunk, None, :]
        out[i : i + chunk] = ((tt > ss).mean(axis=(1, 2))) + 0.5 * ((tt == ss).mean(axis=(1, 2)))
    return out


def probability_of_improvement(
    transfer: ArrayLike,
    scratch: ArrayLike,
    n_boot: int = 2000,
    alpha: float = 0.05,
    random_state: RandomState = 0,
    higher_is_better: bool = True,
) -> Interval:
    """Probability that a transfer run beats a scratch run, with a bootstrap interval.

    ``P(X_t > X_s) + 0.5 * P(X_t = X_s)`` over all ``n_t * n_s`` pairs of runs, i.e. the Mann-Whitney
    ``U`` statistic divided by ``n_t * n_s`` (Agarwal et al., 2021). 0.5 means no difference. The
    interval is a stratified percentile bootstrap (descriptive: with 3-5 seeds it is too narrow; the
    verdict does not use it). For a suite-wide figure see :func:`aggregate_probability_of_improvement`.

    Args:
        transfer: (n_t,) per-seed values of the transfer arm.
        scratch: (n_s,) per-seed values of the scratch arm.
        n_boot: number of bootstrap resamples.
        alpha: the interval has level ``1 - alpha``.
        random_state: seed or generator for the resampling.
        higher_is_better: if ``False``, a *smaller* transfer value counts as the win.

    Returns:
        ``Interval(point, low, high)`` in ``[0, 1]``.
    """
    t = _arm(transfer, "transfer")
    s = _arm(scratch, "scratch")
    a = _check_alpha(alpha)
    b = _check_n_boot(n_boot)
    t, s = _orient(t, s, higher_is_better)
    rng = as_generator(random_state)
    point = float(_poi_rows(t[None, :], s[None, :])[0])
    bt = t[rng.integers(0, t.size, size=(b, t.size))]
    bs = s[rng.integers(0, s.size, size=(b, s.size))]
    boots = _poi_rows(bt, bs)
    low, high = np.quantile(boots, [a / 2.0, 1.0 - a / 2.0])
    return Interval(point, float(low), float(high))


def cohens_d(transfer: ArrayLike, scratch: ArrayLike, higher_is_better: bool = True) -> float:
    """Cohen's d with the pooled standard deviation, oriented so that positive = transfer better.

    Args:
        transfer: (n_t,) per-seed values, ``n_t >= 2`` for a defined value.
        scratch: (n_s,) per-seed values, ``n_s >= 2`` for a defined value.
        higher_is_better: orientation.

    Returns:
        ``(mean_t - mean_s) / sd_pooled`` (sign flipped for lower-is-better); ``nan`` with fewer than
        two runs in an arm or when both arms are constant and equal; ``+-inf`` when both arms are
        constant but differ.
    """
    t, s = _orient(_arm(transfer, "transfer"), _arm(scratch, "scratch"), higher_is_better)
    if t.size < 2 or s.size < 2:
        return math.nan
    diff = float(t.mean() - s.mean())
    pooled = ((t.size - 1) * t.var(ddof=1) + (s.size - 1) * s.var(ddof=1)) / (t.size + s.size - 2)
    if pooled <= 0.0:
        return math.nan if diff == 0.0 else math.copysign(math.inf, diff)
    return diff / math.sqrt(pooled)


# ---------------------------------------------------------------------------------------------
# planning


def pilot_sd(transfer: ArrayLike, scratch: ArrayLike) -> float:
    """The per-seed sd that :func:`seeds_for_margin` plans with: ``sqrt((v_t + v_s) / 2)``.

    With equal seeds per arm, ``sqrt(2 / n) * pilot_sd`` is exactly the Welch standard error, whatever
    the two variances are, so planning with it is right for unequal spreads too.

    Args:
        transfer: (n_t,) per-seed values of a pilot (or of the comparison itself), at least two.
        scratch: (n_s,) per-seed values, at least two.

    Returns:
        The sd in the metric's units.
    """
    t = _arm(transfer, "transfer", 2)
    s = _arm(scratch, "scratch", 2)
    return math.sqrt((t.var(ddof=1) + s.var(ddof=1)) / 2.0)


def _power_difference(n: np.ndarray, d: float, alpha: float, df_rule: str) -> np.ndarray:
    """Power of the two-sided Welch test with ``n`` seeds per arm at a true standardized difference d."""
    df_stat = 2.0 * n - 2.0
    crit = stats.t.ppf(1.0 - alpha / 2.0, (n - 1.0) if df_rule == "hsu" else df_stat)
    ncp = d * np.sqrt(n / 2.0)
    with np.errstate(all="ignore"):
        exact = stats.nct.sf(crit, df_stat, ncp) + stats.nct.cdf(-crit, df_stat, ncp)
    # scipy's noncentral t returns nan far in the tail (large ncp); the normal approximation is exact there
    scale = np.sqrt(1.0 + crit**2 / (2.0 * df_stat))
    approx = stats.norm.sf((crit - ncp) / scale) + stats.norm.cdf((-crit - ncp) / scale)
    return np.where(np.isfinite(exact), exact, approx)


_CHI_NODES = (np.arange(400) + 0.5) / 400.0


def _power_equivalence(n: np.ndarray, margin: float, true: float, alpha: float, df_rule: str) -> np.ndarray:
    """Power of TOST (sd units) with ``n`` seeds per arm, by quadrature over the variance estimate."""
    n = np.atleast_1d(n).astype(float)
    df_stat = 2.0 * n - 2.0
    crit = stats.t.ppf(1.0 - alpha, (n - 1.0) if df_rule == "hsu" else df_stat)
    v = stats.chi2.ppf(_CHI_NODES[None, :], df_stat[:, None])
    sd_d = np.sqrt(2.0 / n)[:, None]
    se = sd_d * np.sqrt(v / df_stat[:, None])
    upper = margin - crit[:, None] * se
    lower = -margin + crit[:, None] * se
    prob = stats.norm.cdf((upper - true) / sd_d) - stats.norm.cdf((lower - true) / sd_d)
    return np.clip(prob, 0.0, None).mean(axis=1)


def seeds_for_margin(
    sd: float,
    margin: float,
    *,
    goal: Literal["difference", "equivalence"] = "difference",
    alpha: float = 0.05,
    power: float = 0.8,
    true_difference: float = 0.0,
    df: DfRule = "hsu",
    cap: int = 1000,
) -> float:
    """Seeds per arm to plan for, from a pilot's sd and a margin declared in advance.

    Never from the observed effect (post-hoc power at the observed effect only restates the p-value;
    it was finite on 86% of null pairs). Checked by simulation (``tests/test_error_control.py``): planned
    for 80% at a margin of 1.5 AUC sds (9 seeds per arm each), the verdict detected the difference in
    79.3% and TOST showed equivalence in 79.7% of 2000 simulated logistic comparisons. Both answers are for the tests the verdicts use (Welch t with
    the ``df`` rule, equal seeds per arm) and are exact under normality and equal variances (noncentral
    t for the difference, quadrature over the variance estimate for TOST); with unequal variances use
    :func:`pilot_sd`, which makes the standard error exact.

    * ``goal="difference"``: the smallest ``n`` at which the two-sided level-``alpha`` test detects a
      true difference of ``margin`` with probability ``power``. E.g. sd 1, margin 1 (d = 1), 80%: 18
      seeds per arm with Hsu df (17 with ``2n - 2`` df, the textbook answer); AUC sd 0.08, margin 0.05:
      43.
    * ``goal="equivalence"``: the smallest ``n`` at which TOST within ``+-margin`` declares equivalence
      with probability ``power`` when the true difference is ``true_difference`` (default 0). E.g. sd 1,
      margin 1: 19 seeds per arm (18 with ``2n - 2`` df); AUC sd 0.08, margin 0.05: 46.

    Args:
        sd: the per-seed sd in the metric's units (a pilot's, e.g. :func:`pilot_sd`), ``>= 0``.
        margin: the difference to detect, or the equivalence margin, in the same units, ``> 0``.
        goal: ``"difference"`` or ``"equivalence"``.
        alpha: level (two-sided for the difference, of each one-sided test for TOST).
        power: desired probability in ``(0, 1)``.
        true_difference: for ``"equivalence"``, the true difference assumed (``|.| < margin``).
        df: degrees-of-freedom rule of the planned test.
        cap: largest number reported; anything above is ``inf``.

    Returns:
        Seeds per arm (an integer-valued float, at least 2), or ``inf`` when more than ``cap``.
    """
    a = _check_alpha(alpha)
    pw = _check_alpha(power, "power")
    rule = _check_df(df)
    if isinstance(cap, bool) or not isinstance(cap, (int, np.integer)) or cap < 2:
        raise ConfigError(f"cap must be an integer >= 2, got {cap!r}")
    sigma = float(sd)
    if not math.isfinite(sigma) or sigma < 0:
        raise ConfigError(f"sd must be a finite number >= 0, got {sd!r}")
    m = _check_margin(margin)
    if math.isnan(m):
        raise ConfigError("margin must be a positive finite number in the metric's units, got nan")
    if goal not in ("difference", "equivalence"):
        raise ConfigError(f"goal must be 'difference' or 'equivalence', got {goal!r}")
    theta = float(true_difference)
    if goal == "equivalence" and not abs(theta) < m:
        raise ConfigError(f"true_difference must lie strictly within +-margin={m:g}, got {true_difference!r}")
    if sigma == 0.0:
        return 2.0

    def achieved(n: int) -> float:
        arr = np.array([float(n)])
        if goal == "difference":
            return float(_power_difference(arr, m / sigma, a, rule)[0])
        return float(_power_equivalence(arr, m / sigma, theta / sigma, a, rule)[0])

    if achieved(cap) < pw:
        return math.inf
    lo, hi = 2, cap  # power grows with n: bisect for the first n that reaches it
    if achieved(lo) >= pw:
        return float(lo)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if achieved(mid) >= pw:
            hi = mid
        else:
            lo = mid
    return float(hi)


def required_seeds(
    transfer: ArrayLike,
    scratch: ArrayLike,
    alpha: float = 0.05,
    power: float = 0.8,
    cap: int = 1000,
    exact: bool = True,
) -> float:
    """Seeds per arm a two-sided two-sample test would need to detect the *observed* effect.

    Post-hoc, kept for compatibility: the verdicts no longer report it. An effect estimated from a few
    seeds is noisy and overstated, and on null pairs this figure was finite 86% of the time; plan with
    :func:`seeds_for_margin` (a margin declared in advance and a pilot's sd) instead.

    The observed effect is Cohen's d with the pooled sd (:func:`cohens_d`). The normal approximation
    is ``n = 2 * (z_{1-alpha/2} + z_{power})**2 / d**2``; with ``exact=True`` (default) the answer
    is the smallest ``n`` at which a two-sided equal-variance t-test with ``n`` runs per arm has the
    requested power under the noncentral t distribution.

    Args:
        transfer: (n_t,) per-seed values, at least two.
        scratch: (n_s,) per-seed values, at least two.
        alpha: two-sided level of the planned test.
        power: desired power in ``(0, 1)``.
        cap: largest number reported; anything above is ``inf``.
        exact: use the noncentral t (``True``) or the normal approximation (``False``).

    Returns:
        Seeds per arm (an integer-valued float, at least 2), ``inf`` when more than ``cap`` would be
        needed or the effect is about zero (``|d| < 1e-6``), ``nan`` when d is undefined (fewer than two
        runs in an arm, or both arms constant and equal).
    """
    a = _check_alpha(alpha)
    pw = _check_alpha(power, "power")
    if isinstance(cap, bool) or not isinstance(cap, (int, np.integer)) or cap < 2:
        raise ConfigError(f"cap must be an integer >= 2, got {cap!r}")
    d = abs(cohens_d(transfer, scratch))
    if math.isnan(d):
        return math.nan
    if math.isinf(d):
        return 2.0
    if d < 1e-6:
        return math.inf
    z = stats.norm.ppf(1.0 - a / 2.0) + stats.norm.ppf(pw)
    n_normal = 2.0 * z**2 / d**2
    if not exact:
        n = max(2, math.ceil(n_normal))
        return float(n) if n <= cap else math.inf
    if n_normal > cap:
        return math.inf
    lo = max(2, math.floor(n_normal))
    for start, stop in ((lo, min(cap, 2 * lo + 20)), (min(cap, 2 * lo + 20) + 1, cap)):
        if start > stop:
            continue
        n = np.arange(start, stop + 1, dtype=float)
        df = 2.0 * n - 2.0
        ncp = d * np.sqrt(n / 2.0)
        crit = stats.t.ppf(1.0 - a / 2.0, df)
        achieved = stats.nct.sf(crit, df, ncp) + stats.nct.cdf(-crit, df, ncp)
        ok = np.flatnonzero(achieved >= pw)
        if ok.size:
            return float(n[ok[0]])
    return math.inf


def censored_as_budget(values: ArrayLike, censored: ArrayLike, budget: float) -> np.ndarray:
    """Time-to-threshold values with censored runs set to the training budget.

    A censored run never reached the threshold; its true time is at least the budget. Using the
    budget is conservative for comparisons: it understates how much worse the more-censored arm is,
    so it can only shrink a difference, never create one. Under heavy censoring (most runs never reach
    the threshold) it leaves little to compare: for tests use :func:`logrank_test` and
    :func:`rmst_difference`, and :func:`kaplan_meier` for the curves.

    Args:
        values: (n,) time-to-threshold values from :func:`rltransfer.metrics.time_to_threshold`.
        censored: (n,) booleans (or 0/1 floats), true where the run was censored.
        budget: training budget in steps, at least every uncensored value.

    Returns:
        (n,) float array.
    """
    v = _arm(values, "values")
    c = np.asarray(censored)
    if c.shape != v.shape:
        raise ConfigError(f"censored must have the shape of values {v.shape}, got {c.shape}")
    b = float(budget)
    if not math.isfinite(b) or np.any(v[~c.astype(bool)] > b):
        raise ConfigError(
            f"budget must be finite and at least every uncensored value, got budget={budget!r}, "
            f"values={v.tolist()}"
        )
    return np.where(c.astype(bool), b, v)


# ---------------------------------------------------------------------------------------------
# the verdict


def _check_min_seeds(min_seeds: int) -> int:
    if isinstance(min_seeds, bool) or not isinstance(min_seeds, (int, np.integer)) or min_seeds < 2:
        raise ConfigError(
            f"min_seeds must be an integer >= 2 (a test needs two runs per arm), got {min_seeds!r}"
        )
    return int(min_seeds)


def _raw_p(t: np.ndarray, s: np.ndarray, test: str, df_rule: str = "hsu",
           random_state: RandomState = 0) -> tuple[float, str]:
    """p-value of the chosen test and the name of the test actually used."""
    if test == "welch":
        p = welch_p(t, s, df_rule)  # type: ignore[arg-type]
        if math.isnan(p) and t.size >= 2 and s.size >= 2:
            return permutation_p(t, s, random_state=random_state), "permutation"
        return p, "welch"
    if test == "mannwhitney":
        return mann_whitney_p(t, s), "mannwhitney"
    if test == "permutation":
        if t.size < 2 or s.size < 2:
            return math.nan, "permutation"
        return permutation_p(t, s, random_state=random_state), "permutation"
    raise ConfigError(f"test must be 'welch', 'mannwhitney' or 'permutation', got {test!r}")


def _default_margin(metric: str, margin: float | None) -> float:
    if margin is not None:
        return _check_margin(margin)
    return DEFAULT_MARGINS.get(metric, math.nan)


def verdict(
    transfer: ArrayLike,
    scratch: ArrayLike,
    *,
    higher_is_better: bool = True,
    alpha: float = 0.05,
    min_seeds: int = 3,
    test: Test = "welch",
    p_adjusted: float | None = None,
    n_boot: int = 2000,
    power: float = 0.8,
    metric: str = "auc",
    random_state: RandomState = 0,
    margin: float | None = None,
    equivalence: bool = False,
    df: DfRule = "hsu",
) -> Verdict:
    """Judge one comparison of a transfer arm with a scratch arm on its primary metric.

    The rule (also in :data:`VERDICT_RULE`, verbatim for the README):

    1. If either arm has fewer than ``min_seeds`` runs (default 3): ``"inconclusive"``, too few seeds.
    2. Compute the oriented difference of means (transfer minus scratch; sign flipped when
       ``higher_is_better=False``) with its ``1 - alpha`` Welch t interval, Hsu df ``min(n_t, n_s) - 1``
       (:func:`welch_test`).
    3. Compute the two-sided p-value of the test (the matching Welch-Hsu t-test by default; if both
       arms are constant the exact :func:`permutation_p`) and its Holm-adjusted value ``p_adjusted``
       (supplied by :func:`judge_suite`; for a lone comparison ``m = 1`` and it equals the raw p-value).
    4. ``"positive"`` if the interval lies wholly above 0 and ``p_adjusted < alpha``; ``"negative"``
       if it lies wholly below 0 and ``p_adjusted < alpha``; otherwise ``"inconclusive"``, or
       ``"equivalent"`` when ``equivalence=True`` and TOST within ``+-margin`` rejects (:func:`tost`).
    5. ``seeds_needed``: seeds per arm with which the test detects a true difference of ``margin``
       with ``power``, from this comparison's :func:`pilot_sd` (:func:`seeds_for_margin`); and
       ``seeds_needed_equivalence`` to show equivalence within the margin. Not post-hoc power.

    Measured error rates (``tests/test_error_control.py``, ``benchmarks/scripts/verdict_error_rates.py``,
    normalized AUC, defaults, 10,000 null pairs per cell): total false verdicts (either sign) on null
    pairs of six curve families at 3 / 5 / 10 seeds per arm 1.1-2.5% / 1.8-3.7% / 3.4-4.4% (the
    unequal-spread family, transfer sd 3x, is the highest; Welch-Satterthwaite df gave 4.9% / 5.3% / 5.2%
    there). Power on the logistic family (d = planted AUC effect in pooled sds): 5% / 18% / 42% at d = 1,
    2, 3 with 3 seeds, 18% / 64% / 95% with 5, 51% / 98% / 100% with 10 (the other speed-up families
    alike; tables in the benchmark script). Three seeds per arm can only detect very large effects.

    Args:
        transfer: (n_t,) per-seed values of the primary metric, transfer arm.
        scratch: (n_s,) per-seed values, scratch arm.
        higher_is_better: ``False`` for lower-is-better metrics (time to threshold).
        alpha: level of the test and ``1 - alpha`` level of the intervals.
        min_seeds: minimum runs per arm before any non-inconclusive verdict (>= 2).
        test: ``"welch"``, ``"mannwhitney"`` or ``"permutation"``.
        p_adjusted: multiplicity-adjusted p-value from :func:`judge_suite`; ``None`` means ``m = 1``.
        n_boot: bootstrap resamples for the probability-of-improvement interval.
        power: power used for the planning figures.
        metric: name of the metric, for the reason and the default margin.
        random_state: seed or generator for the bootstrap (and random permutations).
        margin: equivalence margin / difference to plan for, in the metric's units; ``None``:
            :data:`DEFAULT_MARGINS` by metric name (0.05 for normalized AUC), else no planning figure.
        equivalence: allow the ``"equivalent"`` label.
        df: degrees-of-freedom rule of the t test and interval (see :func:`welch_test`).

    Returns:
        A :class:`Verdict`.
    """
    t = _arm(transfer, "transfer")
    s = _arm(scratch, "scratch")
    a = _check_alpha(alpha)
    ms = _check_min_seeds(min_seeds)
    rule = _check_df(df)
    marg = _default_margin(metric, margin)
    rng = as_generator(random_state)
    to, so = _orient(t, s, higher_is_better)
    two = t.size >= 2 and s.size >= 2
    if two:
        tt = _t_test(to, so, a, rule)
        ci = Interval(float(tt.diff), float(tt.low), float(tt.high))
        df_used = float(tt.df)
    else:
        point = float(to.mean() - so.mean())
        ci, df_used = Interval(point, -math.inf, math.inf), math.nan
    p, used = _raw_p(t, s, test, rule, rng)  # first, so that judge_suite's raw p-values are the same draws
    poi = probability_of_improvement(t, s, n_boot=n_boot, alpha=a, random_state=rng,
                                     higher_is_better=higher_is_better)
    enough = t.size >= ms and s.size >= ms
    if p_adjusted is None:
        p_adj = p if enough else math.nan
    else:
        p_adj = float(p_adjusted)
    d = cohens_d(t, s, higher_is_better)
    sd = pilot_sd(t, s) if two else math.nan
    plan_ok = two and math.isfinite(marg) and sd > 0
    needed = seeds_for_margin(sd, marg, alpha=a, power=power, df=rule) if plan_ok else math.nan
    needed_eq = (seeds_for_margin(sd, marg, goal="equivalence", alpha=a, power=power, df=rule)
                 if plan_ok else math.nan)
    eq_p = float(_tost_p(to, so, marg, a, rule)[0]) if plan_ok else math.nan
    level = f"{100 * (1 - a):g}%"
    effect = f"{metric} difference {_fmt(ci.point)} [{level} CI {_fmt(ci.low)}, {_fmt(ci.high)}]"
    names = {"welch": f"Welch t (df={df_used:.3g}{', Hsu' if rule == 'hsu' else ''})",
             "mannwhitney": "Mann-Whitney", "permutation": "exact permutation"}
    test_txt = f"{names[used]} p={p:.3g}, Holm-adjusted {p_adj:.3g}"
    common = {"ci": ci, "p_value": p, "p_adjusted": p_adj, "prob_improvement": poi, "seeds_needed": needed,
              "effect_size": d, "n_transfer": int(t.size), "n_scratch": int(s.size), "metric": metric,
              "higher_is_better": bool(higher_is_better), "test": used, "margin": marg,
              "equivalence_p": eq_p, "seeds_needed_equivalence": needed_eq, "df": df_used}

    if not enough:
        reason = (f"too few seeds: {t.size} transfer and {s.size} scratch runs, need at least {ms} per arm "
                  f"({effect})")
        return Verdict(label="inconclusive", reason=reason, **common)  # type: ignore[arg-type]
    significant = math.isfinite(p_adj) and p_adj < a
    if ci.above(0.0) and significant:
        return Verdict(label="positive", reason=f"transfer better: {effect}, {test_txt} < {a:g}",
                       **common)  # type: ignore[arg-type]
    if ci.below(0.0) and significant:
        return Verdict(label="negative", reason=f"transfer worse: {effect}, {test_txt} < {a:g}",
                       **common)  # type: ignore[arg-type]
    if equivalence and math.isfinite(eq_p) and eq_p < a:
        return Verdict(label="equivalent", reason=(
            f"equivalent within +-{marg:g}: {effect}; two one-sided tests p={eq_p:.3g} < {a:g}"),
            **common)  # type: ignore[arg-type]
    why = []
    if not (ci.above(0.0) or ci.below(0.0)):
        why.append("the interval includes 0")
    if not significant:
        why.append(f"{test_txt} is not below {a:g}" if math.isfinite(p_adj) else "the test is undefined")
    if used in ("mannwhitney", "permutation") and _min_p(t.size, s.size, used) >= a:
        why.append(f"with {t.size} vs {s.size} runs the {names[used]} test cannot go below "
                   f"p={_min_p(t.size, s.size, used):.3g}")
    if not plan_ok:
        need_txt = ("the number of seeds needed cannot be estimated" if not two else
                    "no margin for a planning figure (pass margin= in the metric's units)"
                    if not math.isfinite(marg) else "the runs do not vary, so there is no sd to plan with")
    else:
        def _n(x: float) -> str:
            return "more than 1000" if math.isinf(x) else f"~{int(x)}"
        need_txt = (f"to detect a difference of {marg:g} with {power:.0%} power would need {_n(needed)} seeds "
                    f"per arm, to show equivalence within +-{marg:g} {_n(needed_eq)} (planned from the "
                    f"pooled sd {sd:.3g}, not the observed effect)")
    reason = f"inconclusive: {effect}; {' and '.join(why)}; {need_txt}"
    return Verdict(label="inconclusive", reason=reason, **common)  # type: ignore[arg-type]


def _fill_degenerate(p: np.ndarray, t: np.ndarray, s: np.ndarray, random_state: RandomState) -> np.ndarray:
    """Replace the nan p-values of comparisons with two constant arms by :func:`permutation_p`."""
    p = np.array(p, dtype=float, copy=True)
    bad = np.argwhere(np.isnan(p))
    if bad.size:
        lead = p.shape
        tt = np.broadcast_to(t, lead + (t.shape[-1],))
        ss = np.broadcast_to(s, lead + (s.shape[-1],))
        for idx in map(tuple, bad):
            p[idx] = permutation_p(tt[idx], ss[idx], random_state=random_state)
    return p


def verdict_labels(
    transfer: ArrayLike,
    scratch: ArrayLike,
    *,
    higher_is_better: bool = True,
    alpha: float = 0.05,
    min_seeds: int = 3,
    df: DfRule = "hsu",
    margin: float | None = None,
    random_state: RandomState = 0,
) -> np.ndarray:
    """The labels :func:`verdict` gives (test ``"welch"``, ``m = 1``), for many comparisons at once.

    Used by the error-rate simulations; agrees with :func:`verdict` pair by pair (tested). With
    ``margin`` set, ``"equivalent"`` is possible (as ``verdict(..., equivalence=True)``).

    Args:
        transfer: (..., n_t) per-seed values; leading axes are independent comparisons.
        scratch: (..., n_s) per-seed values.
        higher_is_better: orientation.
        alpha: level.
        min_seeds: fewer runs per arm give ``"inconclusive"``.
        df: degrees-of-freedom rule.
        margin: equivalence margin, or ``None`` for no equivalence label.
        random_state: for the permutation fallback of comparisons with two constant arms.

    Returns:
        (...) array of label strings.
    """
    t = _batch(transfer, "transfer")
    s = _batch(scratch, "scratch")
    a = _check_alpha(alpha)
    ms = _check_min_seeds(min_seeds)
    rule = _check_df(df)
    t, s = _orient(t, s, higher_is_better)
    res = _t_test(t, s, a, rule)
    shape = np.shape(res.diff)
    labels = np.full(shape, "inconclusive", dtype="<U12")
    if t.shape[-1] < ms or s.shape[-1] < ms:
        return labels
    p = _fill_degenerate(np.asarray(res.p_value, dtype=float), t, s, random_state)
    sig = p < a
    labels[sig & (res.low > 0)] = "positive"
    labels[sig & (res.high < 0)] = "negative"
    if margin is not None:
        eq = _tost_p(t, s, _check_margin(margin), a, rule)[0] < a
        labels[(labels == "inconclusive") & eq] = "equivalent"
    return labels


def judge_suite(
    comparisons: Mapping[K, Comparison | tuple[ArrayLike, ArrayLike]],
    *,
    alpha: float = 0.05,
    min_seeds: int = 3,
    test: Test = "welch",
    n_boot: int = 2000,
    power: float = 0.8,
    random_state: RandomState = 0,
    equivalence: bool = False,
    df: DfRule = "hsu",
) -> dict[K, Verdict]:
    """Judge every comparison of a suite with Holm's correction across the suite.

    The raw p-values of all comparisons whose arms both have at least ``min_seeds`` runs form one
    family; they are Holm-adjusted together (:func:`holm`) and each comparison is then judged by
    :func:`verdict` with its adjusted p-value. Comparisons with too few seeds cannot be declared
    anything but inconclusive, so they are left out of the family (their ``p_adjusted`` is nan).
    Equivalence (``equivalence=True``) is an intersection-union test per comparison and needs no
    adjustment for one comparison; across a suite, each "equivalent" has its own 5% error.

    Args:
        comparisons: mapping from a key (e.g. ``("cartpole->cartpole-long", "finetune")``) to a
            :class:`Comparison` or a ``(transfer, scratch)`` pair (higher is better, metric "auc").
        alpha: family-wise level.
        min_seeds: see :func:`verdict`.
        test: see :func:`verdict`.
        n_boot: bootstrap resamples per comparison.
        power: power used for the planning figures.
        random_state: seed or generator; each comparison gets its own child seed in mapping order.
        equivalence: allow ``"equivalent"`` labels.
        df: degrees-of-freedom rule (see :func:`welch_test`).

    Returns:
        ``{key: Verdict}`` in the order of ``comparisons``.
    """
    a = _check_alpha(alpha)
    ms = _check_min_seeds(min_seeds)
    rule = _check_df(df)
    items: list[tuple[K, Comparison]] = []
    for key, comp in comparisons.items():
        if isinstance(comp, Comparison):
            items.append((key, comp))
        elif isinstance(comp, tuple) and len(comp) == 2:
            items.append((key, Comparison(comp[0], comp[1])))
        else:
            raise ConfigError(
                f"comparison {key!r} must be a Comparison or a (transfer, scratch) pair, "
                f"got {type(comp).__name__}"
            )
    seeds = as_generator(random_state).integers(0, 2**63 - 1, size=len(items))
    raw = np.full(len(items), np.nan)
    arms: list[tuple[np.ndarray, np.ndarray]] = []
    for i, (key, comp) in enumerate(items):
        t = _arm(comp.transfer, f"transfer of {key!r}")
        s = _arm(comp.scratch, f"scratch of {key!r}")
        arms.append((t, s))
        if t.size >= ms and s.size >= ms:
            raw[i] = _raw_p(t, s, test, rule, np.random.default_rng(int(seeds[i])))[0]
    adjusted = holm(raw)
    out: dict[K, Verdict] = {}
    for i, (key, comp) in enumerate(items):
        t, s = arms[i]
        out[key] = verdict(
            t, s, higher_is_better=comp.higher_is_better, alpha=a, min_seeds=ms, test=test,
            p_adjusted=float(adjusted[i]), n_boot=n_boot, power=power, metric=comp.metric,
            random_state=int(seeds[i]), margin=comp.margin, equivalence=equivalence, df=rule,
        )
    return out


# ---------------------------------------------------------------------------------------------
# the profile verdict: jumpstart, AUC and final performance together


def _profile_inputs(values: Mapping[str, ArrayLike], name: str, batch: bool) -> dict[str, np.ndarray]:
    if not isinstance(values, Mapping):
        raise ConfigError(f"{name} must be a mapping metric -> per-seed values, got {type(values).__name__}")
    got = {_PROFILE_ALIASES.get(k, k): v for k, v in values.items()}
    missing = [m for m in PROFILE_METRICS if m not in got]
    if missing:
        raise ConfigError(f"{name} lacks the profile metric(s) {missing}; give {list(PROFILE_METRICS)} "
                          "(aliases: jumpstart = initial, final = asymptotic)")
    if batch:
        return {m: _batch(got[m], f"{name}[{m!r}]") for m in PROFILE_METRICS}
    return {m: _arm(got[m], f"{name}[{m!r}]") for m in PROFILE_METRICS}


def _profile_margins(margins: Mapping[str, float] | None, return_range: tuple[float, float] | None
                     ) -> dict[str, float]:
    out = {"initial": math.nan, "auc": DEFAULT_MARGINS["auc"], "asymptotic": math.nan}
    if return_range is not None:
        lo, hi = (float(v) for v in return_range)
        if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
            raise ConfigError(f"return_range needs finite low < high, got {return_range!r}")
        out["initial"] = out["asymptotic"] = 0.05 * (hi - lo)
    for k, v in (margins or {}).items():
        key = _PROFILE_ALIASES.get(k, k)
        if key not in out:
            raise unknown_name("profile metric", str(k), PROFILE_METRICS, "margins")
        out[key] = _check_margin(v, f"margins[{k!r}]")
    return out


def _profile_codes(p_adj: np.ndarray, diff: np.ndarray, equiv: np.ndarray, alpha: float) -> np.ndarray:
    """Label codes (index into PROFILE_LABELS) from ``(..., 3)`` arrays in PROFILE_METRICS order."""
    pos = (p_adj < alpha) & (diff > 0)
    neg = (p_adj < alpha) & (diff < 0)
    idx = np.arange(3)
    any_pos, any_neg = pos.any(-1), neg.any(-1)
    pos_max = np.where(pos, idx, -1).max(-1)
    pos_min = np.where(pos, idx, 3).min(-1)
    neg_max = np.where(neg, idx, -1).max(-1)
    neg_min = np.where(neg, idx, 3).min(-1)
    code = np.zeros(p_adj.shape[:-1], dtype=int)
    both = any_pos & any_neg
    code[both & (pos_max < neg_min)] = 4  # crossover: better early, worse later
    code[both & (neg_max < pos_min)] = 5  # slow start: worse early, better later
    only_pos = any_pos & ~any_neg
    code[only_pos] = 1
    code[only_pos & pos[..., 0] & ~pos[..., 2]] = 3  # jumpstart only
    code[any_neg & ~any_pos] = 2
    code[~any_pos & ~any_neg & equiv.all(-1)] = 6
    return code


def profile_labels(
    transfer: Mapping[str, ArrayLike],
    scratch: Mapping[str, ArrayLike],
    *,
    margins: Mapping[str, float] | None = None,
    return_range: tuple[float, float] | None = None,
    alpha: float = 0.05,
    min_seeds: int = 3,
    df: DfRule = "hsu",
) -> np.ndarray:
    """The labels of :func:`profile_verdict` for many comparisons at once (Holm within each profile).

    Args:
        transfer: ``{"initial", "auc", "asymptotic"}`` -> (..., n_t) per-seed values.
        scratch: the same keys -> (..., n_s).
        margins, return_range, alpha, min_seeds, df: see :func:`profile_verdict`.

    Returns:
        (...) array of label strings from :data:`PROFILE_LABELS`.
    """
    t = _profile_inputs(transfer, "transfer", True)
    s = _profile_inputs(scratch, "scratch", True)
    a = _check_alpha(alpha)
    ms = _check_min_seeds(min_seeds)
    rule = _check_df(df)
    marg = _profile_margins(margins, return_range)
    ps, diffs, eqs = [], [], []
    for m in PROFILE_METRICS:
        res = _t_test(t[m], s[m], a, rule)
        ps.append(_fill_degenerate(np.asarray(res.p_value, dtype=float), t[m], s[m], 0))
        diffs.append(res.diff)
        eqs.append(_tost_p(t[m], s[m], marg[m], a, rule)[0] < a if math.isfinite(marg[m])
                   else np.zeros(np.shape(res.diff), dtype=bool))
    p = np.stack(np.broadcast_arrays(*ps), axis=-1)
    codes = _profile_codes(_holm_rows(p), np.stack(np.broadcast_arrays(*diffs), -1),
                           np.stack(np.broadcast_arrays(*eqs), -1), a)
    n_t, n_s = t["auc"].shape[-1], s["auc"].shape[-1]
    if n_t < ms or n_s < ms:
        codes[...] = 0
    return np.asarray(PROFILE_LABELS)[codes]


def _describe(mt: MetricTest) -> str:
    names = {"initial": "jumpstart", "auc": "AUC", "asymptotic": "final"}
    return (f"{names[mt.metric]} {_fmt(mt.ci.point)} [{_fmt(mt.ci.low)}, {_fmt(mt.ci.high)}] "
            f"p={mt.p_value:.3g} (Holm {mt.p_adjusted:.3g})")


def profile_verdict(
    transfer: Mapping[str, ArrayLike],
    scratch: Mapping[str, ArrayLike],
    *,
    margins: Mapping[str, float] | None = None,
    return_range: tuple[float, float] | None = None,
    alpha: float = 0.05,
    min_seeds: int = 3,
    df: DfRule = "hsu",
    p_adjusted: Mapping[str, float] | None = None,
) -> Profile:
    """Name the pattern of a transfer from its jumpstart, AUC and final performance together.

    Inputs are per-seed values (the keys of :func:`rltransfer.metrics.run_metrics`): ``"initial"``
    (first evaluation; the jumpstart is the difference of the arms' means), ``"auc"`` (normalized) and
    ``"asymptotic"`` (final performance, mean of the last evaluations); aliases ``"jumpstart"`` and
    ``"final"``. All three are higher-is-better.

    Rule. Each metric gets the Welch-Hsu t-test and interval (:func:`welch_test`); the three p-values
    are Holm-adjusted together (or taken from ``p_adjusted``, as :func:`profile_suite` does across a
    suite), so the chance that a null pair shows *any* pattern is at most ``alpha``. A metric is
    "better"/"worse" when its adjusted p < alpha. In time order jumpstart < AUC < final:

    * ``"crossover"``: something better and something worse, every better metric earlier than every
      worse one (e.g. a higher start and a lower final performance);
    * ``"slow start"``: the mirror (worse early, better later);
    * ``"better"``: only better metrics, and the final performance is one of them, or only AUC is
      (faster learning from the same start);
    * ``"jumpstart only"``: only better metrics, the jumpstart among them, the final performance not:
      a head start that scratch catches up with (the AUC gain, if significant, is in the reason: these
      three metrics cannot separate a fading head start from faster learning that ends level);
    * ``"worse"``: only worse metrics;
    * ``"equivalent"``: nothing different and every metric equivalent within its margin by TOST
      (intersection-union test, level alpha);
    * ``"inconclusive"``: otherwise (including better and worse interleaved, and too few seeds).

    Measured (``benchmarks/scripts/verdict_error_rates.py``, 10,000 null / 2,500 effect pairs per cell):
    on every null family at 3/5/10 seeds a pattern other than "equivalent"/"inconclusive" is named in
    0.5-3.8% of pairs; "crossover" is named in 92% / 100% of crossover pairs at d = 2 / 3 with 10 seeds
    (20% / 74% with 5; the AUC-only verdict calls 44% / 79% of them "negative" and the rest
    inconclusive), "jumpstart only" in 90% / 97% of jumpstart pairs at d = 2 / 3 with 10 seeds (35% / 75%
    with 5; "better" in at most 1.3%), "better" in 91% / 98% of logistic speed-ups at d = 2 / 3 with 10
    seeds. At 3 seeds almost everything is "inconclusive".

    Args:
        transfer: ``{metric: (n_t,) per-seed values}``.
        scratch: ``{metric: (n_s,) per-seed values}``.
        margins: equivalence margins by metric in its units; defaults: 0.05 for AUC and, with
            ``return_range``, 5% of the range for the initial and final returns (without it those two
            are not assessed, so "equivalent" is not possible).
        return_range: ``(low, high)`` of the task's returns.
        alpha: family-wise level.
        min_seeds: fewer runs per arm: "inconclusive".
        df: degrees-of-freedom rule.
        p_adjusted: adjusted p-values by metric (from :func:`profile_suite`); ``None``: Holm over the 3.

    Returns:
        A :class:`Profile`.
    """
    t = _profile_inputs(transfer, "transfer", False)
    s = _profile_inputs(scratch, "scratch", False)
    a = _check_alpha(alpha)
    ms = _check_min_seeds(min_seeds)
    rule = _check_df(df)
    marg = _profile_margins(margins, return_range)
    n_t, n_s = t["auc"].size, s["auc"].size
    for m in PROFILE_METRICS:
        if t[m].size != n_t or s[m].size != n_s:
            raise ConfigError(f"every profile metric needs one value per run: transfer has "
                              f"{ {k: v.size for k, v in t.items()} }, scratch { {k: v.size for k, v in s.items()} }")
    if n_t < 2 or n_s < 2:
        raise ConfigError(f"a profile needs at least two runs per arm, got {n_t} transfer and {n_s} scratch")
    raw, tests, eq = {}, {}, {}
    for m in PROFILE_METRICS:
        tests[m] = _t_test(t[m], s[m], a, rule)
        p = float(tests[m].p_value)
        if math.isnan(p):
            p = permutation_p(t[m], s[m])
        raw[m] = p
        eq[m] = float(_tost_p(t[m], s[m], marg[m], a, rule)[0]) if math.isfinite(marg[m]) else math.nan
    if p_adjusted is None:
        adj = dict(zip(PROFILE_METRICS, holm([raw[m] for m in PROFILE_METRICS])))
    else:
        adj = {m: float(p_adjusted[m]) for m in PROFILE_METRICS}
    results = {}
    for m in PROFILE_METRICS:
        r = tests[m]
        sig = math.isfinite(adj[m]) and adj[m] < a
        direction = "none"
        if sig and float(r.diff) != 0:
            direction = "better" if float(r.diff) > 0 else "worse"
        results[m] = MetricTest(
            m, Interval(float(r.diff), float(r.low), float(r.high)), raw[m], float(adj[m]),
            direction, marg[m], eq[m], bool(math.isfinite(eq[m]) and eq[m] < a),  # type: ignore[arg-type]
        )
    p_arr = np.array([adj[m] if math.isfinite(adj[m]) else 1.0 for m in PROFILE_METRICS])
    d_arr = np.array([float(tests[m].diff) for m in PROFILE_METRICS])
    e_arr = np.array([results[m].equivalent for m in PROFILE_METRICS])
    label = PROFILE_LABELS[int(_profile_codes(p_arr, d_arr, e_arr, a))]
    detail = "; ".join(_describe(results[m]) for m in PROFILE_METRICS)
    if n_t < ms or n_s < ms:
        label = "inconclusive"
        reason = f"too few seeds: {n_t} transfer and {n_s} scratch runs, need at least {ms} per arm ({detail})"
    else:
        better = [m for m in PROFILE_METRICS if results[m].direction == "better"]
        worse = [m for m in PROFILE_METRICS if results[m].direction == "worse"]
        head = {
            "better": "transfer better", "worse": "transfer worse",
            "jumpstart only": "a head start only: better at the start, final performance not better",
            "crossover": "crossover: better early, worse later", "slow start": "slow start: worse early, better later",
            "equivalent": "equivalent within the margins on every metric",
            "inconclusive": ("better and worse interleaved" if better and worse else "no metric differs and not "
                             "every metric is shown equivalent"),
        }[label]
        reason = f"{head}: {detail}"
    return Profile(label, reason, results, n_t, n_s)  # type: ignore[arg-type]


def profile_suite(
    comparisons: Mapping[K, tuple[Mapping[str, ArrayLike], Mapping[str, ArrayLike]]],
    *,
    margins: Mapping[str, float] | None = None,
    return_range: tuple[float, float] | None = None,
    alpha: float = 0.05,
    min_seeds: int = 3,
    df: DfRule = "hsu",
) -> dict[K, Profile]:
    """:func:`profile_verdict` for every comparison of a suite, Holm across pairs x metrics.

    All ``3 * m`` p-values of the comparisons with at least ``min_seeds`` runs per arm form one Holm
    family, so the chance of naming any pattern anywhere in a suite of null pairs is at most ``alpha``.

    Args:
        comparisons: ``{key: (transfer metrics, scratch metrics)}``, each a mapping as in
            :func:`profile_verdict`.
        margins, return_range, alpha, min_seeds, df: see :func:`profile_verdict`.

    Returns:
        ``{key: Profile}`` in the order of ``comparisons``.
    """
    a = _check_alpha(alpha)
    ms = _check_min_seeds(min_seeds)
    rule = _check_df(df)
    keys = list(comparisons)
    raw = np.full((len(keys), 3), np.nan)
    for i, key in enumerate(keys):
        pair = comparisons[key]
        if not (isinstance(pair, tuple) and len(pair) == 2):
            raise ConfigError(f"comparison {key!r} must be a (transfer metrics, scratch metrics) pair")
        t = _profile_inputs(pair[0], f"transfer of {key!r}", False)
        s = _profile_inputs(pair[1], f"scratch of {key!r}", False)
        if t["auc"].size >= ms and s["auc"].size >= ms:
            for j, m in enumerate(PROFILE_METRICS):
                p = welch_p(t[m], s[m], rule)  # type: ignore[arg-type]
                raw[i, j] = permutation_p(t[m], s[m]) if math.isnan(p) else p
    adjusted = holm(raw.ravel()).reshape(raw.shape)
    out: dict[K, Profile] = {}
    for i, key in enumerate(keys):
        pt, ps = comparisons[key]
        out[key] = profile_verdict(pt, ps, margins=margins, return_range=return_range, alpha=a, min_seeds=ms,
                                   df=rule, p_adjusted=dict(zip(PROFILE_METRICS, adjusted[i])))
    return out


# ---------------------------------------------------------------------------------------------
# variance from the source: target seeds nested in source seeds


def _nested(values: ArrayLike | Sequence[ArrayLike], name: str) -> list[np.ndarray]:
    """Validate a nested arm: ``(n_sources, n_targets)`` or a sequence of per-source (n_j,) arrays."""
    if isinstance(values, np.ndarray) and values.ndim == 2:
        groups = [values[i] for i in range(values.shape[0])]
    elif isinstance(values, np.ndarray) and values.ndim == 1:
        groups = [values]
    elif isinstance(values, Sequence) and values and not np.isscalar(values[0]):
        groups = list(values)  # type: ignore[arg-type]
    else:
        groups = [np.asarray(values, dtype=float)]
    out = [_arm(g, f"{name} source {i}") for i, g in enumerate(groups)]
    if not out:
        raise ConfigError(f"{name} needs at least one source")
    return out


def _hier_boot_means(groups: list[np.ndarray], b: int, rng: np.random.Generator) -> np.ndarray:
    """Two-stage bootstrap of the grand mean: resample sources, then targets within each chosen one."""
    n_src = len(groups)
    sizes = np.array([g.size for g in groups])
    width = int(sizes.max())
    padded = np.zeros((n_src, width))
    for i, g in enumerate(groups):
        padded[i, : g.size] = g
    src = rng.integers(0, n_src, size=(b, n_src))
    size = sizes[src]  # (b, n_src)
    pick = np.floor(rng.random((b, n_src, width)) * size[..., None]).astype(int)
    vals = padded[src[..., None], pick]
    mask = np.arange(width)[None, None, :] < size[..., None]
    return (vals * mask).sum(axis=(1, 2)) / mask.sum(axis=(1, 2))


def hierarchical_bootstrap_ci_diff(
    transfer: ArrayLike | Sequence[ArrayLike],
    scratch: ArrayLike | Sequence[ArrayLike],
    *,
    n_boot: int = 2000,
    alpha: float = 0.05,
    random_state: RandomState = 0,
    higher_is_better: bool = True,
) -> Interval:
    """Difference of grand means with a two-stage (hierarchical) bootstrap interval.

    For designs where target seeds are nested in source seeds: each arm is ``(n_sources,
    n_targets_per_source)`` or a sequence of per-source arrays (sizes may differ); a flat ``(n,)`` arm
    (e.g. scratch, which has no source) is one group resampled as usual. Each resample draws the
    sources with replacement, then the targets of each drawn source with replacement (Davison &
    Hinkley 1997, section 3.8), so the interval carries the source-to-source variance that a flat
    bootstrap over all target seeds leaves out (and a little more: the two-stage scheme overstates
    the within-source part by a factor of about ``2 - 1/n_sources``). The point is the difference of the
    grand means (each target seed weighs the same). Percentile interval.

    Measured (normal data, between- and within-source sd 1, null, 1000 comparisons each): the 95%
    interval missed 14.5% / 10.7% / 7.6% / 6.7% with 2 x 5 / 3 x 3 / 5 x 3 / 10 x 2 sources x targets,
    against 21.7% / 16.4% / 14.2% / 10.5% for a flat percentile bootstrap over all target seeds. With
    fewer than about 10 sources use :func:`cluster_t_ci_diff` (missed at most 3.6%) for a decision.

    Args:
        transfer: nested per-seed values of the transfer arm.
        scratch: nested or flat per-seed values of the scratch arm.
        n_boot: number of resamples.
        alpha: the interval has level ``1 - alpha``.
        random_state: seed or generator.
        higher_is_better: orientation.

    Returns:
        ``Interval(point, low, high)`` of the oriented difference.
    """
    gt = _nested(transfer, "transfer")
    gs = _nested(scratch, "scratch")
    a = _check_alpha(alpha)
    b = _check_n_boot(n_boot)
    sign = 1.0 if higher_is_better else -1.0
    rng = as_generator(random_state)
    point = sign * (float(np.concatenate(gt).mean()) - float(np.concatenate(gs).mean()))
    diffs = sign * (_hier_boot_means(gt, b, rng) - _hier_boot_means(gs, b, rng))
    low, high = np.quantile(diffs, [a / 2.0, 1.0 - a / 2.0])
    return Interval(point, float(low), float(high))


def cluster_t_ci_diff(
    transfer: ArrayLike | Sequence[ArrayLike],
    scratch: ArrayLike | Sequence[ArrayLike],
    *,
    alpha: float = 0.05,
    higher_is_better: bool = True,
) -> TTest:
    """Welch-Hsu t-test and interval with each *source* as one unit (per-source means of the targets).

    The nested arm's per-source means are independent, so the usual small-sample t machinery applies
    to them (with ``n_sources`` as the sample size): valid whatever the share of variance between
    sources, at the price of few degrees of freedom (``min(n_sources, n_s) - 1``). A flat arm (scratch)
    enters with its seeds; a nested one with its source means. With unequal targets per source the
    source means have unequal variances and the interval is approximate.

    Measured (normal data, between- and within-source sd 1, scratch with as many seeds as targets, null,
    1000 comparisons each): the 95% interval missed 0.0% / 0.1% / 1.2% / 3.6% with 2 x 5 / 3 x 3 / 5 x 3 /
    10 x 2 sources x targets; the two-stage bootstrap missed 14.5% / 10.7% / 7.6% / 6.7% and the flat t
    interval over all target seeds 12.9% / 8.7% / 9.1% / 7.2%.

    Args:
        transfer: nested per-seed values (``(n_sources, n_targets)`` or per-source arrays).
        scratch: flat ``(n_s,)`` or nested per-seed values.
        alpha: the interval has level ``1 - alpha``.
        higher_is_better: orientation.

    Returns:
        A :class:`TTest` of floats.
    """
    gt = _nested(transfer, "transfer")
    gs = _nested(scratch, "scratch")
    units_t = np.array([g.mean() for g in gt]) if len(gt) > 1 else gt[0]
    units_s = np.array([g.mean() for g in gs]) if len(gs) > 1 else gs[0]
    if len(gt) == 1:
        raise ConfigError("cluster_t_ci_diff needs at least two sources in the transfer arm (one source is "
                          "one unit: its spread across sources is unknown)")
    return welch_test(units_t, units_s, alpha=alpha, higher_is_better=higher_is_better)


def source_reliance(
    transfer: ArrayLike | Sequence[ArrayLike],
    scratch: ArrayLike,
    *,
    alpha: float = 0.05,
    n_boot: int = 2000,
    random_state: RandomState = 0,
    higher_is_better: bool = True,
) -> SourceReliance:
    """Say whether a transfer comparison rests on a single source policy.

    The transfer arm is nested (target seeds within source seeds, as in
    :func:`hierarchical_bootstrap_ci_diff`); the scratch arm is flat. The *flat* analysis is what
    :func:`verdict` does with all target seeds pooled (Welch-Hsu t interval). The comparison *rests on
    a single source* when

    * there is only one source: every target seed shares it, the source-to-source variance is not
      measured, and the result is about that source policy, not the transfer method; or
    * the flat interval excludes 0 but leaving out some one source makes it include 0 (or flip):
      the conclusion hinges on that source.

    Also reported: the hierarchical bootstrap interval and the cluster-level t interval
    (:func:`cluster_t_ci_diff`), which carry the source-to-source variance (when the cluster interval
    includes 0 while the flat one does not, the flat verdict counts target seeds of the same source as
    independent), the intraclass correlation (share of variance between sources, one-way ANOVA), the
    design effect ``1 + (mean targets per source - 1) * icc`` and the effective number of
    independent seeds ``n_targets / design_effect``.

    Args:
        transfer: nested per-seed values (``(n_sources, n_targets)`` or per-source arrays).
        scratch: (n_s,) per-seed values of the scratch arm, at least two.
        alpha: the intervals have level ``1 - alpha``.
        n_boot: resamples of the hierarchical interval.
        random_state: seed or generator.
        higher_is_better: orientation.

    Returns:
        A :class:`SourceReliance`.
    """
    gt = _nested(transfer, "transfer")
    s = _arm(scratch, "scratch", 2)
    a = _check_alpha(alpha)
    ci = hierarchical_bootstrap_ci_diff(gt, s, n_boot=n_boot, alpha=a, random_state=random_state,
                                        higher_is_better=higher_is_better)
    n_src = len(gt)
    sizes = np.array([g.size for g in gt])
    total = int(sizes.sum())
    pooled = np.concatenate(gt)
    if total < 2:
        raise ConfigError(f"transfer needs at least two target seeds in all, got {total}")
    grand = float(pooled.mean())
    icc = 0.0
    if n_src >= 2 and total > n_src:
        msb = float(sum(g.size * (g.mean() - grand) ** 2 for g in gt)) / (n_src - 1)
        msw = float(sum(((g - g.mean()) ** 2).sum() for g in gt)) / (total - n_src)
        n0 = (total - float((sizes**2).sum()) / total) / (n_src - 1)
        sb2 = max(0.0, (msb - msw) / n0)
        icc = sb2 / (sb2 + msw) if sb2 + msw > 0 else 0.0
    deff = 1.0 + (total / n_src - 1.0) * icc
    eff_n = total / deff

    def flat(values: np.ndarray) -> Interval:
        to, so = _orient(values, s, higher_is_better)
        r = _t_test(to, so, a, "hsu")
        return Interval(float(r.diff), float(r.low), float(r.high))

    full = flat(pooled)
    decided = full.above(0.0) or full.below(0.0)
    loo: tuple[Interval, ...] = ()
    hinge: list[int] = []
    cluster = Interval(math.nan, math.nan, math.nan)
    if n_src >= 2:
        c = cluster_t_ci_diff(gt, s, alpha=a, higher_is_better=higher_is_better)
        cluster = Interval(float(c.diff), float(c.low), float(c.high))
        loo = tuple(
            flat(np.concatenate([g for j, g in enumerate(gt) if j != i])) if total - gt[i].size >= 2
            else Interval(math.nan, -math.inf, math.inf)
            for i in range(n_src)
        )
        same = [iv.above(0.0) if full.above(0.0) else iv.below(0.0) for iv in loo]
        hinge = [i for i, kept in enumerate(same) if decided and not kept]
    single = n_src == 1 or bool(hinge)
    if n_src == 1:
        reason = (f"rests on a single source: all {total} transfer seeds share one source policy, so the "
                  "source-to-source variance is not measured and the result is about that source")
    elif hinge:
        reason = (f"rests on a single source: the interval {_fmt(full.low)}..{_fmt(full.high)} excludes 0, but "
                  f"leaving out source(s) {hinge} makes it include 0")
    else:
        reason = f"{n_src} sources, icc {icc:.2f}, {total} target seeds worth about {eff_n:.1f} independent ones"
        if decided and not (cluster.above(0.0) or cluster.below(0.0)):
            reason += ("; with sources as units the interval includes 0: the flat verdict counts seeds of one "
                       "source as independent")
    return SourceReliance(single, reason, n_src, total, float(icc), float(deff), float(eff_n), ci, full, loo,
                          cluster)


# ---------------------------------------------------------------------------------------------
# aggregates across a suite (rliable-grade)


def _scores(values: ArrayLike, name: str = "scores") -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ConfigError(f"{name} must have shape (n_runs, n_tasks), got {np.shape(values)}")
    if not np.all(np.isfinite(arr)):
        raise ConfigError(f"{name} must be finite (normalized scores per run and task)")
    return arr


def iqm(scores: ArrayLike, axis: int | None = None) -> float | np.ndarray:
    """Interquartile mean: the mean of the middle 50% of the values (``scipy.stats.trim_mean(x, 0.25)``).

    Robust to a failed seed like the median, but uses half the data like a mean (Agarwal et al. 2021).
    With ``axis=None`` all values are pooled (runs x tasks, as rliable's aggregate IQM).
    Hand check: ``iqm([1, 2, 3, 4, 100, 5, 6, 7])`` trims 2 from each end and averages 3, 4, 5, 6 = 4.5.

    Args:
        scores: values, e.g. ``(n_runs, n_tasks)`` normalized scores.
        axis: axis to reduce, or ``None`` for all values.

    Returns:
        A float (``axis=None``) or an array.
    """
    arr = np.asarray(scores, dtype=float)
    if arr.size == 0:
        raise ConfigError("scores is empty")
    if axis is None:
        return float(stats.trim_mean(arr.ravel(), 0.25))
    return stats.trim_mean(arr, 0.25, axis=axis)


_AGGREGATES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "iqm": lambda x: stats.trim_mean(x, 0.25, axis=1),
    "mean": lambda x: x.mean(axis=1),
    "median": lambda x: np.median(x, axis=1),
}


def _aggregate(name: str) -> Callable[[np.ndarray], np.ndarray]:
    if name not in _AGGREGATES:
        raise unknown_name("aggregate", str(name), _AGGREGATES)
    return _AGGREGATES[name]


def _stratified(scores: np.ndarray, b: int, rng: np.random.Generator) -> np.ndarray:
    """(b, n_runs * n_tasks) resamples: runs drawn with replacement within each task."""
    n_runs, n_tasks = scores.shape
    idx = rng.integers(0, n_runs, size=(b, n_runs, n_tasks))
    return scores[idx, np.arange(n_tasks)[None, None, :]].reshape(b, n_runs * n_tasks)


def aggregate_interval(
    scores: ArrayLike,
    *,
    aggregate: Literal["iqm", "mean", "median"] = "iqm",
    n_boot: int = 2000,
    alpha: float = 0.05,
    random_state: RandomState = 0,
) -> Interval:
    """An aggregate score across a suite with a stratified-bootstrap percentile interval.

    ``scores: (n_runs, n_tasks)`` normalized scores (e.g. normalized AUC of one arm, one column per
    pair). Each resample draws runs with replacement within each task (rliable's stratified
    bootstrap), then pools runs x tasks into the aggregate. Percentile intervals as rliable; they are
    somewhat narrow with few runs: on the bimodal family's AUC with task offsets, the IQM's 95% interval
    missed 11.2% / 8.4% / 8.0% at 3 x 10 / 5 x 10 / 10 x 5 runs x tasks (500 suites each). Descriptive:
    the verdicts do not use it.

    Args:
        scores: (n_runs, n_tasks) values.
        aggregate: ``"iqm"`` (default), ``"mean"`` or ``"median"``.
        n_boot: resamples.
        alpha: the interval has level ``1 - alpha``.
        random_state: seed or generator.

    Returns:
        ``Interval(point, low, high)``.
    """
    x = _scores(scores)
    fn = _aggregate(aggregate)
    b = _check_n_boot(n_boot)
    a = _check_alpha(alpha)
    point = float(fn(x.reshape(1, -1))[0])
    boots = fn(_stratified(x, b, as_generator(random_state)))
    low, high = np.quantile(boots, [a / 2.0, 1.0 - a / 2.0])
    return Interval(point, float(low), float(high))


def aggregate_difference(
    transfer: ArrayLike,
    scratch: ArrayLike,
    *,
    aggregate: Literal["iqm", "mean", "median"] = "iqm",
    n_boot: int = 2000,
    alpha: float = 0.05,
    random_state: RandomState = 0,
    higher_is_better: bool = True,
) -> Interval:
    """Aggregate of the transfer arm minus that of scratch across a suite, stratified bootstrap.

    Args:
        transfer: (n_t, n_tasks) normalized scores of the transfer arm.
        scratch: (n_s, n_tasks) scores of the scratch arm, same tasks in the same order.
        aggregate: ``"iqm"``, ``"mean"`` or ``"median"``.
        n_boot: resamples (each arm resampled on its own, within each task).
        alpha: the interval has level ``1 - alpha``.
        random_state: seed or generator.
        higher_is_better: orientation.

    Returns:
        ``Interval(point, low, high)`` of the oriented difference.
    """
    t = _scores(transfer, "transfer")
    s = _scores(scratch, "scratch")
    if t.shape[1] != s.shape[1]:
        raise ConfigError(f"transfer and scratch must have the same tasks, got {t.shape[1]} and {s.shape[1]} columns")
    fn = _aggregate(aggregate)
    b = _check_n_boot(n_boot)
    a = _check_alpha(alpha)
    rng = as_generator(random_state)
    sign = 1.0 if higher_is_better else -1.0
    point = sign * float(fn(t.reshape(1, -1))[0] - fn(s.reshape(1, -1))[0])
    boots = sign * (fn(_stratified(t, b, rng)) - fn(_stratified(s, b, rng)))
    low, high = np.quantile(boots, [a / 2.0, 1.0 - a / 2.0])
    return Interval(point, float(low), float(high))


def performance_profile(
    scores: ArrayLike,
    taus: ArrayLike,
    *,
    n_boot: int = 2000,
    alpha: float = 0.05,
    random_state: RandomState = 0,
) -> PerformanceProfile:
    """Run-score distribution: the fraction of runs scoring above each ``tau``, with bootstrap bands.

    ``fraction[k] = mean over tasks of (fraction of the task's runs with score > taus[k])`` (rliable's
    performance profile, each task weighted equally). Bands: pointwise stratified-bootstrap
    percentiles. Hand check: scores ``[[0.2], [0.6], [0.9]]`` at tau 0.5 give 2/3.

    Args:
        scores: (n_runs, n_tasks) normalized scores.
        taus: (n_tau,) thresholds.
        n_boot: resamples.
        alpha: the bands have level ``1 - alpha``.
        random_state: seed or generator.

    Returns:
        A :class:`PerformanceProfile`.
    """
    x = _scores(scores)
    tau = np.asarray(taus, dtype=float).ravel()
    if tau.size == 0 or not np.all(np.isfinite(tau)):
        raise ConfigError(f"taus must be a non-empty 1-D array of finite thresholds, got {np.shape(taus)}")
    b = _check_n_boot(n_boot)
    a = _check_alpha(alpha)
    n_runs, n_tasks = x.shape
    frac = (x[None, :, :] > tau[:, None, None]).mean(axis=(1, 2))
    res = _stratified(x, b, as_generator(random_state)).reshape(b, n_runs, n_tasks)
    boots = np.stack([(res > tk).mean(axis=(1, 2)) for tk in tau], axis=1)  # (b, n_tau)
    low, high = np.quantile(boots, [a / 2.0, 1.0 - a / 2.0], axis=0)
    return PerformanceProfile(tau, frac, low, high)


def _task_pairs(transfer: ArrayLike | Sequence[ArrayLike], scratch: ArrayLike | Sequence[ArrayLike]
                ) -> list[tuple[np.ndarray, np.ndarray]]:
    def split(v: ArrayLike | Sequence[ArrayLike], name: str) -> list[np.ndarray]:
        if isinstance(v, np.ndarray) and v.ndim == 2:
            return [v[:, j] for j in range(v.shape[1])]
        if isinstance(v, Sequence) and v and not np.isscalar(v[0]):
            return [np.asarray(x, dtype=float) for x in v]
        return [np.asarray(v, dtype=float)]
    ts, ss = split(transfer, "transfer"), split(scratch, "scratch")
    if len(ts) != len(ss):
        raise ConfigError(f"transfer and scratch must cover the same tasks, got {len(ts)} and {len(ss)}")
    return [(_arm(t, f"transfer task {j}"), _arm(s, f"scratch task {j}")) for j, (t, s) in enumerate(zip(ts, ss))]


def aggregate_probability_of_improvement(
    transfer: ArrayLike | Sequence[ArrayLike],
    scratch: ArrayLike | Sequence[ArrayLike],
    *,
    n_boot: int = 2000,
    alpha: float = 0.05,
    random_state: RandomState = 0,
    higher_is_better: bool = True,
) -> Interval:
    """Probability of improvement averaged over a suite's pairs, with a stratified bootstrap interval.

    Per task (pair) ``P(X_t > X_s) + 0.5 P(X_t = X_s)`` as :func:`probability_of_improvement`; the
    aggregate is the mean over tasks (rliable's ``probability_of_improvement``). Each resample redraws
    the runs of each arm within each task.

    Args:
        transfer: (n_t, n_tasks) or a sequence of per-task (n_t_j,) arrays.
        scratch: (n_s, n_tasks) or a sequence of per-task (n_s_j,) arrays, same tasks.
        n_boot: resamples.
        alpha: the interval has level ``1 - alpha``.
        random_state: seed or generator.
        higher_is_better: orientation.

    Returns:
        ``Interval(point, low, high)`` in ``[0, 1]``.
    """
    pairs = _task_pairs(transfer, scratch)
    b = _check_n_boot(n_boot)
    a = _check_alpha(alpha)
    rng = as_generator(random_state)
    point, boots = 0.0, np.zeros(b)
    for t, s in pairs:
        t, s = _orient(t, s, higher_is_better)
        point += float(_poi_rows(t[None], s[None])[0])
        boots += _poi_rows(t[rng.integers(0, t.size, (b, t.size))], s[rng.integers(0, s.size, (b, s.size))])
    k = len(pairs)
    low, high = np.quantile(boots / k, [a / 2.0, 1.0 - a / 2.0])
    return Interval(point / k, float(low), float(high))


# ---------------------------------------------------------------------------------------------
# time to threshold with censoring: Kaplan-Meier, log-rank, restricted mean


def _survival_arm(times: ArrayLike, censored: ArrayLike, name: str, batch: bool = False
                  ) -> tuple[np.ndarray, np.ndarray]:
    v = np.asarray(times, dtype=float)
    c = np.asarray(censored).astype(bool)
    if v.shape != c.shape:
        raise ConfigError(f"censored of {name} must have the shape of its times {v.shape}, got {c.shape}")
    if (v.ndim != 1 and not batch) or v.ndim == 0 or v.shape[-1] < 1:
        raise ConfigError(f"times of {name} must have shape (n_runs,), got {v.shape}")
    if not np.all(np.isfinite(v)) or np.any(v < 0):
        raise ConfigError(f"times of {name} must be finite steps >= 0")
    return v, c


def _km_grid(v: np.ndarray, c: np.ndarray, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """At-risk counts, events and KM survival after each grid time, over leading axes: (..., U)."""
    at_risk = (v[..., :, None] >= grid).sum(axis=-2).astype(float)
    events = ((v[..., :, None] == grid) & ~c[..., :, None]).sum(axis=-2).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(at_risk > 0, 1.0 - events / np.where(at_risk > 0, at_risk, 1.0), 1.0)
    return at_risk, events, np.cumprod(factor, axis=-1)


def kaplan_meier(times: ArrayLike, censored: ArrayLike, *, alpha: float = 0.05) -> SurvivalCurve:
    """Kaplan-Meier curve of "not yet at the threshold" for one arm's time-to-threshold values.

    Hand check: times ``[1, 2, 2, 3]`` with the 3 censored give S = 3/4 after step 1 and 3/4 * 1/3 =
    1/4 after step 2. Pointwise intervals use Greenwood's variance on the log(-log) scale (they stay
    in [0, 1]); where S is 0 or 1 they collapse.

    Args:
        times: (n,) time-to-threshold values (censored runs at their censoring step, e.g. the budget).
        censored: (n,) booleans, true where the run never reached the threshold.
        alpha: the intervals have level ``1 - alpha``.

    Returns:
        A :class:`SurvivalCurve` over the distinct event times (empty arrays when no run reached it).
    """
    v, c = _survival_arm(times, censored, "the arm")
    a = _check_alpha(alpha)
    grid = np.unique(v[~c])
    at_risk, events, surv = _km_grid(v, c, grid)
    with np.errstate(divide="ignore", invalid="ignore"):
        term = np.where(at_risk > events, events / (at_risk * (at_risk - events)), 0.0)
        gw = np.cumsum(term)
        log_s = np.log(surv)
        se = np.sqrt(gw) / np.abs(log_s)
        z = stats.norm.ppf(1.0 - a / 2.0)
        low = surv ** np.exp(z * se)
        high = surv ** np.exp(-z * se)
    ok = (surv > 0) & (surv < 1)
    low = np.where(ok, low, surv)
    high = np.where(ok, high, surv)
    return SurvivalCurve(grid, surv, low, high, at_risk.astype(int), events.astype(int))


def _logrank_z(vt: np.ndarray, ct: np.ndarray, vs: np.ndarray, cs: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Standardized log-rank statistic (observed minus expected transfer events over its sd)."""
    rt, et, _ = _km_grid(vt, ct, grid)
    rs, es, _ = _km_grid(vs, cs, grid)
    r, e = rt + rs, et + es
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = np.where(r > 0, e * rt / np.where(r > 0, r, 1.0), 0.0)
        var = np.where(r > 1, e * (rt / r) * (1 - rt / r) * (r - e) / (r - 1), 0.0)
        o_e, v = (et - expected).sum(-1), var.sum(-1)
        return np.where(v > 0, o_e / np.sqrt(np.where(v > 0, v, 1.0)), np.nan)


def logrank_test(
    times_transfer: ArrayLike,
    censored_transfer: ArrayLike,
    times_scratch: ArrayLike,
    censored_scratch: ArrayLike,
    *,
    method: Literal["permutation", "asymptotic"] = "permutation",
    n_perm: int = 9999,
    max_exact: int = 20_000,
    random_state: RandomState = 0,
) -> float | np.ndarray:
    """Two-sided log-rank test that the arms reach the threshold at the same rate.

    Uses every run, censored ones included, up to their censoring time (Mantel 1966), instead of
    filling censored runs with the budget. The statistic is the standardized log-rank (observed minus
    expected transfer events over the hypergeometric sd, ties handled).

    * ``"permutation"`` (default): its distribution over reassignments of the arm labels, exact over all
      ``C(n_t + n_s, n_t)`` splits when there are at most ``max_exact``, else over ``n_perm`` random
      splits (``(1 + count) / (1 + n_perm)``). Valid at any size when the censoring does not depend on
      the arm (e.g. every run censored at the same budget). Measured on the logistic, bimodal and
      censored nulls (3000 pairs each): 0.7-5.0% false rejections at 5-10 seeds; at 3 vs 3 seeds it
      cannot go below p = 2/20 = 0.1.
    * ``"asymptotic"``: normal (chi-square, 1 df) reference. Liberal at a handful of seeds: 5.6-8.2%
      false rejections on the logistic and bimodal nulls at 3-10 seeds; use it from a few dozen runs
      per arm.

    Batched input ``(..., n)`` is accepted (the same random splits serve every comparison).

    Args:
        times_transfer: (..., n_t) time-to-threshold values of the transfer arm.
        censored_transfer: (..., n_t) booleans.
        times_scratch: (..., n_s) values of the scratch arm.
        censored_scratch: (..., n_s) booleans.
        method: ``"permutation"`` or ``"asymptotic"``.
        n_perm: random splits when the exact enumeration is too large.
        max_exact: enumerate when there are at most this many splits.
        random_state: seed or generator for random splits.

    Returns:
        The p-value (an array for batched input); ``1.0`` where no run reached the threshold.
    """
    if method not in ("permutation", "asymptotic"):
        raise ConfigError(f"method must be 'permutation' or 'asymptotic', got {method!r}")
    vt, ct = _survival_arm(times_transfer, censored_transfer, "transfer", True)
    vs, cs = _survival_arm(times_scratch, censored_scratch, "scratch", True)
    if vt.shape[:-1] != vs.shape[:-1]:
        raise ConfigError(f"transfer and scratch must have the same leading shape, got {vt.shape} and {vs.shape}")
    scalar = vt.ndim == 1
    grid = np.unique(np.concatenate([vt[~ct], vs[~cs]]))
    lead = vt.shape[:-1]
    if grid.size == 0:
        return 1.0 if scalar else np.ones(lead)
    z = _logrank_z(vt, ct, vs, cs, grid)
    if method == "asymptotic":
        p = np.where(np.isnan(z), 1.0, 2.0 * stats.norm.sf(np.abs(z)))
        return float(p) if scalar else p
    b = _check_n_boot(n_perm, "n_perm")
    cap = _check_n_boot(max_exact, "max_exact")
    k, n = vt.shape[-1], vt.shape[-1] + vs.shape[-1]
    total = math.comb(n, k)
    exact = total <= cap
    if exact:
        idx = np.array(list(itertools.combinations(range(n), k)))
        order = np.concatenate([idx, np.array([np.setdiff1d(np.arange(n), r) for r in idx])], axis=1)
    else:
        order = np.argsort(as_generator(random_state).random((b, n)), axis=1)
    v = np.concatenate([vt, vs], axis=-1).reshape(-1, n)
    c = np.concatenate([ct, cs], axis=-1).reshape(-1, n)
    observed = np.nan_to_num(np.abs(z), nan=0.0).reshape(-1)
    count = np.zeros(v.shape[0])
    step = max(1, 400_000 // max(1, v.shape[0] * n * grid.size))
    for i in range(0, order.shape[0], step):
        o = order[i : i + step]  # (r, n)
        vv, cc = v[:, o], c[:, o]  # (pairs, r, n)
        zp = _logrank_z(vv[..., :k], cc[..., :k], vv[..., k:], cc[..., k:], grid)
        floor = (observed - 1e-9 * np.maximum(1.0, observed))[:, None]
        count += (np.nan_to_num(np.abs(zp), nan=0.0) >= floor).sum(axis=1)
    p = count / total if exact else (1.0 + count) / (1.0 + b)
    p = np.where(observed == 0.0, 1.0, p).reshape(lead)
    return float(p) if scalar else p


def _rmst(v: np.ndarray, c: np.ndarray, grid: np.ndarray, tau: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """KM restricted mean up to ``tau`` and its variance (Greenwood-type, with an n/(n-1) factor)."""
    at_risk, events, surv = _km_grid(v, c, grid)
    g = np.broadcast_to(grid, surv.shape)
    t_ = np.asarray(tau)[..., None]
    starts = np.concatenate([np.zeros(surv.shape[:-1] + (1,)), np.minimum(g, t_)], axis=-1)
    ends = np.concatenate([np.minimum(g, t_), np.broadcast_to(t_, surv.shape[:-1] + (1,))], axis=-1)
    s_prev = np.concatenate([np.ones(surv.shape[:-1] + (1,)), surv], axis=-1)
    pieces = s_prev * (ends - starts)  # (..., U + 1): area of each step
    mean = pieces.sum(-1)
    tail = np.cumsum(pieces[..., ::-1], axis=-1)[..., ::-1][..., 1:]  # area after each grid time
    with np.errstate(divide="ignore", invalid="ignore"):
        ok = (at_risk > events) & (g <= t_)
        term = np.where(ok, tail**2 * events / (at_risk * (at_risk - events)), 0.0)
    n = v.shape[-1]
    return mean, term.sum(-1) * (n / (n - 1) if n > 1 else 1.0)


def _follow_up(v: np.ndarray, c: np.ndarray) -> np.ndarray:
    """How far an arm's Kaplan-Meier curve is known: its largest time if a censored run sits there, else inf
    (the curve has dropped to 0 at its last event and is known for ever after)."""
    last = v.max(axis=-1)
    censored_last = np.any(c & (v == last[..., None]), axis=-1)
    return np.where(censored_last, last, np.inf)


def rmst_difference(
    times_transfer: ArrayLike,
    censored_transfer: ArrayLike,
    times_scratch: ArrayLike,
    censored_scratch: ArrayLike,
    *,
    tau: float | None = None,
    alpha: float = 0.05,
    higher_is_better: bool = False,
) -> RMST:
    """Difference of restricted mean times to threshold (area under each arm's Kaplan-Meier curve).

    ``RMST(tau) = integral_0^tau S(t) dt``: the mean number of steps to the threshold when every run
    is capped at ``tau`` (Royston & Parmar 2013). ``tau`` defaults to the largest time up to which both
    curves are known: an arm whose largest time is censored is known up to it, one whose curve has dropped
    to 0 for ever (usually: the budget, where censored runs sit). Variance: Greenwood-type sum times ``n / (n - 1)``, which equals the
    sample variance of ``min(T, tau) / n`` when censoring happens only at ``tau``; the interval and
    test use the t distribution with ``min(n_t, n_s) - 1`` df, as the verdict's. Oriented: with
    ``higher_is_better=False`` (default, time) the difference is scratch minus transfer, positive =
    transfer reaches the threshold sooner. Batched input ``(..., n)`` returns arrays in the fields.

    Args:
        times_transfer: (n_t,) time-to-threshold values of the transfer arm.
        censored_transfer: (n_t,) booleans.
        times_scratch: (n_s,) values of the scratch arm.
        censored_scratch: (n_s,) booleans.
        tau: restriction time; ``None``: as far as both Kaplan-Meier curves are known (see above).
        alpha: the interval has level ``1 - alpha``.
        higher_is_better: orientation (``False``: fewer steps is better).

    Returns:
        An :class:`RMST`.
    """
    vt, ct = _survival_arm(times_transfer, censored_transfer, "transfer", True)
    vs, cs = _survival_arm(times_scratch, censored_scratch, "scratch", True)
    a = _check_alpha(alpha)
    if vt.shape[-1] < 2 or vs.shape[-1] < 2:
        raise ConfigError("rmst_difference needs at least two runs per arm")
    if tau is None:
        horizon = np.minimum(_follow_up(vt, ct), _follow_up(vs, cs))
        horizon = np.where(np.isinf(horizon), np.maximum(vt.max(-1), vs.max(-1)), horizon)
    else:
        horizon = np.asarray(float(tau))
    if np.any(~np.isfinite(horizon)) or np.any(horizon <= 0):
        raise ConfigError(f"tau must be a positive finite step, got {tau!r}")
    grid = np.unique(np.concatenate([vt[~ct], vs[~cs]]))
    mt, var_t = _rmst(vt, ct, grid, horizon)
    ms, var_s = _rmst(vs, cs, grid, horizon)
    sign = 1.0 if higher_is_better else -1.0
    diff = sign * (mt - ms)
    se = np.sqrt(var_t + var_s)
    df = float(min(vt.shape[-1], vs.shape[-1]) - 1)
    half = stats.t.ppf(1.0 - a / 2.0, df) * se
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(se > 0, 2.0 * special.stdtr(df, -np.abs(diff) / np.where(se > 0, se, 1.0)),
                     np.where(diff == 0, 1.0, np.nan))
    if np.ndim(diff) == 0:
        return RMST(Interval(float(diff), float(diff - half), float(diff + half)), float(p), float(horizon),
                    float(mt), float(ms))
    return RMST(Interval(diff, diff - half, diff + half), p, horizon, mt, ms)  # type: ignore[arg-type]
