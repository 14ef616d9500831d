"""Read the companion files RL Baselines3 Zoo publishes beside a trained agent, safely.

The Zoo stores ``VecNormalize`` statistics as a pickle and hyperparameters as YAML with a
``!!python/object/apply`` tag and Python expressions in strings (``"dict(net_arch=[64, 64])"``,
``"lin_0.4"``). The Zoo itself unpickles and ``eval``\\ s them; here the pickle goes through an
unpickler that admits only numpy arrays and inert stand-ins for the statistics classes, the YAML through
a safe loader that knows exactly one Python tag, and the expressions through a small AST walker that
accepts literals and allowlisted activation names only. Anything else raises
:class:`~rltransfer.errors.UnsafeFileError` or :class:`~rltransfer.errors.ConfigError` before it can run.
"""

from __future__ import annotations

import ast
import io
import math
import pickle
import re
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from rltransfer import limits
from rltransfer.errors import (
    BundleError, ConfigError, ResourceLimitError, RLTransferError, UnsafeFileError, did_you_mean, unknown_name,
)
from rltransfer.limits import short_repr
from rltransfer.normalization import NormalizationStats
from rltransfer.sb3layout import ACTIVATION_NAMES

__all__ = [
    "find_zoo_companions",
    "is_zoo_hyperparams",
    "load_zoo_agent",
    "zoo_algo_of",
    "load_vecnormalize_dict",
    "load_vecnormalize_pkl",
    "apply_agent_overrides",
    "load_zoo_config",
    "parse_hyperparams",
    "parse_policy_kwargs",
]

_MAX_EXPRESSION_CHARS = 10_000
# Arrays a VecNormalize pickle may hold: statistics and space bounds (one observation each) and the
# spaces' random states (624 words); a dtype wider than 16 bytes is not a number.
_MAX_ARRAY_ELEMENTS = limits.MAX_SPACE_ELEMENTS
_MAX_ITEMSIZE = 16

# --------------------------------------------------------------------------------------------------
# VecNormalize pickles


class _Inert:
    """Stand-in for a class named in a pickle: records the pickled state, runs nothing.

    Attributes:
        pickled_name: the ``module.name`` the pickle asked for.
        args: positional arguments the pickle passed to the constructor.
        state: the state the pickle set (``__setstate__``), as a dict when it was one.
    """

    pickled_name = "?"

    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    state: dict[str, Any]

    def __new__(cls, *args: Any, **kwargs: Any) -> _Inert:  # noqa: PYI034
        # pickle's NEWOBJ calls cls.__new__(cls, *args) and REDUCE calls cls(*args): both end here.
        obj = super().__new__(cls)
        obj.args = args
        obj.kwargs = kwargs
        obj.state = {}
        return obj

    def __setstate__(self, state: Any) -> None:
        if (
            isinstance(state, tuple)
            and len(state) == 2
            and all(s is None or isinstance(s, dict) for s in state)
        ):
            merged: dict[str, Any] = {}
            for part in state:
                merged.update(part or {})
            state = merged
        self.state = dict(state) if isinstance(state, dict) else {"_state": state}

    def __repr__(self) -> str:
        return f"<inert {self.pickled_name}>"


def _inert(name: str) -> type[_Inert]:
    return type(f"_Inert_{name.rsplit('.', 1)[-1]}", (_Inert,), {"pickled_name": name})


def _inert_factory(name: str) -> Callable[..., _Inert]:
    """For numpy's random-state constructors: return a stand-in instead of a real generator."""
    cls = _inert(name)

    def factory(*args: Any, **kwargs: Any) -> _Inert:
        return cls(*args, **kwargs)

    return factory


def _check_dtype(dtype: Any) -> np.dtype:
    if not isinstance(dtype, np.dtype) or dtype.hasobject or dtype.kind not in "biuf" or dtype.fields:
        raise UnsafeFileError(
            f"refused a pickled array of dtype {short_repr(dtype)}: only plain numeric dtypes are allowed"
        )
    if dtype.itemsize > _MAX_ITEMSIZE or dtype.shape:
        raise ResourceLimitError(f"refused a pickled dtype of {dtype.itemsize:,} bytes per element")
    return dtype


def _check_shape(shape: Any) -> tuple[int, ...]:
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, tuple) or not all(
        isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n >= 0 for n in shape
    ):
        raise BundleError(f"refused a pickled array shape {short_repr(shape)}")
    if len(shape) > limits.MAX_NESTING or math.prod(int(n) for n in shape) > _MAX_ARRAY_ELEMENTS:
        raise ResourceLimitError(
            f"refused a pickled array of shape {short_repr(shape)}: more than the "
            f"{_MAX_ARRAY_ELEMENTS:,} elements allowed (MAX_SPACE_ELEMENTS)"
        )
    return tuple(int(n) for n in shape)


class _ArrayClass:
    """What ``numpy.ndarray`` resolves to in a pickle: only a tag for :func:`_reconstruct`, never called."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        raise UnsafeFileError("refused a direct call of numpy.ndarray in the pickle")


class _GuardedArray(np.ndarray):
    """An ndarray whose pickled state is checked before numpy allocates anything for it."""

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise BundleError(f"refused a malformed pickled array state {short_repr(state)}")
        shape, dtype, _fortran, data = state[-4:]
        shape = _check_shape(shape)
        dtype = _check_dtype(dtype)
        if not isinstance(data, (bytes, bytearray)) or len(data) != math.prod(shape) * dtype.itemsize:
            raise BundleError(
                f"refused a pickled array of shape {short_repr(shape)} and dtype {dtype} whose data "
                f"is {short_repr(type(data).__name__)} of {len(data) if isinstance(data, (bytes, bytearray)) else '?'} "
                "bytes, not the size its shape declares"
            )
        super().__setstate__(state)


def _reconstruct(cls: Any, shape: Any, dtype: Any) -> np.ndarray:
    """numpy's ``_reconstruct``: an empty array that the pickle's ``BUILD`` then fills (checked)."""
    if cls is not _ArrayClass:
        raise UnsafeFileError(f"refused numpy _reconstruct of {short_repr(cls)}: only ndarray is allowed")
    return np.ndarray.__new__(_GuardedArray, (0,), np.uint8)


def _frombuffer(buf: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    """numpy's ``_frombuffer`` (protocol-5 arrays), with the sizes checked first."""
    dtype = _check_dtype(dtype)
    shape = _check_shape(shape)
    if not isinstance(buf, (bytes, bytearray)) or len(buf) != math.prod(shape) * dtype.itemsize:
        raise BundleError(f"refused a pickled buffer that does not match shape {short_repr(shape)}")
    if order not in ("C", "F"):
        raise BundleError(f"refused a pickled array order {short_repr(order)}")
    return np.frombuffer(bytes(buf), dtype=dtype).reshape(shape, order=order).copy()


def _scalar(dtype: Any, data: Any = None) -> Any:
    """numpy's ``scalar``: one number of a plain dtype from exactly ``itemsize`` bytes."""
    dtype = _check_dtype(dtype)
    if not isinstance(data, (bytes, bytearray)) or len(data) != dtype.itemsize:
        raise BundleError(f"refused a pickled numpy scalar of dtype {dtype} from {short_repr(data)}")
    return np.frombuffer(bytes(data), dtype=dtype)[0]


_DTYPE_SPEC = re.compile(r"^[<>|=]?[biuf][1-9]?\d?$")


def _dtype(spec: Any, align: Any = False, copy: Any = False) -> np.dtype:
    """``numpy.dtype`` for plain numeric type codes (``'f4'``, ``'u4'``, ``'b1'``) only."""
    if not isinstance(spec, str) or not _DTYPE_SPEC.match(spec):
        raise UnsafeFileError(f"refused pickled dtype {short_repr(spec)}: only plain numeric dtypes are allowed")
    try:
        return _check_dtype(np.dtype(spec))
    except TypeError as exc:
        raise BundleError(f"refused pickled dtype {short_repr(spec)}") from exc


def _numpy_globals() -> dict[str, Any]:
    """The numpy callables that rebuild arrays/scalars, each replaced by a version that checks sizes first."""
    table: dict[str, Any] = {"numpy.ndarray": _ArrayClass, "numpy.dtype": _dtype}
    for core in ("numpy.core", "numpy._core"):
        table[f"{core}.multiarray._reconstruct"] = _reconstruct
        table[f"{core}.multiarray.scalar"] = _scalar
        table[f"{core}.numeric._frombuffer"] = _frombuffer
    return table


_STAND_IN_NAMES = (
    "stable_baselines3.common.vec_env.vec_normalize.VecNormalize",
    "stable_baselines3.common.running_mean_std.RunningMeanStd",
    *(
        f"{pkg}.spaces.{mod}.{cls}"
        for pkg in ("gym", "gymnasium")
        for mod, cls in (
            ("box", "Box"),
            ("discrete", "Discrete"),
            ("multi_discrete", "MultiDiscrete"),
            ("multi_binary", "MultiBinary"),
            ("dict", "Dict"),
            ("tuple", "Tuple"),
        )
    ),
)
# Spaces pickle their random generator: old gym a RandomState (the Zoo fixture), gymnasium a
# Generator with its bit generator and SeedSequence once seeded. None of it is needed; all inert.
_RANDOM_CTORS = (
    "numpy.random._pickle.__randomstate_ctor",
    "numpy.random._pickle.__generator_ctor",
    "numpy.random._pickle.__bit_generator_ctor",
    "numpy.random.mtrand.__RandomState_ctor",
    "numpy.random.bit_generator.__pyx_unpickle_SeedSequence",
)
_RANDOM_CLASSES = (
    "numpy.random.mtrand.RandomState",
    "numpy.random._generator.Generator",
    "numpy.random._pcg64.PCG64",
    "numpy.random._pcg64.PCG64DXSM",
    "numpy.random._mt19937.MT19937",
    "numpy.random._philox.Philox",
    "numpy.random._sfc64.SFC64",
    "numpy.random.bit_generator.SeedSequence",
)


def _latin1_bytes(text: str, encoding: str = "latin1") -> bytes:
    """What protocol-2 pickles call as ``_codecs.encode`` to rebuild ``bytes`` (latin-1 only)."""
    if not isinstance(text, str) or encoding.lower().replace("-", "") != "latin1":
        raise pickle.UnpicklingError(f"_codecs.encode only rebuilds latin-1 bytes, got encoding {short_repr(encoding)}")
    return text.encode("latin1")


# Elements a pickled set may hold: plain scalars (a Dict VecNormalize keeps its observation keys in a set).
_SET_ITEM_TYPES = (str, int, float, bool, bytes, type(None))


def _inert_set(kind: str) -> Callable[..., frozenset[Any]]:
    """``builtins.set``/``frozenset`` as a protocol-2 pickle calls them (``REDUCE`` with one list): the
    result is a frozenset of plain scalars, inert data. Any other argument is refused."""

    def build(items: Any = (), *more: Any, **kwargs: Any) -> frozenset[Any]:
        if more or kwargs or not isinstance(items, (list, tuple, set, frozenset)) or isinstance(items, _Inert):
            raise UnsafeFileError(
                f"refused builtins.{kind} called with {short_repr(type(items).__name__)}"
                f"{' and more arguments' if more or kwargs else ''}: only a list of plain values is allowed"
            )
        if len(items) > limits.MAX_NODES:
            raise ResourceLimitError(f"refused a pickled {kind} of {len(items):,} items (MAX_NODES)")
        bad = next((item for item in items if not isinstance(item, _SET_ITEM_TYPES)), None)
        if bad is not None:
            raise UnsafeFileError(
                f"refused a pickled {kind} holding {short_repr(type(bad).__name__)}: only strings, numbers, "
                "booleans and None are allowed in sets"
            )
        return frozenset(items)

    return build


#: Every global a VecNormalize pickle may name, mapped to what it resolves to here.
PICKLE_ALLOWLIST: dict[str, Any] = {
    **_numpy_globals(),
    "collections.OrderedDict": OrderedDict,
    "builtins.set": _inert_set("set"),
    "builtins.frozenset": _inert_set("frozenset"),
    "_codecs.encode": _latin1_bytes,
    **{name: _inert(name) for name in (*_STAND_IN_NAMES, *_RANDOM_CLASSES)},
    **{name: _inert_factory(name) for name in _RANDOM_CTORS},
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the names in :data:`PICKLE_ALLOWLIST`; everything else is refused."""

    def __init__(self, file: io.BytesIO, source: Path) -> None:
        super().__init__(file)
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        if module == "__builtin__":  # protocol < 3 names Python 2's module (pickle's fix_imports maps it)
            module = "builtins"
        qualified = f"{module}.{name}"
        if qualified in PICKLE_ALLOWLIST:
            return PICKLE_ALLOWLIST[qualified]
        raise UnsafeFileError(
            f"{self._source}: refused to load pickle global {short_repr(qualified)}: only numpy arrays, sets "
            "of plain values and VecNormalize/RunningMeanStd/space statistics are allowed (the file may be "
            "malicious, or from a version this loader does not know)"
        )

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafeFileError(f"{self._source}: refused a persistent id {str(pid)[:60]!r} in the pickle")


def _check_pickled(root: Any, where: str) -> None:
    """:func:`rltransfer.limits.check_structure` over an unpickled tree, looking inside the inert
    stand-ins too and counting array elements: shared sub-lists and arrays count once per reference, as
    the numpy conversions that follow would expand them."""
    stack: list[tuple[Any, int]] = [(root, 0)]
    nodes = 0
    while stack:
        item, depth = stack.pop()
        nodes += 1 + (int(item.size) if isinstance(item, np.ndarray) else 0)
        if nodes > limits.MAX_NODES:
            raise ResourceLimitError(
                f"{where}: more than {limits.MAX_NODES:,} values (shared references counted as expanded, "
                "MAX_NODES); refused as a possible expansion bomb"
            )
        if isinstance(item, _Inert):
            children: list[Any] = [*item.args, *item.kwargs.values(), *item.state.keys(), *item.state.values()]
        elif isinstance(item, Mapping):
            children = [*item.keys(), *item.values()]
        elif isinstance(item, (list, tuple, set, frozenset)):
            children = list(item)
        else:
            continue
        if len(children) > limits.MAX_NODES - nodes:
            raise ResourceLimitError(f"{where}: more than {limits.MAX_NODES:,} values (MAX_NODES); refused")
        if children and depth + 1 > limits.MAX_NESTING:
            raise ResourceLimitError(f"{where}: nested deeper than {limits.MAX_NESTING} levels (MAX_NESTING)")
        stack.extend((child, depth + 1) for child in children)


def _float(value: Any, where: str) -> float:
    try:
        result = float(np.mean(np.asarray(value, dtype=np.float64)))
    except (TypeError, ValueError, OverflowError) as exc:
        raise BundleError(f"{where}: expected a number, got {short_repr(value)}") from exc
    if not math.isfinite(result):
        raise BundleError(f"{where}: expected a finite number, got {short_repr(value)}")
    return result


def _array(value: Any, where: str) -> np.ndarray:
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError) as exc:
        raise BundleError(f"{where}: expected an array of numbers, got {short_repr(value)}") from exc


def _rms(value: Any, where: str) -> dict[str, Any]:
    if isinstance(value, dict):
        raise BundleError(
            f"{where}: per-key statistics of a Dict observation space (keys {short_repr(sorted(map(str, value)))}); "
            "rltransfer evaluates and transfers flat (Box) observations only: read them with "
            "rltransfer.zoo.load_vecnormalize_dict"
        )
    if not isinstance(value, _Inert) or not value.pickled_name.endswith("RunningMeanStd"):
        raise BundleError(f"{where}: expected RunningMeanStd statistics, found {short_repr(value)}")
    missing = {"mean", "var", "count"} - set(value.state)
    if missing:
        raise BundleError(f"{where}: RunningMeanStd without {sorted(missing)}")
    return value.state


def _vecnormalize_state(path: str | Path) -> tuple[Path, dict[str, Any]]:
    """The pickled ``VecNormalize``'s state, unpickled through :class:`_RestrictedUnpickler` and checked."""
    path = Path(path)
    if not path.exists():
        raise BundleError(f"{path}: file not found; expected a pickled VecNormalize (vecnormalize.pkl)")
    try:
        raw = limits.read_bytes(path, limits.MAX_PICKLE_BYTES, "VecNormalize pickle")
    except OSError as exc:
        raise BundleError(f"{path}: cannot read the VecNormalize pickle ({short_repr(str(exc))})") from exc
    try:
        limits.scan_pickle(io.BytesIO(raw), str(path))  # CPython sizes its memo by the indices given
        root = _RestrictedUnpickler(io.BytesIO(raw), path).load()
    except RLTransferError as exc:
        message = str(exc) if str(exc).startswith(str(path)) else f"{path}: {exc}"
        raise type(exc)(message) from None
    except Exception as exc:  # any failure of a restricted load means "unreadable file"
        raise BundleError(
            f"{path}: not a readable VecNormalize pickle ({type(exc).__name__}: {short_repr(str(exc))})"
        ) from exc
    _check_pickled(root, f"{path}: VecNormalize pickle")
    if not isinstance(root, _Inert) or not root.pickled_name.endswith(".VecNormalize"):
        raise BundleError(f"{path}: expected a pickled VecNormalize, found {short_repr(root)}")
    return path, root.state


def _stats_from_state(state: Mapping[str, Any], obs: Mapping[str, Any], where: str, obs_where: str,
                      extra: dict[str, Any]) -> NormalizationStats:
    """One :class:`NormalizationStats` from a RunningMeanStd's state and the VecNormalize's settings."""
    stats: dict[str, Any] = {
        "obs_mean": _array(obs["mean"], f"{obs_where}.mean"),
        "obs_var": _array(obs["var"], f"{obs_where}.var"),
        "count": _float(obs["count"], f"{obs_where}.count"),
    }
    if "ret_rms" in state and state["ret_rms"] is not None:
        ret = _rms(state["ret_rms"], f"{where}.ret_rms")
        stats.update(
            ret_mean=_float(ret["mean"], f"{where}.ret_rms.mean"),
            ret_var=_float(ret["var"], f"{where}.ret_rms.var"),
            ret_count=_float(ret["count"], f"{where}.ret_rms.count"),
        )
    for key in ("clip_obs", "clip_reward", "epsilon", "gamma"):
        if key in state:
            stats[key] = _float(state[key], f"{where}.{key}")
    for key in ("norm_obs", "norm_reward"):
        if key in state:
            stats[key] = bool(state[key])
    try:
        return NormalizationStats.from_dict(stats, source=where, extra=extra)
    except BundleError:
        raise
    except (TypeError, ValueError) as exc:
        raise BundleError(f"{where}: {exc}") from exc


def _extra(path: Path, state: Mapping[str, Any]) -> dict[str, Any]:
    extra: dict[str, Any] = {"source": str(path)}
    if isinstance(state.get("num_envs"), int):
        extra["num_envs"] = state["num_envs"]
    return extra


def load_vecnormalize_pkl(path: str | Path) -> NormalizationStats:
    """Read the statistics from a pickled SB3 ``VecNormalize`` without running code from it.

    Only the globals in :data:`PICKLE_ALLOWLIST` resolve: numpy's array/dtype/scalar rebuilders (real),
    ``set``/``frozenset`` of plain values (as frozensets), and inert stand-ins for ``VecNormalize``,
    ``RunningMeanStd``, gym/gymnasium spaces and numpy random states (they record their pickled state and
    nothing else). SB3 and gym are never imported.

    Args:
        path: the ``vecnormalize.pkl`` file.

    Returns:
        The observation (and return) statistics.

    Raises:
        UnsafeFileError: the pickle names any other global (e.g. ``os.system``).
        BundleError: the file is missing, truncated, does not hold VecNormalize statistics, or holds the
            per-key statistics of a Dict observation space (see :func:`load_vecnormalize_dict`).
    """
    path, state = _vecnormalize_state(path)
    where = f"{path}: VecNormalize"
    obs = _rms(state.get("obs_rms"), f"{where}.obs_rms")
    return _stats_from_state(state, obs, where, f"{where}.obs_rms", _extra(path, state))


def load_vecnormalize_dict(path: str | Path) -> dict[str, NormalizationStats]:
    """Read the per-key statistics of a Dict-observation ``VecNormalize`` (e.g. a Zoo HER agent's), safely.

    The same restricted unpickler as :func:`load_vecnormalize_pkl`. SB3 normalizes only some keys of a Dict
    observation (``norm_obs_keys``; ``obs_keys``, a set, in SB3 1.x): the result holds those keys only,
    each with its statistics (``extra["key"]`` names it).

    Raises:
        UnsafeFileError: the pickle names a global outside :data:`PICKLE_ALLOWLIST`.
        BundleError: unreadable, or not the statistics of a Dict observation space.
    """
    path, state = _vecnormalize_state(path)
    where = f"{path}: VecNormalize"
    by_key = state.get("obs_rms")
    if not isinstance(by_key, dict):
        raise BundleError(f"{where}.obs_rms: expected per-key statistics of a Dict observation space, found "
                          f"{short_repr(by_key)}; read flat statistics with load_vecnormalize_pkl")
    keys = state.get("norm_obs_keys", state.get("obs_keys", list(by_key)))
    if not isinstance(keys, (list, tuple, frozenset)) or not all(isinstance(k, str) for k in keys):
        raise BundleError(f"{where}: norm_obs_keys/obs_keys must be observation key names, got {short_repr(keys)}")
    missing = sorted(set(keys) - set(by_key))
    if missing:
        raise BundleError(f"{where}: keys {missing} are normalized but have no statistics in obs_rms")
    out: dict[str, NormalizationStats] = {}
    for key in sorted(keys):
        obs = _rms(by_key[key], f"{where}.obs_rms[{key!r}]")
        out[key] = _stats_from_state(state, obs, where, f"{where}.obs_rms[{key!r}]",
                                     {**_extra(path, state), "key": key})
    return out


# --------------------------------------------------------------------------------------------------
# Zoo YAML


_ORDERED_DICT_TAG = "tag:yaml.org,2002:python/object/apply:collections.OrderedDict"


class _ZooLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` plus the Zoo's ``OrderedDict`` tag (built as a plain dict); no other Python tag.

    Merge keys (``<<: *anchor``) copy entries while the document is built, so they are counted against
    :data:`~rltransfer.limits.MAX_NODES` as they are merged (nested merges would otherwise double at
    every level before anything could check the result).
    """

    _merged = 0

    def flatten_mapping(self, node: yaml.MappingNode) -> None:
        super().flatten_mapping(node)
        self._merged += len(node.value)
        if self._merged > limits.MAX_NODES:
            raise ResourceLimitError(
                f"YAML merge keys ('<<') expand to more than {limits.MAX_NODES:,} entries (MAX_NODES); "
                "refused as a possible expansion bomb"
            )


def _construct_ordered_dict(loader: _ZooLoader, node: yaml.Node) -> dict[Any, Any]:
    if isinstance(node, yaml.SequenceNode):
        args = loader.construct_sequence(node, deep=True)
    elif isinstance(node, yaml.MappingNode):
        spec = loader.construct_mapping(node, deep=True)
        if set(spec) - {"args"}:
            raise ConfigError(f"OrderedDict tag with unsupported keys {sorted(set(spec) - {'args'})}")
        args = spec.get("args", [])
    else:
        raise ConfigError("OrderedDict tag must hold a list of [key, value] pairs")
    if len(args) > 1 or (args and not isinstance(args[0], list)):
        raise ConfigError("OrderedDict tag must hold a single list of [key, value] pairs")
    pairs = args[0] if args else []
    result: dict[Any, Any] = {}
    for pair in pairs:
        if not isinstance(pair, list) or len(pair) != 2:
            raise ConfigError(f"OrderedDict entry {short_repr(pair)} is not a [key, value] pair")
        result[pair[0]] = pair[1]
    return result


def _refuse_python_tag(loader: _ZooLoader, suffix: str, node: yaml.Node) -> Any:
    raise UnsafeFileError(
        f"refused YAML tag {short_repr('!!python/' + suffix)} at line {node.start_mark.line + 1}: "
        "only !!python/object/apply:collections.OrderedDict is allowed"
    )


_ZooLoader.add_constructor(_ORDERED_DICT_TAG, _construct_ordered_dict)
_ZooLoader.add_multi_constructor("tag:yaml.org,2002:python/", _refuse_python_tag)

_ACTIVATION_PREFIXES = ("nn", "th.nn", "torch.nn")
_SCHEDULE_KEYS = ("learning_rate", "clip_range", "clip_range_vf", "delta_std")


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


class _LiteralWalker:
    """Evaluates the tiny, safe subset of Python the Zoo writes in config strings."""

    def __init__(self, source: str, where: str) -> None:
        self.source = source
        self.where = where

    def fail(self, node: ast.AST, why: str) -> ConfigError:
        snippet = ast.get_source_segment(self.source, node) or ast.dump(node)[:80]
        return ConfigError(
            f"{self.where}: {why} in {short_repr(snippet)}; only numbers, strings, True/False/None, lists, dicts, "
            f"dict(key=value, ...) and activation names like nn.ReLU ({', '.join(ACTIVATION_NAMES)}) are allowed"
        )

    def value(self, node: ast.AST) -> Any:
        if isinstance(node, ast.Constant):
            if node.value is None or isinstance(node.value, (bool, int, float, str)):
                return node.value
            raise self.fail(node, f"constant of type {type(node.value).__name__} is not allowed")
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            operand = self.value(node.operand)
            if isinstance(operand, bool) or not isinstance(operand, (int, float)):
                raise self.fail(node, "a sign applies to numbers only")
            return -operand if isinstance(node.op, ast.USub) else operand
        if isinstance(node, (ast.List, ast.Tuple)):
            return [self.value(elt) for elt in node.elts]
        if isinstance(node, ast.Dict):
            result = {}
            for key, val in zip(node.keys, node.values):
                if key is None:
                    raise self.fail(node, "'**' unpacking is not allowed")
                k = self.value(key)
                if not isinstance(k, (str, int, float, bool)) and k is not None:
                    raise self.fail(key, "dict keys must be literals")
                result[k] = self.value(val)
            return result
        if isinstance(node, ast.Call):
            if not (isinstance(node.func, ast.Name) and node.func.id == "dict"):
                raise self.fail(
                    node, f"call of {short_repr(ast.get_source_segment(self.source, node.func))} is not allowed"
                )
            if node.args:
                raise self.fail(node, "dict(...) takes keyword arguments only")
            result = {}
            for keyword in node.keywords:
                if keyword.arg is None:
                    raise self.fail(node, "'**' unpacking is not allowed")
                result[keyword.arg] = self.value(keyword.value)
            return result
        if isinstance(node, (ast.Attribute, ast.Name)):
            dotted = _dotted(node)
            if dotted:
                prefix, _, name = dotted.rpartition(".")
                if prefix in _ACTIVATION_PREFIXES and name in ACTIVATION_NAMES:
                    return name
            raise self.fail(node, f"name {short_repr(dotted or '?')} is not an allowlisted activation")
        raise self.fail(node, f"{type(node).__name__} expressions are not allowed")


def _parse_expression(text: str, where: str) -> Any:
    if len(text) > _MAX_EXPRESSION_CHARS:
        raise ConfigError(f"{where}: expression of {len(text)} characters is too long")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise ConfigError(
            f"{where}: not a valid expression {text[:80]!r} ({exc.__class__.__name__})"
        ) from exc
    try:
        return _LiteralWalker(text.strip(), where).value(tree.body)
    except RecursionError as exc:
        raise ConfigError(f"{where}: expression {text[:80]!r} is nested too deeply") from exc


def parse_policy_kwargs(value: Any, where: str = "policy_kwargs") -> dict[str, Any]:
    """Parse the Zoo's ``policy_kwargs`` (a ``"dict(...)"`` string or a mapping) without ``eval``.

    Activation names (``nn.ReLU``, ``th.nn.Tanh``, ``torch.nn.ELU``) become strings like ``"ReLU"``.

    Args:
        value: the raw value from the YAML.
        where: file and key quoted in errors.

    Raises:
        ConfigError: for anything but literals, lists, dicts, ``dict(...)`` and allowlisted names.
    """
    if isinstance(value, str):
        parsed = _parse_expression(value, where)
    elif isinstance(value, Mapping):
        parsed = dict(value)
    else:
        raise ConfigError(f"{where}: expected a 'dict(...)' string or a mapping, got {short_repr(value)}")
    if not isinstance(parsed, dict):
        raise ConfigError(f"{where}: expected a dict, got {short_repr(parsed)}")
    act = parsed.get("activation_fn")
    if isinstance(act, str) and act not in ACTIVATION_NAMES:
        parsed["activation_fn"] = _parse_expression(act, f"{where}['activation_fn']")
    arch = parsed.get("net_arch")
    if isinstance(arch, list) and any(isinstance(layer, Mapping) for layer in arch):
        # SB3 < 1.8's form [dict(pi=..., vf=...)]: today's SB3 takes the dict itself (and warns); layers
        # shared between actor and critic before the dict were removed in SB3 1.8 and cannot be built
        if len(arch) != 1:
            raise ConfigError(
                f"{where}: net_arch {short_repr(arch)} has layers shared by actor and critic before its dict; "
                "SB3 1.8 removed shared layers: give net_arch=dict(pi=[...], vf=[...])"
            )
        parsed["net_arch"] = dict(arch[0])
    return parsed


def _schedule(value: Any, where: str) -> Any:
    if not isinstance(value, str):
        return value
    match = re.fullmatch(r"lin_(.+)", value.strip())
    if not match:
        raise ConfigError(
            f"{where}: unknown schedule {short_repr(value)}; valid: a number or 'lin_<start>' (e.g. 'lin_0.4')"
        )
    try:
        start = float(match.group(1))
    except ValueError as exc:
        raise ConfigError(f"{where}: schedule {short_repr(value)} does not end in a number") from exc
    return {"schedule": "linear", "start": start, "end": 0.0}


def _wrappers(value: Any, where: str) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """The Zoo's env_wrapper (str, {name: kwargs} or a list of those) -> names and kwargs by name."""
    items = value if isinstance(value, list) else [value]
    names: list[str] = []
    kwargs: dict[str, dict[str, Any]] = {}
    for item in items:
        if isinstance(item, str):
            dotted, options = item, None
        elif isinstance(item, Mapping) and len(item) == 1:
            dotted, options = next(iter(item.items()))
            if not isinstance(dotted, str) or not (options is None or isinstance(options, Mapping)):
                raise ConfigError(f"{where}: expected {{wrapper: {{kwargs}}}}, got {short_repr(item)}")
        else:
            raise ConfigError(f"{where}: expected a wrapper name or {{name: kwargs}}, got {short_repr(item)}")
        name = dotted.rsplit(".", 1)[-1]
        names.append(name)
        if options:
            kwargs[name] = dict(options)
    return names, kwargs


def _read_zoo_yaml(path: Path, what: str) -> dict[Any, Any]:
    """A Zoo YAML file as plain data, read safely (the Zoo's OrderedDict tag allowed, any other tag refused)."""
    if not path.exists():
        raise ConfigError(f"{path}: file not found; expected {what}")
    try:
        text = limits.read_bytes(path, limits.MAX_YAML_BYTES, what).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not a UTF-8 text file (byte {exc.start}); expected {what}"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the Zoo config ({short_repr(str(exc))})") from exc
    from rltransfer.config import _check_events

    try:
        _check_events(text, str(path))  # nesting and value count, streamed before anything is built
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {short_repr(str(exc), 300)}") from None
    try:
        loader = _ZooLoader(text)
        try:
            raw = loader.get_single_data()
        finally:
            loader.dispose()
    except UnsafeFileError as exc:
        raise UnsafeFileError(f"{path}: {exc}") from None
    except ResourceLimitError as exc:
        raise ResourceLimitError(f"{path}: {exc}") from None
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except RecursionError:
        raise ResourceLimitError(
            f"{path}: YAML nested too deeply to read (MAX_NESTING is {limits.MAX_NESTING})"
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {short_repr(str(exc), 300)}") from None
    except ValueError as exc:  # e.g. an integer literal beyond Python's 4,300-digit conversion limit
        raise ConfigError(f"{path}: a value cannot be read: {short_repr(str(exc), 200)}") from None
    # before anything walks it: anchors and aliases share objects, a walk expands them
    limits.check_structure(raw, f"{path}: {what}")
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of hyperparameters, got {type(raw).__name__}")
    return raw


def _zoo_entries(raw: Mapping[Any, Any], at: str) -> dict[str, Any]:
    """One Zoo hyperparameter mapping with its strings parsed (see :func:`load_zoo_config`)."""
    config: dict[str, Any] = {}
    for key, value in raw.items():
        if not isinstance(key, str):
            raise ConfigError(f"{at}: hyperparameter names must be strings, got {short_repr(key)}")
        where = f"{at}: key {short_repr(key)}"
        if key == "policy_kwargs":
            config[key] = parse_policy_kwargs(value, where)
        elif key == "n_timesteps":
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or value < 0
                or float(value) != int(value)
            ):
                raise ConfigError(f"{where}: expected a non-negative whole number, got {short_repr(value)}")
            config[key] = int(value)
        elif key in _SCHEDULE_KEYS:
            config[key] = _schedule(value, where)
        elif key == "env_wrapper":
            config[key], wrapper_kwargs = _wrappers(value, where)
            if wrapper_kwargs:
                config["env_wrapper_kwargs"] = wrapper_kwargs
        elif key == "normalize":
            parsed = _parse_expression(value, where) if isinstance(value, str) else value
            if not isinstance(parsed, (bool, dict)):
                raise ConfigError(
                    f"{where}: expected true/false or a dict of VecNormalize options, got {short_repr(value)}"
                )
            config[key] = parsed
        else:
            config[key] = value
    return config


def load_zoo_config(path: str | Path) -> dict[str, Any]:
    """Read an RL Zoo ``config.yml`` (the hyperparameters saved beside a trained agent).

    Returns:
        The hyperparameters as plain data: ``policy_kwargs`` parsed into a dict, ``n_timesteps`` an
        int, schedules such as ``"lin_0.4"`` as ``{"schedule": "linear", "start": 0.4, "end": 0.0}``,
        ``env_wrapper`` a list of wrapper class names (with ``env_wrapper_kwargs`` by name when the
        Zoo gave any) and ``normalize`` a bool or a dict.

    Raises:
        UnsafeFileError: the YAML has a Python tag other than the Zoo's OrderedDict.
        ConfigError: the file is missing or malformed, or a value is an expression outside the safe
            subset (calls, attribute access, lambdas, subscripts...).
    """
    path = Path(path)
    return _zoo_entries(_read_zoo_yaml(path, "an RL Zoo config.yml"), str(path))


# --------------------------------------------------------------------------------------------------
# Companion files


def find_zoo_companions(zip_path: str | Path) -> dict[str, Path | None]:
    """Find the VecNormalize statistics and Zoo config published beside a trained agent's zip.

    Looks for, in order, ``<stem>.vecnormalize.pkl`` / ``<stem>.config.yml`` next to the zip (the
    layout of ``rl-trained-agents`` fixtures), then the Zoo's log layout ``<dir>/<env>/vecnormalize.pkl``
    and ``<dir>/<env>/config.yml`` (``<env>`` is the stem without its ``algo-`` prefix), then
    ``<dir>/vecnormalize.pkl`` / ``<dir>/vec_normalize.pkl`` and ``<dir>/config.yml``, and finally
    the file inside the only sub-folder that has one (e.g. for ``best_model.zip``).

    Args:
        zip_path: the agent's ``.zip``.

    Returns:
        ``{"vecnormalize": Path | None, "config": Path | None}``.
    """
    zip_path = Path(zip_path)
    folder, stem = zip_path.parent, zip_path.stem
    envs = [stem]
    algo_prefix = re.match(r"^[a-z0-9_]+-(.+)$", stem)
    if algo_prefix:
        envs.insert(0, algo_prefix.group(1))
    candidates = {
        "vecnormalize": [folder / f"{stem}.vecnormalize.pkl"]
        + [folder / env / "vecnormalize.pkl" for env in envs]
        + [folder / "vecnormalize.pkl", folder / "vec_normalize.pkl"],
        "config": [folder / f"{stem}.config.yml"]
        + [folder / env / "config.yml" for env in envs]
        + [folder / "config.yml"],
    }
    found: dict[str, Path | None] = {}
    for kind, paths in candidates.items():
        found[kind] = next((p for p in paths if p.is_file()), None)
        if found[kind] is None and folder.is_dir():
            # e.g. best_model.zip beside a single <env>/ folder of the Zoo's log layout
            nested = sorted(folder.glob(f"*/{paths[1].name}"))
            found[kind] = nested[0] if len(nested) == 1 else None
    return found


# --------------------------------------------------------------------------------------------------
# Zoo hyperparameter files as agents

#: A Gymnasium id as the Zoo's hyperparameter files key their sections (``CartPole-v1``,
#: ``HopperBulletEnv-v0``, ``ALE/Pong-v5``); ``atari`` is the Zoo's one section that is not an id.
_GYM_ID = re.compile(r"^(?:[A-Za-z0-9_.-]+/)?[A-Za-z0-9_.:-]+-v\d+$")
#: The Zoo's algorithm names (file stems and log folders) that differ from rltransfer's.
ZOO_ALGO_NAMES = {"ppo_lstm": "recurrentppo"}
#: Zoo entries that have no counterpart here, with why (an error names them: nothing is dropped).
_ZOO_UNSUPPORTED = {
    "frame_stack": "frame stacking (VecFrameStack) is for image observations; the families here give vectors",
    "callback": "Zoo callbacks are Python classes named in the file; rltransfer builds its own callbacks",
    "replay_buffer_class": "replay buffer classes (HER) need goal-conditioned Dict observations; no family has them",
    "replay_buffer_kwargs": "replay buffer options go with replay_buffer_class (HER), which is not supported",
    "vec_env_wrapper": "VecEnv wrappers are Python classes named in the file; use normalize for VecNormalize",
    "env_wrapper_kwargs": "wrappers with options are not supported; give wrapper names only (TimeFeatureWrapper)",
    "env_kwargs": "env options are the family's parameters here: use --set NAME=VALUE",
    "monitor_kwargs": "rltransfer adds the Monitor wrapper itself",
}
#: The Zoo's ``noise_type`` values and what they become (Gaussian action noise only).
_ZOO_NOISE = ("normal",)


def zoo_algo_of(path: str | Path) -> str | None:
    """The algorithm a Zoo file is for, as the Zoo names it: the file's stem (``hyperparams/ppo.yml``,
    ``ppo-HopperBulletEnv-v0.config.yml``) or, for a saved ``config.yml``, the log folder it lies in
    (``logs/<algo>/<env>_<n>/<env>/config.yml``, up to three folders up); ``None`` when neither names one of :data:`ALGOS`."""
    from rltransfer.sb3layout import ALGOS

    path = Path(path)
    candidates = [path.stem.split("-", 1)[0].split(".", 1)[0], *list(reversed(path.parent.parts))[:3]]
    for name in candidates:
        name = ZOO_ALGO_NAMES.get(name.lower(), name.lower())
        if name in ALGOS:
            return name
    return None


def is_zoo_hyperparams(path: str | Path) -> bool:
    """Whether a YAML file is an RL Zoo hyperparameter file rather than an rltransfer agent file:
    no ``algo`` key, and sections keyed by Gymnasium ids (``CartPole-v1:``) or ``atari``, or the
    ``!!python/object/apply:collections.OrderedDict`` form of a ``config.yml`` saved beside an agent."""
    path = Path(path)
    try:
        head = limits.read_bytes(path, limits.MAX_YAML_BYTES, "YAML file").decode("utf-8", "replace")
    except (OSError, RLTransferError):
        return False
    if head.lstrip().startswith(("!!python/object/apply:collections.OrderedDict", _ORDERED_DICT_TAG)):
        return True
    try:
        raw = _read_zoo_yaml(path, "an RL Zoo hyperparameter file")
    except RLTransferError:
        return False
    keys = [k for k in raw if isinstance(k, str)]
    if "algo" in keys or "families" in keys:
        return False
    return any(k == "atari" or _GYM_ID.match(k) for k in keys)


def load_zoo_agent(path: str | Path, family: str, algo: str | None = None) -> Any:
    """An RL Zoo hyperparameter file as an :class:`~rltransfer.config.AgentSpec` for one family.

    Reads either form the Zoo writes: ``hyperparams/<algo>.yml`` (one section per Gymnasium id, YAML
    anchors and merge keys allowed; the section of the family's ``gym_id`` is used) or the ``config.yml``
    saved beside a trained agent (one section). Values are parsed as the Zoo parses them, without
    ``eval``: ``!!float 1e5``, ``lin_0.001`` (a linear schedule to 0), ``policy_kwargs: "dict(...)"``,
    ``normalize: true`` or ``"{'norm_obs': True, 'norm_reward': False}"`` (VecNormalize's defaults for
    what is not named: observations and rewards normalized), ``noise_type: normal`` with ``noise_std``,
    ``env_wrapper`` by class name. Everything not given takes SB3's default, as in the Zoo.

    Args:
        path: the Zoo file.
        family: the env family name (its ``gym_id`` picks the section).
        algo: the algorithm, when neither the file name nor its folder names it (see :func:`zoo_algo_of`).

    Raises:
        ConfigError: no section for the family's id, an unknown or unsupported entry (named, with why),
            an algorithm that cannot be told, or a value out of range.
        UnsafeFileError: a Python tag other than the Zoo's OrderedDict.
    """
    from rltransfer.config import AgentSpec, load_family
    from rltransfer.sb3layout import ALGOS, POLICIES

    path = Path(path)
    fam = load_family(family)
    raw = _read_zoo_yaml(path, "an RL Zoo hyperparameter file")
    sections = [k for k in raw if isinstance(k, str) and (k == "atari" or _GYM_ID.match(k))]
    if sections:
        if fam.gym_id not in raw:
            near = did_you_mean(fam.gym_id, sections)
            raise ConfigError(
                f"{path}: no section for {fam.gym_id} (the Gymnasium id that family {fam.name!r} wraps).{near} "
                f"The file has {len(sections)}: {', '.join(sections[:30])}{', ...' if len(sections) > 30 else ''}"
            )
        section = raw[fam.gym_id]
        where = f"{path} [{fam.gym_id}]"
        if not isinstance(section, Mapping):
            raise ConfigError(f"{where}: expected a mapping of hyperparameters, got {short_repr(section)}")
    else:
        section, where = raw, str(path)
    chosen = algo.lower() if algo else zoo_algo_of(path)
    if chosen is None:
        raise ConfigError(
            f"{path}: cannot tell which algorithm these Zoo hyperparameters are for (the Zoo names its files "
            f"after the algorithm: ppo.yml, sac.yml...); name it: --agent zoo:ALGO:{path} (one of: {', '.join(ALGOS)})"
        )
    chosen = ZOO_ALGO_NAMES.get(chosen, chosen)
    if chosen not in ALGOS:
        raise unknown_name("algorithm", chosen, ALGOS, where=str(path))
    entries = _zoo_entries(section, where)
    for key, why in _ZOO_UNSUPPORTED.items():
        if key in entries:
            raise ConfigError(f"{where}: key {key!r} is not supported: {why}")
    policy = entries.get("policy")
    if policy is not None and policy not in POLICIES:
        why = {"CnnPolicy": "image (CNN) policies are not supported: the families here give vector observations",
               "MultiInputPolicy": "Dict observations are not supported: the families here give one vector"}
        raise ConfigError(f"{where}: key 'policy': {short_repr(policy)} is not supported; "
                          f"{why.get(str(policy), 'valid: ' + ', '.join(POLICIES))}")
    noise_type = entries.pop("noise_type", None)
    noise_std = entries.pop("noise_std", None)
    if noise_type is not None:
        if noise_type not in _ZOO_NOISE:
            raise ConfigError(f"{where}: key 'noise_type': {short_repr(noise_type)} is not supported; valid: "
                              f"{', '.join(_ZOO_NOISE)} (Gaussian action noise, with noise_std)")
        if noise_std is None:
            raise ConfigError(f"{where}: noise_type {noise_type!r} needs noise_std")
        entries["action_noise_std"] = noise_std
    elif noise_std is not None:
        raise ConfigError(f"{where}: noise_std without noise_type; add noise_type: normal")
    base = AgentSpec(name=f"zoo-{chosen}", algo=chosen, family=fam.name)
    return apply_agent_overrides(base, entries, where=where)


# --------------------------------------------------------------------------------------------------
# The Zoo's command-line overrides


_BARE_WORD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: AgentSpec entries a ``--hyperparams`` item may set besides the algorithm's hyperparameters.
_AGENT_KEYS = ("n_envs", "n_timesteps", "normalize", "policy", "policy_kwargs", "env_wrapper", "vec_env")


def parse_hyperparams(items: list[str] | None, where: str = "--hyperparams") -> dict[str, Any]:
    """The Zoo's ``--hyperparams key:value ...`` as plain data, parsed as the Zoo's configs are (no ``eval``).

    ``learning_rate:0.0003``, ``policy_kwargs:"dict(net_arch=[64, 64])"``, ``learning_rate:lin_0.001``,
    ``normalize:"{'norm_obs': True}"``, ``ent_coef:auto`` (a bare word is a string).

    Raises:
        ConfigError: an item without ``key:value``, a key given twice, or a value outside the safe subset.
    """
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, text = str(item).partition(":")
        key = key.strip()
        if not sep or not _BARE_WORD.match(key):
            raise ConfigError(f"{where}: expected key:value (e.g. learning_rate:0.0003), got {short_repr(item)}")
        if key in out:
            raise ConfigError(f"{where}: {key!r} given twice")
        text = text.strip()
        at = f"{where} {key}"
        if key == "policy_kwargs":
            out[key] = parse_policy_kwargs(text, at)
        elif key in _SCHEDULE_KEYS and text.startswith("lin_"):
            out[key] = _schedule(text, at)
        elif _BARE_WORD.match(text) and text not in ("True", "False", "None"):
            out[key] = text
        else:
            out[key] = _parse_expression(text, at)
    return out


def apply_agent_overrides(spec: Any, hyperparams: Mapping[str, Any] | None = None, n_envs: int | None = None,
                          vec_env: str | None = None, where: str = "--hyperparams") -> Any:
    """An :class:`~rltransfer.config.AgentSpec` with Zoo-style overrides, validated like an agent file.

    Keys of :data:`_AGENT_KEYS` set the agent (``normalize`` takes the Zoo's ``norm_obs``/``norm_reward``/
    ``clip_obs``, and what it does not name takes VecNormalize's default as in the Zoo: ``normalize: true``
    normalizes observations and rewards; ``env_wrapper`` wrapper names); every other key is a hyperparameter
    of the algorithm.

    Raises:
        ConfigError: an unknown key, a hyperparameter the algorithm does not take, or a value out of range.
    """
    from rltransfer.config import AgentSpec, check_algo_keys, validate
    from rltransfer.wrappers import WRAPPERS

    data = spec.model_dump(exclude_none=True)
    for key, value in dict(hyperparams or {}).items():
        if key == "policy_kwargs":
            data["policy_kwargs"] = {**data.get("policy_kwargs", {}), **value}
        elif key == "normalize":
            if isinstance(value, Mapping):
                names = {"norm_obs": "obs", "norm_reward": "reward", "clip_obs": "clip_obs"}
                unknown = sorted(set(value) - set(names))
                if unknown:
                    raise ConfigError(f"{where} normalize: unknown keys {unknown}; valid: {sorted(names)}")
                data["normalize"] = {"obs": True, "reward": True, **{names[k]: v for k, v in value.items()}}
            elif value is True:
                data["normalize"] = {"obs": True, "reward": True}
            elif value is False:
                data.pop("normalize", None)
            else:
                raise ConfigError(f"{where} normalize: expected True/False or a dict, got {short_repr(value)}")
        elif key == "env_wrapper":
            names_list, _ = _wrappers(value, f"{where} env_wrapper")
            for name in names_list:
                if name not in WRAPPERS:
                    raise unknown_name("wrapper", name, WRAPPERS, where)
            data["wrappers"] = names_list
        elif key in _AGENT_KEYS:
            data[key] = value
        else:
            data.setdefault("hyperparams", {})[key] = value
    if n_envs is not None:
        data["n_envs"] = n_envs
    if vec_env is not None:
        data["vec_env"] = vec_env
    out = validate(AgentSpec, data, where)
    check_algo_keys(out, where)
    return out

