"""Attacks on policy bundles: manifests that name code or paths, edits, damage, unlisted files, bombs.

Hostile cases fix up every hash and the seal after editing (an attacker can): they show that safety rests
on the trust boundary (a bundle can name no module, path or device), not on hashes. Damaged cases leave
the hashes alone: they show that the seal and the hashes catch damage and casual edits.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rltransfer.bundle import SEAL_FILE, load_bundle, save_bundle
from rltransfer.config import load_family
from rltransfer.errors import BundleError, RLTransferError
from rltransfer.evaluation import evaluate
from rltransfer.inspection import inspect_source

from attacks import AttackCase, case_id, payload_source, run_case, sentinel


# ------------------------------------------------------------------------------------------- a bundle


def _make_template(folder: Path) -> Path:
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    from rltransfer.environments import make_env

    family = load_family("cartpole")
    venv = VecNormalize(DummyVecEnv([lambda: make_env(family)]))
    model = PPO("MlpPolicy", venv, policy_kwargs={"net_arch": [16]}, n_steps=32, batch_size=32, seed=0, device="cpu")
    venv.reset()
    for _ in range(5):
        venv.step(np.array([venv.action_space.sample()]))
    return save_bundle(model, folder / "policy", family=family, params={"length": 0.5}, seed=0, vec_normalize=venv)


_TEMPLATE: dict[str, Path] = {}


def template() -> Path:
    """A sealed CartPole PPO bundle with normalization (built once per process)."""
    if "path" not in _TEMPLATE:
        import tempfile

        _TEMPLATE["path"] = _make_template(Path(tempfile.mkdtemp(prefix="rltransfer-bundle-template-")))
    return _TEMPLATE["path"]


def copy_bundle(folder: Path, name: str = "policy") -> Path:
    dest = folder / name
    shutil.copytree(template(), dest)
    return dest


def manifest_of(bundle: Path) -> dict[str, Any]:
    return json.loads((bundle / "manifest.json").read_text())


def reseal(bundle: Path, manifest: dict[str, Any] | None = None, raw: bytes | None = None) -> None:
    """Write ``manifest`` (or raw bytes) and fix up every listed file's hash and the seal, as an attacker would."""
    if raw is None:
        manifest = manifest if manifest is not None else manifest_of(bundle)
        files = manifest.get("files")
        if isinstance(files, dict):
            for name in list(files):
                file = bundle / name
                if isinstance(name, str) and "/" not in name and file.is_file() and not file.is_symlink():
                    files[name] = hashlib.sha256(file.read_bytes()).hexdigest()
        raw = json.dumps(manifest, indent=2).encode()
    (bundle / "manifest.json").write_bytes(raw)
    (bundle / SEAL_FILE).write_text(hashlib.sha256(raw).hexdigest() + "\n")


def edited(change: Callable[[dict[str, Any], Path], Any], seal: bool = True) -> Callable[[Path], Path]:
    """A builder: copy the template, apply ``change(manifest, bundle)``, fix up hashes (and the seal)."""

    def build(folder: Path) -> Path:
        bundle = copy_bundle(folder)
        manifest = manifest_of(bundle)
        change(manifest, bundle)
        if seal:
            reseal(bundle, manifest)
        else:
            (bundle / "manifest.json").write_text(json.dumps(manifest, indent=2))
        return bundle

    return build


def as_format_1(manifest: dict[str, Any], bundle: Path) -> None:
    """Turn a bundle into the unsealed format 1 (what earlier versions wrote)."""
    manifest["format_version"] = 1
    manifest["env"].pop("family_spec", None)
    (bundle / SEAL_FILE).unlink()


def unsealed(change: Callable[[dict[str, Any], Path], Any]) -> Callable[[Path], Path]:
    """Format 1 (no seal), then ``change``: exercises the manifest model itself."""

    def both(manifest: dict[str, Any], bundle: Path) -> None:
        as_format_1(manifest, bundle)
        change(manifest, bundle)
        files = manifest.get("files")
        if isinstance(files, dict):
            for name in list(files):
                file = bundle / name if isinstance(name, str) and "/" not in name else None
                if file is not None and file.is_file() and not file.is_symlink():
                    files[name] = hashlib.sha256(file.read_bytes()).hexdigest()

    return edited(both, seal=False)


# ------------------------------------------------------------------------------------------- loaders


def load(path: Path) -> Any:
    return load_bundle(path)


def load_or_refuse(path: Path) -> Any:
    """For damage that may leave a valid manifest (an unsealed bundle with a flipped bit in a string):
    either it loads the same policy as the template, or it is refused with a documented error."""
    try:
        loaded = load_bundle(path)
    except RLTransferError:
        return None
    reference = load_bundle(template())
    for key, tensor in reference.state_dict.items():
        assert torch.equal(tensor, loaded.state_dict[key]), f"tensor {key} differs"
    return loaded


def evaluate_from_parent(path: Path) -> Any:
    """The reported exploit: ``rltransfer.evaluate("evilbundle", episodes=1)`` run from the folder above,
    with that folder importable (as with the bundle's parent on PYTHONPATH)."""
    old_cwd = os.getcwd()
    sys.path.insert(0, str(path.parent))
    try:
        os.chdir(path.parent)
        return evaluate(path.name, episodes=1)
    finally:
        os.chdir(old_cwd)
        sys.path.remove(str(path.parent))
        for name in [m for m in sys.modules if m == "evilbundle" or m.startswith("evilbundle.")]:
            del sys.modules[name]


def inspect(path: Path) -> Any:
    return inspect_source(path)


# ------------------------------------------------------------------------------------------- hostile


def _evil_package(bundle: Path) -> None:
    """``evilbundle/payload.py`` inside the bundle folder: registers nothing, just proves it ran."""
    (bundle / "__init__.py").write_text("")
    (bundle / "payload.py").write_text(payload_source(bundle.parent) + "\n")


def _evil_family_yaml(bundle: Path) -> None:
    family = (Path(__file__).resolve().parents[1] / "envs" / "cartpole.yaml").read_text()
    family = family.replace("gym_id: CartPole-v1", 'gym_id: "evilbundle.payload:CartPole-v1"')
    (bundle / "family.yaml").write_text(family)


def _exploit(manifest: dict[str, Any], bundle: Path, family: str, keep_spec: bool) -> None:
    _evil_package(bundle)
    _evil_family_yaml(bundle)
    manifest["env"]["family"] = family
    if not keep_spec:
        manifest["env"].pop("family_spec", None)


def _evilbundle(change: Callable[[dict[str, Any], Path], Any], seal: bool = True) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        bundle = copy_bundle(folder, "evilbundle")
        manifest = manifest_of(bundle)
        change(manifest, bundle)
        if seal:
            reseal(bundle, manifest)
        else:
            (bundle / "manifest.json").write_text(json.dumps(manifest))
        return bundle

    return build


def _spec_gym_id(gym_id: str) -> Callable[[dict[str, Any], Path], None]:
    def change(manifest: dict[str, Any], bundle: Path) -> None:
        _evil_package(bundle)
        manifest["env"]["family_spec"]["gym_id"] = gym_id

    return change


def _set(path: str, value: Any) -> Callable[[dict[str, Any], Path], None]:
    """Set a dotted key path in the manifest (creating dicts on the way)."""

    def change(manifest: dict[str, Any], bundle: Path) -> None:
        node: Any = manifest
        parts = path.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {}) if isinstance(node, dict) else node
        node[parts[-1]] = value

    return change


def _drop(path: str) -> Callable[[dict[str, Any], Path], None]:
    def change(manifest: dict[str, Any], bundle: Path) -> None:
        node: Any = manifest
        parts = path.split(".")
        for part in parts[:-1]:
            node = node[part]
        node.pop(parts[-1], None)

    return change


def _symlink(name: str, target: str) -> Callable[[dict[str, Any], Path], None]:
    def change(manifest: dict[str, Any], bundle: Path) -> None:
        (bundle / name).unlink(missing_ok=True)
        (bundle / name).symlink_to(target)

    return change


def _weights(mutate: Callable[[dict[str, torch.Tensor]], None]) -> Callable[[dict[str, Any], Path], None]:
    """Rewrite policy.pth inside model.zip with mutated tensors (hashes fixed up afterwards)."""

    def change(manifest: dict[str, Any], bundle: Path) -> None:
        import io
        import zipfile

        src = bundle / "model.zip"
        with zipfile.ZipFile(src) as zf:
            members = {n: zf.read(n) for n in zf.namelist()}
        sd = torch.load(io.BytesIO(members["policy.pth"]), weights_only=True)
        mutate(sd)
        buf = io.BytesIO()
        torch.save(sd, buf)
        members["policy.pth"] = buf.getvalue()
        with zipfile.ZipFile(src, "w") as zf:
            for n, data in members.items():
                zf.writestr(n, data)

    return change


def _nan_weight(sd: dict[str, torch.Tensor]) -> None:
    key = next(k for k in sd if k.endswith("weight"))
    sd[key][0, 0] = float("nan")


def _huge_weight(sd: dict[str, torch.Tensor]) -> None:
    key = next(k for k in sd if k.endswith("weight"))
    sd[key][0, 0] = 3e38


def _norm(change: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any], Path], None]:
    def edit(manifest: dict[str, Any], bundle: Path) -> None:
        data = json.loads((bundle / "normalization.json").read_text())
        change(data)
        (bundle / "normalization.json").write_text(json.dumps(data))

    return edit


def _norm_nan(data: dict[str, Any]) -> None:
    data["obs_mean"][0] = float("nan")


def _norm_short(data: dict[str, Any]) -> None:
    data["obs_mean"] = data["obs_mean"][:3]
    data["obs_var"] = data["obs_var"][:3]


def _norm_negative_var(data: dict[str, Any]) -> None:
    data["obs_var"][1] = -1.0


def _unlisted_norm(manifest: dict[str, Any], bundle: Path) -> None:
    manifest["files"].pop("normalization.json")


def _deep(folder: Path) -> Path:
    bundle = copy_bundle(folder)
    raw = (bundle / "manifest.json").read_bytes()
    raw = raw.replace(b'"versions": {', b'"deep": ' + b"[" * 50_000 + b"]" * 50_000 + b', "versions": {', 1)
    reseal(bundle, raw=raw)
    return bundle


def _wide(manifest: dict[str, Any], bundle: Path) -> None:
    manifest["env"]["params"] = {f"p{i}": 1.0 for i in range(200_000)}


def _big_manifest(folder: Path) -> Path:
    bundle = copy_bundle(folder)
    manifest = manifest_of(bundle)
    manifest["versions"] = {"padding": "x" * (9 * 2**20)}
    reseal(bundle, manifest)
    return bundle


def _dev_zero_manifest(folder: Path) -> Path:
    bundle = copy_bundle(folder)
    (bundle / "manifest.json").unlink()
    (bundle / "manifest.json").symlink_to("/dev/zero")
    (bundle / SEAL_FILE).unlink()
    return bundle


HOSTILE: list[AttackCase] = [
    # The reported exploit, as reported (format 1, no seal) and with a fixed-up seal, from both entry points.
    *[
        AttackCase("hostile", f"exploit-family-path-{label}-{entry.__name__}",
                   _evilbundle(lambda m, b, fam=fam: (as_format_1(m, b), _exploit(m, b, fam, False)), seal=False)
                   if label == "format1" else _evilbundle(lambda m, b, fam=fam: _exploit(m, b, fam, False)),
                   entry, RLTransferError)
        for label in ("format1", "sealed")
        for fam in ("evilbundle/family.yaml",)
        for entry in (load, evaluate_from_parent)
    ],
    AttackCase("hostile", "exploit-family-relative-path", _evilbundle(lambda m, b: _exploit(m, b, "./family.yaml", False)),
               evaluate_from_parent, RLTransferError),
    AttackCase("hostile", "exploit-family-absolute-path",
               _evilbundle(lambda m, b: _exploit(m, b, str(b / "family.yaml"), False)), evaluate_from_parent,
               RLTransferError),
    AttackCase("hostile", "exploit-family-dotdot", _evilbundle(lambda m, b: _exploit(m, b, "../evilbundle/family", False)),
               evaluate_from_parent, RLTransferError),
    *[
        AttackCase("hostile", f"family-spec-gym-id-{i}", _evilbundle(_spec_gym_id(gid)), entry, RLTransferError)
        for i, gid in enumerate(("evilbundle.payload:CartPole-v1", "evilbundle.payload:Anything",
                                 "evilbundle:CartPole-v1", " evilbundle.payload : CartPole-v1"))
        for entry in (load, evaluate_from_parent, inspect)
    ],
    AttackCase("hostile", "family-spec-unknown-adapter", edited(_set("env.family_spec.adapter", "os.system")), load,
               RLTransferError),
    AttackCase("hostile", "family-spec-make-kwargs-render", edited(_set("env.family_spec.make_kwargs", {"render_mode": 7})),
               load, None),  # loading is fine; the env is built only from shipped code
    AttackCase("hostile", "family-name-mismatch", edited(_set("env.family", "pendulum")), load, BundleError),
    AttackCase("hostile", "normalization-dev-zero", edited(_set("normalization", "/dev/zero")), load, BundleError),
    AttackCase("hostile", "normalization-dotdot", edited(_set("normalization", "../normalization.json")), load,
               BundleError),
    AttackCase("hostile", "normalization-symlink-dev-zero",
               edited(lambda m, b: _symlink("normalization.json", "/dev/zero")(m, b)), load, BundleError),
    AttackCase("hostile", "model-symlink-dev-zero", edited(_symlink("model.zip", "/dev/zero")), load, BundleError),
    AttackCase("hostile", "files-dotdot", edited(_set("files", {"model.zip": "0" * 64, "../../etc/passwd": "0" * 64})),
               load, BundleError),
    AttackCase("hostile", "files-absolute", edited(_set("files", {"model.zip": "0" * 64, "/etc/passwd": "0" * 64})),
               load, BundleError),
    AttackCase("hostile", "files-a-list", edited(_set("files", ["model.zip"])), load, BundleError),
    AttackCase("hostile", "unlisted-normalization", edited(_unlisted_norm), load, BundleError),
    AttackCase("hostile", "wrapper-os-system", edited(_set("env.wrappers", [{"name": "os.system", "kwargs": {}}])), load,
               BundleError),
    AttackCase("hostile", "wrapper-dotted-payload",
               edited(_set("env.wrappers", [{"name": "evilbundle.payload.Wrapper", "kwargs": {}}])), load, BundleError),
    AttackCase("hostile", "wrapper-bad-kwarg-name",
               edited(_set("env.wrappers", [{"name": "TimeFeatureWrapper", "kwargs": {"__class__": 1}}])), load,
               BundleError),
    AttackCase("hostile", "training-wrapper-os-system",
               edited(_set("training_wrappers", [{"name": "os.system", "kwargs": {}}])), load, BundleError),
    AttackCase("hostile", "activation-os-system", edited(_set("policy_kwargs.activation_fn", "os.system")), load,
               BundleError),
    AttackCase("hostile", "optimizer-eval", edited(_set("policy_kwargs.optimizer_class", "builtins.eval")), load,
               BundleError),
    AttackCase("hostile", "features-extractor", edited(_set("policy_kwargs.features_extractor_class", "os.system")), load,
               BundleError),
    AttackCase("hostile", "device-in-policy-kwargs", edited(_set("policy_kwargs.device", "cuda:7")), load, BundleError),
    AttackCase("hostile", "policy-kwargs-string", edited(_set("policy_kwargs", "abc")), load, BundleError),
    AttackCase("hostile", "net-arch-huge", edited(_set("policy_kwargs.net_arch", [200_000, 200_000])), load, BundleError),
    AttackCase("hostile", "net-arch-deep", edited(_set("policy_kwargs.net_arch", [16] * 500)), load, BundleError),
    AttackCase("hostile", "net-arch-negative", edited(_set("policy_kwargs.net_arch", [-16])), load, BundleError),
    AttackCase("hostile", "obs-space-huge-box",
               edited(_set("observation_space", {"type": "Box", "shape": [100_000, 100_000], "dtype": "float32",
                                                 "low": -1.0, "high": 1.0})), load, BundleError),
    AttackCase("hostile", "action-space-huge-discrete", edited(_set("action_space", {"type": "Discrete", "n": 10**12})),
               load, BundleError),
    AttackCase("hostile", "manifest-deep-nesting", _deep, load, BundleError),
    AttackCase("hostile", "manifest-wide-params", edited(_wide), load, BundleError),
    AttackCase("hostile", "manifest-9MiB", _big_manifest, load, BundleError),
    AttackCase("hostile", "manifest-dev-zero", _dev_zero_manifest, load, BundleError),
    AttackCase("hostile", "weights-nan", edited(_weights(_nan_weight)), load, BundleError),
    AttackCase("hostile", "weights-3e38", edited(_weights(_huge_weight)), load, BundleError),
    AttackCase("hostile", "weights-nan-evaluate", edited(_weights(_nan_weight)), evaluate_from_parent, BundleError),
    AttackCase("hostile", "normalization-nan", edited(_norm(_norm_nan)), load, BundleError),
    AttackCase("hostile", "normalization-3-of-4-features", edited(_norm(_norm_short)), load, BundleError),
    AttackCase("hostile", "normalization-negative-variance", edited(_norm(_norm_negative_var)), load, BundleError),
    AttackCase("hostile", "params-out-of-bounds-evaluate", edited(_set("env.params", {"length": 1e9})),
               evaluate_from_parent, RLTransferError),
    AttackCase("hostile", "params-unknown-evaluate", edited(_set("env.params", {"__class__": 1.0})),
               evaluate_from_parent, RLTransferError),
    AttackCase("hostile", "num-timesteps-1e400", unsealed(_set("num_timesteps", float("inf"))), load, BundleError),
    AttackCase("hostile", "format-version-99", edited(_set("format_version", 99)), load, BundleError),
    AttackCase("hostile", "unknown-key", edited(_set("run_this", "os.system('x')")), load, BundleError),
]


# ------------------------------------------------------------------------------------------- damaged


def _digit_edit(index: int) -> Callable[[Path], Path]:
    """Change the ``index``-th digit of the manifest by one (what a casual edit or bit rot does)."""

    def build(folder: Path) -> Path:
        bundle = copy_bundle(folder)
        raw = bytearray((bundle / "manifest.json").read_bytes())
        digits = [i for i, b in enumerate(raw) if chr(b).isdigit()]
        pos = digits[index % len(digits)]
        raw[pos] = ord(str((int(chr(raw[pos])) + 1) % 10))
        (bundle / "manifest.json").write_bytes(bytes(raw))
        return bundle

    return build


def _byte_flip(seed: int, sealed: bool) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        bundle = copy_bundle(folder)
        if not sealed:
            manifest = manifest_of(bundle)
            as_format_1(manifest, bundle)
            (bundle / "manifest.json").write_text(json.dumps(manifest))
        raw = bytearray((bundle / "manifest.json").read_bytes())
        rng = random.Random(seed)
        pos = rng.randrange(len(raw))
        raw[pos] ^= 1 << rng.randrange(8) if seed % 2 else 0x80  # odd: any bit; even: high bit (non-UTF-8)
        (bundle / "manifest.json").write_bytes(bytes(raw))
        return bundle

    return build


def _truncate_manifest(fraction: float) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        bundle = copy_bundle(folder)
        raw = (bundle / "manifest.json").read_bytes()
        (bundle / "manifest.json").write_bytes(raw[: int(len(raw) * fraction)])
        return bundle

    return build


def _truncate_file(name: str, fraction: float) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        bundle = copy_bundle(folder)
        raw = (bundle / name).read_bytes()
        (bundle / name).write_bytes(raw[: int(len(raw) * fraction)])
        return bundle

    return build


def _remove(name: str) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        bundle = copy_bundle(folder)
        (bundle / name).unlink()
        return bundle

    return build


def _casual(change: Callable[[dict[str, Any], Path], Any]) -> Callable[[Path], Path]:
    """An edit that leaves hashes and the seal alone (as a user editing the file by hand would)."""
    return edited(change, seal=False)


DAMAGED: list[AttackCase] = [
    *[AttackCase("damaged", f"digit-edit-{i}", _digit_edit(i * 7), load, BundleError) for i in range(40)],
    *[AttackCase("damaged", f"byte-flip-sealed-{i}", _byte_flip(i, True), load, BundleError) for i in range(20)],
    *[AttackCase("damaged", f"byte-flip-format1-{i}", _byte_flip(i, False), load_or_refuse, None) for i in range(20)],
    *[AttackCase("damaged", f"truncated-manifest-{f}", _truncate_manifest(f), load, BundleError)
      for f in (0.0, 0.1, 0.5, 0.9, 0.99)],
    *[AttackCase("damaged", f"truncated-{n}-{f}", _truncate_file(n, f), load, BundleError)
      for n in ("model.zip", "normalization.json", SEAL_FILE) for f in (0.0, 0.5, 0.9)],
    *[AttackCase("damaged", f"missing-{n}", _remove(n), load, BundleError)
      for n in ("model.zip", "normalization.json", SEAL_FILE, "manifest.json")],
    AttackCase("damaged", "action-bound-edit", _casual(_set("action_space", {"type": "Discrete", "n": 3})), load,
               BundleError),
    AttackCase("damaged", "normalization-null", _casual(_set("normalization", None)), load, BundleError),
    AttackCase("damaged", "params-edit", _casual(_set("env.params", {"length": 2.0})), load, BundleError),
    AttackCase("damaged", "family-edit", _casual(_set("env.family", "acrobot")), load, BundleError),
    AttackCase("damaged", "format1-files-a-list", unsealed(_set("files", ["model.zip"])), load, BundleError),
    AttackCase("damaged", "format1-policy-kwargs-abc", unsealed(_set("policy_kwargs", "abc")), load, BundleError),
    AttackCase("damaged", "format1-algo-number", unsealed(_set("algo", 3)), load, BundleError),
    AttackCase("damaged", "format1-no-algo", unsealed(_drop("algo")), load, BundleError),
    AttackCase("damaged", "format1-seed-negative", unsealed(_set("seed", -1)), load, BundleError),
    AttackCase("damaged", "format1-space-string", unsealed(_set("observation_space", "Box(4,)")), load, BundleError),
    AttackCase("damaged", "format1-family-unknown", unsealed(_set("env.family", "cartpol")), load, BundleError),
    AttackCase("damaged", "format1-family-path", unsealed(_set("env.family", "/etc/passwd")), load, BundleError),
]


VALID: list[AttackCase] = [
    AttackCase("valid", "sealed", lambda folder: copy_bundle(folder), load, None),
    AttackCase("valid", "format1", unsealed(lambda m, b: None), load, None),
    AttackCase("valid", "sealed-evaluate", lambda folder: copy_bundle(folder, "evilbundle"), evaluate_from_parent, None),
    AttackCase("valid", "inspect", lambda folder: copy_bundle(folder), inspect, None),
    AttackCase("valid", "unlisted-extra-file-ignored",
               lambda folder: (lambda b: ((b / "payload.py").write_text(payload_source(folder)), b)[1])(copy_bundle(folder)),
               evaluate_from_parent, None),
]

CASES: list[AttackCase] = [*HOSTILE, *DAMAGED, *VALID]


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_attack(case: AttackCase, tmp_path: Path) -> None:
    outcome = run_case(case, tmp_path)
    assert outcome.ok, outcome.describe()
    assert not sentinel(tmp_path).exists()
    if outcome.error is not None:
        assert len(str(outcome.error)) < 2000, "error messages stay short"
        assert "\n" not in str(outcome.error).strip() or isinstance(outcome.error, RLTransferError)


def test_loaded_bundle_names_what_was_verified(tmp_path: Path) -> None:
    loaded = load_bundle(copy_bundle(tmp_path))
    assert loaded.verified[0] == "manifest.json: matches manifest.sha256"
    assert any(v.startswith("model.zip: sha256") for v in loaded.verified)
    assert any(v.startswith("normalization.json: sha256") for v in loaded.verified)
    assert loaded.family_spec is not None and loaded.family_spec.name == "cartpole"


def test_format1_bundle_loads_with_a_note(tmp_path: Path) -> None:
    loaded = load_bundle(unsealed(lambda m, b: None)(tmp_path))
    assert "not sealed" in loaded.verified[0]
    assert loaded.family_spec is not None and loaded.family_spec.name == "cartpole"


def test_bundle_family_comes_from_its_content_not_the_registry(tmp_path: Path) -> None:
    """A bundle trained on a family of the user's own (a YAML by path) carries that family's content."""
    bundle = copy_bundle(tmp_path)
    manifest = manifest_of(bundle)
    manifest["env"]["family_spec"]["params"]["length"]["high"] = 7.0
    manifest["env"]["family_spec"]["name"] = manifest["env"]["family"] = "my-cartpole"
    reseal(bundle, manifest)
    loaded = load_bundle(bundle)
    assert loaded.family_spec is not None and loaded.family_spec.name == "my-cartpole"
    assert loaded.family_spec.params["length"].high == 7.0


def test_evaluate_on_the_exploit_bundle_does_not_run_the_payload(tmp_path: Path) -> None:
    bundle = _evilbundle(lambda m, b: (as_format_1(m, b), _exploit(m, b, "evilbundle/family.yaml", False)),
                         seal=False)(tmp_path)
    with pytest.raises(BundleError, match="plain name"):
        evaluate_from_parent(bundle)
    assert not sentinel(tmp_path).exists()


def test_cli_refuses_the_exploit_bundle_in_one_line(tmp_path: Path) -> None:
    import subprocess

    bundle = _evilbundle(lambda m, b: _exploit(m, b, "cartpole", True))(tmp_path)
    manifest = manifest_of(bundle)
    _spec_gym_id("evilbundle.payload:CartPole-v1")(manifest, bundle)
    reseal(bundle, manifest)
    rltransfer = Path(sys.executable).parent / "rltransfer"
    proc = subprocess.run([str(rltransfer), "evaluate", "--policy", "evilbundle", "--episodes", "1"], cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(tmp_path)}, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert "module" in proc.stderr
    assert not sentinel(tmp_path).exists()


# ------------------------------------------------------------------------------------- property-based

_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.sampled_from(["/dev/zero", "../x", "os.system", "evilbundle.payload:CartPole-v1", "model.zip", "Tanh"]),
)
_json = st.recursive(_leaf, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                     st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                     max_leaves=12)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node[:4]):
            out += _paths(value, (*prefix, i))
    return out


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_manifest_mutations_load_or_raise_the_documented_error(data: st.DataObject, tmp_path_factory) -> None:
    """Replace any node of a (resealed) manifest with any JSON value: the loader either loads a policy
    whose manifest validates, or raises an RLTransferError: never anything else, never a payload run."""
    folder = tmp_path_factory.mktemp("mut")
    bundle = copy_bundle(folder)
    manifest = manifest_of(bundle)
    paths = [p for p in _paths(manifest) if p]
    path = data.draw(st.sampled_from(paths))
    value = data.draw(_json)
    node: Any = manifest
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    reseal(bundle, manifest)
    try:
        loaded = load_bundle(bundle)
    except RLTransferError as exc:
        assert len(str(exc)) < 4000
    else:
        assert loaded.model is not None
    assert not sentinel(folder).exists()
