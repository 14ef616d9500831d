"""Error control of the online negative-transfer detector (rltransfer.detection) on the synthetic curve families
of rltransfer.synthetic, at the quick suite's shape (8 transfer runs against 8 scratch runs, an evaluation at
step 0 and every 2500 steps to 30000); the hook acting on the arm's alarm; honest metrics of stopped runs.

Measured numbers for every family and effect: benchmarks/scripts/detector_figures.py."""

from __future__ import annotations

import json
import math
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from rltransfer import synthetic as sy
from rltransfer.detection import (
    CurveComparator,
    DetectionHook,
    NegativeTransferCallback,
    NegativeTransferWarning,
    arm_key,
    censored_metrics,
    common_horizon,
    default_groups,
    detection_hook,
    group_test,
    sequential_alarms,
)
from rltransfer.errors import ConfigError
from rltransfer.statistics import clopper_pearson, welch_test

STEPS = np.arange(0, 30_001, 2500, dtype=float)  # benchmarks/quick.yaml: budget 30000, eval.freq 2500
N = 8  # its seeds: 8 transfer runs per arm, 8 scratch runs
ALPHA = 0.05
N_NULL = 6000


# ------------------------------------------------------------------------------------------ error rates


@pytest.mark.parametrize("family", list(sy.FAMILIES))
def test_per_pair_false_alarms_are_below_the_declared_rate(family: str) -> None:
    batch = sy.simulate_pairs(family, N_NULL, N, steps=STEPS, random_state=11)
    res = sequential_alarms(STEPS, batch.transfer, batch.scratch, alpha=ALPHA)
    k = int(res.alarm.sum())
    low, high = clopper_pearson(k, N_NULL)
    print(f"\n{family}: false alarms in {k / N_NULL:.2%} of {N_NULL} null pairs, 95% CI [{low:.2%}, {high:.2%}]")
    assert k / N_NULL <= ALPHA
    assert high < 0.06


def test_the_rate_follows_the_declared_alpha() -> None:
    """A smaller declared rate is honoured too (unequal spread: the family closest to its rate)."""
    batch = sy.simulate_pairs("unequal_spread", N_NULL, N, steps=STEPS, random_state=12)
    rates = [float(sequential_alarms(STEPS, batch.transfer, batch.scratch, alpha=a).alarm.mean())
             for a in (0.01, 0.05, 0.2)]
    print(f"\nunequal_spread null at alpha 1%, 5%, 20%: {rates}")
    assert rates[0] <= 0.01 + 0.004 and rates[1] <= 0.05 and rates[2] <= 0.2
    assert rates[0] <= rates[1] <= rates[2]


def test_runs_tested_alone_keep_the_rate_only_when_they_vary_as_scratch_does() -> None:
    """The fallback without the other runs' records (each run alone, Bonferroni over the runs) holds its
    rate on the logistic null; on unequal spread no per-run test can (module docstring), the joint one does."""
    batch = sy.simulate_pairs("logistic", N_NULL, N, steps=STEPS, random_state=13)
    alone = sequential_alarms(STEPS, batch.transfer, batch.scratch, groups=(1,))
    assert alone.alarm.mean() <= ALPHA
    spread = sy.simulate_pairs("unequal_spread", 2000, N, steps=STEPS, random_state=14)
    assert sequential_alarms(STEPS, spread.transfer, spread.scratch, groups=(1,)).alarm.mean() > 0.5
    assert sequential_alarms(STEPS, spread.transfer, spread.scratch).alarm.mean() <= ALPHA


def test_the_old_rule_at_the_shipped_settings_had_no_error_control() -> None:
    """What the issue measured, on the comparator itself (``rule="per_look"``): far above 5% per pair."""
    batch = sy.simulate_pairs("logistic", 150, N, steps=STEPS, random_state=15)
    pairs = 0
    for p in range(150):
        hit = False
        for i in range(N):
            comp = CurveComparator(STEPS, batch.scratch[p], rule="per_look", confidence=0.95, patience=3, window=2)
            for s, v in zip(STEPS, batch.transfer[p, i], strict=True):
                if comp.update(int(s), float(v)).alarm:
                    hit = True
                    break
        pairs += hit
    assert pairs / 150 > 0.2


# --------------------------------------------------------------------------------------------- power


@pytest.mark.parametrize(
    ("family", "effect", "min_rate", "max_median"),
    [("logistic", -3.0, 0.97, 0.3), ("logistic", -2.0, 0.85, 0.3), ("bimodal", -2.0, 0.97, 0.3),
     ("unequal_spread", -3.0, 0.97, 0.3), ("censored", -3.0, 0.9, 0.6), ("crossover", 3.0, 0.85, 0.8)],
    ids=["logistic-d3", "logistic-d2", "bimodal-d2", "unequal-spread-d3", "censored-d3", "crossover-late-drop-d3"],
)
def test_clear_negatives_are_detected(family: str, effect: float, min_rate: float, max_median: float) -> None:
    batch = sy.simulate_pairs(family, 1500, N, effect=effect, steps=STEPS, random_state=21)
    res = sequential_alarms(STEPS, batch.transfer, batch.scratch)
    rate = float(res.alarm.mean())
    median = float(np.median(res.step[res.alarm])) / STEPS[-1]
    print(f"\n{family} d={effect:+g}: detected in {rate:.1%} of 1500 pairs, median alarm at {median:.2f} of the budget")
    assert rate >= min_rate
    assert median <= max_median


# ------------------------------------------------------------------------------------ the pure pieces


def test_group_test_is_welch_with_hsu_degrees_of_freedom() -> None:
    rng = np.random.default_rng(0)
    t, s = rng.normal(0, 3, 6), rng.normal(1, 1, 8)
    res = group_test(t, s)
    ref = welch_test(t, s, df="hsu")
    assert res.statistic == pytest.approx(ref.diff / ref.se) and res.df == ref.df == 5
    assert res.p_value == pytest.approx(ref.p_value / 2)  # one-sided, here in the direction of the data
    one = group_test(t[:1], s)
    assert one.df == 7 and one.statistic == pytest.approx((t[0] - s.mean()) / (s.std(ddof=1) * math.sqrt(1 + 1 / 8)))
    assert group_test([5.0, 5.0], [5.0, 5.0]).p_value == 0.5
    assert group_test([4.0, 4.0], [5.0, 5.0]).p_value == 0.0
    assert group_test([4.0, 4.0], [5.0, 5.0], margin=2.0).p_value == 1.0
    with pytest.raises(ConfigError, match=r"n >= 2 reference seeds, got shape \(1,\)"):
        group_test([1.0], [1.0])


def test_streaming_comparators_make_the_vectorized_decision() -> None:
    """Runs fed one evaluation at a time, each seeing the others' evaluations so far, alarm at the look that
    :func:`sequential_alarms` finds, whatever order the runs reach a look in."""
    batch = sy.simulate_pairs("logistic", 40, N, effect=-1.5, steps=STEPS, random_state=31)
    res = sequential_alarms(STEPS, batch.transfer, batch.scratch)
    assert 0 < res.alarm.sum() < 40
    rng = np.random.default_rng(0)
    for p in range(40):
        comps = [CurveComparator(STEPS, batch.scratch[p], runs=N, run_index=i) for i in range(N)]
        seen: dict[int, list[float]] = {i: [] for i in range(N)}
        first = -1
        for k in range(STEPS.size):
            for i in rng.permutation(N):
                state = comps[i].update(int(STEPS[k]), float(batch.transfer[p, i, k]),
                                        peers={j: seen[j] for j in range(N) if j != i})
                seen[i].append(float(batch.transfer[p, i, k]))
                if state.worse and first < 0:
                    first = k
        assert first == res.look[p]


def test_default_groups() -> None:
    assert default_groups(8) == (8,) and default_groups(7) == (7,) and default_groups(5) == (5,)
    assert default_groups(1) == (1,)


def test_censored_metrics_use_the_reached_span_only() -> None:
    steps = np.array([0.0, 10.0, 20.0, 30.0, 40.0])
    rets = np.array([0.0, 10.0, 20.0, 90.0, 90.0])  # evaluations after the stop at 20 are a fallback's
    kw = {"threshold": 15.0, "low": 0.0, "high": 100.0, "last_k": 2}
    cm = censored_metrics(steps, rets, 20.0, 40.0, **kw)
    assert cm.stopped and not cm.censored and cm.reached == 20.0 and cm.horizon == 20.0
    assert cm.metrics is not None
    assert cm.metrics["auc"] == pytest.approx(0.1)  # (0 + 2*10 + 20) / 2 / 20 / 100 * 10
    assert cm.metrics["asymptotic"] == pytest.approx(15.0) and cm.metrics["time_to_threshold"] == 20.0
    # on a shorter common horizon, interpolated between evaluations
    short = censored_metrics(steps, rets, 20.0, 40.0, horizon=15.0, **kw)
    assert short.metrics is not None and short.metrics["auc"] == pytest.approx((0 + 10) / 2 * 10 / 15 / 100
                                                                                + (10 + 15) / 2 * 5 / 15 / 100)
    # a horizon past the stop: censored, no metrics
    late = censored_metrics(steps, rets, 20.0, 40.0, horizon=30.0, **kw)
    assert late.censored and late.metrics is None
    full = censored_metrics(steps, rets, None, 40.0, **kw)
    assert not full.stopped and full.horizon == 40.0 and full.metrics is not None
    # runs stopped at their first evaluation do not shorten the span
    assert common_horizon([40.0, 20.0, 0.0], 40.0) == 20.0 and common_horizon([0.0, 0.0], 40.0) == 0.0


def test_censored_metrics_remove_the_bias_of_holding_flat() -> None:
    """Planted d = -1 on logistic curves (about 30% of arms stopped at their alarm): holding the stopped curves
    flat to the budget more than doubles the mean AUC difference; comparing both arms on the common horizon
    (censored_metrics) estimates the difference on that span with a small bias (the selection of stopping)."""
    fam = sy.get_family("logistic")
    n_pairs = 4000
    batch = sy.simulate_pairs(fam, n_pairs, N, effect=-1.0, steps=STEPS, random_state=41)
    res = sequential_alarms(STEPS, batch.transfer, batch.scratch)
    assert 0.2 < res.alarm.mean() < 0.5
    k_stop = np.where(res.alarm, res.look, STEPS.size - 1)
    profile = sy.effect_profile(fam, -1.0, STEPS)
    kw = {"threshold": fam.threshold, "low": fam.low, "high": fam.high}

    def auc(curves: np.ndarray, k: int) -> np.ndarray:
        w, off = sy.metric_weights("auc", STEPS[: k + 1], low=fam.low, high=fam.high)
        return curves[..., : k + 1] @ w + off

    held = np.where(np.arange(STEPS.size) > k_stop[:, None, None],
                    np.take_along_axis(batch.transfer, k_stop[:, None, None], axis=-1), batch.transfer)
    truth = sy.planted_differences(fam, -1.0, STEPS)["auc"]
    held_bias = float(np.mean(auc(held, STEPS.size - 1).mean(1) - auc(batch.scratch, STEPS.size - 1).mean(1)) - truth)
    est, span_truth = np.empty(n_pairs), np.empty(n_pairs)
    for k in np.unique(k_stop):
        sel = k_stop == k
        est[sel] = auc(batch.transfer[sel], k).mean(1) - auc(batch.scratch[sel], k).mean(1)
        w, _ = sy.metric_weights("auc", STEPS[: k + 1], low=fam.low, high=fam.high)
        span_truth[sel] = float(w @ profile[: k + 1])
    for p in np.flatnonzero(res.alarm)[:20]:  # the library function gives these numbers
        stop = STEPS[k_stop[p]]
        horizon = common_horizon([stop] * N + [STEPS[-1]] * N, STEPS[-1])
        a_t = [censored_metrics(STEPS, c, stop, STEPS[-1], horizon=horizon, **kw).metrics["auc"]  # type: ignore[index]
               for c in batch.transfer[p]]
        a_s = [censored_metrics(STEPS, c, None, STEPS[-1], horizon=horizon, **kw).metrics["auc"]  # type: ignore[index]
               for c in batch.scratch[p]]
        assert np.mean(a_t) - np.mean(a_s) == pytest.approx(est[p])
    cens_bias = float(np.mean(est - span_truth))
    print(f"\nd=-1: held flat bias {held_bias / abs(truth):+.0%}, censored bias {cens_bias / abs(truth):+.0%} "
          "of the true AUC difference")
    assert held_bias < -0.5 * abs(truth)
    assert abs(cens_bias) < 0.1 * abs(truth)


# ------------------------------------------------------------------------------------------ the hook


def _record(path: Path, returns: list[float], key: str, alarm: dict | None = None) -> None:
    path.mkdir(parents=True, exist_ok=True)
    evals = [{"step": int(STEPS[i]), "look": i, "mean_return": r} for i, r in enumerate(returns)]
    (path / "detection.json").write_text(json.dumps({"arm_key": key, "evaluations": evals, "arm_alarm": alarm}))


def _hook(tmp_path: Path, runs: int, index: int, action: str = "stop", key: str = "arm") -> DetectionHook:
    """A hook with nested groups (the first half, then all): the mechanism ``groups=`` allows, exercised
    here because it is the harder case (the default is one group of all runs)."""
    ref = 450.0 + np.linspace(-30, 30, N)[:, None] + np.zeros((N, STEPS.size))
    comp = CurveComparator(STEPS, ref, runs=runs, run_index=index, groups=(math.ceil(runs / 2), runs))
    siblings = [tmp_path / f"seed{i}" for i in range(runs)]
    (tmp_path / f"seed{index}").mkdir(parents=True, exist_ok=True)
    return DetectionHook(NegativeTransferCallback(comp, action=action),  # type: ignore[arg-type]
                         tmp_path / f"seed{index}" / "detection.json", int(STEPS[-1]), {"action": action},
                         siblings=siblings, arm=key)


def test_hook_tests_the_arm_jointly_and_stops_the_run(tmp_path: Path) -> None:
    for i in range(3):  # the first three seeds ran (e.g. to the end) far below scratch
        _record(tmp_path / f"seed{i}", [20.0 + i] * STEPS.size, "arm")
    _record(tmp_path / "seed5", [15.0] * STEPS.size, "another-suite-version")  # a stale folder: ignored
    hook = _hook(tmp_path, runs=6, index=3)
    assert hook.detector.comparator.groups == (3, 6)
    for k in range(2):
        hook.on_evaluation(int(STEPS[k]), 25.0)  # no test before the third evaluation (min_evals 3)
    assert not hook.stop_requested
    with pytest.warns(NegativeTransferWarning, match="first 3 of the arm's 6 runs"):
        hook.on_evaluation(int(STEPS[2]), 25.0)
    assert hook.stop_requested
    rec = json.loads((tmp_path / "seed3" / "detection.json").read_text())
    assert rec["alarm_step"] == STEPS[2] and rec["arm_alarm"]["source"] == "test"
    assert rec["arm_alarm"]["group"] == 3 and rec["arm_alarm"]["p_value"] <= rec["arm_alarm"]["level"]
    assert rec["evaluations"][-1]["peers"] == [0, 1, 2] and rec["evaluations"][0]["mean_return"] == 25.0
    assert rec["steps_saved"] == STEPS[-1] - STEPS[2] and rec["runs"] == 6 and rec["alpha"] == 0.05
    # a later run of the arm stops at its first evaluation: the arm's alarm is in seed3's record
    later = _hook(tmp_path, runs=6, index=4, action="fallback")
    with pytest.warns(NegativeTransferWarning, match="another run of this arm"):
        later.on_evaluation(0, 480.0)
    assert later.stop_requested and later.detector.fallback_requested and later.detector.alarm_step == 0


def test_hook_without_complete_groups_does_not_alarm_and_resumes_identically(tmp_path: Path) -> None:
    _record(tmp_path / "seed0", [20.0] * 4, "arm")  # one other run, not yet at the later looks
    hook = _hook(tmp_path, runs=8, index=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for k in range(4):
            hook.on_evaluation(int(STEPS[k]), 20.0)
    assert not hook.stop_requested and all(e["group"] == 0 for e in hook.record["evaluations"])
    _record(tmp_path / "seed0", [20.0] * 6, "arm")
    for i in range(2, 4):
        _record(tmp_path / f"seed{i}", [20.0] * 6, "arm")
    with pytest.warns(NegativeTransferWarning):
        hook.on_evaluation(int(STEPS[4]), 20.0)
    assert hook.stop_requested and hook.detector.alarm_step == STEPS[4]
    # a resumed run replays what each evaluation saw, whatever the other records say now
    state = json.loads(json.dumps(hook.state_dict()))
    for i in (0, 2, 3):
        _record(tmp_path / f"seed{i}", [480.0] * 6, "arm")
    again = _hook(tmp_path, runs=8, index=1)
    again.load_state_dict(state)
    assert again.stop_requested and again.detector.alarm_step == STEPS[4]
    assert again.detector.comparator.last_step == STEPS[4]


def _curve(run_dir: Path, steps: np.ndarray, level: float) -> None:
    from rltransfer.training import EvalCurve

    curve = EvalCurve()
    for s in steps:
        curve.append(int(s), [level, level + 4.0], [500, 500])
    run_dir.mkdir(parents=True, exist_ok=True)
    curve.save(run_dir)


def test_detection_hook_finds_the_arms_runs_and_stops_a_real_run(tmp_path: Path) -> None:
    """A tiny PPO run of a benchmark-like layout: the pair's scratch runs solved the task, the arm's other runs
    learnt nothing; the run stops at the first tested evaluation."""
    sys.path.insert(0, str(Path(__file__).parent))
    from tiny import tiny

    from rltransfer.pipeline import execute
    from rltransfer.rundir import read_status
    from rltransfer.spec import DetectionSpec, train_spec

    eval_steps = np.arange(0, 257, 64)
    pair = tmp_path / "runs" / "p"
    seeds = list(range(6))
    for s in seeds:
        _curve(pair / "scratch" / f"seed{s}", eval_steps, 470.0 + 5 * s)
    settings = {"enable": True, "action": "stop", "min_evals": 3, "margin": 0.0, "window": 1}
    det = DetectionSpec(settings=settings, reference=tuple(str(pair / "scratch" / f"seed{s}") for s in seeds))

    def spec(seed: int) -> object:
        base = train_spec("cartpole", tiny("ppo", "cartpole"), steps=256, seed=seed, eval_freq=64, eval_episodes=2)
        return base.model_copy(update={"detection": det})

    key = arm_key(spec(5))
    assert arm_key(spec(0)) == key  # the seeds of an arm share the key
    for s in seeds[:5]:
        _record(pair / "arm" / f"seed{s}", [9.0 + s] * eval_steps.size, key)
    hook = detection_hook(spec(5), pair / "arm" / "seed5")
    assert hook.detector.comparator.runs == 6 and hook.detector.comparator.run_index == 5
    assert hook.detector.comparator.groups == (6,)  # one group: the alarm does not depend on the schedule
    run_dir = pair / "arm" / "seed5"
    with pytest.warns(NegativeTransferWarning):
        execute(spec(5), run_dir)  # type: ignore[arg-type]
    rec = json.loads((run_dir / "detection.json").read_text())
    assert rec["alarm_step"] == 128 and rec["arm_alarm"]["source"] == "test"
    assert rec["steps_saved"] == 128
    assert int(read_status(run_dir)["steps"]) <= 160  # stopped at the alarm (a rollout of 64 steps at most)
    # outside the layout (reference folders not named seed<k>) each run is tested alone, Bonferroni over them
    alone = detection_hook(spec(5), tmp_path / "elsewhere")
    assert alone.detector.comparator.groups == (1,) and alone.detector.comparator.runs == 6
