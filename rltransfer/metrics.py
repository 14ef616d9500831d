"""Per-run transfer metrics (Taylor & Stone, 2009) as pure functions over one evaluation curve.

An *evaluation curve* is what an evaluation callback records during one training run:

* ``steps: (n_evals,)`` environment steps at which the policy was evaluated, integers, strictly
  increasing (the first may be 0, i.e. an evaluation before any training);
* ``returns: (n_evals,)`` the mean evaluation return at each of those steps.

Every function here takes one run and returns plain floats; comparing a transfer arm with a
from-scratch arm over seeds is the job of :mod:`rltransfer.statistics`. The functions import only
numpy, validate their inputs and raise :class:`~rltransfer.errors.ConfigError` naming the parameter
and the bad value.

The metrics, after Taylor & Stone, "Transfer Learning for Reinforcement Learning Domains: A Survey"
(JMLR 2009), section 2.1:

* **jumpstart** -- initial performance of transfer minus initial performance of scratch;
* **asymptotic performance** -- performance at the end of training (mean of the last evaluations);
* **area under the curve** (total reward) -- normalized so that tasks with different return scales
  are comparable; the *transfer ratio* compares the two arms' areas;
* **time to threshold** -- steps needed to reach a return threshold (lower is better), with runs
  that never reach it reported as *censored*.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from rltransfer.errors import ConfigError

__all__ = [
    "area_under_curve",
    "asymptotic_performance",
    "initial_performance",
    "jumpstart",
    "run_metrics",
    "time_to_threshold",
    "transfer_ratio",
]


def _short(values: np.ndarray, limit: int = 8) -> str:
    """Render an array for an error message, eliding the middle of long arrays."""
    flat = np.asarray(values).ravel()
    if flat.size <= limit:
        return np.array2string(flat, separator=", ")
    head = ", ".join(repr(v) for v in flat[: limit // 2].tolist())
    tail = ", ".join(repr(v) for v in flat[-(limit // 2) :].tolist())
    return f"[{head}, ..., {tail}] ({flat.size} values)"


def _as_returns(returns: ArrayLike, name: str = "returns") -> np.ndarray:
    """Validate a ``(n_evals,)`` array of finite returns and return it as float64."""
    arr = np.asarray(returns, dtype=float)
    if arr.ndim != 1:
        raise ConfigError(f"{name} must be a 1-D array of shape (n_evals,), got shape {arr.shape}")
    if arr.size == 0:
        raise ConfigError(f"{name} is empty: an evaluation curve needs at least one evaluation")
    if not np.all(np.isfinite(arr)):
        raise ConfigError(f"{name} must be finite, got {_short(arr)}")
    return arr


def _as_curve(steps: ArrayLike, returns: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Validate an evaluation curve; return ``(steps, returns)`` as float64 arrays.

    Raises:
        ConfigError: shapes are not ``(n_evals,)`` and equal, the curve is empty, steps are negative,
            not whole numbers or not strictly increasing, or a return is not finite.
    """
    s = np.asarray(steps, dtype=float)
    if s.ndim != 1:
        raise ConfigError(f"steps must be a 1-D array of shape (n_evals,), got shape {s.shape}")
    r = _as_returns(returns)
    if s.shape != r.shape:
        raise ConfigError(
            f"steps and returns must have the same length, got steps: {s.shape[0]} values, "
            f"returns: {r.shape[0]} values"
        )
    if not np.all(np.isfinite(s)) or np.any(s != np.round(s)) or np.any(s < 0):
        raise ConfigError(f"steps must be non-negative integers, got {_short(s)}")
    if s.size > 1:
        bad = np.flatnonzero(np.diff(s) <= 0)
        if bad.size:
            i = int(bad[0])
            raise ConfigError(
                f"steps must be strictly increasing, got steps[{i}]={s[i]:g} "
                f"then steps[{i + 1}]={s[i + 1]:g} "
                f"in {_short(s)}"
            )
    return s, r


def _check_range(low: float, high: float) -> tuple[float, float]:
    lo, hi = float(low), float(high)
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        raise ConfigError(f"the return range needs finite low < high, got low={low!r}, high={high!r}")
    return lo, hi


def initial_performance(steps: ArrayLike, returns: ArrayLike) -> float:
    """Return at the first evaluation of a run.

    This is the per-run ingredient of the jumpstart. It is only an *initial* performance if the
    first evaluation happens before (or very early in) training; evaluate at step 0 to get the
    performance of the transferred policy before any learning.

    Args:
        steps: (n_evals,) evaluation steps, strictly increasing.
        returns: (n_evals,) mean evaluation return at each step.

    Returns:
        ``returns[0]``.
    """
    _, r = _as_curve(steps, returns)
    return float(r[0])


def jumpstart(returns_transfer0: ArrayLike, returns_scratch0: ArrayLike) -> float:
    """Jumpstart: mean initial performance of the transfer arm minus that of the scratch arm.

    Args:
        returns_transfer0: scalar or (n_t,) initial performance of each transfer seed
            (see :func:`initial_performance`).
        returns_scratch0: scalar or (n_s,) initial performance of each scratch seed.

    Returns:
        ``mean(returns_transfer0) - mean(returns_scratch0)``; positive means transfer starts better.
        For an interval over seeds use :func:`rltransfer.statistics.bootstrap_ci_diff` on the same
        arrays.
    """
    t = _as_returns(np.atleast_1d(np.asarray(returns_transfer0, dtype=float)), "returns_transfer0")
    s = _as_returns(np.atleast_1d(np.asarray(returns_scratch0, dtype=float)), "returns_scratch0")
    return float(t.mean() - s.mean())


def asymptotic_performance(returns: ArrayLike, last_k: int = 3) -> float:
    """Asymptotic performance: mean return of the last ``last_k`` evaluations.

    Averaging a few final evaluations smooths the evaluation noise of a single one. If the curve has
    fewer than ``last_k`` evaluations, all of them are averaged.

    Args:
        returns: (n_evals,) mean evaluation return at each evaluation, in step order.
        last_k: number of final evaluations to average, at least 1.

    Returns:
        ``mean(returns[-last_k:])``.
    """
    r = _as_returns(returns)
    if isinstance(last_k, bool) or not isinstance(last_k, (int, np.integer)) or last_k < 1:
        raise ConfigError(f"last_k must be an integer >= 1, got {last_k!r}")
    return float(r[-int(last_k) :].mean())


def area_under_curve(steps: ArrayLike, returns: ArrayLike, low: float, high: float) -> float:
    """Normalized area under the evaluation curve (Taylor & Stone's "total reward").

    The curve is shifted by ``low`` and integrated with the trapezoid rule between the first and the
    last evaluation, then divided by ``(steps[-1] - steps[0]) * (high - low)``::

        auc = trapz(returns - low, steps) / ((steps[-1] - steps[0]) * (high - low))

    So the result is the *time-averaged normalized return* over the evaluated span: a run that sits
    at ``low`` throughout scores 0, one that sits at ``high`` throughout scores 1, and a straight
    line from ``low`` to ``high`` scores 0.5. With evaluations from step 0 to the training budget the
    denominator is the budget times the return range. Values are not clipped: returns outside
    ``[low, high]`` give values outside ``[0, 1]``, which is a sign that the range is wrong.

    Two runs are only comparable if they were evaluated over the same span (same first and last
    evaluation step); the suite's shared evaluation schedule guarantees that. Normalizing by the
    span rather than by the last step makes the value independent of whether an evaluation at step 0
    was made, at the cost of not counting the stretch before the first evaluation.

    A curve with a single evaluation has no span; its area is defined as that evaluation's
    normalized return ``(returns[0] - low) / (high - low)`` (the limit of the formula).

    Args:
        steps: (n_evals,) evaluation steps, strictly increasing.
        returns: (n_evals,) mean evaluation return at each step.
        low: lowest return of the task (e.g. 0 for CartPole-v1), given by the suite.
        high: highest (or target) return of the task (e.g. 500 for CartPole-v1); ``high > low``.

    Returns:
        The normalized area, a float (in ``[0, 1]`` when all returns lie in ``[low, high]``).
    """
    s, r = _as_curve(steps, returns)
    lo, hi = _check_range(low, high)
    y = (r - lo) / (hi - lo)
    if s.size == 1:
        return float(y[0])
    area = float(np.sum(np.diff(s) * (y[1:] + y[:-1]) * 0.5))
    return area / float(s[-1] - s[0])


def time_to_threshold(steps: ArrayLike, returns: ArrayLike, threshold: float) -> tuple[float, bool]:
    """Time to threshold: the first evaluation step at which the return reaches ``threshold``.

    Definition: the smallest ``steps[i]`` with ``returns[i] >= threshold``. There is no interpolation
    between evaluations, so the value is only as fine as the evaluation schedule (the true crossing
    lies between the previous evaluation and this one). Lower is better.

    If no evaluation reaches the threshold the run is *right-censored*: the true time is unknown but
    larger than the last evaluation step, so ``(steps[-1], True)`` is returned -- a lower bound, not
    a measurement. Use the flag: :mod:`rltransfer.statistics` treats censored values as the budget.

    Args:
        steps: (n_evals,) evaluation steps, strictly increasing.
        returns: (n_evals,) mean evaluation return at each step.
        threshold: return that counts as "solved" (finite).

    Returns:
        ``(value, censored)``: the step as a float and whether the threshold was never reached.
    """
    s, r = _as_curve(steps, returns)
    thr = float(threshold)
    if not math.isfinite(thr):
        raise ConfigError(f"threshold must be a finite return, got {threshold!r}")
    hit = np.flatnonzero(r >= thr)
    if hit.size == 0:
        return float(s[-1]), True
    return float(s[hit[0]]), False


def transfer_ratio(auc_transfer: float, auc_scratch: float, eps: float = 1e-8) -> float:
    """Transfer ratio: relative gain in area under the curve, ``(auc_t - auc_s) / auc_s``.

    Guard: when ``|auc_s| < eps`` the ratio is undefined (division by a scratch area of about zero
    would produce an arbitrarily large number), and ``nan`` is returned. This happens when the
    scratch arm never leaves the bottom of the return range; report the absolute difference
    ``auc_t - auc_s`` instead. The ratio also assumes ``auc_s > 0``, which holds for areas from
    :func:`area_under_curve` whenever returns stay above ``low``.

    Args:
        auc_transfer: normalized area of the transfer arm (usually the mean over seeds).
        auc_scratch: normalized area of the scratch arm.
        eps: areas with absolute value below this count as zero.

    Returns:
        The ratio (0 means no gain, 0.5 means 50% more area), or ``nan`` under the guard.
    """
    t, s = float(auc_transfer), float(auc_scratch)
    if not (math.isfinite(t) and math.isfinite(s)):
        raise ConfigError(
            f"areas must be finite, got auc_transfer={auc_transfer!r}, auc_scratch={auc_scratch!r}"
        )
    if abs(s) < eps:
        return math.nan
    return (t - s) / s


def run_metrics(
    steps: ArrayLike,
    returns: ArrayLike,
    threshold: float,
    low: float,
    high: float,
    last_k: int = 3,
) -> dict[str, float]:
    """All per-run metrics of one evaluation curve.

    Args:
        steps: (n_evals,) evaluation steps, strictly increasing.
        returns: (n_evals,) mean evaluation return at each step.
        threshold: return threshold for :func:`time_to_threshold`.
        low: lowest return of the task, for :func:`area_under_curve`.
        high: highest return of the task, for :func:`area_under_curve`.
        last_k: evaluations averaged by :func:`asymptotic_performance`.

    Returns:
        ``{"initial", "asymptotic", "auc", "time_to_threshold", "ttt_censored"}``, all floats;
        ``ttt_censored`` is 1.0 when the threshold was never reached and 0.0 otherwise.
    """
    s, r = _as_curve(steps, returns)
    ttt, censored = time_to_threshold(s, r, threshold)
    return {
        "initial": initial_performance(s, r),
        "asymptotic": asymptotic_performance(r, last_k),
        "auc": area_under_curve(s, r, low, high),
        "time_to_threshold": ttt,
        "ttt_censored": 1.0 if censored else 0.0,
    }
