"""Sim-to-real figures: policies trained with domain randomization versus on nominal physics, evaluated on
nominal physics ("sim") and on the family's held-out ``real`` variant.

Run: ``.venv/bin/python benchmarks/scripts/sim2real_figures.py [--families invertedpendulum hopper]
[--seeds 5] [--steps 200000] [--episodes 10] [--out bench/sim2real-figures] [--adr CURRICULUM
[--adr-seeds N]] [--conditions dr nominal adr]``

Per family and seed, two runs of the shipped PPO agent at the same budget: ``dr`` (the family's ``dr``
preset) and ``nominal``; with ``--adr``, a third, ``adr``: trained with that ADR curriculum (e.g.
``invertedpendulum-adr``: automatic domain randomization over the ``dr`` preset's physics, from nominal),
for the first ``--adr-seeds`` seeds, and a plot of the ranges ADR grew over training
(``<out>/adr-ranges-<family>.png``, from each run's ``curriculum.json``). Each trained policy is evaluated with :func:`rltransfer.evaluation.evaluate` on
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

CONDITIONS = {"dr": "dr", "nominal": None}  # condition -> preset (``adr`` adds a curriculum)
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


def train_one(family: str, condition: str, seed: int, steps: int, run_dir: Path,
              curriculum: str | None = None) -> Path:
    policy = run_dir / "policy"
    if read_status(run_dir).get("status") == "done" and policy.is_dir():
        return policy
    if run_dir.exists():
        shutil.rmtree(run_dir)  # an unfinished run starts over
    spec = train_spec(family, "ppo", steps=steps, seed=seed, eval_freq=0, eval_episodes=0,
                      randomize=CONDITIONS.get(condition), label=f"ppo-{condition}",
                      curriculum=curriculum if condition == "adr" else None)
    execute(spec, run_dir)
    return policy


def plot_adr_ranges(records: dict[int, dict[str, Any]], steps: int, path: Path) -> None:
    """One panel per ADR parameter: each seed's low and high bound against training steps (from the moves
    in its ``curriculum.json``), the initial range dotted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    params = list(next(iter(records.values()))["adr"]["initial"])
    fig, axes = plt.subplots(1, len(params), figsize=(4.2 * len(params), 3.4), squeeze=False)
    for ax, param in zip(axes[0], params):
        for seed, record in sorted(records.items()):
            adr = record["adr"]
            lo, hi = adr["initial"][param]
            xs, lows, highs = [0], [lo], [hi]
            for move in adr["history"]:
                if move["param"] != param:
                    continue
                xs.append(move["step"])
                lo, hi = (move["new"], hi) if move["side"] == "low" else (lo, move["new"])
                lows.append(lo)
                highs.append(hi)
            xs.append(steps)
            lows.append(lo)
            highs.append(hi)
            line = ax.step(xs, highs, where="post", label=f"seed {seed}")[0]
            ax.step(xs, lows, where="post", color=line.get_color())
        lo0, hi0 = next(iter(records.values()))["adr"]["initial"][param]
        ax.axhspan(lo0, hi0, color="grey", alpha=0.2) if hi0 > lo0 else ax.axhline(lo0, color="grey", ls=":")
        ax.set_title(param)
        ax.set_xlabel("training steps")
    axes[0][0].set_ylabel("ADR range (low and high bound)")
    axes[0][-1].legend(fontsize="small")
    fig.suptitle("Ranges grown by ADR (dotted: nominal start)")
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)


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


def summarize(rows: list[dict[str, Any]], conditions: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for cond in conditions:
        mine = [r for r in rows if r["condition"] == cond]
        sim, real = [r["sim"] for r in mine], [r["real"] for r in mine]
        ratios = [r["real"] / r["sim"] for r in mine if abs(r["sim"]) > 1e-9]
        out[cond] = {"n": len(mine), "sim": mean_ci(sim), "real": mean_ci(real), "retained": mean_ci(ratios)}
    for a, b in (("dr", "nominal"), ("adr", "nominal"), ("adr", "dr"), ("dr", "adr")):
        if a in out and b in out:
            out[f"{a}_beats_{b}_on_real"] = disjoint_above(out[a]["real"], out[b]["real"])
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
    parser.add_argument("--adr", metavar="CURRICULUM", help="also train with this ADR curriculum (condition adr)")
    parser.add_argument("--adr-seeds", type=int, default=None, help="seeds of the adr condition (default --seeds)")
    parser.add_argument("--conditions", nargs="+", choices=["dr", "nominal", "adr"],
                        help="train and evaluate only these conditions (default: all)")
    args = parser.parse_args()
    out = Path(args.out)
    conditions = [c for c in [*CONDITIONS, *(["adr"] if args.adr else [])] if c in (args.conditions or [c])]
    results: dict[str, Any] = {"settings": vars(args), "families": {}}
    for family in args.families:
        rows, adr_records = [], {}
        for seed in range(args.seeds):
            for cond in conditions:
                if cond == "adr" and seed >= (args.adr_seeds or args.seeds):
                    continue
                run_dir = out / "runs" / family / cond / f"seed{seed}"
                policy = train_one(family, cond, seed, args.steps, run_dir, args.adr)
                ev = evaluations(policy, family, args.episodes, run_dir / "evals.json")
                rows.append({"seed": seed, "condition": cond, "sim": ev["sim"], "real": ev["real"]})
                print(f"{family} {cond:<7} seed {seed}: sim {ev['sim']:.1f}, real {ev['real']:.1f}", flush=True)
                if cond == "adr":
                    adr_records[seed] = json.loads((policy / "curriculum.json").read_text())
        summary = summarize(rows, conditions)
        results["families"][family] = {"runs": rows, "summary": summary}
        if adr_records:
            results["families"][family]["adr_final_ranges"] = {
                seed: r["adr"]["ranges"] for seed, r in adr_records.items()}
            plot_adr_ranges(adr_records, args.steps, out / f"adr-ranges-{family}.png")
        atomic_write_json(out / "sim2real.json", results)
    print(f"\n{args.seeds} seeds x {args.steps:,} steps per policy; mean [95% CI across seeds]\n")
    print("| family | trained | sim return | real return | retained (real / sim) |")
    print("|---|---|---|---|---|")
    for family, data in results["families"].items():
        s = data["summary"]
        for cond in conditions:
            print(f"| {family} | {cond} | {_fmt(s[cond]['sim'])} | {_fmt(s[cond]['real'])} | "
                  f"{_fmt(s[cond]['retained'], 2)} |")
    print()
    for family, data in results["families"].items():
        for key, value in data["summary"].items():
            if key.endswith("_on_real"):
                a, b = key.removesuffix("_on_real").split("_beats_")
                print(f"{family}: {a} {'beats' if value else 'does not beat'} {b} on real with disjoint 95% intervals")
        for seed, ranges in data.get("adr_final_ranges", {}).items():
            print(f"{family} adr seed {seed}: final ranges " + ", ".join(
                f"{k} [{lo:g}, {hi:g}]" for k, (lo, hi) in ranges.items()))
    print(f"\nwritten: {out / 'sim2real.json'}")


if __name__ == "__main__":
    main()
