"""Env families: every family passes Gymnasium's checker at nominal and extreme parameters, parameters
are applied through the setter map and read back, derived quantities stay consistent, rollouts are
deterministic, and PyBullet parameters survive resets."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from rltransfer import resources
from rltransfer.config import load_family
from rltransfer.environments import make_env
from rltransfer.errors import ConfigError, ParameterBoundsError, UnknownNameError
from rltransfer.families import ADAPTERS, family_env

FAMILIES = resources.names("envs")
BULLET = {"invertedpendulum", "hopper", "halfcheetah"}


def _marks(name: str) -> list:
    return [pytest.mark.pybullet] if name in BULLET else []


def _extremes(name: str) -> list[tuple[str, dict[str, float]]]:
    family = load_family(name)
    return [
        ("nominal", {}),
        ("low", {k: p.low for k, p in family.params.items()}),
        ("high", {k: p.high for k, p in family.params.items()}),
    ]


CASES = [
    pytest.param(name, label, params, id=f"{name}-{label}", marks=_marks(name))
    for name in FAMILIES
    for label, params in _extremes(name)
]


def test_all_required_families_ship() -> None:
    required = {"cartpole", "pendulum", "mountaincar", "acrobot", "invertedpendulum", "hopper", "halfcheetah"}
    assert required <= set(FAMILIES)
    for name in FAMILIES:
        family = load_family(name)
        assert family.name == name
        assert family.adapter in ADAPTERS


@pytest.mark.parametrize(("name", "label", "params"), CASES)
def test_check_env_and_params_read_back(name: str, label: str, params: dict[str, float]) -> None:
    family = load_family(name)
    env = make_env(family, params, monitor=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the checker warns about wrapped envs and float precision
        check_env(env, skip_render_check=True)
    env.reset(seed=0)
    fam_env = family_env(env)
    expected = family.resolve_params(params)
    got = fam_env.get_params()
    for key, value in expected.items():
        assert math.isclose(got[key], value, rel_tol=1e-5), (key, got[key], value)
    # still in force after more resets
    for seed in (1, 2):
        env.reset(seed=seed)
        env.step(env.action_space.sample())
    got = fam_env.get_params()
    for key, value in expected.items():
        assert math.isclose(got[key], value, rel_tol=1e-5), (key, got[key], value)
    env.close()


def _rollout(name: str, params: dict[str, float], seed: int, steps: int = 60) -> np.ndarray:
    env = make_env(load_family(name), params, monitor=False)
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    trace = [np.asarray(obs, dtype=np.float64).ravel()]
    for _ in range(steps):
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        trace.append(np.append(np.asarray(obs, dtype=np.float64).ravel(), reward))
        if terminated or truncated:
            obs, _ = env.reset()
            trace.append(np.asarray(obs, dtype=np.float64).ravel())
    env.close()
    return np.concatenate(trace)


@pytest.mark.parametrize("name", [pytest.param(n, marks=_marks(n)) for n in FAMILIES])
def test_seeded_rollout_is_deterministic(name: str) -> None:
    family = load_family(name)
    params = {k: (p.nominal + p.high) / 2 for k, p in family.params.items()}
    a = _rollout(name, params, seed=3)
    b = _rollout(name, params, seed=3)
    np.testing.assert_array_equal(a, b)


def test_parameters_change_the_dynamics() -> None:
    a = _rollout("cartpole", {}, seed=0, steps=20)
    b = _rollout("cartpole", {"length": 2.0}, seed=0, steps=20)
    assert a.shape != b.shape or not np.allclose(a, b)


def test_cartpole_derived_quantities_stay_consistent() -> None:
    env = make_env(load_family("cartpole"), {"length": 1.5, "pole_mass": 0.3, "cart_mass": 2.0}, monitor=False)
    env.reset(seed=0)
    u = env.unwrapped
    assert u.length == 1.5 and u.masspole == 0.3 and u.masscart == 2.0
    assert math.isclose(u.total_mass, 2.3)
    assert math.isclose(u.polemass_length, 0.45)


def test_acrobot_centre_of_mass_follows_length() -> None:
    env = make_env(load_family("acrobot"), {"link_length_1": 2.0}, monitor=False)
    env.reset(seed=0)
    assert env.unwrapped.LINK_LENGTH_1 == 2.0 and env.unwrapped.LINK_COM_POS_1 == 1.0


@pytest.mark.pybullet
def test_bullet_parameters_survive_resets_and_scale_masses() -> None:
    family = load_family("hopper")
    env = make_env(family, {"gravity": 5.0, "torso_mass_scale": 2.0, "power": 1.5, "friction": 0.4}, monitor=False)
    env.reset(seed=0)
    u = env.unwrapped
    body, link = u.robot.parts["torso"].bodies[u.robot.parts["torso"].bodyIndex], u.robot.parts["torso"].bodyPartIndex
    mass = u._p.getDynamicsInfo(body, link)[0]
    for seed in range(3):
        env.reset(seed=seed)
        for _ in range(5):
            env.step(env.action_space.sample())
    assert math.isclose(u._p.getPhysicsEngineParameters()["gravityAccelerationZ"], -5.0)
    assert math.isclose(u._p.getDynamicsInfo(body, link)[0], mass)
    assert math.isclose(mass, 2.0 * 3.6652, rel_tol=1e-3)
    assert u.robot.power == 1.5
    env.close()


@pytest.mark.pybullet
def test_unseeded_resets_reapply_what_changed_and_what_the_env_resets() -> None:
    """Between episodes only changed parameters (and gravity, which PyBullet's reset restores) are set again;
    every parameter still reads back what was asked, and a value that does not take still fails."""
    family = load_family("hopper")
    env = make_env(family, {"gravity": 5.0, "friction": 0.4}, monitor=False)
    fam = family_env(env)
    env.reset(seed=0)
    for _ in range(3):
        env.reset()
        assert fam.get_params() == pytest.approx(fam.params, rel=1e-6)
    u = env.unwrapped
    assert math.isclose(u._p.getPhysicsEngineParameters()["gravityAccelerationZ"], -5.0)
    fam.set_params({"torso_mass_scale": 1.5, "power": 0.5}, defer=True)
    env.reset()
    got = fam.get_params()
    assert got["torso_mass_scale"] == pytest.approx(1.5) and got["power"] == 0.5
    assert got["gravity"] == pytest.approx(5.0) and got["friction"] == pytest.approx(0.4)
    setter, getter = ADAPTERS["hopper"].params["power"]
    fam.set_params({"power": 0.7}, defer=True)
    try:
        ADAPTERS["hopper"].params["power"] = (lambda e, v: None, getter)  # a setter the physics ignores
        with pytest.raises(RuntimeError, match="'power' set to 0.7 but reads back 0.5"):
            env.reset()
    finally:
        ADAPTERS["hopper"].params["power"] = (setter, getter)
    env.close()


@pytest.mark.pybullet
def test_inverted_pendulum_power_scales_the_torque() -> None:
    weak = _rollout("invertedpendulum", {"power": 10.0}, seed=1, steps=30)
    strong = _rollout("invertedpendulum", {"power": 300.0}, seed=1, steps=30)
    assert weak.shape != strong.shape or not np.allclose(weak, strong)


def test_set_params_validates_bounds_and_names() -> None:
    family = load_family("cartpole")
    env = make_env(family, monitor=False)
    fam_env = family_env(env)
    with pytest.raises(ParameterBoundsError, match=r"'length'.*= 50.0.*\[0.05, 5.0\]"):
        fam_env.set_params({"length": 50.0})
    with pytest.raises(UnknownNameError, match="Did you mean: 'length'"):
        fam_env.set_params({"lenght": 1.0})
    fam_env.set_params({"length": 1.0})
    env.reset(seed=0)
    assert env.unwrapped.length == 1.0
    with pytest.raises(ConfigError):
        family.resolve_params({"gravity": float("nan")})


@pytest.mark.parametrize("name", [pytest.param(n, marks=_marks(n)) for n in FAMILIES])
def test_observation_names_match_the_observation(name: str) -> None:
    family = load_family(name)
    env = make_env(family, monitor=False)
    assert family.observation_names is not None
    assert len(family.observation_names) == env.observation_space.shape[0]
    assert len(set(family.observation_names)) == len(family.observation_names)
    env.close()
