"""SB3 agents from agent specs: building models, the normalization wrapper, evaluation curves, run results.

The run itself (envs, callbacks, learning, saving) is :func:`rltransfer.pipeline.execute`; this module
holds the pieces it, the transfer code and the analysis share. :func:`is_distribution_error` tells
torch's "invalid distribution parameter" crash (what divergence causes in SAC/PPO) from other errors.
"""

from __future__ import annotations

import inspect
import logging
import math
import traceback
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from rltransfer.algos import algo_class, sb3_kwargs
from rltransfer.config import AgentSpec
from rltransfer.errors import ConfigError
from rltransfer.rundir import atomic_write_text
from rltransfer.sb3layout import OFF_POLICY

logger = logging.getLogger(__name__)


class BudgetWarning(UserWarning):
    """A run whose budget cannot train what it is meant to (e.g. no more steps than ``learning_starts``)."""


def learning_starts(spec: AgentSpec) -> int | None:
    """The env steps an off-policy agent collects before its first gradient step: its ``learning_starts``,
    or the algorithm's default (None for algorithms without a warm-up)."""
    if spec.algo not in OFF_POLICY:
        return None
    if spec.hyperparams.learning_starts is not None:
        return int(spec.hyperparams.learning_starts)
    default = inspect.signature(algo_class(spec.algo).__init__).parameters.get("learning_starts")
    return int(default.default) if default is not None and isinstance(default.default, int) else None


def check_learning_starts(spec: AgentSpec, steps: int, strict: bool = False, where: str = "") -> str | None:
    """Say so when an off-policy run's budget is not above its agent's ``learning_starts``.

    SB3 takes its first gradient step once ``num_timesteps > learning_starts``: with ``steps`` at or below
    it nothing is trained and the evaluation curve stays flat. Call it before training starts.

    Args:
        spec: the agent of the run.
        steps: the run's budget (env steps).
        strict: raise instead of warning.
        where: what the run is, quoted in the message (e.g. ``transfer into 'pendulum'``).

    Returns:
        The message (also issued as a :class:`BudgetWarning`), or None when the budget is enough.

    Raises:
        ConfigError: with ``strict``, when the budget is too small.
    """
    starts = learning_starts(spec)
    if starts is None or steps > starts:
        return None
    message = (
        f"{where + ': ' if where else ''}the budget of {steps:,} env steps is not above the agent's "
        f"learning_starts={starts:,} ({spec.name}, {spec.algo.upper()}): SB3 takes no gradient step before "
        f"learning_starts, so nothing would be trained and the curve would stay flat; give --steps above "
        f"{starts:,}, or an agent with a smaller learning_starts"
    )
    if strict:
        raise ConfigError(f"{message} (an error under --strict, strict=True)")
    warnings.warn(message, BudgetWarning, stacklevel=2)
    return message


# ------------------------------------------------------------------------------------------ model building


def policy_kwargs_for_sb3(spec: AgentSpec) -> dict[str, Any]:
    """The agent's policy kwargs with activation names turned into ``torch.nn`` classes (allowlist)."""
    kwargs = spec.policy_kwargs.model_dump(exclude_none=True)
    if "activation_fn" in kwargs:
        kwargs["activation_fn"] = getattr(torch.nn, kwargs["activation_fn"])
    return kwargs


def build_model(
    spec: AgentSpec, env: VecEnv, seed: int, device: str = "cpu", verbose: int = 0
) -> BaseAlgorithm:
    """An untrained SB3 model for ``spec`` on ``env``."""
    action_dim = int(np.prod(env.action_space.shape)) if env.action_space.shape else None
    kwargs = sb3_kwargs(spec.algo, spec.hyperparams.for_sb3(), action_dim)
    cls = algo_class(spec.algo)
    try:
        return cls(
            spec.policy, env, seed=seed, device=device, verbose=verbose,
            policy_kwargs=policy_kwargs_for_sb3(spec), **kwargs,
        )
    except (AssertionError, ValueError) as exc:  # SB3 checks spaces/hyperparameters with asserts
        raise ConfigError(
            f"agent {spec.name!r} ({spec.algo}) cannot be built for env family {spec.family!r}: {exc}"
        ) from exc


def wrap_normalization(venv: VecEnv, spec: AgentSpec, training: bool = True) -> VecEnv:
    if spec.normalize is None:
        return venv
    gamma = spec.hyperparams.gamma if spec.hyperparams.gamma is not None else 0.99
    return VecNormalize(
        venv, training=training, norm_obs=spec.normalize.obs, norm_reward=spec.normalize.reward and training,
        clip_obs=spec.normalize.clip_obs, gamma=gamma,
    )


# ------------------------------------------------------------------------------------------- evaluation


@dataclass
class EvalCurve:
    """An evaluation curve: ``steps (n,)``, ``mean/std (n,)``, ``returns (n, episodes)``."""

    steps: list[int] = field(default_factory=list)
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)
    returns: list[list[float]] = field(default_factory=list)
    lengths: list[list[int]] = field(default_factory=list)

    def append(self, step: int, returns: Sequence[float], lengths: Sequence[int]) -> None:
        self.steps.append(int(step))
        self.mean.append(float(np.mean(returns)))
        self.std.append(float(np.std(returns)))
        self.returns.append([float(r) for r in returns])
        self.lengths.append([int(n) for n in lengths])

    def save(self, run_dir: Path) -> None:
        """Write ``eval.csv`` and ``eval.npz`` (atomically: a crash leaves the previous complete curve)."""
        lines = ["step,mean_return,std_return,n_episodes"]
        lines += [f"{s},{m:.6g},{d:.6g},{len(r)}" for s, m, d, r in zip(self.steps, self.mean, self.std, self.returns)]
        atomic_write_text(run_dir / "eval.csv", "\n".join(lines) + "\n")
        tmp = run_dir / ".eval.tmp.npz"
        np.savez(
            tmp, steps=np.array(self.steps, dtype=np.int64), mean=np.array(self.mean), std=np.array(self.std),
            returns=np.array(self.returns, dtype=np.float64), lengths=np.array(self.lengths, dtype=np.int64),
        )
        tmp.replace(run_dir / "eval.npz")

    def to_dict(self) -> dict[str, Any]:
        return {"steps": list(self.steps), "mean": list(self.mean), "std": list(self.std),
                "returns": [list(r) for r in self.returns], "lengths": [list(n) for n in self.lengths]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvalCurve:
        return cls(steps=[int(s) for s in data["steps"]], mean=[float(m) for m in data["mean"]],
                   std=[float(d) for d in data["std"]], returns=[[float(r) for r in row] for row in data["returns"]],
                   lengths=[[int(n) for n in row] for row in data["lengths"]])

    @classmethod
    def load(cls, run_dir: Path) -> EvalCurve:
        from rltransfer.errors import BundleError
        from rltransfer.rundir import read_npz

        path = Path(run_dir) / "eval.npz"
        data = read_npz(path)
        missing = {"steps", "mean", "std", "returns", "lengths"} - set(data)
        if missing:
            raise BundleError(f"{path}: missing arrays {sorted(missing)}")
        return cls(
            steps=data["steps"].tolist(), mean=data["mean"].tolist(), std=data["std"].tolist(),
            returns=data["returns"].tolist(), lengths=data["lengths"].tolist(),
        )


def markdown_table(rows: dict[str, Any], header: tuple[str, str] = ("key", "value")) -> str:
    lines = [f"| {header[0]} | {header[1]} |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in rows.items()]
    return "\n".join(lines)


def flat_hparams(spec: AgentSpec, params: dict[str, float], seed: int, steps: int) -> dict[str, Any]:
    out: dict[str, Any] = {"algo": spec.algo, "seed": seed, "total_timesteps": steps, "n_envs": spec.n_envs}
    for key, value in spec.hyperparams.for_sb3().items():
        out[f"hp/{key}"] = value.model_dump_json() if hasattr(value, "model_dump_json") else value
    for key, value in spec.policy_kwargs.model_dump(exclude_none=True).items():
        out[f"policy/{key}"] = str(value)
    for key, value in params.items():
        out[f"env/{key}"] = value
    return out


# --------------------------------------------------------------------------------------------- training


@dataclass
class RunResult:
    """What a finished run left: its directory, its bundle, its evaluation curve."""

    run_dir: Path
    policy_dir: Path
    curve: EvalCurve
    model: BaseAlgorithm | None = None

    @property
    def final_mean(self) -> float:
        return self.curve.mean[-1] if self.curve.mean else math.nan


def is_distribution_error(exc: BaseException) -> bool:
    """Whether ``exc`` is torch.distributions' argument validation failing (``Expected parameter loc ...
    to satisfy the constraint Real(), but found invalid values``): what SAC/PPO raise once weights or
    observations have gone non-finite. Other value errors are not divergence."""
    if not isinstance(exc, ValueError) or not str(exc).startswith("Expected parameter"):
        return False
    frames = traceback.extract_tb(exc.__traceback__)
    return any("torch/distributions" in f.filename.replace("\\", "/") for f in frames)
