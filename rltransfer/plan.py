"""The per-tensor transfer plan: how each tensor of a target policy is filled from a source policy.

:func:`compute_plan` resolves the observation and action mappings (:func:`resolve_obs_map`,
:func:`resolve_action_map`) and returns a :class:`TransferPlan`, which says for every tensor of the target
policy whether it is copied, sliced, padded, re-initialized or left at its initialization, and why, together
with the target state dict it produces. The strategy is only consulted through its hooks (``reinit``,
``mark``, ``to_dict``, see :class:`PlanStrategy`); the strategies themselves live in
:mod:`rltransfer.strategies`, and running a transfer in :mod:`rltransfer.transfer`.

Shape-aware rules:

* a larger observation copies the known input columns and zero-initializes the new ones, so the
  transferred network computes the same function on the shared features;
* a smaller or reordered observation needs an explicit ``obs_map`` (target index -> source index);
* a different action count or dimension copies the matching output rows and initializes the rest;
* observation-normalization statistics follow the same mapping (:func:`map_normalization`).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm

from rltransfer.errors import ConfigError, IncompatibleSpacesError, TransferError, unknown_name
from rltransfer.normalization import NormalizationStats
from rltransfer.sb3layout import POLICY_CLASS, READ_ONLY, SHARED_LAYOUTS, Role, shared_layout, tensor_roles
from rltransfer.sb3layout import online_twin as _online_twin
from rltransfer.sb3layout import role_text as _role_text

if TYPE_CHECKING:
    from rltransfer.bundle import LoadedPolicy

#: Pairs of different algorithms whose policies share a layout, so (some of) their tensors correspond
#: (:data:`rltransfer.sb3layout.SHARED_LAYOUTS` says which and why).
COMPATIBLE = set(SHARED_LAYOUTS)


class PlanStrategy(Protocol):
    """What :func:`compute_plan` asks of a strategy (:class:`rltransfer.strategies.Strategy` provides it)."""

    def to_dict(self) -> dict[str, Any]: ...

    def reinit(self, name: str, role: Role) -> str | None: ...

    def mark(self, tensor: TensorPlan, role: Role) -> None: ...


def check_algorithms(source: str, target: str) -> None:
    """Refuse a pair of algorithms whose policies share no layout, or one that cannot be transferred at all.

    Allowed: the same algorithm, and the pairs of :data:`COMPATIBLE` (PPO <-> A2C <-> TRPO, DDPG <-> TD3,
    SAC <-> TQC actors), which the caller asks for explicitly (``--algo``).

    Raises:
        TransferError: naming the pair, why its tensors do not correspond, and what is supported.
    """
    for algo in (source, target):
        if algo in READ_ONLY:
            side = "source" if algo == source else "target"
            raise TransferError(f"cannot transfer {source.upper()} -> {target.upper()}: {algo.upper()} cannot be "
                                f"a transfer {side}: {READ_ONLY[algo]}")
    if shared_layout(source, target) is not None:
        return
    pairs = ", ".join(" <-> ".join(sorted(a.upper() for a in pair)) for pair in SHARED_LAYOUTS)
    raise TransferError(
        f"cannot transfer {source.upper()} -> {target.upper()}: the policies are different classes "
        f"({POLICY_CLASS.get(source, '?')} vs {POLICY_CLASS.get(target, '?')}), so their tensors do not "
        f"correspond. Supported: the same algorithm, or (with --algo) {pairs} (SAC <-> TQC: actors only)."
    )


# ------------------------------------------------------------------------------------------ space mapping


def flat_dim(space: gym.Space) -> int:
    if isinstance(space, gym.spaces.Discrete):
        return int(space.n)
    if isinstance(space, gym.spaces.Box):
        return int(np.prod(space.shape))
    if isinstance(space, gym.spaces.Dict):
        raise IncompatibleSpacesError(_DICT_REFUSAL.format(keys=list(space.spaces)))
    raise IncompatibleSpacesError(f"transfer supports Box and Discrete spaces, got {space}")


_DICT_REFUSAL = (
    "Dict observation spaces (keys {keys}) are not supported for transfer: their features are the "
    "concatenation SB3's CombinedExtractor builds, which no env family here produces and which --obs-map cannot "
    "address; inspect and act with such a policy, or transfer from an agent with a Box observation"
)


def _describe(space: gym.Space) -> str:
    if isinstance(space, gym.spaces.Discrete):
        return f"Discrete({space.n})"
    if isinstance(space, gym.spaces.Dict):
        return "Dict(" + ", ".join(f"{k}: {_describe(v)}" for k, v in space.spaces.items()) + ")"
    return f"Box{tuple(space.shape)}"


ObsMapEntry = int | str | None


def resolve_obs_map(
    source: gym.Space,
    target: gym.Space,
    obs_map: Sequence[ObsMapEntry] | str | None,
    source_names: Sequence[str] | None = None,
    target_names: Sequence[str] | None = None,
) -> list[int | None]:
    """Target observation index -> source index (None: a feature the source never saw).

    ``obs_map`` entries are source indices, source feature names, or None; ``"auto"`` maps every target
    feature to the source feature of the same name. Without a map, a target with at least as many features
    keeps the source's features in place and treats the extra ones as new.
    """
    for space in (source, target):
        if isinstance(space, gym.spaces.Dict):
            raise IncompatibleSpacesError(_DICT_REFUSAL.format(keys=list(space.spaces)))
    if not isinstance(source, gym.spaces.Box) or not isinstance(target, gym.spaces.Box):
        raise IncompatibleSpacesError(
            f"Observation spaces must be Box for weight transfer: {_describe(source)} -> {_describe(target)}"
        )
    n_src, n_tgt = flat_dim(source), flat_dim(target)
    if obs_map is None:
        if n_tgt < n_src:
            raise IncompatibleSpacesError(
                f"Observation spaces do not match: source {_describe(source)} != target {_describe(target)}; the "
                f"target has fewer features, so say which source feature each target feature is with an "
                f"explicit mapping (--obs-map: {n_tgt} entries, each a source index 0..{n_src - 1}, a source "
                "feature name, or '-' for new; or 'auto' to match feature names)"
            )
        return [i if i < n_src else None for i in range(n_tgt)]
    if isinstance(obs_map, str):
        if obs_map != "auto":
            raise ConfigError(f"obs_map must be a list or 'auto', got {obs_map!r}")
        if source_names is None or target_names is None:
            raise IncompatibleSpacesError(
                "obs_map 'auto' needs feature names on both sides; "
                f"source names: {'known' if source_names else 'unknown'}, "
                f"target names: {'known' if target_names else 'unknown'} (env YAML key 'observation_names')"
            )
        obs_map = [name if name in source_names else None for name in target_names]
    mapping: list[int | None] = []
    for entry in obs_map:
        if isinstance(entry, str):
            if source_names is None:
                raise IncompatibleSpacesError(
                    f"obs_map names feature {entry!r}, but the source's observation has no feature names"
                )
            if entry not in source_names:
                raise unknown_name("source observation feature", entry, source_names, where="obs_map")
            mapping.append(list(source_names).index(entry))
        else:
            mapping.append(entry)
    if len(mapping) != n_tgt:
        raise IncompatibleSpacesError(
            f"obs_map has {len(mapping)} entries but the target observation {_describe(target)} has {n_tgt} features"
        )
    for i in mapping:
        if i is not None and not 0 <= i < n_src:
            raise IncompatibleSpacesError(
                f"obs_map entry {i} is not a source feature index (source {_describe(source)}: 0..{n_src - 1})"
            )
    return mapping


def resolve_action_map(
    source: gym.Space, target: gym.Space, action_map: Sequence[int | None] | None
) -> list[int | None]:
    """Target action index (or dimension) -> source index (None: a new action, initialized)."""
    if type(source) is not type(target):
        raise IncompatibleSpacesError(
            f"Action spaces do not match: source {_describe(source)} and target {_describe(target)} are of "
            "different kinds (discrete vs continuous)"
        )
    n_src, n_tgt = flat_dim(source), flat_dim(target)
    if action_map is None:
        return [i if i < n_src else None for i in range(n_tgt)]
    mapping = list(action_map)
    if len(mapping) != n_tgt or any(i is not None and not 0 <= i < n_src for i in mapping):
        raise IncompatibleSpacesError(
            f"action_map {mapping} must have {n_tgt} entries of source action indices 0..{n_src - 1} or None"
        )
    return mapping


def parse_index_map(text: str | None, where: str, names: bool = False) -> list[ObsMapEntry] | str | None:
    """``"0,1,-,3"`` -> ``[0, 1, None, 3]``; with ``names``, entries may also be feature names and the whole
    map may be ``"auto"``."""
    if text is None:
        return None
    if names and text.strip() == "auto":
        return "auto"
    out: list[ObsMapEntry] = []
    for part in text.split(","):
        part = part.strip()
        if part in ("-", "new", "none", ""):
            out.append(None)
            continue
        try:
            out.append(int(part))
        except ValueError:
            if names and re.fullmatch(r"[A-Za-z_][\w.]*", part):
                out.append(part)
                continue
            valid = "integers, feature names or '-'" if names else "integers or '-'"
            raise ConfigError(f"{where}: entries must be {valid}, got {part!r} in {text!r}") from None
    return out


def map_normalization(
    stats: NormalizationStats | None, obs_map: list[int | None]
) -> NormalizationStats | None:
    """Normalization statistics of the target's features: mapped ones from the source, new ones (0, 1)."""
    if stats is None:
        return None
    mean = np.array([stats.obs_mean[i] if i is not None else 0.0 for i in obs_map])
    var = np.array([stats.obs_var[i] if i is not None else 1.0 for i in obs_map])
    out = copy.deepcopy(stats)
    out.obs_mean, out.obs_var = mean, var
    return out


# ---------------------------------------------------------------------------------------------- the plan


@dataclass
class TensorPlan:
    """What happens to one tensor of the target policy."""

    name: str
    action: str  # copy | slice | pad | slice+pad | map | reinit | init | sync
    reason: str
    target_shape: list[int]
    source_name: str | None = None
    source_shape: list[int] | None = None
    trainable: bool = True
    lr_scale: float = 1.0
    role: str = ""

    @property
    def transferred(self) -> bool:
        return self.action in ("copy", "slice", "pad", "slice+pad", "map")


@dataclass
class TransferPlan:
    """The per-tensor report of a transfer, plus what was mapped and why."""

    source: str
    source_algo: str
    target_algo: str
    strategy: dict[str, Any]
    source_observation: str
    target_observation: str
    source_action: str
    target_action: str
    obs_map: list[int | None]
    action_map: list[int | None]
    tensors: list[TensorPlan] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.tensors:
            out[t.action] = out.get(t.action, 0) + 1
        return out

    def summary(self) -> str:
        counts = ", ".join(f"{n} {a}" for a, n in sorted(self.counts().items()))
        frozen = sum(not t.trainable for t in self.tensors)
        return f"{len(self.tensors)} tensors: {counts}; {frozen} frozen"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "summary": self.summary()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TransferPlan:
        """Read back :meth:`to_dict` (``transfer_plan.json``)."""
        fields = {k: v for k, v in data.items() if k not in ("summary", "tensors")}
        return cls(**fields, tensors=[TensorPlan(**t) for t in data.get("tensors", [])])

    def markdown(self) -> str:
        lines = [
            f"**{self.source}** ({self.source_algo}) -> {self.target_algo}, strategy `{self.strategy['name']}`",
            f"observation {self.source_observation} -> {self.target_observation}, "
            f"action {self.source_action} -> {self.target_action}", "",
            "| tensor | action | source shape | target shape | trainable | lr x | why |",
            "|---|---|---|---|---|---|---|",
        ]
        for t in self.tensors:
            lines.append(
                f"| {t.name} | {t.action} | {t.source_shape} | {t.target_shape} | {'yes' if t.trainable else 'no'} "
                f"| {t.lr_scale:g} | {t.reason} |"
            )
        lines += ["", *[f"- {n}" for n in self.notes]]
        return "\n".join(lines)


def _axis_index(role: Role, axis: int, obs_map: list[int | None], act_map: list[int | None],
                src_obs: int) -> list[int | None] | None:
    """For one axis of a tensor: target index -> source index, or None if the axis is not mapped."""
    if role.output_axis == axis:
        return act_map
    if axis == 1 and role.input == "obs":
        return obs_map
    if axis == 1 and role.input == "obs+act":
        return list(obs_map) + [None if a is None else src_obs + a for a in act_map]
    return None


def plan_tensor(
    name: str, role: Role, source: torch.Tensor | None, target: torch.Tensor, obs_map: list[int | None],
    act_map: list[int | None], src_obs: int,
) -> tuple[TensorPlan, torch.Tensor | None]:
    """Plan one tensor and compute its new value (None: keep the target's initialization)."""
    plan = TensorPlan(name=name, action="init", reason="", target_shape=list(target.shape), role=_role_text(role))
    if source is None:
        plan.reason = "no tensor of this name in the source; keeps its fresh initialization"
        return plan, None
    plan.source_name, plan.source_shape = name, list(source.shape)
    if source.dim() != target.dim():
        plan.action, plan.reason = "reinit", f"rank differs ({source.dim()} vs {target.dim()})"
        return plan, None
    value = target.detach().clone()
    index: list[Any] = []
    kinds: set[str] = set()
    new_entries: list[tuple[int, list[int]]] = []
    for axis in range(target.dim()):
        n_src, n_tgt = source.shape[axis], target.shape[axis]
        mapping = _axis_index(role, axis, obs_map, act_map, src_obs)
        if mapping is None:
            if n_src != n_tgt:
                plan.action = "reinit"
                plan.reason = f"hidden size differs on axis {axis} ({n_src} vs {n_tgt}); nothing corresponds"
                return plan, None
            index.append(list(range(n_tgt)))
            continue
        if len(mapping) != n_tgt:
            plan.action = "reinit"
            plan.reason = f"axis {axis}: mapping of {len(mapping)} entries for {n_tgt} target entries"
            return plan, None
        kept = [(t, s) for t, s in enumerate(mapping) if s is not None and s < n_src]
        missing = [t for t, s in enumerate(mapping) if s is None or s >= n_src]
        if missing:
            kinds.add("pad")
            new_entries.append((axis, missing))
        if n_src > len(kept):
            kinds.add("slice")
        if any(t != s for t, s in kept):
            kinds.add("map")
        index.append(kept)
    # copy the corresponding block
    src_idx, tgt_idx = [], []
    for axis, entry in enumerate(index):
        if entry and isinstance(entry[0], tuple):
            tgt_idx.append([t for t, _ in entry])
            src_idx.append([s for _, s in entry])
        else:
            tgt_idx.append(entry)
            src_idx.append(entry)
    if all(len(i) > 0 for i in tgt_idx):
        value[np.ix_(*tgt_idx)] = source.detach().to(value.dtype)[np.ix_(*src_idx)]
    reasons = []
    for axis, missing in new_entries:
        if role.output_axis == axis:
            reasons.append(f"{len(missing)} new action entries keep their fresh initialization")
        else:
            sl: list[Any] = [slice(None)] * target.dim()
            sl[axis] = missing
            value[tuple(sl)] = 0.0
            reasons.append(f"{len(missing)} new input columns set to zero (same function on shared features)")
    if not kinds:
        plan.action, plan.reason = "copy", "same name and shape"
    else:
        plan.action = "+".join(k for k in ("slice", "pad") if k in kinds) or "map"
        if "map" in kinds and plan.action != "map":
            plan.action += "+map"
        if "slice" in kinds:
            reasons.insert(0, "source entries without a target counterpart dropped")
        if "map" in kinds:
            reasons.insert(0, "entries reordered by the observation/action mapping")
        plan.reason = "; ".join(reasons)
    return plan, value


def compute_plan(
    source: LoadedPolicy, target: BaseAlgorithm, target_algo: str, strategy: PlanStrategy,
    obs_map: Sequence[ObsMapEntry] | str | None = None, action_map: Sequence[int | None] | None = None,
    source_names: Sequence[str] | None = None, target_names: Sequence[str] | None = None,
) -> tuple[TransferPlan, dict[str, torch.Tensor]]:
    """The transfer plan and the target state dict it produces (not yet loaded)."""
    check_algorithms(source.algo, target_algo)
    omap = resolve_obs_map(source.observation_space, target.observation_space, obs_map, source_names, target_names)
    amap = resolve_action_map(source.action_space, target.action_space, action_map)
    src_sd = source.state_dict
    tgt_sd = target.policy.state_dict()
    roles = tensor_roles(target_algo, list(tgt_sd), {k: tuple(v.shape) for k, v in tgt_sd.items()})
    plan = TransferPlan(
        source=str(source.path), source_algo=source.algo, target_algo=target_algo,
        strategy=strategy.to_dict(), source_observation=_describe(source.observation_space),
        target_observation=_describe(target.observation_space), source_action=_describe(source.action_space),
        target_action=_describe(target.action_space), obs_map=omap, action_map=amap,
    )
    new_sd: dict[str, torch.Tensor] = {}
    src_obs = flat_dim(source.observation_space)
    prefixes, layout_why = shared_layout(source.algo, target_algo) or (None, "")
    cross = source.algo != target_algo
    src_names, tgt_names = source.algo.upper(), target_algo.upper()
    for name, tensor in tgt_sd.items():
        role = roles[name]
        if role.target_net:
            continue
        if prefixes is not None and not name.startswith(prefixes):
            plan.tensors.append(TensorPlan(
                name, "init", f"{src_names} -> {tgt_names} transfers the {'/'.join(p.rstrip('.') for p in prefixes)} "
                f"only: {layout_why}; keeps its fresh initialization", list(tensor.shape),
                name if name in src_sd else None, list(src_sd[name].shape) if name in src_sd else None,
                role=_role_text(role)))
            continue
        why = strategy.reinit(name, role)
        if why is not None:
            entry = TensorPlan(name, "reinit", why, list(tensor.shape), name, list(src_sd[name].shape) if name in src_sd else None,
                               role=_role_text(role))
            plan.tensors.append(entry)
            continue
        entry, value = plan_tensor(name, role, src_sd.get(name), tensor, omap, amap, src_obs)
        if cross and name not in src_sd:
            entry.reason = (f"{tgt_names} has this tensor ({_role_text(role)}) and the {src_names} source has none "
                            "(a network the source algorithm does not have); keeps its fresh initialization")
        plan.tensors.append(entry)
        if value is not None:
            new_sd[name] = value
    for name, tensor in tgt_sd.items():
        role = roles[name]
        if not role.target_net:
            continue
        twin = _online_twin(name)
        plan.tensors.append(TensorPlan(name, "sync", f"copy of online {twin} after transfer", list(tensor.shape),
                                       role=_role_text(role)))
        if twin in new_sd:
            new_sd[name] = new_sd[twin].clone()
    unused = sorted(set(src_sd) - set(tgt_sd))
    if unused:
        plan.notes.append(f"source tensors with no target counterpart (skipped): {unused}")
    if prefixes is not None:
        left = sorted(k for k in src_sd if not k.startswith(prefixes) and k in tgt_sd)
        if left:
            plan.notes.append(f"{src_names} -> {tgt_names}: source tensors not transferred ({layout_why}): {left}")
    if cross:
        plan.notes.append(f"{source.algo} -> {target_algo}: {layout_why}")
    plan.notes.append("source optimizer state not carried over; target hyperparameters and schedules apply; "
                      "num_timesteps starts at 0")
    for t in plan.tensors:
        if t.transferred and not roles[t.name].target_net:
            strategy.mark(t, roles[t.name])
    check = getattr(strategy, "check", None)
    if check is not None:
        check(plan, roles)
    return plan, new_sd
