"""Curricula: validated files (stages, ramps, ranges, fallbacks, ADR), the ADR rule, and the callback that
drives them, on scripted episodes through a fake VecEnv (plus two short real runs)."""

from __future__ import annotations

import copy
import json
import math
import warnings
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from tiny import tiny

from rltransfer import resources
from rltransfer.config import load_family
from rltransfer.curricula import (
    ADRConfig,
    ADRParamConfig,
    ADRState,
    Curriculum,
    CurriculumCallback,
    load_curriculum,
    ramp_value,
)
from rltransfer.errors import ConfigError, ParameterBoundsError, UnknownNameError
from rltransfer.pipeline import train

# ------------------------------------------------------------------------------------------------ fakes


class FakeVecEnv:
    """Records every ``env_method`` call (what the callback sends)."""

    def __init__(self, num_envs: int = 1) -> None:
        self.num_envs = num_envs
        self.calls: list[tuple[str, tuple, dict]] = []

    def env_method(self, name: str, *args: Any, indices: Any = None, **kwargs: Any) -> list[None]:
        self.calls.append((name, args, kwargs))
        return [None] * self.num_envs

    @property
    def sends(self) -> list[dict[str, Any]]:
        assert all(name == "receive_schedule" for name, _, _ in self.calls)
        return [{"version": args[0], **kwargs} for _, args, kwargs in self.calls]


class Recorder:
    """A logger that keeps the last value of each key."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def record(self, key: str, value: Any, exclude: Any = None) -> None:
        self.values[key] = value


class FakeModel:
    def __init__(self, venv: FakeVecEnv) -> None:
        self.env, self.logger, self.num_timesteps = venv, Recorder(), 0

    def get_env(self) -> FakeVecEnv:
        return self.env


class Driver:
    """A callback on a fake VecEnv, driven step by step with scripted infos."""

    def __init__(self, curriculum: Curriculum, num_envs: int = 1, state: dict | None = None) -> None:
        self.venv = FakeVecEnv(num_envs)
        self.model = FakeModel(self.venv)
        self.cb = CurriculumCallback(curriculum)
        if state is not None:
            self.cb.load_state_dict(state)
        self.cb.init_callback(self.model)
        self.cb.on_training_start({}, {})

    def step(self, t: int, *infos: dict) -> None:
        self.model.num_timesteps = t
        padded = list(infos) + [{}] * (self.venv.num_envs - len(infos))
        self.cb.locals = {"infos": padded}
        self.cb.on_step()

    @property
    def log(self) -> dict[str, Any]:
        return self.model.logger.values

    def last(self) -> dict[str, Any]:
        return self.venv.sends[-1]


def ep(r: float, version: int | None = None, adr: dict | None = None) -> dict:
    """The terminal info of an episode with return ``r`` that ran schedule ``version``."""
    info: dict[str, Any] = {"episode": {"r": r, "l": 10, "t": 0.0}}
    if version is not None:
        info["schedule"] = {"version": version}
    if adr is not None:
        info["adr"] = adr
    return info


def make(data: dict) -> Curriculum:
    return Curriculum.model_validate({"name": "t", "family": "cartpole", **data})


def _curriculum(gate: dict) -> Curriculum:
    return make({"stages": [{"params": {"length": 0.5}, "until": gate}, {"params": {"length": 1.5}}]})


# ------------------------------------------------------------------------------------------- loading


def test_shipped_curricula_load() -> None:
    names = resources.names("curricula")
    assert {"cartpole-length", "hopper-heavier-torso", "mountaincar-power", "invertedpendulum-adr",
            "hopper-adr"} <= set(names)
    for name in names:
        curriculum = load_curriculum(name)
        if curriculum.kind == "stages":
            last = curriculum.stages[-1].until  # type: ignore[index]
            assert last is None or not last.advances
        else:
            config = curriculum.adr_config(load_family(curriculum.family))
            assert config.params and all(c.initial[0] == c.initial[1] for c in config.params.values())


def test_mountaincar_power_starts_strong_and_ramps_to_nominal() -> None:
    curriculum = load_curriculum("mountaincar-power")
    family = load_family("mountaincar")
    first, last = curriculum.stages  # type: ignore[misc]
    assert first.params["power"] >= 0.003 and last.params["power"] == family.params["power"].nominal
    # the curricula suite's 30k-step runs end with at least 10k steps at the nominal power they are judged on
    assert last.ramp is not None and first.until.steps + last.ramp.steps <= 20_000  # type: ignore[union-attr]


def test_bad_curricula_name_file_key_and_value(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("name: c\nfamily: cartpole\nstages:\n  - params: {length: 9.0}\n")
    with pytest.raises(ParameterBoundsError, match=r"c.yaml: stages.0.params: .*'length'.*9.0.*\[0.05, 5.0\]"):
        load_curriculum(path)
    path.write_text("name: c\nfamily: cartpole\nstages:\n  - params: {length: 1.0}\n  - params: {length: 2.0}\n")
    with pytest.raises(ConfigError, match="needs an 'until' gate"):
        load_curriculum(path)
    path.write_text("name: c\nfamily: cartpole\nstages:\n  - params: {length: 1.0}\n    until: {step: 10}\n")
    with pytest.raises(ConfigError, match=r"unknown key 'stages.0.until.step'.*Did you mean: 'steps'"):
        load_curriculum(path)


def _two(first: dict, second: dict, **top: Any) -> dict:
    return {**top, "stages": [{"params": {"length": 0.5}, "until": {"steps": 100}, **first},
                              {"params": {"length": 1.0}, **second}]}


_DR = {"randomize": "dr"}

#: (family, content, error class, pattern after the file name)
BAD: dict[str, tuple[str, dict, type, str]] = {
    "unknown-stage-param": ("cartpole", {"stages": [{"params": {"lenght": 1.0}}]}, UnknownNameError,
                            r"stages.0.params: unknown parameter 'lenght'.*Did you mean: 'length'"),
    "range-outside-hard-bounds": ("cartpole", {**_DR, "stages": [{"ranges": {"length": [0.4, 9.0]}}]},
                                  ParameterBoundsError, (r"stages.0.ranges.length: \[0.4, 9\] is outside the hard "
                                  r"bounds \[0.05, 5\]")),
    "range-low-above-high": ("cartpole", {**_DR, "stages": [{"ranges": {"length": [0.7, 0.4]}}]}, ConfigError,
                             r"stages.0.ranges.length: need low <= high, got \[0.7, 0.4\]"),
    "range-without-preset": ("cartpole", {"stages": [{"ranges": {"length": [0.4, 0.6]}}]}, ConfigError,
                             r"stages.0.ranges: a range schedule .*'randomize: <preset>'.*dr"),
    "range-param-not-in-preset": ("cartpole", {**_DR, "stages": [{"ranges": {"lenght": [0.4, 0.6]}}]},
                                  UnknownNameError, (r"stages.0.ranges.lenght: unknown parameter of preset 'dr' "
                                  r"'lenght'.*Did you mean: 'length'")),
    "range-of-a-choice": ("cartpole", {**_DR, "stages": [{"ranges": {"gravity": [9.0, 10.0]}}]}, ConfigError,
                          r"stages.0.ranges.gravity: .*choice"),
    "range-misses-the-normal": ("cartpole", {**_DR, "stages": [{"ranges": {"force_mag": [1.0, 2.0]}}]},
                                ConfigError, r"stages.0.ranges.force_mag: with preset 'dr''s normal .*mass"),
    "param-drawn-by-preset": ("cartpole", {**_DR, "stages": [{"params": {"length": 0.5}}]}, ConfigError,
                              r"stages.0.params: length also drawn by preset 'dr'"),
    "ramp-on-first-stage": ("cartpole", {"stages": [{"params": {"length": 0.5}, "ramp": {"steps": 10},
                                                     "until": {"steps": 100}}, {"params": {"length": 1.0}}]},
                            ConfigError, r"stages.0.ramp: the first stage cannot have a ramp"),
    "gate-ends-mid-ramp": ("cartpole", {"stages": [
        {"params": {"length": 0.5}, "until": {"steps": 100}},
        {"params": {"length": 1.0}, "ramp": {"steps": 100}, "until": {"steps": 50}},
        {"params": {"length": 1.5}}]}, ConfigError, r"stages.1: until.steps 50 < ramp.steps 100"),
    "geometric-through-zero": ("invertedpendulum", {"stages": [
        {"params": {"cart_damping": 0.0}, "until": {"steps": 100}},
        {"params": {"cart_damping": 2.0}, "ramp": {"steps": 10, "kind": "geometric"}}]}, ConfigError,
        r"stages.1.ramp: a geometric ramp .*cart_damping goes from 0 to 2 \(use kind: linear\)"),
    "bad-ramp-kind": ("cartpole", _two({}, {"ramp": {"steps": 10, "kind": "cubic"}}), ConfigError,
                      r"stages.1.ramp.kind: Input should be 'linear' or 'geometric' \(got 'cubic'\)"),
    "min-steps-above-steps": ("cartpole", _two({"until": {"steps": 100, "min_steps": 200}}, {}), ConfigError,
                              r"stages.0.until: min_steps 200 > steps 100"),
    "fallback-on-first-stage": ("cartpole", _two({"until": {"steps": 100, "fallback": {"below": 10}}}, {}),
                                ConfigError, r"stages.0.until.fallback: the first stage has no previous stage"),
    "fallback-above-mean-return": ("cartpole", {"stages": [
        {"params": {"length": 0.5}, "until": {"steps": 100}},
        {"params": {"length": 1.0}, "until": {"mean_return": 200, "fallback": {"below": 300}}},
        {"params": {"length": 1.5}}]}, ConfigError,
        r"stages.1.until: fallback.below 300 must be below mean_return 200"),
    "mean-return-above-max": ("cartpole", _two({"until": {"mean_return": 600}}, {}), ConfigError,
                              (r"stages.0.until.mean_return: 600 is above the highest return of family 'cartpole' "
                              r"\(500")),
    "fallback-above-max": ("cartpole", _two({}, {"until": {"fallback": {"below": 501}}}), ConfigError,
                           r"stages.1.until.fallback.below: 501 is above the highest return"),
    "params-differ-between-stages": ("cartpole", _two({}, {"params": {"length": 1.0, "gravity": 12.0}}),
                                     ConfigError, (r"stages.1.params: sets gravity, length but stages.0.params sets "
                                     r"length; every stage sets the same parameters")),
    "gate-on-last-stage": ("cartpole", _two({}, {"until": {"steps": 100}}), ConfigError,
                           r"stages.1.until: the last stage has no next stage"),
    "stages-and-adr": ("cartpole", {"stages": [{"params": {"length": 0.5}}], "adr": {"t_low": 1, "t_high": 2,
                                                                                   "delta": 0.1}},
                       ConfigError, r"a curriculum has either 'stages' \(at least one\) or 'adr' \(exactly one"),
    "neither-stages-nor-adr": ("cartpole", {}, ConfigError, r"a curriculum has either 'stages' \(at least one\) or 'adr'"),
    "unknown-preset": ("cartpole", {"randomize": "dx", "stages": [{"params": {}}]}, UnknownNameError,
                       r"randomize: unknown randomization preset 'dx'.*Did you mean: 'dr'"),
    "adr-unknown-param": ("cartpole", {"adr": {"t_low": 100, "t_high": 400, "params": {"lenght": {"delta": 0.1}}}},
                          UnknownNameError, r"adr.params.lenght: unknown parameter 'lenght'.*Did you mean: 'length'"),
    "adr-param-not-in-preset": ("invertedpendulum", {**_DR, "adr": {"t_low": 100, "t_high": 900,
                                                                    "params": {"gravity": {"delta": 0.1}}}},
                                UnknownNameError, r"adr.params.gravity: unknown parameter of preset 'dr' 'gravity'"),
    "adr-bounds-outside-hard-bounds": ("cartpole", {"adr": {"t_low": 100, "t_high": 400, "params": {
        "length": {"delta": 0.1, "bounds": [0.01, 1.0]}}}}, ParameterBoundsError,
        r"adr.params.length.bounds: \[0.01, 1\] is outside the hard bounds \[0.05, 5\]"),
    "adr-initial-outside-bounds": ("cartpole", {"adr": {"t_low": 100, "t_high": 400, "params": {
        "length": {"delta": 0.1, "initial": [0.2, 0.6], "bounds": [0.3, 1.0]}}}}, ConfigError,
        r"adr.params.length: initial \[0.2, 0.6\] is outside bounds \[0.3, 1\]"),
    "adr-nominal-outside-bounds": ("cartpole", {"adr": {"t_low": 100, "t_high": 400, "params": {
        "length": {"delta": 0.1, "bounds": [0.6, 1.0]}}}}, ParameterBoundsError,
        r"adr.params.length.initial: \[0.5, 0.5\] \(default: the nominal value\) is outside bounds \[0.6, 1\]"),
    "adr-initial-outside-hard-bounds": ("cartpole", {"adr": {"t_low": 100, "t_high": 400, "params": {
        "length": {"delta": 0.1, "initial": [0.01, 0.5]}}}}, ParameterBoundsError,
        r"adr.params.length.initial: \[0.01, 0.5\] is outside bounds \[0.05, 5\]"),
    "adr-thresholds-reversed": ("cartpole", {"adr": {"t_low": 400, "t_high": 400, "delta": 0.1,
                                                     "params": {"length": {}}}}, ConfigError,
                                r"adr: need t_low < t_high, got t_low=400, t_high=400"),
    "adr-p-boundary-above-1": ("cartpole", {"adr": {"p_boundary": 1.5, "t_low": 1, "t_high": 2, "delta": 0.1,
                                                    "params": {"length": {}}}}, ConfigError,
                               r"adr.p_boundary: Input should be less than or equal to 1 \(got 1.5\)"),
    "adr-queue-0": ("cartpole", {"adr": {"queue": 0, "t_low": 1, "t_high": 2, "delta": 0.1, "params": {"length": {}}}},
                    ConfigError, r"adr.queue: Input should be greater than or equal to 1 \(got 0\)"),
    "adr-delta-0": ("cartpole", {"adr": {"t_low": 1, "t_high": 2, "params": {"length": {"delta": 0}}}},
                    ConfigError, r"adr.params.length.delta: Input should be greater than 0 \(got 0\)"),
    "adr-no-delta": ("cartpole", {"adr": {"t_low": 1, "t_high": 2, "params": {"length": {}}}}, ConfigError,
                     r"adr.params.length.delta: no step for 'length'; give adr.params.length.delta or adr.delta"),
    "adr-preset-params-need-delta": ("cartpole", {**_DR, "adr": {"t_low": 1, "t_high": 2}}, ConfigError,
                                     r"adr.params.length.delta: no step"),
    "adr-t-high-above-max": ("cartpole", {"adr": {"t_low": 1, "t_high": 600, "delta": 0.1, "params": {"length": {}}}},
                             ConfigError, r"adr.t_high: 600 is above the highest return of family 'cartpole'"),
    "adr-t-low-below-min": ("cartpole", {"adr": {"t_low": -10, "t_high": 400, "delta": 0.1, "params": {"length": {}}}},
                            ConfigError, r"adr.t_low: -10 is below the lowest return of family 'cartpole' \(0"),
    "adr-unknown-key": ("cartpole", {"adr": {"t_low": 1, "t_high": 2, "params": {"length": {"detla": 0.1}}}},
                        ConfigError, (r"unknown key 'adr.params.length.detla'. Did you mean: 'delta'\? Valid keys "
                                     r"here: initial, delta, bounds")),
    "stage-unknown-key": ("cartpole", {"stages": [{"rnages": {}}]}, ConfigError,
                          (r"unknown key 'stages.0.rnages'. Did you mean: 'ranges'\? Valid keys here: params, ranges, "
                          r"ramp, until")),
    "adr-without-params-or-preset": ("cartpole", {"adr": {"t_low": 1, "t_high": 2, "delta": 0.1}}, ConfigError,
                                     r"adr.params: list the parameters ADR widens"),
}


@pytest.mark.parametrize("case", sorted(BAD), ids=sorted(BAD))
def test_bad_input_names_file_and_key(tmp_path: Path, case: str) -> None:
    family, content, error, pattern = BAD[case]
    path = tmp_path / f"{case}.yaml"
    path.write_text(yaml.safe_dump({"name": "c", "family": family, **content}, sort_keys=False))
    with pytest.raises(error, match=rf"{case}\.yaml: (\(top level\): )?{pattern}"):
        load_curriculum(path)


def test_a_curriculum_for_another_family_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("name: c\nfamily: cartpole\nstages:\n  - params: {length: 1.0}\n")
    curriculum = load_curriculum(path)
    with pytest.raises(ConfigError, match=r"c.yaml: family: curriculum 'c' is for family 'cartpole', not 'pendulum'"):
        curriculum.check_against(load_family("pendulum"))


def test_adr_defaults_come_from_the_preset_and_the_family(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("name: c\nfamily: invertedpendulum\nrandomize: dr\nadr: {t_low: 100, t_high: 900, delta: 0.1}\n")
    config = load_curriculum(path).adr_config(load_family("invertedpendulum"))
    assert set(config.params) == {"power", "pole_mass_scale", "cart_mass_scale"}
    assert config.params["power"] == ADRParamConfig((100.0, 100.0), 0.1, (10.0, 400.0))
    assert (config.queue, config.p_boundary) == (10, 0.5)


def test_the_dump_a_run_spec_stores_validates_back() -> None:
    curriculum = load_curriculum("invertedpendulum-adr")
    again = Curriculum.model_validate(json.loads(json.dumps(curriculum.model_dump(mode="json"))))
    assert again == curriculum.model_copy(update={"source": ""})
    again.check_against(load_family("invertedpendulum"))


# ----------------------------------------------------------------------------------------------- gates


def test_steps_gate_opens_exactly_at_its_step() -> None:
    d = Driver(_curriculum({"steps": 100}))
    assert d.venv.sends == [{"version": 1, "params": {"length": 0.5}, "ranges": None, "adr": None}]
    d.step(99)
    assert d.cb.stage == 0 and len(d.venv.sends) == 1
    d.step(100)
    assert d.cb.stage == 1 and d.cb.history == [(0, 0), (100, 1)]
    assert d.last() == {"version": 2, "params": {"length": 1.5}, "ranges": None, "adr": None}
    assert d.log["curriculum/stage"] == 1 and d.log["curriculum/length"] == 1.5 and d.log["schedule/version"] == 2


def test_mean_return_gate_waits_for_window_and_min_steps() -> None:
    d = Driver(_curriculum({"mean_return": 100, "window": 3, "min_steps": 50}))
    d.step(10, ep(100, version=1))
    d.step(20, ep(100, version=1))
    d.step(30, ep(100, version=1))  # window full, mean 100, but only 30 of the 50 min_steps
    assert d.cb.stage == 0
    d.step(49)
    assert d.cb.stage == 0
    d.step(50)
    assert d.cb.stage == 1 and d.cb.history[-1] == (50, 1)


def test_mean_return_gate_averages_the_last_window_of_this_stages_episodes() -> None:
    d = Driver(_curriculum({"mean_return": 100, "window": 3}))
    d.step(1, ep(1000, version=0))  # ran before stage 0's schedule reached the env: not the stage's
    d.step(2, ep(0, version=1))
    d.step(3, ep(100, version=1))
    d.step(4, ep(100, version=1))  # last 3: 0, 100, 100
    assert d.cb.stage == 0
    d.step(5, ep(99, version=1))  # last 3: 100, 100, 99
    assert d.cb.stage == 0
    d.step(6, ep(101, version=1))  # last 3: 100, 99, 101 -> mean 100
    assert d.cb.stage == 1 and d.cb.history[-1] == (6, 1)


def test_steps_or_mean_return_whichever_first() -> None:
    d = Driver(_curriculum({"mean_return": 100, "window": 1, "steps": 1000}))
    d.step(10, ep(50, version=1))
    assert d.cb.stage == 0
    d.step(20, ep(150, version=1))
    assert d.cb.stage == 1
    d = Driver(_curriculum({"mean_return": 100, "window": 1, "steps": 1000}))
    d.step(999, ep(50, version=1))
    d.step(1000, ep(50, version=1))
    assert d.cb.stage == 1


# ----------------------------------------------------------------------------------------------- ramps


def _ramped(kind: str, points: int, end: float = 1.5, steps: int = 100, gate: dict | None = None) -> Curriculum:
    second: dict[str, Any] = {"params": {"length": end}, "ramp": {"steps": steps, "kind": kind, "points": points}}
    stages = [{"params": {"length": 0.5}, "until": {"steps": 10}}, second]
    if gate is not None:
        second["until"] = gate
        stages.append({"params": {"length": 2.0}})
    return make({"stages": stages})


def _deliveries(d: Driver, until: int, start: int = 1) -> list[tuple[int, int, float]]:
    """(step, version, length) of every send made while stepping one step at a time."""
    out = []
    for t in range(start, until + 1):
        before = len(d.venv.calls)
        d.step(t)
        for send in d.venv.sends[before:]:
            out.append((t, send["version"], send["params"]["length"]))
    return out


def test_linear_ramp_delivers_equal_steps_at_equal_intervals() -> None:
    d = Driver(_ramped("linear", 4))
    got = _deliveries(d, 130)
    assert got == [(35, 2, 0.75), (60, 3, 1.0), (85, 4, 1.25), (110, 5, 1.5)]  # stage 1 entered at 10: no send
    assert d.log["curriculum/length"] == 1.5 and d.cb.ramp_point == 4


def test_linear_ramp_logs_mid_ramp_values() -> None:
    d = Driver(_ramped("linear", 4))
    d.step(10)
    assert d.cb.stage == 1 and d.log["curriculum/length"] == 0.5  # the ramp's start
    d.step(70)  # 60 steps in: 2 of 4 updates due at once, one send
    assert d.last()["params"] == {"length": 1.0} and d.log["curriculum/length"] == 1.0


def test_geometric_ramp_interpolates_logarithms() -> None:
    d = Driver(_ramped("geometric", 4, end=2.0))  # 0.5 -> 2.0: x sqrt(2) per update
    got = _deliveries(d, 130)
    assert [t for t, _, _ in got] == [35, 60, 85, 110]
    assert [v for _, _, v in got] == pytest.approx([0.5 * 2 ** 0.5, 1.0, 2 ** 0.5, 2.0], rel=1e-12)
    assert got[-1][2] == 2.0


def test_ramp_never_sends_more_updates_than_steps() -> None:
    d = Driver(_ramped("linear", 50, steps=5))
    got = _deliveries(d, 20)
    assert [(t, v) for t, _, v in got] == [(11, 0.7), (12, 0.9), (13, 1.1), (14, 1.3), (15, 1.5)]


def test_ramp_value_endpoints_are_exact() -> None:
    assert ramp_value(0.5, 1.5, 0.0) == 0.5 and ramp_value(0.5, 1.5, 1.0) == 1.5
    assert ramp_value(-1.0, -4.0, 0.5, "geometric") == pytest.approx(-2.0)
    with pytest.raises(ValueError, match="one sign"):
        ramp_value(0.0, 1.0, 0.5, "geometric")


def test_a_performance_gate_waits_for_the_ramp() -> None:
    d = Driver(_ramped("linear", 2, gate={"mean_return": 10, "window": 1}))
    d.step(10)
    d.step(20, ep(100, version=1))
    assert d.cb.stage == 1  # mid-ramp: the gate stays shut
    d.step(109)
    assert d.cb.stage == 1
    d.step(110)  # the ramp's last update is delivered, then the gate opens (episodes count from the entry)
    assert d.cb.stage == 2 and [s["params"] for s in d.venv.sends[-2:]] == [{"length": 1.5}, {"length": 2.0}]


def test_range_schedule_sends_ranges_and_ramps_them() -> None:
    curriculum = make({"randomize": "dr", "stages": [
        {"ranges": {"length": [0.45, 0.55]}, "until": {"steps": 10}},
        {"ranges": {"length": [0.4, 0.7], "cart_mass": [1.0, 1.2]}, "ramp": {"steps": 10, "points": 2}}]})
    d = Driver(curriculum)
    # cart_mass is scheduled from stage 1 on; until then it has the preset's own bounds
    assert d.venv.sends == [{"version": 1, "params": None, "adr": None,
                             "ranges": {"length": [0.45, 0.55], "cart_mass": [0.8, 1.3]}}]
    assert d.log["curriculum/length_low"] == 0.45 and d.log["curriculum/cart_mass_high"] == 1.3
    d.step(10)
    d.step(15)
    assert d.last()["ranges"] == {"length": pytest.approx([0.425, 0.625]), "cart_mass": pytest.approx([0.9, 1.25])}
    d.step(20)
    assert d.last() == {"version": 3, "params": None, "adr": None,
                        "ranges": {"length": [0.4, 0.7], "cart_mass": [1.0, 1.2]}}
    assert d.log["curriculum/cart_mass_low"] == 1.0


# -------------------------------------------------------------------------------------------- fallback


def _with_fallback(min_steps: int = 20) -> Curriculum:
    return make({"stages": [
        {"params": {"length": 0.5}, "until": {"steps": 10}},
        {"params": {"length": 1.0}, "until": {"mean_return": 400, "window": 4, "min_steps": min_steps,
                                               "fallback": {"below": 100, "window": 2}}},
        {"params": {"length": 1.5}}]})


def test_fallback_goes_back_exactly_when_the_mean_drops_below_the_floor() -> None:
    d = Driver(_with_fallback())
    d.step(10)
    v = d.cb.version
    assert d.cb.stage == 1 and v == 2
    d.step(12, ep(50, version=v))
    d.step(14, ep(50, version=v))  # mean 50 < 100, but only 4 of the 20 min_steps
    assert d.cb.stage == 1
    d.step(30, ep(150, version=v))  # last 2: 50, 150: mean 100, not below
    d.step(31, ep(100, version=v))  # last 2: 150, 100
    assert d.cb.stage == 1
    d.step(32, ep(99, version=v))  # last 2: 100, 99 -> 99.5 < 100
    assert d.cb.stage == 0 and d.last() == {"version": 3, "params": {"length": 0.5}, "ranges": None, "adr": None}
    assert d.cb.to_dict()["stages_entered"] == [{"step": 0, "stage": 0, "via": "start"},
                                                 {"step": 10, "stage": 1, "via": "gate"},
                                                 {"step": 32, "stage": 0, "via": "fallback"}]
    d.step(41)
    assert d.cb.stage == 0
    d.step(42)  # stage 0's gate counts from the re-entry
    assert d.cb.stage == 1 and d.cb.episode_returns == []


def test_fallback_needs_its_window_of_episodes() -> None:
    d = Driver(_with_fallback(min_steps=0))
    d.step(10)
    d.step(11, ep(0, version=1))  # ran stage 0's schedule: not counted for stage 1
    d.step(12, ep(0, version=2))
    assert d.cb.stage == 1
    d.step(13, ep(0, version=2))
    assert d.cb.stage == 0


def test_fallback_to_a_ramped_stage_gives_its_values_without_a_ramp() -> None:
    curriculum = make({"stages": [
        {"params": {"length": 0.5}, "until": {"steps": 10}},
        {"params": {"length": 1.0}, "ramp": {"steps": 10, "points": 2}, "until": {"steps": 10}},
        {"params": {"length": 1.5}, "until": {"fallback": {"below": 100, "window": 1}}}]})
    d = Driver(curriculum)
    d.step(10)
    d.step(20)
    assert d.cb.stage == 2
    d.step(21, ep(0, version=d.cb.version))
    assert d.cb.stage == 1 and d.last()["params"] == {"length": 1.0} and d.cb.ramp_point == 2


# ------------------------------------------------------------------------------------------ ADR rule


def _config(queue: int = 3, **params: ADRParamConfig) -> ADRConfig:
    return ADRConfig(params or {"x": ADRParamConfig((1.0, 1.0), 0.5, (0.0, 2.0))}, queue, 10.0, 20.0, 0.5)


def _feed(state: ADRState, side: str, returns: list[float], param: str = "x") -> list[Any]:
    index = 0 if side == "low" else 1
    return [state.record(param, side, state.ranges[param][index], r) for r in returns]


def test_adr_widens_on_a_full_queue_above_t_high_and_clears_it() -> None:
    state = ADRState(_config())
    assert _feed(state, "high", [25, 25]) == [None, None] and state.queues[("x", "high")] == [25, 25]
    move = state.record("x", "high", 1.0, 20)  # mean 23.3 >= 20
    assert move is not None and (move.old, move.new, move.outward) == (1.0, 1.5, True)
    assert state.ranges == {"x": [1.0, 1.5]} and state.queues[("x", "high")] == [] and state.moves == 1
    assert _feed(state, "low", [20, 20, 20])[-1].new == 0.5 and state.ranges == {"x": [0.5, 1.5]}


def test_adr_narrows_below_t_low_but_never_into_the_initial_range() -> None:
    state = ADRState(_config())
    _feed(state, "high", [30] * 6)
    assert state.ranges["x"] == [1.0, 2.0]
    assert _feed(state, "high", [30] * 3) == [None] * 3  # at the hard bound: no move, queue cleared
    assert state.ranges["x"] == [1.0, 2.0] and state.queues[("x", "high")] == []
    move = _feed(state, "high", [0, 10, 5])[-1]  # mean 5 <= 10
    assert (move.new, move.outward) == (1.5, False)
    _feed(state, "high", [10] * 3)  # mean == t_low: inward
    assert state.ranges["x"] == [1.0, 1.0]
    assert _feed(state, "high", [0] * 3) == [None] * 3 and state.ranges["x"] == [1.0, 1.0]
    assert state.moves == 4


def test_adr_between_thresholds_only_clears_the_queue() -> None:
    state = ADRState(_config())
    assert _feed(state, "high", [15, 15, 15]) == [None] * 3
    assert state.ranges["x"] == [1.0, 1.0] and state.queues[("x", "high")] == [] and state.moves == 0


def test_adr_ignores_episodes_at_a_bound_that_has_moved() -> None:
    state = ADRState(_config())
    _feed(state, "high", [30] * 3)
    assert state.record("x", "high", 1.0, 30) is None  # ran at the old bound
    assert state.stale == 1 and state.queues[("x", "high")] == []
    assert state.record("x", "high", 1.5, 30) is None and state.queues[("x", "high")] == [30.0]
    with pytest.raises(ValueError, match="unknown parameter 'y'"):
        state.record("y", "high", 1.0, 0)
    with pytest.raises(ValueError, match="side must be"):
        state.record("x", "up", 1.0, 0)


def test_adr_entropy_is_mean_log_width() -> None:
    state = ADRState(_config(x=ADRParamConfig((1.0, 1.0), 0.5, (0.0, 2.0)),
                             y=ADRParamConfig((0.0, math.e), 1.0, (0.0, 5.0))))
    assert state.entropy() is None  # x has zero width
    _feed(state, "high", [30] * 3)
    _feed(state, "low", [30] * 3)
    assert state.ranges["x"] == [0.5, 1.5] and state.entropy() == pytest.approx((0.0 + 1.0) / 2)


def test_adr_state_round_trip_mid_queue_gives_the_same_future() -> None:
    a = ADRState(_config())
    _feed(a, "high", [30] * 4)  # one move, one return queued
    _feed(a, "low", [30])
    b = ADRState(_config())
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))
    assert b.state_dict() == a.state_dict()
    for side, r in [("high", 30), ("high", 30), ("low", 30), ("low", 0), ("high", 5)]:
        assert _feed(a, side, [r]) == _feed(b, side, [r])
    assert a.state_dict() == b.state_dict()


@pytest.mark.parametrize("change, match", [
    (lambda s: s["ranges"].update(x=[-1.0, 1.0]), "within bounds"),
    (lambda s: s["ranges"].update(x=[1.2, 1.5]), "contain the initial range"),
    (lambda s: s["ranges"].update(x=[1.0]), r"\[low, high\]"),
    (lambda s: s["ranges"].update(y=[1.0, 1.0]), "exactly the ADR parameters"),
    (lambda s: s["queues"]["x"].update(high=[1.0, 2.0, 3.0]), "fewer than 3"),
    (lambda s: s["queues"]["x"].update(high=["a"]), "finite numbers"),
    (lambda s: s.update(stale=-1), "integers >= 0"),
    (lambda s: s.pop("moves"), "must have keys"),
])
def test_adr_load_state_dict_validates(change: Any, match: str) -> None:
    state = ADRState(_config())
    data = copy.deepcopy(state.state_dict())
    change(data)
    with pytest.raises(ValueError, match=match):
        state.load_state_dict(data)
    assert state.state_dict() == ADRState(_config()).state_dict()  # nothing was set


_STEP = st.tuples(st.sampled_from(["x", "y"]), st.sampled_from(["low", "high"]), st.booleans(),
                  st.floats(min_value=-50, max_value=50, allow_nan=False))


@settings(max_examples=200, deadline=None)
@given(steps=st.lists(_STEP, max_size=300), queue=st.integers(1, 4))
def test_adr_property_ranges_stay_between_initial_and_hard_bounds(steps: list, queue: int) -> None:
    params = {"x": ADRParamConfig((1.0, 1.0), 0.3, (0.0, 2.0)), "y": ADRParamConfig((-1.0, 2.0), 0.7, (-3.0, 3.5))}
    state = ADRState(_config(queue, **params))
    lengths = {key: 0 for key in state.queues}
    stale = moves = 0
    for param, side, current, r in steps:
        index = 0 if side == "low" else 1
        before = state.ranges[param][index]
        value = before if current else before + 0.01
        move = state.record(param, side, value, r)
        cfg = params[param]
        low, high = state.ranges[param]
        assert cfg.bounds[0] <= low <= cfg.initial[0] <= cfg.initial[1] <= high <= cfg.bounds[1]
        assert all(len(q) < queue for q in state.queues.values())
        if not current:
            stale += 1
            assert move is None and state.ranges[param][index] == before
            continue
        lengths[(param, side)] += 1
        if lengths[(param, side)] == queue:
            lengths[(param, side)] = 0
            assert state.queues[(param, side)] == []
        if move is not None:
            moves += 1
            assert move.old == before and move.new == state.ranges[param][index]
            assert 0 < abs(move.new - move.old) <= cfg.delta + 1e-9
        else:
            assert state.ranges[param][index] == before
    assert (state.stale, state.moves) == (stale, moves)
    entropy = state.entropy()
    widths = [h - lo for lo, h in state.ranges.values()]
    assert entropy is None if min(widths) == 0 else entropy == pytest.approx(sum(map(math.log, widths)) / 2)


# ------------------------------------------------------------------------------------- ADR callback


def _adr(**extra: Any) -> Curriculum:
    return make({"adr": {"queue": 2, "t_low": 100, "t_high": 400, "p_boundary": 0.25,
                         "params": {"length": {"delta": 0.1, "bounds": [0.3, 0.8]}}, **extra}})


def _boundary(side: str, value: float, version: int) -> dict:
    return {"param": "length", "side": side, "value": value, "version": version}


def test_adr_callback_sends_initial_ranges_then_each_move() -> None:
    d = Driver(_adr(), num_envs=2)
    assert d.venv.sends == [{"version": 1, "params": None, "ranges": None,
                             "adr": {"ranges": {"length": [0.5, 0.5]}, "p_boundary": 0.25}}]
    assert d.log["adr/length_low"] == 0.5 and "adr/entropy" not in d.log
    d.step(10, ep(450, 1, _boundary("high", 0.5, 1)), ep(0, 1))  # the second is no boundary episode
    assert len(d.venv.sends) == 1 and d.cb.adr.queues[("length", "high")] == [450.0]
    d.step(20, ep(450, 1, _boundary("high", 0.5, 1)), ep(500, 1, _boundary("high", 0.5, 1)))
    # the first fills the queue and moves the bound; the second ran at the old bound: stale
    assert d.last() == {"version": 2, "params": None, "ranges": None,
                        "adr": {"ranges": {"length": [0.5, 0.6]}, "p_boundary": 0.25}}
    assert d.cb.adr.stale == 1 and d.log["adr/stale"] == 1 and d.log["adr/moves"] == 1
    assert d.log["adr/length_high"] == 0.6 and d.log["adr/entropy"] == pytest.approx(math.log(0.1))
    d.step(30, ep(50, 2, _boundary("high", 0.6, 2)), ep(50, 2, _boundary("high", 0.6, 2)))
    assert d.last()["adr"]["ranges"] == {"length": [0.5, 0.5]} and d.last()["version"] == 3
    summary = d.cb.to_dict()
    assert summary["kind"] == "adr" and summary["adr"]["moves"] == 2 and summary["adr"]["entropy"] is None
    assert [(m["step"], m["direction"]) for m in summary["adr"]["history"]] == [(20, "out"), (30, "in")]
    assert summary["adr"]["queues"] == {"length": {"low": 0, "high": 0}}
    json.dumps(summary)


def test_adr_callback_never_passes_the_hard_bounds() -> None:
    d = Driver(_adr(queue=1))
    for t in range(1, 20):
        high = d.cb.adr.ranges["length"][1]
        d.step(t, ep(450, d.cb.version, _boundary("high", high, d.cb.version)))
    assert d.cb.adr.ranges["length"] == [0.5, 0.8] and d.cb.adr.moves == 3


# ------------------------------------------------------------------------------------------ ack


def test_ack_warns_for_a_lagging_env_and_not_for_a_prompt_one() -> None:
    d = Driver(_curriculum({"steps": 1000}), num_envs=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        d.step(5, ep(10, version=0), ep(10, version=0))  # both started before the send: fine
        assert not caught and d.log["schedule/lagging_envs"] == 0
        d.step(9, ep(10, version=1), ep(10, version=0))  # env 1's second episode still ran version 0
        assert [str(w.message) for w in caught if "env 1 " in str(w.message)] and len(caught) == 1
        assert "version 1" in str(caught[0].message)
        assert d.log["schedule/lagging_envs"] == 1 and d.cb.lagging == [{"step": 9, "env": 1, "version": 1}]
        d.step(12, {}, ep(10, version=0))  # once per env and version
        assert len(caught) == 1
        d.step(15, {}, ep(10, version=1))
        assert d.log["schedule/lagging_envs"] == 0 and len(caught) == 1


def test_ack_checks_the_version_sent_before_the_episodes() -> None:
    d = Driver(_curriculum({"steps": 10}), num_envs=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        d.step(5, ep(10, version=1))
        d.step(10)  # version 2 sent
        d.step(15, ep(10, version=1))  # started before version 2
        assert not caught
        d.step(20, ep(10, version=1))
        assert len(caught) == 1 and "version 2" in str(caught[0].message)


# ---------------------------------------------------------------------------------------- resume


def test_state_round_trip_mid_ramp_continues_identically() -> None:
    curriculum = make({"stages": [
        {"params": {"length": 0.5}, "until": {"steps": 10}},
        {"params": {"length": 1.5}, "ramp": {"steps": 100, "points": 4, "kind": "geometric"},
         "until": {"mean_return": 100, "window": 3, "steps": 200, "fallback": {"below": 5}}},
        {"params": {"length": 2.0}}]})
    def infos(t: int, d: Driver) -> list[dict]:
        return [ep(50.0 + t, version=d.cb.version)] if t % 7 == 0 else []

    a = Driver(curriculum)
    for t in range(1, 44, 3):
        a.step(t, *infos(t, a))
    assert a.cb.stage == 1 and 0 < a.cb.ramp_point < 4 and a.cb.episode_returns  # mid-ramp, returns gathered
    b = Driver(curriculum, state=json.loads(json.dumps(a.cb.state_dict())))
    a.cb.on_training_start({}, {})  # as a second learn(): A re-sends too, so the versions stay in step
    assert a.last() == b.last() and a.last()["params"] == {"length": a.cb.current_params()["length"]}
    for t in range(46, 400, 3):
        assert infos(t, a) == infos(t, b)
        a.step(t, *infos(t, a))
        b.step(t, *infos(t, b))
        assert a.log == b.log
    assert a.venv.sends[-len(b.venv.sends):] == b.venv.sends and a.cb.state_dict() == b.cb.state_dict()
    assert a.cb.stage == 2 and a.cb.history == b.cb.history


def test_state_round_trip_mid_queue_continues_identically() -> None:
    curriculum = _adr(queue=3)

    def script(t: int, d: Driver) -> list[dict]:
        side = "high" if t % 3 else "low"
        value = d.cb.adr.ranges["length"][0 if side == "low" else 1]
        return [ep(500 if t < 30 else 0, d.cb.version, _boundary(side, value, d.cb.version)), ep(1, d.cb.version)]

    a = Driver(curriculum, 2)
    for t in range(1, 14):
        a.step(t, *script(t, a))
    assert any(a.cb.adr.queues.values())
    b = Driver(curriculum, 2, state=json.loads(json.dumps(a.cb.state_dict())))
    a.cb.on_training_start({}, {})
    for t in range(14, 60):
        infos = script(t, a)
        assert infos == script(t, b)
        a.step(t, *infos)
        b.step(t, *infos)
        assert a.log == b.log
    assert a.cb.state_dict() == b.cb.state_dict() and a.cb.to_dict() == b.cb.to_dict()
    assert a.cb.adr.moves >= 4


def test_resume_resends_without_reentering_stage_zero() -> None:
    d = Driver(_curriculum({"steps": 10}))
    d.step(10)
    state = d.cb.state_dict()
    b = Driver(_curriculum({"steps": 10}), state=state)
    assert b.venv.sends == [{"version": 3, "params": {"length": 1.5}, "ranges": None, "adr": None}]
    assert b.cb.history == [(0, 0), (10, 1)] and b.log["curriculum/stage"] == 1


@pytest.mark.parametrize("change, match", [
    (lambda s: s.update(stage=5), "stage 5 does not exist"),
    (lambda s: s.update(ramp_point=9), "ramp_point 9 > 0"),
    (lambda s: s.update(curriculum="other"), "is for 'other'"),
    (lambda s: s.update(version=-1), "version must be an integer"),
    (lambda s: s.update(episode_returns=[float("nan")]), "episode_returns"),
    (lambda s: s["ack"].update(watches=[[[1, 5]]]), "ack.watches"),
    (lambda s: s.pop("lagging"), "must have keys"),
    (lambda s: s.update(adr={"ranges": {}}), "adr must be null"),
])
def test_load_state_dict_validates(change: Any, match: str) -> None:
    d = Driver(_curriculum({"steps": 10}))
    state = copy.deepcopy(d.cb.state_dict())
    change(state)
    fresh = CurriculumCallback(_curriculum({"steps": 10}))
    with pytest.raises(ValueError, match=match):
        fresh.load_state_dict(state)
    assert fresh.version == 0


def test_legacy_state_layout_is_read() -> None:
    state = {"stage": 1, "stage_start": 100, "episode_returns": [1.0], "history": [[0, 0], [100, 1]]}
    d = Driver(_curriculum({"steps": 100}), state=state)
    assert d.cb.stage == 1 and d.venv.sends == [{"version": 2, "params": {"length": 1.5}, "ranges": None,
                                                "adr": None}]


def test_to_dict_summarizes_a_stage_run() -> None:
    d = Driver(_ramped("linear", 4))
    d.step(10)
    d.step(60)
    summary = d.cb.to_dict()
    assert summary == {"curriculum": "t", "family": "cartpole", "kind": "stages", "randomize": None, "version": 2,
                       "stages_entered": [{"step": 0, "stage": 0, "via": "start"}, {"step": 10, "stage": 1, "via": "gate"}],
                       "stage": 1, "values": {"length": 1.0}, "ranges": {}, "adr": None, "lagging": []}
    json.dumps(summary)


# ------------------------------------------------------------------------------------- real envs


def test_train_with_a_curriculum_logs_stages_and_records_it(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train("cartpole", tiny("ppo", "cartpole"), steps=512, seed=0, out=tmp_path, name="cur", eval_freq=0,
          eval_episodes=1, curriculum=_curriculum({"steps": 128}))
    config = yaml.safe_load((tmp_path / "cur" / "config.yaml").read_text())
    assert config["spec"]["curriculum"]["name"] == "t" and config["spec"]["env"]["params"]["length"] == 0.5
    acc = EventAccumulator(str(tmp_path / "cur" / "tb"))
    acc.Reload()
    assert [e.value for e in acc.Scalars("curriculum/stage")][-1] == 1.0
    assert [e.value for e in acc.Scalars("curriculum/length")][-1] == 1.5


def test_callback_advances_and_sets_params_in_all_envs(tmp_path: Path) -> None:
    from stable_baselines3 import PPO

    from rltransfer.environments import make_vec_env

    venv = make_vec_env(load_family("cartpole"), None, 2, 0)
    model = PPO("MlpPolicy", venv, n_steps=32, batch_size=32, n_epochs=1, policy_kwargs={"net_arch": [16]})
    callback = CurriculumCallback(_curriculum({"steps": 100}))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # every env acknowledges every schedule
        model.learn(256, callback=callback)
    assert callback.history[0] == (0, 0) and callback.history[1][1] == 1 and 100 <= callback.history[1][0] <= 164
    assert all(p["length"] == 1.5 for p in venv.env_method("get_params"))
    assert callback.lagging == [] and max(callback.reported) == callback.version == 2


def test_performance_gate_uses_training_episodes(tmp_path: Path) -> None:
    from stable_baselines3 import PPO

    from rltransfer.environments import make_vec_env

    def model() -> PPO:  # a fresh venv per curriculum: an env takes only versions newer than it has seen
        venv = make_vec_env(load_family("cartpole"), None, 2, 0)
        return PPO("MlpPolicy", venv, n_steps=32, batch_size=32, n_epochs=1, policy_kwargs={"net_arch": [16]})

    never = CurriculumCallback(_curriculum({"mean_return": 500, "window": 2}))
    model().learn(256, callback=never)
    assert [stage for _, stage in never.history] == [0]
    easy = CurriculumCallback(_curriculum({"mean_return": 1.0, "window": 2}))
    model().learn(256, callback=easy)
    assert [stage for _, stage in easy.history] == [0, 1]
