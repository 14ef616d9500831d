"""rltransfer: transfer learning for reinforcement learning on Stable-Baselines3 and Gymnasium.

Train source policies, transfer their weights into agents for new environments, and measure whether the
transfer helped, with honest statistics. The Python API and the ``rltransfer`` command offer the same
capabilities; each command is a thin call into a function re-exported here.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "evaluate",
    "load_agent",
    "load_bundle",
    "load_family",
    "load_policy",
    "make_env",
    "resume",
    "train",
]


def __getattr__(name: str):  # lazy: importing rltransfer stays cheap and free of side effects
    if name in ("load_family", "load_agent"):
        from rltransfer import config

        return getattr(config, name)
    if name == "make_env":
        from rltransfer.environments import make_env

        return make_env
    if name in ("train", "resume"):
        from rltransfer import pipeline

        return getattr(pipeline, name)
    if name in ("load_bundle", "load_policy"):
        from rltransfer import bundle

        return getattr(bundle, name)
    if name == "evaluate":
        from rltransfer.evaluation import evaluate

        return evaluate
    raise AttributeError(f"module 'rltransfer' has no attribute {name!r}")
