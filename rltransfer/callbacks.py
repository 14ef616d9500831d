"""Training guards: SB3 callbacks that stop a diverged run, keep a run's heartbeat, and spot a collapse.

* :class:`NanGuard` stops training with :class:`~rltransfer.errors.DivergenceError` as soon as a
  non-finite observation, reward, loss, gradient or weight appears, naming where it came from.
* :class:`Heartbeat` refreshes ``status.json``'s heartbeat while training, so that a killed run can be
  told from a live one (:func:`rltransfer.rundir.run_state`).
* :class:`CollapseMonitor` is the rule, fed by the evaluation callback, that flags a run whose
  evaluation return falls far below its own best and stays there (a warning, never a stop).

Cost (checked by ``benchmarks/scripts/overhead.py``-style timing, see tests/test_guards.py): the weights
and gradients are checked with one fused ``torch.isfinite(torch.cat(...)).all()`` after every
``train()`` call of an on-policy algorithm (once per rollout) and every ``check_freq`` steps of an
off-policy one; observations and rewards once per rollout from the rollout buffer (on-policy) or with a
sum per step (off-policy, where a gradient step per env step dwarfs it); losses from the logger after
each ``train()``. Only when a check fails is the culprit searched for, tensor by tensor.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from rltransfer.errors import DivergenceError
from rltransfer.rundir import HEARTBEAT_INTERVAL, heartbeat

__all__ = ["CollapseMonitor", "Heartbeat", "NanGuard", "check_finite_weights", "first_nonfinite_tensor"]

logger = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------- weights


def _named_tensors(model: BaseAlgorithm) -> Iterator[tuple[str, torch.Tensor]]:
    """The policy's parameters (and SAC's entropy coefficient), named as in ``policy.state_dict()``."""
    yield from model.policy.named_parameters()
    log_ent = getattr(model, "log_ent_coef", None)
    if isinstance(log_ent, torch.Tensor):
        yield "log_ent_coef", log_ent


def all_finite(tensors: list[torch.Tensor]) -> bool:
    """Whether every element of ``tensors`` is finite: one fused check (a single ``cat`` and ``isfinite``)."""
    if not tensors:
        return True
    with torch.no_grad():
        return bool(torch.isfinite(torch.cat([t.detach().reshape(-1) for t in tensors])).all())


def first_nonfinite_tensor(model: BaseAlgorithm, grads: bool = True) -> str | None:
    """``"weight in <name>"`` / ``"gradient of <name>"`` for the first non-finite tensor, else ``None``.

    Fast path: one fused check over all weights and gradients; names are looked up only on failure.
    """
    named = list(_named_tensors(model))
    tensors = [p for _, p in named]
    gradients = [p.grad for _, p in named if grads and p.grad is not None]
    if all_finite(tensors + gradients):  # type: ignore[operator]
        return None
    for name, p in named:
        if not all_finite([p]):
            return f"weight in {name}"
    for name, p in named:
        if grads and p.grad is not None and not all_finite([p.grad]):
            return f"gradient of {name}"
    return None


def check_finite_weights(model: BaseAlgorithm, where: str = "") -> None:
    """Raise :class:`DivergenceError` unless every policy weight is finite (run before saving a bundle)."""
    bad = first_nonfinite_tensor(model, grads=False)
    if bad is not None:
        suffix = f" {where}" if where else ""
        raise DivergenceError(f"non-finite {bad}{suffix}; no bundle written")


def _first_bad_index(array: np.ndarray) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argwhere(~np.isfinite(array))[0])


def _arrays(value: Any) -> Iterator[tuple[str, np.ndarray]]:
    if isinstance(value, Mapping):
        for key, sub in value.items():
            yield f"[{key!r}]", np.asarray(sub)
    elif value is not None:
        yield "", np.asarray(value)


def _sum_finite(array: np.ndarray) -> bool:
    """Cheap test: a sum is finite when every element is (overflow of huge finite values is rechecked)."""
    if array.dtype.kind not in "fc":
        return True
    with np.errstate(all="ignore"):
        if math.isfinite(float(np.sum(array))):
            return True
    return bool(np.isfinite(array).all())


# ---------------------------------------------------------------------------------------------- guard


class NanGuard(BaseCallback):
    """Stop training with :class:`DivergenceError` on a non-finite observation, reward, loss, gradient or
    weight.

    Args:
        check_freq: for off-policy algorithms, check weights and gradients every this many environment
            steps (and at the end); on-policy algorithms are checked after every ``train()`` call.
    """

    #: Logger keys (under ``train/``) that hold losses; other ``train/`` values (``explained_variance``)
    #: may be NaN legitimately.
    LOSS_MARK = "loss"

    def __init__(self, check_freq: int = 1000) -> None:
        super().__init__(verbose=0)
        if check_freq < 1:
            raise ValueError(f"check_freq must be >= 1, got {check_freq}")
        self.check_freq = int(check_freq)
        self._on_policy = False
        self._next_check = 0
        self._rollouts = 0

    def _init_callback(self) -> None:
        self._on_policy = isinstance(self.model, OnPolicyAlgorithm)
        self._next_check = self.check_freq

    def _fail(self, what: str) -> None:
        raise DivergenceError(f"non-finite {what} at step {self.num_timesteps:,}; training stopped")

    # -- checks
    def check_losses(self) -> None:
        for key, value in list(self.logger.name_to_value.items()):
            if key.startswith("train/") and self.LOSS_MARK in key:
                try:
                    number = float(value)
                except (TypeError, ValueError):
                    continue
                if not math.isfinite(number):
                    self._fail(f"{key} = {number}")

    def check_weights(self) -> None:
        bad = first_nonfinite_tensor(self.model)
        if bad is not None:
            self._fail(bad)
        env = self.training_env
        while isinstance(env, VecEnv):
            if isinstance(env, VecNormalize) and env.norm_obs:
                for name, stat in (("mean", env.obs_rms.mean), ("var", env.obs_rms.var)):
                    for key, arr in _arrays(stat):
                        if not np.isfinite(arr).all():
                            self._fail(f"VecNormalize observation {name}{key}")
            env = getattr(env, "venv", None)

    def check_transitions(self, obs: Any, rewards: Any, env_axis: int) -> None:
        """Check observations/rewards shaped ``(..., n_envs, ...)`` with the env index on ``env_axis``."""
        for what, value in (("observation", obs), ("reward", rewards)):
            for key, arr in _arrays(value):
                if not _sum_finite(arr):
                    index = _first_bad_index(arr)
                    env = index[env_axis] if len(index) > env_axis else 0
                    self._fail(f"{what}{key} from env {env}")

    # -- hooks
    def _on_rollout_start(self) -> None:
        # Called after the previous rollout's train(): its losses are still in the logger.
        if self._rollouts > 0:
            self.check_losses()
            if self._on_policy:
                self.check_weights()
        self._rollouts += 1

    def _on_step(self) -> bool:
        if not self._on_policy:
            self.check_transitions(self.locals.get("new_obs"), self.locals.get("rewards"), env_axis=0)
            if self.num_timesteps >= self._next_check:
                self.check_weights()
                while self._next_check <= self.num_timesteps:
                    self._next_check += self.check_freq
        return True

    def _on_rollout_end(self) -> None:
        if self._on_policy:
            buffer = getattr(self.model, "rollout_buffer", None)
            if buffer is not None:
                self.check_transitions(buffer.observations, buffer.rewards, env_axis=1)

    def _on_training_end(self) -> None:
        self.check_losses()
        self.check_weights()


# ------------------------------------------------------------------------------------------ heartbeat


class Heartbeat(BaseCallback):
    """Refresh the run's ``status.json`` heartbeat at least every ``interval`` seconds while training.

    The clock is read only every ``every`` calls of ``on_step`` (cheap), so the real period is
    ``interval`` plus at most ``every`` vectorized steps.
    """

    def __init__(self, run_dir: Path, interval: float = HEARTBEAT_INTERVAL, every: int = 256) -> None:
        super().__init__(verbose=0)
        self.run_dir = Path(run_dir)
        self.interval = float(interval)
        self.every = max(1, int(every))
        self._last = time.monotonic()

    def beat(self) -> None:
        heartbeat(self.run_dir)
        self._last = time.monotonic()

    def _on_training_start(self) -> None:
        self.beat()

    def _on_step(self) -> bool:
        if self.n_calls % self.every == 0 and time.monotonic() - self._last >= self.interval:
            self.beat()
        return True


# ------------------------------------------------------------------------------------------- collapse


class CollapseMonitor:
    """Flags a collapse: the evaluation return far below the run's own best, evaluation after evaluation.

    Rule: with the family's return range ``(lo, hi)``, evaluation ``k`` is *collapsed* when
    ``mean_k < best_k - drop * (hi - lo)`` where ``best_k`` is the best mean so far; a collapse is
    reported when ``patience`` consecutive evaluations are collapsed (once, until the return recovers).
    Measuring the drop in units of the task's range makes the threshold mean the same on every family
    (CartPole ``[0, 500]`` with ``drop=0.5``: from a best of 500, below 250 three times in a row).

    Args:
        return_range: ``(lo, hi)`` of the family (:attr:`~rltransfer.config.EnvFamily.return_range`).
        drop: the fall, as a fraction of ``hi - lo``, that counts as collapsed.
        patience: consecutive collapsed evaluations before a collapse is reported.
    """

    def __init__(self, return_range: tuple[float, float], drop: float = 0.5, patience: int = 3) -> None:
        lo, hi = (float(v) for v in return_range)
        if not hi > lo:
            raise ValueError(f"return_range must have hi > lo, got {return_range!r}")
        if not 0 < drop <= 1 or patience < 1:
            raise ValueError(f"drop must be in (0, 1] and patience >= 1, got {drop} and {patience}")
        self.span = hi - lo
        self.drop = float(drop)
        self.patience = int(patience)
        self.best = -math.inf
        self.streak = 0
        self.collapse_steps: list[int] = []

    def update(self, step: int, mean: float) -> bool:
        """Feed one evaluation; returns whether the run is in a (reported) collapse at this evaluation."""
        if not math.isfinite(mean):
            self.streak += 1
        elif mean < self.best - self.drop * self.span:
            self.streak += 1
        else:
            self.streak = 0
        if math.isfinite(mean):
            self.best = max(self.best, mean)
        if self.streak == self.patience:
            self.collapse_steps.append(int(step))
            logger.warning(
                "evaluation return collapsed at step %s: %.4g, more than %.0f%% of the return range below the "
                "run's best (%.4g) for %d evaluations in a row", f"{step:,}", mean, 100 * self.drop, self.best,
                self.patience,
            )
        return self.streak >= self.patience
