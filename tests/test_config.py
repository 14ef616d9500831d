"""Config loading: safe YAML, typed models that reject unknown keys with the file, key path and value."""

from __future__ import annotations

from pathlib import Path

import pytest

from rltransfer import resources
from rltransfer.agents import load_agent
from rltransfer.config import Schedule, load_family, parse_set
from rltransfer.errors import ConfigError, UnknownNameError


def test_unknown_family_suggests_closest() -> None:
    with pytest.raises(UnknownNameError, match=r"unknown env family 'cartpol'.*Did you mean: 'cartpole'"):
        load_family("cartpol")


def test_unknown_agent_suggests_closest() -> None:
    with pytest.raises(UnknownNameError, match=r"Did you mean: 'ppo'"):
        load_agent("ppoo", "cartpole")


def test_agent_without_section_for_family_lists_families() -> None:
    with pytest.raises(UnknownNameError, match=r"'cartpole'.*Valid: .*pendulum"):
        load_agent("sac", "cartpole")


def test_every_shipped_agent_resolves_for_every_family_it_lists() -> None:
    import yaml

    for agent in resources.names("agents"):
        data = yaml.safe_load(resources.find("agents", agent).read_text())
        for family in data["families"]:
            spec = load_agent(agent, family)
            load_family(family)
            assert spec.algo == data["algo"]


def test_schedules_are_structured_values() -> None:
    spec = load_agent("ppo", "cartpole")
    lr = spec.hyperparams.learning_rate
    assert isinstance(lr, Schedule)
    assert lr.value(1.0) == pytest.approx(0.001) and lr.value(0.0) == pytest.approx(0.0)


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_unknown_key_names_file_key_and_valid_keys(tmp_path: Path) -> None:
    path = _write(tmp_path, "bad.yaml", """
algo: ppo
families:
  cartpole:
    hyperparams: {n_step: 32}
""")
    with pytest.raises(ConfigError) as info:
        load_agent(path, "cartpole")
    msg = str(info.value)
    assert str(path) in msg and "families.cartpole.hyperparams.n_step" in msg and "Did you mean: 'n_steps'" in msg


def test_wrong_type_names_value(tmp_path: Path) -> None:
    path = _write(tmp_path, "bad.yaml", "algo: ppo\nfamilies:\n  cartpole:\n    n_envs: many\n")
    with pytest.raises(ConfigError, match=r"families.cartpole.n_envs.*'many'"):
        load_agent(path, "cartpole")


def test_hyperparameter_the_algorithm_does_not_take(tmp_path: Path) -> None:
    path = _write(tmp_path, "bad.yaml", "algo: ppo\nfamilies:\n  cartpole:\n    hyperparams: {buffer_size: 10}\n")
    with pytest.raises(ConfigError, match=r"'buffer_size' is not used by PPO"):
        load_agent(path, "cartpole")


def test_python_in_strings_is_data_not_code(tmp_path: Path) -> None:
    path = _write(tmp_path, "bad.yaml", """
algo: ppo
families:
  cartpole:
    policy_kwargs: {activation_fn: "__import__('os').system('touch pwned')"}
""")
    with pytest.raises(ConfigError, match="activation_fn"):
        load_agent(path, "cartpole")
    assert not (tmp_path / "pwned").exists()


def test_python_yaml_tags_are_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "evil.yaml", "algo: !!python/object/apply:os.system ['touch pwned']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_agent(path, "cartpole")
    assert not (tmp_path / "pwned").exists()


def test_family_yaml_validation(tmp_path: Path) -> None:
    path = _write(tmp_path, "fam.yaml", """
name: myfam
gym_id: CartPole-v1
adapter: cartpole
return_range: [0, 500]
params:
  length: {nominal: 9.0, low: 0.1, high: 2.0}
""")
    with pytest.raises(ConfigError, match=r"params.length.*nominal 9.0 is outside"):
        load_family(path)
    path.write_text(path.read_text().replace("nominal: 9.0", "nominal: 1.0").replace("length:", "lenght:"))
    with pytest.raises(UnknownNameError, match=r"Did you mean: 'length'"):
        load_family(path)


def test_parse_set() -> None:
    assert parse_set(["length=1.5", "gravity = 3"]) == {"length": 1.5, "gravity": 3.0}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_set(["length"])
    with pytest.raises(ConfigError, match="must be a number"):
        parse_set(["length=long"])


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(UnknownNameError, match="no such file"):
        load_family(tmp_path / "nope.yaml")
