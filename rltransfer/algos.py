"""The SB3 algorithms rltransfer drives, and how config values become their constructor arguments."""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
from stable_baselines3 import A2C, DQN, PPO, SAC, TD3
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.noise import NormalActionNoise
from stable_baselines3.common.utils import ConstantSchedule, LinearSchedule

from rltransfer.config import Schedule
from rltransfer.errors import ConfigError, unknown_name

ALGO_CLASSES: dict[str, type[BaseAlgorithm]] = {"ppo": PPO, "a2c": A2C, "sac": SAC, "td3": TD3, "dqn": DQN}
OFF_POLICY_CONTINUOUS = ("sac", "td3")


def algo_class(name: str) -> type[BaseAlgorithm]:
    """The SB3 class for a lower-case algorithm name."""
    try:
        return ALGO_CLASSES[name.lower()]
    except KeyError:
        raise unknown_name("algorithm", name, ALGO_CLASSES) from None


def constructor_params(cls: type[BaseAlgorithm]) -> set[str]:
    """Names of the keyword arguments an SB3 algorithm's constructor accepts."""
    return set(inspect.signature(cls.__init__).parameters) - {"self", "policy", "env"}


def to_sb3_value(value: Any) -> Any:
    """A config value as SB3 takes it: schedules become SB3's own (picklable) schedule objects, so a
    saved ``model.zip`` opens with plain SB3 without rltransfer installed."""
    if isinstance(value, Schedule):
        if value.schedule == "constant":
            return ConstantSchedule(value.start)
        return LinearSchedule(value.start, value.end, 1.0)
    return value


def sb3_kwargs(algo: str, hyperparams: dict[str, Any], action_dim: int | None) -> dict[str, Any]:
    """Hyperparameters from an agent config as keyword arguments for the SB3 constructor."""
    out = {k: to_sb3_value(v) for k, v in hyperparams.items() if k != "action_noise_std"}
    noise_std = hyperparams.get("action_noise_std")
    if noise_std is not None:
        if algo not in OFF_POLICY_CONTINUOUS or action_dim is None:
            raise ConfigError(f"action_noise_std applies to sac/td3 with continuous actions, not {algo}")
        out["action_noise"] = NormalActionNoise(np.zeros(action_dim), noise_std * np.ones(action_dim))
    return out
