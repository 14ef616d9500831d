"""Tests for rltransfer/report.py (and the analysis in rltransfer/benchmark.py) on hand-made run directories.

No training: each run directory gets a small ``eval.npz``, ``status.json`` and ``task.json`` written here.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from rltransfer.benchmark import RunRecord, Suite, analyze, save_suite
from rltransfer.cli import main
from rltransfer.config import validate
from rltransfer.report import mean_ci_band, write_report
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
