"""The RL Zoo's command-line habits: ``--hyperparams key:value`` (parsed like Zoo configs, never evaluated),
``--n-envs``, ``--vec-env``, ``--device``, and Gymnasium ids as ``--env``."""

from __future__ import annotations

from pathlib import Path

import pytest

from rltransfer.agents import load_agent
from rltransfer.cli import env_name, main
from rltransfer.errors import ConfigError
from rltransfer.spec import load_spec
from rltransfer.zoo import apply_agent_overrides, parse_hyperparams


@pytest.mark.parametrize(("given", "family"), [
    ("HopperBulletEnv-v0", "hopper"), ("CartPole-v1", "cartpole"), ("Pendulum-v1", "pendulum"),
    ("cartpole", "cartpole"), ("CartPole-v0", "CartPole-v0"),
])
def test_gymnasium_ids_name_the_family_that_wraps_them(given: str, family: str) -> None:
    assert env_name(given) == family


def test_hyperparams_are_parsed_safely_and_validated() -> None:
    parsed = parse_hyperparams(["learning_rate:lin_0.001", "n_steps:64", "ent_coef:0.01",
                                "policy_kwargs:dict(net_arch=[64, 64], activation_fn=nn.ReLU)",
                                "normalize:{'norm_obs': True, 'norm_reward': False}"])
    spec = apply_agent_overrides(load_agent("ppo", "cartpole"), parsed, n_envs=2, vec_env="subproc")
    assert spec.hyperparams.learning_rate.schedule == "linear" and spec.hyperparams.learning_rate.start == 0.001
    assert spec.hyperparams.n_steps == 64 and spec.hyperparams.ent_coef == 0.01
    assert spec.policy_kwargs.net_arch == [64, 64] and spec.policy_kwargs.activation_fn == "ReLU"
    assert spec.normalize is not None and spec.normalize.obs and not spec.normalize.reward
    assert (spec.n_envs, spec.vec_env) == (2, "subproc")
    assert apply_agent_overrides(load_agent("sac", "pendulum"), parse_hyperparams(["ent_coef:auto"])
                                 ).hyperparams.ent_coef == "auto"


@pytest.mark.parametrize(("items", "message"), [
    (["buffer_size:100"], r"'buffer_size' is not used by PPO"),
    (["n_steps"], r"expected key:value"),
    (["n_steps:1", "n_steps:2"], r"given twice"),
    (["learning_rate:__import__('os').system('x')"], r"call of .__import__.*is not allowed"),
    (["policy_kwargs:dict(net_arch=open('/etc/passwd'))"], r"call of 'open' is not allowed"),
    (["n_steps:-5"], r"n_steps"),
    (["normalize:{'evil': 1}"], r"unknown keys \['evil'\]"),
])
def test_bad_hyperparams_are_one_clear_error(items: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        apply_agent_overrides(load_agent("ppo", "cartpole"), parse_hyperparams(items))


def test_cli_train_with_zoo_overrides_records_them(tmp_path: Path) -> None:
    code = main(["train", "--env", "CartPole-v1", "--agent", "ppo", "--steps", "64", "--out", str(tmp_path),
                 "--name", "z", "--eval-episodes", "1", "--no-progress", "--n-envs", "2", "--vec-env", "dummy",
                 "--device", "cpu", "--hyperparams", "n_steps:16", "batch_size:16", "n_epochs:1",
                 "learning_rate:lin_0.002", "policy_kwargs:dict(net_arch=[8])"])
    assert code == 0
    spec = load_spec(tmp_path / "z")
    assert spec.env.family.name == "cartpole" and spec.agent.n_envs == 2
    assert spec.agent.hyperparams.n_steps == 16 and spec.agent.hyperparams.learning_rate.start == 0.002
    assert spec.agent.policy_kwargs.net_arch == [8]


def test_cli_refuses_bad_overrides_with_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", "--env", "cartpole", "--agent", "ppo", "--out", str(tmp_path), "--hyperparams",
                 "learning_rate:eval('1')"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("rltransfer: error: ") and "eval" in err
    assert not any(tmp_path.iterdir())


# ------------------------------------------------------------------------------------------------ enjoy


def _short_policy(tmp_path: Path) -> Path:
    from stable_baselines3 import PPO

    model = PPO("MlpPolicy", "CartPole-v1", policy_kwargs={"net_arch": [8]}, seed=0, device="cpu")
    model.save(tmp_path / "ppo.zip")
    return tmp_path / "ppo.zip"


def test_enjoy_records_cartpole_frames(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("moviepy", reason="video recording needs the 'video' extra (moviepy)")
    pytest.importorskip("pygame", reason="CartPole renders with pygame (the 'video' extra)")
    import imageio.v3 as iio

    from rltransfer.evaluation import enjoy, evaluate

    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    policy = _short_policy(tmp_path)
    result = enjoy(policy, "cartpole", episodes=1, seed=3, video=tmp_path / "out" / "cartpole.mp4")
    assert result.videos == [str(tmp_path / "out" / "cartpole.mp4")]
    frames = iio.imread(tmp_path / "out" / "cartpole.mp4")
    assert frames.ndim == 4 and frames.shape[0] >= result.lengths[0] and frames.shape[-1] == 3
    assert result.returns == evaluate(policy, "cartpole", episodes=1, seed=3).returns  # same episode
    assert not [p for p in (tmp_path / "out").iterdir() if p.name != "cartpole.mp4"]  # no leftovers
    code = main(["enjoy", "--policy", str(policy), "--env", "CartPole-v1", "--episodes", "2",
                 "--video", str(tmp_path / "two.mp4")])
    assert code == 0 and (tmp_path / "two-episode-0.mp4").is_file() and (tmp_path / "two-episode-1.mp4").is_file()


def test_enjoy_without_moviepy_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    import sys

    pytest.importorskip("pygame", reason="CartPole renders with pygame (the 'video' extra)")
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    monkeypatch.setitem(sys.modules, "moviepy", None)  # import moviepy -> ImportError
    code = main(["enjoy", "--policy", str(_short_policy(tmp_path)), "--env", "cartpole",
                 "--video", str(tmp_path / "v.mp4")])
    err = capsys.readouterr().err
    assert code == 2 and "pip install 'rltransfer[video]'" in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.glob(".v.frames-*"))  # the temporary folder is gone
