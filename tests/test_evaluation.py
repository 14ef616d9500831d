"""Evaluation of policies, including faithful zero-shot evaluation of third-party RL Zoo agents."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import needs_zoo_fixtures, zoo_fixture
from rltransfer.errors import IncompatibleSpacesError
from rltransfer.evaluation import evaluate, mean_ci95
from rltransfer.pipeline import train
from tiny import tiny


def test_mean_ci95_hand_computed() -> None:
    mean, std, (lo, hi) = mean_ci95(np.array([1.0, 2.0, 3.0, 4.0]))
    assert mean == 2.5 and std == pytest.approx(1.2909944)
    # t(0.975, 3) = 3.182446305; half width = 3.1824463 * 1.2909944 / 2
    assert hi - mean == pytest.approx(3.182446305 * 1.2909944 / 2, rel=1e-6) and lo == pytest.approx(5 - hi)


def test_evaluate_own_bundle_on_other_parameters(tmp_path: Path) -> None:
    run = train("cartpole", tiny("ppo", "cartpole"), steps=128, seed=0, out=tmp_path, name="src", eval_freq=0,
                eval_episodes=1)
    a = evaluate(run.policy_dir, "cartpole", {"length": 1.5}, episodes=4, seed=3)
    b = evaluate(run.run_dir, "cartpole", {"length": 1.5}, episodes=4, seed=3)
    assert a.returns == b.returns and len(a.returns) == 4 and a.params["length"] == 1.5
    assert a.ci95[0] <= a.mean <= a.ci95[1]
    c = evaluate(run.policy_dir, episodes=2)  # family recorded in the bundle
    assert c.env == "cartpole"


def test_mismatched_spaces_say_expected_and_actual(tmp_path: Path) -> None:
    run = train("cartpole", tiny("ppo", "cartpole"), steps=64, seed=0, out=tmp_path, name="src", eval_freq=0,
                eval_episodes=1)
    with pytest.raises(IncompatibleSpacesError, match=r"Observation spaces do not match: .*Box\(4,\).*Box\(6,\)"):
        evaluate(run.policy_dir, "acrobot", episodes=1)


ZOO_EXPECTED = [
    # (fixture, family, episodes, lowest acceptable mean): returns these agents are known for
    ("ppo-CartPole-v1.zip", "cartpole", 5, 475.0),
    ("a2c-CartPole-v1.zip", "cartpole", 5, 475.0),
    ("dqn-CartPole-v1.zip", "cartpole", 5, 475.0),
    ("sac-Pendulum-v1.zip", "pendulum", 10, -250.0),
    pytest.param("ppo-HopperBulletEnv-v0.zip", "hopper", 3, 2000.0, marks=pytest.mark.pybullet),
]


@needs_zoo_fixtures
@pytest.mark.fixtures
@pytest.mark.parametrize(("fixture", "family", "episodes", "lowest"), ZOO_EXPECTED)
def test_zoo_agents_reach_their_known_returns(fixture: str, family: str, episodes: int, lowest: float) -> None:
    """Spaces, weights, wrappers and normalization statistics came across intact."""
    result = evaluate(zoo_fixture(fixture), family, episodes=episodes, seed=0)
    assert result.mean >= lowest, result.returns


@needs_zoo_fixtures
@pytest.mark.fixtures
def test_cli_evaluate_zoo_zip_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from rltransfer.cli import main

    out = tmp_path / "eval.json"
    code = main(["evaluate", "--policy", str(zoo_fixture("ppo-CartPole-v1.zip")), "--env", "cartpole",
                 "--episodes", "3", "--json", str(out)])
    assert code == 0
    data = json.loads(out.read_text())
    assert data["mean"] == 500.0 and len(data["returns"]) == 3 and len(data["ci95"]) == 2 and "std" in data
    assert "95% CI" in capsys.readouterr().out
