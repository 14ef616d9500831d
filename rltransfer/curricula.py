"""Curricula: staged schedules over an env family's parameters, advanced by steps or by performance.

A curriculum (``curricula/<name>.yaml``) is a list of stages, each a set of parameter values and a gate that
says when to move on: after a number of environment steps in the stage, and/or once the mean return of the
last training episodes in the stage reaches a level. :class:`CurriculumCallback` drives the stages across
all vectorized training envs (new values take effect at each env's next reset); evaluation keeps measuring
the run's own target parameters.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field, model_validator
from stable_baselines3.common.callbacks import BaseCallback

from rltransfer import resources
from rltransfer.config import (
    MAX_STEPS, Bounded, EnvFamily, Int, Name, Strict, load_family, read_yaml, validate,
)
from rltransfer.errors import ConfigError


class Gate(Strict):
    """When a stage ends: after ``steps`` env steps in it, or once the mean return of its last ``window``
    training episodes reaches ``mean_return`` (after at least ``min_steps``); with both, whichever is first."""

    steps: Int | None = Field(default=None, ge=1, le=MAX_STEPS)
    mean_return: Bounded | None = None
    window: Int = Field(default=20, ge=1, le=100_000, description="training episodes averaged")
    min_steps: Int = Field(default=0, ge=0, le=MAX_STEPS)

    @model_validator(mode="after")
    def _some_condition(self) -> Gate:
        if self.steps is None and self.mean_return is None:
            raise ValueError("a gate needs 'steps' and/or 'mean_return'")
        return self


class Stage(Strict):
    params: dict[str, Bounded] = Field(max_length=1000)
    until: Gate | None = Field(default=None, description="omit on the last stage")


class Curriculum(Strict):
    """``curricula/<name>.yaml``."""

    name: Name
    family: Name
    description: str = ""
    stages: list[Stage] = Field(min_length=1, max_length=1000)
    source: str = Field(default="", exclude=True)

    @model_validator(mode="after")
    def _gates(self) -> Curriculum:
        for i, stage in enumerate(self.stages[:-1]):
            if stage.until is None:
                raise ValueError(f"stages.{i}: every stage but the last needs an 'until' gate")
        return self

    def check_against(self, family: EnvFamily) -> None:
        if family.name != self.family:
            raise ConfigError(f"{self.source}: curriculum {self.name!r} is for family {self.family!r}, not {family.name!r}")
        for i, stage in enumerate(self.stages):
            try:
                family.resolve_params(stage.params)
            except ConfigError as exc:
                raise type(exc)(f"{self.source}: stages.{i}.params: {exc}") from None


def load_curriculum(name_or_path: str | Path) -> Curriculum:
    """Load a curriculum by shipped name or YAML path; its parameters are checked against the family's bounds."""
    path = resources.find("curricula", name_or_path)
    curriculum: Curriculum = validate(Curriculum, read_yaml(path), str(path))
    curriculum.source = str(path)
    curriculum.check_against(load_family(curriculum.family))
    return curriculum


class CurriculumCallback(BaseCallback):
    """Moves the training envs through a curriculum's stages; logs ``curriculum/stage`` and each parameter."""

    def __init__(self, curriculum: Curriculum) -> None:
        super().__init__()
        self.curriculum = curriculum
        self.stage = 0
        self.stage_start = 0
        self.episodes_at_stage_start = 0
        self.episode_returns: list[float] = []
        self.history: list[tuple[int, int]] = []

    def _enter(self, index: int) -> None:
        self.stage = index
        self.stage_start = self.num_timesteps
        self.episode_returns = []
        params = self.curriculum.stages[index].params
        self.training_env.env_method("set_params", params, defer=True)
        self.history.append((self.num_timesteps, index))
        self.logger.record("curriculum/stage", index)
        for key, value in params.items():
            self.logger.record(f"curriculum/{key}", value)

    def _on_training_start(self) -> None:
        if self._resumed:  # stage, position and history came from a checkpoint; re-send the stage's values
            self.training_env.env_method("set_params", self.curriculum.stages[self.stage].params, defer=True)
            return
        self._enter(0)

    _resumed = False

    def state_dict(self) -> dict[str, Any]:
        """Stage, where it started, the returns gathered in it, and the stages entered so far."""
        return {"stage": self.stage, "stage_start": self.stage_start, "episode_returns": list(self.episode_returns),
                "history": [list(h) for h in self.history]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.stage = int(state["stage"])
        self.stage_start = int(state["stage_start"])
        self.episode_returns = [float(r) for r in state.get("episode_returns", [])]
        self.history = [(int(s), int(i)) for s, i in state.get("history", [])]
        self._resumed = True

    def _gate_open(self) -> bool:
        gate = self.curriculum.stages[self.stage].until
        if gate is None:
            return False
        in_stage = self.num_timesteps - self.stage_start
        if gate.steps is not None and in_stage >= gate.steps:
            return True
        if gate.mean_return is not None and in_stage >= gate.min_steps and len(self.episode_returns) >= gate.window:
            return float(np.mean(self.episode_returns[-gate.window:])) >= gate.mean_return
        return False

    def _on_step(self) -> bool:
        for info in self.locals.get("infos", []):
            episode = info.get("episode")
            if episode is not None:
                self.episode_returns.append(float(episode["r"]))
        if self.stage + 1 < len(self.curriculum.stages) and self._gate_open():
            self._enter(self.stage + 1)
        return True

    def to_dict(self) -> dict[str, Any]:
        return {"curriculum": self.curriculum.name, "stages_entered": [{"step": s, "stage": i} for s, i in self.history]}
