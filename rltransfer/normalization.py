"""Observation-normalization statistics as plain data (no pickles).

SB3's ``VecNormalize`` keeps running statistics inside a pickled object. rltransfer stores the same
numbers as JSON beside a policy (``policy/normalization.json``) and rebuilds a frozen ``VecNormalize``
from them, so a saved policy can be evaluated or transferred without unpickling anything.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rltransfer import limits
from rltransfer.errors import BundleError, ResourceLimitError
from rltransfer.limits import short_repr

_KNOWN_KEYS = (
    "obs_mean", "obs_var", "count", "clip_obs", "epsilon", "norm_obs", "norm_reward",
    "ret_mean", "ret_var", "ret_count", "clip_reward", "gamma",
)
# Scalar keys and what makes them valid (the check and how to say it in an error).
_POSITIVE = ("count", "clip_obs", "ret_count", "clip_reward")
_NON_NEGATIVE = ("epsilon", "ret_var")


def _finite_number(value: Any, key: str, source: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise BundleError(f"{source}: key {key!r} must be a number, got {short_repr(value)}")
    number = float(value)
    if not math.isfinite(number):
        raise BundleError(f"{source}: key {key!r} must be finite, got {short_repr(value)}")
    return number


def _vector(value: Any, key: str, source: str) -> np.ndarray:
    if isinstance(value, (list, tuple)):
        limits.check_structure(value, f"{source}: key {key!r}", max_nodes=limits.MAX_SPACE_ELEMENTS + 1)
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError) as exc:
        raise BundleError(f"{source}: key {key!r} must be a list of numbers, got {short_repr(value)}") from exc
    if array.ndim != 1:
        raise BundleError(
            f"{source}: key {key!r} must be 1-D (one entry per observation feature), got shape {array.shape}"
        )
    if array.size > limits.MAX_SPACE_ELEMENTS:
        raise ResourceLimitError(
            f"{source}: key {key!r} has {array.size:,} entries, more than the "
            f"{limits.MAX_SPACE_ELEMENTS:,} allowed (MAX_SPACE_ELEMENTS)"
        )
    if not np.all(np.isfinite(array)):
        bad = int(np.flatnonzero(~np.isfinite(array))[0])
        raise BundleError(f"{source}: key {key!r} holds a non-finite value ({array[bad]}) at index {bad}")
    return array


@dataclass
class NormalizationStats:
    """Running mean/variance of observations (and optionally returns), as ``VecNormalize`` keeps them.

    Attributes:
        obs_mean: (obs_dim,) running mean of observations.
        obs_var: (obs_dim,) running variance of observations.
        count: number of samples behind the running statistics.
        clip_obs: normalized observations are clipped to ``[-clip_obs, clip_obs]``.
        epsilon: added to the variance before the square root.
        norm_obs: whether observations are normalized at all.
        norm_reward: whether rewards were normalized during training (not used at evaluation).
        ret_var: running variance of discounted returns, when ``norm_reward``.
        clip_reward: clip of normalized rewards.
        gamma: discount used for the return statistics.
    """

    obs_mean: np.ndarray
    obs_var: np.ndarray
    count: float = 1e-4
    clip_obs: float = 10.0
    epsilon: float = 1e-8
    norm_obs: bool = True
    norm_reward: bool = False
    ret_var: float = 1.0
    ret_mean: float = 0.0
    ret_count: float = 1e-4
    clip_reward: float = 10.0
    gamma: float = 0.99
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.obs_mean = np.asarray(self.obs_mean, dtype=np.float64)
        self.obs_var = np.asarray(self.obs_var, dtype=np.float64)
        if self.obs_mean.shape != self.obs_var.shape:
            raise BundleError(
                f"normalization statistics: obs_mean shape {self.obs_mean.shape} != obs_var shape {self.obs_var.shape}"
            )

    def validate(self, source: str = "normalization statistics") -> None:
        """Check that the statistics can normalize anything: 1-D finite ``obs_mean``/``obs_var`` of the
        same shape, ``obs_var >= 0``, finite positive counts and clips, finite scalars.

        Raises:
            BundleError: naming ``source`` and the key.
        """
        self.obs_mean = _vector(self.obs_mean, "obs_mean", source)
        self.obs_var = _vector(self.obs_var, "obs_var", source)
        if self.obs_mean.shape != self.obs_var.shape:
            raise BundleError(
                f"{source}: obs_mean shape {self.obs_mean.shape} != obs_var shape {self.obs_var.shape}"
            )
        if self.obs_var.size and float(self.obs_var.min()) < 0:
            raise BundleError(f"{source}: key 'obs_var' holds a negative variance ({self.obs_var.min()})")
        for key in ("count", "clip_obs", "epsilon", "ret_mean", "ret_var", "ret_count", "clip_reward", "gamma"):
            number = _finite_number(getattr(self, key), key, source)
            if key in _POSITIVE and number <= 0:
                raise BundleError(f"{source}: key {key!r} must be > 0, got {number}")
            if key in _NON_NEGATIVE and number < 0:
                raise BundleError(f"{source}: key {key!r} must be >= 0, got {number}")
            setattr(self, key, number)
        for key in ("norm_obs", "norm_reward"):
            if not isinstance(getattr(self, key), (bool, np.bool_)):
                raise BundleError(f"{source}: key {key!r} must be true or false, got {short_repr(getattr(self, key))}")
            setattr(self, key, bool(getattr(self, key)))

    def check_against(self, space: Any, where: str = "normalization statistics") -> None:
        """Refuse statistics whose shape does not match a (Box) observation space.

        Args:
            space: the observation space (anything with a ``shape``), or an int: the feature count.
            where: file quoted in the error.

        Raises:
            BundleError: the statistics have another number of features than the space.
        """
        expected = (space,) if isinstance(space, int) else tuple(getattr(space, "shape", None) or ())
        if not expected and not isinstance(space, int):
            raise BundleError(f"{where}: observation space {short_repr(space)} has no shape to normalize")
        if math.prod(expected) != self.obs_mean.size or (len(expected) == 1 and expected != self.obs_mean.shape):
            raise BundleError(
                f"{where}: statistics for {self.obs_mean.size} observation features, the observation space "
                f"has shape {expected}"
            )

    @property
    def obs_dim(self) -> int:
        return int(self.obs_mean.shape[0]) if self.obs_mean.ndim else 1

    def normalize(self, obs: np.ndarray) -> np.ndarray:
        """Normalize observations exactly as a frozen ``VecNormalize`` would."""
        if not self.norm_obs:
            return obs
        out = (obs - self.obs_mean) / np.sqrt(self.obs_var + self.epsilon)
        return np.clip(out, -self.clip_obs, self.clip_obs).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {
            "obs_mean": self.obs_mean.tolist(),
            "obs_var": self.obs_var.tolist(),
            "count": float(self.count),
            "clip_obs": float(self.clip_obs),
            "epsilon": float(self.epsilon),
            "norm_obs": bool(self.norm_obs),
            "norm_reward": bool(self.norm_reward),
            "ret_mean": float(self.ret_mean),
            "ret_var": float(self.ret_var),
            "ret_count": float(self.ret_count),
            "clip_reward": float(self.clip_reward),
            "gamma": float(self.gamma),
        }

    @classmethod
    def from_dict(
        cls,
        data: Mapping[str, Any],
        source: str = "normalization statistics",
        obs_space: Any = None,
        extra: dict[str, Any] | None = None,
    ) -> NormalizationStats:
        """Build validated statistics from :meth:`to_dict` output (see :meth:`validate`).

        Args:
            data: the dict (e.g. parsed ``normalization.json``).
            source: file quoted in errors.
            obs_space: if given, the observation space (or feature count) the statistics must fit.
            extra: metadata kept in :attr:`extra`.

        Raises:
            BundleError: unknown or missing keys, or any value :meth:`validate` refuses.
        """
        if not isinstance(data, Mapping):
            raise BundleError(f"{source}: expected a JSON object of statistics, got {type(data).__name__}")
        limits.check_structure(data, source)
        unknown = set(data) - set(_KNOWN_KEYS)
        if unknown:
            raise BundleError(
                f"{source}: unknown keys {short_repr(sorted(map(str, unknown)), 200)}; valid keys: {sorted(_KNOWN_KEYS)}"
            )
        for key in ("obs_mean", "obs_var"):
            if key not in data:
                raise BundleError(f"{source}: missing key {key!r}")
        stats = cls.__new__(cls)
        for f_name, f_default in cls._defaults().items():
            setattr(stats, f_name, data.get(f_name, f_default))
        stats.extra = dict(extra or {})
        stats.validate(source)
        if obs_space is not None:
            stats.check_against(obs_space, source)
        return stats

    @classmethod
    def _defaults(cls) -> dict[str, Any]:
        fields = cls.__dataclass_fields__
        return {name: fields[name].default for name in _KNOWN_KEYS}

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path: Path, obs_space: Any = None) -> NormalizationStats:
        """Read and validate ``normalization.json`` (bounded: see :mod:`rltransfer.limits`).

        Args:
            path: the JSON file.
            obs_space: if given, the observation space (or feature count) the statistics must fit.

        Raises:
            ResourceLimitError: the file is larger than ``MAX_JSON_BYTES``, not a regular file, or
                nested too deeply.
            BundleError: unreadable, not UTF-8 JSON, or statistics :meth:`validate` refuses.
        """
        try:
            text = limits.read_bytes(path, limits.MAX_JSON_BYTES, "normalization statistics").decode("utf-8")
            data = json.loads(text)
        except RecursionError:
            raise ResourceLimitError(
                f"{path}: normalization statistics nested too deeply (MAX_NESTING is {limits.MAX_NESTING})"
            ) from None
        except UnicodeDecodeError as exc:
            raise BundleError(f"{path}: normalization statistics are not UTF-8 (byte {exc.start})") from None
        except json.JSONDecodeError as exc:
            raise BundleError(f"{path}: normalization statistics are not valid JSON: {exc}") from None
        except OSError as exc:
            raise BundleError(f"{path}: cannot read normalization statistics: {short_repr(str(exc))}") from exc
        return cls.from_dict(data, source=str(path), obs_space=obs_space)

    @classmethod
    def from_vecnormalize(cls, vec: Any) -> NormalizationStats:
        """Copy the statistics out of a live SB3 ``VecNormalize``."""
        rms = vec.obs_rms
        return cls(
            obs_mean=np.array(rms.mean), obs_var=np.array(rms.var), count=float(rms.count),
            clip_obs=float(vec.clip_obs), epsilon=float(vec.epsilon), norm_obs=bool(vec.norm_obs),
            norm_reward=bool(vec.norm_reward), ret_mean=float(np.mean(vec.ret_rms.mean)),
            ret_var=float(np.mean(vec.ret_rms.var)), ret_count=float(vec.ret_rms.count),
            clip_reward=float(vec.clip_reward), gamma=float(vec.gamma),
        )

    def apply_to(self, vec: Any) -> None:
        """Write these statistics into a live SB3 ``VecNormalize`` (shapes must agree)."""
        if vec.obs_rms.mean.shape != self.obs_mean.shape:
            raise BundleError(
                f"normalization statistics have shape {self.obs_mean.shape}, "
                f"the environment's observations have shape {vec.obs_rms.mean.shape}"
            )
        vec.obs_rms.mean = self.obs_mean.copy()
        vec.obs_rms.var = self.obs_var.copy()
        vec.obs_rms.count = float(self.count)
        vec.ret_rms.mean = np.float64(self.ret_mean)
        vec.ret_rms.var = np.float64(self.ret_var)
        vec.ret_rms.count = float(self.ret_count)
        vec.clip_obs = self.clip_obs
        vec.epsilon = self.epsilon
