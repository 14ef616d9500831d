"""Benchmark reports: ``report.md``, ``report.json``, CSV files, plots (PNG, PDF or SVG) and TensorBoard
summaries.

:func:`write_report` re-renders everything from the runs stored in a benchmark folder (through
:func:`rltransfer.analysis.analyze`), so it works on a finished or a partially finished benchmark and
never trains anything. Figures share :mod:`rltransfer.plots`' style: one colour per arm in every figure,
sizes legible at a paper's column width, confidence bands kept inside the family's return range.

Conventions, stated once in ``report.md`` and ``report.json`` and used everywhere: differences follow
:data:`rltransfer.analysis.SIGN_CONVENTION` (positive = the arm better than scratch); intervals are at
the suite's level, ``1 - alpha``; run counts are those of the benchmark runner
(:class:`rltransfer.analysis.RunCounts`), in its words; no number is printed as a negative zero.
"""

from __future__ import annotations

import csv
import io
import math
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rltransfer.analysis import METRICS, SIGN_CONVENTION, Analysis, ArmResult, RunRecord, analyze
from rltransfer.plots import (
    COLUMN_WIDTH,
    DEFAULT_DPI,
    FORMATS,
    PAPER_RC,
    SCRATCH_COLOR,
    TEXT_WIDTH,
    arm_colors,
    check_dpi,
    check_formats,
    clip_band,
    new_figure,
    output_stem,
    paper_style,
    save_figure,
    wrap_title,
)
from rltransfer.rundir import atomic_write_json, atomic_write_text
from rltransfer.suite import CURRICULUM_PREFIX, SCRATCH

__all__ = [
    "curves_figure", "format_ci", "interval_figure", "markdown_report", "mean_ci_band", "plot_curves", "plot_intervals",
    "plot_poi", "report_colors", "write_report",
]

#: The plots of a report: key -> file name without its suffix (one file per format asked for).
PLOTS = {
    "curves": "learning_curves",
    "intervals": "auc_difference",
    "poi": "probability_of_improvement",
}
METRIC_LABELS = {
    "jumpstart": "jumpstart", "asymptotic": "asymptotic", "auc": "normalized AUC",
    "time_to_threshold": "time to threshold (steps)",
}
#: Marker of each verdict on the interval plots (colour is the arm's; an inconclusive marker is hollow).
VERDICT_MARKERS = {"positive": "^", "negative": "v", "inconclusive": "o"}


def write_report(out: str | Path, formats: str | Sequence[str] = ("png",), dpi: int = DEFAULT_DPI) -> Analysis:
    """Analyze the stored runs of a benchmark folder and write every report file into it.

    Writes ``report.md``, ``report.json``, ``runs.csv``, ``comparisons.csv``, the plots
    (``learning_curves``, ``auc_difference``, ``probability_of_improvement``, one file per format) and
    ``tb_summary/<pair>/`` (TensorBoard text summary and hparams per pair).

    Args:
        out: the benchmark folder.
        formats: plot formats, from ``png``, ``pdf`` and ``svg`` (or ``"png,pdf"``); ``report.md`` shows
            the PNG (else the SVG) and links the others.
        dpi: resolution of PNG plots.

    Returns:
        The :class:`~rltransfer.analysis.Analysis` that was rendered.

    Raises:
        ConfigError: an unknown format or a dpi out of range (before anything is written).
    """
    formats = check_formats(formats)
    dpi = check_dpi(dpi)
    out = Path(out)
    analysis = analyze(out)
    atomic_write_json(out / "report.json", analysis.to_dict())
    write_runs_csv(analysis, out / "runs.csv")
    write_comparisons_csv(analysis, out / "comparisons.csv")
    colors = report_colors(analysis)
    plots: dict[str, list[Path]] = {}
    if analysis.runs:
        plots["curves"] = plot_curves(analysis, out / PLOTS["curves"], formats, dpi, colors)
    if analysis.results:
        plots["intervals"] = plot_intervals(analysis.results, out / PLOTS["intervals"], analysis.suite.alpha,
                                            formats, dpi, colors)
        plots["poi"] = plot_poi(analysis.results, out / PLOTS["poi"], analysis.suite.alpha, formats, dpi, colors)
    write_tensorboard(analysis, out / "tb_summary")
    atomic_write_text(out / "report.md", markdown_report(analysis, plots))
    return analysis


# --------------------------------------------------------------------------------------------- formatting


def _z(x: float) -> float:
    """``x`` with a zero (or a rounding residue below 1e-12) as a plain ``0.0``: never a negative zero."""
    return 0.0 if abs(x) < 1e-12 else x


def _f(x: float | None, digits: int = 3) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    x = _z(x)
    return f"{x:.{digits}g}" if abs(x) < 1000 else f"{x:,.0f}"


def _signed(x: float, digits: int = 3) -> str:
    if not math.isfinite(x):
        return "n/a"
    x = _z(x)
    if x == 0:
        return "0"
    return f"{x:+.{digits}g}" if abs(x) < 1000 else f"{x:+,.0f}"


def format_ci(point: float, low: float, high: float) -> str:
    """A difference with its interval as the report writes it: ``+0.566 [+0.559, +0.573]`` (3 significant
    digits, thousands separated from 1,000 on, zero as ``0``: never a negative zero; ``n/a`` if undefined)."""
    if not math.isfinite(point):
        return "n/a"
    return f"{_signed(point)} [{_signed(low)}, {_signed(high)}]"


_ci = format_ci


def _p(p: float) -> str:
    if not math.isfinite(p):
        return "n/a"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _level(alpha: float) -> str:
    """The intervals' level as the report writes it: ``95%`` (``97.5%`` when that is what alpha gives)."""
    return f"{(1 - alpha) * 100:.4g}%"


def _seeds_needed(x: float) -> str:
    if math.isnan(x):
        return "n/a"
    return ">1000" if math.isinf(x) else f"~{int(x)}"


def _has_curricula(results: Sequence[ArmResult]) -> bool:
    return any(r.kind == "curriculum" for r in results)


def _arm_column(results: Sequence[ArmResult]) -> str:
    """The arm column's header: ``strategy`` in a transfer-only report (as it always was), else ``arm``."""
    return "arm" if _has_curricula(results) else "strategy"


def _arm_cell(r: ArmResult) -> str:
    """The arm's label, and for a curriculum arm its kind (and curriculum, when the label is another name)."""
    if r.kind != "curriculum":
        return r.arm
    name = r.strategy.removeprefix(CURRICULUM_PREFIX)
    return f"{r.arm} (curriculum)" if name == r.arm else f"{r.arm} (curriculum {name})"


def verdict_table(analysis: Analysis) -> str:
    """The headline table: one row per pair and arm (markdown)."""
    head = (f"| pair | role | {_arm_column(analysis.results)} | runs | zero-shot (transfer / scratch) "
            "| jumpstart | asymptotic "
            "| normalized AUC | time to threshold (steps sooner) "
            "| transfer ratio | P(improvement) | p (Welch, raw / Holm) | verdict | detector: compute saved |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in analysis.results:
        lines.append("| " + " | ".join(_row(r)) + " |")
    return "\n".join(lines)


def _row(r: ArmResult) -> list[str]:
    c = r.comparisons
    auc = c["auc"]
    ttt = c["time_to_threshold"]
    cens = f" (censored {ttt.censored_transfer}/{ttt.n_transfer} vs {ttt.censored_scratch}/{ttt.n_scratch})"
    verdict = f"**{r.label}**"
    if r.label == "inconclusive":
        verdict += f" (seeds needed {_seeds_needed(r.seeds_needed)})"
    if r.control_ok is not None:
        verdict += f" {'✓' if r.control_ok else '✗'} expected {r.expected}"
    return [
        r.pair, r.role, _arm_cell(r), f"{auc.n_transfer} vs {auc.n_scratch}",
        f"{_f(r.zero_shot_transfer)} / {_f(r.zero_shot_scratch)}",
        _ci(c["jumpstart"].diff, c["jumpstart"].ci_low, c["jumpstart"].ci_high),
        _ci(c["asymptotic"].diff, c["asymptotic"].ci_low, c["asymptotic"].ci_high),
        _ci(auc.diff, auc.ci_low, auc.ci_high),
        _ci(ttt.diff, ttt.ci_low, ttt.ci_high) + cens,  # oriented like every difference: steps sooner
        _ci(*r.transfer_ratio),
        f"{_f(auc.prob_improvement, 2)} [{_f(auc.poi_low, 2)}, {_f(auc.poi_high, 2)}]",
        f"{_p(auc.welch_p)} / {_p(auc.holm_p)}",
        verdict,
        _saved(r),
    ]


def _saved(r: ArmResult) -> str:
    if r.alarms == 0:
        return "no alarm"
    runs = r.steps_saved / r.budget if r.budget else 0.0
    share = r.steps_saved / (r.budget * r.n_runs)
    txt = f"{r.alarms} alarm(s); {r.steps_saved:,} steps = {share:.0%} of the arm's budget = {runs:.2f} runs"
    if r.steps_saved == 0 and r.would_save:
        would = r.would_save / r.budget
        txt = f"{r.alarms} alarm(s); stopping would save {r.would_save:,} steps ({would:.2f} runs)"
    return txt


def _runs_lines(analysis: Analysis) -> list[str]:
    """The run counts, as the benchmark runner counts them and in its words, then the wall time."""
    counts = analysis.counts
    lines: list[str] = []
    if counts is not None:
        text = f"Runs: {counts.summary()}."
        session = counts.session_summary()
        if session is not None:
            stopped = " (interrupted)" if counts.session and counts.session.get("interrupted") else ""
            text += f" Last session{stopped}: {session}."
        lines.append(text)
        if counts.finished < counts.total:
            lines.append(f"**Partial report**: {counts.total - counts.finished} of the {counts.total} runs are not "
                         "finished; rerun `rltransfer benchmark` with the same `--out` to resume (failed runs "
                         "start over).")
    wall = f"Wall time: {analysis.wall_time:.0f} s over {len(analysis.sessions)} session(s)"
    if analysis.sessions:
        last = analysis.sessions[-1]
        wall += f" (last: {last.get('workers')} worker(s), {last.get('backend')})"
    return [*lines, wall + "."]


def _plot_links(analysis: Analysis, plots: Mapping[str, Sequence[Path]] | None) -> list[str]:
    """Each plot shown (its PNG, else its SVG) with links to its other formats, and a caption."""
    if plots is None:  # not told what was written: what is on disk
        plots = {key: [p for p in (analysis.out / f"{stem}.{fmt}" for fmt in FORMATS) if p.is_file()]
                 for key, stem in PLOTS.items()}
    level = _level(analysis.suite.alpha)
    ranges = sorted(set(analysis.return_ranges.values()))
    range_txt = ", ".join(f"[{_f(lo)}, {_f(hi)}]" for lo, hi in ranges) or "n/a"
    captions = {
        "curves": ("Learning curves",
                   f"Mean evaluation return over seeds with {level} t-interval bands of the mean, kept inside "
                   f"the target family's return range ({range_txt}); dashed: scratch. Each arm has the same "
                   "colour in every figure."),
        "intervals": ("Difference in normalized AUC",
                      f"Normalized AUC, arm minus scratch, with its {level} bootstrap interval; the marker is the "
                      "verdict (▲ positive, ▼ negative, ○ inconclusive), the colour the arm's."),
        "poi": ("Probability of improvement",
                f"P(a run of the arm has a higher AUC than a run of scratch) with its {level} interval; 0.5: no "
                "difference."),
    }
    lines: list[str] = []
    for key, (title, caption) in captions.items():
        files = [Path(p) for p in plots.get(key, ())]
        if not files:
            continue
        shown = next((p for p in files if p.suffix == ".png"), next((p for p in files if p.suffix == ".svg"), None))
        if shown is not None:
            lines.append(f"![{title}]({shown.name})")
        others = [p for p in files if p != shown]
        links = ", ".join(f"[{p.suffix[1:].upper()}]({p.name})" for p in others)
        lines += ["", f"*{title}.* {caption}" + (f" Also as {links}." if links else ""), ""]
    return lines


def markdown_report(analysis: Analysis, plots: Mapping[str, Sequence[Path]] | None = None) -> str:
    """The whole ``report.md``.

    Args:
        analysis: what to report.
        plots: ``{key of PLOTS: files written}``; ``None``: the plot files found in the folder.
    """
    from rltransfer.statistics import VERDICT_RULE

    suite = analysis.suite
    level = _level(suite.alpha)
    lines = [f"# Transfer benchmark: {suite.name}", ""]
    if suite.description:
        lines += [suite.description.strip(), ""]
    lines += [*_runs_lines(analysis), ""]
    lines += ["## Results", "",
              f"**Sign convention**: {SIGN_CONVENTION}. Intervals are {level} (alpha = {suite.alpha:g}).", "",
              "Zero-shot is the absolute mean return of the first evaluation (step 0, before any "
              "training on the target) of the transfer arm and of scratch. "
              "Every other cell is a difference between the arm and scratch (means over seeds) with a "
              f"{level} stratified-bootstrap interval, in the metric's units (environment steps for time to "
              "threshold). P(improvement) and the p-values are on normalized AUC, the primary "
              "metric." + _curriculum_note(analysis.results), "", verdict_table(analysis), ""]
    shared = sorted({(r.pair, r.scratch_from) for r in analysis.results
                     if r.scratch_from and r.scratch_from != r.pair})
    if shared:
        uses = "; ".join(f"{a} uses the scratch runs of {b}" for a, b in shared)
        lines += ["Scratch arms shared (their runs would be identical: same target, agent, architecture, "
                  f"budget and seeds): {uses}.", ""]
    controls = [r for r in analysis.results if r.control_ok is not None]
    if controls:
        ok = sum(bool(r.control_ok) for r in controls)
        lines += [f"Control comparisons (pair x arm) as expected: {ok} of {len(controls)}.", ""]
    lines += ["### Per-metric details", "",
              f"| pair | {_arm_column(analysis.results)} | metric | transfer mean | scratch mean "
              f"| difference [{level} CI] | P(improvement) | Welch p | Mann-Whitney p | Holm p |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for r in analysis.results:
        for m, c in r.comparisons.items():
            poi = f"{_f(c.prob_improvement, 2)} [{_f(c.poi_low, 2)}, {_f(c.poi_high, 2)}]"
            lines.append(
                f"| {r.pair} | {_arm_cell(r)} | {METRIC_LABELS[m]} | {_f(c.mean_transfer)} | {_f(c.mean_scratch)} | "
                f"{_ci(c.diff, c.ci_low, c.ci_high)} | {poi} | {_p(c.welch_p)} | {_p(c.mann_whitney_p)} | "
                f"{_p(c.holm_p)} |")
    lines += ["", "### Verdicts", ""]
    for r in analysis.results:
        kind = " (curriculum arm)" if r.kind == "curriculum" else ""
        lines.append(f"- **{r.pair} / {r.arm}: {r.label}**{kind}: {r.reason}.")
    lines += ["", "## Plots", "", *_plot_links(analysis, plots)]
    lines += ["## Methods", "", _methods(analysis), "", "```", VERDICT_RULE, "```", ""]
    lines += [f"TensorBoard: `tensorboard --logdir {analysis.out}` overlays every run (scratch and transfer "
              "arms share tags such as `eval/mean_return`); `tb_summary/<pair>` holds each pair's table and "
              "hparams.", ""]
    return "\n".join(lines)


def _curriculum_note(results: Sequence[ArmResult]) -> str:
    """How to read the tables' "transfer" for curriculum arms (empty in a transfer-only report)."""
    if not _has_curricula(results):
        return ""
    return (" Rows marked *curriculum* are curriculum arms: the scratch arm's agent trained from its own "
            "initialization with the curriculum (no transfer); read \"transfer\" in their cells as the "
            "curriculum arm (its zero-shot is the untrained policy's, like scratch's).")


_ACTIONS = {
    "warn": "Runs continue; the report says what stopping at the alarm would have saved.",
    "stop": "A run stops at its alarm; its last evaluation is held to the budget for the metrics.",
    "fallback": "A run stops at its alarm and trains from scratch for the rest of the budget.",
}


def _methods(analysis: Analysis) -> str:
    s = analysis.suite
    det = s.detection
    budgets = ", ".join(f"{b:,}" for b in sorted({s.budget_of(p) for p in s.pairs}))
    seeds = ", ".join(map(str, s.seed_list))
    parts = [
        f"Every pair trains a scratch arm and each transfer arm on the target over the same "
        f"{len(s.seed_list)} seeds ({seeds}) with a budget of {budgets} environment steps per run; the "
        "scratch arm uses the transfer arms' architecture and hyperparameters, so only the initialization "
        f"differs. Policies are evaluated deterministically at step 0 and every {s.eval.freq:,} steps "
        f"({s.eval.episodes} episodes, the same evaluation seeds in every arm). Per run: jumpstart (first "
        f"evaluation), asymptotic performance (mean of the last {s.metrics.last_k} evaluations), area under "
        "the evaluation curve normalized by the family's return range (primary metric), time to the success "
        "threshold (censored runs counted at the budget) and the transfer ratio of mean AUCs. Comparisons "
        f"use 2000 stratified bootstrap resamples ({_level(s.alpha)} intervals); the Welch p-value (Mann-Whitney "
        "where Welch is undefined) is Holm-adjusted across the suite's pairs x arms; a verdict needs at least "
        f"{s.min_seeds} seeds per arm (alpha = {s.alpha:g}).",
    ]
    if any(p.curricula for p in s.pairs):
        parts.append(
            "A curriculum arm trains the scratch arm's agent (same seeds, budget and evaluation) with the "
            "curriculum's stages applied to the training envs only (evaluation stays on the target's "
            "parameters), so only the parameter schedule differs from scratch; it is compared with scratch "
            "exactly like a transfer arm (same metrics, intervals, Holm adjustment and verdict rule)."
        )
    if det.enable:
        arms = "transfer and curriculum arms" if any(p.curricula for p in s.pairs) else "transfer arms"
        parts.append(
            f"Online detection on {arms}: each evaluation (averaged over the last "
            f"{det.window}) is compared with the pair's scratch curves (one-sided confidence "
            f"{det.confidence}, {det.patience} consecutive worse evaluations, not before evaluation "
            f"{det.min_evals}); action `{det.action}`. {_ACTIONS[det.action]}"
        )
    return " ".join(parts)


# ---------------------------------------------------------------------------------------------------- CSV


def _cell(x: Any) -> Any:
    """A CSV cell: floats without a negative zero."""
    return _z(x) if isinstance(x, float) and math.isfinite(x) else x


def write_runs_csv(analysis: Analysis, path: Path) -> None:
    """``runs.csv``: one row per finished run and pair (a scratch run shared by pairs has a row per pair)
    with every per-run metric and the detector's record."""
    cols = ["pair", "arm", "strategy", "seed", "status", "budget", "trained_steps", "initial", "asymptotic",
            "auc", "time_to_threshold", "ttt_censored", "stopped_early", "alarm_step", "steps_saved",
            "would_save", "run_dir"]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(cols)
    for r in analysis.runs:
        m = r.metrics
        w.writerow([_cell(v) for v in (
            r.pair, r.arm, r.strategy, r.seed, r.status, r.budget, r.trained_steps, m["initial"],
            m["asymptotic"], m["auc"], m["time_to_threshold"], int(m["ttt_censored"]), int(r.stopped_early),
            "" if r.alarm_step is None else r.alarm_step, r.steps_saved, r.would_save, r.run_dir)])
    atomic_write_text(path, buf.getvalue())


def write_comparisons_csv(analysis: Analysis, path: Path) -> None:
    """``comparisons.csv``: one row per pair x strategy x metric (plus the transfer ratio); ``diff``,
    ``ci_low`` and ``ci_high`` follow the sign convention (positive = the arm better)."""
    cols = ["pair", "role", "strategy", "arm", "metric", "higher_is_better", "n_transfer", "n_scratch",
            "mean_transfer", "mean_scratch", "diff", "ci_low", "ci_high", "prob_improvement", "poi_low",
            "poi_high", "welch_p", "mann_whitney_p", "holm_p", "verdict"]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(cols)
    for r in analysis.results:
        for m, c in r.comparisons.items():
            w.writerow([_cell(v) for v in (
                r.pair, r.role, r.strategy, r.arm, m, int(c.higher_is_better), c.n_transfer, c.n_scratch,
                c.mean_transfer, c.mean_scratch, c.diff, c.ci_low, c.ci_high, c.prob_improvement, c.poi_low,
                c.poi_high, c.welch_p, c.mann_whitney_p, c.holm_p, r.label if m == "auc" else "")])
        lo, hi = r.transfer_ratio[1], r.transfer_ratio[2]
        w.writerow([_cell(v) for v in (r.pair, r.role, r.strategy, r.arm, "transfer_ratio", 1, r.n_runs, "", "", "",
                                       r.transfer_ratio[0], lo, hi, "", "", "", "", "", "", "")])
    atomic_write_text(path, buf.getvalue())


# -------------------------------------------------------------------------------------------------- plots


def report_colors(analysis: Analysis) -> dict[str, str]:
    """One colour per arm name for every figure of the report (:func:`rltransfer.plots.arm_colors` over the
    suite's arms and scratch)."""
    return arm_colors([SCRATCH, *(arm for p in analysis.suite.pairs for arm in p.arms)])


def mean_ci_band(runs: Sequence[RunRecord], grid: np.ndarray, level: float = 0.95,
                 return_range: tuple[float, float] | None = None) -> tuple[np.ndarray, ...]:
    """Mean over seeds of the curves interpolated on ``grid``, with a t-interval: ``(mean, low, high)``.

    Each array has the shape of ``grid``, ``(n,)``; ``runs`` are the seeds of one arm. With
    ``return_range`` (the family's ``(low, high)``) the band is kept inside the possible returns
    (:func:`rltransfer.plots.clip_band`)."""
    from scipy import stats

    ys = np.vstack([np.interp(grid, r.steps, r.returns) for r in runs])
    mean = ys.mean(axis=0)
    if ys.shape[0] < 2:
        return mean, mean, mean
    sem = ys.std(axis=0, ddof=1) / math.sqrt(ys.shape[0])
    half = stats.t.ppf(0.5 + level / 2, ys.shape[0] - 1) * sem
    low, high = clip_band(mean - half, mean + half, ys, return_range)
    return mean, low, high


def _steps_axis(ax: Any) -> None:
    from matplotlib.ticker import EngFormatter, MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(nbins=4))
    ax.xaxis.set_major_formatter(EngFormatter(sep=""))


def _counts_text(counts: dict[str, int]) -> str:
    """``n = 5 per arm``, or each arm's ``n`` when they differ."""
    if len(set(counts.values())) == 1:
        return f"n = {next(iter(counts.values()))} per arm"
    return "n: " + ", ".join(f"{arm} {n}" for arm, n in counts.items())


def curves_figure(analysis: Analysis, colors: Mapping[str, str] | None = None) -> Any:
    """Learning curves, one panel per pair: mean return over seeds with its band (:func:`mean_ci_band` at the
    suite's level, kept inside the family's return range), each arm against scratch (dashed), one legend for
    the figure; one pair: a column wide, more: the text width (up to three panels a row)."""
    suite = analysis.suite
    colors = dict(colors) if colors is not None else report_colors(analysis)
    level = 1 - suite.alpha
    pairs = [p for p in suite.pairs if any(r.pair == p.name for r in analysis.runs)]
    if not pairs:
        raise ValueError(f"{analysis.out}: no finished run to draw learning curves of")
    n = len(pairs)
    cols = min(3, n)
    rows = math.ceil(n / cols)
    width = COLUMN_WIDTH if cols == 1 else TEXT_WIDTH
    with paper_style():
        fig = new_figure(width, 1.0 + 2.2 * rows)
        axes = fig.subplots(rows, cols, squeeze=False)
        handles: dict[str, Any] = {}
        for k, (ax, pair) in enumerate(zip(axes.flat, pairs)):
            grid = np.linspace(0, suite.budget_of(pair), 101)
            counts: dict[str, int] = {}
            for arm in [SCRATCH, *pair.arms]:
                runs = analysis.runs_of(pair.name, arm)
                if not runs:
                    continue
                counts[arm] = len(runs)
                mean, low, high = mean_ci_band(runs, grid, level, analysis.return_ranges.get(pair.name))
                color = colors.get(arm) or arm_colors([arm])[arm]
                (line,) = ax.plot(grid, mean, "--" if arm == SCRATCH else "-", color=color, label=arm,
                                  gid=f"arm_{k}_{arm}")
                ax.fill_between(grid, low, high, color=color, alpha=0.18, lw=0, gid=f"band_{k}_{arm}")
                handles.setdefault(arm, line)
            verdicts = ", ".join(f"{r.arm}: {r.label}" for r in analysis.results if r.pair == pair.name)
            title = f"{pair.name} ({_counts_text(counts)})" + (f"\n{verdicts}" if verdicts else "")
            ax.set_title(wrap_title(title, width / cols * 0.95, PAPER_RC["axes.titlesize"]))
            ax.set_xlabel("environment steps")
            if k % cols == 0:
                ax.set_ylabel("evaluation return")
            _steps_axis(ax)
            ax.grid(alpha=0.3)
        for ax in list(axes.flat)[n:]:
            ax.set_visible(False)
        fig.legend(handles=list(handles.values()), labels=list(handles), loc="outside lower center",
                   ncols=min(len(handles), 4))
        note = "; runs stopped by the detector are held at their last evaluation" if any(
            r.stopped_early for r in analysis.runs) else ""
        fig.suptitle(wrap_title(f"{suite.name}: mean evaluation return over seeds, {_level(suite.alpha)} "
                                f"CI bands{note}", width, PAPER_RC["figure.titlesize"]))
    return fig


def plot_curves(analysis: Analysis, path: str | Path, formats: str | Sequence[str] | None = None,
                dpi: int = DEFAULT_DPI, colors: Mapping[str, str] | None = None) -> list[Path]:
    """Write :func:`curves_figure` to ``path`` (its suffix the format), or beside it in each of ``formats``;
    returns the files written."""
    stem, formats = output_stem(path, formats)
    return save_figure(curves_figure(analysis, colors), stem, formats, dpi)


def _labels(results: Sequence[ArmResult]) -> list[str]:
    return [f"{r.pair} / {_arm_cell(r)}" for r in results]


def interval_figure(results: Sequence[ArmResult], values: Sequence[tuple[float, float, float]], ref: float,
                    xlabel: str, title: str, xlim: tuple[float, float] | None = None,
                    colors: Mapping[str, str] | None = None) -> Any:
    """Point estimates with their intervals, a row per pair x arm: the colour is the arm's (the same as in
    every figure), the marker the verdict (:data:`VERDICT_MARKERS`; hollow: inconclusive)."""
    from matplotlib.lines import Line2D

    colors = dict(colors) if colors is not None else arm_colors(r.arm for r in results)
    labels = _labels(results)
    width = COLUMN_WIDTH if max((len(t) for t in labels), default=0) <= 26 else TEXT_WIDTH
    with paper_style():
        fig = new_figure(width, 1.3 + 0.24 * len(results))
        ax = fig.add_subplot(1, 1, 1)
        y = np.arange(len(results))[::-1]
        for row, (yi, r, (point, low, high)) in enumerate(zip(y, results, values)):
            color = colors.get(r.arm) or arm_colors([r.arm])[r.arm]
            hollow = r.label not in ("positive", "negative")
            style = {"marker": VERDICT_MARKERS.get(r.label, "o"), "color": color, "ms": 5, "ls": "none",
                     "mfc": "white" if hollow else color, "gid": f"arm_{row}_{r.arm}"}
            if math.isfinite(low) and math.isfinite(high):
                ax.errorbar([point], [yi], xerr=[[max(point - low, 0.0)], [max(high - point, 0.0)]],
                            elinewidth=1.5, **style)
            else:
                ax.plot([point], [yi], **style)
        ax.axvline(ref, color="black", lw=0.8)
        if xlim is not None:
            ax.set_xlim(*xlim)
        ax.set_yticks(y, labels)
        ax.set_ylim(-0.7, len(results) - 0.3)
        ax.set_xlabel(wrap_title(xlabel, width * 0.7, PAPER_RC["axes.labelsize"]))
        ax.set_title(wrap_title(title, width * 0.7, PAPER_RC["axes.titlesize"]))
        ax.grid(axis="x", alpha=0.3)
        handles = [Line2D([], [], color=SCRATCH_COLOR, marker=m, ls="none",
                          mfc="white" if v == "inconclusive" else SCRATCH_COLOR, label=v)
                   for v, m in VERDICT_MARKERS.items() if any(r.label == v for r in results)]
        fig.legend(handles=handles, loc="outside lower center", ncols=len(handles) or 1, title="verdict")
    return fig


def plot_intervals(results: Sequence[ArmResult], path: str | Path, alpha: float = 0.05,
                   formats: str | Sequence[str] | None = None, dpi: int = DEFAULT_DPI,
                   colors: Mapping[str, str] | None = None) -> list[Path]:
    """Interval estimates: normalized AUC difference (arm - scratch) with its CI per pair x arm; returns the
    files written."""
    values = [(r.comparisons["auc"].diff, r.comparisons["auc"].ci_low, r.comparisons["auc"].ci_high)
              for r in results]
    if _has_curricula(results):
        xlabel, title = "normalized AUC difference, arm - scratch", "Effect per pair and arm (transfer or curriculum)"
    else:
        xlabel, title = "normalized AUC difference, transfer - scratch", "Transfer effect per pair and strategy"
    stem, formats = output_stem(path, formats)
    fig = interval_figure(results, values, 0.0, f"{xlabel} ({_level(alpha)} CI)", title, colors=colors)
    return save_figure(fig, stem, formats, dpi)


def plot_poi(results: Sequence[ArmResult], path: str | Path, alpha: float = 0.05,
             formats: str | Sequence[str] | None = None, dpi: int = DEFAULT_DPI,
             colors: Mapping[str, str] | None = None) -> list[Path]:
    """Probability of improvement (a transfer run's AUC above a scratch run's) with CIs; returns the files
    written."""
    values = [(c.prob_improvement, c.poi_low, c.poi_high) for c in (r.comparisons["auc"] for r in results)]
    stem, formats = output_stem(path, formats)
    fig = interval_figure(results, values, 0.5, f"P(arm run's AUC > scratch run's AUC) ({_level(alpha)} CI)",
                          "Probability of improvement (0.5: no difference)", xlim=(-0.03, 1.03), colors=colors)
    return save_figure(fig, stem, formats, dpi)


# ---------------------------------------------------------------------------------------------- TensorBoard


def write_tensorboard(analysis: Analysis, root: Path) -> None:
    """Per pair, in ``root/<pair>``: a text summary (the pair's table) and an hparams entry per strategy."""
    from torch.utils.tensorboard import SummaryWriter

    for pair in analysis.suite.pairs:
        results = [r for r in analysis.results if r.pair == pair.name]
        if not results:
            continue
        folder = root / pair.name
        if folder.exists():
            shutil.rmtree(folder)  # re-rendered from scratch: no duplicate events
        table = "\n".join([verdict_table(analysis).splitlines()[0], verdict_table(analysis).splitlines()[1]]
                          + ["| " + " | ".join(_row(r)) + " |" for r in results])
        writer = SummaryWriter(log_dir=str(folder))
        try:
            writer.add_text("benchmark/summary", table, 0)
            verdicts = "\n\n".join(f"**{r.arm}: {r.label}**: {r.reason}" for r in results)
            writer.add_text("benchmark/verdicts", verdicts, 0)
            for r in results:
                c = r.comparisons
                hparams = {"pair": pair.name, "strategy": r.arm, "role": r.role, "budget": r.budget,
                           "seeds": r.n_runs, "target_env": pair.target.env,
                           "target_params": str(pair.target.params), "verdict": r.label}
                metrics = {f"benchmark/{m}_diff": _nan0(c[m].diff) for m in METRICS}
                metrics["benchmark/prob_improvement"] = _nan0(c["auc"].prob_improvement)
                metrics["benchmark/steps_saved"] = float(r.steps_saved)
                writer.add_hparams(hparams, metrics, run_name=r.arm)
        finally:
            writer.close()


def _nan0(x: float) -> float:
    return float(x) if math.isfinite(x) else 0.0
