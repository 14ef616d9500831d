"""rltransfer: transfer learning for reinforcement learning on Stable-Baselines3 and Gymnasium.

Train source policies, transfer their weights into agents for new environments, and measure whether the
transfer helped, with honest statistics. The Python API and the ``rltransfer`` command offer the same
capabilities; each command is a thin call into a function re-exported here, and every function takes
names (``"cartpole"``, ``"ppo"``, a path) and loaded objects alike:

=====================  ==========================================================================
command                function
=====================  ==========================================================================
``train``              :func:`train` (``rltransfer.pipeline.train``)
``transfer``           :func:`transfer` (``rltransfer.pipeline.transfer``)
``resume``             :func:`resume`
``evaluate``           :func:`evaluate`
``enjoy``              :func:`enjoy`
``inspect``            :func:`inspect_source`
``sim2real``           :func:`sim2real`
``sweep``              :func:`sweep`
``benchmark``/``demo`` :func:`run_suite` (also as :func:`benchmark`)
``report``             :func:`write_report` (also as :func:`report`)
``list``               :func:`list_names`
=====================  ==========================================================================

Building blocks: :func:`make_env` (one env of a family, by name), :func:`make_vec_env`,
:func:`load_family`, :func:`load_agent`, :func:`load_curriculum`, :func:`load_bundle`, :func:`load_policy`,
:func:`analyze`. Importing ``rltransfer`` is cheap: each name is imported on first use.
"""

from __future__ import annotations

import sys as _sys
import types as _types
from typing import Any as _Any

__version__ = "0.1.0"

#: Public name -> (module, attribute): imported on first use, so that ``import rltransfer`` stays cheap
#: and free of side effects.
_EXPORTS: dict[str, tuple[str, str]] = {
    "train": ("rltransfer.pipeline", "train"),
    "transfer": ("rltransfer.pipeline", "transfer"),
    "resume": ("rltransfer.pipeline", "resume"),
    "evaluate": ("rltransfer.evaluation", "evaluate"),
    "enjoy": ("rltransfer.evaluation", "enjoy"),
    "inspect_source": ("rltransfer.inspection", "inspect_source"),
    "sim2real": ("rltransfer.sim2real", "sim2real"),
    "sweep": ("rltransfer.sim2real", "sweep"),
    "run_suite": ("rltransfer.benchmark", "run_suite"),
    "benchmark": ("rltransfer.benchmark", "run_suite"),
    "write_report": ("rltransfer.report", "write_report"),
    "report": ("rltransfer.report", "write_report"),
    "analyze": ("rltransfer.analysis", "analyze"),
    "list_names": ("rltransfer.resources", "names"),
    "make_env": ("rltransfer.environments", "make_env"),
    "make_vec_env": ("rltransfer.environments", "make_vec_env"),
    "load_family": ("rltransfer.config", "load_family"),
    "load_agent": ("rltransfer.agents", "load_agent"),
    "load_curriculum": ("rltransfer.curricula", "load_curriculum"),
    "load_bundle": ("rltransfer.bundle", "load_bundle"),
    "load_policy": ("rltransfer.bundle", "load_policy"),
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> _Any:
    if name in _EXPORTS:
        import importlib

        module, attribute = _EXPORTS[name]
        value = getattr(importlib.import_module(module), attribute)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'rltransfer' has no attribute {name!r}")


def __dir__() -> list[str]:
    return list(__all__)


class _Package(_types.ModuleType):
    """``rltransfer`` itself: ``transfer``, ``benchmark``, ``sim2real`` and ``report`` name both a function
    exported here and a submodule. Importing the submodule (``from rltransfer.transfer import ...``, as the
    package does internally) would rebind the attribute to the module; here it stays the function, and
    the submodule stays importable through ``sys.modules`` as usual."""

    def __setattr__(self, name: str, value: _Any) -> None:
        if name in _EXPORTS and isinstance(value, _types.ModuleType):
            return
        super().__setattr__(name, value)


_sys.modules[__name__].__class__ = _Package
