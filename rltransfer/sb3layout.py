"""What rltransfer knows about Stable-Baselines3's layout, in one place.

The algorithms rltransfer drives and their groups (on-policy, off-policy, continuous-only, which take
``use_sde``), SB3's default activation and policy class per algorithm, the allowlists of activation
functions and optimizers a config or a policy file may name, and how SB3 names the tensors of a policy's
state dict (the role of each tensor, the layer sizes of an MLP, the layers SB3 < 1.8 shared between the
policy and value nets, the number of critics).

Nothing here reads files or builds models. The module imports only :mod:`rltransfer.errors`; torch and
Stable-Baselines3 are imported when a class is asked for (:func:`activation_classes`,
:func:`optimizer_classes`, :func:`algo_class`), so config validation stays light.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rltransfer.errors import unknown_name

if TYPE_CHECKING:
    import torch
    from stable_baselines3.common.base_class import BaseAlgorithm

# ------------------------------------------------------------------------------------------ algorithms

#: Algorithms rltransfer trains, transfers between, and reads from SB3 zips (lower-case names).
ALGOS: tuple[str, ...] = ("ppo", "a2c", "sac", "td3", "dqn")
#: Algorithms built on SB3's ``ActorCriticPolicy`` (net_arch is ``dict(pi=..., vf=...)``).
ON_POLICY: tuple[str, ...] = ("ppo", "a2c")
#: Algorithms with a replay buffer (and critics or Q-networks with target copies).
OFF_POLICY: tuple[str, ...] = ("sac", "td3", "dqn")
#: Algorithms for continuous (Box) actions only; they take ``action_noise``.
CONTINUOUS_ONLY: tuple[str, ...] = ("sac", "td3")
#: Algorithms whose constructors take ``use_sde`` (generalized state-dependent exploration).
SDE_ALGOS: tuple[str, ...] = ("ppo", "a2c", "sac")
#: SB3's default activation per algorithm, when ``policy_kwargs`` names none.
DEFAULT_ACTIVATION: dict[str, str] = {
    "ppo": "Tanh", "a2c": "Tanh", "sac": "ReLU", "td3": "ReLU", "dqn": "ReLU",
}
#: The SB3 policy class each algorithm's ``MlpPolicy`` is (same class: tensors correspond).
POLICY_CLASS: dict[str, str] = {
    "ppo": "ActorCriticPolicy", "a2c": "ActorCriticPolicy", "sac": "SACPolicy", "td3": "TD3Policy",
    "dqn": "DQNPolicy",
}
#: Policy names a config may give (``policy:``).
POLICIES: tuple[str, ...] = ("MlpPolicy",)


@functools.cache
def algo_classes() -> dict[str, type[BaseAlgorithm]]:
    """Lower-case algorithm name -> SB3 class (imports Stable-Baselines3 on first call)."""
    from stable_baselines3 import A2C, DQN, PPO, SAC, TD3

    return {"ppo": PPO, "a2c": A2C, "sac": SAC, "td3": TD3, "dqn": DQN}


def algo_class(name: str) -> type[BaseAlgorithm]:
    """The SB3 class for an algorithm name (case-insensitive).

    Raises:
        UnknownNameError: for a name outside :data:`ALGOS`.
    """
    try:
        return algo_classes()[name.lower()]
    except KeyError:
        raise unknown_name("algorithm", name, ALGOS) from None


def constructor_params(cls: type[BaseAlgorithm]) -> set[str]:
    """Names of the keyword arguments an SB3 algorithm's constructor accepts."""
    return set(inspect.signature(cls.__init__).parameters) - {"self", "policy", "env"}


# --------------------------------------------------------------------------------------------- allowlists

#: Activation functions a config or policy file may name. Anything else is refused rather than imported.
ACTIVATION_NAMES: tuple[str, ...] = (
    "ReLU", "Tanh", "ELU", "LeakyReLU", "GELU", "SiLU", "Sigmoid", "Softplus", "Identity",
)
#: Optimizers a policy file may name.
OPTIMIZER_NAMES: tuple[str, ...] = ("Adam", "AdamW", "RMSprop", "SGD")


@functools.cache
def activation_classes() -> dict[str, type[torch.nn.Module]]:
    """The activation allowlist: name -> ``torch.nn`` class (imports torch on first call)."""
    import torch

    return {name: getattr(torch.nn, name) for name in ACTIVATION_NAMES}


@functools.cache
def optimizer_classes() -> dict[str, type[torch.optim.Optimizer]]:
    """The optimizer allowlist: name -> ``torch.optim`` class (imports torch on first call)."""
    import torch

    return {name: getattr(torch.optim, name) for name in OPTIMIZER_NAMES}


# --------------------------------------------------------------------------------- state-dict layout

#: Output heads a strategy may select (the ``head`` of a :class:`Role`).
HEADS: tuple[str, ...] = ("policy", "value", "critic", "q")


@dataclass(frozen=True)
class Role:
    """What a tensor of an SB3 policy is, for shape-aware copying and strategies.

    Attributes:
        network: the branch it belongs to (``pi``, ``vf``, ``qf0``, ``q``, ...).
        depth: index of its layer within the branch (0 = first), or -1 for heads/unknown.
        head: ``policy``/``value``/``critic``/``q`` for output layers, else None.
        input: ``obs`` or ``obs+act`` when dimension 1 of this weight reads the observation (and action).
        output_axis: axis indexed by action (rows of the policy head, columns of gSDE ``log_std``), or None.
        target_net: a target network (synced from its online twin after transfer).
    """

    network: str
    depth: int = -1
    head: str | None = None
    input: str | None = None
    output_axis: int | None = None
    target_net: bool = False

    @property
    def feature(self) -> bool:
        return self.head is None and self.depth >= 0


def role_text(role: Role) -> str:
    """A short human description of a role (``pi layer 0``, ``value head``, ``target network (qf0)``)."""
    if role.target_net:
        return f"target network ({role.network})"
    if role.head:
        return f"{role.head} head"
    if role.depth >= 0:
        return f"{role.network} layer {role.depth}"
    return role.network


def _seq_index(keys: Sequence[str], prefix: str) -> list[int]:
    pattern = re.compile(re.escape(prefix) + r"\.(\d+)\.weight$")
    return sorted({int(m.group(1)) for k in keys if (m := pattern.match(k))})


def tensor_roles(algo: str, keys: Sequence[str], shapes: dict[str, tuple[int, ...]]) -> dict[str, Role]:
    """Roles of every tensor of an SB3 policy state dict (SB3 >= 1.8 naming)."""
    roles: dict[str, Role] = {}
    for key in keys:
        roles[key] = _role(algo, key, keys, shapes)
    return roles


def _role(algo: str, key: str, keys: Sequence[str], shapes: dict[str, tuple[int, ...]]) -> Role:
    is_weight = key.endswith(".weight")
    if algo in ON_POLICY:
        m = re.match(r"^mlp_extractor\.(policy_net|value_net|shared_net)\.(\d+)\.(weight|bias)$", key)
        if m:
            layers = _seq_index(keys, f"mlp_extractor.{m.group(1)}")
            depth = layers.index(int(m.group(2)))
            net = {"policy_net": "pi", "value_net": "vf", "shared_net": "shared"}[m.group(1)]
            return Role(net, depth, input="obs" if depth == 0 and is_weight else None)
        if key.startswith("action_net."):
            no_hidden = not _seq_index(keys, "mlp_extractor.policy_net")
            return Role("pi", head="policy", output_axis=0, input="obs" if no_hidden and is_weight else None)
        if key.startswith("value_net."):
            no_hidden = not _seq_index(keys, "mlp_extractor.value_net")
            return Role("vf", head="value", input="obs" if no_hidden and is_weight else None)
        if key == "log_std":
            return Role("pi", head="policy", output_axis=0 if len(shapes[key]) == 1 else 1)
        return Role("other")
    if algo in CONTINUOUS_ONLY:
        m = re.match(r"^(critic|critic_target)\.qf(\d+)\.(\d+)\.(weight|bias)$", key)
        if m:
            layers = _seq_index(keys, f"{m.group(1)}.qf{m.group(2)}")
            idx = int(m.group(3))
            depth = layers.index(idx)
            last = idx == layers[-1]
            return Role(
                f"qf{m.group(2)}", depth, head="critic" if last else None,
                input="obs+act" if depth == 0 and is_weight else None, target_net=m.group(1) == "critic_target",
            )
    if algo == "sac":
        m = re.match(r"^actor\.latent_pi\.(\d+)\.(weight|bias)$", key)
        if m:
            depth = _seq_index(keys, "actor.latent_pi").index(int(m.group(1)))
            return Role("pi", depth, input="obs" if depth == 0 and is_weight else None)
        no_hidden = not _seq_index(keys, "actor.latent_pi")
        if re.match(r"^actor\.mu(\.0)?\.(weight|bias)$", key):
            return Role("pi", head="policy", output_axis=0, input="obs" if no_hidden and is_weight else None)
        if key.startswith("actor.log_std"):
            if key == "actor.log_std":  # gSDE: (latent, action)
                return Role("pi", head="policy", output_axis=1)
            return Role("pi", head="policy", output_axis=0, input="obs" if no_hidden and is_weight else None)
    if algo == "td3":
        m = re.match(r"^(actor|actor_target)\.mu\.(\d+)\.(weight|bias)$", key)
        if m:
            layers = _seq_index(keys, f"{m.group(1)}.mu")
            idx = int(m.group(2))
            depth = layers.index(idx)
            last = idx == layers[-1]
            return Role(
                "pi", depth, head="policy" if last else None, input="obs" if depth == 0 and is_weight else None,
                output_axis=0 if last else None, target_net=m.group(1) == "actor_target",
            )
    if algo == "dqn":
        m = re.match(r"^(q_net|q_net_target)\.q_net\.(\d+)\.(weight|bias)$", key)
        if m:
            layers = _seq_index(keys, f"{m.group(1)}.q_net")
            idx = int(m.group(2))
            depth = layers.index(idx)
            last = idx == layers[-1]
            return Role(
                "q", depth, head="q" if last else None, input="obs" if depth == 0 and is_weight else None,
                output_axis=0 if last else None, target_net=m.group(1) == "q_net_target",
            )
    return Role("other")


def online_twin(key: str) -> str:
    """The online network's name for a target-network tensor (``critic_target.x`` -> ``critic.x``)."""
    return key.replace("critic_target.", "critic.").replace("actor_target.", "actor.").replace(
        "q_net_target.", "q_net.")


def layer_sizes(state_dict: Mapping[str, torch.Tensor], prefix: str) -> list[int]:
    """Output sizes of ``{prefix}{i}.weight`` for i in index order (the Linear layers of a Sequential)."""
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.weight$")
    found = []
    for key, tensor in state_dict.items():
        match = pattern.match(key)
        if match and tensor.ndim == 2:
            found.append((int(match.group(1)), int(tensor.shape[0])))
    return [size for _, size in sorted(found)]


def infer_net_arch(
    state_dict: Mapping[str, torch.Tensor], algo: str
) -> list[int] | dict[str, list[int]] | None:
    """Infer an MLP ``net_arch`` from tensor shapes, or ``None`` if the keys are not the MLP layout."""
    if algo in ON_POLICY:
        if (
            not any(k.startswith("mlp_extractor.") for k in state_dict)
            or "action_net.weight" not in state_dict
        ):
            return None
        return {
            "pi": layer_sizes(state_dict, "mlp_extractor.policy_net."),
            "vf": layer_sizes(state_dict, "mlp_extractor.value_net."),
        }
    if algo == "dqn":
        sizes = layer_sizes(state_dict, "q_net.q_net.")
        return sizes[:-1] if sizes else None
    qf = layer_sizes(state_dict, "critic.qf0.")
    if not qf:
        return None
    if algo == "sac":
        if "actor.latent_pi.0.weight" not in state_dict and not any(
            k.startswith("actor.mu") for k in state_dict
        ):
            return None
        pi = layer_sizes(state_dict, "actor.latent_pi.")
    else:  # td3: actor.mu is the whole MLP, the last Linear maps to the action
        pi = layer_sizes(state_dict, "actor.mu.")[:-1]
    qf = qf[:-1]
    return list(pi) if pi == qf else {"pi": pi, "qf": qf}


def split_shared_layers(state_dict: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], int]:
    """Turn an SB3 < 1.8 ``mlp_extractor.shared_net`` into separate policy and value layers.

    SB3 1.8 removed layers shared by the policy and value heads. A shared trunk ``f`` followed by
    heads ``g`` (policy) and ``h`` (value) computes exactly what two separate networks ``g(f(x))``
    and ``h(f'(x))`` compute when ``f'`` is a copy of ``f``, so the shared weights are copied into
    both ``policy_net`` and ``value_net`` and the head layers are moved up by two Sequential indices
    per shared layer (each Linear is followed by its activation).

    Returns:
        The converted state dict and the number of shared Linear layers (0 if there were none).
    """
    shared_prefix = "mlp_extractor.shared_net."
    shared_keys = [k for k in state_dict if k.startswith(shared_prefix)]
    if not shared_keys:
        return state_dict, 0
    n_shared = len(layer_sizes(state_dict, shared_prefix))
    offset = 2 * n_shared
    head_key = re.compile(r"^mlp_extractor\.(policy_net|value_net)\.(\d+)\.(.+)$")
    out: dict[str, torch.Tensor] = {}
    for key, tensor in state_dict.items():
        if key.startswith(shared_prefix):
            rest = key[len(shared_prefix) :]
            out[f"mlp_extractor.policy_net.{rest}"] = tensor.clone()
            out[f"mlp_extractor.value_net.{rest}"] = tensor.clone()
            continue
        match = head_key.match(key)
        if match:
            net, index, rest = match.groups()
            out[f"mlp_extractor.{net}.{int(index) + offset}.{rest}"] = tensor
        else:
            out[key] = tensor
    return out, n_shared


def count_critics(keys: Sequence[str] | Mapping[str, Any]) -> int:
    """Number of Q-networks (``critic.qf<i>.``) in a SAC/TD3 state dict (0 if there are none)."""
    return len({k.split(".")[1] for k in keys if re.match(r"critic\.qf\d+\.", k)})
