"""Throughput of `rltransfer train` against bare Stable-Baselines3 on the same PPO CartPole config.

Run: ``.venv/bin/python benchmarks/scripts/overhead.py [--steps 50000] [--repeats 2]``

Both sides use the shipped agent config (agents/ppo.yaml, cartpole), the same seed, one torch thread, and
``DummyVecEnv``. Bare SB3 is ``PPO(...).learn(steps)`` with nothing else. rltransfer is the whole
``train(...)`` call (run directory, TensorBoard, bundle, guards) four ways: with no evaluation (the
toolkit's own overhead), the same with a checkpoint every 10k steps, with the deterministic evaluation
before and after training only, and with its default
periodic evaluation (10 episodes every 10k steps). Evaluation episodes are extra environment work by
design, so the last two measure what a user gets, not overhead. Prints steps/s of each and the ratios.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env

from rltransfer.agents import load_agent
from rltransfer.algos import sb3_kwargs
from rltransfer.pipeline import train
from rltransfer.training import policy_kwargs_for_sb3


def bare_sb3(steps: int, seed: int) -> float:
    spec = load_agent("ppo", "cartpole")
    env = make_vec_env("CartPole-v1", n_envs=spec.n_envs, seed=seed)
    model = PPO("MlpPolicy", env, seed=seed, device="cpu", policy_kwargs=policy_kwargs_for_sb3(spec),
                **sb3_kwargs("ppo", spec.hyperparams.for_sb3(), None))
    start = time.perf_counter()
    model.learn(steps)
    return steps / (time.perf_counter() - start)


def with_rltransfer(steps: int, seed: int, eval_freq: int | None, eval_episodes: int | None,
                    save_freq: int | None = None) -> float:
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        train("cartpole", "ppo", steps=steps, seed=seed, out=out, name="bench", eval_freq=eval_freq,
              eval_episodes=eval_episodes, save_freq=save_freq)
        return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    arms = {
        "bare SB3": lambda: bare_sb3(args.steps, args.seed),
        "rltransfer (no evaluation)": lambda: with_rltransfer(args.steps, args.seed, 0, 0),
        "rltransfer (no eval, ckpt/10k)": lambda: with_rltransfer(args.steps, args.seed, 0, 0, 10_000),
        "rltransfer (eval start/end)": lambda: with_rltransfer(args.steps, args.seed, 0, None),
        "rltransfer (default eval)": lambda: with_rltransfer(args.steps, args.seed, None, None),
    }
    rows: dict[str, list[float]] = {name: [] for name in arms}
    for _ in range(args.repeats):  # interleaved, so drift in machine load hits every arm alike
        for name, run in arms.items():
            rows[name].append(run())
    best = {k: max(v) for k, v in rows.items()}
    base = best["bare SB3"]
    print(f"PPO CartPole-v1, {args.steps} steps, best of {args.repeats}, 1 torch thread")
    for name, value in best.items():
        print(f"  {name:30s} {value:8.0f} steps/s   ratio {value / base:.3f}   runs {[round(v) for v in rows[name]]}")


if __name__ == "__main__":
    main()
