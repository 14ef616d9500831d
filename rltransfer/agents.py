"""Resolving an agent: a shipped name, an agent file of one's own, or an RL Zoo hyperparameter file.

The one place that tells the three apart (:func:`load_agent`), above the schemas (:mod:`rltransfer.config`)
and the Zoo's formats (:mod:`rltransfer.zoo`), so that neither needs the other's reader.
"""

from __future__ import annotations

from pathlib import Path

from rltransfer import resources
from rltransfer.config import AgentSpec, load_agent_file
from rltransfer.errors import ConfigError
from rltransfer.sb3layout import ALGOS
from rltransfer.zoo import ZOO_ALGO_NAMES, is_zoo_hyperparams, load_zoo_agent

__all__ = ["ZOO_PREFIX", "load_agent"]

#: ``--agent zoo:PATH`` / ``zoo:ALGO:PATH``: an RL Zoo hyperparameter file (see :func:`rltransfer.zoo.load_zoo_agent`).
ZOO_PREFIX = "zoo:"


def load_agent(name_or_path: str | Path, family: str, algo: str | None = None) -> AgentSpec:
    """Resolve an agent for one env family.

    * ``"ppo"``: the shipped ``agents/ppo.yaml``; a path to a file like it: that file
      (:func:`rltransfer.config.load_agent_file`: the family's section merged over the defaults).
    * ``"zoo:PATH"`` or ``"zoo:ALGO:PATH"``, or a path to a file that is recognisably the RL Zoo's
      (sections keyed by Gymnasium ids, or a ``config.yml`` saved beside a Zoo agent): the Zoo's
      hyperparameters for the family's Gymnasium id, read safely (:func:`rltransfer.zoo.load_zoo_agent`).

    Args:
        name_or_path: as above.
        family: the env family name.
        algo: the algorithm of a Zoo file whose name does not tell it (ignored for agent files, which
            name theirs).

    Raises:
        ConfigError: an unknown name (with the valid ones), a missing file, or a bad entry in the file.
    """
    text = str(name_or_path)
    if text.startswith(ZOO_PREFIX):
        rest = text[len(ZOO_PREFIX):]
        head, sep, tail = rest.partition(":")
        if sep and tail and head.lower() in (*ALGOS, *ZOO_ALGO_NAMES):
            algo, rest = head, tail
        if not Path(rest).is_file():
            raise ConfigError(f"--agent {text}: no such file {rest!r}; expected an RL Zoo hyperparameter file "
                              "(hyperparams/<algo>.yml, or a config.yml saved beside a Zoo agent)")
        return load_zoo_agent(rest, family, algo)
    path = resources.find("agents", name_or_path)
    given = Path(text)
    if (given.suffix in (".yml", ".yaml") or given.parent != Path(".")) and is_zoo_hyperparams(path):
        return load_zoo_agent(path, family, algo)
    return load_agent_file(path, family)
