"""Observation-normalization statistics as plain data (no pickles).

SB3's ``VecNormalize`` keeps running statistics inside a pickled object. rltransfer stores the same
numbers as JSON beside a policy (``policy/normalization.json``) and rebuilds a frozen ``VecNormalize``
from them, so a saved policy can be evaluated or transferred without unpickling anything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rltransfer.errors import BundleError


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
    def from_dict(cls, data: dict[str, Any], source: str = "normalization statistics") -> NormalizationStats:
        known = {
            "obs_mean", "obs_var", "count", "clip_obs", "epsilon", "norm_obs", "norm_reward",
            "ret_mean", "ret_var", "ret_count", "clip_reward", "gamma",
        }
        unknown = set(data) - known
        if unknown:
            raise BundleError(f"{source}: unknown keys {sorted(unknown)}; valid keys: {sorted(known)}")
        for key in ("obs_mean", "obs_var"):
            if key not in data:
                raise BundleError(f"{source}: missing key {key!r}")
        try:
            return cls(**{k: data[k] for k in data})
        except (TypeError, ValueError) as exc:
            raise BundleError(f"{source}: {exc}") from exc

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path: Path) -> NormalizationStats:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise BundleError(f"{path}: cannot read normalization statistics: {exc}") from exc
        return cls.from_dict(data, source=str(path))

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
