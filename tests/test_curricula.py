"""Curricula: validated stage files, stages advanced by steps or performance across vectorized envs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from rltransfer import resources
from rltransfer.curricula import Curriculum, CurriculumCallback, load_curriculum
from rltransfer.errors import ConfigError, ParameterBoundsError
from rltransfer.pipeline import train
from tiny import tiny


def test_shipped_curricula_load() -> None:
    names = resources.names("curricula")
    assert "cartpole-length" in names
    for name in names:
        curriculum = load_curriculum(name)
        assert curriculum.stages and curriculum.stages[-1].until is None


def test_bad_curricula_name_file_key_and_value(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("name: c\nfamily: cartpole\nstages:\n  - params: {length: 9.0}\n")
    with pytest.raises(ParameterBoundsError, match=r"c.yaml: stages.0.params: .*'length'.*9.0.*\[0.05, 5.0\]"):
        load_curriculum(path)
    path.write_text("name: c\nfamily: cartpole\nstages:\n  - params: {length: 1.0}\n  - params: {length: 2.0}\n")
    with pytest.raises(ConfigError, match="needs an 'until' gate"):
        load_curriculum(path)
    path.write_text("name: c\nfamily: cartpole\nstages:\n  - params: {length: 1.0}\n    until: {step: 10}\n")
    with pytest.raises(ConfigError, match=r"unknown key 'stages.0.until.step'.*Did you mean: 'steps'"):
        load_curriculum(path)


def _curriculum(gate: dict) -> Curriculum:
    return Curriculum.model_validate({"name": "t", "family": "cartpole", "stages": [
        {"params": {"length": 0.5}, "until": gate}, {"params": {"length": 1.5}}]})


def test_train_with_a_curriculum_logs_stages_and_records_it(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train("cartpole", tiny("ppo", "cartpole"), steps=512, seed=0, out=tmp_path, name="cur", eval_freq=0,
          eval_episodes=1, curriculum=_curriculum({"steps": 128}))
    config = yaml.safe_load((tmp_path / "cur" / "config.yaml").read_text())
    assert config["spec"]["curriculum"]["name"] == "t" and config["spec"]["env"]["params"]["length"] == 0.5
    acc = EventAccumulator(str(tmp_path / "cur" / "tb"))
    acc.Reload()
    assert [e.value for e in acc.Scalars("curriculum/stage")][-1] == 1.0
    assert [e.value for e in acc.Scalars("curriculum/length")][-1] == 1.5


def test_callback_advances_and_sets_params_in_all_envs(tmp_path: Path) -> None:
    from stable_baselines3 import PPO

    from rltransfer.config import load_family
    from rltransfer.environments import make_vec_env

    venv = make_vec_env(load_family("cartpole"), None, 2, 0)
    model = PPO("MlpPolicy", venv, n_steps=32, batch_size=32, n_epochs=1, policy_kwargs={"net_arch": [16]})
    callback = CurriculumCallback(_curriculum({"steps": 100}))
    model.learn(256, callback=callback)
    assert callback.history[0] == (0, 0) and callback.history[1][1] == 1 and 100 <= callback.history[1][0] <= 164
    assert venv.env_method("get_params")[0]["length"] == 1.5
    assert all(p["length"] == 1.5 for p in venv.env_method("get_params"))


def test_performance_gate_uses_training_episodes(tmp_path: Path) -> None:
    from stable_baselines3 import PPO

    from rltransfer.config import load_family
    from rltransfer.environments import make_vec_env

    venv = make_vec_env(load_family("cartpole"), None, 2, 0)
    model = PPO("MlpPolicy", venv, n_steps=32, batch_size=32, n_epochs=1, policy_kwargs={"net_arch": [16]})
    never = CurriculumCallback(_curriculum({"mean_return": 10_000, "window": 2}))
    model.learn(256, callback=never)
    assert [stage for _, stage in never.history] == [0]
    easy = CurriculumCallback(_curriculum({"mean_return": 1.0, "window": 2}))
    model.learn(256, callback=easy)
    assert [stage for _, stage in easy.history] == [0, 1]
