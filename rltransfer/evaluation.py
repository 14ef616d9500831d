"""Evaluating a policy (a bundle, a run, or any SB3 zip) on an env family with any parameters."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from scipy import stats
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from rltransfer.bundle import LoadedPolicy, load_policy
from rltransfer.config import EnvFamily, load_family
from rltransfer.environments import make_vec_env
from rltransfer.errors import ConfigError, IncompatibleSpacesError


@dataclass
class EvalResult:
    """Returns of ``n`` episodes with mean, sample std and a t-based 95% confidence interval of the mean."""

    mean: float
    std: float
    ci95: tuple[float, float]
    returns: list[float]
    lengths: list[int]
    n_episodes: int
    env: str
    params: dict[str, float]
    policy: str

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["ci95"] = list(self.ci95)
        return out


def mean_ci95(values: np.ndarray) -> tuple[float, float, tuple[float, float]]:
    """Mean, sample std (ddof=1) and the t-based 95% CI of the mean of ``values: (n,)``."""
    values = np.asarray(values, dtype=np.float64)
    mean = float(values.mean())
    if values.size < 2:
        return mean, 0.0, (mean, mean)
    std = float(values.std(ddof=1))
    half = float(stats.t.ppf(0.975, values.size - 1) * std / math.sqrt(values.size))
    return mean, std, (mean - half, mean + half)


def describe_space(space: gym.Space) -> str:
    if isinstance(space, gym.spaces.Box):
        return f"Box{tuple(space.shape)}"
    if isinstance(space, gym.spaces.Discrete):
        return f"Discrete({space.n})"
    return repr(space)


def check_spaces(policy: LoadedPolicy, env: VecEnv, family: str) -> None:
    """Spaces of the policy and the env must agree (same type and shape; same n for Discrete)."""
    for label, mine, theirs in (
        ("Observation", policy.observation_space, env.observation_space),
        ("Action", policy.action_space, env.action_space),
    ):
        same = type(mine) is type(theirs) and mine.shape == theirs.shape
        if isinstance(mine, gym.spaces.Discrete) and isinstance(theirs, gym.spaces.Discrete):
            same = same and int(mine.n) == int(theirs.n)
        if not same:
            raise IncompatibleSpacesError(
                f"{label} spaces do not match: policy {policy.path} has {describe_space(mine)}, env family "
                f"{family!r} (with wrappers {[w.name for w in policy.wrappers]}) has {describe_space(theirs)}. "
                "Use `rltransfer transfer` to adapt the policy to this env."
            )


def policy_env(policy: LoadedPolicy, family: EnvFamily, params: dict[str, float] | None, seed: int) -> VecEnv:
    """A 1-env VecEnv of ``family`` with the policy's wrappers and frozen normalization statistics."""
    venv: VecEnv = make_vec_env(family, params, 1, seed, "dummy", policy.wrappers)
    check_spaces(policy, venv, family.name)
    if policy.normalization is not None:
        norm = VecNormalize(venv, training=False, norm_obs=policy.normalization.norm_obs, norm_reward=False)
        policy.normalization.apply_to(norm)
        venv = norm
    return venv


def evaluate(
    policy: str | Path | LoadedPolicy,
    env: str | EnvFamily | None = None,
    params: dict[str, float] | None = None,
    episodes: int = 10,
    seed: int = 0,
    deterministic: bool = True,
) -> EvalResult:
    """Return of a policy on an env family: ``episodes`` consecutive episodes of one env seeded with ``seed``.

    Args:
        policy: a bundle folder, a run directory, an SB3 zip, or an already loaded policy.
        env: family name or YAML path; defaults to the family recorded in the bundle.
        params: parameter overrides for the family.
        episodes: number of episodes.
        seed: seed of the first episode.
        deterministic: act with the policy's mode (mean action / argmax), as SB3's evaluation does.
    """
    if episodes < 1:
        raise ConfigError(f"episodes must be >= 1, got {episodes}")
    loaded = policy if isinstance(policy, LoadedPolicy) else load_policy(policy)
    if env is None:
        if loaded.family_spec is None:
            raise ConfigError(f"{loaded.path}: the policy records no env family; pass --env")
        env = loaded.family_spec
        params = {**loaded.params, **(params or {})}
    family = env if isinstance(env, EnvFamily) else load_family(env)
    values = family.resolve_params(params)
    venv = policy_env(loaded, family, values, seed)
    try:
        returns, lengths = evaluate_policy(
            loaded.model, venv, n_eval_episodes=episodes, deterministic=deterministic,
            return_episode_rewards=True, warn=False,
        )
    finally:
        venv.close()
    arr = np.asarray(returns, dtype=np.float64)
    mean, std, ci = mean_ci95(arr)
    return EvalResult(
        mean=mean, std=std, ci95=ci, returns=arr.tolist(), lengths=[int(n) for n in lengths],
        n_episodes=episodes, env=family.name, params=values, policy=str(loaded.path),
    )
