"""Tests for rltransfer/wrappers.py: TimeFeatureWrapper (as sb3_contrib's) and the name registry."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from conftest import needs_zoo_fixtures, zoo_fixture
from gymnasium import spaces
from gymnasium.envs.classic_control.pendulum import PendulumEnv
from gymnasium.utils.env_checker import check_env

from rltransfer.errors import ConfigError, IncompatibleSpacesError, UnknownNameError
from rltransfer.wrappers import WRAPPERS, TimeFeatureWrapper, make_wrapper


class DictObsEnv(gym.Env):
    """A goal-env-like Dict observation with an 'observation' Box."""

    observation_space = spaces.Dict(
        {
            "observation": spaces.Box(-1.0, 1.0, (2,), np.float32),
            "goal": spaces.Box(-1.0, 1.0, (2,), np.float32),
        }
    )
    action_space = spaces.Discrete(2)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        return self.observation_space.sample(), 0.0, False, False, {}


def test_feature_counts_down_over_the_spec_episode_length() -> None:
    env = TimeFeatureWrapper(gym.make("Pendulum-v1"))  # spec.max_episode_steps == 200
    assert env.max_steps == 200
    obs, _ = env.reset(seed=0)
    assert obs.shape == (4,) and obs.dtype == np.float32
    assert obs[-1] == 1.0
    features = []
    for _ in range(200):
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        assert env.observation_space.contains(obs)
        features.append(obs[-1])
    assert truncated and not terminated
    expected = np.array([1 - t / 200 for t in range(1, 201)], dtype=np.float32)
    assert np.array_equal(np.array(features, dtype=np.float32), expected)
    assert features[-1] == 0.0
    obs, _ = env.reset()
    assert obs[-1] == 1.0  # the counter restarts


@pytest.mark.filterwarnings(
    "ignore:.*different from the unwrapped version", "ignore:.*symmetric and normalized space"
)
def test_observation_space_gains_a_0_1_entry_and_keeps_dtype() -> None:
    inner = gym.make("Pendulum-v1")
    env = TimeFeatureWrapper(inner)
    box = env.observation_space
    assert isinstance(box, spaces.Box) and box.shape == (4,) and box.dtype == np.float32
    assert np.array_equal(box.low, np.array([-1, -1, -8, 0], np.float32))
    assert np.array_equal(box.high, np.array([1, 1, 8, 1], np.float32))
    assert inner.observation_space.shape == (3,)  # the wrapped env is left alone
    check_env(TimeFeatureWrapper(PendulumEnv()), skip_render_check=True)
    remade = gym.make(env.spec)  # the wrapper is recorded in the spec, with its arguments
    assert isinstance(remade, TimeFeatureWrapper) and remade.observation_space == box


def test_max_steps_fallback_without_spec_and_test_mode() -> None:
    env = TimeFeatureWrapper(PendulumEnv())  # no spec: the max_steps argument is used
    assert env.max_steps == 1000
    env.reset(seed=0)
    obs, *_ = env.step(env.action_space.sample())
    assert obs[-1] == np.float32(1 - 1 / 1000)
    env = TimeFeatureWrapper(PendulumEnv(), max_steps=4)
    env.reset(seed=0)
    for _ in range(2):
        obs, *_ = env.step(env.action_space.sample())
    assert obs[-1] == 0.5
    env = TimeFeatureWrapper(gym.make("Pendulum-v1"), test_mode=True)
    obs, _ = env.reset(seed=0)
    for _ in range(5):
        obs, *_ = env.step(env.action_space.sample())
        assert obs[-1] == 1.0


def test_dict_observation() -> None:
    env = TimeFeatureWrapper(DictObsEnv(), max_steps=10)
    assert env.observation_space["observation"].shape == (3,)
    assert env.observation_space["goal"].shape == (2,)
    obs, _ = env.reset(seed=1)
    assert obs["observation"][-1] == 1.0 and obs["goal"].shape == (2,)
    obs, *_ = env.step(0)
    assert obs["observation"][-1] == np.float32(0.9)
    assert env.observation_space.contains(obs)


@pytest.mark.parametrize(
    "space",
    [
        spaces.Discrete(3),
        spaces.Box(-1, 1, (2, 2), np.float32),
        spaces.Dict({"goal": spaces.Box(-1, 1, (2,))}),
    ],
    ids=["discrete", "2d-box", "dict-without-observation"],
)
def test_unsupported_observation_spaces(space: spaces.Space) -> None:
    class Env(DictObsEnv):
        observation_space = space

    with pytest.raises(IncompatibleSpacesError, match="TimeFeatureWrapper"):
        TimeFeatureWrapper(Env())


@pytest.mark.parametrize("bad", [0, -5, 2.5, True])
def test_bad_max_steps(bad: Any) -> None:
    with pytest.raises(ConfigError, match=f"max_steps must be a positive integer, got {bad!r}"):
        TimeFeatureWrapper(PendulumEnv(), max_steps=bad)


def test_registry_and_make_wrapper() -> None:
    assert WRAPPERS["TimeFeatureWrapper"] is TimeFeatureWrapper
    env = make_wrapper("TimeFeatureWrapper", PendulumEnv(), max_steps=7)
    assert isinstance(env, TimeFeatureWrapper) and env.max_steps == 7
    env = make_wrapper("sb3_contrib.common.wrappers.TimeFeatureWrapper", gym.make("Pendulum-v1"))
    assert isinstance(env, TimeFeatureWrapper)
    with pytest.raises(
        UnknownNameError, match=r"unknown wrapper 'TimeFeatureWraper'.*Did you mean: 'TimeFeatureWrapper'"
    ):
        make_wrapper("TimeFeatureWraper", PendulumEnv())


@needs_zoo_fixtures
@pytest.mark.fixtures
def test_matches_the_observation_space_the_zoo_hopper_was_trained_with() -> None:
    from rltransfer.sb3zip import read_sb3_zip

    class HopperLike(DictObsEnv):
        observation_space = spaces.Box(-np.inf, np.inf, (15,), np.float32)  # HopperBulletEnv-v0's

    archive = read_sb3_zip(zoo_fixture("ppo-HopperBulletEnv-v0.zip"))
    rebuilt = TimeFeatureWrapper(HopperLike()).observation_space
    assert rebuilt.shape == archive.observation_space.shape
    assert np.array_equal(rebuilt.low, archive.observation_space.low)
    assert np.array_equal(rebuilt.high, archive.observation_space.high)


@needs_zoo_fixtures
@pytest.mark.fixtures
@pytest.mark.pybullet
def test_zoo_hopper_agent_hops_with_time_feature_and_normalization() -> None:
    """End to end, nothing unpickled: zip weights + VecNormalize stats + TimeFeatureWrapper on PyBullet.

    The Zoo reports about 2400 for this agent; a wrong time feature or normalization falls far short.
    """
    pytest.importorskip("pybullet_envs_gymnasium")
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv

    from rltransfer.sb3zip import read_sb3_zip
    from rltransfer.zoo import load_vecnormalize_pkl

    archive = read_sb3_zip(zoo_fixture("ppo-HopperBulletEnv-v0.zip"))
    stats = load_vecnormalize_pkl(zoo_fixture("ppo-HopperBulletEnv-v0.vecnormalize.pkl"))
    env = TimeFeatureWrapper(gym.make("HopperBulletEnv-v0"))
    assert env.max_steps == 1000
    assert env.observation_space.shape == archive.observation_space.shape
    model = PPO("MlpPolicy", DummyVecEnv([lambda: env]), device="cpu", **archive.sb3_kwargs())
    model.policy.load_state_dict(archive.state_dict, strict=True)
    obs, _ = env.reset(seed=0)
    total, done = 0.0, False
    while not done:
        action, _ = model.predict(stats.normalize(obs), deterministic=True)
        obs, reward, terminated, truncated, _ = env.step(action)
        total += float(reward)
        done = terminated or truncated
    assert total > 1500.0
