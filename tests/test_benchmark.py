"""Tests for rltransfer/benchmark.py: suite validation, expansion, the runner (determinism, resume, kill)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from rltransfer import resources
from rltransfer.benchmark import Suite, expand, is_done, load_suite, run_suite, scratch_owners
from rltransfer.errors import ConfigError
from rltransfer.training import EvalCurve

TINY_AGENT = {
    "algo": "ppo",
    "families": {"cartpole": {
        "n_envs": 2, "n_timesteps": 1000,
        "hyperparams": {"n_steps": 32, "batch_size": 32, "n_epochs": 2, "gamma": 0.98, "learning_rate": 0.001},
        "policy_kwargs": {"net_arch": [16]},
    }},
}


def tiny_suite(folder: Path, **overrides: object) -> Path:
    """A suite of two pairs with 16-unit networks and budgets of a few hundred steps (seconds per run)."""
    (folder / "tiny_ppo.yaml").write_text(yaml.safe_dump(TINY_AGENT))
    data = {
        "name": "tiny",
        "seeds": 2,
        "budget": 384,
        "eval": {"freq": 128, "episodes": 2},
        "min_seeds": 2,
        "detection": {"enable": True, "action": "stop", "rule": "per_look", "min_evals": 1, "patience": 1,
                      "confidence": 0.6},
        "pairs": [
            {"name": "useful", "role": "useful", "agent": "tiny_ppo.yaml",
             "source": {"train": {"env": "cartpole", "agent": "tiny_ppo.yaml", "steps": 256}},
             "target": {"env": "cartpole", "params": {"length": 1.0}},
             "strategies": ["finetune"]},
            {"name": "planted", "role": "planted_negative", "agent": "tiny_ppo.yaml",
             "source": {"train": {"env": "cartpole", "agent": "tiny_ppo.yaml", "steps": 256,
                                  "training_wrappers": ["PermuteActions"]}},
             "target": {"env": "cartpole"},
             "strategies": ["finetune"]},
        ],
    }
    data.update(overrides)
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def write_yaml(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


# ------------------------------------------------------------------------------------------ validation


@pytest.mark.parametrize("name", resources.names("benchmarks"))
def test_every_shipped_suite_loads_and_expands(name: str, tmp_path: Path) -> None:
    suite = load_suite(name)
    tasks = expand(suite, tmp_path)
    n_seeds = len(suite.seed_list)
    runs = [t for t in tasks if t.kind != "source"]
    n_scratch_arms = len(set(scratch_owners(suite).values()))
    assert len(runs) == sum(len(p.arms) * n_seeds for p in suite.pairs) + n_scratch_arms * n_seeds
    roles = {p.role for p in suite.pairs}
    if any(p.strategies for p in suite.pairs):
        assert {"useful", "planted_negative", "null"} <= roles, "every shipped transfer suite has its control pairs"
    kinds = [t.kind for t in tasks]
    order = ["source", "scratch", "transfer", "curriculum"]
    assert kinds == sorted(kinds, key=order.index), "sources, then scratch, then transfer, then curriculum arms"


def test_unknown_key_names_file_and_key_path(tmp_path: Path) -> None:
    path = tiny_suite(tmp_path)
    data = yaml.safe_load(path.read_text())
    data["pairs"][0]["source"]["train"]["stepz"] = 10
    write_yaml(path, data)
    with pytest.raises(ConfigError) as info:
        load_suite(path)
    msg = str(info.value)
    assert str(path) in msg and "pairs.0.source.train.stepz" in msg and "Did you mean: 'steps'" in msg


def test_unknown_top_level_key(tmp_path: Path) -> None:
    path = tiny_suite(tmp_path, budgett=5)
    with pytest.raises(ConfigError, match=r"unknown key 'budgett'.*Did you mean: 'budget'"):
        load_suite(path)


def test_unknown_strategy_did_you_mean(tmp_path: Path) -> None:
    path = tiny_suite(tmp_path)
    data = yaml.safe_load(path.read_text())
    data["pairs"][1]["strategies"] = ["finetune", "fintune"]
    write_yaml(path, data)
    with pytest.raises(ConfigError) as info:
        load_suite(path)
    msg = str(info.value)
    assert "pairs.1.strategies.1" in msg and "Did you mean: 'finetune'" in msg


def test_strategy_options_are_checked(tmp_path: Path) -> None:
    path = tiny_suite(tmp_path)
    data = yaml.safe_load(path.read_text())
    data["pairs"][0]["strategies"] = [{"name": "finetune", "options": {"lr_scale": 0.5}}]
    write_yaml(path, data)
    with pytest.raises(ConfigError, match=r"pairs\.0\.strategies\.0.*does not use option"):
        load_suite(path)


def test_source_needs_exactly_one_kind(tmp_path: Path) -> None:
    path = tiny_suite(tmp_path)
    data = yaml.safe_load(path.read_text())
    data["pairs"][0]["source"]["policy"] = "somewhere.zip"
    write_yaml(path, data)
    with pytest.raises(ConfigError, match=r"pairs\.0\.source.*exactly one of 'train' or 'policy'"):
        load_suite(path)


def test_unknown_env_and_params_out_of_bounds_name_the_pair(tmp_path: Path) -> None:
    path = tiny_suite(tmp_path)
    data = yaml.safe_load(path.read_text())
    data["pairs"][0]["target"]["env"] = "cartpol"
    write_yaml(path, data)
    with pytest.raises(ConfigError, match=r"pairs\.0 \(useful\)\.target\.env: unknown env family 'cartpol'"):
        load_suite(path)
    data["pairs"][0]["target"] = {"env": "cartpole", "params": {"length": 99.0}}
    write_yaml(path, data)
    with pytest.raises(ConfigError, match=r"target\.params.*outside its hard bounds"):
        load_suite(path)


def test_duplicate_pairs_and_arms_rejected(tmp_path: Path) -> None:
    path = tiny_suite(tmp_path)
    data = yaml.safe_load(path.read_text())
    data["pairs"][1]["name"] = "useful"
    write_yaml(path, data)
    with pytest.raises(ConfigError, match="pair names must be unique"):
        load_suite(path)
    data["pairs"][1]["name"] = "planted"
    data["pairs"][1]["strategies"] = ["finetune", "finetune"]
    write_yaml(path, data)
    with pytest.raises(ConfigError, match="distinct 'label'"):
        load_suite(path)


def test_expansion_shares_sources_and_orders_dependencies(tmp_path: Path) -> None:
    path = tiny_suite(tmp_path)
    data = yaml.safe_load(path.read_text())
    same = json.loads(json.dumps(data["pairs"][0]))
    same["name"] = "useful-again"
    same["target"]["params"] = {"length": 1.5}
    data["pairs"].append(same)
    write_yaml(path, data)
    suite = load_suite(path)
    tasks = expand(suite, tmp_path / "out")
    sources = [t for t in tasks if t.kind == "source"]
    assert len(sources) == 2, "the two pairs with the same source spec share one source run"
    by_key = {t.key: t for t in tasks}
    # scratch runs need no source (the target agent comes from the source's spec): they start at once
    assert by_key["runs/useful/scratch/seed0"].deps == () == by_key["runs/useful-again/scratch/seed0"].deps
    useful_src = by_key["runs/useful/finetune/seed0"].deps[:1]
    assert useful_src == by_key["runs/useful-again/finetune/seed0"].deps[:1] and useful_src[0].startswith("sources/")
    transfer = by_key["runs/useful/finetune/seed1"]
    assert set(transfer.deps) == {*useful_src, "runs/useful/scratch/seed0", "runs/useful/scratch/seed1"}
    assert Path(transfer.run_dir) == (tmp_path / "out" / "runs/useful/finetune/seed1").resolve()
    # the hash covers the resolved spec: more steps -> another source
    data["pairs"][2]["source"]["train"]["steps"] = 512
    write_yaml(path, data)
    tasks2 = expand(load_suite(path), tmp_path / "out")
    assert len([t for t in tasks2 if t.kind == "source"]) == 3
    assert {t.fingerprint for t in tasks if t.kind == "source"} < {t.fingerprint for t in tasks2 if t.kind == "source"}


def test_fingerprints_hash_contents_not_names(tmp_path: Path) -> None:
    """The reported stale-resume bug: changing learning_rate in the target agent's YAML (same file name) must
    change every scratch and transfer fingerprint, and nothing else."""
    path = tiny_suite(tmp_path)
    data = yaml.safe_load(path.read_text())
    target_agent = json.loads(json.dumps(TINY_AGENT))
    (tmp_path / "target_ppo.yaml").write_text(yaml.safe_dump(target_agent))
    for pair in data["pairs"]:
        pair["agent"] = "target_ppo.yaml"
    write_yaml(path, data)
    before = {t.key: t.fingerprint for t in expand(load_suite(path), tmp_path / "out")}
    assert before == {t.key: t.fingerprint for t in expand(load_suite(path), tmp_path / "out")}
    target_agent["families"]["cartpole"]["hyperparams"]["learning_rate"] = 0.1
    (tmp_path / "target_ppo.yaml").write_text(yaml.safe_dump(target_agent))
    after = {t.key: t.fingerprint for t in expand(load_suite(path), tmp_path / "out")}
    assert before.keys() == after.keys()
    for key in before:
        if key.startswith("sources/"):
            assert before[key] == after[key], key
        else:
            assert before[key] != after[key], f"{key} kept its fingerprint after the agent's learning rate changed"
    # and a family YAML given by path: one parameter's nominal value changes every run on that family
    family = (Path(__file__).resolve().parents[1] / "envs" / "cartpole.yaml").read_text()
    (tmp_path / "my-cartpole.yaml").write_text(family)
    for pair in data["pairs"]:
        pair["target"]["env"] = "my-cartpole.yaml"
    write_yaml(path, data)
    one = {t.key: t.fingerprint for t in expand(load_suite(path), tmp_path / "out") if t.kind != "source"}
    (tmp_path / "my-cartpole.yaml").write_text(family.replace("nominal: 9.8", "nominal: 9.81", 1))
    two = {t.key: t.fingerprint for t in expand(load_suite(path), tmp_path / "out") if t.kind != "source"}
    assert all(one[k] != two[k] for k in one)


def test_identical_scratch_arms_are_shared(tmp_path: Path) -> None:
    path = tiny_suite(tmp_path)
    data = yaml.safe_load(path.read_text())
    null = json.loads(json.dumps(data["pairs"][0]))
    null.update(name="null", role="null")
    null["source"]["train"]["steps"] = 0  # another source, same agent: the scratch runs would be identical
    data["pairs"].append(null)
    write_yaml(path, data)
    suite = load_suite(path)
    assert scratch_owners(suite) == {"useful": "useful", "planted": "planted", "null": "useful"}
    tasks = expand(suite, tmp_path / "out")
    assert not [t for t in tasks if t.key.startswith("runs/null/scratch")]
    transfer = next(t for t in tasks if t.key == "runs/null/finetune/seed0")
    assert "runs/useful/scratch/seed1" in transfer.deps
    assert transfer.spec["detection"]["reference"][0].endswith("runs/useful/scratch/seed0")
    assert len([t for t in tasks if t.kind == "source"]) == 3


def test_seeds_as_list_and_pair_overrides(tmp_path: Path) -> None:
    path = tiny_suite(tmp_path, seeds=[3, 7])
    data = yaml.safe_load(path.read_text())
    data["pairs"][0]["budget"] = 640
    write_yaml(path, data)
    suite: Suite = load_suite(path)
    tasks = expand(suite, tmp_path)
    assert {t.seed for t in tasks if t.kind != "source"} == {3, 7}
    assert {t.spec["steps"] for t in tasks if t.pair == "useful"} == {640}
    assert {t.spec["steps"] for t in tasks if t.pair == "planted"} == {384}


# ------------------------------------------------------------------------------------------- the runner


def test_bad_runner_arguments_fail_before_writing_anything(tmp_path: Path) -> None:
    suite = tiny_suite(tmp_path)
    with pytest.raises(ConfigError, match="workers must be a positive integer"):
        run_suite(suite, tmp_path / "out", workers=0)
    with pytest.raises(ConfigError, match="add --backend ray"):
        run_suite(suite, tmp_path / "out", address="auto")
    assert not (tmp_path / "out").exists()


def _curves(out: Path) -> dict[str, list[list[float]]]:
    return {str(p.parent.relative_to(out)): EvalCurve.load(p.parent).returns
            for p in sorted(out.glob("runs/*/*/seed*/eval.npz"))}


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """The tiny suite run uninterrupted with 1 worker and with 2 workers."""
    root = tmp_path_factory.mktemp("tiny")
    suite = tiny_suite(root)
    one, two = root / "w1", root / "w2"
    r1 = run_suite(suite, one, workers=1, progress=False)
    r2 = run_suite(suite, two, workers=2, progress=False)
    assert not r1.failed and not r2.failed
    assert r1.executed == r2.executed == 2 + 2 * 4
    return suite, one, two


def test_same_results_with_one_and_two_workers(tiny_runs: tuple[Path, Path, Path]) -> None:
    _, one, two = tiny_runs
    c1, c2 = _curves(one), _curves(two)
    assert len(c1) == 8 and c1.keys() == c2.keys()
    for key in c1:
        assert c1[key] == c2[key], key
    r1 = json.loads((one / "report.json").read_text())
    r2 = json.loads((two / "report.json").read_text())
    assert [r["label"] for r in r1["results"]] == [r["label"] for r in r2["results"]]


def test_run_directories_and_report_files(tiny_runs: tuple[Path, Path, Path]) -> None:
    _, one, _ = tiny_runs
    assert len(list((one / "sources").iterdir())) == 2
    run = one / "runs" / "planted" / "finetune" / "seed0"
    for name in ("config.yaml", "status.json", "eval.npz", "policy/manifest.json", "task.json", "detection.json",
                 "transfer_plan.json"):
        assert (run / name).exists(), name
    assert json.loads((run / "task.json").read_text())["complete"] is True
    det = json.loads((run / "detection.json").read_text())
    assert det["enabled"] and det["reference_seeds"] == 2 and det["evaluations"]
    for name in ("report.md", "report.json", "runs.csv", "comparisons.csv", "learning_curves.png",
                 "auc_difference.png", "probability_of_improvement.png", "benchmark.json", "suite.json"):
        assert (one / name).stat().st_size > 0, name
    assert list((one / "tb_summary" / "useful").rglob("events.out.tfevents.*"))
    report = json.loads((one / "report.json").read_text())
    assert report["wall_time_seconds"] > 0 and len(report["runs"]) == 8


def test_resume_skips_done_runs_and_reruns_unfinished(tiny_runs: tuple[Path, Path, Path], tmp_path: Path) -> None:
    import shutil

    suite, one, _ = tiny_runs
    out = tmp_path / "copy"
    shutil.copytree(one, out)
    for lock in out.glob(".lock"):
        lock.unlink()
    # relocate: the copied task files still point to `one`; fingerprints do not depend on the folder
    victim = out / "runs" / "useful" / "finetune" / "seed1"
    (victim / "status.json").write_text(json.dumps({"status": "running"}))
    before = _curves(out)
    result = run_suite(suite, out, workers=1, progress=False)
    assert result.executed == 1 and result.skipped == 9
    assert _curves(out) == before, "the rerun reproduces the lost run exactly"
    tasks = expand(load_suite(suite), out)
    assert all(is_done(t) for t in tasks)


def test_kill_and_resume_gives_the_same_report(tiny_runs: tuple[Path, Path, Path], tmp_path: Path) -> None:
    suite, one, _ = tiny_runs
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "rltransfer.cli", "benchmark", str(suite), "--out", str(out), "--workers", "1",
           "--no-progress"]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    done_runs = 0
    try:
        while time.time() < deadline and proc.poll() is None:
            done_runs = sum(json.loads(p.read_text()).get("complete", False)
                            for p in out.glob("runs/*/*/seed*/task.json"))
            if done_runs >= 1:
                break
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the whole process group: the benchmark and its workers
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "killed before the benchmark finished"
    assert 1 <= done_runs < 8
    assert not (out / "report.md").exists()
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "already done" in result.stdout
    got = json.loads((out / "report.json").read_text())
    want = json.loads((one / "report.json").read_text())

    def per_run(report: dict) -> dict[str, dict]:
        return {f"{r['pair']}/{r['arm']}/{r['seed']}": (r["metrics"], r["alarm_step"]) for r in report["runs"]}

    assert per_run(got) == per_run(want)
    assert [(r["pair"], r["arm"], r["label"], r["comparisons"]["auc"]["diff"]) for r in got["results"]] == [
        (r["pair"], r["arm"], r["label"], r["comparisons"]["auc"]["diff"]) for r in want["results"]]


def test_detector_fallback_trains_from_scratch_after_the_alarm(tmp_path: Path) -> None:
    path = tiny_suite(tmp_path, detection={"action": "fallback", "rule": "per_look", "min_evals": 1, "patience": 1,
                                                  "confidence": 0.6})
    data = yaml.safe_load(path.read_text())
    data["pairs"] = data["pairs"][1:]  # the planted pair only
    write_yaml(path, data)
    result = run_suite(path, tmp_path / "out", workers=1, progress=False)
    assert not result.failed
    analysis = result.analysis
    assert analysis is not None
    fell_back = [r for r in analysis.runs if r.arm == "finetune" and r.alarm_step is not None]
    assert fell_back, "the tiny planted pair raises the alarm at its first evaluations"
    for record in fell_back:
        run = Path(record.run_dir)
        det = json.loads((run / "detection.json").read_text())
        assert det["fallback"]["steps"] == 384 - det["alarm_step"] and det["steps_saved"] == 0
        assert (run / "fallback" / "status.json").exists()
        # its own curve, ending where the detector stopped it (the fallback's is in its own run directory,
        # never spliced on: the comparison puts every run on the span all of them reached)
        assert record.steps[-1] < 384 and record.stopped_early


def test_ray_backend_gives_the_same_results(tiny_runs: tuple[Path, Path, Path], tmp_path: Path) -> None:
    pytest.importorskip("ray", reason="the Ray backend is an optional extra: pip install 'rltransfer[ray]'")
    suite, one, _ = tiny_runs
    result = run_suite(suite, tmp_path / "ray", workers=2, backend="ray", progress=False)
    assert not result.failed
    assert _curves(tmp_path / "ray") == _curves(one)


# ------------------------------------------------------------------------------------------ real learning


@pytest.mark.learning
def test_quick_suite_controls(tmp_path: Path) -> None:
    """The shipped quick suite end to end (about 10 minutes on 2 cores): the control pairs come out right."""
    result = run_suite("quick", tmp_path / "quick", workers=2, progress=False)
    assert not result.failed
    analysis = result.analysis
    assert analysis is not None
    by_role: dict[str, list[str]] = {}
    for r in analysis.results:
        by_role.setdefault(r.role, []).append(r.label)
    assert by_role["planted_negative"] and all(v == "negative" for v in by_role["planted_negative"]), by_role
    assert by_role["useful"] and all(v == "positive" for v in by_role["useful"]), by_role
    assert by_role["null"] and all(v in ("equivalent", "inconclusive") for v in by_role["null"]), by_role
    planted = [r for r in analysis.results if r.role == "planted_negative"]
    assert sum(r.alarms for r in planted) >= 1, "the online detector raised at least one alarm on the planted pair"
    assert np.isfinite(analysis.wall_time)


# ------------------------------------------------------------------------- wrappers for planted controls


def test_planting_wrappers() -> None:
    import gymnasium as gym

    from rltransfer.errors import IncompatibleSpacesError
    from rltransfer.wrappers import WRAPPERS, NegateReward, PermuteActions

    assert WRAPPERS["PermuteActions"] is PermuteActions and WRAPPERS["NegateReward"] is NegateReward
    swapped = PermuteActions(gym.make("CartPole-v1"))
    assert [swapped.action(a) for a in (0, 1)] == [1, 0]
    negated = PermuteActions(gym.make("Pendulum-v1"))
    assert np.allclose(negated.action(np.array([0.5])), [-0.5])
    with pytest.raises(ConfigError, match="permutation of 0..1"):
        PermuteActions(gym.make("CartPole-v1"), perm=[0, 0])
    with pytest.raises(IncompatibleSpacesError, match="symmetric about 0"):
        PermuteActions(_asymmetric_box_env())
    env = NegateReward(gym.make("CartPole-v1"))
    env.reset(seed=0)
    assert env.step(0)[1] == -1.0


def _asymmetric_box_env():
    import gymnasium as gym
    from gymnasium import spaces

    class Asym(gym.Env):
        observation_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
        action_space = spaces.Box(0.0, 1.0, (2,), np.float32)

    return Asym()


def _children(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            raw = stat.read_text()
        except OSError:
            continue
        if int(raw[raw.rindex(")") + 2:].split()[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


def _alive(pid: int) -> bool:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return raw[raw.rindex(")") + 2] != "Z"


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to find the worker processes")
def test_killed_session_counts_and_its_workers_die_with_it(tmp_path: Path) -> None:
    from rltransfer.benchmark import analyze

    suite = tiny_suite(tmp_path)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "rltransfer.cli", "benchmark", str(suite), "--out", str(out), "--workers", "2",
           "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: list[int] = []
    try:
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            sessions = json.loads((out / "benchmark.json").read_text())["sessions"] if (
                out / "benchmark.json").is_file() else []
            if sessions and sessions[-1]["runs_executed"] >= 1:
                break
            time.sleep(0.05)
        workers = [p for p in _children(proc.pid) if "resource_tracker" not in Path(
            f"/proc/{p}/cmdline").read_bytes().decode(errors="replace")]
    finally:
        proc.kill()  # the benchmark process only, not its group: its workers must follow by themselves
        proc.wait(timeout=30)
    killed_at = time.monotonic()
    assert workers, "the benchmark had started its workers"
    while any(_alive(p) for p in workers) and time.monotonic() - killed_at < 5:
        time.sleep(0.01)
    outlived = time.monotonic() - killed_at
    assert outlived < 1.0, f"workers outlived their parent by {outlived:.2f} s"
    session = json.loads((out / "benchmark.json").read_text())["sessions"][-1]
    assert session["complete"] is False and session["runs_executed"] >= 1 and session["seconds"] > 0
    assert analyze(out).wall_time >= session["seconds"]


def test_an_interrupted_benchmark_run_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    from stable_baselines3.common.callbacks import BaseCallback

    from rltransfer.benchmark import _mark, run_task
    from rltransfer.pipeline import Interrupted, execute
    from rltransfer.spec import RunSpec

    class Stop(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps >= 200:
                raise KeyboardInterrupt
            return True

    suite = load_suite(tiny_suite(tmp_path, save_freq=128))
    task = next(t for t in expand(suite, tmp_path / "out") if t.kind == "scratch")
    run_dir = Path(task.run_dir)
    run_dir.mkdir(parents=True)
    _mark(task, complete=False)
    with pytest.raises(Interrupted):
        execute(RunSpec.model_validate(task.spec), run_dir, callbacks=[Stop()])
    assert json.loads((run_dir / "status.json").read_text())["status"] == "interrupted"
    summary = run_task(task)
    assert summary["resumed_from"] and "ckpt-" in summary["resumed_from"]
    assert is_done(task)
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "done" and status["steps"] >= suite.budget
    assert EvalCurve.load(run_dir).steps[0] == 0  # the curve kept its start across the interruption


# ------------------------------------------------------------------------------- domain randomization


def test_sources_may_randomize_and_targets_name_a_variant(tmp_path: Path) -> None:
    """``randomize:`` and ``variant:`` reach the run specs; the scratch arm trains on the target variant, and
    a DR source gets the same target agent as a nominal one (the scratch runs are shared)."""
    path = tiny_suite(tmp_path)
    data = yaml.safe_load(path.read_text())
    data["pairs"] = [json.loads(json.dumps(data["pairs"][0])) for _ in range(2)]
    data["pairs"][0].update(name="dr-to-real")
    data["pairs"][0]["source"]["train"]["randomize"] = "dr"
    data["pairs"][1].update(name="nominal-to-real", role="other")
    for pair in data["pairs"]:
        pair["target"] = {"env": "cartpole", "variant": "real"}
    write_yaml(path, data)
    suite = load_suite(path)
    assert scratch_owners(suite) == {"dr-to-real": "dr-to-real", "nominal-to-real": "dr-to-real"}
    tasks = {t.key: t for t in expand(suite, tmp_path / "out")}
    sources = [t for t in tasks.values() if t.kind == "source"]
    assert sorted(t.spec["env"]["randomization_name"] or "" for t in sources) == ["", "dr"]
    assert all(t.spec["eval"]["env"]["randomization"] is None for t in sources)
    for key in ("runs/dr-to-real/scratch/seed0", "runs/dr-to-real/finetune/seed0", "runs/nominal-to-real/finetune/seed1"):
        spec = tasks[key].spec
        assert spec["env"]["variant"] == "real" and spec["eval"]["env"]["variant"] == "real", key
        assert spec["env"]["params"]["length"] == 0.6 and spec["env"]["sensors"]["latency"] == {"steps": 1, "low": None, "high": None}
        assert spec["env"]["randomization"] is None, key


@pytest.mark.parametrize("where,key,value,message", [
    ("source", "randomize", "dx", r"pairs\.0 \(useful\)\.source\.train\.randomize: .*'dx'.*Did you mean: 'dr'"),
    ("source", "variant", "reel", r"pairs\.0 \(useful\)\.source\.train\.variant: .*'reel'.*Did you mean: 'real'"),
    ("target", "variant", "reall", r"pairs\.0 \(useful\)\.target\.variant: .*'reall'.*Did you mean: 'real'"),
])
def test_unknown_preset_or_variant_names_file_and_key(tmp_path: Path, where: str, key: str, value: str,
                                                       message: str) -> None:
    path = tiny_suite(tmp_path)
    data = yaml.safe_load(path.read_text())
    (data["pairs"][0]["source"]["train"] if where == "source" else data["pairs"][0]["target"])[key] = value
    write_yaml(path, data)
    with pytest.raises(ConfigError, match=message) as info:
        load_suite(path)
    assert str(path) in str(info.value)


def test_a_parameter_set_by_both_the_source_and_its_preset_is_refused(tmp_path: Path) -> None:
    path = tiny_suite(tmp_path)
    data = yaml.safe_load(path.read_text())
    data["pairs"][0]["source"]["train"].update(randomize="dr", params={"length": 0.5})
    write_yaml(path, data)
    with pytest.raises(ConfigError, match=r"pairs\.0 \(useful\)\.source\.train: .*length.*one place only"):
        load_suite(path)


def test_a_preset_file_is_found_relative_to_the_suite(tmp_path: Path) -> None:
    (tmp_path / "light.yaml").write_text(yaml.safe_dump(
        {"family": "cartpole", "params": {"length": {"dist": "uniform", "low": 0.45, "high": 0.55}}}))
    path = tiny_suite(tmp_path)
    data = yaml.safe_load(path.read_text())
    data["pairs"][0]["source"]["train"]["randomize"] = "light.yaml"
    write_yaml(path, data)
    sources = [t for t in expand(load_suite(path), tmp_path / "out") if t.kind == "source"]
    assert sorted(t.spec["env"]["randomization_name"] or "" for t in sources) == ["", "light"]
