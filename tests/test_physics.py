"""Physics of env families, the mistakes domain randomization must not make: a nominal env that is not
bit for bit the stock one, a parameter the physics never reads, and values that compound across
episodes (a scale applied to the previous episode's value instead of the stock one)."""

from __future__ import annotations

import importlib
import warnings
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from rltransfer import resources
from rltransfer.config import load_family
from rltransfer.environments import make_env
from rltransfer.families import family_env, get_adapter

FAMILIES = resources.names("envs")
BULLET = {"invertedpendulum", "hopper", "halfcheetah"}


def _marks(name: str) -> list:
    return [pytest.mark.pybullet] if name in BULLET else []


def _family_params(name: str) -> list[Any]:
    return [pytest.param(name, id=name, marks=_marks(name))]


ALL = [p for name in FAMILIES for p in _family_params(name)]


def _stock(name: str) -> gym.Env:
    family = load_family(name)
    for module in get_adapter(family.adapter).imports:
        importlib.import_module(module)
    return gym.make(family.gym_id, **family.make_kwargs)


def _actions(env: gym.Env, seed: int, steps: int) -> list[Any]:
    space = env.action_space
    space.seed(seed)
    return [space.sample() for _ in range(steps)]


def _trace(env: gym.Env, seed: int, actions: list[Any], through_done: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Observations (reset's first) and rewards of ``actions`` from ``reset(seed=seed)``; stops at the end
    of the episode unless ``through_done`` (PyBullet robots then keep falling onto the floor)."""
    obs, _ = env.reset(seed=seed)
    observations, rewards = [np.asarray(obs)], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # stepping past the end of an episode
        for action in actions:
            obs, reward, terminated, truncated, _ = env.step(action)
            observations.append(np.asarray(obs))
            rewards.append(reward)
            if (terminated or truncated) and not through_done:
                break
    return np.stack(observations), np.asarray(rewards, dtype=np.float64)


# --------------------------------------------------------------------------------- nominal is stock


@pytest.mark.parametrize("name", ALL)
def test_nominal_env_is_the_stock_env_bit_for_bit(name: str) -> None:
    stock = _stock(name)
    ours = make_env(load_family(name))  # with Monitor and FamilyEnv, as training builds it
    actions = _actions(stock, seed=7, steps=200)
    obs_a, rew_a = _trace(stock, 11, actions)
    obs_b, rew_b = _trace(ours, 11, actions)
    stock.close()
    ours.close()
    assert obs_a.shape == obs_b.shape and np.array_equal(obs_a, obs_b)
    assert np.array_equal(rew_a, rew_b)


@pytest.mark.pybullet
@pytest.mark.parametrize("name", sorted(BULLET))
def test_nominal_bullet_env_is_stock_past_the_end_of_episodes(name: str) -> None:
    """The hopper ends its random-action episodes within steps: keep stepping while it lies on the floor
    (contacts and friction of every link at work), still bit for bit."""
    stock = _stock(name)
    ours = make_env(load_family(name), monitor=False)  # Monitor refuses steps past the end
    actions = _actions(stock, seed=7, steps=200)
    obs_a, rew_a = _trace(stock, 11, actions, through_done=True)
    obs_b, rew_b = _trace(ours, 11, actions, through_done=True)
    stock.close()
    ours.close()
    assert np.array_equal(obs_a, obs_b) and np.array_equal(rew_a, rew_b)


@pytest.mark.parametrize("name", ALL)
def test_declared_nominal_is_what_the_stock_simulator_holds(name: str) -> None:
    """Every getter, on an env FamilyEnv never touched, reads exactly the YAML nominal (no 0.8 vs
    float32(0.8))."""
    family = load_family(name)
    adapter = get_adapter(family.adapter)
    env = _stock(name)
    env.reset(seed=0)
    if adapter.prepare is not None:
        adapter.prepare(env.unwrapped)
    got = {key: adapter.params[key][1](env.unwrapped) for key in family.params}
    env.close()
    assert got == family.nominal


# ------------------------------------------------------------------------------ every parameter acts


#: The other parameters' values, action seed and steps of an effect check. A friction only acts on a link
#: pressed against the floor: with heavier gravity and strong motors every link of the walkers gets there
#: within the rollout (the hopper's leg, thinner than its thigh and foot, only in a rare posture: seed 1).
EFFECT_SETUP: dict[str, tuple[dict[str, float], int, int]] = {
    "hopper": ({"gravity": 30.0, "power": 3.0}, 1, 150),
    "halfcheetah": ({"gravity": 30.0, "power": 3.0}, 3, 100),
}


def _effect_trace(name: str, key: str, bound: str) -> tuple[np.ndarray, np.ndarray]:
    """The trajectory with ``key`` at its ``bound`` ("low" or "high"), the rest as in :data:`EFFECT_SETUP`."""
    family = load_family(name)
    value = getattr(family.params[key], bound)
    base, action_seed, steps = EFFECT_SETUP.get(name, ({}, 3, 100))
    env = make_env(family, {**base, key: value}, monitor=False)
    actions = _actions(env, seed=action_seed, steps=steps)
    obs, rewards = _trace(env, 5, actions, through_done=name in BULLET)
    assert family_env(env).get_params()[key] == pytest.approx(value, rel=1e-9, abs=1e-12)
    env.close()
    return obs, rewards


EFFECT_CASES = [
    pytest.param(name, key, id=f"{name}-{key}", marks=_marks(name))
    for name in FAMILIES
    for key in load_family(name).params
]


@pytest.mark.parametrize(("name", "key"), EFFECT_CASES)
def test_every_parameter_changes_the_trajectory(name: str, key: str) -> None:
    """The same seeded actions at the parameter's low and high bounds give different trajectories: a
    setter the physics never reads fails here."""
    obs_a, rew_a = _effect_trace(name, key, "low")
    obs_b, rew_b = _effect_trace(name, key, "high")
    if obs_a.shape != obs_b.shape:
        return  # the episode ended at a different step
    gap = max(float(np.max(np.abs(obs_a - obs_b))), float(np.max(np.abs(rew_a - rew_b), initial=0.0)))
    assert gap > 1e-6, f"{name}: {key} at its low and high bounds gives the same trajectory (gap {gap})"


# ------------------------------------------------------------------------------------ no compounding


def _values(name: str) -> tuple[dict[str, float], dict[str, float]]:
    family = load_family(name)
    v1 = {k: (p.nominal + p.high) / 2 for k, p in family.params.items()}
    v2 = {k: p.low for k, p in family.params.items()}
    return v1, v2


def _simulator_state(env: gym.Env, name: str) -> Any:
    """What the simulator holds of the parameters: every link's mass, inertia and friction (PyBullet),
    or the physical constants of the unwrapped env (classic control), plus ``get_params``."""
    u = env.unwrapped
    params = family_env(env).get_params()
    if name not in BULLET:
        return params, {k: v for k, v in vars(u).items() if isinstance(v, float)}
    links = {}
    for link, part in u.robot.parts.items():
        info = u._p.getDynamicsInfo(part.bodies[part.bodyIndex], part.bodyPartIndex)
        links[link] = (info[0], tuple(info[2]), info[1])
    return params, links, u._p.getPhysicsEngineParameters()["gravityAccelerationZ"]


COMPOUND_STEPS = 40


@pytest.mark.parametrize("defer", [pytest.param(False, id="immediate"), pytest.param(True, id="defer")])
@pytest.mark.parametrize("name", ALL)
def test_values_do_not_compound_across_episodes(name: str, defer: bool) -> None:
    """v1, then v2, then v1 again: episode 3 is episode 1, in the simulator and in its trajectory."""
    v1, v2 = _values(name)
    env = make_env(load_family(name), v1, monitor=False)
    fam = family_env(env)
    actions = _actions(env, seed=1, steps=COMPOUND_STEPS)
    # The first reset of a stock PyBullet walker is special (its reward potential is computed before the
    # floor joins the robot's parts, so the first reward differs): episode 1 is not the first reset.
    env.reset(seed=0)
    episodes = []
    for values in (v1, v2, v1):
        if defer:
            env.reset(seed=2)
            before = fam.get_params()
            fam.set_params(values, defer=True)
            assert fam.get_params() == before  # deferred: nothing changes until the next reset
        else:
            fam.set_params(values)
        trace = _trace(env, 2, actions, through_done=name in BULLET)
        got = fam.get_params()
        for key, value in values.items():
            assert got[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key
        episodes.append((_simulator_state(env, name), trace))
    env.close()
    (state1, (obs1, rew1)), (state2, (obs2, _)), (state3, (obs3, rew3)) = episodes
    assert state3 == state1
    assert state2 != state1
    assert obs1.shape == obs3.shape and np.array_equal(obs1, obs3) and np.array_equal(rew1, rew3)
    assert obs1.shape != obs2.shape or not np.array_equal(obs1, obs2)
