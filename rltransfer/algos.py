"""How config values become the constructor arguments of the SB3 algorithms (see :mod:`rltransfer.sb3layout`
for the algorithms themselves)."""

from __future__ import annotations

from typing import Any

import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.noise import NormalActionNoise
from stable_baselines3.common.utils import ConstantSchedule, LinearSchedule

from rltransfer.config import Schedule
from rltransfer.errors import ConfigError
from rltransfer.sb3layout import CONTINUOUS_ONLY, algo_class, algo_classes, constructor_params

__all__ = ["ALGO_CLASSES", "algo_class", "constructor_params", "sb3_kwargs", "to_sb3_value"]

#: Algorithm name -> SB3 class (see :mod:`rltransfer.sb3layout`, where the names and classes live).
ALGO_CLASSES: dict[str, type[BaseAlgorithm]] = algo_classes()


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
        if algo not in CONTINUOUS_ONLY or action_dim is None:
            raise ConfigError(f"action_noise_std applies to sac/td3 with continuous actions, not {algo}")
        out["action_noise"] = NormalActionNoise(np.zeros(action_dim), noise_std * np.ones(action_dim))
    return out
