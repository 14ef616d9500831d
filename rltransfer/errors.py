"""The exception hierarchy of rltransfer.

Every error a user can cause by what they type or by the files they point the toolkit at is an
:class:`RLTransferError`. The CLI turns these into one line on stderr and exit code 2; anything else
is a bug and keeps its traceback. Each class also derives from the matching builtin so that callers
who catch ``ValueError``/``TypeError``/``FileNotFoundError`` keep working.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class RLTransferError(Exception):
    """Base class of every user-facing error raised by rltransfer."""


class ConfigError(RLTransferError, ValueError):
    """A YAML file or a ``--set`` override is malformed: unknown key, wrong type, value out of range."""


class UnknownNameError(ConfigError, KeyError):
    """A name (env family, agent, strategy, curriculum, suite, parameter) that does not exist."""

    def __str__(self) -> str:  # KeyError would otherwise quote the whole message
        return str(self.args[0]) if self.args else ""


class ParameterBoundsError(ConfigError):
    """An env parameter outside the hard bounds its family declares."""


class BundleError(RLTransferError, ValueError):
    """A policy bundle or third-party zip is missing, truncated, altered or unreadable."""


class UnsafeFileError(BundleError):
    """A file asks to run code (a pickle global or YAML tag outside the allowlist) and was refused."""


class ResourceLimitError(BundleError, ConfigError):
    """A file would make rltransfer read, inflate or allocate more than its resource budget allows
    (see :mod:`rltransfer.limits`); also raised for configs, so it is a ``ValueError`` like the rest."""


class DivergenceError(RLTransferError, RuntimeError):
    """Training produced a non-finite observation, reward, loss, gradient or weight and was stopped."""


class IncompatibleSpacesError(RLTransferError, ValueError):
    """Observation or action spaces that cannot be matched without an explicit mapping."""


class TransferError(RLTransferError, ValueError):
    """A transfer that cannot be done as asked (algorithm pair, strategy option, tensor mapping)."""


class MissingDependencyError(RLTransferError, ImportError):
    """An optional dependency that the requested feature needs is not installed."""


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """Return ``" Did you mean: 'x'?"`` for the closest candidate, or ``""`` if none is close."""
    close = difflib.get_close_matches(name, list(candidates), n=3, cutoff=0.5)
    if not close:
        return ""
    return " Did you mean: " + ", ".join(repr(c) for c in close) + "?"


def unknown_name(kind: str, name: str, candidates: Iterable[str], where: str = "") -> UnknownNameError:
    """Build an :class:`UnknownNameError` that lists what is valid and the closest names."""
    cands = sorted(candidates)
    loc = f" in {where}" if where else ""
    return UnknownNameError(
        f"unknown {kind} {name!r}{loc}.{did_you_mean(name, cands)} Valid: {', '.join(cands) or '(none)'}"
    )
