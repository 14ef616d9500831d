"""Gymnasium wrappers that pretrained agents expect, registered by name.

RL Zoo agents are trained inside wrappers named in their config (``env_wrapper``); evaluating or
transferring such an agent faithfully means wrapping the environment the same way. The wrappers are
looked up by class name in :data:`WRAPPERS` (never imported from a dotted path found in a file).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from rltransfer.errors import ConfigError, IncompatibleSpacesError, unknown_name

__all__ = ["WRAPPERS", "NegateReward", "PermuteActions", "TimeFeatureWrapper", "make_wrapper"]

TimeFeatureObs = np.ndarray | dict[str, np.ndarray]


class TimeFeatureWrapper(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Append the remaining episode time, ``1 - t / max_steps``, to the observation.

    Behaves like ``sb3_contrib.common.wrappers.TimeFeatureWrapper`` (which the RL Zoo trained its
    MuJoCo/PyBullet agents with): the feature is 1.0 after ``reset`` and falls by ``1 / max_steps``
    per step; the observation Box gains one entry with bounds ``[0, 1]`` and keeps its dtype. For a
    Dict space the feature goes onto the ``"observation"`` entry. Unlike sb3_contrib, the wrapped
    env's own ``observation_space`` is left untouched and observation dicts are copied, not mutated.

    See https://arxiv.org/abs/1712.00378.

    Args:
        env: environment with a 1-D Box observation space (or a Dict with a 1-D Box ``"observation"``).
        max_steps: episode length used when ``env.spec.max_episode_steps`` is not set.
        test_mode: keep the feature constant at 1.0, to check that the agent does not rely on it.

    Raises:
        IncompatibleSpacesError: for other observation spaces.
        ConfigError: if ``max_steps`` is not a positive integer.
    """

    def __init__(self, env: gym.Env, max_steps: int = 1000, test_mode: bool = False) -> None:
        # Recorded so that gymnasium can rebuild the wrapper from ``env.spec``.
        gym.utils.RecordConstructorArgs.__init__(self, max_steps=max_steps, test_mode=test_mode)
        gym.Wrapper.__init__(self, env)
        if isinstance(max_steps, bool) or not isinstance(max_steps, (int, np.integer)) or max_steps <= 0:
            raise ConfigError(f"TimeFeatureWrapper: max_steps must be a positive integer, got {max_steps!r}")
        space = env.observation_space
        if isinstance(space, spaces.Dict):
            if "observation" not in space.spaces:
                raise IncompatibleSpacesError(
                    f"TimeFeatureWrapper: Dict observation space has no 'observation' key: {space}"
                )
            box = space.spaces["observation"]
        else:
            box = space
        if not isinstance(box, spaces.Box) or len(box.shape) != 1:
            raise IncompatibleSpacesError(
                f"TimeFeatureWrapper supports 1-D Box observations (or a Dict with one under 'observation'), "
                f"got {box}"
            )
        self.dtype = box.dtype
        low = np.concatenate((box.low, [0.0])).astype(self.dtype)
        high = np.concatenate((box.high, [1.0])).astype(self.dtype)
        new_box = spaces.Box(low=low, high=high, dtype=self.dtype)
        if isinstance(space, spaces.Dict):
            self.observation_space = spaces.Dict({**space.spaces, "observation": new_box})
        else:
            self.observation_space = new_box

        spec_steps = getattr(getattr(env, "spec", None), "max_episode_steps", None)
        self._max_steps: int = int(spec_steps) if spec_steps is not None else int(max_steps)
        self._current_step = 0
        self._test_mode = bool(test_mode)

    @property
    def max_steps(self) -> int:
        """The episode length the feature counts down over."""
        return self._max_steps

    def reset(self, **kwargs: Any) -> tuple[TimeFeatureObs, dict[str, Any]]:
        """Reset the env and the step counter; the feature is 1.0."""
        self._current_step = 0
        obs, info = self.env.reset(**kwargs)
        return self._get_obs(obs), info

    def step(self, action: Any) -> tuple[TimeFeatureObs, SupportsFloat, bool, bool, dict[str, Any]]:
        """Step the env and count the step."""
        self._current_step += 1
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self._get_obs(obs), reward, terminated, truncated, info

    def snapshot_state(self) -> dict[str, Any]:
        """The step counter, for an exact checkpoint (:mod:`rltransfer.checkpoints`)."""
        return {"current_step": int(self._current_step)}

    def restore_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`snapshot_state`.

        Raises:
            ValueError: ``state`` is not ``{"current_step": <int from 0 to max_steps>}``.
        """
        step = state.get("current_step") if isinstance(state, dict) else None
        if (not isinstance(state, dict) or set(state) != {"current_step"} or isinstance(step, bool)
                or not isinstance(step, int) or not 0 <= step <= 2**62):
            raise ValueError(
                f"TimeFeatureWrapper state must be {{'current_step': int >= 0}}, got {str(state)[:80]}"
            )
        self._current_step = step

    def _get_obs(self, obs: TimeFeatureObs) -> TimeFeatureObs:
        time_feature = 1.0 if self._test_mode else 1 - (self._current_step / self._max_steps)
        feature = np.array(time_feature, dtype=self.dtype)
        if isinstance(obs, dict):
            return {**obs, "observation": np.append(obs["observation"], feature)}
        return np.append(obs, feature)


class PermuteActions(gym.ActionWrapper, gym.utils.RecordConstructorArgs):
    """Remaps the agent's actions before the env sees them: a planted corruption for control pairs.

    A policy trained inside this wrapper learns to act through the remapping; moved to the plain env it
    confidently does the wrong thing (the *planted negative* control of a benchmark suite).

    * ``Discrete(n)``: action ``i`` is sent as ``perm[i]``; the default swaps actions 0 and 1.
    * ``Box``: the default negates every dimension; with ``perm`` the dimensions are permuted instead
      (``out[i] = action[perm[i]]``). Negation needs bounds symmetric about 0.

    Args:
        env: environment with a ``Discrete`` or 1-D ``Box`` action space.
        perm: a permutation of ``range(n)`` (of actions, or of Box dimensions).

    Raises:
        ConfigError: ``perm`` is not a permutation of the right length.
        IncompatibleSpacesError: other action spaces, or a Box that cannot be negated.
    """

    def __init__(self, env: gym.Env, perm: list[int] | None = None) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, perm=perm)
        gym.ActionWrapper.__init__(self, env)
        space = env.action_space
        if isinstance(space, spaces.Discrete):
            n = int(space.n)
            if n < 2:
                raise IncompatibleSpacesError(
                    f"PermuteActions needs at least 2 discrete actions, got {space}"
                )
            default = [1, 0, *range(2, n)]
        elif isinstance(space, spaces.Box) and len(space.shape) == 1:
            n = int(space.shape[0])
            default = None
            if perm is None and not (np.allclose(space.low, -space.high)):
                raise IncompatibleSpacesError(
                    f"PermuteActions negates Box actions, which needs bounds symmetric about 0, got {space}; "
                    "give perm to permute dimensions instead"
                )
        else:
            raise IncompatibleSpacesError(
                f"PermuteActions supports Discrete and 1-D Box actions, got {space}"
            )
        if perm is not None:
            if sorted(int(i) for i in perm) != list(range(n)) or len(perm) != n:
                raise ConfigError(f"PermuteActions: perm must be a permutation of 0..{n - 1}, got {perm!r}")
            self.perm: list[int] | None = [int(i) for i in perm]
        else:
            self.perm = default

    def action(self, action: Any) -> Any:
        """The action the env receives."""
        if isinstance(self.action_space, spaces.Discrete) and self.perm is not None:
            return self.action_space.dtype.type(self.perm[int(action)])
        arr = np.asarray(action)
        return -arr if self.perm is None else arr[self.perm]


class NegateReward(gym.RewardWrapper, gym.utils.RecordConstructorArgs):
    """Negates every reward: a source trained inside learns the opposite of the task (a planted negative)."""

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.RewardWrapper.__init__(self, env)

    def reward(self, reward: SupportsFloat) -> float:
        """``-reward``."""
        return -float(reward)


#: Wrappers by class name, as the RL Zoo's ``env_wrapper`` names them (without the module path).
WRAPPERS: dict[str, Callable[..., gym.Env]] = {
    "TimeFeatureWrapper": TimeFeatureWrapper,
    "PermuteActions": PermuteActions,
    "NegateReward": NegateReward,
}


def make_wrapper(name: str, env: gym.Env, **kwargs: Any) -> gym.Env:
    """Wrap ``env`` in the wrapper registered as ``name``.

    A dotted name such as ``"sb3_contrib.common.wrappers.TimeFeatureWrapper"`` is looked up by its
    last component; nothing is imported.

    Args:
        name: wrapper name (see :data:`WRAPPERS`).
        env: the environment to wrap.
        **kwargs: passed to the wrapper.

    Raises:
        UnknownNameError: for names not in :data:`WRAPPERS`.
    """
    short = name.rsplit(".", 1)[-1]
    if short not in WRAPPERS:
        raise unknown_name("wrapper", short, WRAPPERS)
    return WRAPPERS[short](env, **kwargs)
