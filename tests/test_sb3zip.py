"""Tests for rltransfer/sb3zip.py: reading SB3 zips of every vintage without unpickling."""

from __future__ import annotations

import base64
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import stable_baselines3
import torch
from conftest import FIXTURES, needs_zoo_fixtures, zoo_fixture
from gymnasium import spaces
from stable_baselines3 import A2C, DQN, PPO, SAC, TD3
from stable_baselines3.common.save_util import data_to_json
from stable_baselines3.common.vec_env import DummyVecEnv

from rltransfer.bundle import SpaceEnv
from rltransfer.errors import BundleError, ConfigError, UnknownNameError
from rltransfer.sb3zip import (
    ACTIVATIONS,
    SB3Archive,
    activation_from_name,
    convert_net_arch,
    read_sb3_zip,
    space_from_json,
    space_to_json,
)

ALGO_CLASSES = {"ppo": PPO, "a2c": A2C, "sac": SAC, "td3": TD3, "dqn": DQN}


def rebuild(archive: SB3Archive) -> Any:
    """Today's SB3 model with the archive's spaces and architecture, weights loaded with strict=True."""
    extra: dict[str, Any] = (
        {"buffer_size": 1, "learning_starts": 0} if archive.algo in ("sac", "td3", "dqn") else {}
    )
    env = DummyVecEnv([lambda: SpaceEnv(archive.observation_space, archive.action_space)])
    model = ALGO_CLASSES[archive.algo](
        archive.sb3_policy_alias, env, device="cpu", **archive.sb3_kwargs(), **extra
    )
    model.policy.load_state_dict(archive.state_dict, strict=True)
    return model


def assert_same_space(a: spaces.Space, b: spaces.Space) -> None:
    assert type(a) is type(b)
    assert a.shape == b.shape
    assert a.dtype == b.dtype
    if isinstance(a, spaces.Box):
        assert np.array_equal(a.low, b.low) and np.array_equal(a.high, b.high)
    elif isinstance(a, spaces.Discrete):
        assert (a.n, a.start) == (b.n, b.start)
    elif isinstance(a, spaces.MultiDiscrete):
        assert np.array_equal(a.nvec, b.nvec) and np.array_equal(a.start, b.start)
    elif isinstance(a, spaces.MultiBinary):
        assert np.array_equal(np.asarray(a.n), np.asarray(b.n))
    elif isinstance(a, spaces.Dict):
        assert list(a.spaces) == list(b.spaces)
        for key in a.spaces:
            assert_same_space(a[key], b[key])
    elif isinstance(a, spaces.Tuple):
        assert len(a.spaces) == len(b.spaces)
        for x, y in zip(a.spaces, b.spaces):
            assert_same_space(x, y)


def write_zip(
    path: Path, data: dict[str, Any] | bytes | None, state_dict: Any = None, version: str | None = None
) -> Path:
    """An SB3-style zip written by hand: ``data`` JSON (or raw bytes) and ``policy.pth``."""
    with zipfile.ZipFile(path, "w") as archive:
        if data is not None:
            archive.writestr("data", data if isinstance(data, bytes) else json.dumps(data))
        if state_dict is not None:
            buffer = io.BytesIO()
            torch.save(state_dict, buffer)
            archive.writestr("policy.pth", buffer.getvalue())
        if version is not None:
            archive.writestr("_stable_baselines3_version", version)
    return path


# A base64 "serialized" value that would run a shell command if anyone unpickled it.
def evil_blob(marker: Path) -> str:
    return base64.b64encode(f"cos\nsystem\n(S'touch {marker}'\ntR.".encode()).decode()


def old_gym_data(marker: Path, **overrides: Any) -> dict[str, Any]:
    """``data`` as SB3 1.0 wrote it for PPO on a gym (not gymnasium) Box(3,) -> Discrete(3) env."""
    data: dict[str, Any] = {
        "policy_class": {
            ":type:": "<class 'abc.ABCMeta'>",
            ":serialized:": evil_blob(marker),
            "__module__": "stable_baselines3.common.policies",
            "__init__": "<function ActorCriticPolicy.__init__ at 0x7f0000000000>",
        },
        "policy_kwargs": {
            ":type:": "<class 'dict'>",
            ":serialized:": evil_blob(marker),
            "net_arch": [{"pi": [8], "vf": [8]}],
            "activation_fn": "<class 'torch.nn.modules.activation.ReLU'>",
            "device": "cpu",
        },
        "observation_space": {
            ":type:": "<class 'gym.spaces.box.Box'>",
            ":serialized:": evil_blob(marker),
            "dtype": "float32",
            "shape": [3],
            "low": "[-1. -1. -8.]",
            "high": "[1. 1. 8.]",
            "bounded_below": "[ True  True  True]",
            "bounded_above": "[ True  True  True]",
            "np_random": "RandomState(MT19937)",
        },
        "action_space": {
            ":type:": "<class 'gym.spaces.discrete.Discrete'>",
            ":serialized:": evil_blob(marker),
            "n": 3,
            "shape": [],
            "dtype": "int64",
        },
        "n_envs": 4,
        "num_timesteps": 1234,
        "learning_rate": {":type:": "<class 'function'>", ":serialized:": evil_blob(marker)},
        "gamma": 0.98,
        "n_steps": 64,
        "batch_size": 32,
        "n_epochs": 4,
        "clip_range": {":type:": "<class 'function'>", ":serialized:": evil_blob(marker)},
        "use_sde": False,
    }
    data.update(overrides)
    return data


def ppo_state_dict(obs: spaces.Space, act: spaces.Space, **policy_kwargs: Any) -> dict[str, torch.Tensor]:
    model = PPO(
        "MlpPolicy", DummyVecEnv([lambda: SpaceEnv(obs, act)]), policy_kwargs=policy_kwargs, device="cpu"
    )
    return {k: v.clone() for k, v in model.policy.state_dict().items()}


# --------------------------------------------------------------------------------------------------
# The RL Zoo fixtures

FIXTURE_CASES = [
    # name, algo, version, obs shape, action space
    ("a2c-CartPole-v1.zip", "a2c", "2.4.0a11", (4,), spaces.Discrete(2)),
    ("ppo-CartPole-v1.zip", "ppo", "1.0rc0", (4,), spaces.Discrete(2)),
    ("dqn-CartPole-v1.zip", "dqn", "1.0rc0", (4,), spaces.Discrete(2)),
    ("sac-Pendulum-v1.zip", "sac", None, (3,), spaces.Box(-2.0, 2.0, (1,), np.float32)),
    ("ppo-HopperBulletEnv-v0.zip", "ppo", "1.0rc0", (16,), spaces.Box(-1.0, 1.0, (3,), np.float32)),
]


@needs_zoo_fixtures
@pytest.mark.fixtures
@pytest.mark.parametrize(
    ("name", "algo", "version", "obs_shape", "action_space"), FIXTURE_CASES, ids=[c[0] for c in FIXTURE_CASES]
)
def test_fixture_spaces_algo_and_strict_load(
    name: str, algo: str, version: str | None, obs_shape: tuple[int, ...], action_space: spaces.Space
) -> None:
    archive = read_sb3_zip(zoo_fixture(name))
    assert archive.algo == algo
    assert archive.sb3_version == version
    assert isinstance(archive.observation_space, spaces.Box)
    assert archive.observation_space.shape == obs_shape
    assert archive.observation_space.dtype == np.float32
    assert_same_space(archive.action_space, action_space)
    assert archive.state_dict
    assert archive.policy_kwargs["activation_fn"] in ACTIVATIONS
    json.dumps(archive.policy_kwargs)  # JSON-able
    json.dumps(archive.hyperparams)
    model = rebuild(archive)  # strict=True: spaces and architecture came across
    obs = archive.observation_space.sample()
    action, _ = model.predict(np.clip(obs, -5, 5), deterministic=True)
    assert archive.action_space.contains(action if isinstance(action_space, spaces.Box) else int(action))


@needs_zoo_fixtures
@pytest.mark.fixtures
def test_fixture_hopper_gsde_details() -> None:
    archive = read_sb3_zip(zoo_fixture("ppo-HopperBulletEnv-v0.zip"))
    assert archive.policy_kwargs == {
        "log_std_init": -2,
        "ortho_init": False,
        "activation_fn": "ReLU",
        "net_arch": {"pi": [256, 256], "vf": [256, 256]},
        "use_sde": True,
    }
    assert archive.hyperparams["sde_sample_freq"] == 4
    assert archive.hyperparams["n_steps"] == 512
    assert archive.state_dict["log_std"].shape == (256, 3)  # gSDE, full_std
    low, high = archive.observation_space.low, archive.observation_space.high
    assert np.all(np.isneginf(low[:15])) and np.all(np.isposinf(high[:15]))
    assert (low[15], high[15]) == (0.0, 1.0)  # the TimeFeatureWrapper entry
    assert (archive.n_envs, archive.num_timesteps) == (16, 2007040)
    assert any("converted to today's format" in note for note in archive.notes)


@needs_zoo_fixtures
@pytest.mark.fixtures
def test_fixture_old_gym_box_keeps_float32_max_bounds() -> None:
    archive = read_sb3_zip(zoo_fixture("ppo-CartPole-v1.zip"))
    low = archive.observation_space.low
    assert low[0] == np.float32(-4.8) and low[2] == np.float32(-0.41887903)
    assert low[1] == np.finfo(np.float32).min  # old gym used float32 max as "unbounded"
    assert archive.policy_kwargs["activation_fn"] == "Tanh"
    assert archive.policy_kwargs["net_arch"] == {"pi": [64, 64], "vf": [64, 64]}
    assert any("inferred" in note and "net_arch" in note for note in archive.notes)
    assert any("SB3's default for ppo: Tanh" in note for note in archive.notes)


@needs_zoo_fixtures
@pytest.mark.fixtures
def test_fixture_a2c_new_format_and_dropped_optimizer() -> None:
    archive = read_sb3_zip(zoo_fixture("a2c-CartPole-v1.zip"))
    assert np.isneginf(archive.observation_space.low[1])
    assert archive.dropped["optimizer_class"] == "<class 'torch.optim.rmsprop.RMSprop'>"
    assert "optimizer_kwargs" in archive.dropped
    assert "optimizer_class" not in archive.policy_kwargs
    assert archive.hyperparams["n_steps"] == 5


@needs_zoo_fixtures
@pytest.mark.fixtures
def test_fixture_pre_1_0_sac() -> None:
    archive = read_sb3_zip(zoo_fixture("sac-Pendulum-v1.zip"))
    assert archive.sb3_version is None
    assert any("pre-1.0" in note for note in archive.notes)
    assert archive.dropped == {"device": "cpu"}
    assert archive.policy_kwargs["use_sde"] is True
    assert archive.policy_kwargs["net_arch"] == [64, 64]
    assert archive.hyperparams["train_freq"] == [1, "episode"]
    assert archive.hyperparams["ent_coef"] == "auto"
    assert "log_ent_coef" in archive.pytorch_variables  # from tensors.pth
    # Today's SB3 names the pre-1.0 gSDE actor's tensors the same way: no renaming was needed.
    assert {"actor.log_std", "actor.mu.0.weight"} <= set(archive.state_dict)
    assert_same_space(archive.action_space, spaces.Box(-2.0, 2.0, (1,), np.float32))


def _episode_return(model: Any, env_id: str, seed: int = 0) -> float:
    env = gym.make(env_id)
    obs, _ = env.reset(seed=seed)
    total, done = 0.0, False
    while not done:
        action, _ = model.predict(obs, deterministic=True)
        obs, reward, terminated, truncated, _ = env.step(action)
        total += float(reward)
        done = terminated or truncated
    return total


@needs_zoo_fixtures
@pytest.mark.fixtures
@pytest.mark.parametrize(
    ("name", "env_id", "threshold"),
    [
        ("ppo-CartPole-v1.zip", "CartPole-v1", 450.0),
        ("a2c-CartPole-v1.zip", "CartPole-v1", 450.0),
        ("dqn-CartPole-v1.zip", "CartPole-v1", 450.0),
        ("sac-Pendulum-v1.zip", "Pendulum-v1", -400.0),
    ],
)
def test_fixture_agents_still_perform(name: str, env_id: str, threshold: float) -> None:
    """The weights read without unpickling drive today's SB3 policy as well as they did in the Zoo."""
    model = rebuild(read_sb3_zip(zoo_fixture(name)))
    assert _episode_return(model, env_id) >= threshold


# --------------------------------------------------------------------------------------------------
# Zips written by today's SB3


def _tiny_model(algo: str) -> Any:
    kwargs: dict[str, Any] = {"policy_kwargs": {"net_arch": [16]}, "device": "cpu"}
    if algo in ("sac", "td3", "dqn"):
        kwargs["buffer_size"] = 100
    env_id = "Pendulum-v1" if algo in ("sac", "td3") else "CartPole-v1"
    return ALGO_CLASSES[algo]("MlpPolicy", env_id, **kwargs)


@pytest.mark.parametrize("algo", ["ppo", "a2c", "sac", "td3", "dqn"])
def test_round_trip_of_todays_save(algo: str, tmp_path: Path) -> None:
    model = _tiny_model(algo)
    model.save(tmp_path / f"{algo}.zip")
    archive = read_sb3_zip(tmp_path / f"{algo}.zip")
    assert archive.algo == algo
    assert archive.sb3_version == stable_baselines3.__version__
    assert_same_space(archive.observation_space, model.observation_space)
    assert_same_space(archive.action_space, model.action_space)
    own = model.policy.state_dict()
    assert list(archive.state_dict) == list(own)
    assert all(torch.equal(archive.state_dict[k], own[k]) for k in own)
    expected_arch = {"pi": [16], "vf": [16]} if algo in ("ppo", "a2c") else [16]
    assert archive.policy_kwargs["net_arch"] == expected_arch
    assert archive.hyperparams["gamma"] == model.gamma
    rebuilt = rebuild(archive)
    assert isinstance(rebuilt.policy, type(model.policy))


def test_round_trip_keeps_activation_dict_arch_and_gsde(tmp_path: Path) -> None:
    model = PPO(
        "MlpPolicy",
        "Pendulum-v1",
        use_sde=True,
        device="cpu",
        policy_kwargs={
            "net_arch": {"pi": [16], "vf": [8]},
            "activation_fn": torch.nn.ELU,
            "log_std_init": -1.0,
        },
    )
    model.save(tmp_path / "ppo_sde.zip")
    archive = read_sb3_zip(tmp_path / "ppo_sde.zip")
    assert archive.policy_kwargs["activation_fn"] == "ELU"
    assert archive.policy_kwargs["net_arch"] == {"pi": [16], "vf": [8]}
    assert archive.policy_kwargs["use_sde"] is True
    assert archive.policy_kwargs["log_std_init"] == -1.0
    assert archive.hyperparams["clip_range"] == 0.2  # read from the readable ConstantSchedule repr
    rebuilt = rebuild(archive)
    assert rebuilt.policy.activation_fn is torch.nn.ELU


def test_a2c_drops_optimizer_but_records_it(tmp_path: Path) -> None:
    A2C("MlpPolicy", "CartPole-v1", policy_kwargs={"net_arch": [8]}, device="cpu").save(tmp_path / "a2c.zip")
    archive = read_sb3_zip(tmp_path / "a2c.zip")
    assert set(archive.dropped) == {"optimizer_class", "optimizer_kwargs"}
    assert not set(archive.dropped) & set(archive.policy_kwargs)


@pytest.mark.parametrize(
    "space",
    [
        spaces.MultiDiscrete([3, 4]),
        spaces.MultiDiscrete(np.array([[2, 3], [4, 5]]), start=np.array([[0, 1], [-1, 0]])),
        spaces.MultiBinary(5),
        spaces.MultiBinary([2, 3]),
        spaces.Discrete(5, start=-2),
        spaces.Box(-1.0, 1.0, (2, 3), np.float32),
        spaces.Box(np.array([-1.0, 0.0]), np.array([1.5, np.inf]), dtype=np.float64),
        spaces.Box(0, 255, (84, 84, 3), np.uint8),
    ],
    ids=["md", "md2d-start", "mb", "mb2d", "discrete-start", "box2d", "box-f64", "image"],
)
def test_spaces_from_sb3_readable_fields(space: spaces.Space, tmp_path: Path) -> None:
    """Every space type SB3 can write is rebuilt from the readable fields data_to_json stores."""
    space.sample()  # gives it a np_random, as a trained model's space has
    entry = json.loads(data_to_json({"space": space}))["space"]
    data = old_gym_data(tmp_path / "marker", observation_space=entry)
    data["policy_kwargs"] = {}
    path = write_zip(tmp_path / "m.zip", data, {"mlp_extractor.policy_net.0.weight": torch.zeros(2, 2)})
    archive = read_sb3_zip(path)
    assert_same_space(archive.observation_space, space)
    if space.shape == (84, 84, 3):
        assert any("elided" in note for note in archive.notes)


def test_box_from_repr_fields_and_missing_bounds(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    obs = {
        ":type:": "<class 'gymnasium.spaces.box.Box'>",
        "dtype": "float32",
        "_shape": [2],
        "low_repr": "-1.0",
        "high_repr": "[1.  inf]",
    }
    act = {":type:": "<class 'gymnasium.spaces.box.Box'>", "dtype": "float32", "_shape": [1]}
    data = old_gym_data(marker, observation_space=obs, action_space=act)
    archive = read_sb3_zip(write_zip(tmp_path / "m.zip", data, {"log_std": torch.zeros(1)}))
    assert_same_space(
        archive.observation_space,
        spaces.Box(np.array([-1, -1], np.float32), np.array([1, np.inf], np.float32)),
    )
    assert_same_space(archive.action_space, spaces.Box(-np.inf, np.inf, (1,), np.float32))
    assert any("action_space: low bounds not readable" in note for note in archive.notes)


# --------------------------------------------------------------------------------------------------
# Old formats written by hand


def test_hand_written_old_gym_zip_is_read_without_unpickling(tmp_path: Path) -> None:
    marker = tmp_path / "unpickled-marker"
    obs = spaces.Box(np.array([-1, -1, -8], np.float32), np.array([1, 1, 8], np.float32))
    state = ppo_state_dict(
        obs, spaces.Discrete(3), net_arch={"pi": [8], "vf": [8]}, activation_fn=torch.nn.ReLU
    )
    path = write_zip(tmp_path / "old.zip", old_gym_data(marker), state)
    archive = read_sb3_zip(path)
    assert not marker.exists()  # none of the ":serialized:" blobs was decoded
    assert archive.algo == "ppo"  # ActorCriticPolicy + n_epochs/batch_size
    assert archive.sb3_version is None
    assert archive.policy_class == "ActorCriticPolicy"
    assert_same_space(archive.observation_space, obs)
    assert_same_space(archive.action_space, spaces.Discrete(3))
    assert archive.policy_kwargs == {
        "net_arch": {"pi": [8], "vf": [8]},
        "activation_fn": "ReLU",
        "use_sde": False,
    }
    assert archive.dropped == {"device": "cpu"}
    assert archive.hyperparams["gamma"] == 0.98 and "learning_rate" not in archive.hyperparams
    assert (archive.n_envs, archive.num_timesteps) == (4, 1234)
    rebuild(archive)


def test_actor_critic_without_ppo_keys_is_a2c(tmp_path: Path) -> None:
    data = old_gym_data(tmp_path / "m")
    for key in ("n_epochs", "batch_size", "clip_range"):
        del data[key]
    obs = spaces.Box(np.array([-1, -1, -8], np.float32), np.array([1, 1, 8], np.float32))
    state = ppo_state_dict(obs, spaces.Discrete(3), net_arch={"pi": [8], "vf": [8]})
    assert read_sb3_zip(write_zip(tmp_path / "a.zip", data, state)).algo == "a2c"


def test_shared_layers_of_sb3_before_1_8_are_split_without_changing_outputs(tmp_path: Path) -> None:
    """``net_arch=[8, dict(pi=[4], vf=[6])]`` (shared trunk) becomes separate nets with equal outputs."""
    torch.manual_seed(0)
    shapes = {
        "mlp_extractor.shared_net.0": (8, 3),
        "mlp_extractor.policy_net.0": (4, 8),
        "mlp_extractor.value_net.0": (6, 8),
        "action_net": (3, 4),
        "value_net": (1, 6),
    }
    state: dict[str, torch.Tensor] = {}
    for name, (out, inp) in shapes.items():
        state[f"{name}.weight"] = torch.randn(out, inp)
        state[f"{name}.bias"] = torch.randn(out)
    data = old_gym_data(tmp_path / "m")
    data["policy_kwargs"] = {"net_arch": [8, {"pi": [4], "vf": [6]}]}
    archive = read_sb3_zip(write_zip(tmp_path / "shared.zip", data, state, version="1.5.0"))
    assert archive.policy_kwargs["net_arch"] == {"pi": [8, 4], "vf": [8, 6]}
    assert any("shared" in note for note in archive.notes)
    model = rebuild(archive)

    obs = torch.randn(5, 3)
    lin = torch.nn.functional.linear
    trunk = torch.tanh(
        lin(obs, state["mlp_extractor.shared_net.0.weight"], state["mlp_extractor.shared_net.0.bias"])
    )
    pi = torch.tanh(
        lin(trunk, state["mlp_extractor.policy_net.0.weight"], state["mlp_extractor.policy_net.0.bias"])
    )
    vf = torch.tanh(
        lin(trunk, state["mlp_extractor.value_net.0.weight"], state["mlp_extractor.value_net.0.bias"])
    )
    logits = lin(pi, state["action_net.weight"], state["action_net.bias"])
    value = lin(vf, state["value_net.weight"], state["value_net.bias"])
    with torch.no_grad():
        dist = model.policy.get_distribution(obs)
        assert torch.allclose(dist.distribution.logits, torch.log_softmax(logits, dim=-1), atol=1e-6)
        assert torch.allclose(model.policy.predict_values(obs), value, atol=1e-6)


def test_algo_override_and_unknown_policy(tmp_path: Path) -> None:
    data = old_gym_data(tmp_path / "m")
    data["policy_class"] = {
        ":type:": "<class 'abc.ABCMeta'>",
        "__module__": "my_lab.policies",
        "__init__": "<function LabPolicy.__init__ at 0x1>",
    }
    path = write_zip(tmp_path / "lab.zip", data, {"action_net.weight": torch.zeros(3, 3)})
    with pytest.raises(
        BundleError, match=r"lab\.zip.*cannot tell the algorithm.*LabPolicy.*my_lab\.policies.*--algo.*one of: ppo"
    ):
        read_sb3_zip(path)
    archive = read_sb3_zip(path, algo="PPO")
    assert archive.algo == "ppo" and archive.policy_class == "LabPolicy"
    assert any("algo given as 'ppo'" in note for note in archive.notes)
    with pytest.raises(UnknownNameError, match="ppo2"):
        read_sb3_zip(path, algo="ppo2")


def test_contrib_policy_module_names_the_algorithm(tmp_path: Path) -> None:
    data = old_gym_data(tmp_path / "m")
    data["policy_class"] = {
        ":type:": "<class 'abc.ABCMeta'>",
        "__module__": "sb3_contrib.tqc.policies",
        "__init__": "<function TQCPolicy.__init__ at 0x1>",
    }
    data["policy_kwargs"] = {"net_arch": [8], "n_quantiles": 25}
    archive = read_sb3_zip(write_zip(tmp_path / "tqc.zip", data, {"actor.mu.weight": torch.zeros(1, 1)}))
    assert archive.algo == "tqc" and archive.policy_class == "TQCPolicy"
    assert archive.policy_kwargs["n_quantiles"] == 25


def test_dict_observation_space_is_read_from_its_printed_form(tmp_path: Path) -> None:
    space = spaces.Dict({"b": spaces.Box(-1.0, 2.0, (2,), np.float32), "a": spaces.Discrete(3)})
    entry = json.loads(data_to_json({"s": space}))["s"]
    path = write_zip(
        tmp_path / "d.zip", old_gym_data(tmp_path / "m", observation_space=entry), {"x": torch.zeros(1)}
    )
    archive = read_sb3_zip(path, algo="ppo")
    assert_same_space(archive.observation_space, space)
    assert any("Dict space with keys ['a', 'b']" in note for note in archive.notes)


# --------------------------------------------------------------------------------------------------
# Broken and hostile files


class NotWeights:
    """A custom object: torch.load(weights_only=True) must refuse it."""

    def __init__(self) -> None:
        self.payload = "anything"


def test_missing_file_directory_and_not_a_zip(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="nope.zip: file not found"):
        read_sb3_zip(tmp_path / "nope.zip")
    with pytest.raises(BundleError, match="not a file"):
        read_sb3_zip(tmp_path)
    (tmp_path / "text.zip").write_text("hello")
    with pytest.raises(BundleError, match="text.zip: not a readable zip archive"):
        read_sb3_zip(tmp_path / "text.zip")


def test_truncated_zip(tmp_path: Path) -> None:
    _tiny_model("ppo").save(tmp_path / "full.zip")
    raw = (tmp_path / "full.zip").read_bytes()
    (tmp_path / "cut.zip").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(BundleError, match="cut.zip"):
        read_sb3_zip(tmp_path / "cut.zip")


def test_corrupt_member(tmp_path: Path) -> None:
    _tiny_model("ppo").save(tmp_path / "full.zip")
    raw = bytearray((tmp_path / "full.zip").read_bytes())
    with zipfile.ZipFile(tmp_path / "full.zip") as archive:
        info = archive.getinfo("policy.pth")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra) + 100
    raw[start : start + 64] = bytes(64)  # damage the compressed bytes, keep the central directory
    (tmp_path / "bad.zip").write_bytes(bytes(raw))
    with pytest.raises(BundleError, match=r"bad\.zip: member 'policy\.pth'"):
        read_sb3_zip(tmp_path / "bad.zip")


def test_missing_members(tmp_path: Path) -> None:
    data = old_gym_data(tmp_path / "m")
    with pytest.raises(
        BundleError,
        match=r"nopolicy\.zip: member 'policy\.pth' is missing; expected the policy's torch state dict",
    ):
        read_sb3_zip(write_zip(tmp_path / "nopolicy.zip", data))
    with pytest.raises(BundleError, match=r"nodata\.zip: member 'data' is missing"):
        read_sb3_zip(write_zip(tmp_path / "nodata.zip", None, {"x": torch.zeros(1)}))


@pytest.mark.parametrize("raw", [b"{not json", b"\xff\xfe", b"[1, 2]"], ids=["syntax", "bytes", "list"])
def test_malformed_data_json(raw: bytes, tmp_path: Path) -> None:
    with pytest.raises(BundleError, match=r"m\.zip: member 'data'"):
        read_sb3_zip(write_zip(tmp_path / "m.zip", raw, {"x": torch.zeros(1)}))


def test_policy_pth_with_a_pickled_object_is_refused(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "obj.zip", old_gym_data(tmp_path / "m"), {"weights": NotWeights()})
    with pytest.raises(
        BundleError, match=r"obj\.zip: member 'policy\.pth' is not a torch state dict.*weights_only"
    ):
        read_sb3_zip(path)
    path = write_zip(tmp_path / "list.zip", old_gym_data(tmp_path / "m"), [torch.zeros(1)])
    with pytest.raises(BundleError, match=r"list\.zip: member 'policy\.pth' holds list"):
        read_sb3_zip(path)


def test_malformed_net_arch(tmp_path: Path) -> None:
    data = old_gym_data(tmp_path / "m")
    data["policy_kwargs"] = {"net_arch": [{"pi": [-3]}]}
    with pytest.raises(BundleError, match=r"policy_kwargs.*net_arch\['pi'\]"):
        read_sb3_zip(write_zip(tmp_path / "m.zip", data, {"x": torch.zeros(1)}))


# --------------------------------------------------------------------------------------------------
# Helpers other modules use


@pytest.mark.parametrize(
    ("raw", "on_policy", "expected"),
    [
        ([64, 64], True, {"pi": [64, 64], "vf": [64, 64]}),
        ([{"pi": [32], "vf": [16]}], True, {"pi": [32], "vf": [16]}),
        ([64, {"pi": [32], "vf": [16]}], True, {"pi": [64, 32], "vf": [64, 16]}),
        ({"pi": [8]}, True, {"pi": [8], "vf": []}),
        ([256, 256], False, [256, 256]),
        ({"pi": [64], "qf": [400, 300]}, False, {"pi": [64], "qf": [400, 300]}),
    ],
)
def test_convert_net_arch(raw: Any, on_policy: bool, expected: Any) -> None:
    assert convert_net_arch(raw, on_policy) == expected


@pytest.mark.parametrize("raw", [[{"pi": [1]}, 64], {"pi": [1], "xx": [2]}, "64,64", [0]])
def test_convert_net_arch_rejects(raw: Any) -> None:
    with pytest.raises(ConfigError, match="net_arch"):
        convert_net_arch(raw, on_policy=True)


def test_activation_from_name() -> None:
    assert activation_from_name("ReLU") is torch.nn.ReLU
    assert activation_from_name("nn.Tanh") is torch.nn.Tanh
    assert activation_from_name("torch.nn.ELU") is torch.nn.ELU
    with pytest.raises(
        UnknownNameError, match=r"unknown activation function 'Tanhh' in agent\.yml.*Did you mean: 'Tanh'"
    ):
        activation_from_name("Tanhh", where="agent.yml")
    with pytest.raises(ConfigError):
        activation_from_name("os.system")


ROUND_TRIP_SPACES = [
    spaces.Box(-1.0, 1.0, (3,), np.float32),
    spaces.Box(
        np.array([-4.8, -np.inf, -0.41887903, -np.inf], np.float32),
        np.array([4.8, np.inf, 0.41887903, np.inf], np.float32),
    ),
    spaces.Box(np.array([0.1 + 1e-17, -1e-300]), np.array([np.pi, 1e300]), dtype=np.float64),
    spaces.Box(0, 255, (84, 84, 3), np.uint8),
    spaces.Box(-(2**40), 2**40, (2,), np.int64),
    spaces.Discrete(7, start=-3),
    spaces.MultiDiscrete(np.array([[2, 3], [4, 5]]), start=np.array([[0, 1], [-1, 0]])),
    spaces.MultiBinary([2, 3]),
    spaces.Dict({"b": spaces.Discrete(2), "a": spaces.Box(-1, 1, (2,), np.float32)}),
    spaces.Tuple((spaces.Discrete(3), spaces.MultiBinary(4))),
]


@pytest.mark.parametrize(
    "space", ROUND_TRIP_SPACES, ids=[type(s).__name__ + str(i) for i, s in enumerate(ROUND_TRIP_SPACES)]
)
def test_space_json_round_trip_is_exact(space: spaces.Space) -> None:
    text = json.dumps(space_to_json(space), allow_nan=False)  # strict JSON: infinities are strings
    assert_same_space(space_from_json(json.loads(text)), space)


@pytest.mark.parametrize(
    "bad",
    [
        {"shape": [2]},
        {"type": "Box", "shape": [2], "low": "-infinity", "high": 1, "dtype": "float32"},
        {"type": "Box", "shape": [2], "low": 0, "high": 1, "dtype": "object"},
        {"type": "Box", "shape": [3], "low": [0, 1], "high": 1, "dtype": "float32"},
        {"type": "Discrete"},
        {"type": "Graph"},
    ],
)
def test_space_from_json_rejects(bad: dict[str, Any]) -> None:
    with pytest.raises(BundleError, match="manifest.json"):
        space_from_json(bad, where="manifest.json: observation_space")


def test_space_to_json_rejects_unknown_space() -> None:
    with pytest.raises(TypeError, match="Text"):
        space_to_json(spaces.Text(5))


def test_fixture_folder_constant_points_at_shared() -> None:
    assert FIXTURES.parts[-3:] == ("shared", "fixtures", "rl-zoo")
