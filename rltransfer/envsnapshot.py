"""Snapshots of environments' running state, as JSON-able data, and their exact restore.

:func:`snapshot_env` records every wrapper the module knows (``TimeLimit``, ``OrderEnforcing``,
``PassiveEnvChecker``, ``Monitor``, :class:`~rltransfer.families.FamilyEnv`, rltransfer's own
wrappers and the domain-randomization wrappers of :mod:`rltransfer.randomization`) and the unwrapped
env's physical state and ``np_random``; :func:`restore_env` puts it back.
:func:`snapshot_venv` and :func:`restore_venv` do the same for a ``DummyVecEnv`` (its pending seeds
included), and keep only the family parameters of envs that cannot be snapshot. Checkpoints
(:mod:`rltransfer.checkpoints`) store these snapshots in ``envs.json``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.wrappers import OrderEnforcing, PassiveEnvChecker, TimeLimit
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecEnvWrapper, VecNormalize

from rltransfer import limits
from rltransfer.environments import EpisodeMonitor
from rltransfer.errors import BundleError, ConfigError
from rltransfer.families import FamilyEnv
from rltransfer.randomization import RANDOMIZATION_WRAPPERS
from rltransfer.wrappers import NegateReward, PermuteActions, TimeFeatureWrapper

__all__ = [
    "MAX_MONITOR_EPISODES", "base_venv", "generator_from_state", "generator_state", "restore_env",
    "restore_venv", "snapshot_env", "snapshot_venv", "vec_normalize",
]


# --------------------------------------------------------------------------------------- generators

_BIT_GENERATORS: dict[str, Callable[[], np.random.BitGenerator]] = {
    "PCG64": np.random.PCG64, "PCG64DXSM": np.random.PCG64DXSM, "MT19937": np.random.MT19937,
    "Philox": np.random.Philox, "SFC64": np.random.SFC64,
}


def generator_state(gen: np.random.Generator | None) -> dict[str, Any] | None:
    """The bit generator state of ``gen`` as JSON-able data (``None`` for no generator)."""
    return None if gen is None else dict(gen.bit_generator.state)


def generator_from_state(state: Any, current: np.random.Generator | None) -> np.random.Generator | None:
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
    EpisodeMonitor: (_snap_monitor, _restore_monitor),
    FamilyEnv: (FamilyEnv.snapshot_state, FamilyEnv.restore_state),
    TimeFeatureWrapper: (TimeFeatureWrapper.snapshot_state, TimeFeatureWrapper.restore_state),
    PermuteActions: (_stateless, _restore_stateless),
    NegateReward: (_stateless, _restore_stateless),
    # Domain randomization: episode counter, stream seed and generator, plus each wrapper's episode state
    # (the draw, the observation bias, the latency k and its queue of pending actions).
    **{cls: (cls.snapshot_state, cls.restore_state) for cls in RANDOMIZATION_WRAPPERS},
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
                     "np_random": generator_state(base._np_random),
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
    # checkpoints written before the pipeline's Monitor recorded its constructor arguments name it Monitor
    saved = ["EpisodeMonitor" if x["class"] == "Monitor" else x["class"] for x in layers]
    names = ["EpisodeMonitor" if type(x).__name__ == "Monitor" else type(x).__name__ for x in chain[:-1]]
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
        generator = generator_from_state(record["np_random"], base._np_random)
        adapter.restore_unwrapped_state(base, fields)
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        raise BundleError(f"env snapshot, {type(base).__name__}: {type(exc).__name__}: {exc}") from None
    base._np_random = generator
    if hasattr(base, "_np_random_seed"):
        base._np_random_seed = seed


def base_venv(venv: VecEnv) -> VecEnv:
    while isinstance(venv, VecEnvWrapper):
        venv = venv.venv
    return venv


def vec_normalize(venv: VecEnv) -> VecNormalize | None:
    current: Any = venv
    while isinstance(current, VecEnvWrapper):
        if isinstance(current, VecNormalize):
            return current
        current = current.venv
    return None


def snapshot_venv(venv: VecEnv) -> dict[str, Any]:
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


def restore_venv(venv: VecEnv, snapshot: Any, exact: bool, where: str) -> bool:
    """Restore the sub-envs; returns whether they were restored exactly (mid-episode)."""
    base = base_venv(venv)
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
