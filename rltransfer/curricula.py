"""Curricula: schedules over an env family's parameters that adapt to training, and the callback that runs them.

A curriculum (``curricula/<name>.yaml``) is one of two kinds:

* ``stages``: a list of stages, each a set of fixed parameter values (``params``) and/or bounds for the
  run's randomization preset (``ranges``), entered at once or over a ``ramp``, left through a gate
  (``until``: steps in the stage and/or the mean return of its last training episodes) and, optionally,
  left *backwards* when that mean falls below a floor (``until.fallback``).
* ``adr``: automatic domain randomization (Akkaya et al. 2019, "Solving Rubik's Cube with a Robot
  Hand"): a range per parameter, widened by ``delta`` at a bound where the policy does well and narrowed
  where it does badly, judged on *boundary episodes* (episodes run with that parameter at that bound).

The rule of ADR is :class:`ADRState` (pure, no envs). :class:`CurriculumCallback` drives either kind
across all vectorized training envs through ``env_method("receive_schedule", version, params=...,
ranges=..., adr=...)`` (see :meth:`rltransfer.families.FamilyEnv.receive_schedule`); every send carries a
new version, which each env applies at its next reset and reports in the terminal step's
``info["schedule"]``, so the callback knows which schedule each episode ran with, and notices envs that
lag. Evaluation keeps measuring the run's own target parameters.

Everything that depends on the family (parameter names and bounds, the preset, the return range) is
checked by :meth:`Curriculum.check_against`, which :func:`load_curriculum` and the callback call: errors
name the file, the key, the bad value and what is valid.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import AfterValidator, Field, ValidationError, model_validator
from stable_baselines3.common.callbacks import BaseCallback

from rltransfer import resources
from rltransfer.config import (
    MAX_MAGNITUDE, MAX_STEPS, Bounded, EnvFamily, Float, Int, Name, Strict, load_family, read_yaml, validate,
)
from rltransfer.errors import ConfigError, ParameterBoundsError, unknown_name
from rltransfer.randomization import ParamDist, Preset, get_preset

__all__ = [
    "ADRConfig",
    "ADRMove",
    "ADRParam",
    "ADRParamConfig",
    "ADRSettings",
    "ADRState",
    "Curriculum",
    "CurriculumCallback",
    "Fallback",
    "Gate",
    "Ramp",
    "Stage",
    "load_curriculum",
    "ramp_value",
]

#: The two bounds of a range, as ADR and the env side name them.
SIDES = ("low", "high")
#: Most entries kept in the stage history, the ADR move history and the lag records (oldest dropped).
MAX_HISTORY = 10_000
#: Most training episodes averaged by a gate or a fallback, and longest ADR queue.
MAX_WINDOW = 100_000
#: Most updates a ramp is delivered in.
MAX_RAMP_POINTS = 10_000
#: Version of the :meth:`CurriculumCallback.state_dict` layout.
STATE_FORMAT = 1


def _ordered(value: tuple[float, float]) -> tuple[float, float]:
    if value[0] > value[1]:
        raise ValueError(f"need low <= high, got [{value[0]:g}, {value[1]:g}]")
    return value


#: ``[low, high]`` with ``low <= high`` (finite, bounded).
Range = Annotated[tuple[Bounded, Bounded], AfterValidator(_ordered)]
#: A positive step (ADR's delta).
Delta = Annotated[Float, Field(gt=0, le=MAX_MAGNITUDE)]


# ------------------------------------------------------------------------------------------------ schema


class Ramp(Strict):
    """Move into a stage's values gradually: over ``steps`` env steps after entering the stage, its
    ``params`` and ``ranges`` go from the previous stage's values to its own, in ``points`` equal sub-spans
    (update ``k`` at ``ceil(k * steps / points)`` steps into the stage gives fraction ``k / points``; the
    last one gives the stage's values exactly). ``linear`` interpolates the values, ``geometric`` their
    logarithms (values of one sign, none zero: for scales and masses, where x0.5 -> x1 -> x2 are equal
    steps)."""

    steps: Int = Field(ge=1, le=MAX_STEPS)
    kind: Literal["linear", "geometric"] = "linear"
    points: Int = Field(default=20, ge=1, le=MAX_RAMP_POINTS, description="updates the ramp is delivered in")

    @property
    def updates(self) -> int:
        """Updates actually sent (never more than one per step)."""
        return min(self.points, self.steps)


class Fallback(Strict):
    """Go back to the previous stage when the mean return of the last ``window`` training episodes of this
    stage (default: the gate's window) is below ``below``, once the gate's ``min_steps`` have passed."""

    below: Bounded
    window: Int | None = Field(default=None, ge=1, le=MAX_WINDOW, description="default: the gate's window")


class Gate(Strict):
    """When a stage ends: after ``steps`` env steps in it, or once the mean return of its last ``window``
    training episodes reaches ``mean_return`` (after at least ``min_steps``, and never before the stage's
    ramp is complete); with both, whichever comes first. Steps and episodes count from the stage's entry,
    and only episodes that ran with a schedule sent since then count. ``fallback``: when to go back.

    Thresholds are in the family's return units (its ``return_range``), per curriculum."""

    steps: Int | None = Field(default=None, ge=1, le=MAX_STEPS)
    mean_return: Bounded | None = None
    window: Int = Field(default=20, ge=1, le=MAX_WINDOW, description="training episodes averaged")
    min_steps: Int = Field(default=0, ge=0, le=MAX_STEPS)
    fallback: Fallback | None = None

    @model_validator(mode="after")
    def _some_condition(self) -> Gate:
        if self.steps is None and self.mean_return is None and self.fallback is None:
            raise ValueError("a gate needs 'steps' and/or 'mean_return' (or, on the last stage, a 'fallback')")
        if self.steps is not None and self.min_steps > self.steps:
            raise ValueError(f"min_steps {self.min_steps} > steps {self.steps}: the gate opens on steps before "
                             "min_steps are reached; lower min_steps or raise steps")
        if (self.fallback is not None and self.mean_return is not None
                and not self.fallback.below < self.mean_return):
            raise ValueError(f"fallback.below {self.fallback.below:g} must be below mean_return {self.mean_return:g} "
                             "(else a stage could be left both ways at once)")
        return self

    @property
    def advances(self) -> bool:
        """Whether this gate can move to the next stage (not a fallback-only gate)."""
        return self.steps is not None or self.mean_return is not None


class Stage(Strict):
    """One stage: fixed family parameters (``params``, the same names in every stage) and bounds of the
    curriculum's preset's distributions (``ranges``, ``{param: [low, high]}``; needs ``randomize``)."""

    params: dict[str, Bounded] = Field(default_factory=dict, max_length=1000)
    ranges: dict[str, Range] = Field(default_factory=dict, max_length=1000)
    ramp: Ramp | None = Field(default=None, description="move into this stage's values gradually")
    until: Gate | None = Field(default=None, description="omit on the last stage (or give only a fallback)")

    @model_validator(mode="after")
    def _ramp_fits(self) -> Stage:
        if self.ramp is not None and self.until is not None and self.until.steps is not None \
                and self.until.steps < self.ramp.steps:
            raise ValueError(f"until.steps {self.until.steps} < ramp.steps {self.ramp.steps}: the stage would end "
                             "mid-ramp; make until.steps at least the ramp's steps")
        return self


class ADRParam(Strict):
    """One ADR parameter: its range starts at ``initial`` (default ``[nominal, nominal]``), each move shifts
    one bound by ``delta`` (default: ``adr.delta``), and the range never leaves ``bounds`` (default: the
    family's hard bounds) nor shrinks inside ``initial``."""

    initial: Range | None = None
    delta: Delta | None = None
    bounds: Range | None = None

    @model_validator(mode="after")
    def _initial_inside(self) -> ADRParam:
        if self.initial is not None and self.bounds is not None and not (
                self.bounds[0] <= self.initial[0] and self.initial[1] <= self.bounds[1]):
            raise ValueError(f"initial [{self.initial[0]:g}, {self.initial[1]:g}] is outside bounds "
                             f"[{self.bounds[0]:g}, {self.bounds[1]:g}]")
        return self


class ADRSettings(Strict):
    """``adr:``: automatic domain randomization (Akkaya et al. 2019, section 5).

    At each reset an env runs, with probability ``p_boundary``, a *boundary episode*: one ADR parameter
    (chosen uniformly) at one of its bounds (chosen uniformly), the others drawn uniformly from their
    ranges. The returns of boundary episodes go to a queue per (parameter, bound); when a queue holds
    ``queue`` returns, their mean is compared with the thresholds: ``>= t_high`` moves that bound outward
    by the parameter's ``delta``, ``<= t_low`` inward, and the queue is emptied either way.

    Defaults and where they come from: the paper uses ``p_boundary`` 0.5, queues of 240 episodes, a step
    of 0.02 and thresholds on a success count; IsaacGymEnvs' ADR (DextrEme) uses queues of 256 and gives
    40% of its envs to boundary evaluation; smaller implementations use queues of 10 (TeachMyAgent's ADR
    teacher, with a boundary probability of 0.5) and steps of 0.1. The defaults here are ``p_boundary``
    0.5 and a queue of 10, for runs of 1e5-1e6 steps with a few envs. ``delta`` is absolute, in each
    parameter's units (give it per parameter when their scales differ). There is no default for the
    thresholds: they are per curriculum, in the family's return units (its ``return_range``).
    """

    p_boundary: Float = Field(default=0.5, ge=0, le=1, description="share of boundary episodes")
    queue: Int = Field(default=10, ge=1, le=MAX_WINDOW, description="boundary episodes per decision")
    t_low: Bounded = Field(description="mean return at or below which a bound moves inward")
    t_high: Bounded = Field(description="mean return at or above which a bound moves outward")
    delta: Delta | None = Field(default=None, description="default step of every parameter")
    params: dict[str, ADRParam] = Field(
        default_factory=dict, max_length=1000, description="empty (default): the preset's parameters")

    @model_validator(mode="after")
    def _thresholds(self) -> ADRSettings:
        if not self.t_low < self.t_high:
            raise ValueError(f"need t_low < t_high, got t_low={self.t_low:g}, t_high={self.t_high:g}")
        return self


class Curriculum(Strict):
    """``curricula/<name>.yaml``: ``stages`` or ``adr`` (exactly one), optionally the randomization
    preset of the family the run uses (``randomize``; needed by ``ranges``, and by ADR over the preset's
    parameters and sensors)."""

    name: Name
    family: Name
    description: str = Field(default="", max_length=10_000)
    randomize: Name | None = Field(default=None, description="the family's randomization preset")
    stages: list[Stage] = Field(default_factory=list, max_length=1000, description="empty for ADR")
    adr: ADRSettings | None = None
    source: str = Field(default="", exclude=True)

    @model_validator(mode="after")
    def _one_kind(self) -> Curriculum:
        if bool(self.stages) == (self.adr is not None):
            raise ValueError("a curriculum has either 'stages' (at least one) or 'adr' (exactly one of them)")
        return self

    @property
    def kind(self) -> Literal["stages", "adr"]:
        return "adr" if self.adr is not None else "stages"

    @property
    def where(self) -> str:
        return self.source or f"curriculum {self.name!r}"

    # --------------------------------------------------------------------------------------- checks

    def check_against(self, family: EnvFamily) -> None:
        """Check the curriculum against the run's family: the family itself, parameter names and hard
        bounds, the preset, thresholds within the family's return range, ramps and fallbacks.

        Raises:
            ConfigError: (UnknownNameError with suggestions, ParameterBoundsError) naming the file and key.
        """
        src = self.where
        if family.name != self.family:
            raise ConfigError(f"{src}: family: curriculum {self.name!r} is for family {self.family!r}, "
                              f"not {family.name!r}")
        preset = self.preset(family)
        if self.adr is None:
            self._check_stages(family, preset)
        else:
            self.adr_config(family)

    def preset(self, family: EnvFamily) -> Preset | None:
        """The preset named by ``randomize`` (``None`` without one)."""
        if self.randomize is None:
            return None
        try:
            return get_preset(family, self.randomize)
        except ConfigError as exc:
            raise type(exc)(f"{self.where}: randomize: {exc}") from None

    def _check_return(self, family: EnvFamily, value: float | None, key: str, side: str = "high") -> None:
        return_range = getattr(family, "return_range", None)
        if value is None or return_range is None:
            return
        low, high = float(return_range[0]), float(return_range[1])
        if side == "high" and value > high:
            raise ConfigError(f"{self.where}: {key}: {value:g} is above the highest return of family "
                              f"{family.name!r} ({high:g}, its return_range [{low:g}, {high:g}])")
        if side == "low" and value < low:
            raise ConfigError(f"{self.where}: {key}: {value:g} is below the lowest return of family "
                              f"{family.name!r} ({low:g}, its return_range [{low:g}, {high:g}])")

    def _check_stages(self, family: EnvFamily, preset: Preset | None) -> None:
        src, stages = self.where, self.stages
        names = sorted(stages[0].params)
        for i, stage in enumerate(stages):
            key = f"stages.{i}"
            try:
                family.resolve_params(stage.params)
            except ConfigError as exc:
                raise type(exc)(f"{src}: {key}.params: {exc}") from None
            if sorted(stage.params) != names:
                raise ConfigError(
                    f"{src}: {key}.params: sets {', '.join(sorted(stage.params)) or '(none)'} but stages.0.params "
                    f"sets {', '.join(names) or '(none)'}; every stage sets the same parameters (a ramp starts "
                    "from, and a fallback returns to, the previous stage's values)")
            last = i == len(stages) - 1
            if not last and (stage.until is None or not stage.until.advances):
                raise ConfigError(f"{src}: {key}: every stage but the last needs an 'until' gate with steps "
                                  "and/or mean_return")
            if last and stage.until is not None and stage.until.advances:
                raise ConfigError(f"{src}: {key}.until: the last stage has no next stage to open a gate to; "
                                  "give it no 'until', or only a fallback")
            if i == 0 and stage.ramp is not None:
                raise ConfigError(f"{src}: stages.0.ramp: the first stage cannot have a ramp (there are no "
                                  "previous values to start from)")
            if stage.until is not None:
                gate = stage.until
                if i == 0 and gate.fallback is not None:
                    raise ConfigError(f"{src}: stages.0.until.fallback: the first stage has no previous stage "
                                      "to fall back to")
                self._check_return(family, gate.mean_return, f"{key}.until.mean_return")
                if gate.fallback is not None:
                    self._check_return(family, gate.fallback.below, f"{key}.until.fallback.below")
            if preset is not None:
                clash = sorted(set(stage.params) & set(preset.params))
                if clash:
                    raise ConfigError(
                        f"{src}: {key}.params: {', '.join(clash)} also drawn by preset {self.randomize!r} at every "
                        f"reset, which would override the stage's values; schedule the preset's bounds instead "
                        f"({key}.ranges)")
            for name, value in stage.ranges.items():
                self._check_range(family, preset, name, value, f"{key}.ranges")
        for i, stage in enumerate(stages):
            key = f"stages.{i}"
            if stage.ramp is not None and stage.ramp.kind == "geometric":
                previous = stages[i - 1]
                pairs = [(name, previous.params[name], value) for name, value in stage.params.items()]
                before, after = self.stage_ranges(i - 1, family), self.stage_ranges(i, family)
                for name in after:
                    pairs += [(f"{name} ({side})", before[name][j], after[name][j]) for j, side in enumerate(SIDES)]
                for name, start, end in pairs:
                    if start == 0 or end == 0 or (start > 0) != (end > 0):
                        raise ConfigError(
                            f"{src}: {key}.ramp: a geometric ramp interpolates logarithms and needs values of one "
                            f"sign, none zero; {name} goes from {start:g} to {end:g} (use kind: linear)")

    def _check_range(self, family: EnvFamily, preset: Preset | None, name: str, value: tuple[float, float],
                     key: str) -> None:
        src = self.where
        if preset is None:
            raise ConfigError(f"{src}: {key}: a range schedule moves the bounds of a randomization preset; name "
                              f"it with 'randomize: <preset>' (presets of {family.name!r}: "
                              f"{', '.join(sorted(family.randomization)) or '(none)'})")
        if name not in preset.params:
            err = unknown_name(f"parameter of preset {self.randomize!r}", name, preset.params)
            raise type(err)(f"{src}: {key}.{name}: {err} (a range schedule moves bounds the preset draws from)")
        spec = family.params[name]
        low, high = value
        if not (spec.low <= low and high <= spec.high):
            raise ParameterBoundsError(f"{src}: {key}.{name}: [{low:g}, {high:g}] is outside the hard bounds "
                                       f"[{spec.low:g}, {spec.high:g}] of {name!r}")
        dist = preset.params[name]
        if dist.dist == "choice":
            raise ConfigError(f"{src}: {key}.{name}: preset {self.randomize!r} draws {name!r} from a choice of "
                              "values, which has no bounds to schedule")
        try:
            ParamDist.model_validate({**dist.model_dump(exclude_none=True), "low": low, "high": high})
        except ValidationError as exc:
            msg = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
            raise ConfigError(f"{src}: {key}.{name}: with preset {self.randomize!r}'s {dist.dist} "
                              f"distribution: {msg}") from None

    def stage_ranges(self, index: int, family: EnvFamily) -> dict[str, tuple[float, float]]:
        """The bounds stage ``index`` gives each parameter any stage schedules a range for: its own, or the
        last earlier stage's, or the preset's (``{}`` without range schedules)."""
        stages = self.stages
        names = sorted({name for stage in stages for name in stage.ranges})
        if not names:
            return {}
        preset = self.preset(family)
        out = {name: preset.params[name].support for name in names if preset is not None and name in preset.params}
        for stage in stages[: index + 1]:
            out.update({name: (float(lo), float(hi)) for name, (lo, hi) in stage.ranges.items()})
        return out

    def adr_config(self, family: EnvFamily) -> ADRConfig:
        """The resolved ADR settings (defaults filled in from the family and the preset), checked.

        Raises:
            ConfigError: as :meth:`check_against`; also when this is not an ADR curriculum.
        """
        src, adr = self.where, self.adr
        if adr is None:
            raise ConfigError(f"{src}: not an ADR curriculum (it has stages)")
        preset = self.preset(family)
        self._check_return(family, adr.t_high, "adr.t_high")
        self._check_return(family, adr.t_low, "adr.t_low", side="low")
        if not adr.params:
            if preset is None or not preset.params:
                raise ConfigError(f"{src}: adr.params: list the parameters ADR widens (or name a preset with "
                                  "'randomize' whose parameters it takes)")
            given: dict[str, ADRParam] = {name: ADRParam() for name in preset.params}
        else:
            given = dict(adr.params)
        params: dict[str, ADRParamConfig] = {}
        for name, param in given.items():
            key = f"adr.params.{name}"
            if name not in family.params:
                err = unknown_name("parameter", name, family.params, where=f"env family {family.name!r}")
                raise type(err)(f"{src}: {key}: {err}")
            if preset is not None and name not in preset.params:
                err = unknown_name(f"parameter of preset {self.randomize!r}", name, preset.params)
                raise type(err)(f"{src}: {key}: {err} (with 'randomize', ADR takes over parameters the preset "
                                "draws; drop 'randomize' to run ADR over any family parameter)")
            spec = family.params[name]
            bounds = param.bounds if param.bounds is not None else (spec.low, spec.high)
            if not (spec.low <= bounds[0] and bounds[1] <= spec.high):
                raise ParameterBoundsError(f"{src}: {key}.bounds: [{bounds[0]:g}, {bounds[1]:g}] is outside the "
                                           f"hard bounds [{spec.low:g}, {spec.high:g}] of {name!r}")
            initial = param.initial if param.initial is not None else (spec.nominal, spec.nominal)
            what = "" if param.initial is not None else " (default: the nominal value)"
            if not (bounds[0] <= initial[0] and initial[1] <= bounds[1]):
                raise ParameterBoundsError(f"{src}: {key}.initial: [{initial[0]:g}, {initial[1]:g}]{what} is "
                                           f"outside bounds [{bounds[0]:g}, {bounds[1]:g}]")
            delta = param.delta if param.delta is not None else adr.delta
            if delta is None:
                raise ConfigError(f"{src}: {key}.delta: no step for {name!r}; give {key}.delta or adr.delta "
                                  "(a positive number, in the parameter's units)")
            params[name] = ADRParamConfig((float(initial[0]), float(initial[1])), float(delta),
                                          (float(bounds[0]), float(bounds[1])))
        return ADRConfig(params, int(adr.queue), float(adr.t_low), float(adr.t_high), float(adr.p_boundary))


def load_curriculum(name_or_path: str | Path) -> Curriculum:
    """Load a curriculum by shipped name or YAML path, checked against its family
    (:meth:`Curriculum.check_against`)."""
    path = resources.find("curricula", name_or_path)
    curriculum: Curriculum = validate(Curriculum, read_yaml(path), str(path))
    curriculum.source = str(path)
    curriculum.check_against(load_family(curriculum.family))
    return curriculum


def ramp_value(start: float, end: float, fraction: float, kind: str = "linear") -> float:
    """The value a ramp from ``start`` to ``end`` has at ``fraction`` in [0, 1] (exactly ``start`` at 0 and
    ``end`` at 1). ``geometric`` interpolates logarithms (``start`` and ``end`` of one sign, none zero)."""
    if fraction <= 0:
        return float(start)
    if fraction >= 1:
        return float(end)
    if kind == "linear":
        return float(start + (end - start) * fraction)
    if kind != "geometric":
        raise ValueError(f"ramp kind must be 'linear' or 'geometric', got {kind!r:.40}")
    if start == 0 or end == 0 or (start > 0) != (end > 0):
        raise ValueError(f"a geometric ramp needs values of one sign, none zero; got {start:g} -> {end:g}")
    if start == end:
        return float(start)
    sign = 1.0 if start > 0 else -1.0
    a, b = math.log(abs(start)), math.log(abs(end))
    return sign * math.exp(a + (b - a) * fraction)


# --------------------------------------------------------------------------------------------------- ADR


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_)) \
        and math.isfinite(float(value))


def _count(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)) and value >= 0


def _tidy(value: float) -> float:
    """``value`` rounded to 12 significant digits: repeated ``+ delta`` gives 1.45, not 1.4500000000000002."""
    return float(f"{value:.12g}")


@dataclass(frozen=True)
class ADRParamConfig:
    """One resolved ADR parameter: ``initial`` range, step ``delta`` and ``bounds`` (hard limits)."""

    initial: tuple[float, float]
    delta: float
    bounds: tuple[float, float]

    def __post_init__(self) -> None:
        values = (*self.initial, self.delta, *self.bounds)
        if not all(_finite(v) for v in values):
            raise ValueError(f"ADR parameter: every value must be a finite number, got {values}")
        if self.delta <= 0:
            raise ValueError(f"ADR parameter: delta must be > 0, got {self.delta:g}")
        lo, hi = self.bounds
        if not (lo <= self.initial[0] <= self.initial[1] <= hi):
            raise ValueError(f"ADR parameter: need bounds[0] <= initial[0] <= initial[1] <= bounds[1], got "
                             f"initial {list(self.initial)}, bounds {list(self.bounds)}")


@dataclass(frozen=True)
class ADRConfig:
    """Resolved ADR settings (:class:`ADRSettings` with every default filled in)."""

    params: Mapping[str, ADRParamConfig]
    queue: int
    t_low: float
    t_high: float
    p_boundary: float = 0.5

    def __post_init__(self) -> None:
        if not self.params:
            raise ValueError("ADR needs at least one parameter")
        if not _count(self.queue) or self.queue < 1:
            raise ValueError(f"ADR queue must be an integer >= 1, got {self.queue!r:.40}")
        if not (_finite(self.t_low) and _finite(self.t_high) and self.t_low < self.t_high):
            raise ValueError(f"ADR needs finite t_low < t_high, got {self.t_low!r:.40}, {self.t_high!r:.40}")
        if not (_finite(self.p_boundary) and 0 <= self.p_boundary <= 1):
            raise ValueError(f"ADR p_boundary must be in [0, 1], got {self.p_boundary!r:.40}")


@dataclass(frozen=True)
class ADRMove:
    """A bound that moved: ``param``'s ``side`` bound from ``old`` to ``new``, on a queue mean of ``mean``."""

    param: str
    side: str
    old: float
    new: float
    mean: float

    @property
    def outward(self) -> bool:
        """Whether the range widened."""
        return self.new > self.old if self.side == "high" else self.new < self.old

    def to_dict(self) -> dict[str, Any]:
        return {"param": self.param, "side": self.side, "old": self.old, "new": self.new, "mean": self.mean,
                "direction": "out" if self.outward else "in"}


class ADRState:
    """The ADR rule (Akkaya et al. 2019, algorithm 1), over plain numbers.

    ``ranges[param] = [low, high]`` start at each parameter's initial range. A boundary episode's return
    goes to ``queues[(param, side)]`` (side ``"low"``/``"high"``) if the episode ran at that bound as it
    is now (else it is counted in ``stale`` and dropped: the bound moved while the episode ran). When a
    queue holds ``config.queue`` returns, their mean decides: ``>= t_high`` moves the bound outward by
    ``delta`` (``high + delta``, ``low - delta``), ``<= t_low`` inward; a bound never passes the hard
    ``bounds`` and never enters the initial range (``high >= initial high``, ``low <= initial low``).
    The queue is emptied after every decision on a full queue, whether the bound moved or not (as in the
    paper: each evaluation uses fresh episodes).

    Attributes:
        config: the resolved settings.
        ranges: ``{param: [low, high]}`` in force.
        queues: ``{(param, side): [returns]}``, each shorter than ``config.queue``.
        stale: boundary episodes dropped because their bound had moved.
        moves: bound moves so far.
    """

    def __init__(self, config: ADRConfig) -> None:
        self.config = config
        self.ranges: dict[str, list[float]] = {p: [c.initial[0], c.initial[1]] for p, c in config.params.items()}
        self.queues: dict[tuple[str, str], list[float]] = {(p, s): [] for p in config.params for s in SIDES}
        self.stale = 0
        self.moves = 0

    def _check_key(self, param: Any, side: Any) -> None:
        if param not in self.config.params:
            raise ValueError(f"ADR: unknown parameter {param!r:.60}; ADR parameters: {', '.join(self.config.params)}")
        if side not in SIDES:
            raise ValueError(f"ADR: side must be 'low' or 'high', got {side!r:.40}")

    def record(self, param: str, side: str, value: float, episode_return: float) -> ADRMove | None:
        """Take one boundary episode's return; the move it triggered, if any.

        Raises:
            ValueError: an unknown parameter or side, or a non-finite value or return.
        """
        self._check_key(param, side)
        if not (_finite(value) and _finite(episode_return)):
            raise ValueError(f"ADR: value and return must be finite numbers, got {value!r:.40} and "
                             f"{episode_return!r:.40}")
        index = SIDES.index(side)
        current = self.ranges[param][index]
        if not math.isclose(float(value), current, rel_tol=1e-12, abs_tol=1e-12):
            self.stale += 1
            return None
        queue = self.queues[(param, side)]
        queue.append(float(episode_return))
        if len(queue) < self.config.queue:
            return None
        mean = float(np.mean(queue))
        queue.clear()
        cfg = self.config.params[param]
        outward = -1.0 if side == "low" else 1.0  # the direction that widens the range at this bound
        if mean >= self.config.t_high:
            new = current + outward * cfg.delta
        elif mean <= self.config.t_low:
            new = current - outward * cfg.delta
        else:
            return None
        new = min(max(_tidy(new), cfg.bounds[0]), cfg.bounds[1])  # never past the hard bounds,
        new = min(new, cfg.initial[0]) if side == "low" else max(new, cfg.initial[1])  # nor into the initial range
        if new == current:
            return None
        self.ranges[param][index] = new
        self.moves += 1
        return ADRMove(param, side, current, new, mean)

    def entropy(self) -> float | None:
        """The paper's ADR entropy: the mean over parameters of ``log(high - low)`` (nats per dimension);
        ``None`` while any range has zero width."""
        widths = [high - low for low, high in self.ranges.values()]
        if any(w <= 0 for w in widths):
            return None
        return float(np.mean(np.log(widths)))

    def queue_lengths(self) -> dict[str, dict[str, int]]:
        return {p: {s: len(self.queues[(p, s)]) for s in SIDES} for p in self.config.params}

    def state_dict(self) -> dict[str, Any]:
        """``{"ranges": {param: [low, high]}, "queues": {param: {"low": [returns], "high": [returns]}},
        "stale": int, "moves": int}`` (JSON-able)."""
        return {"ranges": {p: list(r) for p, r in self.ranges.items()},
                "queues": {p: {s: list(self.queues[(p, s)]) for s in SIDES} for p in self.config.params},
                "stale": self.stale, "moves": self.moves}

    def load_state_dict(self, state: Any) -> None:
        """Restore :meth:`state_dict` (from a checkpoint: every value is checked before any is set).

        Raises:
            ValueError: missing or unknown keys or parameters, malformed values, a range outside its
                bounds or not containing its initial range, a queue as long as ``queue`` or longer.
        """
        if not isinstance(state, dict) or set(state) != {"ranges", "queues", "stale", "moves"}:
            got = sorted(state) if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"ADR state must have keys moves, queues, ranges, stale; got {str(got)[:120]}")
        params = self.config.params
        ranges, queues = state["ranges"], state["queues"]
        if not isinstance(ranges, dict) or set(ranges) != set(params):
            raise ValueError(f"ADR state: ranges must name exactly the ADR parameters {sorted(params)}, got "
                             f"{str(sorted(ranges) if isinstance(ranges, dict) else ranges)[:120]}")
        if not isinstance(queues, dict) or set(queues) != set(params):
            raise ValueError(f"ADR state: queues must name exactly the ADR parameters {sorted(params)}")
        new_ranges: dict[str, list[float]] = {}
        new_queues: dict[tuple[str, str], list[float]] = {}
        for name, cfg in params.items():
            value = ranges[name]
            if not isinstance(value, (list, tuple)) or len(value) != 2 or not all(_finite(v) for v in value):
                raise ValueError(f"ADR state: ranges.{name} must be [low, high], two finite numbers; "
                                 f"got {str(value)[:60]}")
            low, high = float(value[0]), float(value[1])
            if not (cfg.bounds[0] <= low <= cfg.initial[0] and cfg.initial[1] <= high <= cfg.bounds[1]):
                raise ValueError(f"ADR state: ranges.{name} = [{low:g}, {high:g}] must lie within bounds "
                                 f"{list(cfg.bounds)} and contain the initial range {list(cfg.initial)}")
            new_ranges[name] = [low, high]
            sides = queues[name]
            if not isinstance(sides, dict) or set(sides) != set(SIDES):
                raise ValueError(f"ADR state: queues.{name} must have keys low, high")
            for side in SIDES:
                returns = sides[side]
                if not isinstance(returns, list) or not all(_finite(r) for r in returns):
                    raise ValueError(f"ADR state: queues.{name}.{side} must be a list of finite numbers")
                if len(returns) >= self.config.queue:
                    raise ValueError(f"ADR state: queues.{name}.{side} holds {len(returns)} returns; a queue holds "
                                     f"fewer than {self.config.queue} (a full one is decided at once)")
                new_queues[(name, side)] = [float(r) for r in returns]
        if not _count(state["stale"]) or not _count(state["moves"]):
            raise ValueError(f"ADR state: stale and moves must be integers >= 0, got {state['stale']!r:.40}, "
                             f"{state['moves']!r:.40}")
        self.ranges, self.queues = new_ranges, new_queues
        self.stale, self.moves = int(state["stale"]), int(state["moves"])


# ---------------------------------------------------------------------------------------------- callback


def _version_of(info: Mapping[str, Any], where: str) -> int | None:
    """The schedule version an episode reported (``None`` when it reported none)."""
    schedule = info.get("schedule")
    if schedule is None:
        return None
    version = schedule.get("version") if isinstance(schedule, Mapping) else None
    if not _count(version):
        raise ValueError(f"{where}: info['schedule'] must be {{'version': int >= 0}}, got {str(schedule)[:80]}")
    return int(version)


def _trim(items: list[Any], limit: int = MAX_HISTORY) -> None:
    if len(items) > limit:
        del items[: len(items) - limit]


class CurriculumCallback(BaseCallback):
    """Runs a curriculum (stages or ADR) over the training envs; see the module docstring.

    Sends ``env_method("receive_schedule", version, params=..., ranges=..., adr=...)`` with a new version
    (1, 2, ...) at each change; reads ``info["episode"]``, ``info["schedule"]`` and ``info["adr"]`` at the
    terminal steps. Logs ``curriculum/stage``, ``curriculum/<param>`` (mid-ramp values included),
    ``curriculum/<param>_low|_high`` (range schedules), ``adr/<param>_low|_high``, ``adr/entropy``,
    ``adr/stale``, ``adr/moves``, ``schedule/version`` and ``schedule/lagging_envs``.

    Acknowledgement: an env that, after a send, finishes two episodes (the first may have started before
    the send) must report at least that version on the second; otherwise it lags: a warning (once per env
    and version) and a record in :attr:`lagging`.

    Args:
        curriculum: the curriculum; checked against its family.
        family: the run's family (default: ``load_family(curriculum.family)``, the shipped one of that name).
    """

    def __init__(self, curriculum: Curriculum, family: EnvFamily | None = None) -> None:
        super().__init__()
        self.curriculum = curriculum
        self.family = family if family is not None else load_family(curriculum.family)
        curriculum.check_against(self.family)
        self.preset = curriculum.preset(self.family)
        self.kind = curriculum.kind
        self.stages: list[Stage] = list(curriculum.stages)
        self.adr: ADRState | None = ADRState(curriculum.adr_config(self.family)) if self.kind == "adr" else None
        self._stage_ranges = [curriculum.stage_ranges(i, self.family) for i in range(len(self.stages))]
        windows = [1] + [w for s in self.stages if s.until is not None
                         for w in (s.until.window, s.until.fallback.window if s.until.fallback else None) if w]
        self._keep = max(windows)
        self.version = 0  # the last version sent
        self.stage = 0
        self.stage_start = 0
        self.stage_version = 0  # the version in force when the stage was entered
        self.ramp_point = 0  # ramp updates delivered in this stage
        self.episode_returns: list[float] = []  # this stage's training episodes (the last ``_keep``)
        self.history: list[tuple[int, int]] = []  # (step, stage) at each entry
        self.adr_moves: list[dict[str, Any]] = []  # ADRMove.to_dict() and the step of each move
        self.lagging: list[dict[str, int]] = []  # {"step", "env", "version"} of each lag found
        self.reported: list[int] = []  # per env: the version its last finished episode reported
        self.watches: list[list[list[int]]] = []  # per env: [[version, episodes finished since it was sent]]
        self.lag_version: list[int] = []  # per env: the version it failed to acknowledge (0: none)
        self._warned: set[tuple[int, int]] = set()

    # ---------------------------------------------------------------------------------- values

    def _ramp(self) -> Ramp | None:
        return self.stages[self.stage].ramp if self.stages else None

    def _fraction(self) -> float:
        ramp = self._ramp()
        return 1.0 if ramp is None else min(1.0, self.ramp_point / ramp.updates)

    def current_params(self) -> dict[str, float]:
        """The fixed parameter values in force now (mid-ramp values included; ``{}`` for ADR)."""
        if not self.stages:
            return {}
        stage, ramp, fraction = self.stages[self.stage], self._ramp(), self._fraction()
        if ramp is None or fraction >= 1:
            return {k: float(v) for k, v in stage.params.items()}
        previous = self.stages[self.stage - 1].params
        return {k: ramp_value(previous[k], v, fraction, ramp.kind) for k, v in stage.params.items()}

    def current_ranges(self) -> dict[str, list[float]]:
        """The preset bounds in force now for each parameter a stage schedules (``{}`` without ranges)."""
        if not self.stages or not self._stage_ranges[self.stage]:
            return {}
        target, ramp, fraction = self._stage_ranges[self.stage], self._ramp(), self._fraction()
        if ramp is None or fraction >= 1:
            return {k: [lo, hi] for k, (lo, hi) in target.items()}
        start = self._stage_ranges[self.stage - 1]
        return {k: [ramp_value(start[k][0], lo, fraction, ramp.kind),
                    ramp_value(start[k][1], hi, fraction, ramp.kind)] for k, (lo, hi) in target.items()}

    def _send(self) -> None:
        """Send what is in force now, as a new version, to every env."""
        self.version += 1
        if self.adr is not None:
            adr = {"ranges": {p: list(r) for p, r in self.adr.ranges.items()}, "p_boundary": self.adr.config.p_boundary}
            payload: dict[str, Any] = {"params": None, "ranges": None, "adr": adr}
        else:
            payload = {"params": self.current_params() or None, "ranges": self.current_ranges() or None, "adr": None}
        self.training_env.env_method("receive_schedule", self.version, **payload)
        for watches in self.watches:
            # a watch with no finished episode since its send resolves together with this one: keep the newer
            watches[:] = [w for w in watches if w[1] > 0] + [[self.version, 0]]

    # ---------------------------------------------------------------------------------- stages

    def _enter(self, index: int, fallback: bool = False) -> None:
        self.stage = index
        self.stage_start = self.num_timesteps
        self.episode_returns = []
        self.history.append((self.num_timesteps, index))
        _trim(self.history)
        ramp = self.stages[index].ramp
        if ramp is not None and not fallback:  # the values in force are the ramp's start: nothing to send yet
            self.ramp_point = 0
        else:  # a fallback returns to the stage's own values, without a ramp
            self.ramp_point = ramp.updates if ramp is not None else 0
            self._send()
        self.stage_version = self.version

    def _mean_of_last(self, window: int) -> float | None:
        if len(self.episode_returns) < window:
            return None
        return float(np.mean(self.episode_returns[-window:]))

    def _gate_open(self) -> bool:
        gate = self.stages[self.stage].until
        if gate is None or self.stage + 1 >= len(self.stages):
            return False
        in_stage = self.num_timesteps - self.stage_start
        if gate.steps is not None and in_stage >= gate.steps:
            return True
        if gate.mean_return is None or in_stage < gate.min_steps or self._fraction() < 1:
            return False
        mean = self._mean_of_last(gate.window)
        return mean is not None and mean >= gate.mean_return

    def _fallback_due(self) -> bool:
        gate = self.stages[self.stage].until
        if gate is None or gate.fallback is None or self.stage == 0:
            return False
        if self.num_timesteps - self.stage_start < gate.min_steps:
            return False
        mean = self._mean_of_last(gate.fallback.window or gate.window)
        return mean is not None and mean < gate.fallback.below

    def _advance_ramp(self) -> None:
        ramp = self._ramp()
        if ramp is None or self.ramp_point >= ramp.updates:
            return
        point = min(ramp.updates, (self.num_timesteps - self.stage_start) * ramp.updates // ramp.steps)
        if point > self.ramp_point:
            self.ramp_point = point
            self._send()

    # -------------------------------------------------------------------------------- episodes

    def _acknowledge(self, index: int, version: int | None) -> None:
        if index >= len(self.watches):
            raise ValueError(f"info of env {index}, but the training env has {len(self.watches)} envs")
        if version is not None:
            self.reported[index] = version
        watches = self.watches[index]
        for watch in watches:
            watch[1] += 1
        for sent, _ in [w for w in watches if w[1] >= 2]:
            if self.reported[index] < sent:
                self.lag_version[index] = max(self.lag_version[index], sent)
                self.lagging.append({"step": int(self.num_timesteps), "env": index, "version": sent})
                _trim(self.lagging)
                if (index, sent) not in self._warned:
                    self._warned.add((index, sent))
                    warnings.warn(
                        f"curriculum {self.curriculum.name!r}: env {index} finished two episodes after schedule "
                        f"version {sent} was sent but still reports version {self.reported[index]}; its schedule "
                        "lags (does its env stack have receive_schedule and report info['schedule']?)",
                        RuntimeWarning, stacklevel=2)
        watches[:] = [w for w in watches if w[1] < 2]
        if self.lag_version[index] and self.reported[index] >= self.lag_version[index]:
            self.lag_version[index] = 0

    def _adr_episode(self, info: Mapping[str, Any], episode_return: float) -> bool:
        boundary = info.get("adr")
        if boundary is None or self.adr is None:
            return False
        if not isinstance(boundary, Mapping) or not {"param", "side", "value"} <= set(boundary):
            raise ValueError(f"info['adr'] must be {{param, side, value, version}}, got {str(boundary)[:80]}")
        move = self.adr.record(boundary["param"], boundary["side"], boundary["value"], episode_return)
        if move is None:
            return False
        self.adr_moves.append({"step": int(self.num_timesteps), **move.to_dict()})
        _trim(self.adr_moves)
        return True

    def _on_step(self) -> bool:
        moved = False
        for index, info in enumerate(self.locals.get("infos", ())):
            episode = info.get("episode")
            if episode is None:
                continue
            version = _version_of(info, f"env {index}")
            self._acknowledge(index, version)
            episode_return = float(episode["r"])
            if self.adr is not None:
                moved = self._adr_episode(info, episode_return) or moved
            elif version is None or version >= self.stage_version:  # ran with this stage's schedule
                self.episode_returns.append(episode_return)
                _trim(self.episode_returns, self._keep)
        if self.adr is not None:
            if moved:
                self._send()
        else:
            self._advance_ramp()
            if self._gate_open():
                self._enter(self.stage + 1)
            elif self._fallback_due():
                self._enter(self.stage - 1, fallback=True)
        self._log()
        return True

    # ------------------------------------------------------------------------------- lifecycle

    def _init_callback(self) -> None:
        n = int(self.training_env.num_envs)
        if len(self.reported) != n:
            if self.reported:
                warnings.warn(f"curriculum {self.curriculum.name!r}: the saved acknowledgement state is for "
                              f"{len(self.reported)} envs, the training env has {n}; starting it afresh",
                              RuntimeWarning, stacklevel=2)
            self.reported, self.lag_version = [0] * n, [0] * n
            self.watches = [[] for _ in range(n)]

    def _on_training_start(self) -> None:
        if self.version == 0:  # a fresh start
            if self.adr is not None:
                self._send()
            else:
                self._enter(0)
        else:  # resumed (load_state_dict) or learn() again: re-send what is in force, under a new version
            self._send()  # (episodes of the versions since the stage's entry keep counting for its gate)
        self._log()

    def _log(self) -> None:
        record = self.logger.record
        record("schedule/version", self.version)
        record("schedule/lagging_envs", sum(1 for v in self.lag_version if v))
        if self.adr is not None:
            for name, (low, high) in self.adr.ranges.items():
                record(f"adr/{name}_low", low)
                record(f"adr/{name}_high", high)
            entropy = self.adr.entropy()
            if entropy is not None:
                record("adr/entropy", entropy)
            record("adr/stale", self.adr.stale)
            record("adr/moves", self.adr.moves)
            return
        record("curriculum/stage", self.stage)
        for name, value in self.current_params().items():
            record(f"curriculum/{name}", value)
        for name, (low, high) in self.current_ranges().items():
            record(f"curriculum/{name}_low", low)
            record(f"curriculum/{name}_high", high)

    # ---------------------------------------------------------------------------------- state

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs to continue exactly (JSON-able)::

            {"format": 1, "curriculum": name, "kind": "stages" | "adr", "version": int,
             "stage": int, "stage_start": int, "stage_version": int, "ramp_point": int,
             "episode_returns": [float], "history": [[step, stage]],
             "adr": ADRState.state_dict() | None, "adr_moves": [{step, param, side, old, new, mean, direction}],
             "ack": {"reported": [int], "watches": [[[version, episodes]]], "lag_version": [int],
                     "warned": [[env, version]]},
             "lagging": [{"step", "env", "version"}]}
        """
        return {
            "format": STATE_FORMAT, "curriculum": self.curriculum.name, "kind": self.kind, "version": self.version,
            "stage": self.stage, "stage_start": self.stage_start, "stage_version": self.stage_version,
            "ramp_point": self.ramp_point, "episode_returns": list(self.episode_returns),
            "history": [list(h) for h in self.history],
            "adr": self.adr.state_dict() if self.adr is not None else None,
            "adr_moves": [dict(m) for m in self.adr_moves],
            "ack": {"reported": list(self.reported), "watches": [[list(w) for w in ws] for ws in self.watches],
                    "lag_version": list(self.lag_version), "warned": sorted([e, v] for e, v in self._warned)},
            "lagging": [dict(x) for x in self.lagging],
        }

    _KEYS = frozenset({"format", "curriculum", "kind", "version", "stage", "stage_start", "stage_version",
                       "ramp_point", "episode_returns", "history", "adr", "adr_moves", "ack", "lagging"})
    _LEGACY_KEYS = frozenset({"stage", "stage_start", "episode_returns", "history"})

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (from a checkpoint file: every value is checked before any is set).
        The layout before schedules had versions (stage, stage_start, episode_returns, history) is read too.

        Raises:
            ValueError: a missing or unknown key, a state of another curriculum, or a malformed value.
        """
        if not isinstance(state, dict):
            raise ValueError(f"curriculum state must be a mapping, got {type(state).__name__}")  # noqa: TRY004
        if set(state) == self._LEGACY_KEYS:
            state = {**self.state_dict(), **state, "version": 1 if state.get("history") else 0,
                     "stage_version": 0, "ramp_point": self._full_ramp(state.get("stage"))}
            state["ack"] = {"reported": [], "watches": [], "lag_version": [], "warned": []}
        if set(state) != self._KEYS:
            raise ValueError(f"curriculum state must have keys {sorted(self._KEYS)}, got {str(sorted(state))[:200]}")
        if state["format"] != STATE_FORMAT:
            raise ValueError(f"curriculum state format {state['format']!r:.40} is not {STATE_FORMAT}")
        if state["curriculum"] != self.curriculum.name or state["kind"] != self.kind:
            raise ValueError(f"curriculum state is for {state['curriculum']!r:.60} ({state['kind']!r:.20}), not "
                             f"{self.curriculum.name!r} ({self.kind})")
        for key in ("version", "stage", "stage_start", "stage_version", "ramp_point"):
            if not _count(state[key]):
                raise ValueError(f"curriculum state: {key} must be an integer >= 0, got {state[key]!r:.40}")
        version, stage = int(state["version"]), int(state["stage"])
        if self.stages:
            if stage >= len(self.stages):
                raise ValueError(f"curriculum state: stage {stage} does not exist (the curriculum has "
                                 f"{len(self.stages)} stages)")
            ramp = self.stages[stage].ramp
            limit = ramp.updates if ramp is not None else 0
            if state["ramp_point"] > limit:
                raise ValueError(f"curriculum state: ramp_point {state['ramp_point']} > {limit}, the updates of "
                                 f"stage {stage}'s ramp")
        elif stage != 0 or state["ramp_point"] != 0:
            raise ValueError("curriculum state: an ADR curriculum has no stages (stage and ramp_point must be 0)")
        if state["stage_version"] > version:
            raise ValueError(f"curriculum state: stage_version {state['stage_version']} > version {version}")
        returns = state["episode_returns"]
        if not isinstance(returns, list) or not all(_finite(r) for r in returns):
            raise ValueError("curriculum state: episode_returns must be a list of finite numbers")
        history = state["history"]
        if not isinstance(history, list) or not all(
                isinstance(h, (list, tuple)) and len(h) == 2 and _count(h[0]) and _count(h[1])
                and (not self.stages or h[1] < len(self.stages)) for h in history):
            raise ValueError("curriculum state: history must be a list of [step, stage] (stages that exist)")
        adr = None
        if self.adr is not None:
            adr = ADRState(self.adr.config)
            adr.load_state_dict(state["adr"])
        elif state["adr"] is not None:
            raise ValueError("curriculum state: adr must be null for a curriculum of stages")
        moves = state["adr_moves"]
        if not isinstance(moves, list) or not all(isinstance(m, dict) for m in moves):
            raise ValueError("curriculum state: adr_moves must be a list of objects")
        lagging = state["lagging"]
        if not isinstance(lagging, list) or not all(
                isinstance(x, dict) and set(x) == {"step", "env", "version"} and all(_count(v) for v in x.values())
                for x in lagging):
            raise ValueError("curriculum state: lagging must be a list of {step, env, version} (integers)")
        ack = self._checked_ack(state["ack"], version)
        self.version, self.stage = version, stage
        self.stage_start, self.stage_version = int(state["stage_start"]), int(state["stage_version"])
        self.ramp_point = int(state["ramp_point"])
        self.episode_returns = [float(r) for r in returns][-self._keep:]
        self.history = [(int(s), int(i)) for s, i in history]
        if adr is not None:
            self.adr = adr
        self.adr_moves = [dict(m) for m in moves]
        self.lagging = [{k: int(v) for k, v in x.items()} for x in lagging]
        self.reported, self.watches, self.lag_version, self._warned = ack

    def _full_ramp(self, stage: Any) -> int:
        if _count(stage) and self.stages and stage < len(self.stages) and self.stages[stage].ramp is not None:
            return self.stages[stage].ramp.updates  # type: ignore[union-attr]
        return 0

    @staticmethod
    def _checked_ack(ack: Any, version: int) -> tuple[list[int], list[list[list[int]]], list[int],
                                                      set[tuple[int, int]]]:
        if not isinstance(ack, dict) or set(ack) != {"reported", "watches", "lag_version", "warned"}:
            raise ValueError("curriculum state: ack must have keys lag_version, reported, warned, watches")
        reported, watches, lag, warned = ack["reported"], ack["watches"], ack["lag_version"], ack["warned"]
        n = len(reported) if isinstance(reported, list) else -1
        if n < 0 or not all(_count(v) for v in reported):
            raise ValueError("curriculum state: ack.reported must be a list of integers >= 0")
        if not isinstance(lag, list) or len(lag) != n or not all(_count(v) and v <= version for v in lag):
            raise ValueError(f"curriculum state: ack.lag_version must be {n} integers in [0, {version}]")
        def watch_ok(w: Any) -> bool:
            return isinstance(w, list) and len(w) == 2 and _count(w[0]) and 1 <= w[0] <= version \
                and _count(w[1]) and w[1] < 2

        if not isinstance(watches, list) or len(watches) != n or not all(
                isinstance(ws, list) and all(watch_ok(w) for w in ws) for ws in watches):
            raise ValueError(f"curriculum state: ack.watches must be {n} lists of [version, episodes < 2]")
        if not isinstance(warned, list) or not all(
                isinstance(w, list) and len(w) == 2 and _count(w[0]) and _count(w[1]) for w in warned):
            raise ValueError("curriculum state: ack.warned must be a list of [env, version]")
        return ([int(v) for v in reported], [[[int(a), int(b)] for a, b in ws] for ws in watches],
                [int(v) for v in lag], {(int(e), int(v)) for e, v in warned})

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able summary (policy bundle, ``rltransfer inspect``)::

            {"curriculum": name, "family": str, "kind": "stages" | "adr", "randomize": str | None,
             "version": int, "stages_entered": [{"step", "stage", "via": "start" | "gate" | "fallback"}],
             "stage": int | None, "values": {param: value}, "ranges": {param: [low, high]},
             "adr": {"ranges", "initial", "queues": {param: {"low": n, "high": n}}, "entropy", "moves",
                     "stale", "p_boundary", "history": [{step, param, side, old, new, mean, direction}]} | None,
             "lagging": [{"step", "env", "version"}]}
        """
        entered, previous = [], None
        for step, stage in self.history:
            via = "start" if previous is None else ("fallback" if stage < previous else "gate")
            entered.append({"step": step, "stage": stage, "via": via})
            previous = stage
        adr = None
        if self.adr is not None:
            adr = {"ranges": {p: list(r) for p, r in self.adr.ranges.items()},
                   "initial": {p: list(c.initial) for p, c in self.adr.config.params.items()},
                   "queues": self.adr.queue_lengths(), "entropy": self.adr.entropy(), "moves": self.adr.moves,
                   "stale": self.adr.stale, "p_boundary": self.adr.config.p_boundary,
                   "history": [dict(m) for m in self.adr_moves]}
        return {
            "curriculum": self.curriculum.name, "family": self.curriculum.family, "kind": self.kind,
            "randomize": self.curriculum.randomize, "version": self.version, "stages_entered": entered,
            "stage": self.stage if self.stages else None, "values": self.current_params(),
            "ranges": self.current_ranges(), "adr": adr, "lagging": [dict(x) for x in self.lagging],
        }


def summary_lines(record: Any) -> list[str]:
    """A bundle's ``curriculum.json`` (:meth:`CurriculumCallback.to_dict`) as text lines for ``rltransfer
    inspect``. The record is untrusted (it comes from a file): anything malformed prints as such."""
    from rltransfer.limits import short_repr

    if not isinstance(record, dict):
        return [f"curriculum         (malformed record: {short_repr(record)})"]

    def fmt(value: Any) -> str:
        return f"{value:g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else short_repr(value)

    def span(value: Any) -> str:
        if isinstance(value, list) and len(value) == 2:
            return f"[{fmt(value[0])}, {fmt(value[1])}]"
        return short_repr(value)

    lines = [f"curriculum         {short_repr(record.get('curriculum'))} ({short_repr(record.get('kind'))}, "
             f"schedule version {short_repr(record.get('version'))})"]
    entered = record.get("stages_entered")
    if isinstance(entered, list) and entered:
        steps = ", ".join(f"{e.get('stage')} at {fmt(e.get('step'))} ({e.get('via')})"
                          for e in entered[:20] if isinstance(e, dict))
        more = f", ... {len(entered) - 20} more" if len(entered) > 20 else ""
        lines.append(f"  stages entered   {steps}{more}")
    values = record.get("values")
    if isinstance(values, dict) and values:
        lines.append("  final values     " + ", ".join(f"{k} {fmt(v)}" for k, v in list(values.items())[:20]))
    ranges = record.get("ranges")
    if isinstance(ranges, dict) and ranges:
        lines.append("  final ranges     " + ", ".join(f"{k} {span(v)}" for k, v in list(ranges.items())[:20]))
    adr = record.get("adr")
    if isinstance(adr, dict):
        got = adr.get("ranges") if isinstance(adr.get("ranges"), dict) else {}
        initial = adr.get("initial") if isinstance(adr.get("initial"), dict) else {}
        lines.append("  ADR ranges       " + ", ".join(
            f"{k} {span(v)} (from {span(initial.get(k))})" for k, v in list(got.items())[:20]))
        queues = adr.get("queues") if isinstance(adr.get("queues"), dict) else {}
        lines.append("  ADR queues       " + ", ".join(
            f"{k} {q.get('low')}/{q.get('high')}" if isinstance(q, dict) else f"{k} {short_repr(q)}"
            for k, q in list(queues.items())[:20]) + " (low/high boundary episodes waiting)")
        entropy = adr.get("entropy")
        lines.append(f"  ADR entropy      {fmt(entropy) if entropy is not None else 'undefined (a range is a point)'}"
                     f" nats/dim; {fmt(adr.get('moves'))} moves, {fmt(adr.get('stale'))} stale episodes")
    lagging = record.get("lagging")
    if isinstance(lagging, list) and lagging:
        lines.append(f"  lagging envs     {len(lagging)} warning(s): a schedule took more than one episode to arrive")
    return lines
