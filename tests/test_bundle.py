"""Policy bundles: plain-SB3 compatible, rebuilt without unpickling, hashes verified, saves atomic."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from stable_baselines3 import PPO

from rltransfer.bundle import load_bundle, load_policy, save_bundle
from rltransfer.errors import BundleError
from rltransfer.pipeline import train

from tiny import tiny


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("bundle")
    return train("pendulum", tiny("ppo", "pendulum", normalize={"obs": True}), steps=128, seed=0, out=out,
                 name="src", eval_freq=0, eval_episodes=1)


def test_plain_sb3_can_open_model_zip(trained) -> None:
    model = PPO.load(trained.policy_dir / "model.zip", device="cpu")
    obs = np.zeros((1, 3), dtype=np.float32)
    a, _ = model.predict(obs, deterministic=True)
    b, _ = trained.model.predict(obs, deterministic=True)
    np.testing.assert_allclose(a, b)


def test_manifest_contents(trained) -> None:
    manifest = json.loads((trained.policy_dir / "manifest.json").read_text())
    assert manifest["format_version"] == 2 and manifest["algo"] == "ppo"
    assert manifest["observation_space"]["shape"] == [3] and manifest["action_space"]["shape"] == [1]
    assert manifest["env"]["family"] == "pendulum" and manifest["env"]["params"]["mass"] == 1.0
    assert manifest["seed"] == 0 and manifest["num_timesteps"] >= 128
    assert set(manifest["files"]) == {"model.zip", "normalization.json", "vecnormalize.pkl"}
    assert {"torch", "stable_baselines3", "gymnasium"} <= set(manifest["versions"])
    assert manifest["policy_kwargs"]["net_arch"] == [16]


def test_load_bundle_rebuilds_same_policy(trained) -> None:
    loaded = load_bundle(trained.policy_dir)
    for key, value in trained.model.policy.state_dict().items():
        torch.testing.assert_close(loaded.model.policy.state_dict()[key], value)
    assert loaded.normalization is not None and loaded.normalization.obs_dim == 3
    assert loaded.family == "pendulum"
    assert load_policy(trained.run_dir).algo == "ppo"  # a run directory works too


def test_load_bundle_never_unpickles(trained, monkeypatch: pytest.MonkeyPatch) -> None:
    import pickle

    def refuse(*args, **kwargs):
        raise AssertionError("unpickling attempted")

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    real_load = torch.load

    def checked_load(*args, **kwargs):
        assert kwargs.get("weights_only") is True
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", checked_load)
    load_bundle(trained.policy_dir)


def _copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_altered_truncated_or_missing_files_are_refused(trained, tmp_path: Path) -> None:
    altered = _copy(trained.policy_dir, tmp_path / "altered")
    data = bytearray((altered / "model.zip").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (altered / "model.zip").write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"model.zip: sha256 mismatch"):
        load_bundle(altered)

    truncated = _copy(trained.policy_dir, tmp_path / "truncated")
    (truncated / "normalization.json").write_text("{")
    with pytest.raises(BundleError, match=r"normalization.json: sha256 mismatch"):
        load_bundle(truncated)

    missing = _copy(trained.policy_dir, tmp_path / "missing")
    (missing / "model.zip").unlink()
    with pytest.raises(BundleError, match=r"model.zip: missing"):
        load_bundle(missing)

    broken = _copy(trained.policy_dir, tmp_path / "broken")
    (broken / "manifest.json").write_text('{"format_version": 1')
    with pytest.raises(BundleError, match="manifest"):
        load_bundle(broken)

    with pytest.raises(BundleError, match="no such file"):
        load_policy(tmp_path / "nothing-here")


def test_save_is_atomic(trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "policy"
    save_bundle(trained.model, target)
    before = {p.name: p.read_bytes() for p in target.iterdir()}

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(type(trained.model), "save", boom)
    with pytest.raises(OSError, match="disk full"):
        save_bundle(trained.model, target)
    after = {p.name: p.read_bytes() for p in target.iterdir()}
    assert before == after  # the previous bundle is intact
    assert [p.name for p in tmp_path.iterdir()] == ["policy"]  # no temporary folder left behind
