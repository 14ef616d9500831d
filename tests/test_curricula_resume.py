"""Curricula and ADR through the run pipeline: state in checkpoints and bundles, exact resume, inspect.

A run killed (here: an exception, as a kill leaves it) and resumed from its last checkpoint continues with
the same stage, ramp position, ADR ranges and queues: its final curriculum state, weights and evaluation
curve equal those of the same run in one go.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tiny import Crash, tiny

from rltransfer.bundle import CURRICULUM_FILE, load_bundle
from rltransfer.cli import main
from rltransfer.errors import ConfigError
from rltransfer.pipeline import execute, resume
from rltransfer.spec import CheckpointSpec, train_spec
from rltransfer.training import EvalCurve

ADR = """
name: cartpole-adr-test
family: cartpole
randomize: dr
adr:
  p_boundary: 0.5
  queue: 2
  t_low: 12
  t_high: 22
  params:
    length: {delta: 0.05}
    force_mag: {delta: 0.5}
"""

STAGES = """
name: cartpole-stages-test
family: cartpole
stages:
  - params: {length: 0.5}
    until: {steps: 96}
  - params: {length: 1.0}
    ramp: {steps: 160, kind: linear, points: 5}
    until: {steps: 400}
  - params: {length: 1.2}
"""


@pytest.mark.parametrize("text", [ADR, STAGES], ids=["adr", "stages"])
def test_killed_and_resumed_curriculum_run_equals_one_run(tmp_path: Path, text: str) -> None:
    path = tmp_path / "curriculum.yaml"
    path.write_text(text)
    spec = train_spec("cartpole", tiny("ppo", "cartpole"), steps=640, seed=3, eval_freq=128, eval_episodes=2,
                      checkpoints=CheckpointSpec(save_freq=192), curriculum=path)
    whole = execute(spec, tmp_path / "whole")
    with pytest.raises(RuntimeError, match="simulated crash"):
        execute(spec, tmp_path / "cut", callbacks=[Crash(450)])
    resumed = resume(tmp_path / "cut")
    a = json.loads((whole.policy_dir / CURRICULUM_FILE).read_text())
    b = json.loads((resumed.policy_dir / CURRICULUM_FILE).read_text())
    # resuming re-sends the schedule in force (for envs that cannot be restored exactly): one version more
    assert b.pop("version") == a.pop("version") + 1
    assert a == b
    if a["kind"] == "adr":
        assert a["adr"]["moves"] > 0 and a["adr"]["ranges"] != a["adr"]["initial"]  # the rule acted
    else:
        assert [e["stage"] for e in a["stages_entered"]] == [0, 1, 2] and a["values"] == {"length": 1.2}
    wa, wb = load_bundle(whole.policy_dir).state_dict, load_bundle(resumed.policy_dir).state_dict
    assert max(float((wa[k] - wb[k]).abs().max()) for k in wa) == 0.0
    assert EvalCurve.load(tmp_path / "whole").to_dict() == EvalCurve.load(tmp_path / "cut").to_dict()


def test_inspect_shows_the_curriculum_state(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "adr.yaml"
    path.write_text(ADR)
    spec = train_spec("cartpole", tiny("ppo", "cartpole"), steps=256, seed=0, eval_freq=0, eval_episodes=1,
                      curriculum=path)
    result = execute(spec, tmp_path / "run")
    assert main(["inspect", str(result.policy_dir)]) == 0
    out = capsys.readouterr().out
    assert "curriculum         'cartpole-adr-test' ('adr'" in out
    assert "ADR ranges       length [" in out and "ADR queues" in out and "ADR entropy" in out
    assert main(["inspect", str(result.policy_dir), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["curriculum"]["adr"]["initial"]["length"] == [0.5, 0.5]


def test_curriculum_and_preset_must_agree(tmp_path: Path) -> None:
    path = tmp_path / "stages.yaml"
    path.write_text(STAGES)
    with pytest.raises(ConfigError, match=r"stages.0.params fixes length, which the run's preset 'dr' draws"):
        train_spec("cartpole", tiny("ppo", "cartpole"), steps=64, curriculum=path, randomize="dr")
    adr = tmp_path / "adr.yaml"
    adr.write_text(ADR)
    spec = train_spec("cartpole", tiny("ppo", "cartpole"), steps=64, curriculum=adr)
    assert spec.env.randomization_name == "dr" and spec.eval.env.randomization is None  # the preset it names


def test_adr_without_a_preset_runs_on_a_randomizer(tmp_path: Path) -> None:
    path = tmp_path / "adr-bare.yaml"
    path.write_text(ADR.replace("randomize: dr\n", "").replace("name: cartpole-adr-test", "name: bare"))
    spec = train_spec("cartpole", tiny("ppo", "cartpole"), steps=256, seed=1, eval_freq=0, eval_episodes=1,
                      curriculum=path)
    assert spec.env.randomization is None
    result = execute(spec, tmp_path / "run")
    record = json.loads((result.policy_dir / CURRICULUM_FILE).read_text())
    assert record["adr"]["moves"] + sum(q["low"] + q["high"] for q in record["adr"]["queues"].values()) > 0
    assert torch.is_tensor(next(iter(load_bundle(result.policy_dir).state_dict.values())))
