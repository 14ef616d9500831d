"""Tests for rltransfer/zoo.py: VecNormalize pickles, Zoo YAML configs and companion files, safely."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from conftest import needs_zoo_fixtures, zoo_fixture
from gymnasium import spaces
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from rltransfer.errors import BundleError, ConfigError, UnsafeFileError
from rltransfer.normalization import NormalizationStats
from rltransfer.sb3zip import convert_net_arch, read_sb3_zip
from rltransfer import bundle
from rltransfer.zoo import (
    find_zoo_companions,
    load_vecnormalize_dict,
    load_vecnormalize_pkl,
    load_zoo_config,
    parse_policy_kwargs,
)

HOPPER = "ppo-HopperBulletEnv-v0"


class SpaceEnv(bundle.SpaceEnv):
    """The library's space-only env, but episodes never end and every reward is 1."""

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        return self.observation_space.sample(), 1.0, False, False, {}


def stepped_vecnormalize(env_id: str, steps: int = 20) -> VecNormalize:
    venv = VecNormalize(DummyVecEnv([lambda: gym.make(env_id)] * 2), clip_obs=5.0, gamma=0.95)
    venv.seed(0)
    venv.reset()
    for _ in range(steps):
        venv.step(np.array([venv.action_space.sample() for _ in range(2)]))
    return venv


# --------------------------------------------------------------------------------------------------
# VecNormalize pickles


@needs_zoo_fixtures
@pytest.mark.fixtures
def test_fixture_vecnormalize_loads_without_sb3_or_gym() -> None:
    stats = load_vecnormalize_pkl(zoo_fixture(f"{HOPPER}.vecnormalize.pkl"))
    assert isinstance(stats, NormalizationStats)
    assert stats.obs_dim == 16
    assert stats.obs_var.shape == (16,) and np.all(stats.obs_var >= 0)
    assert stats.count == pytest.approx(2007040.0001)
    assert (stats.clip_obs, stats.clip_reward, stats.gamma, stats.epsilon) == (10.0, 10.0, 0.99, 1e-8)
    assert stats.norm_obs and stats.norm_reward
    assert stats.ret_count == pytest.approx(2007056.0001)
    assert 0.0 <= stats.obs_mean[15] <= 1.0  # the time feature
    assert stats.extra["num_envs"] == 16
    # NormalizationStats is plain data: it survives its own JSON round trip.
    again = NormalizationStats.from_dict(stats.to_dict())
    assert np.array_equal(again.obs_mean, stats.obs_mean)


@pytest.mark.parametrize("env_id", ["Pendulum-v1", "CartPole-v1"])
@pytest.mark.parametrize("protocol", [None, 2, 5], ids=["sb3-save", "protocol2", "protocol5"])
def test_todays_vecnormalize_pickles_load(env_id: str, protocol: int | None, tmp_path: Path) -> None:
    venv = stepped_vecnormalize(env_id)
    path = tmp_path / "vecnormalize.pkl"
    if protocol is None:
        venv.save(str(path))
    else:
        path.write_bytes(pickle.dumps(venv, protocol=protocol))
    stats = load_vecnormalize_pkl(path)
    expected = NormalizationStats.from_vecnormalize(venv)
    assert np.array_equal(stats.obs_mean, expected.obs_mean)
    assert np.array_equal(stats.obs_var, expected.obs_var)
    assert stats.to_dict() == expected.to_dict()
    obs = venv.get_original_obs()
    assert np.allclose(stats.normalize(obs), venv.normalize_obs(obs), atol=1e-6)


def test_dict_observation_statistics_are_read_per_key(tmp_path: Path) -> None:
    space = spaces.Dict({"a": spaces.Box(-1, 1, (2,), np.float32), "b": spaces.Box(-5, 5, (3,), np.float32)})
    venv = VecNormalize(DummyVecEnv([lambda: SpaceEnv(space, spaces.Discrete(2))] * 2), norm_obs_keys=["b"])
    venv.reset()
    for _ in range(7):
        venv.step(np.array([0, 1]))
    venv.save(str(tmp_path / "v.pkl"))
    with pytest.raises(BundleError, match=r"per-key statistics of a Dict observation space.*load_vecnormalize_dict"):
        load_vecnormalize_pkl(tmp_path / "v.pkl")
    by_key = load_vecnormalize_dict(tmp_path / "v.pkl")
    assert list(by_key) == ["b"]  # only the normalized keys
    assert np.array_equal(by_key["b"].obs_mean, venv.obs_rms["b"].mean)
    assert np.array_equal(by_key["b"].obs_var, venv.obs_rms["b"].var)
    assert by_key["b"].count == pytest.approx(venv.obs_rms["b"].count)
    assert by_key["b"].extra["key"] == "b"
    with pytest.raises(BundleError, match="expected per-key statistics"):
        load_vecnormalize_dict(_flat_pickle(tmp_path))


def _flat_pickle(tmp_path: Path) -> Path:
    stepped_vecnormalize("CartPole-v1").save(str(tmp_path / "flat.pkl"))
    return tmp_path / "flat.pkl"


@needs_zoo_fixtures
@pytest.mark.fixtures
def test_zoo_dict_statistics_with_a_set_of_keys_load_as_inert_data() -> None:
    """The TQC + HER FetchReach statistics (SB3 1.1): obs_keys is a pickled ``builtins.set``."""
    by_key = load_vecnormalize_dict(zoo_fixture("tqc-FetchReach-v1.vecnormalize.pkl"))
    assert {k: v.obs_dim for k, v in by_key.items()} == {"achieved_goal": 3, "desired_goal": 3, "observation": 11}
    for stats in by_key.values():
        assert stats.count == pytest.approx(20000.0001) and stats.clip_obs == 10.0
        assert np.all(stats.obs_var >= 0) and np.all(np.isfinite(stats.obs_mean))


@pytest.mark.parametrize("kind", [set, frozenset])
def test_pickled_sets_of_plain_values_become_frozensets(kind: type, tmp_path: Path) -> None:
    from rltransfer.zoo import PICKLE_ALLOWLIST

    builder = PICKLE_ALLOWLIST[f"builtins.{kind.__name__}"]
    assert builder(["a", 1, None]) == frozenset({"a", 1, None})
    for bad in ("abc", {"a": 1}, [np.zeros(2)], [["nested"]]):
        with pytest.raises(UnsafeFileError, match=f"builtins.{kind.__name__}|pickled {kind.__name__}"):
            builder(bad)


def _shell_pickle(marker: Path, module: str = "os", name: str = "system") -> bytes:
    """A protocol-0 pickle whose REDUCE would run ``touch marker`` (hand-written, nothing is pickled)."""
    return f"c{module}\n{name}\n(S'touch {marker}'\ntR.".encode()


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("os", "system"),
        ("posix", "system"),
        ("subprocess", "getoutput"),
        ("builtins", "exec"),
        ("nt", "system"),
    ],
)
def test_malicious_pickle_is_refused_and_nothing_runs(module: str, name: str, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(_shell_pickle(marker, module, name))
    with pytest.raises(
        UnsafeFileError, match=rf"evil\.pkl: refused to load pickle global '{module}\.{name}'"
    ):
        load_vecnormalize_pkl(path)
    assert not marker.exists()


def test_payload_hidden_inside_allowed_vecnormalize_is_refused(tmp_path: Path) -> None:
    """An allowed outer class does not let an inner global through."""
    marker = tmp_path / "pwned"
    inner = _shell_pickle(marker)[:-1]  # without STOP
    evil = (
        b"cstable_baselines3.common.vec_env.vec_normalize\nVecNormalize\n)\x81}(Vobs_rms\n" + inner + b"ub."
    )
    path = tmp_path / "evil.pkl"
    path.write_bytes(evil)
    with pytest.raises(UnsafeFileError, match="os.system"):
        load_vecnormalize_pkl(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (pickle.dumps({"obs_rms": None}), "expected a pickled VecNormalize"),
        (b"\x80\x04\x95", "not a readable VecNormalize pickle"),
        (b"", "not a readable VecNormalize pickle"),
        (
            b"cstable_baselines3.common.vec_env.vec_normalize\nVecNormalize\n)\x81}b.",
            "expected RunningMeanStd",
        ),
    ],
    ids=["plain-dict", "truncated", "empty", "no-stats"],
)
def test_unreadable_pickles(content: bytes, match: str, tmp_path: Path) -> None:
    path = tmp_path / "v.pkl"
    path.write_bytes(content)
    with pytest.raises(BundleError, match=match):
        load_vecnormalize_pkl(path)


def test_truncated_real_pickle(tmp_path: Path) -> None:
    stepped_vecnormalize("Pendulum-v1", steps=2).save(str(tmp_path / "v.pkl"))
    raw = (tmp_path / "v.pkl").read_bytes()
    (tmp_path / "cut.pkl").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(BundleError, match=r"cut\.pkl"):
        load_vecnormalize_pkl(tmp_path / "cut.pkl")


def test_missing_pickle(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="file not found"):
        load_vecnormalize_pkl(tmp_path / "nope.pkl")


# --------------------------------------------------------------------------------------------------
# Zoo YAML


@needs_zoo_fixtures
@pytest.mark.fixtures
def test_fixture_zoo_config() -> None:
    config = load_zoo_config(zoo_fixture(f"{HOPPER}.config.yml"))
    assert config["policy_kwargs"] == {
        "log_std_init": -2,
        "ortho_init": False,
        "activation_fn": "ReLU",
        "net_arch": {"pi": [256, 256], "vf": [256, 256]},  # SB3 < 1.8's [dict(...)] read as today's SB3 takes it
    }
    assert config["clip_range"] == {"schedule": "linear", "start": 0.4, "end": 0.0}
    assert config["learning_rate"] == 3e-05
    assert config["env_wrapper"] == ["TimeFeatureWrapper"]
    assert config["normalize"] is True
    assert config["n_timesteps"] == 2_000_000 and isinstance(config["n_timesteps"], int)
    assert (config["batch_size"], config["n_steps"], config["use_sde"], config["sde_sample_freq"]) == (
        128,
        512,
        True,
        4,
    )
    assert list(config)[:3] == ["batch_size", "clip_range", "ent_coef"]  # the OrderedDict's order


@needs_zoo_fixtures
@pytest.mark.fixtures
def test_fixture_config_agrees_with_zip() -> None:
    config = load_zoo_config(zoo_fixture(f"{HOPPER}.config.yml"))
    archive = read_sb3_zip(zoo_fixture(f"{HOPPER}.zip"))
    assert (
        convert_net_arch(config["policy_kwargs"]["net_arch"], on_policy=True)
        == archive.policy_kwargs["net_arch"]
    )
    assert config["policy_kwargs"]["activation_fn"] == archive.policy_kwargs["activation_fn"]
    assert config["n_envs"] == archive.n_envs


def write(tmp_path: Path, text: str, name: str = "config.yml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "tag",
    [
        '!!python/object/apply:os.system ["touch {marker}"]',
        "!!python/object/apply:subprocess.check_output [[touch, {marker}]]",
        "!!python/object/new:os.system [touch {marker}]",
        "!!python/name:os.system",
        "!!python/module:os",
    ],
)
def test_malicious_yaml_tag_is_refused_and_nothing_runs(tag: str, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = write(tmp_path, f"n_envs: 1\npolicy: {tag.format(marker=marker)}\n")
    with pytest.raises(UnsafeFileError, match=r"config\.yml: refused YAML tag '!!python/.*' at line 2"):
        load_zoo_config(path)
    assert not marker.exists()


def test_other_unknown_tags_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"config\.yml: not valid YAML"):
        load_zoo_config(write(tmp_path, "a: !custom 1\n"))
    with pytest.raises(ConfigError, match=r"config\.yml: not valid YAML"):
        load_zoo_config(write(tmp_path, "a: [1, \n"))
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_zoo_config(write(tmp_path, "- 1\n- 2\n"))
    with pytest.raises(ConfigError, match="file not found"):
        load_zoo_config(tmp_path / "missing.yml")
    with pytest.raises(
        ConfigError, match=r"config\.yml: OrderedDict entry \['a', 1, 2\] is not a \[key, value\] pair"
    ):
        load_zoo_config(write(tmp_path, "!!python/object/apply:collections.OrderedDict\n- [[a, 1, 2]]\n"))


@pytest.mark.parametrize(
    ("text", "snippet"),
    [
        ("dict(activation_fn=os.system)", "os.system"),
        ("__import__('os').system('touch x')", "__import__('os').system('touch x')"),
        ("dict(net_arch=[64] * 2)", "[64] * 2"),
        ("dict(f=lambda: 1)", "lambda: 1"),
        ("dict(net_arch=arch[0])", "arch[0]"),
        ("dict(optimizer_class=th.optim.Adam)", "th.optim.Adam"),
        ("dict(**extra)", "dict(**extra)"),
        ("print(1)", "print(1)"),
        ("dict(1, a=2)", "dict(1, a=2)"),
        ("dict(x=nn.ReLU())", "nn.ReLU()"),
        ("dict(x=ReLU)", "ReLU"),
        ("dict(a=", "dict(a="),
    ],
)
def test_unsafe_policy_kwargs_are_refused(text: str, snippet: str, tmp_path: Path) -> None:
    path = write(tmp_path, f"policy_kwargs: {json.dumps(text)}\n")  # a JSON string is a YAML string
    with pytest.raises(ConfigError) as info:
        load_zoo_config(path)
    message = str(info.value)
    assert "config.yml" in message and "'policy_kwargs'" in message
    assert snippet in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "dict(activation_fn=th.nn.Tanh, net_arch=dict(pi=[64], vf=[64]), log_std_init=-1.5, ortho_init=True)",
            {
                "activation_fn": "Tanh",
                "net_arch": {"pi": [64], "vf": [64]},
                "log_std_init": -1.5,
                "ortho_init": True,
            },
        ),
        (
            "dict(activation_fn=torch.nn.ELU, squash_output=None)",
            {"activation_fn": "ELU", "squash_output": None},
        ),
        ("{'net_arch': (400, 300), 'n_critics': +1}", {"net_arch": [400, 300], "n_critics": 1}),
        ("dict()", {}),
    ],
)
def test_safe_policy_kwargs_parse(text: str, expected: dict[str, Any]) -> None:
    assert parse_policy_kwargs(text) == expected


def test_policy_kwargs_as_mapping() -> None:
    assert parse_policy_kwargs({"activation_fn": "nn.ReLU", "net_arch": [8]}) == {
        "activation_fn": "ReLU",
        "net_arch": [8],
    }
    with pytest.raises(ConfigError):
        parse_policy_kwargs({"activation_fn": "os.system"})
    with pytest.raises(ConfigError, match="expected a dict"):
        parse_policy_kwargs("[1, 2]")


def test_schedules_wrappers_normalize_and_timesteps(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "learning_rate: lin_7.3e-4\n"
        "clip_range: 0.2\n"
        "n_timesteps: !!float 1e6\n"
        "normalize: \"{'norm_obs': True, 'norm_reward': False}\"\n"
        "env_wrapper:\n"
        "  - sb3_contrib.common.wrappers.TimeFeatureWrapper: {max_steps: 500}\n"
        "  - rl_zoo3.wrappers.FrameSkip\n"
        "frame_stack: 4\n",
    )
    config = load_zoo_config(path)
    assert config["learning_rate"] == {"schedule": "linear", "start": 7.3e-4, "end": 0.0}
    assert config["clip_range"] == 0.2
    assert config["n_timesteps"] == 1_000_000
    assert config["normalize"] == {"norm_obs": True, "norm_reward": False}
    assert config["env_wrapper"] == ["TimeFeatureWrapper", "FrameSkip"]
    assert config["env_wrapper_kwargs"] == {"TimeFeatureWrapper": {"max_steps": 500}}
    assert config["frame_stack"] == 4
    dict_form = load_zoo_config(
        write(tmp_path, "env_wrapper: {gym.wrappers.TimeLimit: {max_episode_steps: 10}}\n")
    )
    assert dict_form["env_wrapper"] == ["TimeLimit"]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("learning_rate: exp_0.1\n", r"'learning_rate': unknown schedule 'exp_0.1'"),
        ("learning_rate: lin_fast\n", r"'learning_rate': schedule 'lin_fast'"),
        ("n_timesteps: 1.5\n", r"'n_timesteps': expected a non-negative whole number"),
        ("normalize: '[1]'\n", r"'normalize': expected true/false"),
        ("env_wrapper: [[a]]\n", r"'env_wrapper': expected a wrapper name"),
    ],
)
def test_bad_values(text: str, match: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=match):
        load_zoo_config(write(tmp_path, text))


# --------------------------------------------------------------------------------------------------
# Companion files


@needs_zoo_fixtures
@pytest.mark.fixtures
def test_fixture_companions() -> None:
    found = find_zoo_companions(zoo_fixture(f"{HOPPER}.zip"))
    assert found == {
        "vecnormalize": zoo_fixture(f"{HOPPER}.vecnormalize.pkl"),
        "config": zoo_fixture(f"{HOPPER}.config.yml"),
    }
    assert find_zoo_companions(zoo_fixture("ppo-CartPole-v1.zip")) == {"vecnormalize": None, "config": None}


def test_companions_in_zoo_log_layout(tmp_path: Path) -> None:
    run = tmp_path / "logs" / "ppo" / "HopperBulletEnv-v0_1"
    (run / "HopperBulletEnv-v0").mkdir(parents=True)
    for name in (
        "HopperBulletEnv-v0.zip",
        "best_model.zip",
        "HopperBulletEnv-v0/vecnormalize.pkl",
        "HopperBulletEnv-v0/config.yml",
    ):
        (run / name).touch()
    expected = {
        "vecnormalize": run / "HopperBulletEnv-v0" / "vecnormalize.pkl",
        "config": run / "HopperBulletEnv-v0" / "config.yml",
    }
    assert find_zoo_companions(run / "HopperBulletEnv-v0.zip") == expected
    assert find_zoo_companions(run / "best_model.zip") == expected


def test_companions_flat_layout(tmp_path: Path) -> None:
    (tmp_path / "config.yml").touch()
    (tmp_path / "vec_normalize.pkl").touch()
    assert find_zoo_companions(tmp_path / "ppo-Foo-v0.zip") == {
        "vecnormalize": tmp_path / "vec_normalize.pkl",
        "config": tmp_path / "config.yml",
    }
