"""What a policy file holds (spaces, algorithm, architecture, tensors), read without unpickling anything;
and what an env family randomizes (its presets, its variants, and which variant values each preset covers)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym

from rltransfer.bundle import MANIFEST_FILE, MODEL_FILE, family_from_manifest, read_manifest, verify_files
from rltransfer.errors import BundleError
from rltransfer.evaluation import describe_space
from rltransfer.sb3layout import READ_ONLY, role_text, tensor_roles
from rltransfer.sb3zip import read_sb3_zip


def _dist_text(dist: Any) -> str:
    if dist.dist == "choice":
        return "choice {" + ", ".join(f"{v:g}" for v in dist.values or []) + "}"
    if dist.dist == "normal":
        return f"normal(mean={dist.mean:g}, std={dist.std:g}) in [{dist.low:g}, {dist.high:g}]"
    return f"{dist.dist} [{dist.low:g}, {dist.high:g}]"


def sensors_text(sensors: Any) -> str:
    """``obs_noise std 0.01, latency 1`` for a :class:`~rltransfer.randomization.Sensors` (or ``none``)."""
    if sensors is None:
        return "none"
    parts = []
    for key in ("obs_noise", "obs_bias", "action_noise"):
        noise = getattr(sensors, key)
        if noise is not None:
            std = f"{noise.std:g}" if isinstance(noise.std, float) else f"per feature ({len(noise.std)} values)"
            parts.append(f"{key} std {std}")
    if sensors.latency is not None:
        lo, hi = sensors.latency.support
        parts.append(f"latency {lo}" if lo == hi else f"latency {lo}..{hi} steps")
    return ", ".join(parts) or "none"


def describe_randomization(family: Any) -> dict[str, Any]:
    """A JSON-able account of ``family``'s presets (distribution per parameter, sensors) and variants (values,
    sensors, and per preset and parameter whether the value lies inside the preset's range:
    :func:`~rltransfer.randomization.variant_inside`)."""
    from rltransfer.randomization import preset_ranges, variant_inside

    presets = {}
    for name, preset in family.randomization.items():
        presets[name] = {
            "description": preset.description,
            "params": {k: _dist_text(d) for k, d in preset.params.items()},
            "ranges": {k: list(v) for k, v in preset_ranges(preset).items()},
            "variants": list(preset.variants.choice) if preset.variants else [],
            "sensors": sensors_text(preset.sensors()),
        }
    variants = {}
    for name, variant in family.variants.items():
        variants[name] = {
            "description": variant.description,
            "params": dict(variant.params),
            "sensors": sensors_text(variant.sensors()),
            "inside": {p: variant_inside(family, name, p) for p in family.randomization},
        }
    return {"presets": presets, "variants": variants}


def randomization_lines(family: Any, indent: str = "    ") -> list[str]:
    """:func:`describe_randomization` as text lines (for ``rltransfer list`` and ``inspect``)."""
    info = describe_randomization(family)
    lines = []
    for name, preset in info["presets"].items():
        lines.append(f"{indent}preset {name}: {preset['description']}".rstrip(": "))
        width = max((len(k) for k in preset["params"]), default=0)
        for key, text in preset["params"].items():
            lines.append(f"{indent}  {key.ljust(width)}  {text}")
        if preset["variants"]:
            lines.append(f"{indent}  variants per episode: {', '.join(preset['variants'])}")
        lines.append(f"{indent}  sensors: {preset['sensors']}")
    for name, variant in info["variants"].items():
        lines.append(f"{indent}variant {name}: {variant['description']}".rstrip(": "))
        width = max((len(f"{k} = {v:g}") for k, v in variant["params"].items()), default=0)
        for key, value in variant["params"].items():
            verdicts = []
            for pname, inside in variant["inside"].items():
                rng = info["presets"][pname]["ranges"].get(key)
                where = f"[{rng[0]:g}, {rng[1]:g}]" if rng else "not randomized: nominal only"
                verdicts.append(f"{pname}: {'inside' if inside[key] else 'OUTSIDE'} {where}")
            lines.append(f"{indent}  {f'{key} = {value:g}'.ljust(width)}  {'; '.join(verdicts)}".rstrip())
        lines.append(f"{indent}  sensors: {variant['sensors']}")
    return lines


def inspect_source(path: str | Path, algo: str | None = None) -> dict[str, Any]:
    """A JSON-able description of an SB3 zip, a bundle, or a run directory's bundle.

    Args:
        path: the zip, bundle folder or run directory.
        algo: the algorithm of an SB3 zip whose data does not tell it (``--algo``); bundles record theirs.
    """
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
        archive = read_sb3_zip(path, algo=algo)
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
        "supported": archive.unsupported is None,
    }
    if archive.unsupported is not None:
        info["unsupported"] = archive.unsupported
    elif archive.algo in READ_ONLY:
        info["transfer"] = f"refused: {READ_ONLY[archive.algo]}"
    if manifest:
        env = dict(manifest.get("env") or {})
        env.pop("family_spec", None)
        info["env"] = env
        info["trained_with"] = _trained_with(record, str(path))
        if record.curriculum is not None:
            from rltransfer.rundir import read_json

            info["curriculum"] = read_json(path / record.curriculum, "curriculum record")
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
            if isinstance(archive.observation_space, gym.spaces.Dict):
                from rltransfer.zoo import load_vecnormalize_dict

                by_key = load_vecnormalize_dict(companions["vecnormalize"])
                info["normalization"] += " (per key: " + ", ".join(
                    f"{key} {stats.obs_dim} features" for key, stats in by_key.items()) + ")"
    return info


def _trained_with(record: Any, where: str) -> dict[str, Any]:
    """The preset and variant a bundle was trained with (``None``: none, or an older bundle), and the
    preset's ranges when the family the bundle carries ships it."""
    from rltransfer.randomization import preset_ranges

    out: dict[str, Any] = {"randomization": record.env.randomization, "variant": record.env.variant}
    family = family_from_manifest(record, where)
    name = record.env.randomization
    if family is not None and name is not None and name in family.randomization:
        out["ranges"] = {k: list(v) for k, v in preset_ranges(family.randomization[name]).items()}
    return out
