"""Evaluation of policies, including faithful zero-shot evaluation of third-party RL Zoo agents."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import needs_zoo_fixtures, zoo_fixture
from tiny import tiny

from rltransfer.errors import IncompatibleSpacesError
from rltransfer.evaluation import evaluate, mean_ci95
from rltransfer.pipeline import train


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


# ------------------------------------------------------------------------------- variants and presets


def _pendulum_with_variants(tmp_path: Path) -> Path:
    """The shipped pendulum family plus a latency-only variant ``lag`` and a params-only variant ``heavy``."""
    import yaml

    from rltransfer import resources
    from rltransfer.config import read_yaml

    data = read_yaml(resources.find("envs", "pendulum"))
    data["variants"] = {**data.get("variants", {}), "lag": {"latency": {"steps": 1}}, "heavy": {"params": {"mass": 1.4}}}
    path = tmp_path / "pendulum.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _chain(venv) -> list[str]:
    env, names = venv.envs[0], []
    while env is not None:
        names.append(type(env).__name__)
        env = getattr(env, "env", None)
    return names


def test_evaluate_on_a_variant_applies_its_params_and_sensors(tmp_path: Path) -> None:
    from rltransfer.bundle import load_policy
    from rltransfer.config import load_family
    from rltransfer.evaluation import eval_env_spec, policy_env

    family = _pendulum_with_variants(tmp_path)
    run = train(family, tiny("ppo", "pendulum"), steps=64, seed=0, out=tmp_path, name="src", eval_freq=0,
                eval_episodes=1)
    nominal = evaluate(run.policy_dir, family, episodes=2, seed=5)
    lag = evaluate(run.policy_dir, family, episodes=2, seed=5, variant="lag")
    heavy = evaluate(run.policy_dir, family, episodes=2, seed=5, variant="heavy")
    assert lag.variant == "lag" and lag.params == nominal.params  # latency only: same physics ...
    assert lag.returns != nominal.returns  # ... yet another return: the delay reached the env
    assert evaluate(run.policy_dir, family, episodes=2, seed=5, variant="lag").returns == lag.returns
    assert heavy.params["mass"] == 1.4 and heavy.returns != nominal.returns
    # the evaluation env is the pipeline's stack: the variant's sensors stay, nothing else is added
    loaded, fam = load_policy(run.policy_dir), load_family(family)
    venv = policy_env(loaded, eval_env_spec(loaded, fam, variant="real"))
    try:
        assert _chain(venv)[:3] == ["EpisodeMonitor", "ActionLatency", "ObservationNoise"]
    finally:
        venv.close()
    venv = policy_env(loaded, fam)
    try:
        assert _chain(venv)[:2] == ["EpisodeMonitor", "FamilyEnv"]
    finally:
        venv.close()


def test_evaluate_on_a_preset_draws_from_its_distribution(tmp_path: Path) -> None:
    run = train("cartpole", tiny("ppo", "cartpole"), steps=64, seed=0, out=tmp_path, name="src", eval_freq=0,
                eval_episodes=1)
    sim = evaluate(run.policy_dir, "cartpole", episodes=3, seed=1, randomize="dr")
    assert sim.randomization == "dr" and sim.variant is None
    assert evaluate(run.policy_dir, "cartpole", episodes=3, seed=1, randomize="dr").returns == sim.returns


def test_a_bundle_records_its_preset_and_variant_and_older_bundles_still_load(tmp_path: Path) -> None:
    import json

    from rltransfer.bundle import MANIFEST_FILE, SEAL_FILE, load_policy, sha256

    family = _pendulum_with_variants(tmp_path)
    run = train(family, tiny("ppo", "pendulum"), steps=64, seed=0, out=tmp_path, name="src", eval_freq=0,
                eval_episodes=1, randomize="dr", variant="lag")
    manifest = json.loads((run.policy_dir / MANIFEST_FILE).read_text())
    assert manifest["env"]["randomization"] == "dr" and manifest["env"]["variant"] == "lag"
    loaded = load_policy(run.policy_dir)
    assert (loaded.randomization, loaded.variant) == ("dr", "lag")
    assert evaluate(run.policy_dir, episodes=1).variant == "lag"  # the recorded env, with its variant
    for key in ("randomization", "variant"):  # a bundle from before these fields
        del manifest["env"][key]
    (run.policy_dir / MANIFEST_FILE).write_text(json.dumps(manifest))
    (run.policy_dir / SEAL_FILE).write_text(sha256(run.policy_dir / MANIFEST_FILE) + "\n")
    old = load_policy(run.policy_dir)
    assert (old.randomization, old.variant) == (None, None)
