"""Cost of domain randomization per env step: HopperBulletEnv-v0 bare versus under the full ``dr`` preset.

Run: ``.venv/bin/python benchmarks/scripts/dr_overhead.py [--steps 5000] [--repeats 5] [--family hopper]``

Three envs, stepped with the same pre-drawn random actions (resetting when an episode ends):

* ``raw``: ``gym.make("HopperBulletEnv-v0")``, nothing of rltransfer;
* ``family``: the family env the pipeline builds without randomization (``FamilyEnv``, nominal physics);
* ``dr``: the same env wrapped by :func:`rltransfer.randomization.wrap_randomization` with the family's
  ``dr`` preset, exactly as the pipeline's training envs (``PhysicsRandomizer``: new physics at every
  reset; observation noise and bias, action noise, a 0-1 step latency).

The three are measured interleaved (raw, family, dr, raw, ...) so that a change in the machine's load hits
all of them alike, and each keeps its best of ``--repeats`` rounds. Prints steps/s and the ratios; the
goal is ``dr / raw >= 0.95``. Resets are included (that is where the physics is re-applied).
"""

from __future__ import annotations

import argparse
import importlib
import json
import time
from collections.abc import Callable

import gymnasium as gym
import numpy as np

from rltransfer.config import load_family
from rltransfer.environments import make_env
from rltransfer.families import get_adapter
from rltransfer.randomization import get_preset, wrap_randomization

GOAL = 0.95


def builders(family_name: str, preset: str) -> dict[str, Callable[[], gym.Env]]:
    family = load_family(family_name)
    for module in get_adapter(family.adapter).imports:
        importlib.import_module(module)  # registers the PyBullet ids
    dr = get_preset(family, preset)
    return {
        "raw": lambda: gym.make(family.gym_id, **dict(family.make_kwargs)),
        "family": lambda: make_env(family, None, monitor=False),
        "dr": lambda: wrap_randomization(make_env(family, None, monitor=False), dr, None, family.variants, seed=0),
    }


def steps_per_second(env: gym.Env, actions: np.ndarray) -> float:
    env.reset(seed=0)
    start = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    return len(actions) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", default="hopper")
    parser.add_argument("--preset", default="dr")
    parser.add_argument("--steps", type=int, default=5000, help="env steps per measurement")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds; the best of each is kept")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = parser.parse_args()

    envs = {name: build() for name, build in builders(args.family, args.preset).items()}
    space = envs["raw"].action_space
    actions = np.random.default_rng(0).uniform(space.low, space.high, size=(args.steps, *space.shape))
    actions = actions.astype(space.dtype)
    for env in envs.values():  # warm-up: the first resets load the model files
        steps_per_second(env, actions[:200])
    best = dict.fromkeys(envs, 0.0)
    for round_ in range(args.repeats):
        for name, env in envs.items():
            best[name] = max(best[name], steps_per_second(env, actions))
        print(f"round {round_ + 1}/{args.repeats}: " + ", ".join(f"{k} {v:,.0f}" for k, v in best.items()), flush=True)
    for env in envs.values():
        env.close()
    ratio = best["dr"] / best["raw"]
    result = {"family": args.family, "preset": args.preset, "steps": args.steps, "repeats": args.repeats,
              "steps_per_second": best, "dr_over_raw": ratio, "family_over_raw": best["family"] / best["raw"],
              "dr_over_family": best["dr"] / best["family"], "goal": GOAL, "meets_goal": ratio >= GOAL}
    print(f"\n{envs['raw'].spec.id if envs['raw'].spec else args.family}, best of {args.repeats} x {args.steps:,} "
          "random-action steps:")
    for name, value in best.items():
        print(f"  {name:<7} {value:>10,.0f} steps/s")
    print(f"  dr / raw     = {ratio:.3f}  (goal >= {GOAL}: {'met' if ratio >= GOAL else 'NOT met'})")
    print(f"  family / raw = {result['family_over_raw']:.3f}")
    print(f"  dr / family  = {result['dr_over_family']:.3f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)


if __name__ == "__main__":
    main()
