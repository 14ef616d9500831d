"""Cost of the ADR machinery on training throughput: the same PPO run with a fixed preset versus driven by
an ADR curriculum over that preset's physics, on a SubprocVecEnv.

Run: ``.venv/bin/python benchmarks/scripts/adr_overhead.py [--family invertedpendulum] [--curriculum
invertedpendulum-adr] [--steps 20000] [--repeats 3] [--n-envs 2]``

Both runs are the family's shipped PPO agent with ``--n-envs`` workers in a ``SubprocVecEnv``, one torch
thread, no evaluation, the same seed; ``fixed`` trains with the curriculum's preset (``randomize``),
``adr`` with the curriculum (the same preset, its physics drawn from ADR's ranges; boundary episodes;
``receive_schedule`` round trips to every worker at each move; the callback reading every step's infos).
They alternate (fixed, adr, fixed, ...) so that a change in the machine's load hits both, and each keeps
its best of ``--repeats``. Steps/s is the run's training time (``status.json`` ``seconds``: learning and
saving the bundle). Episodes per run are printed too: the two draw different physics, so their episodes
differ in length, and resets are where the physics is set. The goal is ``adr / fixed >= 0.95``.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path
from typing import Any

from stable_baselines3.common.callbacks import BaseCallback

from rltransfer.agents import load_agent
from rltransfer.curricula import load_curriculum
from rltransfer.pipeline import execute
from rltransfer.rundir import read_status
from rltransfer.spec import train_spec

GOAL = 0.95


class EpisodeCounter(BaseCallback):
    """Counts finished training episodes (all workers)."""

    def __init__(self) -> None:
        super().__init__()
        self.episodes = 0

    def _on_step(self) -> bool:
        self.episodes += int(sum(self.locals["dones"]))
        return True


def run(family: str, agent: Any, steps: int, seed: int, preset: str, curriculum: str | None,
        where: Path) -> tuple[float, int]:
    """Steps/s of one training run and its number of episodes."""
    spec = train_spec(family, agent, steps=steps, seed=seed, eval_freq=0, eval_episodes=0, threads=1,
                      randomize=None if curriculum else preset, curriculum=curriculum)
    run_dir = where / ("adr" if curriculum else "fixed")
    shutil.rmtree(run_dir, ignore_errors=True)
    counter = EpisodeCounter()
    execute(spec, run_dir, callbacks=[counter])
    status = read_status(run_dir)
    return status["steps"] / status["seconds"], counter.episodes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", default="invertedpendulum")
    parser.add_argument("--curriculum", default="invertedpendulum-adr")
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n-envs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    curriculum = load_curriculum(args.curriculum)
    if curriculum.kind != "adr" or curriculum.randomize is None:
        raise SystemExit(f"{args.curriculum}: needs an ADR curriculum over a preset (randomize: ...)")
    base = load_agent("ppo", args.family)
    agent = base.model_copy(update={"n_envs": args.n_envs, "vec_env": "subproc"})
    best = {"fixed": 0.0, "adr": 0.0}
    episodes = {"fixed": 0, "adr": 0}
    with tempfile.TemporaryDirectory(prefix="adr-overhead-") as tmp:
        for round_ in range(args.repeats):
            for name in best:
                sps, episodes[name] = run(args.family, agent, args.steps, args.seed, curriculum.randomize,
                                          args.curriculum if name == "adr" else None, Path(tmp))
                best[name] = max(best[name], sps)
            print(f"round {round_ + 1}/{args.repeats}: " + ", ".join(f"{k} {v:,.0f}" for k, v in best.items())
                  + " steps/s; episodes " + ", ".join(f"{k} {v}" for k, v in episodes.items()), flush=True)
    ratio = best["adr"] / best["fixed"]
    print(f"\n{args.family}, PPO, {args.n_envs} SubprocVecEnv workers, {args.steps:,} steps, best of {args.repeats}:")
    print(f"  fixed preset {curriculum.randomize!r}: {best['fixed']:,.0f} steps/s ({episodes['fixed']} episodes)")
    print(f"  ADR ({args.curriculum}):   {best['adr']:,.0f} steps/s ({episodes['adr']} episodes)")
    print(f"  adr / fixed = {ratio:.3f}  (goal >= {GOAL}: {'met' if ratio >= GOAL else 'NOT met'})")


if __name__ == "__main__":
    main()
