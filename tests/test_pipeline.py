"""The run pipeline: envs built in one place (evaluation never gets training-only wrappers), episode
parameters in ``info``, evaluation hooks in the same logger dump, exact resume through ``execute``,
Ctrl-C on the command line, and content fingerprints."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from rltransfer.bundle import load_bundle
from rltransfer.pipeline import build_envs, execute, resume
from rltransfer.rundir import read_status
from rltransfer.spec import CheckpointSpec, load_spec, train_spec
from rltransfer.training import EvalCurve

from tiny import Crash, tiny


def _chain(env) -> list[str]:
    names = []
    while env is not None:
        names.append(type(env).__name__)
        env = getattr(env, "env", None)
    return names


def test_evaluation_envs_never_get_training_only_wrappers() -> None:
    spec = train_spec("cartpole", tiny("ppo", "cartpole"), steps=64, training_wrappers=["PermuteActions"],
                      eval_episodes=2)
    venv, eval_env = build_envs(spec)
    try:
        assert "PermuteActions" in _chain(venv.envs[0])
        for env in eval_env.envs:
            assert "PermuteActions" not in _chain(env)
            assert _chain(env)[:2] == ["EpisodeMonitor", "FamilyEnv"]
    finally:
        venv.close()
        eval_env.close()


def test_each_worker_knows_its_index_and_episodes_report_their_parameters() -> None:
    spec = train_spec("cartpole", tiny("ppo", "cartpole", n_envs=3), {"length": 0.8}, steps=64, eval_episodes=1)
    venv, eval_env = build_envs(spec)
    try:
        from rltransfer.families import family_env

        assert [family_env(e).worker_index for e in venv.envs] == [0, 1, 2]
        venv.reset()
        ended = 0
        for _ in range(600):
            _, _, dones, infos = venv.step(np.array([venv.action_space.sample() for _ in range(3)]))
            for done, info in zip(dones, infos):
                if done:
                    assert info["env_params"]["length"] == 0.8
                    ended += 1
        assert ended >= 3
    finally:
        venv.close()
        eval_env.close()



def _params(policy_dir: Path) -> dict[str, torch.Tensor]:
    return load_bundle(policy_dir).state_dict


@pytest.mark.parametrize("algo,family,steps,save,crash", [("ppo", "cartpole", 320, 128, 200),
                                                           ("sac", "pendulum", 300, 150, 220)])
def test_resume_after_a_crash_equals_one_uninterrupted_run(tmp_path: Path, algo: str, family: str, steps: int,
                                                          save: int, crash: int) -> None:
    """N+M in one go versus N, crash, resume, M: the same final parameters and evaluation curve, bit for bit."""
    spec = train_spec(family, tiny(algo, family), steps=steps, seed=4, eval_freq=64, eval_episodes=2,
                      checkpoints=CheckpointSpec(save_freq=save))
    whole = execute(spec, tmp_path / "whole")
    with pytest.raises(RuntimeError, match="simulated crash"):
        execute(spec, tmp_path / "cut", callbacks=[Crash(crash)])
    assert read_status(tmp_path / "cut")["status"] == "failed"
    resumed = resume(tmp_path / "cut")
    a, b = _params(whole.policy_dir), _params(resumed.policy_dir)
    assert a.keys() == b.keys()
    diff = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert diff == 0.0, f"max |diff| {diff}"
    assert EvalCurve.load(tmp_path / "whole").to_dict() == EvalCurve.load(tmp_path / "cut").to_dict()
    assert read_status(tmp_path / "cut")["status"] == "done"
    assert load_spec(tmp_path / "cut") == spec


def test_resume_refuses_a_finished_run_and_one_without_checkpoints(tmp_path: Path) -> None:
    from rltransfer.errors import ConfigError

    spec = train_spec("cartpole", tiny("ppo", "cartpole"), steps=128, eval_freq=64, eval_episodes=1)
    execute(spec, tmp_path / "done")
    with pytest.raises(ConfigError, match="finished"):
        resume(tmp_path / "done")
    with pytest.raises(RuntimeError):
        execute(spec, tmp_path / "nockpt", callbacks=[Crash(64)])
    with pytest.raises(ConfigError, match="no checkpoint"):
        resume(tmp_path / "nockpt")


def test_detect_and_eval_scalars_land_on_the_same_steps(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from rltransfer.spec import DetectionSpec
    from rltransfer.transfer import transfer_spec

    src = execute(train_spec("cartpole", tiny("ppo", "cartpole"), steps=128, eval_freq=64, eval_episodes=2),
                  tmp_path / "src")
    scratch = [execute(train_spec("cartpole", tiny("ppo", "cartpole"), steps=256, seed=s, eval_freq=64,
                                  eval_episodes=2), tmp_path / f"scratch{s}") for s in range(2)]
    spec = transfer_spec(src.run_dir, "cartpole", steps=256, agent=tiny("ppo", "cartpole"), eval_freq=64,
                         eval_episodes=2)
    settings = {"enable": True, "action": "warn", "rule": "per_look", "min_evals": 1, "confidence": 0.9, "patience": 1,
                "margin": 0.0,
                "window": 1}
    spec = spec.model_copy(update={"detection": DetectionSpec(settings=settings,
                                                              reference=tuple(str(r.run_dir) for r in scratch))})
    execute(spec, tmp_path / "t")
    acc = EventAccumulator(str(tmp_path / "t" / "tb"))
    acc.Reload()
    eval_steps = [e.step for e in acc.Scalars("eval/mean_return")]
    detect_steps = [e.step for e in acc.Scalars("detect/gap")]
    assert detect_steps and set(detect_steps) <= set(eval_steps)
    assert detect_steps == [s for s in eval_steps if s in detect_steps]
    record = json.loads((tmp_path / "t" / "detection.json").read_text())
    assert [e["step"] for e in record["evaluations"]] == detect_steps


@pytest.mark.slow
def test_ctrl_c_saves_a_checkpoint_and_a_policy_and_resume_finishes(tmp_path: Path) -> None:
    rltransfer = Path(sys.executable).parent / "rltransfer"
    agent = tmp_path / "agent.yaml"
    agent.write_text(
        "algo: ppo\nfamilies:\n  cartpole:\n    n_envs: 2\n    hyperparams: {n_steps: 32, batch_size: 32, n_epochs: 2}\n"
        "    policy_kwargs: {net_arch: [16]}\n"
    )
    cmd = [str(rltransfer), "train", "--env", "cartpole", "--agent", str(agent), "--steps", "200000",
           "--save-freq", "2000", "--eval-freq", "5000", "--eval-episodes", "2", "--out", str(tmp_path),
           "--name", "run", "--no-progress"]
    # a shell's background job (`make test &`) runs with SIGINT ignored, which children inherit: give the
    # command line the default disposition a terminal would, so Ctrl-C means what it means to a user
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    run = tmp_path / "run"
    deadline = time.time() + 90
    while time.time() < deadline and not list((run / "checkpoints").glob("ckpt-*")):
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "rltransfer resume" in err
    status = read_status(run)
    assert status["status"] == "interrupted" and 0 < status["steps"] < 200000
    assert load_bundle(run / "policy").num_timesteps == status["steps"]
    # finish it (fewer steps: rewrite nothing; resume continues to the spec's 200k would be long, so stop again)
    proc = subprocess.Popen([str(rltransfer), "resume", str(run), "--no-progress"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    time.sleep(6)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    again = read_status(run)
    assert again["status"] == "interrupted" and again["steps"] > status["steps"]
    assert os.path.isdir(run / "policy")
