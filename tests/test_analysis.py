"""Tests for rltransfer/analysis.py's run counts (:func:`count_runs`), what report.json holds, the margins a suite
declares (rltransfer/suite.py) and how control pairs are checked, on hand-made benchmark folders: the suite is
expanded as the runner expands it and every run directory is written here (no training). Verdicts, profiles,
equivalence, time to threshold and aggregates on hand-made curves are in tests/test_report.py.

``stored_benchmark`` and ``write_session`` are also used by tests/test_report.py.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from pathlib import Path

import pytest

from rltransfer.analysis import ArmResult, analyze, count_runs, resolved_margins
from rltransfer.benchmark import Suite, Task, expand, save_suite, scratch_owners_of
from rltransfer.config import validate
from rltransfer.errors import ConfigError
from rltransfer.rundir import atomic_write_json, write_status
from rltransfer.suite import check_suite, stored_suite
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


# ------------------------------------------------------------------------------------ margins in the suite

def margin_suite(margins: object = None, pair_margins: object = None, policy: str = "a.zip") -> dict:
    pair = {"name": "p", "source": {"policy": policy}, "target": {"env": "cartpole"}, "strategies": ["finetune"]}
    if pair_margins is not None:
        pair["margins"] = pair_margins
    data = {"name": "m", "seeds": 3, "budget": BUDGET, "eval": {"freq": 100}, "pairs": [pair]}
    if margins is not None:
        data["margins"] = margins
    return data


@pytest.mark.parametrize(("margins", "message"), [
    ({"auc": -0.1}, r"margins\.auc: the margin of normalized AUC must be a fraction of the return range in \(0, 1\)"),
    ({"auc": 1.0}, r"margins\.auc: .*in \(0, 1\), e\.g\. 0\.05 \(got 1\.0\)"),
    ({"jumpstart": 0}, r"margins\.jumpstart: a margin must be a positive difference in return units"),
    ({"time_to_threshold": -5}, r"margins\.time_to_threshold: .*positive difference in environment steps"),
    ({"asymptotic": True}, r"margins\.asymptotic: expected a number, not true/false"),
    ({"auc": float("nan")}, r"margins\.auc: .*NaN and infinity are not allowed"),
    ({"AUC": 0.05}, r"unknown key 'margins\.AUC'.* Valid keys here: auc, jumpstart, asymptotic, time_to_threshold"),
])
def test_bad_margins_are_refused_naming_the_key_and_the_value(margins: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        validate(Suite, margin_suite(margins), "suite.yaml")
    with pytest.raises(ConfigError, match=message.replace(r"margins\.", r"pairs\.0\.margins\.")):
        validate(Suite, margin_suite(pair_margins=margins), "suite.yaml")


def test_margins_as_wide_as_the_range_or_the_budget_are_refused(tmp_path: Path) -> None:
    policy = tmp_path / "a.zip"
    policy.write_bytes(b"")
    suite = validate(Suite, margin_suite(pair_margins={"jumpstart": 500}, policy=str(policy)), "s.yaml")
    with pytest.raises(ConfigError, match=r"pairs\.0 \(p\)\.margins\.jumpstart: 500 is at least the whole return "
                                          r"range of 'cartpole' \(0 to 500\).* e\.g\. 25 \(5% of the range\)"):
        check_suite(suite)
    suite = validate(Suite, margin_suite({"time_to_threshold": BUDGET}, policy=str(policy)), "s.yaml")
    with pytest.raises(ConfigError, match=r"margins\.time_to_threshold \(pair p\): 1000 steps is at least the "
                                          r"pair's budget"):
        check_suite(suite)
    check_suite(validate(Suite, margin_suite({"jumpstart": 499, "time_to_threshold": 999}, policy=str(policy)), "s"))


def test_margins_resolve_pair_over_suite_over_defaults() -> None:
    suite = validate(Suite, margin_suite(), "s")
    assert resolved_margins(suite, suite.pairs[0], (0.0, 500.0)) == {
        "jumpstart": 25.0, "asymptotic": 25.0, "auc": 0.05, "time_to_threshold": 50.0}
    suite = validate(Suite, margin_suite({"auc": 0.02, "jumpstart": 10}, {"jumpstart": 5, "time_to_threshold": 200}),
                     "s")
    assert suite.margins_of(suite.pairs[0]) == {"auc": 0.02, "jumpstart": 5.0, "time_to_threshold": 200.0}
    assert resolved_margins(suite, suite.pairs[0], (-100.0, 100.0)) == {
        "jumpstart": 5.0, "asymptotic": 10.0, "auc": 0.02, "time_to_threshold": 200.0}


def test_a_suite_without_margins_is_stored_as_before(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    save_suite(validate(Suite, margin_suite(), "s"), tmp_path / "a")
    data = json.loads((tmp_path / "a" / "suite.json").read_text())
    assert "margins" not in data and "margins" not in data["pairs"][0]
    (tmp_path / "b").mkdir()
    save_suite(validate(Suite, margin_suite({"auc": 0.02}, {"jumpstart": 5}), "s"), tmp_path / "b")
    back = stored_suite(tmp_path / "b")
    assert back.margins.declared() == {"auc": 0.02} and back.margins_of(back.pairs[0]) == {"auc": 0.02, "jumpstart": 5}


@pytest.mark.parametrize(("role", "label", "ok"), [
    ("null", "equivalent", True), ("null", "inconclusive", True), ("null", "negative", False),
    ("null", "positive", False), ("useful", "positive", True), ("useful", "equivalent", False),
    ("planted_negative", "negative", True), ("planted_negative", "inconclusive", False), ("other", "positive", None),
])
def test_a_null_control_passes_when_it_is_neither_positive_nor_negative(role: str, label: str, ok: bool | None) -> None:
    r = ArmResult("p", "finetune", "finetune", role, label, "", float("nan"), {}, (0.0, 0.0, 0.0), 0, 0, 0, 1, 1)
    assert r.control_ok is ok
    assert r.expected == {"null": "equivalent or inconclusive", "useful": "positive",
                          "planted_negative": "negative"}.get(role)
