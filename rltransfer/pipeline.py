"""The run pipeline: one function, :func:`execute`, runs a :class:`~rltransfer.spec.RunSpec`.

Read it top to bottom: claim the run directory, write ``config.yaml`` (the spec), build the envs
(:func:`build_envs`, the one place that builds them), build the model (trained from scratch, or a transfer
target with the source's weights), build the callbacks (:func:`build_callbacks`, the one place that
assembles them, in a fixed order), learn, save the bundle, mark the run done. Ctrl-C or SIGTERM writes a
checkpoint and a loadable policy, then marks the run ``interrupted``; :func:`resume` continues a run from
its last checkpoint. :func:`train` and :func:`transfer` are the public builders: they resolve names into a
spec and execute it, as the command line and every benchmark arm do.

The callback order (documented in the README):

1. ``HParamsCallback``: hyperparameters and env parameters to TensorBoard, once.
2. ``Heartbeat``: keeps ``status.json`` alive.
3. schedules: the curriculum; the domain-randomization logger (``dr/*``), when the spec has a preset.
4. strategy callbacks: L2-SP logging, kickstarting.
5. callbacks passed by the caller.
6. ``NanGuard``: stops on any non-finite observation, reward, loss, gradient or weight.
7. ``CheckpointCallback``: atomic checkpoints every ``save_freq`` steps (never of non-finite weights).
8. ``EvalCallback``: evaluation, then its hooks in the same logger dump: the collapse rule, the online
   detector, listeners.
9. ``BudgetStop`` (on-policy runs whose budget is not a multiple of the rollout): cuts the rollout that
   would cross the budget, so a run takes exactly its budget of env steps.
"""

from __future__ import annotations

import logging
import math
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.logger import configure
from stable_baselines3.common.utils import set_random_seed
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv, VecNormalize

from rltransfer.callbacks import (
    CollapseHook,
    CollapseMonitor,
    DomainRandomizationLogger,
    EvalCallback,
    Heartbeat,
    BudgetStop,
    HParamsCallback,
    ListenerHook,
    NanGuard,
    check_finite_weights,
)
from rltransfer.config import AgentSpec, EnvFamily
from rltransfer.environments import EpisodeMonitor, make_env
from rltransfer.errors import ConfigError, DivergenceError, RLTransferError
from rltransfer.randomization import wrap_randomization
from rltransfer.rundir import (
    atomic_write_json,
    atomic_write_text,
    check_run_dir,
    claim_run_dir,
    command_line,
    read_status,
    run_name,
    write_status,
)
from rltransfer.spec import EnvSpec, RunSpec, checkpoint_spec, dump_spec, load_spec, train_spec
from rltransfer.training import (
    EvalCurve,
    RunResult,
    build_model,
    flat_hparams,
    is_distribution_error,
    markdown_table,
    wrap_normalization,
)

__all__ = [
    "MAX_EVAL_ENVS",
    "Assembled",
    "PreparedTransfer",
    "build_callbacks",
    "build_envs",
    "build_eval_env",
    "execute",
    "prepare_transfer",
    "resume",
    "train",
    "transfer",
]

logger = logging.getLogger(__name__)

#: Evaluation runs its episodes on up to this many envs in lockstep, so the policy acts in batches.
MAX_EVAL_ENVS = 8

EvalListener = Callable[[int, float], None]


# ----------------------------------------------------------------------------------------------- envs


def _env_thunk(env: EnvSpec, worker_index: int, seed: int, schedulable: bool = False,
               render_mode: str | None = None,
               outer: Callable[[gym.Env], gym.Env] | None = None) -> Callable[[], gym.Env]:
    """Builds worker ``worker_index`` of ``env``, innermost first: the family env (FamilyEnv), the
    randomization wrappers (:func:`rltransfer.randomization.wrap_randomization`: the preset's
    PhysicsRandomizer, the variant's sensors, the preset's sensors), the training-only wrappers, the
    policy's wrappers, then Monitor. ``schedulable``: a PhysicsRandomizer even without a preset (a
    curriculum's ADR or range schedule drives it). ``render_mode`` is the family env's; ``outer`` wraps
    the result (e.g. Gymnasium's ``RecordVideo``)."""
    wrappers = tuple(w.to_wrapper_spec() for w in (*env.training_wrappers, *env.wrappers))

    def thunk() -> gym.Env:
        from rltransfer.wrappers import make_wrapper

        built = make_env(env.family, env.params, (), monitor=False, worker_index=worker_index,
                         **({"render_mode": render_mode} if render_mode is not None else {}))
        built = wrap_randomization(built, env.randomization, env.sensors, env.family.variants, seed, schedulable)
        for w in wrappers:
            built = make_wrapper(w.name, built, **w.kwargs)
        built = EpisodeMonitor(built)
        return outer(built) if outer is not None else built

    return thunk


def _vec_env(env: EnvSpec, n_envs: int, seed: int, vec_env: str, schedulable: bool = False) -> VecEnv:
    """``n_envs`` workers of ``env`` (see :func:`_env_thunk`), worker ``i`` seeded ``seed + i``, as SB3's
    ``make_vec_env``."""
    fns = [_env_thunk(env, i, seed, schedulable) for i in range(n_envs)]
    venv: VecEnv = SubprocVecEnv(fns) if vec_env == "subproc" and n_envs > 1 else DummyVecEnv(fns)
    venv.seed(seed)
    venv.action_space.seed(seed)
    return venv


def build_eval_env(env_spec: EnvSpec, n_envs: int, seed: int) -> VecEnv:
    """``n_envs`` evaluation workers of ``env_spec`` (DummyVecEnv, worker ``i`` seeded ``seed + i``), built
    exactly as a run builds its envs. The spec is taken as given: pass ``env_spec.evaluation()`` to drop
    what is for training only, or keep its preset to evaluate on the randomized ("sim") distribution."""
    return _vec_env(env_spec, n_envs, seed, "dummy")


def build_envs(spec: RunSpec) -> tuple[VecEnv, VecEnv]:
    """The training vec env and the evaluation vec env of a run: the one place that builds them.

    Training: ``agent.n_envs`` envs (Dummy or Subproc), env ``i`` with worker index ``i`` and seed
    ``seed + i``, with the training-only wrappers. Evaluation: ``min(episodes, MAX_EVAL_ENVS)`` envs of the
    evaluation env spec (never with training-only wrappers or randomization), seeded with ``eval.seed``.
    Neither is normalized here (see :func:`assemble`).
    """
    agent = spec.agent
    schedulable = spec.curriculum is not None and (
        spec.curriculum.get("adr") is not None or any(st.get("ranges") for st in spec.curriculum.get("stages") or [])
    )
    venv = _vec_env(spec.env, agent.n_envs, spec.seed, agent.vec_env, schedulable)
    try:
        n_eval = max(1, min(spec.eval.episodes, MAX_EVAL_ENVS))
        eval_env = _vec_env(spec.eval.env.evaluation(), n_eval, spec.eval.seed, "dummy")
    except BaseException:
        venv.close()
        raise
    return venv, eval_env


@dataclass
class Assembled:
    """A model ready to learn, with its envs and what its construction adds to the run."""

    model: BaseAlgorithm
    venv: VecEnv
    eval_env: VecEnv
    callbacks: list[BaseCallback] = field(default_factory=list)
    texts: dict[str, str] = field(default_factory=dict)
    files: dict[str, Any] = field(default_factory=dict)


def assemble(spec: RunSpec) -> Assembled:
    """Envs and model of a run: from scratch, or (``spec.transfer``) the target with the source's weights."""
    venv, eval_env = build_envs(spec)
    try:
        if spec.transfer is not None:
            from rltransfer.transfer import assemble_transfer

            model, venv, eval_env, callbacks, texts, files = assemble_transfer(spec, venv, eval_env)
            return Assembled(model, venv, eval_env, callbacks, texts, files)
        venv = wrap_normalization(venv, spec.agent, training=True)
        eval_env = wrap_normalization(eval_env, spec.agent, training=False)
        return Assembled(build_model(spec.agent, venv, spec.seed, spec.device), venv, eval_env)
    except BaseException:
        venv.close()
        eval_env.close()
        raise


# ----------------------------------------------------------------------------------------- callbacks


@dataclass
class Callbacks:
    """The assembled callbacks of a run, and handles on the stateful ones."""

    evaluator: EvalCallback
    checkpointer: Any
    ordered: list[BaseCallback]
    stateful: dict[str, Any]
    collapse: CollapseMonitor

    def states(self) -> dict[str, dict[str, Any]]:
        return {name: cb.state_dict() for name, cb in self.stateful.items()}

    def load_states(self, states: dict[str, dict[str, Any]]) -> None:
        for name, state in states.items():
            if name in self.stateful:
                self.stateful[name].load_state_dict(state)


def on_policy_rollout(model: BaseAlgorithm) -> int | None:
    """Env steps per rollout of an on-policy model (``n_steps * n_envs``), or None for others."""
    from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm

    if isinstance(model, OnPolicyAlgorithm):
        return int(model.n_steps) * int(model.n_envs)
    return None


def run_identity(spec: RunSpec, run_dir: Path) -> dict[str, Any]:
    """What a run is, as TensorBoard HParams columns to group and filter runs by: ``run/kind`` (``train`` or
    ``transfer``), ``run/arm`` (the run's label: ``scratch``, ``source``, a strategy or curriculum arm),
    ``run/family``, ``run/variant``, ``run/randomization``, ``run/curriculum``, and for transfers
    ``transfer/strategy`` and ``transfer/source`` (the source bundle's folder and fingerprint). A benchmark
    run (``<out>/runs/<pair>/<arm>/seed<k>``) also gets ``run/pair`` and its ``run/arm`` from the path:
    scratch runs shared by several pairs name the first pair that asked for them (their folder)."""
    out: dict[str, Any] = {
        "run/kind": "transfer" if spec.transfer is not None else "train",
        "run/arm": spec.label or ("transfer" if spec.transfer is not None else "train"),
        "run/family": spec.env.family.name,
        "run/variant": spec.env.variant or "",
        "run/randomization": spec.env.randomization_name or "",
        "run/curriculum": (spec.curriculum or {}).get("name", "") if spec.curriculum else "",
    }
    if spec.transfer is not None:
        source = Path(spec.transfer.source.path)
        out["transfer/strategy"] = str(spec.transfer.strategy.get("name", ""))
        out["transfer/source"] = f"{source.parent.name}/{source.name} ({spec.transfer.source.fingerprint[:12]})"
    parts = Path(run_dir).parts
    if len(parts) >= 4 and parts[-4] == "runs" and parts[-1].startswith("seed"):
        out["run/pair"], out["run/arm"] = parts[-3], parts[-2]
    return out


def build_callbacks(
    spec: RunSpec,
    run_dir: Path,
    assembled: Assembled,
    extra: Sequence[BaseCallback] = (),
    listeners: Sequence[EvalListener] = (),
) -> Callbacks:
    """The run's callbacks in the documented order (module docstring); the one place that builds them."""
    from rltransfer.checkpoints import CheckpointCallback

    texts = {
        "config/env_params": markdown_table(spec.env.params, ("parameter", "value")),
        "config/agent": "```\n" + spec.agent.model_dump_json(indent=2, exclude_none=True) + "\n```",
        **({"config/randomization": f"`{spec.env.randomization_name}`\n```\n"
            + spec.env.randomization.model_dump_json(indent=2, exclude_none=True) + "\n```"}
           if spec.env.randomization is not None else {}),
        **assembled.texts,
    }
    hparams = HParamsCallback({**run_identity(spec, run_dir),
                               **flat_hparams(spec.agent, spec.env.params, spec.seed, spec.steps)}, texts)
    ordered: list[BaseCallback] = [hparams, Heartbeat(run_dir)]
    stateful: dict[str, Any] = {}
    if spec.curriculum is not None:
        from rltransfer.curricula import Curriculum, CurriculumCallback

        schedule = CurriculumCallback(Curriculum.model_validate(spec.curriculum))
        ordered.append(schedule)
        stateful["curriculum"] = schedule
    if spec.env.randomization is not None:
        dr_logger = DomainRandomizationLogger(tuple(spec.env.randomization.params))
        ordered.append(dr_logger)
        stateful["dr"] = dr_logger
    ordered += assembled.callbacks
    ordered += list(extra)
    ordered.append(NanGuard())
    collapse = CollapseMonitor(tuple(spec.env.family.return_range))  # type: ignore[arg-type]
    hooks: list[Any] = [CollapseHook(collapse)]
    if spec.detection is not None:
        from rltransfer.detection import detection_hook

        hooks.append(detection_hook(spec, run_dir))
    hooks += [ListenerHook(fn) for fn in listeners]
    evaluator = EvalCallback(assembled.eval_env, spec.eval.freq, spec.eval.episodes, spec.eval.seed, run_dir, hooks)
    stateful["eval"] = evaluator
    ckpt = spec.checkpoints
    checkpointer = CheckpointCallback(run_dir / "checkpoints", ckpt.save_freq, ckpt.keep, ckpt.replay_buffer,
                                      states=lambda: {n: c.state_dict() for n, c in stateful.items()})
    ordered += [checkpointer, evaluator]
    rollout = on_policy_rollout(assembled.model)
    if rollout is not None and spec.steps % rollout:
        ordered.append(BudgetStop(spec.steps, rollout))  # after the evaluator: the step at the budget is evaluated
    for cb in assembled.callbacks:
        if hasattr(cb, "state_dict") and hasattr(cb, "load_state_dict"):
            stateful[f"strategy/{type(cb).__name__}"] = cb
    return Callbacks(evaluator, checkpointer, ordered, stateful, collapse)


# ------------------------------------------------------------------------------------------- signals


class Interrupted(RLTransferError, KeyboardInterrupt):
    """Training was interrupted (Ctrl-C or SIGTERM); a checkpoint and a policy were written."""


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt while training (main thread only), so both save and exit."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


# ------------------------------------------------------------------------------------------- execute


def execute(
    spec: RunSpec,
    run_dir: str | Path,
    progress: bool = False,
    command: str | None = None,
    callbacks: Sequence[BaseCallback] = (),
    listeners: Sequence[EvalListener] = (),
    from_checkpoint: Path | None = None,
) -> RunResult:
    """Run ``spec`` in ``run_dir``: the one function every run goes through.

    Args:
        spec: the resolved run.
        run_dir: the run directory (created; refused if it holds a finished or a live run).
        progress: show a progress bar.
        command: what to record in ``command.txt`` (default: this process's command line).
        callbacks: extra SB3 callbacks (placed after the strategy's, before the guard).
        listeners: functions called with ``(step, mean_return)`` after each evaluation.
        from_checkpoint: continue from this checkpoint of the same spec (see :func:`resume`).

    Returns:
        The run's directory, bundle and evaluation curve.

    Raises:
        Interrupted: on Ctrl-C / SIGTERM, after writing a checkpoint and a loadable policy.
        DivergenceError: training produced non-finite values; no bundle was written.
    """
    run_dir = Path(run_dir)
    if from_checkpoint is None:
        check_run_dir(run_dir)  # refuse a finished or live run before any work
    if spec.threads:
        torch.set_num_threads(spec.threads)
    set_random_seed(spec.seed)
    assembled = assemble(spec)  # every mistake in the spec surfaces here, before anything is written
    model, venv, eval_env = assembled.model, assembled.venv, assembled.eval_env
    owned = False
    try:
        if from_checkpoint is None:
            claim_run_dir(run_dir)
            write_status(run_dir, "pending")  # first: the directory has an owner as soon as possible
            owned = True
            atomic_write_text(run_dir / "config.yaml", dump_spec(spec))
            atomic_write_text(run_dir / "command.txt", (command or command_line()) + "\n")
        else:
            write_status(run_dir, "pending", resumed_from=str(from_checkpoint))
            owned = True
        for name, data in assembled.files.items():
            atomic_write_json(run_dir / name, data.to_dict() if hasattr(data, "to_dict") else data)
        model.set_logger(configure(str(run_dir / "tb"), ["tensorboard"]))
        cbs = build_callbacks(spec, run_dir, assembled, callbacks, listeners)
        if from_checkpoint is not None:
            from rltransfer.checkpoints import load_checkpoint

            cbs.load_states(load_checkpoint(from_checkpoint, model, venv))
            for cb in cbs.ordered:
                if isinstance(cb, HParamsCallback):
                    cb.resumed = True
        logger.info("run %s: %s, %s steps, seed %d (spec %s)", run_dir, spec.label or spec.agent.name, f"{spec.steps:,}",
                    spec.seed, spec.fingerprint())
    except BaseException as exc:  # nothing has trained: the status says why, never a stale "pending"
        if owned:
            _record_failure(run_dir, exc)
        venv.close()
        eval_env.close()
        raise
    remaining = spec.steps - int(model.num_timesteps)
    start = time.time()
    write_status(run_dir, "running", started=start)
    try:
        with _sigterm_as_interrupt():
            try:
                if remaining > 0:
                    model.learn(total_timesteps=remaining, callback=CallbackList(cbs.ordered), progress_bar=progress,
                                reset_num_timesteps=from_checkpoint is None)
            except ValueError as exc:
                if is_distribution_error(exc):
                    raise DivergenceError(
                        f"training diverged at step {model.num_timesteps:,}: torch.distributions rejected a "
                        f"non-finite parameter ({_first_line(exc)})"
                    ) from exc
                raise
        check_finite_weights(model, f"at step {model.num_timesteps:,}")
        policy_dir = _save_policy(spec, model, venv, run_dir, cbs)
    except KeyboardInterrupt as exc:
        _interrupted(spec, model, venv, run_dir, cbs, start)
        raise Interrupted(
            f"interrupted at step {model.num_timesteps:,}; checkpoint and policy saved in {run_dir}; "
            f"continue with: rltransfer resume {run_dir}"
        ) from exc
    except BaseException as exc:
        _record_failure(run_dir, exc, started=start)
        raise
    finally:
        venv.close()
        eval_env.close()
        model.logger.close()
    final = cbs.evaluator.curve.mean[-1] if cbs.evaluator.curve.mean else None
    write_status(
        run_dir, "done", started=start, steps=int(model.num_timesteps), budget=int(spec.steps),
        seconds=round(time.time() - start, 3),
        final_mean_return=final if final is not None and math.isfinite(final) else None,
        collapse_steps=cbs.collapse.collapse_steps, fingerprint=spec.fingerprint(),
    )
    return RunResult(run_dir, policy_dir, cbs.evaluator.curve, model)


def _record_failure(run_dir: Path, exc: BaseException, **fields: Any) -> None:
    """``status.json`` says ``failed`` and why; if even that cannot be written (a full disk), say so in the
    log and let the original error through (the status then reads as a dead run's)."""
    try:
        write_status(run_dir, "failed", error=f"{type(exc).__name__}: {exc}", **fields)
    except OSError as write_error:
        logger.warning("%s: could not record the failure in status.json (%s)", run_dir, write_error)


def _save_policy(spec: RunSpec, model: BaseAlgorithm, venv: VecEnv, run_dir: Path, cbs: Callbacks) -> Path:
    from rltransfer.bundle import save_bundle

    schedule = cbs.stateful.get("curriculum")
    return save_bundle(
        model, run_dir / "policy", family=spec.env.family, params=spec.env.params, seed=spec.seed,
        vec_normalize=venv if isinstance(venv, VecNormalize) else None,
        wrappers=[w.to_wrapper_spec() for w in spec.env.wrappers],
        randomization=spec.env.randomization_name, variant=spec.env.variant,
        extra={"training_wrappers": [w.model_dump() for w in spec.env.training_wrappers]},
        curriculum=schedule.to_dict() if schedule is not None else None,
    )


def _interrupted(spec: RunSpec, model: BaseAlgorithm, venv: VecEnv, run_dir: Path, cbs: Callbacks,
                 start: float) -> None:
    """After Ctrl-C: a final checkpoint and a loadable policy (if the weights are finite), then the status."""
    saved: dict[str, Any] = {}
    try:
        check_finite_weights(model)
        saved["checkpoint"] = str(cbs.checkpointer.save_now())
        saved["policy"] = str(_save_policy(spec, model, venv, run_dir, cbs))
    except DivergenceError as exc:
        saved["error"] = str(exc)
    write_status(run_dir, "interrupted", started=start, steps=int(model.num_timesteps), **saved)


def _first_line(exc: BaseException, limit: int = 200) -> str:
    text = (str(exc).splitlines() or [""])[0]
    return text if len(text) <= limit else text[: limit - 3] + "..."


def resume(run_dir: str | Path, progress: bool = False) -> RunResult:
    """Continue a run from its last checkpoint: same spec (from ``config.yaml``), step count, schedules,
    statistics and callback states.

    Raises:
        ConfigError: the directory is not a run, is finished or alive, or has no checkpoint.
    """
    from rltransfer.checkpoints import latest_checkpoint
    from rltransfer.rundir import run_state

    run_dir = Path(run_dir)
    state = run_state(run_dir)
    if state == "done":
        raise ConfigError(f"{run_dir}: the run is finished; nothing to resume")
    if state == "alive":
        data = read_status(run_dir)
        raise ConfigError(f"{run_dir}: the run is alive (pid {data.get('pid')} on {data.get('host')!r})")
    spec = load_spec(run_dir / "config.yaml")
    checkpoint = latest_checkpoint(run_dir / "checkpoints")
    if checkpoint is None:
        raise ConfigError(
            f"{run_dir}: no checkpoint to resume from (train with --save-freq N to write checkpoints)"
        )
    return execute(spec, run_dir, progress=progress, from_checkpoint=checkpoint)


# ------------------------------------------------------------------------------------------ builders


def _run_dir(out: str | Path, name: str | None, spec: RunSpec) -> Path:
    from rltransfer.errors import ConfigError as _ConfigError

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise _ConfigError(f"--out {out}: exists and is not a directory")
    run = out / (name or run_name(spec.env.family.name, spec.label or spec.agent.name, spec.seed))
    if name is not None and (Path(name).is_absolute() or ".." in Path(name).parts or len(Path(name).parts) != 1):
        raise _ConfigError(f"--name {name!r}: must be a plain folder name inside --out (no '/', no '..')")
    return run


def train(
    env: str | Path | EnvFamily,
    agent: str | Path | AgentSpec,
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
    training_wrappers: Sequence[Any] = (),
    callbacks: Sequence[BaseCallback] = (),
    listeners: Sequence[EvalListener] = (),
    curriculum: Any = None,
    save_freq: int | None = None,
    randomize: str | Path | None = None,
    variant: str | None = None,
    strict: bool = False,
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
        training_wrappers: wrappers of the training envs only (not reproduced by evaluation or transfer).
        callbacks: extra SB3 callbacks.
        listeners: functions called with ``(step, mean_return)`` after each evaluation.
        curriculum: a curriculum name, YAML path or :class:`~rltransfer.curricula.Curriculum`.
        save_freq: write a checkpoint every this many env steps (resumable with :func:`resume`).
        randomize: a domain-randomization preset of the family by name (``"dr"``) or a preset YAML file,
            for the training envs only.
        variant: a variant of the family by name (``"real"``): its params and sensors, kept at evaluation.
        strict: a budget at or below an off-policy agent's ``learning_starts`` (nothing would be trained)
            is a :class:`~rltransfer.errors.ConfigError` before anything runs, not a
            :class:`~rltransfer.training.BudgetWarning`.
    """
    from rltransfer.training import check_learning_starts

    spec = train_spec(env, agent, params, steps, seed, eval_freq, eval_episodes, device, threads,
                      training_wrappers=training_wrappers, curriculum=curriculum,
                      checkpoints=checkpoint_spec(save_freq), randomize=randomize, variant=variant)
    check_learning_starts(spec.agent, spec.steps, strict=strict,
                          where=f"training {spec.agent.name} on {spec.env.family.name!r}")
    return execute(spec, _run_dir(out, name, spec), progress, command, callbacks, listeners)


def transfer(
    source: Any,
    env: str | Path | EnvFamily,
    params: dict[str, float] | None = None,
    strategy: Any = "finetune",
    options: dict[str, Any] | None = None,
    agent: str | AgentSpec | None = None,
    algo: str | None = None,
    steps: int | None = None,
    seed: int = 0,
    out: str | Path = "runs",
    name: str | None = None,
    eval_freq: int | None = None,
    eval_episodes: int | None = None,
    obs_map: Any = None,
    action_map: Any = None,
    wrappers: Sequence[Any] = (),
    progress: bool = False,
    threads: int | None = 1,
    callbacks: Sequence[BaseCallback] = (),
    listeners: Sequence[EvalListener] = (),
    command: str | None = None,
    save_freq: int | None = None,
    randomize: str | Path | None = None,
    variant: str | None = None,
    curriculum: Any = None,
    device: str = "cpu",
    strict: bool = False,
) -> Any:
    """Transfer a saved policy into an agent for a target env family and train it.

    Args:
        source: an rltransfer bundle or run directory, or any SB3 zip (e.g. from the RL Zoo), or a loaded policy.
        env: target family name, YAML path or :class:`EnvFamily`.
        params: target parameter overrides.
        strategy: a strategy name (:data:`rltransfer.transfer.STRATEGIES`) or a ``StrategySpec``.
        options: strategy options, when ``strategy`` is a name.
        agent: target agent name/spec (default: the shipped config of the target algorithm for the family).
        algo: target algorithm (default: the source's; A2C <-> PPO allowed).
        steps: training steps on the target (default: the agent's ``n_timesteps``).
        obs_map: per target observation feature, the source index or feature name or None (new); or
            ``"auto"`` to match feature names (needed for smaller or reordered observations).
        action_map: target action index -> source index or None.
        wrappers: extra target wrappers beyond the source's (e.g. ``TimeFeatureWrapper`` adds a feature).
        callbacks, listeners: extra SB3 callbacks, and functions called with ``(step, mean_return)`` after each
            evaluation.
        save_freq: write a checkpoint every this many env steps.
        randomize: a domain-randomization preset of the target family (or a preset YAML file) for the
            target's training envs only.
        variant: a variant of the target family (``"real"``): its params (``params`` override them) and
            sensors, kept at evaluation.
        curriculum: train the target with this curriculum (name, YAML path or
            :class:`~rltransfer.curricula.Curriculum`).
        device: torch device of the target model.
        strict: a budget at or below the target agent's ``learning_starts`` is an error, not a warning.

    Returns:
        A :class:`~rltransfer.transfer.TransferResult`: the run and the transfer plan.
    """
    from rltransfer.transfer import TransferPlan, TransferResult, transfer_spec

    spec = transfer_spec(source, env, params, strategy, options, agent, algo, steps, seed, eval_freq,
                         eval_episodes, obs_map, action_map, wrappers, threads,
                         checkpoints=checkpoint_spec(save_freq), strict=strict, device=device)
    spec = _with_target_randomization(spec, params, randomize, variant)
    if curriculum is not None:
        from rltransfer.spec import with_curriculum

        spec = with_curriculum(spec, curriculum)
    result = execute(spec, _run_dir(out, name, spec), progress, command, callbacks, listeners)
    from rltransfer.rundir import read_json

    plan = TransferPlan.from_dict(read_json(result.run_dir / "transfer_plan.json", "transfer plan"))
    return TransferResult(result.run_dir, result.policy_dir, result.curve, result.model, plan)


def _with_target_randomization(spec: RunSpec, params: dict[str, float] | None, randomize: str | Path | None,
                               variant: str | None) -> RunSpec:
    """``spec`` with a preset on its training envs and a variant (params overridden by ``params``, sensors
    kept at evaluation), as :func:`~rltransfer.spec.train_spec` applies them."""
    if randomize is None and variant is None:
        return spec
    from rltransfer.spec import with_randomization

    env = with_randomization(spec.env, params, randomize, variant)
    return spec.model_copy(update={"env": env, "eval": spec.eval.model_copy(update={"env": env.evaluation()})})


@dataclass
class PreparedTransfer:
    """A transfer target assembled but not trained (what :func:`execute` learns from): for inspection."""

    spec: RunSpec
    model: BaseAlgorithm
    plan: Any
    venv: VecEnv
    eval_env: VecEnv
    callbacks: list[BaseCallback]


def prepare_transfer(source: Any, env: Any, params: dict[str, float] | None = None, strategy: Any = "finetune",
                     options: dict[str, Any] | None = None, agent: Any = None, algo: str | None = None,
                     steps: int | None = None, seed: int = 0, out: Any = None, name: str | None = None,
                     eval_freq: int | None = None, eval_episodes: int | None = None, obs_map: Any = None,
                     action_map: Any = None, wrappers: Sequence[Any] = (), threads: int | None = 1,
                     device: str = "cpu") -> PreparedTransfer:
    """Everything :func:`transfer` does before learning (same arguments; ``out``/``name`` are ignored:
    nothing is written). The caller closes ``venv`` and ``eval_env``."""
    from rltransfer.transfer import transfer_spec

    spec = transfer_spec(source, env, params, strategy, options, agent, algo, steps, seed, eval_freq,
                         eval_episodes, obs_map, action_map, wrappers, threads, device=device)
    if spec.threads:
        torch.set_num_threads(spec.threads)
    set_random_seed(spec.seed)
    assembled = assemble(spec)
    return PreparedTransfer(spec, assembled.model, assembled.files["transfer_plan.json"], assembled.venv,
                            assembled.eval_env, assembled.callbacks)


def curve_of(run_dir: str | Path) -> EvalCurve:
    """The evaluation curve a run stored (``eval.npz``)."""
    return EvalCurve.load(Path(run_dir))
