"""Benchmark reports: ``report.md``, ``report.json``, CSV files, PNG plots and TensorBoard summaries.

:func:`write_report` re-renders everything from the runs stored in a benchmark folder (through
:func:`rltransfer.analysis.analyze`), so it works on a finished or a partially finished benchmark and
never trains anything. Plotting uses ``matplotlib.figure.Figure`` objects with the Agg canvas (no pyplot,
no global backend switch).
"""

from __future__ import annotations

import csv
import io
import math
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rltransfer.analysis import METRICS, Analysis, ArmResult, RunRecord, analyze
from rltransfer.rundir import atomic_write_json, atomic_write_text
from rltransfer.suite import CURRICULUM_PREFIX, SCRATCH

__all__ = ["markdown_report", "plot_curves", "plot_intervals", "plot_poi", "write_report"]

PLOTS = {
    "curves": "learning_curves.png",
    "intervals": "auc_difference.png",
    "poi": "probability_of_improvement.png",
}
METRIC_LABELS = {
    "jumpstart": "jumpstart", "asymptotic": "asymptotic", "auc": "normalized AUC",
    "time_to_threshold": "time to threshold (steps)",
}
VERDICT_COLORS = {"positive": "#2a9d3f", "negative": "#c8372d", "inconclusive": "#7f7f7f"}


def write_report(out: str | Path) -> Analysis:
    """Analyze the stored runs of a benchmark folder and write every report file into it.

    Writes ``report.md``, ``report.json``, ``runs.csv``, ``comparisons.csv``, the PNG plots and
    ``tb_summary/<pair>/`` (TensorBoard text summary and hparams per pair).

    Returns:
        The :class:`~rltransfer.analysis.Analysis` that was rendered.
    """
    out = Path(out)
    analysis = analyze(out)
    atomic_write_json(out / "report.json", analysis.to_dict())
    write_runs_csv(analysis, out / "runs.csv")
    write_comparisons_csv(analysis, out / "comparisons.csv")
    if analysis.runs:
        plot_curves(analysis, out / PLOTS["curves"])
    if analysis.results:
        plot_intervals(analysis.results, out / PLOTS["intervals"], analysis.suite.alpha)
        plot_poi(analysis.results, out / PLOTS["poi"], analysis.suite.alpha)
    write_tensorboard(analysis, out / "tb_summary")
    atomic_write_text(out / "report.md", markdown_report(analysis))
    return analysis


# --------------------------------------------------------------------------------------------- formatting


def _f(x: float | None, digits: int = 3) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{x:.{digits}g}" if abs(x) < 1000 else f"{x:,.0f}"


def _signed(x: float, digits: int = 3) -> str:
    if not math.isfinite(x):
        return "n/a"
    return f"{x:+.{digits}g}" if abs(x) < 1000 else f"{x:+,.0f}"


def _ci(point: float, low: float, high: float) -> str:
    if not math.isfinite(point):
        return "n/a"
    return f"{_signed(point)} [{_signed(low)}, {_signed(high)}]"


def _p(p: float) -> str:
    if not math.isfinite(p):
        return "n/a"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


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
            "| normalized AUC | time to threshold "
            "| transfer ratio | P(improvement) | p (Welch, raw / Holm) | verdict | detector: compute saved |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in analysis.results:
        lines.append("| " + " | ".join(_row(r)) + " |")
    return "\n".join(lines)


def _row(r: ArmResult) -> list[str]:
    c = r.comparisons
    auc = c["auc"]
    ttt = c["time_to_threshold"]
    ttt_txt = _ci(-ttt.diff, -ttt.ci_high, -ttt.ci_low)  # shown as transfer - scratch in steps
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
        ttt_txt + cens,
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


def markdown_report(analysis: Analysis) -> str:
    """The whole ``report.md``."""
    from rltransfer.statistics import VERDICT_RULE

    suite = analysis.suite
    lines = [f"# Transfer benchmark: {suite.name}", ""]
    if suite.description:
        lines += [suite.description.strip(), ""]
    total_runs = len(analysis.runs) + len(analysis.missing)
    finished = f"Runs finished: {len(analysis.runs)} of {total_runs}."
    if analysis.missing:
        finished += (f" **Partial report**: {len(analysis.missing)} run(s) not finished (rerun "
                     "`rltransfer benchmark` with the same `--out` to resume).")
    wall = f"Wall time: {analysis.wall_time:.0f} s over {len(analysis.sessions)} session(s)"
    if analysis.sessions:
        last = analysis.sessions[-1]
        wall += f" (last: {last.get('workers')} worker(s), {last.get('backend')})"
    lines += [finished, wall + ".", ""]
    lines += ["## Results", "",
              "Zero-shot is the absolute mean return of the first evaluation (step 0, before any "
              "training on the target) of the transfer arm and of scratch. "
              "Every other cell is transfer minus scratch (mean over seeds) with a 95% stratified-bootstrap "
              "interval; time to threshold is in environment steps (negative = transfer reaches the "
              "threshold sooner). P(improvement) and the p-values are on normalized AUC, the primary "
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
        lines += [f"Control pairs as expected: {ok} of {len(controls)}.", ""]
    lines += ["### Per-metric details", "",
              f"| pair | {_arm_column(analysis.results)} | metric | transfer mean | scratch mean "
              "| difference [95% CI] | P(improvement) | Welch p | Mann-Whitney p | Holm p |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for r in analysis.results:
        for m, c in r.comparisons.items():
            poi = f"{_f(c.prob_improvement, 2)} [{_f(c.poi_low, 2)}, {_f(c.poi_high, 2)}]"
            lines.append(
                f"| {r.pair} | {_arm_cell(r)} | {METRIC_LABELS[m]} | {_f(c.mean_transfer)} | {_f(c.mean_scratch)} | "
                f"{_ci(c.diff, c.ci_low, c.ci_high)} | {poi} | {_p(c.welch_p)} | {_p(c.mann_whitney_p)} | "
                f"{_p(c.holm_p)} |")
    lines += ["", "Differences of time to threshold here are oriented (positive = transfer faster).", ""]
    lines += ["### Verdicts", ""]
    for r in analysis.results:
        kind = " (curriculum arm)" if r.kind == "curriculum" else ""
        lines.append(f"- **{r.pair} / {r.arm}: {r.label}**{kind}: {r.reason}.")
    lines += ["", "## Plots", ""]
    for key, title in (("curves", "Learning curves"), ("intervals", "Difference in normalized AUC"),
                       ("poi", "Probability of improvement")):
        if (analysis.out / PLOTS[key]).is_file():
            lines.append(f"![{title}]({PLOTS[key]})")
            lines.append("")
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
        "use 2000 stratified bootstrap resamples; Welch and Mann-Whitney p-values are Holm-adjusted across "
        f"the suite's pairs x strategies; a verdict needs at least {s.min_seeds} seeds per arm "
        f"(alpha = {s.alpha}).",
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


def write_runs_csv(analysis: Analysis, path: Path) -> None:
    """``runs.csv``: one row per finished run with every per-run metric and the detector's record."""
    cols = ["pair", "arm", "strategy", "seed", "status", "budget", "trained_steps", "initial", "asymptotic",
            "auc", "time_to_threshold", "ttt_censored", "stopped_early", "alarm_step", "steps_saved",
            "would_save", "run_dir"]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(cols)
    for r in analysis.runs:
        m = r.metrics
        w.writerow([r.pair, r.arm, r.strategy, r.seed, r.status, r.budget, r.trained_steps, m["initial"],
                    m["asymptotic"], m["auc"], m["time_to_threshold"], int(m["ttt_censored"]),
                    int(r.stopped_early), "" if r.alarm_step is None else r.alarm_step, r.steps_saved,
                    r.would_save, r.run_dir])
    atomic_write_text(path, buf.getvalue())


def write_comparisons_csv(analysis: Analysis, path: Path) -> None:
    """``comparisons.csv``: one row per pair x strategy x metric (plus the transfer ratio)."""
    cols = ["pair", "role", "strategy", "arm", "metric", "higher_is_better", "n_transfer", "n_scratch",
            "mean_transfer", "mean_scratch", "diff", "ci_low", "ci_high", "prob_improvement", "poi_low",
            "poi_high", "welch_p", "mann_whitney_p", "holm_p", "verdict"]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(cols)
    for r in analysis.results:
        for m, c in r.comparisons.items():
            w.writerow([r.pair, r.role, r.strategy, r.arm, m, int(c.higher_is_better), c.n_transfer,
                        c.n_scratch, c.mean_transfer, c.mean_scratch, c.diff, c.ci_low, c.ci_high,
                        c.prob_improvement, c.poi_low, c.poi_high, c.welch_p, c.mann_whitney_p, c.holm_p,
                        r.label if m == "auc" else ""])
        lo, hi = r.transfer_ratio[1], r.transfer_ratio[2]
        w.writerow([r.pair, r.role, r.strategy, r.arm, "transfer_ratio", 1, r.n_runs, "", "", "",
                    r.transfer_ratio[0], lo, hi, "", "", "", "", "", "", ""])
    atomic_write_text(path, buf.getvalue())


# -------------------------------------------------------------------------------------------------- plots


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=150)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: Path) -> None:
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.tight_layout()
    fig.savefig(tmp, dpi=150)
    tmp.replace(path)


def mean_ci_band(runs: Sequence[RunRecord], grid: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, ...]:
    """Mean over seeds of the curves interpolated on ``grid``, with a t-interval: ``(mean, low, high)``.

    Each array has the shape of ``grid``, ``(n,)``; ``runs`` are the seeds of one arm."""
    from scipy import stats

    ys = np.vstack([np.interp(grid, r.steps, r.returns) for r in runs])
    mean = ys.mean(axis=0)
    if ys.shape[0] < 2:
        return mean, mean, mean
    sem = ys.std(axis=0, ddof=1) / math.sqrt(ys.shape[0])
    half = stats.t.ppf(0.5 + level / 2, ys.shape[0] - 1) * sem
    return mean, mean - half, mean + half


def plot_curves(analysis: Analysis, path: Path) -> None:
    """Learning curves, one panel per pair: mean return over seeds with a 95% CI band, each arm vs scratch."""
    suite = analysis.suite
    pairs = [p for p in suite.pairs if any(r.pair == p.name for r in analysis.runs)]
    n = len(pairs)
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig = _figure(4.6 * cols, 3.4 * rows)
    axes = fig.subplots(rows, cols, squeeze=False)
    colors = ["#1f77b4", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
    for ax, pair in zip(axes.flat, pairs):
        budget = suite.budget_of(pair)
        grid = np.linspace(0, budget, 101)
        arms = [SCRATCH, *pair.arms]
        for i, arm in enumerate(arms):
            runs = analysis.runs_of(pair.name, arm)
            if not runs:
                continue
            mean, low, high = mean_ci_band(runs, grid)
            color = "#333333" if arm == SCRATCH else colors[(i - 1) % len(colors)]
            style = "--" if arm == SCRATCH else "-"
            ax.plot(grid, mean, style, color=color, lw=1.8, label=f"{arm} (n={len(runs)})")
            ax.fill_between(grid, low, high, color=color, alpha=0.18, lw=0)
        result = [r for r in analysis.results if r.pair == pair.name]
        verdicts = ", ".join(f"{r.arm}: {r.label}" for r in result)
        ax.set_title(f"{pair.name}\n{verdicts}" if verdicts else pair.name, fontsize=9)
        ax.set_xlabel("environment steps")
        ax.set_ylabel("evaluation return")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    note = "; runs stopped by the detector are held at their last evaluation" if any(
        r.stopped_early for r in analysis.runs) else ""
    fig.suptitle(f"{suite.name}: mean evaluation return over seeds with 95% CI bands (dashed: scratch){note}",
                 fontsize=10)
    _save(fig, path)


def _labels(results: Sequence[ArmResult]) -> list[str]:
    return [f"{r.pair} / {_arm_cell(r)}" for r in results]


def _interval_plot(results: Sequence[ArmResult], path: Path, values: list[tuple[float, float, float]],
                   ref: float, xlabel: str, title: str, xlim: tuple[float, float] | None = None) -> None:
    from matplotlib.lines import Line2D

    fig = _figure(7.0, 1.3 + 0.42 * len(results))
    ax = fig.add_subplot(1, 1, 1)
    y = np.arange(len(results))[::-1]
    for yi, r, (point, low, high) in zip(y, results, values):
        color = VERDICT_COLORS.get(r.label, "#333333")
        if math.isfinite(low) and math.isfinite(high):
            ax.errorbar([point], [yi], xerr=[[point - low], [high - point]], fmt="o", color=color, ms=6,
                        capsize=4, elinewidth=2.5)
        else:
            ax.plot([point], [yi], "o", color=color, ms=6)
    ax.axvline(ref, color="black", lw=1)
    if xlim is not None:
        ax.set_xlim(*xlim)
    ax.set_yticks(y, _labels(results), fontsize=8)
    ax.set_ylim(-0.7, len(results) - 0.3)
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    handles = [Line2D([], [], color=c, marker="o", lw=2.5, label=v) for v, c in VERDICT_COLORS.items()
               if any(r.label == v for r in results)]
    ax.legend(handles=handles, fontsize=7, loc="best", title="verdict", title_fontsize=7)
    _save(fig, path)


def plot_intervals(results: Sequence[ArmResult], path: Path, alpha: float = 0.05) -> None:
    """Interval estimates: normalized AUC difference (arm - scratch) with its CI per pair x arm."""
    values = [(r.comparisons["auc"].diff, r.comparisons["auc"].ci_low, r.comparisons["auc"].ci_high)
              for r in results]
    if _has_curricula(results):
        xlabel, title = "normalized AUC difference, arm - scratch", "Effect per pair and arm (transfer or curriculum)"
    else:
        xlabel, title = "normalized AUC difference, transfer - scratch", "Transfer effect per pair and strategy"
    _interval_plot(results, path, values, 0.0, f"{xlabel} ({1 - alpha:.0%} CI)", title)


def plot_poi(results: Sequence[ArmResult], path: Path, alpha: float = 0.05) -> None:
    """Probability of improvement (a transfer run's AUC above a scratch run's) with CIs."""
    values = [(c.prob_improvement, c.poi_low, c.poi_high) for c in (r.comparisons["auc"] for r in results)]
    _interval_plot(results, path, values, 0.5,
                   f"P(transfer run's AUC > scratch run's AUC) ({1 - alpha:.0%} CI)",
                   "Probability of improvement (0.5: no difference)", xlim=(-0.03, 1.03))


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
