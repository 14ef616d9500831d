"""Plots of sim-to-real analyses (parameter sweeps), drawn on ``matplotlib.figure.Figure`` objects with the
Agg canvas: no pyplot, no global backend switch, nothing done at import."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

#: What these functions draw: a :class:`rltransfer.sim2real.SweepResult` (not imported: sim2real imports
#: this module).
SweepResult = Any

__all__ = ["plot_sweep"]


def _save(fig: Any, path: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=110)
    return path


def _curve(result: SweepResult, summary: np.ndarray, path: Path) -> Path:
    from matplotlib.figure import Figure

    axis = result.axes[0]
    x = axis.values
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.add_subplot()
    colors = [f"C{i % 10}" for i in range(len(result.labels))]
    for i, label in enumerate(result.labels):
        mean, lo, hi = summary[i, :, 0], summary[i, :, 2], summary[i, :, 3]
        ax.plot(x, mean, marker="o", ms=3, color=colors[i], label=label)
        ax.fill_between(x, lo, hi, color=colors[i], alpha=0.2, linewidth=0)
        if axis.name in result.training[i]:
            t_lo, t_hi = result.training[i][axis.name]
            ax.axvspan(t_lo, t_hi, color=colors[i], alpha=0.08, hatch="//",
                       label=f"{label}: training range [{t_lo:g}, {t_hi:g}]")
    for j, (name, values) in enumerate(result.variants.items()):
        if axis.name in values:
            ax.axvline(values[axis.name], color="k", ls=("--", ":", "-.")[j % 3], lw=1,
                       label=f"variant {name} ({axis.name}={values[axis.name]:g})")
    ax.set_xlabel(axis.name)
    ax.set_ylabel(f"return (mean, 95% CI, {result.returns.shape[2]} episodes)")
    ax.set_title(f"{result.title}: return against {axis.name}")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def _heatmaps(result: SweepResult, summary: np.ndarray, path: Path) -> Path:
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    ax0, ax1 = result.axes
    n = len(result.labels)
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(4.8 * cols, 4.0 * rows), layout="constrained")
    means = summary[:, :, 0].reshape(n, ax0.n, ax1.n)
    vmin, vmax = float(np.nanmin(means)), float(np.nanmax(means))

    def edges(v: np.ndarray) -> np.ndarray:
        half = (v[1] - v[0]) / 2
        return np.concatenate([[v[0] - half], v + half])

    image = None
    for i, label in enumerate(result.labels):
        ax = fig.add_subplot(rows, cols, i + 1)
        # rows of the image: the second parameter (y); columns: the first (x)
        image = ax.pcolormesh(edges(ax0.values), edges(ax1.values), means[i].T, vmin=vmin, vmax=vmax, cmap="viridis")
        ranges = result.training[i]
        if ranges:
            x_lo, x_hi = ranges.get(ax0.name, (ax0.low, ax0.high))
            y_lo, y_hi = ranges.get(ax1.name, (ax1.low, ax1.high))
            ax.add_patch(Rectangle((x_lo, y_lo), x_hi - x_lo, y_hi - y_lo, fill=False, ec="w", lw=1.5, ls="--"))
        for name, values in result.variants.items():
            if ax0.name in values and ax1.name in values:
                ax.plot(values[ax0.name], values[ax1.name], marker="*", ms=12, color="r", mec="w")
                ax.annotate(name, (values[ax0.name], values[ax1.name]), color="w", xytext=(4, 4),
                            textcoords="offset points")
            elif ax0.name in values:
                ax.axvline(values[ax0.name], color="r", ls="--", lw=1)
            elif ax1.name in values:
                ax.axhline(values[ax1.name], color="r", ls="--", lw=1)
        ax.set_xlabel(ax0.name)
        ax.set_ylabel(ax1.name)
        ax.set_title(label, fontsize="medium")
    if image is not None:
        fig.colorbar(image, ax=fig.axes, label="mean return")
    fig.suptitle(f"{result.title}: mean return (dashed box: training range; red: variants)")
    return _save(fig, path)


def plot_sweep(result: SweepResult, path: str | Path) -> Path:
    """A curve per policy with its 95% CI band (one parameter), or a heatmap per policy (two); the
    policy's training range shaded (a box on heatmaps) and the family's variants marked."""
    path = Path(path)
    summary = result.summary()
    if len(result.axes) == 1:
        return _curve(result, summary, path)
    return _heatmaps(result, summary, path)
