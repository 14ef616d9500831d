"""sb3-contrib algorithms (TRPO, TQC, QR-DQN, ARS, CrossQ) and DDPG as first-class agents: trained from the
shipped agent files, saved and reloaded as bundles, and transferred, between runs of the same algorithm and
across the pairs that share a policy layout (TRPO <-> PPO <-> A2C, DDPG <-> TD3, SAC <-> TQC actors), with
their own tensor roles in the plan; and the budget check, the thread setting and the strategy limits."""

from __future__ import annotations

import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from sb3_contrib import ARS, QRDQN, TQC, TRPO, CrossQ
from stable_baselines3 import A2C, DDPG, PPO, SAC, TD3
from tiny import tiny

from rltransfer.bundle import load_bundle
from rltransfer.errors import ConfigError, TransferError
from rltransfer.evaluation import evaluate
from rltransfer.pipeline import prepare_transfer, train, transfer
from rltransfer.training import BudgetWarning, check_learning_starts

CARTPOLE, PENDULUM = gym.make("CartPole-v1"), gym.make("Pendulum-v1")


def saved(tmp_path: Path, name: str, model) -> Path:
    """``model`` saved as a zip by today's SB3 / sb3-contrib."""
    model.save(tmp_path / f"{name}.zip")
    return tmp_path / f"{name}.zip"


def actions(model, space: gym.Space, n: int = 64) -> np.ndarray:
    obs = np.random.default_rng(0).normal(size=(n, *space.shape)).astype(np.float32)
    return np.asarray(model.predict(obs, deterministic=True)[0], dtype=np.float64)


def _tiny_model(cls, env_id: str, **kwargs):
    model = cls("MlpPolicy", env_id, policy_kwargs={"net_arch": [16], **kwargs.pop("policy_kwargs", {})}, seed=0,
                device="cpu", **kwargs)
    with torch.no_grad():
        gen = torch.Generator().manual_seed(1)
        for p in model.policy.parameters():
            if p.is_floating_point():
                p.add_(torch.randn(p.shape, generator=gen) * 0.3)
    return model


# ------------------------------------------------------------------------------- shipped agents train


@pytest.mark.parametrize(("algo", "family", "steps"), [
    ("trpo", "cartpole", 128), ("qrdqn", "cartpole", 120), ("ars", "cartpole", 200), ("tqc", "pendulum", 80),
    ("ddpg", "pendulum", 80), ("crossq", "pendulum", 80),
])
def test_shipped_agent_trains_saves_and_reloads(algo: str, family: str, steps: int, tmp_path: Path) -> None:
    run = train(family, tiny(algo, family), steps=steps, seed=0, out=tmp_path, name=algo, eval_freq=0,
                eval_episodes=1)
    loaded = load_bundle(run.policy_dir)
    assert loaded.algo == algo and type(loaded.model) is type(run.model)
    space = run.model.observation_space
    assert np.array_equal(actions(loaded.model, space), actions(run.model, space))
    assert loaded.manifest["policy_class"] == type(run.model.policy).__name__


def test_ars_linear_policy_bundle_keeps_its_policy(tmp_path: Path) -> None:
    run = train("cartpole", tiny("ars", "cartpole"), steps=100, seed=0, out=tmp_path, name="ars", eval_freq=0,
                eval_episodes=1)
    assert type(load_bundle(run.policy_dir).model.policy).__name__ == "ARSLinearPolicy"


# ------------------------------------------------------------------------------------------ transfers


@pytest.mark.parametrize(("source_cls", "target"), [(TRPO, "ppo"), (TRPO, "a2c"), (PPO, "trpo"), (A2C, "trpo")])
def test_actor_critic_family_transfers_copy_everything(source_cls, target: str, tmp_path: Path) -> None:
    src = saved(tmp_path, "src", _tiny_model(source_cls, "CartPole-v1"))
    prepared = prepare_transfer(src, "cartpole", algo=target, agent=tiny(target, "cartpole"), steps=100)
    try:
        plan = prepared.plan
        assert plan.counts() == {"copy": 8}  # net_arch [16]: one hidden layer per net, two heads
        assert any("same policy class (ActorCriticPolicy)" in n for n in plan.notes)
        assert np.array_equal(actions(prepared.model, CARTPOLE.observation_space),
                              actions(source_cls.load(src, device="cpu"), CARTPOLE.observation_space))
    finally:
        prepared.venv.close(), prepared.eval_env.close()


def test_ddpg_to_td3_says_what_the_second_critic_became(tmp_path: Path) -> None:
    src = saved(tmp_path, "ddpg", _tiny_model(DDPG, "Pendulum-v1", buffer_size=1))
    prepared = prepare_transfer(src, "pendulum", algo="td3", agent=tiny("td3", "pendulum"), steps=100)
    try:
        plan = {t.name: t for t in prepared.plan.tensors}
        assert plan["critic.qf0.0.weight"].action == "copy" and plan["actor.mu.0.weight"].action == "copy"
        qf1 = plan["critic.qf1.0.weight"]
        assert qf1.action == "init" and "DDPG source has none" in qf1.reason
        assert plan["actor_target.mu.0.weight"].action == "sync"
        assert prepared.model.policy_kwargs.get("n_critics", 2) == 2  # the target keeps TD3's two critics
        assert np.array_equal(actions(prepared.model, PENDULUM.observation_space),
                              actions(DDPG.load(src, device="cpu"), PENDULUM.observation_space))
    finally:
        prepared.venv.close(), prepared.eval_env.close()
    src = saved(tmp_path, "td3", _tiny_model(TD3, "Pendulum-v1", buffer_size=1))
    prepared = prepare_transfer(src, "pendulum", algo="ddpg", agent=tiny("ddpg", "pendulum"), steps=100)
    try:
        notes = " ".join(prepared.plan.notes)
        assert "no target counterpart (skipped)" in notes and "critic.qf1.0.weight" in notes
        assert "DDPG has one critic, TD3 two" in notes
    finally:
        prepared.venv.close(), prepared.eval_env.close()


@pytest.mark.parametrize(("source_cls", "target"), [(SAC, "tqc"), (TQC, "sac")])
def test_sac_and_tqc_share_the_actor_only(source_cls, target: str, tmp_path: Path) -> None:
    src = saved(tmp_path, "src", _tiny_model(source_cls, "Pendulum-v1", buffer_size=1))
    prepared = prepare_transfer(src, "pendulum", algo=target, agent=tiny(target, "pendulum"), steps=100)
    try:
        plan = prepared.plan
        by_name = {t.name: t for t in plan.tensors}
        assert all(t.action == "copy" for n, t in by_name.items() if n.startswith("actor."))
        critics = [t for n, t in by_name.items() if n.startswith("critic.")]
        assert critics and all(t.action == "init" and "transfers the actor only" in t.reason for t in critics)
        assert any("source tensors not transferred" in n for n in plan.notes)
        if target == "tqc":
            assert by_name["critic.qf0.2.weight"].role == "quantile critic head (qf0)"
        assert np.allclose(actions(prepared.model, PENDULUM.observation_space),
                           actions(source_cls.load(src, device="cpu"), PENDULUM.observation_space))
    finally:
        prepared.venv.close(), prepared.eval_env.close()


def test_qrdqn_transfer_plans_the_quantile_net(tmp_path: Path) -> None:
    src = saved(tmp_path, "qrdqn", _tiny_model(QRDQN, "CartPole-v1", buffer_size=1,
                                              policy_kwargs={"n_quantiles": 5}))
    prepared = prepare_transfer(src, "cartpole", agent=tiny("qrdqn", "cartpole"), steps=100)
    try:
        by_name = {t.name: t for t in prepared.plan.tensors}
        assert by_name["quantile_net.quantile_net.2.weight"].role == "quantile head"
        assert by_name["quantile_net.quantile_net.0.weight"].role == "quantile net layer 0"
        assert by_name["quantile_net_target.quantile_net.0.weight"].action == "sync"
        assert np.array_equal(actions(prepared.model, CARTPOLE.observation_space),
                              actions(QRDQN.load(src, device="cpu"), CARTPOLE.observation_space))
    finally:
        prepared.venv.close(), prepared.eval_env.close()


def test_crossq_transfer_copies_the_batch_renorm_statistics(tmp_path: Path) -> None:
    src = saved(tmp_path, "crossq", _tiny_model(CrossQ, "Pendulum-v1", buffer_size=1))
    prepared = prepare_transfer(src, "pendulum", agent=tiny("crossq", "pendulum"), steps=100)
    try:
        by_name = {t.name: t for t in prepared.plan.tensors}
        stats = [t for n, t in by_name.items() if n.endswith(("ra_mean", "ra_var", "steps"))]
        assert stats and all(t.action == "copy" and t.role.startswith("batch-renorm") for t in stats)
        assert np.allclose(actions(prepared.model, PENDULUM.observation_space),
                           actions(CrossQ.load(src, device="cpu"), PENDULUM.observation_space))
    finally:
        prepared.venv.close(), prepared.eval_env.close()


def test_ars_target_searches_from_the_transferred_weights(tmp_path: Path) -> None:
    model = ARS("LinearPolicy", "CartPole-v1", seed=0, device="cpu", zero_policy=False)
    src = saved(tmp_path, "ars", model)
    prepared = prepare_transfer(src, "cartpole", agent=tiny("ars", "cartpole"), steps=100)
    try:
        target = prepared.model
        assert target.policy.__class__.__name__ == "ARSLinearPolicy"
        vector = torch.nn.utils.parameters_to_vector(target.policy.parameters())
        assert torch.equal(target.weights, vector) and vector.abs().sum() > 0  # not the zero policy
    finally:
        prepared.venv.close(), prepared.eval_env.close()
    with pytest.raises(TransferError, match=r"strategy 'freeze' cannot be used with a ARS target: .*random search"):
        prepare_transfer(src, "cartpole", agent=tiny("ars", "cartpole"), strategy="freeze", steps=100)


def test_trpo_target_refuses_strategies_its_line_search_breaks(tmp_path: Path) -> None:
    src = saved(tmp_path, "trpo", _tiny_model(TRPO, "CartPole-v1"))
    with pytest.raises(TransferError, match=r"'freeze' cannot be used with a TRPO target.*conjugate-gradient"):
        prepare_transfer(src, "cartpole", agent=tiny("trpo", "cartpole"), strategy="freeze", steps=100)


@pytest.mark.parametrize(("source_cls", "env_id", "target"), [
    (QRDQN, "CartPole-v1", "dqn"), (SAC, "Pendulum-v1", "td3"), (TQC, "Pendulum-v1", "crossq")])
def test_pairs_without_a_shared_layout_are_refused(source_cls, env_id: str, target: str, tmp_path: Path) -> None:
    extra = {"buffer_size": 1}
    src = saved(tmp_path, "src", _tiny_model(source_cls, env_id, **extra))
    family = "cartpole" if env_id.startswith("Cart") else "pendulum"
    with pytest.raises(TransferError, match=r"cannot transfer .* policies are different classes.*PPO <-> TRPO"):
        prepare_transfer(src, family, algo=target, steps=100)


def test_short_qrdqn_transfer_run_with_kickstarting(tmp_path: Path) -> None:
    src = saved(tmp_path, "qrdqn", _tiny_model(QRDQN, "CartPole-v1", buffer_size=1, policy_kwargs={"n_quantiles": 5}))
    with warnings.catch_warnings():
        warnings.simplefilter("error", BudgetWarning)  # 120 steps > learning_starts=50: no warning
        result = transfer(src, "cartpole", agent=tiny("qrdqn", "cartpole"), strategy="kickstart", steps=120,
                          out=tmp_path, name="ks", eval_freq=0, eval_episodes=1)
    assert result.plan.target_algo == "qrdqn" and len(result.curve.steps) == 2


def test_ars_transfer_run_trains(tmp_path: Path) -> None:
    src = saved(tmp_path, "ars", ARS("LinearPolicy", "CartPole-v1", seed=0, device="cpu", zero_policy=False))
    result = transfer(src, "cartpole", agent=tiny("ars", "cartpole"), steps=150, out=tmp_path, name="ars",
                      eval_freq=0, eval_episodes=1)
    assert result.model.num_timesteps >= 150


# ------------------------------------------------------------------------- budget, threads, options


def test_budget_below_learning_starts_warns_or_fails_before_training(tmp_path: Path) -> None:
    agent = tiny("sac", "pendulum")  # learning_starts=50
    with pytest.warns(BudgetWarning, match=r"budget of 50 env steps is not above the agent's learning_starts=50"):
        check_learning_starts(agent, 50)
    with pytest.raises(ConfigError, match="learning_starts=50"):
        check_learning_starts(agent, 40, strict=True)
    assert check_learning_starts(agent, 51) is None
    assert check_learning_starts(tiny("ppo", "cartpole"), 1) is None  # on-policy: no warm-up
    default = tiny("qrdqn", "cartpole").model_copy(update={"hyperparams": tiny("qrdqn", "cartpole").hyperparams
                                                            .model_copy(update={"learning_starts": None})})
    with pytest.warns(BudgetWarning, match="learning_starts=100"):  # QRDQN's own default, from its signature
        check_learning_starts(default, 100)


def test_cli_strict_refuses_a_budget_that_trains_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from rltransfer.cli import main

    src = saved(tmp_path, "td3", _tiny_model(TD3, "Pendulum-v1", buffer_size=1))  # TD3 pendulum: learning_starts 10000
    code = main(["transfer", "--from", str(src), "--env", "pendulum", "--steps", "2000", "--strict",
                 "--out", str(tmp_path / "runs"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "learning_starts=10,000" in err and "under --strict" in err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
    code = main(["train", "--env", "pendulum", "--agent", "td3", "--steps", "500", "--strict",
                 "--out", str(tmp_path / "runs"), "--no-progress"])
    assert code == 2 and "learning_starts=10,000" in capsys.readouterr().err
    # without --strict: one warning line, then the run goes ahead
    code = main(["transfer", "--from", str(src), "--env", "pendulum", "--steps", "300", "--eval-episodes", "1",
                 "--out", str(tmp_path / "runs"), "--name", "warned", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 0 and (tmp_path / "runs" / "warned" / "policy").is_dir()
    assert [line for line in err.splitlines() if "learning_starts" in line][0].startswith("rltransfer: warning: ")


def test_python_train_checks_the_budget_as_the_cli_does(tmp_path: Path) -> None:
    import rltransfer

    with pytest.raises(ConfigError, match=r"learning_starts=10,000.*under --strict, strict=True"):
        rltransfer.train("pendulum", "td3", steps=500, out=tmp_path / "runs", strict=True)
    assert not (tmp_path / "runs").exists()
    with pytest.warns(BudgetWarning, match="training td3 on 'pendulum'"):
        rltransfer.train("pendulum", "td3", steps=64, out=tmp_path / "runs", name="warned", eval_episodes=1)


def test_evaluate_uses_the_training_thread_setting(tmp_path: Path) -> None:
    src = saved(tmp_path, "trpo", _tiny_model(TRPO, "CartPole-v1"))
    torch.set_num_threads(2)
    evaluate(src, "cartpole", episodes=1)
    assert torch.get_num_threads() == 1
    with pytest.raises(ConfigError, match="threads must be an integer"):
        evaluate(src, "cartpole", episodes=1, threads=0)


@pytest.mark.parametrize("command", ["train", "evaluate", "transfer", "sim2real", "sweep"])
def test_every_command_that_runs_a_model_takes_threads(command: str) -> None:
    from rltransfer.cli import build_parser

    required = {"train": ["--env", "cartpole", "--agent", "ppo"], "evaluate": ["--policy", "p"],
                "transfer": ["--from", "p", "--env", "cartpole"], "sim2real": ["--policy", "p"],
                "sweep": ["--policy", "p", "--env", "cartpole", "--param", "length=1:2:2", "--out", "o"]}
    args = build_parser().parse_args([command, *required[command], "--threads", "3"])
    assert args.threads == 3


def test_source_algo_and_algo_options_name_every_algorithm() -> None:
    from rltransfer.cli import build_parser

    args = build_parser().parse_args(["transfer", "--from", "p", "--env", "cartpole", "--source-algo", "ddpg"])
    assert args.source_algo == "ddpg"
    assert build_parser().parse_args(["inspect", "p", "--algo", "tqc"]).algo == "tqc"
    assert build_parser().parse_args(["evaluate", "--policy", "p", "--algo", "trpo"]).algo == "trpo"


def test_source_algo_is_recorded_in_the_spec_and_kept_by_resume(tmp_path: Path) -> None:
    """``--source-algo`` lives in the run spec (``config.yaml``), so a resumed run or a benchmark worker reads
    the source the same way; without it the spec and its fingerprint are as before."""
    from rltransfer.spec import dump_spec, load_spec
    from rltransfer.transfer import transfer_spec

    src = saved(tmp_path, "ppo-src", _tiny_model(PPO, "CartPole-v1"))
    named = transfer_spec(src, "cartpole", steps=64, source_algo="ppo", agent=tiny("ppo", "cartpole"))
    plain = transfer_spec(src, "cartpole", steps=64, agent=tiny("ppo", "cartpole"))
    assert named.transfer.source.algo == "ppo" and plain.transfer.source.algo is None
    (tmp_path / "config.yaml").write_text(dump_spec(named))
    assert load_spec(tmp_path / "config.yaml").transfer.source.algo == "ppo"
    assert plain.fingerprint() != named.fingerprint()  # a source read as another algorithm is another run
