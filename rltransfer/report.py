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

What the tables say and how (:func:`markdown_report`): per pair and arm the verdict on normalized AUC
(:data:`rltransfer.statistics.VERDICT_RULE`), the equivalence result within the AUC margin and, when the
verdict is inconclusive, the seeds per arm a decision would take; the profile
(:data:`rltransfer.analysis.PROFILE_RULE`); every metric's difference with its Welch-Hsu t interval (time
to threshold: the restricted-mean difference from Kaplan-Meier curves, with the log-rank test); and the
suite aggregates (IQM, probability of improvement, performance profiles). The Methods section states the
rules as they were applied.
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

from rltransfer.analysis import (
    AGGREGATE_EXCLUDED_ROLES,
    METRICS,
    PRIMARY_VERDICT,
    PROFILE_RULE,
    SIGN_CONVENTION,
    Aggregate,
    Analysis,
    ArmResult,
    KaplanMeierCurve,
    RunRecord,
    analyze,
)
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
    "curves_figure", "format_ci", "interval_figure", "markdown_report", "mean_ci_band", "performance_profile_figure",
    "plot_curves", "plot_intervals", "plot_performance_profiles", "plot_poi", "plot_survival", "report_colors",
    "survival_figure", "write_report",
]

#: The plots of a report: key -> file name without its suffix (one file per format asked for).
PLOTS = {
    "curves": "learning_curves",
    "intervals": "auc_difference",
    "poi": "probability_of_improvement",
    "survival": "time_to_threshold",
    "profiles": "performance_profiles",
}
METRIC_LABELS = {
    "jumpstart": "jumpstart", "asymptotic": "asymptotic", "auc": "normalized AUC",
    "time_to_threshold": "time to threshold (steps, restricted mean)",
}
#: Marker of each verdict on the interval plots (colour is the arm's; an inconclusive marker is hollow).
VERDICT_MARKERS = {"positive": "^", "negative": "v", "equivalent": "D", "inconclusive": "o"}
TEST_NAMES = {"welch": "Welch-Hsu", "permutation": "permutation", "logrank": "log-rank"}


def write_report(out: str | Path, formats: str | Sequence[str] = ("png",), dpi: int = DEFAULT_DPI) -> Analysis:
    """Analyze the stored runs of a benchmark folder and write every report file into it.

    Writes ``report.md``, ``report.json``, ``runs.csv``, ``comparisons.csv``, the plots
    (``learning_curves``, ``auc_difference``, ``probability_of_improvement``, ``time_to_threshold``
    (Kaplan-Meier curves) and ``performance_profiles`` (when the suite has aggregates), one file per
    format) and ``tb_summary/<pair>/`` (TensorBoard text summary and hparams per pair).

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
        if any(r.survival is not None for r in analysis.results):
            plots["survival"] = plot_survival(analysis, out / PLOTS["survival"], formats, dpi, colors)
    if analysis.aggregates:
        plots["profiles"] = plot_performance_profiles(analysis, out / PLOTS["profiles"], formats, dpi, colors)
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


def _p_is(p: float) -> str:
    """``p=0.012``, ``p<0.001`` or ``p n/a``."""
    text = _p(p)
    return "p n/a" if text == "n/a" else (f"p{text}" if text.startswith("<") else f"p={text}")


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


def _margin(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"±{_f(x)}"


def _equivalence_cell(r: ArmResult) -> str:
    """The TOST result on normalized AUC: ``shown within ±0.05 (TOST p=0.012)`` / ``not shown ...``."""
    if not math.isfinite(r.equivalence_p):
        return f"n/a (margin {_margin(r.margin)})"
    word = "shown" if r.comparisons["auc"].equivalent else "not shown"
    return f"{word} within {_margin(r.margin)} (TOST {_p_is(r.equivalence_p)})"


def _planning_cell(r: ArmResult) -> str:
    """Seeds per arm to decide an inconclusive comparison: to detect a difference of one margin / to show
    equivalence within it (planned from the pooled sd, not the observed effect); ``-`` once it is decided."""
    if r.label != "inconclusive":
        return "-"
    return f"{_seeds_needed(r.seeds_needed)} / {_seeds_needed(r.seeds_needed_equivalence)}"


def _ttt_cell(r: ArmResult) -> str:
    ttt = r.comparisons["time_to_threshold"]
    cens = f"censored {ttt.censored_transfer}/{ttt.n_transfer} vs {ttt.censored_scratch}/{ttt.n_scratch}"
    return f"{_ci(ttt.diff, ttt.ci_low, ttt.ci_high)} ({cens}; log-rank {_p_is(ttt.logrank_p)})"


def verdict_table(analysis: Analysis) -> str:
    """The headline table: one row per pair and arm (markdown)."""
    head = (f"| pair | role | {_arm_column(analysis.results)} | runs | zero-shot (transfer / scratch) "
            "| jumpstart | asymptotic "
            "| normalized AUC | time to threshold (steps sooner) "
            "| transfer ratio | P(improvement) | p (Welch-Hsu, raw / Holm) | verdict | equivalence (AUC) "
            "| seeds per arm to decide (detect / equivalence) | profile | detector: compute saved |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in analysis.results:
        lines.append("| " + " | ".join(_row(r)) + " |")
    return "\n".join(lines)


def _row(r: ArmResult) -> list[str]:
    c = r.comparisons
    auc = c["auc"]
    verdict = f"**{r.label}**"
    if r.control_ok is not None:
        verdict += f" {'✓' if r.control_ok else '✗'} expected {r.expected}"
    return [
        r.pair, r.role, _arm_cell(r), f"{auc.n_transfer} vs {auc.n_scratch}",
        f"{_f(r.zero_shot_transfer)} / {_f(r.zero_shot_scratch)}",
        _ci(c["jumpstart"].diff, c["jumpstart"].ci_low, c["jumpstart"].ci_high),
        _ci(c["asymptotic"].diff, c["asymptotic"].ci_low, c["asymptotic"].ci_high),
        _ci(auc.diff, auc.ci_low, auc.ci_high),
        _ttt_cell(r),  # oriented like every difference: steps sooner
        _ci(*r.transfer_ratio),
        f"{_f(auc.prob_improvement, 2)} [{_f(auc.poi_low, 2)}, {_f(auc.poi_high, 2)}]",
        f"{_p(auc.p_value)} / {_p(auc.holm_p)}",
        verdict,
        _equivalence_cell(r),
        _planning_cell(r),
        f"**{r.profile}**",
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
                   (f"Mean evaluation return over seeds with {level} t-interval bands of the mean, kept inside "
                   f"the target family's return range ({range_txt}); dashed: scratch. Each arm has the same "
                   "colour in every figure.")),
        "intervals": ("Difference in normalized AUC",
                      (f"Normalized AUC, arm minus scratch, with its {level} Welch t interval (Hsu's degrees of "
                      "freedom, min(n_t, n_s) - 1: the interval of the verdict); the marker is the verdict "
                      "(▲ positive, ▼ negative, ◆ equivalent, ○ inconclusive), the colour the arm's.")),
        "poi": ("Probability of improvement",
                (f"P(a run of the arm has a higher AUC than a run of scratch) with its {level} stratified "
                "bootstrap interval (descriptive: too narrow at a handful of seeds; the verdicts do not use it); "
                "0.5: no difference.")),
        "survival": ("Time to threshold",
                     ("Kaplan-Meier estimate of the share of runs that have not yet reached the success threshold, "
                     f"per arm (dashed: scratch), with {level} pointwise bands (Greenwood, log-log); ticks: runs "
                     "censored (never at the threshold) at their last evaluation. The log-rank p-value and the "
                     "restricted mean up to the budget compare the whole curves, censored runs included.")),
        "profiles": ("Performance profiles",
                     ("Share of runs whose normalized AUC exceeds each value (all pairs of the group, each pair "
                     f"weighted equally) with {level} pointwise stratified-bootstrap bands; dashed: scratch on "
                     "the same pairs. A curve above scratch's everywhere dominates it. Control pairs "
                     f"({', '.join(AGGREGATE_EXCLUDED_ROLES)}) are left out.")),
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


def _test_p(c: Any) -> str:
    """The p-value that counts for a metric, with its test's name: ``Welch-Hsu 0.004``, ``log-rank 0.008``."""
    return f"{TEST_NAMES.get(c.test, c.test)} {_p(c.p_value)}"


def _equivalent_cell(c: Any) -> str:
    if not math.isfinite(c.margin):
        return "n/a"
    if c.metric == "time_to_threshold":
        return ("yes" if c.equivalent else "no") + f" ({_margin(c.margin)} steps, RMST interval)"
    if not math.isfinite(c.equivalence_p):
        return f"n/a ({_margin(c.margin)})"
    return f"{'yes' if c.equivalent else 'no'} ({_margin(c.margin)}, TOST {_p_is(c.equivalence_p)})"


def details_table(analysis: Analysis) -> list[str]:
    """Per pair, arm and metric: means, the difference with its interval, P(improvement), the tests, both Holm
    adjustments, equivalence and the planning figures (markdown lines)."""
    level = _level(analysis.suite.alpha)
    lines = [(f"| pair | {_arm_column(analysis.results)} | metric | transfer mean | scratch mean "
             f"| difference [{level} CI] | P(improvement) | test p (raw) | permutation p | Holm p (per metric) "
             "| Holm p (profile) | equivalent (margin) | seeds per arm (detect / equivalence) |"),
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in analysis.results:
        for m, c in r.comparisons.items():
            poi = f"{_f(c.prob_improvement, 2)} [{_f(c.poi_low, 2)}, {_f(c.poi_high, 2)}]"
            plan = (f"{_seeds_needed(c.seeds_needed)} / {_seeds_needed(c.seeds_needed_equivalence)}"
                    if m != "time_to_threshold" else "n/a")
            lines.append(
                f"| {r.pair} | {_arm_cell(r)} | {METRIC_LABELS[m]} | {_f(c.mean_transfer)} | {_f(c.mean_scratch)} | "
                f"{_ci(c.diff, c.ci_low, c.ci_high)} | {poi} | {_test_p(c)} | {_p(c.permutation_p)} | "
                f"{_p(c.holm_p)} | {_p(c.profile_holm_p)} | {_equivalent_cell(c)} | {plan} |")
    return lines


def _triple(x: tuple[float, float, float], digits: int = 3) -> str:
    return f"{_f(x[0], digits)} [{_f(x[1], digits)}, {_f(x[2], digits)}]"


def aggregates_table(aggregates: Sequence[Aggregate]) -> list[str]:
    """The suite aggregates, one row per group of arms (markdown lines)."""
    lines = [("| arms | kind | pairs | runs per pair (arm / scratch) | IQM normalized AUC, arm | IQM, scratch "
             "| IQM difference | P(improvement), mean over pairs |"),
             "|---|---|---|---|---|---|---|---|"]
    for a in aggregates:
        diff = _ci(*a.iqm_difference)
        lines.append(f"| {a.group} | {a.kind} | {len(a.tasks)} | {a.runs_per_task} / {a.scratch_runs_per_task} | "
                     f"{_triple(a.iqm_arm)} | {_triple(a.iqm_scratch)} | {diff} | {_triple(a.prob_improvement, 2)} |")
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
              "Every other cell is a difference between the arm and scratch (means over seeds) with its "
              f"{level} Welch t interval (Hsu's degrees of freedom), in the metric's units; time to threshold is "
              "the difference of restricted mean times up to the budget (Kaplan-Meier, censored runs included) "
              "with the log-rank p-value. P(improvement), the p-values, the verdict and the equivalence are on "
              "normalized AUC, the primary metric; equivalence is two one-sided tests within the AUC margin. "
              "Seeds per arm to decide: for an inconclusive verdict, how many seeds per arm would detect a "
              "difference of one margin with 80% power / show equivalence within it, planned from the runs' "
              "pooled sd, not from the observed effect. " + PRIMARY_VERDICT + " Both rules are in Methods." + _curriculum_note(analysis.results), "",
              verdict_table(analysis), ""]
    shared = sorted({(r.pair, r.scratch_from) for r in analysis.results
                     if r.scratch_from and r.scratch_from != r.pair})
    if shared:
        uses = "; ".join(f"{a} uses the scratch runs of {b}" for a, b in shared)
        lines += [("Scratch arms shared (their runs would be identical: same target, agent, architecture, "
                  f"budget and seeds): {uses}."), ""]
    controls = [r for r in analysis.results if r.control_ok is not None]
    if controls:
        ok = sum(bool(r.control_ok) for r in controls)
        lines += [(f"Control comparisons (pair x arm) as expected: {ok} of {len(controls)}. A useful pair must "
                  "come out positive, a planted negative negative, and a null control neither positive nor "
                  "negative (equivalent within the margin, or inconclusive)."), ""]
    lines += ["### Per-metric details", "",
              ("Test p: Welch-Hsu t (exact permutation where Welch is undefined, both arms constant), log-rank "
              "(permutation) for time to threshold, whose means are restricted means up to the budget. Holm p "
              "(per metric): across the suite's pairs x arms for that metric; Holm p (profile): across pairs x "
              "arms x jumpstart, AUC and final performance, what the profile uses."), "",
              *details_table(analysis)]
    if analysis.aggregates:
        excluded = sorted({t for a in analysis.aggregates for t in a.excluded})
        left_out = (f" Left out: {', '.join(excluded)} (control pairs built to show no or negative transfer)."
                    if excluded else "")
        lines += ["", "### Across the suite", "",
                  "Normalized AUC over the suite's pairs, per kind of arm and per arm used in several pairs: the "
                  "interquartile mean (IQM) over runs x pairs and its difference from scratch on the same pairs, "
                  f"with {level} stratified-bootstrap percentile intervals (runs resampled within each pair), and "
                  "the probability that a run of the arm has a higher normalized AUC than a scratch run of the "
                  "same pair, averaged over pairs. Descriptive: the verdicts do not use them." + left_out, "",
                  *aggregates_table(analysis.aggregates)]
    lines += ["", "### Verdicts", ""]
    for r in analysis.results:
        kind = " (curriculum arm)" if r.kind == "curriculum" else ""
        lines.append(f"- **{r.pair} / {r.arm}: {r.label}**{kind}: {r.reason}. Profile **{r.profile}**: "
                     f"{r.profile_reason}.")
    lines += ["", "## Plots", "", *_plot_links(analysis, plots)]
    lines += ["## Methods", "", _methods(analysis), "", "```", VERDICT_RULE, "```", "", "```", PROFILE_RULE, "```", ""]
    lines += [(f"TensorBoard: `tensorboard --logdir {analysis.out}` overlays every run (scratch and transfer "
              "arms share tags such as `eval/mean_return`); `tb_summary/<pair>` holds each pair's table and "
              "hparams."), ""]
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


_MARGIN_NAMES = {"jumpstart": "jumpstart", "asymptotic": "asymptotic return", "auc": "normalized AUC",
                 "time_to_threshold": "time to threshold"}
_MARGIN_DEFAULTS = {"jumpstart": "5% of the family's return range", "asymptotic": "5% of the family's return range",
                    "auc": "0.05", "time_to_threshold": "5% of the budget, in steps"}


def _margins_text(analysis: Analysis) -> str:
    """The margins as applied: ``normalized AUC ±0.05 (default 0.05); jumpstart ±25 (default: 5% ...)``, with the
    pairs named where they differ."""
    s = analysis.suite
    parts = []
    for metric in METRICS:
        by_value: dict[float, list[str]] = {}
        for pair, margins in analysis.margins.items():
            by_value.setdefault(margins[metric], []).append(pair)
        declared = any(metric in s.margins_of(p) for p in s.pairs)
        how = "declared in the suite" if declared else f"default: {_MARGIN_DEFAULTS[metric]}"
        if len(by_value) == 1:
            values = _margin(next(iter(by_value)))
        else:
            values = ", ".join(f"{_margin(v)} on {', '.join(pairs)}" for v, pairs in by_value.items())
        unit = " steps" if metric == "time_to_threshold" else ""
        parts.append(f"{_MARGIN_NAMES[metric]} {values}{unit} ({how})")
    return "; ".join(parts)


def _methods(analysis: Analysis) -> str:
    s = analysis.suite
    det = s.detection
    budgets = ", ".join(f"{b:,}" for b in sorted({s.budget_of(p) for p in s.pairs}))
    seeds = ", ".join(map(str, s.seed_list))
    level = _level(s.alpha)
    tost_level = _level(2 * s.alpha) if 2 * s.alpha < 1 else "1 - 2 alpha"
    parts = [
        (f"Every pair trains a scratch arm and each transfer arm on the target over the same "
        f"{len(s.seed_list)} seeds ({seeds}) with a budget of {budgets} environment steps per run; the "
        "scratch arm uses the transfer arms' architecture and hyperparameters, so only the initialization "
        f"differs. Policies are evaluated deterministically at step 0 and every {s.eval.freq:,} steps "
        f"({s.eval.episodes} episodes, the same evaluation seeds in every arm). Per run: jumpstart (first "
        f"evaluation), asymptotic performance (mean of the last {s.metrics.last_k} evaluations), area under "
        "the evaluation curve normalized by the family's return range (primary metric), time to the success "
        "threshold (the first evaluation at or above it; a run that never gets there is censored at its last "
        "evaluation) and the transfer ratio of mean AUCs."),
        (f"Each metric is compared by the difference of the arms' means with its {level} Welch t interval with "
        "Hsu's conservative degrees of freedom min(n_t, n_s) - 1 (valid whatever the ratio of the arms' spreads) "
        "and the matching two-sided Welch t-test, so that the interval excludes 0 exactly when p < alpha; where "
        "both arms are constant and the t-test is undefined, the exact permutation test of the arm labels takes "
        "its place (its p-value is reported for every metric)."),
        ("Time to threshold is compared as censored data instead of filling censored runs with the budget: "
        "Kaplan-Meier curves per arm, the two-sided log-rank test (its permutation distribution over the arm "
        "labels, exact when the splits can be enumerated) and the difference of restricted mean times to the "
        "threshold up to tau = the budget (RMST: scratch minus arm, with its t interval on min(n_t, n_s) - 1 "
        "degrees of freedom)."),
        ("Multiplicity: per metric the p-values are Holm-adjusted across the suite's pairs x arms (the verdict's, "
        "on normalized AUC, among them); the profile adjusts the jumpstart, AUC and final-performance p-values "
        "of all pairs x arms together (Holm across pairs x metrics)."),
        ("Equivalence: two one-sided Welch-Hsu tests (TOST), each at alpha, i.e. the "
        f"{tost_level} t interval inside +-margin, with margins in each metric's units: {_margins_text(analysis)}. "
        f"Time to threshold counts as equivalent when the {tost_level} RMST interval lies inside its margin."),
        ("Planning figures: the seeds per arm with which the Welch-Hsu test would detect a true difference of one "
        "margin with 80% power, and with which TOST would show equivalence within it when the true difference "
        "is 0, both planned from the comparison's pooled sd sqrt((s_t^2 + s_s^2) / 2) (these runs as a pilot), "
        "never from the observed effect."),
        ("P(improvement) per comparison is P(arm run > scratch run) + 0.5 P(tie), with a stratified bootstrap "
        "interval (descriptive). Across the suite (descriptive): the interquartile mean of normalized AUC over "
        "runs x pairs per kind of arm and per arm used in several pairs, its difference from scratch, "
        "performance profiles and the probability of improvement averaged over pairs, all with stratified "
        f"bootstrap intervals (2000 resamples, runs resampled within each pair); control pairs "
        f"({', '.join(AGGREGATE_EXCLUDED_ROLES)}) are left out."),
        f"A verdict and a profile need at least {s.min_seeds} seeds per arm (alpha = {s.alpha:g}). "
        + PRIMARY_VERDICT,
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
        if getattr(det, "rule", "per_look") == "sequential":
            test = (f"the arm's runs are tested jointly against the pair's scratch curves at each evaluation "
                    f"(averaged over the last {det.window}; Welch-Hsu t), with a false-alarm rate of at most "
                    f"{getattr(det, 'alpha', s.alpha):g} per arm spent over the evaluations "
                    f"({getattr(det, 'spending', 'pocock')} spending), not before evaluation {det.min_evals}")
        else:
            test = (f"each evaluation (averaged over the last {det.window}) is compared with the pair's scratch "
                    f"curves (one-sided confidence {det.confidence}, {det.patience} consecutive worse evaluations, "
                    f"not before evaluation {det.min_evals})")
        parts.append(f"Online detection on {arms}: {test}; action `{det.action}`. {_ACTIONS[det.action]}")
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


#: The columns of ``comparisons.csv`` taken from each :class:`rltransfer.analysis.MetricComparison`.
_COMPARISON_FIELDS = ("higher_is_better", "n_transfer", "n_scratch", "mean_transfer", "mean_scratch", "diff",
                      "ci_low", "ci_high", "prob_improvement", "poi_low", "poi_high", "test", "p_value", "welch_p",
                      "permutation_p", "holm_p", "profile_holm_p", "margin", "equivalence_p", "equivalent",
                      "seeds_needed", "seeds_needed_equivalence", "censored_transfer", "censored_scratch",
                      "logrank_p", "rmst_p", "tau")


def write_comparisons_csv(analysis: Analysis, path: Path) -> None:
    """``comparisons.csv``: one row per pair x arm x metric (plus the transfer ratio); ``diff``, ``ci_low`` and
    ``ci_high`` follow the sign convention (positive = the arm better). ``verdict`` (the AUC verdict) is on the
    AUC row, ``profile`` on every row of the comparison."""
    cols = ["pair", "role", "strategy", "arm", "metric", *_COMPARISON_FIELDS, "verdict", "profile"]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(cols)
    for r in analysis.results:
        for m, c in r.comparisons.items():
            values = [int(v) if isinstance(v, bool) else v for v in (getattr(c, f) for f in _COMPARISON_FIELDS)]
            w.writerow([_cell(v) for v in (r.pair, r.role, r.strategy, r.arm, m, *values,
                                           r.label if m == "auc" else "", r.profile)])
        ratio = {"higher_is_better": 1, "n_transfer": r.n_runs, "diff": r.transfer_ratio[0],
                 "ci_low": r.transfer_ratio[1], "ci_high": r.transfer_ratio[2]}
        w.writerow([_cell(v) for v in (r.pair, r.role, r.strategy, r.arm, "transfer_ratio",
                                       *(ratio.get(f, "") for f in _COMPARISON_FIELDS), "", r.profile)])
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


def _panels(n: int) -> tuple[Any, np.ndarray, float, int]:
    """A figure of ``n`` panels, up to three a row: a column wide for one, the text width for more (call it
    inside :func:`~rltransfer.plots.paper_style`). Returns the figure, its axes (rows x cols), its width in
    inches and the number of columns."""
    cols = min(3, n)
    rows = math.ceil(n / cols)
    width = COLUMN_WIDTH if cols == 1 else TEXT_WIDTH
    fig = new_figure(width, 1.0 + 2.2 * rows)
    return fig, fig.subplots(rows, cols, squeeze=False), width, cols


def _finish_panels(fig: Any, axes: np.ndarray, n: int, handles: Mapping[str, Any]) -> None:
    """Hide the grid's unused panels and put one legend for the whole figure below them."""
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    fig.legend(handles=list(handles.values()), labels=list(handles), loc="outside lower center",
               ncols=min(len(handles), 4))


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
    with paper_style():
        fig, axes, width, cols = _panels(n)
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
        _finish_panels(fig, axes, n, handles)
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
            hollow = r.label not in ("positive", "negative", "equivalent")
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
    """Interval estimates: normalized AUC difference (arm - scratch) with its Welch-Hsu t interval per pair x arm;
    returns the files written."""
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


def _km_steps(curve: KaplanMeierCurve, end: float) -> tuple[np.ndarray, ...]:
    """A Kaplan-Meier curve as the vertices of its steps from 0 to ``end``: ``(x, y, low, high)``, to draw with
    ``where="post"``."""
    x = np.concatenate([[0.0], curve.times, [end]])
    y = np.concatenate([[1.0], curve.survival, [curve.survival[-1] if curve.survival else 1.0]])
    low = np.concatenate([[1.0], curve.low, [curve.low[-1] if curve.low else 1.0]])
    high = np.concatenate([[1.0], curve.high, [curve.high[-1] if curve.high else 1.0]])
    return x, y, low, high


def _km_at(curve: KaplanMeierCurve, t: float) -> float:
    """``S(t)`` of a right-continuous Kaplan-Meier step function."""
    i = int(np.searchsorted(np.asarray(curve.times, dtype=float), t, side="right"))
    return 1.0 if i == 0 else float(curve.survival[i - 1])


def survival_figure(analysis: Analysis, colors: Mapping[str, str] | None = None) -> Any:
    """Time to threshold as Kaplan-Meier curves, one panel per pair: the share of each arm's runs not yet at the
    threshold against environment steps (scratch dashed), pointwise bands, ticks at censored runs; each panel's
    title gives the threshold and each arm's log-rank p-value. One pair: a column wide, more: the text width."""
    suite = analysis.suite
    colors = dict(colors) if colors is not None else report_colors(analysis)
    by_pair: dict[str, list[ArmResult]] = {}
    for r in analysis.results:
        if r.survival is not None:
            by_pair.setdefault(r.pair, []).append(r)
    if not by_pair:
        raise ValueError(f"{analysis.out}: no comparison with time-to-threshold data to draw")
    n = len(by_pair)
    with paper_style():
        fig, axes, width, cols = _panels(n)
        handles: dict[str, Any] = {}
        for k, (ax, (pair, results)) in enumerate(zip(axes.flat, by_pair.items())):
            first = results[0].survival
            if first is None:  # by_pair holds only results with survival curves
                continue
            end = max([first.tau, *first.scratch.censored_at, *first.scratch.times]
                      + [t for r in results if r.survival for t in (*r.survival.transfer.censored_at,
                                                                    *r.survival.transfer.times)])
            curves = [(SCRATCH, first.scratch)] + [(r.arm, r.survival.transfer) for r in results if r.survival]
            for arm, curve in curves:
                color = colors.get(arm) or arm_colors([arm])[arm]
                x, y, low, high = _km_steps(curve, end)
                (line,) = ax.step(x, y, where="post", ls="--" if arm == SCRATCH else "-", color=color, label=arm,
                                  gid=f"km_{k}_{arm}")
                ax.fill_between(x, low, high, step="post", color=color, alpha=0.15, lw=0, gid=f"kmband_{k}_{arm}")
                if curve.censored_at:
                    ax.plot(curve.censored_at, [_km_at(curve, t) for t in curve.censored_at], ls="none",
                            marker="|", ms=7, color=color, gid=f"censored_{k}_{arm}")
                handles.setdefault(arm, line)
            ax.axvline(first.tau, color="black", lw=0.8, ls=":")
            tests = ", ".join(f"{r.arm}: {_p_is(r.comparisons['time_to_threshold'].logrank_p)}" for r in results)
            title = f"{pair} (return >= {_f(first.threshold)})\nlog-rank {tests}"
            ax.set_title(wrap_title(title, width / cols * 0.95, PAPER_RC["axes.titlesize"]))
            ax.set_xlabel("environment steps")
            if k % cols == 0:
                ax.set_ylabel("runs not yet at threshold")
            ax.set_ylim(-0.03, 1.03)
            _steps_axis(ax)
            ax.grid(alpha=0.3)
        _finish_panels(fig, axes, n, handles)
        fig.suptitle(wrap_title(f"{suite.name}: time to threshold, Kaplan-Meier with {_level(suite.alpha)} bands "
                                "(dotted: the budget)", width, PAPER_RC["figure.titlesize"]))
    return fig


def plot_survival(analysis: Analysis, path: str | Path, formats: str | Sequence[str] | None = None,
                  dpi: int = DEFAULT_DPI, colors: Mapping[str, str] | None = None) -> list[Path]:
    """Write :func:`survival_figure` to ``path`` (or beside it in each of ``formats``); returns the files."""
    stem, formats = output_stem(path, formats)
    return save_figure(survival_figure(analysis, colors), stem, formats, dpi)


def performance_profile_figure(analysis: Analysis, colors: Mapping[str, str] | None = None) -> Any:
    """Performance profiles of normalized AUC, one panel per group of :attr:`Analysis.aggregates`: the share of
    the group's runs above each value with its band, against scratch on the same pairs (dashed)."""
    aggregates = analysis.aggregates
    if not aggregates:
        raise ValueError(f"{analysis.out}: no suite aggregate to draw")
    colors = dict(colors) if colors is not None else report_colors(analysis)
    n = len(aggregates)
    with paper_style():
        fig, axes, width, cols = _panels(n)
        handles: dict[str, Any] = {}
        for k, (ax, a) in enumerate(zip(axes.flat, aggregates)):
            taus = np.asarray(a.taus)
            for name, frac, low, high in ((SCRATCH, a.profile_scratch, a.profile_scratch_low, a.profile_scratch_high),
                                          (a.group, a.profile_arm, a.profile_arm_low, a.profile_arm_high)):
                color = colors.get(name) or arm_colors([name])[name]
                (line,) = ax.plot(taus, frac, "--" if name == SCRATCH else "-", color=color, label=name,
                                  gid=f"profile_{k}_{name}")
                ax.fill_between(taus, low, high, color=color, alpha=0.18, lw=0, gid=f"profileband_{k}_{name}")
                handles.setdefault(name, line)
            title = f"{a.group} ({len(a.tasks)} pair(s), {a.runs_per_task} runs each)"
            ax.set_title(wrap_title(title, width / cols * 0.95, PAPER_RC["axes.titlesize"]))
            ax.set_xlabel("normalized AUC")
            if k % cols == 0:
                ax.set_ylabel("share of runs above")
            ax.set_xlim(0, 1)
            ax.set_ylim(-0.03, 1.03)
            ax.grid(alpha=0.3)
        _finish_panels(fig, axes, n, handles)
        fig.suptitle(wrap_title(f"{analysis.suite.name}: performance profiles of normalized AUC, "
                                f"{_level(analysis.suite.alpha)} bands", width, PAPER_RC["figure.titlesize"]))
    return fig


def plot_performance_profiles(analysis: Analysis, path: str | Path, formats: str | Sequence[str] | None = None,
                              dpi: int = DEFAULT_DPI, colors: Mapping[str, str] | None = None) -> list[Path]:
    """Write :func:`performance_profile_figure` to ``path`` (or beside it in each of ``formats``)."""
    stem, formats = output_stem(path, formats)
    return save_figure(performance_profile_figure(analysis, colors), stem, formats, dpi)


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
                           "target_params": str(pair.target.params), "verdict": r.label, "profile": r.profile}
                metrics = {f"benchmark/{m}_diff": _nan0(c[m].diff) for m in METRICS}
                metrics["benchmark/prob_improvement"] = _nan0(c["auc"].prob_improvement)
                metrics["benchmark/steps_saved"] = float(r.steps_saved)
                writer.add_hparams(hparams, metrics, run_name=r.arm)
        finally:
            writer.close()


def _nan0(x: float) -> float:
    return float(x) if math.isfinite(x) else 0.0
