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
import tempfile
import time
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.wrappers import OrderEnforcing, PassiveEnvChecker, TimeLimit
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.buffers import DictReplayBuffer, ReplayBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.noise import NormalActionNoise, VectorizedActionNoise
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecEnvWrapper, VecNormalize

from rltransfer import limits
from rltransfer.callbacks import check_finite_weights
from rltransfer.errors import BundleError, ConfigError
from rltransfer.families import FamilyEnv
from rltransfer.rundir import atomic_write_text, read_npz, versions
from rltransfer.wrappers import NegateReward, PermuteActions, TimeFeatureWrapper

__all__ = [
    "CheckpointCallback", "latest_checkpoint", "load_checkpoint", "prune_checkpoints", "restore_env",
    "save_checkpoint", "snapshot_env",
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

_BIT_GENERATORS: dict[str, Callable[[], np.random.BitGenerator]] = {
    "PCG64": np.random.PCG64, "PCG64DXSM": np.random.PCG64DXSM, "MT19937": np.random.MT19937,
    "Philox": np.random.Philox, "SFC64": np.random.SFC64,
}


def _generator_state(gen: np.random.Generator | None) -> dict[str, Any] | None:
    return None if gen is None else dict(gen.bit_generator.state)


def _generator_from_state(state: Any, current: np.random.Generator | None) -> np.random.Generator | None:
    """A generator in ``state`` (reusing ``current`` when it has the same bit generator)."""
    if state is None:
        return None
    name = state.get("bit_generator") if isinstance(state, dict) else None
    if name not in _BIT_GENERATORS:
        raise ValueError(f"unknown bit generator {limits.short_repr(name)}; known: {sorted(_BIT_GENERATORS)}")
    if name == "MT19937" and isinstance(state.get("state"), dict):
        state = {**state, "state": {**state["state"], "key": np.asarray(state["state"].get("key"), dtype=np.uint32)}}
    gen = current if current is not None and type(current.bit_generator).__name__ == name else None
    if gen is None:
        gen = np.random.Generator(_BIT_GENERATORS[name]())
    gen.bit_generator.state = state
    return gen


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
    base = _base_venv(venv)
    out["base_venv.action_space"] = base.action_space
    if isinstance(base, DummyVecEnv):
        for i, env in enumerate(base.envs):
            out[f"envs[{i}].action_space"] = env.action_space
    return out


# -------------------------------------------------------------------------------------- env snapshots


def _snap_time_limit(env: TimeLimit) -> dict[str, Any]:
    return {"elapsed_steps": env._elapsed_steps}


def _restore_time_limit(env: TimeLimit, state: dict[str, Any]) -> None:
    steps = state["elapsed_steps"]
    if steps is not None and (not isinstance(steps, int) or isinstance(steps, bool) or steps < 0):
        raise ValueError(f"TimeLimit elapsed_steps must be a non-negative int or None, got {steps!r:.80}")
    env._elapsed_steps = steps


def _snap_order(env: OrderEnforcing) -> dict[str, Any]:
    return {"has_reset": bool(env._has_reset)}


def _restore_order(env: OrderEnforcing, state: dict[str, Any]) -> None:
    env._has_reset = _bool(state["has_reset"], "has_reset")


_CHECKER_FLAGS = ("checked_reset", "checked_step", "checked_render", "close_called", "checked_data_reuse")


def _snap_checker(env: PassiveEnvChecker) -> dict[str, Any]:
    return {flag: bool(getattr(env, flag)) for flag in _CHECKER_FLAGS}


def _restore_checker(env: PassiveEnvChecker, state: dict[str, Any]) -> None:
    for flag in _CHECKER_FLAGS:
        setattr(env, flag, _bool(state[flag], flag))
    env._previous_data = None  # only feeds the reset/step data-reuse check, skipped after a restore
    env.checked_data_reuse = env.checked_data_reuse or env.checked_step


#: Monitor episode history kept in a snapshot (the lists grow for ever; training never reads them).
MAX_MONITOR_EPISODES = 10_000


def _snap_monitor(env: Monitor) -> dict[str, Any]:
    keep = slice(-MAX_MONITOR_EPISODES, None)
    return {
        "rewards": [float(r) for r in env.rewards], "needs_reset": bool(env.needs_reset),
        "episode_returns": [float(r) for r in env.episode_returns[keep]],
        "episode_lengths": [int(n) for n in env.episode_lengths[keep]],
        "episode_times": [float(t) for t in env.episode_times[keep]], "total_steps": int(env.total_steps),
        "elapsed": time.time() - env.t_start, "current_reset_info": dict(env.current_reset_info),
    }


def _numbers(value: Any, what: str, kind: type = float) -> list[Any]:
    ok = isinstance(value, list) and all(
        isinstance(v, (int, float) if kind is float else int) and not isinstance(v, bool) for v in value)
    if not ok:
        raise ValueError(f"Monitor {what} must be a list of numbers")
    return [kind(v) for v in value]


def _bool(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{what} must be true or false, got {limits.short_repr(value)}")
    return value


def _restore_monitor(env: Monitor, state: dict[str, Any], history_only: bool = False) -> None:
    returns = _numbers(state["episode_returns"], "episode_returns")
    lengths = _numbers(state["episode_lengths"], "episode_lengths", int)
    times = _numbers(state["episode_times"], "episode_times")
    total = state["total_steps"]
    elapsed = state["elapsed"]
    if not isinstance(total, int) or isinstance(total, bool) or total < 0:
        raise ValueError("Monitor total_steps must be a non-negative int")
    if not isinstance(elapsed, (int, float)) or not math.isfinite(elapsed):
        raise ValueError("Monitor elapsed must be a finite number")
    if not isinstance(state["current_reset_info"], dict):
        raise ValueError("Monitor current_reset_info must be an object")
    env.episode_returns, env.episode_lengths, env.episode_times = returns, lengths, times
    env.total_steps = total
    env.t_start = time.time() - float(elapsed)
    if not history_only:
        env.rewards = _numbers(state["rewards"], "rewards")
        env.needs_reset = _bool(state["needs_reset"], "needs_reset")
        env.current_reset_info = state["current_reset_info"]


def _stateless(env: gym.Env) -> dict[str, Any]:
    return {}


def _restore_stateless(env: gym.Env, state: dict[str, Any]) -> None:
    if state:
        raise ValueError(f"{type(env).__name__} has no state, got {sorted(state)}")


#: Wrappers whose running state is known exactly: class -> (snapshot, restore). Matched by exact type.
_LAYERS: dict[type, tuple[Callable[[Any], dict[str, Any]], Callable[[Any, dict[str, Any]], None]]] = {
    TimeLimit: (_snap_time_limit, _restore_time_limit),
    OrderEnforcing: (_snap_order, _restore_order),
    PassiveEnvChecker: (_snap_checker, _restore_checker),
    Monitor: (_snap_monitor, _restore_monitor),
    FamilyEnv: (FamilyEnv.snapshot_state, FamilyEnv.restore_state),
    TimeFeatureWrapper: (TimeFeatureWrapper.snapshot_state, TimeFeatureWrapper.restore_state),
    PermuteActions: (_stateless, _restore_stateless),
    NegateReward: (_stateless, _restore_stateless),
}


def _chain(env: gym.Env) -> list[gym.Env]:
    layers = []
    current: Any = env
    while isinstance(current, gym.Wrapper):
        layers.append(current)
        current = current.env
    return [*layers, current]


def snapshot_env(env: gym.Env) -> dict[str, Any]:
    """The running state of ``env`` and every wrapper around it, as JSON-able data.

    Known wrappers (:data:`_LAYERS`) give their counters; the unwrapped env gives the physical state its
    family declares (``Adapter.state_fields``) and its ``np_random``. The result says whether it is
    ``exact``; if not, ``reasons`` says why (PyBullet, an unknown wrapper) and only what can be kept is
    recorded (family parameters, Monitor history).

    Returns:
        ``{"exact": bool, "reasons": [str], "layers": [{"class": name, "state": {...}}], "unwrapped": {...}}``
    """
    chain = _chain(env)
    reasons: list[str] = []
    layers: list[dict[str, Any]] = []
    adapter = None
    for layer in chain[:-1]:
        handler = _LAYERS.get(type(layer))
        if handler is None:
            reasons.append(f"wrapper {type(layer).__name__} has no snapshot support")
            layers.append({"class": type(layer).__name__, "state": None})
            continue
        layers.append({"class": type(layer).__name__, "state": handler[0](layer)})
        if isinstance(layer, FamilyEnv):
            adapter = layer.adapter
    base = chain[-1]
    unwrapped: dict[str, Any] | None = None
    if adapter is None:
        reasons.append(f"{type(base).__name__} is not inside a FamilyEnv: its simulator state is unknown")
    elif not adapter.snapshotable:
        reasons.append(f"env family adapter {adapter.name!r} ({type(base).__name__}) cannot be snapshot")
    else:
        unwrapped = {"class": type(base).__name__, "fields": adapter.unwrapped_state(base),
                     "np_random": _generator_state(base._np_random),
                     "np_random_seed": getattr(base, "_np_random_seed", None)}
    return {"exact": not reasons, "reasons": reasons, "layers": layers, "unwrapped": unwrapped}


def restore_env(env: gym.Env, snapshot: dict[str, Any]) -> None:
    """Restore :func:`snapshot_env` into ``env``, built the same way (same wrappers, family, params).

    An exact snapshot is restored whole; otherwise only the family parameters (pending at the next reset)
    and the Monitor's episode history are, and the env must be reset before it is stepped.

    Raises:
        BundleError: the wrapper chain differs or a value is malformed (the message names the layer).
    """
    chain = _chain(env)
    layers = snapshot.get("layers") if isinstance(snapshot, dict) else None
    if not isinstance(layers, list) or not all(isinstance(x, dict) and set(x) == {"class", "state"} for x in layers):
        raise BundleError("env snapshot: 'layers' must be a list of {class, state}")
    saved = [x["class"] for x in layers]
    names = [type(x).__name__ for x in chain[:-1]]
    if saved != names:
        raise BundleError(f"env snapshot: wrappers do not match: saved {saved} != env {names}")
    exact = snapshot.get("exact") is True
    adapter = None
    for layer, record in zip(chain[:-1], layers):
        handler = _LAYERS.get(type(layer))
        if handler is None or record["state"] is None:
            continue
        where = f"env snapshot, wrapper {type(layer).__name__}"
        try:
            state = record["state"]
            if not isinstance(state, dict):
                raise ValueError("state must be an object")
            if exact:
                handler[1](layer, state)
            elif isinstance(layer, Monitor):
                _restore_monitor(layer, state, history_only=True)
            elif isinstance(layer, FamilyEnv):
                layer.restore_state({**state, "applied": None})
        except ConfigError as exc:
            raise BundleError(f"{where}: {exc}") from None
        except (KeyError, ValueError, TypeError, AttributeError, RuntimeError) as exc:
            raise BundleError(f"{where}: {type(exc).__name__}: {exc}") from None
        if isinstance(layer, FamilyEnv):
            adapter = layer.adapter
    if not exact:
        return
    base = chain[-1]
    record = snapshot.get("unwrapped")
    if adapter is None or not isinstance(record, dict) or record.get("class") != type(base).__name__:
        raise BundleError(f"env snapshot: unwrapped env {type(base).__name__} does not match the saved one "
                          f"({limits.short_repr(record.get('class') if isinstance(record, dict) else None)})")
    try:
        fields = record["fields"]
        if not isinstance(fields, dict):
            raise ValueError("fields must be an object")
        seed = record.get("np_random_seed")
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise ValueError("np_random_seed must be an int or None")
        generator = _generator_from_state(record["np_random"], base._np_random)
        adapter.restore_unwrapped_state(base, fields)
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        raise BundleError(f"env snapshot, {type(base).__name__}: {type(exc).__name__}: {exc}") from None
    base._np_random = generator
    if hasattr(base, "_np_random_seed"):
        base._np_random_seed = seed


def _base_venv(venv: VecEnv) -> VecEnv:
    while isinstance(venv, VecEnvWrapper):
        venv = venv.venv
    return venv


def _vec_normalize(venv: VecEnv) -> VecNormalize | None:
    current: Any = venv
    while isinstance(current, VecEnvWrapper):
        if isinstance(current, VecNormalize):
            return current
        current = current.venv
    return None


def _snapshot_venv(venv: VecEnv) -> dict[str, Any]:
    reasons: list[str] = []
    current: Any = venv
    while isinstance(current, VecEnvWrapper):
        if not isinstance(current, VecNormalize):
            reasons.append(f"VecEnv wrapper {type(current).__name__} has no snapshot support")
        current = current.venv
    base = current
    if not isinstance(base, DummyVecEnv):
        reasons.append(f"{type(base).__name__}: only DummyVecEnv sub-envs can be snapshot")
        params = base.get_attr("params") if _has_family(base) else None
        return {"kind": type(base).__name__, "exact": False, "reasons": reasons, "envs": None,
                "params": params, "num_envs": base.num_envs}
    envs = [snapshot_env(env) for env in base.envs]
    for i, snap in enumerate(envs):
        reasons += [f"envs[{i}]: {r}" for r in snap["reasons"]]
    return {"kind": "DummyVecEnv", "exact": not reasons, "reasons": reasons, "envs": envs,
            "seeds": list(base._seeds), "options": [dict(o) for o in base._options], "num_envs": base.num_envs}


def _has_family(venv: VecEnv) -> bool:
    try:
        venv.get_attr("params", [0])
        return True
    except AttributeError:
        return False


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


def _vecnorm_arrays(vecnorm: VecNormalize) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {"returns": np.asarray(vecnorm.returns)}
    rms_items: list[tuple[str, Any]] = [("ret_rms", vecnorm.ret_rms)]
    if isinstance(vecnorm.obs_rms, dict):
        rms_items += [(f"obs_rms/{k}", v) for k, v in vecnorm.obs_rms.items()]
    elif vecnorm.obs_rms is not None:
        rms_items.append(("obs_rms", vecnorm.obs_rms))
    for name, rms in rms_items:
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
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=folder))
    try:
        reasons = [*inexact, *_inexact_model_reasons(model, replay_buffer)]
        files = _write_contents(tmp, model, venv, states or {}, replay_buffer, reasons)
        manifest = {
            "format_version": FORMAT_VERSION, "num_timesteps": int(model.num_timesteps),
            "algo": type(model).__name__, "exact": not reasons, "not_exact_because": reasons,
            "time": time.time(), "versions": versions(), "files": files,
        }
        atomic_write_text(tmp / MANIFEST_FILE, json.dumps(manifest, indent=2, allow_nan=False) + "\n")
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{name}.old-", dir=folder))
            target.replace(old / name)
            tmp.replace(target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.replace(target)
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
        "spaces": {role: _generator_state(space._np_random) for role, space in _spaces(model, venv).items()},
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

    vecnorm = _vec_normalize(venv)
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

    # -- read and check everything
    policy = _check_tensor_dict(reader.torch(POLICY_FILE), model.policy.state_dict(), str(p / POLICY_FILE))
    optimizer_names, variable_names = _torch_save_names(model)
    optimizers = reader.torch(OPTIMIZERS_FILE)
    if not isinstance(optimizers, dict) or set(optimizers) != set(optimizer_names):
        got = sorted(optimizers) if isinstance(optimizers, dict) else type(optimizers).__name__
        raise BundleError(f"{p / OPTIMIZERS_FILE}: optimizers {got} != the model's {sorted(optimizer_names)}")
    for name in optimizer_names:
        _check_optimizer_state(optimizers[name], _attr_path(model, name), f"{p / OPTIMIZERS_FILE} [{name}]")
    variables = _check_tensor_dict(reader.torch(VARIABLES_FILE),
                                   {n: _attr_path(model, n) for n in variable_names}, str(p / VARIABLES_FILE))
    torch_rng = reader.torch(TORCH_RNG_FILE)
    if (not isinstance(torch_rng, dict) or set(torch_rng) != {"torch"} or not isinstance(torch_rng["torch"], torch.Tensor)
            or torch_rng["torch"].dtype != torch.uint8 or torch_rng["torch"].shape != torch.get_rng_state().shape):
        raise BundleError(f"{p / TORCH_RNG_FILE}: expected {{'torch': uint8 tensor{tuple(torch.get_rng_state().shape)}}}")
    rng = reader.json(RNG_FILE)
    spaces = _spaces(model, venv)
    if not isinstance(rng, dict) or set(rng) != {"numpy", "python", "spaces"} or not isinstance(rng["spaces"], dict) \
            or set(rng["spaces"]) != set(spaces):
        raise BundleError(f"{p / RNG_FILE}: expected numpy, python and spaces {sorted(spaces)}")

    obs_names = meta["last_obs"]
    expected_obs = {}
    for attr in ("_last_obs", "_last_episode_starts", "_last_original_obs"):
        expected_obs.update(_npz_arrays(attr, _template_obs(model, attr)))
    obs_bytes = sum(a.nbytes for a in expected_obs.values())
    obs = reader.npz(OBS_FILE, obs_bytes, max((a.size for a in expected_obs.values()), default=1))
    if set(obs) != set(obs_names) or not set(obs) <= set(expected_obs):
        raise BundleError(f"{p / OBS_FILE}: arrays {sorted(obs)} do not match {sorted(obs_names)}")
    for name, array in obs.items():
        want = expected_obs[name]
        if array.shape != want.shape or array.dtype != want.dtype:
            raise BundleError(f"{p / OBS_FILE}: {name} is {array.dtype}{array.shape}, expected {want.dtype}{want.shape}")

    replay_meta = meta["replay_buffer"]
    buffer = getattr(model, "replay_buffer", None)
    replay: dict[str, np.ndarray] | None = None
    if replay_meta is not None:
        if type(buffer) not in (ReplayBuffer, DictReplayBuffer) or REPLAY_FILE not in reader.files:
            raise BundleError(f"{p / REPLAY_FILE}: the checkpoint has a replay buffer the model cannot take")
        targets = _replay_targets(buffer)
        replay = reader.npz(REPLAY_FILE, sum(a.nbytes for a in targets.values()),
                            max(a.size for a in targets.values()))
        _check_replay(replay, replay_meta, buffer, targets, str(p / REPLAY_FILE))

    vecnorm = _vec_normalize(venv)
    vecnorm_arrays = None
    if bool(meta["vec_normalize"]) != (vecnorm is not None):
        raise BundleError(f"{p / MODEL_FILE}: VecNormalize {'saved' if meta['vec_normalize'] else 'not saved'}, "
                          f"but the venv {'has' if vecnorm is not None else 'has no'} VecNormalize")
    if vecnorm is not None:
        template = _vecnorm_arrays(vecnorm)
        vecnorm_arrays = reader.npz(VECNORM_FILE, sum(a.nbytes for a in template.values()),
                                    max(a.size for a in template.values()))
        if set(vecnorm_arrays) != set(template):
            raise BundleError(f"{p / VECNORM_FILE}: arrays {sorted(vecnorm_arrays)} != {sorted(template)}")
        for name, array in vecnorm_arrays.items():
            if array.shape != template[name].shape or array.dtype.kind != "f":
                raise BundleError(f"{p / VECNORM_FILE}: {name} has shape {array.shape}, expected {template[name].shape}")

    envs = reader.json(ENVS_FILE)
    states = reader.json(STATES_FILE)
    if not isinstance(states, dict) or not all(isinstance(v, dict) for v in states.values()):
        raise BundleError(f"{p / STATES_FILE}: expected an object of objects")
    exact = reader.manifest.get("exact") is True

    # -- apply
    with torch.no_grad():
        model.policy.load_state_dict(policy)
        for name, tensor in variables.items():
            _attr_path(model, name).copy_(tensor)
    for name in optimizer_names:
        try:
            _attr_path(model, name).load_state_dict(optimizers[name])
        except (ValueError, KeyError, RuntimeError, TypeError) as exc:
            raise BundleError(f"{p / OPTIMIZERS_FILE} [{name}]: {exc}") from None
    try:
        check_finite_weights(model, where="checkpoint")
    except Exception as exc:
        raise BundleError(f"{p / POLICY_FILE}: {exc}") from None
    try:
        _set_numpy_global_state(rng["numpy"])
        _set_python_state(rng["python"])
        generators = {role: _generator_from_state(rng["spaces"][role], space._np_random)
                      for role, space in spaces.items()}
    except (ValueError, TypeError, KeyError) as exc:
        raise BundleError(f"{p / RNG_FILE}: {type(exc).__name__}: {exc}") from None
    for role, space in spaces.items():
        space._np_random = generators[role]
    torch.set_rng_state(torch_rng["torch"])

    _apply_scalars(model, meta["scalars"], str(p / MODEL_FILE))
    window = model._stats_window_size
    for attr in ("ep_info_buffer", "ep_success_buffer"):
        items = meta[attr]
        if items is not None and not isinstance(items, list):
            raise BundleError(f"{p / MODEL_FILE}: {attr} must be a list")
        setattr(model, attr, deque(items or [], maxlen=window))

    if replay is not None:
        for name, array in replay.items():
            targets[name][: len(array)] = array
        buffer.pos, buffer.full = int(replay_meta["pos"]), bool(replay_meta["full"])
    if vecnorm is not None and vecnorm_arrays is not None:
        _apply_vecnorm(vecnorm, vecnorm_arrays)

    env_exact = _restore_venv(venv, envs, exact, str(p / ENVS_FILE))
    if exact and env_exact:
        for attr in ("_last_obs", "_last_episode_starts", "_last_original_obs"):
            keys = [k for k in obs if k == attr or k.startswith(attr + "/")]
            if not keys:
                setattr(model, attr, None)
            elif keys == [attr]:
                setattr(model, attr, obs[attr])
            else:
                setattr(model, attr, {k.split("/", 1)[1]: obs[k] for k in keys})
    else:
        model._last_obs = None  # the next learn() resets the envs
        model._last_original_obs = None
        seed = meta.get("seed")
        if isinstance(seed, int) and not isinstance(seed, bool):
            venv.seed(seed + int(model.num_timesteps))
        logger.warning("checkpoint %s does not resume exactly (%s): the envs start new episodes", p,
                       "; ".join(reader.manifest.get("not_exact_because") or ["envs not restored"]))
    return states


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
    rms_items: list[tuple[str, Any]] = [("ret_rms", vecnorm.ret_rms)]
    if isinstance(vecnorm.obs_rms, dict):
        rms_items += [(f"obs_rms/{k}", v) for k, v in vecnorm.obs_rms.items()]
    elif vecnorm.obs_rms is not None:
        rms_items.append(("obs_rms", vecnorm.obs_rms))
    for name, rms in rms_items:
        rms.mean = arrays[f"{name}.mean"].astype(np.asarray(rms.mean).dtype)
        rms.var = arrays[f"{name}.var"].astype(np.asarray(rms.var).dtype)
        rms.count = float(arrays[f"{name}.count"])


def _restore_venv(venv: VecEnv, snapshot: Any, exact: bool, where: str) -> bool:
    """Restore the sub-envs; returns whether they were restored exactly (mid-episode)."""
    base = _base_venv(venv)
    if not isinstance(snapshot, dict) or snapshot.get("num_envs") != base.num_envs:
        raise BundleError(f"{where}: saved for {snapshot.get('num_envs') if isinstance(snapshot, dict) else '?'!r} "
                          f"envs, the venv has {base.num_envs}")
    snap_exact = exact and snapshot.get("exact") is True and snapshot.get("kind") == type(base).__name__
    if isinstance(base, DummyVecEnv) and isinstance(snapshot.get("envs"), list):
        envs = snapshot["envs"]
        if len(envs) != base.num_envs:
            raise BundleError(f"{where}: {len(envs)} env snapshots for {base.num_envs} envs")
        for i, (env, snap) in enumerate(zip(base.envs, envs)):
            if not isinstance(snap, dict):
                raise BundleError(f"{where}: envs[{i}] must be an object")
            try:
                restore_env(env, {**snap, "exact": snap_exact and snap.get("exact") is True})
            except BundleError as exc:
                raise BundleError(f"{where}: envs[{i}]: {exc}") from None
        if snap_exact:
            seeds, options = snapshot.get("seeds"), snapshot.get("options")
            if (not isinstance(seeds, list) or len(seeds) != base.num_envs
                    or not all(s is None or (isinstance(s, int) and not isinstance(s, bool)) for s in seeds)
                    or not isinstance(options, list) or len(options) != base.num_envs
                    or not all(isinstance(o, dict) for o in options)):
                raise BundleError(f"{where}: seeds/options must be one per env")
            base._seeds, base._options = list(seeds), [dict(o) for o in options]
        return snap_exact
    params = snapshot.get("params")
    if params is not None and _has_family(base):
        if not isinstance(params, list) or len(params) != base.num_envs or not all(isinstance(x, dict) for x in params):
            raise BundleError(f"{where}: params must be one object per env")
        for i, values in enumerate(params):
            try:
                base.env_method("set_params", values, defer=True, indices=[i])
            except ConfigError as exc:
                raise BundleError(f"{where}: envs[{i}] params: {exc}") from None
    return False


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
