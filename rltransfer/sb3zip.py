"""Read Stable-Baselines3 ``.zip`` agents without unpickling anything.

A model saved by SB3's ``model.save()`` is a zip with a ``data`` member (JSON) and torch state dicts
(``policy.pth`` and friends). Every value of ``data`` that is not plain JSON is stored as a base64
cloudpickle blob under ``":serialized:"``, next to a few human-readable fields (``":type:"``, the
object's JSON-able attributes, and ``str()`` of the others). Unpickling such a blob runs whatever
code its author chose, so this module never decodes it: spaces, policy class, network architecture
and hyperparameters are rebuilt from the readable fields alone, and tensors are loaded with
``torch.load(..., weights_only=True)``.

This module holds the reader itself: :func:`read_sb3_zip` and its :class:`SB3Archive`, the inference of
the algorithm and policy, the reading of ``policy_kwargs`` and hyperparameters, and the checks and
conversions of network architectures (:func:`check_net_arch`, :func:`convert_net_arch`). Its parts live
beside it:

* :mod:`rltransfer.spaces`: gymnasium spaces as JSON (:func:`space_to_json`, :func:`space_from_json`,
  re-exported here) and rebuilt from SB3's readable fields;
* :mod:`rltransfer.torchfile`: zip members inflated within limits, torch files checked and loaded
  safely (:func:`check_tensors` and :data:`MAX_WEIGHT_MAGNITUDE`, re-exported here);
* :mod:`rltransfer.sb3layout`: what SB3 names and how it lays out a state dict (algorithms, activation
  allowlist, layer patterns); :data:`ACTIVATIONS` and :data:`ALGOS` are re-exported here.
"""

from __future__ import annotations

import json
import re
import struct
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from rltransfer import limits, sb3layout
from rltransfer.errors import BundleError, ConfigError, ResourceLimitError, unknown_name
from rltransfer.limits import short_repr
from rltransfer.sb3layout import infer_net_arch, split_shared_layers
from rltransfer.spaces import CLASS_REPR, flat_size, space_from_json, space_from_sb3, space_to_json
from rltransfer.torchfile import (
    MAX_WEIGHT_MAGNITUDE,
    MemberBudget,
    check_central_directory,
    check_tensors,
    load_tensors,
    read_member,
)

__all__ = [
    "ACTIVATIONS",
    "ALGOS",
    "MAX_WEIGHT_MAGNITUDE",
    "ON_POLICY_ALGOS",
    "SB3Archive",
    "activation_from_name",
    "check_net_arch",
    "check_tensors",
    "convert_net_arch",
    "read_sb3_zip",
    "space_from_json",
    "space_to_json",
]

#: Algorithms whose zips :func:`read_sb3_zip` understands (re-exported from :mod:`rltransfer.sb3layout`).
ALGOS = sb3layout.ALGOS
#: Algorithms built on SB3's ``ActorCriticPolicy`` (net_arch is ``dict(pi=..., vf=...)``).
ON_POLICY_ALGOS: frozenset[str] = frozenset(sb3layout.ON_POLICY)
#: Activation functions a policy may name (:func:`rltransfer.sb3layout.activation_classes`).
ACTIVATIONS: dict[str, type[torch.nn.Module]] = sb3layout.activation_classes()

# policy_kwargs entries that are kept (JSON scalars) when readable.
_KEPT_POLICY_KWARGS = frozenset(
    {
        "ortho_init",
        "log_std_init",
        "use_sde",
        "squash_output",
        "full_std",
        "use_expln",
        "clip_mean",
        "n_critics",
        "share_features_extractor",
        "normalize_images",
        "n_quantiles",
        "with_bias",
        "lstm_hidden_size",
        "n_lstm_layers",
        "shared_lstm",
        "enable_critic_lstm",
        "batch_norm",
        "batch_norm_momentum",
        "batch_norm_eps",
        "renorm_warmup_steps",
    }
)
# policy_kwargs entries that are dropped on purpose (they do not describe the network).
_DROPPED_POLICY_KWARGS = frozenset({"device", "optimizer_class", "optimizer_kwargs"})
# Default features extractors: dropping them changes nothing.
_DEFAULT_EXTRACTORS = frozenset({"FlattenExtractor", "NatureCNN", "CombinedExtractor"})

# Top-level ``data`` entries copied into ``SB3Archive.hyperparams`` when they are readable scalars.
_HYPERPARAM_KEYS: tuple[str, ...] = (
    "learning_rate",
    "gamma",
    "gae_lambda",
    "n_steps",
    "batch_size",
    "n_epochs",
    "ent_coef",
    "vf_coef",
    "max_grad_norm",
    "clip_range",
    "clip_range_vf",
    "normalize_advantage",
    "target_kl",
    "use_sde",
    "sde_sample_freq",
    "buffer_size",
    "learning_starts",
    "tau",
    "gradient_steps",
    "train_freq",
    "optimize_memory_usage",
    "target_update_interval",
    "exploration_fraction",
    "exploration_initial_eps",
    "exploration_final_eps",
    "policy_delay",
    "target_policy_noise",
    "target_noise_clip",
    "use_sde_at_warmup",
    "target_entropy",
    # TRPO
    "cg_max_steps",
    "cg_damping",
    "line_search_shrinking_factor",
    "line_search_max_iter",
    "n_critic_updates",
    "sub_sampling_factor",
    # TQC
    "top_quantiles_to_drop_per_net",
    # ARS
    "n_delta",
    "n_top",
    "alive_bonus_offset",
    "zero_policy",
    "n_eval_episodes",
)

_INIT_REPR = re.compile(r"<function ([A-Za-z_]\w*)\.__init__ at ")
_METHOD_REPR = re.compile(r"<function ([A-Za-z_]\w*)\.\w+ at ")
_CONSTANT_SCHEDULE = re.compile(r"^ConstantSchedule\(val=([^)]+)\)$")


@dataclass
class SB3Archive:
    """What could be read from an SB3 zip without running any code from it.

    Attributes:
        path: the zip that was read.
        algo: lower-case algorithm name, one of :data:`ALGOS`.
        sb3_version: content of ``_stable_baselines3_version``, or ``None`` for pre-1.0 zips.
        observation_space: observation space rebuilt from the readable fields.
        action_space: action space rebuilt from the readable fields.
        policy_class: name of the policy class as read (e.g. ``"ActorCriticPolicy"``).
        policy_kwargs: JSON-able keyword arguments for today's SB3 policy of ``algo``; ``net_arch``
            in today's format, ``activation_fn`` as a name from :data:`ACTIVATIONS`, and ``use_sde``
            for PPO/A2C/SAC (an algorithm argument in SB3: :meth:`sb3_kwargs` moves it there).
        hyperparams: readable algorithm hyperparameters (JSON scalars only).
        num_timesteps: timesteps the agent was trained for, if recorded.
        n_envs: number of parallel environments used in training, if recorded.
        state_dict: the policy's tensors, keys as today's SB3 names them.
        notes: human-readable remarks about what was inferred, converted or dropped.
        dropped: policy_kwargs entries left out on purpose, with their readable value.
        pytorch_variables: extra tensors (``pytorch_variables.pth``/``tensors.pth``), e.g. SAC's
            ``log_ent_coef``; entries saved as ``None`` (SB3 1.x SAC/TQC with a fixed ``ent_coef``) are
            left out, with a note.
        unsupported: why this policy cannot be rebuilt, evaluated or transferred (an image/CNN policy, a
            custom features extractor), or ``None``. Inspecting it still works.
    """

    path: Path
    algo: str
    sb3_version: str | None
    observation_space: spaces.Space
    action_space: spaces.Space
    policy_class: str
    policy_kwargs: dict[str, Any]
    hyperparams: dict[str, Any]
    num_timesteps: int | None
    n_envs: int | None
    state_dict: dict[str, torch.Tensor]
    notes: list[str] = field(default_factory=list)
    dropped: dict[str, Any] = field(default_factory=dict)
    pytorch_variables: dict[str, torch.Tensor] = field(default_factory=dict)
    unsupported: str | None = None

    @property
    def sb3_policy_alias(self) -> str:
        """The SB3 policy alias to pass to today's algorithm class (``"MlpPolicy"``, ``"LinearPolicy"``,
        ``"MultiInputPolicy"``, ``"MlpLstmPolicy"``...)."""
        return sb3layout.policy_alias(self.algo, self.policy_class)

    def sb3_policy_kwargs(self) -> dict[str, Any]:
        """``policy_kwargs`` ready for today's SB3 constructor.

        ``activation_fn`` becomes a class and ``use_sde`` is removed (SB3 takes it as an algorithm
        argument, see :meth:`sb3_kwargs`).

        Raises:
            ConfigError: if the activation is not in :data:`ACTIVATIONS`.
        """
        kwargs = json.loads(json.dumps(self.policy_kwargs))
        kwargs.pop("use_sde", None)
        if "activation_fn" in kwargs:
            kwargs["activation_fn"] = activation_from_name(
                kwargs["activation_fn"], where=f"{self.path}: policy_kwargs"
            )
        return kwargs

    def sb3_kwargs(self) -> dict[str, Any]:
        """Keyword arguments that rebuild this policy's architecture with today's SB3.

        Use as ``PPO(archive.sb3_policy_alias, env, **archive.sb3_kwargs())``; the result holds
        ``policy_kwargs`` and, for algorithms with gSDE support (PPO, A2C, SAC), ``use_sde``.
        """
        kwargs: dict[str, Any] = {"policy_kwargs": self.sb3_policy_kwargs()}
        if self.algo in sb3layout.SDE_ALGOS:
            kwargs["use_sde"] = bool(self.policy_kwargs.get("use_sde", False))
        return kwargs


# --------------------------------------------------------------------------------------------------
# Activations


def activation_from_name(name: str, where: str = "") -> type[torch.nn.Module]:
    """Return the activation class for an allowlisted name.

    ``"ReLU"``, ``"nn.ReLU"``, ``"th.nn.ReLU"`` and ``"torch.nn.ReLU"`` are all accepted.

    Args:
        name: activation name.
        where: file or key the name came from, quoted in the error.

    Raises:
        UnknownNameError: (a :class:`ConfigError`) for names outside :data:`ACTIVATIONS`.
    """
    if not isinstance(name, str):
        raise ConfigError(
            f"activation function{' in ' + where if where else ''} must be a name such as 'ReLU', "
            f"got {short_repr(name)}"
        )
    short = name
    for prefix in ("torch.nn.modules.activation.", "torch.nn.modules.linear.", "torch.nn.", "th.nn.", "nn."):
        if short.startswith(prefix):
            short = short[len(prefix) :]
            break
    if short not in ACTIVATIONS:
        raise unknown_name("activation function", name, ACTIVATIONS, where)
    return ACTIVATIONS[short]


def _activation_name_from_repr(text: str) -> str:
    """``"<class 'torch.nn.modules.activation.ReLU'>"`` -> ``"ReLU"`` (plain names pass through)."""
    match = CLASS_REPR.fullmatch(text.strip())
    dotted = match.group(1) if match else text.strip()
    return dotted.rsplit(".", 1)[-1]


# --------------------------------------------------------------------------------------------------
# Network architecture


def _int_list(value: Any, where: str) -> list[int]:
    if not isinstance(value, (list, tuple)) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value
    ):
        raise ConfigError(f"{where}: expected a list of positive layer sizes, got {short_repr(value)}")
    too_wide = [v for v in value if v > limits.MAX_LAYER_WIDTH]
    if too_wide:
        raise ResourceLimitError(
            f"{where}: layer width {short_repr(too_wide[0])} is more than the "
            f"{limits.MAX_LAYER_WIDTH:,} allowed (MAX_LAYER_WIDTH)"
        )
    return [int(v) for v in value]


def _chain_parameters(in_features: int, widths: list[int], out_features: int) -> int:
    """Weights and biases of Linear layers ``in -> widths... -> out`` (``out`` 0: no output layer)."""
    total, prev = 0, in_features
    for width in [*widths, *([out_features] if out_features else [])]:
        total += prev * width + width
        prev = width
    return total


def check_net_arch(
    net_arch: Any,
    where: str,
    in_features: int = 1,
    out_features: int = 1,
    copies: int = 1,
    max_parameters: int = limits.MAX_PARAMETERS,
) -> int:
    """Refuse a ``net_arch`` whose layers are too wide or whose network would be too large to build.

    Call it before building a model from a description read from a file: it costs nothing, while
    building ``net_arch=[200000, 200000]`` would allocate (and initialize) 40 billion weights.

    Args:
        net_arch: the architecture, in any format :func:`convert_net_arch` accepts (a list of widths,
            ``{"pi": [...], "vf"/"qf": [...]}``, or SB3 < 1.8's ``[shared..., dict(pi=, vf=)]``).
        where: file and key quoted in errors.
        in_features: width of the network's input (the flattened observation).
        out_features: width of each head's output layer (actions, or 1 for a value head).
        copies: how many copies of each head the model holds (e.g. 2 with target networks).
        max_parameters: the budget, :data:`rltransfer.limits.MAX_PARAMETERS` by default.

    Returns:
        The estimated number of parameters (weights and biases of the Linear layers).

    Raises:
        ResourceLimitError: a width above :data:`~rltransfer.limits.MAX_LAYER_WIDTH`, an input or
            output wider than the parameter budget allows, or more than ``max_parameters`` in all.
        ConfigError: ``net_arch`` is not a list/dict of positive integers.
    """
    if isinstance(net_arch, Mapping):
        chains = [_int_list(v, f"{where}[{short_repr(k)}]") for k, v in net_arch.items()]
    elif isinstance(net_arch, (list, tuple)):
        shared = [v for v in net_arch if not isinstance(v, Mapping)]
        heads = [v for v in net_arch if isinstance(v, Mapping)]
        shared = _int_list(shared, where)
        chains = [shared + _int_list(v, f"{where}[{short_repr(k)}]") for h in heads for k, v in h.items()]
        chains = chains or [shared]
    else:
        raise ConfigError(f"{where}: expected a list or dict of layer sizes, got {short_repr(net_arch)}")
    for name, value in (("input", in_features), ("output", out_features), ("copies", copies)):
        if not isinstance(value, int) or value < 0:
            raise ConfigError(f"{where}: {name} size must be a non-negative int, got {short_repr(value)}")
    total = copies * sum(_chain_parameters(in_features, chain, out_features) for chain in chains)
    if total > max_parameters:
        raise ResourceLimitError(
            f"{where}: net_arch {short_repr(net_arch)} with {in_features:,} inputs and {out_features:,} "
            f"outputs implies about {total:,} parameters, more than the {max_parameters:,} allowed "
            "(MAX_PARAMETERS)"
        )
    return total


def _on_policy_heads(heads: Mapping[str, Any], where: str) -> dict[str, list[int]]:
    unknown = set(heads) - {"pi", "vf"}
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}; valid keys: ['pi', 'vf']")
    return {
        "pi": _int_list(heads.get("pi", []), f"{where}['pi']"),
        "vf": _int_list(heads.get("vf", []), f"{where}['vf']"),
    }


def convert_net_arch(
    net_arch: Any, on_policy: bool, where: str = "net_arch"
) -> list[int] | dict[str, list[int]]:
    """Convert any historical SB3 ``net_arch`` into the format today's SB3 (>= 1.8) expects.

    On-policy (PPO/A2C) architectures always come out as ``{"pi": [...], "vf": [...]}``:
    ``[dict(pi=..., vf=...)]`` (SB3 < 1.8) is unwrapped, ``[64, 64]`` becomes the same layers for both
    heads, and ``[64, dict(pi=[32], vf=[16])]`` (shared layers, removed in SB3 1.8) becomes
    ``{"pi": [64, 32], "vf": [64, 16]}`` (the shared weights are duplicated, see
    :func:`rltransfer.sb3layout.split_shared_layers`). Off-policy architectures stay a list or
    ``{"pi": ..., "qf": ...}``.

    Args:
        net_arch: the architecture as read.
        on_policy: whether it belongs to an ``ActorCriticPolicy`` (PPO, A2C).
        where: quoted in error messages.

    Raises:
        ConfigError: if the value has none of the shapes above.
    """
    if on_policy:
        if isinstance(net_arch, Mapping):
            return _on_policy_heads(net_arch, where)
        if isinstance(net_arch, (list, tuple)):
            shared: list[int] = []
            heads: Mapping[str, Any] = {}
            for i, item in enumerate(net_arch):
                if isinstance(item, Mapping):
                    if i != len(net_arch) - 1:
                        raise ConfigError(
                            f"{where}: a dict(pi=..., vf=...) must be the last entry, got {short_repr(net_arch)}"
                        )
                    heads = item
                else:
                    shared.append(item)
            shared = _int_list(shared, where)
            if not heads:
                return {"pi": list(shared), "vf": list(shared)}
            separate = _on_policy_heads(heads, where)
            return {"pi": shared + separate["pi"], "vf": shared + separate["vf"]}
        raise ConfigError(f"{where}: expected a list or dict(pi=[...], vf=[...]), got {short_repr(net_arch)}")
    if isinstance(net_arch, Mapping):
        unknown = set(net_arch) - {"pi", "qf"}
        if unknown:
            raise ConfigError(f"{where}: unknown keys {sorted(unknown)}; valid keys: ['pi', 'qf']")
        return {
            "pi": _int_list(net_arch.get("pi", []), f"{where}['pi']"),
            "qf": _int_list(net_arch.get("qf", []), f"{where}['qf']"),
        }
    return _int_list(net_arch, where)




# --------------------------------------------------------------------------------------------------
# Algorithm and policy


def _policy_class_name(entry: Any) -> tuple[str, str]:
    """Return (module, class name) of the policy class from its readable fields."""
    if isinstance(entry, str):
        module, _, name = entry.rpartition(".")
        return module, name
    if not isinstance(entry, Mapping):
        return "", ""
    module = str(entry.get("__module__", ""))
    init = entry.get("__init__")
    if isinstance(init, str) and (match := _INIT_REPR.match(init)):
        return module, match.group(1)
    owners = [m.group(1) for v in entry.values() if isinstance(v, str) and (m := _METHOD_REPR.match(v))]
    if owners:
        return module, max(set(owners), key=owners.count)
    return module, ""


#: Policy modules that name one algorithm.
_MODULE_ALGO: dict[str, str] = {
    "stable_baselines3.sac.policies": "sac",
    "stable_baselines3.dqn.policies": "dqn",
    "stable_baselines3.ddpg.policies": "ddpg",
    "sb3_contrib.tqc.policies": "tqc",
    "sb3_contrib.qrdqn.policies": "qrdqn",
    "sb3_contrib.ars.policies": "ars",
    "sb3_contrib.crossq.policies": "crossq",
    "sb3_contrib.ppo_recurrent.policies": "recurrentppo",
    "sb3_contrib.common.recurrent.policies": "recurrentppo",
}
#: Policy class names (pre-1.0 zips name no module) that name one algorithm.
_CLASS_ALGO: dict[str, str] = {
    "SACPolicy": "sac", "DQNPolicy": "dqn", "TQCPolicy": "tqc", "QRDQNPolicy": "qrdqn", "ARSPolicy": "ars",
    "ARSLinearPolicy": "ars", "CrossQPolicy": "crossq", "RecurrentActorCriticPolicy": "recurrentppo",
    "RecurrentActorCriticCnnPolicy": "recurrentppo", "RecurrentMultiInputActorCriticPolicy": "recurrentppo",
}
#: Modules of ``ActorCriticPolicy``, which PPO, A2C and TRPO share.
_ACTOR_CRITIC_MODULES = frozenset({
    "stable_baselines3.common.policies", "stable_baselines3.ppo.policies", "stable_baselines3.a2c.policies",
    "sb3_contrib.trpo.policies",
})
#: Fields only one of the algorithms sharing ``ActorCriticPolicy`` saves.
_TRPO_FIELDS = frozenset({"cg_max_steps", "cg_damping", "line_search_shrinking_factor", "line_search_max_iter",
                          "n_critic_updates", "sub_sampling_factor"})
_PPO_FIELDS = frozenset({"n_epochs", "clip_range", "clip_range_vf"})
#: Fields every on-policy algorithm saves (their absence leaves PPO/A2C/TRPO undecided).
_ON_POLICY_FIELDS = frozenset({"n_steps", "gae_lambda"})
#: Modules of sb3-contrib algorithms rltransfer does not support, with why.
_UNSUPPORTED_MODULES = {
    "sb3_contrib.common.maskable.policies": "MaskablePPO (action masking needs the env's masks at every step, "
                                            "which rltransfer's env families do not provide)",
    "sb3_contrib.ppo_mask.policies": "MaskablePPO (action masking needs the env's masks at every step, which "
                                     "rltransfer's env families do not provide)",
}


@dataclass(frozen=True)
class _Inference:
    """What the readable data says about the algorithm: one name, or the candidates and what is missing."""

    algo: str | None
    candidates: tuple[str, ...] = ()
    why: str = ""


def _infer_algo(module: str, name: str, data: Mapping[str, Any]) -> _Inference:
    """The algorithm that wrote ``data``, from its policy class (module and name) and the fields only one
    algorithm saves; never by resemblance of hyperparameters."""
    keys = set(data)
    if module in _UNSUPPORTED_MODULES:
        return _Inference(None, (), f"{_UNSUPPORTED_MODULES[module]} is not supported")
    algo = _MODULE_ALGO.get(module) or (_CLASS_ALGO.get(name) if not module or module.startswith(
        ("stable_baselines3.", "sb3_contrib.")) else None)
    if algo:
        return _Inference(algo)
    td3_layout = module == "stable_baselines3.td3.policies" or (not module and name.startswith("TD3"))
    if td3_layout:
        # DDPG is TD3 with policy_delay=1 and target_noise_clip=0.0 (and one critic): SB3 saves both fields
        delay, clip = data.get("policy_delay"), data.get("target_noise_clip")
        if isinstance(delay, int) and isinstance(clip, (int, float)) and not isinstance(delay, bool):
            return _Inference("ddpg" if delay == 1 and float(clip) == 0.0 else "td3")
        return _Inference(None, ("td3", "ddpg"), "TD3Policy is used by TD3 and DDPG, and the data lacks "
                          "policy_delay/target_noise_clip, which tell them apart")
    actor_critic = module in _ACTOR_CRITIC_MODULES or (not module and "ActorCritic" in name)
    if actor_critic and (not name or "ActorCritic" in name or name in ("MlpPolicy", "CnnPolicy", "MultiInputPolicy")):
        if keys & _TRPO_FIELDS:
            return _Inference("trpo")
        if keys & _PPO_FIELDS:
            return _Inference("ppo")
        if keys & _ON_POLICY_FIELDS:
            return _Inference("a2c")  # on-policy data without PPO's or TRPO's own fields
        return _Inference(None, ("ppo", "a2c", "trpo"), "ActorCriticPolicy is used by PPO, A2C and TRPO, and "
                          "the data has none of the fields that tell them apart (n_epochs/clip_range: PPO; "
                          "cg_max_steps/line_search_*: TRPO; n_steps alone: A2C)")
    return _Inference(None, ALGOS, "")


def _default_policy_name(algo: str) -> str:
    return sb3layout.POLICY_CLASS.get(algo, "ActorCriticPolicy")


def _parse_version(version: str | None) -> tuple[int, int] | None:
    if not version:
        return None
    match = re.match(r"(\d+)\.(\d+)", version)
    return (int(match.group(1)), int(match.group(2))) if match else None


def _read_policy_kwargs(raw: Any, notes: list[str], dropped: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """Split the readable policy_kwargs into kept JSON values and dropped ones.

    Returns:
        The kept kwargs (without ``net_arch``) and the raw ``net_arch`` (``None`` if unreadable).
    """
    kept: dict[str, Any] = {}
    if raw is None:
        return kept, None
    if not isinstance(raw, Mapping):
        notes.append(f"policy_kwargs is not readable ({str(raw)[:60]!r}); using SB3 defaults")
        return kept, None
    if ":serialized:" in raw and not any(not k.startswith(":") for k in raw):
        notes.append("policy_kwargs is pickled without readable fields; using SB3 defaults")
    net_arch = None
    for key, value in raw.items():
        if key.startswith(":"):
            continue
        if key == "net_arch":
            net_arch = value
        elif key == "activation_fn":
            if isinstance(value, str):
                kept[key] = _activation_name_from_repr(value)
                if kept[key] not in ACTIVATIONS:
                    notes.append(
                        f"activation_fn {short_repr(value)} is not in the allowlist {sorted(ACTIVATIONS)}; "
                        "building this policy will fail until it is replaced"
                    )
            else:
                notes.append(f"activation_fn {short_repr(value)} is not readable; using SB3's default")
        elif key in _DROPPED_POLICY_KWARGS:
            dropped[key] = value
        elif key in ("features_extractor_class",):
            short = _activation_name_from_repr(str(value))
            dropped[key] = value
            if short not in _DEFAULT_EXTRACTORS:
                notes.append(
                    f"custom features extractor {short_repr(value)} cannot be rebuilt without its code; dropped"
                )
        elif key in _KEPT_POLICY_KWARGS and isinstance(value, (bool, int, float)):
            kept[key] = value
        else:
            dropped[key] = value
            notes.append(
                f"policy_kwargs[{key!r}] = {str(value)[:80]!r} is not a known JSON-able policy argument; dropped"
            )
    if dropped:
        notes.append(f"dropped from policy_kwargs: {', '.join(sorted(dropped))}")
    return kept, net_arch


def _constant_schedule(value: Any) -> float | None:
    """``FloatSchedule(ConstantSchedule(val=0.2))`` readable fields -> ``0.2``."""
    if isinstance(value, Mapping):
        inner = value.get("value_schedule")
        if isinstance(inner, str) and (match := _CONSTANT_SCHEDULE.match(inner.strip())):
            try:
                return float(match.group(1))
            except ValueError:
                return None
    return None


def _read_hyperparams(data: Mapping[str, Any], notes: list[str]) -> dict[str, Any]:
    hyper: dict[str, Any] = {}
    unreadable: list[str] = []
    for key in _HYPERPARAM_KEYS:
        if key not in data:
            continue
        value = data[key]
        if (
            value is None
            or isinstance(value, (bool, int, float))
            or isinstance(value, str)
            and key in ("ent_coef", "target_entropy")
            and value.startswith("auto")
        ):
            hyper[key] = value
        elif (constant := _constant_schedule(value)) is not None:
            hyper[key] = constant
        else:
            unreadable.append(key)
    # SB3 < 1.0 off-policy: train_freq=-1 with n_episodes_rollout=N means "train every N episodes".
    if (
        hyper.get("train_freq") == -1
        and isinstance(data.get("n_episodes_rollout"), int)
        and data["n_episodes_rollout"] > 0
    ):
        hyper["train_freq"] = [int(data["n_episodes_rollout"]), "episode"]
        notes.append("train_freq=-1 with n_episodes_rollout (SB3 < 1.0) converted to [n, 'episode']")
    elif isinstance(hyper.get("train_freq"), int) and hyper["train_freq"] > 0:
        hyper["train_freq"] = [hyper["train_freq"], "step"]
    if unreadable:
        notes.append(f"not readable without unpickling (left out of hyperparams): {', '.join(unreadable)}")
    return hyper


def _check_override(algo: str) -> str:
    name = str(algo).lower()
    if name not in ALGOS:
        raise unknown_name("algorithm", algo, ALGOS, "read_sb3_zip(algo=...)")
    return name


# --------------------------------------------------------------------------------------------------
# Reading the members


@dataclass
class _Members:
    """The members of an SB3 zip, read and checked (nothing interpreted yet)."""

    data: dict[str, Any]
    version: str | None
    state_dict: dict[str, torch.Tensor]
    variables: dict[str, torch.Tensor]


def _open_zip(path: Path) -> zipfile.ZipFile:
    """Open ``path`` as a zip once its central directory is known to be small."""
    if not path.exists():
        raise BundleError(f"{path}: file not found; expected an SB3 model zip")
    if not path.is_file():
        raise BundleError(f"{path}: not a file; expected an SB3 model zip")
    check_central_directory(path)
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError, struct.error) as exc:
        raise BundleError(
            f"{path}: not a readable zip archive ({short_repr(str(exc))}); expected an SB3 model zip"
        ) from exc


def _read_data(archive: zipfile.ZipFile, path: Path) -> dict[str, Any]:
    """The ``data`` member as a JSON object, within :data:`~rltransfer.limits.MAX_DATA_BYTES`."""
    raw_data = read_member(archive, "data", path, "the JSON written by SB3's data_to_json", limits.MAX_DATA_BYTES)
    try:
        data = json.loads(raw_data.decode("utf-8"))
    except RecursionError as exc:
        raise ResourceLimitError(
            f"{path}: member 'data' is JSON nested too deeply to read (MAX_NESTING is "
            f"{limits.MAX_NESTING}); expected SB3's data_to_json output"
        ) from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(
            f"{path}: member 'data' is not valid UTF-8 JSON ({short_repr(str(exc), 120)}); "
            "expected SB3's data_to_json output"
        ) from exc
    limits.check_structure(data, f"{path}: member 'data'")
    if not isinstance(data, dict):
        raise BundleError(f"{path}: member 'data' holds {type(data).__name__}, expected a JSON object")
    return data


def _read_members(path: Path, notes: list[str]) -> _Members:
    """Read ``data``, the version and the tensor members (all of them together within one budget)."""
    archive = _open_zip(path)
    budget = MemberBudget(limits.MAX_WEIGHTS_BYTES)
    with archive:
        data = _read_data(archive, path)
        version: str | None = None
        if "_stable_baselines3_version" in archive.namelist():
            raw_version = read_member(archive, "_stable_baselines3_version", path, "a version string", 1024)
            version = raw_version.decode("utf-8", errors="replace").strip() or None
        else:
            notes.append("pre-1.0 format: no _stable_baselines3_version member")
        state_dict = load_tensors(
            read_member(
                archive, "policy.pth", path, "the policy's torch state dict", limits.MAX_WEIGHTS_BYTES, budget
            ),
            path,
            "policy.pth",
        )
        variables: dict[str, torch.Tensor] = {}
        for name in ("pytorch_variables.pth", "tensors.pth"):
            if name in archive.namelist():
                none_keys: list[str] = []
                variables = load_tensors(
                    read_member(archive, name, path, "a dict of tensors", limits.MAX_WEIGHTS_BYTES, budget),
                    path,
                    name,
                    none_keys=none_keys,
                )
                if none_keys:
                    notes.append(
                        f"{name}: {', '.join(none_keys)} saved as None (SB3 1.x writes log_ent_coef=None when "
                        "the entropy coefficient is fixed); left out"
                    )
                break
    if not state_dict:
        raise BundleError(
            f"{path}: member 'policy.pth' is an empty state dict; expected the policy's tensors"
        )
    return _Members(data=data, version=version, state_dict=state_dict, variables=variables)


# --------------------------------------------------------------------------------------------------
# Interpreting them


def _resolve_algo(data: Mapping[str, Any], override: str | None, path: Path, notes: list[str]) -> tuple[str, str]:
    """The algorithm (``override`` wins over what the file says) and the policy class name.

    Raises:
        BundleError: the data does not tell the algorithm and none was given; the message names the option
            (``--algo``, ``algo=`` in Python) and the candidates.
    """
    module, class_name = _policy_class_name(data.get("policy_class"))
    inferred = _infer_algo(module, class_name, data)
    described = f"policy class {short_repr(class_name or '?')} from module {short_repr(module or '?')}"
    if override is not None:
        algo_name = override
        if inferred.algo is None:
            notes.append(f"algo given as {short_repr(override)}; the file's {described} does not tell the "
                         f"algorithm{': ' + inferred.why if inferred.why else ''}")
        elif inferred.algo != override:
            notes.append(f"algo given as {short_repr(override)}; the file says {short_repr(inferred.algo)}")
    elif inferred.algo is None:
        if inferred.why and not inferred.candidates:
            raise BundleError(f"{path}: {described}: {inferred.why}")
        reason = inferred.why or "not a policy class of a supported algorithm"
        raise BundleError(
            f"{path}: cannot tell the algorithm: {described}: {reason}; hyperparameter keys "
            f"{short_repr(sorted(k for k in data if not k.startswith('_'))[:12], 200)}. Name it with --algo "
            f"(algo= in Python), one of: {', '.join(inferred.candidates)}"
        )
    else:
        algo_name = inferred.algo
    if not class_name:
        class_name = _default_policy_name(algo_name)
        notes.append(f"policy class name not readable; assuming {class_name}")
    return algo_name, class_name


def _split_shared(state_dict: dict[str, torch.Tensor], notes: list[str]) -> dict[str, torch.Tensor]:
    """Copy the layers shared by policy and value nets (SB3 < 1.8) into both."""
    state_dict, n_shared = split_shared_layers(state_dict)
    if n_shared:
        notes.append(
            f"{n_shared} layer(s) shared by policy and value nets (removed in SB3 1.8) were copied "
            "into both mlp_extractor.policy_net and value_net; outputs are unchanged"
        )
    return state_dict


def _declared_net_arch(raw_net_arch: Any, on_policy: bool, sizes: dict[str, int], path: Path,
                       notes: list[str]) -> Any:
    """The ``net_arch`` the file declares, in today's format and within the parameter budget."""
    try:
        net_arch = convert_net_arch(raw_net_arch, on_policy, "net_arch")
    except ConfigError as exc:
        error = ResourceLimitError if isinstance(exc, ResourceLimitError) else BundleError
        raise error(f"{path}: data['policy_kwargs']: {exc}") from exc
    # the declared one is checked too: a file that declares an absurd network is refused
    check_net_arch(net_arch, f"{path}: data['policy_kwargs']['net_arch']", **sizes)
    if net_arch != raw_net_arch:
        notes.append(f"net_arch {short_repr(raw_net_arch)} converted to today's format {short_repr(net_arch)}")
    return net_arch


def _resolve_net_arch(
    raw_net_arch: Any,
    state_dict: Mapping[str, torch.Tensor],
    algo_name: str,
    sizes: dict[str, int],
    path: Path,
    notes: list[str],
) -> Any:
    """The architecture to build: the declared one, unless the tensor shapes in policy.pth say otherwise.

    Args:
        sizes: ``in_features``, ``out_features`` and ``copies`` for :func:`check_net_arch`.
    """
    on_policy = algo_name in ON_POLICY_ALGOS or algo_name == "recurrentppo"
    net_arch = None if raw_net_arch is None else _declared_net_arch(raw_net_arch, on_policy, sizes, path, notes)
    shape_arch = infer_net_arch(state_dict, algo_name)
    if net_arch is None and shape_arch is not None:
        net_arch = shape_arch
        notes.append(f"net_arch not readable; inferred {short_repr(shape_arch)} from tensor shapes in policy.pth")
    elif shape_arch is not None and net_arch != shape_arch:
        notes.append(
            f"net_arch read as {short_repr(net_arch)} but tensor shapes say {short_repr(shape_arch)}; using the tensor shapes"
        )
        net_arch = shape_arch
    elif net_arch is None:
        notes.append("net_arch neither readable nor inferable from policy.pth; SB3's default will be used")
    if net_arch is not None:
        check_net_arch(net_arch, f"{path}: net_arch", **sizes)
    return net_arch


def _complete_policy_kwargs(
    policy_kwargs: dict[str, Any],
    data: Mapping[str, Any],
    state_dict: Mapping[str, torch.Tensor],
    algo_name: str,
    action_space: spaces.Space,
    notes: list[str],
) -> None:
    """Fill in what SB3 keeps outside policy_kwargs or leaves at defaults (in place): ``use_sde``,
    ``activation_fn``, ``n_critics`` and ``full_std``, the last two inferred from the tensors."""
    use_sde = data.get("use_sde")
    if algo_name in sb3layout.SDE_ALGOS and "use_sde" not in policy_kwargs and isinstance(use_sde, bool):
        policy_kwargs["use_sde"] = use_sde  # on-policy SB3 keeps it beside, not in, policy_kwargs
    if "activation_fn" not in policy_kwargs:
        policy_kwargs["activation_fn"] = sb3layout.DEFAULT_ACTIVATION[algo_name]
        notes.append(
            f"activation_fn not recorded; using SB3's default for {algo_name}: {policy_kwargs['activation_fn']}"
        )
    if algo_name in sb3layout.CONTINUOUS_ONLY and "n_critics" not in policy_kwargs:
        n_critics = sb3layout.count_critics(state_dict)
        default = 1 if algo_name == "ddpg" else 2
        if n_critics and n_critics != default:
            policy_kwargs["n_critics"] = n_critics
            notes.append(f"n_critics={n_critics} inferred from policy.pth")
    if algo_name in sb3layout.QUANTILE_ALGOS:
        n_actions = int(action_space.n) if isinstance(action_space, spaces.Discrete) else 1
        n_quantiles = sb3layout.infer_quantiles(state_dict, algo_name, n_actions)
        if n_quantiles is not None and policy_kwargs.get("n_quantiles") != n_quantiles:
            if "n_quantiles" in policy_kwargs:
                notes.append(f"n_quantiles read as {policy_kwargs['n_quantiles']} but policy.pth holds "
                             f"{n_quantiles}; using policy.pth")
            else:
                notes.append(f"n_quantiles={n_quantiles} inferred from the shape of the quantile output layer")
            policy_kwargs["n_quantiles"] = n_quantiles
    if algo_name == "ars":
        with_bias = any(re.match(r"^action_net\.\d+\.bias$", k) for k in state_dict)
        if policy_kwargs.get("with_bias") != with_bias:
            policy_kwargs["with_bias"] = with_bias
            notes.append(f"with_bias={with_bias} inferred from policy.pth")
    if algo_name == "recurrentppo":
        lstm = sb3layout.infer_lstm_kwargs(state_dict)
        for key, value in (lstm or {}).items():
            if policy_kwargs.get(key) != value:
                notes.append(f"{key}={value} inferred from the LSTM tensors in policy.pth")
                policy_kwargs[key] = value
    log_std = state_dict.get("log_std")
    if (
        (algo_name in ON_POLICY_ALGOS or algo_name == "recurrentppo")
        and "full_std" not in policy_kwargs
        and log_std is not None
        and log_std.ndim == 2
        and isinstance(action_space, spaces.Box)
        and int(np.prod(action_space.shape)) > 1
        and log_std.shape[1] == 1
    ):
        policy_kwargs["full_std"] = False
        notes.append("full_std=False inferred from the shape of log_std")


def _note_shared_list(raw_net_arch: Any, on_policy: bool, version: str | None, notes: list[str]) -> None:
    """Remark that an on-policy list ``net_arch`` meant shared layers before SB3 1.8."""
    version_tuple = _parse_version(version)
    old_int_list = (
        on_policy
        and isinstance(raw_net_arch, list)
        and bool(raw_net_arch)
        and all(isinstance(v, int) for v in raw_net_arch)
    )
    if old_int_list and (version_tuple is None or version_tuple < (1, 8)):
        notes.append("before SB3 1.8 a list net_arch meant layers shared by policy and value nets")


def _opt_int(data: Mapping[str, Any], key: str) -> int | None:
    value = data.get(key)
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def _unsupported(class_name: str, state_dict: Mapping[str, torch.Tensor], dropped: Mapping[str, Any],
                 observation_space: spaces.Space) -> str | None:
    """Why this policy cannot be rebuilt here (an image/CNN policy, a custom features extractor), or None.

    rltransfer rebuilds MLP policies on vector observations (and Dict of vectors): their features
    extractors (``FlattenExtractor``, ``CombinedExtractor`` of Boxes) hold no tensors. Any tensor of a
    features extractor means a network whose code the file does not carry in readable form.
    """
    extractor_keys = sorted(k for k in state_dict if "features_extractor." in k)
    cnn_keys = [k for k in extractor_keys if ".cnn." in k]
    extractor = str(dropped.get("features_extractor_class", ""))
    images = [
        key for key, sub in (observation_space.spaces.items() if isinstance(observation_space, spaces.Dict)
                             else [("observation", observation_space)])
        if isinstance(sub, spaces.Box) and len(sub.shape) == 3
    ]
    if "Cnn" in class_name or cnn_keys or "NatureCNN" in extractor or (images and extractor_keys):
        found = cnn_keys[:1] or extractor_keys[:1]
        return (
            "image (CNN) policies are not supported: rltransfer reads, evaluates and transfers MLP policies on "
            f"vector observations; this file holds {short_repr(class_name or 'a CNN policy')}"
            + (f" with a convolutional features extractor ({short_repr(found[0])}...)" if found else "")
            + (f" for image observations ({', '.join(images)})" if images else "")
        )
    if extractor_keys:
        return (
            f"custom features extractors are not supported: the policy's tensors {short_repr(extractor_keys[:3])} "
            "belong to a features extractor whose code the file holds only pickled (rltransfer rebuilds MLP "
            "policies, whose extractor has no tensors)"
        )
    return None


# --------------------------------------------------------------------------------------------------
# Entry point


def read_sb3_zip(path: str | Path, algo: str | None = None) -> SB3Archive:
    """Read an SB3 zip (any version since 2020) without unpickling anything.

    Args:
        path: the ``.zip`` written by ``model.save()`` (or downloaded from the RL Zoo).
        algo: the algorithm, when it cannot be inferred from the policy class and hyperparameters
            (one of :data:`ALGOS`).

    Returns:
        The archive's spaces, architecture, hyperparameters and weights.

    Raises:
        BundleError: the file is missing, not a zip, truncated, lacks ``data``/``policy.pth``, holds
            malformed JSON, tensors that are not plain weights, or an algorithm that cannot be told.
        UnknownNameError: ``algo`` is not one of :data:`ALGOS`.
    """
    path = Path(path)
    override = _check_override(algo) if algo is not None else None
    notes: list[str] = []
    dropped: dict[str, Any] = {}
    members = _read_members(path, notes)
    data, state_dict = members.data, members.state_dict
    algo_name, class_name = _resolve_algo(data, override, path, notes)
    observation_space = space_from_sb3(data.get("observation_space"), "observation_space", path, notes)
    action_space = space_from_sb3(data.get("action_space"), "action_space", path, notes)

    on_policy = algo_name in ON_POLICY_ALGOS or algo_name == "recurrentppo"
    policy_kwargs, raw_net_arch = _read_policy_kwargs(data.get("policy_kwargs"), notes, dropped)
    if on_policy:
        state_dict = _split_shared(state_dict, notes)
    state_dict, renamed = sb3layout.convert_legacy_keys(state_dict, algo_name)
    if renamed:
        notes.append(renamed)
    unsupported = _unsupported(class_name, state_dict, dropped, observation_space)
    sizes = {
        "in_features": flat_size(observation_space),
        "out_features": flat_size(action_space),
        "copies": 1 if on_policy else 2,
    }
    net_arch = _resolve_net_arch(raw_net_arch, state_dict, algo_name, sizes, path, notes)
    if net_arch is not None:
        policy_kwargs["net_arch"] = net_arch
    _complete_policy_kwargs(policy_kwargs, data, state_dict, algo_name, action_space, notes)
    if sb3layout.policy_alias(algo_name, class_name) == "LinearPolicy":
        for key in ("net_arch", "activation_fn"):  # ARS's linear policy has no hidden layers to describe
            policy_kwargs.pop(key, None)
        notes[:] = [n for n in notes if not n.startswith(("activation_fn not recorded", "net_arch not readable"))]
    _note_shared_list(raw_net_arch, on_policy, members.version, notes)
    hyperparams = _read_hyperparams(data, notes)

    return SB3Archive(
        path=path,
        algo=algo_name,
        sb3_version=members.version,
        observation_space=observation_space,
        action_space=action_space,
        policy_class=class_name,
        policy_kwargs=policy_kwargs,
        hyperparams=hyperparams,
        num_timesteps=_opt_int(data, "num_timesteps"),
        n_envs=_opt_int(data, "n_envs"),
        state_dict=state_dict,
        notes=notes,
        dropped=dropped,
        pytorch_variables=members.variables,
        unsupported=unsupported,
    )
