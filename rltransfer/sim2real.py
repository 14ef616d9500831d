"""The sim-to-real gap of policies: returns in simulation and on an env family's held-out variants, the
fraction of the return a policy retains, and sweeps of the return over one or two parameters.

The statistics are pure functions over arrays (:func:`fieller_ratio_ci`, :func:`retained_fraction`,
:func:`sweep_grid`); :func:`sim2real` and :func:`sweep` evaluate policies and collect the results;
plotting is in :mod:`rltransfer.plots`.

**The retained fraction** of a policy on a variant is ``(mean real return - low) / (mean sim return -
low)``, where ``low`` is the low end of the family's ``return_range`` (0 for hopper and cartpole, so
there it is the plain ratio of the means; for families with negative returns it is the ratio of
normalized scores). Its 95% interval is **Fieller's interval** for the ratio of the means of two
independent samples: the set of ratios ``r`` for which ``mean(real') - r mean(sim')`` is not
significantly different from zero, i.e. ``(ȳ - r x̄)² <= t² (s_y²/n_y + r² s_x²/n_x)``, with ``t`` the
Student quantile at the Welch-Satterthwaite degrees of freedom evaluated at the point estimate. Unlike a
delta-method interval it is exact for normal data and stays valid at small ``n`` and for asymmetric
ratios; unlike a percentile bootstrap it does not under-cover at ``n = 20``. When the sim mean is not
significantly above ``low`` the interval is unbounded (reported as ``null``): no ratio can be told.
Sim and real episodes use different seeds so that the two samples are independent; every policy sees
the same episodes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from rltransfer.errors import ConfigError, ParameterBoundsError, unknown_name

__all__ = [
    "Axis",
    "GapRow",
    "RatioCI",
    "Sim2RealReport",
    "SweepResult",
    "check_axes",
    "fieller_ratio_ci",
    "format_gap_table",
    "parse_axis",
    "policy_labels",
    "retained_fraction",
    "sim2real",
    "summarize",
    "sweep",
    "sweep_grid",
    "training_ranges",
    "write_sweep",
]

#: Seeds of the real (variant) evaluations are offset from the sim seed (independent samples).
REAL_SEED_OFFSET = 100_003


# ------------------------------------------------------------------------------------------ statistics


@dataclass(frozen=True)
class RatioCI:
    """A ratio of two means with its interval; ``low``/``high`` are ``-inf``/``inf`` when unbounded."""

    ratio: float
    low: float
    high: float
    level: float = 0.95

    @property
    def bounded(self) -> bool:
        return math.isfinite(self.low) and math.isfinite(self.high)

    def to_dict(self) -> dict[str, Any]:
        finite = math.isfinite(self.ratio)
        return {"ratio": self.ratio if finite else None, "ci95": [self.low, self.high] if self.bounded else None,
                "bounded": self.bounded, "level": self.level, "method": "fieller"}


def _sample(values: np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or arr.size < 2:
        raise ConfigError(f"{what}: need a 1-D array of at least 2 returns, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ConfigError(f"{what}: returns must be finite")
    return arr


def fieller_ratio_ci(num: np.ndarray, den: np.ndarray, level: float = 0.95) -> RatioCI:
    """Fieller's interval for ``mean(num) / mean(den)``, two independent samples (see the module docstring).

    Args:
        num: ``(n,)`` numerator sample (n >= 2).
        den: ``(m,)`` denominator sample (m >= 2).
        level: confidence level.

    Returns:
        The ratio of the means and its interval (``-inf, inf`` when the denominator mean is not
        significantly different from zero; ``ratio`` is ``nan`` when that mean is exactly zero).
    """
    if not 0 < level < 1:
        raise ConfigError(f"level must be in (0, 1), got {level}")
    y, x = _sample(num, "numerator"), _sample(den, "denominator")
    ybar, xbar = float(y.mean()), float(x.mean())
    vy, vx = float(y.var(ddof=1)) / y.size, float(x.var(ddof=1)) / x.size
    if xbar == 0:
        return RatioCI(math.nan, -math.inf, math.inf, level)
    ratio = ybar / xbar
    spread = vy + ratio**2 * vx
    denom = vy**2 / (y.size - 1) + ratio**4 * vx**2 / (x.size - 1)
    df = spread**2 / denom if denom > 0 else math.inf
    t = float(stats.t.ppf(0.5 + level / 2, df)) if math.isfinite(df) else float(stats.norm.ppf(0.5 + level / 2))
    a = xbar**2 - t**2 * vx
    if a <= 0:
        return RatioCI(ratio, -math.inf, math.inf, level)
    b = xbar * ybar
    c = ybar**2 - t**2 * vy
    root = math.sqrt(max(b * b - a * c, 0.0))
    return RatioCI(ratio, (b - root) / a, (b + root) / a, level)


def retained_fraction(real: np.ndarray, sim: np.ndarray, low: float = 0.0, level: float = 0.95) -> RatioCI:
    """``(mean(real) - low) / (mean(sim) - low)`` with Fieller's interval.

    Args:
        real: ``(n,)`` episode returns on the real variant.
        sim: ``(m,)`` episode returns on the sim distribution.
        low: the family's lowest return (``return_range[0]``): returns are shifted by it first.
    """
    return fieller_ratio_ci(np.asarray(real, dtype=np.float64) - low, np.asarray(sim, dtype=np.float64) - low,
                            level)


def summarize(returns: np.ndarray) -> dict[str, Any]:
    """Mean, sample std, t-based 95% CI and the returns of ``returns: (n,)``."""
    from rltransfer.evaluation import mean_ci95

    arr = np.asarray(returns, dtype=np.float64)
    mean, std, (lo, hi) = mean_ci95(arr)
    return {"mean": mean, "std": std, "ci95": [lo, hi], "n": int(arr.size), "returns": arr.tolist()}


# ------------------------------------------------------------------------------------------- sim2real


def policy_labels(paths: Sequence[str | Path]) -> list[str]:
    """Short unique labels: a bundle ``runs/x/policy`` is ``x``; otherwise the file's stem (the full path
    where two would be equal)."""
    labels = []
    for p in paths:
        path = Path(p)
        labels.append(path.parent.name if path.name == "policy" and path.parent.name else path.stem or str(path))
    return [str(p) if labels.count(label) > 1 else label for p, label in zip(paths, labels, strict=True)]


@dataclass
class GapRow:
    """One policy on one real variant: its sim and real returns and the retained fraction."""

    label: str
    variant: str
    sim: dict[str, Any]
    real: dict[str, Any]
    retained: RatioCI


@dataclass
class Sim2RealReport:
    """The result of :func:`sim2real`: per policy, sim returns and, per variant, real returns and ratio."""

    env: str
    sim_randomize: str | None
    episodes: int
    seed: int
    low: float
    policies: list[dict[str, Any]] = field(default_factory=list)
    rows: list[GapRow] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out_policies = []
        for entry in self.policies:
            rows = [r for r in self.rows if r.label == entry["label"]]
            out_policies.append({**entry, "sim": rows[0].sim if rows else entry.get("sim"), "variants": [
                {"variant": r.variant, **r.real, "retained": r.retained.to_dict()} for r in rows]})
        return {
            "env": self.env, "sim": {"randomize": self.sim_randomize, "seed": self.seed},
            "real_seed": self.seed + REAL_SEED_OFFSET, "episodes": self.episodes, "return_low": self.low,
            "retained": "(mean real - return_low) / (mean sim - return_low), Fieller 95% interval",
            "policies": out_policies,
        }


def sim2real(
    policies: Sequence[str | Path],
    env: str | Path | None = None,
    variants: Sequence[str] | None = None,
    sim_randomize: str | Path | None = None,
    episodes: int = 20,
    seed: int = 0,
    deterministic: bool = True,
) -> Sim2RealReport:
    """Evaluate each policy on the sim distribution and on each real variant; the retained fractions.

    Args:
        policies: bundle folders, run directories or SB3 zips.
        env: the family (default: the first policy's recorded family).
        variants: variant names (default: every variant of the family).
        sim_randomize: evaluate "sim" on this preset's distribution (default: the nominal env).
        episodes: episodes per policy and env (>= 2).
        seed: seed of the sim episodes (the real ones use ``seed + REAL_SEED_OFFSET``).

    Raises:
        UnknownNameError: an unknown variant or preset; ConfigError: no variants, or episodes < 2.
    """
    from rltransfer.bundle import load_policy
    from rltransfer.config import load_family
    from rltransfer.evaluation import evaluate
    from rltransfer.randomization import get_variant
    from rltransfer.spec import resolve_preset

    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 2:
        raise ConfigError(f"--episodes must be at least 2 for a confidence interval, got {episodes!r}")
    if not policies:
        raise ConfigError("give at least one --policy")
    loaded = [load_policy(p) for p in policies]
    if env is None:
        if loaded[0].family_spec is None:
            raise ConfigError(f"{loaded[0].path}: the policy records no env family; pass --env")
        family = loaded[0].family_spec
    else:
        family = load_family(env)
    names = list(variants) if variants else list(family.variants)
    if not names:
        raise ConfigError(f"env family {family.name!r} ({family.source}) has no variants; add a variants: section")
    for name in names:
        get_variant(family, name)
    sim_name = None
    if sim_randomize is not None:
        sim_name, _ = resolve_preset(family, sim_randomize)
    low = float(family.return_range[0])
    report = Sim2RealReport(family.name, sim_name, episodes, seed, low)
    for label, policy in zip(policy_labels(policies), loaded, strict=True):
        sim = evaluate(policy, family, episodes=episodes, seed=seed, deterministic=deterministic,
                       randomize=sim_randomize)
        report.policies.append({"label": label, "policy": str(policy.path),
                                "trained_with": {"randomization": policy.randomization, "variant": policy.variant}})
        for name in names:
            real = evaluate(policy, family, episodes=episodes, seed=seed + REAL_SEED_OFFSET,
                            deterministic=deterministic, variant=name)
            report.rows.append(GapRow(label, name, summarize(np.asarray(sim.returns)), summarize(np.asarray(real.returns)),
                                      retained_fraction(np.asarray(real.returns), np.asarray(sim.returns), low)))
    return report


def _ci_text(mean: float, lo: float, hi: float, digits: int) -> str:
    return f"{mean:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Plain-text columns, each as wide as its widest cell (nothing is wrapped or cut)."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
             for line in (header, *rows)]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]]) + "\n"


def format_gap_table(report: Sim2RealReport) -> str:
    """The report as a plain-text table (one line per policy and variant)."""
    sim = f"preset {report.sim_randomize!r}" if report.sim_randomize else "nominal"
    rows = []
    for r in report.rows:
        ratio = r.retained
        kept = (_ci_text(ratio.ratio, ratio.low, ratio.high, 3) if ratio.bounded
                else f"{ratio.ratio:.3f} [unbounded]")
        rows.append([r.label, r.variant, _ci_text(r.sim["mean"], *r.sim["ci95"], 1),
                     _ci_text(r.real["mean"], *r.real["ci95"], 1), kept])
    head = (f"sim2real on {report.env}: sim = {sim}, {report.episodes} episodes each; mean return [95% CI, t]; "
            f"retained = (real - {report.low:g}) / (sim - {report.low:g}) [95% CI, Fieller]\n")
    return head + format_table(["policy", "variant", "sim return", "real return", "retained"], rows)


# ---------------------------------------------------------------------------------------------- sweeps

_AXIS = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*([^:]+):([^:]+):([^:]+)\s*$")
MAX_GRID_POINTS = 10_000


@dataclass(frozen=True)
class Axis:
    """One swept parameter: ``n`` evenly spaced values from ``low`` to ``high`` (inclusive)."""

    name: str
    low: float
    high: float
    n: int

    @property
    def values(self) -> np.ndarray:
        return np.linspace(self.low, self.high, self.n)


def parse_axis(text: str, where: str = "--param") -> Axis:
    """``"torso_mass_scale=0.5:2.0:9"`` -> ``Axis("torso_mass_scale", 0.5, 2.0, 9)`` (n >= 2, low < high)."""
    match = _AXIS.match(text)
    if not match:
        raise ConfigError(f"{where}: expected NAME=LOW:HIGH:N (e.g. torso_mass_scale=0.5:2.0:9), got {text!r}")
    name, lo, hi, n = match.groups()
    try:
        low, high = float(lo), float(hi)
    except ValueError:
        raise ConfigError(f"{where} {text!r}: LOW and HIGH must be numbers") from None
    try:
        count = int(n)
    except ValueError:
        raise ConfigError(f"{where} {text!r}: N must be an integer, got {n.strip()!r}") from None
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ConfigError(f"{where} {text!r}: LOW and HIGH must be finite")
    if not low < high:
        raise ConfigError(f"{where} {text!r}: need LOW < HIGH, got {low:g} and {high:g}")
    if count < 2:
        raise ConfigError(f"{where} {text!r}: N must be at least 2 grid points, got {count}")
    return Axis(name, low, high, count)


def check_axes(family: Any, axes: Sequence[Axis]) -> None:
    """Names and ranges against the family's parameters and hard bounds (before anything is evaluated)."""
    if not 1 <= len(axes) <= 2:
        raise ConfigError(f"--param: give one (a curve) or two (a heatmap) parameters, got {len(axes)}")
    if len(axes) == 2 and axes[0].name == axes[1].name:
        raise ConfigError(f"--param: {axes[0].name!r} is given twice")
    total = math.prod(a.n for a in axes)
    if total > MAX_GRID_POINTS:
        raise ConfigError(f"--param: {total} grid points; at most {MAX_GRID_POINTS}")
    for axis in axes:
        if axis.name not in family.params:
            raise unknown_name("parameter", axis.name, family.params, where=f"env family {family.name!r} (--param)")
        spec = family.params[axis.name]
        for end, value in (("low", axis.low), ("high", axis.high)):
            if not spec.low <= value <= spec.high:
                raise ParameterBoundsError(
                    f"--param {axis.name}: {end} {value:g} is outside the hard bounds [{spec.low:g}, {spec.high:g}] "
                    f"of env family {family.name!r}"
                )


def sweep_grid(axes: Sequence[Axis]) -> list[dict[str, float]]:
    """Every grid point, the first axis varying slowest: ``[{name: value, ...}, ...]``."""
    mesh = np.meshgrid(*[a.values for a in axes], indexing="ij")
    flat = [m.ravel() for m in mesh]
    return [{a.name: float(f[i]) for a, f in zip(axes, flat, strict=True)} for i in range(flat[0].size)]


@dataclass
class SweepResult:
    """Returns of each policy at each grid point.

    Attributes:
        axes: the swept parameters.
        labels: one per policy.
        points: the grid (:func:`sweep_grid`).
        returns: ``(num_policies, num_points, episodes)`` episode returns.
        training: per policy, the training preset's range of each swept parameter (absent: not trained
            with a preset that randomizes it).
        variants: variant name -> its values of the swept parameters (only those it sets).
    """

    env: str
    axes: list[Axis]
    labels: list[str]
    points: list[dict[str, float]]
    returns: np.ndarray
    training: list[dict[str, tuple[float, float]]]
    variants: dict[str, dict[str, float]]
    seed: int = 0
    notes: list[str] = field(default_factory=list)
    sensors_of: str | None = None  # the variant whose sensors (noise, latency) every point kept

    @property
    def title(self) -> str:
        """The env, and the variant whose sensors the sweep kept (if any)."""
        return self.env + (f" with the sensors of {self.sensors_of!r}" if self.sensors_of else "")

    def summary(self) -> np.ndarray:
        """``(num_policies, num_points, 4)``: mean, std, ci low, ci high."""
        from rltransfer.evaluation import mean_ci95

        out = np.zeros((*self.returns.shape[:2], 4))
        for i in range(self.returns.shape[0]):
            for j in range(self.returns.shape[1]):
                mean, std, (lo, hi) = mean_ci95(self.returns[i, j])
                out[i, j] = (mean, std, lo, hi)
        return out


def training_ranges(policy: Any, family: Any, names: Sequence[str]) -> tuple[dict[str, tuple[float, float]], str | None]:
    """The range of each of ``names`` that ``policy``'s training preset (recorded in its manifest) draws.

    Returns:
        ``({name: (low, high)}, note)``: the note says why there is no range (``None`` when there is
        nothing to say).
    """
    from rltransfer.randomization import preset_ranges

    preset_name = getattr(policy, "randomization", None)
    if preset_name is None:
        return {}, None
    source = policy.family_spec if policy.family_spec is not None else family
    if preset_name not in source.randomization:
        return {}, (f"{policy.path}: trained with preset {preset_name!r}, which env family {source.name!r} does not "
                    "ship (a preset file?): its range is not shaded")
    ranges = preset_ranges(source.randomization[preset_name])
    return {n: ranges[n] for n in names if n in ranges}, None


def sweep(
    policies: Sequence[str | Path],
    env: str | Path,
    axes: Sequence[Axis],
    episodes: int = 10,
    seed: int = 0,
    params: dict[str, float] | None = None,
    deterministic: bool = True,
    variant: str | None = None,
) -> SweepResult:
    """Return of each policy at every grid point (each point: ``episodes`` episodes, seed ``seed``, so every
    policy and every point sees the same start states).

    ``variant``: every point runs on that variant (its params, then ``params``, then the point's values,
    and its sensors: noise and latency), e.g. to sweep a physical parameter on the delayed, noisy system.

    Raises:
        UnknownNameError / ParameterBoundsError / ConfigError: checked before anything is evaluated.
    """
    from rltransfer.bundle import load_policy
    from rltransfer.config import load_family
    from rltransfer.evaluation import evaluate

    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise ConfigError(f"--episodes must be an integer >= 1, got {episodes!r}")
    if not policies:
        raise ConfigError("give at least one --policy")
    family = load_family(env)
    check_axes(family, axes)
    both = sorted(set(params or {}) & {a.name for a in axes})
    if both:
        raise ConfigError(f"--set {', '.join(both)}: also swept by --param; give it in one place only")
    family.resolve_params(params)
    if variant is not None:
        from rltransfer.randomization import get_variant

        get_variant(family, variant)  # unknown names: "Did you mean"
    points = sweep_grid(axes)
    loaded = [load_policy(p) for p in policies]
    names = [a.name for a in axes]
    training, notes = [], []
    for policy in loaded:
        ranges, note = training_ranges(policy, family, names)
        training.append(ranges)
        if note:
            notes.append(note)
    returns = np.zeros((len(loaded), len(points), episodes))
    for i, policy in enumerate(loaded):
        for j, point in enumerate(points):
            result = evaluate(policy, family, {**(params or {}), **point}, episodes=episodes, seed=seed,
                              deterministic=deterministic, variant=variant)
            returns[i, j] = result.returns
    variants = {v: {n: float(var.params[n]) for n in names if n in var.params} for v, var in family.variants.items()}
    return SweepResult(family.name, list(axes), policy_labels(policies), points, returns, training, variants, seed,
                       notes, sensors_of=variant)


def write_sweep(result: SweepResult, out: str | Path, formats: str | Sequence[str] = ("png",), dpi: int = 150,
                return_range: tuple[float, float] | None = None) -> tuple[Path, Path]:
    """``sweep.csv`` (one row per policy and grid point: the values, mean, std, CI, n) and the plot
    (:func:`rltransfer.plots.plot_sweep`: ``sweep.png``, or ``sweep.<format>`` for each of ``formats``) into
    ``out``.

    Args:
        result: the sweep.
        out: the folder.
        formats: plot formats, from ``png``, ``pdf`` and ``svg`` (or ``"png,pdf"``).
        dpi: resolution of the PNG.
        return_range: the family's ``(low, high)`` returns, which the plot keeps its bands inside; by default
            the ``return_range`` of the family named ``result.env`` (none when it cannot be loaded by that name).

    Returns:
        ``(csv path, path of the plot in the first format)``; the other formats are beside it.

    Raises:
        ConfigError: ``out`` is a file, an unknown format, a dpi out of range (before anything is written).
    """
    import csv

    from rltransfer.errors import RLTransferError
    from rltransfer.plots import check_dpi, check_formats, plot_sweep

    formats, dpi = check_formats(formats), check_dpi(dpi)
    if return_range is None:
        from rltransfer.config import load_family

        try:
            return_range = tuple(load_family(result.env).return_range)  # type: ignore[assignment]
        except (RLTransferError, OSError):
            return_range = None
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    summary = result.summary()
    csv_path = out / "sweep.csv"
    with csv_path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["policy", *[a.name for a in result.axes], "mean", "std", "ci95_low", "ci95_high", "episodes"])
        for i, label in enumerate(result.labels):
            for j, point in enumerate(result.points):
                mean, std, lo, hi = summary[i, j]
                writer.writerow([label, *[f"{point[a.name]:.6g}" for a in result.axes], f"{mean:.6g}", f"{std:.6g}",
                                 f"{lo:.6g}", f"{hi:.6g}", result.returns.shape[2]])
    plot_path = plot_sweep(result, out / "sweep", formats=formats, return_range=return_range, dpi=dpi)
    return csv_path, plot_path
