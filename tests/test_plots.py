"""Tests for rltransfer/plots.py: the shared figure style (colours by name, formats, sizes, bands) and the
sweep plots, on hand-made sweep results (no policy is evaluated).

``texts_outside`` and ``small_fonts`` are also used by tests/test_report.py on the report's figures.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rltransfer.errors import ConfigError
from rltransfer.plots import (
    COLUMN_WIDTH,
    FIXED_COLORS,
    MIN_FONT_SIZE,
    PALETTE,
    SCRATCH_COLOR,
    TEXT_WIDTH,
    arm_colors,
    check_dpi,
    check_formats,
    clip_band,
    output_stem,
    plot_sweep,
    save_figure,
    sweep_figure,
)
from rltransfer.sim2real import Axis, SweepResult, sweep_grid, write_sweep

MAGIC = {"png": b"\x89PNG\r\n\x1a\n", "pdf": b"%PDF", "svg": b"<?xml"}


def texts_outside(fig: Any) -> list[str]:
    """The parts of ``fig`` that stick out of it (clipped when saved): each visible axes with its tick
    labels, title and axis labels, each legend, the suptitle."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    box = fig.bbox
    parts = [(f"axes {i} ({ax.get_title()!r})", ax) for i, ax in enumerate(fig.axes) if ax.get_visible()]
    parts += [(f"legend {i}", legend) for i, legend in enumerate(fig.legends)]
    if fig._suptitle is not None and fig._suptitle.get_text():
        parts.append((f"suptitle {fig._suptitle.get_text()!r}", fig._suptitle))
    out = []
    for name, artist in parts:
        ext = artist.get_tightbbox(renderer) if hasattr(artist, "get_tightbbox") else artist.get_window_extent(renderer)
        if ext is None:
            continue
        if ext.x0 < box.x0 - 1 or ext.x1 > box.x1 + 1 or ext.y0 < box.y0 - 1 or ext.y1 > box.y1 + 1:
            out.append(name)
    return out


def small_fonts(fig: Any, minimum: float = MIN_FONT_SIZE) -> list[tuple[str, float]]:
    """The visible texts of ``fig`` smaller than ``minimum`` points."""
    from matplotlib.text import Text

    return [(t.get_text(), t.get_fontsize()) for t in fig.findobj(Text)
            if t.get_visible() and t.get_text().strip() and t.get_fontsize() < minimum
            and (t.axes is None or t.axes.get_visible())]


def colors_by_gid(fig: Any, prefix: str) -> dict[str, list[str]]:
    """``{name: [colour of each line whose gid is <prefix>_<index>_<name>]}`` over the figure's axes."""
    from matplotlib.colors import to_hex

    found: dict[str, list[str]] = {}
    for ax in fig.axes:
        for line in ax.get_lines():
            gid = line.get_gid() or ""
            if gid.startswith(prefix + "_"):
                found.setdefault(gid.split("_", 2)[2], []).append(to_hex(line.get_color()))
    return found


def one_axis_sweep(returns: np.ndarray, labels: tuple[str, ...] = ("cp-dr", "cp-nominal")) -> SweepResult:
    axes = [Axis("pole_mass", 0.05, 0.5, returns.shape[1])]
    return SweepResult("cartpole", axes, list(labels), sweep_grid(axes), returns,
                       [{"pole_mass": (0.05, 0.2)}, {}][: len(labels)], {"real": {"pole_mass": 0.25}})


def two_axis_sweep() -> SweepResult:
    axes = [Axis("pole_mass", 0.05, 0.5, 3), Axis("length", 0.3, 1.0, 2)]
    rng = np.random.default_rng(0)
    returns = rng.uniform(0, 500, size=(2, 6, 4))
    return SweepResult("cartpole", axes, ["cp-dr", "a-much-longer-policy-label-than-usual"], sweep_grid(axes),
                       returns, [{"pole_mass": (0.05, 0.2)}, {}], {"real": {"pole_mass": 0.25, "length": 0.6}},
                       sensors_of="real")


def near_zero_returns() -> np.ndarray:
    """CartPole returns mostly near 0 with one long episode per point: a t-interval dips far below 0."""
    returns = np.full((2, 4, 4), 9.0)
    returns[:, :, 0] = 480.0
    return returns


# --------------------------------------------------------------------------------------------- colours


def test_arm_colours_depend_on_the_names_not_their_order() -> None:
    names = ["scratch", "finetune", "freeze", "power-curriculum", "reinit_value"]
    colors = arm_colors(names)
    assert colors == arm_colors(reversed(names)) == arm_colors(names + ["freeze"])
    assert colors["scratch"] == SCRATCH_COLOR and colors["freeze"] == FIXED_COLORS["freeze"]
    assert len(set(colors.values())) == len(names), "names drawn together never share a colour"
    # a strategy keeps its colour whatever else is drawn; so does any other name drawn without collisions
    assert arm_colors(["freeze"])["freeze"] == arm_colors(["finetune", "freeze", "l2sp"])["freeze"]
    alone = arm_colors(["power-curriculum"])["power-curriculum"]
    assert alone in PALETTE and arm_colors(["scratch", "power-curriculum"])["power-curriculum"] == alone


# --------------------------------------------------------------------------------------------- formats


def test_formats_are_checked_with_the_valid_ones_named() -> None:
    assert check_formats(("png",)) == ("png",)
    assert check_formats("png, PDF,svg,png") == ("png", "pdf", "svg")
    assert check_formats([".svg"]) == ("svg",)
    with pytest.raises(ConfigError, match=r"plot format 'jpg' is not supported\..* Valid: png, pdf, svg$"):
        check_formats("png,jpg")
    with pytest.raises(ConfigError, match=r"'sgv' is not supported\. Did you mean: 'svg'\?"):
        check_formats(["sgv"])
    with pytest.raises(ConfigError, match="at least one plot format"):
        check_formats([])
    with pytest.raises(TypeError, match="must be strings"):
        check_formats(["png", 3])  # type: ignore[list-item]
    assert check_dpi(300) == 300
    with pytest.raises(ConfigError, match="dpi must be between 50 and 1200, got 5000"):
        check_dpi(5000)
    with pytest.raises(TypeError, match="dpi must be an integer"):
        check_dpi(150.0)  # type: ignore[arg-type]


def test_output_stem_takes_the_format_from_the_suffix_or_the_formats(tmp_path: Path) -> None:
    assert output_stem(tmp_path / "a.png", None) == (tmp_path / "a", ("png",))
    assert output_stem(tmp_path / "a", None) == (tmp_path / "a", ("png",))
    assert output_stem(tmp_path / "a.png", ["pdf", "svg"]) == (tmp_path / "a", ("pdf", "svg"))
    with pytest.raises(ConfigError, match="'jpeg' is not supported"):
        output_stem(tmp_path / "a.jpeg", None)


def test_every_format_is_written_and_vector_files_are_reproducible(tmp_path: Path) -> None:
    result = one_axis_sweep(near_zero_returns())
    fig = sweep_figure(result, (0, 500))
    first = save_figure(fig, tmp_path / "one" / "sweep", ("png", "pdf", "svg"), dpi=300)
    assert [p.name for p in first] == ["sweep.png", "sweep.pdf", "sweep.svg"]
    for path in first:
        assert path.read_bytes().startswith(MAGIC[path.suffix[1:]]), path
    assert not list((tmp_path / "one").glob(".*tmp*")), "temporary files renamed into place"
    second = save_figure(sweep_figure(result, (0, 500)), tmp_path / "two" / "sweep", ("pdf", "svg"))
    for a, b in zip(first[1:], second):
        assert a.read_bytes() == b.read_bytes(), f"{a.name}: same figure, same bytes (no timestamps)"
    pdf = first[1].read_bytes()
    assert b"/FontFile2" in pdf and b"/Type3" not in pdf, "TrueType fonts in the PDF"


def test_write_sweep_writes_the_formats_asked_for(tmp_path: Path) -> None:
    result = one_axis_sweep(near_zero_returns())
    csv_path, plot_path = write_sweep(result, tmp_path / "sw", formats="svg,pdf")
    assert csv_path.name == "sweep.csv" and plot_path.name == "sweep.svg"
    assert sorted(p.name for p in (tmp_path / "sw").iterdir()) == ["sweep.csv", "sweep.pdf", "sweep.svg"]
    with pytest.raises(ConfigError, match="'tiff' is not supported"):
        write_sweep(result, tmp_path / "bad", formats=["tiff"])
    assert not (tmp_path / "bad").exists(), "checked before anything is written"
    path = plot_sweep(result, tmp_path / "direct.pdf")
    assert path.name == "direct.pdf" and path.read_bytes().startswith(b"%PDF")


# ----------------------------------------------------------------------------------------------- bands


def test_clip_band_by_hand() -> None:
    low, high = clip_band(np.array([-260.0, 10.0]), np.array([120.0, 520.0]), np.array([0.0, 9.0, 480.0]), (0, 500))
    assert low.tolist() == [0.0, 10.0] and high.tolist() == [120.0, 500.0]
    # a normalization range the returns leave (HalfCheetah's) widens to the data: never cut inside it
    low, high = clip_band(np.array([-900.0]), np.array([3900.0]), np.array([-600.0, 3500.0]), (-500, 3000))
    assert low.tolist() == [-600.0] and high.tolist() == [3500.0]
    same = clip_band(np.array([-1.0]), np.array([1.0]), np.array([0.0]), None)
    assert same[0].tolist() == [-1.0] and same[1].tolist() == [1.0]


def test_sweep_bands_stay_inside_the_return_range() -> None:
    result = one_axis_sweep(near_zero_returns())
    assert result.summary()[:, :, 2].min() < -100, "the t-interval itself leaves [0, 500]"
    fig = sweep_figure(result, (0, 500))
    for ax in fig.axes:
        for band in ax.collections:
            ys = np.concatenate([p.vertices[:, 1] for p in band.get_paths()])
            assert ys.min() >= 0 and ys.max() <= 500, band.get_gid()


# ------------------------------------------------------------------------------------- size and colour


@pytest.mark.parametrize("kind", ["curve", "heatmaps"])
def test_sweep_figures_fit_the_page_and_are_legible(kind: str) -> None:
    result = one_axis_sweep(near_zero_returns()) if kind == "curve" else two_axis_sweep()
    fig = sweep_figure(result, (0, 500))
    width = fig.get_size_inches()[0]
    assert width <= (COLUMN_WIDTH if kind == "curve" else TEXT_WIDTH) + 1e-9
    assert texts_outside(fig) == []
    assert small_fonts(fig) == []


def test_sweep_curves_take_their_colour_from_the_policy_label() -> None:
    a = colors_by_gid(sweep_figure(one_axis_sweep(near_zero_returns(), ("cp-dr", "cp-nominal"))), "policy")
    b = colors_by_gid(sweep_figure(one_axis_sweep(near_zero_returns(), ("cp-nominal", "cp-dr"))), "policy")
    assert a == b and a["cp-dr"] != a["cp-nominal"]
    assert a["cp-dr"] == [arm_colors(["cp-dr", "cp-nominal"])["cp-dr"].lower()]
    for ax in sweep_figure(one_axis_sweep(near_zero_returns())).axes:
        assert all(line.get_linewidth() >= 1.0 for line in ax.get_lines())
