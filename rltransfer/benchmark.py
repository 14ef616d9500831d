"""Transfer benchmark suites: the YAML model, its expansion into runs, the runner, and the analysis.

A suite (``benchmarks/<name>.yaml``) lists *pairs*: a source policy (trained from a spec, or an existing
bundle / SB3 zip) and a target task, plus the transfer strategies to compare with training from scratch.
:func:`run_suite` turns it into runs and executes them on an executor (:mod:`rltransfer.executors`)::

    out/
      suite.json                       the validated suite (what `rltransfer report` re-renders from)
      benchmark.json                   sessions: start, end, workers, backend, runs executed (wall time),
                                       written when a session starts and after every run it finishes
      sources/<config-hash>/           one run directory per distinct source training spec
      runs/<pair>/scratch/seed<k>/     the scratch arm: target agent with the source's architecture
      runs/<pair>/<strategy>/seed<k>/  each transfer arm (+ detection.json: the online detector)
      report.md, report.json, runs.csv, comparisons.csv, *.png, tb_summary/<pair>/

Caching and resume: every run directory gets ``task.json`` (the task's fingerprint, a hash of
everything that determines its result) when it starts, marked complete when it ends. A run whose
``status.json`` says done and whose ``task.json`` is complete with the same fingerprint is skipped;
anything else found in its place (a crash, a kill, a changed suite) is deleted and rerun. Sources come
first; each pair's scratch runs come before its transfer runs (the online detector compares with them).

Analysis (:func:`analyze`): per-run metrics from ``eval.npz`` (:func:`rltransfer.metrics.run_metrics`,
AUC normalized by the family's ``return_range``), per (pair, strategy, metric) differences with
bootstrap CIs, probability of improvement, Welch and Mann-Whitney p-values (Holm-adjusted across the
suite's pairs x strategies), and the verdict on normalized AUC by :func:`rltransfer.statistics.judge_suite`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import re
import shutil
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from rltransfer import resources
from rltransfer.config import (
    MAX_EVAL_EPISODES, MAX_NAME_CHARS, MAX_SEED, MAX_SEEDS, MAX_STEPS, Bounded, Float, Int, Seed, Strict,
    read_yaml, validate,
)
from rltransfer.limits import short_repr
from rltransfer.errors import ConfigError, RLTransferError, unknown_name
from rltransfer.rundir import atomic_write_json, read_json, read_status

__all__ = [
    "Analysis",
    "ArmResult",
    "DetectionSettings",
    "PairSpec",
    "RunRecord",
    "Suite",
    "SuiteResult",
    "Task",
    "analyze",
    "check_suite",
    "expand",
    "load_suite",
    "run_suite",
    "run_task",
    "scratch_owners",
    "stored_suite",
]

logger = logging.getLogger(__name__)

ROLES = ("useful", "planted_negative", "null", "other")
#: What each control role must come out as (checked in the report).
EXPECTED = {"useful": "positive", "planted_negative": "negative", "null": "not positive"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
SCRATCH = "scratch"


# ---------------------------------------------------------------------------------------------- the model


class EvalSpec(Strict):
    """Evaluation schedule: every ``freq`` environment steps (and at step 0), ``episodes`` episodes."""

    freq: Int = Field(ge=1, le=MAX_STEPS)
    episodes: Int = Field(default=5, ge=1, le=MAX_EVAL_EPISODES, description="episodes per evaluation (>= 1)")


class WrapperEntry(Strict):
    """A wrapper from :data:`rltransfer.wrappers.WRAPPERS` with keyword arguments."""

    name: str = Field(max_length=MAX_NAME_CHARS)
    kwargs: dict[str, Any] = Field(default_factory=dict, max_length=64)

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        from rltransfer.wrappers import WRAPPERS

        if v not in WRAPPERS:
            raise unknown_name("wrapper", v, WRAPPERS)
        return v


class TrainSource(Strict):
    """A source trained by the benchmark (once, cached by the hash of this resolved spec)."""

    env: str = Field(max_length=4096)
    agent: str = Field(default="ppo", max_length=4096)
    params: dict[str, Bounded] = Field(default_factory=dict, max_length=1000)
    steps: Int = Field(ge=0, le=MAX_STEPS, description="training steps; 0 = the untrained initialization (a null source)")
    seed: Seed = 0
    training_wrappers: list[WrapperEntry] = Field(
        default_factory=list, max_length=32,
        description="wrappers used while training the source only (planted corruptions)",
    )
    eval: EvalSpec | None = None

    @field_validator("training_wrappers", mode="before")
    @classmethod
    def _names(cls, v: Any) -> Any:
        if isinstance(v, list):
            return [{"name": w} if isinstance(w, str) else w for w in v]
        return v


class SourceSpec(Strict):
    """Where a pair's source policy comes from; exactly one key says which kind it is.

    * ``train: {...}``: a training spec (:class:`TrainSource`);
    * ``policy: PATH``: an rltransfer bundle, a run directory or any SB3 zip (relative to the suite file).

    Further kinds (sources trained with domain randomization or a curriculum) become further keys.
    """

    train: TrainSource | None = None
    policy: str | None = Field(default=None, max_length=4096)

    @model_validator(mode="after")
    def _one(self) -> SourceSpec:
        given = [k for k in ("train", "policy") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"a source needs exactly one of 'train' or 'policy', got {given or 'none'}")
        return self

    @property
    def kind(self) -> Literal["train", "policy"]:
        return "train" if self.train is not None else "policy"


class TargetSpec(Strict):
    """The target task: an env family and parameter overrides."""

    env: str = Field(max_length=4096)
    params: dict[str, Bounded] = Field(default_factory=dict, max_length=1000)


class StrategyEntry(Strict):
    """A transfer arm: a strategy from :data:`rltransfer.transfer.STRATEGIES` and its options.

    In YAML either a bare name (``finetune``) or
    ``{name: freeze, label: freeze1, options: {freeze_layers: 1}}``.
    """

    name: str = Field(max_length=MAX_NAME_CHARS)
    label: str | None = Field(default=None, max_length=MAX_NAME_CHARS)
    options: dict[str, Any] = Field(default_factory=dict, max_length=64)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        return {"name": v} if isinstance(v, str) else v

    @model_validator(mode="after")
    def _check(self) -> StrategyEntry:
        from rltransfer.transfer import parse_strategy

        parse_strategy(self.name, self.options)  # unknown names get "Did you mean", bad options are errors
        if self.label is not None and not _NAME.match(self.label):
            raise ValueError(f"label {short_repr(self.label)} must be letters, digits, '_', '-' or '.'")
        return self

    @property
    def arm(self) -> str:
        return self.label or self.name


class PairSpec(Strict):
    """One source -> target pair and the strategies compared with scratch on it."""

    name: str = Field(max_length=MAX_NAME_CHARS)
    source: SourceSpec
    target: TargetSpec
    strategies: list[StrategyEntry] = Field(min_length=1, max_length=64)
    agent: str | None = Field(
        default=None, max_length=4096, description="target agent (name or YAML path); default: shipped"
    )
    role: Literal[ROLES] = "other"  # type: ignore[valid-type]
    description: str = ""
    budget: Int | None = Field(default=None, ge=1, le=MAX_STEPS, description="overrides the suite's budget for this pair")
    eval: EvalSpec | None = None
    threshold: Bounded | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError(f"pair name {short_repr(v)} must be letters, digits, '_', '-' or '.' (it names a folder)")
        return v

    @field_validator("role", mode="before")
    @classmethod
    def _null_role(cls, v: Any) -> Any:
        return "null" if v is None else v  # YAML `role: null` parses as None

    @model_validator(mode="after")
    def _arms(self) -> PairSpec:
        arms = [s.arm for s in self.strategies]
        dup = sorted({a for a in arms if arms.count(a) > 1})
        if dup:
            raise ValueError(f"strategies {short_repr(dup)} appear twice; give each a distinct 'label'")
        if SCRATCH in arms:
            raise ValueError(f"'{SCRATCH}' is the from-scratch arm; pick another label")
        return self


class MetricsSettings(Strict):
    last_k: Int = Field(default=3, ge=1, le=10_000, description="evaluations averaged for asymptotic performance")


class DetectionSettings(Strict):
    """The online negative-transfer detector on transfer arms (see :mod:`rltransfer.detection`).

    ``action``: ``warn`` (runs continue; the report says what stopping would have saved), ``stop`` (the
    run stops at the alarm; its last evaluation is held to the budget for the metrics), ``fallback``
    (stop, then train from scratch for the rest of the budget in ``fallback/``; the arm's curve is the
    transfer curve up to the alarm followed by the fallback's).
    """

    enable: bool = True
    action: Literal["warn", "stop", "fallback"] = "warn"
    min_evals: Int = Field(default=3, ge=1, le=10_000)
    confidence: Float = Field(default=0.975, gt=0.5, lt=1.0, description="one-sided, in (0.5, 1)")
    patience: Int = Field(default=4, ge=1, le=10_000, description="consecutive worse evaluations before an alarm")
    margin: Float = Field(default=0.0, ge=0.0, lt=1.0, description="fraction of the return range")
    window: Int = Field(default=1, ge=1, le=10_000, description="evaluations averaged on both sides")


class Suite(Strict):
    """A benchmark suite (``benchmarks/<name>.yaml``)."""

    name: str = Field(max_length=MAX_NAME_CHARS)
    description: str = ""
    seeds: Int | list[Seed] = Field(
        description=f"number of seeds (0..n-1, n in [1, {MAX_SEEDS}]) or an explicit list of at most {MAX_SEEDS} "
        f"distinct seeds in [0, {MAX_SEED}]"
    )
    budget: Int = Field(ge=1, le=MAX_STEPS, description="training steps of every target run")
    eval: EvalSpec
    threshold: Bounded | None = Field(default=None, description="success threshold (default: the family's)")
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    detection: DetectionSettings = Field(default_factory=DetectionSettings)
    min_seeds: Int = Field(default=3, ge=2, le=MAX_SEEDS)
    alpha: Float = Field(default=0.05, gt=0.0, lt=1.0)
    pairs: list[PairSpec] = Field(min_length=1, max_length=1000)
    source_file: str = Field(default="", exclude=True)

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: int | list[int]) -> int | list[int]:
        if isinstance(v, int) and not 1 <= v <= MAX_SEEDS:
            raise ValueError(f"seeds must be a count in [1, {MAX_SEEDS}] or a list, got {short_repr(v)}")
        if isinstance(v, list) and (not v or len(v) > MAX_SEEDS or len(set(v)) != len(v)):
            raise ValueError(
                f"seeds must be a non-empty list of at most {MAX_SEEDS} distinct integers, got {short_repr(v)}"
            )
        return v

    @model_validator(mode="after")
    def _unique(self) -> Suite:
        names = [p.name for p in self.pairs]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"pair names must be unique, got {short_repr(dup)} more than once")
        return self

    @property
    def seed_list(self) -> list[int]:
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)

    def budget_of(self, pair: PairSpec) -> int:
        return pair.budget or self.budget

    def eval_of(self, pair: PairSpec) -> EvalSpec:
        return pair.eval or self.eval

    def pair(self, name: str) -> PairSpec:
        for p in self.pairs:
            if p.name == name:
                return p
        raise unknown_name("pair", name, [p.name for p in self.pairs], where=self.source_file)


def _resolve_path(value: str, base: Path) -> str:
    """A path relative to the suite file's folder (names without a suffix or a slash stay names)."""
    p = Path(value).expanduser()
    if p.suffix or p.parent != Path("."):
        return str(p if p.is_absolute() else (base / p).resolve())
    return value


def load_suite(name_or_path: str | Path) -> Suite:
    """Load and check a suite by shipped name (``quick``) or YAML path.

    Everything is checked before anything runs: keys (unknown ones are errors naming the file and key
    path), strategy names and options, env families, parameter bounds, agents, wrappers, policy paths.

    Raises:
        ConfigError: with the file, the key path and what would be valid.
    """
    path = resources.find("benchmarks", name_or_path)
    suite: Suite = validate(Suite, read_yaml(path), str(path))
    suite.source_file = str(path)
    base = Path(path).resolve().parent
    for pair in suite.pairs:
        if pair.agent is not None:
            pair.agent = _resolve_path(pair.agent, base)
        if pair.source.train is not None:
            pair.source.train.agent = _resolve_path(pair.source.train.agent, base)
        if pair.source.policy is not None:
            pair.source.policy = _resolve_path(pair.source.policy, base)
    check_suite(suite)
    return suite


def check_suite(suite: Suite) -> None:
    """Resolve every name the suite uses (families, agents, parameters, policy files)."""
    from rltransfer.config import load_agent, load_family

    where = suite.source_file or suite.name
    for i, pair in enumerate(suite.pairs):
        loc = f"{where}: pairs.{i} ({pair.name})"
        try:
            family = load_family(pair.target.env)
        except RLTransferError as exc:
            raise ConfigError(f"{loc}.target.env: {exc}") from None
        try:
            family.resolve_params(pair.target.params)
        except RLTransferError as exc:
            raise ConfigError(f"{loc}.target.params: {exc}") from None
        if suite.threshold is None and pair.threshold is None and family.success_threshold is None:
            raise ConfigError(
                f"{loc}: no success threshold: family {family.name!r} has none; set 'threshold'"
            )
        if pair.agent is not None:
            try:
                load_agent(pair.agent, family.name)
            except RLTransferError as exc:
                raise ConfigError(f"{loc}.agent: {exc}") from None
        train = pair.source.train
        if train is not None:
            try:
                src_family = load_family(train.env)
            except RLTransferError as exc:
                raise ConfigError(f"{loc}.source.train.env: {exc}") from None
            try:
                src_family.resolve_params(train.params)
            except RLTransferError as exc:
                raise ConfigError(f"{loc}.source.train.params: {exc}") from None
            try:
                load_agent(train.agent, src_family.name)
            except RLTransferError as exc:
                raise ConfigError(f"{loc}.source.train.agent: {exc}") from None
        elif pair.source.policy is not None and not Path(pair.source.policy).exists():
            raise ConfigError(f"{loc}.source.policy: {pair.source.policy} does not exist")


# ------------------------------------------------------------------------------------------------ tasks


@dataclass(frozen=True)
class Task:
    """One run of a benchmark, as data a worker process can receive.

    Attributes:
        kind: ``source``, ``scratch`` or ``transfer``.
        key: ``sources/<hash>`` or ``runs/<pair>/<arm>/seed<k>`` (also its folder under the output).
        run_dir: absolute path of the run directory.
        fingerprint: hash of everything that determines the run's result.
        spec: what the worker needs (JSON-able).
        deps: keys of the tasks that must be done first.
        pair, arm, seed: where it belongs (``None`` for sources).
    """

    kind: Literal["source", "scratch", "transfer"]
    key: str
    run_dir: str
    fingerprint: str
    spec: dict[str, Any]
    deps: tuple[str, ...] = ()
    pair: str | None = None
    arm: str | None = None
    seed: int | None = None


def _hash(data: Any, n: int = 12) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def _file_hash(path: Path) -> str:
    """Content hash of a policy source (a zip, or a bundle's manifest, which lists its files' hashes)."""
    p = Path(path)
    for candidate in (p / "manifest.json", p / "policy" / "manifest.json", p):
        if candidate.is_file():
            return hashlib.sha256(candidate.read_bytes()).hexdigest()[:12]
    return _hash(str(p))


def source_spec(train: TrainSource) -> dict[str, Any]:
    """The resolved training spec of a source: what its config hash covers."""
    from rltransfer.config import load_agent, load_family

    family = load_family(train.env)
    agent = load_agent(train.agent, family.name)
    freq = train.eval.freq if train.eval else max(1, train.steps // 5)
    episodes = train.eval.episodes if train.eval else 5
    return {
        "env": {"family": family.name, "gym_id": family.gym_id, "adapter": family.adapter,
                "make_kwargs": family.make_kwargs, "params": family.resolve_params(train.params)},
        "env_ref": train.env,
        "agent": agent.model_dump(mode="json", exclude_none=True),
        "agent_ref": train.agent,
        "steps": train.steps,
        "seed": train.seed,
        "training_wrappers": [w.model_dump() for w in train.training_wrappers],
        "eval": {"freq": freq, "episodes": episodes},
    }


def scratch_identity(suite: Suite, pair: PairSpec) -> str:
    """What a pair's scratch runs depend on: target task, target agent, budget, evaluation, and the parts of
    the source that :func:`rltransfer.transfer.target_agent` takes (algorithm, architecture, normalization,
    wrappers, gSDE), which for a trained source are all in its agent spec. Pairs with the same identity
    would train identical scratch runs, so they share one set."""
    from rltransfer.config import load_agent, load_family

    family = load_family(pair.target.env)
    if pair.source.train is not None:
        src_agent = source_spec(pair.source.train)["agent"]
        source_part: Any = {k: v for k, v in src_agent.items() if k not in ("n_timesteps", "eval", "name")}
        algo = src_agent["algo"]
        target = load_agent(pair.agent or algo, family.name).model_dump(mode="json", exclude_none=True)
    else:
        source_part, target = _file_hash(Path(str(pair.source.policy))), pair.agent
    ev = suite.eval_of(pair)
    return _hash({"family": [family.gym_id, family.adapter, family.make_kwargs],
                  "params": family.resolve_params(pair.target.params), "source": source_part, "agent": target,
                  "budget": suite.budget_of(pair), "eval": [ev.freq, ev.episodes]})


def scratch_owners(suite: Suite) -> dict[str, str]:
    """``{pair: pair whose scratch runs it uses}``: the first pair with the same :func:`scratch_identity`."""
    first: dict[str, str] = {}
    owners: dict[str, str] = {}
    for pair in suite.pairs:
        owners[pair.name] = first.setdefault(scratch_identity(suite, pair), pair.name)
    return owners


def expand(suite: Suite, out: str | Path) -> list[Task]:
    """All the runs of a suite, in a good order to start them: sources, then scratch runs, then transfers.

    Sources with the same resolved training spec are one task, shared by every pair that uses them; so
    are scratch runs with the same :func:`scratch_identity` (they live under the first such pair).
    """
    out = Path(out).resolve()
    tasks: list[Task] = []
    sources: dict[str, Task] = {}
    scratch: list[Task] = []
    transfers: list[Task] = []
    owners = scratch_owners(suite)
    for pair in suite.pairs:
        if pair.source.train is not None:
            spec = source_spec(pair.source.train)
            fp = _hash({k: v for k, v in spec.items() if not k.endswith("_ref")})
            key = f"sources/{fp}"
            if key not in sources:
                sources[key] = Task("source", key, str(out / key), fp, spec)
            source_path, source_fp, deps = str(out / key / "policy"), fp, (key,)
        else:
            if pair.source.policy is None:  # pragma: no cover - SourceSpec's validator guarantees one kind
                raise ConfigError(f"pair {pair.name!r} has no source")
            source_path, source_fp, deps = pair.source.policy, _file_hash(Path(pair.source.policy)), ()
        ev = suite.eval_of(pair)
        common = {
            "pair": pair.name, "source": source_path, "source_fingerprint": source_fp,
            "target_env": pair.target.env, "target_params": dict(pair.target.params), "agent": pair.agent,
            "budget": suite.budget_of(pair), "eval": {"freq": ev.freq, "episodes": ev.episodes},
        }
        owner = owners[pair.name]
        scratch_keys = [f"runs/{owner}/{SCRATCH}/seed{seed}" for seed in suite.seed_list]
        if owner == pair.name:
            for seed, key in zip(suite.seed_list, scratch_keys):
                spec = {**common, "seed": seed}
                fp = _hash({k: v for k, v in spec.items() if k != "source"})
                scratch.append(Task("scratch", key, str(out / key), fp, spec, deps, pair.name, SCRATCH, seed))
        det = suite.detection
        for strat in pair.strategies:
            for seed in suite.seed_list:
                key = f"runs/{pair.name}/{strat.arm}/seed{seed}"
                spec = {**common, "seed": seed, "strategy": {"name": strat.name, "options": strat.options},
                        "detection": det.model_dump() if det.enable else None,
                        "reference": [str(out / k) for k in scratch_keys] if det.enable else []}
                fp = _hash({k: v for k, v in spec.items() if k not in ("source", "reference")})
                t_deps = deps + (tuple(scratch_keys) if det.enable else ())
                transfers.append(
                    Task("transfer", key, str(out / key), fp, spec, t_deps, pair.name, strat.arm, seed)
                )
    tasks.extend(sources.values())
    tasks.extend(scratch)
    tasks.extend(transfers)
    return tasks


# ----------------------------------------------------------------------------------------- running one


TASK_FILE = "task.json"
DETECTION_FILE = "detection.json"


def is_done(task: Task) -> bool:
    """Whether ``task``'s run directory holds its finished run (same fingerprint, marked complete)."""
    run_dir = Path(task.run_dir)
    if read_status(run_dir).get("status") != "done":
        return False
    try:
        info = read_json(run_dir / TASK_FILE, "task record")
    except (OSError, ValueError):
        return False
    return isinstance(info, dict) and bool(info.get("complete")) and info.get("fingerprint") == task.fingerprint


def _mark(task: Task, complete: bool, **extra: Any) -> None:
    atomic_write_json(Path(task.run_dir) / TASK_FILE, {
        "fingerprint": task.fingerprint, "complete": complete, "kind": task.kind, "key": task.key,
        "pair": task.pair, "arm": task.arm, "seed": task.seed, "spec": task.spec, **extra,
    })


def _command(task: Task) -> str:
    return f"rltransfer benchmark (task {task.key}, fingerprint {task.fingerprint})"


def run_task(task: Task) -> dict[str, Any]:
    """Run one task in this process (the function executors call); returns a small summary.

    The run directory is cleared first (whatever is there is unfinished or stale), then written as
    every run directory is, plus ``task.json`` (and ``detection.json`` for transfer arms).
    """
    from rltransfer.detection import NegativeTransferWarning

    start = time.time()
    run_dir = Path(task.run_dir)
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    _mark(task, complete=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NegativeTransferWarning)
        if task.kind == "source":
            extra = _run_source(task)
        elif task.kind == "scratch":
            extra = _run_scratch(task)
        else:
            extra = _run_transfer(task)
    seconds = round(time.time() - start, 3)
    _mark(task, complete=True, seconds=seconds)
    return {"key": task.key, "seconds": seconds, **extra}


def _run_source(task: Task) -> dict[str, Any]:
    from rltransfer.environments import WrapperSpec
    from rltransfer.training import train

    s = task.spec
    run_dir = Path(task.run_dir)
    if s["steps"] == 0:
        return _untrained_source(task)
    result = train(
        s["env_ref"], s["agent_ref"], params=s["env"]["params"], steps=s["steps"], seed=s["seed"],
        out=run_dir.parent, name=run_dir.name, eval_freq=s["eval"]["freq"],
        eval_episodes=s["eval"]["episodes"], threads=1, command=_command(task),
        training_wrappers=[WrapperSpec(w["name"], dict(w["kwargs"])) for w in s["training_wrappers"]],
    )
    return {"final_mean": result.final_mean}


def _untrained_source(task: Task) -> dict[str, Any]:
    """A ``steps: 0`` source: the agent's freshly initialized network, saved as a bundle (null source)."""
    import torch
    from stable_baselines3.common.utils import set_random_seed
    from stable_baselines3.common.vec_env import VecNormalize

    from rltransfer.bundle import save_bundle
    from rltransfer.config import load_agent, load_family
    from rltransfer.environments import WrapperSpec, make_vec_env
    from rltransfer.rundir import versions, write_config, write_status
    from rltransfer.training import build_model, wrap_normalization

    s = task.spec
    run_dir = Path(task.run_dir)
    family = load_family(s["env_ref"])
    spec = load_agent(s["agent_ref"], family.name)
    torch.set_num_threads(1)
    set_random_seed(s["seed"])
    wrappers = tuple(WrapperSpec(w) for w in spec.wrappers)
    venv = make_vec_env(family, s["env"]["params"], spec.n_envs, s["seed"], "dummy", wrappers)
    venv = wrap_normalization(venv, spec)
    model = build_model(spec, venv, s["seed"])
    save_bundle(model, run_dir / "policy", family=family, params=s["env"]["params"], seed=s["seed"],
                vec_normalize=venv if isinstance(venv, VecNormalize) else None, wrappers=wrappers)
    venv.close()
    write_config(run_dir, {"untrained_source": s, "versions": versions()}, _command(task))
    write_status(run_dir, "done", steps=0, seconds=0.0)
    return {"final_mean": None}


def _target(task: Task) -> tuple[Any, Any, Any]:
    """(loaded source, target family, target agent spec with the source's architecture)."""
    from rltransfer.bundle import load_policy
    from rltransfer.config import load_family
    from rltransfer.transfer import target_agent

    s = task.spec
    loaded = load_policy(s["source"])
    family = load_family(s["target_env"])
    return loaded, family, target_agent(loaded, family, agent=s["agent"])


def _run_scratch(task: Task) -> dict[str, Any]:
    from rltransfer.training import train

    s = task.spec
    _, family, spec = _target(task)
    run_dir = Path(task.run_dir)
    result = train(
        family, spec, params=s["target_params"], steps=s["budget"], seed=s["seed"], out=run_dir.parent,
        name=run_dir.name, eval_freq=s["eval"]["freq"], eval_episodes=s["eval"]["episodes"], threads=1,
        command=_command(task),
    )
    return {"final_mean": result.final_mean}


def _reference(dirs: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Scratch curves as ``(steps (n,), returns (n_seeds, n))``, on the first seed's evaluation steps."""
    from rltransfer.training import EvalCurve

    curves = [EvalCurve.load(Path(d)) for d in dirs]
    steps = np.asarray(curves[0].steps, dtype=float)
    rows = [np.interp(steps, np.asarray(c.steps, dtype=float), np.asarray(c.mean, dtype=float))
            for c in curves]
    return steps, np.vstack(rows)


def _run_transfer(task: Task) -> dict[str, Any]:
    from rltransfer.detection import CurveComparator, NegativeTransferCallback
    from rltransfer.training import train
    from rltransfer.transfer import transfer

    s = task.spec
    run_dir = Path(task.run_dir)
    loaded, family, spec = _target(task)
    det = s.get("detection")
    callbacks: list[Any] = []
    listeners: list[Any] = []
    detector: NegativeTransferCallback | None = None
    record: dict[str, Any] = {"enabled": False}

    if det is not None and s.get("reference"):
        ref_steps, ref_returns = _reference(s["reference"])
        comparator = CurveComparator(
            ref_steps, ref_returns, min_evals=det["min_evals"], margin=det["margin"],
            task_range=tuple(family.return_range), confidence=det["confidence"], patience=det["patience"],
            window=det["window"],
        )
        detector = NegativeTransferCallback(comparator, action=det["action"])
        record = {"enabled": True, "action": det["action"], "budget": s["budget"],
                  "reference_seeds": len(ref_returns), "settings": det, "alarm_step": None, "steps_saved": 0,
                  "would_save": 0, "evaluations": []}

        def listen(step: int, mean: float, d: NegativeTransferCallback = detector) -> None:
            if d.comparator.last_step is not None and step <= d.comparator.last_step:
                return  # the final evaluation of a run stopped at its alarm repeats nothing new
            state = d.on_evaluation(step, mean)
            record["evaluations"].append({"step": state.step, "gap": state.gap,
                                          "prob_worse": _finite(state.prob_worse), "worse": state.worse,
                                          "alarm": state.alarm})
            record["alarm_step"] = d.alarm_step
            if d.alarm_step is not None:
                record["would_save"] = max(0, int(s["budget"]) - int(d.alarm_step))
                record["steps_saved"] = d.steps_saved(int(s["budget"])) if d.action == "stop" else 0
            atomic_write_json(run_dir / DETECTION_FILE, record)

        callbacks.append(detector)
        listeners.append(listen)
    atomic_write_json(run_dir / DETECTION_FILE, record)
    result = transfer(
        loaded, family, params=s["target_params"], strategy=s["strategy"]["name"],
        options=s["strategy"]["options"], agent=spec, steps=s["budget"], seed=s["seed"], out=run_dir.parent,
        name=run_dir.name, eval_freq=s["eval"]["freq"], eval_episodes=s["eval"]["episodes"], threads=1,
        callbacks=callbacks, listeners=listeners, command=_command(task),
    )
    alarm = detector.alarm_step if detector is not None else None
    if alarm is not None and det is not None and det["action"] == "fallback":
        rest = int(s["budget"]) - int(alarm)
        if rest > 0:
            fb = train(family, spec, params=s["target_params"], steps=rest, seed=s["seed"], out=run_dir,
                       name="fallback", eval_freq=s["eval"]["freq"], eval_episodes=s["eval"]["episodes"],
                       threads=1, command=_command(task) + " (fallback from scratch)")
            record["fallback"] = {"steps": rest, "run_dir": "fallback", "final_mean": fb.final_mean}
        atomic_write_json(run_dir / DETECTION_FILE, record)
    return {"final_mean": result.final_mean, "alarm_step": record.get("alarm_step")}


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


# ------------------------------------------------------------------------------------------- the runner


@dataclass
class SuiteResult:
    """What :func:`run_suite` did and where the report is.

    Attributes:
        out: the benchmark folder.
        report: path of ``report.md``.
        verdicts: ``{(pair, arm): label}``.
        executed: runs executed in this session; ``skipped``: runs found done; ``failed``: ``{key: error}``.
        wall_time: seconds this session took.
    """

    out: Path
    report: Path
    verdicts: dict[tuple[str, str], str]
    executed: int
    skipped: int
    failed: dict[str, str]
    wall_time: float
    analysis: Analysis | None = None


@contextlib.contextmanager
def _lock(out: Path) -> Iterator[None]:
    """One benchmark process per output folder (an advisory lock, released when the process dies)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    fh = open(out / ".lock", "w")  # noqa: SIM115 - held for the duration
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise ConfigError(f"{out} is in use by another `rltransfer benchmark` process") from None
        yield
    finally:
        fh.close()


def save_suite(suite: Suite, out: Path) -> None:
    """Write the validated suite to ``out/suite.json`` (what reports are rendered from)."""
    atomic_write_json(out / "suite.json", {"source_file": suite.source_file, **suite.model_dump(mode="json")})


def stored_suite(out: str | Path) -> Suite:
    """The suite a benchmark folder was run with (``suite.json``)."""
    path = Path(out) / "suite.json"
    if not path.is_file():
        raise ConfigError(f"{out}: not a benchmark folder (no suite.json); run `rltransfer benchmark` first")
    data = read_json(path, "stored suite")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object")
    source = str(data.pop("source_file", ""))[:1000]
    suite: Suite = validate(Suite, data, str(path))
    suite.source_file = source
    return suite


def _dependents_blocked(tasks: list[Task], failed: set[str]) -> set[str]:
    blocked = set(failed)
    changed = True
    while changed:
        changed = False
        for t in tasks:
            if t.key not in blocked and any(d in blocked for d in t.deps):
                blocked.add(t.key)
                changed = True
    return blocked - failed


def run_suite(
    suite: str | Path | Suite,
    out: str | Path,
    workers: int = 2,
    backend: str = "local",
    address: str | None = None,
    progress: bool = True,
) -> SuiteResult:
    """Run a suite (resuming whatever is already done in ``out``) and write its report.

    Args:
        suite: a :class:`Suite`, a shipped suite name (``"quick"``) or a YAML path.
        out: the benchmark folder.
        workers: runs in flight at once.
        backend: ``"local"`` (process pool) or ``"ray"``.
        address: Ray cluster address (``"auto"``), for ``backend="ray"``.
        progress: show a progress bar over runs (on stderr).

    Returns:
        A :class:`SuiteResult`. Runs that failed are listed there (their dependents are not run); the
        report covers what finished.

    Raises:
        KeyboardInterrupt: after stopping the workers; finished runs are kept, rerun to resume.
    """
    from rltransfer.executors import check_backend, make_executor

    check_backend(backend, address)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers must be a positive integer, got {workers!r}")
    if not isinstance(suite, Suite):
        suite = load_suite(suite)
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    with _lock(out):
        save_suite(suite, out)
        tasks = expand(suite, out)
        by_key = {t.key: t for t in tasks}
        done = {t.key for t in tasks if is_done(t)}
        todo = [t for t in tasks if t.key not in done]
        failed: dict[str, str] = {}
        executed = 0
        session: dict[str, Any] = {
            "start": started, "end": started, "seconds": 0.0, "complete": False, "workers": workers,
            "backend": backend, "runs_total": len(tasks), "runs_skipped": len(done), "runs_executed": 0,
            "runs_failed": 0,
        }
        index = _append_session(out, session)

        def record(**final: Any) -> None:  # rewritten as the session goes: a killed session still counts
            now = time.time()
            session.update(end=now, seconds=round(now - started, 3), runs_executed=executed,
                           runs_failed=len(failed), **final)
            _update_session(out, index, session)

        bar = _Progress(len(tasks), len(done), enabled=progress)
        interrupted = False
        try:
            with bar, make_executor(backend, workers, address) as ex:
                running: dict[Any, str] = {}
                pending = list(todo)
                while pending or running:
                    blocked = _dependents_blocked(tasks, set(failed))
                    pending = [t for t in pending if t.key not in blocked]
                    for t in list(pending):
                        if len(running) >= workers:
                            break
                        if all(d in done for d in t.deps):
                            running[ex.submit(run_task, t)] = t.key
                            pending.remove(t)
                    bar.show([running[h] for h in running])
                    if not running:
                        break
                    finished = ex.wait(list(running), timeout=SESSION_REFRESH)
                    for handle in finished:
                        key = running.pop(handle)
                        try:
                            ex.result(handle)
                            done.add(key)
                            executed += 1
                        except Exception as exc:  # noqa: BLE001 - a failed run is reported, others go on
                            failed[key] = f"{type(exc).__name__}: {exc}"
                            logger.error("run %s failed: %s", key, failed[key])
                        bar.advance()
                    record()
                for key in _dependents_blocked(tasks, set(failed)):
                    deps_txt = ", ".join(by_key[key].deps)
                    failed.setdefault(key, f"not run: a run it depends on failed ({deps_txt})")
        except KeyboardInterrupt:
            interrupted = True
            raise
        finally:
            record(complete=True, interrupted=interrupted)
    from rltransfer.report import write_report

    analysis = write_report(out)
    verdicts = {(r.pair, r.arm): r.label for r in analysis.results}
    return SuiteResult(out, out / "report.md", verdicts, executed, len(tasks) - len(todo), failed,
                       time.time() - started, analysis)


#: Seconds between two rewrites of the running session's record while no run finishes.
SESSION_REFRESH = 30.0


def _read_sessions(out: Path) -> dict[str, Any]:
    path = out / "benchmark.json"
    data: dict[str, Any] = {"sessions": []}
    if path.is_file():
        with contextlib.suppress(OSError, ValueError):
            loaded = read_json(path)
            if isinstance(loaded, dict) and isinstance(loaded.get("sessions"), list):
                data = loaded
    return data


def _append_session(out: Path, session: dict[str, Any]) -> int:
    """Add ``session`` to ``benchmark.json`` (atomically) when it starts; returns its index."""
    data = _read_sessions(out)
    data["sessions"].append(session)
    atomic_write_json(out / "benchmark.json", data)
    return len(data["sessions"]) - 1


def _update_session(out: Path, index: int, session: dict[str, Any]) -> None:
    """Rewrite session ``index`` of ``benchmark.json`` (the caller holds the folder's lock)."""
    data = _read_sessions(out)
    sessions = data["sessions"]
    if 0 <= index < len(sessions):
        sessions[index] = session
    else:
        sessions.append(session)
    atomic_write_json(out / "benchmark.json", data)


class _Progress:
    """A rich progress bar over runs (no-op when disabled)."""

    def __init__(self, total: int, completed: int, enabled: bool) -> None:
        self.enabled = enabled
        self._progress: Any = None
        self._task: Any = None
        self.total, self.completed = total, completed

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn("[bold]runs"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                TextColumn("{task.description}"), console=Console(stderr=True), transient=False,
            )
            self._progress.__enter__()
            self._task = self._progress.add_task("", total=self.total, completed=self.completed)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def show(self, keys: list[str]) -> None:
        if self._progress is not None:
            shown = ", ".join(k.removeprefix("runs/") for k in keys)
            self._progress.update(self._task, description=f"[dim]{shown}")

    def advance(self) -> None:
        if self._progress is not None:
            self._progress.advance(self._task)


# ------------------------------------------------------------------------------------------- analysis

#: Metrics compared per (pair, strategy): name -> (run_metrics key, higher is better).
METRICS: dict[str, tuple[str, bool]] = {
    "jumpstart": ("initial", True),
    "asymptotic": ("asymptotic", True),
    "auc": ("auc", True),
    "time_to_threshold": ("time_to_threshold", False),
}
PRIMARY = "auc"


@dataclass
class RunRecord:
    """One stored run and its metrics.

    Attributes:
        steps, returns: the evaluation curve used for the metrics (a run stopped by the detector is
            held at its last evaluation up to the budget; a fallback run continues with its fallback).
        metrics: ``{"initial", "asymptotic", "auc", "time_to_threshold", "ttt_censored"}``.
        stopped_early: the detector stopped the run. ``alarm_step``, ``steps_saved``, ``would_save``:
            from ``detection.json`` (``would_save``: what stopping at the alarm saves, whatever the action).
    """

    pair: str
    arm: str
    strategy: str
    seed: int
    run_dir: str
    status: str
    budget: int
    steps: list[float] = field(default_factory=list)
    returns: list[float] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    stopped_early: bool = False
    alarm_step: int | None = None
    steps_saved: int = 0
    would_save: int = 0
    trained_steps: int | None = None


@dataclass
class MetricComparison:
    """Transfer minus scratch on one metric (oriented: positive = transfer better)."""

    metric: str
    higher_is_better: bool
    n_transfer: int
    n_scratch: int
    mean_transfer: float
    mean_scratch: float
    diff: float
    ci_low: float
    ci_high: float
    prob_improvement: float
    poi_low: float
    poi_high: float
    welch_p: float
    mann_whitney_p: float
    holm_p: float = math.nan
    censored_transfer: int = 0
    censored_scratch: int = 0


@dataclass
class ArmResult:
    """The verdict and comparisons of one transfer arm of one pair."""

    pair: str
    arm: str
    strategy: str
    role: str
    label: str
    reason: str
    seeds_needed: float
    comparisons: dict[str, MetricComparison]
    transfer_ratio: tuple[float, float, float]
    steps_saved: int
    would_save: int
    alarms: int
    budget: int
    n_runs: int
    scratch_from: str = ""

    @property
    def expected(self) -> str | None:
        return EXPECTED.get(self.role)

    @property
    def control_ok(self) -> bool | None:
        exp = self.expected
        if exp is None:
            return None
        return self.label != "positive" if exp == "not positive" else self.label == exp


@dataclass
class Analysis:
    """Everything the report shows, computed from the stored runs only."""

    suite: Suite
    out: Path
    runs: list[RunRecord]
    results: list[ArmResult]
    sessions: list[dict[str, Any]]
    missing: list[str]

    @property
    def wall_time(self) -> float:
        return float(sum(s.get("seconds", 0.0) for s in self.sessions))

    def runs_of(self, pair: str, arm: str) -> list[RunRecord]:
        return [r for r in self.runs if r.pair == pair and r.arm == arm]

    def to_dict(self) -> dict[str, Any]:
        return {
            "suite": self.suite.name,
            "wall_time_seconds": round(self.wall_time, 3),
            "last_session_seconds": self.sessions[-1].get("seconds") if self.sessions else None,
            "sessions": self.sessions,
            "missing_runs": self.missing,
            "settings": {"seeds": self.suite.seed_list, "budget": self.suite.budget,
                         "alpha": self.suite.alpha, "min_seeds": self.suite.min_seeds,
                         "eval": self.suite.eval.model_dump(), "detection": self.suite.detection.model_dump(),
                         "metrics": self.suite.metrics.model_dump()},
            "results": [{**{k: v for k, v in asdict(r).items() if k != "comparisons"},
                         "expected": r.expected, "control_ok": r.control_ok,
                         "comparisons": {m: asdict(c) for m, c in r.comparisons.items()}}
                        for r in self.results],
            "runs": [{k: v for k, v in asdict(r).items() if k not in ("steps", "returns")}
                     for r in self.runs],
        }


def _curve_for_metrics(run_dir: Path, budget: int) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """The evaluation curve of a stored run, completed to the budget when the detector cut it short."""
    from rltransfer.training import EvalCurve

    curve = EvalCurve.load(run_dir)
    steps = np.asarray(curve.steps, dtype=float)
    rets = np.asarray(curve.mean, dtype=float)
    info: dict[str, Any] = {}
    det_path = run_dir / DETECTION_FILE
    if det_path.is_file():
        with contextlib.suppress(OSError, ValueError):
            info = read_json(det_path, "detection record")
        if not isinstance(info, dict):
            info = {}
    fb = info.get("fallback")
    if fb and (run_dir / fb["run_dir"] / "eval.npz").is_file():
        extra = EvalCurve.load(run_dir / fb["run_dir"])
        offset = float(steps[-1])
        es = np.asarray(extra.steps, dtype=float)[1:] + offset  # its step 0 is the restart itself
        steps = np.concatenate([steps, es])
        rets = np.concatenate([rets, np.asarray(extra.mean, dtype=float)[1:]])
    elif steps[-1] < budget:
        steps = np.append(steps, float(budget))
        rets = np.append(rets, rets[-1])
    return steps, rets, info


def _arm_strategy(pair: PairSpec, arm: str) -> str:
    for s in pair.strategies:
        if s.arm == arm:
            return s.name
    return SCRATCH


def collect_runs(suite: Suite, out: Path) -> tuple[list[RunRecord], list[str]]:
    """Metrics of every finished run of the suite in ``out``; also the keys of runs not (yet) done."""
    from rltransfer.config import load_family
    from rltransfer.metrics import run_metrics

    records: list[RunRecord] = []
    missing: list[str] = []
    owners = scratch_owners(suite)
    for pair in suite.pairs:
        family = load_family(pair.target.env)
        low, high = family.return_range
        threshold = pair.threshold if pair.threshold is not None else suite.threshold
        if threshold is None:
            threshold = family.success_threshold if family.success_threshold is not None else high
        budget = suite.budget_of(pair)
        for arm in [SCRATCH, *[s.arm for s in pair.strategies]]:
            for seed in suite.seed_list:
                key = f"runs/{owners[pair.name] if arm == SCRATCH else pair.name}/{arm}/seed{seed}"
                run_dir = out / key
                status = read_status(run_dir).get("status", "missing")
                task_ok = False
                with contextlib.suppress(OSError, ValueError, AttributeError):
                    task_ok = bool(read_json(run_dir / TASK_FILE, "task record").get("complete"))
                if status != "done" or not task_ok or not (run_dir / "eval.npz").is_file():
                    if key not in missing:
                        missing.append(key)
                    continue
                steps, rets, info = _curve_for_metrics(run_dir, budget)
                m = run_metrics(steps, rets, threshold, low, high, suite.metrics.last_k)
                trained = read_status(run_dir).get("steps")
                records.append(RunRecord(
                    pair=pair.name, arm=arm, strategy=_arm_strategy(pair, arm), seed=seed,
                    run_dir=str(run_dir),
                    status=status, budget=budget, steps=steps.tolist(), returns=rets.tolist(), metrics=m,
                    stopped_early=bool(info.get("alarm_step") is not None
                                       and info.get("action") in ("stop", "fallback")),
                    alarm_step=info.get("alarm_step"), steps_saved=int(info.get("steps_saved") or 0),
                    would_save=int(info.get("would_save") or 0), trained_steps=trained,
                ))
    return records, missing


def _ratio_interval(
    t: np.ndarray, s: np.ndarray, n_boot: int, alpha: float, seed: int
) -> tuple[float, float, float]:
    """Transfer ratio of mean AUCs, ``(mean_t - mean_s) / mean_s``, with a stratified bootstrap interval."""
    from rltransfer.metrics import transfer_ratio

    point = transfer_ratio(float(t.mean()), float(s.mean()))
    if not math.isfinite(point):
        return point, math.nan, math.nan
    rng = np.random.default_rng(seed)
    bt = t[rng.integers(0, t.size, size=(n_boot, t.size))].mean(axis=1)
    bs = s[rng.integers(0, s.size, size=(n_boot, s.size))].mean(axis=1)
    ok = np.abs(bs) > 1e-8
    ratios = (bt[ok] - bs[ok]) / bs[ok]
    if ratios.size == 0:
        return point, math.nan, math.nan
    low, high = np.quantile(ratios, [alpha / 2, 1 - alpha / 2])
    return point, float(low), float(high)


def _compare(
    t: np.ndarray, s: np.ndarray, metric: str, higher: bool, alpha: float, seed: int
) -> MetricComparison:
    from rltransfer import statistics as st

    ci = st.bootstrap_ci_diff(t, s, alpha=alpha, random_state=seed, higher_is_better=higher)
    poi = st.probability_of_improvement(t, s, alpha=alpha, random_state=seed + 1, higher_is_better=higher)
    return MetricComparison(
        metric=metric, higher_is_better=higher, n_transfer=int(t.size), n_scratch=int(s.size),
        mean_transfer=float(t.mean()), mean_scratch=float(s.mean()), diff=ci.point, ci_low=ci.low,
        ci_high=ci.high, prob_improvement=poi.point, poi_low=poi.low, poi_high=poi.high,
        welch_p=st.welch_p(t, s), mann_whitney_p=st.mann_whitney_p(t, s),
    )


def analyze(out: str | Path) -> Analysis:
    """Metrics, comparisons and verdicts of a benchmark folder, from its stored runs only.

    Works on a partially finished benchmark: arms with no finished run are skipped, arms with fewer
    than ``min_seeds`` runs are judged inconclusive (too few seeds).
    """
    from rltransfer import statistics as st

    out = Path(out).resolve()
    suite = stored_suite(out)
    runs, missing = collect_runs(suite, out)
    sessions: list[dict[str, Any]] = []
    with contextlib.suppress(OSError, ValueError, AttributeError):
        sessions = read_json(out / "benchmark.json", "benchmark sessions").get("sessions", [])
    sessions = [s for s in sessions if isinstance(s, dict)] if isinstance(sessions, list) else []

    keys: list[tuple[str, str]] = []
    arms: dict[tuple[str, str], tuple[list[RunRecord], list[RunRecord]]] = {}
    for pair in suite.pairs:
        scratch = [r for r in runs if r.pair == pair.name and r.arm == SCRATCH]
        for strat in pair.strategies:
            transfer = [r for r in runs if r.pair == pair.name and r.arm == strat.arm]
            if transfer and scratch:
                keys.append((pair.name, strat.arm))
                arms[(pair.name, strat.arm)] = (transfer, scratch)

    def values(rs: list[RunRecord], metric: str, budget: int) -> np.ndarray:
        name = METRICS[metric][0]
        v = np.array([r.metrics[name] for r in rs], dtype=float)
        if metric == "time_to_threshold":
            cens = np.array([r.metrics["ttt_censored"] for r in rs], dtype=bool)
            v = np.where(cens, float(max(budget, *v)), v)
        return v

    comparisons: dict[tuple[str, str], dict[str, MetricComparison]] = {}
    for i, key in enumerate(keys):
        transfer, scratch = arms[key]
        budget = transfer[0].budget
        comps = {}
        for j, (metric, (_, higher)) in enumerate(METRICS.items()):
            t, s = values(transfer, metric, budget), values(scratch, metric, budget)
            c = _compare(t, s, metric, higher, suite.alpha, seed=1000 * i + 10 * j)
            if metric == "time_to_threshold":
                c.censored_transfer = int(sum(r.metrics["ttt_censored"] for r in transfer))
                c.censored_scratch = int(sum(r.metrics["ttt_censored"] for r in scratch))
            comps[metric] = c
        comparisons[key] = comps
    for metric in METRICS:  # Holm across the suite's pairs x strategies, per metric
        eligible = [k for k in keys if min(comparisons[k][metric].n_transfer,
                                           comparisons[k][metric].n_scratch) >= suite.min_seeds]
        raw = [comparisons[k][metric].welch_p for k in eligible]
        raw = [p if math.isfinite(p) else comparisons[k][metric].mann_whitney_p
               for p, k in zip(raw, eligible)]
        for k, p in zip(eligible, st.holm(np.array(raw, dtype=float)) if eligible else []):
            comparisons[k][metric].holm_p = float(p)

    verdicts = st.judge_suite(
        {k: st.Comparison(values(arms[k][0], PRIMARY, arms[k][0][0].budget),
                          values(arms[k][1], PRIMARY, arms[k][0][0].budget), True, "normalized AUC")
         for k in keys},
        alpha=suite.alpha, min_seeds=suite.min_seeds, random_state=0,
    ) if keys else {}

    owners = scratch_owners(suite)
    results = []
    for i, key in enumerate(keys):
        transfer, scratch = arms[key]
        pair = suite.pair(key[0])
        v = verdicts[key]
        auc = comparisons[key][PRIMARY]  # one set of numbers for the primary metric: the verdict's own
        auc.diff, auc.ci_low, auc.ci_high = v.ci.point, v.ci.low, v.ci.high
        auc.prob_improvement, auc.poi_low, auc.poi_high = (v.prob_improvement.point, v.prob_improvement.low,
                                                           v.prob_improvement.high)
        if math.isfinite(v.p_adjusted):
            auc.holm_p = v.p_adjusted
        auc_t = values(transfer, PRIMARY, transfer[0].budget)
        auc_s = values(scratch, PRIMARY, transfer[0].budget)
        results.append(ArmResult(
            pair=key[0], arm=key[1], strategy=_arm_strategy(pair, key[1]), role=pair.role, label=v.label,
            reason=v.reason, seeds_needed=v.seeds_needed, comparisons=comparisons[key],
            transfer_ratio=_ratio_interval(auc_t, auc_s, 2000, suite.alpha, seed=7 + i),
            steps_saved=sum(r.steps_saved for r in transfer), would_save=sum(r.would_save for r in transfer),
            alarms=sum(r.alarm_step is not None for r in transfer), budget=suite.budget_of(pair),
            n_runs=len(transfer), scratch_from=owners.get(key[0], key[0]),
        ))
    return Analysis(suite, out, runs, results, sessions, missing)
