"""Checkpoints: N steps, checkpoint, new objects, restore, M steps == N+M steps in one go (bit-equal)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv

from rltransfer import checkpoints
from rltransfer.checkpoints import (
    CheckpointCallback,
    latest_checkpoint,
    load_checkpoint,
    prune_checkpoints,
    restore_env,
    save_checkpoint,
    snapshot_env,
)
from rltransfer.config import load_family
from rltransfer.environments import WrapperSpec, make_env, make_vec_env
from rltransfer.errors import BundleError, DivergenceError
from rltransfer.families import family_env
from rltransfer.rundir import run_state, write_status
from rltransfer.training import build_model, wrap_normalization
from tiny import tiny

SEED = 3


def build(algo: str, family: str, seed: int = SEED, **overrides: Any) -> tuple[BaseAlgorithm, VecEnv]:
    spec = tiny(algo, family, **overrides)
    venv = make_vec_env(load_family(family), None, spec.n_envs, seed, "dummy", ())
    venv = wrap_normalization(venv, spec)
    return build_model(spec, venv, seed), venv


def optimizer_states(model: BaseAlgorithm) -> dict[str, Any]:
    names, _ = checkpoints._torch_save_names(model)
    return {n: checkpoints._attr_path(model, n).state_dict() for n in names}


def assert_same(a: Any, b: Any, where: str = "") -> None:
    """Recursive bit-equality of nested dicts/lists of tensors and numbers."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert set(a) == set(b), where
        for k in a:
            assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def max_diff(a: BaseAlgorithm, b: BaseAlgorithm) -> float:
    sa, sb = a.policy.state_dict(), b.policy.state_dict()
    return max(float((sa[k].double() - sb[k].double()).abs().max()) for k in sa)


def assert_models_equal(a: BaseAlgorithm, b: BaseAlgorithm) -> None:
    assert a.num_timesteps == b.num_timesteps
    assert a._n_updates == b._n_updates
    assert a._current_progress_remaining == b._current_progress_remaining
    assert max_diff(a, b) == 0.0
    assert_same(a.policy.state_dict(), b.policy.state_dict(), "policy")
    assert_same(optimizer_states(a), optimizer_states(b), "optimizers")
    for name in checkpoints._torch_save_names(a)[1]:
        assert torch.equal(checkpoints._attr_path(a, name), checkpoints._attr_path(b, name)), name
    # Monitor's "t" is wall time and never equal: compare returns and lengths only.
    assert [(e["r"], e["l"]) for e in a.ep_info_buffer] == [(e["r"], e["l"]) for e in b.ep_info_buffer]


def resumed(algo: str, family: str, ckpt: Path, remaining: int, **overrides: Any) -> BaseAlgorithm:
    """What a new process does: build the same model/venv with the same seed, load, learn the rest."""
    model, venv = build(algo, family, **overrides)
    states = load_checkpoint(ckpt, model, venv)
    assert CheckpointCallback.STATE_KEY in states
    model.learn(total_timesteps=remaining, reset_num_timesteps=False)
    return model


# --------------------------------------------------------------------------------------- exact resume


@pytest.mark.parametrize("normalize", [False, True], ids=["plain", "vecnormalize"])
def test_ppo_resume_is_bit_equal(tmp_path: Path, normalize: bool) -> None:
    overrides = {"normalize": {"obs": True, "reward": True}} if normalize else {}
    full, venv = build("ppo", "cartpole", **overrides)
    cb = CheckpointCallback(tmp_path / "ckpt", save_freq=128, keep=5)
    full.learn(256, callback=cb)
    ckpt = tmp_path / "ckpt" / "ckpt-000000000128"
    manifest = json.loads((ckpt / checkpoints.MANIFEST_FILE).read_text())
    assert manifest["exact"], manifest["not_exact_because"]
    assert (ckpt / checkpoints.VECNORM_FILE).exists() == normalize

    model = resumed("ppo", "cartpole", ckpt, 128, **overrides)
    assert_models_equal(full, model)
    if normalize:
        a, b = full.get_env(), model.get_env()
        assert np.array_equal(a.obs_rms.mean, b.obs_rms.mean) and np.array_equal(a.obs_rms.var, b.obs_rms.var)
        assert np.array_equal(a.ret_rms.var, b.ret_rms.var) and np.array_equal(a.returns, b.returns)


def test_ppo_manual_save_after_learn_is_bit_equal(tmp_path: Path) -> None:
    """A save after ``learn(N)`` returned equals continuing in-process with ``learn(M, False)`` (not
    ``learn(N+M)``: the first ``learn`` ran its schedules over N steps)."""
    first, venv = build("ppo", "cartpole")
    first.learn(128)
    ckpt = save_checkpoint(first, venv, tmp_path, states={"mine": {"x": 1}})
    first.learn(128, reset_num_timesteps=False)
    model, venv2 = build("ppo", "cartpole")
    assert load_checkpoint(ckpt, model, venv2) == {"mine": {"x": 1}}
    model.learn(128, reset_num_timesteps=False)
    assert_models_equal(first, model)


@pytest.mark.parametrize(("n", "normalize"), [(150, False), (30, False), (150, True)],
                         ids=["after-warmup", "during-warmup", "vecnormalize"])
def test_sac_resume_is_bit_equal(tmp_path: Path, n: int, normalize: bool) -> None:
    """During warm-up SAC samples ``model.action_space``: its RNG is part of the checkpoint."""
    overrides = {"normalize": {"obs": True, "reward": False}} if normalize else {}
    full, _ = build("sac", "pendulum", **overrides)
    full.learn(300, callback=CheckpointCallback(tmp_path / "ckpt", save_freq=n, keep=20))
    ckpt = tmp_path / "ckpt" / f"ckpt-{n:012d}"
    assert json.loads((ckpt / checkpoints.MANIFEST_FILE).read_text())["exact"]
    model = resumed("sac", "pendulum", ckpt, 300 - n, **overrides)
    assert_models_equal(full, model)
    for name in ("observations", "next_observations", "actions", "rewards", "dones", "timeouts"):
        assert np.array_equal(getattr(full.replay_buffer, name), getattr(model.replay_buffer, name)), name
    assert (full.replay_buffer.pos, full.replay_buffer.full) == (model.replay_buffer.pos, model.replay_buffer.full)


def test_sac_without_replay_buffer_resumes_but_not_exactly(tmp_path: Path) -> None:
    model, venv = build("sac", "pendulum")
    model.learn(100)
    ckpt = save_checkpoint(model, venv, tmp_path, replay_buffer=False)
    manifest = json.loads((ckpt / checkpoints.MANIFEST_FILE).read_text())
    assert not manifest["exact"] and "replay buffer" in manifest["not_exact_because"][0]
    fresh, venv2 = build("sac", "pendulum")
    load_checkpoint(ckpt, fresh, venv2)
    assert fresh.replay_buffer.pos == 0 and fresh._last_obs is None
    fresh.learn(60, reset_num_timesteps=False)
    assert fresh.num_timesteps == 160


# ------------------------------------------------------------------------------------- env snapshots

FAMILIES = ["cartpole", "pendulum", "mountaincar", "acrobot"]


def _act(env: Any, rng: np.random.Generator) -> Any:
    space = env.action_space
    if hasattr(space, "n"):
        return int(rng.integers(space.n))
    return rng.uniform(space.low, space.high).astype(space.dtype)


@pytest.mark.parametrize("family", FAMILIES)
def test_env_snapshot_continues_identically(family: str) -> None:
    wrappers = (WrapperSpec("TimeFeatureWrapper", {"max_steps": 50}),)
    fam = load_family(family)
    env = make_env(fam, None, wrappers)
    env.reset(seed=1)
    rng = np.random.default_rng(0)
    for _ in range(7):
        env.step(_act(env, rng))
    snap = json.loads(json.dumps(checkpoints._enc(snapshot_env(env))))  # through JSON, as on disk
    assert snap["exact"], snap["reasons"]
    twin = make_env(fam, None, wrappers)
    twin.reset(seed=99)
    restore_env(twin, checkpoints._dec(snap))
    for _ in range(300):
        action = _act(env, rng)
        a, b = env.step(action), twin.step(action)
        assert np.array_equal(a[0], b[0]) and a[1:4] == b[1:4]
        if a[2] or a[3]:
            assert np.array_equal(env.reset()[0], twin.reset()[0])


def test_env_snapshot_keeps_family_params_and_deferred_ones() -> None:
    fam = load_family("cartpole")
    env = make_env(fam, {"length": 0.7})
    env.reset(seed=0)
    family_env(env).set_params({"length": 0.9}, defer=True)
    snap = checkpoints._dec(json.loads(json.dumps(checkpoints._enc(snapshot_env(env)))))
    twin = make_env(fam, None)
    twin.reset(seed=0)
    restore_env(twin, snap)
    assert family_env(twin).get_params()["length"] == pytest.approx(0.7)  # the simulator keeps the applied value
    assert family_env(twin).params["length"] == pytest.approx(0.9)  # pending until the next reset
    twin.reset()
    assert family_env(twin).get_params()["length"] == pytest.approx(0.9)


def test_restore_env_refuses_another_wrapper_chain() -> None:
    fam = load_family("cartpole")
    env = make_env(fam, None, (WrapperSpec("TimeFeatureWrapper", {}),))
    env.reset(seed=0)
    snap = snapshot_env(env)
    other = make_env(fam, None)
    with pytest.raises(BundleError, match="wrappers do not match"):
        restore_env(other, snap)


# -------------------------------------------------------------------------------------------- safety


def test_nonfinite_weights_are_never_written(tmp_path: Path) -> None:
    model, venv = build("ppo", "cartpole")
    cb = CheckpointCallback(tmp_path, save_freq=64)
    model.learn(128, callback=cb)
    good = latest_checkpoint(tmp_path)
    assert good is not None
    with torch.no_grad():
        next(model.policy.parameters()).view(-1)[0] = float("nan")
    model.num_timesteps += 64
    with pytest.raises(DivergenceError):
        save_checkpoint(model, venv, tmp_path)
    with pytest.raises(DivergenceError):
        cb.save_now()
    assert latest_checkpoint(tmp_path) == good
    assert not list(tmp_path.glob(".ckpt-*"))


@pytest.mark.parametrize("name", [checkpoints.POLICY_FILE, checkpoints.MODEL_FILE, checkpoints.ENVS_FILE])
def test_tampered_file_is_refused(tmp_path: Path, name: str) -> None:
    model, venv = build("ppo", "cartpole")
    model.learn(64)
    ckpt = save_checkpoint(model, venv, tmp_path)
    path = ckpt / name
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 1
    path.write_bytes(bytes(raw))
    fresh, venv2 = build("ppo", "cartpole")
    with pytest.raises(BundleError, match=rf"{name}: sha256 mismatch"):
        load_checkpoint(ckpt, fresh, venv2)


def test_checkpoint_of_another_model_is_refused(tmp_path: Path) -> None:
    model, venv = build("ppo", "cartpole")
    ckpt = save_checkpoint(model, venv, tmp_path)
    other, venv2 = build("ppo", "acrobot")
    with pytest.raises(BundleError, match="Observation spaces do not match"):
        load_checkpoint(ckpt, other, venv2)


def test_prune_keeps_the_last_k(tmp_path: Path) -> None:
    model, venv = build("ppo", "cartpole")
    for step in (64, 128, 192, 256):
        model.num_timesteps = step
        save_checkpoint(model, venv, tmp_path)
    prune_checkpoints(tmp_path, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt-000000000192", "ckpt-000000000256"]
    assert latest_checkpoint(tmp_path) == tmp_path / "ckpt-000000000256"
    assert latest_checkpoint(tmp_path / "missing") is None


def test_failed_save_leaves_the_previous_checkpoint_intact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model, venv = build("ppo", "cartpole")
    model.learn(64)
    good = save_checkpoint(model, venv, tmp_path)
    before = {p.name: p.read_bytes() for p in good.iterdir()}

    def boom(*args: Any) -> dict:
        raise KeyboardInterrupt("killed mid-save")

    monkeypatch.setattr(checkpoints, "_snapshot_venv", boom)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(model, venv, tmp_path)  # same step: would replace ``good``
    model.num_timesteps += 64
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(model, venv, tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [good.name]
    assert {p.name: p.read_bytes() for p in good.iterdir()} == before
    assert latest_checkpoint(tmp_path) == good
    # a save killed without cleanup leaves a hidden temporary folder: ignored, then removed by the next save
    (tmp_path / ".ckpt-000000000128.tmp-x").mkdir()
    monkeypatch.undo()
    assert latest_checkpoint(tmp_path) == good
    save_checkpoint(model, venv, tmp_path)
    assert not list(tmp_path.glob(".ckpt-*"))
    fresh, venv2 = build("ppo", "cartpole")
    load_checkpoint(good, fresh, venv2)


def test_callback_counts_and_does_not_resave_the_resumed_point(tmp_path: Path) -> None:
    model, _ = build("ppo", "cartpole")
    cb = CheckpointCallback(tmp_path, save_freq=64, keep=10)
    model.learn(192, callback=cb)
    assert [p.name for p in sorted(tmp_path.iterdir())] == ["ckpt-000000000064", "ckpt-000000000128"]
    assert cb.state_dict() == {"last_saved": 128, "saves": 2}
    fresh, venv = build("ppo", "cartpole")
    states = load_checkpoint(tmp_path / "ckpt-000000000128", fresh, venv)
    cb2 = CheckpointCallback(tmp_path, save_freq=64, keep=10)
    cb2.load_state_dict(states[CheckpointCallback.STATE_KEY])
    fresh.learn(128, reset_num_timesteps=False, callback=cb2)
    assert cb2.state_dict() == {"last_saved": 192, "saves": 3}
    mid = cb2.save_now()  # after learn returned: a safe point
    assert json.loads((mid / checkpoints.MANIFEST_FILE).read_text())["exact"]


def test_interrupted_status_is_reusable_like_failed(tmp_path: Path) -> None:
    write_status(tmp_path, "interrupted")
    assert run_state(tmp_path) == "failed"


# ----------------------------------------------------------------------------------------- PyBullet


@pytest.mark.skipif(importlib.util.find_spec("pybullet_envs_gymnasium") is None, reason="needs pybullet")
def test_pybullet_resume_keeps_weights_and_schedules_with_new_episodes(tmp_path: Path) -> None:
    hp = {"n_steps": 32, "batch_size": 32, "n_epochs": 1}
    model, venv = build("ppo", "invertedpendulum", n_envs=1, hyperparams=hp)
    model.learn(32)
    ckpt = save_checkpoint(model, venv, tmp_path)
    manifest = json.loads((ckpt / checkpoints.MANIFEST_FILE).read_text())
    assert not manifest["exact"] and any("cannot be snapshot" in r for r in manifest["not_exact_because"])
    fresh, venv2 = build("ppo", "invertedpendulum", n_envs=1, hyperparams=hp)
    load_checkpoint(ckpt, fresh, venv2)
    assert_same(model.policy.state_dict(), fresh.policy.state_dict(), "policy")
    assert fresh._last_obs is None and fresh.num_timesteps == 32
    fresh.learn(32, reset_num_timesteps=False)
    assert fresh.num_timesteps == 64 and fresh._total_timesteps == 64


# ----------------------------------------------------------------------------------- domain randomization


@pytest.mark.parametrize("family", ["cartpole", "pendulum"])  # Discrete with latency; Box with action noise too
def test_env_snapshot_with_domain_randomization_continues_identically(family: str) -> None:
    """Every randomization wrapper's episode state (counter, seed, stream, draw, bias, k, queue) survives a
    snapshot through JSON: the twin draws the same physics, noise and delays from then on."""
    from rltransfer.pipeline import _env_thunk
    from rltransfer.randomization import RANDOMIZATION_WRAPPERS
    from rltransfer.spec import env_spec

    spec = env_spec(family, randomize="dr")
    env, twin = _env_thunk(spec, 1, 5)(), _env_thunk(spec, 1, 5)()
    env.reset(seed=6)
    rng = np.random.default_rng(0)
    latencies = set()
    for _ in range(40):  # several episodes in: the episode counters are past 0
        out = env.step(_act(env, rng))
        if out[2] or out[3]:
            latencies.add(out[4]["dr"]["latency"])
            env.reset()
    snap = json.loads(json.dumps(checkpoints._enc(snapshot_env(env))))
    assert snap["exact"], snap["reasons"]
    assert {x["class"] for x in snap["layers"]} >= {c.__name__ for c in RANDOMIZATION_WRAPPERS
                                                   if family == "pendulum" or c.__name__ != "ActionNoise"}
    twin.reset(seed=99)
    restore_env(twin, checkpoints._dec(snap))
    for _ in range(400):
        action = _act(env, rng)
        a, b = env.step(action), twin.step(action)
        assert np.array_equal(a[0], b[0]) and a[1:4] == b[1:4]
        assert a[4].get("dr") == b[4].get("dr")
        if a[2] or a[3]:
            latencies.add(a[4]["dr"]["latency"])
            ra, rb = env.reset(), twin.reset()
            assert np.array_equal(ra[0], rb[0]) and ra[1]["dr"] == rb[1]["dr"]
    assert latencies == {0, 1}, "both latencies should have been drawn"


def test_randomization_state_is_validated_on_restore() -> None:
    from rltransfer.pipeline import _env_thunk
    from rltransfer.spec import env_spec

    env = _env_thunk(env_spec("pendulum", randomize="dr"), 0, 0)()
    env.reset(seed=0)
    snap = checkpoints._dec(json.loads(json.dumps(checkpoints._enc(snapshot_env(env)))))
    layer = next(x for x in snap["layers"] if x["class"] == "ActionLatency")
    layer["state"]["k"] = 7  # outside the preset's latency range [0, 1]
    with pytest.raises(BundleError, match=r"ActionLatency.*k must be an integer in \[0, 1\]"):
        restore_env(_env_thunk(env_spec("pendulum", randomize="dr"), 0, 0)(), snap)
    layer["state"]["k"] = 1
    layer["state"]["rng"] = {"bit_generator": "MT19937"}
    with pytest.raises(BundleError, match="PCG64"):
        restore_env(_env_thunk(env_spec("pendulum", randomize="dr"), 0, 0)(), snap)


def test_resume_with_domain_randomization_equals_one_uninterrupted_run(tmp_path: Path) -> None:
    """CartPole PPO under the ``dr`` preset (per-episode physics, observation noise, a 0-1 step latency on
    Discrete actions): N+M in one go == N, crash, resume, M, bit for bit (weights and evaluation curve)."""
    from stable_baselines3.common.callbacks import BaseCallback

    from rltransfer.bundle import load_bundle
    from rltransfer.pipeline import execute, resume
    from rltransfer.rundir import read_status
    from rltransfer.spec import CheckpointSpec, train_spec
    from rltransfer.training import EvalCurve

    assert load_family("cartpole").randomization["dr"].action_noise is None  # Discrete actions: no action noise
    spec = train_spec("cartpole", tiny("ppo", "cartpole"), steps=320, seed=4, eval_freq=64, eval_episodes=2,
                      checkpoints=CheckpointSpec(save_freq=128), randomize="dr")

    class Crash(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps >= 200:
                raise RuntimeError("simulated crash")
            return True

    whole = execute(spec, tmp_path / "whole")
    with pytest.raises(RuntimeError, match="simulated crash"):
        execute(spec, tmp_path / "cut", callbacks=[Crash()])
    ckpt = latest_checkpoint(tmp_path / "cut" / "checkpoints")
    manifest = json.loads((ckpt / "checkpoint.json").read_text())
    assert manifest["exact"], manifest["not_exact_because"]
    resumed = resume(tmp_path / "cut")
    a, b = load_bundle(whole.policy_dir).state_dict, load_bundle(resumed.policy_dir).state_dict
    assert a.keys() == b.keys()
    diff = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert diff == 0.0, f"max |diff| {diff}"
    assert EvalCurve.load(tmp_path / "whole").to_dict() == EvalCurve.load(tmp_path / "cut").to_dict()
    assert read_status(tmp_path / "cut")["status"] == "done"
