"""Every Zoo agent in: the RL Zoo fixtures and the cases they lack (built in ``tests/zoo_cases.py`` in the format
their SB3 version wrote) are read without unpickling, named by their true algorithm, and act exactly as plain
SB3 / sb3-contrib does with the same file (same actions on sampled observations, same returns on the same
seeds), or are refused with a reason that names what is unsupported."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
import zoo_cases as zc
from conftest import needs_zoo_fixtures, zoo_fixture
from sb3_contrib import ARS, QRDQN, TQC, TRPO, CrossQ, RecurrentPPO
from sb3_contrib.tqc.policies import MultiInputPolicy as TQCMultiInputPolicy
from stable_baselines3 import A2C, DDPG, DQN, PPO, SAC, TD3

from rltransfer.bundle import load_policy
from rltransfer.errors import BundleError, TransferError
from rltransfer.evaluation import evaluate
from rltransfer.inspection import inspect_source
from rltransfer.sb3zip import read_sb3_zip

CARTPOLE, PENDULUM = gym.make("CartPole-v1"), gym.make("Pendulum-v1")

# ------------------------------------------------------------------------------------------ the fixtures

FIXTURES = [
    # file, true algorithm, SB3 class, env family, gym id
    ("a2c-CartPole-v1.zip", "a2c", A2C, "cartpole", "CartPole-v1"),
    ("ppo-CartPole-v1.zip", "ppo", PPO, "cartpole", "CartPole-v1"),
    ("dqn-CartPole-v1.zip", "dqn", DQN, "cartpole", "CartPole-v1"),
    ("trpo-CartPole-v1.zip", "trpo", TRPO, "cartpole", "CartPole-v1"),
    ("qrdqn-CartPole-v1.zip", "qrdqn", QRDQN, "cartpole", "CartPole-v1"),
    ("ars-CartPole-v1.zip", "ars", ARS, "cartpole", "CartPole-v1"),
    ("sac-Pendulum-v1.zip", "sac", SAC, "pendulum", "Pendulum-v1"),
]


@needs_zoo_fixtures
@pytest.mark.fixtures
@pytest.mark.parametrize(("name", "algo", "cls", "family", "env_id"), FIXTURES, ids=[f[0] for f in FIXTURES])
def test_fixture_is_its_true_algorithm_and_acts_as_plain_sb3(name: str, algo: str, cls: type, family: str,
                                                              env_id: str) -> None:
    path = zoo_fixture(name)
    assert read_sb3_zip(path).algo == algo
    ours = load_policy(path)
    assert type(ours.model) is cls
    env = gym.make(env_id)
    ref = zc.plain_load(cls, path, env.observation_space, env.action_space, policy_class=type(ours.model.policy))
    assert zc.same_actions(ours.model, ref, env.observation_space, n=256) == 0.0
    assert evaluate(ours, family, episodes=2, seed=5).returns == zc.plain_returns(ref, env_id, 2, seed=5)


@needs_zoo_fixtures
@pytest.mark.fixtures
def test_trpo_is_not_reported_as_ppo() -> None:
    info = inspect_source(zoo_fixture("trpo-CartPole-v1.zip"))
    assert info["algo"] == "trpo"
    assert {"cg_max_steps", "line_search_max_iter", "n_critic_updates"} <= set(info["hyperparams"])


@needs_zoo_fixtures
@pytest.mark.fixtures
def test_tqc_her_fetchreach_with_dict_observation_and_statistics() -> None:
    """TQC + HER (sb3-contrib 1.1): Dict observation read from its printed form, per-key statistics read
    through the restricted unpickler (its builtins.set inert), actions equal to plain sb3-contrib's."""
    path = zoo_fixture("tqc-FetchReach-v1.zip")
    ours = load_policy(path)
    assert ours.algo == "tqc" and isinstance(ours.observation_space, gym.spaces.Dict)
    assert {k: s.shape for k, s in ours.observation_space.spaces.items()} == {
        "achieved_goal": (3,), "desired_goal": (3,), "observation": (11,)}
    assert ours.policy_kwargs["n_quantiles"] == 25 and ours.policy_kwargs["n_critics"] == 1
    assert sorted(ours.normalization_by_key) == ["achieved_goal", "desired_goal", "observation"]
    assert ours.normalization is None  # per-key statistics are described, never applied as flat ones
    ref = zc.plain_load(TQC, path, ours.observation_space, ours.action_space, policy_class=TQCMultiInputPolicy,
                        replay_buffer_kwargs={})
    assert zc.same_actions(ours.model, ref, ours.observation_space, n=128) == 0.0
    info = inspect_source(path)
    assert info["observation_space"].startswith("Dict(achieved_goal: Box(3,)")
    assert "per key: achieved_goal 3 features" in info["normalization"]
    roles = {t["name"]: t["role"] for t in info["tensors"]}
    assert roles["critic.qf0.4.weight"] == "quantile critic head (qf0)"
    assert roles["critic.qf0.0.weight"] == "quantile critic qf0 layer 0"


@needs_zoo_fixtures
@pytest.mark.fixtures
def test_dict_observation_source_is_refused_for_transfer_with_the_reason() -> None:
    from rltransfer.errors import IncompatibleSpacesError
    from rltransfer.transfer import transfer_spec

    with pytest.raises(IncompatibleSpacesError, match=r"Dict observation spaces \(keys \['achieved_goal'.*not supported "
                                                      "for transfer"):
        transfer_spec(zoo_fixture("tqc-FetchReach-v1.zip"), "pendulum", algo="tqc", steps=100)


@needs_zoo_fixtures
@pytest.mark.fixtures
def test_cli_inspect_and_evaluate_contrib_fixtures(tmp_path: Path) -> None:
    from rltransfer.cli import main

    assert main(["inspect", str(zoo_fixture("qrdqn-CartPole-v1.zip")), "--json"]) == 0
    out = tmp_path / "eval.json"
    assert main(["evaluate", "--policy", str(zoo_fixture("ars-CartPole-v1.zip")), "--env", "cartpole",
                 "--episodes", "1", "--threads", "1", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["returns"] == [500.0]


# ---------------------------------------------------------------------------- cases the fixtures lack


@pytest.mark.parametrize("algo", ["sac", "tqc"])
def test_sb3_1x_agent_with_fixed_ent_coef_opens(algo: str, tmp_path: Path) -> None:
    """SB3 1.x wrote ``{'log_ent_coef': None, 'ent_coef_tensor': tensor}`` for a fixed entropy coefficient."""
    path = zc.old_sac_fixed_ent_coef(tmp_path, algo)
    with zipfile.ZipFile(path) as archive:
        variables = torch.load(archive.open("pytorch_variables.pth"), weights_only=True)
        assert variables["log_ent_coef"] is None and "gym.spaces.box.Box" in archive.read("data").decode()
    archive = read_sb3_zip(path)
    assert archive.algo == algo and archive.hyperparams["ent_coef"] == 0.1
    assert set(archive.pytorch_variables) == {"ent_coef_tensor"}
    assert any("log_ent_coef saved as None" in note for note in archive.notes)
    ours = load_policy(path)
    cls = {"sac": SAC, "tqc": TQC}[algo]
    ref = zc.plain_load(cls, path, PENDULUM.observation_space, PENDULUM.action_space)
    assert zc.same_actions(ours.model, ref, PENDULUM.observation_space) == 0.0
    assert evaluate(ours, "pendulum", episodes=2).returns == zc.plain_returns(ref, "Pendulum-v1", 2)


def test_ddpg_is_told_from_td3_by_its_own_fields(tmp_path: Path) -> None:
    ddpg, td3 = zc.ddpg_zip(tmp_path), zc.td3_zip(tmp_path)
    assert read_sb3_zip(ddpg).algo == "ddpg" and read_sb3_zip(td3).algo == "td3"
    ours = load_policy(ddpg)
    assert type(ours.model) is DDPG and ours.policy_kwargs["n_critics"] == 1  # DDPG: one critic
    ref = DDPG.load(ddpg, device="cpu")  # our own file, written just now by SB3
    assert zc.same_actions(ours.model, ref, PENDULUM.observation_space) == 0.0
    assert evaluate(ours, "pendulum", episodes=2).returns == zc.plain_returns(ref, "Pendulum-v1", 2)
    # without policy_delay / target_noise_clip the data cannot tell them apart: the error names --algo
    with zipfile.ZipFile(ddpg) as archive:
        members = {n: archive.read(n) for n in archive.namelist()}
    data = json.loads(members["data"])
    del data["policy_delay"], data["target_noise_clip"]
    members["data"] = json.dumps(data).encode()
    with zipfile.ZipFile(tmp_path / "unknown.zip", "w") as archive:
        for n, raw in members.items():
            archive.writestr(n, raw)
    with pytest.raises(BundleError, match=r"TD3Policy is used by TD3 and DDPG.*--algo.*one of: td3, ddpg"):
        read_sb3_zip(tmp_path / "unknown.zip")
    assert read_sb3_zip(tmp_path / "unknown.zip", algo="ddpg").algo == "ddpg"


def test_cli_names_the_option_when_the_algorithm_is_undecidable(tmp_path: Path) -> None:
    path = zc.ddpg_zip(tmp_path)
    with zipfile.ZipFile(path) as archive:
        members = {n: archive.read(n) for n in archive.namelist()}
    data = json.loads(members["data"])
    del data["policy_delay"]
    members["data"] = json.dumps(data).encode()
    with zipfile.ZipFile(tmp_path / "u.zip", "w") as archive:
        for n, raw in members.items():
            archive.writestr(n, raw)
    cmd = [sys.executable, "-m", "rltransfer.cli", "inspect", str(tmp_path / "u.zip")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "--algo" in done.stderr and "td3, ddpg" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    done = subprocess.run([*cmd, "--algo", "ddpg"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "ddpg" in done.stdout


def test_image_policies_are_refused_saying_so(tmp_path: Path) -> None:
    path = zc.cnn_zip(tmp_path)
    info = inspect_source(path)  # inspecting still works
    assert info["supported"] is False and "image (CNN) policies are not supported" in info["unsupported"]
    with pytest.raises(BundleError, match=r"image \(CNN\) policies are not supported.*features_extractor\.cnn"):
        load_policy(path)
    from rltransfer.cli import main

    assert main(["evaluate", "--policy", str(path), "--env", "cartpole", "--episodes", "1"]) == 2


def test_recurrent_ppo_is_evaluated_with_its_lstm_state_carried(tmp_path: Path) -> None:
    path = zc.recurrent_zip(tmp_path)
    ours = load_policy(path)
    assert ours.algo == "recurrentppo" and type(ours.model) is RecurrentPPO
    assert ours.policy_kwargs["lstm_hidden_size"] == 8 and ours.policy_kwargs["enable_critic_lstm"] is True
    ref = RecurrentPPO.load(path, device="cpu")  # our own file, written just now by sb3-contrib
    ours_returns = evaluate(ours, "cartpole", episodes=4, seed=1).returns
    assert ours_returns == zc.plain_returns(ref, "CartPole-v1", 4, seed=1)
    # the state matters: acting with the state reset at every step gives other actions on the same episode
    env = gym.make("CartPole-v1")
    obs, _ = env.reset(seed=0)
    state, start, carried, reset = None, np.ones((1,), bool), [], []
    for _ in range(30):
        action, state = ours.model.predict(obs, state=state, episode_start=start, deterministic=True)
        fresh, _ = ours.model.predict(obs, state=None, episode_start=np.ones((1,), bool), deterministic=True)
        carried.append(int(action)), reset.append(int(fresh))
        obs, _, term, trunc, _ = env.step(int(action))
        start = np.array([term or trunc])
        if term or trunc:
            obs, _ = env.reset()
    assert carried != reset


def test_recurrent_ppo_transfer_is_refused_with_the_reason(tmp_path: Path) -> None:
    from rltransfer.transfer import transfer_spec

    with pytest.raises(TransferError, match=r"RECURRENTPPO cannot be a transfer source: .*LSTM state"):
        transfer_spec(zc.recurrent_zip(tmp_path), "cartpole", algo="recurrentppo", steps=100)
    with pytest.raises(TransferError, match=r"RECURRENTPPO cannot be a transfer source"):
        transfer_spec(zc.recurrent_zip(tmp_path), "cartpole", algo="ppo", steps=100)


@pytest.mark.parametrize(("build", "cls", "env_id", "family"), [
    (zc.crossq_zip, CrossQ, "Pendulum-v1", "pendulum"),
    (zc.ars_mlp_zip, ARS, "Pendulum-v1", "pendulum"),
    (zc.td3_zip, TD3, "Pendulum-v1", "pendulum"),
], ids=["crossq", "ars-mlp", "td3"])
def test_todays_contrib_saves_act_as_plain_contrib(build, cls: type, env_id: str, family: str,
                                                   tmp_path: Path) -> None:
    path = build(tmp_path)
    ours = load_policy(path)
    assert type(ours.model) is cls
    ref = cls.load(path, device="cpu")  # our own file, written just now
    env = gym.make(env_id)
    assert zc.same_actions(ours.model, ref, env.observation_space) == 0.0
    assert evaluate(ours, family, episodes=2, seed=3).returns == zc.plain_returns(ref, env_id, 2, seed=3)
