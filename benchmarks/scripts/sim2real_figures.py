"""Sim-to-real figures: policies trained with domain randomization versus on nominal physics, evaluated on
nominal physics ("sim") and on the family's held-out ``real`` variant.

Run: ``.venv/bin/python benchmarks/scripts/sim2real_figures.py [--families invertedpendulum hopper]
[--seeds 5] [--steps 200000] [--episodes 10] [--out bench/sim2real-figures]``

Per family and seed, two runs of the shipped PPO agent at the same budget: ``dr`` (the family's ``dr``
preset) and ``nominal``. Each trained policy is evaluated with :func:`rltransfer.evaluation.evaluate` on
nominal physics and on ``variant="real"`` (``--episodes`` episodes, the same evaluation seed for every
policy). Per family and training condition it prints and saves the mean return on sim and on real with
95% t-intervals across seeds, the retained fraction real / sim (mean of the per-seed ratios, with its
interval), and whether DR beats nominal on real with disjoint intervals.

Resumable: a finished run (``runs/<family>/<condition>/seed<k>/policy``) is not retrained and its
evaluations are kept in ``evals.json``; rerun the same command after an interruption. Output:
``<out>/sim2real.json`` (every per-seed number plus the summaries).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from rltransfer.evaluation import evaluate
from rltransfer.pipeline import execute
from rltransfer.rundir import atomic_write_json, read_status
from rltransfer.spec import train_spec

CONDITIONS = {"dr": "dr", "nominal": None}
EVAL_SEED = 12345


def mean_ci(values: list[float], level: float = 0.95) -> tuple[float, float, float]:
    """Mean and t-interval of the mean of ``values`` (one per seed); the interval is NaN for one value."""
    x = np.asarray(values, dtype=float)
    m = float(x.mean()) if x.size else math.nan
    if x.size < 2:
        return m, math.nan, math.nan
    half = float(stats.t.ppf(0.5 + level / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    return m, m - half, m + half


def disjoint_above(a: tuple[float, float, float], b: tuple[float, float, float]) -> bool:
    """Whether interval ``a`` lies wholly above interval ``b``."""
    return math.isfinite(a[1]) and math.isfinite(b[2]) and a[1] > b[2]


def train_one(family: str, condition: str, seed: int, steps: int, run_dir: Path) -> Path:
    policy = run_dir / "policy"
    if read_status(run_dir).get("status") == "done" and policy.is_dir():
        return policy
    if run_dir.exists():
        shutil.rmtree(run_dir)  # an unfinished run starts over
    spec = train_spec(family, "ppo", steps=steps, seed=seed, eval_freq=0, eval_episodes=0,
                      randomize=CONDITIONS[condition], label=f"ppo-{condition}")
    execute(spec, run_dir)
    return policy


def evaluations(policy: Path, family: str, episodes: int, cache: Path) -> dict[str, float]:
    if cache.is_file():
        data = json.loads(cache.read_text())
        if data.get("episodes") == episodes:
            return data
    sim = evaluate(policy, family, episodes=episodes, seed=EVAL_SEED)
    real = evaluate(policy, family, episodes=episodes, seed=EVAL_SEED, variant="real")
    data = {"episodes": episodes, "sim": sim.mean, "real": real.mean}
    atomic_write_json(cache, data)
    return data


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for cond in CONDITIONS:
        mine = [r for r in rows if r["condition"] == cond]
        sim, real = [r["sim"] for r in mine], [r["real"] for r in mine]
        ratios = [r["real"] / r["sim"] for r in mine if abs(r["sim"]) > 1e-9]
        out[cond] = {"n": len(mine), "sim": mean_ci(sim), "real": mean_ci(real), "retained": mean_ci(ratios)}
    out["dr_beats_nominal_on_real"] = disjoint_above(out["dr"]["real"], out["nominal"]["real"])
    return out


def _fmt(ci: tuple[float, float, float], digits: int = 0) -> str:
    m, lo, hi = ci
    if not math.isfinite(lo):
        return f"{m:.{digits}f}"
    return f"{m:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="+", default=["invertedpendulum", "hopper"])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=200_000, help="training steps of every policy")
    parser.add_argument("--episodes", type=int, default=10, help="evaluation episodes on sim and on real")
    parser.add_argument("--out", default="bench/sim2real-figures")
    args = parser.parse_args()
    out = Path(args.out)
    results: dict[str, Any] = {"settings": vars(args), "families": {}}
    for family in args.families:
        rows = []
        for seed in range(args.seeds):
            for cond in CONDITIONS:
                run_dir = out / "runs" / family / cond / f"seed{seed}"
                policy = train_one(family, cond, seed, args.steps, run_dir)
                ev = evaluations(policy, family, args.episodes, run_dir / "evals.json")
                rows.append({"seed": seed, "condition": cond, "sim": ev["sim"], "real": ev["real"]})
                print(f"{family} {cond:<7} seed {seed}: sim {ev['sim']:.1f}, real {ev['real']:.1f}", flush=True)
        summary = summarize(rows)
        results["families"][family] = {"runs": rows, "summary": summary}
        atomic_write_json(out / "sim2real.json", results)
    print(f"\n{args.seeds} seeds x {args.steps:,} steps per policy; mean [95% CI across seeds]\n")
    print("| family | trained | sim return | real return | retained (real / sim) |")
    print("|---|---|---|---|---|")
    for family, data in results["families"].items():
        s = data["summary"]
        for cond in CONDITIONS:
            print(f"| {family} | {cond} | {_fmt(s[cond]['sim'])} | {_fmt(s[cond]['real'])} | "
                  f"{_fmt(s[cond]['retained'], 2)} |")
    print()
    for family, data in results["families"].items():
        beats = data["summary"]["dr_beats_nominal_on_real"]
        print(f"{family}: DR {'beats' if beats else 'does not beat'} nominal on real with disjoint 95% intervals")
    print(f"\nwritten: {out / 'sim2real.json'}")


if __name__ == "__main__":
    main()
