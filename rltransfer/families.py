"""Parametric environment families: how each family's physical parameters are set and read back.

A family (``envs/<name>.yaml``) names a Gymnasium id, the nominal value and hard bounds of each physical
parameter, and an *adapter*: the explicit map ``parameter name -> (setter, getter)`` defined here. Setters
keep derived quantities consistent (CartPole's ``total_mass`` and ``polemass_length``); every apply is
read back and verified, so a typo can never silently create a new attribute.

:class:`FamilyEnv` is the Gymnasium wrapper that holds a family's current parameters and re-applies them
on every ``reset`` (PyBullet scenes reset gravity on each episode, so parameters must be re-applied after
the robot is loaded, every time).
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import gymnasium as gym
import numpy as np

from rltransfer.errors import ConfigError, unknown_name


class EnvFamily(Protocol):
    """What this module reads of an env family: :class:`rltransfer.config.EnvFamily` is one. (A protocol,
    so that this module does not import :mod:`rltransfer.config`, which imports it to check adapters.)"""

    @property
    def name(self) -> str: ...

    @property
    def adapter(self) -> str: ...

    @property
    def source(self) -> str: ...

    @property
    def params(self) -> Mapping[str, Any]: ...

    def resolve_params(self, overrides: dict[str, float] | None = None) -> dict[str, float]: ...


Setter = Callable[[Any, float], None]
Getter = Callable[[Any], float]


@dataclass(frozen=True)
class Adapter:
    """The explicit parameter map of one family.

    Attributes:
        name: adapter name referenced by ``adapter:`` in the family YAML.
        params: parameter name -> (setter, getter), both taking the *unwrapped* env.
        after_reset: apply after ``env.reset()`` (PyBullet: bodies exist only then, gravity is reset).
        volatile: parameters the env's own ``reset`` restores to its defaults (PyBullet: gravity); they are
            re-applied at every reset. The others keep what they were given, so a reset re-applies (and
            reads back) only those whose value changed since they were last applied and verified.
        prepare: called once on the unwrapped env after the first reset (record nominal masses etc.).
        imports: modules to import so the Gymnasium id is registered.
        state_fields: the attributes of the *unwrapped* env that change while it runs (its physical state),
            as ``(name, shape)``: ``shape`` for a float array (``None`` allowed before the first reset),
            ``None`` for a scalar (``None``, int or float). With the env's ``np_random`` they make an exact
            snapshot (:meth:`unwrapped_state`). ``None``: the env cannot be snapshot (PyBullet).
    """

    name: str
    params: dict[str, tuple[Setter, Getter]]
    after_reset: bool = False
    volatile: frozenset[str] = frozenset()
    prepare: Callable[[Any], None] | None = None
    imports: tuple[str, ...] = ()
    state_fields: tuple[tuple[str, tuple[int, ...] | None], ...] | None = None

    @property
    def snapshotable(self) -> bool:
        """Whether :meth:`unwrapped_state` can capture this family's env exactly."""
        return self.state_fields is not None

    def unwrapped_state(self, env: Any) -> dict[str, Any]:
        """The physical state of the unwrapped ``env``: ``{field: value}`` for each of :attr:`state_fields`
        (arrays copied, numpy scalars kept as such).

        Raises:
            TypeError: the family's env cannot be snapshot.
        """
        if self.state_fields is None:
            raise TypeError(f"env adapter {self.name!r}: the simulator state cannot be snapshot")
        out: dict[str, Any] = {}
        for name, _shape in self.state_fields:
            value = getattr(env, name, None)  # Pendulum and MountainCar set ``state`` at the first reset
            out[name] = value.copy() if isinstance(value, np.ndarray) else value
        return out

    def restore_unwrapped_state(self, env: Any, state: dict[str, Any]) -> None:
        """Set the fields :meth:`unwrapped_state` returned, after checking names, shapes and types.

        Raises:
            TypeError: the family's env cannot be snapshot.
            ValueError: a field is missing, unknown, of the wrong shape or type.
        """
        if self.state_fields is None:
            raise TypeError(f"env adapter {self.name!r}: the simulator state cannot be snapshot")
        expected = {name for name, _ in self.state_fields}
        if set(state) != expected:
            raise ValueError(
                f"env adapter {self.name!r}: state fields {sorted(state)} != expected {sorted(expected)}"
            )
        checked: dict[str, Any] = {}
        for name, shape in self.state_fields:
            value = state[name]  # names come from state_fields, never from the snapshot: set only those
            if shape is not None and value is not None:
                if not isinstance(value, np.ndarray) or value.shape != shape or value.dtype.kind != "f":
                    got = (f"{value.dtype}{value.shape}" if isinstance(value, np.ndarray)
                           else type(value).__name__)
                    raise ValueError(
                        f"env adapter {self.name!r}: {name} must be a float array of shape {shape}, got {got}"
                    )
                value = value.copy()
            elif shape is None and value is not None and (
                isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating))
            ):
                raise ValueError(f"env adapter {self.name!r}: {name} must be a number or None, "
                                 f"got {type(value).__name__}")
            checked[name] = value
        for name, value in checked.items():
            setattr(env, name, value)


def _attr(attr: str) -> tuple[Setter, Getter]:
    def setter(env: Any, value: float) -> None:
        if not hasattr(env, attr):
            raise AttributeError(f"{type(env).__name__} has no attribute {attr!r}")
        setattr(env, attr, float(value))

    return setter, lambda env: float(getattr(env, attr))


# ------------------------------------------------------------------------------------------ classic control


def _cartpole_length(env: Any, v: float) -> None:
    env.length = float(v)
    env.polemass_length = env.masspole * env.length


def _cartpole_pole_mass(env: Any, v: float) -> None:
    env.masspole = float(v)
    env.total_mass = env.masspole + env.masscart
    env.polemass_length = env.masspole * env.length


def _cartpole_cart_mass(env: Any, v: float) -> None:
    env.masscart = float(v)
    env.total_mass = env.masspole + env.masscart


CARTPOLE = Adapter(
    "cartpole",
    {
        "length": (_cartpole_length, lambda e: float(e.length)),
        "pole_mass": (_cartpole_pole_mass, lambda e: float(e.masspole)),
        "cart_mass": (_cartpole_cart_mass, lambda e: float(e.masscart)),
        "gravity": _attr("gravity"),
        "force_mag": _attr("force_mag"),
    },
    state_fields=(("state", (4,)), ("steps_beyond_terminated", None)),
)

PENDULUM = Adapter(
    "pendulum",
    {"mass": _attr("m"), "length": _attr("l"), "gravity": _attr("g"), "max_torque": _attr("max_torque")},
    state_fields=(("state", (2,)), ("last_u", None)),
)

MOUNTAINCAR = Adapter("mountaincar", {"power": _attr("power")}, state_fields=(("state", (2,)),))


def _acrobot_length(index: int) -> tuple[Setter, Getter]:
    def setter(env: Any, v: float) -> None:
        setattr(env, f"LINK_LENGTH_{index}", float(v))
        setattr(env, f"LINK_COM_POS_{index}", float(v) / 2.0)  # centre of mass stays mid-link

    return setter, lambda env: float(getattr(env, f"LINK_LENGTH_{index}"))


ACROBOT = Adapter(
    "acrobot",
    {
        "link_length_1": _acrobot_length(1),
        "link_length_2": _acrobot_length(2),
        "link_mass_1": _attr("LINK_MASS_1"),
        "link_mass_2": _attr("LINK_MASS_2"),
    },
    state_fields=(("state", (4,)),),
)

# ----------------------------------------------------------------------------------------------- PyBullet

_NOMINAL = "_rltransfer_nominal"

# How PyBullet parameters are applied. ``prepare`` records, once, what the loaded model holds (link masses,
# inertia diagonals and lateral frictions, joint damping) in a :class:`_BulletState` on the env. Every
# setter then writes values computed from those *recorded stock values* and the requested ones, never from
# the simulator's current values: a scale applied in episode k does not depend on earlier episodes (the
# scenes' ``restoreState`` restores positions and velocities only, so masses and frictions stay as last
# written). A value is written only where the simulator does not already hold it bit for bit, so at
# nominal a fresh env receives no ``changeDynamics`` call at all and is exactly the stock one.
#
# Combinations: a link's mass (and inertia diagonal) is ``stock * <link>_mass_scale * mass_scale``; its
# lateral friction is ``friction * <link>_friction`` (``friction`` absolute, nominal the stock float32 0.8;
# the per-link values are factors, nominal 1.0). ``joint_damping`` is the viscous damping of every actuated
# joint, absolute (PyBullet's MJCF importer ignores the XML's ``damping``: the stock value is 0).
#
# Read-back: masses, inertias and frictions are read with ``getDynamicsInfo``. PyBullet has no call that
# reads joint damping (``getJointInfo`` returns the value cached when the body was loaded, 0 even after
# ``changeDynamics(jointDamping=...)``), so its getter returns what was last written to the simulator,
# recorded at the ``changeDynamics`` call; tests check that it changes the dynamics.


@dataclass
class _BulletState:
    """What ``prepare`` recorded of the stock model, and the factors currently requested."""

    mass: dict[str, float]
    inertia: dict[str, tuple[float, float, float]]
    friction: dict[str, float]
    damping_written: dict[int, float]  # joint index -> damping last given to the simulator (stock: 0)
    mass_scale: dict[str, float]
    global_mass_scale: float = 1.0
    friction_value: float | None = None  # ``friction`` requested (None: stock per link)
    friction_factor: dict[str, float] | None = None


def _state(env: Any) -> _BulletState:
    return getattr(env, _NOMINAL)


def _part(env: Any, link: str) -> tuple[int, int]:
    part = env.robot.parts[link]
    return part.bodies[part.bodyIndex], part.bodyPartIndex


def _actuated_joints(env: Any) -> list[tuple[int, int]]:
    """(body, joint index) of the robot's actuated joints (``ordered_joints``: no ``ignore``/fixed ones)."""
    return [(j.bodies[j.bodyIndex], j.jointIndex) for j in env.robot.ordered_joints]


def _bullet_prepare(links: tuple[str, ...], friction: bool) -> Callable[[Any], None]:
    """Record the stock masses and inertias of ``links``, their frictions (if ``friction``: the family has
    a friction parameter; else none is recorded and none is ever written) and the actuated joints' damping."""

    def prepare(env: Any) -> None:
        if getattr(env, _NOMINAL, None) is not None:
            return
        mass: dict[str, float] = {}
        inertia: dict[str, tuple[float, float, float]] = {}
        frictions: dict[str, float] = {}
        for link in links:
            if link not in env.robot.parts:
                raise ConfigError(
                    f"{type(env).__name__} has no link {link!r}; links: {sorted(env.robot.parts)}"
                )
            info = env._p.getDynamicsInfo(*_part(env, link))
            mass[link], inertia[link] = float(info[0]), tuple(info[2])
            if friction:
                frictions[link] = float(info[1])
        damping = {index: float(env._p.getJointInfo(body, index)[6]) for body, index in _actuated_joints(env)}
        setattr(env, _NOMINAL, _BulletState(mass, inertia, frictions, damping, dict.fromkeys(links, 1.0)))

    return prepare


def _apply_masses(env: Any) -> None:
    state = _state(env)
    for link, stock in state.mass.items():
        factor = state.mass_scale[link] * state.global_mass_scale
        mass = stock * factor
        inertia = [x * factor for x in state.inertia[link]]
        body, index = _part(env, link)
        info = env._p.getDynamicsInfo(body, index)
        if info[0] != mass or list(info[2]) != inertia:
            # the inertia diagonal is written explicitly: same geometry, so it scales with the mass
            env._p.changeDynamics(body, index, mass=mass, localInertiaDiagonal=inertia)


def _mass_factor_read(env: Any, link: str) -> float:
    """The simulator's mass factor of ``link`` (NaN if its inertia does not carry the same factor)."""
    state = _state(env)
    info = env._p.getDynamicsInfo(*_part(env, link))
    factor = float(info[0]) / state.mass[link]
    if not all(math.isclose(got, stock * factor, rel_tol=1e-9, abs_tol=1e-12)
               for got, stock in zip(info[2], state.inertia[link])):
        return math.nan
    return factor


def _link_mass_scale(link: str) -> tuple[Setter, Getter]:
    def setter(env: Any, v: float) -> None:
        _state(env).mass_scale[link] = float(v)
        _apply_masses(env)

    def getter(env: Any) -> float:
        return _mass_factor_read(env, link) / _state(env).global_mass_scale

    return setter, getter


def _global_mass_scale(env: Any, v: float) -> None:
    _state(env).global_mass_scale = float(v)
    _apply_masses(env)


def _agreed(values: list[float]) -> float:
    """The common value of ``values`` (NaN, failing verification, when they disagree)."""
    if all(math.isclose(v, values[0], rel_tol=1e-9, abs_tol=1e-12) for v in values):
        return values[0]
    return math.nan


def _global_mass_scale_get(env: Any) -> float:
    state = _state(env)
    return _agreed([_mass_factor_read(env, link) / state.mass_scale[link] for link in state.mass])


def _gravity(env: Any, v: float) -> None:
    env._p.setGravity(0, 0, -float(v))


def _gravity_get(env: Any) -> float:
    return -float(env._p.getPhysicsEngineParameters()["gravityAccelerationZ"])


def _apply_frictions(env: Any) -> None:
    state = _state(env)
    for link, stock in state.friction.items():
        factor = 1.0 if state.friction_factor is None else state.friction_factor.get(link, 1.0)
        value = (stock if state.friction_value is None else state.friction_value) * factor
        body, index = _part(env, link)
        if env._p.getDynamicsInfo(body, index)[1] != value:
            env._p.changeDynamics(body, index, lateralFriction=value)


def _friction_factor(env: Any, link: str) -> float:
    factors = _state(env).friction_factor
    return 1.0 if factors is None else factors.get(link, 1.0)


def _friction(env: Any, v: float) -> None:
    _state(env).friction_value = float(v)
    _apply_frictions(env)


def _friction_get(env: Any) -> float:
    """``friction`` as the simulator holds it: each link's lateral friction over its factor (all agree)."""
    values = [float(env._p.getDynamicsInfo(*_part(env, link))[1]) / _friction_factor(env, link)
              for link in _state(env).friction]
    return _agreed(values)


def _link_friction(link: str) -> tuple[Setter, Getter]:
    def setter(env: Any, v: float) -> None:
        state = _state(env)
        if state.friction_factor is None:
            state.friction_factor = {}
        state.friction_factor[link] = float(v)
        _apply_frictions(env)

    def getter(env: Any) -> float:
        state = _state(env)
        base = state.friction[link] if state.friction_value is None else state.friction_value
        return float(env._p.getDynamicsInfo(*_part(env, link))[1]) / base

    return setter, getter


def _joint_damping(joints: Callable[[Any], list[tuple[int, int]]]) -> tuple[Setter, Getter]:
    """Viscous damping of ``joints(env)`` (``changeDynamics(jointDamping=...)``; Bullet adds ``-c * qdot``)."""

    def setter(env: Any, v: float) -> None:
        written = _state(env).damping_written
        for body, index in joints(env):
            if written[index] != float(v):
                env._p.changeDynamics(body, index, jointDamping=float(v))
                written[index] = float(v)

    def getter(env: Any) -> float:
        written = _state(env).damping_written
        return _agreed([written[index] for _body, index in joints(env)])

    return setter, getter


def _named_joint(name: str) -> Callable[[Any], list[tuple[int, int]]]:
    def joints(env: Any) -> list[tuple[int, int]]:
        j = env.robot.jdict[name]
        return [(j.bodies[j.bodyIndex], j.jointIndex)]

    return joints


def _pendulum_apply_action(robot: Any, a: np.ndarray) -> None:
    """InvertedPendulum's ``apply_action`` with its hard-coded torque 100 made the ``power`` attribute."""
    if not np.isfinite(a).all():
        raise ValueError(f"non-finite action {a}")
    robot.slider.set_motor_torque(robot.power * float(np.clip(a[0], -1, +1)))


def _pendulum_power(env: Any, v: float) -> None:
    robot = env.robot
    if not isinstance(getattr(robot, "apply_action", None), types.MethodType) or (
        robot.apply_action.__func__ is not _pendulum_apply_action
    ):
        robot.apply_action = types.MethodType(_pendulum_apply_action, robot)
    robot.power = float(v)


def _bullet(
    name: str,
    links: tuple[str, ...],
    power: tuple[Setter, Getter],
    friction_links: tuple[str, ...] | None = (),
    damping: dict[str, Callable[[Any], list[tuple[int, int]]]] | None = None,
) -> Adapter:
    """A PyBullet adapter: gravity, power, mass scales of ``links``; ``friction`` of ``links`` with a
    per-link factor for each of ``friction_links`` (``None``: no friction parameter); joint damping
    parameters ``damping`` (name -> joints; default ``joint_damping`` on every actuated joint)."""
    params: dict[str, tuple[Setter, Getter]] = {
        "gravity": (_gravity, _gravity_get),
        "power": power,
        "mass_scale": (_global_mass_scale, _global_mass_scale_get),
    }
    if friction_links is not None:
        params["friction"] = (_friction, _friction_get)
        for link in friction_links:
            params[f"{link}_friction"] = _link_friction(link)
    for link in links:
        params[f"{link}_mass_scale"] = _link_mass_scale(link)
    for key, joints in (damping or {"joint_damping": _actuated_joints}).items():
        params[key] = _joint_damping(joints)
    return Adapter(name, params, after_reset=True, volatile=frozenset({"gravity"}), prepare=_bullet_prepare(links, friction_links is not None),
                   imports=("pybullet_envs_gymnasium",))


_ROBOT_POWER = (lambda env, v: setattr(env.robot, "power", float(v)), lambda env: float(env.robot.power))

HOPPER = _bullet(
    "hopper", ("torso", "thigh", "leg", "foot"), _ROBOT_POWER, friction_links=("torso", "thigh", "leg", "foot")
)
HALFCHEETAH = _bullet(
    "halfcheetah", ("torso", "bthigh", "bshin", "bfoot", "fthigh", "fshin", "ffoot"), _ROBOT_POWER,
    friction_links=("bthigh", "bshin", "bfoot", "fthigh", "fshin", "ffoot"),
)
INVERTEDPENDULUM = _bullet(
    "invertedpendulum", ("cart", "pole"), (_pendulum_power, lambda env: float(getattr(env.robot, "power", 100.0))),
    friction_links=None,  # the cart slides on a prismatic joint and touches nothing (MJCF contype=0)
    damping={"cart_damping": _named_joint("slider"), "pole_damping": _named_joint("hinge")},
)


ADAPTERS: dict[str, Adapter] = {
    a.name: a for a in (CARTPOLE, PENDULUM, MOUNTAINCAR, ACROBOT, HOPPER, HALFCHEETAH, INVERTEDPENDULUM)
}


def get_adapter(name: str) -> Adapter:
    try:
        return ADAPTERS[name]
    except KeyError:
        raise unknown_name("env adapter", name, ADAPTERS) from None


def check_adapter(family: EnvFamily) -> None:
    """Every parameter a family YAML declares must have a setter in its adapter (and vice versa)."""
    if family.adapter not in ADAPTERS:
        raise unknown_name("adapter", family.adapter, ADAPTERS, where=f"{family.source} (key 'adapter')")
    adapter = ADAPTERS[family.adapter]
    for key in family.params:
        if key not in adapter.params:
            raise unknown_name(
                f"parameter for adapter {adapter.name!r}", key, adapter.params, where=f"{family.source} (params)"
            )


# ---------------------------------------------------------------------------------------------- wrapper


@contextlib.contextmanager
def c_stdout_to_stderr() -> Any:
    """Send what C code prints to stdout (file descriptor 1) to stderr while the block runs.

    PyBullet's C library prints ``argv[0]=`` on stdout when it connects (the first reset of a PyBullet
    family), which would corrupt ``--json -`` and piped tables; the C stdio buffer is flushed before fd 1
    is restored, so nothing printed inside lands on stdout later.
    """
    try:
        sys.stdout.flush()
        saved = os.dup(1)
    except (OSError, ValueError):  # no fd 1 (a closed or replaced stdout): nothing to protect
        yield
        return
    try:
        os.dup2(2, 1)
        yield
    finally:
        try:
            import ctypes

            ctypes.CDLL(None).fflush(None)
        except (OSError, AttributeError):
            pass
        os.dup2(saved, 1)
        os.close(saved)


class FamilyEnv(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Holds an env family's parameters and applies them (verified) on every reset.

    ``set_params`` validates against the family's hard bounds; values take effect immediately where the
    simulator allows it, and in any case from the next ``reset`` on. ``get_params`` reads the simulator.
    The current values are reported in ``info["env_params"]`` at reset and in the ``info`` of the step
    that ends each episode (so that what an episode ran with reaches the learner, across processes).
    ``worker_index`` is this env's index in its vectorized set (seeds per-worker samplers).

    Schedules (curricula, ADR) reach it through :meth:`receive_schedule` (a VecEnv's ``env_method``); the
    version a schedule carries is applied at the next reset and reported in ``info["schedule"]`` at
    reset and at the step that ends the episode, so the learner knows which schedule each episode ran.
    """

    def __init__(self, env: gym.Env, family: EnvFamily, params: dict[str, float] | None = None,
                 worker_index: int = 0) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, family=family, params=params, worker_index=worker_index)
        gym.Wrapper.__init__(self, env)
        self.worker_index = int(worker_index)
        self.family = family
        self.adapter = get_adapter(family.adapter)
        self._values = family.resolve_params(params)
        self._loaded = not self.adapter.after_reset
        self._verified: dict[str, float] = {}  # values applied and read back, valid until the next full apply
        self.schedule_version = 0  # the schedule version applied at the last reset
        self._pending_version = 0  # the last version received (applied at the next reset)

    @property
    def params(self) -> dict[str, float]:
        """The parameter values in force (as requested; see :meth:`get_params` for the simulator's)."""
        return dict(self._values)

    def set_params(self, overrides: dict[str, float], defer: bool = False) -> None:
        """Validate and set parameters; unknown names and out-of-bounds values raise ConfigError.

        With ``defer`` the values take effect at the next ``reset`` (episode boundaries), else at once where
        the simulator allows it.
        """
        merged = {**self._values, **overrides}
        self._values = self.family.resolve_params(merged)
        if self._loaded and not defer:
            self._apply()

    def receive_schedule(self, version: int, params: dict[str, float] | None = None,
                         ranges: dict[str, Any] | None = None, adr: dict[str, Any] | None = None) -> None:
        """Take schedule ``version`` (a curriculum's or ADR's): ``params`` are set deferred, so they and the
        version take effect at the next reset. ``ranges`` and ``adr`` need a randomization preset's
        :class:`~rltransfer.randomization.PhysicsRandomizer` around this env (which handles them first).

        Raises:
            ConfigError: ``ranges``/``adr`` without a randomizer, unknown parameters, values outside the
                hard bounds, or a version that is not a positive integer above the last one received.
        """
        if isinstance(version, bool) or not isinstance(version, (int, np.integer)) or version < 1:
            raise ConfigError(f"schedule version must be a positive integer, got {version!r:.40}")
        if version <= self._pending_version:
            raise ConfigError(f"schedule version {version} is not newer than {self._pending_version}, the last received")
        if ranges or adr:
            raise ConfigError(
                f"env family {self.family.name!r}: a schedule over randomization ranges (or ADR) needs a "
                "randomization preset around the env; this env has none"
            )
        if params:
            self.set_params(dict(params), defer=True)
        self._pending_version = int(version)

    def _report_schedule(self, info: dict[str, Any]) -> None:
        info["schedule"] = {"version": self.schedule_version}

    def get_params(self) -> dict[str, float]:
        """Read every parameter back from the simulator."""
        if not self._loaded:
            return dict(self._values)
        env = self.env.unwrapped
        return {k: self.adapter.params[k][1](env) for k in self.family.params}

    def _apply(self, full: bool = True) -> None:
        """Set the parameters on the simulator and read each one set back (``RuntimeError`` on a mismatch).

        With ``full=False`` only the parameters whose value changed since they were last verified, and the
        adapter's volatile ones, are set and read back (the others are as verified: nothing else writes
        them). The first apply, a seeded reset and :meth:`restore_state` are full.
        """
        env = self.env.unwrapped
        if self.adapter.prepare is not None:
            self.adapter.prepare(env)
        if full:
            self._verified = {}
        todo = {k: v for k, v in self._values.items()
                if k in self.adapter.volatile or self._verified.get(k) != v}
        for key, value in todo.items():
            self.adapter.params[key][0](env, value)
        for key, value in todo.items():
            got = self.adapter.params[key][1](env)
            if not math.isclose(got, value, rel_tol=1e-5, abs_tol=1e-7):
                self._verified = {}
                raise RuntimeError(
                    f"env family {self.family.name!r}: parameter {key!r} set to {value} but reads back {got}"
                )
        self._verified.update(todo)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        if not self.adapter.after_reset:
            self._apply(full=seed is not None)
        first_bullet = self.adapter.after_reset and not self._loaded
        with c_stdout_to_stderr() if first_bullet else contextlib.nullcontext():
            obs, info = self.env.reset(seed=seed, options=options)
        if self.adapter.after_reset:
            full = seed is not None or not self._loaded
            self._loaded = True
            self._apply(full=full)
        self.schedule_version = self._pending_version
        info["env_params"] = dict(self._values)
        self._report_schedule(info)
        self._episode_params = dict(self._values)
        return obs, info

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        if terminated or truncated:
            info["env_params"] = dict(getattr(self, "_episode_params", self._values))
            self._report_schedule(info)
        return obs, reward, terminated, truncated, info

    def snapshot_state(self) -> dict[str, Any]:
        """What this wrapper holds while running: the values in force, the values the simulator was last
        given (``applied``; ``None`` before the parameters were loaded), and the current episode's values.
        Values set with ``defer`` are the difference between ``values`` and ``applied``."""
        applied = None
        if self._loaded and self.adapter.snapshotable:
            applied = {k: self.adapter.params[k][1](self.env.unwrapped) for k in self.family.params}
        episode = getattr(self, "_episode_params", None)
        return {"values": dict(self._values), "applied": applied, "loaded": bool(self._loaded),
                "episode_params": dict(episode) if episode is not None else None,
                "schedule": [self.schedule_version, self._pending_version]}

    def restore_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`snapshot_state`: the simulator gets ``applied`` (verified), then ``values`` are
        set as pending (deferred to the next reset). For families that cannot be snapshot (PyBullet) only
        ``values`` are kept; they take effect at the next reset.

        Raises:
            ConfigError: unknown parameters or values outside the hard bounds.
            ValueError: a malformed state.
        """
        keys = {"values", "applied", "loaded", "episode_params", "schedule"}
        if not isinstance(state, dict) or set(state) != keys:
            raise ValueError(f"FamilyEnv state must have keys {', '.join(sorted(keys))}; got "
                             f"{sorted(state) if isinstance(state, dict) else type(state).__name__}")
        schedule = state["schedule"]
        if not (isinstance(schedule, list) and len(schedule) == 2
                and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in schedule)
                and schedule[0] <= schedule[1]):
            raise ValueError(f"schedule must be [applied version, received version], got {str(schedule)[:60]}")
        values = self.family.resolve_params(state["values"])
        episode = state["episode_params"]
        episode = self.family.resolve_params(episode) if episode is not None else None
        if state["applied"] is not None and self.adapter.snapshotable:
            self._values = self.family.resolve_params(state["applied"])
            self._apply()
            self._loaded = True
        self._values = values
        self.schedule_version, self._pending_version = schedule
        if episode is not None:
            self._episode_params = episode


def family_env(env: gym.Env) -> FamilyEnv:
    """The :class:`FamilyEnv` inside a wrapper stack (raises ``TypeError`` if there is none)."""
    current: Any = env
    while current is not None:
        if isinstance(current, FamilyEnv):
            return current
        current = getattr(current, "env", None)
    raise TypeError(f"{env} was not built by rltransfer.make_env (no FamilyEnv in its wrappers)")
