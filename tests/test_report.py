"""Tests for rltransfer/report.py (and the analysis in rltransfer/benchmark.py) on hand-made run directories.

No training: each run directory gets a small ``eval.npz``, ``status.json`` and ``task.json`` written here.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
from test_analysis import stored_benchmark, write_session
from test_plots import colors_by_gid, small_fonts, texts_outside

from rltransfer.benchmark import RunRecord, Suite, analyze, save_suite
from rltransfer.cli import main
from rltransfer.config import validate
from rltransfer.errors import ConfigError
from rltransfer.plots import COLUMN_WIDTH, TEXT_WIDTH
from rltransfer.report import curves_figure, interval_figure, mean_ci_band, report_colors, write_report
from rltransfer.rundir import atomic_write_json, write_status
from rltransfer.training import EvalCurve

BUDGET = 1000
STEPS = list(range(0, BUDGET + 1, 100))


def make_suite(out: Path, seeds: int = 5) -> Suite:
    suite: Suite = validate(Suite, {
        "name": "handmade",
        "description": "hand-made curves",
        "seeds": seeds,
        "budget": BUDGET,
        "eval": {"freq": 100, "episodes": 2},
        "detection": {"action": "stop"},
        "pairs": [
            {"name": "good", "role": "useful", "source": {"policy": "a.zip"}, "target": {"env": "cartpole"},
             "strategies": ["finetune", "freeze"]},
            {"name": "bad", "role": "planted_negative", "source": {"policy": "b.zip"},
             "target": {"env": "cartpole", "params": {"length": 1.0}}, "strategies": ["finetune"]},
            {"name": "same", "role": "null", "source": {"policy": "c.zip"}, "target": {"env": "cartpole"},
             "strategies": ["finetune"]},
        ],
    }, "test")
    out.mkdir(parents=True, exist_ok=True)
    save_suite(suite, out)
    return suite


def write_run(out: Path, pair: str, arm: str, seed: int, returns: list[float], detection: dict | None = None) -> Path:
    run = out / "runs" / pair / arm / f"seed{seed}"
    run.mkdir(parents=True)
    curve = EvalCurve()
    for step, value in zip(STEPS, returns):
        curve.append(step, [value, value], [int(value), int(value)])
    curve.save(run)
    if detection is not None:
        atomic_write_json(run / "detection.json", detection)
    atomic_write_json(run / "task.json", {"complete": True, "fingerprint": "x"})
    write_status(run, "done", steps=STEPS[len(returns) - 1])
    return run


def ramp(final: float, rng: np.random.Generator, start: float = 10.0) -> list[float]:
    noise = rng.normal(0, 10, size=len(STEPS))
    values = np.clip(np.linspace(start, final, len(STEPS)) + noise, 0, 500)
    return values.round(1).tolist()


@pytest.fixture()
def bench(tmp_path: Path) -> Path:
    out = tmp_path / "bench"
    make_suite(out)
    rng = np.random.default_rng(0)
    for seed in range(5):
        write_run(out, "good", "scratch", seed, ramp(200, rng))
        write_run(out, "good", "finetune", seed, ramp(480, rng, start=300))
        write_run(out, "good", "freeze", seed, ramp(450, rng, start=250))
        write_run(out, "bad", "scratch", seed, ramp(300, rng))
        if seed < 3:  # stopped by the detector at step 400: the curve ends there
            det = {"enabled": True, "action": "stop", "alarm_step": 400, "steps_saved": 600, "would_save": 600}
            write_run(out, "bad", "finetune", seed, [9.0, 9.0, 9.5, 9.0, 9.0], det)
        else:
            write_run(out, "bad", "finetune", seed, [9.0] * len(STEPS))
        write_run(out, "same", "scratch", seed, ramp(250, rng))
        write_run(out, "same", "finetune", seed, ramp(250, rng))
    return out


def test_report_files_and_verdicts(bench: Path) -> None:
    analysis = write_report(bench)
    labels = {(r.pair, r.arm): r.label for r in analysis.results}
    assert labels[("good", "finetune")] == "positive"
    assert labels[("good", "freeze")] == "positive"
    assert labels[("bad", "finetune")] == "negative"
    assert labels[("same", "finetune")] != "positive"
    assert all(r.control_ok for r in analysis.results)
    for name in ("report.md", "report.json", "runs.csv", "comparisons.csv", "learning_curves.png",
                 "auc_difference.png", "probability_of_improvement.png"):
        assert (bench / name).stat().st_size > 1000 or name.endswith((".csv", ".json")), name
    md = (bench / "report.md").read_text()
    for text in ("| good | useful | finetune |", "**positive**", "**negative**", "## Methods", "Verdict rule",
                 "![Learning curves](learning_curves.png)", "censored", "tensorboard --logdir"):
        assert text in md, text
    assert list((bench / "tb_summary" / "good").rglob("events.out.tfevents.*"))


def test_runs_and_comparisons_csv(bench: Path) -> None:
    write_report(bench)
    with open(bench / "runs.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 5 * 7
    stopped = [r for r in rows if r["pair"] == "bad" and r["arm"] == "finetune" and r["stopped_early"] == "1"]
    assert len(stopped) == 3 and all(r["steps_saved"] == "600" and r["alarm_step"] == "400" for r in stopped)
    # a stopped run's last evaluation is held to the budget: its AUC is that of a flat ~9 curve
    assert all(abs(float(r["auc"]) - 9.1 / 500) < 0.002 for r in stopped)
    with open(bench / "comparisons.csv") as fh:
        comps = list(csv.DictReader(fh))
    assert len(comps) == 4 * (4 + 1)  # 4 arms x (4 metrics + transfer ratio)
    auc_good = next(c for c in comps if c["pair"] == "good" and c["arm"] == "finetune" and c["metric"] == "auc")
    assert float(auc_good["ci_low"]) > 0 and auc_good["verdict"] == "positive"
    assert float(auc_good["holm_p"]) >= float(auc_good["welch_p"])


def test_compute_saved_and_json(bench: Path) -> None:
    write_report(bench)
    data = json.loads((bench / "report.json").read_text())
    bad = next(r for r in data["results"] if r["pair"] == "bad")
    assert bad["steps_saved"] == 1800 and bad["alarms"] == 3 and bad["budget"] == BUDGET
    assert bad["expected"] == "negative" and bad["control_ok"] is True
    assert "| bad | planted_negative | finetune |" in (bench / "report.md").read_text()
    assert "1.80 runs" in (bench / "report.md").read_text()
    assert set(bad["comparisons"]) == {"jumpstart", "asymptotic", "auc", "time_to_threshold"}
    assert data["settings"]["seeds"] == [0, 1, 2, 3, 4]


def test_partial_benchmark_too_few_seeds(tmp_path: Path) -> None:
    out = tmp_path / "partial"
    make_suite(out)
    rng = np.random.default_rng(1)
    for seed in range(2):
        write_run(out, "good", "scratch", seed, ramp(100, rng))
        write_run(out, "good", "finetune", seed, ramp(480, rng, start=400))
    unfinished = write_run(out, "good", "freeze", 0, ramp(400, rng))
    write_status(unfinished, "running")
    analysis = write_report(out)
    assert [(r.pair, r.arm) for r in analysis.results] == [("good", "finetune")]
    result = analysis.results[0]
    assert result.label == "inconclusive" and "too few seeds" in result.reason
    assert len(analysis.missing) == 5 * 7 - 4
    md = (out / "report.md").read_text()
    assert "Partial report" in md and "resume" in md


def test_time_to_threshold_censoring(bench: Path) -> None:
    analysis = analyze(bench)
    bad = next(r for r in analysis.results if r.pair == "bad")
    ttt = bad.comparisons["time_to_threshold"]
    assert ttt.censored_transfer == 5 and ttt.censored_scratch == 5 and ttt.diff == 0.0


def test_mean_ci_band_by_hand() -> None:
    runs = [RunRecord("p", "a", "a", i, "", "done", 10, steps=[0, 10], returns=[v, v]) for i, v in
            enumerate([1.0, 2.0, 3.0])]
    mean, low, high = mean_ci_band(runs, np.array([0.0, 5.0, 10.0]))
    assert np.allclose(mean, 2.0)
    half = 4.302652729911275 * 1.0 / np.sqrt(3)  # t_{0.975, 2} * sd / sqrt(n)
    assert np.allclose(high - mean, half) and np.allclose(mean - low, half)


def test_cli_report_rerenders(bench: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(bench)]) == 0
    out = capsys.readouterr().out
    assert "good / finetune: positive" in out and "report.md" in out
    assert main(["report", str(bench.parent / "nothing")]) == 2


def test_zero_shot_returns_are_absolute_first_evaluations(bench: Path) -> None:
    """Zero-shot (transfer / scratch): the mean over seeds of each arm's step-0 evaluation, in the main table
    and in report.json."""
    analysis = write_report(bench)
    bad = next(r for r in analysis.results if r.pair == "bad")
    assert bad.zero_shot_transfer == pytest.approx(9.0)
    scratch_first = [json.loads(json.dumps(r.returns[0])) for r in analysis.runs if r.pair == "bad" and r.arm == "scratch"]
    assert bad.zero_shot_scratch == pytest.approx(np.mean(scratch_first))
    assert bad.zero_shot_transfer - bad.zero_shot_scratch == pytest.approx(bad.comparisons["jumpstart"].diff)
    md = (bench / "report.md").read_text()
    assert "| zero-shot (transfer / scratch) |" in md
    assert f"| bad | planted_negative | finetune | 5 vs 5 | 9 / {np.mean(scratch_first):.3g} |" in md
    data = json.loads((bench / "report.json").read_text())
    row = next(r for r in data["results"] if r["pair"] == "bad")
    assert row["zero_shot_transfer"] == pytest.approx(9.0) and row["zero_shot_scratch"] == pytest.approx(bad.zero_shot_scratch)


# ------------------------------------------------------------------ one sign convention, no negative zero


def one_pair_bench(out: Path, arms: dict[str, list[list[float]]], **suite: object) -> Path:
    """A benchmark folder with one pair (``p``, on CartPole) whose arms have the given curves (one per seed)."""
    strategies = [a for a in arms if a != "scratch"]
    data = {"name": "onepair", "seeds": len(arms["scratch"]), "budget": BUDGET, "eval": {"freq": 100, "episodes": 2},
            "pairs": [{"name": "p", "role": "useful", "source": {"policy": "a.zip"}, "target": {"env": "cartpole"},
                       "strategies": strategies}], **suite}
    out.mkdir(parents=True, exist_ok=True)
    save_suite(validate(Suite, data, "test"), out)
    for arm, curves in arms.items():
        for seed, curve in enumerate(curves):
            write_run(out, "p", arm, seed, curve)
    return out


def reaching(step: int, seed: int) -> list[float]:
    """A CartPole curve that reaches the threshold (475) at ``step`` and stays there."""
    return [480.0 + seed if s >= step else 100.0 + seed for s in STEPS]


def _cells(md: str, prefix: str) -> list[str]:
    line = next(line for line in md.splitlines() if line.startswith(prefix))
    return [c.strip() for c in line.strip("|").split("|")]


def test_time_to_threshold_has_one_sign_convention_everywhere(tmp_path: Path) -> None:
    """Transfer reaches the threshold 500 steps sooner: every table, report.json and comparisons.csv say +500."""
    out = one_pair_bench(tmp_path / "b", {"scratch": [reaching(800, s) for s in range(3)],
                                          "finetune": [reaching(300, s) for s in range(3)]})
    write_report(out)
    md = (out / "report.md").read_text()
    main_row = _cells(md, "| p | useful | finetune |")
    header = _cells(md, "| pair | role | strategy |")
    ttt_main = main_row[header.index("time to threshold (steps sooner)")]
    detail = _cells(md, "| p | finetune | time to threshold")
    assert ttt_main.startswith("+500 [+500, +500]"), ttt_main
    assert detail[5] == "+500 [+500, +500]" and detail[3:5] == ["300", "800"], detail
    assert md.count("Sign convention") == 1 and "negative = " not in md and "positive = transfer faster" not in md
    data = json.loads((out / "report.json").read_text())
    assert data["sign_convention"].startswith("every difference is oriented so that positive means the arm is better")
    ttt = data["results"][0]["comparisons"]["time_to_threshold"]
    assert ttt["diff"] == 500 and ttt["mean_transfer"] == 300 and ttt["mean_scratch"] == 800
    with open(out / "comparisons.csv") as fh:
        row = next(r for r in csv.DictReader(fh) if r["metric"] == "time_to_threshold")
    assert float(row["diff"]) == 500


NEGATIVE_ZERO = re.compile(r"(?<![\w.])-0(?:\.0*)?(?![\d.eE])")


def test_no_negative_zero_anywhere(bench: Path) -> None:
    """Every time to threshold of the hand-made bench is censored at the budget: differences of exactly 0."""
    write_report(bench)
    assert NEGATIVE_ZERO.findall("-0 [-0, -0] -0.0 x-0.5 -0.05 1e-05 -0.0e+00") == ["-0", "-0", "-0", "-0.0"]
    for name in ("report.md", "report.json", "comparisons.csv", "runs.csv"):
        text = (bench / name).read_text()
        assert not NEGATIVE_ZERO.search(text), f"{name}: {NEGATIVE_ZERO.search(text)!r}"
    assert "| 0 [0, 0] (censored 5/5 vs 5/5) |" in (bench / "report.md").read_text()


def test_intervals_are_stated_at_the_suites_level(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    out = one_pair_bench(tmp_path / "b", {"scratch": [ramp(200, rng) for _ in range(3)],
                                          "finetune": [ramp(400, rng) for _ in range(3)]}, alpha=0.1)
    analysis = write_report(out)
    md = (out / "report.md").read_text()
    before_rule = md.split("```")[0]  # the verdict rule itself describes the default (95%)
    assert "95%" not in before_rule and "Intervals are 90% (alpha = 0.1)" in before_rule
    assert "| difference [90% CI] |" in md and "90% CI" in analysis.results[0].reason
    fig = curves_figure(analysis)
    assert "90% CI bands" in fig._suptitle.get_text().replace("\n", " ")


# --------------------------------------------------------------------------------------- run counts


def test_run_counts_are_the_runners_in_its_words(tmp_path: Path) -> None:
    """A trained source, two pairs sharing it and their scratch runs, one transfer run failed: 13 runs, as the
    runner counted them (the report used to say 15 finished of 16: no source, shared scratch counted twice)."""
    out, tasks = stored_benchmark(tmp_path / "b", fail={"runs/p/freeze/seed1"})
    assert len(tasks) == 13
    write_session(out, tasks, executed=12, skipped=0, failed=1)
    analysis = write_report(out)
    md = (out / "report.md").read_text()
    assert ("Runs: 13 runs (1 source, 3 scratch, 9 transfer): 12 finished, 1 failed, 0 still to run. "
            "Last session: 12 executed, 0 already done, 1 failed.") in md
    assert "**Partial report**: 1 of the 13 runs are not finished" in md
    data = json.loads((out / "report.json").read_text())
    assert data["run_counts"]["total"] == 13 and data["run_counts"]["finished"] == 12
    assert data["run_counts"]["last_session"]["executed"] == 12
    assert data["missing_runs"] == ["runs/p/freeze/seed1"]
    assert analysis.counts is not None and analysis.counts.total == len(tasks)


def test_runs_blocked_by_a_failed_source_count_as_failed_like_the_runner(tmp_path: Path) -> None:
    out, tasks = stored_benchmark(tmp_path / "b", fail={"source"}, absent={"transfer"})
    write_session(out, tasks, executed=3, skipped=0, failed=10)
    write_report(out)
    md = (out / "report.md").read_text()
    assert ("13 runs (1 source, 3 scratch, 9 transfer): 3 finished, 10 failed (9 of them not run: a run they "
            "depend on failed), 0 still to run. Last session: 3 executed, 0 already done, 10 failed.") in md


# ------------------------------------------------------------------------------------------- figures


def test_one_pair_curves_fit_a_column_with_nothing_clipped(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    out = one_pair_bench(tmp_path / "b", {"scratch": [ramp(200, rng) for _ in range(3)],
                                          "freeze": [ramp(400, rng) for _ in range(3)]})
    analysis = write_report(out)
    fig = curves_figure(analysis)
    assert fig.get_size_inches()[0] <= COLUMN_WIDTH + 1e-9
    assert texts_outside(fig) == [], "the suptitle used to run off both sides with one pair"
    assert small_fonts(fig) == []
    assert all(line.get_linewidth() >= 1.0 for ax in fig.axes for line in ax.get_lines())
    for fig in (interval_figure(analysis.results, [(0.1, 0.0, 0.2)], 0.0, "x", "t"),):
        assert fig.get_size_inches()[0] <= COLUMN_WIDTH + 1e-9 and texts_outside(fig) == [] and not small_fonts(fig)


def test_many_pair_figures_fit_the_text_width(bench: Path) -> None:
    analysis = analyze(bench)
    for fig in (curves_figure(analysis),
                interval_figure(analysis.results, [(0.1, 0.0, 0.2)] * len(analysis.results), 0.0,
                                "normalized AUC difference, transfer - scratch (95% CI)",
                                "Transfer effect per pair and strategy")):
        assert fig.get_size_inches()[0] <= TEXT_WIDTH + 1e-9
        assert texts_outside(fig) == [] and small_fonts(fig) == []


def test_bands_stay_inside_the_familys_return_range(tmp_path: Path) -> None:
    """CartPole returns lie in [0, 500]: one good seed among bad ones, or one bad among good ones, used to
    give bands from -260 to beyond 500."""
    low = [[0.0] * len(STEPS)] * 4 + [[500.0] * len(STEPS)]
    high = [[500.0] * len(STEPS)] * 4 + [[0.0] * len(STEPS)]
    out = one_pair_bench(tmp_path / "b", {"scratch": low, "finetune": high})
    analysis = analyze(out)
    assert analysis.return_ranges == {"p": (0.0, 500.0)}
    mean, lo, hi = mean_ci_band(analysis.runs_of("p", "scratch"), np.linspace(0, BUDGET, 11))
    assert lo.min() < -100 and hi.max() < 500, "the t-interval itself leaves the range"
    for ax in curves_figure(analysis).axes:
        for band in ax.collections:
            ys = np.concatenate([p.vertices[:, 1] for p in band.get_paths()])
            assert ys.min() >= 0 and ys.max() <= 500, (band.get_gid(), ys.min(), ys.max())
    mean, lo, hi = mean_ci_band(analysis.runs_of("p", "finetune"), np.linspace(0, BUDGET, 11),
                                return_range=(0.0, 500.0))
    assert lo.min() >= 0 and hi.max() == 500 and mean.tolist() == [400.0] * 11


def test_each_arm_has_one_colour_in_every_figure(tmp_path: Path) -> None:
    """``freeze`` is the second arm of one pair and the only arm of the other: one colour in every panel and
    figure (it used to follow the plotting order)."""
    out = tmp_path / "b"
    out.mkdir()
    save_suite(validate(Suite, {
        "name": "colours", "seeds": 3, "budget": BUDGET, "eval": {"freq": 100, "episodes": 2},
        "pairs": [
            {"name": "a", "source": {"policy": "a.zip"}, "target": {"env": "cartpole"},
             "strategies": ["finetune", "freeze", {"name": "finetune", "label": "tuned"}]},
            {"name": "b", "source": {"policy": "b.zip"}, "target": {"env": "cartpole", "params": {"length": 1.0}},
             "strategies": ["freeze"]},
        ]}, "test"), out)
    rng = np.random.default_rng(4)
    for pair, arms in (("a", ["scratch", "finetune", "freeze", "tuned"]), ("b", ["scratch", "freeze"])):
        for arm in arms:
            for seed in range(3):
                write_run(out, pair, arm, seed, ramp(300, rng))
    analysis = analyze(out)
    curves = colors_by_gid(curves_figure(analysis), "arm")
    intervals = colors_by_gid(interval_figure(analysis.results, [(0.1, 0.0, 0.2)] * 4, 0.0, "x", "t",
                                              colors=report_colors(analysis)), "arm")
    assert len(curves["freeze"]) == 2 and len(set(curves["freeze"])) == 1, curves
    for arm in ("finetune", "freeze", "tuned"):
        assert set(intervals[arm]) == set(curves[arm]), arm
    assert len({curves[a][0] for a in ("scratch", "finetune", "freeze", "tuned")}) == 4
    write_report(out, formats=["svg"])
    svg = (out / "learning_curves.svg").read_text()
    assert sorted(re.findall(r'id="arm_(\d)_freeze"', svg)) == ["0", "1"], "ids name the arm in the SVG"


def test_plots_in_every_format_asked_for_and_linked(bench: Path) -> None:
    with pytest.raises(ConfigError, match="plot format 'eps' is not supported.* Valid: png, pdf, svg"):
        write_report(bench, formats="png,eps")
    assert not (bench / "report.md").exists(), "checked before anything is written"
    write_report(bench, formats=("pdf", "svg"), dpi=300)
    for stem in ("learning_curves", "auc_difference", "probability_of_improvement"):
        assert (bench / f"{stem}.pdf").read_bytes().startswith(b"%PDF")
        assert (bench / f"{stem}.svg").read_bytes().startswith(b"<?xml")
        assert not (bench / f"{stem}.png").exists()
    md = (bench / "report.md").read_text()
    assert "![Learning curves](learning_curves.svg)" in md and "Also as [PDF](learning_curves.pdf)." in md
    assert ".png" not in md
    write_report(bench, formats="png,pdf")
    md = (bench / "report.md").read_text()
    assert "![Learning curves](learning_curves.png)" in md and "(learning_curves.svg)" not in md
