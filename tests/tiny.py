"""Tiny agent configs for fast tests (net_arch=[16], small buffers and rollouts)."""

from __future__ import annotations

from stable_baselines3.common.callbacks import BaseCallback

from rltransfer.agents import load_agent
from rltransfer.config import AgentSpec


def tiny(algo: str, family: str, **overrides) -> AgentSpec:
    """The shipped agent for ``family`` with a tiny network and small buffers, for fast tests."""
    spec = load_agent(algo, family)
    data = spec.model_dump(exclude_none=True)
    if spec.policy != "LinearPolicy":
        data["policy_kwargs"] = {**data.get("policy_kwargs", {}), "net_arch": [16]}
    data["n_envs"] = min(spec.n_envs, 2)
    hp = data.setdefault("hyperparams", {})
    if algo in ("ppo", "a2c", "trpo"):
        hp["n_steps"] = 8 if algo == "a2c" else 32
        if algo in ("ppo", "trpo"):
            hp["batch_size"] = 32
        if algo == "ppo":
            hp["n_epochs"] = 2
        if algo == "trpo":
            hp.update(n_critic_updates=2, cg_max_steps=3)
    elif algo == "ars":
        hp.update(n_delta=2, n_top=2)
        data["n_envs"] = 1
    else:
        hp.update(buffer_size=1000, learning_starts=50, batch_size=32)
        if algo in ("sac", "td3", "ddpg", "tqc", "crossq"):
            hp.update(train_freq=1, gradient_steps=1)
        if algo in ("dqn", "qrdqn"):
            hp.update(train_freq=4, gradient_steps=1, target_update_interval=50)
        if algo in ("tqc", "qrdqn"):
            data["policy_kwargs"]["n_quantiles"] = 5
    data["vec_env"] = "dummy"
    data.update(overrides)
    return AgentSpec.model_validate(data)


class Crash(BaseCallback):
    """Stops the process's run as a kill would (an exception) once ``at`` steps have passed."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at = at

    def _on_step(self) -> bool:
        if self.num_timesteps >= self.at:
            raise RuntimeError("simulated crash")
        return True
