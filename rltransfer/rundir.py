"""The run directory: what every training or transfer run leaves behind, written so a crash loses nothing.

Layout (see README)::

    runs/<name>/
      config.yaml         resolved config (everything needed to rerun)
      command.txt         the command line, or the Python call, that started the run
      tb/                 TensorBoard event files
      eval.csv, eval.npz  evaluation curve: step, mean, std, n episodes (+ every return)
      policy/             the policy bundle
      transfer_plan.json  (transfer runs)
      status.json         pending | running | done | failed (+ error), written atomically, last
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

STATUSES = ("pending", "running", "done", "failed")


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
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


def write_status(run_dir: Path, status: str, **extra: Any) -> None:
    if status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
    atomic_write_json(Path(run_dir) / "status.json", {"status": status, "time": time.time(), **extra})


def read_status(run_dir: Path) -> dict[str, Any]:
    """The run's status; ``{"status": "missing"}`` when none was written, ``"corrupt"`` if unreadable."""
    path = Path(run_dir) / "status.json"
    if not path.is_file():
        return {"status": "missing"}
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {"status": "corrupt"}


def write_config(run_dir: Path, config: dict[str, Any], command: str) -> None:
    atomic_write_text(Path(run_dir) / "config.yaml", yaml.safe_dump(config, sort_keys=False))
    atomic_write_text(Path(run_dir) / "command.txt", command + "\n")
