"""Figures: the style every rltransfer figure shares, and the plots of sim-to-real sweeps.

The shared style (used by these plots and by :mod:`rltransfer.report`'s):

* **one colour per arm or policy name** (:func:`arm_colors`): ``scratch`` is always dark grey (dashed),
  each registered transfer strategy has a fixed colour, and any other name (a label, a curriculum) gets
  one from its name's hash, so the same arm has the same colour in every figure, whatever the order
  the arms are drawn in;
* **sizes legible at a paper's column width** (:data:`COLUMN_WIDTH`, :data:`TEXT_WIDTH`,
  :data:`PAPER_RC`): figures are drawn at the size they are printed, with fonts of at least
  :data:`MIN_FONT_SIZE` points, and long titles wrapped to the figure's width;
* **PNG, PDF and SVG output** (:func:`save_figure`, :data:`FORMATS`): vector formats for papers, with
  TrueType fonts in PDFs and no timestamps (the same data gives the same file);
* **confidence bands inside the possible returns** (:func:`clip_band`).

Everything is drawn on ``matplotlib.figure.Figure`` objects with the Agg canvas: no pyplot, no global
backend switch, nothing done at import; the style is applied with ``matplotlib.rc_context`` only while a
figure is built and saved.
"""

from __future__ import annotations

import contextlib
import math
import textwrap
import zlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rltransfer.errors import ConfigError, did_you_mean

#: What these functions draw: a :class:`rltransfer.sim2real.SweepResult` (not imported: sim2real imports
#: this module).
SweepResult = Any

__all__ = [
    "COLUMN_WIDTH",
    "FORMATS",
    "MIN_FONT_SIZE",
    "PAPER_RC",
    "SCRATCH_COLOR",
    "TEXT_WIDTH",
    "arm_colors",
    "check_dpi",
    "check_formats",
    "clip_band",
    "new_figure",
    "output_stem",
    "paper_style",
    "plot_sweep",
    "save_figure",
    "sweep_figure",
    "wrap_title",
]

#: File formats every figure can be written in.
FORMATS = ("png", "pdf", "svg")
#: Inches: one column of a two-column paper (IEEE 3.5, ACM 3.33, ICML 3.25); single-panel figures.
COLUMN_WIDTH = 3.4
#: Inches: the text width of a two-column paper; figures with several panels side by side.
TEXT_WIDTH = 7.0
#: Points: the smallest font any figure uses, at the size it is drawn (and printed).
MIN_FONT_SIZE = 7.0
#: Resolution of PNG files unless told otherwise (vector formats do not depend on it).
DEFAULT_DPI = 150

#: Matplotlib settings of every figure (applied only while a figure is built and saved).
PAPER_RC: dict[str, Any] = {
    "font.size": 8.0,
    "axes.titlesize": 8.0,
    "axes.labelsize": 8.0,
    "xtick.labelsize": 7.0,
    "ytick.labelsize": 7.0,
    "legend.fontsize": 7.0,
    "legend.title_fontsize": 7.0,
    "figure.titlesize": 9.0,
    "lines.linewidth": 1.5,
    "lines.markersize": 4.0,
    "errorbar.capsize": 2.5,
    "axes.linewidth": 0.8,
    "grid.linewidth": 0.5,
    "xtick.major.width": 0.8,
    "ytick.major.width": 0.8,
    "legend.frameon": False,
    "pdf.fonttype": 42,  # TrueType in PDFs (what publishers ask for; Type 3 is refused by some)
    "ps.fonttype": 42,
    "svg.hashsalt": "rltransfer",  # the same ids in every SVG of the same figure
}

#: The scratch arm: dark grey, drawn dashed.
SCRATCH_COLOR = "#333333"
#: Colours of arms and policies (colour-blind-safe Okabe-Ito first, then distinct extras).
PALETTE = (
    "#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#8C564B", "#7F3C8D", "#A6A600",
    "#17BECF",
)
#: Fixed colours: the scratch arm and the registered transfer strategies (an arm labelled as a strategy).
FIXED_COLORS = {
    "scratch": SCRATCH_COLOR,
    "finetune": PALETTE[0],
    "freeze": PALETTE[1],
    "reinit_heads": PALETTE[2],
    "kickstart": PALETTE[3],
    "l2sp": PALETTE[4],
    "lower_lr": PALETTE[5],
    "adapt_norm": PALETTE[6],
}
_METADATA: dict[str, dict[str, Any]] = {"png": {}, "pdf": {"CreationDate": None}, "svg": {"Date": None}}


# ----------------------------------------------------------------------------------------------- style


def arm_colors(names: Iterable[str]) -> dict[str, str]:
    """A colour for each of ``names`` (arms or policy labels), stable by name.

    ``scratch`` and the registered strategies have fixed colours (:data:`FIXED_COLORS`); any other name
    starts from its name's hash in :data:`PALETTE` and takes the next colour not used by another of
    ``names`` (so names drawn together never share a colour while the palette lasts). The result depends
    only on the set of names, never on their order: give every figure of a report the same mapping.

    Args:
        names: the names (duplicates are fine).

    Returns:
        ``{name: colour}`` (hex strings).
    """
    unique = sorted(set(names))
    colors = {n: FIXED_COLORS[n] for n in unique if n in FIXED_COLORS}
    used = set(colors.values())
    for name in (n for n in unique if n not in colors):
        start = zlib.crc32(name.encode("utf-8")) % len(PALETTE)
        free = [PALETTE[(start + k) % len(PALETTE)] for k in range(len(PALETTE))]
        color = next((c for c in free if c not in used), free[0])
        colors[name] = color
        used.add(color)
    return colors


@contextlib.contextmanager
def paper_style() -> Iterator[None]:
    """Apply :data:`PAPER_RC` while a figure is built or saved (and only then)."""
    import matplotlib

    with matplotlib.rc_context(PAPER_RC):
        yield


def new_figure(width: float, height: float) -> Any:
    """A ``Figure`` of ``width`` x ``height`` inches with constrained layout on the Agg canvas (call it
    inside :func:`paper_style`)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def wrap_title(text: str, width: float, fontsize: float) -> str:
    """``text`` broken into lines that fit ``width`` inches at ``fontsize`` points (existing line breaks
    kept)."""
    chars = max(12, int(width * 72 / (fontsize * 0.62)))
    return "\n".join(textwrap.fill(line, chars) if line else line for line in text.split("\n"))


def clip_band(low: np.ndarray, high: np.ndarray, values: np.ndarray,
              return_range: tuple[float, float] | None) -> tuple[np.ndarray, np.ndarray]:
    """A confidence band of mean returns kept inside the returns that are possible.

    A t-interval of the mean of a few seeds can leave the returns a task can give (below 0 or above 500 on
    CartPole): such a band is cut at the family's ``return_range``. That range is the one AUC is
    normalized by, which some families' returns can leave (HalfCheetah's is not a hard bound), so it is
    widened to any observed value outside it: a band never ends inside the data it summarizes.

    Args:
        low, high: ``(n,)`` the band's ends.
        values: the observed values the band summarizes (any shape).
        return_range: ``(low, high)`` of the family, or ``None`` (the band is returned as it is).

    Returns:
        ``(low, high)``, each ``(n,)``.
    """
    if return_range is None:
        return low, high
    data = np.asarray(values, dtype=float)
    data = data[np.isfinite(data)]
    lo, hi = float(return_range[0]), float(return_range[1])
    if data.size:
        lo, hi = min(lo, float(data.min())), max(hi, float(data.max()))
    return np.clip(low, lo, hi), np.clip(high, lo, hi)


# ---------------------------------------------------------------------------------------------- saving


def check_formats(formats: str | Sequence[str]) -> tuple[str, ...]:
    """The file formats asked for, validated: names from :data:`FORMATS` (any case), as a sequence or a
    comma-separated string (``"png,pdf"``); duplicates dropped, order kept.

    Raises:
        TypeError: not a string or a sequence of strings.
        ConfigError: an unknown or no format.
    """
    if isinstance(formats, str):
        items: list[Any] = formats.split(",")
    elif isinstance(formats, Sequence):
        items = list(formats)
    else:
        raise TypeError(f"formats must be a sequence of format names, got {type(formats).__name__}")
    out: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise TypeError(f"formats must be strings, got {item!r} ({type(item).__name__})")
        name = item.strip().lower().removeprefix(".")
        if name not in FORMATS:
            raise ConfigError(f"plot format {item!r} is not supported.{did_you_mean(name, FORMATS)} "
                              f"Valid: {', '.join(FORMATS)}")
        if name not in out:
            out.append(name)
    if not out:
        raise ConfigError(f"give at least one plot format ({', '.join(FORMATS)})")
    return tuple(out)


def check_dpi(dpi: int) -> int:
    """The resolution of PNG files, validated: an integer from 50 to 1200.

    Raises:
        TypeError: not an integer.
        ConfigError: out of range.
    """
    if isinstance(dpi, bool) or not isinstance(dpi, (int, np.integer)):
        raise TypeError(f"dpi must be an integer, got {dpi!r} ({type(dpi).__name__})")
    if not 50 <= int(dpi) <= 1200:
        raise ConfigError(f"dpi must be between 50 and 1200, got {dpi}")
    return int(dpi)


def output_stem(path: str | Path, formats: str | Sequence[str] | None) -> tuple[Path, tuple[str, ...]]:
    """Where and how to write a figure asked for as ``path``: ``(stem, formats)``.

    Without ``formats``, ``path``'s suffix is the format (none: PNG); with them, a suffix that names a
    format is dropped and every format is written beside it (``out/curves.png`` with ``("pdf", "svg")``:
    ``out/curves.pdf`` and ``out/curves.svg``).

    Raises:
        ConfigError: an unknown format or suffix.
    """
    path = Path(path)
    suffix = path.suffix.lower().removeprefix(".")
    if formats is None:
        return path.with_suffix(""), check_formats(suffix or "png")
    return (path.with_suffix("") if suffix in FORMATS else path), check_formats(formats)


def save_figure(fig: Any, stem: str | Path, formats: Sequence[str] = ("png",), dpi: int = DEFAULT_DPI) -> list[Path]:
    """Write ``fig`` as ``<stem>.<format>`` for each format (atomically: a temporary file, then a rename;
    the folder is made if need be).

    Args:
        fig: the figure.
        stem: the path without its suffix (``out/learning_curves``).
        formats: names from :data:`FORMATS`.
        dpi: resolution of PNG files.

    Returns:
        The paths written, in the order of ``formats``.
    """
    formats = check_formats(formats)
    dpi = check_dpi(dpi)
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    with paper_style():
        for fmt in formats:
            path = stem.with_name(f"{stem.name}.{fmt}")
            tmp = stem.with_name(f".{stem.name}.tmp.{fmt}")
            fig.savefig(tmp, format=fmt, dpi=dpi, metadata=_METADATA[fmt])
            tmp.replace(path)
            paths.append(path)
    return paths


# ------------------------------------------------------------------------------------------ the sweep


def _curve(result: SweepResult, summary: np.ndarray, return_range: tuple[float, float] | None) -> Any:
    axis = result.axes[0]
    x = axis.values
    colors = arm_colors(result.labels)
    fig = new_figure(COLUMN_WIDTH, 3.3)
    ax = fig.add_subplot()
    for i, label in enumerate(result.labels):
        mean = summary[i, :, 0]
        lo, hi = clip_band(summary[i, :, 2], summary[i, :, 3], result.returns[i], return_range)
        color = colors[label]
        ax.plot(x, mean, marker="o", color=color, label=label, gid=f"policy_{i}_{label}")
        ax.fill_between(x, lo, hi, color=color, alpha=0.2, linewidth=0, gid=f"band_{i}_{label}")
        if axis.name in result.training[i]:
            t_lo, t_hi = result.training[i][axis.name]
            ax.axvspan(t_lo, t_hi, color=color, alpha=0.08, hatch="//", lw=0,
                       label=f"{label}: training range [{t_lo:g}, {t_hi:g}]")
    for j, (name, values) in enumerate(result.variants.items()):
        if axis.name in values:
            ax.axvline(values[axis.name], color="k", ls=("--", ":", "-.")[j % 3], lw=1,
                       label=f"variant {name} ({axis.name}={values[axis.name]:g})")
    ax.set_xlabel(axis.name)
    ax.set_ylabel(f"return (mean, 95% CI, {result.returns.shape[2]} episodes)")
    ax.grid(alpha=0.3)
    entries = ax.get_legend_handles_labels()[1]
    fig.legend(loc="outside lower center", ncols=2 if len(entries) > 2 and max(map(len, entries)) <= 22 else 1)
    fig.suptitle(wrap_title(f"{result.title}: return against {axis.name}", COLUMN_WIDTH, PAPER_RC["figure.titlesize"]))
    return fig


def _heatmaps(result: SweepResult, summary: np.ndarray) -> Any:
    from matplotlib.patches import Rectangle

    ax0, ax1 = result.axes
    n = len(result.labels)
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    width = COLUMN_WIDTH if cols == 1 else TEXT_WIDTH
    fig = new_figure(width, 0.7 + 2.3 * rows)
    means = summary[:, :, 0].reshape(n, ax0.n, ax1.n)
    vmin, vmax = float(np.nanmin(means)), float(np.nanmax(means))

    def edges(v: np.ndarray) -> np.ndarray:
        half = (v[1] - v[0]) / 2
        return np.concatenate([[v[0] - half], v + half])

    image = None
    panel = width / cols
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
                ax.plot(values[ax0.name], values[ax1.name], marker="*", ms=9, color="r", mec="w")
                ax.annotate(name, (values[ax0.name], values[ax1.name]), color="w", xytext=(4, 4),
                            textcoords="offset points", annotation_clip=True)
            elif ax0.name in values:
                ax.axvline(values[ax0.name], color="r", ls="--", lw=1)
            elif ax1.name in values:
                ax.axhline(values[ax1.name], color="r", ls="--", lw=1)
        ax.set_xlabel(ax0.name)
        ax.set_ylabel(ax1.name)
        ax.set_title(wrap_title(label, panel * 0.8, PAPER_RC["axes.titlesize"]))
    if image is not None:
        fig.colorbar(image, ax=fig.axes, label="mean return")
    fig.suptitle(wrap_title(f"{result.title}: mean return (dashed box: training range; red: variants)", width,
                            PAPER_RC["figure.titlesize"]))
    return fig


def sweep_figure(result: SweepResult, return_range: tuple[float, float] | None = None) -> Any:
    """The figure of a sweep: a curve per policy with its 95% CI band (one parameter; the band kept inside
    ``return_range``, see :func:`clip_band`), or a heatmap per policy (two); the policy's training range
    shaded (a box on heatmaps) and the family's variants marked. Policies keep their colour by label
    (:func:`arm_colors`)."""
    summary = result.summary()
    with paper_style():
        if len(result.axes) == 1:
            return _curve(result, summary, return_range)
        return _heatmaps(result, summary)


def plot_sweep(result: SweepResult, path: str | Path, formats: Sequence[str] | None = None,
               return_range: tuple[float, float] | None = None, dpi: int = DEFAULT_DPI) -> Path:
    """Draw :func:`sweep_figure` into ``path``.

    Args:
        result: the sweep.
        path: the file to write; its suffix is the format (``.png``, ``.pdf`` or ``.svg``) unless
            ``formats`` is given.
        formats: write one file per format beside ``path`` (its suffix replaced).
        return_range: the family's ``(low, high)`` returns, to keep the bands inside.
        dpi: resolution of PNG files.

    Returns:
        The first file written.

    Raises:
        ConfigError: an unknown format (or suffix).
    """
    stem, formats = output_stem(path, formats)
    return save_figure(sweep_figure(result, return_range), stem, formats, dpi)[0]
