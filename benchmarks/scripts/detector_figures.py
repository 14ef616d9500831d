"""Error rates, power and compute saved of the online negative-transfer detector on synthetic curves.

Run: ``.venv/bin/python benchmarks/scripts/detector_figures.py [--pairs 10000] [--seed 0]``

At the quick suite's shape (``benchmarks/quick.yaml``: 8 transfer runs against the pair's 8 scratch runs,
an evaluation at step 0 and every ``eval.freq`` steps to the budget), for the six families of
:mod:`rltransfer.synthetic`, prints markdown tables of:

1. per-pair false alarms on null pairs, with 95% Clopper-Pearson intervals: the sequential test of
   :mod:`rltransfer.detection` at its default rate (5% per pair) against the old per-look rule at the
   quick suite's shipped settings and at its defaults (per run and per pair);
2. planted negatives at d = 1, 2, 3 (pooled sds of the family's planted metric; the speed-up families
   slowed down, ``crossover`` with its late drop, ``jumpstart`` with a lower start): detection rate,
   median alarm step as a fraction of the budget (pairs with an alarm), and compute saved, the fraction
   of the transfer runs' steps not spent when runs stop at the alarm, both when the 8 runs train at once
   and when they train 2 at a time in seed order (the quick suite's ``--workers 2``);
3. the bias of the mean AUC difference (transfer minus scratch, over pairs) when runs stop at alarms, at
   planted effects -0.2, -1 and -2 on the logistic family: the old rule with the stopped curve held flat
   to the budget or spliced with a fresh scratch run (``fallback``), the new rule held flat, and the new
   rule with :func:`rltransfer.detection.censored_metrics` on the common horizon.

Everything is vectorized over pairs (:func:`rltransfer.detection.sequential_alarms`); the old rule is
vectorized here and checked against :class:`~rltransfer.detection.CurveComparator` on a few pairs.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import yaml
from scipy import special

from rltransfer import statistics as st
from rltransfer import synthetic as sy
from rltransfer.detection import (
    CurveComparator,
    censored_metrics,
    common_horizon,
    default_groups,
    sequential_alarms,
)

EFFECTS = (1.0, 2.0, 3.0)
QUICK = Path(__file__).resolve().parents[1] / "quick.yaml"


def quick_shape() -> tuple[np.ndarray, int, dict]:
    """The quick suite's evaluation steps, seeds and detection settings (read from its YAML)."""
    data = yaml.safe_load(QUICK.read_text())
    budget, freq = int(data["budget"]), int(data["eval"]["freq"])
    steps = np.arange(0, budget + 1, freq, dtype=float)
    if steps[-1] < budget:
        steps = np.append(steps, float(budget))
    return steps, int(data["seeds"]), dict(data.get("detection", {}))


def rate_ci(hits: np.ndarray) -> str:
    k, n = int(np.sum(hits)), int(np.size(hits))
    low, high = st.clopper_pearson(k, n)
    return f"{k / n:.1%} [{low:.1%}, {high:.1%}]"


def table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------- the two rules


def old_rule(steps: np.ndarray, transfer: np.ndarray, scratch: np.ndarray, *, confidence: float, patience: int,
             window: int, min_evals: int) -> np.ndarray:
    """First alarm look (-1: none) of every run under the old per-look rule: (n_pairs, n_t)."""
    k = steps.size

    def win(c: np.ndarray) -> np.ndarray:
        cs = np.cumsum(c, axis=-1)
        lag = np.zeros_like(cs)
        lag[..., window:] = cs[..., :-window]
        return (cs - lag) / np.minimum(np.arange(1, k + 1), window)

    x, r = win(transfer), win(scratch)
    n = scratch.shape[1]
    z = (x - r.mean(axis=1, keepdims=True)) / (r.std(axis=1, ddof=1, keepdims=True) * math.sqrt(1 + 1 / n))
    worse = special.stdtr(n - 1, -z) >= confidence
    worse[..., : min_evals - 1] = False
    run = np.zeros(worse.shape[:-1], dtype=int)
    first = np.full(worse.shape[:-1], -1)
    for j in range(k):
        run = np.where(worse[..., j], run + 1, 0)
        first = np.where((first < 0) & (run >= patience), j, first)
    return first


def check_old_rule(steps: np.ndarray, batch: sy.PairBatch, settings: dict) -> None:
    """The vectorized old rule gives the comparator's alarms (``rule="per_look"``) on a few pairs."""
    got = old_rule(steps, batch.transfer[:20], batch.scratch[:20], **settings)
    for p in range(20):
        for i in range(batch.transfer.shape[1]):
            comp = CurveComparator(steps, batch.scratch[p], rule="per_look", **settings)
            look = -1
            for j, (s, v) in enumerate(zip(steps, batch.transfer[p, i], strict=True)):
                if comp.update(int(s), float(v)).alarm:
                    look = j
                    break
            assert look == got[p, i], (p, i, look, got[p, i])


def check_new_rule(steps: np.ndarray, batch: sy.PairBatch) -> None:
    """The vectorized sequential test gives the streaming comparators' alarms on a few pairs."""
    res = sequential_alarms(steps, batch.transfer[:10], batch.scratch[:10])
    n = batch.transfer.shape[1]
    for p in range(10):
        comps = [CurveComparator(steps, batch.scratch[p], runs=n, run_index=i) for i in range(n)]
        hist: dict[int, list[float]] = {i: [] for i in range(n)}
        first = -1
        for j in range(steps.size):
            for i in range(n):
                state = comps[i].update(int(steps[j]), float(batch.transfer[p, i, j]),
                                        peers={q: hist[q] for q in range(n) if q != i})
                hist[i].append(float(batch.transfer[p, i, j]))
                if state.worse and first < 0:
                    first = j
        assert first == res.look[p], (p, first, res.look[p])


# ------------------------------------------------------------------------------------- compute saved


def saved_lockstep(steps: np.ndarray, look: np.ndarray) -> np.ndarray:
    """(n_pairs,) fraction of the transfer steps not spent when all runs stop at the arm's alarm."""
    budget = steps[-1]
    return np.where(look >= 0, 1.0 - steps[np.maximum(look, 0)] / budget, 0.0)


def saved_in_order(steps: np.ndarray, transfer: np.ndarray, scratch: np.ndarray, workers: int) -> np.ndarray:
    """(n_pairs,) compute saved when the runs train ``workers`` at a time in seed order.

    A group is tested once its members have all reached a look, so a group is tested at a look when the
    batch holding its last member reaches it. When a test fires, that batch stops there and the later
    batches stop at their first evaluation (the arm's alarm is already recorded); earlier batches ran in
    full.
    """
    n_pairs, n_t, _ = transfer.shape
    budget = steps[-1]
    groups = default_groups(n_t)
    batch_of_group = {g: (g - 1) // workers for g in groups}
    n_batches = math.ceil(n_t / workers)
    spent = np.zeros(n_pairs)
    done = np.zeros(n_pairs, dtype=bool)
    for b in range(n_batches):
        size = min(workers, n_t - b * workers)
        tested = tuple(g for g in groups if batch_of_group[g] == b)
        if tested:  # the groups completed by this batch, at every look (their share of each look's level)
            res = _groups_only(steps, transfer, scratch, tested, groups)
            stop_here = ~done & res.alarm
            spent += np.where(done, 0.0, np.where(stop_here, steps[np.maximum(res.look, 0)], budget)) * size
            done |= stop_here
        else:
            spent += np.where(done, 0.0, budget) * size
    return 1.0 - spent / (n_t * budget)


def _groups_only(steps: np.ndarray, transfer: np.ndarray, scratch: np.ndarray, tested: tuple[int, ...],
                 groups: tuple[int, ...]) -> object:
    """Alarms of the tests of ``tested`` groups only, each at the share of ``groups`` it has."""
    from rltransfer.detection import SequentialAlarms, group_test, spending_levels

    k = steps.size
    share = spending_levels(k, 0.05) / len(groups)
    fired = np.zeros((transfer.shape[0], k), dtype=bool)
    for g in tested:
        p = group_test(np.swapaxes(transfer[:, :g, :], -1, -2), np.swapaxes(scratch, -1, -2)).p_value
        fired |= (p <= share) & (share > 0)
    alarm = fired.any(axis=-1)
    look = np.where(alarm, fired.argmax(axis=-1), -1)
    return SequentialAlarms(alarm, look, np.where(alarm, steps[np.maximum(look, 0)], np.nan), np.zeros_like(look),
                            share * len(groups))


# --------------------------------------------------------------------------------------------- bias


def auc_rows(steps: np.ndarray, curves: np.ndarray, low: float, high: float) -> np.ndarray:
    w, off = sy.metric_weights("auc", steps, low=low, high=high)
    return curves @ w + off


def bias_rows(steps: np.ndarray, n_pairs: int, n: int, seed: int, shipped: dict) -> list[list[str]]:
    fam = sy.get_family("logistic")
    low, high = fam.low, fam.high
    k = steps.size
    rows = []
    for effect in (-0.2, -1.0, -2.0):
        batch = sy.simulate_pairs(fam, n_pairs, n, effect=effect, steps=steps, random_state=seed + 50)
        t, s = batch.transfer, batch.scratch
        truth = sy.planted_differences(fam, effect, steps)["auc"]
        profile = sy.effect_profile(fam, effect, steps)
        full_s = auc_rows(steps, s, low, high).mean(axis=1)
        idx = np.arange(k)
        # (a) the old rule, each run stopped at its own alarm
        first = old_rule(steps, t, s, **shipped)
        stop = np.where(first >= 0, first, k - 1)[..., None]
        held = np.where(idx > stop, np.take_along_axis(t, stop, axis=-1), t)
        fresh = sy.sample_curves(fam, t.shape[:2], steps=steps, random_state=seed + 51)  # fallback runs
        shift = np.clip(idx - stop, 0, k - 1)  # the fallback's own evaluation index after the alarm
        spliced = np.where(idx > stop, np.take_along_axis(fresh, shift, axis=-1), t)
        d_hold_old = auc_rows(steps, held, low, high).mean(axis=1) - full_s
        d_fb_old = auc_rows(steps, spliced, low, high).mean(axis=1) - full_s
        # (b), (c) the sequential test: the arm's runs stop together at its alarm
        res = sequential_alarms(steps, t, s)
        look = np.where(res.alarm, res.look, k - 1)[:, None, None]
        held_new = np.where(idx > look, np.take_along_axis(t, look, axis=-1), t)
        d_hold_new = auc_rows(steps, held_new, low, high).mean(axis=1) - full_s
        d_cens = np.empty(n_pairs)
        truth_cens = np.empty(n_pairs)
        for j in np.unique(look):
            sel = look[:, 0, 0] == j
            ss = steps[: j + 1]
            if j == 0:  # a one-point span has no AUC: such pairs would be reported as censored
                d_cens[sel], truth_cens[sel] = np.nan, np.nan
                continue
            d_cens[sel] = (auc_rows(ss, t[sel, :, : j + 1], low, high).mean(axis=1)
                           - auc_rows(ss, s[sel, :, : j + 1], low, high).mean(axis=1))
            w, _ = sy.metric_weights("auc", ss, low=low, high=high)
            truth_cens[sel] = float(w @ profile[: j + 1])
        stopped_old = float(np.mean(first >= 0))
        stopped_new = float(np.mean(res.alarm))

        rows.append([f"{effect:+g}", f"{truth:+.4f}", f"{stopped_old:.1%} of runs", _bias(d_hold_old, truth),
                     _bias(d_fb_old, truth), f"{stopped_new:.1%} of pairs", _bias(d_hold_new, truth),
                     _bias(d_cens, truth), _bias(d_cens, truth, truth_cens)])
    return rows


def _bias(est: np.ndarray, truth: float, target: float | np.ndarray | None = None) -> str:
    """Mean of ``est - target`` (default: the full-budget truth), and as a share of the true difference."""
    b = float(np.nanmean(est - (truth if target is None else target)))
    return f"{b:+.4f} ({b / abs(truth):+.0%})"


def check_censored(steps: np.ndarray) -> None:
    """censored_metrics on a truncated span equals the vectorized AUC used above."""
    fam = sy.get_family("logistic")
    curve = sy.sample_curves(fam, (3,), steps=steps, random_state=7)
    for c in curve:
        cm = censored_metrics(steps, c, float(steps[5]), float(steps[-1]), threshold=fam.threshold, low=fam.low,
                              high=fam.high)
        assert cm.stopped and cm.metrics is not None and cm.horizon == steps[5]
        assert math.isclose(cm.metrics["auc"], float(auc_rows(steps[:6], c[:6], fam.low, fam.high)), rel_tol=1e-9)
    assert common_horizon([steps[-1], steps[5], steps[0]], steps[-1]) == steps[5]


# --------------------------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=10_000, help="null pairs per family (effects: a quarter)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.pairs < 100:
        parser.error(f"--pairs must be at least 100, got {args.pairs}")
    start = time.time()
    steps, n, det = quick_shape()
    shipped = {"confidence": float(det.get("confidence", 0.975)), "patience": int(det.get("patience", 4)),
               "window": int(det.get("window", 1)), "min_evals": int(det.get("min_evals", 3))}
    defaults = {"confidence": 0.975, "patience": 4, "window": 1, "min_evals": 3}
    n_eff = max(100, args.pairs // 4)
    print(f"# Online detector on synthetic curves: {n} transfer runs vs {n} scratch runs per pair, "
          f"{steps.size} evaluations (0 to {steps[-1]:.0f} every {steps[1] - steps[0]:.0f} steps), "
          f"{args.pairs} null pairs and {n_eff} planted pairs per cell, seed {args.seed}\n")
    print(f"New rule: sequential Welch-Hsu test, Pocock-type spending with Bonferroni increments, 5% per pair, "
          f"groups {default_groups(n)}, window 1, from evaluation 3. Old rule at the quick suite's settings "
          f"{shipped} and at its defaults {defaults}.\n")
    check_done = False
    rows = []
    for i, name in enumerate(sy.FAMILIES):
        batch = sy.simulate_pairs(name, args.pairs, n, steps=steps, random_state=args.seed + i)
        if not check_done:
            check_old_rule(steps, batch, shipped)
            check_new_rule(steps, batch)
            check_censored(steps)
            check_done = True
        res = sequential_alarms(steps, batch.transfer, batch.scratch)
        old_first = old_rule(steps, batch.transfer, batch.scratch, **shipped)
        old_s = old_first >= 0
        old_lost = np.where(old_s, 1.0 - steps[np.maximum(old_first, 0)] / steps[-1], 0.0).mean()
        old_d = old_rule(steps, batch.transfer, batch.scratch, **defaults) >= 0
        rows.append([name, rate_ci(res.alarm), f"{saved_lockstep(steps, res.look).mean():.2%}",
                     rate_ci(old_s.ravel()), rate_ci(old_s.any(axis=1)), f"{old_lost:.2%}",
                     rate_ci(old_d.ravel()), rate_ci(old_d.any(axis=1))])
    print("## 1. False alarms on null pairs (95% Clopper-Pearson intervals)\n")
    print(table(["family", "new: per pair", "new: steps lost", "old shipped: per run", "old shipped: per pair",
                 "old shipped: steps lost", "old defaults: per run", "old defaults: per pair"], rows))
    print("\n'steps lost': the fraction of the null transfer runs' steps not trained because of a false alarm.\n")

    rows = []
    for i, name in enumerate(sy.FAMILIES):
        kind = sy.FAMILIES[name].effect_kind
        for d in EFFECTS:
            effect = d if kind == "crossover" else -d
            batch = sy.simulate_pairs(name, n_eff, n, effect=effect, steps=steps, random_state=args.seed + 100 + i)
            res = sequential_alarms(steps, batch.transfer, batch.scratch)
            frac = res.step[res.alarm] / steps[-1]
            old = old_rule(steps, batch.transfer, batch.scratch, **shipped)
            ofrac = steps[old[old >= 0]] / steps[-1]
            osaved = np.where(old >= 0, 1.0 - steps[np.maximum(old, 0)] / steps[-1], 0.0).mean()
            rows.append([
                name, f"{effect:+g}", rate_ci(res.alarm), f"{np.median(frac):.2f}" if frac.size else "-",
                f"{saved_lockstep(steps, res.look).mean():.1%}",
                f"{saved_in_order(steps, batch.transfer, batch.scratch, 2).mean():.1%}",
                f"{np.mean(old >= 0):.1%}", f"{np.mean((old >= 0).any(axis=1)):.1%}",
                f"{np.median(ofrac):.2f}" if ofrac.size else "-", f"{osaved:.1%}",
            ])
    print("## 2. Planted negatives\n")
    print(table(["family", "effect d", "new: detected (pairs)", "new: median alarm / budget",
                 "new: saved (8 at once)", "new: saved (2 at a time)", "old shipped: detected (runs)",
                 "old shipped: any run (pairs)", "old shipped: median alarm / budget", "old shipped: saved"], rows))
    print("\nSpeed-up families: slower learning by d pooled sds of normalized AUC; crossover: its late drop of d "
          "sds of final performance (after a better start); jumpstart: a start lower by d sds, gone by 30% of "
          "the budget (hardly a negative transfer: little to detect).\n")

    print("## 3. Bias of the mean AUC difference when runs stop at alarms (logistic family)\n")
    print(table(["planted d", "true AUC diff", "old: stopped", "old, held flat: bias", "old, fallback: bias",
                 "new: stopped", "new, held flat: bias", "new, censored: bias vs full", "new, censored: bias vs its span"],
                bias_rows(steps, max(1000, args.pairs // 2), n, args.seed, shipped)))
    print("\nBias = mean over pairs of (estimated - true) AUC difference, and as a share of the true full-budget "
          "difference. 'censored': both arms' AUC on the span up to the arm's alarm (censored_metrics on "
          "common_horizon), compared with the full-budget truth and with the truth on that span. "
          f"\n\n({time.time() - start:.0f} s)")


if __name__ == "__main__":
    sys.exit(main())
