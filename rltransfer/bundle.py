"""Policy bundles: saving them atomically, loading them (and third-party SB3 zips) without unpickling.

A bundle is a folder::

    policy/
      model.zip           a plain SB3 save: ``PPO.load("policy/model.zip")`` works without rltransfer
      manifest.json       format version, algo, policy kwargs, spaces, env family and parameters, wrappers,
                          steps, seed, library versions, sha256 of every other file
      normalization.json  observation-normalization statistics (only when the agent normalizes)

:func:`load_bundle` never opens the pickled parts of ``model.zip``: it rebuilds the model from the
manifest and loads ``policy.pth`` with ``torch.load(..., weights_only=True)``, after checking every hash.
:func:`load_policy` accepts a bundle, a run directory, or any SB3 zip (through :mod:`rltransfer.sb3zip`).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from rltransfer.algos import algo_class
from rltransfer.config import EnvFamily
from rltransfer.environments import WrapperSpec
from rltransfer.errors import BundleError
from rltransfer.normalization import NormalizationStats
from rltransfer.rundir import atomic_write_json, versions
from rltransfer.sb3zip import ACTIVATIONS, read_sb3_zip, space_from_json, space_to_json

FORMAT_VERSION = 1
MODEL_FILE = "model.zip"
MANIFEST_FILE = "manifest.json"
NORM_FILE = "normalization.json"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "Adam": torch.optim.Adam, "AdamW": torch.optim.AdamW, "RMSprop": torch.optim.RMSprop, "SGD": torch.optim.SGD,
}


def policy_kwargs_to_json(kwargs: dict[str, Any]) -> dict[str, Any]:
    """SB3 policy kwargs as JSON: activation and optimizer classes become names from allowlists."""
    out: dict[str, Any] = {}
    for key, value in kwargs.items():
        if isinstance(value, type) and issubclass(value, torch.optim.Optimizer):
            if value.__name__ not in OPTIMIZERS:
                raise BundleError(f"policy_kwargs.{key}: {value.__name__} is not an allowlisted optimizer")
            out[key] = value.__name__
        elif isinstance(value, type) and issubclass(value, torch.nn.Module):
            if value.__name__ not in ACTIVATIONS:
                raise BundleError(f"policy_kwargs.{key}: {value.__name__} is not an allowlisted activation")
            out[key] = value.__name__
        elif isinstance(value, (bool, int, float, str, list, dict)) or value is None:
            out[key] = json.loads(json.dumps(value))
        else:
            raise BundleError(f"policy_kwargs.{key}: value of type {type(value).__name__} cannot be stored as JSON")
    return out


def policy_kwargs_from_json(kwargs: dict[str, Any], where: str) -> dict[str, Any]:
    out = dict(kwargs)
    if "activation_fn" in out:
        name = out["activation_fn"]
        if name not in ACTIVATIONS:
            raise BundleError(f"{where}: activation_fn {name!r} is not allowlisted; valid: {sorted(ACTIVATIONS)}")
        out["activation_fn"] = ACTIVATIONS[name]
    if "optimizer_class" in out:
        name = out["optimizer_class"]
        if name not in OPTIMIZERS:
            raise BundleError(f"{where}: optimizer_class {name!r} is not allowlisted; valid: {sorted(OPTIMIZERS)}")
        out["optimizer_class"] = OPTIMIZERS[name]
    return out


# ------------------------------------------------------------------------------------------------ saving


def save_bundle(
    model: BaseAlgorithm,
    path: str | Path,
    family: EnvFamily | None = None,
    params: dict[str, float] | None = None,
    seed: int | None = None,
    vec_normalize: VecNormalize | None = None,
    normalization: NormalizationStats | None = None,
    wrappers: Sequence[WrapperSpec] = (),
    extra: dict[str, Any] | None = None,
) -> Path:
    """Save ``model`` as a bundle at ``path``, atomically (a temporary folder renamed into place)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        model.save(tmp / MODEL_FILE)
        files = {MODEL_FILE: sha256(tmp / MODEL_FILE)}
        if normalization is None and vec_normalize is not None:
            normalization = NormalizationStats.from_vecnormalize(vec_normalize)
        if normalization is not None:
            normalization.save(tmp / NORM_FILE)
            files[NORM_FILE] = sha256(tmp / NORM_FILE)
        algo = type(model).__name__.lower()
        manifest = {
            "format_version": FORMAT_VERSION,
            "algo": algo,
            "policy_class": type(model.policy).__name__,
            "policy_kwargs": policy_kwargs_to_json(model.policy_kwargs),
            "use_sde": bool(getattr(model, "use_sde", False)),
            "observation_space": space_to_json(model.observation_space),
            "action_space": space_to_json(model.action_space),
            "env": {
                "family": family.name if family else None,
                "gym_id": family.gym_id if family else None,
                "params": dict(params or {}),
                "wrappers": [w.to_dict() for w in wrappers],
            },
            "num_timesteps": int(model.num_timesteps),
            "seed": seed,
            "normalization": NORM_FILE if normalization is not None else None,
            "versions": versions(),
            "files": files,
            **(extra or {}),
        }
        atomic_write_json(tmp / MANIFEST_FILE, manifest)
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=path.parent))
            path.replace(old / path.name)
            tmp.replace(path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.replace(path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


# ----------------------------------------------------------------------------------------------- loading


class SpaceEnv(gym.Env):
    """An env that only has spaces: used to rebuild a model without the env it was trained on."""

    def __init__(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        self.observation_space = observation_space
        self.action_space = action_space

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        return self.observation_space.sample(), 0.0, True, False, {}


def rebuild_model(
    algo: str,
    observation_space: gym.Space,
    action_space: gym.Space,
    policy_kwargs: dict[str, Any],
    state_dict: dict[str, torch.Tensor] | None,
    where: str,
    use_sde: bool = False,
) -> BaseAlgorithm:
    """An SB3 model with the given spaces and architecture, with ``state_dict`` loaded (strict)."""
    cls = algo_class(algo)
    kwargs = policy_kwargs_from_json(policy_kwargs, where)
    use_sde = bool(kwargs.pop("use_sde", use_sde))
    extra: dict[str, Any] = {"device": "cpu"}
    if algo in ("sac", "td3", "dqn"):
        extra["buffer_size"] = 1  # only the policy is needed; don't allocate a replay buffer
        extra["learning_starts"] = 0
    if use_sde:
        extra["use_sde"] = True
    env = DummyVecEnv([lambda: SpaceEnv(observation_space, action_space)])
    try:
        model = cls("MlpPolicy", env, policy_kwargs=kwargs, **extra)
    except (AssertionError, TypeError, ValueError) as exc:
        raise BundleError(f"{where}: cannot rebuild a {algo.upper()} model from its description: {exc}") from exc
    if state_dict is not None:
        load_policy_weights(model, state_dict, where)
    return model


def load_policy_weights(model: BaseAlgorithm, state_dict: dict[str, torch.Tensor], where: str) -> None:
    """Load weights into ``model.policy``, with a message that lists missing/unexpected/mis-shaped tensors."""
    own = model.policy.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    shapes = [
        f"{k}: file {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own if k in state_dict and tuple(own[k].shape) != tuple(state_dict[k].shape)
    ]
    if missing or unexpected or shapes:
        raise BundleError(
            f"{where}: weights do not fit the described architecture; missing {missing[:6]}, "
            f"unexpected {unexpected[:6]}, shape mismatches {shapes[:6]}"
        )
    model.policy.load_state_dict(state_dict, strict=True)


@dataclass
class LoadedPolicy:
    """A policy ready to act or to be transferred, whatever it was loaded from."""

    algo: str
    model: BaseAlgorithm
    observation_space: gym.Space
    action_space: gym.Space
    policy_kwargs: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    path: Path
    origin: str  # "bundle" or "sb3-zip"
    normalization: NormalizationStats | None = None
    wrappers: tuple[WrapperSpec, ...] = ()
    family: str | None = None
    gym_id: str | None = None
    params: dict[str, float] = field(default_factory=dict)
    num_timesteps: int | None = None
    manifest: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def normalize(self, obs: np.ndarray) -> np.ndarray:
        return self.normalization.normalize(obs) if self.normalization is not None else obs


def read_manifest(path: Path) -> dict[str, Any]:
    manifest_path = Path(path) / MANIFEST_FILE
    if not manifest_path.is_file():
        raise BundleError(f"{path}: not a policy bundle (no {MANIFEST_FILE})")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise BundleError(f"{manifest_path}: unreadable or truncated manifest: {exc}") from exc
    if not isinstance(manifest, dict):
        raise BundleError(f"{manifest_path}: expected a JSON object")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise BundleError(f"{manifest_path}: format_version {version!r} is not supported (this is {FORMAT_VERSION})")
    for key in ("algo", "policy_kwargs", "observation_space", "action_space", "files"):
        if key not in manifest:
            raise BundleError(f"{manifest_path}: missing key {key!r}")
    return manifest


def verify_files(path: Path, manifest: dict[str, Any]) -> None:
    """Check every file the manifest lists exists and has the recorded sha256."""
    files = manifest["files"]
    if MODEL_FILE not in files:
        raise BundleError(f"{path}/{MANIFEST_FILE}: 'files' does not list {MODEL_FILE}")
    for name, expected in files.items():
        if "/" in name or "\\" in name or name.startswith("."):
            raise BundleError(f"{path}/{MANIFEST_FILE}: file name {name!r} is not a plain file name")
        file = Path(path) / name
        if not file.is_file():
            raise BundleError(f"{file}: missing (listed in {MANIFEST_FILE})")
        got = sha256(file)
        if got != expected:
            raise BundleError(
                f"{file}: sha256 mismatch (file is truncated or altered): manifest says {expected}, file has {got}"
            )


def load_bundle(path: str | Path) -> LoadedPolicy:
    """Load an rltransfer bundle (no unpickling; hashes verified)."""
    path = Path(path)
    manifest = read_manifest(path)
    verify_files(path, manifest)
    where = str(path)
    algo = str(manifest["algo"])
    archive = read_sb3_zip(path / MODEL_FILE, algo=algo)
    obs_space = space_from_json(manifest["observation_space"])
    act_space = space_from_json(manifest["action_space"])
    model = rebuild_model(
        algo, obs_space, act_space, manifest["policy_kwargs"], archive.state_dict, where,
        use_sde=bool(manifest.get("use_sde", False)),
    )
    model.num_timesteps = int(manifest.get("num_timesteps") or 0)
    norm = NormalizationStats.load(path / manifest["normalization"]) if manifest.get("normalization") else None
    env = manifest.get("env") or {}
    wrappers = tuple(WrapperSpec(w["name"], dict(w.get("kwargs", {}))) for w in env.get("wrappers", []))
    return LoadedPolicy(
        algo=algo, model=model, observation_space=obs_space, action_space=act_space,
        policy_kwargs=dict(manifest["policy_kwargs"]), state_dict=archive.state_dict, path=path,
        origin="bundle", normalization=norm, wrappers=wrappers, family=env.get("family"),
        gym_id=env.get("gym_id"), params=dict(env.get("params") or {}),
        num_timesteps=manifest.get("num_timesteps"), manifest=manifest,
    )


def load_sb3_zip(path: str | Path, algo: str | None = None) -> LoadedPolicy:
    """Load any SB3 zip (ours or third-party, any SB3 version) without unpickling, with the Zoo's
    companions (``*.vecnormalize.pkl`` via a restricted unpickler, ``*.config.yml`` via a safe loader)."""
    from rltransfer.zoo import find_zoo_companions, load_vecnormalize_pkl, load_zoo_config

    path = Path(path)
    archive = read_sb3_zip(path, algo=algo)
    notes = list(archive.notes)
    companions = find_zoo_companions(path)
    wrappers: tuple[WrapperSpec, ...] = ()
    norm = None
    if companions.get("config"):
        config = load_zoo_config(companions["config"])
        wrappers = tuple(WrapperSpec(name) for name in config.get("env_wrapper", []))
        notes.append(f"Zoo config {companions['config']}: wrappers {[w.name for w in wrappers]}")
    if companions.get("vecnormalize"):
        norm = load_vecnormalize_pkl(companions["vecnormalize"])
        notes.append(f"observation normalization from {companions['vecnormalize']}")
    model = rebuild_model(
        archive.algo, archive.observation_space, archive.action_space, archive.policy_kwargs,
        archive.state_dict, str(path),
    )
    gym_id = _gym_id_from_zoo_name(path)
    return LoadedPolicy(
        algo=archive.algo, model=model, observation_space=archive.observation_space,
        action_space=archive.action_space, policy_kwargs=dict(archive.policy_kwargs),
        state_dict=archive.state_dict, path=path, origin="sb3-zip", normalization=norm, wrappers=wrappers,
        gym_id=gym_id, num_timesteps=archive.num_timesteps, notes=notes,
    )


def _gym_id_from_zoo_name(path: Path) -> str | None:
    """``ppo-HopperBulletEnv-v0.zip`` -> ``HopperBulletEnv-v0`` (the Zoo's naming), else None."""
    stem = path.stem
    algo, sep, rest = stem.partition("-")
    return rest if sep and algo.lower() in ("ppo", "a2c", "sac", "td3", "dqn") and "-v" in rest else None


def load_policy(source: str | Path, algo: str | None = None) -> LoadedPolicy:
    """Load a policy from a bundle folder, a run directory (its ``policy/``), or an SB3 zip."""
    path = Path(source)
    if path.is_dir():
        if (path / MANIFEST_FILE).is_file():
            return load_bundle(path)
        if (path / "policy" / MANIFEST_FILE).is_file():
            return load_bundle(path / "policy")
        raise BundleError(f"{path}: neither a policy bundle (no {MANIFEST_FILE}) nor a run directory (no policy/)")
    if path.is_file():
        return load_sb3_zip(path, algo=algo)
    raise BundleError(f"{path}: no such file or directory (expected a bundle, a run directory or an SB3 .zip)")
