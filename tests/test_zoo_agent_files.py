"""RL Zoo hyperparameter files as agents: ``--agent zoo:hyperparams/ppo.yml`` (or recognised without the
prefix), sections keyed by Gymnasium ids, the Zoo's value forms read safely, unknown entries an error."""

from __future__ import annotations

from pathlib import Path

import pytest

from rltransfer.agents import load_agent
from rltransfer.cli import main
from rltransfer.errors import ConfigError, UnsafeFileError
from rltransfer.spec import load_spec
from rltransfer.zoo import is_zoo_hyperparams, load_zoo_agent, zoo_algo_of

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "rl-zoo"

# The Zoo's hyperparams/<algo>.yml form: an `atari` section, sections keyed by Gymnasium ids, !!float
# numbers, lin_ schedules, policy_kwargs as a dict(...) string (SB3 < 1.8's [dict(pi=..., vf=...)]), an
# anchor whose section others merge.
PPO_YML = """\
atari:
  env_wrapper:
    - stable_baselines3.common.atari_wrappers.AtariWrapper
  frame_stack: 4
  policy: 'CnnPolicy'
  n_timesteps: !!float 1e7

CartPole-v1:
  n_envs: 2
  n_timesteps: !!float 2e4
  policy: 'MlpPolicy'
  n_steps: 32
  batch_size: 32
  gae_lambda: 0.8
  gamma: 0.98
  n_epochs: 2
  ent_coef: 0.0
  learning_rate: lin_0.001
  clip_range: lin_0.2
  policy_kwargs: "dict(net_arch=[16])"

HalfCheetahBulletEnv-v0: &pybullet-defaults
  normalize: true
  n_envs: 16
  n_timesteps: !!float 2e6
  policy: 'MlpPolicy'
  batch_size: 128
  n_steps: 512
  gae_lambda: 0.9
  use_sde: True
  sde_sample_freq: 4
  learning_rate: !!float 3e-5
  clip_range: 0.4
  policy_kwargs: "dict(log_std_init=-2,
                       ortho_init=False,
                       activation_fn=nn.ReLU,
                       net_arch=[dict(pi=[256, 256], vf=[256, 256])]
                       )"

HopperBulletEnv-v0:
  <<: *pybullet-defaults
  clip_range: lin_0.4
"""

TD3_YML = """\
Pendulum-v1:
  n_timesteps: 20000
  policy: 'MlpPolicy'
  gamma: 0.98
  buffer_size: 200000
  learning_starts: 10000
  noise_type: 'normal'
  noise_std: 0.1
  gradient_steps: 1
  train_freq: 1
  learning_rate: !!float 1e-3
  policy_kwargs: "dict(net_arch=[400, 300])"
"""


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_zoo_hyperparams_file_is_the_agent_of_each_family_it_has(tmp_path: Path) -> None:
    path = _write(tmp_path, "ppo.yml", PPO_YML)
    assert is_zoo_hyperparams(path) and zoo_algo_of(path) == "ppo"
    cartpole = load_agent(path, "cartpole")  # recognised without the zoo: prefix
    assert load_agent(f"zoo:{path}", "cartpole") == cartpole
    assert (cartpole.algo, cartpole.n_envs, cartpole.n_timesteps) == ("ppo", 2, 20_000)
    lr = cartpole.hyperparams.learning_rate
    assert (lr.schedule, lr.start, lr.end) == ("linear", 0.001, 0.0)
    assert cartpole.hyperparams.n_steps == 32 and cartpole.hyperparams.gamma == 0.98
    assert cartpole.policy_kwargs.net_arch == [16] and cartpole.normalize is None
    # a merge key: hopper is halfcheetah's section with its own clip_range
    hopper, cheetah = load_agent(path, "hopper"), load_agent(path, "halfcheetah")
    assert hopper.n_envs == cheetah.n_envs == 16 and hopper.n_timesteps == 2_000_000
    assert cheetah.hyperparams.clip_range == 0.4 and hopper.hyperparams.clip_range.start == 0.4
    assert hopper.policy_kwargs.net_arch == {"pi": [256, 256], "vf": [256, 256]}  # SB3 < 1.8's list form
    assert (hopper.policy_kwargs.activation_fn, hopper.policy_kwargs.ortho_init) == ("ReLU", False)
    assert hopper.hyperparams.use_sde and hopper.hyperparams.sde_sample_freq == 4
    # the Zoo's normalize: true is VecNormalize's defaults: observations and rewards
    assert hopper.normalize is not None and hopper.normalize.obs and hopper.normalize.reward
    # what the file does not give is SB3's default, as in the Zoo (not rltransfer's tuned agent)
    assert hopper.hyperparams.n_epochs is None and hopper.eval.episodes == 10


def test_zoo_noise_and_the_algorithm_from_the_name_or_the_prefix(tmp_path: Path) -> None:
    td3 = load_agent(_write(tmp_path, "td3.yml", TD3_YML), "pendulum")
    assert td3.algo == "td3" and td3.hyperparams.action_noise_std == 0.1
    assert td3.policy_kwargs.net_arch == [400, 300]
    other = _write(tmp_path, "tuned.yml", TD3_YML)
    with pytest.raises(ConfigError, match=r"cannot tell which algorithm.*zoo:ALGO:"):
        load_agent(other, "pendulum")
    assert load_agent(f"zoo:td3:{other}", "pendulum") == td3
    assert load_agent(f"zoo:ddpg:{other}", "pendulum").algo == "ddpg"
    assert load_zoo_agent(other, "pendulum", algo="td3").algo == "td3"


def test_a_saved_zoo_config_is_an_agent_too(tmp_path: Path) -> None:
    # the single-section form saved beside a trained agent, in the Zoo's OrderedDict tag, in its log layout
    folder = tmp_path / "logs" / "sac" / "Pendulum-v1_1" / "Pendulum-v1"
    folder.mkdir(parents=True)
    config = folder / "config.yml"
    config.write_text("!!python/object/apply:collections.OrderedDict\n- - - learning_rate\n    - 0.001\n"
                      "  - - n_timesteps\n    - 20000\n  - - policy\n    - MlpPolicy\n"
                      "  - - policy_kwargs\n    - dict(net_arch=[16])\n")
    assert is_zoo_hyperparams(config) and zoo_algo_of(config) == "sac"
    agent = load_agent(config, "pendulum")
    assert (agent.algo, agent.hyperparams.learning_rate, agent.policy_kwargs.net_arch) == ("sac", 0.001, [16])


@pytest.mark.skipif(not (FIXTURES / "ppo-HopperBulletEnv-v0.config.yml").is_file(),
                    reason="the RL Zoo fixtures (../shared/fixtures/rl-zoo) are not beside this checkout")
def test_the_published_hopper_config_is_read_as_its_agent() -> None:
    agent = load_agent(f"zoo:{FIXTURES / 'ppo-HopperBulletEnv-v0.config.yml'}", "hopper")
    assert agent.algo == "ppo" and agent.wrappers == ["TimeFeatureWrapper"]
    assert agent.policy_kwargs.net_arch == {"pi": [256, 256], "vf": [256, 256]}
    assert agent.normalize is not None and agent.n_envs == 16 and agent.hyperparams.use_sde


def test_shipped_and_own_agent_files_are_not_taken_for_zoo_files(tmp_path: Path) -> None:
    from rltransfer import resources

    assert not is_zoo_hyperparams(resources.find("agents", "ppo"))
    own = _write(tmp_path, "mine.yaml", "algo: ppo\nfamilies:\n  cartpole:\n    n_envs: 3\n")
    assert not is_zoo_hyperparams(own) and load_agent(own, "cartpole").n_envs == 3


@pytest.mark.parametrize(("section", "message"), [
    ("  learning_rat: 0.001\n", r"learning_rat.*Did you mean.*learning_rate"),
    ("  buffer_size: 100\n", r"'buffer_size' is not used by PPO"),
    ("  frame_stack: 4\n", r"key 'frame_stack' is not supported: frame stacking"),
    ("  policy: CnnPolicy\n", r"image \(CNN\) policies are not supported"),
    ("  policy: MultiInputPolicy\n", r"Dict observations are not supported"),
    ("  callback: rl_zoo3.callbacks.ParallelTrainCallback\n", r"key 'callback' is not supported"),
    ("  replay_buffer_class: HerReplayBuffer\n", r"key 'replay_buffer_class' is not supported"),
    ("  normalize: \"{'norm_obs': True, 'gamma': 0.9}\"\n", r"normalize: unknown keys \['gamma'\]"),
    ("  learning_rate: cosine_0.1\n", r"unknown schedule 'cosine_0.1'"),
    ("  policy_kwargs: \"dict(net_arch=[64, dict(pi=[64], vf=[64])])\"\n", r"SB3 1.8 removed shared layers"),
    ("  policy_kwargs: \"dict(activation_fn=__import__('os').system('x'))\"\n", r"call of .__import__"),
    ("  n_timesteps: 0\n", r"n_timesteps"),
    ("  env_wrapper:\n    - sb3_contrib.common.wrappers.TimeFeatureWrapper:\n        max_steps: 10\n",
     r"wrappers with options are not supported"),
    ("  env_wrapper: my.module.MagicWrapper\n", r"wrapper 'MagicWrapper'"),
])
def test_every_zoo_entry_is_used_or_refused_by_name(tmp_path: Path, section: str, message: str) -> None:
    path = _write(tmp_path, "ppo.yml", "CartPole-v1:\n  policy: 'MlpPolicy'\n" + section)
    with pytest.raises(ConfigError, match=message) as info:
        load_agent(path, "cartpole")
    assert str(path) in str(info.value) and "CartPole-v1" in str(info.value)


def test_off_policy_entries_the_zoo_uses_are_refused_with_their_reason(tmp_path: Path) -> None:
    path = _write(tmp_path, "td3.yml", TD3_YML.replace("noise_type: 'normal'", "noise_type: 'ornstein-uhlenbeck'"))
    with pytest.raises(ConfigError, match=r"noise_type.*'ornstein-uhlenbeck' is not supported; valid: normal"):
        load_agent(path, "pendulum")
    path = _write(tmp_path, "td3.yml", TD3_YML.replace("  noise_type: 'normal'\n", ""))
    with pytest.raises(ConfigError, match=r"noise_std without noise_type"):
        load_agent(path, "pendulum")
    path = _write(tmp_path, "sac.yml", "Pendulum-v1:\n  train_freq: [1, \"episode\"]\n")
    with pytest.raises(ConfigError, match=r"sac.yml \[Pendulum-v1\].*train_freq"):
        load_agent(path, "pendulum")


def test_a_family_the_file_does_not_cover_is_named_with_what_it_has(tmp_path: Path) -> None:
    path = _write(tmp_path, "ppo.yml", PPO_YML)
    with pytest.raises(ConfigError, match=r"no section for Pendulum-v1 \(the Gymnasium id that family 'pendulum' "
                                          r"wraps\)\. The file has 4: atari, CartPole-v1, HalfCheetah"):
        load_agent(path, "pendulum")


def test_hostile_zoo_files_run_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    path = _write(tmp_path, "ppo.yml", f"CartPole-v1:\n  n_steps: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(UnsafeFileError, match=r"refused YAML tag"):
        load_agent(f"zoo:{path}", "cartpole")
    assert not marker.exists()
    assert not is_zoo_hyperparams(path)  # refused while sniffing too: then read as an agent file, refused again
    with pytest.raises((UnsafeFileError, ConfigError)):
        load_agent(path, "cartpole")
    assert not marker.exists()
    with pytest.raises(ConfigError, match=r"no such file"):
        load_agent(f"zoo:{tmp_path / 'missing.yml'}", "cartpole")


def test_cli_trains_and_transfers_with_a_zoo_agent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, "ppo.yml", PPO_YML)
    out = tmp_path / "runs"
    assert main(["train", "--env", "CartPole-v1", "--agent", f"zoo:{path}", "--steps", "128", "--out", str(out),
                 "--name", "src", "--eval-episodes", "1", "--no-progress"]) == 0
    spec = load_spec(out / "src")
    assert spec.agent.name == "zoo-ppo" and spec.agent.n_envs == 2 and spec.agent.hyperparams.n_steps == 32
    assert spec.agent.hyperparams.learning_rate.start == 0.001 and spec.steps == 128
    assert main(["transfer", "--from", str(out / "src"), "--env", "cartpole", "--set", "length=0.7",
                 "--agent", f"zoo:{path}", "--steps", "128", "--out", str(out), "--name", "dst",
                 "--eval-episodes", "1", "--no-progress", "--device", "cpu"]) == 0
    dst = load_spec(out / "dst")
    assert dst.agent.hyperparams.n_epochs == 2 and dst.device == "cpu" and dst.transfer is not None
    capsys.readouterr()
    bad = _write(tmp_path, "a2c.yml", "CartPole-v1:\n  frame_stack: 4\n")
    assert main(["train", "--env", "cartpole", "--agent", f"zoo:{bad}", "--out", str(out), "--name", "bad"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rltransfer: error: ") and "frame_stack" in err and len(err.strip().splitlines()) == 1
    assert not (out / "bad").exists()
