"""The one loader for the YAML folders that ship with rltransfer (``envs/``, ``agents/``, ``curricula/``,
``benchmarks/``).

In a wheel they live in ``rltransfer/_data/<kind>/`` (mapped there by the build backend); in a source
checkout or an editable install they are the top-level folders of the repository. Nothing imports
them: they are read as data through :func:`find` and :func:`names`, via ``importlib.resources``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from rltransfer.errors import UnknownNameError, unknown_name

KINDS = ("envs", "agents", "curricula", "benchmarks")
_SUFFIXES = (".yaml", ".yml")


def _root(kind: str) -> Path | None:
    if kind not in KINDS:
        raise ValueError(f"unknown resource kind {kind!r}; valid: {KINDS}")
    packaged = resources.files("rltransfer").joinpath("_data", kind)
    if packaged.is_dir():
        return Path(str(packaged))
    source = Path(str(resources.files("rltransfer"))).parent / kind
    return source if source.is_dir() else None


def names(kind: str) -> list[str]:
    """Names of the shipped YAML files of a kind (file stem), sorted."""
    root = _root(kind)
    if root is None:
        return []
    return sorted(p.stem for p in root.iterdir() if p.suffix in _SUFFIXES)


def find(kind: str, name_or_path: str | Path) -> Path:
    """Resolve a shipped name (``cartpole``) or a path to a YAML file of one's own.

    Raises:
        UnknownNameError: neither a shipped name nor an existing file; lists the closest names.
    """
    candidate = Path(name_or_path)
    label = {"envs": "env family", "agents": "agent", "curricula": "curriculum", "benchmarks": "suite"}[kind]
    if candidate.suffix in _SUFFIXES or candidate.parent != Path("."):
        if candidate.is_file():
            return candidate
        shipped = names(kind)
        if candidate.is_dir():
            why = "is a directory, not a YAML file"
        else:
            why = f"no such file (from {Path.cwd()})"
        hint = (f"; the shipped {label} {candidate.stem!r} is available by name: give {candidate.stem!r} instead of "
                f"a path" if candidate.stem in shipped else "")
        raise UnknownNameError(
            f"{label} file {str(name_or_path)!r}: {why}{hint}. Shipped {label} names: {', '.join(shipped) or '(none)'}"
        )
    root = _root(kind)
    if root is not None:
        for suffix in _SUFFIXES:
            path = root / f"{name_or_path}{suffix}"
            if path.is_file():
                return path
    raise unknown_name(label, str(name_or_path), names(kind))
