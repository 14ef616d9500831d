"""Policy bundles: saving them atomically, loading them (and third-party SB3 zips) without unpickling.

A bundle is a folder::

    policy/
      model.zip           a plain SB3 save: ``PPO.load("policy/model.zip")`` works without rltransfer
      manifest.json       format version, algo, policy kwargs, spaces, env family (name and content) and
                          parameters, wrappers, steps, seed, library versions, sha256 of every other file
      manifest.sha256     the seal: sha256 of manifest.json's bytes, checked before the manifest is parsed
      normalization.json  observation-normalization statistics (only when the agent normalizes)
      vecnormalize.pkl    the same statistics written by SB3's own ``VecNormalize.save``, for plain-SB3 users
                          (``VecNormalize.load`` + ``PPO.load``); listed and hashed, never read by rltransfer

Everything inside a bundle is untrusted (see the README's trust boundary). :func:`load_bundle` checks the
seal, reads the manifest within a size and nesting budget into a typed model that rejects unknown keys,
reads only the files the manifest lists (each hashed), never opens the pickled parts of ``model.zip``
(``policy.pth`` is loaded with ``torch.load(..., weights_only=True)``), and resolves the env family from
the content carried in the manifest or a shipped name, never from a path: a bundle cannot name a Python
module, a file outside its folder, or a device. Hashes catch damage and casual edits; they are not what
makes a bundle safe, since whoever edits a manifest can recompute them.

:func:`load_policy` accepts a bundle, a run directory, or any SB3 zip (through :mod:`rltransfer.sb3zip`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from rltransfer import limits
from rltransfer.config import EnvFamily
from rltransfer.environments import WrapperSpec
from rltransfer.errors import BundleError, ResourceLimitError, UnsafeFileError
from rltransfer.normalization import NormalizationStats
from rltransfer.rundir import atomic_write_json, atomic_write_text, make_temp_dir, replace_dir, versions
from rltransfer.sb3layout import ALGOS, OFF_POLICY, algo_class, optimizer_classes, policy_alias
from rltransfer.sb3zip import ACTIVATIONS, check_net_arch, read_sb3_zip, space_from_json, space_to_json

#: Format 2 adds the seal (``manifest.sha256``) and the family's content; format 1 bundles still load,
#: with a note that their manifest is not covered by any hash.
FORMAT_VERSION = 2
MODEL_FILE = "model.zip"
MANIFEST_FILE = "manifest.json"
SEAL_FILE = "manifest.sha256"
NORM_FILE = "normalization.json"
#: SB3's own pickle of the normalization wrapper, for users of plain SB3; rltransfer never unpickles it.
VECNORMALIZE_FILE = "vecnormalize.pkl"
#: A curriculum's final state (stages entered, ranges, ADR queues), when the policy was trained with one.
CURRICULUM_FILE = "curriculum.json"

#: Largest file a bundle may list (model.zip, normalization.json): read while hashing, so bounded.
MAX_BUNDLE_FILE_BYTES = limits.MAX_WEIGHTS_BYTES + limits.MAX_DATA_BYTES


def sha256(path: Path, limit: int | None = None) -> str:
    """sha256 of a regular file, refusing more than ``limit`` bytes (counted while reading)."""
    digest = hashlib.sha256()
    total = 0
    with open(path, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise ResourceLimitError(f"{path}: must be a regular file, not a device, FIFO or socket")
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            total += len(chunk)
            if limit is not None and total > limit:
                raise ResourceLimitError(f"{path}: larger than the {limit:,} bytes a bundle file may have")
            digest.update(chunk)
    return digest.hexdigest()


#: Optimizers a manifest may name (:func:`rltransfer.sb3layout.optimizer_classes`).
OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = optimizer_classes()


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
    randomization: str | None = None,
    variant: str | None = None,
    curriculum: dict[str, Any] | None = None,
) -> Path:
    """Save ``model`` as a bundle at ``path``, atomically (a temporary folder renamed into place).

    ``randomization`` and ``variant`` name the domain-randomization preset and the variant of the
    training env (``env.randomization``, ``env.variant`` in the manifest; plain names, checked first).
    ``curriculum``: the training curriculum's final state
    (:meth:`~rltransfer.curricula.CurriculumCallback.to_dict`), saved as ``curriculum.json``.
    """
    for what, name in (("env.randomization", randomization), ("env.variant", variant)):
        if name is not None:
            try:
                _plain_name(name, what)
            except ValueError as exc:
                raise BundleError(f"{path}: {exc}") from None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for old in path.parent.glob(f".{path.name}.old-*"):  # an earlier save killed between its two renames
        if (old / path.name).is_dir() and not path.exists():
            (old / path.name).replace(path)
        shutil.rmtree(old, ignore_errors=True)
    tmp = make_temp_dir(f".{path.name}.tmp-", path.parent)
    try:
        model.save(tmp / MODEL_FILE)
        files = {MODEL_FILE: sha256(tmp / MODEL_FILE)}
        if normalization is None and vec_normalize is not None:
            normalization = NormalizationStats.from_vecnormalize(vec_normalize)
        if normalization is not None:
            normalization.save(tmp / NORM_FILE)
            files[NORM_FILE] = sha256(tmp / NORM_FILE)
            _sb3_vecnormalize(model, vec_normalize, normalization).save(str(tmp / VECNORMALIZE_FILE))
            files[VECNORMALIZE_FILE] = sha256(tmp / VECNORMALIZE_FILE)
        if curriculum is not None:
            atomic_write_json(tmp / CURRICULUM_FILE, curriculum)
            files[CURRICULUM_FILE] = sha256(tmp / CURRICULUM_FILE)
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
                "family_spec": family_to_json(family) if family else None,
                "randomization": randomization,
                "variant": variant,
            },
            "num_timesteps": int(model.num_timesteps),
            "seed": seed,
            "normalization": NORM_FILE if normalization is not None else None,
            **({"curriculum": CURRICULUM_FILE} if curriculum is not None else {}),
            "versions": versions(),
            "files": files,
            **(extra or {}),
        }
        atomic_write_json(tmp / MANIFEST_FILE, manifest)
        atomic_write_text(tmp / SEAL_FILE, sha256(tmp / MANIFEST_FILE) + "\n")
        replace_dir(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _sb3_vecnormalize(model: BaseAlgorithm, vec_normalize: VecNormalize | None,
                      normalization: NormalizationStats) -> VecNormalize:
    """The ``VecNormalize`` whose ``save`` writes the bundle's ``vecnormalize.pkl``: the training wrapper
    itself, or (statistics only) a frozen one over a space-only env with the statistics applied."""
    if vec_normalize is not None:
        return vec_normalize
    env = DummyVecEnv([lambda: SpaceEnv(model.observation_space, model.action_space)])
    wrapper = VecNormalize(env, training=False, norm_obs=normalization.norm_obs, norm_reward=False,
                           clip_obs=normalization.clip_obs, epsilon=normalization.epsilon, gamma=normalization.gamma)
    normalization.apply_to(wrapper)
    return wrapper


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
    policy: str = "MlpPolicy",
) -> BaseAlgorithm:
    """An SB3 (or sb3-contrib) model with the given spaces, policy alias (``MlpPolicy``, ``LinearPolicy``,
    ``MultiInputPolicy``, ``MlpLstmPolicy``) and architecture, with ``state_dict`` loaded (strict).

    Raises:
        BundleError: the algorithm is read-only here, or the description or weights do not fit.
    """
    cls = algo_class(algo)
    kwargs = policy_kwargs_from_json(policy_kwargs, where)
    use_sde = bool(kwargs.pop("use_sde", use_sde))
    extra: dict[str, Any] = {"device": "cpu"}
    if algo in OFF_POLICY:
        extra["buffer_size"] = 1  # only the policy is needed; don't allocate a replay buffer
        extra["learning_starts"] = 0
    if use_sde:
        extra["use_sde"] = True
    env = DummyVecEnv([lambda: SpaceEnv(observation_space, action_space)])
    try:
        model = cls(policy, env, policy_kwargs=kwargs, **extra)
    except (AssertionError, TypeError, ValueError, KeyError) as exc:
        raise BundleError(f"{where}: cannot rebuild a {algo.upper()} {policy} from its description: {exc}") from exc
    if state_dict is not None:
        load_policy_weights(model, state_dict, where)
        sync_algorithm_state(model)
    return model


def sync_algorithm_state(model: BaseAlgorithm) -> None:
    """Make what an algorithm keeps beside its policy agree with the policy's (new) weights.

    ARS searches around ``model.weights``, a flat copy of the policy's parameters taken at construction;
    after weights are loaded into the policy it must be taken again, or the first update would start from
    the constructor's (zero) policy.
    """
    if hasattr(model, "weights") and hasattr(model.policy, "load_from_vector"):
        model.weights = torch.nn.utils.parameters_to_vector(model.policy.parameters()).detach().clone()


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
    family_spec: EnvFamily | None = None
    verified: list[str] = field(default_factory=list)
    randomization: str | None = None
    variant: str | None = None
    #: Per-key statistics of a Dict-observation agent's ``VecNormalize`` (Zoo HER agents), read and
    #: described; rltransfer evaluates and transfers flat observations only.
    normalization_by_key: dict[str, NormalizationStats] | None = None

    def normalize(self, obs: np.ndarray) -> np.ndarray:
        return self.normalization.normalize(obs) if self.normalization is not None else obs


# --------------------------------------------------------------------------------------- the manifest

_PLAIN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


class _Record(BaseModel):
    """Base of the manifest's models: unknown keys are errors, types are not coerced from strings."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)


def _plain_name(value: str, what: str) -> str:
    if not _PLAIN_NAME.match(value) or ".." in value:
        raise ValueError(f"{what} must be a plain name (letters, digits, '_', '-', '.'), got {limits.short_repr(value)}")
    return value


class WrapperRecord(_Record):
    """A wrapper the policy expects: a name from :data:`rltransfer.wrappers.WRAPPERS` and JSON scalars."""

    name: str = Field(max_length=64)
    kwargs: dict[str, bool | int | float | str | list[int] | None] = Field(default_factory=dict, max_length=16)

    @field_validator("name")
    @classmethod
    def _known(cls, value: str) -> str:
        from rltransfer.wrappers import WRAPPERS

        short = value.rsplit(".", 1)[-1]
        if short not in WRAPPERS:
            raise ValueError(f"unknown wrapper {limits.short_repr(value)}; valid: {', '.join(sorted(WRAPPERS))}")
        return value

    @model_validator(mode="after")
    def _small(self) -> WrapperRecord:
        import inspect

        from rltransfer.wrappers import WRAPPERS

        accepted = set(inspect.signature(WRAPPERS[self.name.rsplit(".", 1)[-1]]).parameters) - {"env", "self"}
        for key, item in self.kwargs.items():
            if key not in accepted:
                raise ValueError(
                    f"wrapper {self.name} takes no argument {limits.short_repr(key)}; it takes: {sorted(accepted)}"
                )
            if isinstance(item, str) and len(item) > 256 or isinstance(item, list) and len(item) > 4096:
                raise ValueError(f"wrapper argument {key!r} is too long")
            if isinstance(item, int) and not isinstance(item, bool) and abs(item) > 2**31:
                raise ValueError(f"wrapper argument {key!r} = {item} is out of range")
        return self

    def spec(self) -> WrapperSpec:
        return WrapperSpec(self.name, dict(self.kwargs))


class EnvRecord(_Record):
    """The env a policy was trained on: a family name and (format 2) the family's content; the name of the
    training envs' domain-randomization preset and of the variant, if any (absent in older bundles)."""

    family: str | None = None
    gym_id: str | None = Field(default=None, max_length=128)
    params: dict[str, float] = Field(default_factory=dict, max_length=256)
    wrappers: list[WrapperRecord] = Field(default_factory=list, max_length=16)
    family_spec: dict[str, Any] | None = None
    randomization: str | None = None
    variant: str | None = None

    @field_validator("params", mode="before")
    @classmethod
    def _floats(cls, value: Any) -> Any:  # JSON has no int/float distinction worth keeping here
        if isinstance(value, dict):
            return {k: float(v) if isinstance(v, int) and not isinstance(v, bool) else v for k, v in value.items()}
        return value

    @field_validator("family")
    @classmethod
    def _family_name(cls, value: str | None) -> str | None:
        return None if value is None else _plain_name(value, "env.family")

    @field_validator("randomization", "variant")
    @classmethod
    def _names(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else _plain_name(value, f"env.{info.field_name}")


class PolicyKwargsRecord(_Record):
    """SB3 policy keyword arguments as a bundle may state them (names from allowlists, bounded sizes)."""

    model_config = ConfigDict(extra="forbid", strict=False, allow_inf_nan=False, frozen=True)

    net_arch: list[int] | dict[Literal["pi", "vf", "qf"], list[int]] | None = None
    activation_fn: str | None = None
    optimizer_class: str | None = None
    optimizer_kwargs: dict[str, float | bool | list[float]] | None = None
    ortho_init: bool | None = None
    log_std_init: float | None = Field(default=None, ge=-20, le=20)
    use_sde: bool | None = None
    squash_output: bool | None = None
    full_std: bool | None = None
    use_expln: bool | None = None
    clip_mean: float | None = Field(default=None, gt=0, le=1e6)
    n_critics: int | None = Field(default=None, ge=1, le=16)
    share_features_extractor: bool | None = None
    normalize_images: bool | None = None
    n_quantiles: int | None = Field(default=None, ge=1, le=1000)
    with_bias: bool | None = None

    @field_validator("net_arch")
    @classmethod
    def _arch(cls, value: Any) -> Any:
        layers = [list(value)] if isinstance(value, list) else list((value or {}).values())
        for arch in layers:
            if len(arch) > 16 or any(n < 1 or n > limits.MAX_LAYER_WIDTH for n in arch):
                raise ValueError(
                    f"net_arch {limits.short_repr(value)}: at most 16 layers of 1..{limits.MAX_LAYER_WIDTH} units"
                )
        return value

    @field_validator("activation_fn")
    @classmethod
    def _activation(cls, value: str | None) -> str | None:
        if value is not None and value not in ACTIVATIONS:
            raise ValueError(f"activation_fn {limits.short_repr(value)} is not allowlisted; valid: {sorted(ACTIVATIONS)}")
        return value

    @field_validator("optimizer_class")
    @classmethod
    def _optimizer(cls, value: str | None) -> str | None:
        if value is not None and value not in OPTIMIZERS:
            raise ValueError(f"optimizer_class {limits.short_repr(value)} is not allowlisted; valid: {sorted(OPTIMIZERS)}")
        return value


class Manifest(_Record):
    """``manifest.json``, validated: what a bundle may say about itself."""

    format_version: Literal[1, 2]
    algo: Literal[ALGOS]  # type: ignore[valid-type]
    policy_class: str = Field(default="", max_length=64)
    policy_kwargs: PolicyKwargsRecord
    use_sde: bool = False
    observation_space: dict[str, Any]
    action_space: dict[str, Any]
    env: EnvRecord = Field(default_factory=EnvRecord)
    num_timesteps: int | None = Field(default=None, ge=0, le=10**13)
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1)
    normalization: Literal["normalization.json"] | None = None
    curriculum: Literal["curriculum.json"] | None = None
    versions: dict[str, str] = Field(default_factory=dict, max_length=32)
    files: dict[str, str] = Field(max_length=16)
    training_wrappers: list[WrapperRecord] = Field(default_factory=list, max_length=16)

    @field_validator("files")
    @classmethod
    def _files(cls, value: dict[str, str]) -> dict[str, str]:
        for name, digest in value.items():
            _plain_name(name, "a file name in 'files'")
            if name in (MANIFEST_FILE, SEAL_FILE):
                raise ValueError(f"'files' may not list {name}")
            if not _SHA256.match(digest):
                raise ValueError(f"files[{name!r}]: expected a sha256 hex digest, got {limits.short_repr(digest)}")
        if MODEL_FILE not in value:
            raise ValueError(f"'files' does not list {MODEL_FILE}")
        return value

    @field_validator("policy_class")
    @classmethod
    def _policy_class(cls, value: str) -> str:
        if value and not _IDENTIFIER.match(value):
            raise ValueError(f"policy_class must be a class name, got {limits.short_repr(value)}")
        return value

    @field_validator("versions")
    @classmethod
    def _versions(cls, value: dict[str, str]) -> dict[str, str]:
        if any(len(k) > 64 or len(v) > 64 for k, v in value.items()):
            raise ValueError("versions: names and versions are at most 64 characters")
        return value


def family_to_json(family: EnvFamily) -> dict[str, Any]:
    """The family's content as a bundle carries it (everything but where it was read from)."""
    return family.model_dump(mode="json", exclude={"source", "allow_import"})


def family_from_manifest(manifest: Manifest, where: str) -> EnvFamily | None:
    """The env family a bundle was trained on, from the content it carries (format 2) or, for format 1, a
    shipped family name. Never a path, and never a Gymnasium id that imports a module."""
    from rltransfer import resources
    from rltransfer.config import load_family, validate
    from rltransfer.families import check_adapter

    env = manifest.env
    if env.family_spec is not None:
        data = {k: v for k, v in env.family_spec.items() if k not in ("source", "allow_import")}
        gym_id = data.get("gym_id")
        if isinstance(gym_id, str) and ":" in gym_id:
            raise UnsafeFileError(
                f"{where}: env.family_spec.gym_id {limits.short_repr(gym_id)} names a Python module to import; "
                "a bundle may not (the trust boundary: only files you wrote may, with allow_import: true)"
            )
        family: EnvFamily = validate(EnvFamily, data, f"{where}: env.family_spec")
        if env.family is not None and family.name != env.family:
            raise BundleError(f"{where}: env.family {env.family!r} differs from env.family_spec.name {family.name!r}")
        family.source = f"{where} (env.family_spec)"
        check_adapter(family)
        return family
    if env.family is None:
        return None
    if env.family not in resources.names("envs"):
        raise BundleError(
            f"{where}: env.family {env.family!r} is not a shipped env family and the manifest carries no "
            f"family content; shipped: {', '.join(resources.names('envs'))}"
        )
    return load_family(env.family)


def _read_seal(path: Path) -> str | None:
    seal = path / SEAL_FILE
    if not seal.exists():
        return None
    try:
        text = limits.read_bytes(seal, 1024, "the manifest seal").decode("ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise BundleError(f"{seal}: unreadable manifest seal ({type(exc).__name__})") from None
    if not _SHA256.match(text):
        raise BundleError(f"{seal}: expected the sha256 hex digest of {MANIFEST_FILE}, got {limits.short_repr(text)}")
    return text


def read_manifest(path: Path) -> Manifest:
    """Check the seal, then read ``manifest.json`` within its budget into a :class:`Manifest`.

    Raises:
        BundleError: no manifest, seal mismatch, unreadable or malformed manifest (one line each).
        ResourceLimitError: a manifest over :data:`~rltransfer.limits.MAX_JSON_BYTES` or too deeply nested.
    """
    path = Path(path)
    manifest_path = path / MANIFEST_FILE
    if not manifest_path.is_file():
        raise BundleError(f"{path}: not a policy bundle (no {MANIFEST_FILE})")
    try:
        raw = limits.read_bytes(manifest_path, limits.MAX_JSON_BYTES, "the manifest")
    except OSError as exc:
        raise BundleError(f"{manifest_path}: cannot read: {exc.strerror or exc}") from None
    seal = _read_seal(path)
    if seal is not None and hashlib.sha256(raw).hexdigest() != seal:
        raise BundleError(
            f"{manifest_path}: does not match its seal {SEAL_FILE} (the manifest was edited or damaged)"
        )
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise BundleError(f"{manifest_path}: not UTF-8 text (byte {exc.start}); the file is damaged") from None
    except RecursionError:
        raise ResourceLimitError(f"{manifest_path}: nested deeper than JSON can be read") from None
    except json.JSONDecodeError as exc:
        raise BundleError(f"{manifest_path}: unreadable or truncated manifest: {exc}") from None
    limits.check_structure(data, str(manifest_path))
    if not isinstance(data, dict):
        raise BundleError(f"{manifest_path}: expected a JSON object, got {type(data).__name__}")
    version = data.get("format_version")
    if version not in (1, FORMAT_VERSION) or isinstance(version, bool):
        raise BundleError(
            f"{manifest_path}: format_version {limits.short_repr(version)} is not supported "
            f"(this version reads 1 and {FORMAT_VERSION})"
        )
    if version >= 2 and seal is None:
        raise BundleError(f"{path}: {SEAL_FILE} is missing (format {version} bundles are sealed)")
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        from rltransfer.config import format_validation_error

        raise BundleError(format_validation_error(exc, Manifest, str(manifest_path))) from None


def verify_files(path: Path, manifest: Manifest) -> list[str]:
    """Check that every file the manifest lists exists and has the recorded sha256.

    Returns:
        What was verified, one line per file (for :attr:`LoadedPolicy.verified`).
    """
    verified = []
    for what, name in (("normalization", manifest.normalization), ("curriculum", manifest.curriculum)):
        if name is not None and name not in manifest.files:
            raise BundleError(
                f"{path}/{MANIFEST_FILE}: {what} file {name!r} is not listed in 'files' "
                "(every file a bundle is read from must be hashed)"
            )
    for name, expected in manifest.files.items():
        file = Path(path) / name
        if file.is_symlink() or not file.is_file():
            raise BundleError(f"{file}: missing or not a regular file (listed in {MANIFEST_FILE})")
        got = sha256(file, MAX_BUNDLE_FILE_BYTES)
        if got != expected:
            raise BundleError(
                f"{file}: sha256 mismatch (file is truncated or altered): manifest says {expected}, file has {got}"
            )
        verified.append(f"{name}: sha256 {got[:16]}... as listed")
    return verified


def load_bundle(path: str | Path) -> LoadedPolicy:
    """Load an rltransfer bundle: seal, manifest model, hashes, then the weights (no unpickling).

    The result's :attr:`LoadedPolicy.verified` names what was checked.
    """
    path = Path(path)
    manifest = read_manifest(path)
    where = str(path)
    verified = [f"{MANIFEST_FILE}: matches {SEAL_FILE}" if manifest.format_version >= 2
                else f"{MANIFEST_FILE}: format 1, not sealed (covered by no hash)"]
    verified += verify_files(path, manifest)
    family = family_from_manifest(manifest, where)
    algo = manifest.algo
    archive = read_sb3_zip(path / MODEL_FILE, algo=algo)
    obs_space = space_from_json(manifest.observation_space, f"{where}: observation_space")
    act_space = space_from_json(manifest.action_space, f"{where}: action_space")
    policy_kwargs = manifest.policy_kwargs.model_dump(exclude_none=True)
    _check_arch(algo, policy_kwargs, obs_space, act_space, f"{where}: policy_kwargs")
    model = rebuild_model(
        algo, obs_space, act_space, policy_kwargs, archive.state_dict, where, use_sde=manifest.use_sde,
        policy=policy_alias(algo, manifest.policy_class),
    )
    model.num_timesteps = int(manifest.num_timesteps or 0)
    norm = None
    if manifest.normalization is not None:
        norm = NormalizationStats.load(path / manifest.normalization, obs_space=obs_space)
    wrappers = tuple(w.spec() for w in manifest.env.wrappers)
    return LoadedPolicy(
        algo=algo, model=model, observation_space=obs_space, action_space=act_space,
        policy_kwargs=policy_kwargs, state_dict=archive.state_dict, path=path,
        origin="bundle", normalization=norm, wrappers=wrappers, family=manifest.env.family,
        gym_id=manifest.env.gym_id, params=dict(manifest.env.params),
        num_timesteps=manifest.num_timesteps, manifest=manifest.model_dump(mode="json"),
        family_spec=family, verified=verified, randomization=manifest.env.randomization,
        variant=manifest.env.variant,
    )


def _check_arch(algo: str, policy_kwargs: dict[str, Any], obs_space: gym.Space, act_space: gym.Space,
                where: str) -> None:
    """Bound the network a manifest describes before anything is allocated."""
    net_arch = policy_kwargs.get("net_arch")
    if net_arch is None:
        return
    in_features = gym.spaces.flatdim(obs_space)
    out_features = gym.spaces.flatdim(act_space)
    copies = 2 * max(1, int(policy_kwargs.get("n_critics") or 2)) if algo in OFF_POLICY else 1
    check_net_arch(net_arch, where, in_features=in_features, out_features=out_features, copies=copies)


def load_sb3_zip(path: str | Path, algo: str | None = None) -> LoadedPolicy:
    """Load any SB3 zip (ours or third-party, any SB3 version) without unpickling, with the Zoo's
    companions (``*.vecnormalize.pkl`` via a restricted unpickler, ``*.config.yml`` via a safe loader)."""
    from rltransfer.zoo import find_zoo_companions, load_vecnormalize_dict, load_vecnormalize_pkl, load_zoo_config

    path = Path(path)
    archive = read_sb3_zip(path, algo=algo)
    if archive.unsupported is not None:
        raise BundleError(f"{path}: {archive.unsupported}")
    notes = list(archive.notes)
    companions = find_zoo_companions(path)
    wrappers: tuple[WrapperSpec, ...] = ()
    norm = None
    if companions.get("config"):
        config = load_zoo_config(companions["config"])
        wrappers = tuple(WrapperSpec(name) for name in config.get("env_wrapper", []))
        notes.append(f"Zoo config {companions['config']}: wrappers {[w.name for w in wrappers]}")
    by_key = None
    if companions.get("vecnormalize") and isinstance(archive.observation_space, gym.spaces.Dict):
        by_key = load_vecnormalize_dict(companions["vecnormalize"])
        for key, stats in by_key.items():
            sub = archive.observation_space.spaces.get(key)
            if sub is None:
                raise BundleError(f"{companions['vecnormalize']}: statistics for observation key {key!r}, which "
                                  f"the policy's Dict space does not have (keys {list(archive.observation_space.spaces)})")
            stats.check_against(sub, f"{companions['vecnormalize']}[{key!r}]")
        notes.append(f"per-key observation normalization ({', '.join(by_key)}) from {companions['vecnormalize']}")
    elif companions.get("vecnormalize"):
        norm = load_vecnormalize_pkl(companions["vecnormalize"])
        norm.check_against(archive.observation_space, str(companions["vecnormalize"]))
        notes.append(f"observation normalization from {companions['vecnormalize']}")
    model = rebuild_model(
        archive.algo, archive.observation_space, archive.action_space, archive.policy_kwargs,
        archive.state_dict, str(path), policy=archive.sb3_policy_alias,
    )
    gym_id = _gym_id_from_zoo_name(path)
    return LoadedPolicy(
        algo=archive.algo, model=model, observation_space=archive.observation_space,
        action_space=archive.action_space, policy_kwargs=dict(archive.policy_kwargs),
        state_dict=archive.state_dict, path=path, origin="sb3-zip", normalization=norm, wrappers=wrappers,
        gym_id=gym_id, num_timesteps=archive.num_timesteps, notes=notes, normalization_by_key=by_key,
    )


def _gym_id_from_zoo_name(path: Path) -> str | None:
    """``ppo-HopperBulletEnv-v0.zip`` -> ``HopperBulletEnv-v0`` (the Zoo's naming), else None."""
    stem = path.stem
    algo, sep, rest = stem.partition("-")
    return rest if sep and algo.lower() in ALGOS and "-v" in rest else None


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


def policy_fingerprint(source: str | Path) -> str:
    """A hash of a policy's content: a bundle's manifest (which hashes every file it lists), or an SB3 zip's
    bytes together with the Zoo companions read beside it. Used to tell runs of different sources apart."""
    from rltransfer.zoo import find_zoo_companions

    path = Path(source)
    if path.is_dir() and not (path / MANIFEST_FILE).is_file() and (path / "policy" / MANIFEST_FILE).is_file():
        path = path / "policy"
    digest = hashlib.sha256()
    if path.is_dir():
        digest.update(limits.read_bytes(path / MANIFEST_FILE, limits.MAX_JSON_BYTES, "the manifest"))
    else:
        digest.update(sha256(path, MAX_BUNDLE_FILE_BYTES).encode())
        for kind, companion in sorted(find_zoo_companions(path).items()):
            if companion is not None:
                digest.update(kind.encode() + sha256(Path(companion), MAX_BUNDLE_FILE_BYTES).encode())
    return digest.hexdigest()[:16]
