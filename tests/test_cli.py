"""The command line: thin over the API; user errors print one line and exit 2, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rltransfer.cli import main


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["train", "--env", "cartpol", "--agent", "ppo", "--steps", "64"], "Did you mean: 'cartpole'"),
        (["train", "--env", "cartpole", "--agent", "ppo", "--set", "length=99"], "outside its hard bounds [0.05, 5.0]"),
        (["train", "--env", "cartpole", "--agent", "ppo", "--set", "lenght=1"], "Did you mean: 'length'"),
        (["train", "--env", "cartpole", "--agent", "sac"], "unknown env family 'cartpole' in agent 'sac'"),
        (["train", "--env", "cartpole", "--agent", "ppo", "--set", "length"], "expected KEY=VALUE"),
        (["evaluate", "--policy", "no/such/policy", "--env", "cartpole"], "no such file or directory"),
        (["inspect", "no/such.zip"], "no such file"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(args: list[str], expected: str, tmp_path: Path, capsys) -> None:
    code, out, err = _run([*args, *(["--out", str(tmp_path)] if args[0] == "train" else [])], capsys)
    assert code == 2
    assert err.startswith("rltransfer: error:") and expected in err, err
    assert "Traceback" not in err
    assert not any(tmp_path.iterdir())  # nothing half-written


def test_train_then_evaluate_from_the_cli(tmp_path: Path, capsys) -> None:
    agent = tmp_path / "tiny-ppo.yaml"
    agent.write_text(
        "algo: ppo\nfamilies:\n  cartpole:\n    n_envs: 2\n    hyperparams: {n_steps: 32, batch_size: 32, n_epochs: 1}\n"
        "    policy_kwargs: {net_arch: [16]}\n"
    )
    code, out, _ = _run(["train", "--env", "cartpole", "--agent", str(agent), "--set", "length=1.0", "--steps", "128",
                         "--seed", "0", "--out", str(tmp_path / "runs"), "--name", "cli", "--eval-episodes", "2",
                         "--no-progress"], capsys)
    assert code == 0 and "tensorboard --logdir" in out
    run = tmp_path / "runs" / "cli"
    assert (run / "policy" / "manifest.json").is_file()
    assert "length=1.0" in (run / "command.txt").read_text()
    code, out, _ = _run(["evaluate", "--policy", str(run / "policy"), "--env", "cartpole", "--set", "length=1.5",
                         "--episodes", "3", "--json", str(tmp_path / "eval.json")], capsys)
    assert code == 0
    data = json.loads((tmp_path / "eval.json").read_text())
    assert set(data) >= {"mean", "std", "ci95", "returns"} and data["params"]["length"] == 1.5


def test_console_script_is_installed() -> None:
    result = subprocess.run([str(Path(sys.executable).parent / "rltransfer"), "--version"], capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0 and result.stdout.startswith("rltransfer ")


def test_argparse_usage_errors_exit_2(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["train"])
    assert info.value.code == 2
