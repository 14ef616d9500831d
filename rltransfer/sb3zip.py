"""Read Stable-Baselines3 ``.zip`` agents without unpickling anything.

A model saved by SB3's ``model.save()`` is a zip with a ``data`` member (JSON) and torch state dicts
(``policy.pth`` and friends). Every value of ``data`` that is not plain JSON is stored as a base64
cloudpickle blob under ``":serialized:"``, next to a few human-readable fields (``":type:"``, the
object's JSON-able attributes, and ``str()`` of the others). Unpickling such a blob runs whatever
code its author chose, so this module never decodes it: spaces, policy class, network architecture
and hyperparameters are rebuilt from the readable fields alone, and tensors are loaded with
``torch.load(..., weights_only=True)``.

It also holds the small JSON forms of gymnasium spaces (:func:`space_to_json`,
:func:`space_from_json`) and the checks of network architectures. What SB3 names and how it lays out a
state dict (algorithms, activation allowlist, layer patterns) lives in :mod:`rltransfer.sb3layout`;
:data:`ACTIVATIONS` and :data:`ALGOS` are re-exported here.
"""

from __future__ import annotations

import io
import json
import math
import pickle
import re
import struct
import zipfile
import zlib
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

__all__ = [
    "ACTIVATIONS",
    "ALGOS",
    "ON_POLICY_ALGOS",
    "SB3Archive",
    "MAX_WEIGHT_MAGNITUDE",
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

#: Largest absolute value a floating-point weight may have. Trained policies stay many orders of
#: magnitude below it (RL Zoo agents: under 100); values such as 3e38 only make later arithmetic
#: overflow into inf/NaN, so they are refused at load like NaN and inf themselves.
MAX_WEIGHT_MAGNITUDE = 1e6

# Records of a torch zip archive (policy.pth is one); real state dicts have a few dozen.
_MAX_TORCH_RECORDS = 100_000
# Central directory of the outer zip: an SB3 zip has < 10 members (a few hundred bytes).
_MAX_CENTRAL_DIRECTORY_BYTES = 16 * 2**20
# Tensor dtypes a policy's weights may have.
_TENSOR_DTYPES = frozenset(
    {
        torch.float16,
        torch.bfloat16,
        torch.float32,
        torch.float64,
        torch.int8,
        torch.int16,
        torch.int32,
        torch.int64,
        torch.uint8,
        torch.bool,
    }
)
# Element sizes of the storage classes named by legacy (pre-1.6, non-zip) torch files.
_LEGACY_STORAGES = {
    "DoubleStorage": 8,
    "FloatStorage": 4,
    "HalfStorage": 2,
    "BFloat16Storage": 2,
    "LongStorage": 8,
    "IntStorage": 4,
    "ShortStorage": 2,
    "CharStorage": 1,
    "ByteStorage": 1,
    "BoolStorage": 1,
}

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
)

_CLASS_REPR = re.compile(r"<class '([A-Za-z_][\w.]*)'>")
_INIT_REPR = re.compile(r"<function ([A-Za-z_]\w*)\.__init__ at ")
_METHOD_REPR = re.compile(r"<function ([A-Za-z_]\w*)\.\w+ at ")
_CONSTANT_SCHEDULE = re.compile(r"^ConstantSchedule\(val=([^)]+)\)$")
_ALLOWED_DTYPES = frozenset(
    {
        "float16",
        "float32",
        "float64",
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "bool",
    }
)


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
            ``log_ent_coef``.
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

    @property
    def sb3_policy_alias(self) -> str:
        """The SB3 policy alias to pass to today's algorithm class (``"MlpPolicy"``, ``"CnnPolicy"``...)."""
        if "MultiInput" in self.policy_class:
            return "MultiInputPolicy"
        if "Cnn" in self.policy_class:
            return "CnnPolicy"
        return "MlpPolicy"

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
    match = _CLASS_REPR.fullmatch(text.strip())
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
# Spaces: our JSON form


def _encode_number(value: Any) -> Any:
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
    return value


def _encode_nested(value: Any) -> Any:
    if isinstance(value, list):
        return [_encode_nested(v) for v in value]
    return _encode_number(value)


def _encode_array(array: np.ndarray) -> Any:
    """A scalar when all entries are equal (compact for image spaces), else nested lists."""
    flat = array.reshape(-1)
    if flat.size and bool(np.all(flat == flat[0])):
        return _encode_number(flat[0].item())
    return _encode_nested(array.tolist())


def _decode_nested(value: Any, where: str) -> Any:
    if isinstance(value, list):
        return [_decode_nested(v, where) for v in value]
    if isinstance(value, str):
        if value in ("inf", "-inf", "nan"):
            return float(value)
        raise BundleError(f"{where}: expected a number or 'inf'/'-inf', got {short_repr(value)}")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BundleError(f"{where}: expected a number, got {short_repr(value)}")
    return value


def _decode_array(value: Any, shape: tuple[int, ...], dtype: np.dtype, where: str) -> np.ndarray:
    decoded = _decode_nested(value, where)
    try:
        array = np.asarray(decoded, dtype=dtype)
        return np.array(np.broadcast_to(array, shape), dtype=dtype)
    except (ValueError, OverflowError, TypeError) as exc:
        raise BundleError(f"{where}: cannot make an array of shape {shape} and dtype {dtype}: {exc}") from exc


def _dtype(value: Any, where: str) -> np.dtype:
    name = str(value)
    if name not in _ALLOWED_DTYPES:
        raise BundleError(f"{where}: unsupported dtype {short_repr(value)}; valid: {sorted(_ALLOWED_DTYPES)}")
    return np.dtype(name)


def _shape(value: Any, where: str) -> tuple[int, ...]:
    if not isinstance(value, (list, tuple)) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value
    ):
        raise BundleError(f"{where}: expected a shape (list of non-negative ints), got {short_repr(value)}")
    shape = tuple(int(v) for v in value)
    _check_elements(math.prod(shape), where)
    return shape


def _check_elements(n: int, where: str) -> None:
    if n > limits.MAX_SPACE_ELEMENTS:
        raise ResourceLimitError(
            f"{where}: a space of {short_repr(n)} elements is more than the "
            f"{limits.MAX_SPACE_ELEMENTS:,} allowed (MAX_SPACE_ELEMENTS)"
        )


def _check_discrete(n: Any, where: str) -> int:
    """A Discrete/MultiDiscrete size: an int in ``[1, MAX_DISCRETE_N]``."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise BundleError(f"{where}: expected a whole number of actions, got {short_repr(n)}")
    if n > limits.MAX_DISCRETE_N:
        raise ResourceLimitError(
            f"{where}: {short_repr(int(n))} discrete values is more than the {limits.MAX_DISCRETE_N:,} "
            "allowed (MAX_DISCRETE_N)"
        )
    return int(n)


def _check_nvec(nvec: np.ndarray, where: str) -> np.ndarray:
    _check_elements(int(nvec.size), where)
    if nvec.size and int(nvec.max()) > limits.MAX_DISCRETE_N:
        _check_discrete(int(nvec.max()), where)
    return nvec


def _check_start(start: Any, where: str) -> int:
    if isinstance(start, bool) or not isinstance(start, int) or abs(start) > 2**62:
        raise BundleError(f"{where}: expected a start that fits int64, got {short_repr(start)}")
    return start


def _checked_int_array(value: Any, where: str) -> np.ndarray:
    """A JSON list of ints as an int64 array, refused before conversion if it is too large."""
    if isinstance(value, list):
        limits.check_structure(value, where, max_nodes=limits.MAX_SPACE_ELEMENTS + 1)
    return np.asarray(value, dtype=np.int64)


def space_to_json(space: spaces.Space) -> dict[str, Any]:
    """Describe a gymnasium space as plain JSON (our own format, read back by :func:`space_from_json`).

    Box bounds are a single number when all entries are equal, else nested lists; infinities are the
    strings ``"inf"``/``"-inf"`` so the result is strict JSON. Supported: Box, Discrete, MultiDiscrete,
    MultiBinary, and Dict/Tuple of those.

    Raises:
        TypeError: for other space types.
    """
    if isinstance(space, spaces.Box):
        return {
            "type": "Box",
            "shape": list(space.shape),
            "dtype": str(space.dtype),
            "low": _encode_array(space.low),
            "high": _encode_array(space.high),
        }
    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, spaces.MultiDiscrete):
        return {
            "type": "MultiDiscrete",
            "nvec": space.nvec.tolist(),
            "start": space.start.tolist(),
            "dtype": str(space.dtype),
        }
    if isinstance(space, spaces.MultiBinary):
        n = space.n
        return {
            "type": "MultiBinary",
            "n": [int(v) for v in n] if isinstance(n, (list, tuple, np.ndarray)) else int(n),
        }
    if isinstance(space, spaces.Dict):
        return {"type": "Dict", "spaces": {key: space_to_json(sub) for key, sub in space.spaces.items()}}
    if isinstance(space, spaces.Tuple):
        return {"type": "Tuple", "spaces": [space_to_json(sub) for sub in space.spaces]}
    raise TypeError(
        f"cannot describe {type(space).__name__} as JSON; supported: Box, Discrete, MultiDiscrete, "
        "MultiBinary, Dict, Tuple"
    )


def space_from_json(data: Mapping[str, Any], where: str = "space") -> spaces.Space:
    """Rebuild a gymnasium space from :func:`space_to_json` output (exact round trip).

    Args:
        data: the JSON description.
        where: file/key quoted in error messages.

    Raises:
        ResourceLimitError: (a :class:`BundleError`) a space, or all sub-spaces together, with more
            than :data:`~rltransfer.limits.MAX_SPACE_ELEMENTS` elements, a Discrete with more than
            :data:`~rltransfer.limits.MAX_DISCRETE_N` actions, or a description nested too deeply.
        BundleError: if the description is malformed.
    """
    if not isinstance(data, Mapping) or "type" not in data:
        raise BundleError(f"{where}: expected a dict with a 'type' key, got {short_repr(data)}")
    limits.check_structure(data, where)
    return _space_from_json(data, where, [limits.MAX_SPACE_ELEMENTS])


def _spend(budget: list[int], n: int, where: str) -> None:
    budget[0] -= n
    if budget[0] < 0:
        raise ResourceLimitError(
            f"{where}: the sub-spaces hold more than the {limits.MAX_SPACE_ELEMENTS:,} elements allowed "
            "in all (MAX_SPACE_ELEMENTS)"
        )


def _space_from_json(data: Mapping[str, Any], where: str, budget: list[int]) -> spaces.Space:
    if not isinstance(data, Mapping) or "type" not in data:
        raise BundleError(f"{where}: expected a dict with a 'type' key, got {short_repr(data)}")
    kind = data["type"]
    try:
        if kind == "Box":
            shape = _shape(data["shape"], f"{where}.shape")
            _spend(budget, math.prod(shape), where)
            dtype = _dtype(data.get("dtype", "float32"), f"{where}.dtype")
            low = _decode_array(data["low"], shape, dtype, f"{where}.low")
            high = _decode_array(data["high"], shape, dtype, f"{where}.high")
            return spaces.Box(low=low, high=high, shape=shape, dtype=dtype)
        if kind == "Discrete":
            return spaces.Discrete(
                _check_discrete(data["n"], f"{where}.n"),
                start=_check_start(data.get("start", 0), f"{where}.start"),
            )
        if kind == "MultiDiscrete":
            dtype = _dtype(data.get("dtype", "int64"), f"{where}.dtype")
            nvec = _check_nvec(_checked_int_array(data["nvec"], f"{where}.nvec"), f"{where}.nvec").astype(dtype)
            _spend(budget, int(nvec.size), where)
            start = _checked_int_array(data.get("start", 0), f"{where}.start").astype(dtype)
            return spaces.MultiDiscrete(nvec, dtype=dtype, start=np.broadcast_to(start, nvec.shape).copy())
        if kind == "MultiBinary":
            n = data["n"]
            shape = _shape(n if isinstance(n, list) else [n], f"{where}.n")
            _spend(budget, math.prod(shape), where)
            return spaces.MultiBinary(list(shape) if isinstance(n, list) else shape[0])
        if kind == "Dict":
            subs = data["spaces"]
            if not isinstance(subs, Mapping):
                raise BundleError(f"{where}.spaces: expected a dict, got {short_repr(subs)}")
            return spaces.Dict(
                {key: _space_from_json(sub, f"{where}.spaces.{key}", budget) for key, sub in subs.items()}
            )
        if kind == "Tuple":
            subs = data["spaces"]
            if not isinstance(subs, list):
                raise BundleError(f"{where}.spaces: expected a list, got {short_repr(subs)}")
            return spaces.Tuple(
                [_space_from_json(sub, f"{where}.spaces[{i}]", budget) for i, sub in enumerate(subs)]
            )
    except KeyError as exc:
        raise BundleError(f"{where}: {kind} space is missing key {short_repr(exc.args[0])}") from exc
    except (TypeError, ValueError, AssertionError) as exc:
        if isinstance(exc, BundleError):
            raise
        raise BundleError(f"{where}: invalid {short_repr(kind)} space {short_repr(dict(data))}: {exc}") from exc
    raise BundleError(
        f"{where}: unknown space type {short_repr(kind)}; valid: Box, Discrete, MultiDiscrete, MultiBinary, Dict, Tuple"
    )


# --------------------------------------------------------------------------------------------------
# Spaces: SB3's readable fields


def _parse_numpy_str(text: str) -> tuple[list[str], bool]:
    """Split ``str(ndarray)`` (e.g. ``"[-4.8 -inf\\n 0.]"``) into tokens, without evaluating anything.

    Returns:
        The tokens and whether numpy elided entries with ``...``.
    """
    cleaned = text.replace("[", " ").replace("]", " ").replace(",", " ")
    tokens = cleaned.split()
    truncated = "..." in tokens
    return [t for t in tokens if t != "..."], truncated


def _token_value(token: str) -> float | int | bool:
    if token in ("True", "False"):
        return token == "True"
    if re.fullmatch(r"[+-]?\d+", token):
        return int(token)
    value = float(token)  # accepts "1.", "-3.4e+38", "inf", "-inf", "nan"; never evaluates code
    return value


def _readable_array(value: Any, shape: tuple[int, ...], dtype: np.dtype) -> tuple[np.ndarray | None, str]:
    """Turn a readable field (JSON number/list or numpy ``str()``) into an array of ``shape``.

    Returns:
        The array, or ``None`` if it cannot be read, and a remark ("" when the read is exact).
    """
    if value is None:
        return None, "missing"
    if isinstance(value, str):
        tokens, truncated = _parse_numpy_str(value)
        try:
            numbers: list[Any] = [_token_value(t) for t in tokens]
        except ValueError:
            return None, f"unreadable {value[:60]!r}"
    elif isinstance(value, (int, float, list)) and not isinstance(value, bool):
        numbers, truncated = np.asarray(value, dtype=object).reshape(-1).tolist(), False
    else:
        return None, f"unreadable {short_repr(value)}"
    size = int(np.prod(shape)) if shape else 1
    remark = ""
    if truncated:
        if not numbers or any(n != numbers[0] for n in numbers):
            return None, f"numpy elided entries of {value[:60]!r} with '...'"
        numbers = numbers[:1]
        remark = "numpy elided entries with '...'; all shown entries are equal, so assumed constant"
    if len(numbers) not in (1, size):
        return None, f"{len(numbers)} entries for shape {shape}"
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            array = np.asarray(numbers, dtype=np.float64 if dtype.kind == "f" else dtype).astype(dtype)
        return np.array(
            np.broadcast_to(array.reshape(-1) if size != 1 else array[:1], (size,)), dtype=dtype
        ).reshape(shape), remark
    except (ValueError, OverflowError, TypeError):
        return None, f"unreadable {str(value)[:60]!r}"


def _unbounded(shape: tuple[int, ...], dtype: np.dtype, sign: int) -> np.ndarray:
    """-inf/inf for float boxes, the dtype's min/max for integer ones."""
    if dtype.kind == "f":
        return np.full(shape, sign * np.inf, dtype=dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return np.full(shape, info.min if sign < 0 else info.max, dtype=dtype)
    return np.full(shape, sign > 0, dtype=dtype)


def _type_name(entry: Mapping[str, Any]) -> str:
    match = _CLASS_REPR.fullmatch(str(entry.get(":type:", "")).strip())
    return match.group(1) if match else ""


def _int_field(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"[+-]?\d+", value.strip()):
        return int(value.strip())
    raise ValueError(f"expected an integer, got {short_repr(value)}")


def _int_array_field(value: Any, where: str) -> np.ndarray:
    if isinstance(value, str):
        tokens, truncated = _parse_numpy_str(value)
        if truncated:
            raise ValueError(f"numpy elided entries of {short_repr(value)}")
        _check_elements(len(tokens), where)
        return np.array([_int_field(t) for t in tokens], dtype=np.int64)
    return _checked_int_array(value, where)


def _space_from_sb3(entry: Any, key: str, path: Path, notes: list[str]) -> spaces.Space:
    """Rebuild a space from the readable fields SB3 wrote next to its pickled form."""
    where = f"{path}: data[{key!r}]"
    if not isinstance(entry, Mapping):
        raise BundleError(f"{where}: expected the description of a gym/gymnasium space, got {short_repr(entry)}")
    dotted = _type_name(entry)
    module, _, name = dotted.rpartition(".")
    if not module.startswith(("gym.spaces", "gymnasium.spaces")):
        raise BundleError(f"{where}: expected a gym/gymnasium space, found type {short_repr(entry.get(':type:'))}")
    shape_value = entry.get("_shape", entry.get("shape"))
    try:
        if name == "Box":
            dtype = _dtype(entry.get("dtype", "float32"), f"{where}['dtype']")
            if shape_value is None:
                raise BundleError(f"{where}: Box without a readable 'shape'/'_shape'")
            shape = _shape(shape_value, f"{where}['shape']")
            bounds = []
            for side, sign in (("low", -1), ("high", 1)):
                array, remark = _readable_array(entry.get(side), shape, dtype)
                if array is None and entry.get(f"{side}_repr") is not None:
                    array, remark = _readable_array(entry.get(f"{side}_repr"), shape, dtype)
                if array is None:
                    array = _unbounded(shape, dtype, sign)
                    notes.append(
                        f"{key}: {side} bounds not readable ({remark}); using {array.reshape(-1)[0]!r}"
                    )
                elif remark:
                    notes.append(f"{key}: {side}: {remark}")
                bounds.append(array)
            if dtype == np.float64 and any(isinstance(entry.get(side), str) for side in ("low", "high")):
                notes.append(f"{key}: float64 bounds read from numpy's printed form (up to 8 decimals)")
            return spaces.Box(low=bounds[0], high=bounds[1], shape=shape, dtype=dtype)
        if name == "Discrete":
            if "n" not in entry:
                raise BundleError(f"{where}: Discrete without a readable 'n'")
            return spaces.Discrete(
                _check_discrete(_int_field(entry["n"]), f"{where}['n']"),
                start=_check_start(_int_field(entry.get("start", 0)), f"{where}['start']"),
            )
        if name == "MultiDiscrete":
            if "nvec" not in entry:
                raise BundleError(f"{where}: MultiDiscrete without a readable 'nvec'")
            nvec = _check_nvec(_int_array_field(entry["nvec"], f"{where}['nvec']"), f"{where}['nvec']")
            if shape_value is not None and nvec.size == math.prod(_shape(shape_value, f"{where}['shape']")):
                nvec = nvec.reshape(_shape(shape_value, f"{where}['shape']"))
            start = (
                _int_array_field(entry["start"], f"{where}['start']").reshape(nvec.shape)
                if "start" in entry
                else np.zeros_like(nvec)
            )
            dtype = _dtype(entry.get("dtype", "int64"), f"{where}['dtype']")
            return spaces.MultiDiscrete(nvec, dtype=dtype, start=start)
        if name == "MultiBinary":
            n = entry.get("n", shape_value)
            if n is None:
                raise BundleError(f"{where}: MultiBinary without a readable 'n'")
            if isinstance(n, str):
                n = _int_array_field(n, f"{where}['n']").tolist() if n.strip().startswith("[") else _int_field(n)
            shape = _shape(list(n) if isinstance(n, (list, tuple)) else [n], f"{where}['n']")
            return spaces.MultiBinary(list(shape) if isinstance(n, (list, tuple)) else shape[0])
    except (ValueError, TypeError, OverflowError, AssertionError) as exc:  # gymnasium asserts some checks
        if isinstance(exc, (BundleError, ConfigError)):
            raise
        raise BundleError(f"{where}: cannot rebuild {name} from its readable fields: {exc}") from exc
    raise BundleError(
        f"{where}: {short_repr(name or entry.get(':type:'))} spaces cannot be rebuilt without unpickling; "
        "supported: Box, Discrete, MultiDiscrete, MultiBinary"
    )


# --------------------------------------------------------------------------------------------------
# Zip members


class _Budget:
    """Bytes still allowed for the tensor members of one zip (:data:`~rltransfer.limits.MAX_WEIGHTS_BYTES`)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.left = total

    def spend(self, n: int, where: str) -> None:
        self.left -= n
        if self.left < 0:
            raise ResourceLimitError(
                f"{where}: the tensor members together inflate to more than the {self.total:,} bytes "
                "allowed (MAX_WEIGHTS_BYTES)"
            )


def _check_central_directory(path: Path) -> None:
    """Refuse a zip whose central directory is too large before :class:`zipfile.ZipFile` parses it all."""
    try:
        with open(path, "rb") as fh:
            end = zipfile._EndRecData(fh)  # type: ignore[attr-defined]  # stable since Python 2
    except (OSError, struct.error, AttributeError):
        return  # zipfile reports what it cannot read
    if end and end[zipfile._ECD_SIZE] > _MAX_CENTRAL_DIRECTORY_BYTES:  # type: ignore[attr-defined]
        raise ResourceLimitError(
            f"{path}: the zip's central directory declares {end[zipfile._ECD_SIZE]:,} bytes "  # type: ignore[attr-defined]
            f"({end[zipfile._ECD_ENTRIES_TOTAL]:,} members), more than the "  # type: ignore[attr-defined]
            f"{_MAX_CENTRAL_DIRECTORY_BYTES:,} allowed; expected an SB3 model zip of a few members"
        )


def _read_member(
    archive: zipfile.ZipFile,
    name: str,
    path: Path,
    expected: str,
    limit: int,
    budget: _Budget | None = None,
) -> bytes:
    """Inflate one member while counting: the declared sizes are never trusted.

    Raises:
        ResourceLimitError: the member inflates to more than ``limit`` (or than ``budget`` has left),
            or holds more compressed data than its declared size accounts for.
        BundleError: the member is missing, corrupt or truncated.
    """
    try:
        info = archive.getinfo(name)
    except KeyError as exc:
        raise BundleError(f"{path}: member {name!r} is missing; expected {expected}") from exc
    where = f"{path}: member {name!r}"
    member_limit = limit
    if budget is not None:
        limit = min(limit, max(budget.left, 0))
    try:
        with archive.open(info) as fh:
            raw = limits.read_stream(fh, limit, where)
            # zipfile stops at the declared size; a stream that goes on is a lying header (a bomb)
            decompressor = getattr(fh, "_decompressor", None)
            unfinished = getattr(fh, "_compress_left", 0) > 0 or (
                decompressor is not None
                and getattr(decompressor, "eof", True) is False
                and info.compress_type != zipfile.ZIP_STORED
            )
    except ResourceLimitError as exc:
        if budget is not None and limit < member_limit:
            raise ResourceLimitError(
                f"{where}: the tensor members together inflate to more than the "
                f"{budget.total:,} bytes allowed (MAX_WEIGHTS_BYTES)"
            ) from exc
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError, ValueError) as exc:
        raise BundleError(f"{where} is corrupt or truncated ({short_repr(str(exc))}); expected {expected}") from exc
    if unfinished:
        raise ResourceLimitError(
            f"{where} declares {info.file_size:,} bytes but its compressed stream goes on past them; "
            "refused as a possible zip bomb"
        )
    if budget is not None:
        budget.spend(len(raw), where)
    return raw


def _check_torch_zip(raw: bytes, where: str) -> None:
    """Check the records of a torch zip archive before torch's own reader (which inflates without
    limits) sees them: ``torch.save`` stores every record uncompressed, so compressed ones are refused,
    and the declared sizes must fit in the bytes present."""
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as inner:
            infos = inner.infolist()
            central_start = int(inner.start_dir)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError, struct.error) as exc:
        raise BundleError(f"{where} is not a readable torch archive ({short_repr(str(exc))})") from exc
    if len(infos) > _MAX_TORCH_RECORDS:
        raise ResourceLimitError(
            f"{where}: {len(infos):,} records, more than the {_MAX_TORCH_RECORDS:,} allowed"
        )
    declared = 0
    starts = sorted(info.header_offset for info in infos)
    for info in infos:
        record = f"{where}: record {short_repr(info.filename)}"
        if info.compress_type != zipfile.ZIP_STORED:
            raise ResourceLimitError(
                f"{record} is compressed (method {info.compress_type}); torch.save stores records "
                "uncompressed, and compressed ones are refused as a possible zip bomb"
            )
        if info.compress_size != info.file_size:
            raise BundleError(
                f"{record} declares {info.file_size:,} bytes but stores {info.compress_size:,}; "
                "the archive is corrupt or altered"
            )
        if info.header_offset < 0 or info.header_offset + info.file_size > len(raw):
            raise BundleError(
                f"{record} declares {info.file_size:,} bytes at offset {info.header_offset:,}, past the "
                f"end of the {len(raw):,} bytes present; the archive is truncated or altered"
            )
        local = raw[info.header_offset : info.header_offset + 30]
        if len(local) < 30 or local[:4] != b"PK\x03\x04":
            raise BundleError(f"{record}: no local header at offset {info.header_offset:,}; the archive is altered")
        name_len, extra_len = struct.unpack("<2H", local[26:30])
        end = info.header_offset + 30 + name_len + extra_len + info.file_size
        following = [o for o in starts if o > info.header_offset]
        bound = following[0] if following else central_start
        # between a record's data and the next header: nothing, or its data descriptor (flag bit 3)
        gaps = (12, 16, 20, 24) if info.flag_bits & 0x08 else (0,)
        if bound - end not in gaps:
            raise BundleError(
                f"{record} declares {info.file_size:,} bytes, but {bound - end + info.file_size:,} bytes "
                "lie before the next record; the archive is truncated or altered"
            )
        declared += info.file_size
    if declared > len(raw):
        raise ResourceLimitError(
            f"{where}: records declare {declared:,} bytes in all, more than the {len(raw):,} bytes present"
        )


class _ScanStub:
    """What the legacy-format scan builds for every global: inert, accepts any construction step."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __call__(self, *args: Any, **kwargs: Any) -> _ScanStub:
        return _ScanStub()

    def __setstate__(self, state: Any) -> None:
        pass

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def append(self, value: Any) -> None:
        pass

    def extend(self, values: Any) -> None:
        pass


class _LegacyScanner(pickle.Unpickler):
    """Reads the object pickle of a legacy torch file only to list the storages it declares."""

    def __init__(self, file: io.BytesIO, where: str) -> None:
        super().__init__(file)
        self.where = where
        self.storages: dict[str, int] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch" and name in _LEGACY_STORAGES:
            return _LegacyStorage(name)
        if f"{module}.{name}" in (
            "torch._utils._rebuild_tensor_v2",
            "torch._utils._rebuild_tensor",
            "torch._utils._rebuild_parameter",
            "collections.OrderedDict",
        ):
            return _ScanStub()
        raise BundleError(f"{self.where}: global {short_repr(module + '.' + name)} is not part of a state dict")

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] in ("storage", b"storage")):
            raise BundleError(f"{self.where}: unexpected persistent id {short_repr(pid)}")
        _, storage_type, root_key, _location, numel, _view = pid
        if not isinstance(storage_type, _LegacyStorage) or not isinstance(numel, int) or numel < 0:
            raise BundleError(f"{self.where}: malformed storage reference {short_repr(pid)}")
        nbytes = numel * storage_type.element_size
        key = str(root_key)
        if self.storages.setdefault(key, nbytes) != nbytes:
            raise BundleError(f"{self.where}: storage {short_repr(key)} declared with two sizes")
        return _ScanStub()


class _LegacyStorage:
    def __init__(self, name: str) -> None:
        self.name = name
        self.element_size = _LEGACY_STORAGES[name]


class _PlainUnpickler(pickle.Unpickler):
    """For the header pickles of a legacy torch file (ints, dicts, lists of strings): no globals."""

    def find_class(self, module: str, name: str) -> Any:
        raise BundleError(f"global {short_repr(module + '.' + name)} in a torch file header")


def _check_torch_legacy(raw: bytes, where: str) -> None:
    """Check a legacy (pre-1.6, non-zip) torch file: the storages its pickle declares must be exactly the
    ones stored after it (torch allocates each declared storage before reading it)."""
    stream = io.BytesIO(raw)

    def scanned(unpickler: pickle.Unpickler) -> Any:
        start = stream.tell()
        limits.scan_pickle(stream, where)  # memo indices first: CPython sizes its memo by them
        stream.seek(start)
        return unpickler.load()

    try:
        for _ in range(3):  # magic number, protocol version, system info
            scanned(_PlainUnpickler(stream))
        scanner = _LegacyScanner(stream, where)
        scanned(scanner)
        keys = scanned(_PlainUnpickler(stream))
        if not isinstance(keys, list) or sorted(map(str, keys)) != sorted(scanner.storages):
            raise BundleError(f"{where}: the stored storage keys do not match the ones the pickle declares")
        declared = sum(scanner.storages.values())
        if declared > len(raw):
            raise ResourceLimitError(
                f"{where}: storages declare {declared:,} bytes, more than the {len(raw):,} bytes present"
            )
        for key in keys:
            header = stream.read(8)
            if len(header) != 8:
                raise BundleError(f"{where}: truncated before the data of storage {short_repr(key)}")
            (numel,) = struct.unpack("<q", header)
            nbytes = scanner.storages[str(key)]
            if numel < 0 or nbytes % max(numel, 1) or (numel == 0) != (nbytes == 0):
                raise BundleError(f"{where}: storage {short_repr(key)} stores {numel:,} elements, not as declared")
            if stream.seek(nbytes, io.SEEK_CUR) > len(raw):
                raise BundleError(f"{where}: truncated inside the data of storage {short_repr(key)}")
    except BundleError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, AttributeError,
            IndexError, struct.error, RecursionError, MemoryError, OverflowError) as exc:
        raise BundleError(f"{where} is not a torch state dict ({type(exc).__name__}: {short_repr(str(exc))})") from exc


def _tensor_extent(tensor: torch.Tensor) -> int:
    """Elements of storage a tensor view reaches: offset + 1 + sum((size - 1) * stride)."""
    if tensor.numel() == 0:
        return 0
    return int(tensor.storage_offset()) + 1 + sum(
        (size - 1) * abs(stride) for size, stride in zip(tensor.shape, tensor.stride())
    )


def check_tensors(tensors: Mapping[str, torch.Tensor], where: str) -> None:
    """Refuse tensors that are not plain, finite, reasonably sized weights.

    Every tensor must have a plain numeric dtype (no complex, quantized or other exotic types), at most
    :data:`~rltransfer.limits.MAX_TENSOR_ELEMENTS` elements, a storage that holds all of its elements
    without overlap (no stride-0 or overlapping views that declare a huge shape over a tiny storage),
    and, for floating-point tensors, only finite values of magnitude at most
    :data:`MAX_WEIGHT_MAGNITUDE`.

    Args:
        tensors: name -> tensor, e.g. a state dict just loaded from a file.
        where: file and member quoted in errors.

    Raises:
        ResourceLimitError: a tensor with too many elements.
        BundleError: any other refused tensor (naming it).
    """
    for key, tensor in tensors.items():
        name = f"{where}: tensor {short_repr(key)}"
        if not isinstance(tensor, torch.Tensor):
            raise BundleError(f"{name} is a {type(tensor).__name__}, expected a tensor")
        if tensor.dtype not in _TENSOR_DTYPES:
            raise BundleError(
                f"{name} has dtype {tensor.dtype}; only real floating-point, integer and bool weights "
                "are accepted"
            )
        if tensor.layout != torch.strided or tensor.is_quantized or tensor.device.type != "cpu":
            raise BundleError(f"{name} is not a plain dense CPU tensor ({tensor.layout}, {tensor.device})")
        numel = math.prod(tensor.shape)
        if numel > limits.MAX_TENSOR_ELEMENTS:
            raise ResourceLimitError(
                f"{name} has shape {short_repr(tuple(tensor.shape))} ({numel:,} elements), more than the "
                f"{limits.MAX_TENSOR_ELEMENTS:,} allowed (MAX_TENSOR_ELEMENTS)"
            )
        storage_elements = tensor.untyped_storage().nbytes() // max(tensor.element_size(), 1)
        if numel > storage_elements or _tensor_extent(tensor) > storage_elements or (
            numel > 1 and any(st == 0 for sz, st in zip(tensor.shape, tensor.stride()) if sz > 1)
        ):
            raise BundleError(
                f"{name} declares shape {short_repr(tuple(tensor.shape))} and strides "
                f"{short_repr(tuple(tensor.stride()))} over a storage of only {storage_elements:,} "
                "elements (an overlapping or out-of-bounds view); refused"
            )
        if tensor.is_floating_point() and numel:
            values = tensor.detach()
            if not bool(torch.isfinite(values).all()):
                bad = int((~torch.isfinite(values)).sum())
                raise BundleError(f"{name} holds {bad:,} non-finite values (NaN or inf); refused")
            peak = float(values.abs().max())
            if peak > MAX_WEIGHT_MAGNITUDE:
                raise BundleError(
                    f"{name} holds a value of magnitude {peak:.3g}, more than the {MAX_WEIGHT_MAGNITUDE:g} "
                    "allowed for a weight (MAX_WEIGHT_MAGNITUDE); refused"
                )


def _load_tensors(raw: bytes, path: Path, name: str) -> dict[str, torch.Tensor]:
    expected = "a torch state dict (str -> tensor) loadable with weights_only=True"
    where = f"{path}: member {name!r}"
    if raw[:4] == b"PK\x03\x04":
        _check_torch_zip(raw, where)
    else:
        _check_torch_legacy(raw, where)
    try:
        loaded = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types here; all mean "not plain weights"
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BundleError(f"{where} is not {expected}: {short_repr(first_line, 200)}") from exc
    if not isinstance(loaded, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in loaded.items()
    ):
        raise BundleError(f"{where} holds {type(loaded).__name__}, expected {expected}")
    check_tensors(loaded, where)
    return dict(loaded)


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


def _infer_algo(module: str, name: str, data: Mapping[str, Any]) -> str | None:
    family = {
        "stable_baselines3.sac.policies": "sac",
        "stable_baselines3.td3.policies": "td3",
        "stable_baselines3.dqn.policies": "dqn",
    }.get(module)
    if family:
        return family
    on_policy_module = module in (
        "stable_baselines3.common.policies",
        "stable_baselines3.ppo.policies",
        "stable_baselines3.a2c.policies",
    )
    if on_policy_module and (
        not name or "ActorCritic" in name or name in ("MlpPolicy", "CnnPolicy", "MultiInputPolicy")
    ):
        return "ppo" if {"n_epochs", "clip_range", "batch_size"} & set(data) else "a2c"
    if not module:
        for tag, algo in (("SAC", "sac"), ("TD3", "td3"), ("DQN", "dqn")):
            if name.startswith(tag):
                return algo
    return None


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


def _flat_size(space: spaces.Space) -> int:
    """Width of the input or output layer a space implies (one-hot for discrete spaces)."""
    if isinstance(space, spaces.Discrete):
        return int(space.n)
    if isinstance(space, spaces.MultiDiscrete):
        return int(space.nvec.sum())
    if isinstance(space, (spaces.Box, spaces.MultiBinary)):
        return math.prod(space.shape)
    return 1


def _check_override(algo: str) -> str:
    name = str(algo).lower()
    if name not in ALGOS:
        raise unknown_name("algorithm", algo, ALGOS, "read_sb3_zip(algo=...)")
    return name


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
    if not path.exists():
        raise BundleError(f"{path}: file not found; expected an SB3 model zip")
    if not path.is_file():
        raise BundleError(f"{path}: not a file; expected an SB3 model zip")
    _check_central_directory(path)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError, struct.error) as exc:
        raise BundleError(
            f"{path}: not a readable zip archive ({short_repr(str(exc))}); expected an SB3 model zip"
        ) from exc
    notes: list[str] = []
    dropped: dict[str, Any] = {}
    budget = _Budget(limits.MAX_WEIGHTS_BYTES)
    with archive:
        raw_data = _read_member(
            archive, "data", path, "the JSON written by SB3's data_to_json", limits.MAX_DATA_BYTES
        )
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
        version: str | None = None
        if "_stable_baselines3_version" in archive.namelist():
            raw_version = _read_member(archive, "_stable_baselines3_version", path, "a version string", 1024)
            version = raw_version.decode("utf-8", errors="replace").strip() or None
        else:
            notes.append("pre-1.0 format: no _stable_baselines3_version member")
        state_dict = _load_tensors(
            _read_member(
                archive, "policy.pth", path, "the policy's torch state dict", limits.MAX_WEIGHTS_BYTES, budget
            ),
            path,
            "policy.pth",
        )
        variables: dict[str, torch.Tensor] = {}
        for name in ("pytorch_variables.pth", "tensors.pth"):
            if name in archive.namelist():
                variables = _load_tensors(
                    _read_member(archive, name, path, "a dict of tensors", limits.MAX_WEIGHTS_BYTES, budget),
                    path,
                    name,
                )
                break
    if not state_dict:
        raise BundleError(
            f"{path}: member 'policy.pth' is an empty state dict; expected the policy's tensors"
        )

    module, class_name = _policy_class_name(data.get("policy_class"))
    inferred = _infer_algo(module, class_name, data)
    if override is not None:
        algo_name = override
        if inferred is None:
            notes.append(
                f"algo given as {short_repr(override)}; the file's policy class {short_repr(class_name or '?')} from module "
                f"{short_repr(module or '?')} is not one of SB3's core algorithms"
            )
        elif inferred != override:
            notes.append(f"algo given as {short_repr(override)}; the file looks like {short_repr(inferred)}")
    elif inferred is None:
        raise BundleError(
            f"{path}: cannot tell the algorithm: policy class {short_repr(class_name or '?')} from module "
            f"{short_repr(module or '?')}, hyperparameter keys {short_repr(sorted(k for k in data if not k.startswith('_'))[:12], 200)}; "
            f"pass algo= one of {list(ALGOS)}"
        )
    else:
        algo_name = inferred
    if not class_name:
        class_name = _default_policy_name(algo_name)
        notes.append(f"policy class name not readable; assuming {class_name}")

    observation_space = _space_from_sb3(data.get("observation_space"), "observation_space", path, notes)
    action_space = _space_from_sb3(data.get("action_space"), "action_space", path, notes)

    on_policy = algo_name in ON_POLICY_ALGOS
    policy_kwargs, raw_net_arch = _read_policy_kwargs(data.get("policy_kwargs"), notes, dropped)
    if on_policy:
        state_dict, n_shared = split_shared_layers(state_dict)
        if n_shared:
            notes.append(
                f"{n_shared} layer(s) shared by policy and value nets (removed in SB3 1.8) were copied "
                "into both mlp_extractor.policy_net and value_net; outputs are unchanged"
            )
    net_arch: Any = None
    if raw_net_arch is not None:
        try:
            net_arch = convert_net_arch(raw_net_arch, on_policy, "net_arch")
        except ConfigError as exc:
            error = ResourceLimitError if isinstance(exc, ResourceLimitError) else BundleError
            raise error(f"{path}: data['policy_kwargs']: {exc}") from exc
        check_net_arch(  # the declared one too: a file that declares an absurd network is refused
            net_arch,
            f"{path}: data['policy_kwargs']['net_arch']",
            in_features=_flat_size(observation_space),
            out_features=_flat_size(action_space),
            copies=1 if on_policy else 2,
        )
        if net_arch != raw_net_arch:
            notes.append(f"net_arch {short_repr(raw_net_arch)} converted to today's format {short_repr(net_arch)}")
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
        check_net_arch(
            net_arch,
            f"{path}: net_arch",
            in_features=_flat_size(observation_space),
            out_features=_flat_size(action_space),
            copies=1 if on_policy else 2,
        )
        policy_kwargs["net_arch"] = net_arch
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
        if n_critics and n_critics != 2:
            policy_kwargs["n_critics"] = n_critics
            notes.append(f"n_critics={n_critics} inferred from policy.pth")
    log_std = state_dict.get("log_std")
    if (
        on_policy
        and "full_std" not in policy_kwargs
        and log_std is not None
        and log_std.ndim == 2
        and isinstance(action_space, spaces.Box)
        and int(np.prod(action_space.shape)) > 1
        and log_std.shape[1] == 1
    ):
        policy_kwargs["full_std"] = False
        notes.append("full_std=False inferred from the shape of log_std")

    version_tuple = _parse_version(version)
    old_int_list = (
        on_policy
        and isinstance(raw_net_arch, list)
        and bool(raw_net_arch)
        and all(isinstance(v, int) for v in raw_net_arch)
    )
    if old_int_list and (version_tuple is None or version_tuple < (1, 8)):
        notes.append("before SB3 1.8 a list net_arch meant layers shared by policy and value nets")

    hyperparams = _read_hyperparams(data, notes)

    def _opt_int(key: str) -> int | None:
        value = data.get(key)
        return int(value) if isinstance(value, int) and not isinstance(value, bool) else None

    return SB3Archive(
        path=path,
        algo=algo_name,
        sb3_version=version,
        observation_space=observation_space,
        action_space=action_space,
        policy_class=class_name,
        policy_kwargs=policy_kwargs,
        hyperparams=hyperparams,
        num_timesteps=_opt_int("num_timesteps"),
        n_envs=_opt_int("n_envs"),
        state_dict=state_dict,
        notes=notes,
        dropped=dropped,
        pytorch_variables=variables,
    )
