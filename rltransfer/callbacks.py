"""The SB3 callbacks of a run: evaluation (with its after-evaluation hooks), hyperparameters, and the
guards that stop a diverged run, keep a run's heartbeat, and spot a collapse.

:func:`rltransfer.pipeline.build_callbacks` is the one place that assembles them, in a fixed order.
Every stateful callback has ``state_dict()``/``load_state_dict()`` so that checkpoints carry it.

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
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.logger import HParam
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.vec_env import VecEnv, VecNormalize, sync_envs_normalization

from rltransfer.errors import DivergenceError
from rltransfer.rundir import HEARTBEAT_INTERVAL, heartbeat
from rltransfer.training import EvalCurve

__all__ = [
    "BudgetStop", "CollapseHook", "CollapseMonitor", "DomainRandomizationLogger", "EvalCallback", "EvalHook", "HParamsCallback", "Heartbeat", "ListenerHook",
    "NanGuard", "check_finite_weights", "first_nonfinite_tensor",
]

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


# --------------------------------------------------------------------------------------------- budget


class BudgetStop(BaseCallback):
    """Stops an on-policy run at its budget of environment steps.

    SB3's on-policy algorithms collect whole rollouts (``n_steps x n_envs`` env steps) and only check the
    budget between them: a budget that is not a multiple of the rollout runs on to the end of the rollout
    that crosses it (30,208 steps for 30,000 at 8 x 32), and that rollout's update runs at a learning-rate
    schedule's end value (0 for ``lin_`` schedules), so it trains nothing and the final evaluation repeats
    the policy before it. Here the rollout that would cross the budget is cut at the budget: the run takes
    exactly ``budget`` env steps, every update is made on a whole rollout, and the steps of the cut
    rollout are collected but not trained on. A budget that is a multiple of the rollout runs as in SB3.

    Args:
        budget: the run's total env steps.
        rollout: env steps per rollout (``n_steps * n_envs``).
    """

    def __init__(self, budget: int, rollout: int) -> None:
        super().__init__()
        self.budget, self.rollout = int(budget), int(rollout)
        self._crossing = False

    def _on_rollout_start(self) -> None:
        self._crossing = self.num_timesteps + self.rollout > self.budget

    def _on_step(self) -> bool:
        return not (self._crossing and self.num_timesteps >= self.budget)


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

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best if math.isfinite(self.best) else None, "streak": self.streak,
                "collapse_steps": list(self.collapse_steps)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = -math.inf if state.get("best") is None else float(state["best"])
        self.streak = int(state.get("streak", 0))
        self.collapse_steps = [int(s) for s in state.get("collapse_steps", [])]


# ---------------------------------------------------------------------------------------- evaluation


class EvalHook(Protocol):
    """What runs after each evaluation, inside the same logger dump as ``eval/*`` (the detector, the
    collapse rule, curriculum gates, user listeners). ``stop_requested`` ends training at the next step."""

    def on_evaluation(self, step: int, mean_return: float) -> Any: ...


class ListenerHook:
    """A plain function ``(step, mean_return)`` as an :class:`EvalHook`."""

    def __init__(self, fn: Callable[[int, float], Any]) -> None:
        self.fn = fn
        self.stop_requested = False

    def on_evaluation(self, step: int, mean_return: float) -> None:
        self.fn(step, mean_return)


class CollapseHook:
    """The :class:`CollapseMonitor` as an evaluation hook: records ``eval/collapse``."""

    def __init__(self, monitor: CollapseMonitor) -> None:
        self.monitor = monitor
        self.stop_requested = False
        self.logger: Any = None

    def on_evaluation(self, step: int, mean_return: float) -> None:
        flag = self.monitor.update(step, mean_return)
        if self.logger is not None:
            self.logger.record("eval/collapse", float(flag))

    def state_dict(self) -> dict[str, Any]:
        return self.monitor.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.monitor.load_state_dict(state)


class EvalCallback(BaseCallback):
    """Deterministic evaluation on a separate env at step 0 and every ``eval_freq`` environment steps.

    Unlike SB3's ``EvalCallback`` the frequency counts environment steps (``num_timesteps``), whatever the
    number of parallel envs, and the first evaluation happens before any learning, so the curve starts
    with the zero-shot performance (what transfer metrics call the jumpstart). Every evaluation reseeds
    the eval env with the same seed (common random numbers across runs and arms).

    After each evaluation the ``hooks`` run in order (as SB3's ``callback_after_eval`` does), then the
    logger dumps once at the evaluation's step: ``eval/*`` and whatever the hooks record (``detect/*``,
    ``eval/collapse``) land on the same step. A hook with ``stop_requested`` set stops training.
    Hooks that are SB3 callbacks are initialized with the model, so they log through its logger.
    """

    def __init__(
        self,
        eval_env: VecEnv,
        eval_freq: int,
        n_episodes: int,
        eval_seed: int,
        run_dir: Path | None = None,
        hooks: Sequence[Any] = (),
    ) -> None:
        super().__init__(verbose=0)
        self.eval_env = eval_env
        self.eval_freq = int(eval_freq)
        self.n_episodes = int(n_episodes)
        self.eval_seed = int(eval_seed)
        self.run_dir = run_dir
        self.hooks = list(hooks)
        self.curve = EvalCurve()
        self._next = 0
        self._resumed = False

    def _init_callback(self) -> None:
        for hook in self.hooks:
            if hasattr(hook, "init_callback"):
                hook.init_callback(self.model)
            elif hasattr(hook, "logger"):
                hook.logger = self.logger

    def evaluate_now(self) -> float:
        if isinstance(self.eval_env, VecNormalize) or isinstance(self.training_env, VecNormalize):
            sync_envs_normalization(self.training_env, self.eval_env)
        self.eval_env.seed(self.eval_seed)
        returns, lengths = evaluate_policy(
            self.model, self.eval_env, n_eval_episodes=self.n_episodes, deterministic=True,
            return_episode_rewards=True, warn=False,
        )
        step = self.num_timesteps
        self.curve.append(step, returns, lengths)  # type: ignore[arg-type]
        mean = self.curve.mean[-1]
        self.logger.record("eval/mean_return", mean)
        self.logger.record("eval/std_return", self.curve.std[-1])
        self.logger.record("eval/mean_ep_length", float(np.mean(lengths)))
        for hook in self.hooks:
            hook.on_evaluation(step, mean)
        self.logger.dump(step)
        logger.info("evaluation at step %s: return %.2f +- %.2f over %d episodes", f"{step:,}", mean,
                    self.curve.std[-1], len(returns))
        if self.run_dir is not None:
            self.curve.save(self.run_dir)
        return mean

    @property
    def stop_requested(self) -> bool:
        return any(getattr(hook, "stop_requested", False) for hook in self.hooks)

    def _on_training_start(self) -> None:
        if self._resumed:  # the evaluation at this step was made before the checkpoint
            return
        if self.n_episodes > 0:
            self.evaluate_now()
        self._next = self.num_timesteps + self.eval_freq

    def _maybe_evaluate(self) -> None:
        if self.eval_freq > 0 and self.n_episodes > 0 and self.num_timesteps >= self._next:
            self.evaluate_now()
            while self._next <= self.num_timesteps:
                self._next += self.eval_freq

    def _on_step(self) -> bool:
        self._maybe_evaluate()
        return not self.stop_requested

    def _on_training_end(self) -> None:
        if self.n_episodes > 0 and (not self.curve.steps or self.curve.steps[-1] != self.num_timesteps):
            self.evaluate_now()

    def state_dict(self) -> dict[str, Any]:
        hooks = {str(i): h.state_dict() for i, h in enumerate(self.hooks) if hasattr(h, "state_dict")}
        return {"next": self._next, "curve": self.curve.to_dict(), "hooks": hooks}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._next = int(state["next"])
        self.curve = EvalCurve.from_dict(state["curve"])
        for key, hook_state in state.get("hooks", {}).items():
            hook = self.hooks[int(key)]
            if hasattr(hook, "load_state_dict"):
                hook.load_state_dict(hook_state)
        self._resumed = True


class DomainRandomizationLogger(BaseCallback):
    """Records what the randomized training episodes ran with: at each rollout end with finished episodes,
    ``dr/<param>_mean``, ``dr/<param>_min``, ``dr/<param>_max`` over the episodes that ended since the last
    record (for each parameter the preset draws, from ``info["env_params"]``), the same for
    ``dr/latency`` when the latency is drawn, and ``dr/episodes``. The values travel in ``info``, so this
    works with SubprocVecEnv.

    Args:
        params: the names of the randomized parameters (``None``: every parameter in ``info["dr"]``).
    """

    def __init__(self, params: Sequence[str] | None = None) -> None:
        super().__init__()
        self.params = tuple(params) if params is not None else None
        self.values: dict[str, list[float]] = {}
        self.episodes = 0

    def _on_step(self) -> bool:
        for done, info in zip(self.locals.get("dones", ()), self.locals.get("infos", ())):
            if not done:
                continue
            dr = info.get("dr") or {}
            env_params = info.get("env_params") or {}
            names = self.params if self.params is not None else tuple(dr.get("params", {}))
            for name in names:
                value = env_params.get(name, dr.get("params", {}).get(name))
                if value is not None:
                    self.values.setdefault(name, []).append(float(value))
            if "latency" in dr:
                self.values.setdefault("latency", []).append(float(dr["latency"]))
            if dr or env_params:
                self.episodes += 1
        return True

    def _on_rollout_end(self) -> None:
        if not self.episodes:
            return
        for name, values in self.values.items():
            array = np.asarray(values, dtype=np.float64)
            self.logger.record(f"dr/{name}_mean", float(array.mean()))
            self.logger.record(f"dr/{name}_min", float(array.min()))
            self.logger.record(f"dr/{name}_max", float(array.max()))
        self.logger.record("dr/episodes", self.episodes)
        self.values, self.episodes = {}, 0

    def state_dict(self) -> dict[str, Any]:
        return {"values": {k: list(v) for k, v in self.values.items()}, "episodes": self.episodes}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.values = {str(k): [float(x) for x in v] for k, v in state["values"].items()}
        self.episodes = int(state["episodes"])


class HParamsCallback(BaseCallback):
    """Writes the hyperparameters and env parameters to TensorBoard (HPARAMS table and text) at start."""

    def __init__(self, hparams: dict[str, Any], texts: dict[str, str]) -> None:
        super().__init__()
        self.hparams = hparams
        self.texts = texts
        self.resumed = False

    def _on_training_start(self) -> None:
        if self.resumed:
            return
        clean = {k: (v if isinstance(v, (bool, int, float, str)) else str(v)) for k, v in self.hparams.items()}
        self.logger.record(
            "hparams", HParam(clean, {"eval/mean_return": 0.0}), exclude=("stdout", "log", "json", "csv")
        )
        for key, text in self.texts.items():
            self.logger.record(key, text, exclude=("stdout", "log", "json", "csv"))
        self.logger.dump(self.num_timesteps)

    def _on_step(self) -> bool:
        return True
