"""Training SB3 agents on env families: model construction, the evaluation callback, and :func:`train`.

A run is easy to read top to bottom in :func:`train`: resolve the config, create the run directory, build
the vectorized env (with ``VecNormalize`` when the agent asks for it), build the model, learn with the
evaluation callback, save the policy bundle, mark the run done.

Every run is guarded (:mod:`rltransfer.callbacks`): a non-finite observation, reward, loss, gradient or
weight stops it with :class:`~rltransfer.errors.DivergenceError` (as do torch's own "invalid distribution
parameter" crashes that divergence causes), in which case no bundle is written and ``status.json`` says
failed; a bundle is never written with non-finite weights. ``status.json`` carries the owner's pid, host
and a heartbeat, so a killed run is recognised as dead and its directory may be reused.
"""

from __future__ import annotations

import logging
import math
import shutil
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.logger import HParam, configure
from stable_baselines3.common.utils import set_random_seed
from stable_baselines3.common.vec_env import VecEnv, VecNormalize, sync_envs_normalization

from rltransfer.algos import algo_class, sb3_kwargs
from rltransfer.callbacks import CollapseMonitor, Heartbeat, NanGuard, check_finite_weights
from rltransfer.config import AgentSpec, EnvFamily, load_agent, load_family
from rltransfer.environments import WrapperSpec, make_vec_env
from rltransfer.errors import ConfigError, DivergenceError
from rltransfer.rundir import (
    atomic_write_text,
    clean_residue,
    command_line,
    read_status,
    run_name,
    run_state,
    versions,
    write_config,
    write_status,
)

if TYPE_CHECKING:
    from rltransfer.curricula import Curriculum

logger = logging.getLogger(__name__)

EvalListener = Callable[[int, float], None]


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


class EvalCallback(BaseCallback):
    """Deterministic evaluation on a separate env at step 0 and every ``eval_freq`` environment steps.

    Unlike SB3's ``EvalCallback`` the frequency counts environment steps (``num_timesteps``), whatever the
    number of parallel envs, and the first evaluation happens before any learning, so the curve starts
    with the zero-shot performance (what transfer metrics call the jumpstart). Every evaluation reseeds
    the eval env with the same seed (common random numbers across runs and arms).
    """

    def __init__(
        self,
        eval_env: VecEnv,
        eval_freq: int,
        n_episodes: int,
        eval_seed: int,
        run_dir: Path | None = None,
        listeners: Sequence[EvalListener] = (),
        collapse: CollapseMonitor | None = None,
    ) -> None:
        super().__init__(verbose=0)
        self.collapse = collapse
        self.eval_env = eval_env
        self.eval_freq = int(eval_freq)
        self.n_episodes = int(n_episodes)
        self.eval_seed = int(eval_seed)
        self.run_dir = run_dir
        self.listeners = list(listeners)
        self.curve = EvalCurve()
        self._next = 0

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
        if self.collapse is not None:
            self.logger.record("eval/collapse", float(self.collapse.update(step, mean)))
        self.logger.dump(step)
        if self.run_dir is not None:
            self.curve.save(self.run_dir)
        for listener in self.listeners:
            listener(step, mean)
        return mean

    def _on_training_start(self) -> None:
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
        return True

    def _on_training_end(self) -> None:
        if self.n_episodes > 0 and (not self.curve.steps or self.curve.steps[-1] != self.num_timesteps):
            self.evaluate_now()


class HParamsCallback(BaseCallback):
    """Writes the hyperparameters and env parameters to TensorBoard (HPARAMS table and text) at start."""

    def __init__(self, hparams: dict[str, Any], texts: dict[str, str]) -> None:
        super().__init__()
        self.hparams = hparams
        self.texts = texts

    def _on_training_start(self) -> None:
        clean = {k: (v if isinstance(v, (bool, int, float, str)) else str(v)) for k, v in self.hparams.items()}
        self.logger.record(
            "hparams", HParam(clean, {"eval/mean_return": 0.0}), exclude=("stdout", "log", "json", "csv")
        )
        for key, text in self.texts.items():
            self.logger.record(key, text, exclude=("stdout", "log", "json", "csv"))
        self.logger.dump(self.num_timesteps)

    def _on_step(self) -> bool:
        return True


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


@dataclass
class TrainSetup:
    """Everything resolved before a run starts (shared by training and transfer)."""

    family: EnvFamily
    spec: AgentSpec
    params: dict[str, float]
    steps: int
    seed: int
    run_dir: Path
    wrappers: tuple[WrapperSpec, ...] = ()
    eval_freq: int = 10_000
    eval_episodes: int = 10
    training_wrappers: tuple[WrapperSpec, ...] = ()

    @property
    def env_wrappers(self) -> tuple[WrapperSpec, ...]:
        """All wrappers, innermost first: training-only ones, then those the policy needs."""
        return self.training_wrappers + self.wrappers


def prepare_run(
    env: str | EnvFamily,
    agent: str | AgentSpec,
    params: dict[str, float] | None,
    steps: int | None,
    seed: int,
    out: str | Path,
    name: str | None,
    label: str | None = None,
    eval_freq: int | None = None,
    eval_episodes: int | None = None,
    wrappers: Sequence[WrapperSpec] = (),
    training_wrappers: Sequence[WrapperSpec] = (),
) -> TrainSetup:
    """Resolve names to specs, validate everything, and create the run directory (nothing half-written:
    validation happens before the directory exists)."""
    family = env if isinstance(env, EnvFamily) else load_family(env)
    spec = agent if isinstance(agent, AgentSpec) else load_agent(agent, family.name)
    values = family.resolve_params(params)
    total = int(steps if steps is not None else spec.n_timesteps)
    if total <= 0:
        raise ConfigError(f"steps must be positive, got {total}")
    freq = spec.eval.freq if eval_freq is None else int(eval_freq)
    episodes = spec.eval.episodes if eval_episodes is None else int(eval_episodes)
    if freq < 0 or episodes < 0:
        raise ConfigError(f"eval frequency and episodes must be >= 0, got {freq} and {episodes}")
    run_dir = Path(out) / (name or run_name(family.name, label or spec.name, seed))
    claim_run_dir(run_dir)
    all_wrappers = tuple(WrapperSpec(w) for w in spec.wrappers) + tuple(wrappers)
    return TrainSetup(family, spec, values, total, seed, run_dir, all_wrappers, freq, episodes,
                      tuple(training_wrappers))


def claim_run_dir(run_dir: Path) -> None:
    """Make ``run_dir`` ready for a new run, or refuse.

    * finished (status done): refused, as is a folder holding a bundle without any status;
    * alive (pending/running, owner process alive): refused, naming the pid and host;
    * dead (owner gone or heartbeat stale) or failed: its contents are removed (logged) and reused;
    * no status: created if needed; temporaries a crashed writer left (``.policy.tmp-*`` ...) are removed.

    Raises:
        ConfigError: the directory holds a finished or a live run.
    """
    state = run_state(run_dir)
    if state == "done" or (state == "missing" and (run_dir / "policy").exists()):
        raise ConfigError(f"run directory {run_dir} already holds a finished run; choose another --name or --out")
    if state == "alive":
        data = read_status(run_dir)
        raise ConfigError(
            f"run directory {run_dir} is in use by a live run (pid {data.get('pid')} on host "
            f"{data.get('host')!r}, status {data.get('status')}); choose another --name or --out, or stop it"
        )
    if state in ("dead", "failed"):
        logger.warning("run directory %s holds a %s run (status %s); replacing it", run_dir, state,
                       read_status(run_dir).get("status"))
        for child in list(run_dir.iterdir()):
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    else:
        removed = clean_residue(run_dir)
        if removed:
            logger.warning("removed %d temporary file(s) left in %s by an interrupted run", len(removed), run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)


def resolved_config(setup: TrainSetup, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "env": {"family": setup.family.name, "gym_id": setup.family.gym_id, "source": setup.family.source,
                "params": setup.params, "wrappers": [w.to_dict() for w in setup.wrappers],
                "training_wrappers": [w.to_dict() for w in setup.training_wrappers]},
        "agent": setup.spec.model_dump(mode="json", exclude_none=True),
        "steps": setup.steps,
        "seed": setup.seed,
        "eval": {"freq": setup.eval_freq, "episodes": setup.eval_episodes, "seed": eval_seed(setup.seed)},
        "versions": versions(),
        **(extra or {}),
    }


def eval_seed(seed: int) -> int:
    return 1_000_003 + int(seed)


#: Evaluation runs its episodes on up to this many envs in lockstep, so the policy acts in batches.
MAX_EVAL_ENVS = 8


def make_eval_env(setup: TrainSetup) -> VecEnv:
    """The evaluation env: ``min(episodes, MAX_EVAL_ENVS)`` copies, seeded apart from the training envs."""
    n = max(1, min(setup.eval_episodes, MAX_EVAL_ENVS))
    return make_vec_env(setup.family, setup.params, n, eval_seed(setup.seed), "dummy", setup.env_wrappers)


def make_training_envs(setup: TrainSetup) -> tuple[VecEnv, VecEnv]:
    spec = setup.spec
    venv = make_vec_env(setup.family, setup.params, spec.n_envs, setup.seed, spec.vec_env, setup.env_wrappers)
    venv = wrap_normalization(venv, spec, training=True)
    eval_env = wrap_normalization(make_eval_env(setup), spec, training=False)
    return venv, eval_env


def run_learning(
    setup: TrainSetup,
    model: BaseAlgorithm,
    venv: VecEnv,
    eval_env: VecEnv,
    progress: bool,
    callbacks: Sequence[BaseCallback] = (),
    listeners: Sequence[EvalListener] = (),
    texts: dict[str, str] | None = None,
) -> RunResult:
    """Learn with evaluation, TensorBoard and the given callbacks; save the bundle; mark the run done."""
    from rltransfer.bundle import save_bundle

    run_dir = setup.run_dir
    model.set_logger(configure(str(run_dir / "tb"), ["tensorboard"]))
    collapse = CollapseMonitor(tuple(setup.family.return_range))  # type: ignore[arg-type]
    evaluator = EvalCallback(eval_env, setup.eval_freq, setup.eval_episodes, eval_seed(setup.seed), run_dir, listeners,
                             collapse)
    all_texts = {
        "config/env_params": markdown_table(setup.params, ("parameter", "value")),
        "config/agent": "```\n" + setup.spec.model_dump_json(indent=2, exclude_none=True) + "\n```",
        **(texts or {}),
    }
    hp = HParamsCallback(flat_hparams(setup.spec, setup.params, setup.seed, setup.steps), all_texts)
    start = time.time()
    write_status(run_dir, "running", started=start)
    guard = NanGuard()
    try:
        try:
            model.learn(
                total_timesteps=setup.steps,
                callback=CallbackList([guard, Heartbeat(run_dir), hp, *callbacks, evaluator]),
                progress_bar=progress, reset_num_timesteps=True,
            )
        except ValueError as exc:
            if is_distribution_error(exc):
                raise DivergenceError(
                    f"training diverged at step {model.num_timesteps:,}: torch.distributions rejected a "
                    f"non-finite parameter ({_first_line(exc)})"
                ) from exc
            raise
        check_finite_weights(model, f"at step {model.num_timesteps:,}")
        policy_dir = save_bundle(
            model, run_dir / "policy", family=setup.family, params=setup.params, seed=setup.seed,
            vec_normalize=venv if isinstance(venv, VecNormalize) else None, wrappers=setup.wrappers,
            extra={"training_wrappers": [w.to_dict() for w in setup.training_wrappers]},
        )
    except BaseException as exc:
        write_status(run_dir, "failed", started=start, error=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        venv.close()
        eval_env.close()
        model.logger.close()
    final = evaluator.curve.mean[-1] if evaluator.curve.mean else None
    write_status(
        run_dir, "done", started=start, steps=int(model.num_timesteps), seconds=round(time.time() - start, 3),
        final_mean_return=final if final is not None and math.isfinite(final) else None,
        collapse_steps=collapse.collapse_steps,
    )
    return RunResult(run_dir, policy_dir, evaluator.curve, model)


def _first_line(exc: BaseException, limit: int = 200) -> str:
    text = (str(exc).splitlines() or [""])[0]
    return text if len(text) <= limit else text[: limit - 3] + "..."


def is_distribution_error(exc: BaseException) -> bool:
    """Whether ``exc`` is torch.distributions' argument validation failing (``Expected parameter loc ...
    to satisfy the constraint Real(), but found invalid values``): what SAC/PPO raise once weights or
    observations have gone non-finite. Other value errors are not divergence."""
    if not isinstance(exc, ValueError) or not str(exc).startswith("Expected parameter"):
        return False
    frames = traceback.extract_tb(exc.__traceback__)
    return any("torch/distributions" in f.filename.replace("\\", "/") for f in frames)


def train(
    env: str | EnvFamily,
    agent: str | AgentSpec,
    params: dict[str, float] | None = None,
    steps: int | None = None,
    seed: int = 0,
    out: str | Path = "runs",
    name: str | None = None,
    eval_freq: int | None = None,
    eval_episodes: int | None = None,
    progress: bool = False,
    device: str = "cpu",
    threads: int | None = 1,
    command: str | None = None,
    training_wrappers: Sequence[WrapperSpec] = (),
    callbacks: Sequence[BaseCallback] = (),
    listeners: Sequence[EvalListener] = (),
    curriculum: str | Path | Curriculum | None = None,
) -> RunResult:
    """Train an agent on an env family and save a run directory with its policy bundle.

    Args:
        env: family name (``"cartpole"``), YAML path, or an :class:`EnvFamily`.
        agent: agent name (``"ppo"``), YAML path, or an :class:`AgentSpec`.
        params: env parameter overrides (validated against the family's hard bounds).
        steps: total environment steps (default: the agent's ``n_timesteps``).
        seed: seeds the model, the training envs (``seed..seed+n_envs-1``) and the eval env.
        out: parent folder of the run directory.
        name: run directory name (default ``{family}__{agent}__{seed}__{time}``).
        eval_freq: evaluate every this many env steps (0: only before and after training).
        eval_episodes: episodes per evaluation (0: no evaluation at all, e.g. to time training alone).
        progress: show a progress bar.
        device: torch device.
        threads: torch CPU threads (1 is fastest and reproducible for small networks; None leaves it).
        command: what to record in ``command.txt`` (default: this process's command line).
        training_wrappers: wrappers applied while training this policy but not part of what the policy
            expects later (not reproduced by evaluation or transfer), e.g. a planted corruption.
        callbacks: extra SB3 callbacks.
        listeners: functions called with ``(step, mean_return)`` after each evaluation.
        curriculum: a curriculum name, YAML path or :class:`~rltransfer.curricula.Curriculum` for the training
            envs; evaluation stays on ``params``.

    Returns:
        The run's directory, bundle path and evaluation curve.
    """
    family = env if isinstance(env, EnvFamily) else load_family(env)
    schedule = None
    if curriculum is not None:
        from rltransfer.curricula import Curriculum, CurriculumCallback, load_curriculum

        loaded = curriculum if isinstance(curriculum, Curriculum) else load_curriculum(curriculum)
        loaded.check_against(family)
        schedule = CurriculumCallback(loaded)
    setup = prepare_run(family, agent, params, steps, seed, out, name, None, eval_freq, eval_episodes,
                        training_wrappers=training_wrappers)
    if threads:
        torch.set_num_threads(threads)
    extra = {"curriculum": schedule.curriculum.model_dump()} if schedule else None
    write_status(setup.run_dir, "pending")  # first: the directory has an owner as soon as possible
    write_config(setup.run_dir, resolved_config(setup, extra), command or command_line())
    set_random_seed(seed)
    venv, eval_env = make_training_envs(setup)
    model = build_model(setup.spec, venv, seed, device)
    return run_learning(setup, model, venv, eval_env, progress, [*([schedule] if schedule else []), *callbacks],
                        listeners)
