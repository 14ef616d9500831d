"""The run directory: what every training or transfer run leaves behind, written so a crash loses nothing.

Layout (see README)::

    runs/<name>/
      config.yaml         resolved config (everything needed to rerun)
      command.txt         the command line, or the Python call, that started the run
      tb/                 TensorBoard event files
      eval.csv, eval.npz  evaluation curve: step, mean, std, n episodes (+ every return)
      policy/             the policy bundle
      transfer_plan.json  (transfer runs)
      status.json         pending | running | done | failed (+ error) | interrupted, written atomically, last

``status.json`` also says who owns a run: the writing process's ``pid``, its start time in clock ticks
(``pid_start``, from ``/proc/<pid>/stat``, to tell a reused pid apart), ``host``, the run's ``started``
time and a ``heartbeat`` refreshed while training. :func:`run_state` turns that into *alive* / *dead*:
a pending or running status whose process is gone (same host) or whose heartbeat is older than
:data:`HEARTBEAT_TIMEOUT` (any host) belongs to a dead run, which the next start may replace.
Everything written here is strict JSON (``NaN`` and infinities become ``null``).
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import shlex
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from rltransfer.errors import ConfigError

logger = logging.getLogger(__name__)

#: ``interrupted``: stopped on purpose (signal, Ctrl-C) after its last checkpoint; resumable, and for a new
#: run as reusable as ``failed`` (:func:`run_state` reports it as ``"failed"``).
STATUSES = ("pending", "running", "done", "failed", "interrupted")

#: A pending/running status whose heartbeat is older than this (seconds) is dead, whatever its pid says
#: (the only test that works across hosts). Training refreshes it every :data:`HEARTBEAT_INTERVAL` s.
HEARTBEAT_TIMEOUT = 600.0
HEARTBEAT_INTERVAL = 30.0

#: Names a crashed writer can leave in a run directory: bundle temporaries (``.policy.tmp-*``,
#: ``.policy.old-*``), the evaluation curve's ``.eval.tmp.npz`` and :func:`atomic_write_text`'s
#: ``.<name>.<random>.tmp`` files.
RESIDUE_PATTERNS = (".*.tmp-*", ".*.old-*", ".eval.tmp.npz", ".*.tmp")


def umask() -> int:
    """The process's file-mode creation mask, read without changing it (``/proc/self/status`` on Linux;
    elsewhere set and restored at once)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def make_temp_dir(prefix: str, folder: Path) -> Path:
    """A new folder in ``folder`` with a unique name (as :func:`tempfile.mkdtemp`), but with the mode
    ``mkdir`` would give it (``0o777`` less the umask), not ``mkdtemp``'s private ``0o700``: what is
    renamed into place from it is then as readable as anything else the user writes."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=folder))
    os.chmod(tmp, 0o777 & ~umask())
    return tmp


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename; the file gets
    the mode ``open()`` would give it (``0o666`` less the umask), not ``mkstemp``'s private ``0o600``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~umask())
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def replace_dir(tmp: Path, target: Path) -> None:
    """Move the finished folder ``tmp`` to ``target``, replacing what is there: the old folder is first moved
    aside (``.<name>.old-*``, restored by :func:`clean_residue` if a kill falls between the two renames)."""
    if target.exists():
        old = make_temp_dir(f".{target.name}.old-", target.parent)
        target.replace(old / target.name)
        tmp.replace(target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.replace(target)


def atomic_write_json(path: Path, data: Any) -> None:
    """Write ``data`` as strict JSON (non-finite floats become ``null``; never a bare ``NaN``)."""
    text = json.dumps(json_safe(data), indent=2, sort_keys=False, allow_nan=False)
    atomic_write_text(path, text + "\n")


def json_safe(obj: Any) -> Any:
    """``obj`` with numpy values as Python ones, paths as strings and ``nan``/``inf`` as ``None``."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, dict):
        return {str(k) if not isinstance(k, (str, int, float, bool)) else k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):
        return json_safe(obj.tolist())
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def versions() -> dict[str, str]:
    """Versions of the libraries a result depends on."""
    import gymnasium
    import numpy
    import stable_baselines3
    import torch

    from rltransfer import __version__

    out = {
        "rltransfer": __version__,
        "stable_baselines3": stable_baselines3.__version__,
        "torch": str(torch.__version__),
        "gymnasium": gymnasium.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
    }
    from importlib.metadata import PackageNotFoundError, version

    for package in ("pybullet", "pybullet-envs-gymnasium"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            pass
    return out


def run_name(family: str, label: str, seed: int) -> str:
    """CleanRL-style run name: ``{family}__{label}__{seed}__{time}``."""
    return f"{family}__{label}__{seed}__{time.strftime('%Y%m%d-%H%M%S')}"


def command_line() -> str:
    return shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv and sys.argv[0] else "(python)"


def process_start_ticks(pid: int) -> int | None:
    """When process ``pid`` started, in clock ticks since boot (``/proc/<pid>/stat`` field 22), or
    ``None`` where ``/proc`` is not available or the process does not exist."""
    try:
        raw = Path(f"/proc/{int(pid)}/stat").read_text()
    except (OSError, ValueError):
        return None
    try:  # the command name (field 2) is in parentheses and may hold spaces: split after the last ")"
        return int(raw[raw.rindex(")") + 2:].split()[19])
    except (ValueError, IndexError):
        return None


def owner() -> dict[str, Any]:
    """This process as the owner of a run: ``pid``, ``pid_start`` (clock ticks) and ``host``."""
    return {"pid": os.getpid(), "pid_start": process_start_ticks(os.getpid()), "host": socket.gethostname()}


def write_status(run_dir: Path, status: str, **extra: Any) -> None:
    """Write ``status.json`` atomically, stamped with this process (:func:`owner`) and a heartbeat."""
    if status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
    now = time.time()
    data = {"status": status, "time": now, **owner(), "heartbeat": now, **extra}
    atomic_write_json(Path(run_dir) / "status.json", data)


def heartbeat(run_dir: Path) -> None:
    """Refresh the ``heartbeat`` of this process's pending/running status (anything else is left alone)."""
    data = read_status(run_dir)
    if data.get("status") in ("pending", "running") and data.get("pid") == os.getpid():
        data["heartbeat"] = time.time()
        atomic_write_json(Path(run_dir) / "status.json", data)


def read_status(run_dir: Path) -> dict[str, Any]:
    """The run's status; ``{"status": "missing"}`` when none was written, ``"corrupt"`` if unreadable."""
    from rltransfer.limits import MAX_JSON_BYTES, read_bytes

    path = Path(run_dir) / "status.json"
    if not path.is_file():
        return {"status": "missing"}
    try:
        data = json.loads(read_bytes(path, MAX_JSON_BYTES, "status.json"))
    except (OSError, ValueError):  # includes JSONDecodeError, UnicodeDecodeError and ResourceLimitError
        return {"status": "corrupt"}
    return data if isinstance(data, dict) and isinstance(data.get("status"), str) else {"status": "corrupt"}


def pid_alive(pid: int, start_ticks: int | None = None) -> bool:
    """Whether process ``pid`` exists on this host (and, given ``start_ticks``, is the same process: a
    pid reused by a later process has another start time). Zombies count as dead."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        pass
    except OSError:
        return False
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
        if raw[raw.rindex(")") + 2:].split()[0] == "Z":
            return False
    except (OSError, ValueError, IndexError):
        pass
    if start_ticks is not None:
        now = process_start_ticks(pid)
        if now is not None and now != start_ticks:
            return False
    return True


def run_state(run_dir: Path, timeout: float = HEARTBEAT_TIMEOUT) -> str:
    """What a run directory holds, for deciding whether a new run may take it over.

    Returns:
        ``"missing"`` (no status), ``"done"``, ``"failed"`` (also for ``interrupted``), ``"alive"`` (pending/running and its owner
        is alive), or ``"dead"`` (pending/running whose owner is gone or silent for more than ``timeout``
        seconds, or without an owner pid, or a status that cannot be read).
    """
    data = read_status(run_dir)
    status = data.get("status")
    if status == "interrupted":  # stopped on purpose: a new run may replace it, ``resume`` may continue it
        return "failed"
    if status in ("missing", "done", "failed"):
        return str(status)
    if status not in ("pending", "running"):
        return "dead"
    beat = data.get("heartbeat", data.get("time"))
    if not isinstance(beat, (int, float)) or time.time() - float(beat) > timeout:
        return "dead"
    pid = data.get("pid")
    if not isinstance(pid, int):  # written before owners were recorded: nobody to wait for
        return "dead"
    if data.get("host") == socket.gethostname() and not pid_alive(pid, data.get("pid_start")):
        return "dead"
    return "alive"


def clean_residue(run_dir: Path) -> list[Path]:
    """Remove what a crashed writer left in ``run_dir`` (:data:`RESIDUE_PATTERNS`); returns what went.

    Only call this when no live process owns the directory.
    """
    removed: list[Path] = []
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return removed
    for old in sorted(run_dir.glob(".*.old-*")):  # a save killed between its two renames: restore first
        name = old.name[1:].split(".old-", 1)[0]
        if (old / name).is_dir() and not (run_dir / name).exists():
            (old / name).replace(run_dir / name)
    for pattern in RESIDUE_PATTERNS:
        for path in run_dir.glob(pattern):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def write_config(run_dir: Path, config: dict[str, Any], command: str) -> None:
    atomic_write_text(Path(run_dir) / "config.yaml", yaml.safe_dump(config, sort_keys=False))
    atomic_write_text(Path(run_dir) / "command.txt", command + "\n")


#: Largest stored evaluation record rltransfer reads back (``eval.npz`` of a run, maybe someone else's).
MAX_NPZ_BYTES = 64 * 2**20
MAX_NPZ_ELEMENTS = 2**24


def read_npz(
    path: Path, max_elements: int = MAX_NPZ_ELEMENTS, max_bytes: int = MAX_NPZ_BYTES, max_members: int = 64
) -> dict[str, np.ndarray]:
    """Read a ``.npz`` of plain numeric arrays within a budget (stored runs are untrusted input).

    The file is read whole within ``max_bytes`` (default :data:`MAX_NPZ_BYTES`); each member's header is checked (numeric dtype,
    at most ``max_elements`` elements) before its data is read, and members are inflated while counting.
    Pickled (object) arrays are refused.

    Raises:
        BundleError: the file is not a readable npz of numeric arrays, or exceeds the budget.
    """
    import io
    import zipfile

    from rltransfer.errors import BundleError, ResourceLimitError
    from rltransfer.limits import read_bytes, read_stream

    path = Path(path)
    try:
        raw = read_bytes(path, max_bytes, "stored evaluation record")
        out: dict[str, np.ndarray] = {}
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            if len(archive.infolist()) > max_members:
                raise ResourceLimitError(f"{path}: more than {max_members} arrays")
            for info in archive.infolist():
                with archive.open(info) as fh:
                    version = np.lib.format.read_magic(fh)
                    header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                              else np.lib.format.read_array_header_2_0)
                    shape, fortran, dtype = header(fh)
                    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
                    if dtype.hasobject or dtype.kind not in "biuf" or count > max_elements:
                        raise ResourceLimitError(
                            f"{path}: member {info.filename!r} holds {dtype} x {count:,}; expected at most "
                            f"{max_elements:,} numbers"
                        )
                    data = read_stream(fh, count * dtype.itemsize, f"{path}: member {info.filename!r}")
                if len(data) != count * dtype.itemsize:
                    raise BundleError(f"{path}: member {info.filename!r} is truncated")
                array = np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")
                out[info.filename.removesuffix(".npy")] = array.copy()
        return out
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        if isinstance(exc, BundleError):
            raise
        raise BundleError(f"{path}: not a readable evaluation record ({type(exc).__name__}: {exc})") from None


def read_json(path: Path, what: str = "stored record") -> Any:
    """Read a JSON file written by rltransfer (status, task, suite, detection records) as untrusted input:
    at most :data:`~rltransfer.limits.MAX_JSON_BYTES`, UTF-8, nesting bounded.

    Raises:
        BundleError: unreadable, not UTF-8, not JSON, or over the budget (one line naming the file).
    """
    from rltransfer.errors import BundleError, ResourceLimitError
    from rltransfer.limits import MAX_JSON_BYTES, check_structure, read_bytes

    path = Path(path)
    try:
        data = json.loads(read_bytes(path, MAX_JSON_BYTES, what).decode("utf-8"))
    except ResourceLimitError:
        raise
    except OSError as exc:
        raise BundleError(f"{path}: cannot read {what}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise BundleError(f"{path}: {what} is not UTF-8 text") from None
    except RecursionError:
        raise ResourceLimitError(f"{path}: {what} is nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise BundleError(f"{path}: {what} is not valid JSON ({exc})") from None
    check_structure(data, str(path))
    return data


def check_run_dir(run_dir: Path) -> str:
    """Refuse a run directory that holds a finished or a live run (nothing is created or changed).

    Returns:
        Its :func:`run_state`.

    Raises:
        ConfigError: a finished run (or a bundle without any status), or a live one.
    """
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"run directory {run_dir} exists and is not a directory")
    state = run_state(run_dir)
    if state == "done" or (state == "missing" and (run_dir / "policy").exists()):
        raise ConfigError(f"run directory {run_dir} already holds a finished run; choose another --name or --out")
    if state == "alive":
        data = read_status(run_dir)
        raise ConfigError(
            f"run directory {run_dir} is in use by a live run (pid {data.get('pid')} on host "
            f"{data.get('host')!r}, status {data.get('status')}); choose another --name or --out, or stop it"
        )
    return state


def claim_run_dir(run_dir: Path) -> None:
    """Make ``run_dir`` ready for a new run, or refuse.

    * finished (status done): refused, as is a folder holding a bundle without any status;
    * alive (pending/running, owner process alive): refused, naming the pid and host;
    * dead (owner gone or heartbeat stale) or failed: its contents are removed (logged) and reused;
    * no status: created if needed; temporaries a crashed writer left (``.policy.tmp-*`` ...) are removed.

    Raises:
        ConfigError: the directory holds a finished or a live run.
    """
    run_dir = Path(run_dir)
    state = check_run_dir(run_dir)
    if state in ("dead", "failed", "interrupted"):
        logger.warning("run directory %s holds a %s run (status %s); replacing it", run_dir, state,
                       read_status(run_dir).get("status"))
        for child in list(run_dir.iterdir()):
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    else:
        removed = clean_residue(run_dir)
        if removed:
            logger.warning("removed %d temporary file(s) left in %s by an interrupted run", len(removed), run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
