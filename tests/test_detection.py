"""Tests of rltransfer.detection: the comparator's logic (the sequential rule and the old per-look rule), its
detection power on clearly worse synthetic curves, and the SB3 callback driven by hand and by a tiny PPO run.
The error rates on the synthetic families are in tests/test_detector_error.py."""

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
    sequential_alarms,
    spending_levels,
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


def test_per_look_rule_min_evals_patience_and_latched_alarm() -> None:
    steps, ref = _ref()
    comp = CurveComparator(steps, ref, min_evals=3, patience=2, confidence=0.95, rule="per_look")
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


def test_per_look_rule_streak_must_be_consecutive() -> None:
    steps, ref = _ref()
    comp = CurveComparator(steps, ref, min_evals=1, patience=3, confidence=0.95, rule="per_look")
    for s, r in zip(steps, [0.0, 0.0, 100.0, 0.0, 0.0, 100.0, 0.0, 0.0, 100.0, 100.0], strict=True):
        comp.update(int(s), r)
    assert comp.alarm_step is None


@pytest.mark.parametrize("rule", ["sequential", "per_look"])
def test_equal_curve_is_not_worse(rule: str) -> None:
    steps, ref = _ref()
    comp = CurveComparator(steps, ref, min_evals=1, patience=1, rule=rule)  # type: ignore[arg-type]
    for s in steps:
        state = comp.update(int(s), 100.0)
        assert not state.worse and state.prob_worse == pytest.approx(0.5)
    assert comp.alarm_step is None


@pytest.mark.parametrize("rule", ["sequential", "per_look"])
def test_margin_in_return_units_and_as_fraction(rule: str) -> None:
    steps, ref = _ref(spread=0.0)  # zero spread: any shortfall beyond the margin is certain
    comp = CurveComparator(steps, ref, min_evals=1, patience=1, margin=10.0, rule=rule)  # type: ignore[arg-type]
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
    comp = CurveComparator(steps, np.full(5, 100.0), margin=20.0, min_evals=1, patience=2, rule="per_look")
    s1, s2 = comp.update(0, 70.0), comp.update(10, 70.0)
    assert s1.worse and s2.alarm
    assert math.isnan(s2.prob_worse) and math.isnan(s2.z)
    seq = CurveComparator(steps, np.full(5, 100.0), margin=20.0, min_evals=1)
    assert seq.update(0, 70.0).alarm and math.isnan(seq.last_state.z)  # type: ignore[union-attr]
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
        ({"ref_steps": [0, 10], "ref_returns": np.zeros((3, 2)), "alpha": 0.7}, r"alpha .*\(0, 0.5\), got 0.7"),
        ({"ref_steps": [0, 10], "ref_returns": np.zeros((3, 2)), "runs": 0}, "runs must be an integer >= 1"),
        ({"ref_steps": [0, 10], "ref_returns": np.zeros((3, 2)), "runs": 4, "run_index": 4},
         r"run_index must be in \[0, runs=4\), got 4"),
        ({"ref_steps": [0, 10], "ref_returns": np.zeros((3, 2)), "runs": 4, "groups": (2, 5)},
         r"groups must be sizes in \[1, runs=4\], got \[2, 5\]"),
        ({"ref_steps": [0, 10], "ref_returns": np.zeros((3, 2)), "rule": "t-test"},
         "rule must be one of sequential, per_look, got 't-test'"),
        ({"ref_steps": [0, 10], "ref_returns": np.zeros((3, 2)), "spending": "haybittle"}, "spending must be one of"),
    ],
    ids=["shape", "steps-order", "empty", "confidence", "patience", "margin", "alpha", "runs", "run-index",
         "groups", "rule", "spending"],
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
# the sequential rule: levels, groups of runs, the arm's alarm


def test_a_single_run_far_below_alarms_at_the_first_tested_look() -> None:
    steps, ref = _ref()
    comp = CurveComparator(steps, ref, min_evals=3)
    states = [comp.update(int(s), 0.0) for s in steps[:4]]
    assert [s.worse for s in states] == [False, False, True, True]
    assert [s.alarm for s in states] == [False, False, True, True]
    assert [s.look for s in states] == [0, 1, 2, 3]
    assert comp.alarm_step == int(steps[2]) and comp.alarm_source == "test"
    first = states[2]
    assert first.group == 1 and first.level == pytest.approx(spending_levels(10, 0.05)[2])
    assert first.p_value <= first.level and first.prob_worse == pytest.approx(1 - first.p_value)
    assert np.isnan(states[0].level) and states[0].group == 0  # no test before min_evals


def test_group_waits_for_its_members_and_uses_their_values() -> None:
    steps, ref = _ref()
    comps = [CurveComparator(steps, ref, min_evals=1, runs=3, run_index=i) for i in range(3)]
    assert comps[0].groups == (3,)
    s0 = comps[0].update(0, 0.0)  # the others have not reached look 0: no test
    assert not s0.worse and s0.group == 0
    s1 = comps[1].update(0, 1.0, peers={0: [0.0]})
    assert s1.group == 0
    s2 = comps[2].update(0, 2.0, peers={0: [0.0], 1: [1.0]})
    assert s2.worse and s2.alarm and s2.group == 3 and s2.source == "test"
    # the peers' values count: if they sat at the reference, the group is not worse
    ok = CurveComparator(steps, ref, min_evals=1, runs=3, run_index=2).update(0, 99.0, peers={0: [101.0], 1: [100.0]})
    assert not ok.worse and ok.group == 3
    # the other runs take up the arm's alarm at their next evaluation
    late = comps[0].update(100, 100.0, peers={1: [1.0], 2: [2.0]}, peer_alarm=True)
    assert late.alarm and late.source == "peer" and comps[0].alarm_step == 100


def test_evaluations_beyond_the_planned_looks_are_not_tested() -> None:
    steps, ref = _ref(n=4)
    comp = CurveComparator(steps, ref, min_evals=1)
    assert comp.n_looks == 4 and comp.levels.sum() == pytest.approx(0.05)
    for s in steps:
        comp.update(int(s), 100.0)
    state = comp.update(10_000, 0.0)
    assert not state.worse and state.group == 0 and comp.alarm_step is None


def test_spending_levels() -> None:
    lv = spending_levels(13, 0.05, min_evals=3)
    assert lv[:2].tolist() == [0.0, 0.0] and lv.sum() == pytest.approx(0.05)
    assert np.all(np.diff(lv[2:]) < 0)  # Pocock-type: front-loaded
    obf = spending_levels(13, 0.05, min_evals=3, spending="obrien_fleming")
    assert obf.sum() == pytest.approx(0.05) and np.all(np.diff(obf[2:]) > 0)
    assert spending_levels(13, 0.05, spending="linear")[2:] == pytest.approx(np.full(11, 0.05 / 11))
    assert not spending_levels(2, 0.05, min_evals=3).any()


# ---------------------------------------------------------------------------------------------
# synthetic validation: detection of clearly worse curves (error rates: tests/test_detector_error.py)

STEPS = np.arange(0, 100_001, 4000)  # 26 evaluations over a 100k-step budget
N_RUNS = 8


def synthetic_curves(rng: np.random.Generator, shape: tuple[int, ...], mid_shift: float = 0.0,
                     asym_scale: float = 1.0) -> np.ndarray:
    """Logistic learning curves on a 0..500 scale, shape ``shape + (len(STEPS),)`` (see test_statistics)."""
    x = STEPS / STEPS[-1]
    asym = np.clip(rng.normal(430, 40, shape), 0, 500) * asym_scale
    mid = rng.normal(0.45, 0.08, shape) + mid_shift
    rate = np.exp(rng.normal(np.log(10), 0.25, shape))
    mean = asym[..., None] / (1 + np.exp(-rate[..., None] * (x - mid[..., None])))
    return np.clip(mean + rng.normal(0, 20, mean.shape), 0, 500)


def alarm_rate(n_pairs: int, seed: int, **effect: float) -> tuple[float, float]:
    """Fraction of simulated arms (8 transfer runs vs 8 scratch runs) whose alarm is raised, and the mean
    alarm step; the comparator's defaults."""
    rng = np.random.default_rng(seed)
    refs = synthetic_curves(rng, (n_pairs, N_RUNS))
    runs = synthetic_curves(rng, (n_pairs, N_RUNS), **effect)
    res = sequential_alarms(STEPS, runs, refs)
    return float(res.alarm.mean()), float(np.mean(res.step[res.alarm])) if res.alarm.any() else math.nan


def test_no_false_alarm_on_these_null_curves() -> None:
    rate, _ = alarm_rate(2000, seed=1)
    print(f"\nnull curves: false alarms in {rate:.2%} of 2000 arms of 8 runs")
    assert rate <= 0.02


@pytest.mark.parametrize(
    ("effect", "min_rate"),
    [
        ({"asym_scale": 0.5}, 0.99),  # plateaus at half the scratch return
        ({"asym_scale": 0.1}, 0.99),  # hardly learns at all
        ({"mid_shift": 0.3}, 0.95),  # learns 30% of the budget later
    ],
    ids=["half-plateau", "no-learning", "slower-learning"],
)
def test_detection_of_clearly_worse_curves(effect: dict, min_rate: float) -> None:
    rate, mean_step = alarm_rate(1000, seed=2, **effect)
    print(f"\n{effect}: alarm in {rate:.1%} of 1000 arms, mean alarm step {mean_step:.0f} of {STEPS[-1]}")
    assert rate >= min_rate
    assert mean_step < 0.75 * STEPS[-1]

# ---------------------------------------------------------------------------------------------
# the callback, driven by hand


def _callback(action: str, **kwargs: float) -> tuple[NegativeTransferCallback, SimpleNamespace]:
    steps, ref = _ref()
    comp = CurveComparator(steps, ref, min_evals=2, **kwargs)  # the first evaluation is not tested
    cb = NegativeTransferCallback(comp, action=action)  # type: ignore[arg-type]
    model = SimpleNamespace(logger=Logger(folder=None, output_formats=[]), num_timesteps=0)
    cb.init_callback(model)  # type: ignore[arg-type]
    return cb, model


@pytest.mark.parametrize("action", ["stop", "fallback"])
def test_callback_stops_on_alarm(action: str) -> None:
    cb, model = _callback(action)
    model.num_timesteps = 100
    cb.on_evaluation(100, 0.0)
    assert cb.on_step() is True  # no test at the first evaluation (min_evals 2)
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
    cb.on_evaluation(100, 100.0)
    state = cb.on_evaluation(200, 90.0)
    values = model.logger.name_to_value
    assert {"detect/gap", "detect/prob_worse", "detect/alarm", "detect/z", "detect/p_value"} <= set(values)
    assert values["detect/gap"] == pytest.approx(state.gap) == pytest.approx(-10.0)
    assert values["detect/prob_worse"] == pytest.approx(state.prob_worse)
    assert values["detect/p_value"] == pytest.approx(state.p_value) == pytest.approx(1 - state.prob_worse)
    assert 0.5 < state.prob_worse < 1 and values["detect/alarm"] == 0


def test_callback_without_model_still_detects() -> None:
    steps, ref = _ref()
    cb = NegativeTransferCallback(CurveComparator(steps, ref, min_evals=1), action="stop")
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
    comparator = CurveComparator(steps, ref, min_evals=2)  # SB3 evaluates at 32 and 64: the test at 64
    detector = NegativeTransferCallback(comparator, action="fallback")
    eval_cb = EvalCallback(Monitor(gym.make("CartPole-v1")), eval_freq=32, n_eval_episodes=2,
                           callback_after_eval=detector, verbose=0)
    model = PPO("MlpPolicy", "CartPole-v1", n_steps=64, batch_size=32, n_epochs=1,
                policy_kwargs={"net_arch": [16]}, seed=0, device="cpu")
    with pytest.warns(NegativeTransferWarning):
        model.learn(total_timesteps=256, callback=eval_cb)
    assert detector.alarm_step == 64  # evaluations at 32 and 64, the first tested at the second
    assert detector.fallback_requested
    assert model.num_timesteps == 64  # training stopped at the alarm
    assert detector.steps_saved(256) == 192
    assert "detect/alarm" in model.logger.name_to_value
