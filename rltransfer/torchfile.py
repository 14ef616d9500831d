"""Reading torch state-dict files from untrusted zips, safely.

:func:`read_member` inflates one member of an outer zip while counting its bytes (declared sizes are
never trusted), within a per-member limit and a :class:`MemberBudget` shared by a zip's tensor
members; :func:`check_central_directory` refuses an oversized central directory before
:class:`zipfile.ZipFile` parses it. :func:`load_tensors` checks a torch file before torch reads it (the
records of a zip-format file; the storages a legacy, pre-1.6 file declares), loads it with
``torch.load(..., weights_only=True)``, and refuses tensors that are not plain weights
(:func:`check_tensors`).
"""

from __future__ import annotations

import io
import math
import pickle
import struct
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from rltransfer import limits
from rltransfer.errors import BundleError, ResourceLimitError
from rltransfer.limits import short_repr

__all__ = [
    "MAX_WEIGHT_MAGNITUDE",
    "MemberBudget",
    "check_central_directory",
    "check_tensors",
    "load_tensors",
    "read_member",
]

#: Largest absolute value a floating-point weight may have. Trained policies stay many orders of
#: magnitude below it (RL Zoo agents: under 100); values such as 3e38 only make later arithmetic
#: overflow into inf/NaN, so they are refused at load like NaN and inf themselves.
MAX_WEIGHT_MAGNITUDE = 1e6

# Records of a torch zip archive (policy.pth is one); real state dicts have a few dozen.
_MAX_TORCH_RECORDS = 100_000
# Central directory of the outer zip: an SB3 zip has < 10 members (a few hundred bytes).
_MAX_CENTRAL_DIRECTORY_BYTES = 16 * 2**20
# Tensor dtypes a policy's weights may have.
_TENSOR_DTYPES = frozenset(
    {
        torch.float16,
        torch.bfloat16,
        torch.float32,
        torch.float64,
        torch.int8,
        torch.int16,
        torch.int32,
        torch.int64,
        torch.uint8,
        torch.bool,
    }
)
# Element sizes of the storage classes named by legacy (pre-1.6, non-zip) torch files.
_LEGACY_STORAGES = {
    "DoubleStorage": 8,
    "FloatStorage": 4,
    "HalfStorage": 2,
    "BFloat16Storage": 2,
    "LongStorage": 8,
    "IntStorage": 4,
    "ShortStorage": 2,
    "CharStorage": 1,
    "ByteStorage": 1,
    "BoolStorage": 1,
}



class MemberBudget:
    """Bytes still allowed for the tensor members of one zip (:data:`~rltransfer.limits.MAX_WEIGHTS_BYTES`)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.left = total

    def spend(self, n: int, where: str) -> None:
        self.left -= n
        if self.left < 0:
            raise ResourceLimitError(
                f"{where}: the tensor members together inflate to more than the {self.total:,} bytes "
                "allowed (MAX_WEIGHTS_BYTES)"
            )


def check_central_directory(path: Path) -> None:
    """Refuse a zip whose central directory is too large before :class:`zipfile.ZipFile` parses it all."""
    try:
        with open(path, "rb") as fh:
            end = zipfile._EndRecData(fh)  # type: ignore[attr-defined]  # stable since Python 2
    except (OSError, struct.error, AttributeError):
        return  # zipfile reports what it cannot read
    if end and end[zipfile._ECD_SIZE] > _MAX_CENTRAL_DIRECTORY_BYTES:  # type: ignore[attr-defined]
        raise ResourceLimitError(
            f"{path}: the zip's central directory declares {end[zipfile._ECD_SIZE]:,} bytes "  # type: ignore[attr-defined]
            f"({end[zipfile._ECD_ENTRIES_TOTAL]:,} members), more than the "  # type: ignore[attr-defined]
            f"{_MAX_CENTRAL_DIRECTORY_BYTES:,} allowed; expected an SB3 model zip of a few members"
        )


def read_member(
    archive: zipfile.ZipFile,
    name: str,
    path: Path,
    expected: str,
    limit: int,
    budget: MemberBudget | None = None,
) -> bytes:
    """Inflate one member while counting: the declared sizes are never trusted.

    Raises:
        ResourceLimitError: the member inflates to more than ``limit`` (or than ``budget`` has left),
            or holds more compressed data than its declared size accounts for.
        BundleError: the member is missing, corrupt or truncated.
    """
    try:
        info = archive.getinfo(name)
    except KeyError as exc:
        raise BundleError(f"{path}: member {name!r} is missing; expected {expected}") from exc
    where = f"{path}: member {name!r}"
    member_limit = limit
    if budget is not None:
        limit = min(limit, max(budget.left, 0))
    try:
        with archive.open(info) as fh:
            raw = limits.read_stream(fh, limit, where)
            # zipfile stops at the declared size; a stream that goes on is a lying header (a bomb)
            decompressor = getattr(fh, "_decompressor", None)
            unfinished = getattr(fh, "_compress_left", 0) > 0 or (
                decompressor is not None
                and getattr(decompressor, "eof", True) is False
                and info.compress_type != zipfile.ZIP_STORED
            )
    except ResourceLimitError as exc:
        if budget is not None and limit < member_limit:
            raise ResourceLimitError(
                f"{where}: the tensor members together inflate to more than the "
                f"{budget.total:,} bytes allowed (MAX_WEIGHTS_BYTES)"
            ) from exc
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError, ValueError) as exc:
        raise BundleError(f"{where} is corrupt or truncated ({short_repr(str(exc))}); expected {expected}") from exc
    if unfinished:
        raise ResourceLimitError(
            f"{where} declares {info.file_size:,} bytes but its compressed stream goes on past them; "
            "refused as a possible zip bomb"
        )
    if budget is not None:
        budget.spend(len(raw), where)
    return raw


def _check_torch_zip(raw: bytes, where: str) -> None:
    """Check the records of a torch zip archive before torch's own reader (which inflates without
    limits) sees them: ``torch.save`` stores every record uncompressed, so compressed ones are refused,
    and the declared sizes must fit in the bytes present."""
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as inner:
            infos = inner.infolist()
            central_start = int(inner.start_dir)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError, struct.error) as exc:
        raise BundleError(f"{where} is not a readable torch archive ({short_repr(str(exc))})") from exc
    if len(infos) > _MAX_TORCH_RECORDS:
        raise ResourceLimitError(
            f"{where}: {len(infos):,} records, more than the {_MAX_TORCH_RECORDS:,} allowed"
        )
    declared = 0
    starts = sorted(info.header_offset for info in infos)
    for info in infos:
        record = f"{where}: record {short_repr(info.filename)}"
        if info.compress_type != zipfile.ZIP_STORED:
            raise ResourceLimitError(
                f"{record} is compressed (method {info.compress_type}); torch.save stores records "
                "uncompressed, and compressed ones are refused as a possible zip bomb"
            )
        if info.compress_size != info.file_size:
            raise BundleError(
                f"{record} declares {info.file_size:,} bytes but stores {info.compress_size:,}; "
                "the archive is corrupt or altered"
            )
        if info.header_offset < 0 or info.header_offset + info.file_size > len(raw):
            raise BundleError(
                f"{record} declares {info.file_size:,} bytes at offset {info.header_offset:,}, past the "
                f"end of the {len(raw):,} bytes present; the archive is truncated or altered"
            )
        local = raw[info.header_offset : info.header_offset + 30]
        if len(local) < 30 or local[:4] != b"PK\x03\x04":
            raise BundleError(f"{record}: no local header at offset {info.header_offset:,}; the archive is altered")
        name_len, extra_len = struct.unpack("<2H", local[26:30])
        end = info.header_offset + 30 + name_len + extra_len + info.file_size
        following = [o for o in starts if o > info.header_offset]
        bound = following[0] if following else central_start
        # between a record's data and the next header: nothing, or its data descriptor (flag bit 3)
        gaps = (12, 16, 20, 24) if info.flag_bits & 0x08 else (0,)
        if bound - end not in gaps:
            raise BundleError(
                f"{record} declares {info.file_size:,} bytes, but {bound - end + info.file_size:,} bytes "
                "lie before the next record; the archive is truncated or altered"
            )
        declared += info.file_size
    if declared > len(raw):
        raise ResourceLimitError(
            f"{where}: records declare {declared:,} bytes in all, more than the {len(raw):,} bytes present"
        )


class _ScanStub:
    """What the legacy-format scan builds for every global: inert, accepts any construction step."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __call__(self, *args: Any, **kwargs: Any) -> _ScanStub:
        return _ScanStub()

    def __setstate__(self, state: Any) -> None:
        pass

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def append(self, value: Any) -> None:
        pass

    def extend(self, values: Any) -> None:
        pass


class _LegacyScanner(pickle.Unpickler):
    """Reads the object pickle of a legacy torch file only to list the storages it declares."""

    def __init__(self, file: io.BytesIO, where: str) -> None:
        super().__init__(file)
        self.where = where
        self.storages: dict[str, int] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch" and name in _LEGACY_STORAGES:
            return _LegacyStorage(name)
        if f"{module}.{name}" in (
            "torch._utils._rebuild_tensor_v2",
            "torch._utils._rebuild_tensor",
            "torch._utils._rebuild_parameter",
            "collections.OrderedDict",
        ):
            return _ScanStub()
        raise BundleError(f"{self.where}: global {short_repr(module + '.' + name)} is not part of a state dict")

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] in ("storage", b"storage")):
            raise BundleError(f"{self.where}: unexpected persistent id {short_repr(pid)}")
        _, storage_type, root_key, _location, numel, _view = pid
        if not isinstance(storage_type, _LegacyStorage) or not isinstance(numel, int) or numel < 0:
            raise BundleError(f"{self.where}: malformed storage reference {short_repr(pid)}")
        nbytes = numel * storage_type.element_size
        key = str(root_key)
        if self.storages.setdefault(key, nbytes) != nbytes:
            raise BundleError(f"{self.where}: storage {short_repr(key)} declared with two sizes")
        return _ScanStub()


class _LegacyStorage:
    def __init__(self, name: str) -> None:
        self.name = name
        self.element_size = _LEGACY_STORAGES[name]


class _PlainUnpickler(pickle.Unpickler):
    """For the header pickles of a legacy torch file (ints, dicts, lists of strings): no globals."""

    def find_class(self, module: str, name: str) -> Any:
        raise BundleError(f"global {short_repr(module + '.' + name)} in a torch file header")


def _check_torch_legacy(raw: bytes, where: str) -> None:
    """Check a legacy (pre-1.6, non-zip) torch file: the storages its pickle declares must be exactly the
    ones stored after it (torch allocates each declared storage before reading it)."""
    stream = io.BytesIO(raw)

    def scanned(unpickler: pickle.Unpickler) -> Any:
        start = stream.tell()
        limits.scan_pickle(stream, where)  # memo indices first: CPython sizes its memo by them
        stream.seek(start)
        return unpickler.load()

    try:
        for _ in range(3):  # magic number, protocol version, system info
            scanned(_PlainUnpickler(stream))
        scanner = _LegacyScanner(stream, where)
        scanned(scanner)
        keys = scanned(_PlainUnpickler(stream))
        if not isinstance(keys, list) or sorted(map(str, keys)) != sorted(scanner.storages):
            raise BundleError(f"{where}: the stored storage keys do not match the ones the pickle declares")
        declared = sum(scanner.storages.values())
        if declared > len(raw):
            raise ResourceLimitError(
                f"{where}: storages declare {declared:,} bytes, more than the {len(raw):,} bytes present"
            )
        for key in keys:
            header = stream.read(8)
            if len(header) != 8:
                raise BundleError(f"{where}: truncated before the data of storage {short_repr(key)}")
            (numel,) = struct.unpack("<q", header)
            nbytes = scanner.storages[str(key)]
            if numel < 0 or nbytes % max(numel, 1) or (numel == 0) != (nbytes == 0):
                raise BundleError(f"{where}: storage {short_repr(key)} stores {numel:,} elements, not as declared")
            if stream.seek(nbytes, io.SEEK_CUR) > len(raw):
                raise BundleError(f"{where}: truncated inside the data of storage {short_repr(key)}")
    except BundleError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, AttributeError,
            IndexError, struct.error, RecursionError, MemoryError, OverflowError) as exc:
        raise BundleError(f"{where} is not a torch state dict ({type(exc).__name__}: {short_repr(str(exc))})") from exc


def _tensor_extent(tensor: torch.Tensor) -> int:
    """Elements of storage a tensor view reaches: offset + 1 + sum((size - 1) * stride)."""
    if tensor.numel() == 0:
        return 0
    return int(tensor.storage_offset()) + 1 + sum(
        (size - 1) * abs(stride) for size, stride in zip(tensor.shape, tensor.stride())
    )


def check_tensors(tensors: Mapping[str, torch.Tensor], where: str) -> None:
    """Refuse tensors that are not plain, finite, reasonably sized weights.

    Every tensor must have a plain numeric dtype (no complex, quantized or other exotic types), at most
    :data:`~rltransfer.limits.MAX_TENSOR_ELEMENTS` elements, a storage that holds all of its elements
    without overlap (no stride-0 or overlapping views that declare a huge shape over a tiny storage),
    and, for floating-point tensors, only finite values of magnitude at most
    :data:`MAX_WEIGHT_MAGNITUDE`.

    Args:
        tensors: name -> tensor, e.g. a state dict just loaded from a file.
        where: file and member quoted in errors.

    Raises:
        ResourceLimitError: a tensor with too many elements.
        BundleError: any other refused tensor (naming it).
    """
    for key, tensor in tensors.items():
        name = f"{where}: tensor {short_repr(key)}"
        if not isinstance(tensor, torch.Tensor):
            raise BundleError(f"{name} is a {type(tensor).__name__}, expected a tensor")
        if tensor.dtype not in _TENSOR_DTYPES:
            raise BundleError(
                f"{name} has dtype {tensor.dtype}; only real floating-point, integer and bool weights "
                "are accepted"
            )
        if tensor.layout != torch.strided or tensor.is_quantized or tensor.device.type != "cpu":
            raise BundleError(f"{name} is not a plain dense CPU tensor ({tensor.layout}, {tensor.device})")
        numel = math.prod(tensor.shape)
        if numel > limits.MAX_TENSOR_ELEMENTS:
            raise ResourceLimitError(
                f"{name} has shape {short_repr(tuple(tensor.shape))} ({numel:,} elements), more than the "
                f"{limits.MAX_TENSOR_ELEMENTS:,} allowed (MAX_TENSOR_ELEMENTS)"
            )
        storage_elements = tensor.untyped_storage().nbytes() // max(tensor.element_size(), 1)
        if numel > storage_elements or _tensor_extent(tensor) > storage_elements or (
            numel > 1 and any(st == 0 for sz, st in zip(tensor.shape, tensor.stride()) if sz > 1)
        ):
            raise BundleError(
                f"{name} declares shape {short_repr(tuple(tensor.shape))} and strides "
                f"{short_repr(tuple(tensor.stride()))} over a storage of only {storage_elements:,} "
                "elements (an overlapping or out-of-bounds view); refused"
            )
        if tensor.is_floating_point() and numel:
            values = tensor.detach()
            if not bool(torch.isfinite(values).all()):
                bad = int((~torch.isfinite(values)).sum())
                raise BundleError(f"{name} holds {bad:,} non-finite values (NaN or inf); refused")
            peak = float(values.abs().max())
            if peak > MAX_WEIGHT_MAGNITUDE:
                raise BundleError(
                    f"{name} holds a value of magnitude {peak:.3g}, more than the {MAX_WEIGHT_MAGNITUDE:g} "
                    "allowed for a weight (MAX_WEIGHT_MAGNITUDE); refused"
                )


def load_tensors(raw: bytes, path: Path, name: str, none_keys: list[str] | None = None) -> dict[str, torch.Tensor]:
    """Check, then load a torch file that must hold a ``str -> tensor`` dict (``weights_only=True``).

    Args:
        raw: the file's bytes.
        path: the zip it came from (quoted in errors).
        name: the member's name.
        none_keys: when a list, entries whose value is ``None`` are accepted, left out of the result and
            their keys appended to it: what SB3 1.x wrote in ``pytorch_variables.pth`` for SAC/TQC with a
            fixed entropy coefficient (``{'log_ent_coef': None, 'ent_coef_tensor': tensor}``).

    Raises:
        BundleError: anything that is not such a dict of plain, finite weights.
    """
    expected = "a torch state dict (str -> tensor) loadable with weights_only=True"
    where = f"{path}: member {name!r}"
    if raw[:4] == b"PK\x03\x04":
        _check_torch_zip(raw, where)
    else:
        _check_torch_legacy(raw, where)
    try:
        loaded = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types here; all mean "not plain weights"
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BundleError(f"{where} is not {expected}: {short_repr(first_line, 200)}") from exc
    if not isinstance(loaded, Mapping) or not all(
        isinstance(k, str) and (isinstance(v, torch.Tensor) or (none_keys is not None and v is None))
        for k, v in loaded.items()
    ):
        what = type(loaded).__name__
        if isinstance(loaded, Mapping):
            bad = next((k, v) for k, v in loaded.items() if not (isinstance(k, str) and isinstance(v, torch.Tensor)))
            what = f"{what} with entry {short_repr(bad[0])} of type {type(bad[1]).__name__}"
        raise BundleError(f"{where} holds {what}, expected {expected}")
    tensors = {k: v for k, v in loaded.items() if v is not None}
    check_tensors(tensors, where)
    if none_keys is not None:
        none_keys.extend(sorted(k for k, v in loaded.items() if v is None))
    return tensors
