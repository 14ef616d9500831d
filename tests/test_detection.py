"""Tests of rltransfer.detection: the comparator's logic, its false-alarm rate and detection power on
synthetic learning curves, and the SB3 callback driven by hand and by a tiny PPO run."""

from __future__ import annotations

import math
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
from stable_baselines3.common.logger import Logger

from rltransfer.detection import (
    CurveComparator,
    DetectionState,
    NegativeTransferCallback,
    NegativeTransferWarning,
)
from rltransfer.errors import ConfigError

# ---------------------------------------------------------------------------------------------
# comparator logic


def test_gap_interpolates_reference_onto_transfer_step() -> None:
    comp = CurveComparator([0, 10], [[0.0, 10.0], [2.0, 12.0]], min_evals=1)
    state = comp.update(5, 4.0)  # reference at step 5: seeds 5 and 7, mean 6
    assert isinstance(state, DetectionState)
    assert state.gap == pytest.approx(-2.0)
    assert state.evals_seen == 1 and state.step == 5
    # beyond the last reference step the reference is held at its last value (mean 11)
    assert comp.update(50, 11.0).gap == pytest.approx(0.0)


def test_prob_worse_is_the_t_prediction_probability() -> None:
    from scipy import stats

    ref = np.array([[100.0], [110.0], [90.0], [105.0], [95.0]])  # one step, five seeds
    comp = CurveComparator([0], ref, min_evals=1)
    state = comp.update(0, 80.0)
    sd = ref.std(ddof=1)
    z = (80.0 - 100.0) / (sd * math.sqrt(1 + 1 / 5))
    assert state.z == pytest.approx(z)
    assert state.prob_worse == pytest.approx(stats.t.sf(z, df=4))


def _ref(
    n_seeds: int = 5, n: int = 10, level: float = 100.0, spread: float = 5.0
) -> tuple[np.ndarray, np.ndarray]:
    """Reference curves flat at ``level``, seeds spread evenly over ``level +- spread``."""
    steps = np.arange(n) * 100
    offsets = np.linspace(-spread, spread, n_seeds)[:, None]
    return steps, level + offsets + np.zeros((n_seeds, n))


def test_min_evals_patience_and_latched_alarm() -> None:
    steps, ref = _ref()
    comp = CurveComparator(steps, ref, min_evals=3, patience=2, confidence=0.95)
    states = [comp.update(int(s), 0.0) for s in steps[:5]]  # far below the reference
    assert [s.worse for s in states] == [False, False, True, True, True]
    assert [s.alarm for s in states] == [False, False, False, True, True]
    assert [s.consecutive for s in states] == [0, 0, 1, 2, 3]
    assert comp.alarm_step == int(steps[3])
    # a good evaluation resets the streak but not the alarm
    state = comp.update(int(steps[5]), 100.0)
    assert not state.worse and state.consecutive == 0 and state.alarm
    assert comp.alarm_step == int(steps[3])
    comp.reset()
    assert comp.alarm_step is None and comp.last_step is None


def test_streak_must_be_consecutive() -> None:
    steps, ref = _ref()
    comp = CurveComparator(steps, ref, min_evals=1, patience=3, confidence=0.95)
    for s, r in zip(steps, [0.0, 0.0, 100.0, 0.0, 0.0, 100.0, 0.0, 0.0, 100.0, 100.0], strict=True):
        comp.update(int(s), r)
    assert comp.alarm_step is None


def test_equal_curve_is_not_worse() -> None:
    steps, ref = _ref()
    comp = CurveComparator(steps, ref, min_evals=1, patience=1)
    for s in steps:
        state = comp.update(int(s), 100.0)
        assert not state.worse and state.prob_worse == pytest.approx(0.5)


def test_margin_in_return_units_and_as_fraction() -> None:
    steps, ref = _ref(spread=0.0)  # zero spread: any shortfall beyond the margin is certain
    comp = CurveComparator(steps, ref, min_evals=1, patience=1, margin=10.0)
    assert not comp.update(0, 95.0).worse  # 5 below, within the margin
    assert comp.update(100, 85.0).worse
    frac = CurveComparator(steps, ref, margin=0.1, task_range=(0, 500))
    assert frac.margin == pytest.approx(50.0)
    with pytest.raises(ConfigError, match="fraction"):
        CurveComparator(steps, ref, margin=2.0, task_range=(0, 500))


def test_single_reference_seed_needs_margin() -> None:
    steps = np.arange(5) * 10
    with pytest.raises(ConfigError, match="single reference seed"):
        CurveComparator(steps, np.full(5, 100.0))
    comp = CurveComparator(steps, np.full(5, 100.0), margin=20.0, min_evals=1, patience=2)
    s1, s2 = comp.update(0, 70.0), comp.update(10, 70.0)
    assert s1.worse and s2.alarm
    assert math.isnan(s2.prob_worse) and math.isnan(s2.z)
    assert not CurveComparator(steps, np.full(5, 100.0), margin=20.0, min_evals=1).update(0, 85.0).worse


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"ref_steps": [0, 10, 20], "ref_returns": np.zeros((3, 2))}, r"shape \(n_seeds, 3\)"),
        ({"ref_steps": [0, 10, 5], "ref_returns": np.zeros((3, 3))}, "strictly increasing"),
        ({"ref_steps": [], "ref_returns": np.zeros((3, 0))}, "non-empty"),
        ({"ref_steps": [0, 10], "ref_returns": np.zeros((3, 2)), "confidence": 0.3}, "confidence"),
        ({"ref_steps": [0, 10], "ref_returns": np.zeros((3, 2)), "patience": 0}, "patience"),
        ({"ref_steps": [0, 10], "ref_returns": np.zeros((3, 2)), "margin": -1.0}, "margin"),
    ],
    ids=["shape", "steps-order", "empty", "confidence", "patience", "margin"],
)
def test_comparator_validation(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        CurveComparator(**kwargs)


def test_update_rejects_non_increasing_steps() -> None:
    steps, ref = _ref()
    comp = CurveComparator(steps, ref)
    comp.update(100, 1.0)
    with pytest.raises(ConfigError, match=r"step=100 after step=100"):
        comp.update(100, 2.0)
    with pytest.raises(ConfigError, match="finite"):
        comp.update(200, math.nan)


# ---------------------------------------------------------------------------------------------
# synthetic validation: false alarms on null curves, detection of clearly worse curves

STEPS = np.arange(0, 100_001, 4000)  # 26 evaluations over a 100k-step budget
N_REF = 5


def synthetic_curves(rng: np.random.Generator, shape: tuple[int, ...], mid_shift: float = 0.0,
                     asym_scale: float = 1.0) -> np.ndarray:
    """Logistic learning curves on a 0..500 scale, shape ``shape + (len(STEPS),)`` (see test_statistics)."""
    x = STEPS / STEPS[-1]
    asym = np.clip(rng.normal(430, 40, shape), 0, 500) * asym_scale
    mid = rng.normal(0.45, 0.08, shape) + mid_shift
    rate = np.exp(rng.normal(np.log(10), 0.25, shape))
    mean = asym[..., None] / (1 + np.exp(-rate[..., None] * (x - mid[..., None])))
    return np.clip(mean + rng.normal(0, 20, mean.shape), 0, 500)


def alarm_rate(n_runs: int, seed: int, **effect: float) -> tuple[float, float]:
    """Fraction of simulated transfer runs that raise the alarm, and the mean alarm step.

    Every run gets a fresh reference of 5 scratch seeds; the comparator uses its defaults.
    """
    rng = np.random.default_rng(seed)
    refs = synthetic_curves(rng, (n_runs, N_REF))
    runs = synthetic_curves(rng, (n_runs,), **effect)
    alarm_steps = []
    for ref, run in zip(refs, runs, strict=True):
        comp = CurveComparator(STEPS, ref)
        for step, ret in zip(STEPS, run, strict=True):
            if comp.update(int(step), float(ret)).alarm:
                alarm_steps.append(comp.alarm_step)
                break
    rate = len(alarm_steps) / n_runs
    return rate, float(np.mean(alarm_steps)) if alarm_steps else math.nan


def test_false_alarm_rate_on_null_curves() -> None:
    rate, mean_step = alarm_rate(2000, seed=1)
    print(f"\nnull curves: false alarms in {rate:.2%} of 2000 runs (26 evaluations each), "
          f"mean alarm step {mean_step:.0f}")
    assert rate <= 0.05


@pytest.mark.parametrize(
    ("effect", "min_rate"),
    [
        ({"asym_scale": 0.5}, 0.80),  # plateaus at half the scratch return
        ({"asym_scale": 0.1}, 0.80),  # hardly learns at all
        ({"mid_shift": 0.3}, 0.0),  # learns 30% of the budget later: reported, not asserted
    ],
    ids=["half-plateau", "no-learning", "slower-learning"],
)
def test_detection_of_clearly_worse_curves(effect: dict, min_rate: float) -> None:
    rate, mean_step = alarm_rate(1000, seed=2, **effect)
    print(f"\n{effect}: alarm in {rate:.1%} of 1000 runs, mean alarm step {mean_step:.0f} of {STEPS[-1]}")
    assert rate >= min_rate
    assert mean_step < STEPS[-1]


# ---------------------------------------------------------------------------------------------
# the callback, driven by hand


def _callback(action: str, **kwargs: float) -> tuple[NegativeTransferCallback, SimpleNamespace]:
    steps, ref = _ref()
    comp = CurveComparator(steps, ref, min_evals=1, patience=2, **kwargs)
    cb = NegativeTransferCallback(comp, action=action)  # type: ignore[arg-type]
    model = SimpleNamespace(logger=Logger(folder=None, output_formats=[]), num_timesteps=0)
    cb.init_callback(model)  # type: ignore[arg-type]
    return cb, model


@pytest.mark.parametrize("action", ["stop", "fallback"])
def test_callback_stops_on_alarm(action: str) -> None:
    cb, model = _callback(action)
    model.num_timesteps = 100
    cb.on_evaluation(100, 0.0)
    assert cb.on_step() is True  # one worse evaluation is not an alarm (patience 2)
    model.num_timesteps = 200
    with pytest.warns(NegativeTransferWarning, match="negative transfer suspected at step 200"):
        state = cb.on_evaluation(200, 0.0)
    assert state.alarm and cb.alarm and cb.alarm_step == 200
    assert cb.on_step() is False
    assert cb.fallback_requested is (action == "fallback")
    assert cb.steps_saved(1000) == 800


def test_callback_warn_keeps_training() -> None:
    cb, _model = _callback("warn")
    cb.on_evaluation(100, 0.0)
    with pytest.warns(NegativeTransferWarning):
        cb.on_evaluation(200, 0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the warning is emitted once, not on every evaluation
        cb.on_evaluation(300, 0.0)
    assert cb.alarm and cb.on_step() is True
    assert not cb.fallback_requested
    assert cb.steps_saved(1000) == 0


def test_callback_logs_detect_keys() -> None:
    cb, model = _callback("warn")
    state = cb.on_evaluation(100, 90.0)
    values = model.logger.name_to_value
    assert {"detect/gap", "detect/prob_worse", "detect/alarm", "detect/z"} <= set(values)
    assert values["detect/gap"] == pytest.approx(state.gap) == pytest.approx(-10.0)
    assert values["detect/prob_worse"] == pytest.approx(state.prob_worse)
    assert values["detect/alarm"] == 0


def test_callback_without_model_still_detects() -> None:
    steps, ref = _ref()
    cb = NegativeTransferCallback(CurveComparator(steps, ref, min_evals=1, patience=1), action="stop")
    with pytest.warns(NegativeTransferWarning):
        assert cb.on_evaluation(0, 0.0).alarm


def test_callback_rejects_bad_action() -> None:
    steps, ref = _ref()
    with pytest.raises(ConfigError, match="action must be one of warn, stop, fallback"):
        NegativeTransferCallback(CurveComparator(steps, ref), action="restart")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# the callback wired to a tiny PPO through EvalCallback(callback_after_eval=...)


def test_callback_after_eval_stops_tiny_ppo() -> None:
    gym = pytest.importorskip("gymnasium")
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import EvalCallback
    from stable_baselines3.common.monitor import Monitor

    # a scratch reference that solves CartPole from the start: an untrained policy is clearly worse
    steps = np.arange(0, 257, 32)
    ref = 500.0 - np.linspace(0, 20, 5)[:, None] + np.zeros((5, steps.size))
    comparator = CurveComparator(steps, ref, min_evals=1, patience=2)
    detector = NegativeTransferCallback(comparator, action="fallback")
    eval_cb = EvalCallback(Monitor(gym.make("CartPole-v1")), eval_freq=32, n_eval_episodes=2,
                           callback_after_eval=detector, verbose=0)
    model = PPO("MlpPolicy", "CartPole-v1", n_steps=64, batch_size=32, n_epochs=1,
                policy_kwargs={"net_arch": [16]}, seed=0, device="cpu")
    with pytest.warns(NegativeTransferWarning):
        model.learn(total_timesteps=256, callback=eval_cb)
    assert detector.alarm_step == 64  # evaluations at 32 and 64, patience 2
    assert detector.fallback_requested
    assert model.num_timesteps == 64  # training stopped at the alarm
    assert detector.steps_saved(256) == 192
    assert "detect/alarm" in model.logger.name_to_value
