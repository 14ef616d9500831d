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
        (["train", "--env", "cartpole", "--agent", "ppo", "--randomize", "dx"], "Did you mean: 'dr'"),
        (["train", "--env", "cartpole", "--agent", "ppo", "--variant", "rael"], "Did you mean: 'real'"),
        (["train", "--env", "cartpole", "--agent", "ppo", "--randomize", "dr", "--set", "length=0.5"],
         "which the randomization preset also draws"),
        (["train", "--env", "cartpole", "--agent", "ppo", "--randomize", "dr", "--variant", "real"],
         "variant 'real' set cart_mass, force_mag, length, pole_mass, which the randomization preset also draws"),
        (["sim2real", "--policy", "no/such/policy", "--env", "cartpole"], "no such file or directory"),
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


def test_list_shows_presets_variants_and_coverage(capsys) -> None:
    code, out, _ = _run(["list", "envs"], capsys)
    assert code == 0
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("  cartpole "))
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("  ") and not lines[i].startswith("   "))
    block = "\n".join(lines[start:end])
    assert "length     nominal 0.5      bounds [0.05, 5]  half-length of the pole (m)" in block
    assert "preset dr:" in block and "length     uniform [0.4, 0.7]" in block
    assert "variant real:" in block and "sensors: obs_noise std 0.01, latency 1" in block
    assert "pole_mass = 0.25  dr: OUTSIDE [0.05, 0.2]" in block and "length = 0.6      dr: inside [0.4, 0.7]" in block


def test_inspect_shows_the_training_preset_and_variant(tmp_path: Path, capsys) -> None:
    agent = tmp_path / "tiny-ppo.yaml"
    agent.write_text(
        "algo: ppo\nfamilies:\n  cartpole:\n    n_envs: 1\n    hyperparams: {n_steps: 32, batch_size: 32, n_epochs: 1}\n"
        "    policy_kwargs: {net_arch: [8]}\n"
    )
    code, _, _ = _run(["train", "--env", "cartpole", "--agent", str(agent), "--randomize", "dr", "--steps", "32",
                       "--out", str(tmp_path / "runs"), "--name", "dr", "--eval-episodes", "1", "--no-progress"], capsys)
    assert code == 0
    code, out, _ = _run(["inspect", str(tmp_path / "runs" / "dr")], capsys)
    assert code == 0
    assert "randomization      dr (length [0.4, 0.7], pole_mass [0.05, 0.2]" in out and "variant            none" in out
    code, out, _ = _run(["inspect", str(tmp_path / "runs" / "dr"), "--json"], capsys)
    info = json.loads(out)
    assert info["trained_with"]["randomization"] == "dr" and info["trained_with"]["variant"] is None
    assert info["trained_with"]["ranges"]["length"] == [0.4, 0.7]


def test_transfer_onto_a_variant_with_a_preset(tmp_path: Path, capsys) -> None:
    from tiny import tiny

    from rltransfer.pipeline import train
    from rltransfer.spec import load_spec

    source = train("cartpole", tiny("ppo", "cartpole"), steps=64, seed=0, out=tmp_path, name="src", eval_freq=0,
                   eval_episodes=1)
    code, _, err = _run(["transfer", "--from", str(source.policy_dir), "--env", "cartpole", "--variant", "real",
                           "--set", "gravity=9.9", "--steps", "64", "--eval-episodes", "1", "--out", str(tmp_path),
                           "--name", "tgt", "--no-progress"], capsys)
    assert code == 0, err
    spec = load_spec(tmp_path / "tgt")
    assert spec.env.variant == "real" and spec.env.params["pole_mass"] == 0.25 and spec.env.params["gravity"] == 9.9
    assert spec.eval.env.sensors is not None and spec.eval.env.sensors.latency is not None
    manifest = json.loads((tmp_path / "tgt" / "policy" / "manifest.json").read_text())
    assert manifest["env"]["variant"] == "real" and manifest["env"]["randomization"] is None
    code, _, err = _run(["transfer", "--from", str(source.policy_dir), "--env", "cartpole", "--randomize", "dr",
                         "--steps", "64", "--eval-episodes", "1", "--out", str(tmp_path), "--name", "tgt-dr",
                         "--no-progress"], capsys)
    assert code == 0, err
    assert load_spec(tmp_path / "tgt-dr").env.randomization_name == "dr"
