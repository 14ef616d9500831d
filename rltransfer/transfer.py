"""Transfer runs: from a saved policy (an rltransfer bundle or any SB3 zip) into an agent for a target env.

The flow: :func:`transfer_spec` loads the source without unpickling and resolves the target agent (the
target's hyperparameters and schedules, the source's architecture, a fresh optimizer, ``num_timesteps`` 0)
into a run spec; when the run is assembled (:func:`assemble_transfer`, called by
:func:`rltransfer.pipeline.execute`) a :class:`~rltransfer.plan.TransferPlan` says for every tensor of the
target policy whether it is copied, sliced, padded, re-initialized or left at its initialization, and why
(the shape-aware rules: :mod:`rltransfer.plan`); it is applied, then the strategy (freezing, per-layer
learning rates, L2-SP, kickstarting; :mod:`rltransfer.strategies`). The public ``transfer()`` is
:func:`rltransfer.pipeline.transfer`.

The plan and strategy names are re-exported here, so ``from rltransfer.transfer import TransferPlan,
parse_strategy`` keeps working; new code imports them from :mod:`rltransfer.plan` and
:mod:`rltransfer.strategies`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from rltransfer.agents import load_agent
from rltransfer.bundle import LoadedPolicy, load_policy, sync_algorithm_state
from rltransfer.config import AgentSpec, EnvFamily, PolicyKwargs, load_family, validate
from rltransfer.environments import WrapperSpec, family_for_gym_id, observation_names
from rltransfer.errors import ConfigError, TransferError
from rltransfer.plan import (
    COMPATIBLE,
    ObsMapEntry,
    PlanStrategy,
    TensorPlan,
    TransferPlan,
    check_algorithms,
    compute_plan,
    flat_dim,
    map_normalization,
    parse_index_map,
    plan_tensor,
    resolve_action_map,
    resolve_obs_map,
)
from rltransfer.sb3layout import POLICIES, SDE_ALGOS, policy_alias
from rltransfer.spec import RunSpec
from rltransfer.strategies import (
    L2SP,
    STRATEGIES,
    AdaptNorm,
    AdaptNormCallback,
    Finetune,
    Freeze,
    HeadName,
    Kickstart,
    KickstartCallback,
    L2SPLogger,
    LowerLR,
    ReinitHeads,
    Strategy,
    StrategyOption,
    StrategySpec,
    attach_l2sp,
    blend_moments,
    combine_moments,
    parse_strategy,
    rebuild_optimizers,
    register_strategy,
    strategy_options,
)
from rltransfer.training import RunResult, build_model, check_learning_starts

__all__ = [  # this module's names, and the plan and strategy names re-exported from plan/strategies
    "COMPATIBLE",
    "L2SP",
    "STRATEGIES",
    "AdaptNorm",
    "AdaptNormCallback",
    "Finetune",
    "Freeze",
    "HeadName",
    "Kickstart",
    "KickstartCallback",
    "L2SPLogger",
    "LowerLR",
    "ObsMapEntry",
    "PlanStrategy",
    "ReinitHeads",
    "SourceDescription",
    "Strategy",
    "StrategyOption",
    "StrategySpec",
    "TensorPlan",
    "TransferPlan",
    "TransferResult",
    "assemble_transfer",
    "STRATEGY_LIMITS",
    "attach_l2sp",
    "blend_moments",
    "check_algorithms",
    "check_strategy",
    "combine_moments",
    "compute_plan",
    "describe_policy",
    "describe_spec",
    "flat_dim",
    "map_normalization",
    "parse_index_map",
    "parse_strategy",
    "plan_tensor",
    "rebuild_optimizers",
    "register_strategy",
    "resolve_action_map",
    "resolve_obs_map",
    "source_observation_names",
    "strategy_of",
    "strategy_options",
    "target_agent",
    "transfer_spec",
]


@dataclass
class TransferResult(RunResult):
    plan: TransferPlan | None = None


@dataclass(frozen=True)
class SourceDescription:
    """What the target agent takes from a source: algorithm, architecture, gSDE, normalization, wrappers.

    From a loaded policy (:func:`describe_policy`) or, for a source a benchmark has yet to train, from its
    run spec (:func:`describe_spec`): both give the same target agent.
    """

    algo: str
    policy_kwargs: dict[str, Any]
    use_sde: bool
    clip_obs: float | None
    wrappers: tuple[str, ...]
    where: str
    policy: str = "MlpPolicy"


def describe_policy(source: LoadedPolicy) -> SourceDescription:
    return SourceDescription(
        algo=source.algo, policy_kwargs=dict(source.policy_kwargs), use_sde=bool(getattr(source.model, "use_sde", False)),
        clip_obs=float(source.normalization.clip_obs) if source.normalization is not None else None,
        wrappers=tuple(w.name for w in source.wrappers), where=str(source.path),
        policy=policy_alias(source.algo, type(source.model.policy).__name__),
    )


def describe_spec(spec: RunSpec) -> SourceDescription:
    """The description of the policy that a training run spec will produce."""
    agent = spec.agent
    return SourceDescription(
        algo=agent.algo, policy_kwargs=agent.policy_kwargs.model_dump(exclude_none=True),
        use_sde=bool(agent.hyperparams.use_sde), clip_obs=agent.normalize.clip_obs if agent.normalize else None,
        wrappers=tuple(w.name for w in spec.env.wrappers), where=f"the source trained by run spec {spec.fingerprint()}",
        policy=agent.policy,
    )


def target_agent(source: LoadedPolicy | SourceDescription, family: EnvFamily, algo: str | None = None,
                 agent: str | AgentSpec | None = None) -> AgentSpec:
    """The target agent: the target's shipped (or given) hyperparameters for this family, with the source's
    network architecture and gSDE setting so that the weights fit."""
    desc = source if isinstance(source, SourceDescription) else describe_policy(source)
    target_algo = (algo or desc.algo).lower()
    check_algorithms(desc.algo, target_algo)
    if isinstance(agent, AgentSpec):
        spec = agent
    else:
        spec = load_agent(agent or target_algo, family.name, algo=target_algo)
    if spec.algo != target_algo:
        hint = ""
        if algo is None:
            try:
                check_algorithms(desc.algo, spec.algo)
                hint = (f"; to transfer {desc.algo.upper()} -> {spec.algo.upper()} (they share a policy layout), "
                        f"add --algo {spec.algo} (algo={spec.algo!r} in Python)")
            except TransferError as exc:
                hint = f"; and {exc}"
        raise ConfigError(f"agent {spec.name!r} is {spec.algo}, but the target algorithm is {target_algo} (the "
                          f"source's unless --algo names another){hint}")
    arch_keys = ["net_arch", "activation_fn", "log_std_init", "full_std", "squash_output",
                 "share_features_extractor"]
    if target_algo == desc.algo:
        # the algorithm's own settings; across a shared layout the target keeps its own (TD3: two critics)
        arch_keys += ["n_critics", "n_quantiles", "with_bias"]
    src_kwargs = {k: v for k, v in desc.policy_kwargs.items() if k in arch_keys}
    kwargs = {**spec.policy_kwargs.model_dump(exclude_none=True), **src_kwargs}
    data = spec.model_dump(exclude_none=True)
    where = f"{desc.where} (the source's architecture)"
    if target_algo == desc.algo and desc.policy in POLICIES:
        data["policy"] = desc.policy  # e.g. ARS's LinearPolicy
        if desc.policy == "LinearPolicy":
            for key in ("net_arch", "activation_fn"):
                kwargs.pop(key, None)
    data["policy_kwargs"] = validate(PolicyKwargs, kwargs, where).model_dump(exclude_none=True)
    if target_algo in SDE_ALGOS:
        data.setdefault("hyperparams", {})["use_sde"] = desc.use_sde
    if desc.clip_obs is not None:
        data["normalize"] = {"obs": True, "reward": bool(spec.normalize.reward) if spec.normalize else False,
                             "clip_obs": float(desc.clip_obs)}
    else:
        data.pop("normalize", None)
    data["wrappers"] = list(desc.wrappers)
    return validate(AgentSpec, data, where)


def transfer_spec(
    source: str | Path | LoadedPolicy,
    env: str | Path | EnvFamily,
    params: dict[str, float] | None = None,
    strategy: str | StrategySpec = "finetune",
    options: dict[str, Any] | None = None,
    agent: str | AgentSpec | None = None,
    algo: str | None = None,
    steps: int | None = None,
    seed: int = 0,
    eval_freq: int | None = None,
    eval_episodes: int | None = None,
    obs_map: Sequence[ObsMapEntry] | str | None = None,
    action_map: Sequence[int | None] | None = None,
    wrappers: Sequence[str | WrapperSpec] = (),
    threads: int | None = 1,
    checkpoints: Any = None,
    source_algo: str | None = None,
    strict: bool = False,
    device: str = "cpu",
) -> RunSpec:
    """The :class:`~rltransfer.spec.RunSpec` of a transfer run: the target's training spec (the target
    agent with the source's architecture, see :func:`target_agent`) plus the source (path and content
    hash), the strategy and the space mappings. Everything is validated here, before any run directory
    exists; the plan itself is computed when the run is assembled (:func:`assemble_transfer`).

    Args:
        source_algo: the source's algorithm, for an SB3 zip whose data does not tell it (``--source-algo``).
        strict: a budget at or below the target agent's ``learning_starts`` (nothing would be trained) is an
            error instead of a :class:`~rltransfer.training.BudgetWarning`.
        device: torch device of the target model.
    """
    from rltransfer.bundle import policy_fingerprint
    from rltransfer.spec import SourceRef, TransferSpec, train_spec

    spec_s = strategy if isinstance(strategy, StrategySpec) else parse_strategy(strategy, options)
    loaded = source if isinstance(source, LoadedPolicy) else load_policy(source, algo=source_algo)
    if isinstance(loaded.observation_space, gym.spaces.Dict):
        flat_dim(loaded.observation_space)  # raises the Dict refusal, with its reason
    family = env if isinstance(env, EnvFamily) else load_family(env)
    target = target_agent(loaded, family, algo, agent)
    check_strategy(target.algo, spec_s.name)
    base = train_spec(family, target, params, steps, seed, eval_freq, eval_episodes, device=device, threads=threads,
                      wrappers=list(wrappers), checkpoints=checkpoints, label=f"{target.name}-{spec_s.name}")
    check_learning_starts(target, base.steps, strict=strict, where=f"transfer into {family.name!r}")
    if isinstance(obs_map, str) and obs_map != "auto":
        raise ConfigError(f"obs_map must be a list or 'auto', got {obs_map!r}")
    ref = SourceRef(path=str(Path(loaded.path).resolve()), fingerprint=policy_fingerprint(loaded.path),
                    algo=source_algo)  # recorded in the spec: a resumed run reads the source the same way
    ts = TransferSpec(
        source=ref,
        strategy={"name": spec_s.name, **spec_s.model_dump(exclude_unset=True, exclude={"name"})},
        obs_map=list(obs_map) if obs_map is not None and not isinstance(obs_map, str) else obs_map,
        action_map=list(action_map) if action_map is not None else None,
    )
    return base.model_copy(update={"transfer": ts})


#: Strategies each algorithm's update can honour, where it cannot honour them all, and why.
STRATEGY_LIMITS: dict[str, tuple[frozenset[str], str]] = {
    "ars": (frozenset({"finetune", "reinit_heads"}),
            "ARS updates its weights by random search over the whole parameter vector, without gradients or "
            "an optimizer, so freezing, per-tensor learning rates, L2-SP, kickstarting and adapt_norm's frozen "
            "phase have nothing to act on"),
    "trpo": (frozenset({"finetune", "reinit_heads", "kickstart", "adapt_norm"}),
             "TRPO's policy step is a conjugate-gradient line search over every actor tensor, outside the "
             "optimizer: a frozen tensor breaks it, and per-tensor learning rates or L2-SP would reach the "
             "value function only"),
}


def check_strategy(algo: str, strategy: str) -> None:
    """Refuse a strategy the target algorithm's update cannot honour (:data:`STRATEGY_LIMITS`).

    Raises:
        TransferError: naming the strategy, the algorithm, why, and the strategies that work.
    """
    allowed, why = STRATEGY_LIMITS.get(algo, (None, ""))
    if allowed is not None and strategy not in allowed:
        raise TransferError(f"strategy {strategy!r} cannot be used with a {algo.upper()} target: {why}. "
                            f"Use one of: {', '.join(sorted(allowed))}")


def strategy_of(spec: RunSpec) -> StrategySpec:
    """The strategy a transfer spec names, validated."""
    data = dict(spec.transfer.strategy)  # type: ignore[union-attr]
    return parse_strategy(data.pop("name"), data)


def assemble_transfer(
    spec: RunSpec, venv: VecEnv, eval_env: VecEnv
) -> tuple[BaseAlgorithm, VecEnv, VecEnv, list[BaseCallback], dict[str, str], dict[str, Any]]:
    """The target model of a transfer spec with the source's weights in place and its strategy applied.

    Returns:
        ``(model, training env, eval env, strategy callbacks, TensorBoard texts, files to write)``; the
        envs are wrapped in the source's normalization when it had one.
    """
    ts = spec.transfer
    if ts is None:
        raise TransferError("assemble_transfer needs a spec with a transfer slot")
    spec_s = strategy_of(spec)
    loaded = load_policy(ts.source.path, algo=ts.source.algo)
    family = spec.env.family
    model = build_model(spec.agent, venv, spec.seed, spec.device)
    policy_wrappers = [w.to_wrapper_spec() for w in spec.env.wrappers]
    plan, new_sd = compute_plan(loaded, model, spec.agent.algo, spec_s, ts.obs_map, ts.action_map,
                                source_observation_names(loaded), observation_names(family, policy_wrappers))
    venv, eval_env = _normalization(venv, eval_env, loaded, plan, spec.agent)
    model.set_env(venv)
    model.policy.load_state_dict({**model.policy.state_dict(), **new_sd}, strict=True)
    sync_algorithm_state(model)
    rebuild_optimizers(model, plan)
    callbacks = spec_s.attach(model, plan, loaded, spec)
    return model, venv, eval_env, callbacks, {"transfer/plan": plan.markdown()}, {"transfer_plan.json": plan}


def source_observation_names(source: LoadedPolicy) -> list[str] | None:
    """Feature names of a source's observation: from its recorded family, or the shipped family of its
    Gymnasium id (Zoo agents), seen through its wrappers. None when unknown or when the count disagrees."""
    family: EnvFamily | None = source.family_spec
    if family is None and source.gym_id:
        family = family_for_gym_id(source.gym_id)
    if family is None:
        return None
    names = observation_names(family, source.wrappers)
    if names is None or len(names) != flat_dim(source.observation_space):
        return None
    return names


def _normalization(venv: VecEnv, eval_env: VecEnv, source: LoadedPolicy, plan: TransferPlan,
                   spec: AgentSpec) -> tuple[VecEnv, VecEnv]:
    """Target normalization follows the source: its statistics, mapped like the observation."""
    stats = map_normalization(source.normalization, plan.obs_map)
    if stats is None:
        return venv, eval_env
    gamma = spec.hyperparams.gamma if spec.hyperparams.gamma is not None else 0.99
    reward = bool(spec.normalize.reward) if spec.normalize else False
    train_norm = VecNormalize(venv, training=True, norm_obs=True, norm_reward=reward, clip_obs=stats.clip_obs,
                              gamma=gamma)
    stats.apply_to(train_norm)
    eval_norm = VecNormalize(eval_env, training=False, norm_obs=True, norm_reward=False, clip_obs=stats.clip_obs)
    stats.apply_to(eval_norm)
    plan.notes.append("observation normalization statistics taken from the source (mapped like the observation)")
    return train_norm, eval_norm
