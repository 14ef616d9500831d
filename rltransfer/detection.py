"""Online early warning of negative transfer: a pure-logic comparator and an SB3 callback.

While a transfer run trains, each evaluation is compared with the evaluation curves of from-scratch
runs of the same task made earlier (the *reference*). If the transfer run is confidently worse than
a typical scratch run for several evaluations in a row, an alarm is raised; the caller can warn,
stop the run, or stop it and restart from scratch (the compute saved is ``budget - alarm_step``).

The test (:class:`CurveComparator`)
-----------------------------------
At the transfer run's ``k``-th evaluation, at step ``s_k``, take the mean of its last ``window``
evaluation returns, ``x``. Interpolate every reference seed's curve onto the same steps and take the
same mean for each seed, ``r_1..r_n``. If the transfer run were just another scratch run (the null
hypothesis), ``x`` would be one more draw from the distribution of the ``r_i``; for roughly Gaussian
values the studentized prediction error

    z = (x - mean(r) + margin) / (sd(r) * sqrt(1 + 1/n))

follows a Student t distribution with ``n - 1`` degrees of freedom. ``prob_worse`` is the one-sided
confidence that the run is worse by more than ``margin``, ``1 - T_{n-1}(z)``, and the evaluation
counts as *worse* when ``prob_worse >= confidence``. The alarm fires after ``patience`` consecutive
worse evaluations, never before ``min_evals`` evaluations, and stays on. With a single reference
seed there is no spread to learn from: an evaluation is worse when ``x < r_1 - margin``, and a
positive margin is required.

False alarms: a run is checked at every evaluation, so the per-run false-alarm rate is larger than
``1 - confidence`` per look would suggest, and a run that is slow by chance stays slow for a while,
so consecutive looks are correlated. The defaults (``confidence=0.975``, ``patience=4``,
``window=1``, ``min_evals=3``, ``margin=0``) were chosen on synthetic logistic learning curves
(0..500 return scale, random per-seed learning speed, midpoint and asymptote, evaluation noise; 26
evaluations over the budget; a fresh 5-seed scratch reference per run; ``tests/test_detection.py``):

* null runs (same distribution as scratch): false alarm in about 2.8% of runs;
* a run that plateaus at half the scratch return: alarm in about 91% of runs, on average at 77% of
  the budget; a run that hardly learns: 100%, at 64% of the budget;
* a run that learns 30% of the budget later than scratch: about 72%, at 62% of the budget.

An alarm can only come once the scratch seeds have reliably pulled ahead, so with 5 reference seeds
it arrives after the scratch runs' own learning phase, not at the first evaluation. Lower
``confidence`` or ``patience`` trade more false alarms for earlier alarms (0.95 and 2 give ~15% false
alarms); more reference seeds sharpen the test (10 seeds lift the slower-learning case to ~86%);
averaging a ``window`` of evaluations did not help on these curves, as ``patience`` already
smooths. Curves far from the ones simulated (heavy-tailed returns, very noisy evaluations) may have
a higher false-alarm rate: check on your own scratch curves.

Only :class:`NegativeTransferCallback` depends on Stable-Baselines3.
"""

from __future__ import annotations

import bisect
import logging
import math
import warnings
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy import special
from stable_baselines3.common.callbacks import BaseCallback, EvalCallback

from rltransfer.errors import ConfigError

__all__ = ["CurveComparator", "DetectionState", "NegativeTransferCallback", "NegativeTransferWarning"]

logger = logging.getLogger(__name__)

Action = Literal["warn", "stop", "fallback"]
_ACTIONS = ("warn", "stop", "fallback")


class NegativeTransferWarning(UserWarning):
    """Emitted when :class:`NegativeTransferCallback` raises its alarm."""


@dataclass(frozen=True)
class DetectionState:
    """What the comparator concluded at one evaluation.

    Attributes:
        step: environment step of the evaluation.
        evals_seen: number of evaluations of the transfer run so far, this one included.
        gap: this evaluation's return minus the reference seeds' mean return at the same step
            (reference curves linearly interpolated onto ``step``); negative means behind scratch.
        z: studentized (and margin-shifted) gap of the windowed mean, see the module docstring;
            ``nan`` with a single reference seed.
        prob_worse: one-sided confidence that the run is worse than scratch by more than the margin;
            ``nan`` with a single reference seed.
        worse: whether this evaluation counts as confidently worse (always ``False`` before
            ``min_evals`` evaluations).
        consecutive: number of consecutive worse evaluations ending with this one.
        alarm: whether the alarm is on (it stays on once raised).
    """

    step: int
    evals_seen: int
    gap: float
    z: float
    prob_worse: float
    worse: bool
    consecutive: int
    alarm: bool


class CurveComparator:
    """Compare a transfer run's evaluations, as they arrive, with reference scratch curves.

    Args:
        ref_steps: (n,) evaluation steps of the reference curves, strictly increasing.
        ref_returns: (n_seeds, n) evaluation returns of each scratch seed (a (n,) array is one seed).
            Beyond the last reference step the reference is held at its last value.
        min_evals: no evaluation counts as worse before this many transfer evaluations.
        margin: tolerance: the run must be worse than scratch by more than this to count. In return
            units, or a fraction of ``high - low`` when ``task_range`` is given. Must be positive with
            a single reference seed.
        task_range: ``(low, high)`` return range of the task; makes ``margin`` a fraction in ``[0, 1)``.
        confidence: one-sided confidence needed for an evaluation to count as worse, in ``(0.5, 1)``.
        patience: consecutive worse evaluations needed to raise the alarm (>= 1).
        window: number of most recent evaluations averaged on both sides (>= 1); smooths evaluation
            noise at the cost of reacting a little later (default 1: ``patience`` already smooths).

    Raises:
        ConfigError: a shape or value above is invalid.
    """

    def __init__(
        self,
        ref_steps: ArrayLike,
        ref_returns: ArrayLike,
        *,
        min_evals: int = 3,
        margin: float = 0.0,
        task_range: tuple[float, float] | None = None,
        confidence: float = 0.975,
        patience: int = 4,
        window: int = 1,
    ) -> None:
        steps = np.asarray(ref_steps, dtype=float)
        rets = np.asarray(ref_returns, dtype=float)
        if rets.ndim == 1:
            rets = rets[None, :]
        if steps.ndim != 1 or steps.size == 0:
            raise ConfigError(
                f"ref_steps must be a non-empty 1-D array of shape (n,), got shape {steps.shape}"
            )
        if rets.ndim != 2 or rets.shape[1] != steps.size or rets.shape[0] == 0:
            raise ConfigError(
                f"ref_returns must have shape (n_seeds, {steps.size}) to match ref_steps, "
                f"got shape {rets.shape}"
            )
        if not (np.all(np.isfinite(steps)) and np.all(np.isfinite(rets))):
            raise ConfigError("ref_steps and ref_returns must be finite")
        if steps.size > 1 and np.any(np.diff(steps) <= 0):
            raise ConfigError(f"ref_steps must be strictly increasing, got {steps.tolist()}")
        for name, val in (("min_evals", min_evals), ("patience", patience), ("window", window)):
            if isinstance(val, bool) or not isinstance(val, (int, np.integer)) or val < 1:
                raise ConfigError(f"{name} must be an integer >= 1, got {val!r}")
        conf = float(confidence)
        if not 0.5 < conf < 1.0:
            raise ConfigError(f"confidence must be in (0.5, 1), got {confidence!r}")
        m = float(margin)
        if not math.isfinite(m) or m < 0:
            raise ConfigError(f"margin must be a finite number >= 0, got {margin!r}")
        if task_range is not None:
            low, high = (float(v) for v in task_range)
            if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
                raise ConfigError(f"task_range must be (low, high) with low < high, got {task_range!r}")
            if m >= 1.0:
                raise ConfigError(
                    f"with task_range, margin is a fraction of the range in [0, 1), got {margin!r}"
                )
            m *= high - low
        if rets.shape[0] == 1 and m <= 0.0:
            raise ConfigError(
                "with a single reference seed there is no spread to test against: give margin > 0 "
                "(return units, or a fraction with task_range) or more scratch seeds"
            )
        self.ref_steps = steps
        self.ref_returns = rets
        self._ref_steps_list: list[float] = steps.tolist()
        self._ref_rows = np.ascontiguousarray(rets.T)  # (n, n_seeds): one row per reference step
        self.min_evals = int(min_evals)
        self.margin = m
        self.confidence = conf
        self.patience = int(patience)
        self.window = int(window)
        self._pred_scale = math.sqrt(1.0 + 1.0 / self.n_seeds)
        self.reset()

    @property
    def last_step(self) -> int | None:
        """Step of the last evaluation fed to :meth:`update`, or ``None`` before the first."""
        return None if self._last_step is None else int(self._last_step)

    @property
    def n_seeds(self) -> int:
        """Number of reference (scratch) seeds."""
        return int(self.ref_returns.shape[0])

    def reset(self) -> None:
        """Forget the transfer run seen so far (to reuse the comparator for another run)."""
        self._last_step: float | None = None
        self._evals_seen = 0
        self._returns: deque[float] = deque(maxlen=self.window)  # last `window` transfer returns
        self._ref_cols: deque[np.ndarray] = deque(maxlen=self.window)  # matching reference columns
        self._consecutive = 0
        self.alarm_step: int | None = None
        self.last_state: DetectionState | None = None

    def _reference_at(self, step: float) -> np.ndarray:
        """(n_seeds,) reference returns linearly interpolated at ``step`` (held flat beyond the ends)."""
        steps = self._ref_steps_list
        rows = self._ref_rows
        j = bisect.bisect_right(steps, step)
        out: np.ndarray
        if j == 0:
            out = rows[0]
        elif j == len(steps):
            out = rows[-1]
        else:
            s0, s1 = steps[j - 1], steps[j]
            w = (step - s0) / (s1 - s0)
            out = rows[j - 1] if w == 0.0 else (1.0 - w) * rows[j - 1] + w * rows[j]
        return out

    def update(self, step: int, mean_return: float) -> DetectionState:
        """Feed the transfer run's next evaluation and return the comparator's state.

        Args:
            step: environment step of the evaluation, larger than the previous one.
            mean_return: mean evaluation return at that step.

        Returns:
            The :class:`DetectionState` after this evaluation.
        """
        st, ret = float(step), float(mean_return)
        if not math.isfinite(st) or not math.isfinite(ret):
            raise ConfigError(
                f"step and mean_return must be finite, got step={step!r}, mean_return={mean_return!r}"
            )
        if self._last_step is not None and st <= self._last_step:
            raise ConfigError(
                f"evaluation steps must increase: got step={step!r} after step={self._last_step:g}"
            )
        ref = self._reference_at(st)
        self._last_step = st
        self._evals_seen += 1
        self._returns.append(ret)
        self._ref_cols.append(ref)
        k = self._evals_seen
        n = ref.size
        gap = ret - float(ref.sum()) / n

        w = len(self._returns)  # min(window, evals seen)
        if w == 1:
            x, r = ret, ref
        else:
            x = sum(self._returns) / w
            r = np.sum(self._ref_cols, axis=0) / w  # (n_seeds,)
        r_mean = float(r.sum()) / n
        shifted = x - r_mean + self.margin
        if n == 1:
            z = prob = math.nan
            worse_now = shifted < 0.0
        else:
            sd = math.sqrt(float(((r - r_mean) ** 2).sum()) / (n - 1))
            if sd > 1e-12 * max(1.0, abs(r_mean)):
                z = shifted / (sd * self._pred_scale)
                prob = float(special.stdtr(n - 1, -z))
            else:  # all reference seeds agree: any shortfall beyond the margin is certain
                z = math.copysign(math.inf, shifted) if shifted != 0.0 else 0.0
                prob = 1.0 if shifted < 0.0 else (0.0 if shifted > 0.0 else 0.5)
            worse_now = prob >= self.confidence
        worse = bool(worse_now and k >= self.min_evals)
        self._consecutive = self._consecutive + 1 if worse else 0
        if self.alarm_step is None and self._consecutive >= self.patience:
            self.alarm_step = int(step)
        state = DetectionState(
            step=int(step), evals_seen=k, gap=gap, z=z, prob_worse=prob, worse=worse,
            consecutive=self._consecutive, alarm=self.alarm_step is not None,
        )
        self.last_state = state
        return state


class NegativeTransferCallback(BaseCallback):
    """Stable-Baselines3 callback that acts on :class:`CurveComparator` alarms.

    It runs no evaluations itself; it is fed evaluation results in one of two ways:

    * as ``EvalCallback(..., callback_after_eval=NegativeTransferCallback(...))``: after every
      evaluation it reads the parent's ``last_mean_reward`` at the current step;
    * by any other evaluation loop calling :meth:`on_evaluation`, with the callback also passed to
      ``learn`` so that :meth:`_on_step` can stop training.

    On each evaluation it records ``detect/gap``, ``detect/prob_worse``, ``detect/z`` and
    ``detect/alarm`` in the model's logger (they are written at the logger's next dump). When the
    alarm is first raised it logs a warning and emits :class:`NegativeTransferWarning`; then, by
    ``action``:

    * ``"warn"``: training continues;
    * ``"stop"``: training stops at the next step;
    * ``"fallback"``: ``fallback_requested`` is set and training stops; the caller restarts from
      scratch.

    ``alarm_step`` holds the step at which the alarm was raised; :meth:`steps_saved` turns it into
    compute saved.

    Args:
        comparator: the comparator holding the scratch reference curves.
        action: ``"warn"``, ``"stop"`` or ``"fallback"``.
        verbose: SB3 verbosity level.
    """

    def __init__(self, comparator: CurveComparator, action: Action = "warn", verbose: int = 0) -> None:
        super().__init__(verbose=verbose)
        if not isinstance(comparator, CurveComparator):
            raise TypeError(f"comparator must be a CurveComparator, got {type(comparator).__name__}")
        if action not in _ACTIONS:
            raise ConfigError(f"action must be one of {', '.join(_ACTIONS)}, got {action!r}")
        self.comparator = comparator
        self.action: Action = action
        self.alarm = False
        self.alarm_step: int | None = None
        self.fallback_requested = False
        self.last_state: DetectionState | None = None

    def on_evaluation(self, step: int, mean_return: float) -> DetectionState:
        """Feed one evaluation result; log it and react to a new alarm.

        Args:
            step: environment step of the evaluation (increasing between calls).
            mean_return: mean evaluation return.

        Returns:
            The comparator's :class:`DetectionState`.
        """
        state = self.comparator.update(step, mean_return)
        self.last_state = state
        if getattr(self, "model", None) is not None:
            self.logger.record("detect/gap", state.gap)
            self.logger.record("detect/prob_worse", state.prob_worse)
            self.logger.record("detect/z", state.z)
            self.logger.record("detect/alarm", int(state.alarm))
        if state.alarm and not self.alarm:
            self.alarm = True
            self.alarm_step = self.comparator.alarm_step
            if self.action == "fallback":
                self.fallback_requested = True
            msg = (
                f"negative transfer suspected at step {self.alarm_step}: the last {state.consecutive} "
                f"evaluations were worse than the scratch reference (gap {state.gap:+.4g}, "
                f"prob_worse {state.prob_worse:.3g}); action: {self.action}"
            )
            logger.warning(msg)
            warnings.warn(msg, NegativeTransferWarning, stacklevel=2)
        return state

    def _on_step(self) -> bool:
        parent = self.parent
        if isinstance(parent, EvalCallback) and math.isfinite(parent.last_mean_reward):
            last = self.comparator.last_step
            if last is None or self.num_timesteps > last:
                self.on_evaluation(self.num_timesteps, parent.last_mean_reward)
        return not (self.alarm and self.action in ("stop", "fallback"))

    @property
    def stop_requested(self) -> bool:
        """Whether the run should stop now (an alarm with action ``stop`` or ``fallback``)."""
        return self.alarm and self.action in ("stop", "fallback")

    def steps_saved(self, budget: int) -> int:
        """Training steps not spent because the run stopped at the alarm (0 without an alarm)."""
        if self.alarm_step is None or self.action == "warn":
            return 0
        return max(0, int(budget) - int(self.alarm_step))


# ------------------------------------------------------------------------------ benchmark arms' detector


def reference_curves(run_dirs: Sequence[str | Path]) -> tuple[np.ndarray, np.ndarray]:
    """Scratch curves as ``(steps (n,), returns (n_seeds, n))``, on the first run's evaluation steps."""
    from rltransfer.training import EvalCurve

    curves = [EvalCurve.load(Path(d)) for d in run_dirs]
    steps = np.asarray(curves[0].steps, dtype=float)
    rows = [np.interp(steps, np.asarray(c.steps, dtype=float), np.asarray(c.mean, dtype=float)) for c in curves]
    return steps, np.vstack(rows)


def _finite(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


class DetectionHook:
    """An evaluation hook (:class:`rltransfer.callbacks.EvalCallback`) that feeds each evaluation to a
    :class:`NegativeTransferCallback` in the same logger dump as ``eval/*``, and keeps the run's
    ``detection.json`` record (every evaluation's gap, probability and alarm; compute saved) up to date."""

    def __init__(self, detector: NegativeTransferCallback, record_path: Path, budget: int,
                 settings: dict) -> None:
        self.detector = detector
        self.record_path = Path(record_path)
        self.budget = int(budget)
        self.record: dict = {
            "enabled": True, "action": detector.action, "budget": self.budget,
            "reference_seeds": int(detector.comparator.n_seeds),
            "settings": dict(settings), "alarm_step": None, "steps_saved": 0, "would_save": 0, "evaluations": [],
        }
        self._fed: list[tuple[int, float]] = []

    def init_callback(self, model: object) -> None:
        self.detector.init_callback(model)  # type: ignore[arg-type]
        self.write()

    @property
    def stop_requested(self) -> bool:
        return self.detector.stop_requested

    def write(self) -> None:
        from rltransfer.rundir import atomic_write_json

        atomic_write_json(self.record_path, self.record)

    def on_evaluation(self, step: int, mean_return: float) -> None:
        last = self.detector.comparator.last_step
        if last is not None and step <= last:
            return  # the final evaluation of a run stopped at its alarm repeats nothing new
        self._fed.append((int(step), float(mean_return)))
        state = self.detector.on_evaluation(step, mean_return)
        self.record["evaluations"].append({"step": state.step, "gap": _finite(state.gap),
                                           "prob_worse": _finite(state.prob_worse), "worse": state.worse,
                                           "alarm": state.alarm})
        self.record["alarm_step"] = self.detector.alarm_step
        if self.detector.alarm_step is not None:
            self.record["would_save"] = max(0, self.budget - int(self.detector.alarm_step))
            self.record["steps_saved"] = (self.detector.steps_saved(self.budget)
                                          if self.detector.action == "stop" else 0)
        self.write()

    def state_dict(self) -> dict:
        return {"fed": [list(x) for x in self._fed], "record": self.record}

    def load_state_dict(self, state: dict) -> None:
        """Replay the evaluations fed before the checkpoint (the comparator is deterministic)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NegativeTransferWarning)
            for step, mean in state.get("fed", []):
                self.detector.comparator.update(int(step), float(mean))
                self._fed.append((int(step), float(mean)))
        self.detector.alarm_step = self.detector.comparator.alarm_step
        self.detector.alarm = self.detector.alarm_step is not None
        self.record = dict(state.get("record", self.record))


def detection_hook(spec: object, run_dir: Path) -> DetectionHook:
    """The detection hook of a run spec with a ``detection`` slot (transfer arms of a benchmark)."""
    det = spec.detection  # type: ignore[attr-defined]
    settings = dict(det.settings)
    ref_steps, ref_returns = reference_curves(det.reference)
    comparator = CurveComparator(
        ref_steps, ref_returns, min_evals=settings["min_evals"], margin=settings["margin"],
        task_range=tuple(spec.env.family.return_range),  # type: ignore[attr-defined]
        confidence=settings["confidence"], patience=settings["patience"], window=settings["window"],
    )
    detector = NegativeTransferCallback(comparator, action=settings["action"])
    return DetectionHook(detector, Path(run_dir) / "detection.json", spec.steps, settings)  # type: ignore[attr-defined]
