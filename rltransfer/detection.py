"""Online early warning of negative transfer: a sequential test with a declared false-alarm rate.

While the transfer runs of an arm train, each evaluation is compared with the evaluation curves of the
pair's from-scratch runs made earlier (the *reference*). The alarm means "this arm is worse than scratch",
and it comes with a guarantee: over the whole evaluation schedule, and over all the arm's runs together,
the probability of an alarm when the arm is in truth no worse than scratch is at most ``alpha``
(default 5%). The caller can warn, stop the runs, or stop them and restart from scratch.

The test (:func:`sequential_alarms`, :class:`CurveComparator`)
---------------------------------------------------------------
*Looks.* The evaluations are planned in advance (every ``eval_freq`` steps up to the budget; the scratch
reference was evaluated on the same schedule), so the ``K`` looks are known before the first one. Look
``k`` is every run's ``k``-th evaluation (0-based; look 0 is the evaluation before any learning).

*Statistic at a look.* Take the mean of each run's last ``window`` evaluations, for the transfer runs
being tested (``x_1..x_m``) and for the reference seeds (``r_1..r_n``, interpolated onto the transfer
run's steps). With ``m >= 2`` transfer runs, Welch's statistic with Hsu's degrees of freedom,

    t = (mean(x) - mean(r) + margin) / sqrt(var(x) / m + var(r) / n),   df = min(m, n) - 1,

whose lower tail is at most the nominal level under normal per-seed values *whatever the ratio of the
arms' variances* (Mickey & Brown 1966; see :func:`rltransfer.statistics.welch_test`). A single run
(``m = 1``) has no variance of its own, so it is tested as one more draw from the reference distribution
(the studentized prediction error, ``t = (x - mean(r) + margin) / (sd(r) sqrt(1 + 1/n))``, ``t_{n-1}``):
valid only if transfer runs vary as much as scratch runs do.

*Which runs.* An arm's ``runs`` runs (seeds, in seed order) form the family of looks. At each look the
test is done on planned *groups*: the first ``g`` runs for each ``g`` in ``groups`` (default ``(runs,)``:
all of them; a group of size 1 means "each run on its own"). A group is tested once all its members have
reached the look, so runs that train one after another (2 workers for 8 seeds) are still tested jointly,
and the look at which the alarm fires depends on the runs' data only, never on the order they trained in
(:func:`default_groups`).
The decision is the arm's: when one run's test fires, every run of the arm raises the alarm at its next
evaluation (:class:`DetectionHook` reads the other runs' records).

*Error control.* The level ``alpha`` is spent over the tested looks (from look ``min_evals - 1`` on) by a
Pocock-type spending function, ``alpha(t) = alpha ln(1 + (e - 1) t)`` at information fraction
``t = j / J`` of the ``J`` tested looks (Lan & DeMets 1983), and each look's share is split equally among
the groups (and, for groups of size 1, among the runs). An alarm is raised as soon as a test's one-sided
p-value is at most its share. The shares sum to ``alpha`` and the per-pair false-alarm rate is at most
the sum of the tests' rates (Bonferroni), *whatever the correlation between looks and between groups*.
The classical group-sequential boundaries spend less conservatively, but they assume the independent
increments of a cumulative sum (a Brownian information process); a learning curve's successive returns
are correlated in no such known way (a slow seed stays slow, then catches up), so the boundaries would
not be guaranteed. The union bound costs some power for that guarantee: on the six synthetic nulls the
measured rate per pair is well below ``alpha`` (0.2-2.4% at 5%, 10,000 pairs each). An anytime-valid
confidence sequence would not need the planned schedule, but with 8 seeds per arm its width leaves
little power. Pocock-type spending (rather than O'Brien-Fleming's) puts the level where transfer curves
separate, early in learning: at ``d = 2`` on logistic curves it detects 93% of arms at a median 17% of
the budget, O'Brien-Fleming spending 44% at 42% (with nested groups ``(4, 8)``; all 8 at once, the
default, detects 97%). Runs trained 2 at a time can then only stop the ones still training when the
alarm fires: the compute saved depends on ``--workers``, the alarm and the verdict do not.

Why joint and not per run: a single run against 8 scratch seeds cannot be judged worse with less than
1/9 false-alarm probability without a distributional assumption (it is the worst of 9 exchangeable runs
with probability 1/9), and a per-run test cannot tell a worse arm from a noisier one: on the synthetic
``unequal_spread`` null (transfer seeds 3x as variable, equal mean curves) this sequential test with each
run alone (``groups=(1,)``, Bonferroni over the 8 runs) gave 83% false alarms per pair, on ``bimodal``
(one seed in five never learns) 14%; the joint test 2.4% and 0.4%. Measured numbers, per family and
planted effect (detection rate, alarm step, compute saved, the bias of stopped runs' metrics):
``benchmarks/scripts/detector_figures.py``.

*Margin.* ``margin`` tolerates a shortfall (return units, or a fraction of the return range with
``task_range``): the null becomes "worse by at most ``margin``".

Stopped runs (:func:`censored_metrics`)
---------------------------------------
A run stopped at its alarm has no evaluations after it: holding its last value to the budget, or splicing
a fresh scratch run after it (the ``fallback``), makes its metrics measure something else than the
verdict's. :func:`censored_metrics` computes a run's metrics on the evaluations up to a *horizon* that every
run of the comparison reached (:func:`common_horizon`), or marks the run as censored. Measured on logistic
curves with a planted ``d = -1`` (30% of arms stopped): holding the stopped curves flat biases the mean AUC
difference by -139% of the true difference, the common-horizon AUC by +3% of it on its span. What stays
is the selection every sequential test has: an arm stops when its data look bad, so on the stopped arms
alone the difference is overstated.

The family is one *arm* (a pair's strategy or curriculum, all its seeds): a pair with ``k`` arms has a
pair-wide false-alarm rate of at most ``k * alpha`` (give ``alpha / k`` for a rate per pair).

The old rule (``rule="per_look"``): a per-look prediction t-test at ``confidence`` with ``patience``
consecutive worse evaluations, per run. It has no error control over looks or runs (measured at the
quick suite's shape: 7-11% false alarms per run and 36-42% per pair at ``confidence=0.95, patience=3,
window=2``, 98% per pair on unequal spread); it is kept for smoke tests of tiny runs and to reproduce
old results.

Only :class:`NegativeTransferCallback` depends on Stable-Baselines3.
"""

from __future__ import annotations

import bisect
import logging
import math
import re
import warnings
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy import special
from stable_baselines3.common.callbacks import BaseCallback, EvalCallback

from rltransfer.errors import ConfigError

__all__ = [
    "CensoredMetrics",
    "CurveComparator",
    "DetectionHook",
    "DetectionState",
    "GroupTest",
    "NegativeTransferCallback",
    "NegativeTransferWarning",
    "SequentialAlarms",
    "arm_key",
    "censored_metrics",
    "common_horizon",
    "default_groups",
    "detection_hook",
    "group_test",
    "reference_curves",
    "sequential_alarms",
    "spending_levels",
]

logger = logging.getLogger(__name__)

Action = Literal["warn", "stop", "fallback"]
Rule = Literal["sequential", "per_look"]
Spending = Literal["pocock", "obrien_fleming", "linear"]
_ACTIONS = ("warn", "stop", "fallback")
_RULES = ("sequential", "per_look")
_SPENDINGS = ("pocock", "obrien_fleming", "linear")

#: The declared false-alarm rate per arm (all runs of a pair's arm, over the whole schedule).
DEFAULT_ALPHA = 0.05


class NegativeTransferWarning(UserWarning):
    """Emitted when :class:`NegativeTransferCallback` raises its alarm."""


# ------------------------------------------------------------------------------------------ validation


def _int(value: Any, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _alpha(alpha: Any) -> float:
    a = float(alpha) if isinstance(alpha, (int, float, np.floating, np.integer)) and not isinstance(alpha, bool) \
        else math.nan
    if not 0.0 < a < 0.5:
        raise ConfigError(f"alpha (the false-alarm rate per arm) must be in (0, 0.5), got {alpha!r}")
    return a


def _choice(value: Any, name: str, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    return str(value)


def _groups(groups: Sequence[int] | None, runs: int) -> tuple[int, ...]:
    if groups is None:
        return default_groups(runs)
    try:
        gs = tuple(groups)
    except TypeError:
        raise ConfigError(f"groups must be a sequence of group sizes, got {groups!r}") from None
    if not gs:
        raise ConfigError("groups must name at least one group size, got an empty sequence")
    for g in gs:
        if isinstance(g, bool) or not isinstance(g, (int, np.integer)) or not 1 <= g <= runs:
            raise ConfigError(f"groups must be sizes in [1, runs={runs}], got {list(gs)!r}")
    if len(set(gs)) != len(gs):
        raise ConfigError(f"groups must be distinct sizes, got {list(gs)!r}")
    return tuple(sorted(int(g) for g in gs))


# ------------------------------------------------------------------------------------- pure statistics


def default_groups(runs: int) -> tuple[int, ...]:
    """The planned group sizes for an arm of ``runs`` runs: ``(runs,)``, all of them at once.

    One group makes the alarm a function of the runs' data alone: the look at which it fires is the same
    whatever order the workers train the seeds in, so a benchmark's verdicts do not depend on its
    ``--workers``. Nested groups (the first half of the seeds, then all) would let the first half stop
    the second when runs train one after another, but which group fires first would then depend on the
    schedule (``groups=`` still allows them).

    Args:
        runs: number of transfer runs in the arm (>= 1).

    Returns:
        Increasing group sizes.
    """
    return (_int(runs, "runs"),)


def spending_levels(
    n_looks: int,
    alpha: float = DEFAULT_ALPHA,
    *,
    min_evals: int = 3,
    spending: Spending = "pocock",
) -> np.ndarray:
    """One-sided level spent at each planned look; the levels sum to ``alpha``.

    Looks before ``min_evals - 1`` (0-based) get level 0. The tested looks ``j = 1..J`` get
    ``A(j / J) - A((j - 1) / J)`` for the spending function ``A``:

    * ``"pocock"``: ``alpha ln(1 + (e - 1) t)`` (Lan-DeMets Pocock-type, front-loaded);
    * ``"obrien_fleming"``: ``2 - 2 Phi(z_{1 - alpha/2} / sqrt(t))`` (back-loaded);
    * ``"linear"``: ``alpha t`` (equal shares).

    Args:
        n_looks: number of planned looks ``K`` (evaluations, the one at step 0 included).
        alpha: total level, in ``(0, 0.5)``.
        min_evals: the first tested look is the ``min_evals``-th evaluation (>= 1).
        spending: the spending function's name.

    Returns:
        (n_looks,) levels; all zeros when ``min_evals > n_looks``.
    """
    k = _int(n_looks, "n_looks")
    a = _alpha(alpha)
    first = _int(min_evals, "min_evals") - 1
    kind = _choice(spending, "spending", _SPENDINGS)
    out = np.zeros(k)
    n_tested = k - first
    if n_tested <= 0:
        return out
    t = np.arange(1, n_tested + 1) / n_tested
    if kind == "pocock":
        cum = a * np.log1p((math.e - 1.0) * t)
    elif kind == "linear":
        cum = a * t
    else:
        z = float(special.ndtri(1.0 - a / 2.0))
        cum = 2.0 - 2.0 * special.ndtr(z / np.sqrt(t))
        cum = cum * (a / cum[-1])  # exact alpha at t = 1 (it is already, up to rounding)
    out[first:] = np.diff(np.concatenate([[0.0], cum]))
    return out


@dataclass(frozen=True)
class GroupTest:
    """One-sided test that transfer runs are worse than scratch (floats, or arrays of the leading shape).

    Attributes:
        statistic: Welch's t (``m >= 2``) or the prediction t (``m = 1``), margin-shifted; negative
            means behind scratch. ``+-inf`` when both arms are constant and differ.
        df: degrees of freedom (``min(m, n) - 1``, or ``n - 1`` for one run).
        p_value: lower-tail p-value (small: confidently worse).
    """

    statistic: Any
    df: Any
    p_value: Any


def group_test(transfer: ArrayLike, scratch: ArrayLike, *, margin: float = 0.0) -> GroupTest:
    """The sequential test's statistic at one look, vectorized over leading axes.

    Args:
        transfer: (..., m) per-run values of the transfer runs tested together (``m >= 1``).
        scratch: (..., n) per-seed values of the reference, ``n >= 2`` (leading axes broadcastable).
        margin: tolerated shortfall, in the values' units (>= 0).

    Returns:
        A :class:`GroupTest`; see the module docstring for the statistic.

    Raises:
        ConfigError: fewer than 1 transfer value or 2 reference values, or a negative margin.
    """
    x = np.asarray(transfer, dtype=float)
    r = np.asarray(scratch, dtype=float)
    if x.ndim == 0 or x.shape[-1] < 1:
        raise ConfigError(f"transfer must have shape (..., m) with m >= 1, got shape {x.shape}")
    if r.ndim == 0 or r.shape[-1] < 2:
        raise ConfigError(f"scratch must have shape (..., n) with n >= 2 reference seeds, got shape {r.shape}")
    mg = float(margin)
    if not math.isfinite(mg) or mg < 0:
        raise ConfigError(f"margin must be a finite number >= 0, got {margin!r}")
    m, n = x.shape[-1], r.shape[-1]
    r_mean = r.mean(axis=-1)
    shifted = x.mean(axis=-1) - r_mean + mg
    v_r = r.var(axis=-1, ddof=1)
    if m == 1:
        se = np.sqrt(v_r * (1.0 + 1.0 / n))
        df = float(n - 1)
    else:
        se = np.sqrt(x.var(axis=-1, ddof=1) / m + v_r / n)
        df = float(min(m, n) - 1)
    scale = 1e-12 * np.maximum(1.0, np.abs(r_mean))
    ok = se > scale
    with np.errstate(divide="ignore", invalid="ignore"):
        stat = np.where(ok, shifted / np.where(ok, se, 1.0), np.sign(shifted) * np.inf)
    stat = np.where(ok | (shifted != 0.0), stat, 0.0)
    p = np.where(ok, special.stdtr(df, np.where(ok, stat, 0.0)),
                 np.where(shifted < 0.0, 0.0, np.where(shifted > 0.0, 1.0, 0.5)))
    df_out = np.broadcast_to(df, np.shape(p))
    if np.ndim(p) == 0:
        return GroupTest(float(stat), df, float(p))
    return GroupTest(stat, df_out, p)


def _window_means(curves: np.ndarray, window: int) -> np.ndarray:
    """(..., K) running means of the last ``window`` values (fewer at the start)."""
    c = np.cumsum(curves, axis=-1)
    w = min(window, curves.shape[-1])
    lag = np.zeros_like(c)
    lag[..., w:] = c[..., :-w]
    return (c - lag) / np.minimum(np.arange(1, curves.shape[-1] + 1), w)


@dataclass(frozen=True)
class SequentialAlarms:
    """What :func:`sequential_alarms` found for each comparison.

    Attributes:
        alarm: (...,) whether any test fired.
        look: (...,) first look (0-based) at which a test fired, ``-1`` without an alarm.
        step: (...,) the step of that look, ``nan`` without an alarm.
        group: (...,) size of the smallest group whose test fired at that look (0 without an alarm).
        levels: (K,) the level spent at each look (over all groups).
    """

    alarm: np.ndarray
    look: np.ndarray
    step: np.ndarray
    group: np.ndarray
    levels: np.ndarray


def sequential_alarms(
    steps: ArrayLike,
    transfer: ArrayLike,
    scratch: ArrayLike,
    *,
    alpha: float = DEFAULT_ALPHA,
    groups: Sequence[int] | None = None,
    min_evals: int = 3,
    spending: Spending = "pocock",
    margin: float = 0.0,
    window: int = 1,
) -> SequentialAlarms:
    """The sequential test on whole arms at once, as if all runs reached each look together.

    This is the same decision as feeding the runs' evaluations one by one to :class:`CurveComparator`
    (the tests at a look do not depend on the order in which the runs reached it), vectorized over
    comparisons for simulation.

    Args:
        steps: (K,) the planned evaluation steps (every look is tested on the same steps).
        transfer: (..., n_t, K) returns of the arm's transfer runs, in seed order.
        scratch: (..., n_s, K) returns of the reference scratch runs (``n_s >= 2``).
        alpha: false-alarm rate per comparison over the whole schedule.
        groups: planned group sizes (default :func:`default_groups`).
        min_evals: first tested look is the ``min_evals``-th evaluation.
        spending: spending function (:func:`spending_levels`).
        margin: tolerated shortfall in return units.
        window: evaluations averaged per run at each look (>= 1).

    Returns:
        A :class:`SequentialAlarms` with the leading shape of the inputs.
    """
    s = np.asarray(steps, dtype=float)
    t = np.asarray(transfer, dtype=float)
    r = np.asarray(scratch, dtype=float)
    if s.ndim != 1 or s.size < 1:
        raise ConfigError(f"steps must be a non-empty 1-D array of shape (K,), got shape {s.shape}")
    k = s.size
    if t.ndim < 2 or t.shape[-1] != k:
        raise ConfigError(f"transfer must have shape (..., n_t, {k}) to match steps, got shape {t.shape}")
    if r.ndim < 2 or r.shape[-1] != k or r.shape[-2] < 2:
        raise ConfigError(f"scratch must have shape (..., n_s >= 2, {k}) to match steps, got shape {r.shape}")
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(r))):
        raise ConfigError("transfer and scratch returns must be finite")
    n_t = t.shape[-2]
    gs = _groups(groups, n_t)
    levels = spending_levels(k, alpha, min_evals=min_evals, spending=spending)
    share = levels / len(gs)
    w = _int(window, "window")
    tw = _window_means(t, w)
    rw = np.swapaxes(_window_means(r, w), -1, -2)  # (..., K, n_s)
    lead = np.broadcast_shapes(t.shape[:-2], r.shape[:-2])
    fired = np.zeros(lead + (k,), dtype=bool)
    smallest = np.zeros(lead + (k,), dtype=int)
    for g in gs:
        if g == 1:  # every run on its own, Bonferroni over the runs
            p = group_test(tw[..., None], rw[..., None, :, :], margin=margin).p_value  # (..., n_t, K)
            rej = np.any(p <= share / n_t, axis=-2)
        else:
            p = group_test(np.swapaxes(tw[..., :g, :], -1, -2), rw, margin=margin).p_value  # (..., K)
            rej = p <= share
        rej = rej & (share > 0)
        smallest = np.where(rej & ~fired, g, smallest)
        fired |= rej
    alarm = fired.any(axis=-1)
    look = np.where(alarm, fired.argmax(axis=-1), -1)
    step = np.where(alarm, s[np.maximum(look, 0)], np.nan)
    group = np.where(alarm, np.take_along_axis(smallest, np.maximum(look, 0)[..., None], axis=-1)[..., 0], 0)
    return SequentialAlarms(alarm=alarm, look=look, step=step, group=group, levels=levels)


# ------------------------------------------------------------------------------------- stopped runs


@dataclass(frozen=True)
class CensoredMetrics:
    """A run's metrics on the span up to a horizon, or the fact that it stopped before it.

    Attributes:
        metrics: :func:`rltransfer.metrics.run_metrics` on the evaluations up to ``horizon`` (the curve
            interpolated at ``horizon`` when no evaluation falls on it); ``None`` when censored.
        horizon: the last step of the span the metrics cover.
        reached: the last step the run has an evaluation for (its stop, or the end of its curve).
        stopped: whether the run stopped before the budget.
        censored: whether the run did not reach ``horizon`` (no metrics on that span).
    """

    metrics: dict[str, float] | None
    horizon: float
    reached: float
    stopped: bool
    censored: bool


def _curve(steps: ArrayLike, returns: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(steps, dtype=float)
    r = np.asarray(returns, dtype=float)
    if s.ndim != 1 or s.size == 0 or r.shape != s.shape:
        raise ConfigError(f"steps and returns must be 1-D arrays of one shape, got {s.shape} and {r.shape}")
    if not (np.all(np.isfinite(s)) and np.all(np.isfinite(r))):
        raise ConfigError("steps and returns must be finite")
    if np.any(np.diff(s) <= 0):
        raise ConfigError(f"steps must be strictly increasing, got {s.tolist()}")
    return s, r


def _reached(s: np.ndarray, stopped_at: float | None, budget: float) -> tuple[float, bool]:
    stop = None if stopped_at is None or not math.isfinite(float(stopped_at)) else float(stopped_at)
    stopped = stop is not None and stop < budget
    end = float(s[s <= stop][-1]) if stop is not None and np.any(s <= stop) else float(s[-1])
    return (end if stopped else float(s[-1])), stopped


def common_horizon(reached: ArrayLike, budget: float, *, first_step: float = 0.0) -> float:
    """The last step every run of a comparison reached: the span on which its metrics are comparable.

    Runs that stopped at their first evaluation (``reached <= first_step``: stopped by another run's
    alarm before they trained) carry no curve and do not shorten the span; they are censored.

    Args:
        reached: (n_runs,) the last evaluated step of each run of both arms (:attr:`CensoredMetrics.reached`
            or the last step of a full curve).
        budget: the planned budget (the horizon never exceeds it).
        first_step: the step of the first evaluation.

    Returns:
        The horizon; ``first_step`` when no run trained past its first evaluation.
    """
    r = np.asarray(reached, dtype=float).ravel()
    if r.size == 0 or not np.all(np.isfinite(r)):
        raise ConfigError(f"reached must be a non-empty array of finite steps, got {r.tolist()}")
    trained = r[r > first_step]
    return float(min(float(budget), float(trained.min()))) if trained.size else float(first_step)


def censored_metrics(
    steps: ArrayLike,
    returns: ArrayLike,
    stopped_at: float | None,
    budget: float,
    *,
    horizon: float | None = None,
    threshold: float,
    low: float,
    high: float,
    last_k: int = 3,
) -> CensoredMetrics:
    """A run's metrics on the evaluations it reached, without holding a stopped run flat to the budget.

    The run's curve is used up to ``stopped_at`` only (evaluations after it, e.g. a fallback spliced on,
    are not part of the run) and cut at ``horizon`` (default: the run's own end, so a stopped run's
    metrics cover its shorter span). Compare arms on one span: compute ``horizon`` with
    :func:`common_horizon` over the runs of both arms, then call this for each run. A run that did not
    reach the horizon is censored (``metrics is None``).

    Args:
        steps: (n,) the run's evaluation steps, strictly increasing.
        returns: (n,) its mean evaluation returns.
        stopped_at: the step at which the run stopped (its alarm), or ``None`` if it ran to the budget.
        budget: the planned budget.
        horizon: the last step of the span to compute the metrics on.
        threshold, low, high, last_k: as :func:`rltransfer.metrics.run_metrics`.

    Returns:
        A :class:`CensoredMetrics`.
    """
    from rltransfer.metrics import run_metrics

    s, r = _curve(steps, returns)
    reached, stopped = _reached(s, stopped_at, float(budget))
    h = reached if horizon is None else float(horizon)
    if not math.isfinite(h):
        raise ConfigError(f"horizon must be a finite step, got {horizon!r}")
    if h > reached or h < s[0]:
        return CensoredMetrics(metrics=None, horizon=h, reached=reached, stopped=stopped, censored=True)
    keep = s <= h
    cs, cr = s[keep], r[keep]
    if cs[-1] < h:  # no evaluation on the horizon: interpolate the run's own curve there
        cr = np.append(cr, np.interp(h, s, r))
        cs = np.append(cs, h)
    metrics = run_metrics(cs, cr, threshold, low, high, last_k) if cs.size >= 2 else None
    return CensoredMetrics(metrics=metrics, horizon=h, reached=reached, stopped=stopped, censored=metrics is None)


# ------------------------------------------------------------------------------------- the comparator


@dataclass(frozen=True)
class DetectionState:
    """What the comparator concluded at one evaluation.

    Attributes:
        step: environment step of the evaluation.
        evals_seen: number of evaluations of the transfer run so far, this one included.
        gap: this evaluation's return minus the reference seeds' mean return at the same step
            (reference curves linearly interpolated onto ``step``); negative means behind scratch.
        z: the statistic of the largest group tested at this look (margin-shifted; see the module
            docstring); ``nan`` when no test was done.
        prob_worse: ``1 - p_value`` (the old rule: its one-sided confidence); ``nan`` when no test.
        worse: whether a test fired at this evaluation.
        consecutive: number of consecutive evaluations ending with this one at which a test fired.
        alarm: whether the alarm is on (it stays on once raised).
        look: 0-based index of this evaluation in the planned schedule.
        p_value: the p-value reported with ``z``.
        level: the level that p-value was compared with (``nan`` when no test).
        group: size of the group reported (1: this run alone; 0: no test at this look).
        source: ``"test"`` when this comparator's test raised the alarm, ``"peer"`` when another run of the
            arm did, ``None`` without an alarm.
    """

    step: int
    evals_seen: int
    gap: float
    z: float
    prob_worse: float
    worse: bool
    consecutive: int
    alarm: bool
    look: int = -1
    p_value: float = math.nan
    level: float = math.nan
    group: int = 0
    source: str | None = None


class CurveComparator:
    """Compare a transfer run's evaluations, as they arrive, with reference scratch curves.

    With ``rule="sequential"`` (default) the run is one of an arm's ``runs`` runs and the alarm is the
    arm's sequential test (module docstring); the other runs' evaluations are passed to :meth:`update`
    as ``peers``. With ``runs=1`` the run is tested alone against the reference, with ``alpha`` spent over
    its looks. ``rule="per_look"`` is the old rule (``confidence``, ``patience``), without error control.

    Args:
        ref_steps: (n,) evaluation steps of the reference curves, strictly increasing.
        ref_returns: (n_seeds, n) evaluation returns of each scratch seed (a (n,) array is one seed).
            Beyond the last reference step the reference is held at its last value.
        min_evals: no test before this many transfer evaluations.
        margin: tolerance: the runs must be worse than scratch by more than this to count. In return
            units, or a fraction of ``high - low`` when ``task_range`` is given. Must be positive with
            a single reference seed.
        task_range: ``(low, high)`` return range of the task; makes ``margin`` a fraction in ``[0, 1)``.
        confidence: ``per_look`` rule only: one-sided confidence per look, in ``(0.5, 1)``.
        patience: ``per_look`` rule only: consecutive worse evaluations needed (>= 1).
        window: number of most recent evaluations averaged on both sides (>= 1).
        rule: ``"sequential"`` or ``"per_look"``.
        alpha: false-alarm rate of the arm over the whole schedule, in ``(0, 0.5)``.
        runs: number of transfer runs in the arm (the family of looks).
        run_index: this run's position among them (seed order), in ``[0, runs)``.
        groups: planned group sizes (default :func:`default_groups`); ``(1,)`` tests each run alone,
            with Bonferroni over ``runs``.
        n_looks: planned number of evaluations (default: the reference's, ``len(ref_steps)``);
            evaluations beyond it are not tested.
        spending: spending function (:func:`spending_levels`).

    Raises:
        ConfigError: a shape or value above is invalid.
    """

    def __init__(
        self,
        ref_steps: ArrayLike,
        ref_returns: ArrayLike,
        *,
        min_evals: int = 3,
        margin: float = 0.0,
        task_range: tuple[float, float] | None = None,
        confidence: float = 0.975,
        patience: int = 4,
        window: int = 1,
        rule: Rule = "sequential",
        alpha: float = DEFAULT_ALPHA,
        runs: int = 1,
        run_index: int = 0,
        groups: Sequence[int] | None = None,
        n_looks: int | None = None,
        spending: Spending = "pocock",
    ) -> None:
        steps = np.asarray(ref_steps, dtype=float)
        rets = np.asarray(ref_returns, dtype=float)
        if rets.ndim == 1:
            rets = rets[None, :]
        if steps.ndim != 1 or steps.size == 0:
            raise ConfigError(
                f"ref_steps must be a non-empty 1-D array of shape (n,), got shape {steps.shape}"
            )
        if rets.ndim != 2 or rets.shape[1] != steps.size or rets.shape[0] == 0:
            raise ConfigError(
                f"ref_returns must have shape (n_seeds, {steps.size}) to match ref_steps, "
                f"got shape {rets.shape}"
            )
        if not (np.all(np.isfinite(steps)) and np.all(np.isfinite(rets))):
            raise ConfigError("ref_steps and ref_returns must be finite")
        if steps.size > 1 and np.any(np.diff(steps) <= 0):
            raise ConfigError(f"ref_steps must be strictly increasing, got {steps.tolist()}")
        for name, val in (("min_evals", min_evals), ("patience", patience), ("window", window)):
            _int(val, name)
        conf = float(confidence)
        if not 0.5 < conf < 1.0:
            raise ConfigError(f"confidence must be in (0.5, 1), got {confidence!r}")
        m = float(margin)
        if not math.isfinite(m) or m < 0:
            raise ConfigError(f"margin must be a finite number >= 0, got {margin!r}")
        if task_range is not None:
            low, high = (float(v) for v in task_range)
            if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
                raise ConfigError(f"task_range must be (low, high) with low < high, got {task_range!r}")
            if m >= 1.0:
                raise ConfigError(
                    f"with task_range, margin is a fraction of the range in [0, 1), got {margin!r}"
                )
            m *= high - low
        if rets.shape[0] == 1 and m <= 0.0:
            raise ConfigError(
                "with a single reference seed there is no spread to test against: give margin > 0 "
                "(return units, or a fraction with task_range) or more scratch seeds"
            )
        self.rule: Rule = _choice(rule, "rule", _RULES)  # type: ignore[assignment]
        self.alpha = _alpha(alpha)
        self.runs = _int(runs, "runs")
        self.run_index = _int(run_index, "run_index", 0)
        if self.run_index >= self.runs:
            raise ConfigError(f"run_index must be in [0, runs={self.runs}), got {run_index!r}")
        self.groups = _groups(groups, self.runs)
        self.n_looks = steps.size if n_looks is None else _int(n_looks, "n_looks")
        self.spending: Spending = _choice(spending, "spending", _SPENDINGS)  # type: ignore[assignment]
        self.ref_steps = steps
        self.ref_returns = rets
        self._ref_steps_list: list[float] = steps.tolist()
        self._ref_rows = np.ascontiguousarray(rets.T)  # (n, n_seeds): one row per reference step
        self.min_evals = int(min_evals)
        self.margin = m
        self.confidence = conf
        self.patience = int(patience)
        self.window = int(window)
        self._pred_scale = math.sqrt(1.0 + 1.0 / self.n_seeds)
        self.levels = spending_levels(self.n_looks, self.alpha, min_evals=self.min_evals, spending=self.spending)
        self.reset()

    @property
    def last_step(self) -> int | None:
        """Step of the last evaluation fed to :meth:`update`, or ``None`` before the first."""
        return None if self._last_step is None else int(self._last_step)

    @property
    def n_seeds(self) -> int:
        """Number of reference (scratch) seeds."""
        return int(self.ref_returns.shape[0])

    def reset(self) -> None:
        """Forget the transfer run seen so far (to reuse the comparator for another run)."""
        self._last_step: float | None = None
        self._evals_seen = 0
        self._returns: deque[float] = deque(maxlen=self.window)  # last `window` transfer returns
        self._ref_cols: deque[np.ndarray] = deque(maxlen=self.window)  # matching reference columns
        self._consecutive = 0
        self.alarm_step: int | None = None
        self.alarm_source: str | None = None
        self.alarm_state: DetectionState | None = None
        self.last_state: DetectionState | None = None

    def _reference_at(self, step: float) -> np.ndarray:
        """(n_seeds,) reference returns linearly interpolated at ``step`` (held flat beyond the ends)."""
        steps = self._ref_steps_list
        rows = self._ref_rows
        j = bisect.bisect_right(steps, step)
        out: np.ndarray
        if j == 0:
            out = rows[0]
        elif j == len(steps):
            out = rows[-1]
        else:
            s0, s1 = steps[j - 1], steps[j]
            w = (step - s0) / (s1 - s0)
            out = rows[j - 1] if w == 0.0 else (1.0 - w) * rows[j - 1] + w * rows[j]
        return out

    def update(
        self,
        step: int,
        mean_return: float,
        peers: Mapping[int, Sequence[float]] | None = None,
        peer_alarm: bool = False,
    ) -> DetectionState:
        """Feed the transfer run's next evaluation and return the comparator's state.

        Args:
            step: environment step of the evaluation, larger than the previous one.
            mean_return: mean evaluation return at that step.
            peers: ``{run_index: returns by look}`` of the arm's other runs, as far as they have got
                (sequential rule; a group is tested once all its members reached this look).
            peer_alarm: another run of the arm has raised the arm's alarm: raise it here too.

        Returns:
            The :class:`DetectionState` after this evaluation.
        """
        st, ret = float(step), float(mean_return)
        if not math.isfinite(st) or not math.isfinite(ret):
            raise ConfigError(
                f"step and mean_return must be finite, got step={step!r}, mean_return={mean_return!r}"
            )
        if self._last_step is not None and st <= self._last_step:
            raise ConfigError(
                f"evaluation steps must increase: got step={step!r} after step={self._last_step:g}"
            )
        ref = self._reference_at(st)
        self._last_step = st
        self._evals_seen += 1
        self._returns.append(ret)
        self._ref_cols.append(ref)
        if self.rule == "per_look":
            state = self._per_look(int(step), ret, ref)
        else:
            state = self._sequential(int(step), ret, ref, peers or {}, bool(peer_alarm))
        self.last_state = state
        return state

    # -- the sequential rule

    def _sequential(self, step: int, ret: float, ref: np.ndarray, peers: Mapping[int, Sequence[float]],
                    peer_alarm: bool) -> DetectionState:
        k = self._evals_seen - 1
        gap = ret - float(ref.mean())
        w = len(self._returns)  # min(window, evals seen)
        own = sum(self._returns) / w
        r = np.sum(self._ref_cols, axis=0) / w  # (n_seeds,)
        level = float(self.levels[k]) if k < self.n_looks else 0.0
        share = level / len(self.groups)
        best: tuple[int, float, float, float] | None = None  # (group, statistic, p, level)
        fired: tuple[int, float, float, float] | None = None
        if share > 0.0 and self.n_seeds >= 2:
            for g in self.groups:
                if g == 1:
                    values: list[float] | None = [own]
                    lvl = share / self.runs
                else:
                    values = self._group_values(g, k, w, own, peers)
                    lvl = share
                if values is None:
                    continue
                res = group_test(np.asarray(values), r, margin=self.margin)
                entry = (g, float(res.statistic), float(res.p_value), lvl)
                if best is None or g > best[0]:
                    best = entry
                if res.p_value <= lvl and fired is None:
                    fired = entry
        elif share > 0.0:  # a single reference seed: below it by more than the margin
            shifted = own - float(r[0]) + self.margin
            best = (1, math.nan, 0.0 if shifted < 0.0 else 1.0, share)
            fired = best if shifted < 0.0 else None
        worse = fired is not None
        self._consecutive = self._consecutive + 1 if worse else 0
        source = self.alarm_source
        if self.alarm_step is None and (worse or peer_alarm):
            self.alarm_step = step
            self.alarm_source = source = "test" if worse else "peer"
        shown = fired or best
        state = DetectionState(
            step=step, evals_seen=self._evals_seen, gap=gap,
            z=shown[1] if shown else math.nan, prob_worse=1.0 - shown[2] if shown else math.nan,
            worse=worse, consecutive=self._consecutive, alarm=self.alarm_step is not None, look=k,
            p_value=shown[2] if shown else math.nan, level=shown[3] if shown else math.nan,
            group=shown[0] if shown else 0, source=source,
        )
        if self.alarm_step == step and self.alarm_state is None:
            self.alarm_state = state
        return state

    def _group_values(self, g: int, k: int, w: int, own: float,
                      peers: Mapping[int, Sequence[float]]) -> list[float] | None:
        """The windowed values at look ``k`` of the group of the first ``g`` runs, or ``None`` if one of
        them has not reached the look yet."""
        values = []
        for i in range(g):
            if i == self.run_index:
                values.append(own)
                continue
            seq = peers.get(i)
            if seq is None or len(seq) <= k:
                return None
            vals = [float(v) for v in seq[k - w + 1:k + 1]]
            if not all(math.isfinite(v) for v in vals):
                return None
            values.append(sum(vals) / w)
        return values

    # -- the old rule

    def _per_look(self, step: int, ret: float, ref: np.ndarray) -> DetectionState:
        k = self._evals_seen
        n = ref.size
        gap = ret - float(ref.sum()) / n
        w = len(self._returns)
        if w == 1:
            x, r = ret, ref
        else:
            x = sum(self._returns) / w
            r = np.sum(self._ref_cols, axis=0) / w
        r_mean = float(r.sum()) / n
        shifted = x - r_mean + self.margin
        if n == 1:
            z = prob = math.nan
            worse_now = shifted < 0.0
        else:
            sd = math.sqrt(float(((r - r_mean) ** 2).sum()) / (n - 1))
            if sd > 1e-12 * max(1.0, abs(r_mean)):
                z = shifted / (sd * self._pred_scale)
                prob = float(special.stdtr(n - 1, -z))
            else:  # all reference seeds agree: any shortfall beyond the margin is certain
                z = math.copysign(math.inf, shifted) if shifted != 0.0 else 0.0
                prob = 1.0 if shifted < 0.0 else (0.0 if shifted > 0.0 else 0.5)
            worse_now = prob >= self.confidence
        worse = bool(worse_now and k >= self.min_evals)
        self._consecutive = self._consecutive + 1 if worse else 0
        if self.alarm_step is None and self._consecutive >= self.patience:
            self.alarm_step = int(step)
            self.alarm_source = "test"
        state = DetectionState(
            step=int(step), evals_seen=k, gap=gap, z=z, prob_worse=prob, worse=worse,
            consecutive=self._consecutive, alarm=self.alarm_step is not None, look=k - 1,
            p_value=1.0 - prob if math.isfinite(prob) else math.nan, level=1.0 - self.confidence,
            group=1, source=self.alarm_source,
        )
        if self.alarm_step == step and self.alarm_state is None:
            self.alarm_state = state
        return state


# ------------------------------------------------------------------------------------------ callback


class NegativeTransferCallback(BaseCallback):
    """Stable-Baselines3 callback that acts on :class:`CurveComparator` alarms.

    It runs no evaluations itself; it is fed evaluation results in one of two ways:

    * as ``EvalCallback(..., callback_after_eval=NegativeTransferCallback(...))``: after every
      evaluation it reads the parent's ``last_mean_reward`` at the current step;
    * by any other evaluation loop calling :meth:`on_evaluation`, with the callback also passed to
      ``learn`` so that :meth:`_on_step` can stop training.

    On each evaluation it records ``detect/gap``, ``detect/prob_worse``, ``detect/z``, ``detect/p_value``
    and ``detect/alarm`` in the model's logger (they are written at the logger's next dump). When the
    alarm is first raised it logs a warning and emits :class:`NegativeTransferWarning`; then, by
    ``action``:

    * ``"warn"``: training continues;
    * ``"stop"``: training stops at the next step;
    * ``"fallback"``: ``fallback_requested`` is set and training stops; the caller restarts from
      scratch.

    ``alarm_step`` holds the step at which the alarm was raised; :meth:`steps_saved` turns it into
    compute saved.

    Args:
        comparator: the comparator holding the scratch reference curves.
        action: ``"warn"``, ``"stop"`` or ``"fallback"``.
        verbose: SB3 verbosity level.
    """

    def __init__(self, comparator: CurveComparator, action: Action = "warn", verbose: int = 0) -> None:
        super().__init__(verbose=verbose)
        if not isinstance(comparator, CurveComparator):
            raise TypeError(f"comparator must be a CurveComparator, got {type(comparator).__name__}")
        if action not in _ACTIONS:
            raise ConfigError(f"action must be one of {', '.join(_ACTIONS)}, got {action!r}")
        self.comparator = comparator
        self.action: Action = action
        self.alarm = False
        self.alarm_step: int | None = None
        self.fallback_requested = False
        self.last_state: DetectionState | None = None

    def on_evaluation(self, step: int, mean_return: float, peers: Mapping[int, Sequence[float]] | None = None,
                      peer_alarm: bool = False) -> DetectionState:
        """Feed one evaluation result; log it and react to a new alarm.

        Args:
            step: environment step of the evaluation (increasing between calls).
            mean_return: mean evaluation return.
            peers: the arm's other runs' returns by look (see :meth:`CurveComparator.update`).
            peer_alarm: another run of the arm raised the alarm.

        Returns:
            The comparator's :class:`DetectionState`.
        """
        state = self.comparator.update(step, mean_return, peers=peers, peer_alarm=peer_alarm)
        self.last_state = state
        if getattr(self, "model", None) is not None:
            self.logger.record("detect/gap", state.gap)
            self.logger.record("detect/prob_worse", state.prob_worse)
            self.logger.record("detect/z", state.z)
            self.logger.record("detect/p_value", state.p_value)
            self.logger.record("detect/alarm", int(state.alarm))
        if state.alarm and not self.alarm:
            self.alarm = True
            self.alarm_step = self.comparator.alarm_step
            if self.action == "fallback":
                self.fallback_requested = True
            logger.warning(self._message(state))
            warnings.warn(self._message(state), NegativeTransferWarning, stacklevel=2)
        return state

    def _message(self, state: DetectionState) -> str:
        head = f"negative transfer suspected at step {self.alarm_step}"
        comp = self.comparator
        if state.source == "peer":
            why = "another run of this arm raised the arm's alarm"
        elif comp.rule == "per_look":
            why = (f"the last {state.consecutive} evaluations were worse than the scratch reference "
                   f"(gap {state.gap:+.4g}, prob_worse {state.prob_worse:.3g}; per-look rule, no error control)")
        else:
            who = "this run" if state.group == 1 else f"the first {state.group} of the arm's {comp.runs} runs"
            why = (f"the sequential test on {who} against {comp.n_seeds} scratch runs fired at evaluation "
                   f"{state.look + 1} (t {state.z:+.3g}, p {state.p_value:.3g} <= {state.level:.3g}; false-alarm "
                   f"rate at most {comp.alpha:g} per arm over the schedule)")
        return f"{head}: {why}; action: {self.action}"

    def _on_step(self) -> bool:
        parent = self.parent
        if isinstance(parent, EvalCallback) and math.isfinite(parent.last_mean_reward):
            last = self.comparator.last_step
            if last is None or self.num_timesteps > last:
                self.on_evaluation(self.num_timesteps, parent.last_mean_reward)
        return not (self.alarm and self.action in ("stop", "fallback"))

    @property
    def stop_requested(self) -> bool:
        """Whether the run should stop now (an alarm with action ``stop`` or ``fallback``)."""
        return self.alarm and self.action in ("stop", "fallback")

    def steps_saved(self, budget: int) -> int:
        """Training steps not spent because the run stopped at the alarm (0 without an alarm)."""
        if self.alarm_step is None or self.action == "warn":
            return 0
        return max(0, int(budget) - int(self.alarm_step))


# ------------------------------------------------------------------------------ benchmark arms' detector


def reference_curves(run_dirs: Sequence[str | Path]) -> tuple[np.ndarray, np.ndarray]:
    """Scratch curves as ``(steps (n,), returns (n_seeds, n))``, on the first run's evaluation steps."""
    from rltransfer.training import EvalCurve

    curves = [EvalCurve.load(Path(d)) for d in run_dirs]
    steps = np.asarray(curves[0].steps, dtype=float)
    rows = [np.interp(steps, np.asarray(c.steps, dtype=float), np.asarray(c.mean, dtype=float)) for c in curves]
    return steps, np.vstack(rows)


def _finite(x: float | None) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def arm_key(spec: Any) -> str:
    """What the runs of one arm share: the hash of a run spec without its seeds (nor the reference's paths,
    its checkpoints or its label). A run reads another run's detection record only if their keys match."""
    from rltransfer.spec import content_hash

    data = spec.model_dump(mode="json", exclude={"checkpoints": True, "label": True, "seed": True})
    if isinstance(data.get("eval"), dict):
        data["eval"].pop("seed", None)
    if isinstance(data.get("detection"), dict):
        data["detection"].pop("reference", None)
        data["detection"].pop("siblings", None)
    return content_hash(data)


class DetectionHook:
    """An evaluation hook (:class:`rltransfer.callbacks.EvalCallback`) that feeds each evaluation to a
    :class:`NegativeTransferCallback` in the same logger dump as ``eval/*``, and keeps the run's
    ``detection.json`` record (every evaluation's return, test and alarm; compute saved) up to date.

    With ``siblings`` (the run directories of all the arm's runs, in seed order, this one included), it
    reads the other runs' records at every evaluation, so that the arm's groups are tested jointly and an
    alarm raised by any run of the arm stops this one too.
    """

    def __init__(self, detector: NegativeTransferCallback, record_path: Path, budget: int,
                 settings: dict, siblings: Sequence[str | Path] = (), arm: str = "") -> None:
        self.detector = detector
        self.record_path = Path(record_path)
        self.budget = int(budget)
        self.siblings = [Path(p) for p in siblings]
        self.arm = str(arm)
        comp = detector.comparator
        self.record: dict = {
            "enabled": True, "action": detector.action, "budget": self.budget,
            "reference_seeds": int(comp.n_seeds), "settings": dict(settings), "rule": comp.rule,
            "alpha": comp.alpha, "runs": comp.runs, "run_index": comp.run_index, "groups": list(comp.groups),
            "levels": [float(v) for v in comp.levels], "arm_key": self.arm, "alarm_step": None, "arm_alarm": None,
            "steps_saved": 0, "would_save": 0, "evaluations": [],
        }
        self._fed: list[list[Any]] = []

    def init_callback(self, model: object) -> None:
        self.detector.init_callback(model)  # type: ignore[arg-type]
        self.write()

    @property
    def stop_requested(self) -> bool:
        return self.detector.stop_requested

    def write(self) -> None:
        from rltransfer.rundir import atomic_write_json

        atomic_write_json(self.record_path, self.record)

    def _peers(self) -> tuple[dict[int, list[float]], bool]:
        """The other runs' returns by look, and whether one of them raised the arm's alarm."""
        import contextlib

        from rltransfer.rundir import read_json

        peers: dict[int, list[float]] = {}
        alarm = False
        me = self.detector.comparator.run_index
        for i, run_dir in enumerate(self.siblings):
            path = run_dir / self.record_path.name
            if i == me or not path.is_file():
                continue
            rec: Any = None
            with contextlib.suppress(OSError, ValueError):
                rec = read_json(path, "detection record")
            if not isinstance(rec, dict) or rec.get("arm_key") != self.arm or not isinstance(
                    rec.get("evaluations"), list):
                continue  # not (yet) a run of this very arm: a stale folder, another suite version
            values = [e.get("mean_return") for e in rec["evaluations"] if isinstance(e, dict)]
            good = [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
            if len(good) == len(values):
                peers[i] = good
            alarm = alarm or isinstance(rec.get("arm_alarm"), dict)
        return peers, alarm

    def on_evaluation(self, step: int, mean_return: float) -> None:
        last = self.detector.comparator.last_step
        if last is not None and step <= last:
            return  # the final evaluation of a run stopped at its alarm repeats nothing new
        peers, peer_alarm = self._peers() if self.siblings else ({}, False)
        self._fed.append([int(step), float(mean_return), {str(k): v for k, v in peers.items()}, peer_alarm])
        state = self.detector.on_evaluation(step, mean_return, peers=peers, peer_alarm=peer_alarm)
        self._record(state, float(mean_return), sorted(peers))
        self.write()

    def _record(self, state: DetectionState, mean_return: float, peers_seen: list[int]) -> None:
        self.record["evaluations"].append({
            "step": state.step, "look": state.look, "mean_return": mean_return,
            "gap": _finite(state.gap), "statistic": _finite(state.z), "prob_worse": _finite(state.prob_worse),
            "p_value": _finite(state.p_value), "level": _finite(state.level), "group": state.group,
            "worse": state.worse, "alarm": state.alarm, "peers": peers_seen,
        })
        self.record["alarm_step"] = self.detector.alarm_step
        comp = self.detector.comparator
        if comp.alarm_state is not None and self.record["arm_alarm"] is None:
            a = comp.alarm_state
            self.record["arm_alarm"] = {"step": a.step, "look": a.look, "source": a.source, "group": a.group,
                                        "statistic": _finite(a.z), "p_value": _finite(a.p_value),
                                        "level": _finite(a.level)}
        if self.detector.alarm_step is not None:
            self.record["would_save"] = max(0, self.budget - int(self.detector.alarm_step))
            self.record["steps_saved"] = (self.detector.steps_saved(self.budget)
                                          if self.detector.action == "stop" else 0)

    def state_dict(self) -> dict:
        return {"fed": [list(x) for x in self._fed], "record": self.record}

    def load_state_dict(self, state: dict) -> None:
        """Replay the evaluations fed before the checkpoint, with the other runs' values each one saw (the
        comparator is deterministic given them)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NegativeTransferWarning)
            for entry in state.get("fed", []):
                step, mean = int(entry[0]), float(entry[1])
                peers = {int(k): list(v) for k, v in (entry[2] if len(entry) > 2 else {}).items()}
                peer_alarm = bool(entry[3]) if len(entry) > 3 else False
                self.detector.comparator.update(step, mean, peers=peers, peer_alarm=peer_alarm)
                self._fed.append([step, mean, {str(k): v for k, v in peers.items()}, peer_alarm])
        self.detector.alarm_step = self.detector.comparator.alarm_step
        self.detector.alarm = self.detector.alarm_step is not None
        self.detector.fallback_requested = self.detector.alarm and self.detector.action == "fallback"
        self.record = dict(state.get("record", self.record))


_SEED_DIR = re.compile(r"seed(\d+)$")


def _siblings(spec: Any, run_dir: Path) -> tuple[list[Path], int]:
    """The arm's run directories in seed order and this run's index (``([], 0)`` when unknown).

    From ``spec.detection.siblings`` when the runner gives it; else from the benchmark's layout
    (``runs/<pair>/<arm>/seed<k>``, the reference being the pair's scratch runs ``.../seed<k>`` of the same
    seeds, in the suite's seed order)."""
    det = spec.detection
    run_dir = Path(run_dir)
    given = getattr(det, "siblings", None)
    if given:
        paths = [Path(p) for p in given]
        resolved = [p.resolve() for p in paths]
        if run_dir.resolve() in resolved:
            return paths, resolved.index(run_dir.resolve())
        return [], 0
    seeds = []
    for ref in det.reference:
        m = _SEED_DIR.fullmatch(Path(ref).name)
        if m is None:
            return [], 0
        seeds.append(int(m.group(1)))
    seed = int(spec.seed)
    if run_dir.name != f"seed{seed}" or seed not in seeds or len(set(seeds)) != len(seeds):
        return [], 0
    return [run_dir.parent / f"seed{s}" for s in seeds], seeds.index(seed)


def detection_hook(spec: object, run_dir: Path) -> DetectionHook:
    """The detection hook of a run spec with a ``detection`` slot (transfer arms of a benchmark).

    Settings read from ``spec.detection.settings`` (missing keys take these defaults): ``rule``
    (``"sequential"``), ``alpha`` (0.05, per arm), ``spending`` (``"pocock"``), ``min_evals`` (3),
    ``margin`` (0, a fraction of the return range), ``window`` (1), ``action`` (``"warn"``); the ``per_look``
    rule also ``confidence`` (0.975) and ``patience`` (4). The arm's runs are ``spec.detection.siblings``
    or, failing that, found from the benchmark's folder layout; when neither is known each run is tested
    alone with Bonferroni over as many runs as there are reference seeds.
    """
    det = spec.detection  # type: ignore[attr-defined]
    settings = dict(det.settings)
    ref_steps, ref_returns = reference_curves(det.reference)
    siblings, index = _siblings(spec, Path(run_dir))
    runs = len(siblings) if siblings else max(1, len(det.reference))
    comparator = CurveComparator(
        ref_steps, ref_returns, min_evals=settings.get("min_evals", 3), margin=settings.get("margin", 0.0),
        task_range=tuple(spec.env.family.return_range),  # type: ignore[attr-defined]
        confidence=settings.get("confidence", 0.975), patience=settings.get("patience", 4),
        window=settings.get("window", 1), rule=settings.get("rule", "sequential"),
        alpha=settings.get("alpha", DEFAULT_ALPHA), spending=settings.get("spending", "pocock"),
        runs=runs, run_index=index, groups=None if siblings else (1,),
    )
    detector = NegativeTransferCallback(comparator, action=settings.get("action", "warn"))
    return DetectionHook(detector, Path(run_dir) / "detection.json", spec.steps, settings,  # type: ignore[attr-defined]
                         siblings=siblings, arm=arm_key(spec))
