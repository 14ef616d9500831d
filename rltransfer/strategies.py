"""Transfer strategies: the registry, the built-in strategies and the callbacks they attach to a run.

A strategy is a :class:`Strategy` subclass registered with :func:`register_strategy` into
:data:`STRATEGIES`; its pydantic fields are its options, which :func:`strategy_options` turns into flags of
``rltransfer transfer``, and :func:`parse_strategy` validates a name and options into one. Built in:
``finetune``, ``freeze``, ``reinit_heads``, ``l2sp``, ``lower_lr``, ``kickstart`` and ``adapt_norm``. Applying
them: :func:`rebuild_optimizers` (freezing and per-tensor learning rates from the marked plan),
:func:`attach_l2sp` with :class:`L2SPLogger`, :class:`KickstartCallback` and :class:`AdaptNormCallback`.
The plan they mark is :mod:`rltransfer.plan`.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from types import UnionType
from typing import Any, ClassVar, Literal, TypeVar, Union, get_args, get_origin

import numpy as np
import torch
from pydantic import Field, ValidationError, model_validator
from pydantic.fields import FieldInfo
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecNormalize, unwrap_vec_normalize

from rltransfer.bundle import LoadedPolicy
from rltransfer.config import Strict, validate
from rltransfer.errors import ConfigError, TransferError, did_you_mean, unknown_name
from rltransfer.plan import TensorPlan, TransferPlan, flat_dim
from rltransfer.sb3layout import CONTINUOUS_ONLY, HEADS, ON_POLICY, Role
from rltransfer.spec import RunSpec

HeadName = Literal[HEADS]  # type: ignore[valid-type]


class Strategy(Strict):
    """A transfer strategy: its options (the pydantic fields) and what it does to the plan and the run.

    A new strategy is one subclass registered with :func:`register_strategy`: a ``name``, a one-line
    ``summary``, its options as fields with bounds and a ``description`` (each becomes a flag of
    ``rltransfer transfer``, e.g. ``--lr-scale``), and whichever hooks it needs:

    * :meth:`reinit`: re-initialize a tensor instead of copying it;
    * :meth:`mark`: set ``trainable`` / ``lr_scale`` / ``reason`` of each transferred tensor's plan entry;
    * :meth:`attach`: change the assembled model and return the SB3 callbacks of the run.

    Freezing and per-tensor learning rates need no code of their own: the optimizers are rebuilt from the
    marked plan (:func:`rebuild_optimizers`) before :meth:`attach` runs. Options are validated like any
    config (unknown keys are errors); ``heads`` is shared by every strategy.
    """

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""

    heads: list[HeadName] = Field(  # type: ignore[valid-type]
        default_factory=list, description="output heads re-initialized instead of copied",
    )

    @classmethod
    def own_options(cls) -> list[str]:
        """The options this strategy adds to the shared ones (``heads``), sorted."""
        return sorted(set(cls.model_fields) - set(Strategy.model_fields))

    def to_dict(self) -> dict[str, Any]:
        """``{"name": ..., **every option}``: the ``strategy`` entry of a transfer plan."""
        return {"name": self.name, **self.model_dump()}

    def reinit(self, name: str, role: Role) -> str | None:
        """Why the target tensor ``name`` is re-initialized instead of transferred (None: it is transferred)."""
        if role.head is not None and role.head in self.heads:
            return f"strategy re-initializes the {role.head} head"
        return None

    def mark(self, tensor: TensorPlan, role: Role) -> None:
        """Adjust the plan entry of a tensor transferred into the online networks (not target networks)."""

    def attach(self, model: BaseAlgorithm, plan: TransferPlan, source: LoadedPolicy,
               spec: RunSpec) -> list[BaseCallback]:
        """Change the model once the weights are in place and its optimizers rebuilt; return the run's
        strategy callbacks."""
        return []

    def check(self, plan: TransferPlan, roles: dict[str, Role]) -> None:
        """Refuse options that would do nothing on this target (called once the plan is marked, before
        anything trains): a ``heads`` entry the target network does not have.

        Raises:
            TransferError: naming the option, its value, and what the target has.
        """
        present = sorted({role.head for role in roles.values() if role.head is not None})
        missing = [h for h in self.heads if h not in present]
        if missing:
            raise TransferError(
                f"strategy {self.name!r}: --heads {' '.join(missing)}: the target policy has no such head, so "
                f"nothing would be re-initialized; its heads: {', '.join(present) or '(none)'}"
            )


#: Strategy name -> class. Register new ones with :func:`register_strategy`.
STRATEGIES: dict[str, type[Strategy]] = {}

#: A strategy with its options, as the rest of the package calls it (``spec.name``, ``spec.lr_scale``).
StrategySpec = Strategy

_S = TypeVar("_S", bound=type[Strategy])


def register_strategy(cls: _S) -> _S:
    """Class decorator: add a :class:`Strategy` subclass to :data:`STRATEGIES` under its ``name``."""
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise TypeError(f"register_strategy expects a Strategy subclass, got {cls!r}")
    if not re.fullmatch(r"[a-z][a-z0-9_]*", cls.name or ""):
        raise ValueError(f"strategy class {cls.__name__} needs a name of lowercase letters, digits and '_', "
                         f"got {cls.name!r}")
    if cls.name in STRATEGIES and STRATEGIES[cls.name] is not cls:
        raise ValueError(f"strategy {cls.name!r} is already registered ({STRATEGIES[cls.name].__name__})")
    undocumented = [k for k, f in cls.model_fields.items() if not f.description]
    if undocumented:
        raise TypeError(f"strategy {cls.name!r}: option(s) {undocumented} need a Field(description=...)")
    STRATEGIES[cls.name] = cls
    return cls


@register_strategy
class Finetune(Strategy):
    name = "finetune"
    summary = "copy every tensor that fits and train all of them"


@register_strategy
class Freeze(Strategy):
    name = "freeze"
    summary = "copy, then freeze the feature (hidden) layers; the optimizer only sees trainable tensors"

    freeze_layers: int | None = Field(default=None, ge=1, description="freeze the first K feature layers "
                                      "(unset: all of them, or none when patterns are given)")
    freeze_patterns: list[str] = Field(default_factory=list, description="freeze tensors whose name matches a "
                                       "glob pattern", json_schema_extra={"cli_flag": "--freeze-pattern",
                                                                          "cli_repeat": True})

    def mark(self, tensor: TensorPlan, role: Role) -> None:
        by_depth = role.feature and (self.freeze_layers is None or role.depth < self.freeze_layers)
        if self.freeze_patterns:
            by_pattern = any(fnmatch.fnmatch(tensor.name, p) for p in self.freeze_patterns)
            frozen = by_pattern if self.freeze_layers is None else (by_depth or by_pattern)
        else:
            frozen = by_depth
        if frozen:
            tensor.trainable = False
            tensor.reason += "; frozen"

    def check(self, plan: TransferPlan, roles: dict[str, Role]) -> None:
        """A pattern that matches no tensor, a layer count beyond the network's depth, or a freeze that
        freezes nothing is an error, not a silent no-op."""
        super().check(plan, roles)
        names = [t.name for t in plan.tensors]
        for pattern in self.freeze_patterns:
            matched = [t for t in plan.tensors if fnmatch.fnmatch(t.name, pattern)]
            if not matched:
                close = did_you_mean(pattern, names)
                raise TransferError(
                    f"--freeze-pattern {pattern!r} matches no tensor of the target policy.{close} Its tensors: "
                    f"{', '.join(names[:40])}{', ...' if len(names) > 40 else ''} (glob patterns: * and ?)"
                )
            if not any(t.transferred and not roles[t.name].target_net for t in matched):
                raise TransferError(
                    f"--freeze-pattern {pattern!r} matches only tensors that are not transferred "
                    f"({', '.join(t.name for t in matched[:10])}: {matched[0].action}), so it freezes nothing; "
                    "only transferred tensors are frozen"
                )
        depths = sorted({role.depth for role in roles.values() if role.feature and not role.target_net})
        if self.freeze_layers is not None and self.freeze_layers > len(depths):
            raise TransferError(
                f"--freeze-layers {self.freeze_layers}: the target policy has {len(depths)} feature (hidden) "
                f"layer{'s' if len(depths) != 1 else ''} per network; valid: 1 to {len(depths)}"
            )
        if not any(not t.trainable for t in plan.tensors):
            raise TransferError(
                "strategy 'freeze' freezes nothing on this target (no transferred feature layer); use "
                "--strategy finetune, or name tensors with --freeze-pattern"
            )


@register_strategy
class ReinitHeads(Strategy):
    name = "reinit_heads"
    summary = "copy, then re-initialize the output heads (policy, value, critics: selectable)"

    @model_validator(mode="after")
    def _all_heads_by_default(self) -> ReinitHeads:
        if not self.heads:
            self.heads = list(HEADS)  # assigned, so it is recorded in the run spec like a given option
        return self


@register_strategy
class L2SP(Strategy):
    name = "l2sp"
    summary = "copy, then pull transferred weights toward their starting values (L2-SP penalty)"

    l2sp_alpha: float = Field(default=0.01, gt=0, description="strength of the pull toward the transferred weights")

    def attach(self, model: BaseAlgorithm, plan: TransferPlan, source: LoadedPolicy,
               spec: RunSpec) -> list[BaseCallback]:
        return [L2SPLogger(attach_l2sp(model, plan, self.l2sp_alpha))]


@register_strategy
class LowerLR(Strategy):
    name = "lower_lr"
    summary = "copy, then train transferred tensors with a smaller learning rate than new ones"

    lr_scale: float = Field(default=0.1, gt=0, le=1, description="learning-rate factor of transferred tensors")

    def mark(self, tensor: TensorPlan, role: Role) -> None:
        tensor.lr_scale = self.lr_scale


@register_strategy
class Kickstart(Strategy):
    name = "kickstart"
    summary = "copy, plus an auxiliary loss toward the source policy's actions with a decaying weight"

    kickstart_weight: float = Field(default=1.0, gt=0, description="initial weight of the loss toward the source")
    kickstart_end_fraction: float = Field(default=0.5, gt=0, le=1, description="fraction of the run after which "
                                          "the weight has decayed to zero")
    kickstart_epochs: int = Field(default=1, ge=1, description="passes over each rollout's observations")
    kickstart_batch_size: int = Field(default=256, ge=1, description="minibatch size of the kickstarting loss")

    def attach(self, model: BaseAlgorithm, plan: TransferPlan, source: LoadedPolicy,
               spec: RunSpec) -> list[BaseCallback]:
        n_actions = flat_dim(model.action_space)
        if plan.action_map != list(range(n_actions)) or flat_dim(source.action_space) != n_actions:
            raise TransferError("kickstarting needs the same actions in source and target (identity action map)")
        return [KickstartCallback(source.model, plan.obs_map, self.kickstart_weight, self.kickstart_end_fraction,
                                  spec.steps, self.kickstart_epochs, self.kickstart_batch_size)]


@register_strategy
class AdaptNorm(Strategy):
    """Domain adaptation as a transfer strategy: re-estimate the observation normalization on the target
    with the policy frozen, then fine-tune (the RL analogue of re-estimating batch-norm statistics, AdaBN).

    Design (see :class:`AdaptNormCallback`):

    * The first ``adapt_steps`` env steps are an adaptation phase inside the ordinary ``learn`` loop: they
      count against the run's budget (``num_timesteps`` advances, schedules see them), so the evaluation
      curve shows the phase at its true cost; evaluations during it measure the frozen transferred policy
      with the statistics then in force (the source's).
    * Weights do not change during the phase: every ``train()`` call that follows a rollout collected (even
      partly) in the phase is skipped, so no gradient step, optimizer-state update or target-network update
      happens at all. On-policy, the weights therefore stay frozen to the end of the rollout in which the
      phase ends (at most one rollout beyond ``adapt_steps``).
    * The rollouts of the phase are normalized with the source's statistics, frozen (the training
      ``VecNormalize`` does not update them), while the raw target observations (the same ones
      ``VecNormalize`` counts: reset observations and each step's observations, not terminal ones) are
      accumulated in separate statistics. At the first step with ``num_timesteps >= adapt_steps`` they are
      swapped in (count: the number of target observations) and ``VecNormalize`` resumes updating them.
      ``adapt_from: fresh`` swaps in the target's statistics alone; ``source`` a mixture of the source's and
      the target's, the source weighted ``adapt_source_weight``.

    Needs a source that normalizes observations (refused otherwise: there are no statistics to adapt).
    Off-policy algorithms act randomly while ``num_timesteps < learning_starts`` (SB3's warm-up), so the
    statistics of that part of the phase come from random actions.
    """

    name = "adapt_norm"
    summary = ("copy, re-estimate the observation normalization on target rollouts with the policy frozen "
               "(AdaBN-style), then fine-tune")

    adapt_steps: int = Field(default=10_000, ge=1, le=10_000_000, description="env steps of the adaptation "
                             "phase (counted in the run's budget): policy frozen, normalization re-estimated")
    adapt_from: Literal["fresh", "source"] = Field(
        default="fresh", description="statistics swapped in after the phase: the target's alone, or blended with "
        "the source's")
    adapt_source_weight: float = Field(
        default=0.5, ge=0, le=1, description="with adapt_from=source: weight of the source's statistics in the "
        "blend (mixture) with the target's")

    @model_validator(mode="after")
    def _weight_needs_source(self) -> AdaptNorm:
        if "adapt_source_weight" in self.model_fields_set and self.adapt_from != "source":
            raise ValueError(f"adapt_source_weight={self.adapt_source_weight:g} is only used with "
                             f"adapt_from='source', got adapt_from={self.adapt_from!r}")
        return self

    def attach(self, model: BaseAlgorithm, plan: TransferPlan, source: LoadedPolicy,
               spec: RunSpec) -> list[BaseCallback]:
        if source.normalization is None:
            raise TransferError(f"the source does not normalize observations; adapt_norm needs a normalized "
                                f"source ({source.path} has no VecNormalize statistics)")
        if self.adapt_steps > spec.steps:
            raise ConfigError(f"adapt_norm: adapt_steps={self.adapt_steps:,} exceeds the run's budget "
                              f"steps={spec.steps:,}; the adaptation phase counts against the budget, so use "
                              f"adapt_steps <= steps")
        vecnorm = unwrap_vec_normalize(model.get_env())
        if vecnorm is None or not vecnorm.norm_obs:
            raise TransferError("adapt_norm: the target's training env is not observation-normalized")
        vecnorm.training = False  # the reset at the start of learn() must not touch the source's statistics
        blend = self.adapt_source_weight if self.adapt_from == "source" else 0.0
        plan.notes.append(f"adapt_norm: the first {self.adapt_steps:,} env steps re-estimate the observation "
                          f"normalization with the policy frozen (statistics swapped in: "
                          f"{'target only' if blend == 0 else f'{blend:g} source + {1 - blend:g} target'})")
        return [AdaptNormCallback(self.adapt_steps, blend)]


def parse_strategy(name: str, options: dict[str, Any] | None = None) -> Strategy:
    """The registered strategy ``name`` with ``options`` validated. Unknown names get "Did you mean";
    options of other strategies, and unknown keys, are errors."""
    cls = STRATEGIES.get(name) if isinstance(name, str) else None
    if cls is None:
        raise unknown_name("transfer strategy", str(name), STRATEGIES)
    options = dict(options or {})
    others = {k for c in STRATEGIES.values() for k in c.model_fields} - set(cls.model_fields)
    ignored = sorted(k for k in options if k in others)
    if ignored:
        raise ConfigError(f"strategy {name!r} does not use option(s) {ignored}; it uses {cls.own_options() or 'none'}")
    strategy: Strategy = validate(cls, options, f"strategy {name!r}")
    return strategy


@dataclass(frozen=True)
class StrategyOption:
    """One option of the registered strategies, as a command-line flag (see :func:`strategy_options`).

    Attributes:
        name: the option (field) name, e.g. ``lr_scale``.
        flag: its flag, ``--lr-scale`` (a field may set another with ``json_schema_extra={"cli_flag": ...}``).
        type: the value type (``int``, ``float``, ``str``, ``bool``), of each item for a list.
        is_list: a list option: a comma list, or with ``repeat`` the flag given once per item.
        repeat: see ``is_list`` (``json_schema_extra={"cli_repeat": True}``).
        help: the description, naming the strategies that take it, the bounds, choices and default.
    """

    name: str
    flag: str
    type: type
    is_list: bool
    repeat: bool
    help: str


def _value_type(annotation: Any, where: str) -> tuple[type, bool, tuple[Any, ...]]:
    """``(item type, is a list, choices)`` of an option annotation; TypeError for what a flag cannot take."""
    args = [a for a in get_args(annotation) if a is not type(None)]
    if get_origin(annotation) in (Union, UnionType) and len(args) == 1:
        annotation, args = args[0], list(get_args(args[0]))
    is_list = get_origin(annotation) is list
    item = args[0] if is_list and args else annotation
    choices: tuple[Any, ...] = ()
    if get_origin(item) is Literal:
        choices = get_args(item)
        item = type(choices[0])
    if item not in (int, float, str, bool) or (is_list and item is bool):
        raise TypeError(f"{where}: a command-line option must be int, float, str, bool, a Literal of them or a "
                        f"list of those, got {annotation!r}")
    return item, is_list, choices


def _shown(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, list):
        return ",".join(map(str, value)) or "none"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _bounds(info: FieldInfo) -> str:
    signs = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}
    parts = [f"{sign} {getattr(m, key):g}" for m in info.metadata for key, sign in signs.items()
             if getattr(m, key, None) is not None]
    return ", ".join(parts)


def strategy_options() -> list[StrategyOption]:
    """Every option of every registered strategy, each once (a name shared by strategies must have one
    type), the shared options last: what ``rltransfer transfer`` offers as flags."""
    owners: dict[str, list[type[Strategy]]] = {}
    for cls in STRATEGIES.values():
        for key in cls.model_fields:
            owners.setdefault(key, []).append(cls)
    shared = [k for k in owners if k in Strategy.model_fields]
    out = []
    for key in [*(k for k in owners if k not in shared), *shared]:
        classes = owners[key]
        infos = [c.model_fields[key] for c in classes]
        if len({repr(i.annotation) for i in infos}) > 1:
            raise TypeError(f"strategy option {key!r} has different types in strategies "
                            f"{[c.name for c in classes]}: {sorted({repr(i.annotation) for i in infos})}")
        info = infos[0]
        item, is_list, choices = _value_type(info.annotation, f"option {key!r} of strategy {classes[0].name!r}")
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        defaults: dict[str, list[str]] = {}
        for cls in classes:
            try:
                default = getattr(cls(), key)  # as constructed, e.g. reinit_heads: every head
            except (ValidationError, TypeError):
                default = "required" if info.is_required() else info.get_default(call_default_factory=True)
            defaults.setdefault(_shown(default), []).append(cls.name)
        first, *rest = defaults.items()
        default_text = "; ".join([first[0], *(f"{', '.join(names)}: {d}" for d, names in rest)])
        who = "any strategy" if key in shared and len(classes) == len(STRATEGIES) else ", ".join(c.name for c in classes)
        details = [d for d in (_bounds(info), f"of {', '.join(map(str, choices))}" if choices else "",
                               "repeatable" if extra.get("cli_repeat") else "comma list" if is_list else "") if d]
        text = f"{who}: {info.description or key}" + (f" ({'; '.join(details)})" if details else "")
        out.append(StrategyOption(
            name=key, flag=str(extra.get("cli_flag") or "--" + key.replace("_", "-")), type=item, is_list=is_list,
            repeat=bool(extra.get("cli_repeat")), help=f"{text} (default: {default_text})",
        ))
    return out


# ------------------------------------------------------------------------------------ applying strategies


def _optimizers(model: BaseAlgorithm) -> list[tuple[Any, str]]:
    """(owner, attribute) of every optimizer of the model's policy (one for on-policy/DQN, two for SAC/TD3)."""
    policy = model.policy
    found = []
    for owner in (policy, getattr(policy, "actor", None), getattr(policy, "critic", None)):
        if owner is not None and isinstance(getattr(owner, "optimizer", None), torch.optim.Optimizer):
            found.append((owner, "optimizer"))
    return found


def _scale_lr_pre(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
    for group in optimizer.param_groups:
        group["lr_base"] = group["lr"]
        group["lr"] = group["lr"] * group.get("lr_scale", 1.0)


def _scale_lr_post(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
    for group in optimizer.param_groups:
        group["lr"] = group.pop("lr_base", group["lr"])


def rebuild_optimizers(model: BaseAlgorithm, plan: TransferPlan) -> None:
    """Freeze what the plan says, and rebuild each optimizer over trainable tensors only, with one parameter
    group per learning-rate scale. SB3 sets the learning rate of every group from its schedule; a step
    pre-hook multiplies each group's rate by its ``lr_scale`` for the step and restores it after."""
    named = dict(model.policy.named_parameters())
    by_tensor = {t.name: t for t in plan.tensors}
    for name, param in named.items():
        entry = by_tensor.get(name)
        if entry is not None and not entry.trainable:
            param.requires_grad_(False)
    ids = {id(p): n for n, p in named.items()}
    for owner, attr in _optimizers(model):
        old: torch.optim.Optimizer = getattr(owner, attr)
        params = [p for g in old.param_groups for p in g["params"] if p.requires_grad]
        groups: dict[float, list[torch.nn.Parameter]] = {}
        for p in params:
            entry = by_tensor.get(ids.get(id(p), ""))
            groups.setdefault(entry.lr_scale if entry else 1.0, []).append(p)
        new = type(old)([{"params": ps, "lr_scale": s} for s, ps in sorted(groups.items())], **old.defaults)
        if any(s != 1.0 for s in groups):
            new.register_step_pre_hook(_scale_lr_pre)
            new.register_step_post_hook(_scale_lr_post)
        setattr(owner, attr, new)


def attach_l2sp(model: BaseAlgorithm, plan: TransferPlan, alpha: float) -> dict[str, torch.Tensor]:
    """L2-SP (Li et al. 2018): add ``alpha * (w - w0)`` to the gradient of every transferred tensor, i.e. the
    gradient of ``alpha/2 * ||w - w0||^2`` with ``w0`` the transferred starting point. Implemented as tensor
    hooks so it works with every SB3 loss without changing it. Returns the anchors."""
    named = dict(model.policy.named_parameters())
    anchors: dict[str, torch.Tensor] = {}
    for t in plan.tensors:
        param = named.get(t.name)
        if param is None or not t.transferred or not param.requires_grad:
            continue
        anchor = param.detach().clone()
        anchors[t.name] = anchor
        param.register_hook(lambda grad, p=param, a=anchor: grad + alpha * (p.detach() - a))
    return anchors


class L2SPLogger(BaseCallback):
    """Logs ``transfer/l2sp_distance``: the squared distance of transferred weights from their anchors."""

    def __init__(self, anchors: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.anchors = anchors

    def _on_rollout_end(self) -> None:
        named = dict(self.model.policy.named_parameters())
        dist = sum(float(((named[k].detach() - a) ** 2).sum()) for k, a in self.anchors.items())
        self.logger.record("transfer/l2sp_distance", dist)

    def _on_step(self) -> bool:
        return True


class KickstartCallback(BaseCallback):
    """Kickstarting (Schmitt et al. 2018): after each rollout, gradient steps on ``w(t) * D(teacher, student)``
    over the rollout's observations (on-policy) or a replay batch (SAC/TD3/DQN), where ``D`` is the KL
    divergence of the action distributions (PPO/A2C) or the squared error of the deterministic actions
    (SAC/TD3) or Q-argmax cross-entropy (DQN), and ``w(t) = weight * max(0, 1 - t / (end_fraction * T))``.
    """

    def __init__(self, teacher: BaseAlgorithm, obs_index: list[int | None], weight: float, end_fraction: float,
                 total_steps: int, epochs: int = 1, batch_size: int = 256) -> None:
        super().__init__()
        self.teacher = teacher
        self.obs_index = obs_index
        self.teacher_dim = flat_dim(teacher.observation_space)
        self.weight0 = weight
        self.end_steps = max(1.0, end_fraction * total_steps)
        self.epochs = epochs
        self.batch_size = batch_size
        self.history: list[tuple[int, float]] = []

    def weight(self, step: int) -> float:
        return self.weight0 * max(0.0, 1.0 - step / self.end_steps)

    def _teacher_obs(self, obs: torch.Tensor) -> torch.Tensor:
        """The student's observation in the teacher's layout (features it never saw are dropped)."""
        out = torch.zeros(obs.shape[0], self.teacher_dim)
        for t, s in enumerate(self.obs_index):
            if s is not None:
                out[:, s] = obs[:, t]
        return out

    def _observations(self) -> torch.Tensor | None:
        model = self.model
        if hasattr(model, "rollout_buffer"):
            obs = model.rollout_buffer.observations
            return torch.as_tensor(obs.reshape(-1, obs.shape[-1]), dtype=torch.float32)
        buffer = getattr(model, "replay_buffer", None)
        if buffer is None or buffer.size() == 0:
            return None
        return buffer.sample(min(self.batch_size, buffer.size())).observations.float()

    def _loss(self, obs: torch.Tensor) -> torch.Tensor:
        student, teacher = self.model.policy, self.teacher.policy
        t_obs = self._teacher_obs(obs)
        algo = type(self.model).__name__.lower()
        if algo in ON_POLICY:
            with torch.no_grad():
                t_dist = teacher.get_distribution(t_obs).distribution
            s_dist = student.get_distribution(obs).distribution
            kl = torch.distributions.kl_divergence(t_dist, s_dist)
            return kl.sum(-1).mean() if kl.dim() > 1 else kl.mean()
        if algo in CONTINUOUS_ONLY:
            stochastic = algo in ("sac", "tqc", "crossq")  # their actors take deterministic=; TD3/DDPG's do not
            with torch.no_grad():
                target = teacher.actor(t_obs, deterministic=True) if stochastic else teacher.actor(t_obs)
            pred = student.actor(obs, deterministic=True) if stochastic else student.actor(obs)
            return ((pred - target) ** 2).sum(-1).mean()
        if algo == "qrdqn":  # Q-values are the means of the quantiles: (batch, n_quantiles, n_actions)
            with torch.no_grad():
                target = teacher.quantile_net(t_obs).mean(dim=1).argmax(-1)
            return torch.nn.functional.cross_entropy(student.quantile_net(obs).mean(dim=1), target)
        with torch.no_grad():
            target = teacher.q_net(t_obs).argmax(-1)
        return torch.nn.functional.cross_entropy(student.q_net(obs), target)

    def _optimizer(self) -> torch.optim.Optimizer:
        policy = self.model.policy
        return policy.actor.optimizer if hasattr(policy, "actor") and hasattr(policy.actor, "optimizer") else policy.optimizer

    def _on_rollout_end(self) -> None:
        w = self.weight(self.num_timesteps)
        self.history.append((self.num_timesteps, w))
        self.logger.record("transfer/kickstart_weight", w)
        if w <= 0:
            return
        obs = self._observations()
        if obs is None:
            return
        optimizer = self._optimizer()
        losses = []
        for _ in range(self.epochs):
            perm = torch.randperm(obs.shape[0])
            for start in range(0, obs.shape[0], self.batch_size):
                batch = obs[perm[start:start + self.batch_size]]
                loss = w * self._loss(batch)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                losses.append(float(loss.detach()) / w)
        self.logger.record("transfer/kickstart_loss", float(np.mean(losses)))

    def _on_step(self) -> bool:
        return True


def combine_moments(count_a: float, mean_a: np.ndarray, var_a: np.ndarray, count_b: float, mean_b: np.ndarray,
                    var_b: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Count, mean and (population) variance of the union of two samples from theirs (Chan et al.);
    ``mean/var: (features,)``. An empty sample (count 0) leaves the other as it is."""
    count = count_a + count_b
    if count_a == 0 or count_b == 0:
        return (count, mean_b.copy(), var_b.copy()) if count_a == 0 else (count, mean_a.copy(), var_a.copy())
    delta = mean_b - mean_a
    mean = mean_a + delta * count_b / count
    m2 = var_a * count_a + var_b * count_b + delta ** 2 * count_a * count_b / count
    return count, mean, m2 / count


def blend_moments(weight: float, mean_a: np.ndarray, var_a: np.ndarray, mean_b: np.ndarray,
                  var_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of the mixture ``weight * A + (1 - weight) * B`` of two distributions;
    ``mean/var: (features,)``."""
    mean = weight * mean_a + (1 - weight) * mean_b
    var = weight * (var_a + (mean_a - mean) ** 2) + (1 - weight) * (var_b + (mean_b - mean) ** 2)
    return mean, var


class AdaptNormCallback(BaseCallback):
    """The adaptation phase of :class:`AdaptNorm`: for the first ``adapt_steps`` env steps the training
    ``VecNormalize`` keeps the source's statistics frozen while the raw observations are accumulated apart;
    then they are swapped in (blended with the source's with weight ``source_weight``) and ``VecNormalize``
    updates them again. ``train()`` is skipped after every rollout collected in the phase: the model's
    ``train`` is shadowed by a no-op only between that rollout's end and the train() call (removed at once,
    and at the next rollout start or the end of training), so no weight, optimizer state or target network
    moves. Logs ``transfer/adapt_norm_phase`` (1 while frozen) and, at the swap, ``transfer/adapt_norm_shift``
    (mean over features of ``|new mean - source mean| / source std``).
    """

    def __init__(self, adapt_steps: int, source_weight: float = 0.0) -> None:
        super().__init__()
        self.adapt_steps = int(adapt_steps)
        self.source_weight = float(source_weight)
        self.count = 0.0
        self.mean: np.ndarray | None = None
        self.var: np.ndarray | None = None
        self.done = False
        self.swapped_at: int | None = None
        self.skipped = 0
        self._frozen_rollout = False

    @property
    def vecnorm(self) -> VecNormalize:
        env = unwrap_vec_normalize(self.model.get_env())
        if env is None:
            raise TransferError("adapt_norm: the training env is not a VecNormalize")
        return env

    def _accumulate(self, obs: np.ndarray) -> None:
        batch = np.asarray(obs, dtype=np.float64).reshape(len(obs), -1)
        if self.mean is None or self.var is None:
            self.mean, self.var = np.zeros(batch.shape[1]), np.ones(batch.shape[1])
        self.count, self.mean, self.var = combine_moments(self.count, self.mean, self.var, float(len(batch)),
                                                          batch.mean(axis=0), batch.var(axis=0))

    def _swap(self) -> None:
        vec = self.vecnorm
        rms = vec.obs_rms
        src_mean, src_var = np.array(rms.mean, dtype=np.float64), np.array(rms.var, dtype=np.float64)
        if self.mean is None or self.var is None:  # cannot happen: _on_step accumulates before swapping
            raise TransferError("adapt_norm: no target observation was seen before the swap")
        mean, var = blend_moments(self.source_weight, src_mean, src_var, self.mean, self.var)
        shape = rms.mean.shape
        rms.mean, rms.var, rms.count = mean.reshape(shape), var.reshape(shape), float(self.count)
        vec.training = True
        self.done, self.swapped_at = True, int(self.num_timesteps)
        shift = np.abs(mean - src_mean) / np.sqrt(src_var + vec.epsilon)
        self.logger.record("transfer/adapt_norm_shift", float(np.mean(shift)))

    def _skip_train(self, *args: Any, **kwargs: Any) -> None:
        self._unshadow()
        self.skipped += 1

    def _unshadow(self) -> None:
        self.model.__dict__.pop("train", None)

    def _on_training_start(self) -> None:
        self.vecnorm.training = self.done  # also on resume: attach() left it off, a finished phase turns it on
        if not self.done and self.num_timesteps == 0 and self.count == 0:
            self._accumulate(self.vecnorm.get_original_obs())  # the reset observations of learn()

    def _on_rollout_start(self) -> None:
        self._unshadow()
        self._frozen_rollout = not self.done

    def _on_step(self) -> bool:
        if not self.done:
            self._accumulate(self.vecnorm.get_original_obs())
            if self.num_timesteps >= self.adapt_steps:
                self._swap()
        return True

    def _on_rollout_end(self) -> None:
        self.logger.record("transfer/adapt_norm_phase", float(self._frozen_rollout))
        if self._frozen_rollout:
            self.model.train = self._skip_train  # type: ignore[method-assign]

    def _on_training_end(self) -> None:
        self._unshadow()

    def state_dict(self) -> dict[str, Any]:
        return {"count": self.count, "mean": None if self.mean is None else self.mean.tolist(),
                "var": None if self.var is None else self.var.tolist(), "done": self.done,
                "swapped_at": self.swapped_at, "skipped": self.skipped}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.count = float(state["count"])
        self.mean = None if state["mean"] is None else np.array(state["mean"], dtype=np.float64)
        self.var = None if state["var"] is None else np.array(state["var"], dtype=np.float64)
        self.done, self.swapped_at = bool(state["done"]), state["swapped_at"]
        self.skipped = int(state["skipped"])
