"""Gymnasium spaces as data: our JSON form, and spaces rebuilt from the readable fields SB3 writes.

:func:`space_to_json` and :func:`space_from_json` are the small, exact JSON form of a space that bundles
store. :func:`space_from_sb3` rebuilds a space from the human-readable fields an SB3 zip keeps next to
its pickled form (``":type:"``, ``shape``, ``str()`` of the bounds), never unpickling anything. Both
readers refuse spaces above the size bounds of :mod:`rltransfer.limits` (``MAX_SPACE_ELEMENTS``,
``MAX_DISCRETE_N``) before allocating them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces

from rltransfer import limits
from rltransfer.errors import BundleError, ConfigError, ResourceLimitError
from rltransfer.limits import short_repr

__all__ = ["CLASS_REPR", "flat_size", "space_from_json", "space_from_sb3", "space_to_json"]

#: ``str()`` of a class as SB3 writes it in ``":type:"`` fields: ``<class 'gymnasium.spaces.box.Box'>``.
CLASS_REPR = re.compile(r"<class '([A-Za-z_][\w.]*)'>")
# dtypes a space may declare.
_ALLOWED_DTYPES = frozenset(
    {
        "float16",
        "float32",
        "float64",
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "bool",
    }
)



# --------------------------------------------------------------------------------------------------
# Spaces: our JSON form


def _encode_number(value: Any) -> Any:
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
    return value


def _encode_nested(value: Any) -> Any:
    if isinstance(value, list):
        return [_encode_nested(v) for v in value]
    return _encode_number(value)


def _encode_array(array: np.ndarray) -> Any:
    """A scalar when all entries are equal (compact for image spaces), else nested lists."""
    flat = array.reshape(-1)
    if flat.size and bool(np.all(flat == flat[0])):
        return _encode_number(flat[0].item())
    return _encode_nested(array.tolist())


def _decode_nested(value: Any, where: str) -> Any:
    if isinstance(value, list):
        return [_decode_nested(v, where) for v in value]
    if isinstance(value, str):
        if value in ("inf", "-inf", "nan"):
            return float(value)
        raise BundleError(f"{where}: expected a number or 'inf'/'-inf', got {short_repr(value)}")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BundleError(f"{where}: expected a number, got {short_repr(value)}")
    return value


def _decode_array(value: Any, shape: tuple[int, ...], dtype: np.dtype, where: str) -> np.ndarray:
    decoded = _decode_nested(value, where)
    try:
        array = np.asarray(decoded, dtype=dtype)
        return np.array(np.broadcast_to(array, shape), dtype=dtype)
    except (ValueError, OverflowError, TypeError) as exc:
        raise BundleError(f"{where}: cannot make an array of shape {shape} and dtype {dtype}: {exc}") from exc


def _dtype(value: Any, where: str) -> np.dtype:
    name = str(value)
    if name not in _ALLOWED_DTYPES:
        raise BundleError(f"{where}: unsupported dtype {short_repr(value)}; valid: {sorted(_ALLOWED_DTYPES)}")
    return np.dtype(name)


def _shape(value: Any, where: str) -> tuple[int, ...]:
    if not isinstance(value, (list, tuple)) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value
    ):
        raise BundleError(f"{where}: expected a shape (list of non-negative ints), got {short_repr(value)}")
    shape = tuple(int(v) for v in value)
    _check_elements(math.prod(shape), where)
    return shape


def _check_elements(n: int, where: str) -> None:
    if n > limits.MAX_SPACE_ELEMENTS:
        raise ResourceLimitError(
            f"{where}: a space of {short_repr(n)} elements is more than the "
            f"{limits.MAX_SPACE_ELEMENTS:,} allowed (MAX_SPACE_ELEMENTS)"
        )


def _check_discrete(n: Any, where: str) -> int:
    """A Discrete/MultiDiscrete size: an int in ``[1, MAX_DISCRETE_N]``."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise BundleError(f"{where}: expected a whole number of actions, got {short_repr(n)}")
    if n > limits.MAX_DISCRETE_N:
        raise ResourceLimitError(
            f"{where}: {short_repr(int(n))} discrete values is more than the {limits.MAX_DISCRETE_N:,} "
            "allowed (MAX_DISCRETE_N)"
        )
    return int(n)


def _check_nvec(nvec: np.ndarray, where: str) -> np.ndarray:
    _check_elements(int(nvec.size), where)
    if nvec.size and int(nvec.max()) > limits.MAX_DISCRETE_N:
        _check_discrete(int(nvec.max()), where)
    return nvec


def _check_start(start: Any, where: str) -> int:
    if isinstance(start, bool) or not isinstance(start, int) or abs(start) > 2**62:
        raise BundleError(f"{where}: expected a start that fits int64, got {short_repr(start)}")
    return start


def _checked_int_array(value: Any, where: str) -> np.ndarray:
    """A JSON list of ints as an int64 array, refused before conversion if it is too large."""
    if isinstance(value, list):
        limits.check_structure(value, where, max_nodes=limits.MAX_SPACE_ELEMENTS + 1)
    return np.asarray(value, dtype=np.int64)


def space_to_json(space: spaces.Space) -> dict[str, Any]:
    """Describe a gymnasium space as plain JSON (our own format, read back by :func:`space_from_json`).

    Box bounds are a single number when all entries are equal, else nested lists; infinities are the
    strings ``"inf"``/``"-inf"`` so the result is strict JSON. Supported: Box, Discrete, MultiDiscrete,
    MultiBinary, and Dict/Tuple of those.

    Raises:
        TypeError: for other space types.
    """
    if isinstance(space, spaces.Box):
        return {
            "type": "Box",
            "shape": list(space.shape),
            "dtype": str(space.dtype),
            "low": _encode_array(space.low),
            "high": _encode_array(space.high),
        }
    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, spaces.MultiDiscrete):
        return {
            "type": "MultiDiscrete",
            "nvec": space.nvec.tolist(),
            "start": space.start.tolist(),
            "dtype": str(space.dtype),
        }
    if isinstance(space, spaces.MultiBinary):
        n = space.n
        return {
            "type": "MultiBinary",
            "n": [int(v) for v in n] if isinstance(n, (list, tuple, np.ndarray)) else int(n),
        }
    if isinstance(space, spaces.Dict):
        return {"type": "Dict", "spaces": {key: space_to_json(sub) for key, sub in space.spaces.items()}}
    if isinstance(space, spaces.Tuple):
        return {"type": "Tuple", "spaces": [space_to_json(sub) for sub in space.spaces]}
    raise TypeError(
        f"cannot describe {type(space).__name__} as JSON; supported: Box, Discrete, MultiDiscrete, "
        "MultiBinary, Dict, Tuple"
    )


def space_from_json(data: Mapping[str, Any], where: str = "space") -> spaces.Space:
    """Rebuild a gymnasium space from :func:`space_to_json` output (exact round trip).

    Args:
        data: the JSON description.
        where: file/key quoted in error messages.

    Raises:
        ResourceLimitError: (a :class:`BundleError`) a space, or all sub-spaces together, with more
            than :data:`~rltransfer.limits.MAX_SPACE_ELEMENTS` elements, a Discrete with more than
            :data:`~rltransfer.limits.MAX_DISCRETE_N` actions, or a description nested too deeply.
        BundleError: if the description is malformed.
    """
    if not isinstance(data, Mapping) or "type" not in data:
        raise BundleError(f"{where}: expected a dict with a 'type' key, got {short_repr(data)}")
    limits.check_structure(data, where)
    return _space_from_json(data, where, [limits.MAX_SPACE_ELEMENTS])


def _spend(budget: list[int], n: int, where: str) -> None:
    budget[0] -= n
    if budget[0] < 0:
        raise ResourceLimitError(
            f"{where}: the sub-spaces hold more than the {limits.MAX_SPACE_ELEMENTS:,} elements allowed "
            "in all (MAX_SPACE_ELEMENTS)"
        )


def _space_from_json(data: Mapping[str, Any], where: str, budget: list[int]) -> spaces.Space:
    if not isinstance(data, Mapping) or "type" not in data:
        raise BundleError(f"{where}: expected a dict with a 'type' key, got {short_repr(data)}")
    kind = data["type"]
    try:
        if kind == "Box":
            shape = _shape(data["shape"], f"{where}.shape")
            _spend(budget, math.prod(shape), where)
            dtype = _dtype(data.get("dtype", "float32"), f"{where}.dtype")
            low = _decode_array(data["low"], shape, dtype, f"{where}.low")
            high = _decode_array(data["high"], shape, dtype, f"{where}.high")
            return spaces.Box(low=low, high=high, shape=shape, dtype=dtype)
        if kind == "Discrete":
            return spaces.Discrete(
                _check_discrete(data["n"], f"{where}.n"),
                start=_check_start(data.get("start", 0), f"{where}.start"),
            )
        if kind == "MultiDiscrete":
            dtype = _dtype(data.get("dtype", "int64"), f"{where}.dtype")
            nvec = _check_nvec(_checked_int_array(data["nvec"], f"{where}.nvec"), f"{where}.nvec").astype(dtype)
            _spend(budget, int(nvec.size), where)
            start = _checked_int_array(data.get("start", 0), f"{where}.start").astype(dtype)
            return spaces.MultiDiscrete(nvec, dtype=dtype, start=np.broadcast_to(start, nvec.shape).copy())
        if kind == "MultiBinary":
            n = data["n"]
            shape = _shape(n if isinstance(n, list) else [n], f"{where}.n")
            _spend(budget, math.prod(shape), where)
            return spaces.MultiBinary(list(shape) if isinstance(n, list) else shape[0])
        if kind == "Dict":
            subs = data["spaces"]
            if not isinstance(subs, Mapping):
                raise BundleError(f"{where}.spaces: expected a dict, got {short_repr(subs)}")
            return spaces.Dict(
                {key: _space_from_json(sub, f"{where}.spaces.{key}", budget) for key, sub in subs.items()}
            )
        if kind == "Tuple":
            subs = data["spaces"]
            if not isinstance(subs, list):
                raise BundleError(f"{where}.spaces: expected a list, got {short_repr(subs)}")
            return spaces.Tuple(
                [_space_from_json(sub, f"{where}.spaces[{i}]", budget) for i, sub in enumerate(subs)]
            )
    except KeyError as exc:
        raise BundleError(f"{where}: {kind} space is missing key {short_repr(exc.args[0])}") from exc
    except (TypeError, ValueError, AssertionError) as exc:
        if isinstance(exc, BundleError):
            raise
        raise BundleError(f"{where}: invalid {short_repr(kind)} space {short_repr(dict(data))}: {exc}") from exc
    raise BundleError(
        f"{where}: unknown space type {short_repr(kind)}; valid: Box, Discrete, MultiDiscrete, MultiBinary, Dict, Tuple"
    )


# --------------------------------------------------------------------------------------------------
# Spaces: SB3's readable fields


def _parse_numpy_str(text: str) -> tuple[list[str], bool]:
    """Split ``str(ndarray)`` (e.g. ``"[-4.8 -inf\\n 0.]"``) into tokens, without evaluating anything.

    Returns:
        The tokens and whether numpy elided entries with ``...``.
    """
    cleaned = text.replace("[", " ").replace("]", " ").replace(",", " ")
    tokens = cleaned.split()
    truncated = "..." in tokens
    return [t for t in tokens if t != "..."], truncated


def _token_value(token: str) -> float | int | bool:
    if token in ("True", "False"):
        return token == "True"
    if re.fullmatch(r"[+-]?\d+", token):
        return int(token)
    value = float(token)  # accepts "1.", "-3.4e+38", "inf", "-inf", "nan"; never evaluates code
    return value


def _readable_array(value: Any, shape: tuple[int, ...], dtype: np.dtype) -> tuple[np.ndarray | None, str]:
    """Turn a readable field (JSON number/list or numpy ``str()``) into an array of ``shape``.

    Returns:
        The array, or ``None`` if it cannot be read, and a remark ("" when the read is exact).
    """
    if value is None:
        return None, "missing"
    if isinstance(value, str):
        tokens, truncated = _parse_numpy_str(value)
        try:
            numbers: list[Any] = [_token_value(t) for t in tokens]
        except ValueError:
            return None, f"unreadable {value[:60]!r}"
    elif isinstance(value, (int, float, list)) and not isinstance(value, bool):
        numbers, truncated = np.asarray(value, dtype=object).reshape(-1).tolist(), False
    else:
        return None, f"unreadable {short_repr(value)}"
    size = int(np.prod(shape)) if shape else 1
    remark = ""
    if truncated:
        if not numbers or any(n != numbers[0] for n in numbers):
            return None, f"numpy elided entries of {value[:60]!r} with '...'"
        numbers = numbers[:1]
        remark = "numpy elided entries with '...'; all shown entries are equal, so assumed constant"
    if len(numbers) not in (1, size):
        return None, f"{len(numbers)} entries for shape {shape}"
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            array = np.asarray(numbers, dtype=np.float64 if dtype.kind == "f" else dtype).astype(dtype)
        return np.array(
            np.broadcast_to(array.reshape(-1) if size != 1 else array[:1], (size,)), dtype=dtype
        ).reshape(shape), remark
    except (ValueError, OverflowError, TypeError):
        return None, f"unreadable {str(value)[:60]!r}"


def _unbounded(shape: tuple[int, ...], dtype: np.dtype, sign: int) -> np.ndarray:
    """-inf/inf for float boxes, the dtype's min/max for integer ones."""
    if dtype.kind == "f":
        return np.full(shape, sign * np.inf, dtype=dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return np.full(shape, info.min if sign < 0 else info.max, dtype=dtype)
    return np.full(shape, sign > 0, dtype=dtype)


def _type_name(entry: Mapping[str, Any]) -> str:
    match = CLASS_REPR.fullmatch(str(entry.get(":type:", "")).strip())
    return match.group(1) if match else ""


def _int_field(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"[+-]?\d+", value.strip()):
        return int(value.strip())
    raise ValueError(f"expected an integer, got {short_repr(value)}")


def _int_array_field(value: Any, where: str) -> np.ndarray:
    if isinstance(value, str):
        tokens, truncated = _parse_numpy_str(value)
        if truncated:
            raise ValueError(f"numpy elided entries of {short_repr(value)}")
        _check_elements(len(tokens), where)
        return np.array([_int_field(t) for t in tokens], dtype=np.int64)
    return _checked_int_array(value, where)


def _box_from_sb3(entry: Mapping[str, Any], key: str, where: str, shape_value: Any, notes: list[str]) -> spaces.Box:
    """A Box from its readable fields; unreadable bounds become unbounded (with a note)."""
    dtype = _dtype(entry.get("dtype", "float32"), f"{where}['dtype']")
    if shape_value is None:
        raise BundleError(f"{where}: Box without a readable 'shape'/'_shape'")
    shape = _shape(shape_value, f"{where}['shape']")
    bounds = []
    for side, sign in (("low", -1), ("high", 1)):
        array, remark = _readable_array(entry.get(side), shape, dtype)
        if array is None and entry.get(f"{side}_repr") is not None:
            array, remark = _readable_array(entry.get(f"{side}_repr"), shape, dtype)
        if array is None:
            array = _unbounded(shape, dtype, sign)
            notes.append(
                f"{key}: {side} bounds not readable ({remark}); using {array.reshape(-1)[0]!r}"
            )
        elif remark:
            notes.append(f"{key}: {side}: {remark}")
        bounds.append(array)
    if dtype == np.float64 and any(isinstance(entry.get(side), str) for side in ("low", "high")):
        notes.append(f"{key}: float64 bounds read from numpy's printed form (up to 8 decimals)")
    return spaces.Box(low=bounds[0], high=bounds[1], shape=shape, dtype=dtype)


def space_from_sb3(entry: Any, key: str, path: Path, notes: list[str]) -> spaces.Space:
    """Rebuild a space from the readable fields SB3 wrote next to its pickled form."""
    where = f"{path}: data[{key!r}]"
    if not isinstance(entry, Mapping):
        raise BundleError(f"{where}: expected the description of a gym/gymnasium space, got {short_repr(entry)}")
    dotted = _type_name(entry)
    module, _, name = dotted.rpartition(".")
    if not module.startswith(("gym.spaces", "gymnasium.spaces")):
        raise BundleError(f"{where}: expected a gym/gymnasium space, found type {short_repr(entry.get(':type:'))}")
    shape_value = entry.get("_shape", entry.get("shape"))
    try:
        if name == "Box":
            return _box_from_sb3(entry, key, where, shape_value, notes)
        if name == "Discrete":
            if "n" not in entry:
                raise BundleError(f"{where}: Discrete without a readable 'n'")
            return spaces.Discrete(
                _check_discrete(_int_field(entry["n"]), f"{where}['n']"),
                start=_check_start(_int_field(entry.get("start", 0)), f"{where}['start']"),
            )
        if name == "MultiDiscrete":
            if "nvec" not in entry:
                raise BundleError(f"{where}: MultiDiscrete without a readable 'nvec'")
            nvec = _check_nvec(_int_array_field(entry["nvec"], f"{where}['nvec']"), f"{where}['nvec']")
            if shape_value is not None and nvec.size == math.prod(_shape(shape_value, f"{where}['shape']")):
                nvec = nvec.reshape(_shape(shape_value, f"{where}['shape']"))
            start = (
                _int_array_field(entry["start"], f"{where}['start']").reshape(nvec.shape)
                if "start" in entry
                else np.zeros_like(nvec)
            )
            dtype = _dtype(entry.get("dtype", "int64"), f"{where}['dtype']")
            return spaces.MultiDiscrete(nvec, dtype=dtype, start=start)
        if name == "Dict":
            return _dict_from_sb3(entry, key, where, notes)
        if name == "MultiBinary":
            n = entry.get("n", shape_value)
            if n is None:
                raise BundleError(f"{where}: MultiBinary without a readable 'n'")
            if isinstance(n, str):
                n = _int_array_field(n, f"{where}['n']").tolist() if n.strip().startswith("[") else _int_field(n)
            shape = _shape(list(n) if isinstance(n, (list, tuple)) else [n], f"{where}['n']")
            return spaces.MultiBinary(list(shape) if isinstance(n, (list, tuple)) else shape[0])
    except (ValueError, TypeError, OverflowError, AssertionError) as exc:  # gymnasium asserts some checks
        if isinstance(exc, (BundleError, ConfigError)):
            raise
        raise BundleError(f"{where}: cannot rebuild {name} from its readable fields: {exc}") from exc
    raise BundleError(
        f"{where}: {short_repr(name or entry.get(':type:'))} spaces cannot be rebuilt without unpickling; "
        "supported: Box, Discrete, MultiDiscrete, MultiBinary, and Dict of those"
    )


def flat_size(space: spaces.Space) -> int:
    """Width of the input or output layer a space implies (one-hot for discrete spaces)."""
    if isinstance(space, spaces.Discrete):
        return int(space.n)
    if isinstance(space, spaces.MultiDiscrete):
        return int(space.nvec.sum())
    if isinstance(space, (spaces.Box, spaces.MultiBinary)):
        return math.prod(space.shape)
    if isinstance(space, spaces.Dict):  # SB3's CombinedExtractor concatenates the flattened sub-spaces
        return sum(flat_size(sub) for sub in space.spaces.values())
    return 1


# --------------------------------------------------------------------------------------------------
# Spaces: Dict sub-spaces from their printed form

#: Longest printed form of a Dict space read (its sub-spaces' bounds are at most MAX_SPACE_ELEMENTS numbers).
_MAX_REPR_CHARS = 4 * 2**20
_REPR_KEY = re.compile(r"""\s*(?:'([^'\\]{0,256})'|"([^"\\]{0,256})")\s*""")
_REPR_NAME = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*\(")


class _SpaceRepr:
    """Reads the printed form of a Dict space, as SB3 writes it in the ``spaces`` field: old gym's
    ``OrderedDict([('key', Box(-inf, inf, (3,), float32)), ...])``, gymnasium's
    ``{'key': Box(...), ...}`` and nested ``Dict('key': ...)``. Nothing is evaluated: a small scanner
    accepts Box, Discrete, MultiBinary, MultiDiscrete and Dict with literal arguments only."""

    def __init__(self, text: str, where: str, budget: list[int]) -> None:
        self.text, self.pos, self.where, self.budget = text, 0, where, budget

    def fail(self, why: str) -> BundleError:
        snippet = self.text[self.pos:self.pos + 40]
        return BundleError(f"{self.where}: cannot read the printed Dict space at character {self.pos} "
                           f"({why}, near {snippet!r})")

    def skip(self, token: str) -> None:
        rest = self.text[self.pos:]
        stripped = rest.lstrip()
        if not stripped.startswith(token):
            raise self.fail(f"expected {token!r}")
        self.pos += len(rest) - len(stripped) + len(token)

    def peek(self, token: str) -> bool:
        return self.text[self.pos:].lstrip().startswith(token)

    def key(self) -> str:
        match = _REPR_KEY.match(self.text, self.pos)
        if not match:
            raise self.fail("expected a quoted key")
        self.pos = match.end()
        return match.group(1) if match.group(1) is not None else match.group(2)

    def mapping(self, depth: int = 0) -> spaces.Dict:
        if depth > limits.MAX_NESTING:
            raise ResourceLimitError(f"{self.where}: Dict spaces nested deeper than {limits.MAX_NESTING} levels")
        items: dict[str, spaces.Space] = {}
        if self.peek("OrderedDict("):
            self.skip("OrderedDict(")
            self.skip("[")
            while not self.peek("]"):
                self.skip("(")
                name = self.key()
                self.skip(",")
                items[name] = self.space(depth)
                self.skip(")")
                if not self.peek("]"):
                    self.skip(",")
            self.skip("]")
            self.skip(")")
        else:
            close = "}" if self.peek("{") else ")"
            self.skip("{" if close == "}" else "Dict(")
            while not self.peek(close):
                name = self.key()
                self.skip(":")
                items[name] = self.space(depth)
                if not self.peek(close):
                    self.skip(",")
            self.skip(close)
        if not items:
            raise self.fail("a Dict space without sub-spaces")
        from collections import OrderedDict

        return spaces.Dict(OrderedDict(items))  # the file's order: CombinedExtractor concatenates in it

    def arguments(self) -> list[str]:
        """The top-level, comma-separated arguments up to the matching ``)`` (brackets kept together)."""
        depth, start, args = 0, self.pos, []
        for i in range(self.pos, len(self.text)):
            char = self.text[i]
            if char in "([":
                depth += 1
            elif char in ")]":
                if depth == 0:
                    args.append(self.text[start:i].strip())
                    self.pos = i + 1
                    return [a for a in args if a]
                depth -= 1
            elif char == "," and depth == 0:
                args.append(self.text[start:i].strip())
                start = i + 1
        raise self.fail("unbalanced parentheses")

    def space(self, depth: int) -> spaces.Space:
        if self.peek("Dict(") or self.peek("OrderedDict(") or self.peek("{"):
            return self.mapping(depth + 1)
        match = _REPR_NAME.match(self.text, self.pos)
        if not match:
            raise self.fail("expected a space such as Box(...)")
        kind = match.group(1)
        self.pos = match.end()
        args = self.arguments()
        positional = [a for a in args if not re.match(r"^[A-Za-z_]\w*=", a)]
        named = dict(a.split("=", 1) for a in args if re.match(r"^[A-Za-z_]\w*=", a))
        try:
            return self._build(kind, positional, named)
        except (ValueError, TypeError, OverflowError, AssertionError) as exc:
            if isinstance(exc, (BundleError, ConfigError)):
                raise
            raise self.fail(f"invalid {kind}: {exc}") from exc

    def _build(self, kind: str, args: list[str], named: dict[str, str]) -> spaces.Space:
        if kind == "Box":
            if len(args) >= 3:  # Box(low, high, shape, dtype)
                shape = tuple(_int_field(t) for t in args[2].strip("()").split(",") if t.strip())
                dtype = _dtype(args[3] if len(args) > 3 else "float32", f"{self.where}: Box dtype")
                _check_elements(math.prod(shape), self.where)
                _spend(self.budget, math.prod(shape), self.where)
                bounds = []
                for text in args[:2]:
                    array, remark = _readable_array(text, shape, dtype)
                    if array is None:
                        raise self.fail(f"Box bound {short_repr(text, 60)} is not a number or array ({remark})")
                    bounds.append(array)
                return spaces.Box(low=bounds[0], high=bounds[1], shape=shape, dtype=dtype)
            shape = tuple(_int_field(t) for t in args if t.strip())  # old gym: Box(3,) or Box(2, 3)
            _check_elements(math.prod(shape), self.where)
            _spend(self.budget, math.prod(shape), self.where)
            return spaces.Box(-np.inf, np.inf, shape=shape, dtype=np.float32)
        if kind == "Discrete" and args:
            start = _int_field(named.get("start", "0"))
            return spaces.Discrete(_check_discrete(_int_field(args[0]), self.where),
                                   start=_check_start(start, self.where))
        if kind == "MultiBinary" and args:
            n = _int_array_field(args[0], self.where).tolist() if args[0].startswith("[") else _int_field(args[0])
            shape = tuple(n) if isinstance(n, list) else (n,)
            _spend(self.budget, math.prod(shape), self.where)
            return spaces.MultiBinary(list(shape) if isinstance(n, list) else n)
        if kind == "MultiDiscrete" and args:
            nvec = _check_nvec(_int_array_field(args[0], self.where), self.where)
            _spend(self.budget, int(nvec.size), self.where)
            return spaces.MultiDiscrete(nvec)
        raise self.fail(f"{kind} is not a space this reader knows (Box, Discrete, MultiBinary, MultiDiscrete, Dict)")


def _dict_from_sb3(entry: Mapping[str, Any], key: str, where: str, notes: list[str]) -> spaces.Dict:
    """A Dict space from the printed form of its sub-spaces (the ``spaces`` field)."""
    text = entry.get("spaces")
    if not isinstance(text, str):
        raise BundleError(f"{where}: Dict space without a readable 'spaces' field")
    if len(text) > _MAX_REPR_CHARS:
        raise ResourceLimitError(f"{where}: printed Dict space of {len(text):,} characters, more than the "
                                 f"{_MAX_REPR_CHARS:,} allowed")
    parser = _SpaceRepr(text, f"{where}['spaces']", [limits.MAX_SPACE_ELEMENTS])
    space = parser.mapping()
    if text[parser.pos:].strip():
        raise parser.fail("unexpected text after the Dict space")
    notes.append(
        f"{key}: Dict space with keys {list(space.spaces)} rebuilt from its printed form; a Box bound printed "
        "as one number stands for every entry (old gym printed only the minimum/maximum)"
    )
    return space
