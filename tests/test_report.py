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
from rltransfer.report import (
    curves_figure,
    format_ci,
    interval_figure,
    mean_ci_band,
    performance_profile_figure,
    report_colors,
    survival_figure,
    write_report,
)
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
    assert "| 0 [0, 0] (censored 5/5 vs 5/5; log-rank p=1.000) |" in (bench / "report.md").read_text()


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
    for stem in ("learning_curves", "auc_difference", "probability_of_improvement", "time_to_threshold",
                 "performance_profiles"):
        assert (bench / f"{stem}.pdf").read_bytes().startswith(b"%PDF")
        assert (bench / f"{stem}.svg").read_bytes().startswith(b"<?xml")
        assert not (bench / f"{stem}.png").exists()
    md = (bench / "report.md").read_text()
    assert "![Learning curves](learning_curves.svg)" in md and "Also as [PDF](learning_curves.pdf)." in md
    assert ".png" not in md
    write_report(bench, formats="png,pdf")
    md = (bench / "report.md").read_text()
    assert "![Learning curves](learning_curves.png)" in md and "(learning_curves.svg)" not in md


# ------------------------------------------------------------------- equivalence, profiles, time to threshold


def flat_ramp(seed: int, offset: float = 0.0) -> list[float]:
    """A smooth CartPole ramp from ~10 to ~250, shifted by ``seed`` (tiny spread across seeds) and ``offset``."""
    return [10.0 + 240.0 * s / BUDGET + seed + offset for s in STEPS]


def test_a_null_pair_within_its_margins_is_equivalent(tmp_path: Path) -> None:
    """Arm and scratch differ by half a return everywhere, with a spread of a few returns: every metric is inside its
    margin (AUC 0.05, returns 25 = 5% of CartPole's range), so the verdict and the profile say "equivalent"."""
    from rltransfer import statistics as st

    out = one_pair_bench(tmp_path / "b", {"scratch": [flat_ramp(s) for s in range(5)],
                                          "finetune": [flat_ramp(s, 0.5) for s in range(5)]},
                         pairs=[{"name": "p", "role": "null", "source": {"policy": "a.zip"},
                                 "target": {"env": "cartpole"}, "strategies": ["finetune"]}])
    analysis = write_report(out)
    (r,) = analysis.results
    assert (r.label, r.profile, r.control_ok) == ("equivalent", "equivalent", True)
    assert r.margin == 0.05 and r.equivalence_p < 0.05 and "two one-sided tests" in r.reason
    auc = r.comparisons["auc"]
    t = np.array([x.metrics["auc"] for x in analysis.runs_of("p", "finetune")])
    s = np.array([x.metrics["auc"] for x in analysis.runs_of("p", "scratch")])
    assert auc.equivalent and auc.equivalence_p == pytest.approx(st.tost(t, s, 0.05).p_value)
    assert all(r.comparisons[m].equivalent for m in ("jumpstart", "asymptotic", "auc"))
    assert r.comparisons["jumpstart"].margin == 25.0 and r.comparisons["time_to_threshold"].margin == 50.0
    md = (out / "report.md").read_text()
    row = _cells(md, "| p | null | finetune |")
    header = _cells(md, "| pair | role | strategy |")
    assert row[header.index("verdict")] == "**equivalent** ✓ expected equivalent or inconclusive"
    assert row[header.index("profile")] == "**equivalent**"
    assert row[header.index("equivalence (AUC)")].startswith("shown within ±0.05 (TOST p")
    assert row[header.index("seeds per arm to decide (detect / equivalence)")] == "-"
    assert "Control comparisons (pair x arm) as expected: 1 of 1" in md


def test_an_undecided_null_pair_says_how_many_seeds_equivalence_would_take(tmp_path: Path) -> None:
    """The planning figure comes from the runs' pooled sd and the margin (seeds_for_margin), not the observed
    effect: with a spread of ~0.1 normalized AUC, tens of seeds per arm."""
    from rltransfer import statistics as st

    finals = {"scratch": [100, 300, 200, 400, 250], "finetune": [300, 150, 350, 200, 250]}
    arms = {arm: [[10 + (f - 10) * k / (len(STEPS) - 1) for k in range(len(STEPS))] for f in fs]
            for arm, fs in finals.items()}
    out = one_pair_bench(tmp_path / "b", arms, pairs=[{"name": "p", "role": "null", "source": {"policy": "a.zip"},
                                                       "target": {"env": "cartpole"}, "strategies": ["finetune"]}])
    analysis = write_report(out)
    (r,) = analysis.results
    assert (r.label, r.profile, r.control_ok) == ("inconclusive", "inconclusive", True)
    t = np.array([x.metrics["auc"] for x in analysis.runs_of("p", "finetune")])
    s = np.array([x.metrics["auc"] for x in analysis.runs_of("p", "scratch")])
    sd = st.pilot_sd(t, s)
    want_eq = st.seeds_for_margin(sd, 0.05, goal="equivalence")
    want = st.seeds_for_margin(sd, 0.05)
    assert r.seeds_needed_equivalence == want_eq and r.seeds_needed == want and 10 < want_eq < 1000
    md = (out / "report.md").read_text()
    row = _cells(md, "| p | null | finetune |")
    header = _cells(md, "| pair | role | strategy |")
    assert row[header.index("seeds per arm to decide (detect / equivalence)")] == f"~{int(want)} / ~{int(want_eq)}"
    assert row[header.index("equivalence (AUC)")].startswith("not shown within ±0.05")
    assert f"to show equivalence within +-0.05 ~{int(want_eq)}" in md, "the verdict's reason says it too"
    data = json.loads((out / "report.json").read_text())
    assert data["results"][0]["seeds_needed_equivalence"] == want_eq


def test_profiles_name_a_head_start_and_a_crossover(tmp_path: Path) -> None:
    """``finetune`` starts at 400 and stays there while scratch climbs to 400 by mid-budget (a head start only);
    ``freeze`` starts at 400 and decays to 100 (better early, worse later: a crossover). Holm runs over 2 arms x 3
    metrics."""
    from rltransfer import statistics as st

    wiggle = [0.0, 2.0, -2.0, 1.0, -1.0]
    n = len(STEPS) - 1
    scratch = [[min(400.0, 10 + 780 * k / n) + wiggle[s] for k in range(n + 1)] for s in range(5)]
    head = [[400 + wiggle[(s + 2) % 5]] * (n + 1) for s in range(5)]
    cross = [[400 - 300 * k / n + wiggle[(s + 1) % 5] for k in range(n + 1)] for s in range(5)]
    out = one_pair_bench(tmp_path / "b", {"scratch": scratch, "finetune": head, "freeze": cross})
    analysis = write_report(out)
    profiles = {r.arm: r.profile for r in analysis.results}
    assert profiles == {"finetune": "jumpstart only", "freeze": "crossover"}
    assert {r.arm: r.label for r in analysis.results}["finetune"] == "positive", "the AUC alone says positive"
    raw = [st.welch_p(np.array([x.metrics[k] for x in analysis.runs_of("p", arm)]),
                      np.array([x.metrics[k] for x in analysis.runs_of("p", "scratch")]))
           for arm in ("finetune", "freeze") for k in ("initial", "auc", "asymptotic")]
    adjusted = st.holm(np.array(raw))
    got = [r.comparisons[m].profile_holm_p for r in analysis.results for m in ("jumpstart", "auc", "asymptotic")]
    assert got == pytest.approx(adjusted.tolist())
    md = (out / "report.md").read_text()
    assert "Profile **jumpstart only**: a head start only" in md and "Profile **crossover**: crossover" in md


def test_profiles_agree_with_profile_suite_when_the_pairs_share_a_return_range(bench: Path) -> None:
    from rltransfer import statistics as st

    analysis = analyze(bench)

    def metrics(pair: str, arm: str) -> dict[str, np.ndarray]:
        return {k: np.array([x.metrics[k] for x in analysis.runs_of(pair, arm)]) for k in st.PROFILE_METRICS}

    want = st.profile_suite({(r.pair, r.arm): (metrics(r.pair, r.arm), metrics(r.pair, "scratch"))
                             for r in analysis.results}, return_range=(0.0, 500.0))
    assert {(r.pair, r.arm): r.profile for r in analysis.results} == {k: v.label for k, v in want.items()}
    assert {(r.pair, r.arm): r.profile for r in analysis.results}[("bad", "finetune")] == "worse"


def test_time_to_threshold_by_kaplan_meier_log_rank_and_restricted_means(tmp_path: Path) -> None:
    """The arm reaches the threshold at steps 300, 300 and 500; scratch at 600 and twice never (censored at the
    budget, 1000). By hand: restricted means up to tau = 1000 are (300 + 300 + 500) / 3 = 366.7 and 600 + 400 * 2/3
    = 866.7 (Kaplan-Meier: 2/3 of scratch runs still short of it after 600); their difference, 500 steps sooner,
    has the t interval of min(T, tau) on 2 df; the permutation log-rank test is exact over the C(6, 3) = 20 splits,
    and only the observed one and its mirror are as extreme: p = 2/20. Filling censored runs with the budget and
    comparing means is what the report used to do."""
    from scipy import stats

    never = [100.0 + k for k in range(len(STEPS))]
    out = one_pair_bench(tmp_path / "b", {"scratch": [reaching(600, 0), never, never],
                                          "finetune": [reaching(300, 0), reaching(300, 1), reaching(500, 2)]})
    analysis = write_report(out)
    (r,) = analysis.results
    ttt = r.comparisons["time_to_threshold"]
    assert (ttt.mean_transfer, ttt.mean_scratch) == pytest.approx((1100 / 3, 2600 / 3))
    se = np.sqrt(np.var([300, 300, 500], ddof=1) / 3 + np.var([600, 1000, 1000], ddof=1) / 3)
    half = stats.t.ppf(0.975, 2) * se
    assert (ttt.diff, ttt.ci_low, ttt.ci_high) == pytest.approx((500, 500 - half, 500 + half))
    assert ttt.rmst_p == pytest.approx(2 * stats.t.sf(500 / se, 2))
    assert ttt.test == "logrank" and ttt.logrank_p == pytest.approx(0.1) and ttt.p_value == ttt.logrank_p
    assert (ttt.censored_transfer, ttt.censored_scratch, ttt.tau) == (0, 2, BUDGET)
    # the log-rank statistic by hand: O - E = (2 - 1) + (1 - 1/4), V = 0.4 + 0.1875; asymptotic p for reference
    from rltransfer.statistics import logrank_test
    z = 1.75 / np.sqrt(0.5875)
    assert logrank_test([300, 300, 500], [0, 0, 0], [600, 1000, 1000], [0, 1, 1], method="asymptotic") == (
        pytest.approx(2 * stats.norm.sf(z)))
    km = r.survival
    assert km is not None and km.tau == BUDGET and km.threshold == 475
    assert (km.transfer.times, km.transfer.survival) == ([300.0, 500.0], pytest.approx([1 / 3, 0.0]))
    assert (km.scratch.times, km.scratch.survival, km.scratch.censored_at) == ([600.0], pytest.approx([2 / 3]),
                                                                               [1000.0, 1000.0])
    md = (out / "report.md").read_text()
    assert "| +500 [" in md and "(censored 0/3 vs 2/3; log-rank p=0.100) |" in md
    detail = _cells(md, "| p | finetune | time to threshold")
    assert detail[3:6] == ["367", "867", format_ci(500, 500 - half, 500 + half)]
    assert detail[7] == "log-rank 0.100"
    data = json.loads((out / "report.json").read_text())
    assert data["results"][0]["survival"]["scratch"]["censored_at"] == [1000.0, 1000.0]
    assert data["results"][0]["comparisons"]["time_to_threshold"]["logrank_p"] == pytest.approx(0.1)
    assert (out / "time_to_threshold.png").stat().st_size > 1000


def test_suite_aggregates_leave_the_controls_out(bench: Path) -> None:
    """Only the useful pair of the hand-made bench counts (the planted negative and the null are controls): its two
    arms are the tasks of "all transfer arms"; IQM, difference and probability of improvement as rliable's."""
    from rltransfer import statistics as st

    analysis = write_report(bench)
    (agg,) = analysis.aggregates
    assert agg.group == "all transfer arms" and agg.tasks == ["good/finetune", "good/freeze"]
    assert agg.excluded == ["bad/finetune", "same/finetune"] and (agg.runs_per_task, agg.scratch_runs_per_task) == (5, 5)

    def auc(arm: str) -> np.ndarray:
        return np.array([x.metrics["auc"] for x in analysis.runs_of("good", arm)])

    a = np.column_stack([auc("finetune"), auc("freeze")])
    s = np.column_stack([auc("scratch"), auc("scratch")])
    assert agg.iqm_arm[0] == pytest.approx(st.iqm(a)) and agg.iqm_scratch[0] == pytest.approx(st.iqm(s))
    assert agg.iqm_difference[0] == pytest.approx(st.iqm(a) - st.iqm(s))
    assert agg.iqm_arm[1] <= agg.iqm_arm[0] <= agg.iqm_arm[2]
    assert agg.prob_improvement[0] == pytest.approx(1.0), "every arm run beats every scratch run"
    assert agg.profile_arm[0] == 1.0 and len(agg.taus) == len(agg.profile_scratch) == 51
    md = (bench / "report.md").read_text()
    assert "### Across the suite" in md and "| all transfer arms | transfer | 2 | 5 / 5 |" in md
    assert "Left out: bad/finetune, same/finetune" in md
    data = json.loads((bench / "report.json").read_text())
    assert data["aggregates"][0]["tasks"] == ["good/finetune", "good/freeze"]
    assert (bench / "performance_profiles.png").stat().st_size > 1000


def test_the_methods_state_the_rules_as_applied(bench: Path) -> None:
    write_report(bench)
    md = (bench / "report.md").read_text()
    methods = md.split("## Methods", 1)[1]
    for text in ("Welch t interval with Hsu's conservative degrees of freedom min(n_t, n_s) - 1",
                 "the exact permutation test of the arm labels takes its place",
                 "Holm across pairs x metrics", "two one-sided Welch-Hsu tests (TOST)", "90% t interval inside +-margin",
                 "normalized AUC ±0.05 (default: 0.05)", "jumpstart ±25 (default: 5% of the family's return range)",
                 "the two-sided log-rank test", "restricted mean times to the threshold up to tau = the budget",
                 "interquartile mean", "never from the observed effect", "Verdict rule.", "Profile rule.",
                 "The verdict is the verdict rule on normalized AUC"):
        assert text in methods, text
    assert "bootstrap interval" not in md.split("### Per-metric details")[0].split("Sign convention")[1].replace(
        "stratified bootstrap interval (descriptive", ""), "the verdict's intervals are t intervals now"
    assert "Mann-Whitney" not in md.split("```")[0], "outside the verdict rule, which names the other tests"
    data = json.loads((bench / "report.json").read_text())
    assert data["rules"]["profile"].startswith("Profile rule.") and data["primary_verdict"].startswith("The verdict")
    assert data["settings"]["margins"]["good"] == {"jumpstart": 25.0, "asymptotic": 25.0, "auc": 0.05,
                                                   "time_to_threshold": 50.0}
    good = next(r for r in data["results"] if r["pair"] == "good")
    assert good["profile"] in ("better", "jumpstart only") and good["comparisons"]["auc"]["test"] == "welch"


def test_declared_margins_are_used_and_stated(tmp_path: Path) -> None:
    out = one_pair_bench(tmp_path / "b", {"scratch": [flat_ramp(s) for s in range(3)],
                                          "finetune": [flat_ramp(s, 0.5) for s in range(3)]},
                         margins={"auc": 0.02, "jumpstart": 10})
    analysis = write_report(out)
    (r,) = analysis.results
    assert r.margin == 0.02 and r.comparisons["jumpstart"].margin == 10 and r.comparisons["asymptotic"].margin == 25
    md = (out / "report.md").read_text()
    assert "normalized AUC ±0.02 (declared in the suite)" in md and "jumpstart ±10 (declared in the suite)" in md
    assert "shown within ±0.02" in md or "not shown within ±0.02" in md


def test_survival_and_profile_figures_fit_and_keep_each_arms_colour(bench: Path) -> None:
    analysis = analyze(bench)
    colors = report_colors(analysis)
    curves = colors_by_gid(curves_figure(analysis, colors), "arm")
    km_fig = survival_figure(analysis, colors)
    km = colors_by_gid(km_fig, "km")
    assert set(km) == {"scratch", "finetune", "freeze"} and len(km["scratch"]) == 3, "one scratch curve per pair"
    for arm, found in km.items():
        assert set(found) == set(curves[arm]), arm
    assert km_fig.axes[0].get_title().replace("\n", " ").startswith("good (return >= 475)")
    profile_fig = performance_profile_figure(analysis, colors)
    for fig in (km_fig, profile_fig):
        assert fig.get_size_inches()[0] <= TEXT_WIDTH + 1e-9
        assert texts_outside(fig) == [] and small_fonts(fig) == []
    assert set(colors_by_gid(profile_fig, "profile")["scratch"]) == set(curves["scratch"])
