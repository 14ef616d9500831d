"""Seeds added until decided: a group-sequential design for the arm-versus-scratch verdicts.

A comparison (one transfer or curriculum arm against scratch on one pair) is looked at after ``looks[0]``
seeds per arm, then after every further round of seeds, up to ``looks[-1]`` (the suite's seeds). At each
look the primary metric (normalized AUC) is tested with the verdict's own test (Welch t, Hsu's df
``min(n_t, n_s) - 1``, :func:`rltransfer.statistics.welch_test`) on the first ``n`` seeds of each arm, and the
comparison stops (gets no more seeds) as soon as its two-sided p-value falls below the look's *nominal
level*. Looking after every round and stopping at will would inflate the error (at 3/5/7/8 seeds and a
fixed 5% level at every look, up to 9% instead of 5% on the synthetic families); the nominal levels come
from an alpha-spending function over the planned looks (Lan & DeMets 1983), so that the chance of a false
verdict over *all* looks together is at most ``alpha``:

* ``obrien-fleming`` (default): ``alpha(t) = 2 - 2 Phi(z_{1 - alpha/2} / sqrt(t))``, with ``t = n / n_max``
  the information fraction. Spends almost nothing early (p < 0.0014 at 3 of 8 seeds) and keeps most of
  ``alpha`` for the late looks (p < 0.031 at 7 and < 0.037 at 8 with looks 3/5/7/8), so the power at the
  maximum is close to the fixed design's; stops early only on very clear comparisons.
* ``pocock``: ``alpha(t) = alpha * ln(1 + (e - 1) t)``: spends evenly, stops earlier, and pays for it at
  the last look.
* ``bonferroni``: ``alpha / K`` at every one of the ``K`` looks: valid by the union bound whatever the joint
  distribution of the looks' tests; the least powerful.

The boundaries are computed for the z statistics of the planned information fractions by recursive
numerical integration (Armitage, McPherson & Rowe 1969; Jennison & Turnbull 2000, ch. 19) and applied to
the t tests' p-values at the same nominal levels (the "significance level approach", Jennison & Turnbull
section 3.8): at 3 seeds per arm a z boundary would be far too liberal for a t statistic with 2 df.

Several comparisons in a suite: Holm's procedure on the group-sequential tests (the graphical approach of
Maurer & Bretz 2013 with Holm's weights). Every undecided comparison is tested at ``alpha / k`` (``k`` the
number undecided); when one is decided, its share of ``alpha`` goes to the others, which are tested again
at all their looks so far with the boundaries of the larger level. The family-wise error is at most
``alpha``, as with Holm on the fixed design (:func:`rltransfer.statistics.judge_suite`).

Rounds. The runner (:func:`rltransfer.benchmark.run_suite` with ``until_decided``) gives every undecided
comparison one more look per round and waits for all the runs of a round before deciding (through Holm,
the decisions of a round depend on every comparison), so which runs are made depends on the runs'
results only, never on their timing: :func:`replay` recomputes the rounds from whatever runs are stored,
and a rerun continues exactly where the last one stopped.

Measured on the synthetic curve families (``tests/test_seeds.py``, 8000 null comparisons per family and
schedule): total false verdicts (either sign) under this optional stopping, looks 3/5/7/8: 2.4-4.2% with
O'Brien-Fleming-type spending (upper 95% Clopper-Pearson bound at most 4.6%), 1.5-3.2% Pocock-type, 0.8-1.9%
Bonferroni, against 2.9-4.1% for the fixed verdict at 8 seeds and 5.2-9.1% when every look is held to 5%;
looks 3/5/7/9/11: 3.1-4.6% (bound at most 5.0%), 2.0-3.6%, 0.9-1.8%; fixed at 11 seeds 3.4-4.7%, every look
at 5% 8.0-11.2%. Power on the logistic family, looks 3/5/7/8 (4000 comparisons): at d = 2 pooled sds 92%
with 6.7 seeds per arm on average (fixed 8 seeds: 94%; Pocock 82% with 6.4), at d = 3 99.9% with 5.7 (Pocock
99.6% with 5.1). With Hsu's df a 3-seed look has 2 degrees of freedom, so O'Brien-Fleming-type spending
(p < 0.0014 there) almost never stops at the first look; Pocock-type stops there on very clear comparisons
and pays for it at the last look.

Everything here is a pure function of arrays (per-seed values in the order seeds are added, ``nan`` for a
run not made yet), except :func:`design_of`, :func:`comparison_data` and :func:`suite_state`, which read a
suite's settings and its runs' records.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import numpy as np
from numpy.typing import ArrayLike
from scipy import optimize, stats

from rltransfer.errors import ConfigError, unknown_name

if TYPE_CHECKING:
    from rltransfer.suite import Suite

__all__ = [
    "SEQUENTIAL_FILE",
    "SPENDING",
    "Decision",
    "LookResult",
    "SequentialDesign",
    "SequentialState",
    "alpha_spent",
    "comparison_data",
    "crossing_probabilities",
    "design_of",
    "look_sizes",
    "look_tests",
    "nominal_levels",
    "replay",
    "replay_labels",
    "suite_state",
    "z_boundaries",
]

K = TypeVar("K", bound=Hashable)
Spending = Literal["obrien-fleming", "pocock", "bonferroni"]
SequentialLabel = Literal["positive", "negative", "continue", "inconclusive"]

#: The alpha-spending functions, by name.
SPENDING: tuple[str, ...] = ("obrien-fleming", "pocock", "bonferroni")
#: In a benchmark folder run until decided: the design, every comparison's looks and decision, the run counts.
SEQUENTIAL_FILE = "sequential.json"

_NAMES = {"obrien-fleming": "O'Brien-Fleming-type", "pocock": "Pocock-type", "bonferroni": "Bonferroni"}
_NODES = 1201  # Simpson nodes of the recursive integration (odd); boundaries accurate to about 1e-6
_CAP = 12.0  # the continuation region is cut at 12 sds: the mass beyond is below 1e-32


# ---------------------------------------------------------------------------------------------
# the design


def _check_spending(spending: str) -> str:
    if spending not in SPENDING:
        raise unknown_name("alpha-spending function", str(spending), SPENDING)
    return spending


def _check_alpha(alpha: float) -> float:
    a = float(alpha)
    if not 0.0 < a < 1.0:
        raise ConfigError(f"alpha must be in (0, 1), got {alpha!r}")
    return a


def _count(value: int, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_looks(looks: Sequence[int]) -> tuple[int, ...]:
    sizes = tuple(_count(n, "every look's seeds per arm", 2) for n in looks)
    if not sizes or any(b <= a for a, b in itertools.pairwise(sizes)):
        raise ConfigError(
            f"looks must be a non-empty, strictly increasing list of seeds per arm (>= 2), got {list(looks)}")
    return sizes


def look_sizes(first: int, round: int, max_seeds: int) -> tuple[int, ...]:
    """Seeds per arm at each look: ``first``, ``first + round``, ... and ``max_seeds`` last.

    ``look_sizes(3, 2, 8) == (3, 5, 7, 8)``; ``look_sizes(8, 2, 8) == (8,)`` (the fixed design).

    Raises:
        ConfigError: ``first < 2``, ``round < 1`` or ``max_seeds < first``.
    """
    f = _count(first, "first", 2)
    r = _count(round, "round", 1)
    m = _count(max_seeds, "max_seeds", 2)
    if m < f:
        raise ConfigError(f"max_seeds ({m}) must be at least the first look's seeds ({f})")
    return (*range(f, m, r), m)


def alpha_spent(fractions: ArrayLike, alpha: float = 0.05, spending: Spending = "obrien-fleming") -> np.ndarray:
    """Cumulative two-sided error spent by information fraction ``t`` (``(K,)`` fractions in (0, 1]).

    ``obrien-fleming``: ``2 - 2 Phi(z_{1 - alpha/2} / sqrt(t))``; ``pocock``: ``alpha ln(1 + (e - 1) t)``;
    ``bonferroni``: ``alpha k / K`` at the ``k``-th of ``K`` looks. All reach ``alpha`` at ``t = 1``.
    """
    t = np.asarray(fractions, dtype=float)
    a = _check_alpha(alpha)
    if t.ndim != 1 or not np.all((t > 0) & (t <= 1)):
        raise ConfigError(f"fractions must be a 1-D array in (0, 1], got {t.tolist()}")
    rule = _check_spending(spending)
    if rule == "obrien-fleming":
        return 2.0 * stats.norm.sf(stats.norm.isf(a / 2.0) / np.sqrt(t))
    if rule == "pocock":
        return a * np.log1p((math.e - 1.0) * t)
    return a * np.arange(1, t.size + 1) / t.size


def _simpson(half: float) -> tuple[np.ndarray, np.ndarray]:
    x = np.linspace(-half, half, _NODES)
    w = np.ones(_NODES)
    w[1:-1:2], w[2:-1:2] = 4.0, 2.0
    return x, w * (2.0 * half / (_NODES - 1)) / 3.0


def _start(t0: float, c0: float, drift: float) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and masses of the score ``S_1 = Z_1 sqrt(t_1)`` on its continuation region ``|Z_1| < c_1``."""
    sd = math.sqrt(t0)
    x, w = _simpson(min(c0, _CAP + abs(drift) * sd) * sd)
    return x, w * stats.norm.pdf(x, loc=drift * t0, scale=sd)


def _cross(x: np.ndarray, mass: np.ndarray, t_prev: float, t_k: float, c: float, drift: float) -> float:
    """P(still going before look k, and ``|Z_k| >= c`` at look k)."""
    d = math.sqrt(t_k - t_prev)
    b = c * math.sqrt(t_k)
    mu = x + drift * (t_k - t_prev)
    return float(mass @ (stats.norm.cdf((-b - mu) / d) + stats.norm.sf((b - mu) / d)))


def _step(x: np.ndarray, mass: np.ndarray, t_prev: float, t_k: float, c: float, drift: float
          ) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and masses of ``S_k`` on the continuation region of look k."""
    d = math.sqrt(t_k - t_prev)
    u, w = _simpson(min(c, _CAP + abs(drift) * math.sqrt(t_k)) * math.sqrt(t_k))
    kernel = stats.norm.pdf((u[:, None] - x[None, :] - drift * (t_k - t_prev)) / d) / d
    return u, w * (kernel @ mass)


@lru_cache(maxsize=512)
def _boundaries(fractions: tuple[float, ...], alpha: float, spending: str) -> tuple[float, ...]:
    t = np.asarray(fractions)
    if spending == "bonferroni":
        return (float(stats.norm.isf(alpha / (2.0 * t.size))),) * t.size
    inc = np.diff(np.concatenate([[0.0], alpha_spent(t, alpha, spending)]))  # type: ignore[arg-type]
    c = [float(stats.norm.isf(inc[0] / 2.0))]
    x, mass = _start(float(t[0]), c[0], 0.0)
    for k in range(1, t.size):
        target = float(inc[k])
        t_prev, t_k = float(t[k - 1]), float(t[k])
        if target <= 1e-15:
            ck = 40.0
        else:
            def excess(v: float, x: np.ndarray = x, mass: np.ndarray = mass, t_prev: float = t_prev,
                       t_k: float = t_k, target: float = target) -> float:
                return _cross(x, mass, t_prev, t_k, v, 0.0) - target

            ck = float(optimize.brentq(excess, 0.0, 40.0, xtol=1e-10))
        c.append(ck)
        x, mass = _step(x, mass, t_prev, t_k, ck, 0.0)
    return tuple(c)


def _fractions(looks: Sequence[int]) -> tuple[float, ...]:
    sizes = _check_looks(looks)
    return tuple(n / sizes[-1] for n in sizes)


def z_boundaries(looks: Sequence[int], alpha: float = 0.05, spending: Spending = "obrien-fleming") -> np.ndarray:
    """Two-sided z boundaries ``c_k`` of the design: stop at look ``k`` when ``|Z_k| >= c_k``.

    The information fraction of look ``k`` is ``looks[k] / looks[-1]`` (seeds per arm). Under the null the
    probability of first crossing at look ``k`` is exactly the spending function's increment there (for
    ``bonferroni``, ``alpha / K`` without using the looks' correlation).

    Args:
        looks: (K,) seeds per arm at each look, strictly increasing.
        alpha: the design's two-sided level.
        spending: one of :data:`SPENDING`.

    Returns:
        (K,) boundaries; one look gives ``z_{1 - alpha/2}`` (1.96 at 5%).
    """
    return np.array(_boundaries(_fractions(looks), _check_alpha(alpha), _check_spending(spending)))


def nominal_levels(looks: Sequence[int], alpha: float = 0.05, spending: Spending = "obrien-fleming") -> np.ndarray:
    """Two-sided nominal p-value levels of the looks, ``2 (1 - Phi(c_k))``: a look decides when its p < this.

    E.g. looks 3/5/7/8 at 5% with O'Brien-Fleming-type spending: 0.0014, 0.0126, 0.0313, 0.0365 (more than
    ``alpha`` in total: the looks' tests are correlated, which the boundaries use).
    """
    return 2.0 * stats.norm.sf(z_boundaries(looks, alpha, spending))


def crossing_probabilities(looks: Sequence[int], alpha: float = 0.05, spending: Spending = "obrien-fleming",
                           drift: float = 0.0) -> np.ndarray:
    """Probability of deciding (either sign) first at each look, for normal z statistics.

    ``drift`` is the mean of the last look's z statistic (``delta / (sd sqrt(2 / n_max))`` for a difference
    ``delta`` with ``n_max`` seeds per arm); the look ``k`` statistic has mean ``drift sqrt(t_k)``. With
    ``drift=0`` the cumulative sums are the spending function (the check of the boundaries); their total
    is the design's power otherwise.

    Returns:
        (K,) probabilities.
    """
    t = np.asarray(_fractions(looks))
    c = z_boundaries(looks, alpha, spending)
    theta = float(drift)
    if not math.isfinite(theta):
        raise ConfigError(f"drift must be finite, got {drift!r}")
    out = [float(stats.norm.sf(c[0] - theta * math.sqrt(t[0])) + stats.norm.cdf(-c[0] - theta * math.sqrt(t[0])))]
    x, mass = _start(float(t[0]), float(c[0]), theta)
    for k in range(1, t.size):
        out.append(_cross(x, mass, float(t[k - 1]), float(t[k]), float(c[k]), theta))
        x, mass = _step(x, mass, float(t[k - 1]), float(t[k]), float(c[k]), theta)
    return np.array(out)


@dataclass(frozen=True)
class SequentialDesign:
    """A group-sequential design: the looks, the level and the spending function.

    Attributes:
        looks: (K,) seeds per arm at each look, strictly increasing; the last is the most a comparison gets.
        alpha: the family-wise two-sided level (shared among the suite's comparisons by Holm).
        spending: one of :data:`SPENDING`.
        higher_is_better: orientation of the metric (normalized AUC: ``True``).
        metric: its name, for the reasons.
    """

    looks: tuple[int, ...]
    alpha: float = 0.05
    spending: Spending = "obrien-fleming"
    higher_is_better: bool = True
    metric: str = "normalized AUC"

    def __post_init__(self) -> None:
        object.__setattr__(self, "looks", _check_looks(self.looks))
        _check_alpha(self.alpha)
        _check_spending(self.spending)

    def nominal(self, level: float | None = None) -> np.ndarray:
        """(K,) nominal p-value levels at ``level`` (default: the design's ``alpha``)."""
        return nominal_levels(self.looks, self.alpha if level is None else level, self.spending)

    def to_dict(self) -> dict[str, Any]:
        return {"looks": list(self.looks), "alpha": self.alpha, "spending": self.spending, "metric": self.metric,
                "nominal_levels": [float(v) for v in self.nominal()]}


# ---------------------------------------------------------------------------------------------
# the tests at every look, and the decisions (vectorized)


def look_tests(transfer: ArrayLike, scratch: ArrayLike, looks: Sequence[int], *, higher_is_better: bool = True
               ) -> tuple[np.ndarray, np.ndarray]:
    """The verdict's test on the first ``n`` seeds of each arm, at every look.

    Args:
        transfer: (..., n_t) per-seed values in the order seeds are added; ``nan`` for runs not made.
        scratch: (..., n_s) likewise; leading axes broadcast with transfer's.
        looks: (K,) seeds per arm at each look.
        higher_is_better: orientation (the difference is oriented, the p-value two-sided).

    Returns:
        ``(diff, p)``, each (..., K): the oriented difference of means and the two-sided Welch-Hsu p-value
        (an exact permutation p-value when both arms are constant); ``nan`` where a look's seeds are not
        all there.
    """
    from rltransfer.statistics import permutation_p, welch_test

    sizes = _check_looks(looks)
    t = np.asarray(transfer, dtype=float)
    s = np.asarray(scratch, dtype=float)
    if t.ndim == 0 or s.ndim == 0:
        raise ConfigError("transfer and scratch must have shape (..., n_seeds)")
    if np.any(np.isinf(t)) or np.any(np.isinf(s)):
        raise ConfigError("per-seed values must be finite (nan marks a run not made yet)")
    lead = np.broadcast_shapes(t.shape[:-1], s.shape[:-1])
    diff = np.full(lead + (len(sizes),), np.nan)
    p = np.full(lead + (len(sizes),), np.nan)
    for k, n in enumerate(sizes):
        if n > t.shape[-1] or n > s.shape[-1]:
            continue
        tk = np.broadcast_to(t[..., :n], lead + (n,))
        sk = np.broadcast_to(s[..., :n], lead + (n,))
        ok = np.isfinite(tk).all(axis=-1) & np.isfinite(sk).all(axis=-1)
        if not ok.any():
            continue
        res = welch_test(np.where(np.isfinite(tk), tk, 0.0), np.where(np.isfinite(sk), sk, 0.0),
                         higher_is_better=higher_is_better)
        d = np.asarray(res.diff, dtype=float)
        pv = np.array(res.p_value, dtype=float)
        for idx in map(tuple, np.argwhere(ok & np.isnan(pv))):  # both arms constant: the exact permutation test
            pv[idx] = permutation_p(tk[idx], sk[idx])
        diff[..., k] = np.where(ok, d, np.nan)
        p[..., k] = np.where(ok, pv, np.nan)
    return diff, p


def _levels(design: SequentialDesign, m: int) -> np.ndarray:
    """(m, K) nominal levels at ``alpha / j`` for ``j = 1..m`` (row ``j - 1``)."""
    return np.stack([design.nominal(design.alpha / j) for j in range(1, m + 1)])


def _decide(p: np.ndarray, avail: np.ndarray, levels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Holm on group-sequential tests: ``(decided, first deciding look or -1, Holm divisor)``, each (P, m).

    ``p: (P, m, K)``, ``avail: (P, m)`` looks made (0..K); ``levels: (m, K)`` from :func:`_levels`. A
    comparison is decided at ``alpha / k`` when one of its looks so far crosses that level's boundary, ``k``
    the number undecided at that step; its divisor is that ``k`` (for an undecided one, the final ``k``).
    """
    n_rows, m, n_looks = p.shape
    seen = np.arange(n_looks)[None, None, :] < avail[..., None]
    with np.errstate(invalid="ignore"):
        cross = (p[None] < levels[:, None, None, :]) & seen[None]  # (m levels, P, m, K)
    rows = np.arange(n_rows)[:, None]
    cols = np.arange(m)[None, :]
    decided = np.zeros((n_rows, m), dtype=bool)
    divisor = np.full((n_rows, m), m)
    for _ in range(m):
        undecided = np.maximum(m - decided.sum(axis=1), 1)[:, None]
        new = cross[undecided - 1, rows, cols].any(axis=-1) & ~decided
        if not new.any():
            break
        divisor = np.where(new, undecided, divisor)
        decided |= new
    divisor = np.where(decided, divisor, np.maximum(m - decided.sum(axis=1), 1)[:, None])
    first = np.where(decided, np.argmax(cross[divisor - 1, rows, cols], axis=-1), -1)
    return decided, first, divisor


@dataclass(frozen=True)
class _Replay:
    labels: np.ndarray  # (P, m) str
    made: np.ndarray  # (P, m) looks evaluated
    wanted: np.ndarray  # (P, m) looks whose seeds the next round needs (== made when nothing more is needed)
    first: np.ndarray  # (P, m) deciding look, -1
    divisor: np.ndarray  # (P, m) Holm divisor of each comparison's level (alpha / divisor)
    complete: np.ndarray  # (P,) the design is finished
    diff: np.ndarray  # (P, m, K)
    p: np.ndarray  # (P, m, K)


def _replay(diff: np.ndarray, p: np.ndarray, design: SequentialDesign) -> _Replay:
    """The rounds: each undecided comparison gets one more look per round, while all its seeds are there."""
    n_rows, m, n_looks = p.shape
    levels = _levels(design, m)
    made = np.zeros((n_rows, m), dtype=int)
    wanted = np.ones((n_rows, m), dtype=int)
    stalled = np.zeros(n_rows, dtype=bool)
    decided = np.zeros((n_rows, m), dtype=bool)
    first = np.full((n_rows, m), -1)
    divisor = np.full((n_rows, m), m)
    rows = np.arange(n_rows)[:, None]
    cols = np.arange(m)[None, :]
    for _ in range(n_looks):
        grow = wanted > made
        there = np.isfinite(p[rows, cols, np.clip(wanted - 1, 0, n_looks - 1)])
        stalled |= ~np.all(there | ~grow, axis=1)
        made = np.where(stalled[:, None], made, wanted)
        decided, first, divisor = _decide(p, made, levels)
        active = ~decided & (made < n_looks) & ~stalled[:, None]
        wanted = np.where(stalled[:, None], wanted, np.where(active, made + 1, made))  # a stalled suite waits
        if not active.any():
            break
    labels = np.full((n_rows, m), "inconclusive", dtype="<U12")
    labels[~decided & (made < n_looks)] = "continue"
    d_first = diff[rows, cols, np.clip(first, 0, n_looks - 1)]
    labels[decided & (d_first > 0)] = "positive"
    labels[decided & (d_first <= 0)] = "negative"
    complete = ~stalled & ~np.any(wanted > made, axis=1)
    return _Replay(labels, made, wanted, first, divisor, complete, diff, p)


def replay_labels(
    transfer: ArrayLike,
    scratch: ArrayLike,
    design: SequentialDesign,
) -> tuple[np.ndarray, np.ndarray]:
    """The design's outcome for many simulated suites at once (what :func:`replay` does, vectorized).

    Args:
        transfer: (P, m, n_max) per-seed values of the ``m`` comparisons of ``P`` independent suites (or
            (P, n_max) for one comparison each), in the order seeds are added, ``n_max >= looks[-1]``.
        scratch: the scratch arm of each comparison, same shape (comparisons that share scratch runs get
            the same values).
        design: the looks, level and spending function.

    Returns:
        ``(labels, seeds)``: (P, m) (or (P,)) labels ``positive``, ``negative`` or ``inconclusive``, and the
        seeds per arm each comparison ended with.
    """
    t = np.asarray(transfer, dtype=float)
    s = np.asarray(scratch, dtype=float)
    single = t.ndim == 2
    if single:
        t, s = t[:, None, :], s[:, None, :]
    if t.ndim != 3 or s.shape[:2] != t.shape[:2]:
        raise ConfigError(
            f"transfer and scratch must be (P, m, n_max) or (P, n_max) alike, got {t.shape} and {s.shape}")
    if t.shape[-1] < design.looks[-1] or s.shape[-1] < design.looks[-1]:
        raise ConfigError(
            f"need {design.looks[-1]} seeds per arm (the last look), got {t.shape[-1]} and {s.shape[-1]}")
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(s))):
        raise ConfigError("simulated per-seed values must be finite")
    diff, p = look_tests(t, s, design.looks, higher_is_better=design.higher_is_better)
    r = _replay(diff, p, design)
    seeds = np.asarray(design.looks)[np.maximum(r.made, 1) - 1]
    return (r.labels[:, 0], seeds[:, 0]) if single else (r.labels, seeds)


# ---------------------------------------------------------------------------------------------
# one suite's comparisons: the runner's and the report's view


@dataclass(frozen=True)
class LookResult:
    """One look of one comparison.

    Attributes:
        n: seeds per arm.
        diff: oriented difference of means (arm better > 0).
        p_value: two-sided Welch-Hsu p-value.
        nominal: the level its p-value was held to (at the comparison's share of alpha).
    """

    n: int
    diff: float
    p_value: float
    nominal: float


@dataclass(frozen=True)
class Decision:
    """Where one comparison stands in the design.

    Attributes:
        label: ``positive`` / ``negative`` (decided: no more seeds), ``continue`` (undecided, more seeds
            wanted), ``inconclusive`` (undecided at the last look).
        seeds: seeds per arm its looks so far used.
        wanted: seeds per arm the comparison needs now (its next look's, or ``seeds`` when it needs no more).
        decided_at: seeds per arm of the look that decided it, or ``None``.
        level: its share of alpha (Holm): ``alpha / k`` with ``k`` the comparisons undecided when it was
            decided (for an undecided one, at the end).
        looks: the looks made.
        reason: one sentence with the numbers.
        seeds_needed: planning figure: seeds per arm with which the fixed test detects a difference of
            ``margin`` with 80% power, from the pooled sd of the seeds used so far (the pilot,
            :func:`rltransfer.statistics.pilot_sd`), never from the observed effect; ``nan`` without a look or
            a margin. The O'Brien-Fleming design needs a few percent more at its last look.
        margin: the margin it plans for (metric units).
    """

    label: SequentialLabel
    seeds: int
    wanted: int
    decided_at: int | None
    level: float
    looks: tuple[LookResult, ...]
    reason: str
    seeds_needed: float = math.nan
    margin: float = math.nan

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "seeds": self.seeds, "wanted": self.wanted, "decided_at": self.decided_at,
                "level": self.level, "reason": self.reason, "seeds_needed": _json_float(self.seeds_needed),
                "margin": _json_float(self.margin),
                "looks": [{"n": lk.n, "diff": lk.diff, "p_value": _json_float(lk.p_value), "nominal": lk.nominal}
                          for lk in self.looks]}


def _json_float(x: float) -> float | str | None:
    if math.isnan(x):
        return None
    return "inf" if math.isinf(x) else float(x)


@dataclass(frozen=True)
class SequentialState:
    """The design replayed on the runs there are.

    Attributes:
        design: the design.
        decisions: ``{comparison key: Decision}`` (keys as given: ``(pair, arm)`` for a suite).
        complete: every comparison is decided or at its last look, with all its runs there.
        rounds: the rounds made (the largest number of looks of any comparison).
    """

    design: SequentialDesign
    decisions: dict[Any, Decision] = field(default_factory=dict)
    complete: bool = False
    rounds: int = 0

    @property
    def labels(self) -> dict[Any, str]:
        return {k: d.label for k, d in self.decisions.items()}

    def to_dict(self) -> dict[str, Any]:
        return {"design": self.design.to_dict(), "complete": self.complete, "rounds": self.rounds,
                "comparisons": [{"pair": k[0], "arm": k[1], **d.to_dict()} if isinstance(k, tuple) and len(k) == 2
                                else {"key": str(k), **d.to_dict()} for k, d in self.decisions.items()]}


def _fmt(x: float) -> str:
    return f"{x:+.3g}" if math.isfinite(x) else "nan"


def _reason(label: str, design: SequentialDesign, looks: tuple[LookResult, ...], level: float, m: int,
            divisor: int, wanted: int, needed: float, margin: float, sd: float) -> str:
    n_looks = len(design.looks)
    share = f"level {level:.3g}" + (f" = {design.alpha:g} / {divisor}, Holm over {m} comparisons" if m > 1 else "")
    spend = _NAMES[design.spending]
    if not looks:
        return f"no look yet: waiting for the first {wanted} seeds per arm"
    last = looks[-1]
    at = f"{last.n} seeds per arm (look {len(looks)} of {n_looks})"
    if label in ("positive", "negative"):
        lk = next(lk for lk in looks if lk.p_value < lk.nominal)
        which = "better" if label == "positive" else "worse"
        return (f"arm {which}, decided at {lk.n} seeds per arm: {design.metric} difference {_fmt(lk.diff)}, Welch-Hsu "
                f"p={lk.p_value:.3g} below the look's {spend} level {lk.nominal:.3g} ({share}); no more seeds")
    test = f"{design.metric} difference {_fmt(last.diff)}, p={last.p_value:.3g} not below {last.nominal:.3g} ({share})"
    if label == "continue":
        return f"undecided after {at}: {test}; {wanted} seeds per arm next"
    if math.isnan(needed):
        plan = "no pilot sd or margin to plan with"
    else:
        n_txt = "more than 1000" if math.isinf(needed) else f"~{int(needed)}"
        plan = (f"to detect a difference of {margin:g} with 80% power would need {n_txt} seeds per arm (planned from "
                f"the pooled sd {sd:.3g} of its {looks[-1].n} seeds per arm, not from the observed effect)")
    return f"inconclusive after {at}, the most the suite allows: {test}; {plan}"


def replay(
    data: Mapping[K, tuple[ArrayLike, ArrayLike]],
    design: SequentialDesign,
    *,
    margins: Mapping[K, float] | float | None = None,
    power: float = 0.8,
) -> SequentialState:
    """Replay the design's rounds on the runs there are: what has been decided, and which seeds come next.

    Round 1 looks at every comparison's first ``looks[0]`` seeds; every later round gives each undecided
    comparison one more look. A round is made only when all the seeds it needs are there (finite values);
    the state at the first round that is not is what the runner runs next (:attr:`Decision.wanted`). The
    result depends on the values only, so a resumed benchmark replays exactly the rounds it made.

    Args:
        data: ``{key: (transfer, scratch)}``, each (n,) per-seed values in the order seeds are added, ``nan``
            for runs not made (or failed); values beyond a comparison's current look are not used.
        design: the looks, level and spending function.
        margins: margin(s) for the planning figure (one for all, or per key); ``None``: no figure.
        power: the planning figure's power.

    Returns:
        A :class:`SequentialState`.
    """
    from rltransfer.statistics import pilot_sd, seeds_for_margin

    keys = list(data)
    if not keys:
        return SequentialState(design, {}, True, 0)
    n_max = design.looks[-1]

    def pad(v: ArrayLike) -> np.ndarray:
        a = np.asarray(v, dtype=float).reshape(-1)[:n_max]
        return np.concatenate([a, np.full(n_max - a.size, np.nan)])

    t = np.stack([pad(data[k][0]) for k in keys])[None]
    s = np.stack([pad(data[k][1]) for k in keys])[None]
    diff, p = look_tests(t, s, design.looks, higher_is_better=design.higher_is_better)
    r = _replay(diff, p, design)
    m = len(keys)
    out: dict[Any, Decision] = {}
    for i, k in enumerate(keys):
        made, wanted, divisor = int(r.made[0, i]), int(r.wanted[0, i]), int(r.divisor[0, i])
        level = design.alpha / divisor
        nominal = design.nominal(level)
        looks = tuple(LookResult(design.looks[j], float(diff[0, i, j]), float(p[0, i, j]), float(nominal[j]))
                      for j in range(made))
        label = str(r.labels[0, i])
        margin = margins.get(k) if isinstance(margins, Mapping) else margins
        margin = math.nan if margin is None else float(margin)
        seeds = design.looks[made - 1] if made else 0
        sd = needed = math.nan
        if made and math.isfinite(margin) and margin > 0:  # the pilot: every seed the comparison used
            sd = pilot_sd(t[0, i, :seeds], s[0, i, :seeds])
            needed = seeds_for_margin(sd, margin, alpha=design.alpha, power=power)
        first = int(r.first[0, i])
        next_n = design.looks[wanted - 1] if wanted else design.looks[0]
        out[k] = Decision(
            label=label,  # type: ignore[arg-type]
            seeds=seeds, wanted=next_n, decided_at=design.looks[first] if first >= 0 else None, level=level,
            looks=looks, reason=_reason(label, design, looks, level, m, divisor, next_n, needed, margin, sd),
            seeds_needed=needed, margin=margin,
        )
    return SequentialState(design, out, bool(r.complete[0]), int(r.made.max()))


# ---------------------------------------------------------------------------------------------
# a suite's design and its runs


def design_of(suite: Suite) -> SequentialDesign | None:
    """The design of a suite run until decided (``until_decided`` set), else ``None``."""
    settings = suite.until_decided
    if settings is None:
        return None
    return SequentialDesign(settings.looks(suite), float(suite.alpha), settings.spending)


def comparison_data(suite: Suite, records: Sequence[Any], metric: str = "auc"
                    ) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]:
    """Every (pair, arm) comparison's per-seed values, in the order of the suite's seeds, ``nan`` where no run.

    Args:
        suite: the suite.
        records: finished runs (:func:`rltransfer.analysis.collect_runs`; a pair's scratch runs appear under
            the pair even when another pair's are used).
        metric: a key of the records' ``metrics``.

    Returns:
        ``{(pair, arm): (arm values (n_seeds,), scratch values (n_seeds,))}``.
    """
    from rltransfer.suite import SCRATCH

    index = {seed: i for i, seed in enumerate(suite.seed_list)}
    n = len(index)
    values: dict[tuple[str, str], np.ndarray] = {}
    for r in records:
        if r.seed in index and metric in r.metrics:
            values.setdefault((r.pair, r.arm), np.full(n, np.nan))[index[r.seed]] = float(r.metrics[metric])
    empty = np.full(n, np.nan)
    return {(pair.name, arm): (values.get((pair.name, arm), empty), values.get((pair.name, SCRATCH), empty))
            for pair in suite.pairs for arm in pair.arms}


def suite_state(suite: Suite, records: Sequence[Any]) -> SequentialState | None:
    """The design of ``suite`` replayed on ``records`` (its primary metric, normalized AUC); ``None`` when the
    suite is not run until decided. The planning figure uses each pair's AUC margin (default 0.05)."""
    from rltransfer.statistics import DEFAULT_MARGINS

    design = design_of(suite)
    if design is None:
        return None
    margins = {(p.name, arm): suite.margins_of(p).get("auc", DEFAULT_MARGINS["auc"]) for p in suite.pairs
               for arm in p.arms}
    return replay(comparison_data(suite, records), design, margins=margins)
