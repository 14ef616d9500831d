"""The ``rltransfer`` command. Thin: every subcommand parses arguments and calls the public API.

User errors (:class:`~rltransfer.errors.RLTransferError`) print one line and exit with code 2; anything else
is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rltransfer.errors import RLTransferError

Handler = Callable[[argparse.Namespace], int]


def _console() -> Any:
    from rich.console import Console

    return Console(stderr=False, highlight=False)


# ---------------------------------------------------------------------------------------------- commands


def cmd_train(args: argparse.Namespace) -> int:
    from rltransfer.config import parse_set
    from rltransfer.training import train

    result = train(
        args.env, args.agent, params=parse_set(args.set), steps=args.steps, seed=args.seed, out=args.out,
        name=args.name, eval_freq=args.eval_freq, eval_episodes=args.eval_episodes,
        progress=not args.no_progress,
    )
    con = _console()
    con.print(f"run:          {result.run_dir}")
    con.print(f"policy:       {result.policy_dir}")
    con.print(f"final return: {result.final_mean:.2f} (deterministic, {len(result.curve.returns[-1])} episodes)")
    con.print(f"tensorboard:  tensorboard --logdir {result.run_dir.parent}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from rltransfer.config import parse_set
    from rltransfer.evaluation import evaluate
    from rltransfer.rundir import atomic_write_json

    result = evaluate(
        args.policy, args.env, params=parse_set(args.set), episodes=args.episodes, seed=args.seed,
        deterministic=not args.stochastic,
    )
    lo, hi = result.ci95
    _console().print(
        f"{result.env} {result.params}\nreturn {result.mean:.2f} ± {result.std:.2f} (std), "
        f"95% CI [{lo:.2f}, {hi:.2f}] over {result.n_episodes} episodes"
    )
    if args.json:
        atomic_write_json(Path(args.json), result.to_dict())
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from rltransfer import resources
    from rltransfer.config import load_family

    con = _console()
    kinds = [args.kind] if args.kind else ["envs", "agents", "benchmarks"]
    for kind in kinds:
        con.print(f"[bold]{kind}[/bold]")
        for name in resources.names(kind):
            if kind == "envs":
                fam = load_family(name)
                con.print(f"  {name:18s} {fam.gym_id:32s} params: {', '.join(fam.params)}")
            else:
                con.print(f"  {name}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from rltransfer.evaluation import evaluate
    from rltransfer.training import train

    out = Path(args.out)
    con = _console()
    con.print("[bold]1/2[/bold] training a PPO source on cartpole (pole half-length 0.5)")
    result = train("cartpole", "ppo", params={"length": 0.5}, steps=args.steps, seed=args.seed, out=out,
                   name="cartpole-source", progress=not args.no_progress, eval_freq=args.steps // 5)
    con.print("[bold]2/2[/bold] zero-shot evaluation of the source on a longer pole (length 1.0)")
    ev = evaluate(result.policy_dir, "cartpole", params={"length": 1.0}, episodes=20, seed=args.seed)
    con.print(f"source on its own env: {result.final_mean:.1f}; zero-shot on length=1.0: {ev.mean:.1f} "
              f"(95% CI [{ev.ci95[0]:.1f}, {ev.ci95[1]:.1f}])")
    con.print(f"bundle: {result.policy_dir}\ntensorboard --logdir {out}")
    return 0


# ------------------------------------------------------------------------------------------------ parser


def _add_env_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("--env", required=required, help="env family name (see `rltransfer list envs`) or YAML path")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="env parameter override (repeatable)")


def build_parser() -> argparse.ArgumentParser:
    from rltransfer import __version__

    parser = argparse.ArgumentParser(prog="rltransfer", description="Transfer learning for RL (SB3 + Gymnasium).")
    parser.add_argument("--version", action="version", version=f"rltransfer {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="train a source policy on an env family")
    _add_env_args(p)
    p.add_argument("--agent", required=True, help="agent name (ppo, a2c, sac, td3, dqn) or YAML path")
    p.add_argument("--steps", type=int, help="total env steps (default: the agent's n_timesteps)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs", help="parent folder of the run directory (default: runs)")
    p.add_argument("--name", help="run directory name (default: {env}__{agent}__{seed}__{time})")
    p.add_argument("--eval-freq", type=int, help="evaluate every N env steps (0: only at start and end)")
    p.add_argument("--eval-episodes", type=int)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=cmd_train)

    p = sub.add_parser("evaluate", help="return of a policy (bundle, run or SB3 zip) on an env family")
    p.add_argument("--policy", required=True, help="bundle folder, run directory, or SB3 .zip")
    _add_env_args(p, required=False)
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--stochastic", action="store_true", help="sample actions instead of the deterministic mode")
    p.add_argument("--json", metavar="FILE", help="write mean, std, ci95 and returns as JSON")
    p.set_defaults(handler=cmd_evaluate)

    p = sub.add_parser("list", help="list shipped env families, agents and suites")
    p.add_argument("kind", nargs="?", choices=["envs", "agents", "benchmarks"])
    p.set_defaults(handler=cmd_list)

    p = sub.add_parser("demo", help="the main job, end to end, small")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--steps", type=int, default=30000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(handler=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    try:
        return int(args.handler(args))
    except RLTransferError as exc:
        message = str(exc).replace("\n", "\n  ")
        print(f"rltransfer: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rltransfer: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
