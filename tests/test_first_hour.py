"""What a new user meets in the first hour: files a collaborator can read, one-line answers, an API that
shows itself, terminal output that survives a pipe, help that explains every option, runs that stop at
their budget."""

from __future__ import annotations

import argparse
import json
import os
import stat
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from tiny import tiny

import rltransfer
from rltransfer.cli import main

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "rl-zoo"
EXE = str(Path(sys.executable).with_name("rltransfer"))


def _train(out: Path, name: str, *extra: str, steps: str = "64") -> int:
    agent = out.parent / "tiny.yaml"
    if not agent.exists():
        agent.write_text("algo: ppo\ndefaults:\n  n_envs: 2\n  hyperparams: {n_steps: 32, batch_size: 32, n_epochs: 1}\n"
                         "  policy_kwargs: {net_arch: [16]}\nfamilies:\n  cartpole: {}\n")
    return main(["train", "--env", "cartpole", "--agent", str(agent), "--steps", steps, "--out", str(out), "--name",
                 name, "--eval-episodes", "1", "--no-progress", *extra])


# ---------------------------------------------------------------------------------------------- files


@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_written_files_honour_the_umask(tmp_path: Path, mask: int) -> None:
    old = os.umask(mask)
    try:
        assert _train(tmp_path / "runs", "r") == 0
    finally:
        os.umask(old)
    run = tmp_path / "runs" / "r"
    paths = [run, *run.rglob("*")]
    assert any(p.name == "status.json" for p in paths) and any(p.name == "policy" for p in paths)
    for path in paths:
        mode = stat.S_IMODE(path.stat().st_mode)
        expected = (0o777 if path.is_dir() else 0o666) & ~mask
        assert mode & 0o066 == expected & 0o066, f"{path.relative_to(tmp_path)}: {oct(mode)} under umask {oct(mask)}"


# ------------------------------------------------------------------------------------ one-line answers


def test_eval_episodes_0_trains_and_says_it_did_not_evaluate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", "--env", "cartpole", "--agent", "ppo", "--steps", "64", "--eval-episodes", "0",
                 "--out", str(tmp_path), "--name", "r", "--no-progress", "--hyperparams", "n_envs:2", "n_steps:32",
                 "policy_kwargs:dict(net_arch=[16])"])
    out = capsys.readouterr().out
    assert code == 0 and "not evaluated (--eval-episodes 0)" in out
    assert json.loads((tmp_path / "r" / "status.json").read_text())["status"] == "done"


def test_a_gym_id_that_does_not_exist_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    family = tmp_path / "fam.yaml"
    shipped = Path(__file__).resolve().parents[1] / "envs" / "cartpole.yaml"
    family.write_text(shipped.read_text().replace("gym_id: CartPole-v1", "gym_id: CartPole-v7"))
    code = main(["train", "--env", str(family), "--agent", "ppo", "--out", str(tmp_path / "runs")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "'CartPole-v7' is not a registered Gymnasium env" in err
    assert "Did you mean: 'CartPole-v1'" in err and not (tmp_path / "runs").exists()


def test_a_freeze_that_freezes_nothing_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _train(tmp_path / "runs", "src") == 0
    capsys.readouterr()
    base = ["transfer", "--from", str(tmp_path / "runs" / "src"), "--env", "cartpole", "--steps", "64", "--out",
            str(tmp_path / "t"), "--strategy", "freeze", "--no-progress"]
    assert main([*base, "--freeze-pattern", "nomatch*"]) == 2
    assert "--freeze-pattern 'nomatch*' matches no tensor" in capsys.readouterr().err
    assert main([*base, "--freeze-layers", "7"]) == 2
    assert "--freeze-layers 7: the target policy has 1 feature (hidden) layer per network" in capsys.readouterr().err
    assert not (tmp_path / "t").exists() or not any((tmp_path / "t").iterdir())  # refused before any run
    assert main([*base, "--freeze-pattern", "action_net.*", "--name", "ok"]) == 0  # a pattern that matches
    assert "0 frozen" not in capsys.readouterr().out


def test_a_shipped_name_is_suggested_for_a_path_that_is_not_there(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["benchmark", str(tmp_path / "benchmarks" / "quick.yaml"), "--out", str(tmp_path / "b")])
    err = capsys.readouterr().err
    assert code == 2 and "the shipped suite 'quick' is available by name" in err and "Shipped suite names: curricula, quick, " in err


def test_an_agent_of_another_algorithm_suggests_algo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _train(tmp_path / "runs", "src") == 0
    capsys.readouterr()
    assert main(["transfer", "--from", str(tmp_path / "runs" / "src"), "--env", "cartpole", "--agent", "a2c",
                 "--out", str(tmp_path / "t")]) == 2
    assert "add --algo a2c" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------- the API


def test_the_package_shows_its_api() -> None:
    import pydoc

    names = dir(rltransfer)
    for name in ("train", "transfer", "resume", "evaluate", "enjoy", "inspect_source", "sim2real", "sweep",
                 "benchmark", "run_suite", "report", "write_report", "list_names", "make_env", "load_family",
                 "load_agent", "load_bundle", "load_policy", "load_curriculum", "analyze"):
        assert name in names and name in rltransfer.__all__, name
        assert callable(getattr(rltransfer, name)), name
    text = pydoc.render_doc(rltransfer, renderer=pydoc.plaintext)
    assert "transfer(source" in text and "run_suite(suite" in text


def test_functions_stay_functions_when_their_modules_are_imported() -> None:
    import importlib

    for name, module in (("transfer", "rltransfer.transfer"), ("benchmark", "rltransfer.benchmark"),
                         ("sim2real", "rltransfer.sim2real"), ("report", "rltransfer.report")):
        importlib.import_module(module)
        assert callable(getattr(rltransfer, name)) and not isinstance(getattr(rltransfer, name), type(sys)), name
        assert sys.modules[module].__name__ == module
    from rltransfer import transfer

    assert transfer is rltransfer.pipeline.transfer  # type: ignore[attr-defined]


@pytest.mark.parametrize("family", ["cartpole", "pendulum", "acrobot", "mountaincar", "hopper", "halfcheetah",
                                    "invertedpendulum"])
def test_make_env_takes_a_name_and_passes_gymnasiums_check_env(family: str) -> None:
    from gymnasium.utils.env_checker import check_env

    env = rltransfer.make_env(family, wrappers=["TimeFeatureWrapper"] if family == "hopper" else ())
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # its style advice (unbounded Box, wrapped env) is not a failure
            check_env(env, skip_render_check=True)
    finally:
        env.close()


def test_tensorboard_hparams_name_the_arm_pair_strategy_and_source(tmp_path: Path) -> None:
    from rltransfer.pipeline import run_identity
    from rltransfer.spec import train_spec
    from rltransfer.transfer import transfer_spec

    assert _train(tmp_path / "runs", "src") == 0
    spec = transfer_spec(tmp_path / "runs" / "src", "cartpole", strategy="lower_lr", agent=tiny("ppo", "cartpole"),
                         steps=64)
    ident = run_identity(spec, tmp_path / "bench" / "runs" / "cartpole-longer" / "lower_lr" / "seed3")
    assert ident["run/kind"] == "transfer" and ident["transfer/strategy"] == "lower_lr"
    assert ident["run/pair"] == "cartpole-longer" and ident["run/arm"] == "lower_lr"
    assert ident["transfer/source"].startswith("src/policy (")
    scratch = run_identity(train_spec("cartpole", tiny("ppo", "cartpole"), steps=64, label="scratch"), tmp_path / "x")
    assert scratch["run/kind"] == "train" and scratch["run/arm"] == "scratch" and "run/pair" not in scratch


# ------------------------------------------------------------------------------------------- terminal


def test_piped_tables_keep_identifiers_whole_and_print_brackets() -> None:
    if not (FIXTURES / "ppo-HopperBulletEnv-v0.zip").is_file():
        pytest.skip("the RL Zoo fixtures (../shared/fixtures/rl-zoo) are not beside this checkout")
    proc = subprocess.run([EXE, "inspect", str(FIXTURES / "ppo-HopperBulletEnv-v0.zip")], capture_output=True,
                          text=True, env={**os.environ, "COLUMNS": "80"}, timeout=120)
    assert proc.returncode == 0
    assert "mlp_extractor.policy_net.0.weight" in proc.stdout  # never split across lines
    assert max(len(line) for line in proc.stdout.splitlines()) > 80  # nothing wrapped to the pipe's 80 columns


def test_rich_markup_in_values_is_printed_as_is(capsys: pytest.CaptureFixture[str]) -> None:
    from rltransfer.cli import _console

    _console().print("converted to [n, 'episode'] and [bold]kept[/bold]")
    assert capsys.readouterr().out.strip() == "converted to [n, 'episode'] and [bold]kept[/bold]"


def test_json_dash_is_json_on_stdout_even_for_pybullet(tmp_path: Path) -> None:
    if not (FIXTURES / "ppo-HopperBulletEnv-v0.zip").is_file():
        pytest.skip("the RL Zoo fixtures (../shared/fixtures/rl-zoo) are not beside this checkout")
    proc = subprocess.run([EXE, "evaluate", "--policy", str(FIXTURES / "ppo-HopperBulletEnv-v0.zip"), "--env",
                           "hopper", "--episodes", "1", "--json", "-"], capture_output=True, text=True, timeout=300,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)  # argv[0]= and the like went to stderr
    assert data["n_episodes"] == 1 and not (tmp_path / "-").exists()


# ------------------------------------------------------------------------------------------------ help


def _commands() -> dict[str, argparse.ArgumentParser]:
    from rltransfer.cli import build_parser

    parser = build_parser()
    commands = dict(parser._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    commands["transfer"]._with_strategy_args()  # type: ignore[attr-defined]
    return commands


def test_every_option_is_explained_with_its_default() -> None:
    missing, no_default = [], []
    for name, command in _commands().items():
        for action in command._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            flag = action.option_strings[-1] if action.option_strings else action.dest
            if not action.help:
                missing.append(f"{name} {flag}")
            elif (action.default not in (None, False, argparse.SUPPRESS, []) or action.default == 0) \
                    and not isinstance(action, argparse._StoreTrueAction) and "default" not in action.help:
                no_default.append(f"{name} {flag}")
    assert not missing, f"options without help: {missing}"
    assert not no_default, f"options whose help hides the default: {no_default}"


def test_verbose_and_quiet_go_anywhere(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    assert main(["list", "envs", "-q"]) == 0 and main(["-v", "list", "agents"]) == 0
    assert _train(tmp_path / "runs", "v", "-v") == 0
    assert logging.getLogger("rltransfer").level == logging.INFO
    assert any(r.message.startswith("run ") and "seed 0" in r.message for r in caplog.records)  # the run, logged
    assert _train(tmp_path / "runs", "q", "--quiet") == 0
    assert logging.getLogger("rltransfer").level == logging.ERROR
    logging.getLogger("rltransfer").setLevel(logging.NOTSET)


def test_list_says_which_families_an_agent_has_and_each_parameters_range(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "agents"]) == 0
    out = capsys.readouterr().out
    assert any(line.split()[:2] == ["dqn", "DQN"] and "families: cartpole, acrobot" in line for line in out.splitlines())
    assert main(["list", "envs"]) == 0
    assert "gravity    nominal 9.8      bounds [0.5, 30]" in capsys.readouterr().out


# ----------------------------------------------------------------------------------------------- budget


def test_an_on_policy_run_stops_at_its_budget(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # 2 envs x 32 steps: rollouts of 64; 200 steps is 3 rollouts and 8 steps of a fourth
    assert _train(tmp_path / "runs", "b", steps="200") == 0
    status = json.loads((tmp_path / "runs" / "b" / "status.json").read_text())
    assert status["steps"] == status["budget"] == 200
    assert "200 (the budget)" in capsys.readouterr().out
    rows = (tmp_path / "runs" / "b" / "eval.csv").read_text().splitlines()
    assert rows[-1].startswith("200,")  # evaluated once at the budget, nothing after it
    assert _train(tmp_path / "runs", "m", steps="192") == 0  # a multiple of the rollout: as SB3 runs it
    assert json.loads((tmp_path / "runs" / "m" / "status.json").read_text())["steps"] == 192
