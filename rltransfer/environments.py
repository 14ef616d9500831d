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


class EpisodeMonitor(Monitor, gym.utils.RecordConstructorArgs):
    """SB3's ``Monitor`` (episode returns and lengths in ``info["episode"]``) that records its constructor
    arguments, so that Gymnasium can recreate the env from its spec (``gym.make(env.spec)``, which
    ``gymnasium.utils.env_checker.check_env`` does)."""

    def __init__(self, env: gym.Env, filename: str | None = None, allow_early_resets: bool = True,
                 reset_keywords: tuple[str, ...] = (), info_keywords: tuple[str, ...] = (),
                 override_existing: bool = True) -> None:
        gym.utils.RecordConstructorArgs.__init__(
            self, filename=filename, allow_early_resets=allow_early_resets, reset_keywords=reset_keywords,
            info_keywords=info_keywords, override_existing=override_existing,
        )
        Monitor.__init__(self, env, filename, allow_early_resets, reset_keywords, info_keywords, override_existing)


def make_env(
    family: EnvFamily | str,
    params: dict[str, float] | None = None,
    wrappers: Sequence[WrapperSpec | str] = (),
    monitor: bool = True,
    render_mode: str | None = None,
    worker_index: int = 0,
) -> gym.Env:
    """One environment of a family with the given parameters (validated against the hard bounds).

    Args:
        family: a family by name (``"cartpole"``), a family YAML path, or an :class:`EnvFamily`.
        params: parameter values by name (``{"length": 0.7}``); the rest stay nominal.
        wrappers: wrappers by name (``"TimeFeatureWrapper"``) or :class:`WrapperSpec`, innermost first.
        monitor: wrap in a Monitor (episode statistics in ``info["episode"]``).
        render_mode: Gymnasium's render mode (``"rgb_array"``, ``"human"``).
        worker_index: the env's index in a vectorized set (recorded on its ``FamilyEnv``).

    The result passes ``gymnasium.utils.env_checker.check_env``.
    """
    if not isinstance(family, EnvFamily):
        from rltransfer.config import load_family

        family = load_family(family)
    wrappers = [WrapperSpec(w) if isinstance(w, str) else w for w in wrappers]
    adapter = get_adapter(family.adapter)
    for module in adapter.imports:
        importlib.import_module(module)  # registers the Gymnasium ids (e.g. PyBullet envs)
    kwargs = dict(family.make_kwargs)
    if render_mode is not None:
        kwargs["render_mode"] = render_mode
    try:
        base = gym.make(family.gym_id, **kwargs)
    except gym.error.Error as exc:  # NameNotFound, VersionNotFound, ...: the family file names no env here
        from rltransfer.errors import ConfigError, did_you_mean

        ids = [i for i in gym.registry if not i.startswith(("ALE/", "tabular/"))]
        raise ConfigError(
            f"env family {family.name!r} ({family.source}): gym_id {family.gym_id!r} is not a registered "
            f"Gymnasium env ({type(exc).__name__}: {str(exc).splitlines()[0]}).{did_you_mean(family.gym_id, ids)}"
            + (f" The family's imports ({', '.join(adapter.imports)}) register its ids." if adapter.imports else "")
        ) from None
    env: gym.Env = FamilyEnv(base, family, params, worker_index=worker_index)
    if wrappers:
        from rltransfer.wrappers import make_wrapper

        for spec in wrappers:
            env = make_wrapper(spec.name, env, **spec.kwargs)
    if monitor:
        env = EpisodeMonitor(env)
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
