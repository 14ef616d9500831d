"""Training guards (rltransfer/callbacks.py): divergence stops a run, no bundle is written, statuses stay
strict JSON, and the collapse rule flags what it says."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import DQN, PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import DummyVecEnv

from tiny import tiny
from rltransfer.callbacks import CollapseMonitor, NanGuard, first_nonfinite_tensor
from rltransfer.errors import DivergenceError, RLTransferError
from rltransfer.rundir import atomic_write_json, json_safe
from rltransfer.pipeline import train
from rltransfer.training import is_distribution_error


def strict_json(path: Path) -> Any:
    """Parse ``path`` refusing ``NaN``/``Infinity`` (what ``json.loads`` accepts but JSON does not)."""
    def refuse(token: str) -> None:
        raise ValueError(f"{path}: non-standard JSON constant {token}")

    return json.loads(path.read_text(), parse_constant=refuse)


class Poison(BaseCallback):
    """Sets one element of the named parameter to NaN once ``num_timesteps >= at`` (at a chosen hook)."""

    def __init__(self, param: str | None, at: int = 0, hook: str = "step") -> None:
        super().__init__()
        self.param, self.at, self.hook, self.done = param, at, hook, False

    def _poison(self) -> None:
        if self.done or self.num_timesteps < self.at:
            return
        named = dict(self.model.policy.named_parameters())
        name = self.param if self.param in named else next(iter(named))
        with torch.no_grad():
            named[name].view(-1)[0] = math.nan
        self.done = True

    def _on_step(self) -> bool:
        if self.hook == "step":
            self._poison()
        return True

    def _on_rollout_end(self) -> None:
        if self.hook == "rollout_end":
            self._poison()

    def _on_training_end(self) -> None:
        if self.hook == "end":
            self._poison()


class AbsurdLR(BaseCallback):
    """Replaces the learning-rate schedule by 1e6 (what configs now refuse): a real divergence."""

    def _on_training_start(self) -> None:
        self.model.lr_schedule = lambda _: 1e6

    def _on_step(self) -> bool:
        return True


def _assert_failed_without_bundle(run: Path, pattern: str) -> dict[str, Any]:
    assert not (run / "policy").exists()
    assert not list(run.glob(".policy.*"))
    status = strict_json(run / "status.json")
    assert status["status"] == "failed" and "DivergenceError" in status["error"], status
    assert pattern in status["error"]
    return status


@pytest.mark.parametrize(
    "algo,family,param",
    [("ppo", "cartpole", "value_net.weight"), ("a2c", "cartpole", "value_net.weight"),
     ("dqn", "cartpole", None), ("sac", "pendulum", None), ("td3", "pendulum", None)],
    ids=["ppo", "a2c", "dqn", "sac", "td3"],
)
def test_nan_weight_stops_training_without_bundle(tmp_path: Path, algo: str, family: str, param: str) -> None:
    with pytest.raises(DivergenceError, match="non-finite") as info:
        train(family, tiny(algo, family), steps=400, seed=0, out=tmp_path, name="run", eval_freq=200,
              eval_episodes=1, callbacks=[Poison(param, at=100)])
    assert "at step" in str(info.value)
    _assert_failed_without_bundle(tmp_path / "run", "non-finite")


@pytest.mark.parametrize("algo,family", [("sac", "pendulum"), ("ppo", "pendulum")], ids=["sac", "ppo"])
def test_absurd_learning_rate_is_a_divergence_error_not_a_traceback(tmp_path: Path, algo: str, family: str) -> None:
    with pytest.raises(DivergenceError):
        train(family, tiny(algo, family), steps=600, seed=0, out=tmp_path, name="run", eval_freq=300,
              eval_episodes=1, callbacks=[AbsurdLR()])
    _assert_failed_without_bundle(tmp_path / "run", "DivergenceError")


def test_weights_poisoned_after_the_last_check_are_never_saved(tmp_path: Path) -> None:
    with pytest.raises(DivergenceError, match="non-finite weight in value_net.weight"):
        train("cartpole", tiny("ppo", "cartpole"), steps=128, seed=0, out=tmp_path, name="run", eval_freq=0,
              eval_episodes=0, callbacks=[Poison("value_net.weight", hook="end")])
    _assert_failed_without_bundle(tmp_path / "run", "non-finite weight in value_net.weight")


def test_guard_names_the_tensor() -> None:
    env = DummyVecEnv([lambda: gym.make("CartPole-v1")])
    model = PPO("MlpPolicy", env, n_steps=16, batch_size=16, policy_kwargs={"net_arch": [16]}, device="cpu")
    assert first_nonfinite_tensor(model) is None
    with torch.no_grad():
        model.policy.action_net.bias[1] = math.inf
    assert first_nonfinite_tensor(model) == "weight in action_net.bias"
    model.policy.action_net.bias.data.zero_()
    model.policy.value_net.weight.grad = torch.full_like(model.policy.value_net.weight, math.nan)
    assert first_nonfinite_tensor(model) == "gradient of value_net.weight"
    assert first_nonfinite_tensor(model, grads=False) is None


class NanRewardEnv(gym.Wrapper):
    """CartPole whose reward turns NaN after ``after`` steps (env 1 of the vec env in the tests)."""

    def __init__(self, after: int) -> None:
        super().__init__(gym.make("CartPole-v1"))
        self.after, self.t = after, 0

    def step(self, action: Any) -> Any:
        obs, reward, term, trunc, info = self.env.step(action)
        self.t += 1
        return obs, (math.nan if self.t > self.after else reward), term, trunc, info


@pytest.mark.parametrize("algo", ["ppo", "dqn"])
def test_nan_reward_names_the_env(algo: str) -> None:
    env = DummyVecEnv([lambda: NanRewardEnv(10**9), lambda: NanRewardEnv(20)])
    kwargs = {"policy_kwargs": {"net_arch": [16]}, "device": "cpu", "seed": 0}
    if algo == "ppo":
        model = PPO("MlpPolicy", env, n_steps=32, batch_size=32, **kwargs)
    else:
        model = DQN("MlpPolicy", env, learning_starts=1000, buffer_size=1000, **kwargs)
    with pytest.raises(DivergenceError, match="non-finite reward from env 1"):
        model.learn(200, callback=NanGuard())


def test_loss_check_reads_the_logger() -> None:
    env = DummyVecEnv([lambda: gym.make("CartPole-v1")])
    model = PPO("MlpPolicy", env, n_steps=16, batch_size=16, policy_kwargs={"net_arch": [16]}, device="cpu")
    from stable_baselines3.common.logger import configure

    model.set_logger(configure(None, []))
    guard = NanGuard()
    guard.init_callback(model)
    guard.logger.record("train/explained_variance", math.nan)  # legitimately NaN: not a loss
    guard.check_losses()
    guard.logger.record("train/critic_loss", math.inf)
    with pytest.raises(DivergenceError, match=r"non-finite train/critic_loss = inf at step 0"):
        guard.check_losses()


def test_only_distribution_validation_errors_count_as_divergence() -> None:
    try:
        torch.distributions.Normal(torch.tensor([math.nan]), torch.tensor([1.0]), validate_args=True)
    except ValueError as exc:
        assert is_distribution_error(exc)
    assert not is_distribution_error(ValueError("Expected parameter x, raised elsewhere"))
    assert not is_distribution_error(ValueError("something else"))
    assert issubclass(DivergenceError, RLTransferError)  # the CLI prints one line and exits 2


def test_cli_exits_2_on_divergence(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import rltransfer.pipeline
    from rltransfer.cli import main

    def diverge(*_: Any, **__: Any) -> None:
        raise DivergenceError("non-finite weight in actor.mu.weight at step 3,456; training stopped")

    monkeypatch.setattr(rltransfer.pipeline, "train", diverge)
    assert main(["train", "--env", "cartpole", "--agent", "ppo"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "rltransfer: error: non-finite weight in actor.mu.weight at step 3,456; training stopped"


def test_status_json_is_strict_json(tmp_path: Path) -> None:
    atomic_write_json(tmp_path / "s.json", {"a": math.nan, "b": [np.float32(np.inf), 1.5], "c": np.int64(3),
                                            "d": tmp_path})
    assert strict_json(tmp_path / "s.json") == {"a": None, "b": [None, 1.5], "c": 3, "d": str(tmp_path)}
    assert json_safe({"x": (-math.inf, np.array([1.0, math.nan]))}) == {"x": [None, [1.0, None]]}


def test_done_status_is_strict_json(tmp_path: Path) -> None:
    train("cartpole", tiny("ppo", "cartpole"), steps=64, seed=0, out=tmp_path, name="run", eval_freq=0,
          eval_episodes=1)
    status = strict_json(tmp_path / "run" / "status.json")
    assert status["status"] == "done" and status["collapse_steps"] == []
    assert {"pid", "host", "heartbeat", "started"} <= set(status)


def test_collapse_rule_hand_computed(caplog: pytest.LogCaptureFixture) -> None:
    mon = CollapseMonitor((0.0, 500.0), drop=0.5, patience=3)
    flags = []
    with caplog.at_level(logging.WARNING, logger="rltransfer.callbacks"):
        # best 500 -> collapsed below 250; 260 is not; three in a row (240, 100, 0) is a collapse.
        for step, mean in enumerate([100, 500, 240, 260, 240, 100, 0, 10, 480, 0]):
            flags.append(mon.update(step, mean))
    assert flags == [False, False, False, False, False, False, True, True, False, False]
    assert mon.collapse_steps == [6]
    assert len([r for r in caplog.records if "collapsed" in r.getMessage()]) == 1
    # a negative range (pendulum-like) and NaN evaluations count as collapsed
    neg = CollapseMonitor((-1600.0, 0.0), drop=0.5, patience=2)
    assert [neg.update(i, m) for i, m in enumerate([-1500, -200, -1100, math.nan])] == [False, False, False, True]
    with pytest.raises(ValueError):
        CollapseMonitor((1.0, 1.0))
