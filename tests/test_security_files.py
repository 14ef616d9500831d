"""Attacks on the file loaders of sb3zip.py, zoo.py and normalization.py (see tests/attacks.py).

Every hostile or damaged input must be refused with an :class:`~rltransfer.errors.RLTransferError`
(never another exception), within the time and memory budget, without running its payload; every
valid control must load.
"""

from __future__ import annotations

import builtins
import functools
import io
import json
import os
import pickle
import random
import struct
import subprocess
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from gymnasium import spaces

from rltransfer.agents import load_agent
from rltransfer.bundle import load_sb3_zip
from rltransfer.errors import BundleError, ConfigError, ResourceLimitError, RLTransferError, UnsafeFileError
from rltransfer.normalization import NormalizationStats
from rltransfer.sb3zip import check_net_arch, read_sb3_zip
from rltransfer.zoo import load_vecnormalize_dict, load_vecnormalize_pkl, load_zoo_config
from tests.attacks import AttackCase, case_id, payload_source, run_case, sentinel
from tests.conftest import FIXTURES

# ------------------------------------------------------------------------------------------ base inputs


@functools.lru_cache(maxsize=1)
def _base_zip_bytes() -> bytes:
    """A normal SB3 zip of a tiny PPO on CartPole (built once, in a temporary folder)."""
    import tempfile

    from stable_baselines3 import PPO

    with tempfile.TemporaryDirectory() as tmp:
        model = PPO("MlpPolicy", "CartPole-v1", policy_kwargs=dict(net_arch=[16]), device="cpu", seed=0)
        model.save(Path(tmp) / "ppo.zip")
        return (Path(tmp) / "ppo.zip").read_bytes()


def _members() -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(_base_zip_bytes())) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def _write_zip(path: Path, members: dict[str, bytes], compress: int = zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", compression=compress) as zf:
        for name, raw in members.items():
            zf.writestr(name, raw)
    return path


def _zip_with(**changes: bytes) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        members = _members()
        members.update({k.replace("__", "."): v for k, v in changes.items()})
        return _write_zip(folder / "agent.zip", members)

    return build


def _data() -> dict[str, Any]:
    return json.loads(_members()["data"])


def _zip_with_data(edit: Callable[[dict[str, Any]], None]) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        data = _data()
        edit(data)
        members = _members()
        members["data"] = json.dumps(data).encode()
        return _write_zip(folder / "agent.zip", members)

    return build


def _torch_bytes(obj: Any) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _policy_state() -> dict[str, torch.Tensor]:
    return torch.load(io.BytesIO(_members()["policy.pth"]), weights_only=True)


def _zip_with_tensor(key: str, tensor: torch.Tensor) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        state = _policy_state()
        state[key] = tensor
        members = _members()
        members["policy.pth"] = _torch_bytes(state)
        return _write_zip(folder / "agent.zip", members)

    return build


def _copy_fixture(name: str, target: str | None = None) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        out = folder / (target or name)
        out.write_bytes((FIXTURES / name).read_bytes())
        return out

    return build


def _write(name: str, raw: bytes) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        (folder / name).write_bytes(raw)
        return folder / name

    return build


def _symlink(name: str, to: str) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        (folder / name).symlink_to(to)
        return folder / name

    return build


CASES: list[AttackCase] = []


def _add(kind: str, name: str, build: Callable[[Path], Path], load: Callable[[Path], Any],
         expect: type[BaseException] | None = RLTransferError) -> None:
    CASES.append(AttackCase(kind, name, build, load, expect))


LOADERS: dict[str, Callable[[Path], Any]] = {"read": read_sb3_zip, "load": load_sb3_zip}

# ---------------------------------------------------------------------------------------------- controls

for loader_name, loader in LOADERS.items():
    _add("valid", f"tiny-ppo-{loader_name}", _zip_with(), loader, None)
if FIXTURES.exists():
    _add("valid", "zoo-sac-legacy-torch-format", _copy_fixture("sac-Pendulum-v1.zip"), read_sb3_zip, None)
    _add("valid", "zoo-ppo-hopper", _copy_fixture("ppo-HopperBulletEnv-v0.zip"), read_sb3_zip, None)
    _add("valid", "zoo-vecnormalize", _copy_fixture("ppo-HopperBulletEnv-v0.vecnormalize.pkl"),
         load_vecnormalize_pkl, None)
    # Dict observations: flat statistics refused (documented), per-key statistics read, its builtins.set inert
    _add("valid", "zoo-vecnormalize-dict-goal", _copy_fixture("tqc-FetchReach-v1.vecnormalize.pkl"),
         lambda p: load_vecnormalize_pkl(p), BundleError)
    _add("valid", "zoo-vecnormalize-dict-goal-per-key", _copy_fixture("tqc-FetchReach-v1.vecnormalize.pkl"),
         load_vecnormalize_dict, None)
    for _contrib in ("trpo-CartPole-v1.zip", "qrdqn-CartPole-v1.zip", "ars-CartPole-v1.zip"):
        _add("valid", f"zoo-{_contrib[:-4]}", _copy_fixture(_contrib), load_sb3_zip, None)

    def _tqc_with_companion(folder: Path) -> Path:
        _copy_fixture("tqc-FetchReach-v1.vecnormalize.pkl")(folder)
        return _copy_fixture("tqc-FetchReach-v1.zip")(folder)

    _add("valid", "zoo-tqc-dict-obs-with-statistics", _tqc_with_companion, load_sb3_zip, None)
    _add("valid", "zoo-config", _copy_fixture("ppo-HopperBulletEnv-v0.config.yml"), load_zoo_config, None)
_VALID_STATS = {"obs_mean": [0.0, 1.0, 2.0], "obs_var": [1.0, 2.0, 3.0], "count": 10.0}
_add("valid", "normalization-json", _write("normalization.json", json.dumps(_VALID_STATS).encode()),
     NormalizationStats.load, None)
_add("valid", "yaml-with-anchors",
     _write("config.yml", b"base: &b {a: 1}\nn_envs: 8\nother: *b\npolicy_kwargs: 'dict(net_arch=[64, 64])'\n"),
     load_zoo_config, None)

# ------------------------------------------------------------------------------------------- zip bombs


def _deflated_zeros(n: int) -> bytes:
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = bytes(1 << 20)
    parts = [comp.compress(chunk) for _ in range(n >> 20)]
    parts.append(comp.compress(bytes(n & ((1 << 20) - 1))))
    parts.append(comp.flush())
    return b"".join(parts)


def _lying_member(member: str, inflated: int, declared: int) -> Callable[[Path], Path]:
    """A zip whose member ``member`` inflates to ``inflated`` bytes but declares ``declared`` (CRC fixed up
    for the declared prefix, so zipfile's own check passes)."""

    def build(folder: Path) -> Path:
        members = _members()
        path = _write_zip(folder / "agent.zip", {k: v for k, v in members.items() if k != member})
        with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as zf:
            with zf.open(member, "w", force_zip64=False) as fh:
                chunk = bytes(1 << 20)
                for _ in range(inflated >> 20):
                    fh.write(chunk)
        with zipfile.ZipFile(path) as zf:
            info = zf.getinfo(member)
        blob = bytearray(path.read_bytes())
        crc = zlib.crc32(bytes(declared))
        head = info.header_offset
        blob[head + 14:head + 18] = struct.pack("<L", crc)
        blob[head + 22:head + 26] = struct.pack("<L", declared)
        central = blob.index(b"PK\x01\x02")
        while struct.unpack("<L", blob[central + 42:central + 46])[0] != head:
            central = blob.index(b"PK\x01\x02", central + 4)
        blob[central + 16:central + 20] = struct.pack("<L", crc)
        blob[central + 24:central + 28] = struct.pack("<L", declared)
        path.write_bytes(bytes(blob))
        return path

    return build


for member in ("data", "policy.pth"):
    for inflated in (8 * 2**20, 96 * 2**20):
        _add("hostile", f"zip-bomb-lying-header-{member}-{inflated >> 20}MiB", _lying_member(member, inflated, 4700),
             read_sb3_zip, ResourceLimitError)


def _honest_big_data(folder: Path) -> Path:
    members = _members()
    members["data"] = b" " * (70 * 2**20)
    return _write_zip(folder / "agent.zip", members, zipfile.ZIP_DEFLATED)


_add("hostile", "zip-bomb-data-over-64MiB", _honest_big_data, read_sb3_zip, ResourceLimitError)


def _inner_rewritten(compress: int, extra: dict[str, bytes] | None = None) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        members = _members()
        src = zipfile.ZipFile(io.BytesIO(members["policy.pth"]))
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=compress) as out:
            for info in src.infolist():
                out.writestr(info.filename, src.read(info))
            for name, raw in (extra or {}).items():
                out.writestr(name, raw)
        members["policy.pth"] = buffer.getvalue()
        return _write_zip(folder / "agent.zip", members)

    return build


_add("hostile", "inner-torch-records-deflated", _inner_rewritten(zipfile.ZIP_DEFLATED), read_sb3_zip,
     ResourceLimitError)
for size in (16 * 2**20, 64 * 2**20):
    _add("hostile", f"inner-torch-extra-deflated-{size >> 20}MiB",
         _inner_rewritten(zipfile.ZIP_DEFLATED, {"archive/data/99": bytes(size)}), load_sb3_zip,
         ResourceLimitError)


def _inner_size_lie(delta: int) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        members = _members()
        inner = bytearray(members["policy.pth"])
        pos = inner.rindex(b"PK\x01\x02")  # the last record's central entry
        (size,) = struct.unpack("<L", inner[pos + 24:pos + 28])
        inner[pos + 20:pos + 28] = struct.pack("<2L", size + delta, size + delta)
        members["policy.pth"] = bytes(inner)
        return _write_zip(folder / "agent.zip", members)

    return build


for delta in (1, 2**20, 2**31):
    _add("hostile", f"inner-torch-record-size-lie-{delta}", _inner_size_lie(delta), read_sb3_zip)

# -------------------------------------------------------------------------------------------- tensors

_KEY = "action_net.weight"
_tensor_attacks: dict[str, tuple[torch.Tensor, type[BaseException]]] = {
    "stride0-20000x20000": (torch.zeros(1).expand(20000, 20000), ResourceLimitError),
    "stride0-10000x10000": (torch.zeros(1).expand(10000, 10000), BundleError),
    "stride0-row-2x16": (torch.zeros(16).expand(2, 16), BundleError),
    "overlap-5000x5000": (torch.zeros(10000).as_strided((5000, 5000), (1, 1)), BundleError),
    "huge-shape-2**28": (torch.zeros(1).expand(2**28), ResourceLimitError),
    "nan": (torch.full((2, 16), float("nan")), BundleError),
    "inf": (torch.full((2, 16), float("inf")), BundleError),
    "-inf": (torch.full((2, 16), float("-inf")), BundleError),
    "3e38": (torch.full((2, 16), 3e38), BundleError),
    "1e7": (torch.full((2, 16), 1e7), BundleError),
    "complex64": (torch.zeros((2, 16), dtype=torch.complex64), BundleError),
    "float64-nan-one": (torch.zeros((2, 16), dtype=torch.float64).index_fill_(1, torch.tensor([3]), float("nan")), BundleError),
}
for tname, (tensor, expected) in _tensor_attacks.items():
    for loader_name, loader in LOADERS.items():
        _add("hostile", f"tensor-{tname}-{loader_name}", _zip_with_tensor(_KEY, tensor), loader, expected)
_add("hostile", "tensor-wide-inferred-layer", _zip_with_tensor("mlp_extractor.policy_net.0.weight",
     torch.zeros(1).expand(20000, 4)), load_sb3_zip, RLTransferError)
_add("hostile", "pytorch-variables-nan", _zip_with(pytorch_variables__pth=_torch_bytes({"x": torch.tensor([float("nan")])})),
     read_sb3_zip, BundleError)
_add("hostile", "policy-pth-not-a-dict", _zip_with(policy__pth=_torch_bytes([torch.zeros(2)])), read_sb3_zip, BundleError)
# None is accepted in pytorch_variables.pth only (SB3 1.x SAC/TQC with a fixed ent_coef), never in policy.pth
_add("valid", "pytorch-variables-none-entry", _zip_with(pytorch_variables__pth=_torch_bytes(
    {"log_ent_coef": None, "ent_coef_tensor": torch.tensor(0.1)})), read_sb3_zip, None)
_add("hostile", "policy-pth-none-entry", _zip_with(policy__pth=_torch_bytes({**_policy_state(), "x": None})),
     read_sb3_zip, BundleError)
_add("hostile", "pytorch-variables-string-entry", _zip_with(pytorch_variables__pth=_torch_bytes({"x": "os.system"})),
     read_sb3_zip, BundleError)

# --------------------------------------------------------------------------------------------- spaces


def _set_space(key: str, space: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    def edit(data: dict[str, Any]) -> None:
        data[key] = space

    return edit


_SPACES = {
    "discrete-1e12": {":type:": "<class 'gymnasium.spaces.discrete.Discrete'>", "n": 10**12},
    "discrete-str-1e12": {":type:": "<class 'gymnasium.spaces.discrete.Discrete'>", "n": str(10**12)},
    "box-1e5x1e5": {":type:": "<class 'gymnasium.spaces.box.Box'>", "dtype": "float32", "_shape": [100000, 100000],
                    "low": "-inf", "high": "inf"},
    "box-many-dims": {":type:": "<class 'gymnasium.spaces.box.Box'>", "dtype": "float32", "_shape": [2] * 40,
                      "low": "-1.0", "high": "1.0"},
    "multidiscrete-1e12": {":type:": "<class 'gymnasium.spaces.multi_discrete.MultiDiscrete'>", "nvec": [10**12],
                           "dtype": "int64"},
    "multidiscrete-2e6-entries": {":type:": "<class 'gymnasium.spaces.multi_discrete.MultiDiscrete'>",
                                  "nvec": "[" + " 2" * (2**21) + "]", "dtype": "int64"},
    "multibinary-1e5x1e5": {":type:": "<class 'gymnasium.spaces.multi_binary.MultiBinary'>", "n": [100000, 100000]},
    "multibinary-1e12": {":type:": "<class 'gymnasium.spaces.multi_binary.MultiBinary'>", "n": 10**12},
}
_DICT = "<class 'gymnasium.spaces.dict.Dict'>"
_SPACES.update({  # Dict spaces are read from their printed form by a scanner: nothing is evaluated
    "dict-box-1e5x1e5": {":type:": _DICT, "spaces": "{'a': Box(-inf, inf, (100000, 100000), float32)}"},
    "dict-many-boxes": {":type:": _DICT, "spaces": "{" + ", ".join(f"'k{i}': Box(-1.0, 1.0, (100000,), float32)"
                                                                   for i in range(20)) + "}"},
    "dict-nested-100": {":type:": _DICT, "spaces": "Dict('a': " * 100 + "Discrete(2)" + ")" * 100},
    "dict-call-in-bounds": {":type:": _DICT, "spaces": "{'a': Box(__import__('os').system('touch x'), 1.0, (1,), "
                                                       "float32)}"},
    "dict-unknown-space": {":type:": _DICT, "spaces": "{'a': Graph(Box(1,), None)}"},
    "dict-unbalanced": {":type:": _DICT, "spaces": "{'a': Box(-1.0, 1.0, (3,), float32}"},
    "dict-too-long": {":type:": _DICT, "spaces": "{'a': Box(" + " " * (5 * 2**20) + ")}"},
    "dict-not-a-string": {":type:": _DICT, "spaces": {"a": 1}},
    "dict-huge-discrete": {":type:": _DICT, "spaces": "{'a': Discrete(1000000000000)}"},
})
for sname, space in _SPACES.items():
    for key in ("observation_space", "action_space"):
        _add("hostile", f"space-{key}-{sname}", _zip_with_data(_set_space(key, space)), read_sb3_zip, RLTransferError)


def _net_arch(arch: Any) -> Callable[[dict[str, Any]], None]:
    def edit(data: dict[str, Any]) -> None:
        data["policy_kwargs"] = {"net_arch": arch}

    return edit


for aname, arch in {
    "200000x2": [200000, 200000],
    "dict-pi-vf-200000": {"pi": [200000], "vf": [64]},
    "16384x3": [16384, 16384, 16384],
    "deep-4096x100": [4096] * 100,
    "old-shared-dict": [200000, {"pi": [64], "vf": [64]}],
}.items():
    _add("hostile", f"net-arch-{aname}", _zip_with_data(_net_arch(arch)), load_sb3_zip, RLTransferError)

# ---------------------------------------------------------------------------------------- data JSON

_add("hostile", "data-deep-nesting-list", _zip_with(data=b"[" * 200_000 + b"]" * 200_000), read_sb3_zip)
_add("hostile", "data-deep-nesting-dict", _zip_with(data=b'{"a":' * 100_000 + b"1" + b"}" * 100_000), read_sb3_zip)
_add("hostile", "data-nesting-70", _zip_with(data=b"[" * 70 + b"]" * 70), read_sb3_zip, ResourceLimitError)
_add("hostile", "data-2M-values", _zip_with(data=b"[" + b"0," * 2_000_000 + b"0]"), read_sb3_zip, ResourceLimitError)
_add("damaged", "data-not-utf8", _zip_with(data=b'{"a": "\xff\xfe\xfa"}'), read_sb3_zip, BundleError)
_add("damaged", "data-utf16", _zip_with(data='{"a": 1}'.encode("utf-16")), read_sb3_zip, BundleError)
_add("damaged", "data-binary", _zip_with(data=bytes(random.Random(0).randrange(256) for _ in range(4096))),
     read_sb3_zip, BundleError)
_add("damaged", "data-not-object", _zip_with(data=b"[1, 2]"), read_sb3_zip, BundleError)
_add("hostile", "zip-is-dev-zero", _symlink("agent.zip", "/dev/zero"), read_sb3_zip, BundleError)

# ------------------------------------------------------------------------------ byte flips, truncations


def _same_archive(path: Path) -> None:
    """Load a damaged copy: a refusal is fine; a load must give what the intact zip gives."""
    try:
        got = read_sb3_zip(path)
    except RLTransferError:
        return
    want = _reference_archive()
    if got.observation_space != want.observation_space or got.action_space != want.action_space:
        raise AssertionError("a damaged zip loaded with other spaces")
    if got.policy_kwargs != want.policy_kwargs or set(got.state_dict) != set(want.state_dict):
        raise AssertionError("a damaged zip loaded with another architecture")
    for key, tensor in want.state_dict.items():
        if not torch.equal(tensor, got.state_dict[key]):
            raise AssertionError(f"a damaged zip loaded with other weights in {key}")


@functools.lru_cache(maxsize=1)
def _reference_archive() -> Any:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        return read_sb3_zip(_write("agent.zip", _base_zip_bytes())(Path(tmp)))


def _flipped(position: int, mask: int) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        raw = bytearray(_base_zip_bytes())
        raw[position % len(raw)] ^= mask
        return _write("agent.zip", bytes(raw))(folder)

    return build


def _truncated(fraction: float) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        raw = _base_zip_bytes()
        return _write("agent.zip", raw[: int(len(raw) * fraction)])(folder)

    return build


_rng = random.Random(1234)
for i in range(30):
    pos, mask = _rng.randrange(2**31), 1 << _rng.randrange(8)
    _add("damaged", f"flip-{i:02d}", _flipped(pos, mask), _same_archive, None)
for fraction in (0.0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 0.9999):
    _add("damaged", f"truncate-{fraction}", _truncated(fraction), _same_archive, None)

# ------------------------------------------------------------------------------------------- pickles


def _vecnormalize_with(mean: Any, var: Any = None, extra_state: dict[str, Any] | None = None) -> bytes:
    """A pickled SB3 VecNormalize (the real classes) whose obs_rms mean is ``mean``."""
    from stable_baselines3.common.running_mean_std import RunningMeanStd
    from stable_baselines3.common.vec_env import VecNormalize

    rms = RunningMeanStd(shape=(3,))
    rms.mean = mean
    rms.var = np.ones(3) if var is None else var
    vec = VecNormalize.__new__(VecNormalize)
    vec.__dict__.update(
        venv=None, class_attributes={}, returns=None, obs_rms=rms, ret_rms=RunningMeanStd(shape=()),
        clip_obs=10.0, clip_reward=10.0, gamma=0.99, epsilon=1e-8, norm_obs=True, norm_reward=False,
        **(extra_state or {}),
    )
    return pickle.dumps(vec, protocol=2)


def _shared_lists(depth: int, width: int = 2) -> Any:
    value: Any = [1.0]
    for _ in range(depth):
        value = [value] * width
    return value


class _Reduce:
    def __init__(self, func: Any, args: tuple[Any, ...], state: Any = None) -> None:
        self.func, self.args, self.state = func, args, state

    def __reduce__(self) -> Any:
        return (self.func, self.args) if self.state is None else (self.func, self.args, self.state)


def _pickle_case(make: Callable[[Path], bytes], name: str = "vecnormalize.pkl") -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        (folder / name).write_bytes(make(folder))
        return folder / name

    return build


_reconstruct = np.ndarray(0).__reduce__()[0]
_frombuffer = np.zeros(1).__reduce_ex__(5)[0]

for depth, width in ((30, 2), (19, 3), (10, 8), (3, 300)):
    _add("hostile", f"pickle-shared-lists-{depth}x{width}",
         _pickle_case(lambda f, d=depth, w=width: _vecnormalize_with(_shared_lists(d, w))), load_vecnormalize_pkl,
         ResourceLimitError)
_add("hostile", "pickle-972-byte-style-bomb",
     _pickle_case(lambda f: _vecnormalize_with([_shared_lists(25)] * 3, var=[_shared_lists(25)] * 3)),
     load_vecnormalize_pkl, ResourceLimitError)
_add("hostile", "pickle-shared-arrays",
     _pickle_case(lambda f: _vecnormalize_with([np.zeros(2**19)] * 64)), load_vecnormalize_pkl, ResourceLimitError)
_add("hostile", "pickle-deep-lists",
     _pickle_case(lambda f: b"\x80\x02" + b"]" * 100_000 + b"a" * 99_999 + b"."), load_vecnormalize_pkl,
     ResourceLimitError)
for index in (2**24, 2**28, 2**32 - 1):
    _add("hostile", f"pickle-memo-index-{index}",
         _pickle_case(lambda f, i=index: b"\x80\x02N" + b"r" + struct.pack("<L", i) + b"."), load_vecnormalize_pkl,
         ResourceLimitError)
for size in (2**31, 2**40):
    _add("hostile", f"pickle-binbytes-length-{size}",
         _pickle_case(lambda f, s=size: b"\x80\x04\x8e" + struct.pack("<Q", s) + b"abc."), load_vecnormalize_pkl,
         BundleError)
_add("hostile", "pickle-long-digits", _pickle_case(lambda f: b"(L" + b"9" * 100_000 + b"L\n."), load_vecnormalize_pkl,
     BundleError)
_add("hostile", "pickle-reconstruct-shape-lies",
     _pickle_case(lambda f: _vecnormalize_with(_Reduce(_reconstruct, (np.ndarray, (0,), b"b"),
                                                       (1, (10**6, 10**6), np.dtype("f8"), False, bytes(8))))),
     load_vecnormalize_pkl, ResourceLimitError)
_add("hostile", "pickle-reconstruct-short-data",
     _pickle_case(lambda f: _vecnormalize_with(_Reduce(_reconstruct, (np.ndarray, (0,), b"b"),
                                                       (1, (1000,), np.dtype("f8"), False, bytes(8))))),
     load_vecnormalize_pkl, BundleError)
_add("hostile", "pickle-reconstruct-object-dtype",
     _pickle_case(lambda f: _vecnormalize_with(_Reduce(_reconstruct, (np.ndarray, (0,), b"b"),
                                                       (1, (3,), np.dtype("O"), False, [1, 2, 3])))),
     load_vecnormalize_pkl, RLTransferError)
_add("hostile", "pickle-ndarray-direct-call",
     _pickle_case(lambda f: _vecnormalize_with(_Reduce(np.ndarray, ((100000, 100000), "f8")))),
     load_vecnormalize_pkl, UnsafeFileError)
_add("hostile", "pickle-frombuffer-shape-lies",
     _pickle_case(lambda f: _vecnormalize_with(_Reduce(_frombuffer, (bytes(8), np.dtype("f8"), (10**6, 10**6), "C")))),
     load_vecnormalize_pkl, ResourceLimitError)
_add("hostile", "pickle-huge-void-dtype",
     _pickle_case(lambda f: _vecnormalize_with(np.zeros(1, dtype=np.dtype(("V", 10**6))))),
     load_vecnormalize_pkl, UnsafeFileError)
_add("hostile", "pickle-nan-statistics",
     _pickle_case(lambda f: _vecnormalize_with(np.array([0.0, np.nan, 1.0]))), load_vecnormalize_pkl, BundleError)
_add("hostile", "pickle-negative-var",
     _pickle_case(lambda f: _vecnormalize_with(np.zeros(3), var=np.array([1.0, -1.0, 1.0]))), load_vecnormalize_pkl,
     BundleError)

_PAYLOADS: dict[str, Callable[[Path], Any]] = {
    "os-system": lambda f: _Reduce(os.system, (f"touch {sentinel(f)}",)),
    "builtins-exec": lambda f: _Reduce(builtins.exec, (payload_source(f),)),
    "builtins-eval": lambda f: _Reduce(builtins.eval, (payload_source(f),)),
    "subprocess-popen": lambda f: _Reduce(subprocess.Popen, (["touch", str(sentinel(f))],)),
    "subprocess-call": lambda f: _Reduce(subprocess.call, (["touch", str(sentinel(f))],)),
}
for pname, payload in _PAYLOADS.items():
    _add("hostile", f"pickle-{pname}-root", _pickle_case(lambda f, p=payload: pickle.dumps(p(f), protocol=2)),
         load_vecnormalize_pkl, UnsafeFileError)
    _add("hostile", f"pickle-{pname}-in-state",
         _pickle_case(lambda f, p=payload: _vecnormalize_with(np.zeros(3), extra_state={"x": p(f)})),
         load_vecnormalize_pkl, UnsafeFileError)
_add("hostile", "pickle-dev-zero", _symlink("vecnormalize.pkl", "/dev/zero"), load_vecnormalize_pkl,
     ResourceLimitError)

# builtins.set / frozenset: inert frozensets of plain values; any other use refused
_add("valid", "pickle-set-of-keys",
     _pickle_case(lambda f: _vecnormalize_with(np.zeros(3), extra_state={"obs_keys": {"a", "b"}})),
     load_vecnormalize_pkl, None)
_add("valid", "pickle-frozenset-of-keys",
     _pickle_case(lambda f: _vecnormalize_with(np.zeros(3), extra_state={"keys": frozenset({1, 2.5, None})})),
     load_vecnormalize_pkl, None)
for _kind in (set, frozenset):
    _n = _kind.__name__
    _add("hostile", f"pickle-{_n}-of-os-system",
         _pickle_case(lambda f, k=_kind: _vecnormalize_with(np.zeros(3), extra_state={"x": _Reduce(k, ([_Reduce(
             os.system, (f"touch {sentinel(f)}",))],))})), load_vecnormalize_pkl, UnsafeFileError)
    _add("hostile", f"pickle-{_n}-of-an-object",
         _pickle_case(lambda f, k=_kind: _vecnormalize_with(np.zeros(3), extra_state={"x": _Reduce(k, (
             [np.zeros(4)],))})), load_vecnormalize_pkl, UnsafeFileError)
    _add("hostile", f"pickle-{_n}-called-on-a-statistics-object",
         _pickle_case(lambda f, k=_kind: _vecnormalize_with(np.zeros(3), extra_state={"x": _Reduce(k, (
             _Reduce(np.dtype, ("f8",)),))})), load_vecnormalize_pkl, UnsafeFileError)
    _add("hostile", f"pickle-{_n}-of-a-dict",
         _pickle_case(lambda f, k=_kind: _vecnormalize_with(np.zeros(3), extra_state={"x": _Reduce(k, (
             {"a": 1},))})), load_vecnormalize_pkl, UnsafeFileError)
    _add("hostile", f"pickle-{_n}-of-two-million",
         _pickle_case(lambda f, k=_kind: _vecnormalize_with(np.zeros(3), extra_state={"x": _Reduce(k, (
             list(range(2_000_000)),))})), load_vecnormalize_pkl, ResourceLimitError)
    _add("hostile", f"pickle-{_n}-method-global",  # protocol 4 STACK_GLOBAL of a dotted name: set.__init__
         _pickle_case(lambda f, k=_n: b"\x80\x04\x8c\x08builtins\x94\x8c" + bytes([len(k) + 9]) + f"{k}.__init__".encode()
                      + b"\x94\x93\x94."), load_vecnormalize_pkl, UnsafeFileError)
_add("hostile", "pickle-builtins-setattr", _pickle_case(lambda f: pickle.dumps(_Reduce(builtins.setattr, (
    "x", "y", 1)), protocol=2)), load_vecnormalize_pkl, UnsafeFileError)
_add("damaged", "pickle-empty", _write("vecnormalize.pkl", b""), load_vecnormalize_pkl, BundleError)
_add("damaged", "pickle-garbage", _write("vecnormalize.pkl", bytes(random.Random(3).randrange(256) for _ in range(5000))),
     load_vecnormalize_pkl, RLTransferError)
if FIXTURES.exists():
    for cut in (10, 100, 1000, 3000, 5000):
        _add("damaged", f"pickle-zoo-truncated-{cut}",
             lambda f, c=cut: _write("vecnormalize.pkl",
                                     (FIXTURES / "ppo-HopperBulletEnv-v0.vecnormalize.pkl").read_bytes()[:c])(f),
             load_vecnormalize_pkl, BundleError)

# ---------------------------------------------------------------------------------------------- YAML


def _billion_laughs(levels: int, width: int) -> bytes:
    lines = ['a0: &a0 ["lol"]']
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    return ("\n".join(lines) + "\n").encode()


def _merge_bomb(levels: int) -> bytes:
    lines = ["m0: &m0 {k0: 1}"]
    for i in range(1, levels + 1):
        lines.append(f"m{i}: &m{i} {{<<: [*m{i - 1}, *m{i - 1}], k{i}: 1}}")
    return ("\n".join(lines) + "\n").encode()


for levels, width in ((9, 9), (30, 2), (4, 100)):
    _add("hostile", f"yaml-alias-bomb-{levels}x{width}", _write("config.yml", _billion_laughs(levels, width)),
         load_zoo_config, ResourceLimitError)
# PyYAML's merges collapse duplicate keys as they go: harmless, must load
_add("hostile", "yaml-merge-keys", _write("config.yml", _merge_bomb(25)), load_zoo_config, None)
_add("hostile", "yaml-alias-bomb-in-policy-kwargs",
     _write("config.yml", _billion_laughs(9, 9) + b"policy_kwargs: *a9\n"), load_zoo_config, ResourceLimitError)
for tag in ("!!python/object/apply:os.system [\"touch {s}\"]",
            "!!python/name:builtins.exec",
            "!!python/object/new:subprocess.Popen [[\"touch\", \"{s}\"]]",
            "!!python/object/apply:builtins.exec [\"{p}\"]"):
    _add("hostile", f"yaml-tag-{tag.split()[0][10:]}",
         lambda f, t=tag: _write("config.yml", f"x: {t}\n".format(s=sentinel(f), p=payload_source(f).replace('"', "'")).encode())(f),
         load_zoo_config, UnsafeFileError)
_add("damaged", "yaml-not-utf8", _write("config.yml", b"n_envs: \xff\xfe\x80\n"), load_zoo_config, ConfigError)
_add("damaged", "yaml-binary", _write("config.yml", bytes(random.Random(5).randrange(256) for _ in range(4000))),
     load_zoo_config, ConfigError)
_add("damaged", "yaml-utf16", _write("config.yml", "n_envs: 8\n".encode("utf-16")), load_zoo_config, ConfigError)
_add("hostile", "yaml-deep-flow", _write("config.yml", b"x: " + b"[" * 50_000 + b"]" * 50_000), load_zoo_config,
     ConfigError)
_add("hostile", "yaml-deep-block", _write("config.yml", b"".join(b"  " * i + b"k:\n" for i in range(3000))),
     load_zoo_config, ConfigError)
_add("hostile", "yaml-nesting-70", _write("config.yml", b"x: " + b"[" * 70 + b"]" * 70), load_zoo_config,
     ResourceLimitError)
_add("hostile", "yaml-dev-zero", _symlink("config.yml", "/dev/zero"), load_zoo_config, ResourceLimitError)
_add("hostile", "yaml-too-large", _write("config.yml", b"# " + b"x" * (5 * 2**20) + b"\n"), load_zoo_config,
     ResourceLimitError)

# ------------------------------------------------------------------------- Zoo hyperparameter files

def _zoo_agent(path: Path) -> Any:  # --agent zoo:PATH
    return load_agent(f"zoo:ppo:{path}", "cartpole")


def _sniffed_agent(path: Path) -> Any:  # --agent PATH: sniffed as a Zoo file first, else an agent file
    return load_agent(path, "cartpole")


_add("valid", "zoo-hyperparams", _write("ppo.yml", b"CartPole-v1:\n  n_steps: !!float 32\n  learning_rate: lin_0.001\n"),
     _zoo_agent, None)
_add("valid", "zoo-hyperparams-sniffed", _write("ppo.yml", b"atari:\n  frame_stack: 4\nCartPole-v1:\n  n_steps: 32\n"),
     _sniffed_agent, None)
for _loader in (_zoo_agent, _sniffed_agent):
    _how = "zoo" if _loader is _zoo_agent else "sniffed"
    _add("hostile", f"zoo-agent-{_how}-alias-bomb",
         _write("ppo.yml", _billion_laughs(9, 9) + b"CartPole-v1:\n  policy_kwargs: *a9\n"), _loader, ResourceLimitError)
    _add("hostile", f"zoo-agent-{_how}-two-million-values",
         _write("ppo.yml", b"CartPole-v1:\n  n_steps: [" + b"1," * 1_500_000 + b"1]\n"), _loader, ResourceLimitError)
    _add("hostile", f"zoo-agent-{_how}-nesting-70", _write("ppo.yml", b"CartPole-v1: " + b"[" * 70 + b"]" * 70),
         _loader, ResourceLimitError)
    _add("hostile", f"zoo-agent-{_how}-huge-int-literal", _write("ppo.yml", b"CartPole-v1:\n  n_steps: " + b"9" * 10_000),
         _loader, ConfigError)
    _add("hostile", f"zoo-agent-{_how}-too-large", _write("ppo.yml", b"# " + b"x" * (5 * 2**20) + b"\n"), _loader,
         ResourceLimitError)
    for tag in ("!!python/object/apply:os.system [\"touch {s}\"]",
                "!!python/object/apply:builtins.exec [\"{p}\"]"):
        _add("hostile", f"zoo-agent-{_how}-tag-{tag.split()[0][10:]}",
             lambda f, t=tag: _write("ppo.yml", f"CartPole-v1:\n  n_steps: {t}\n".format(
                 s=sentinel(f), p=payload_source(f).replace('"', "'")).encode())(f),
             _loader, UnsafeFileError if _loader is _zoo_agent else RLTransferError)

# ------------------------------------------------------------------------------- normalization.json


def _stats(**changes: Any) -> bytes:
    data = dict(_VALID_STATS)
    data.update(changes)
    return json.dumps(data).encode()


for sname, raw in {
    "nan-mean": _stats(obs_mean=[0.0, float("nan"), 1.0]),
    "inf-var": _stats(obs_var=[1.0, float("inf"), 1.0]),
    "negative-var": _stats(obs_var=[1.0, -1.0, 1.0]),
    "shape-mismatch": _stats(obs_var=[1.0, 1.0]),
    "two-d": _stats(obs_mean=[[0.0, 1.0, 2.0]], obs_var=[[1.0, 1.0, 1.0]]),
    "count-zero": _stats(count=0),
    "count-nan": _stats(count=float("nan")),
    "clip-negative": _stats(clip_obs=-1.0),
    "clip-string": _stats(clip_obs="10"),
    "unknown-key": _stats(evil=1),
    "not-object": b"[1, 2, 3]",
    "not-utf8": b'{"obs_mean": "\xff\xfe"}',
    "deep": b"[" * 100_000 + b"]" * 100_000,
    "nesting-70": b'{"obs_mean": ' + b"[" * 70 + b"]" * 70 + b"}",
    "strings-in-mean": _stats(obs_mean=["a", "b", "c"]),
    "shared-width": b'{"obs_mean": [' + b"0," * 2_000_000 + b'0], "obs_var": [1]}',
}.items():
    _add("hostile" if sname in ("deep", "nesting-70", "shared-width") else "damaged", f"stats-{sname}",
         _write("normalization.json", raw), NormalizationStats.load)
_add("hostile", "stats-dev-zero", _symlink("normalization.json", "/dev/zero"), NormalizationStats.load,
     ResourceLimitError)
_add("hostile", "stats-too-large", _write("normalization.json", b" " * (9 * 2**20)), NormalizationStats.load,
     ResourceLimitError)
_add("config", "stats-3-features-for-4-feature-env", _write("normalization.json", _stats()),
     lambda p: NormalizationStats.load(p, obs_space=spaces.Box(-1, 1, (4,))), BundleError)
_add("valid", "stats-3-features-for-3-feature-env", _write("normalization.json", _stats()),
     lambda p: NormalizationStats.load(p, obs_space=spaces.Box(-1, 1, (3,))), None)


# ----------------------------------------------------------------------------------------------- tests


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_attack(case: AttackCase, tmp_path: Path) -> None:
    outcome = run_case(case, tmp_path)
    assert outcome.ok, outcome.describe()


def test_check_net_arch() -> None:
    assert check_net_arch([64, 64], "x", in_features=4, out_features=2) == 4 * 64 + 64 + 64 * 64 + 64 + 64 * 2 + 2
    with pytest.raises(ResourceLimitError, match="MAX_LAYER_WIDTH"):
        check_net_arch([200000, 200000], "policy_kwargs.net_arch")
    with pytest.raises(ResourceLimitError, match="MAX_PARAMETERS"):
        check_net_arch({"pi": [16384] * 3, "vf": [64]}, "policy_kwargs.net_arch")
    with pytest.raises(ConfigError):
        check_net_arch(["a"], "policy_kwargs.net_arch")


def test_every_kind_is_covered() -> None:
    kinds = {case.kind for case in CASES}
    assert {"hostile", "damaged", "valid"} <= kinds
    assert len({case_id(c) for c in CASES}) == len(CASES)
