"""Building environments from families: one env (``make_env``) or a vectorized set (``make_vec_env``).

The wrapper stack, inside out: ``gym.make(gym_id)`` -> :class:`~rltransfer.families.FamilyEnv` (parameters)
-> the source's extra wrappers (e.g. ``TimeFeatureWrapper``) -> ``Monitor`` (episode statistics).
Observation normalization is a ``VecNormalize`` around the vectorized env, as in SB3.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv

from rltransfer.config import EnvFamily
from rltransfer.families import FamilyEnv, get_adapter


@dataclass(frozen=True)
class WrapperSpec:
    """A named wrapper from :data:`rltransfer.wrappers.WRAPPERS` and its keyword arguments."""

    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kwargs": dict(self.kwargs)}


#: Observation features each wrapper appends (wrappers not listed here leave the observation alone).
WRAPPER_FEATURES: dict[str, tuple[str, ...]] = {"TimeFeatureWrapper": ("time_feature",)}
OBSERVATION_PRESERVING = frozenset({"PermuteActions", "NegateReward"})


def observation_names(family: EnvFamily, wrappers: Sequence[WrapperSpec] = ()) -> list[str] | None:
    """Names of the observation features of ``family`` seen through ``wrappers`` (None when unknown)."""
    if family.observation_names is None:
        return None
    names = list(family.observation_names)
    for spec in wrappers:
        if spec.name in WRAPPER_FEATURES:
            names += WRAPPER_FEATURES[spec.name]
        elif spec.name not in OBSERVATION_PRESERVING:
            return None
    return names


def family_for_gym_id(gym_id: str) -> EnvFamily | None:
    """The shipped family whose Gymnasium id is ``gym_id`` (e.g. to name a Zoo agent's features)."""
    from rltransfer import resources
    from rltransfer.config import load_family

    for name in resources.names("envs"):
        family = load_family(name)
        if family.gym_id == gym_id:
            return family
    return None


def make_env(
    family: EnvFamily,
    params: dict[str, float] | None = None,
    wrappers: Sequence[WrapperSpec] = (),
    monitor: bool = True,
    render_mode: str | None = None,
    worker_index: int = 0,
) -> gym.Env:
    """One environment of a family with the given parameters (validated against the hard bounds).

    ``worker_index`` is the env's index in a vectorized set (recorded on its ``FamilyEnv``)."""
    adapter = get_adapter(family.adapter)
    for module in adapter.imports:
        importlib.import_module(module)  # registers the Gymnasium ids (e.g. PyBullet envs)
    kwargs = dict(family.make_kwargs)
    if render_mode is not None:
        kwargs["render_mode"] = render_mode
    env: gym.Env = FamilyEnv(gym.make(family.gym_id, **kwargs), family, params, worker_index=worker_index)
    if wrappers:
        from rltransfer.wrappers import make_wrapper

        for spec in wrappers:
            env = make_wrapper(spec.name, env, **spec.kwargs)
    if monitor:
        env = Monitor(env)
    return env


def env_factory(
    family: EnvFamily, params: dict[str, float] | None = None, wrappers: Sequence[WrapperSpec] = (),
    worker_index: int = 0,
) -> Callable[[], gym.Env]:
    """A picklable-enough thunk for vectorized envs (SubprocVecEnv pickles it with cloudpickle)."""
    wrappers = tuple(wrappers)

    def thunk() -> gym.Env:
        return make_env(family, params, wrappers, worker_index=worker_index)

    return thunk


def make_vec_env(
    family: EnvFamily,
    params: dict[str, float] | None,
    n_envs: int,
    seed: int,
    vec_env: str = "dummy",
    wrappers: Sequence[WrapperSpec] = (),
) -> VecEnv:
    """``n_envs`` copies of a family env, seeded ``seed, seed+1, ...`` (as SB3's ``make_vec_env``)."""
    fns = [env_factory(family, params, wrappers, worker_index=i) for i in range(n_envs)]
    venv: VecEnv = SubprocVecEnv(fns) if vec_env == "subproc" and n_envs > 1 else DummyVecEnv(fns)
    venv.seed(seed)
    venv.action_space.seed(seed)
    return venv
