"""Weight transfer: plans, shape-aware copying, every strategy doing what it says, algorithm pairs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from rltransfer.bundle import load_policy
from rltransfer.errors import ConfigError, IncompatibleSpacesError, TransferError, UnknownNameError
from rltransfer.pipeline import train
from rltransfer.pipeline import prepare_transfer, transfer
from rltransfer.plan import parse_index_map
from rltransfer.strategies import KickstartCallback, parse_strategy

from conftest import needs_zoo_fixtures, zoo_fixture
from tiny import tiny

STEPS = 512  # two PPO updates with the shipped cartpole config (8 envs x 32 steps)


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("transfer")


@pytest.fixture(scope="module")
def cartpole_src(out: Path):
    return train("cartpole", tiny("ppo", "cartpole"), steps=1024, seed=0, out=out, name="src-cartpole",
                 eval_freq=0, eval_episodes=1)


@pytest.fixture(scope="module")
def source_sd(cartpole_src) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in load_policy(cartpole_src.run_dir).state_dict.items()}


def _sd(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.policy.state_dict().items()}


def _run(src, tmp_path: Path, strategy: str = "finetune", steps: int = STEPS, **kwargs):
    return transfer(src.run_dir, kwargs.pop("env", "cartpole"), kwargs.pop("params", {"length": 1.0}),
                    strategy=strategy, steps=steps, seed=kwargs.pop("seed", 0), out=tmp_path,
                    name=kwargs.pop("name", strategy), eval_freq=0, eval_episodes=1, **kwargs)


def test_finetune_copies_every_tensor_and_resets_training_state(cartpole_src, source_sd, tmp_path: Path) -> None:
    prepared = prepare_transfer(cartpole_src.run_dir, "cartpole", {"length": 1.0}, steps=STEPS, out=tmp_path,
                                name="ft")
    assert {t.action for t in prepared.plan.tensors} == {"copy"}
    for key, value in _sd(prepared.model).items():
        torch.testing.assert_close(value, source_sd[key])
    assert prepared.model.num_timesteps == 0
    assert all(not opt.state for opt in [prepared.model.policy.optimizer])  # fresh optimizer, no source state
    result = _run(cartpole_src, tmp_path, name="ft-run")
    assert (result.run_dir / "transfer_plan.json").is_file()
    changed = any(not torch.equal(v, source_sd[k]) for k, v in _sd(result.model).items())
    assert changed


def test_freeze_keeps_feature_layers_and_optimizer_sees_only_trainable(cartpole_src, source_sd, tmp_path) -> None:
    result = _run(cartpole_src, tmp_path, "freeze")
    plan = {t.name: t for t in result.plan.tensors}
    frozen = [n for n, t in plan.items() if not t.trainable]
    assert frozen == ["mlp_extractor.policy_net.0.weight", "mlp_extractor.policy_net.0.bias",
                      "mlp_extractor.value_net.0.weight", "mlp_extractor.value_net.0.bias"]
    after = _sd(result.model)
    for name in frozen:
        torch.testing.assert_close(after[name], source_sd[name])
    assert not torch.equal(after["action_net.weight"], source_sd["action_net.weight"])
    opt_params = {id(p) for g in result.model.policy.optimizer.param_groups for p in g["params"]}
    named = dict(result.model.policy.named_parameters())
    assert all(id(named[n]) not in opt_params for n in frozen)
    assert id(named["action_net.weight"]) in opt_params


def test_freeze_by_pattern(cartpole_src, tmp_path: Path) -> None:
    prepared = prepare_transfer(cartpole_src.run_dir, "cartpole", strategy="freeze", steps=STEPS, out=tmp_path,
                                name="pat", options={"freeze_patterns": ["mlp_extractor.value_net.*"]})
    frozen = {t.name for t in prepared.plan.tensors if not t.trainable}
    assert frozen == {"mlp_extractor.value_net.0.weight", "mlp_extractor.value_net.0.bias"}


def test_reinit_heads_is_selectable(cartpole_src, source_sd, tmp_path: Path) -> None:
    prepared = prepare_transfer(cartpole_src.run_dir, "cartpole", strategy="reinit_heads", steps=STEPS,
                                out=tmp_path, name="heads", options={"heads": ["value"]})
    sd = _sd(prepared.model)
    actions = {t.name: t.action for t in prepared.plan.tensors}
    assert actions["value_net.weight"] == "reinit" and actions["action_net.weight"] == "copy"
    assert not torch.equal(sd["value_net.weight"], source_sd["value_net.weight"])
    torch.testing.assert_close(sd["action_net.weight"], source_sd["action_net.weight"])
    torch.testing.assert_close(sd["mlp_extractor.value_net.0.weight"], source_sd["mlp_extractor.value_net.0.weight"])


def test_larger_observation_pads_zero_and_keeps_the_function(cartpole_src, source_sd, tmp_path: Path) -> None:
    prepared = prepare_transfer(cartpole_src.run_dir, "cartpole", steps=STEPS, out=tmp_path, name="pad",
                                wrappers=["TimeFeatureWrapper"])
    plan = {t.name: t for t in prepared.plan.tensors}
    assert plan["mlp_extractor.policy_net.0.weight"].action == "pad"
    sd = _sd(prepared.model)
    w = sd["mlp_extractor.policy_net.0.weight"]
    assert w.shape == (16, 5)
    torch.testing.assert_close(w[:, :4], source_sd["mlp_extractor.policy_net.0.weight"])
    assert torch.count_nonzero(w[:, 4]) == 0
    source = load_policy(cartpole_src.run_dir).model.policy
    obs4 = torch.randn(32, 4)
    obs5 = torch.cat([obs4, torch.rand(32, 1)], dim=1)
    with torch.no_grad():
        p_src = source.get_distribution(obs4).distribution.probs
        p_tgt = prepared.model.policy.get_distribution(obs5).distribution.probs
        v_src, v_tgt = source.predict_values(obs4), prepared.model.policy.predict_values(obs5)
    torch.testing.assert_close(p_src, p_tgt)
    torch.testing.assert_close(v_src, v_tgt)


@pytest.fixture(scope="module")
def acrobot_src(out: Path):
    return train("acrobot", tiny("ppo", "acrobot", normalize=None), steps=256, seed=0, out=out, name="src-acro",
                 eval_freq=0, eval_episodes=1)


def test_smaller_observation_needs_an_explicit_mapping(acrobot_src, tmp_path: Path) -> None:
    with pytest.raises(IncompatibleSpacesError, match=r"source Box\(6,\) != target Box\(4,\)"):
        prepare_transfer(acrobot_src.run_dir, "cartpole", out=tmp_path, name="x")
    assert not (tmp_path / "x").exists()


def test_reordered_observation_with_index_map(cartpole_src, source_sd, tmp_path: Path) -> None:
    mapping = parse_index_map("3,2,1,0", "--obs-map")
    prepared = prepare_transfer(cartpole_src.run_dir, "cartpole", steps=STEPS, out=tmp_path, name="map",
                                obs_map=mapping)
    w = _sd(prepared.model)["mlp_extractor.policy_net.0.weight"]
    torch.testing.assert_close(w, source_sd["mlp_extractor.policy_net.0.weight"][:, [3, 2, 1, 0]])
    assert {t.action for t in prepared.plan.tensors if t.name.endswith("0.weight")} == {"map"}
    with pytest.raises(IncompatibleSpacesError, match="obs_map entry 7"):
        prepare_transfer(cartpole_src.run_dir, "cartpole", out=tmp_path, name="bad", obs_map=[0, 1, 2, 7])


def test_more_actions_copy_matching_rows_and_initialize_the_rest(cartpole_src, source_sd, tmp_path) -> None:
    # cartpole (obs 4, 2 actions) -> acrobot (obs 6, 3 actions): first 4 features mapped, 2 new
    prepared = prepare_transfer(cartpole_src.run_dir, "acrobot", steps=STEPS, out=tmp_path, name="act",
                                obs_map=[0, 1, 2, 3, None, None])
    sd = _sd(prepared.model)
    w = sd["action_net.weight"]
    assert w.shape == (3, 16)
    torch.testing.assert_close(w[:2], source_sd["action_net.weight"])
    assert not torch.equal(w[2], torch.zeros(16))  # fresh initialization, not zeros
    entry = {t.name: t for t in prepared.plan.tensors}["action_net.weight"]
    assert entry.action == "pad" and "new action" in entry.reason


def test_fewer_actions_slice(acrobot_src, tmp_path: Path) -> None:
    prepared = prepare_transfer(acrobot_src.run_dir, "cartpole", steps=STEPS, out=tmp_path, name="slice",
                                obs_map=[0, 1, 2, 3])
    entry = {t.name: t for t in prepared.plan.tensors}["action_net.weight"]
    assert entry.action == "slice" and entry.source_shape == [3, 16] and entry.target_shape == [2, 16]


def test_normalization_statistics_follow_the_mapping(out: Path, tmp_path: Path) -> None:
    src = train("pendulum", tiny("ppo", "pendulum", normalize={"obs": True}), steps=256, seed=0, out=out,
                name="src-pend-norm", eval_freq=0, eval_episodes=1)
    stats = load_policy(src.run_dir).normalization
    prepared = prepare_transfer(src.run_dir, "pendulum", steps=STEPS, out=tmp_path, name="norm",
                                wrappers=["TimeFeatureWrapper"])
    rms = prepared.venv.obs_rms
    np.testing.assert_allclose(rms.mean[:3], stats.obs_mean)
    np.testing.assert_allclose(rms.var[:3], stats.obs_var)
    assert rms.mean[3] == 0.0 and rms.var[3] == 1.0


def _distance(sd: dict[str, torch.Tensor], ref: dict[str, torch.Tensor]) -> float:
    return float(sum(((sd[k] - ref[k]) ** 2).sum() for k in ref if k in sd))


def test_l2sp_pulls_toward_the_source(cartpole_src, source_sd, tmp_path: Path) -> None:
    plain = _run(cartpole_src, tmp_path, "finetune", steps=1024, name="plain")
    l2sp = _run(cartpole_src, tmp_path, "l2sp", steps=1024, name="l2sp", options={"l2sp_alpha": 50.0})
    assert _distance(_sd(l2sp.model), source_sd) < 0.5 * _distance(_sd(plain.model), source_sd)


def test_lower_lr_moves_transferred_tensors_less(cartpole_src, source_sd, tmp_path: Path) -> None:
    plain = _run(cartpole_src, tmp_path, "finetune", steps=1024, name="plain-lr")
    low = _run(cartpole_src, tmp_path, "lower_lr", steps=1024, name="low", options={"lr_scale": 0.1})
    groups = low.model.policy.optimizer.param_groups
    assert [g["lr_scale"] for g in groups] == [0.1]
    assert groups[0]["lr"] == plain.model.policy.optimizer.param_groups[0]["lr"]  # schedule value restored
    assert _distance(_sd(low.model), source_sd) < 0.5 * _distance(_sd(plain.model), source_sd)


def test_kickstart_weight_decays_as_scheduled(cartpole_src, tmp_path: Path) -> None:
    result = _run(cartpole_src, tmp_path, "kickstart", steps=2048, name="kick",
                  options={"kickstart_weight": 2.0, "kickstart_end_fraction": 0.5})
    prepared = prepare_transfer(cartpole_src.run_dir, "cartpole", strategy="kickstart", steps=2048, out=tmp_path,
                                name="kick2", options={"kickstart_weight": 2.0, "kickstart_end_fraction": 0.5})
    kick = next(c for c in prepared.callbacks if isinstance(c, KickstartCallback))
    assert kick.weight(0) == 2.0 and kick.weight(512) == pytest.approx(1.0) and kick.weight(1024) == 0.0
    assert kick.weight(2048) == 0.0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(result.run_dir / "tb"))
    acc.Reload()
    weights = [e.value for e in acc.Scalars("transfer/kickstart_weight")]
    assert weights[0] > weights[-1] and weights[-1] == 0.0
    assert all(a >= b for a, b in zip(weights, weights[1:]))
    assert "transfer/kickstart_loss" in acc.Tags()["scalars"]


def test_kickstart_pulls_the_student_toward_the_teacher(cartpole_src, tmp_path: Path) -> None:
    """With a re-initialized policy head, kickstarting makes the student imitate the source's actions on the
    states it visits; without it, the student's actions agree with the source's far less."""
    teacher = load_policy(cartpole_src.run_dir).model.policy

    def agreement(model) -> float:
        buf = model.rollout_buffer.observations
        obs = torch.as_tensor(buf.reshape(-1, buf.shape[-1]))
        with torch.no_grad():
            a = teacher.get_distribution(obs).distribution.probs.argmax(-1)
            b = model.policy.get_distribution(obs).distribution.probs.argmax(-1)
        return float((a == b).float().mean())

    common = dict(steps=1024, out=tmp_path, eval_freq=0, eval_episodes=1)
    kick = transfer(cartpole_src.run_dir, "cartpole", strategy="kickstart", name="kick-agree",
                    options={"heads": ["policy"], "kickstart_weight": 5.0, "kickstart_end_fraction": 1.0,
                             "kickstart_epochs": 5}, **common)
    plain = transfer(cartpole_src.run_dir, "cartpole", strategy="reinit_heads", name="reinit-agree",
                     options={"heads": ["policy"]}, **common)
    assert agreement(kick.model) >= 0.9
    assert agreement(kick.model) > agreement(plain.model)


def test_ppo_to_a2c_and_incompatible_pairs(cartpole_src, tmp_path: Path) -> None:
    prepared = prepare_transfer(cartpole_src.run_dir, "cartpole", algo="a2c", steps=STEPS, out=tmp_path, name="a2c")
    assert type(prepared.model).__name__ == "A2C" and {t.action for t in prepared.plan.tensors} == {"copy"}
    with pytest.raises(TransferError, match=r"PPO -> DQN.*ActorCriticPolicy vs DQNPolicy"):
        prepare_transfer(cartpole_src.run_dir, "cartpole", algo="dqn", out=tmp_path, name="dqn")


@pytest.mark.parametrize(("algo", "family"), [("sac", "pendulum"), ("td3", "pendulum"), ("dqn", "cartpole")])
def test_off_policy_same_family_transfer(out: Path, tmp_path: Path, algo: str, family: str) -> None:
    src = train(family, tiny(algo, family), steps=200, seed=0, out=out, name=f"src-{algo}", eval_freq=0,
                eval_episodes=1)
    source_sd = load_policy(src.run_dir).state_dict
    prepared = prepare_transfer(src.run_dir, family, strategy="freeze", steps=200, out=tmp_path, name=algo)
    sd = _sd(prepared.model)
    actions = {t.name: t.action for t in prepared.plan.tensors}
    for name, action in actions.items():
        if action == "copy":
            torch.testing.assert_close(sd[name], source_sd[name])
        else:
            assert action == "sync"
            online = name.replace("_target", "")
            torch.testing.assert_close(sd[name], sd[online])
    assert any(not t.trainable for t in prepared.plan.tensors)
    prepared.venv.close()
    prepared.eval_env.close()


def test_strategy_options_are_checked() -> None:
    with pytest.raises(UnknownNameError, match="Did you mean: 'freeze'"):
        parse_strategy("freez")
    with pytest.raises(ConfigError, match=r"does not use option\(s\) \['lr_scale'\]"):
        parse_strategy("finetune", {"lr_scale": 0.5})
    with pytest.raises(ConfigError, match="lr_scale"):
        parse_strategy("lower_lr", {"lr_scale": 2.0})
    assert parse_strategy("reinit_heads").heads == ["policy", "value", "critic", "q"]


def test_cli_transfer_prints_plan_and_errors_cleanly(cartpole_src, tmp_path: Path, capsys) -> None:
    from rltransfer.cli import main

    code = main(["transfer", "--from", str(cartpole_src.run_dir), "--env", "cartpole", "--set", "length=1.0",
                 "--strategy", "freeze", "--steps", "256", "--out", str(tmp_path), "--name", "cli",
                 "--eval-freq", "0", "--eval-episodes", "1", "--no-progress"])
    captured = capsys.readouterr()
    assert code == 0 and "transfer plan" in captured.out and "frozen" in captured.out
    code = main(["transfer", "--from", str(cartpole_src.run_dir), "--env", "cartpole", "--strategy", "frezze",
                 "--out", str(tmp_path)])
    captured = capsys.readouterr()
    assert code == 2 and captured.err.startswith("rltransfer: error:") and "Did you mean: 'freeze'" in captured.err
    assert "Traceback" not in captured.err


def test_observation_mapping_by_feature_name(cartpole_src, source_sd, tmp_path: Path) -> None:
    names = parse_index_map("pole_angular_velocity,pole_angle,cart_velocity,cart_position", "--obs-map", names=True)
    prepared = prepare_transfer(cartpole_src.run_dir, "cartpole", steps=STEPS, out=tmp_path, name="names",
                                obs_map=names)
    assert prepared.plan.obs_map == [3, 2, 1, 0]
    auto = prepare_transfer(cartpole_src.run_dir, "cartpole", steps=STEPS, out=tmp_path, name="auto",
                            obs_map="auto", wrappers=["TimeFeatureWrapper"])
    assert auto.plan.obs_map == [0, 1, 2, 3, None]
    with pytest.raises(UnknownNameError, match="Did you mean: 'pole_angle'"):
        prepare_transfer(cartpole_src.run_dir, "cartpole", out=tmp_path, name="bad",
                         obs_map=["cart_position", "cart_velocity", "pole_angel", "pole_angular_velocity"])


@needs_zoo_fixtures
@pytest.mark.fixtures
def test_transfer_from_a_zoo_zip_that_sb3_cannot_open(tmp_path: Path) -> None:
    """The Zoo's 1.0rc0 PPO CartPole zip (today's PPO.load fails on it) fine-tuned on a longer pole."""
    result = transfer(zoo_fixture("ppo-CartPole-v1.zip"), "cartpole", {"length": 0.6}, steps=512, out=tmp_path,
                      name="zoo", eval_freq=0, eval_episodes=3)
    assert {t.action for t in result.plan.tensors} == {"copy"}
    assert result.curve.mean[0] >= 400  # the jumpstart: the source nearly solves the close variant zero-shot
    plan = (result.run_dir / "transfer_plan.json").read_text()
    assert "ppo-CartPole-v1.zip" in plan


@needs_zoo_fixtures
@pytest.mark.fixtures
@pytest.mark.pybullet
def test_zoo_hopper_wrappers_and_statistics_are_reproduced_on_the_target(tmp_path: Path) -> None:
    source = load_policy(zoo_fixture("ppo-HopperBulletEnv-v0.zip"))
    prepared = prepare_transfer(source, "hopper", {"torso_mass_scale": 1.5}, strategy="freeze", steps=8192,
                                out=tmp_path, name="hopper")
    try:
        assert [w.name for w in prepared.spec.env.wrappers] == ["TimeFeatureWrapper"]
        assert prepared.model.observation_space.shape == (16,)
        np.testing.assert_allclose(prepared.venv.obs_rms.mean, source.normalization.obs_mean)
        assert prepared.model.use_sde
        actions = {t.action for t in prepared.plan.tensors}
        assert actions == {"copy"}, prepared.plan.summary()
        assert sum(not t.trainable for t in prepared.plan.tensors) == 8  # 2 hidden layers x (w, b) x (pi, vf)
    finally:
        prepared.venv.close()
        prepared.eval_env.close()


def test_sac_kickstart_logs_a_decaying_weight(out: Path, tmp_path: Path) -> None:
    src = train("pendulum", tiny("sac", "pendulum"), steps=200, seed=0, out=out, name="src-sac-kick", eval_freq=0,
                eval_episodes=1)
    agent = tiny("sac", "pendulum")
    result = transfer(src.run_dir, "pendulum", strategy="kickstart", agent=agent, steps=400, out=tmp_path,
                      name="sac-kick", eval_freq=100, eval_episodes=1,
                      options={"kickstart_end_fraction": 0.5, "kickstart_batch_size": 32})
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(result.run_dir / "tb"))
    acc.Reload()
    assert "transfer/kickstart_loss" in acc.Tags()["scalars"]
    weights = [e.value for e in acc.Scalars("transfer/kickstart_weight")]
    assert weights[0] > 0 and weights[-1] == 0.0
