"""What a policy file holds (spaces, algorithm, architecture, tensors), read without unpickling anything."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rltransfer.bundle import MANIFEST_FILE, MODEL_FILE, family_from_manifest, read_manifest, verify_files
from rltransfer.errors import BundleError
from rltransfer.evaluation import describe_space
from rltransfer.sb3layout import role_text, tensor_roles
from rltransfer.sb3zip import read_sb3_zip


def inspect_source(path: str | Path) -> dict[str, Any]:
    """A JSON-able description of an SB3 zip, a bundle, or a run directory's bundle."""
    path = Path(path)
    if path.is_dir() and not (path / MANIFEST_FILE).is_file() and (path / "policy" / MANIFEST_FILE).is_file():
        path = path / "policy"
    manifest: dict[str, Any] = {}
    verified: list[str] = []
    if path.is_dir():
        record = read_manifest(path)
        verified = verify_files(path, record)
        family_from_manifest(record, str(path))  # refuses what a bundle may not name, as loading does
        manifest = record.model_dump(mode="json")
        archive = read_sb3_zip(path / MODEL_FILE, algo=record.algo)
        kind = "rltransfer bundle"
    elif path.is_file():
        archive = read_sb3_zip(path)
        kind = "SB3 zip"
    else:
        raise BundleError(f"{path}: no such file or directory")
    sd = archive.state_dict
    roles = tensor_roles(archive.algo, list(sd), {k: tuple(v.shape) for k, v in sd.items()})
    info: dict[str, Any] = {
        "path": str(path), "kind": kind, "algo": archive.algo, "sb3_version": archive.sb3_version,
        "observation_space": describe_space(archive.observation_space),
        "action_space": describe_space(archive.action_space), "policy_kwargs": archive.policy_kwargs,
        "hyperparams": archive.hyperparams, "num_timesteps": archive.num_timesteps,
        "tensors": [{"name": k, "shape": list(v.shape), "dtype": str(v.dtype).replace("torch.", ""),
                     "role": role_text(roles[k])} for k, v in sd.items()],
        "parameters": int(sum(v.numel() for v in sd.values())),
        "notes": list(archive.notes),
    }
    if manifest:
        env = dict(manifest.get("env") or {})
        env.pop("family_spec", None)
        info["env"] = env
        info["normalization"] = manifest.get("normalization")
        info["verified"] = verified
    else:
        from rltransfer.zoo import find_zoo_companions

        companions = find_zoo_companions(path)
        info["companions"] = {k: str(v) for k, v in companions.items() if v}
        if companions.get("config"):
            from rltransfer.zoo import load_zoo_config

            info["wrappers"] = load_zoo_config(companions["config"]).get("env_wrapper", [])
        if companions.get("vecnormalize"):
            info["normalization"] = str(companions["vecnormalize"])
    return info
