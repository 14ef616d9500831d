"""A bundle of a normalized agent serves users of plain SB3: ``VecNormalize.load`` + ``PPO.load`` on its
``vecnormalize.pkl`` and ``model.zip`` reproduce the policy's actions in a process that never imports
rltransfer; rltransfer lists and hashes that pickle like every bundle file and never reads it."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from tiny import tiny

from rltransfer.bundle import VECNORMALIZE_FILE, load_bundle, sha256
from rltransfer.errors import BundleError
from rltransfer.pipeline import train

PLAIN_SB3 = textwrap.dedent('''
    import sys
    import gymnasium as gym
    import numpy as np
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    policy, raw, out = sys.argv[1:4]
    venv = VecNormalize.load(f"{policy}/vecnormalize.pkl", DummyVecEnv([lambda: gym.make("Pendulum-v1")]))
    venv.training, venv.norm_reward = False, False
    model = PPO.load(f"{policy}/model.zip", device="cpu")
    obs = np.load(raw)
    actions, _ = model.predict(venv.normalize_obs(obs), deterministic=True)
    np.save(out, actions)
    assert not any(name == "rltransfer" or name.startswith("rltransfer.") for name in sys.modules)
''')


@pytest.fixture(scope="module")
def normalized(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("plain")
    return train("pendulum", tiny("ppo", "pendulum", normalize={"obs": True, "clip_obs": 5.0}), steps=128, seed=0,
                 out=out, name="src", eval_freq=0, eval_episodes=1)


def test_vecnormalize_pkl_is_listed_and_hashed(normalized) -> None:
    manifest = json.loads((normalized.policy_dir / "manifest.json").read_text())
    assert manifest["files"][VECNORMALIZE_FILE] == sha256(normalized.policy_dir / VECNORMALIZE_FILE)
    original = (normalized.policy_dir / VECNORMALIZE_FILE).read_bytes()
    (normalized.policy_dir / VECNORMALIZE_FILE).write_bytes(b"tampered")
    try:
        with pytest.raises(BundleError, match="vecnormalize.pkl: sha256 mismatch"):
            load_bundle(normalized.policy_dir)
    finally:
        (normalized.policy_dir / VECNORMALIZE_FILE).write_bytes(original)


def test_plain_sb3_reproduces_the_policy_without_rltransfer(normalized, tmp_path: Path) -> None:
    policy = normalized.policy_dir
    loaded = load_bundle(policy)
    raw = np.random.default_rng(0).normal(scale=[1.0, 1.0, 8.0], size=(64, 3)).astype(np.float32)
    np.save(tmp_path / "raw.npy", raw)
    script = tmp_path / "plain.py"
    script.write_text(PLAIN_SB3)
    done = subprocess.run([sys.executable, "-I", str(script), str(policy), str(tmp_path / "raw.npy"),
                           str(tmp_path / "actions.npy")], capture_output=True, text=True, timeout=300,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    ours, _ = loaded.model.predict(loaded.normalize(raw), deterministic=True)
    np.testing.assert_array_equal(np.load(tmp_path / "actions.npy"), ours)
