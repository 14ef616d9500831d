"""Training checkpoints that resume exactly: the same final weights as a run that was never stopped.

A checkpoint is a folder ``ckpt-<num_timesteps:012d>/`` written atomically (a temporary folder renamed
into place) holding everything SB3 and the environments carry from one iteration to the next:

=====================  ====================================================================================
file                   holds
=====================  ====================================================================================
``policy.pth``         ``policy.state_dict()`` (SAC: actor, critic and critic target)
``optimizers.pth``     every optimizer's ``state_dict`` named as in ``model._get_torch_save_params()``
``variables.pth``      the loose tensors SB3 saves (SAC's ``log_ent_coef`` or ``ent_coef_tensor``)
``rng.pth``            ``torch.get_rng_state()``
``rng.json``           numpy's global RNG, Python's ``random``, the RNG of every action space in play
``model.json``         counters and schedule progress, ``ep_info_buffer``/``ep_success_buffer``, spaces
``last_obs.npz``       ``_last_obs``, ``_last_episode_starts``, ``_last_original_obs``
``replay.npz``         off-policy replay buffer rows in use (``pos``/``full`` in ``model.json``)
``vecnormalize.npz``   ``VecNormalize`` running statistics and its ``returns`` accumulator
``envs.json``          a snapshot of every sub-env (:func:`snapshot_env`) and the DummyVecEnv's pending seeds
``states.json``        callback states given by the caller
``checkpoint.json``    manifest: format, step, sha256 of every file, whether resume is exact and why not
=====================  ====================================================================================

Tensors are written with ``torch.save`` and read with ``torch.load(..., weights_only=True)``; arrays are
``.npz`` without object arrays, read within a budget (:func:`rltransfer.rundir.read_npz`); the rest is
JSON. Nothing is unpickled. Every file's sha256 is checked before it is parsed.

Resume protocol (a new process, or new objects in the same one)::

    venv = make_vec_env(family, params, n_envs, seed, "dummy", wrappers)   # as the original run
    venv = wrap_normalization(venv, spec)
    model = build_model(spec, venv, seed)                                  # same spec and seed
    states = load_checkpoint(latest_checkpoint(folder), model, venv)
    model.learn(total_timesteps=total - model.num_timesteps, reset_num_timesteps=False, callback=...)

``reset_num_timesteps=False`` makes SB3 keep ``num_timesteps``, the episode buffers and ``_last_obs``
(so ``learn`` does not reset the envs) and set ``_total_timesteps = remaining + num_timesteps``, the
total of the original run, so learning-rate and clip-range schedules continue where they were.

Exactness. On CPU, a checkpoint taken *between iterations* resumes bit-equal: after ``learn`` returned,
or by :class:`CheckpointCallback` at ``_on_rollout_start`` (SB3 calls it at the start of
``collect_rollouts``, after the previous ``train()``; nothing between the two draws a random number).
The manifest's ``exact`` is false, with the reasons, when something cannot be restored:

* envs that cannot be snapshot (PyBullet families, wrappers unknown here, ``SubprocVecEnv``, VecEnv
  wrappers other than ``VecNormalize``): the resumed run keeps weights, optimizers, counters, schedules,
  statistics, RNG streams and each env's family parameters, and starts *new episodes*, the envs seeded
  ``seed + num_timesteps + i`` (the resumed seed stream);
* ``replay_buffer=False``: the buffer restarts empty;
* gSDE saved by the callback at rollout start: SB3 resamples the exploration noise just before
  ``_on_rollout_start``, and resampling it again on resume draws different noise (a save after
  ``learn`` returned is exact with gSDE);
* stateful action noise (Ornstein-Uhlenbeck): ``learn`` resets it;
* :meth:`CheckpointCallback.save_now` in the middle of an iteration (an interrupt): the partial
  rollout is lost, the resumed run starts a new one from the saved observations.

Monitor's ``info["episode"]["t"]`` is wall time and never equal between runs; the Monitor's clock is
restored as elapsed time so episode times continue. Its episode history (``get_episode_rewards()``) is
kept for the last :data:`MAX_MONITOR_EPISODES` episodes only.

The env snapshots themselves are made and restored by :mod:`rltransfer.envsnapshot`.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import logging
import math
import random
import re
import shutil
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.buffers import DictReplayBuffer, ReplayBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.noise import NormalActionNoise, VectorizedActionNoise
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecNormalize

from rltransfer import limits
from rltransfer.callbacks import check_finite_weights
from rltransfer.envsnapshot import (
    MAX_MONITOR_EPISODES,
    base_venv,
    generator_from_state,
    generator_state,
    restore_env,
    restore_venv,
    snapshot_env,
    vec_normalize,
)
from rltransfer.envsnapshot import snapshot_venv as _snapshot_venv  # a module attribute: tests replace it
from rltransfer.errors import BundleError, ConfigError
from rltransfer.rundir import atomic_write_text, make_temp_dir, read_npz, replace_dir, versions

__all__ = [
    "MAX_MONITOR_EPISODES", "CheckpointCallback", "latest_checkpoint", "load_checkpoint", "prune_checkpoints",
    "restore_env", "save_checkpoint", "snapshot_env",
]

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
MANIFEST_FILE = "checkpoint.json"
POLICY_FILE = "policy.pth"
OPTIMIZERS_FILE = "optimizers.pth"
VARIABLES_FILE = "variables.pth"
TORCH_RNG_FILE = "rng.pth"
RNG_FILE = "rng.json"
MODEL_FILE = "model.json"
OBS_FILE = "last_obs.npz"
REPLAY_FILE = "replay.npz"
VECNORM_FILE = "vecnormalize.npz"
ENVS_FILE = "envs.json"
STATES_FILE = "states.json"
KNOWN_FILES = frozenset({POLICY_FILE, OPTIMIZERS_FILE, VARIABLES_FILE, TORCH_RNG_FILE, RNG_FILE, MODEL_FILE,
                         OBS_FILE, REPLAY_FILE, VECNORM_FILE, ENVS_FILE, STATES_FILE})
_CKPT_RE = re.compile(r"^ckpt-(\d{12})$")
_HEX_RE = re.compile(r"^[0-9a-f]{64}$")
#: Slack over the expected size of an npz (zip and npy headers).
_NPZ_SLACK = 1 << 20


# ------------------------------------------------------------------------------------------ JSON values


def _enc(value: Any) -> Any:
    """``value`` as strict JSON, exactly: floats keep every bit (non-finite ones become tagged strings),
    numpy arrays and scalars keep their dtype."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"__float__": repr(value)}
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise TypeError(f"cannot snapshot an array of dtype {value.dtype}")
        return {"__ndarray__": value.dtype.str, "shape": list(value.shape),
                "data": [_enc(v) for v in value.reshape(-1).tolist()]}
    if isinstance(value, np.generic):
        if value.dtype.kind not in "biuf":
            raise TypeError(f"cannot snapshot a scalar of dtype {value.dtype}")
        return {"__scalar__": value.dtype.str, "value": _enc(value.item())}
    if isinstance(value, (list, tuple)):
        return [_enc(v) for v in value]
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str) or k.startswith("__"):
                raise TypeError(f"cannot snapshot a dict key {limits.short_repr(k)}")
            out[k] = _enc(v)
        return out
    raise TypeError(f"cannot snapshot a value of type {type(value).__name__}")


def _dec(value: Any) -> Any:
    """Inverse of :func:`_enc` (input is untrusted: dtypes and sizes are checked)."""
    if isinstance(value, list):
        return [_dec(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "__float__" in value:
        text = value["__float__"]
        if set(value) != {"__float__"} or text not in ("nan", "inf", "-inf"):
            raise ValueError(f"bad tagged float {limits.short_repr(value)}")
        return float(text)
    if "__ndarray__" in value:
        if set(value) != {"__ndarray__", "shape", "data"}:
            raise ValueError("bad tagged array")
        dtype = np.dtype(str(value["__ndarray__"]))
        shape = value["shape"]
        if (dtype.kind not in "biuf" or not isinstance(shape, list) or len(shape) > 8
                or not all(isinstance(n, int) and not isinstance(n, bool) and 0 <= n for n in shape)):
            raise ValueError(f"bad array dtype or shape: {limits.short_repr(value['__ndarray__'])} {shape!r:.80}")
        data = value["data"]
        if not isinstance(data, list) or len(data) != int(np.prod(shape, dtype=np.int64)):
            raise ValueError(f"array of shape {shape} holds the wrong number of values")
        return np.array([_dec(v) for v in data], dtype=dtype).reshape(shape)
    if "__scalar__" in value:
        if set(value) != {"__scalar__", "value"}:
            raise ValueError("bad tagged scalar")
        dtype = np.dtype(str(value["__scalar__"]))
        if dtype.kind not in "biuf":
            raise ValueError(f"bad scalar dtype {dtype}")
        return dtype.type(_dec(value["value"]))
    return {k: _dec(v) for k, v in value.items()}


def _write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(_enc(data), allow_nan=False) + "\n")


def _parse_json(raw: bytes, where: str) -> Any:
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{where}: not valid UTF-8 JSON ({exc})") from None
    except RecursionError:
        raise BundleError(f"{where}: nested too deeply") from None
    limits.check_structure(data, where)
    return data


# ----------------------------------------------------------------------------------------------- RNGs


def _numpy_global_state() -> list[Any]:
    name, key, pos, has_gauss, cached = np.random.get_state()
    return [name, key.tolist(), int(pos), int(has_gauss), float(cached)]


def _set_numpy_global_state(state: Any) -> None:
    if not (isinstance(state, list) and len(state) == 5 and state[0] == "MT19937" and isinstance(state[1], list)
            and len(state[1]) == 624):
        raise ValueError("numpy RNG state must be ['MT19937', 624 ints, pos, has_gauss, cached_gaussian]")
    key = np.array(state[1], dtype=np.uint64)
    if (key > 0xFFFFFFFF).any():
        raise ValueError("numpy RNG key values must be 32-bit")
    np.random.set_state(("MT19937", key.astype(np.uint32), int(state[2]), int(state[3]), float(state[4])))


def _python_state() -> list[Any]:
    version, internal, gauss = random.getstate()
    return [version, list(internal), gauss]


def _set_python_state(state: Any) -> None:
    if not (isinstance(state, list) and len(state) == 3 and state[0] == 3 and isinstance(state[1], list)
            and len(state[1]) == 625 and all(isinstance(v, int) and not isinstance(v, bool) for v in state[1])
            and (state[2] is None or isinstance(state[2], float))):
        raise ValueError("Python RNG state must be [3, 625 ints, gauss_next]")
    random.setstate((3, tuple(state[1]), state[2]))


def _spaces(model: BaseAlgorithm, venv: VecEnv) -> dict[str, gym.Space]:
    """Every action space whose RNG training may draw from (SAC's warm-up samples ``model.action_space``),
    by role; several roles are often the same object."""
    out: dict[str, gym.Space] = {"model.action_space": model.action_space, "venv.action_space": venv.action_space}
    base = base_venv(venv)
    out["base_venv.action_space"] = base.action_space
    if isinstance(base, DummyVecEnv):
        for i, env in enumerate(base.envs):
            out[f"envs[{i}].action_space"] = env.action_space
    return out


# ------------------------------------------------------------------------------------------- helpers


def _sha256_bytes(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def _attr_path(obj: Any, path: str) -> Any:
    return functools.reduce(getattr, path.split("."), obj)


def _torch_save_names(model: BaseAlgorithm) -> tuple[list[str], list[str]]:
    state_dicts, variables = model._get_torch_save_params()
    return [n for n in state_dicts if n != "policy"], list(variables or [])


def _npz_arrays(prefix: str, value: Any) -> dict[str, np.ndarray]:
    if isinstance(value, dict):
        return {f"{prefix}/{k}": np.asarray(v) for k, v in value.items()}
    return {prefix: np.asarray(value)}


def _save_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    for name, array in arrays.items():
        if array.dtype.kind not in "biuf":
            raise TypeError(f"{path.name}: {name} has dtype {array.dtype}; only numeric arrays are saved")
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def _replay_arrays(buffer: ReplayBuffer) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The buffer's rows in use (all of them once full) and its position."""
    rows = buffer.buffer_size if buffer.full else buffer.pos
    arrays: dict[str, np.ndarray] = {}
    for name in ("observations", "next_observations", "actions", "rewards", "dones", "timeouts"):
        value = getattr(buffer, name, None)
        if isinstance(value, dict):
            arrays.update({f"{name}/{k}": v[:rows] for k, v in value.items()})
        elif isinstance(value, np.ndarray):
            arrays[name] = value[:rows]
    return arrays, {"pos": int(buffer.pos), "full": bool(buffer.full), "rows": int(rows), "arrays": sorted(arrays)}


def _replay_targets(buffer: ReplayBuffer) -> dict[str, np.ndarray]:
    arrays, _ = _replay_arrays(buffer)  # names only; the slices are views
    out = {}
    for name in arrays:
        attr, _, key = name.partition("/")
        value = getattr(buffer, attr)
        out[name] = value[key] if key else value
    return out


def _rms_items(vecnorm: VecNormalize) -> list[tuple[str, Any]]:
    """The running statistics of a VecNormalize, named as the checkpoint stores them."""
    items: list[tuple[str, Any]] = [("ret_rms", vecnorm.ret_rms)]
    if isinstance(vecnorm.obs_rms, dict):
        items += [(f"obs_rms/{k}", v) for k, v in vecnorm.obs_rms.items()]
    elif vecnorm.obs_rms is not None:
        items.append(("obs_rms", vecnorm.obs_rms))
    return items


def _vecnorm_arrays(vecnorm: VecNormalize) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {"returns": np.asarray(vecnorm.returns)}
    for name, rms in _rms_items(vecnorm):
        arrays[f"{name}.mean"] = np.asarray(rms.mean)
        arrays[f"{name}.var"] = np.asarray(rms.var)
        arrays[f"{name}.count"] = np.asarray(rms.count, dtype=np.float64)
    return arrays


def _inexact_model_reasons(model: BaseAlgorithm, replay_buffer: bool) -> list[str]:
    reasons = []
    buffer = getattr(model, "replay_buffer", None)
    if buffer is not None:
        if not replay_buffer:
            reasons.append("replay buffer not saved (replay_buffer=False): it restarts empty")
        elif type(buffer) not in (ReplayBuffer, DictReplayBuffer):
            reasons.append(f"replay buffer {type(buffer).__name__} is not supported: it restarts empty")
    noise = getattr(model, "action_noise", None)
    inner = noise.base_noise if isinstance(noise, VectorizedActionNoise) else noise
    if inner is not None and type(inner) is not NormalActionNoise:
        reasons.append(f"action noise {type(inner).__name__} is reset by learn()")
    return reasons


# ---------------------------------------------------------------------------------------------- save


def save_checkpoint(
    model: BaseAlgorithm,
    venv: VecEnv,
    folder: Path,
    states: dict[str, dict] | None = None,
    replay_buffer: bool = True,
    *,
    inexact: tuple[str, ...] | list[str] = (),
) -> Path:
    """Write ``folder/ckpt-<num_timesteps:012d>/`` atomically (see the module docstring for its files).

    Args:
        model: the model being trained.
        venv: its training env (a DummyVecEnv, possibly inside a VecNormalize, resumes exactly).
        folder: where checkpoints live (created if needed).
        states: callback states, ``{name: JSON-able dict}``, returned by :func:`load_checkpoint`.
        replay_buffer: save an off-policy replay buffer (the largest part by far).
        inexact: reasons the caller knows the resume will not be exact (recorded in the manifest).

    Returns:
        The checkpoint folder. A checkpoint of the same step is replaced.

    Raises:
        DivergenceError: a weight is non-finite; nothing is written.
        TypeError: ``states`` is not a dict of JSON-able dicts.
    """
    check_finite_weights(model, where="checkpoint")
    if states is not None and (not isinstance(states, dict)
                               or not all(isinstance(k, str) and isinstance(v, dict) for k, v in states.items())):
        raise TypeError(f"states must be a dict of dicts, got {type(states).__name__}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _clean_residue(folder)
    name = f"ckpt-{int(model.num_timesteps):012d}"
    target = folder / name
    start = time.perf_counter()
    tmp = make_temp_dir(f".{name}.tmp-", folder)
    try:
        reasons = [*inexact, *_inexact_model_reasons(model, replay_buffer)]
        files = _write_contents(tmp, model, venv, states or {}, replay_buffer, reasons)
        manifest = {
            "format_version": FORMAT_VERSION, "num_timesteps": int(model.num_timesteps),
            "algo": type(model).__name__, "exact": not reasons, "not_exact_because": reasons,
            "time": time.time(), "versions": versions(), "files": files,
        }
        atomic_write_text(tmp / MANIFEST_FILE, json.dumps(manifest, indent=2, allow_nan=False) + "\n")
        replace_dir(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.debug("checkpoint %s written in %.3f s", target, time.perf_counter() - start)
    return target


def _write_contents(tmp: Path, model: BaseAlgorithm, venv: VecEnv, states: dict[str, dict],
                    replay_buffer: bool, reasons: list[str]) -> dict[str, str]:
    optimizer_names, variable_names = _torch_save_names(model)
    torch.save(model.policy.state_dict(), tmp / POLICY_FILE)
    torch.save({n: _attr_path(model, n).state_dict() for n in optimizer_names}, tmp / OPTIMIZERS_FILE)
    torch.save({n: _attr_path(model, n).detach().clone() for n in variable_names}, tmp / VARIABLES_FILE)
    torch.save({"torch": torch.get_rng_state()}, tmp / TORCH_RNG_FILE)
    _write_json(tmp / RNG_FILE, {
        "numpy": _numpy_global_state(), "python": _python_state(),
        "spaces": {role: generator_state(space._np_random) for role, space in _spaces(model, venv).items()},
    })

    obs: dict[str, np.ndarray] = {}
    for attr in ("_last_obs", "_last_episode_starts", "_last_original_obs"):
        value = getattr(model, attr, None)
        if value is not None:
            obs.update(_npz_arrays(attr, value))
    _save_npz(tmp / OBS_FILE, obs)

    replay: dict[str, Any] | None = None
    buffer = getattr(model, "replay_buffer", None)
    if replay_buffer and type(buffer) in (ReplayBuffer, DictReplayBuffer):
        arrays, replay = _replay_arrays(buffer)
        _save_npz(tmp / REPLAY_FILE, arrays)

    vecnorm = vec_normalize(venv)
    if vecnorm is not None:
        _save_npz(tmp / VECNORM_FILE, _vecnorm_arrays(vecnorm))

    envs = _snapshot_venv(venv)
    reasons += envs["reasons"]
    _write_json(tmp / ENVS_FILE, envs)
    _write_json(tmp / STATES_FILE, states)

    scalars: dict[str, Any] = {
        "num_timesteps": int(model.num_timesteps), "_n_updates": int(getattr(model, "_n_updates", 0)),
        "_episode_num": int(model._episode_num),
        "_current_progress_remaining": float(model._current_progress_remaining),
        "_total_timesteps": int(model._total_timesteps),
        "_num_timesteps_at_start": int(model._num_timesteps_at_start),
    }
    if hasattr(model, "_n_calls"):
        scalars["_n_calls"] = int(model._n_calls)
    _write_json(tmp / MODEL_FILE, {
        "algo": type(model).__name__, "policy_class": type(model.policy).__name__,
        "observation_space": str(model.observation_space), "action_space": str(model.action_space),
        "n_envs": int(model.n_envs), "seed": model.seed, "use_sde": bool(getattr(model, "use_sde", False)),
        "scalars": scalars,
        "ep_info_buffer": list(model.ep_info_buffer) if model.ep_info_buffer is not None else None,
        "ep_success_buffer": list(model.ep_success_buffer) if model.ep_success_buffer is not None else None,
        "last_obs": sorted(obs), "replay_buffer": replay, "vec_normalize": vecnorm is not None,
    })
    return {f.name: _sha256_bytes(f.read_bytes()) for f in sorted(tmp.iterdir())}


def _clean_residue(folder: Path) -> None:
    """Remove what a killed save left (``.ckpt-*.tmp-*``); put back a checkpoint moved aside (``.old-``)."""
    for old in folder.glob(".ckpt-*.old-*"):
        name = old.name[1:].split(".old-", 1)[0]
        if (old / name).is_dir() and not (folder / name).exists():
            (old / name).replace(folder / name)
        shutil.rmtree(old, ignore_errors=True)
    for tmp in folder.glob(".ckpt-*.tmp-*"):
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------------------------------------- find


def _checkpoints(folder: Path) -> list[tuple[int, Path]]:
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = []
    for child in folder.iterdir():
        match = _CKPT_RE.match(child.name)
        if match and child.is_dir() and not child.is_symlink() and (child / MANIFEST_FILE).is_file():
            found.append((int(match.group(1)), child))
    return sorted(found)


def latest_checkpoint(folder: Path) -> Path | None:
    """The complete checkpoint with the most steps in ``folder`` (``None`` if there is none)."""
    found = _checkpoints(folder)
    return found[-1][1] if found else None


def prune_checkpoints(folder: Path, keep: int) -> None:
    """Delete all but the ``keep`` most recent complete checkpoints in ``folder``.

    Raises:
        ConfigError: ``keep`` is not a positive integer.
    """
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise ConfigError(f"checkpoints to keep must be a positive integer, got {keep!r}")
    for _, path in _checkpoints(folder)[:-keep]:
        (path / MANIFEST_FILE).unlink(missing_ok=True)  # invisible first, so a partial delete is never loaded
        shutil.rmtree(path, ignore_errors=True)


# ---------------------------------------------------------------------------------------------- load


class _Reader:
    """Reads the files of one checkpoint, each once, within its budget, checking its listed sha256."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        manifest_path = self.path / MANIFEST_FILE
        if not self.path.is_dir():
            raise BundleError(f"{self.path}: not a checkpoint folder")
        raw = self._bytes(manifest_path, limits.MAX_JSON_BYTES)
        manifest = _parse_json(raw, str(manifest_path))
        if not isinstance(manifest, dict) or manifest.get("format_version") != FORMAT_VERSION:
            got = manifest.get("format_version") if isinstance(manifest, dict) else None
            raise BundleError(f"{manifest_path}: format_version must be {FORMAT_VERSION}, got {limits.short_repr(got)}")
        files = manifest.get("files")
        if not isinstance(files, dict) or not all(
                isinstance(k, str) and k in KNOWN_FILES and isinstance(v, str) and _HEX_RE.match(v)
                for k, v in files.items()):
            raise BundleError(f"{manifest_path}: 'files' must map known file names ({sorted(KNOWN_FILES)}) to "
                              "sha256 hex digests")
        for required in (POLICY_FILE, OPTIMIZERS_FILE, VARIABLES_FILE, TORCH_RNG_FILE, RNG_FILE, MODEL_FILE,
                         OBS_FILE, ENVS_FILE, STATES_FILE):
            if required not in files:
                raise BundleError(f"{manifest_path}: does not list {required}")
        self.manifest = manifest
        self.files: dict[str, str] = files

    def _bytes(self, path: Path, limit: int) -> bytes:
        try:
            return limits.read_bytes(path, limit, path.name)
        except OSError as exc:
            raise BundleError(f"{path}: cannot read: {exc.strerror or exc}") from None

    def raw(self, name: str, limit: int) -> bytes:
        path = self.path / name
        if name not in self.files:
            raise BundleError(f"{path}: not listed in {MANIFEST_FILE}")
        raw = self._bytes(path, limit)
        got = _sha256_bytes(raw)
        if got != self.files[name]:
            raise BundleError(f"{path}: sha256 mismatch (file is truncated or altered): {MANIFEST_FILE} says "
                              f"{self.files[name]}, file has {got}")
        return raw

    def json(self, name: str) -> Any:
        where = str(self.path / name)
        try:
            return _dec(_parse_json(self.raw(name, limits.MAX_JSON_BYTES), where))
        except (ValueError, TypeError) as exc:
            if isinstance(exc, BundleError):
                raise
            raise BundleError(f"{where}: {exc}") from None

    def torch(self, name: str) -> Any:
        raw = self.raw(name, limits.MAX_WEIGHTS_BYTES)
        try:
            return torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises UnpicklingError, RuntimeError, ... for bad or unsafe files
            raise BundleError(f"{self.path / name}: not a readable tensor file ({type(exc).__name__}: "
                              f"{limits.clip_text(str(exc), 200)})") from None

    def npz(self, name: str, expected_bytes: int, max_elements: int, max_members: int = 64) -> dict[str, np.ndarray]:
        path = self.path / name
        self.raw(name, expected_bytes + _NPZ_SLACK)  # hash check within the budget
        return read_npz(path, max_elements=max(1, max_elements), max_bytes=expected_bytes + _NPZ_SLACK,
                        max_members=max_members)


def _check_tensor_dict(value: Any, expected: Mapping[str, torch.Tensor], where: str) -> dict[str, torch.Tensor]:
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in value.items()):
        raise BundleError(f"{where}: expected a dict of named tensors")
    if set(value) != set(expected):
        missing, extra = sorted(set(expected) - set(value)), sorted(set(value) - set(expected))
        raise BundleError(f"{where}: tensors do not match the model: missing {missing[:5]}, unexpected {extra[:5]}")
    for key, tensor in value.items():
        want = expected[key]
        if tensor.shape != want.shape or tensor.dtype != want.dtype:
            raise BundleError(f"{where}: {key} is {tensor.dtype}{tuple(tensor.shape)}, the model has "
                              f"{want.dtype}{tuple(want.shape)}")
    return value


def _check_optimizer_state(state: Any, optimizer: torch.optim.Optimizer, where: str) -> None:
    if not isinstance(state, dict) or set(state) != {"state", "param_groups"}:
        raise BundleError(f"{where}: expected an optimizer state_dict (state, param_groups)")
    params = [p for group in optimizer.param_groups for p in group["params"]]
    groups = state["param_groups"]
    if not isinstance(groups, list) or len(groups) != len(optimizer.param_groups):
        raise BundleError(f"{where}: {len(groups) if isinstance(groups, list) else '?'} parameter groups, the "
                          f"optimizer has {len(optimizer.param_groups)}")
    per_param = state["state"]
    if not isinstance(per_param, dict):
        raise BundleError(f"{where}: 'state' must be a dict")
    for index, entry in per_param.items():
        if not isinstance(index, int) or not 0 <= index < len(params) or not isinstance(entry, dict):
            raise BundleError(f"{where}: bad state entry {limits.short_repr(index)}")
        for key, value in entry.items():
            if isinstance(value, torch.Tensor) and value.ndim > 0 and value.shape != params[index].shape:
                raise BundleError(f"{where}: state[{index}][{key!r}] has shape {tuple(value.shape)}, the parameter "
                                  f"has {tuple(params[index].shape)}")


#: A replay buffer checked for loading: saved rows, their record, the model's buffer and its arrays.
_Replay = tuple[dict[str, np.ndarray], dict[str, Any], ReplayBuffer, dict[str, np.ndarray]]


@dataclass
class _Checked:
    """Everything a checkpoint restores, read and checked against the model and venv (nothing applied yet)."""

    meta: dict[str, Any]
    policy: dict[str, torch.Tensor]
    optimizers: dict[str, Any]
    optimizer_names: list[str]
    variables: dict[str, torch.Tensor]
    torch_rng: torch.Tensor
    rng: dict[str, Any]
    spaces: dict[str, gym.Space]
    obs: dict[str, np.ndarray]
    replay: _Replay | None
    vecnorm: tuple[VecNormalize, dict[str, np.ndarray]] | None
    envs: Any
    states: dict[str, dict]
    exact: bool


def load_checkpoint(path: Path, model: BaseAlgorithm, venv: VecEnv) -> dict[str, dict]:
    """Restore a checkpoint into ``model`` and ``venv``, built as for the original run (same spec, seed).

    Every file is read within its budget and checked against its sha256 and the model (algorithm,
    spaces, tensor names and shapes) before anything is changed. When the checkpoint is not exact
    (manifest ``not_exact_because``) the envs are not restored mid-episode: ``_last_obs`` is cleared so
    the next ``learn`` resets them, seeded ``seed + num_timesteps + i``.

    Returns:
        The callback states given to :func:`save_checkpoint`.

    Raises:
        BundleError: a file is missing, altered, unreadable or does not fit the model (naming the file).
    """
    reader = _Reader(Path(path))
    checked = _read_checkpoint(reader, model, venv)
    p = reader.path
    _apply_weights(model, checked, p)
    _apply_rng(checked, p)
    _apply_model_state(model, checked.meta, p)
    if checked.replay is not None:
        replay, replay_meta, buffer, targets = checked.replay
        for name, array in replay.items():
            targets[name][: len(array)] = array
        buffer.pos, buffer.full = int(replay_meta["pos"]), bool(replay_meta["full"])
    if checked.vecnorm is not None:
        _apply_vecnorm(*checked.vecnorm)
    _apply_envs(model, venv, checked, reader)
    return checked.states


# -- load, step 1: read and check every file


def _read_checkpoint(reader: _Reader, model: BaseAlgorithm, venv: VecEnv) -> _Checked:
    """Read every file of the checkpoint and check it against ``model`` and ``venv``, in a fixed order."""
    p = reader.path
    meta = _read_meta(reader, model)
    policy = _check_tensor_dict(reader.torch(POLICY_FILE), model.policy.state_dict(), str(p / POLICY_FILE))
    optimizer_names, variable_names = _torch_save_names(model)
    optimizers = _read_optimizers(reader, model, optimizer_names)
    variables = _check_tensor_dict(reader.torch(VARIABLES_FILE),
                                   {n: _attr_path(model, n) for n in variable_names}, str(p / VARIABLES_FILE))
    torch_rng, rng, spaces = _read_rngs(reader, model, venv)
    obs = _read_last_obs(reader, model, meta)
    replay = _read_replay(reader, model, meta)
    vecnorm = _read_vecnorm(reader, venv, meta)
    envs = reader.json(ENVS_FILE)
    states = reader.json(STATES_FILE)
    if not isinstance(states, dict) or not all(isinstance(v, dict) for v in states.values()):
        raise BundleError(f"{p / STATES_FILE}: expected an object of objects")
    return _Checked(meta=meta, policy=policy, optimizers=optimizers, optimizer_names=optimizer_names,
                    variables=variables, torch_rng=torch_rng, rng=rng, spaces=spaces, obs=obs, replay=replay,
                    vecnorm=vecnorm, envs=envs, states=states, exact=reader.manifest.get("exact") is True)


def _read_meta(reader: _Reader, model: BaseAlgorithm) -> dict[str, Any]:
    p = reader.path
    meta = reader.json(MODEL_FILE)
    if not isinstance(meta, dict):
        raise BundleError(f"{p / MODEL_FILE}: expected an object")
    try:
        _check_meta(meta, model)
    except BundleError as exc:
        raise BundleError(f"{p / MODEL_FILE}: {exc}") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"{p / MODEL_FILE}: malformed ({type(exc).__name__}: {exc})") from None
    return meta


def _read_optimizers(reader: _Reader, model: BaseAlgorithm, names: list[str]) -> dict[str, Any]:
    where = reader.path / OPTIMIZERS_FILE
    optimizers = reader.torch(OPTIMIZERS_FILE)
    if not isinstance(optimizers, dict) or set(optimizers) != set(names):
        got = sorted(optimizers) if isinstance(optimizers, dict) else type(optimizers).__name__
        raise BundleError(f"{where}: optimizers {got} != the model's {sorted(names)}")
    for name in names:
        _check_optimizer_state(optimizers[name], _attr_path(model, name), f"{where} [{name}]")
    return optimizers


def _read_rngs(reader: _Reader, model: BaseAlgorithm,
               venv: VecEnv) -> tuple[torch.Tensor, dict[str, Any], dict[str, gym.Space]]:
    """torch's RNG state, the JSON RNG states, and the action spaces they belong to (by role)."""
    p = reader.path
    torch_rng = reader.torch(TORCH_RNG_FILE)
    if (not isinstance(torch_rng, dict) or set(torch_rng) != {"torch"} or not isinstance(torch_rng["torch"], torch.Tensor)
            or torch_rng["torch"].dtype != torch.uint8 or torch_rng["torch"].shape != torch.get_rng_state().shape):
        raise BundleError(f"{p / TORCH_RNG_FILE}: expected {{'torch': uint8 tensor{tuple(torch.get_rng_state().shape)}}}")
    rng = reader.json(RNG_FILE)
    spaces = _spaces(model, venv)
    if not isinstance(rng, dict) or set(rng) != {"numpy", "python", "spaces"} or not isinstance(rng["spaces"], dict) \
            or set(rng["spaces"]) != set(spaces):
        raise BundleError(f"{p / RNG_FILE}: expected numpy, python and spaces {sorted(spaces)}")
    return torch_rng["torch"], rng, spaces


def _read_last_obs(reader: _Reader, model: BaseAlgorithm, meta: dict[str, Any]) -> dict[str, np.ndarray]:
    where = reader.path / OBS_FILE
    obs_names = meta["last_obs"]
    expected_obs = {}
    for attr in ("_last_obs", "_last_episode_starts", "_last_original_obs"):
        expected_obs.update(_npz_arrays(attr, _template_obs(model, attr)))
    obs_bytes = sum(a.nbytes for a in expected_obs.values())
    obs = reader.npz(OBS_FILE, obs_bytes, max((a.size for a in expected_obs.values()), default=1))
    if set(obs) != set(obs_names) or not set(obs) <= set(expected_obs):
        raise BundleError(f"{where}: arrays {sorted(obs)} do not match {sorted(obs_names)}")
    for name, array in obs.items():
        want = expected_obs[name]
        if array.shape != want.shape or array.dtype != want.dtype:
            raise BundleError(f"{where}: {name} is {array.dtype}{array.shape}, expected {want.dtype}{want.shape}")
    return obs


def _read_replay(reader: _Reader, model: BaseAlgorithm, meta: dict[str, Any]) -> _Replay | None:
    """The saved replay buffer rows, its record, the model's buffer and its arrays (``None``: not saved)."""
    replay_meta = meta["replay_buffer"]
    if replay_meta is None:
        return None
    where = reader.path / REPLAY_FILE
    buffer = getattr(model, "replay_buffer", None)
    if type(buffer) not in (ReplayBuffer, DictReplayBuffer) or REPLAY_FILE not in reader.files:
        raise BundleError(f"{where}: the checkpoint has a replay buffer the model cannot take")
    targets = _replay_targets(buffer)
    replay = reader.npz(REPLAY_FILE, sum(a.nbytes for a in targets.values()), max(a.size for a in targets.values()))
    _check_replay(replay, replay_meta, buffer, targets, str(where))
    return replay, replay_meta, buffer, targets


def _read_vecnorm(reader: _Reader, venv: VecEnv,
                  meta: dict[str, Any]) -> tuple[VecNormalize, dict[str, np.ndarray]] | None:
    """The venv's VecNormalize and its saved statistics (``None`` when there is none, saved or in use)."""
    p = reader.path
    vecnorm = vec_normalize(venv)
    if bool(meta["vec_normalize"]) != (vecnorm is not None):
        raise BundleError(f"{p / MODEL_FILE}: VecNormalize {'saved' if meta['vec_normalize'] else 'not saved'}, "
                          f"but the venv {'has' if vecnorm is not None else 'has no'} VecNormalize")
    if vecnorm is None:
        return None
    template = _vecnorm_arrays(vecnorm)
    arrays = reader.npz(VECNORM_FILE, sum(a.nbytes for a in template.values()),
                        max(a.size for a in template.values()))
    if set(arrays) != set(template):
        raise BundleError(f"{p / VECNORM_FILE}: arrays {sorted(arrays)} != {sorted(template)}")
    for name, array in arrays.items():
        if array.shape != template[name].shape or array.dtype.kind != "f":
            raise BundleError(f"{p / VECNORM_FILE}: {name} has shape {array.shape}, expected {template[name].shape}")
    return vecnorm, arrays


# -- load, step 2: apply what was checked


def _apply_weights(model: BaseAlgorithm, checked: _Checked, p: Path) -> None:
    """Policy tensors, loose variables and optimizer states, then a check that every weight is finite."""
    with torch.no_grad():
        model.policy.load_state_dict(checked.policy)
        for name, tensor in checked.variables.items():
            _attr_path(model, name).copy_(tensor)
    for name in checked.optimizer_names:
        try:
            _attr_path(model, name).load_state_dict(checked.optimizers[name])
        except (ValueError, KeyError, RuntimeError, TypeError) as exc:
            raise BundleError(f"{p / OPTIMIZERS_FILE} [{name}]: {exc}") from None
    try:
        check_finite_weights(model, where="checkpoint")
    except Exception as exc:
        raise BundleError(f"{p / POLICY_FILE}: {exc}") from None


def _apply_rng(checked: _Checked, p: Path) -> None:
    """numpy's and Python's global RNGs, every action space's generator, and torch's RNG."""
    rng = checked.rng
    try:
        _set_numpy_global_state(rng["numpy"])
        _set_python_state(rng["python"])
        generators = {role: generator_from_state(rng["spaces"][role], space._np_random)
                      for role, space in checked.spaces.items()}
    except (ValueError, TypeError, KeyError) as exc:
        raise BundleError(f"{p / RNG_FILE}: {type(exc).__name__}: {exc}") from None
    for role, space in checked.spaces.items():
        space._np_random = generators[role]
    torch.set_rng_state(checked.torch_rng)


def _apply_model_state(model: BaseAlgorithm, meta: dict[str, Any], p: Path) -> None:
    """Counters and schedule progress, then the episode info buffers."""
    _apply_scalars(model, meta["scalars"], str(p / MODEL_FILE))
    window = model._stats_window_size
    for attr in ("ep_info_buffer", "ep_success_buffer"):
        items = meta[attr]
        if items is not None and not isinstance(items, list):
            raise BundleError(f"{p / MODEL_FILE}: {attr} must be a list")
        setattr(model, attr, deque(items or [], maxlen=window))


def _apply_envs(model: BaseAlgorithm, venv: VecEnv, checked: _Checked, reader: _Reader) -> None:
    """The sub-envs and the model's last observations when exact; else new episodes, reseeded."""
    p = reader.path
    env_exact = restore_venv(venv, checked.envs, checked.exact, str(p / ENVS_FILE))
    if checked.exact and env_exact:
        obs = checked.obs
        for attr in ("_last_obs", "_last_episode_starts", "_last_original_obs"):
            keys = [k for k in obs if k == attr or k.startswith(attr + "/")]
            if not keys:
                setattr(model, attr, None)
            elif keys == [attr]:
                setattr(model, attr, obs[attr])
            else:
                setattr(model, attr, {k.split("/", 1)[1]: obs[k] for k in keys})
        return
    model._last_obs = None  # the next learn() resets the envs
    model._last_original_obs = None
    seed = checked.meta.get("seed")
    if isinstance(seed, int) and not isinstance(seed, bool):
        venv.seed(seed + int(model.num_timesteps))
    logger.warning("checkpoint %s does not resume exactly (%s): the envs start new episodes", p,
                   "; ".join(reader.manifest.get("not_exact_because") or ["envs not restored"]))


def _template_obs(model: BaseAlgorithm, attr: str) -> Any:
    """What ``attr`` of a model with this env looks like (for shape checks)."""
    n = model.n_envs
    if attr == "_last_episode_starts":
        return np.ones((n,), dtype=bool)
    space = model.observation_space
    if isinstance(space, gym.spaces.Dict):
        return {k: np.zeros((n, *s.shape), dtype=s.dtype) for k, s in space.spaces.items()}
    dtype = np.float32 if attr == "_last_original_obs" and space.dtype.kind == "f" else space.dtype
    value = getattr(model, attr, None)
    if isinstance(value, np.ndarray):
        return value
    return np.zeros((n, *space.shape), dtype=dtype)


def _check_meta(meta: dict[str, Any], model: BaseAlgorithm) -> None:
    if meta["algo"] != type(model).__name__:
        raise BundleError(f"algorithm {limits.short_repr(meta['algo'])} != the model's {type(model).__name__}")
    for what in ("observation_space", "action_space"):
        if meta[what] != str(getattr(model, what)):
            label = "Observation" if what == "observation_space" else "Action"
            raise BundleError(f"{label} spaces do not match: {limits.short_repr(meta[what])} != {getattr(model, what)}")
    if meta["n_envs"] != model.n_envs:
        raise BundleError(f"saved with {meta['n_envs']!r} envs, the model has {model.n_envs}")
    if not isinstance(meta["scalars"], dict) or not isinstance(meta["last_obs"], list):
        raise BundleError("scalars must be an object and last_obs a list")


def _apply_scalars(model: BaseAlgorithm, scalars: dict[str, Any], where: str) -> None:
    ints = ("num_timesteps", "_n_updates", "_episode_num", "_total_timesteps", "_num_timesteps_at_start", "_n_calls")
    for key, value in scalars.items():
        if key in ints:
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise BundleError(f"{where}: {key} must be a non-negative int, got {limits.short_repr(value)}")
        elif key == "_current_progress_remaining":
            if not isinstance(value, (int, float)) or not -1.0 <= value <= 1.0:
                raise BundleError(f"{where}: {key} must be a number in [-1, 1], got {limits.short_repr(value)}")
        else:
            raise BundleError(f"{where}: unknown scalar {limits.short_repr(key)}")
        if key == "_n_calls" and not hasattr(model, "_n_calls"):
            continue
        setattr(model, key, value)


def _check_replay(arrays: dict[str, np.ndarray], meta: Any, buffer: ReplayBuffer,
                  targets: dict[str, np.ndarray], where: str) -> None:
    if not isinstance(meta, dict) or set(meta) != {"pos", "full", "rows", "arrays"}:
        raise BundleError(f"{where}: replay buffer record must have pos, full, rows, arrays")
    pos, full, rows = meta["pos"], meta["full"], meta["rows"]
    if (not isinstance(full, bool) or not all(isinstance(v, int) and not isinstance(v, bool) for v in (pos, rows))
            or not 0 <= pos < buffer.buffer_size + (0 if full else 1)
            or rows != (buffer.buffer_size if full else pos)):
        raise BundleError(f"{where}: pos {pos!r:.20} / full {full!r:.10} / rows {rows!r:.20} do not fit a buffer of "
                          f"{buffer.buffer_size}")
    if set(arrays) != set(targets):
        raise BundleError(f"{where}: arrays {sorted(arrays)} != the buffer's {sorted(targets)}")
    for name, array in arrays.items():
        want = targets[name]
        if array.shape != (rows, *want.shape[1:]) or array.dtype != want.dtype:
            raise BundleError(f"{where}: {name} is {array.dtype}{array.shape}, expected "
                              f"{want.dtype}{(rows, *want.shape[1:])}")


def _apply_vecnorm(vecnorm: VecNormalize, arrays: dict[str, np.ndarray]) -> None:
    vecnorm.returns = arrays["returns"].astype(vecnorm.returns.dtype)
    for name, rms in _rms_items(vecnorm):
        rms.mean = arrays[f"{name}.mean"].astype(np.asarray(rms.mean).dtype)
        rms.var = arrays[f"{name}.var"].astype(np.asarray(rms.var).dtype)
        rms.count = float(arrays[f"{name}.count"])



# ------------------------------------------------------------------------------------------- callback


class CheckpointCallback(BaseCallback):
    """Save a checkpoint every ``save_freq`` env steps at a safe point, keeping the last ``keep``.

    The safe point is ``_on_rollout_start``: SB3 calls it at the start of ``collect_rollouts``, after the
    previous ``train()``, so the checkpoint lies between iterations and resumes bit-equal (see the module
    docstring). A checkpoint is never written with non-finite weights: :class:`DivergenceError` is raised
    (stopping training, as :class:`~rltransfer.callbacks.NanGuard` would) and the last good ones are kept.

    Args:
        folder: where checkpoints are written (``run_dir / "checkpoints"``).
        save_freq: env steps between checkpoints; ``None`` saves only on :meth:`save_now`.
        keep: checkpoints kept (older ones are pruned after each save).
        replay_buffer: save off-policy replay buffers.
        states: returns the callback states to store with each checkpoint; this callback's own state is
            added under ``"checkpoint_callback"``.
    """

    STATE_KEY = "checkpoint_callback"

    def __init__(self, folder: Path, save_freq: int | None, keep: int = 2, replay_buffer: bool = True,
                 states: Callable[[], dict[str, dict]] | None = None, verbose: int = 0) -> None:
        super().__init__(verbose)
        if save_freq is not None and (isinstance(save_freq, bool) or not isinstance(save_freq, int) or save_freq < 1):
            raise ConfigError(f"save_freq must be a positive integer or None, got {save_freq!r}")
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
            raise ConfigError(f"keep must be a positive integer, got {keep!r}")
        self.folder = Path(folder)
        self.save_freq = save_freq
        self.keep = keep
        self.replay_buffer = replay_buffer
        self.states = states
        self.last_saved = 0
        self.saves = 0
        self.last_path: Path | None = None
        self._safe = True

    def state_dict(self) -> dict[str, Any]:
        """This callback's counters (stored in every checkpoint under :attr:`STATE_KEY`)."""
        return {"last_saved": int(self.last_saved), "saves": int(self.saves)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`.

        Raises:
            BundleError: malformed state.
        """
        ok = isinstance(state, dict) and set(state) == {"last_saved", "saves"} and all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in state.values())
        if not ok:
            raise BundleError(f"checkpoint callback state must be {{last_saved, saves}} counts, got "
                              f"{limits.short_repr(state)}")
        self.last_saved, self.saves = state["last_saved"], state["saves"]

    def _on_training_start(self) -> None:
        self.last_saved = max(self.last_saved, int(self.model.num_timesteps))  # never re-save a resumed point
        self._safe = True

    def _on_rollout_start(self) -> None:
        step = int(self.model.num_timesteps)
        if self.save_freq is not None and step // self.save_freq > self.last_saved // self.save_freq:
            self._save(at_rollout_start=True)
        self._safe = False

    def _on_step(self) -> bool:
        return True

    def _on_training_end(self) -> None:
        self._safe = True

    def save_now(self) -> Path:
        """Save at once (e.g. after an interrupt). Exact between iterations (before training starts, after
        ``learn`` returned); in the middle of one, the manifest says it is not exact."""
        return self._save(at_rollout_start=False)

    def _save(self, at_rollout_start: bool) -> Path:
        inexact = []
        if at_rollout_start and getattr(self.model, "use_sde", False):
            inexact.append("gSDE noise was resampled just before the save point (rollout start)")
        if not at_rollout_start and not self._safe:
            inexact.append("saved in the middle of an iteration (the partial rollout is lost)")
        states = dict(self.states() if self.states is not None else {})
        states[self.STATE_KEY] = {"last_saved": int(self.model.num_timesteps), "saves": self.saves + 1}
        path = save_checkpoint(self.model, self.model.get_env(), self.folder, states=states,
                               replay_buffer=self.replay_buffer, inexact=inexact)
        self.last_saved, self.saves, self.last_path = int(self.model.num_timesteps), self.saves + 1, path
        prune_checkpoints(self.folder, self.keep)
        if self.verbose:
            logger.info("checkpoint %s", path)
        return path
