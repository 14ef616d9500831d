"""The ``adapt_norm`` strategy: normalization re-estimated on the target with the policy frozen, then
fine-tuning; the phase counts against the budget and shows on the evaluation curve."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import unwrap_vec_normalize
from tiny import tiny

from rltransfer.bundle import load_policy
from rltransfer.errors import ConfigError, TransferError
from rltransfer.pipeline import prepare_transfer, train, transfer
from rltransfer.strategies import AdaptNormCallback, blend_moments, combine_moments, parse_strategy

STEPS = 256  # four PPO rollouts of 2 envs x 32 steps
ADAPT = 101  # not a multiple of the vector step: the phase ends at the first step with num_timesteps >= 101
TARGET = {"mass": 2.0}
AGENT = tiny("ppo", "pendulum")  # the target agent too: 2 envs x 32-step rollouts (the shipped one: 4 x 1024)


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("adapt_norm")


@pytest.fixture(scope="module")
def src(out: Path):
    return train("pendulum", tiny("ppo", "pendulum", normalize={"obs": True}), steps=256, seed=0, out=out,
                 name="src-pend-norm", eval_freq=0, eval_episodes=1)


class Probe(BaseCallback):
    """Records independently what the adaptation phase saw and did (runs after the strategy's callback)."""

    def __init__(self, adapt_steps: int, source_sd: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.adapt_steps = adapt_steps
        self.source_sd = source_sd
        self.raw: list[np.ndarray] = []
        self.normalized_ok = True
        self.swapped: dict[str, Any] | None = None
        self.frozen_rollout_starts = 0
        self.phase_end_sd: dict[str, torch.Tensor] | None = None

    def _vec(self):
        return unwrap_vec_normalize(self.model.get_env())

    def _on_training_start(self) -> None:
        rms = self._vec().obs_rms
        self.source_mean, self.source_var = rms.mean.copy(), rms.var.copy()
        self.raw.append(self._vec().get_original_obs().copy())

    def _on_rollout_start(self) -> None:
        sd = {k: v.detach().clone() for k, v in self.model.policy.state_dict().items()}
        if self.swapped is None:
            self.frozen_rollout_starts += int(all(torch.equal(sd[k], v) for k, v in self.source_sd.items()))
        elif self.phase_end_sd is None:
            self.phase_end_sd = sd  # after the train() that followed the rollout in which the phase ended

    def _on_step(self) -> bool:
        if self.swapped is not None:
            return True
        vec = self._vec()
        raw = vec.get_original_obs().copy()
        expected = np.clip((raw - self.source_mean) / np.sqrt(self.source_var + vec.epsilon), -vec.clip_obs,
                           vec.clip_obs)
        self.normalized_ok &= bool(np.allclose(self.locals["new_obs"], expected, rtol=1e-5, atol=1e-6))
        self.raw.append(raw)
        if self.num_timesteps >= self.adapt_steps:
            rms = vec.obs_rms
            self.swapped = {"step": self.num_timesteps, "mean": rms.mean.copy(), "var": rms.var.copy(),
                            "count": rms.count, "training": vec.training}
        return True


def _run(src, tmp_path: Path, name: str, options: dict[str, Any], probe: Probe | None = None):
    return transfer(src.run_dir, "pendulum", TARGET, strategy="adapt_norm", options=options, agent=AGENT,
                    steps=STEPS, seed=0, out=tmp_path, name=name, eval_freq=64, eval_episodes=1,
                    callbacks=[probe] if probe else ())


def test_adaptation_phase_freezes_weights_and_re_estimates_statistics(src, tmp_path: Path) -> None:
    source_sd = {k: v.clone() for k, v in load_policy(src.run_dir).state_dict.items()}
    probe = Probe(ADAPT, source_sd)
    result = _run(src, tmp_path, "fresh", {"adapt_steps": ADAPT}, probe)
    # the rollouts of the phase were normalized with the source's statistics, frozen
    assert probe.normalized_ok
    # at the swap: the statistics of exactly the target observations seen (reset + every step's)
    swapped = probe.swapped
    assert swapped is not None and swapped["step"] == 102 and swapped["training"]
    seen = np.concatenate(probe.raw).astype(np.float64)
    assert swapped["count"] == len(seen) == 2 + 51 * 2
    np.testing.assert_allclose(swapped["mean"], seen.mean(axis=0), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(swapped["var"], seen.var(axis=0), rtol=1e-10, atol=1e-12)
    assert not np.allclose(swapped["mean"], probe.source_mean)  # a heavier pendulum: different statistics
    # weights: bit for bit the source's through the phase (rollouts 1 and 2: the swap is in rollout 2) ...
    assert probe.frozen_rollout_starts == 2
    assert probe.phase_end_sd is not None
    assert all(torch.equal(probe.phase_end_sd[k], v) for k, v in source_sd.items())
    # ... and trained afterwards
    final = result.model.policy.state_dict()
    assert any(not torch.equal(final[k], v) for k, v in source_sd.items())
    # the phase counts against the budget and is on the evaluation curve
    assert result.model.num_timesteps == STEPS
    assert result.curve.steps == [0, 64, 128, 192, 256]
    plan = json.loads((result.run_dir / "transfer_plan.json").read_text())
    assert plan["strategy"]["adapt_steps"] == ADAPT and any("adapt_norm" in n for n in plan["notes"])


def test_blend_with_the_source(src, tmp_path: Path) -> None:
    probe = Probe(64, {})
    _run(src, tmp_path, "blend", {"adapt_steps": 64, "adapt_from": "source", "adapt_source_weight": 0.25}, probe)
    seen = np.concatenate(probe.raw).astype(np.float64)
    mean_t, var_t = seen.mean(axis=0), seen.var(axis=0)
    mean = 0.25 * probe.source_mean + 0.75 * mean_t
    var = 0.25 * (probe.source_var + (probe.source_mean - mean) ** 2) + 0.75 * (var_t + (mean_t - mean) ** 2)
    assert probe.swapped is not None and probe.swapped["count"] == len(seen)
    np.testing.assert_allclose(probe.swapped["mean"], mean, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(probe.swapped["var"], var, rtol=1e-10, atol=1e-12)


def test_moment_helpers_on_hand_computed_samples() -> None:
    a, b = np.array([[1.0], [3.0]]), np.array([[5.0], [7.0], [9.0]])
    n, mean, var = combine_moments(2, a.mean(0), a.var(0), 3, b.mean(0), b.var(0))
    both = np.concatenate([a, b])
    assert n == 5 and np.allclose(mean, both.mean(0)) and np.allclose(var, both.var(0))
    assert combine_moments(0, np.zeros(1), np.ones(1), 2, a.mean(0), a.var(0))[1:] == (a.mean(0), a.var(0))
    mean, var = blend_moments(0.5, np.array([0.0]), np.array([1.0]), np.array([2.0]), np.array([1.0]))
    assert mean.tolist() == [1.0] and var.tolist() == [2.0]  # each component: variance 1 + squared distance 1 from the mean


def test_unnormalized_source_is_refused(out: Path, tmp_path: Path) -> None:
    plain = train("cartpole", tiny("ppo", "cartpole"), steps=256, seed=0, out=out, name="src-plain",
                  eval_freq=0, eval_episodes=1)
    with pytest.raises(TransferError, match="the source does not normalize observations; adapt_norm needs a "
                                            "normalized source"):
        prepare_transfer(plain.run_dir, "cartpole", {"length": 2.0}, strategy="adapt_norm",
                         options={"adapt_steps": 64}, steps=STEPS)


def test_options_are_checked(src) -> None:
    with pytest.raises(ConfigError, match="adapt_steps=512 exceeds the run's budget steps=256"):
        prepare_transfer(src.run_dir, "pendulum", TARGET, strategy="adapt_norm", options={"adapt_steps": 512},
                         agent=AGENT, steps=STEPS)
    with pytest.raises(ConfigError, match="adapt_source_weight=0.3 is only used with adapt_from='source'"):
        parse_strategy("adapt_norm", {"adapt_source_weight": 0.3})
    with pytest.raises(ConfigError, match="adapt_steps"):
        parse_strategy("adapt_norm", {"adapt_steps": 0})
    with pytest.raises(ConfigError, match="adapt_from"):
        parse_strategy("adapt_norm", {"adapt_from": "target"})
    assert isinstance(AdaptNormCallback(10).state_dict(), dict)


def test_cli(src, tmp_path: Path, capsys) -> None:
    from rltransfer.cli import main

    agent = tmp_path / "tiny-ppo.yaml"
    agent.write_text("algo: ppo\nfamilies:\n  pendulum:\n    n_envs: 2\n    n_timesteps: 128\n"
                     "    hyperparams: {n_steps: 32, batch_size: 32, n_epochs: 2}\n")
    base = ["transfer", "--from", str(src.run_dir), "--env", "pendulum", "--set", "mass=2.0", "--agent", str(agent),
            "--strategy", "adapt_norm", "--out", str(tmp_path), "--eval-freq", "0", "--eval-episodes", "1",
            "--no-progress"]
    code = main([*base, "--adapt-steps", "64", "--adapt-from", "source", "--steps", "128", "--name", "cli"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    plan = json.loads((tmp_path / "cli" / "transfer_plan.json").read_text())
    assert plan["strategy"]["adapt_steps"] == 64 and plan["strategy"]["adapt_from"] == "source"
    code = main([*base, "--adapt-steps", "512", "--steps", "256", "--name", "too-long"])
    captured = capsys.readouterr()
    assert code == 2 and "adapt_steps=512" in captured.err and "steps=256" in captured.err
    assert "Traceback" not in captured.err
