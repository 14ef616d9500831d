"""The ``rltransfer`` command. Thin: every subcommand parses arguments and calls the public API.

User errors (:class:`~rltransfer.errors.RLTransferError`) print one line and exit with code 2; anything else
is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import shlex
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

from rltransfer.errors import ConfigError, RLTransferError

Handler = Callable[[argparse.Namespace], int]


def _console() -> Any:
    """Rich output for tables, as plain text: no markup (a ``[...]`` in a name or value is printed, not
    eaten), no highlighting or emoji, colour only on a terminal and never under ``NO_COLOR``; in a pipe or
    a CI log no wrapping at all (identifiers such as tensor names stay whole)."""
    from rich.console import Console

    tty = sys.stdout.isatty()
    return Console(stderr=False, highlight=False, markup=False, emoji=False, soft_wrap=not tty,
                   width=None if tty else 10_000)


def _write(text: str) -> None:
    """Plain text to stdout, as is (no markup, no wrapping: identifiers stay whole)."""
    sys.stdout.write(text)
    sys.stdout.flush()


def _emit_json(target: str, data: Any) -> None:
    """``--json FILE``: strict JSON written atomically (and its path said on stdout); ``--json -``: the JSON
    alone on stdout, for a pipe (``| jq``)."""
    from rltransfer.rundir import atomic_write_json, json_safe

    if target == "-":
        _write(json.dumps(json_safe(data), indent=2, allow_nan=False) + "\n")
        return
    _check_json_target(target)
    atomic_write_json(Path(target), data)
    _write(f"json: {target}\n")


def _check_json_target(target: str | None) -> None:
    """Refuse a ``--json`` path that cannot be written, before the work that fills it is done."""
    if target is None or target == "-":
        return
    path = Path(target)
    if path.is_dir():
        raise ConfigError(f"--json {target}: is a directory; give a file name, or '-' for stdout")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"--json {target}: {parent} is a file, not a folder")
            break


# ---------------------------------------------------------------------------------------------- commands


def cmd_train(args: argparse.Namespace) -> int:
    from rltransfer.agents import load_agent
    from rltransfer.config import load_family, parse_set
    from rltransfer.pipeline import train
    from rltransfer.zoo import apply_agent_overrides, parse_hyperparams

    family = load_family(env_name(args.env))
    agent = apply_agent_overrides(load_agent(args.agent, family.name, algo=args.algo),
                                  parse_hyperparams(args.hyperparams), n_envs=args.n_envs, vec_env=args.vec_env)
    result = train(
        family, agent, params=parse_set(args.set), steps=args.steps, seed=args.seed, out=args.out,
        name=args.name, eval_freq=args.eval_freq, eval_episodes=args.eval_episodes,
        progress=not args.no_progress, command=args.command_line, curriculum=args.curriculum,
        save_freq=args.save_freq, randomize=args.randomize, variant=args.variant, threads=args.threads,
        device=args.device, strict=args.strict,
    )
    con = _console()
    con.print(f"run:          {result.run_dir}")
    con.print(f"policy:       {result.policy_dir}")
    con.print(f"steps:        {_steps_line(result)}")
    if result.curve.mean:
        con.print(f"final return: {result.final_mean:.2f} (deterministic, {len(result.curve.returns[-1])} episodes)")
    else:
        con.print("final return: not evaluated (--eval-episodes 0)")
    con.print(f"tensorboard:  tensorboard --logdir {result.run_dir.parent}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from rltransfer.config import parse_set
    from rltransfer.evaluation import evaluate

    _check_json_target(args.json)
    result = evaluate(
        args.policy, env_name(args.env) if args.env else None, params=parse_set(args.set), episodes=args.episodes, seed=args.seed,
        deterministic=not args.stochastic, variant=args.variant, randomize=args.randomize, threads=args.threads,
        algo=args.algo,
    )
    lo, hi = result.ci95
    on = "".join([f" variant {result.variant}" if result.variant else "",
                  f" randomized by preset {result.randomization}" if result.randomization else ""])
    if args.json == "-":
        _emit_json("-", result.to_dict())
        return 0
    _write(
        f"{result.env}{on} {result.params}\nreturn {result.mean:.2f} ± {result.std:.2f} (std), "
        f"95% CI [{lo:.2f}, {hi:.2f}] over {result.n_episodes} episodes\n"
    )
    if args.json:
        _emit_json(args.json, result.to_dict())
    return 0


def cmd_enjoy(args: argparse.Namespace) -> int:
    from rltransfer.config import parse_set
    from rltransfer.evaluation import enjoy

    result = enjoy(args.policy, env_name(args.env) if args.env else None, params=parse_set(args.set),
                   episodes=args.episodes, seed=args.seed, deterministic=not args.stochastic, variant=args.variant,
                   video=args.video, threads=args.threads, algo=args.algo)
    lines = [f"{result.env} {result.params}"]
    lines += [f"episode {i}: return {r:.2f}, {n} steps" for i, (r, n) in enumerate(zip(result.returns, result.lengths))]
    lines += [f"video: {v}" for v in result.videos]
    _write("\n".join(lines) + "\n")
    return 0


def cmd_transfer(args: argparse.Namespace) -> int:
    from rltransfer.bundle import load_policy
    from rltransfer.config import parse_set
    from rltransfer.pipeline import transfer
    from rltransfer.plan import parse_index_map

    source = load_policy(args.source, algo=args.source_algo)
    agent = args.agent
    if args.hyperparams or args.n_envs is not None or args.vec_env is not None:
        from rltransfer.agents import load_agent
        from rltransfer.config import load_family
        from rltransfer.zoo import apply_agent_overrides, parse_hyperparams

        family = load_family(env_name(args.env))
        target_algo = (args.algo or source.algo).lower()
        base = load_agent(args.agent or target_algo, family.name, algo=target_algo)
        agent = apply_agent_overrides(base, parse_hyperparams(args.hyperparams), n_envs=args.n_envs,
                                      vec_env=args.vec_env)
    result = transfer(
        source, env_name(args.env), params=parse_set(args.set), strategy=args.strategy,
        options=strategy_options_of(args), agent=agent, algo=args.algo, steps=args.steps,
        seed=args.seed, out=args.out, name=args.name, eval_freq=args.eval_freq,
        eval_episodes=args.eval_episodes, obs_map=parse_index_map(args.obs_map, "--obs-map", names=True),
        action_map=parse_index_map(args.action_map, "--action-map"), wrappers=args.wrapper or (),
        progress=not args.no_progress, command=args.command_line, save_freq=args.save_freq,
        randomize=args.randomize, variant=args.variant, curriculum=args.curriculum, threads=args.threads,
        device=args.device, strict=args.strict,
    )
    con = _console()
    _print_plan(con, result.plan)
    curve = result.curve
    con.print(f"run:          {result.run_dir}")
    con.print(f"policy:       {result.policy_dir}")
    con.print(f"steps:        {_steps_line(result)}")
    if curve.mean:
        con.print(f"return:       {curve.mean[0]:.2f} at step 0 (jumpstart) -> {curve.mean[-1]:.2f} "
                  f"at step {curve.steps[-1]}")
    else:
        con.print("return:       not evaluated (--eval-episodes 0)")
    con.print(f"tensorboard:  tensorboard --logdir {result.run_dir.parent}")
    return 0


def _steps_line(result: Any) -> str:
    """``30,000 (the budget)``, or how far past the budget the run went and why."""
    from rltransfer.rundir import read_status

    status = read_status(result.run_dir)
    steps, budget = status.get("steps"), status.get("budget")
    if not isinstance(steps, int) or not isinstance(budget, int):
        return "?"
    if steps == budget:
        return f"{steps:,} (the budget)"
    n_envs = getattr(result.model, "n_envs", 1) if result.model is not None else 1
    return (f"{steps:,} ({steps - budget:,} past the budget of {budget:,}: SB3 steps all {n_envs} envs at once and "
            "checks the budget between its collection rounds)")


def env_name(value: str) -> str:
    """``--env``: a family name or YAML path as given, or a Gymnasium id that a shipped family wraps
    (``HopperBulletEnv-v0`` means ``hopper``, as the Zoo names envs)."""
    from rltransfer import resources

    if value in resources.names("envs") or Path(value).suffix in (".yaml", ".yml") or "/" in value:
        return value
    if "-v" in value:
        from rltransfer.environments import family_for_gym_id

        family = family_for_gym_id(value)
        if family is not None:
            return family.name
    return value  # load_family names what is valid


def strategy_options_of(args: argparse.Namespace) -> dict[str, Any]:
    """The strategy options given on the command line (one flag per option of a registered strategy)."""
    from rltransfer.strategies import strategy_options

    options: dict[str, Any] = {}
    for opt in strategy_options():
        value = getattr(args, opt.name, None)
        if value is not None and value != []:
            options[opt.name] = value
    return options


def _comma_list(item: type) -> Callable[[str], list[Any]]:
    def parse(text: str) -> list[Any]:
        return [item(part.strip()) for part in text.split(",") if part.strip()]

    parse.__name__ = f"comma list of {item.__name__}"  # argparse names it in "invalid ... value"
    return parse


def _add_strategy_args(p: argparse.ArgumentParser) -> None:
    """One flag per option of the registered strategies, typed and described from its options model."""
    from rltransfer.strategies import STRATEGIES, strategy_options

    group = p.add_argument_group("strategy options", "each applies to the strategies it names")
    group.add_argument("--strategy", default="finetune", help="; ".join(
        f"{name}: {cls.summary}" for name, cls in STRATEGIES.items()) + " (default: finetune)")
    for opt in strategy_options():
        metavar = opt.name.upper().removesuffix("S") if opt.repeat else opt.name.upper()
        if opt.type is bool:
            group.add_argument(opt.flag, dest=opt.name, action=argparse.BooleanOptionalAction, help=opt.help)
        elif opt.repeat:
            group.add_argument(opt.flag, dest=opt.name, action="append", type=opt.type, metavar=metavar,
                               help=opt.help)
        elif opt.is_list:
            group.add_argument(opt.flag, dest=opt.name, type=_comma_list(opt.type), metavar=f"{metavar}[,...]",
                               help=opt.help)
        else:
            group.add_argument(opt.flag, dest=opt.name, type=opt.type, metavar=metavar, help=opt.help)


class _Parser(argparse.ArgumentParser):
    """argparse with the project's one-line errors: ``rltransfer: error: train: argument --steps: invalid int
    value: 'abc' (see 'rltransfer train --help')`` instead of the usage block and a second line."""

    def error(self, message: str) -> NoReturn:
        import re

        from rltransfer.errors import did_you_mean

        command = self.prog.removeprefix("rltransfer").strip()
        where = f"{command}: " if command else ""
        choice = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)$", message)
        if choice:
            message += did_you_mean(choice.group(1), re.findall(r"'([^']*)'", choice.group(2)))
        self.exit(2, f"rltransfer: error: {where}{message} (see '{self.prog} --help')\n")


class _TransferParser(_Parser):
    """The ``transfer`` subcommand's parser. Its strategy flags come from the strategy registry, which
    imports torch and SB3, so they are added when the subcommand is parsed: other commands start fast."""

    _strategy_args = False

    def _with_strategy_args(self) -> None:
        if not self._strategy_args:
            self._strategy_args = True
            _add_strategy_args(self)
            _document(self)

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:  # type: ignore[override]
        self._with_strategy_args()
        return super().parse_known_args(args, namespace)

    def format_help(self) -> str:
        self._with_strategy_args()
        return super().format_help()


def _print_plan(con: Any, plan: Any) -> None:
    from rich.table import Table

    table = Table(title=f"transfer plan: {plan.summary()}", show_lines=False)
    for col in ("tensor", "action", "source", "target", "train", "lr x", "why"):
        table.add_column(col, overflow="fold")
    for t in plan.tensors:
        table.add_row(t.name, t.action, str(t.source_shape or "-"), str(t.target_shape),
                      "yes" if t.trainable else "frozen", f"{t.lr_scale:g}", t.reason)
    con.print(table)
    for note in plan.notes:
        con.print(f"- {note}")


def cmd_resume(args: argparse.Namespace) -> int:
    from rltransfer.pipeline import resume

    result = resume(args.run_dir, progress=not args.no_progress)
    con = _console()
    con.print(f"run:          {result.run_dir}")
    con.print(f"policy:       {result.policy_dir}")
    if result.curve.mean:
        con.print(f"final return: {result.final_mean:.2f} at step {result.curve.steps[-1]}")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from rich.table import Table

    from rltransfer.inspection import inspect_source

    info = inspect_source(args.path, algo=args.algo)
    con = _console()
    if args.json:
        _emit_json("-", info)
        return 0
    con.print(f"{info['path']} ({info['kind']})")
    for key in ("algo", "sb3_version", "observation_space", "action_space", "policy_kwargs", "hyperparams",
                "num_timesteps", "normalization", "wrappers", "env", "unsupported", "transfer"):
        if info.get(key) not in (None, {}, []):
            con.print(f"  {key:18s} {info[key]}")
    trained = info.get("trained_with")
    if trained is not None:
        ranges = ", ".join(f"{k} [{lo:g}, {hi:g}]" for k, (lo, hi) in trained.get("ranges", {}).items())
        _write(f"  {'randomization':18s} {trained['randomization'] or 'none'}{f' ({ranges})' if ranges else ''}\n"
               f"  {'variant':18s} {trained['variant'] or 'none'}\n")
    if info.get("curriculum") is not None:
        from rltransfer.curricula import summary_lines

        _write("".join(f"  {line}\n" for line in summary_lines(info["curriculum"])))
    table = Table(title=f"{len(info['tensors'])} tensors, {info['parameters']:,} parameters")
    for col in ("tensor", "shape", "dtype", "role"):
        table.add_column(col)
    for t in info["tensors"]:
        table.add_row(t["name"], str(t["shape"]), t["dtype"], t["role"])
    con.print(table)
    for note in info.get("notes", []):
        con.print(f"- {note}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from rltransfer import resources
    from rltransfer.config import load_family
    from rltransfer.inspection import randomization_lines

    kinds = [args.kind] if args.kind else ["envs", "agents", "curricula", "benchmarks"]
    lines = []
    for kind in kinds:
        lines.append(kind)
        for name in resources.names(kind):
            if kind == "envs":
                fam = load_family(name)
                lines.append(f"  {name:18s} {fam.gym_id}   return range {fam.return_range[0]:g} to "
                             f"{fam.return_range[1]:g}")
                width = max(len(p) for p in fam.params)
                lines += [f"    {p:{width}s}  nominal {spec.nominal:<8g} bounds [{spec.low:g}, {spec.high:g}]"
                          + (f"  {spec.description}" if spec.description else "") for p, spec in fam.params.items()]
                lines += randomization_lines(fam)
            elif kind == "agents":
                lines.append(_agent_line(name))
            else:
                lines.append(f"  {name}")
    _write("\n".join(lines) + "\n")
    return 0


def _agent_line(name: str) -> str:
    """``  ppo   PPO   families: cartpole, pendulum, ...`` (the families an agent file has settings for)."""
    from rltransfer import resources
    from rltransfer.config import AgentFile, read_yaml, validate

    path = resources.find("agents", name)
    agent = validate(AgentFile, read_yaml(path), str(path))
    return f"  {name:10s} {agent.algo.upper():12s} families: {', '.join(agent.families) or '(none)'}"


def cmd_sim2real(args: argparse.Namespace) -> int:
    from rltransfer.evaluation import set_threads
    from rltransfer.sim2real import format_gap_table, sim2real

    set_threads(args.threads)
    _check_json_target(args.json)
    report = sim2real(args.policy, env_name(args.env) if args.env else None, variants=args.variant, sim_randomize=args.sim_randomize,
                      episodes=args.episodes, seed=args.seed, deterministic=not args.stochastic)
    data = report.to_dict()
    if args.json == "-":
        _emit_json("-", data)
        return 0
    _write(format_gap_table(report))
    if args.json:
        _emit_json(args.json, data)
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from rltransfer.config import parse_set
    from rltransfer.evaluation import set_threads
    from rltransfer.plots import check_dpi, check_formats
    from rltransfer.sim2real import parse_axis, sweep, write_sweep

    set_threads(args.threads)
    check_formats(args.format), check_dpi(args.dpi)  # before any episode runs
    axes = [parse_axis(text) for text in args.param]
    result = sweep(args.policy, env_name(args.env), axes, episodes=args.episodes, seed=args.seed, params=parse_set(args.set),
                   deterministic=not args.stochastic, variant=args.variant)
    csv_path, plot_path = write_sweep(result, args.out, formats=args.format, dpi=args.dpi)
    grid = " x ".join(f"{a.name} {a.low:g}..{a.high:g} ({a.n})" for a in axes)
    plots = ", ".join(str(plot_path.with_suffix(f".{f}")) for f in check_formats(args.format))
    _write("".join(f"note: {n}\n" for n in result.notes)
           + f"sweep of {result.env}: {grid}, {len(result.labels)} policies, {args.episodes} episodes per point\n"
           f"csv:  {csv_path}\nplot: {plots}\n")
    return 0


def _print_suite_result(con: Any, result: Any) -> None:
    from rich.table import Table

    from rltransfer.report import format_ci

    analysis = result.analysis
    curricula = any(r.kind == "curriculum" for r in analysis.results)
    what = "arm - scratch" if curricula else "transfer - scratch"
    table = Table(title=f"{analysis.suite.name}: verdicts on normalized AUC ({what}, 95% CI)")
    for col in ("pair", "role", "arm" if curricula else "strategy", "AUC difference", "P(improvement)", "verdict",
                "detector"):
        table.add_column(col, overflow="fold")
    for r in analysis.results:
        auc = r.comparisons["auc"]
        check = "" if r.control_ok is None else (" ✓" if r.control_ok else f" ✗ (expected {r.expected})")
        saved = f"{r.alarms} alarm(s), {r.steps_saved / r.budget:.2f} runs saved" if r.alarms else "no alarm"
        arm = f"{r.arm} (curriculum)" if r.kind == "curriculum" else r.arm
        table.add_row(r.pair, r.role, arm, format_ci(auc.diff, auc.ci_low, auc.ci_high),
                      f"{auc.prob_improvement:.2f}", r.label + check, saved)
    con.print(table)
    con.print(f"runs: {result.executed} executed, {result.skipped} already done, {len(result.failed)} failed; "
              f"this session {result.wall_time:.0f} s")
    for key, error in result.failed.items():
        con.print(f"failed {key}: {error}")
    con.print(f"report:       {result.report}")
    con.print(f"tensorboard:  tensorboard --logdir {result.out}")


def _run_benchmark(suite: str, out: str, workers: int, backend: str, address: str | None, progress: bool,
                   command: str, formats: str = "png", dpi: int | None = None,
                   until_decided: bool | None = None) -> int:
    from rltransfer.benchmark import run_suite

    con = _console()
    try:
        result = run_suite(suite, out, workers=workers, backend=backend, address=address, progress=progress,
                           formats=formats, dpi=dpi, until_decided=until_decided)
    except KeyboardInterrupt:
        con.print(f"interrupted: finished runs are kept in {out}; resume with:\n  {command}")
        return 130
    _print_suite_result(con, result)
    return 1 if result.failed else 0


def cmd_benchmark(args: argparse.Namespace) -> int:
    until = True if args.until_decided else False if args.all_seeds else None
    command = shlex.join(["rltransfer", "benchmark", args.suite, "--out", args.out, "--workers", str(args.workers),
                          *(["--backend", args.backend] if args.backend != "local" else []),
                          *(["--address", args.address] if args.address else []),
                          *(["--until-decided"] if args.until_decided else []),
                          *(["--all-seeds"] if args.all_seeds else [])])
    return _run_benchmark(args.suite, args.out, args.workers, args.backend, args.address, not args.no_progress,
                          command, args.format, args.dpi, until)


def cmd_report(args: argparse.Namespace) -> int:
    from rltransfer.report import write_report

    analysis = write_report(args.dir, formats=args.format, dpi=args.dpi)
    con = _console()
    con.print(analysis.counts.summary())
    for r in analysis.results:
        con.print(f"  {r.pair} / {r.arm}: {r.label}")
    con.print(f"report:       {Path(args.dir) / 'report.md'}")
    con.print(f"tensorboard:  tensorboard --logdir {args.dir}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """The quick suite end to end: sources, scratch and transfer arms, statistics, report, TensorBoard."""
    con = _console()
    con.print(f"rltransfer demo: the quick benchmark suite into {args.out} with {args.workers} "
              "worker(s) (resumes if interrupted)")
    command = f"rltransfer demo --out {args.out} --workers {args.workers}"
    return _run_benchmark("quick", args.out, args.workers, "local", None, not args.no_progress, command,
                          args.format, args.dpi)


# ------------------------------------------------------------------------------------------------ parser


def _add_env_args(p: argparse.ArgumentParser, required: bool = True, variant: bool = True) -> None:
    p.add_argument("--env", required=required, help="env family name (see `rltransfer list envs`), YAML path, or "
                   "the Gymnasium id a family wraps (HopperBulletEnv-v0 means hopper)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="env parameter override (repeatable)")
    if variant:
        p.add_argument("--variant", metavar="NAME",
                       help="a variant of the family (see `rltransfer list envs`): its params (--set overrides "
                            "them) and its sensors (noise, latency), kept at evaluation")


def _add_randomize_arg(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--randomize", metavar="PRESET",
                   help=f"domain-randomization preset of the family by name (see `rltransfer list envs`) or a "
                        f"preset YAML file: {what}")


def _add_threads_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=int, default=1, metavar="N",
                   help="torch CPU threads (default 1, as training: small policies run fastest and reproducibly "
                        "on one thread)")


def _add_algo_arg(p: argparse.ArgumentParser, flag: str = "--algo", what: str = "the zip") -> None:
    from rltransfer.sb3layout import ALGOS

    p.add_argument(flag, metavar="ALGO", choices=ALGOS,
                   help=f"algorithm of {what}, when its data does not tell it (one of: {', '.join(ALGOS)}); "
                        "rltransfer reads it from the policy class and the algorithm's own fields otherwise")


def _add_zoo_agent_args(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group("agent overrides (the RL Zoo's habits)")
    group.add_argument("--hyperparams", nargs="+", metavar="KEY:VALUE",
                       help="override agent settings, parsed like Zoo configs (never evaluated): "
                            "learning_rate:0.0003 learning_rate:lin_0.001 policy_kwargs:\"dict(net_arch=[64, 64])\" "
                            "normalize:\"{'norm_obs': True}\"; unknown keys are errors")
    group.add_argument("--n-envs", type=int, metavar="N", help="number of parallel training envs")
    group.add_argument("--vec-env", choices=["dummy", "subproc"], help="vectorized env class of the training envs")


#: :data:`rltransfer.plots.DEFAULT_DPI` (not imported here: plots imports matplotlib).
_DPI = 150


def _add_figure_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", default="png", metavar="FMT[,FMT]",
                   help="figure formats, comma-separated: png, pdf, svg (vector formats for papers)")
    p.add_argument("--dpi", type=int, default=_DPI, help="resolution of PNG figures")


def _add_device_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"],
                   help="torch device of the model (default cpu)")


def _add_strict_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--strict", action="store_true",
                   help="make warnings about the run's budget errors (e.g. steps not above the agent's "
                        "learning_starts: nothing would be trained), checked before training starts")


def build_parser() -> argparse.ArgumentParser:
    from rltransfer import __version__

    parser = _Parser(prog="rltransfer", description="Transfer learning for RL (SB3 + Gymnasium).")
    parser.add_argument("--version", action="version", version=f"rltransfer {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the run does (spec, run directory, "
                        "evaluations); also accepted after the command")
    parser.add_argument("-q", "--quiet", action="store_true", help="only errors and the results: no progress bar, no "
                        "log lines; also accepted after the command")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="train a source policy on an env family")
    _add_env_args(p)
    p.add_argument("--agent", required=True, help="agent name (see `rltransfer list agents`: ppo, a2c, sac, td3, "
                   "dqn, ddpg, trpo, tqc, qrdqn, ars, crossq) or YAML path; an RL Zoo hyperparameter file as "
                   "zoo:PATH (hyperparams/ppo.yml, or a config.yml saved beside a Zoo agent; recognised "
                   "without the prefix too)")
    p.add_argument("--algo", help="algorithm of a Zoo hyperparameter file whose name does not tell it "
                   "(the Zoo names them ppo.yml, sac.yml...)")
    p.add_argument("--steps", type=int, help="total env steps (default: the agent's n_timesteps)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs", help="parent folder of the run directory (default: runs)")
    p.add_argument("--name", help="run directory name (default: {env}__{agent}__{seed}__{time})")
    p.add_argument("--curriculum", help="curriculum name (see `rltransfer list curricula`) or YAML path")
    p.add_argument("--eval-freq", type=int, help="evaluate every N env steps (0: only at start and end)")
    p.add_argument("--eval-episodes", type=int)
    p.add_argument("--save-freq", type=int, metavar="N",
                   help="write a checkpoint every N env steps (resume with `rltransfer resume RUN_DIR`)")
    _add_randomize_arg(p, "parameters and sensor effects drawn per episode (training envs only)")
    _add_threads_arg(p)
    _add_strict_arg(p)
    _add_zoo_agent_args(p)
    _add_device_arg(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=cmd_train)

    p = sub.add_parser("evaluate", help="return of a policy (bundle, run or SB3 zip) on an env family")
    p.add_argument("--policy", required=True, help="bundle folder, run directory, or SB3 .zip")
    _add_env_args(p, required=False)
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--stochastic", action="store_true", help="sample actions instead of the deterministic mode")
    p.add_argument("--json", metavar="FILE", help="write mean, std, ci95 and returns as JSON ('-': to stdout, "
                   "instead of the text)")
    _add_randomize_arg(p, "evaluate on its distribution (each episode's params and sensor effects drawn)")
    _add_algo_arg(p, what="an SB3 zip")
    _add_threads_arg(p)
    p.set_defaults(handler=cmd_evaluate)

    p = sub.add_parser("enjoy", help="run a policy (bundle, run or SB3 zip) on a family, rendered; record a video")
    p.add_argument("--policy", required=True, help="bundle folder, run directory, or SB3 .zip")
    _add_env_args(p, required=False)
    p.add_argument("--episodes", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--stochastic", action="store_true", help="sample actions instead of the deterministic mode")
    p.add_argument("--video", metavar="OUT.mp4", help="record with Gymnasium's RecordVideo (pip install "
                   "'rltransfer[video]'): OUT.mp4 for one episode, OUT-episode-<i>.mp4 for several")
    _add_algo_arg(p, what="an SB3 zip")
    _add_threads_arg(p)
    p.set_defaults(handler=cmd_enjoy)

    p = sub.add_parser("transfer", help="transfer a saved policy into an agent for a target env, and train it")
    p.__class__ = _TransferParser  # strategy flags added on use (see _TransferParser)
    p.add_argument("--from", dest="source", required=True, help="bundle folder, run directory, or SB3 .zip")
    _add_env_args(p)
    p.add_argument("--agent", help="target agent name or YAML, or zoo:PATH (an RL Zoo hyperparameter file) "
                   "(default: the source's algorithm for this env)")
    p.add_argument("--algo", help="target algorithm (default: the source's; pairs sharing a policy layout are "
                   "allowed: ppo <-> a2c <-> trpo, ddpg <-> td3, sac <-> tqc (actors only))")
    _add_algo_arg(p, "--source-algo", "the source zip")
    p.add_argument("--steps", type=int)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs")
    p.add_argument("--name")
    p.add_argument("--eval-freq", type=int)
    p.add_argument("--eval-episodes", type=int)
    p.add_argument("--obs-map", help="per target obs feature: source index or name, '-' = new (e.g. '0,1,-,3'); or 'auto' (match names)")
    p.add_argument("--action-map", help="target action index -> source index, e.g. '0,1,-'")
    p.add_argument("--wrapper", action="append", help="extra target env wrapper by name (repeatable)")
    p.add_argument("--save-freq", type=int, metavar="N", help="write a checkpoint every N env steps")
    p.add_argument("--curriculum", help="train the target with this curriculum (name or YAML path)")
    _add_randomize_arg(p, "randomize the target's training envs")
    _add_threads_arg(p)
    _add_strict_arg(p)
    _add_zoo_agent_args(p)
    _add_device_arg(p)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(handler=cmd_transfer)

    p = sub.add_parser("sim2real", help="sim-to-real gap: returns on sim and on real variants, retained fraction")
    p.add_argument("--policy", action="append", required=True, help="bundle folder, run directory or SB3 .zip "
                   "(repeatable: one row per policy)")
    p.add_argument("--env", help="env family name or YAML path (default: the first policy's family)")
    p.add_argument("--variant", action="append", metavar="NAME",
                   help="a real variant (repeatable; default: every variant of the family)")
    p.add_argument("--sim-randomize", metavar="PRESET",
                   help="evaluate 'sim' on this preset's distribution (default: the nominal env)")
    p.add_argument("--episodes", type=int, default=20, help="episodes per policy and env (>= 2; default 20)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--stochastic", action="store_true", help="sample actions instead of the deterministic mode")
    p.add_argument("--json", metavar="FILE", help="write the results as JSON ('-': to stdout, instead of the table)")
    _add_threads_arg(p)
    p.set_defaults(handler=cmd_sim2real)

    p = sub.add_parser("sweep", help="return of policies against one parameter (curve) or two (heatmap)")
    p.add_argument("--policy", action="append", required=True, help="bundle folder, run directory or SB3 .zip "
                   "(repeatable: all on one plot)")
    _add_env_args(p, variant=False)
    p.add_argument("--variant", metavar="NAME", help="sweep on this variant: its params (the swept ones "
                   "replaced) and its sensors (noise, latency) at every point")
    p.add_argument("--param", action="append", required=True, metavar="NAME=LOW:HIGH:N",
                   help="a swept parameter: N evenly spaced values (give twice for a heatmap)")
    p.add_argument("--episodes", type=int, default=10, help="episodes per grid point (default 10)")
    p.add_argument("--seed", type=int, default=0, help="seed of every grid point's episodes (default 0)")
    p.add_argument("--stochastic", action="store_true", help="sample actions instead of the deterministic mode")
    p.add_argument("--out", required=True, help="folder for sweep.csv and the plot (sweep.png, and one file per "
                   "--format)")
    _add_figure_args(p)
    _add_threads_arg(p)
    p.set_defaults(handler=cmd_sweep)

    p = sub.add_parser("resume", help="continue an interrupted or killed run from its last checkpoint")
    p.add_argument("run_dir", help="the run directory")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(handler=cmd_resume)

    p = sub.add_parser("inspect", help="spaces, algorithm, architecture and tensors of a policy, without unpickling")
    p.add_argument("path", help="SB3 .zip, bundle folder or run directory")
    p.add_argument("--json", action="store_true")
    _add_algo_arg(p, what="an SB3 zip")
    p.set_defaults(handler=cmd_inspect)

    p = sub.add_parser("list", help="list shipped env families (with presets and variants), agents and suites")
    p.add_argument("kind", nargs="?", choices=["envs", "agents", "curricula", "benchmarks"])
    p.set_defaults(handler=cmd_list)

    p = sub.add_parser("benchmark", help="run a transfer benchmark suite (resumes an interrupted one)")
    p.add_argument("suite", help="shipped suite name (see `rltransfer list benchmarks`) or YAML path")
    p.add_argument("--out", required=True, help="benchmark folder (runs, sources cache, report)")
    p.add_argument("--workers", type=int, default=2, help="runs in parallel (default 2)")
    p.add_argument("--backend", choices=["local", "ray"], default="local",
                   help="local process pool (default) or Ray (pip install 'rltransfer[ray]')")
    p.add_argument("--address", help="Ray cluster address, e.g. auto (with --backend ray)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    seeds = p.add_mutually_exclusive_group()
    seeds.add_argument("--until-decided", action="store_true",
                       help="run seeds in rounds and stop adding them to a comparison once its verdict is decided "
                            "(group-sequential, error held under the stopping; the suite's until_decided setting "
                            "or its defaults)")
    seeds.add_argument("--all-seeds", action="store_true",
                       help="every comparison gets all the suite's seeds, even if the suite says until_decided")
    _add_figure_args(p)
    p.set_defaults(handler=cmd_benchmark)

    p = sub.add_parser("report", help="re-render report.md/json, CSV, plots from a benchmark folder's runs")
    p.add_argument("dir", help="benchmark folder (the --out of `rltransfer benchmark`)")
    _add_figure_args(p)
    p.set_defaults(handler=cmd_report)

    p = sub.add_parser("demo", help="the main job, end to end: the quick benchmark suite")
    p.add_argument("--out", default="bench/quick")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--no-progress", action="store_true")
    _add_figure_args(p)
    p.set_defaults(handler=cmd_demo)
    for command in sub.choices.values():
        _finish_options(command)
    return parser


#: Help for the options several commands share, where their add_argument leaves it out.
_COMMON_HELP = {
    "seed": "seed of the model, the training envs (seed .. seed+n_envs-1) and the evaluation episodes",
    "steps": "total env steps of training (default: the agent's n_timesteps)",
    "out": "parent folder of the run directory",
    "name": "run directory name (default: {env}__{agent}__{seed}__{time})",
    "eval_freq": "evaluate every N env steps (default: the agent's eval.freq; 0: only at start and end)",
    "eval_episodes": "episodes per evaluation (default: the agent's eval.episodes; 0: no evaluation)",
    "no_progress": "no progress bar",
    "json": "print the description as JSON on stdout (for jq and scripts)",
    "kind": "what to list (default: all of them)",
    "workers": "runs in parallel",
    "episodes": "episodes to run",
}


def _finish_options(p: argparse.ArgumentParser) -> None:
    """Every option of a command described, with its default; ``-v``/``-q`` accepted after the command too."""
    p.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                   help="log what the run does (spec, run directory, evaluations)")
    p.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                   help="only errors and the results: no progress bar, no log lines")
    _document(p)


def _document(p: argparse.ArgumentParser) -> None:
    """Fill in the help of shared options and append each option's default (idempotent)."""
    for action in p._actions:
        if isinstance(action, (argparse._HelpAction, argparse._VersionAction)) or action.help == argparse.SUPPRESS:
            continue
        if action.help is None:
            action.help = _COMMON_HELP.get(action.dest)
        default = action.default
        shown = not (default is None or default is False or default is argparse.SUPPRESS or default == []
                     or isinstance(action, argparse._StoreTrueAction))
        if shown and action.help is not None and "default" not in action.help:
            action.help += f" (default: {default})"


@contextlib.contextmanager
def _one_line_warnings(quiet: bool = False) -> Iterator[None]:
    """rltransfer's own warnings (:class:`~rltransfer.training.BudgetWarning`) as one line on stderr while a
    command runs (kept under ``-q``: they say a run would train nothing); other warnings as Python shows
    them, or not at all under ``-q``."""
    import warnings

    shown = warnings.showwarning

    def show(message: Any, category: type[Warning], filename: str, lineno: int, file: Any = None,
             line: str | None = None) -> None:
        if category.__name__ == "BudgetWarning" and category.__module__ == "rltransfer.training":
            print(f"rltransfer: warning: {message}", file=sys.stderr)
        elif not quiet:
            shown(message, category, filename, lineno, file, line)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = shown


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.command_line = shlex.join(["rltransfer", *argv])
    if args.verbose and args.quiet:
        parser.error("-v/--verbose and -q/--quiet exclude each other")
    if args.quiet and hasattr(args, "no_progress"):
        args.no_progress = True
    level = logging.INFO if args.verbose else logging.ERROR if args.quiet else logging.WARNING
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("rltransfer").setLevel(level)
    try:
        with _one_line_warnings(quiet=args.quiet):
            return int(args.handler(args))
    except KeyboardInterrupt as exc:
        detail = str(exc) if isinstance(exc, RLTransferError) else "interrupted"
        print(f"rltransfer: {detail}", file=sys.stderr)
        return 130
    except RLTransferError as exc:
        message = str(exc).replace("\n", "\n  ")
        print(f"rltransfer: error: {message}", file=sys.stderr)
        return 2
    except OSError as exc:  # the file system said no: a full disk, a read-only folder, a missing permission
        where = f" {exc.filename}" if exc.filename else ""
        print(f"rltransfer: error: cannot {_os_verb(exc)}{where}: {exc.strerror or exc}", file=sys.stderr)
        return 2


def _os_verb(exc: OSError) -> str:
    import errno

    return {errno.ENOSPC: "write (disk full)", errno.EROFS: "write (read-only file system)",
            errno.EACCES: "access", errno.EPERM: "access", errno.ENOENT: "find", errno.ENOTDIR: "use",
            errno.EISDIR: "use", errno.EDQUOT: "write (quota exceeded)"}.get(exc.errno or 0, "use")


if __name__ == "__main__":
    sys.exit(main())
