"""The resource budget of every loader: how much a file may make rltransfer read, inflate or allocate.

Untrusted files (everything inside a bundle, an SB3 zip, a Zoo folder, a benchmark's stored runs) are
read through the helpers here so that a small hostile file cannot exhaust memory or CPU. Sizes are
measured while reading and inflating, never taken from a header. Every refusal is a
:class:`~rltransfer.errors.ResourceLimitError` that names the file and the limit; messages never embed
more than :data:`MAX_REPR_CHARS` characters of the input.

The limits are generous for real agents (the largest RL Zoo agents are a few MB) and small enough that
reaching one costs well under a second and a few hundred MB:

==========================  ==============  ===================================================
limit                       value           applies to
==========================  ==============  ===================================================
``MAX_JSON_BYTES``          8 MiB           ``manifest.json``, ``normalization.json``, statuses
``MAX_YAML_BYTES``          4 MiB           every YAML file (configs, Zoo ``config.yml``)
``MAX_DATA_BYTES``          64 MiB          an SB3 zip's ``data`` member
``MAX_PICKLE_BYTES``        64 MiB          a Zoo ``vecnormalize.pkl``
``MAX_WEIGHTS_BYTES``       1 GiB           inflated bytes of all tensor files of one zip
``MAX_TENSOR_ELEMENTS``     2**27           elements of one tensor (512 MiB of float32)
``MAX_LAYER_WIDTH``         16,384          a hidden layer's width (declared or inferred)
``MAX_PARAMETERS``          2**27           parameters of a network rebuilt from a file
``MAX_SPACE_ELEMENTS``      2**20           elements of a Box / MultiBinary / MultiDiscrete
``MAX_DISCRETE_N``          2**20           actions of a Discrete space
``MAX_NESTING``             64              nesting depth of JSON / YAML / pickle structures
``MAX_NODES``               1,000,000       values in one structure, aliases counted as expanded
==========================  ==============  ===================================================
"""

from __future__ import annotations

import os
import reprlib
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from rltransfer.errors import ResourceLimitError

MAX_JSON_BYTES = 8 * 2**20
MAX_YAML_BYTES = 4 * 2**20
MAX_DATA_BYTES = 64 * 2**20
MAX_PICKLE_BYTES = 64 * 2**20
MAX_WEIGHTS_BYTES = 2**30
MAX_TENSOR_ELEMENTS = 2**27
MAX_LAYER_WIDTH = 16_384
MAX_PARAMETERS = 2**27
MAX_SPACE_ELEMENTS = 2**20
MAX_DISCRETE_N = 2**20
MAX_NESTING = 64
MAX_NODES = 1_000_000
MAX_REPR_CHARS = 80

_CHUNK = 1 << 20

_repr = reprlib.Repr()
_repr.maxstring = MAX_REPR_CHARS
_repr.maxother = MAX_REPR_CHARS
_repr.maxlong = 40
_repr.maxlist = _repr.maxtuple = _repr.maxdict = _repr.maxset = 6
_repr.maxlevel = 3


def clip_text(text: str, limit: int = 300) -> str:
    """``text`` cut to at most ``limit`` characters (with ``...``): for messages, not for values."""
    text = str(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def short_repr(value: Any, limit: int = MAX_REPR_CHARS) -> str:
    """A ``repr`` of ``value`` that is at most about ``limit`` characters, whatever its size or depth."""
    try:
        if limit != MAX_REPR_CHARS:
            custom = reprlib.Repr()
            custom.maxstring = custom.maxother = limit
            custom.maxlist = custom.maxtuple = custom.maxdict = custom.maxset = 6
            custom.maxlevel = 3
            text = custom.repr(value)
        else:
            text = _repr.repr(value)
    except Exception:  # a hostile object's repr may raise; never let a message crash
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def read_bytes(path: str | Path, limit: int, what: str) -> bytes:
    """Read a regular file of at most ``limit`` bytes (counted while reading, not from ``stat``).

    Raises:
        ResourceLimitError: not a regular file (a device, a FIFO) or longer than ``limit``.
        OSError: the file cannot be opened.
    """
    path = Path(path)
    with open(path, "rb") as fh:
        mode = os.fstat(fh.fileno()).st_mode
        if not stat.S_ISREG(mode):
            raise ResourceLimitError(f"{path}: {what} must be a regular file, not a device, FIFO or socket")
        return read_stream(fh, limit, f"{path}: {what}")


def read_stream(fh: IO[bytes], limit: int, where: str) -> bytes:
    """Read ``fh`` to its end, refusing more than ``limit`` bytes (reads at most ``limit + 1``)."""
    parts: list[bytes] = []
    total = 0
    while True:
        chunk = fh.read(min(_CHUNK, limit + 1 - total))
        if not chunk:
            return b"".join(parts)
        total += len(chunk)
        if total > limit:
            raise ResourceLimitError(f"{where} is larger than the {limit:,} bytes allowed")
        parts.append(chunk)


def read_text(path: str | Path, limit: int, what: str) -> str:
    """:func:`read_bytes` decoded as UTF-8 (raises ``UnicodeDecodeError``; callers name the file)."""
    return read_bytes(path, limit, what).decode("utf-8")


def check_structure(value: Any, where: str, max_depth: int = MAX_NESTING, max_nodes: int = MAX_NODES) -> None:
    """Refuse a nested structure (dicts, lists, tuples, sets) deeper than ``max_depth`` or with more than
    ``max_nodes`` values, counting a shared sub-structure once per reference (as a walk over it would:
    this is what stops YAML alias bombs and pickles of shared lists). Iterative: no recursion limit hit.

    Raises:
        ResourceLimitError: naming ``where`` and the limit reached.
    """
    stack: list[tuple[Any, int]] = [(value, 0)]
    nodes = 0
    while stack:
        item, depth = stack.pop()
        nodes += 1
        if nodes > max_nodes:
            raise ResourceLimitError(
                f"{where}: more than {max_nodes:,} values (shared references counted as expanded); "
                "refused as a possible expansion bomb"
            )
        if isinstance(item, Mapping):
            if len(item) > max_nodes:
                raise ResourceLimitError(f"{where}: more than {max_nodes:,} values; refused")
            children = [*item.keys(), *item.values()]
        elif isinstance(item, (list, tuple, set, frozenset)):
            if len(item) > max_nodes:
                raise ResourceLimitError(f"{where}: more than {max_nodes:,} values; refused")
            children = list(item)
        else:
            continue
        if len(children) > max_nodes - nodes:
            raise ResourceLimitError(f"{where}: more than {max_nodes:,} values; refused")
        if depth + 1 > max_depth and children:
            raise ResourceLimitError(f"{where}: nested deeper than {max_depth} levels")
        stack.extend((child, depth + 1) for child in children)


#: Largest memo index a pickle may use. CPython's unpickler sizes its memo table by the largest index
#: it is given (``LONG_BINPUT 2**27`` alone allocates and touches 2 GiB), so indices are checked first.
MAX_PICKLE_MEMO = MAX_NODES


def scan_pickle(fh: IO[bytes], where: str, max_memo: int = MAX_PICKLE_MEMO) -> None:
    """Walk the opcodes of one pickle in ``fh`` (from its current position to ``STOP``) without building
    anything, refusing memo indices above ``max_memo``; leaves ``fh`` just after ``STOP``.

    Raises:
        ResourceLimitError: a ``PUT``/``BINPUT``/``LONG_BINPUT``/``GET`` index above ``max_memo``.
        ValueError: the opcodes are malformed or truncated (``pickletools`` reports them so).
    """
    import pickletools  # only needed here

    for opcode, arg, _pos in pickletools.genops(fh):
        if opcode.name in ("PUT", "BINPUT", "LONG_BINPUT", "GET", "BINGET", "LONG_BINGET"):
            if not isinstance(arg, int) or arg < 0 or arg > max_memo:
                raise ResourceLimitError(
                    f"{where}: pickle memo index {short_repr(arg)} is more than the {max_memo:,} allowed "
                    "(MAX_PICKLE_MEMO)"
                )
