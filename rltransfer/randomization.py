"""Domain randomization: presets and held-out variants of an env family, and the wrappers that apply them.

A family file (``envs/<family>.yaml``) may end with two sections, validated by the models here:

* ``randomization:``: named *presets* (training only). A preset samples, at every reset, any of the
  family's parameters (``uniform``, ``loguniform``, truncated ``normal``, ``choice``), optionally one of
  the family's variants per episode, and sensor effects: per-step observation noise, a per-episode
  observation bias, action noise and a k-step action latency (fixed or sampled per episode).
* ``variants:``: named fixed systems (e.g. ``real``): parameter values plus sensor effects. A variant is
  part of the system, so its sensor wrappers stay on evaluation envs; a preset never does.

Every range and value is checked against the family's hard bounds at load (:func:`check_family`), with
errors naming the file and the key path.

The wrappers, one per transformation, innermost first::

    FamilyEnv -> PhysicsRandomizer -> ObservationNoise -> ActionNoise -> ActionLatency

(:func:`wrap_randomization` builds it: the variant's sensor wrappers, then the preset's, each group in
that order, so a preset's latency adds to a variant's.) Each draws from its own stream, one per
(seed, wrapper, worker, episode): ``np.random.default_rng(SeedSequence([seed, salt, worker_index,
episode_index]))``, where ``seed`` is the seed of the env's last seeded reset (SB3 seeds worker ``i`` with
``run_seed + i``; the construction seed before that) and ``episode_index`` counts resets since then. The
same run seed therefore gives the same values per worker; workers never share a stream; and an
evaluation reseeded with the same seed sees the same noise. Each wrapper reports what it drew in
``info["dr"]`` at reset and in the ``info`` of the episode's last step.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Protocol, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from rltransfer.errors import ConfigError, IncompatibleSpacesError, ParameterBoundsError, unknown_name


class _Family(Protocol):
    """What this module reads of an env family (:class:`rltransfer.config.EnvFamily` is one; a protocol
    because config imports this module)."""

    name: str
    params: Mapping[str, Any]
    randomization: Mapping[str, Preset]
    variants: Mapping[str, Variant]

    @property
    def source(self) -> str: ...

__all__ = [
    "RANDOMIZATION_WRAPPERS",
    "ActionLatency",
    "ActionNoise",
    "Latency",
    "Noise",
    "ObservationNoise",
    "ParamDist",
    "PhysicsRandomizer",
    "Preset",
    "Sensors",
    "Variant",
    "VariantChoice",
    "check_family",
    "get_preset",
    "get_variant",
    "preset_ranges",
    "sample_param",
    "variant_inside",
    "wrap_randomization",
]

#: Longest action latency (steps), longest per-feature noise list, largest magnitude of a value.
MAX_LATENCY = 100
MAX_FEATURES = 65536
_MAGNITUDE = 1e9
#: Smallest share of a normal's mass inside its truncation window ``[low, high]``.
MIN_TRUNCATED_MASS = 1e-3


def _no_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("expected a number, not true/false")  # noqa: TRY004 (pydantic needs ValueError)
    return value


_Num = Annotated[float, BeforeValidator(_no_bool), Field(ge=-_MAGNITUDE, le=_MAGNITUDE)]
_NonNeg = Annotated[float, BeforeValidator(_no_bool), Field(ge=0, le=_MAGNITUDE)]
_Steps = Annotated[int, BeforeValidator(_no_bool), Field(ge=0, le=MAX_LATENCY)]
_VariantName = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]


class _Strict(BaseModel):
    """As :class:`rltransfer.config.Strict` (not imported: config imports this module)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False, frozen=True)


def _phi(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


class ParamDist(_Strict):
    """How one parameter is drawn at each reset.

    ``uniform``/``loguniform``: ``low``, ``high`` (loguniform: ``low > 0``). ``normal``: ``mean``, ``std``
    truncated to ``[low, high]`` (both required). ``choice``: one of ``values``, equally likely.
    """

    dist: Literal["uniform", "loguniform", "normal", "choice"]
    low: _Num | None = None
    high: _Num | None = None
    mean: _Num | None = None
    std: Annotated[float, BeforeValidator(_no_bool), Field(gt=0, le=_MAGNITUDE)] | None = None
    values: list[_Num] | None = Field(default=None, max_length=10_000)

    @model_validator(mode="after")
    def _fields(self) -> ParamDist:
        needed = {"uniform": ("low", "high"), "loguniform": ("low", "high"), "normal": ("mean", "std", "low", "high"),
                  "choice": ("values",)}[self.dist]
        given = {k for k in ("low", "high", "mean", "std", "values") if getattr(self, k) is not None}
        missing = [k for k in needed if k not in given]
        extra = sorted(given - set(needed))
        if missing:
            raise ValueError(f"dist {self.dist!r} needs {', '.join(needed)}; missing {', '.join(missing)}")
        if extra:
            raise ValueError(f"dist {self.dist!r} takes {', '.join(needed)}, not {', '.join(extra)}")
        if self.dist == "choice":
            if not self.values:
                raise ValueError("choice needs at least one value (values is empty)")
            return self
        if self.low is None or self.high is None:  # the check above makes this unreachable
            raise ValueError(f"dist {self.dist!r} needs low and high")
        if self.low > self.high:
            raise ValueError(f"need low <= high, got low={self.low:g}, high={self.high:g}")
        if self.dist == "loguniform" and self.low <= 0:
            raise ValueError(f"loguniform needs low > 0, got low={self.low:g}")
        if self.dist == "normal":
            if self.mean is None or self.std is None:  # the check above makes this unreachable
                raise ValueError("dist 'normal' needs mean and std")
            mass = _phi((self.high - self.mean) / self.std) - _phi((self.low - self.mean) / self.std)
            if mass < MIN_TRUNCATED_MASS:
                raise ValueError(
                    f"the window [{self.low:g}, {self.high:g}] holds {mass:.2g} of the mass of "
                    f"normal(mean={self.mean:g}, std={self.std:g}); move the mean inside or widen the window"
                )
        return self

    @property
    def support(self) -> tuple[float, float]:
        """The smallest and largest value this distribution can give."""
        if self.dist == "choice":
            if not self.values:
                raise ValueError("choice needs at least one value (values is empty)")
            return float(min(self.values)), float(max(self.values))
        return float(self.low), float(self.high)  # type: ignore[arg-type]


class Noise(_Strict):
    """Gaussian noise of standard deviation ``std``: one number, or one per feature."""

    std: _NonNeg | Annotated[list[_NonNeg], Field(min_length=1, max_length=MAX_FEATURES)]

    def array(self, shape: tuple[int, ...], where: str) -> np.ndarray:
        """``std`` broadcast to ``shape`` (a per-feature list must match the last dimension)."""
        std = np.asarray(self.std, dtype=np.float64)
        if std.ndim == 1 and (len(shape) != 1 or shape[0] != std.shape[0]):
            raise IncompatibleSpacesError(
                f"{where}: std has {std.shape[0]} entries, but the space has shape {shape}"
            )
        return np.broadcast_to(std, shape).copy()


class Latency(_Strict):
    """A k-step action delay: ``steps`` (fixed), or ``low``..``high`` (an integer drawn per episode)."""

    steps: _Steps | None = None
    low: _Steps | None = None
    high: _Steps | None = None

    @model_validator(mode="after")
    def _form(self) -> Latency:
        fixed = self.steps is not None
        ranged = self.low is not None or self.high is not None
        if fixed == ranged:
            raise ValueError("give either steps (a fixed delay) or low and high (drawn per episode)")
        if ranged:
            if self.low is None or self.high is None:
                raise ValueError("a sampled latency needs both low and high")
            if self.low > self.high:
                raise ValueError(f"need low <= high, got low={self.low}, high={self.high}")
        return self

    @property
    def support(self) -> tuple[int, int]:
        if self.steps is not None:
            return self.steps, self.steps
        return int(self.low), int(self.high)  # type: ignore[arg-type]


class VariantChoice(_Strict):
    """Pick one of the family's variants (by name, equally likely) at each reset: multi-task training."""

    choice: list[_VariantName] = Field(max_length=1000)

    @model_validator(mode="after")
    def _nonempty(self) -> VariantChoice:
        if not self.choice:
            raise ValueError("choice needs at least one variant name (it is empty)")
        return self


class Sensors(_Strict):
    """Sensor and actuator effects: per-step observation noise, per-episode observation bias (drawn at
    reset), action noise (Box actions, clipped to the bounds), and action latency."""

    obs_noise: Noise | None = None
    obs_bias: Noise | None = None
    action_noise: Noise | None = None
    latency: Latency | None = None

    def sensors(self) -> Sensors | None:
        """Only the sensor settings (``None`` when there are none)."""
        data = {k: getattr(self, k) for k in Sensors.model_fields}
        return Sensors(**data) if any(v is not None for v in data.values()) else None


class Preset(Sensors):
    """A domain-randomization preset (``randomization.<name>`` in a family file): training only."""

    description: str = Field(default="", max_length=1000)
    params: dict[str, ParamDist] = Field(default_factory=dict, max_length=1000)
    variants: VariantChoice | None = None


class Variant(Sensors):
    """A fixed, named system (``variants.<name>``): parameter values and its sensors (kept at evaluation)."""

    description: str = Field(default="", max_length=1000)
    params: dict[str, _Num] = Field(default_factory=dict, max_length=1000)


class PresetFile(Preset):
    """A preset in its own YAML file: one preset plus the family it is for."""

    family: str = Field(min_length=1, max_length=100)


# -------------------------------------------------------------------------------------------- checks


def _bounds(family: _Family, name: str, value: float, where: str) -> None:
    spec = family.params[name]
    if not spec.low <= value <= spec.high:
        raise ParameterBoundsError(f"{where} = {value:g} is outside the hard bounds [{spec.low}, {spec.high}]")


def _param_name(family: _Family, name: str, source: str, key: str) -> None:
    if name not in family.params:
        raise unknown_name("parameter", name, family.params, where=f"{source} ({key})")


def check_preset(family: _Family, preset: Preset, source: str, key: str) -> None:
    """Check a preset against ``family``: parameter and variant names, ranges within the hard bounds.

    Raises:
        UnknownNameError: a parameter or variant the family does not have (with suggestions).
        ParameterBoundsError: a range or value outside the parameter's hard bounds.
        ConfigError: a chosen variant sets a parameter the preset randomizes, or has sensor settings.
    """
    for name, dist in preset.params.items():
        _param_name(family, name, source, f"{key}.params")
        where = f"{source}: {key}.params.{name}"
        if dist.dist == "choice":
            for i, v in enumerate(dist.values or []):
                _bounds(family, name, v, f"{where}.values[{i}]")
        else:
            _bounds(family, name, float(dist.low), f"{where}.low")  # type: ignore[arg-type]
            _bounds(family, name, float(dist.high), f"{where}.high")  # type: ignore[arg-type]
    if preset.variants is not None:
        for i, vname in enumerate(preset.variants.choice):
            if vname not in family.variants:
                raise unknown_name("variant", vname, family.variants, where=f"{source} ({key}.variants.choice[{i}])")
            variant = family.variants[vname]
            both = sorted(set(variant.params) & set(preset.params))
            if both:
                raise ConfigError(
                    f"{source}: {key}.variants.choice[{i}]: variant {vname!r} sets {', '.join(both)}, which "
                    f"{key}.params also randomizes; randomize it in one place only"
                )
            if variant.sensors() is not None:
                raise ConfigError(
                    f"{source}: {key}.variants.choice[{i}]: variant {vname!r} has sensor settings; a preset "
                    "chooses among variants by their params only (put sensor effects in the preset itself)"
                )


def check_family(family: _Family) -> None:
    """Check every preset and variant of ``family`` against its parameters (called by ``load_family``)."""
    source = family.source or f"env family {family.name!r}"
    for vname, variant in family.variants.items():
        for name, value in variant.params.items():
            _param_name(family, name, source, f"variants.{vname}.params")
            _bounds(family, name, value, f"{source}: variants.{vname}.params.{name}")
    for pname, preset in family.randomization.items():
        check_preset(family, preset, source, f"randomization.{pname}")


def get_preset(family: _Family, name: str) -> Preset:
    """The shipped preset ``name`` of ``family`` (UnknownNameError with suggestions otherwise). A preset
    given by file is read by :func:`rltransfer.spec.resolve_preset`."""
    if name not in family.randomization:
        raise unknown_name("randomization preset", name, family.randomization,
                           where=f"env family {family.name!r} ({family.source}); or give a preset .yaml file")
    return family.randomization[name]


def get_variant(family: _Family, name: str) -> Variant:
    """The variant ``name`` of ``family`` (UnknownNameError with suggestions otherwise)."""
    if name not in family.variants:
        raise unknown_name("variant", name, family.variants, where=f"env family {family.name!r} ({family.source})")
    return family.variants[name]


def preset_ranges(preset: Preset) -> dict[str, tuple[float, float]]:
    """The support ``(min, max)`` of each parameter ``preset`` randomizes (``choice``: its extreme values)."""
    return {name: dist.support for name, dist in preset.params.items()}


def variant_inside(family: _Family, variant_name: str, preset_name: str | Preset) -> dict[str, bool]:
    """Per parameter of the variant: whether its value lies inside the preset's range (a parameter the
    preset does not randomize is inside only if it equals the nominal value the preset trains with).

    Args:
        family: the family model (:func:`rltransfer.config.load_family`).
        variant_name: one of ``family.variants``.
        preset_name: one of ``family.randomization``, or a :class:`Preset`.
    """
    variant = get_variant(family, variant_name)
    preset = preset_name if isinstance(preset_name, Preset) else get_preset(family, preset_name)
    ranges = preset_ranges(preset)
    out: dict[str, bool] = {}
    for name, value in variant.params.items():
        if name in ranges:
            lo, hi = ranges[name]
            out[name] = lo <= value <= hi
        else:
            out[name] = math.isclose(value, family.params[name].nominal)
    return out


def sample_param(dist: ParamDist, rng: np.random.Generator) -> float:
    """One draw of ``dist`` (truncated normal: rejection sampling, at least 0.1% of the mass is inside)."""
    if dist.dist == "choice":
        values = dist.values or []
        return float(values[int(rng.integers(len(values)))])
    low, high = float(dist.low), float(dist.high)  # type: ignore[arg-type]
    if dist.dist == "uniform":
        return float(rng.uniform(low, high)) if high > low else low
    if dist.dist == "loguniform":
        return float(math.exp(rng.uniform(math.log(low), math.log(high)))) if high > low else low
    mean, std = float(dist.mean), float(dist.std)  # type: ignore[arg-type]
    while True:
        draws = rng.normal(mean, std, size=256)
        inside = draws[(draws >= low) & (draws <= high)]
        if inside.size:
            return float(inside[0])


# ------------------------------------------------------------------------------------------ wrappers

#: Salts that give each wrapper its own stream.
_SALTS = {"physics": 1, "obs": 2, "action": 3, "latency": 4}


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _generator(state: Any) -> np.random.Generator:
    """A PCG64 generator (the wrappers' kind) in the saved ``state``."""
    if not isinstance(state, dict) or state.get("bit_generator") != "PCG64":
        raise ValueError(f"rng must be a PCG64 bit generator state, got {str(state)[:80]}")
    gen = np.random.Generator(np.random.PCG64())
    try:
        gen.bit_generator.state = state
    except (TypeError, KeyError) as exc:
        raise ValueError(f"rng: malformed PCG64 state ({exc})") from None
    return gen


def _float_array(value: Any, shape: tuple[int, ...], what: str) -> np.ndarray:
    array = np.asarray(value, dtype=np.float64) if isinstance(value, (list, np.ndarray)) else None
    if array is None or array.shape != shape or not np.all(np.isfinite(array)):
        raise ValueError(f"{what} must be finite numbers of shape {shape}, got {str(value)[:80]}")
    return array


class _Episodic(gym.Wrapper):
    """Base of the randomization wrappers: a fresh generator per (seed, salt, worker, episode)."""

    salt = 0

    def __init__(self, env: gym.Env, seed: int) -> None:
        super().__init__(env)
        from rltransfer.families import family_env

        self._seed = int(seed)
        self._worker = family_env(env).worker_index
        self._episode = -1
        self.rng = np.random.default_rng(0)

    def _new_episode(self, seed: int | None) -> np.random.Generator:
        if seed is not None:
            self._seed, self._episode = int(seed), -1
        self._episode += 1
        self.rng = np.random.default_rng(np.random.SeedSequence([self._seed, self.salt, self._worker, self._episode]))
        return self.rng

    @staticmethod
    def _report(info: dict[str, Any], values: Mapping[str, Any]) -> None:
        info["dr"] = {**info.get("dr", {}), **values}

    #: The keys of :meth:`snapshot_state` (subclasses add theirs).
    _STATE_KEYS: frozenset[str] = frozenset({"seed", "episode", "rng"})

    def snapshot_state(self) -> dict[str, Any]:
        """Seed, episode index and the episode generator's state (for checkpoints,
        :mod:`rltransfer.envsnapshot`)."""
        return {"seed": self._seed, "episode": self._episode, "rng": dict(self.rng.bit_generator.state)}

    def restore_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`snapshot_state` (input is untrusted: every value is checked before any is set).

        Raises:
            ValueError: a missing or unknown key, or a malformed value (the message names it).
        """
        if not isinstance(state, dict) or set(state) != self._STATE_KEYS:
            got = sorted(state) if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"{type(self).__name__} state must have keys {sorted(self._STATE_KEYS)}, got {got}")
        seed, episode = state["seed"], state["episode"]
        if not _is_int(seed) or not _is_int(episode) or episode < -1:
            raise ValueError(f"seed and episode must be integers (episode >= -1), got {seed!r:.40} and {episode!r:.40}")
        rng = _generator(state["rng"])
        self._restore_own(state)
        self._seed, self._episode, self.rng = int(seed), int(episode), rng

    def _restore_own(self, state: dict[str, Any]) -> None:
        """Check and set a subclass's own keys (raise ValueError before setting anything)."""


class PhysicsRandomizer(_Episodic):
    """At each reset, draw the episode's parameters (and variant) and set them on the FamilyEnv, deferred,
    before the inner reset: the episode starts in the sampled physics. Values are drawn per episode,
    never per step; ``info["dr"]`` holds ``params``, ``variant`` and ``episode``.

    Args:
        env: a stack with a :class:`~rltransfer.families.FamilyEnv` inside.
        params: parameter name -> distribution.
        variants: variant name -> variant params, one picked per episode (empty: none).
        seed: the stream seed until the first seeded reset.
    """

    salt = _SALTS["physics"]

    def __init__(self, env: gym.Env, params: Mapping[str, ParamDist], variants: Mapping[str, Mapping[str, float]]
                 | None = None, seed: int = 0) -> None:
        super().__init__(env, seed)
        from rltransfer.families import family_env

        self.family_env = family_env(env)
        self.preset_dists = dict(params)  # as the preset declares them (range schedules start from these)
        self.dists = dict(params)  # in force: the preset's, with the bounds a range schedule gave
        self.variants = {k: dict(v) for k, v in (variants or {}).items()}
        self.base = self.family_env.params
        self._draw: dict[str, Any] = {}
        self.ranges: dict[str, list[float]] = {}  # range-schedule bounds in force
        self.adr: dict[str, Any] | None = None  # {"ranges": {param: [low, high]}, "p_boundary": p} in force
        self._pending: dict[str, Any] | None = None  # received, taken at the next reset
        self._boundary: dict[str, Any] | None = None  # this episode's ADR boundary (reported at its end)

    # ------------------------------------------------------------------------------------- schedules

    def receive_schedule(self, version: int, params: dict[str, float] | None = None,
                         ranges: dict[str, Any] | None = None, adr: dict[str, Any] | None = None) -> None:
        """Take schedule ``version``, in force from the next reset (see :mod:`rltransfer.curricula`).

        Args:
            version: the schedule's version (positive, increasing); reported back in ``info["schedule"]``.
            params: fixed family parameters (passed on to the FamilyEnv).
            ranges: ``{param: [low, high]}``: new bounds for the preset's distribution of ``param`` (its
                kind and, for a truncated normal, its mean and std are kept); the other parameters keep
                theirs.
            adr: ``{"ranges": {param: [low, high]}, "p_boundary": p}``: ADR's ranges (replacing
                the preset's distributions of those parameters). At each reset, with probability ``p`` one
                ADR parameter, chosen uniformly, is fixed at one of its bounds, chosen uniformly
                (``info["adr"]`` at the episode's last step: ``param``, ``side``, ``value``, ``version``);
                every other ADR parameter is drawn uniformly from its range.

        Raises:
            ConfigError: an unknown parameter, a range outside the hard bounds or with ``low > high``, a
                range for a parameter the preset does not randomize (or drawn from a choice), a
                ``p_boundary`` outside [0, 1], or a version that is not newer (nothing is changed).
        """
        family = self.family_env.family
        dists = dict(self.dists)
        new_ranges = dict(self.ranges)
        for name, value in (ranges or {}).items():
            if name not in self.preset_dists:
                raise unknown_name("randomized parameter (a range schedule needs the preset to draw it)",
                                   name, self.preset_dists, where="schedule ranges")
            low, high = _range(family, name, value, f"schedule ranges.{name}")
            dists[name] = _with_bounds(self.preset_dists[name], low, high, f"schedule ranges.{name}")
            new_ranges[name] = [low, high]
        new_adr = self.adr
        if adr is not None:
            if not isinstance(adr, dict) or set(adr) != {"ranges", "p_boundary"}:
                raise ConfigError(f"schedule adr must be {{ranges, p_boundary}}, got {str(adr)[:80]}")
            p = adr["p_boundary"]
            if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
                raise ConfigError(f"schedule adr.p_boundary must be in [0, 1], got {p!r:.40}")
            if not isinstance(adr["ranges"], dict):
                raise ConfigError("schedule adr.ranges must map parameters to [low, high]")
            adr_ranges = {}
            for name, value in adr["ranges"].items():
                if name not in family.params:
                    raise unknown_name("parameter", name, family.params, where="schedule adr.ranges")
                adr_ranges[name] = list(_range(family, name, value, f"schedule adr.ranges.{name}"))
            new_adr = {"ranges": adr_ranges, "p_boundary": float(p)}
        self.family_env.receive_schedule(version, params=params)  # checks the version and the params
        self._pending = {"dists": dists, "ranges": new_ranges, "adr": new_adr}

    def _take_pending(self) -> None:
        if self._pending is not None:
            self.dists, self.ranges, self.adr = self._pending["dists"], self._pending["ranges"], self._pending["adr"]
            self._pending = None

    def _sample(self, rng: np.random.Generator) -> tuple[dict[str, float], dict[str, Any] | None]:
        """This episode's drawn parameters (preset, then ADR) and its ADR boundary (or ``None``)."""
        adr_ranges = self.adr["ranges"] if self.adr else {}
        sampled = {name: sample_param(dist, rng) for name, dist in self.dists.items() if name not in adr_ranges}
        boundary = None
        if adr_ranges:
            names = sorted(adr_ranges)
            if rng.random() < self.adr["p_boundary"]:  # type: ignore[index]
                name, side = names[int(rng.integers(len(names)))], int(rng.integers(2))
                boundary = {"param": name, "side": ("low", "high")[side], "value": float(adr_ranges[name][side])}
            for name in names:
                low, high = adr_ranges[name]
                if boundary is not None and boundary["param"] == name:
                    sampled[name] = boundary["value"]
                else:
                    sampled[name] = float(rng.uniform(low, high)) if high > low else float(low)
        return sampled, boundary

    # ----------------------------------------------------------------------------------- env methods

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        rng = self._new_episode(seed)
        self._take_pending()
        values: dict[str, float] = {}
        variant = None
        if self.variants:
            names = list(self.variants)
            variant = names[int(rng.integers(len(names)))]
            touched = {k for v in self.variants.values() for k in v}
            values.update({k: self.base[k] for k in touched})
            values.update(self.variants[variant])
        sampled, boundary = self._sample(rng)
        values.update(sampled)
        self.family_env.set_params(values, defer=True)
        self._draw = {"params": sampled, "variant": variant, "episode": self._episode}
        obs, info = self.env.reset(seed=seed, options=options)
        self._boundary = None if boundary is None else {**boundary, "version": self.family_env.schedule_version}
        self._report(info, self._draw)
        return obs, info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        if terminated or truncated:
            self._report(info, self._draw)
            if self._boundary is not None:
                info["adr"] = dict(self._boundary)
        return obs, reward, terminated, truncated, info

    _STATE_KEYS = _Episodic._STATE_KEYS | {"draw", "schedule"}

    def snapshot_state(self) -> dict[str, Any]:
        """As :meth:`_Episodic.snapshot_state`, plus the episode's draw (reported at its last step) and the
        schedule state (range bounds and ADR in force, what is pending, the episode's ADR boundary); the
        drawn values themselves live in the FamilyEnv's (pending) parameters, snapshot there."""
        draw = {"params": dict(self._draw.get("params", {})), "variant": self._draw.get("variant"),
                "episode": self._draw.get("episode")} if self._draw else {}
        pending = None if self._pending is None else {"ranges": self._pending["ranges"], "adr": self._pending["adr"]}
        schedule = {"ranges": self.ranges, "adr": self.adr, "pending": pending, "boundary": self._boundary}
        return {**super().snapshot_state(), "draw": draw, "schedule": _json_copy(schedule)}

    def _restore_schedule(self, state: Any) -> dict[str, Any]:
        """Check a snapshot's ``schedule`` and return the values to set (nothing is set here)."""
        if not isinstance(state, dict) or set(state) != {"ranges", "adr", "pending", "boundary"}:
            raise ValueError(f"schedule must have keys adr, boundary, pending, ranges; got {str(state)[:80]}")
        family = self.family_env.family

        def parts(ranges: Any, adr: Any) -> tuple[dict[str, Any], dict[str, list[float]], dict[str, Any] | None]:
            if not isinstance(ranges, dict):
                raise ValueError("schedule ranges must be an object")
            dists, checked = dict(self.preset_dists), {}
            for name, value in ranges.items():
                if name not in self.preset_dists:
                    raise ValueError(f"schedule ranges: {name!r:.40} is not a randomized parameter")
                low, high = _range(family, name, value, f"schedule ranges.{name}")
                dists[name] = _with_bounds(self.preset_dists[name], low, high, f"schedule ranges.{name}")
                checked[name] = [low, high]
            if adr is not None:
                if not isinstance(adr, dict) or set(adr) != {"ranges", "p_boundary"} or not isinstance(adr["ranges"], dict):
                    raise ValueError(f"schedule adr must be {{ranges, p_boundary}}, got {str(adr)[:80]}")
                p = adr["p_boundary"]
                if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
                    raise ValueError(f"schedule adr.p_boundary must be in [0, 1], got {p!r:.40}")
                adr_ranges = {}
                for name, value in adr["ranges"].items():
                    if name not in family.params:
                        raise ValueError(f"schedule adr.ranges: {name!r:.40} is not a parameter of the family")
                    adr_ranges[name] = list(_range(family, name, value, f"schedule adr.ranges.{name}"))
                adr = {"ranges": adr_ranges, "p_boundary": float(p)}
            return dists, checked, adr

        dists, ranges, adr = parts(state["ranges"], state["adr"])
        pending = state["pending"]
        if pending is not None:
            if not isinstance(pending, dict) or set(pending) != {"ranges", "adr"}:
                raise ValueError("schedule pending must be null or {ranges, adr}")
            p_dists, p_ranges, p_adr = parts(pending["ranges"], pending["adr"])
            pending = {"dists": p_dists, "ranges": p_ranges, "adr": p_adr}
        boundary = state["boundary"]
        if boundary is not None:
            ok = (isinstance(boundary, dict) and set(boundary) == {"param", "side", "value", "version"}
                  and boundary["param"] in family.params and boundary["side"] in ("low", "high")
                  and isinstance(boundary["value"], (int, float)) and not isinstance(boundary["value"], bool)
                  and math.isfinite(boundary["value"]) and _is_int(boundary["version"]))
            if not ok:
                raise ValueError(f"schedule boundary must be null or {{param, side, value, version}}, got "
                                 f"{str(boundary)[:80]}")
        return {"dists": dists, "ranges": ranges, "adr": adr, "pending": pending, "boundary": boundary}

    def _restore_own(self, state: dict[str, Any]) -> None:
        schedule = self._restore_schedule(state["schedule"])
        draw = state["draw"]
        if not isinstance(draw, dict) or (draw and set(draw) != {"params", "variant", "episode"}):
            raise ValueError(f"draw must be {{}} or {{params, variant, episode}}, got {str(draw)[:80]}")
        if draw:
            params, variant, episode = draw["params"], draw["variant"], draw["episode"]
            if not isinstance(params, dict) or set(params) - set(self.dists):
                raise ValueError(f"draw.params must name randomized parameters {sorted(self.dists)}, "
                                 f"got {str(params)[:80]}")
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                       for v in params.values()):
                raise ValueError("draw.params values must be finite numbers")
            if variant is not None and variant not in self.variants:
                raise ValueError(f"draw.variant {variant!r:.40} is not one of {sorted(self.variants)}")
            if not _is_int(episode):
                raise ValueError(f"draw.episode must be an integer, got {episode!r:.40}")
            draw = {"params": {k: float(v) for k, v in params.items()}, "variant": variant, "episode": int(episode)}
        self._draw = draw
        self.dists, self.ranges, self.adr = schedule["dists"], schedule["ranges"], schedule["adr"]
        self._pending, self._boundary = schedule["pending"], schedule["boundary"]


def _box(space: gym.Space, what: str) -> spaces.Box:
    if not isinstance(space, spaces.Box):
        raise IncompatibleSpacesError(f"{what} needs a Box space, got {space}")
    return space


class ObservationNoise(_Episodic):
    """Per-step Gaussian noise (``noise``) plus a per-episode bias drawn at reset (``bias``), added to a Box
    observation (not clipped). ``info["dr"]["obs_bias"]`` holds the episode's bias (when there is one)."""

    salt = _SALTS["obs"]

    def __init__(self, env: gym.Env, noise: Noise | None = None, bias: Noise | None = None, seed: int = 0) -> None:
        super().__init__(env, seed)
        box = _box(env.observation_space, "ObservationNoise")
        self.std = noise.array(box.shape, "obs_noise") if noise else np.zeros(box.shape)
        self.bias_std = bias.array(box.shape, "obs_bias") if bias else np.zeros(box.shape)
        self.bias = np.zeros(box.shape)
        self._report_bias = bias is not None
        self._dtype = box.dtype

    def _noisy(self, obs: Any) -> np.ndarray:
        noise = self.rng.standard_normal(self.std.shape) * self.std  # the same draws as normal(0, 1)
        return (np.asarray(obs, dtype=np.float64) + self.bias + noise).astype(self._dtype)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        rng = self._new_episode(seed)
        self.bias = rng.normal(0.0, 1.0, size=self.bias_std.shape) * self.bias_std
        obs, info = self.env.reset(seed=seed, options=options)
        if self._report_bias:
            self._report(info, {"obs_bias": self.bias.tolist()})
        return self._noisy(obs), info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        if (terminated or truncated) and self._report_bias:
            self._report(info, {"obs_bias": self.bias.tolist()})
        return self._noisy(obs), reward, terminated, truncated, info

    _STATE_KEYS = _Episodic._STATE_KEYS | {"bias"}

    def snapshot_state(self) -> dict[str, Any]:
        """As :meth:`_Episodic.snapshot_state`, plus the episode's bias."""
        return {**super().snapshot_state(), "bias": self.bias.tolist()}

    def _restore_own(self, state: dict[str, Any]) -> None:
        self.bias = _float_array(state["bias"], self.bias_std.shape, "bias")


class ActionNoise(_Episodic):
    """Gaussian noise added to each Box action, then clipped to the action bounds."""

    salt = _SALTS["action"]

    def __init__(self, env: gym.Env, noise: Noise, seed: int = 0) -> None:
        super().__init__(env, seed)
        self.box = _box(env.action_space, "ActionNoise")
        self.std = noise.array(self.box.shape, "action_noise")

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        self._new_episode(seed)
        return self.env.reset(seed=seed, options=options)

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        noisy = np.asarray(action, dtype=np.float64) + self.rng.standard_normal(self.std.shape) * self.std
        return self.env.step(noisy.clip(self.box.low, self.box.high).astype(self.box.dtype))


class ActionLatency(_Episodic):
    """A k-step action delay: at step t the env receives the action given at step t - k.

    At reset the queue is filled with a neutral action: zeros (clipped into the bounds) for a Box action
    space; for any other space, the episode's first action (so the first k steps repeat it). ``k`` is
    fixed or drawn per episode; ``info["dr"]["latency"]`` holds it.
    """

    salt = _SALTS["latency"]

    def __init__(self, env: gym.Env, latency: Latency, seed: int = 0) -> None:
        super().__init__(env, seed)
        self.latency = latency
        self.k = latency.support[0]
        self.queue: deque[Any] = deque()
        space = env.action_space
        self._neutral = (np.clip(np.zeros(space.shape), space.low, space.high).astype(space.dtype)
                         if isinstance(space, spaces.Box) else None)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        rng = self._new_episode(seed)
        lo, hi = self.latency.support
        self.k = int(rng.integers(lo, hi + 1)) if hi > lo else lo
        self.queue = deque([self._neutral.copy() for _ in range(self.k)] if self._neutral is not None else [])
        obs, info = self.env.reset(seed=seed, options=options)
        self._report(info, {"latency": self.k})
        return obs, info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        if self.k == 0:
            delayed = action
        else:
            if not self.queue and self._neutral is None:
                self.queue.extend(action for _ in range(self.k))
            self.queue.append(action)
            delayed = self.queue.popleft()
        obs, reward, terminated, truncated, info = self.env.step(delayed)
        if terminated or truncated:
            self._report(info, {"latency": self.k})
        return obs, reward, terminated, truncated, info

    _STATE_KEYS = _Episodic._STATE_KEYS | {"k", "queue"}

    def snapshot_state(self) -> dict[str, Any]:
        """As :meth:`_Episodic.snapshot_state`, plus the episode's ``k`` and the queued actions (numpy
        values keep their dtype through the checkpoint's JSON encoding)."""
        return {**super().snapshot_state(), "k": self.k, "queue": list(self.queue)}

    def _restore_own(self, state: dict[str, Any]) -> None:
        k, queue = state["k"], state["queue"]
        lo, hi = self.latency.support
        if not _is_int(k) or not lo <= k <= hi:
            raise ValueError(f"k must be an integer in [{lo}, {hi}], got {k!r:.40}")
        if not isinstance(queue, list) or len(queue) not in ((0, k) if self._neutral is None else (k,)):
            raise ValueError(f"queue must hold {k} actions, got {str(queue)[:80]}")
        space = self.env.action_space
        for i, action in enumerate(queue):
            if not isinstance(action, (int, float, np.ndarray, np.generic)) or isinstance(action, bool) \
                    or np.shape(action) != space.shape:
                raise ValueError(f"queue[{i}] = {str(action)[:40]} does not fit the action space {space}")
        self.k, self.queue = int(k), deque(queue)


def _range(family: _Family, name: str, value: Any, where: str) -> tuple[float, float]:
    """``value`` as a checked ``(low, high)`` of parameter ``name`` (inside the hard bounds, low <= high)."""
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)):
        raise ConfigError(f"{where} must be [low, high] (two finite numbers), got {str(value)[:60]}")
    low, high = float(value[0]), float(value[1])
    if low > high:
        raise ConfigError(f"{where}: need low <= high, got [{low:g}, {high:g}]")
    _bounds(family, name, low, f"{where}[0]")
    _bounds(family, name, high, f"{where}[1]")
    return low, high


def _with_bounds(dist: ParamDist, low: float, high: float, where: str) -> ParamDist:
    """``dist`` with new ``low``/``high`` (kind kept; a truncated normal keeps its mean and std)."""
    if dist.dist == "choice":
        raise ConfigError(f"{where}: the preset draws this parameter from a choice, which has no range")
    try:
        return ParamDist.model_validate({**dist.model_dump(exclude_none=True), "low": low, "high": high})
    except ValidationError as exc:
        raise ConfigError(f"{where}: {exc.errors()[0]['msg']}") from None


def _json_copy(value: Any) -> Any:
    """A deep copy of nested dicts/lists of JSON scalars."""
    if isinstance(value, dict):
        return {k: _json_copy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_copy(v) for v in value]
    return value


#: The randomization wrapper classes (for tests and wrapper-chain checks).
RANDOMIZATION_WRAPPERS = (PhysicsRandomizer, ObservationNoise, ActionNoise, ActionLatency)


def _sensor_wrappers(env: gym.Env, sensors: Sensors | None, seed: int) -> gym.Env:
    if sensors is None:
        return env
    if sensors.obs_noise is not None or sensors.obs_bias is not None:
        env = ObservationNoise(env, sensors.obs_noise, sensors.obs_bias, seed)
    if sensors.action_noise is not None:
        env = ActionNoise(env, sensors.action_noise, seed)
    if sensors.latency is not None:
        env = ActionLatency(env, sensors.latency, seed)
    return env


def wrap_randomization(env: gym.Env, preset: Preset | None, sensors: Sensors | None,
                       variants: Mapping[str, Variant] | None = None, seed: int = 0,
                       schedulable: bool = False) -> gym.Env:
    """Wrap a family env (a stack with a FamilyEnv inside) in the documented order: the preset's
    :class:`PhysicsRandomizer`, the variant's sensor wrappers (``sensors``), then the preset's sensor
    wrappers. With neither a preset nor sensors, ``env`` is returned unchanged. ``schedulable``: add a
    PhysicsRandomizer even when the preset draws nothing (ADR or range schedules drive it)."""
    if schedulable or (preset is not None and (preset.params or preset.variants is not None)):
        chosen = {}
        if preset is not None and preset.variants is not None:
            chosen = {name: dict((variants or {})[name].params) for name in preset.variants.choice}
        env = PhysicsRandomizer(env, preset.params if preset is not None else {}, chosen, seed)
    env = _sensor_wrappers(env, sensors, seed)
    if preset is not None:
        env = _sensor_wrappers(env, preset.sensors(), seed)
    return env
