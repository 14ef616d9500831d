"""Training: run directory layout, evaluation curve, TensorBoard logs, reproducibility, algorithms."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from tiny import tiny
from rltransfer.errors import ConfigError
from rltransfer.pipeline import train
from rltransfer.training import EvalCurve


def test_run_directory_layout(tmp_path: Path) -> None:
    result = train("cartpole", tiny("ppo", "cartpole"), params={"length": 0.7}, steps=256, seed=1,
                   out=tmp_path, name="run", eval_freq=128, eval_episodes=2)
    run = tmp_path / "run"
    assert result.run_dir == run
    for name in ("config.yaml", "command.txt", "eval.csv", "eval.npz", "status.json", "policy/model.zip",
                 "policy/manifest.json"):
        assert (run / name).exists(), name
    config = yaml.safe_load((run / "config.yaml").read_text())
    spec = config["spec"]
    assert spec["env"]["params"]["length"] == 0.7 and spec["seed"] == 1 and spec["steps"] == 256
    assert spec["env"]["family"]["gym_id"] == "CartPole-v1"  # the family's content, not its name or path
    assert "stable_baselines3" in config["versions"]
    status = json.loads((run / "status.json").read_text())
    assert status["status"] == "done" and status["steps"] >= 256

    curve = EvalCurve.load(run)
    assert curve.steps[0] == 0  # zero-shot evaluation before learning
    assert curve.steps[-1] >= 256 and len(curve.steps) >= 3
    assert all(len(r) == 2 for r in curve.returns)
    csv_lines = (run / "eval.csv").read_text().splitlines()
    assert csv_lines[0] == "step,mean_return,std_return,n_episodes" and len(csv_lines) == len(curve.steps) + 1
    events = list((run / "tb").glob("events.out.tfevents.*"))
    assert events


def test_tensorboard_has_eval_hparams_and_env_params(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train("cartpole", tiny("ppo", "cartpole"), steps=128, seed=0, out=tmp_path, name="tb", eval_freq=64,
          eval_episodes=1)
    acc = EventAccumulator(str(tmp_path / "tb" / "tb"), size_guidance={"tensors": 0})
    acc.Reload()
    tags = acc.Tags()
    assert "eval/mean_return" in tags["scalars"]
    assert any(t.startswith("train/") for t in tags["scalars"])
    text_tags = set(tags["tensors"])
    assert any("config/env_params" in t for t in text_tags), text_tags
    assert acc.PluginTagToContent("hparams")  # the hyperparameter table


def test_same_seed_same_numbers(tmp_path: Path) -> None:
    spec = tiny("ppo", "cartpole")
    a = train("cartpole", spec, steps=256, seed=5, out=tmp_path, name="a", eval_freq=128, eval_episodes=2)
    b = train("cartpole", spec, steps=256, seed=5, out=tmp_path, name="b", eval_freq=128, eval_episodes=2)
    assert a.curve.mean == b.curve.mean and a.curve.returns == b.curve.returns
    for key, value in a.model.policy.state_dict().items():
        assert np.array_equal(value.numpy(), b.model.policy.state_dict()[key].numpy()), key
    c = train("cartpole", spec, steps=256, seed=6, out=tmp_path, name="c", eval_freq=128, eval_episodes=2)
    diff = any(
        not np.array_equal(v.numpy(), c.model.policy.state_dict()[k].numpy())
        for k, v in a.model.policy.state_dict().items()
    )
    assert diff


@pytest.mark.parametrize(
    ("algo", "family"),
    [("ppo", "pendulum"), ("a2c", "cartpole"), ("sac", "pendulum"), ("td3", "pendulum"), ("dqn", "cartpole")],
)
def test_every_algorithm_trains_and_saves(tmp_path: Path, algo: str, family: str) -> None:
    result = train(family, tiny(algo, family), steps=200, seed=0, out=tmp_path, name=algo, eval_freq=0,
                   eval_episodes=1)
    assert (result.policy_dir / "model.zip").is_file()
    assert result.curve.steps[0] == 0 and result.curve.steps[-1] >= 200


def test_normalized_agent_saves_statistics(tmp_path: Path) -> None:
    spec = tiny("ppo", "pendulum", normalize={"obs": True, "reward": True})
    result = train("pendulum", spec, steps=128, seed=0, out=tmp_path, name="norm", eval_freq=0, eval_episodes=1)
    stats = json.loads((result.policy_dir / "normalization.json").read_text())
    assert len(stats["obs_mean"]) == 3 and stats["count"] > 100


def test_bad_input_leaves_no_run_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="outside its hard bounds"):
        train("cartpole", tiny("ppo", "cartpole"), params={"length": 99.0}, steps=64, out=tmp_path, name="x")
    assert not (tmp_path / "x").exists()


@pytest.mark.learning
def test_ppo_solves_cartpole_within_100k_steps(tmp_path: Path) -> None:
    """Real learning check: the shipped PPO config reaches >= 475 on CartPole-v1 within 100k steps."""
    result = train("cartpole", "ppo", steps=100_000, seed=0, out=tmp_path, name="learn", eval_freq=10_000,
                   eval_episodes=10)
    assert max(result.curve.mean) >= 475, result.curve.mean


def test_subprocess_vec_env_gives_the_same_numbers(tmp_path: Path) -> None:
    sub = train("cartpole", tiny("ppo", "cartpole", vec_env="subproc"), steps=256, seed=2, out=tmp_path,
                name="sub", eval_freq=0, eval_episodes=2)
    dummy = train("cartpole", tiny("ppo", "cartpole"), steps=256, seed=2, out=tmp_path, name="dummy", eval_freq=0,
                  eval_episodes=2)
    assert sub.curve.returns == dummy.curve.returns
    config = yaml.safe_load((tmp_path / "sub" / "config.yaml").read_text())
    assert config["spec"]["agent"]["vec_env"] == "subproc"


def test_no_evaluation_when_episodes_is_zero(tmp_path: Path) -> None:
    result = train("cartpole", tiny("ppo", "cartpole"), steps=128, seed=0, out=tmp_path, name="noeval",
                   eval_freq=0, eval_episodes=0)
    assert result.curve.steps == [] and (result.policy_dir / "model.zip").is_file()


def test_config_yaml_loads_back_into_an_equal_spec(tmp_path: Path) -> None:
    from rltransfer.pipeline import execute
    from rltransfer.spec import load_spec, train_spec

    spec = train_spec("cartpole", tiny("ppo", "cartpole"), {"length": 0.7}, steps=64, seed=3, eval_freq=64,
                      eval_episodes=1, training_wrappers=["NegateReward"], curriculum="cartpole-length")
    execute(spec, tmp_path / "run")
    again = load_spec(tmp_path / "run")
    assert again == spec and again.fingerprint() == spec.fingerprint()
    assert json.loads((tmp_path / "run" / "status.json").read_text())["fingerprint"] == spec.fingerprint()
