"""Synthetic learning-curve families, for validating the statistics of :mod:`rltransfer.statistics`.

A *family* is a distribution of evaluation curves (mean evaluation return at each of ``n_evals``
evaluation steps) for a from-scratch arm and a transfer arm. Each family has a *null* (the arms do not
differ in the sense the family documents) and a *planted effect* of standardized size ``effect``
(``d``, in pooled standard deviations of a named metric, positive = transfer better). The families:

=================  ==========================================================================================
``logistic``       unimodal logistic curves; null: both arms from one distribution; effect: faster learning
                   from the same start (an added speed-up profile), ``d`` on normalized AUC.
``bimodal``        as ``logistic`` but each seed never learns with probability 0.2 (flat near 10); null:
                   one distribution; effect: the speed-up profile, ``d`` on AUC.
``unequal_spread`` the transfer arm's curve deviates from the family's exact mean curve 3x as much as the
                   scratch arm's (every metric's sd is 3x); null: equal *mean* curves (the Behrens-Fisher
                   null); effect: the speed-up profile, ``d`` on AUC with the pooled sd.
``censored``       slow learners with a high threshold: about 77% of runs never reach it (time to threshold
                   is right-censored); null: one distribution; effect: speed-up, ``d`` on AUC.
``crossover``      logistic base; null: one distribution; effect: the transfer starts better and ends
                   worse: jumpstart ``+d`` (initial return) and final performance ``-d``.
``jumpstart``      logistic base; null: one distribution; effect: a higher start that decays to zero by 30%
                   of the budget and leaves the later curve unchanged; ``d`` on the initial return.
=================  ==========================================================================================

Construction. A scratch seed draws an asymptote ``a ~ N(asym_mean, asym_sd)``, a midpoint (fraction of
the evaluated span) ``mu ~ N(mid_mean, mid_sd)`` and a rate ``r = exp(N(log_rate_mean, log_rate_sd))``;
its curve is ``a / (1 + exp(-r (x - mu)))`` plus independent ``N(0, noise_sd)`` evaluation noise at each
of the steps, with ``x = (steps - steps[0]) / (steps[-1] - steps[0])``. A seed that never learns (with
probability ``p_never``) is ``never_level`` plus noise. A transfer seed is drawn the same way, then
moved away from the family's exact mean curve ``m`` by ``spread`` (``m + spread * (c - m)``), then given
the planted effect ``delta * h(x)`` for the family's effect profile ``h``. Returns are *not* clipped to
the return range, so that for the three metrics that are linear in the curve (initial return, normalized
AUC, final performance = mean of the last ``last_k`` evaluations) the null holds exactly and the
planted difference of means is exactly ``delta`` times the metric of ``h``; ``d`` is exact too, since
the metrics' variances are computed by quadrature (:func:`metric_moments`), not estimated.

Notes. ``crossover`` and ``jumpstart`` share ``logistic``'s null (they differ only in the effect). The
effect is added to every transfer seed, the never-learners of ``bimodal`` included; since the bimodal
AUC sd is dominated by the mixture (0.19 against 0.08 for ``logistic``), ``d = 1`` there is a large
curve change and returns may exceed the range.

Shapes: :func:`sample_curves` returns ``shape + (n_evals,)``; :func:`simulate_pairs` returns a
:class:`PairBatch` with ``transfer: (n_pairs, n_t, n_evals)`` and ``scratch: (n_pairs, n_s, n_evals)``;
:func:`batch_metrics` reduces the last axis. Every function is pure and deterministic given
``random_state`` (an ``int`` seed, a ``numpy.random.Generator`` or ``None`` for fresh entropy).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from rltransfer.errors import ConfigError, unknown_name
from rltransfer.statistics import RandomState, as_generator

__all__ = [
    "DEFAULT_STEPS",
    "FAMILIES",
    "LINEAR_METRICS",
    "CurveFamily",
    "PairBatch",
    "batch_metrics",
    "effect_profile",
    "get_family",
    "mean_curve",
    "metric_moments",
    "metric_weights",
    "planted_differences",
    "planted_effects",
    "sample_curves",
    "simulate_pairs",
]

Arm = Literal["transfer", "scratch"]
EffectKind = Literal["speedup", "crossover", "jumpstart"]

#: 26 evaluations over a 100k-step budget, the schedule of the tests (read-only).
DEFAULT_STEPS: np.ndarray = np.arange(0, 100_001, 4000)
DEFAULT_STEPS.setflags(write=False)

#: Metrics that are linear in the curve, so that their planted differences and sds are exact.
LINEAR_METRICS: tuple[str, ...] = ("initial", "auc", "asymptotic")

_START_WIDTH = 0.3  # the start bump u(x) = (1 - x / 0.3)^2 vanishes from 30% of the span on
_DROP_FROM, _DROP_TO = 0.3, 0.7  # the late drop v(x) rises smoothly from 0 at 30% to 1 at 70% of the span
_SPEEDUP_SHIFT = 0.1  # the speed-up profile: mean curve with the midpoint 10% of the span earlier, minus m


@dataclass(frozen=True)
class CurveFamily:
    """One family of synthetic learning curves (see the module docstring for the construction).

    Attributes:
        name: the family's name, a key of :data:`FAMILIES`.
        description: one sentence on what the family models.
        null: what "no effect" means for this family.
        planted: what ``effect = d`` plants.
        effect_kind: ``"speedup"`` (d on AUC), ``"crossover"`` (jumpstart +d, final -d) or
            ``"jumpstart"`` (d on the initial return, later curve unchanged).
        asym_mean, asym_sd: the per-seed asymptote, in return units.
        mid_mean, mid_sd: the per-seed midpoint, as a fraction of the evaluated span.
        log_rate_mean, log_rate_sd: the per-seed log steepness (per unit span).
        noise_sd: independent evaluation noise at every step, in return units.
        p_never: probability that a seed never learns.
        never_level: mean return of a seed that never learns.
        spread: the transfer arm's deviation from the mean curve as a multiple of scratch's.
        low, high: the declared return range (for the normalized AUC).
        threshold: return threshold for time to threshold.
        last_k: evaluations averaged for the final performance.
    """

    name: str
    description: str
    null: str
    planted: str
    effect_kind: EffectKind = "speedup"
    asym_mean: float = 430.0
    asym_sd: float = 40.0
    mid_mean: float = 0.45
    mid_sd: float = 0.08
    log_rate_mean: float = math.log(10.0)
    log_rate_sd: float = 0.25
    noise_sd: float = 20.0
    p_never: float = 0.0
    never_level: float = 10.0
    spread: float = 1.0
    low: float = 0.0
    high: float = 500.0
    threshold: float = 350.0
    last_k: int = 3


_SAME = "both arms are drawn from the same distribution"
FAMILIES: dict[str, CurveFamily] = {
    f.name: f
    for f in (
        CurveFamily(
            "logistic", "unimodal logistic learning curves (asymptote 430 +- 40 of 500, midpoint 0.45 +- 0.08)",
            _SAME, "faster learning: the speed-up profile, d pooled sds of normalized AUC",
        ),
        CurveFamily(
            "bimodal", "logistic curves where one seed in five never learns (flat at 10 of 500)",
            _SAME, "the speed-up profile added to every seed, d pooled sds of normalized AUC",
            p_never=0.2,
        ),
        CurveFamily(
            "unequal_spread", "logistic curves; the transfer arm's seeds vary 3x as much as scratch's",
            "equal mean curves (so equal mean of every linear metric), transfer sd 3x scratch's",
            "the speed-up profile, d pooled sds of normalized AUC (pooled sd = sqrt((9 + 1) / 2) scratch sds)",
            spread=3.0,
        ),
        CurveFamily(
            "censored", "slow learners (midpoint 0.85 +- 0.1) and a threshold of 400: about 77% of runs "
            "never reach it, so time to threshold is mostly censored",
            _SAME, "the speed-up profile, d pooled sds of normalized AUC", mid_mean=0.85, mid_sd=0.1,
            threshold=400.0,
        ),
        CurveFamily(
            "crossover", "logistic base; the transfer starts better and ends worse", _SAME,
            "a start bump of +d sds of the initial return (gone by 30% of the span) and a drop of d sds "
            "of the final performance (from 30% to 70% of the span)", effect_kind="crossover",
        ),
        CurveFamily(
            "jumpstart", "logistic base; the transfer starts higher, the later curve is unchanged", _SAME,
            "a start bump of +d sds of the initial return, (1 - x / 0.3)^2 for x < 0.3, zero after",
            effect_kind="jumpstart",
        ),
    )
}


@dataclass(frozen=True)
class PairBatch:
    """Simulated (transfer, scratch) comparisons from one family.

    Attributes:
        family: the family's name.
        effect: the planted standardized effect ``d`` (0 for the null).
        steps: (n_evals,) evaluation steps.
        transfer: (n_pairs, n_t, n_evals) returns of the transfer arm's seeds.
        scratch: (n_pairs, n_s, n_evals) returns of the scratch arm's seeds.
        low, high: the family's return range.
        threshold: the family's return threshold.
        last_k: evaluations averaged for the final performance.
    """

    family: str
    effect: float
    steps: np.ndarray
    transfer: np.ndarray
    scratch: np.ndarray
    low: float
    high: float
    threshold: float
    last_k: int

    def metrics(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """:func:`batch_metrics` of both arms with the family's range, threshold and ``last_k``.

        Returns:
            ``(transfer, scratch)``, each ``{metric: (n_pairs, n_arm) array}``.
        """
        kw = {"low": self.low, "high": self.high, "threshold": self.threshold, "last_k": self.last_k}
        return batch_metrics(self.steps, self.transfer, **kw), batch_metrics(self.steps, self.scratch, **kw)


# ---------------------------------------------------------------------------------------------
# validation helpers


def get_family(name: str | CurveFamily) -> CurveFamily:
    """The family called ``name`` (a :class:`CurveFamily` is returned as is).

    Raises:
        UnknownNameError: no such family (the message lists the valid names).
    """
    if isinstance(name, CurveFamily):
        return name
    if name not in FAMILIES:
        raise unknown_name("curve family", str(name), FAMILIES, "rltransfer.synthetic.FAMILIES")
    return FAMILIES[name]


def _steps(steps: ArrayLike | None) -> np.ndarray:
    s = DEFAULT_STEPS if steps is None else np.asarray(steps, dtype=float)
    s = np.asarray(s, dtype=float)
    if s.ndim != 1 or s.size < 2:
        raise ConfigError(f"steps must be a 1-D array of at least 2 evaluation steps, got shape {s.shape}")
    if not np.all(np.isfinite(s)) or np.any(s < 0) or np.any(np.diff(s) <= 0):
        raise ConfigError(f"steps must be finite, non-negative and strictly increasing, got {s.tolist()}")
    return s


def _count(value: int, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _effect(effect: float) -> float:
    e = float(effect)
    if not math.isfinite(e):
        raise ConfigError(f"effect must be a finite standardized effect size d, got {effect!r}")
    return e


def _span(steps: np.ndarray) -> np.ndarray:
    return (steps - steps[0]) / (steps[-1] - steps[0])


# ---------------------------------------------------------------------------------------------
# exact moments by Gauss-Hermite quadrature over the midpoint and the log rate

_GH_NODES = 48


@lru_cache(maxsize=64)
def _shape_moments(
    mid_mean: float, mid_sd: float, lr_mean: float, lr_sd: float, x: tuple[float, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Quadrature nodes: ``g: (n_nodes, n_evals)`` logistic shapes and ``w: (n_nodes,)`` weights."""
    z, w = np.polynomial.hermite.hermgauss(_GH_NODES)
    w = w / math.sqrt(math.pi)
    mu = mid_mean + math.sqrt(2.0) * mid_sd * z
    rate = np.exp(lr_mean + math.sqrt(2.0) * lr_sd * z)
    xs = np.asarray(x)
    g = 1.0 / (1.0 + np.exp(-rate[None, :, None] * (xs[None, None, :] - mu[:, None, None])))
    ww = (w[:, None] * w[None, :]).ravel()
    return g.reshape(-1, xs.size), ww


def _shapes(fam: CurveFamily, steps: np.ndarray, mid_shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    x = tuple(float(v) for v in _span(steps))
    return _shape_moments(fam.mid_mean + mid_shift, fam.mid_sd, fam.log_rate_mean, fam.log_rate_sd, x)


def mean_curve(family: str | CurveFamily, steps: ArrayLike | None = None) -> np.ndarray:
    """The family's exact mean scratch curve (noise has mean 0), by quadrature.

    Args:
        family: a family name or :class:`CurveFamily`.
        steps: (n_evals,) evaluation steps; default :data:`DEFAULT_STEPS`.

    Returns:
        (n_evals,) ``E[return]`` at each step.
    """
    fam = get_family(family)
    s = _steps(steps)
    g, w = _shapes(fam, s)
    learner = fam.asym_mean * (w @ g)
    return (1.0 - fam.p_never) * learner + fam.p_never * fam.never_level


def metric_weights(metric: str, steps: ArrayLike | None = None, *, low: float = 0.0, high: float = 500.0,
                   last_k: int = 3) -> tuple[np.ndarray, float]:
    """A linear metric as ``weights @ returns + offset`` over one curve.

    Args:
        metric: ``"initial"``, ``"auc"`` (normalized by ``[low, high]``, as
            :func:`rltransfer.metrics.area_under_curve`) or ``"asymptotic"`` (mean of the last ``last_k``).
        steps: (n_evals,) evaluation steps; default :data:`DEFAULT_STEPS`.
        low, high: the return range for the AUC.
        last_k: evaluations averaged by ``"asymptotic"``.

    Returns:
        ``(weights: (n_evals,), offset)``.
    """
    s = _steps(steps)
    n = s.size
    if metric == "initial":
        w = np.zeros(n)
        w[0] = 1.0
        return w, 0.0
    if metric == "asymptotic":
        k = min(_count(last_k, "last_k"), n)
        w = np.zeros(n)
        w[n - k:] = 1.0 / k
        return w, 0.0
    if metric == "auc":
        lo, hi = float(low), float(high)
        if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
            raise ConfigError(f"the return range needs finite low < high, got low={low!r}, high={high!r}")
        dx = np.diff(s) / (s[-1] - s[0]) / (hi - lo)
        w = np.zeros(n)
        w[:-1] += dx / 2.0
        w[1:] += dx / 2.0
        return w, -lo / (hi - lo)
    raise unknown_name("linear metric", str(metric), LINEAR_METRICS)


def metric_moments(family: str | CurveFamily, metric: str, steps: ArrayLike | None = None,
                   arm: Arm = "scratch") -> tuple[float, float]:
    """Exact mean and standard deviation of a linear metric over one seed of a family's null arm.

    Computed by Gauss-Hermite quadrature over the midpoint and log rate (48 x 48 nodes), with the
    asymptote, the never-learns mixture and the noise handled in closed form. ``arm="transfer"``
    multiplies the sd by the family's ``spread`` (the mean is the same; no effect planted).

    Args:
        family: a family name or :class:`CurveFamily`.
        metric: one of :data:`LINEAR_METRICS`.
        steps: (n_evals,) evaluation steps; default :data:`DEFAULT_STEPS`.
        arm: ``"scratch"`` or ``"transfer"``.

    Returns:
        ``(mean, sd)`` in the metric's units.
    """
    fam = get_family(family)
    s = _steps(steps)
    w, offset = metric_weights(metric, s, low=fam.low, high=fam.high, last_k=fam.last_k)
    g, q = _shapes(fam, s)
    big_g = g @ w  # (nodes,) the metric of each noiseless unit-asymptote shape
    eg, eg2 = float(q @ big_g), float(q @ big_g**2)
    p, n0, wsum = fam.p_never, fam.never_level, float(w.sum())
    ea2 = fam.asym_mean**2 + fam.asym_sd**2
    mean = (1 - p) * fam.asym_mean * eg + p * n0 * wsum
    second = (1 - p) * ea2 * eg2 + p * (n0 * wsum) ** 2
    var = second - mean**2 + fam.noise_sd**2 * float(w @ w)
    if arm not in ("scratch", "transfer"):
        raise ConfigError(f"arm must be 'transfer' or 'scratch', got {arm!r}")
    sd = math.sqrt(max(var, 0.0)) * (fam.spread if arm == "transfer" else 1.0)
    return mean + offset, sd


def _pooled_sd(fam: CurveFamily, metric: str, steps: np.ndarray) -> float:
    _, sd = metric_moments(fam, metric, steps)
    return sd * math.sqrt((1.0 + fam.spread**2) / 2.0)


def _unit_profiles(fam: CurveFamily, steps: np.ndarray) -> dict[str, np.ndarray]:
    x = _span(steps)
    g, w = _shapes(fam, steps)
    gf, _ = _shapes(fam, steps, -_SPEEDUP_SHIFT)
    start = np.where(x < _START_WIDTH, (1.0 - x / _START_WIDTH) ** 2, 0.0)
    speed = fam.asym_mean * (w @ gf - w @ g)
    speed = speed - speed[0] * start  # a speed-up from the same start: the initial return is unchanged
    t = np.clip((x - _DROP_FROM) / (_DROP_TO - _DROP_FROM), 0.0, 1.0)
    drop = t * t * (3.0 - 2.0 * t)
    return {"speedup": speed, "start": start, "drop": drop}


def effect_profile(family: str | CurveFamily, effect: float, steps: ArrayLike | None = None) -> np.ndarray:
    """The curve ``delta * h`` that :func:`simulate_pairs` adds to every transfer seed for ``effect = d``.

    * ``speedup``: ``h`` = the mean curve with the midpoint ``0.1`` of the span earlier minus the mean
      curve, less its value at ``x = 0`` faded out by 30% of the span (so the initial return is
      unchanged: a faster learner from the same start), scaled so that the normalized-AUC difference
      of means is ``d`` pooled sds.
    * ``jumpstart``: ``h = (1 - x / 0.3)^2`` for ``x < 0.3`` and 0 after, scaled so the initial return
      rises by ``d`` pooled sds; the last 70% of the curve is unchanged.
    * ``crossover``: the same start bump (``+d`` sds of the initial return) minus a smooth drop from
      0 at ``x = 0.3`` to ``d`` sds of the final performance from ``x = 0.7`` on.

    Args:
        family: a family name or :class:`CurveFamily`.
        effect: the standardized effect ``d`` (positive = transfer better; for ``crossover`` positive
            means a better start and a worse end).
        steps: (n_evals,) evaluation steps; default :data:`DEFAULT_STEPS`.

    Returns:
        (n_evals,) returns added to each transfer seed (zeros when ``effect == 0``).
    """
    fam = get_family(family)
    s = _steps(steps)
    d = _effect(effect)
    prof = _unit_profiles(fam, s)
    if d == 0.0:
        return np.zeros(s.size)
    if fam.effect_kind == "speedup":
        w, _ = metric_weights("auc", s, low=fam.low, high=fam.high)
        unit = float(w @ prof["speedup"])
        return d * _pooled_sd(fam, "auc", s) / unit * prof["speedup"]
    jump = d * _pooled_sd(fam, "initial", s) * prof["start"]
    if fam.effect_kind == "jumpstart":
        return jump
    wf, _ = metric_weights("asymptotic", s, last_k=fam.last_k)
    drop_unit = float(wf @ prof["drop"])
    return jump - d * _pooled_sd(fam, "asymptotic", s) / drop_unit * prof["drop"]


def planted_differences(family: str | CurveFamily, effect: float,
                        steps: ArrayLike | None = None) -> dict[str, float]:
    """Exact planted difference of means, transfer minus scratch, of each linear metric.

    Args:
        family: a family name or :class:`CurveFamily`.
        effect: the standardized effect ``d``.
        steps: (n_evals,) evaluation steps; default :data:`DEFAULT_STEPS`.

    Returns:
        ``{"initial", "auc", "asymptotic"}`` in the metrics' units (AUC normalized).
    """
    fam = get_family(family)
    s = _steps(steps)
    h = effect_profile(fam, effect, s)
    out = {}
    for m in LINEAR_METRICS:
        w, _ = metric_weights(m, s, low=fam.low, high=fam.high, last_k=fam.last_k)
        out[m] = float(w @ h)
    return out


def planted_effects(family: str | CurveFamily, effect: float, steps: ArrayLike | None = None) -> dict[str, float]:
    """Exact standardized planted effect (difference of means over the pooled sd) of each linear metric.

    For ``logistic`` with ``effect=2`` the ``"auc"`` entry is 2.0; the others show what the same curve
    change does to the other metrics (e.g. a ``jumpstart`` family's AUC effect, its final effect 0).

    Args:
        family: a family name or :class:`CurveFamily`.
        effect: the standardized effect ``d``.
        steps: (n_evals,) evaluation steps; default :data:`DEFAULT_STEPS`.

    Returns:
        ``{"initial", "auc", "asymptotic"}`` standardized effects.
    """
    fam = get_family(family)
    s = _steps(steps)
    diffs = planted_differences(fam, effect, s)
    return {m: diffs[m] / _pooled_sd(fam, m, s) for m in LINEAR_METRICS}


# ---------------------------------------------------------------------------------------------
# sampling


def sample_curves(
    family: str | CurveFamily,
    shape: tuple[int, ...],
    *,
    arm: Arm = "scratch",
    effect: float = 0.0,
    steps: ArrayLike | None = None,
    random_state: RandomState = 0,
) -> np.ndarray:
    """Draw evaluation curves of one arm of a family.

    Draw order (fixed, so results are reproducible): asymptotes, midpoints, log rates, never-learns
    uniforms, then the evaluation noise, each of ``shape`` (noise ``shape + (n_evals,)``).

    Args:
        family: a family name or :class:`CurveFamily`.
        shape: leading shape, e.g. ``(n_pairs, n_seeds)`` or ``(n_runs,)``.
        arm: ``"scratch"`` (the family's base distribution) or ``"transfer"`` (spread and effect applied).
        effect: standardized planted effect ``d`` (used only for ``arm="transfer"``).
        steps: (n_evals,) evaluation steps; default :data:`DEFAULT_STEPS`.
        random_state: seed or generator.

    Returns:
        ``shape + (n_evals,)`` returns (not clipped to the return range).
    """
    fam = get_family(family)
    s = _steps(steps)
    d = _effect(effect)
    if arm not in ("scratch", "transfer"):
        raise ConfigError(f"arm must be 'transfer' or 'scratch', got {arm!r}")
    shp = tuple(_count(k, "each entry of shape", 0) for k in tuple(shape))
    rng = as_generator(random_state)
    x = _span(s)
    asym = rng.normal(fam.asym_mean, fam.asym_sd, shp)
    mid = rng.normal(fam.mid_mean, fam.mid_sd, shp)
    rate = np.exp(rng.normal(fam.log_rate_mean, fam.log_rate_sd, shp))
    never = rng.random(shp) < fam.p_never
    noise = rng.normal(0.0, fam.noise_sd, shp + (s.size,))
    curves = asym[..., None] / (1.0 + np.exp(-rate[..., None] * (x - mid[..., None])))
    curves = np.where(never[..., None], fam.never_level, curves) + noise
    if arm == "transfer":
        if fam.spread != 1.0:
            m = mean_curve(fam, s)
            curves = m + fam.spread * (curves - m)
        if d != 0.0:
            curves = curves + effect_profile(fam, d, s)
    return curves


def simulate_pairs(
    family: str | CurveFamily,
    n_pairs: int,
    n_seeds: int | tuple[int, int],
    *,
    effect: float = 0.0,
    steps: ArrayLike | None = None,
    random_state: RandomState = 0,
) -> PairBatch:
    """Simulate ``n_pairs`` independent (transfer, scratch) comparisons from a family.

    The transfer arm is drawn first, then the scratch arm, from one generator.

    Args:
        family: a family name or :class:`CurveFamily`.
        n_pairs: number of comparisons.
        n_seeds: seeds per arm, or ``(n_t, n_s)``.
        effect: standardized planted effect ``d`` (0: the family's null).
        steps: (n_evals,) evaluation steps; default :data:`DEFAULT_STEPS`.
        random_state: seed or generator.

    Returns:
        A :class:`PairBatch` with ``transfer: (n_pairs, n_t, n_evals)``, ``scratch: (n_pairs, n_s, n_evals)``.
    """
    fam = get_family(family)
    s = _steps(steps)
    n = _count(n_pairs, "n_pairs")
    if isinstance(n_seeds, tuple):
        if len(n_seeds) != 2:
            raise ConfigError(f"n_seeds must be an integer or a pair (n_t, n_s), got {n_seeds!r}")
        n_t, n_s = (_count(k, "n_seeds") for k in n_seeds)
    else:
        n_t = n_s = _count(n_seeds, "n_seeds")
    rng = as_generator(random_state)
    transfer = sample_curves(fam, (n, n_t), arm="transfer", effect=effect, steps=s, random_state=rng)
    scratch = sample_curves(fam, (n, n_s), arm="scratch", steps=s, random_state=rng)
    s_ro = s.copy()
    s_ro.setflags(write=False)
    return PairBatch(fam.name, _effect(effect), s_ro, transfer, scratch, fam.low, fam.high, fam.threshold,
                     fam.last_k)


# ---------------------------------------------------------------------------------------------
# batch metrics


def batch_metrics(
    steps: ArrayLike,
    curves: ArrayLike,
    *,
    low: float,
    high: float,
    threshold: float,
    last_k: int = 3,
) -> dict[str, np.ndarray]:
    """The per-run metrics of :func:`rltransfer.metrics.run_metrics`, vectorized over leading axes.

    Same definitions: ``initial`` = first return; ``asymptotic`` (final performance) = mean of the last
    ``last_k`` returns; ``auc`` = trapezoid area of ``(returns - low) / (high - low)`` over the
    evaluated span divided by the span; ``time_to_threshold`` = first step whose return is
    ``>= threshold``, or the last step with ``ttt_censored`` true when none is.

    Args:
        steps: (n_evals,) evaluation steps, strictly increasing.
        curves: (..., n_evals) returns, finite.
        low, high: the declared return range.
        threshold: return threshold.
        last_k: evaluations averaged for ``asymptotic``.

    Returns:
        ``{"initial", "asymptotic", "auc", "time_to_threshold": float arrays, "ttt_censored": bool array}``,
        each of shape ``curves.shape[:-1]``.
    """
    s = _steps(steps)
    c = np.asarray(curves, dtype=float)
    if c.ndim < 1 or c.shape[-1] != s.size:
        raise ConfigError(f"curves must have shape (..., n_evals) with n_evals={s.size}, got {c.shape}")
    if not np.all(np.isfinite(c)):
        raise ConfigError("curves must be finite")
    thr = float(threshold)
    if not math.isfinite(thr):
        raise ConfigError(f"threshold must be a finite return, got {threshold!r}")
    w, offset = metric_weights("auc", s, low=low, high=high)
    k = min(_count(last_k, "last_k"), s.size)
    hit = c >= thr
    reached = hit.any(axis=-1)
    first = np.argmax(hit, axis=-1)
    return {
        "initial": c[..., 0].copy(),
        "asymptotic": c[..., -k:].mean(axis=-1),
        "auc": c @ w + offset,
        "time_to_threshold": np.where(reached, s[first], s[-1]),
        "ttt_censored": ~reached,
    }
