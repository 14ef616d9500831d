"""Tests for rltransfer/analysis.py's run counts (:func:`count_runs`) and what report.json holds, on hand-made
benchmark folders: the suite is expanded as the runner expands it and every run directory is written here
(no training).

``stored_benchmark`` and ``write_session`` are also used by tests/test_report.py.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from pathlib import Path

import pytest

from rltransfer.analysis import analyze, count_runs
from rltransfer.benchmark import Suite, Task, expand, save_suite, scratch_owners_of
from rltransfer.config import validate
from rltransfer.rundir import atomic_write_json, write_status
from rltransfer.training import EvalCurve

BUDGET = 1000


def counting_suite(detection: bool = True) -> Suite:
    """Two pairs on the same target trained from the same source spec: one source, one set of scratch runs."""
    train = {"env": "cartpole", "agent": "ppo", "steps": 256}
    return validate(Suite, {
        "name": "counting", "seeds": 3, "budget": BUDGET, "eval": {"freq": 100, "episodes": 2},
        "detection": {"enable": detection},
        "pairs": [
            {"name": "p", "role": "useful", "source": {"train": train}, "target": {"env": "cartpole"},
             "strategies": ["finetune", "freeze"]},
            {"name": "q", "role": "null", "source": {"train": train}, "target": {"env": "cartpole"},
             "strategies": [{"name": "lower_lr", "options": {"lr_scale": 0.5}}]},
        ],
    }, "test")


def stored_benchmark(out: Path, fail: Collection[str] = (), absent: Collection[str] = (),
                     detection: bool = True) -> tuple[Path, list[Task]]:
    """The counting suite's folder with every run done, except the runs in ``fail`` (failed) and ``absent``
    (never started); both hold keys or kinds (``"source"``, ``"transfer"``)."""
    suite = counting_suite(detection)
    out.mkdir(parents=True)
    save_suite(suite, out)
    tasks = expand(suite, out)
    atomic_write_json(out / "arms.json", {"scratch_owners": scratch_owners_of(tasks, suite)})
    for i, task in enumerate(tasks):
        if task.key in absent or task.kind in absent:
            continue
        run = Path(task.run_dir)
        run.mkdir(parents=True)
        if task.key in fail or task.kind in fail:
            atomic_write_json(run / "task.json", {"kind": task.kind, "complete": False, "fingerprint": task.fingerprint})
            write_status(run, "failed", error="RuntimeError: boom")
            continue
        if task.kind != "source":
            curve = EvalCurve()
            for step in range(0, BUDGET + 1, 100):
                value = 10.0 + step / 10 + i
                curve.append(step, [value, value], [int(value), int(value)])
            curve.save(run)
        atomic_write_json(run / "task.json", {"kind": task.kind, "complete": True, "fingerprint": task.fingerprint,
                                              "deps": list(task.deps)})
        write_status(run, "done", steps=BUDGET)
    return out, tasks


def write_session(out: Path, tasks: list[Task], executed: int, skipped: int, failed: int) -> None:
    """``benchmark.json`` with one session, as the runner writes it."""
    atomic_write_json(out / "benchmark.json", {"sessions": [{
        "start": 0.0, "end": 12.0, "seconds": 12.0, "complete": True, "workers": 2, "backend": "local",
        "runs_total": len(tasks), "runs_skipped": skipped, "runs_executed": executed, "runs_failed": failed,
        "interrupted": False}]})


def test_every_run_the_runner_runs_is_counted_once(tmp_path: Path) -> None:
    out, tasks = stored_benchmark(tmp_path / "b")
    counts = count_runs(counting_suite(), out)
    kinds = [t.kind for t in tasks]
    assert counts.by_kind == {k: kinds.count(k) for k in ("source", "scratch", "transfer", "curriculum")}
    assert counts.by_kind == {"source": 1, "scratch": 3, "transfer": 9, "curriculum": 0}
    assert (counts.total, counts.finished, counts.failed, counts.to_run) == (13, 13, 0, 0)
    assert counts.summary() == "13 runs (1 source, 3 scratch, 9 transfer): 13 finished, 0 failed, 0 still to run"
    assert counts.session is None and counts.session_summary() is None


@pytest.mark.parametrize(("detection", "blocked"), [(True, 9), (False, 0)])
def test_runs_after_a_failed_run_are_failed_as_the_runner_counts_them(tmp_path: Path, detection: bool,
                                                                      blocked: int) -> None:
    """A failed scratch run blocks every arm of its pairs when the detector compares with it (9 arms), else
    nothing; a failed source blocks its transfer arms."""
    out, _ = stored_benchmark(tmp_path / "s", fail={"runs/p/scratch/seed0"}, absent={"transfer"},
                                  detection=detection)
    counts = count_runs(counting_suite(detection), out)
    assert (counts.finished, counts.failed, counts.blocked) == (3, 1 + blocked, blocked)
    assert counts.to_run == 9 - blocked
    out, _ = stored_benchmark(tmp_path / "src", fail={"source"}, absent={"transfer"}, detection=detection)
    counts = count_runs(counting_suite(detection), out)
    assert (counts.finished, counts.failed, counts.blocked, counts.to_run) == (3, 10, 9, 0)


def test_the_last_session_is_kept_as_the_runner_recorded_it(tmp_path: Path) -> None:
    out, tasks = stored_benchmark(tmp_path / "b", fail={"runs/q/lower_lr/seed2"})
    write_session(out, tasks, executed=10, skipped=2, failed=1)
    analysis = analyze(out)
    assert analysis.counts is not None
    assert analysis.counts.session_summary() == "10 executed, 2 already done, 1 failed"
    assert analysis.missing == ["runs/q/lower_lr/seed2"]
    assert len(analysis.runs) == 3 * 2 + 9 - 1, "per pair: the shared scratch runs once for each pair"


def test_an_unfinished_source_is_missing_too(tmp_path: Path) -> None:
    out, tasks = stored_benchmark(tmp_path / "b", absent={"source", "transfer"})
    analysis = analyze(out)
    source = next(t.key for t in tasks if t.kind == "source")
    assert analysis.missing[0] == source and len(analysis.missing) == 10
    assert analysis.counts is not None and analysis.counts.to_run == 10


def test_a_source_whose_files_are_gone_is_the_one_its_arms_recorded(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The source's key is its spec's fingerprint; when the spec cannot be resolved any more (an agent file
    moved), the key its transfer arms recorded in ``task.json``."""
    from rltransfer import arms
    from rltransfer.errors import ConfigError

    out, _ = stored_benchmark(tmp_path / "b")

    def gone(*args: object, **kwargs: object) -> None:
        raise ConfigError("agent file not found")

    monkeypatch.setattr(arms, "source_spec", gone)
    counts = count_runs(counting_suite(), out)
    assert (counts.total, counts.finished) == (13, 13)


def test_report_json_has_its_conventions_and_no_negative_zero(tmp_path: Path) -> None:
    out, _ = stored_benchmark(tmp_path / "b")
    data = analyze(out).to_dict()
    assert data["sign_convention"].startswith("every difference is oriented so that positive means the arm")
    assert data["ci_level"] == pytest.approx(0.95)
    assert data["settings"]["return_ranges"] == {"p": [0.0, 500.0], "q": [0.0, 500.0]}
    assert data["run_counts"]["summary"].startswith("13 runs (1 source, 3 scratch, 9 transfer): 13 finished")
    text = json.dumps(data)
    assert "-0.0," not in text and "-0.0}" not in text and "-0.0]" not in text
