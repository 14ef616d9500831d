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

#: Algorithms rltransfer trains, transfers between, and reads from SB3 zips (lower-case names): SB3's own
#: (PPO, A2C, SAC, TD3, DQN, DDPG) and sb3-contrib's (TRPO, TQC, QR-DQN, ARS, CrossQ). RecurrentPPO zips
#: are read and evaluated, never trained or transferred (see :data:`READ_ONLY`).
ALGOS: tuple[str, ...] = (
    "ppo", "a2c", "sac", "td3", "dqn", "ddpg", "trpo", "tqc", "qrdqn", "ars", "crossq", "recurrentppo",
)
#: Algorithms rltransfer reads and evaluates but cannot train from an agent file or transfer, with why.
READ_ONLY: dict[str, str] = {
    "recurrentppo": (
        "RecurrentPPO's policy keeps an LSTM state across steps: its tensors (lstm_actor, lstm_critic, and "
        "an mlp_extractor that reads the LSTM's output, not the observation) correspond to no feed-forward "
        "policy, and transfer into a recurrent target is not implemented; evaluate it, or transfer from a "
        "feed-forward agent"
    ),
}
#: Algorithms built on SB3's ``ActorCriticPolicy`` (net_arch is ``dict(pi=..., vf=...)``): their tensors
#: correspond one to one.
ON_POLICY: tuple[str, ...] = ("ppo", "a2c", "trpo")
#: Algorithms with a replay buffer (and critics or Q-networks, most with target copies).
OFF_POLICY: tuple[str, ...] = ("sac", "td3", "dqn", "ddpg", "tqc", "qrdqn", "crossq")
#: Algorithms for continuous (Box) actions only; they take ``action_noise``.
CONTINUOUS_ONLY: tuple[str, ...] = ("sac", "td3", "ddpg", "tqc", "crossq")
#: Algorithms whose constructors take ``use_sde`` (generalized state-dependent exploration).
SDE_ALGOS: tuple[str, ...] = ("ppo", "a2c", "sac", "trpo", "tqc", "crossq", "recurrentppo")
#: Algorithms whose critics or Q-network output quantiles (``n_quantiles`` per critic or per action).
QUANTILE_ALGOS: tuple[str, ...] = ("tqc", "qrdqn")
#: Algorithms that come from sb3-contrib (imported when first asked for).
CONTRIB_ALGOS: tuple[str, ...] = ("trpo", "tqc", "qrdqn", "ars", "crossq", "recurrentppo")
#: SB3's default activation per algorithm, when ``policy_kwargs`` names none.
DEFAULT_ACTIVATION: dict[str, str] = {
    "ppo": "Tanh", "a2c": "Tanh", "sac": "ReLU", "td3": "ReLU", "dqn": "ReLU", "ddpg": "ReLU", "trpo": "Tanh",
    "tqc": "ReLU", "qrdqn": "ReLU", "ars": "ReLU", "crossq": "ReLU", "recurrentppo": "Tanh",
}
#: The SB3 policy class each algorithm's ``MlpPolicy`` is (same class: tensors correspond).
POLICY_CLASS: dict[str, str] = {
    "ppo": "ActorCriticPolicy", "a2c": "ActorCriticPolicy", "trpo": "ActorCriticPolicy", "sac": "SACPolicy",
    "td3": "TD3Policy", "ddpg": "TD3Policy", "dqn": "DQNPolicy", "tqc": "TQCPolicy", "qrdqn": "QRDQNPolicy",
    "ars": "ARSPolicy", "crossq": "CrossQPolicy", "recurrentppo": "RecurrentActorCriticPolicy",
}
#: Policy names a config may give (``policy:``): ``LinearPolicy`` is ARS's linear policy.
POLICIES: tuple[str, ...] = ("MlpPolicy", "LinearPolicy")
#: Pairs of different algorithms whose policies share a layout, and what corresponds between them: the
#: tensor-name prefixes transferred (``None``: every tensor, by name and shape) and why.
SHARED_LAYOUTS: dict[frozenset[str], tuple[tuple[str, ...] | None, str]] = {
    frozenset({"ppo", "a2c"}): (None, "same policy class (ActorCriticPolicy)"),
    frozenset({"ppo", "trpo"}): (None, "same policy class (ActorCriticPolicy)"),
    frozenset({"a2c", "trpo"}): (None, "same policy class (ActorCriticPolicy)"),
    frozenset({"ddpg", "td3"}): (None, "same policy class (TD3Policy); DDPG has one critic, TD3 two by default"),
    frozenset({"sac", "tqc"}): (
        ("actor.",),
        "same actor (SAC's squashed Gaussian); SAC's critics estimate a Q-value, TQC's a distribution of "
        "quantiles, so only the actor is transferred",
    ),
}


def shared_layout(source: str, target: str) -> tuple[tuple[str, ...] | None, str] | None:
    """What corresponds between the policies of two algorithms: ``(prefixes or None, why)``; ``None`` when
    the pair shares no layout (the same algorithm always does, entirely)."""
    if source == target:
        return None, f"same algorithm ({source.upper()})"
    return SHARED_LAYOUTS.get(frozenset({source, target}))


def policy_alias(algo: str, policy_class: str = "") -> str:
    """The SB3 policy alias that rebuilds ``policy_class`` for ``algo`` (``"MlpPolicy"``, ``"LinearPolicy"``,
    ``"MultiInputPolicy"``, ``"CnnPolicy"``, ``"MlpLstmPolicy"``...)."""
    name = policy_class or ""
    lstm = algo == "recurrentppo"
    if "MultiInput" in name:
        return "MultiInputLstmPolicy" if lstm else "MultiInputPolicy"
    if "Cnn" in name:
        return "CnnLstmPolicy" if lstm else "CnnPolicy"
    if algo == "ars" and ("Linear" in name):
        return "LinearPolicy"
    return "MlpLstmPolicy" if lstm else "MlpPolicy"


@functools.cache
def algo_classes() -> dict[str, type[BaseAlgorithm]]:
    """Lower-case algorithm name -> SB3 or sb3-contrib class (imports them on first call)."""
    from sb3_contrib import ARS, QRDQN, TQC, TRPO, CrossQ, RecurrentPPO
    from stable_baselines3 import A2C, DDPG, DQN, PPO, SAC, TD3

    return {"ppo": PPO, "a2c": A2C, "sac": SAC, "td3": TD3, "dqn": DQN, "ddpg": DDPG, "trpo": TRPO, "tqc": TQC,
            "qrdqn": QRDQN, "ars": ARS, "crossq": CrossQ, "recurrentppo": RecurrentPPO}


def algo_class(name: str) -> type[BaseAlgorithm]:
    """The SB3 (or sb3-contrib) class for an algorithm name (case-insensitive).

    Raises:
        UnknownNameError: for a name outside :data:`ALGOS`.
    """
    if not isinstance(name, str) or name.lower() not in ALGOS:
        raise unknown_name("algorithm", str(name), ALGOS)
    return algo_classes()[name.lower()]


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
        kind: what the branch is when it is not a plain MLP layer: ``quantile`` (TQC's quantile critics,
            QR-DQN's quantile net), ``lstm`` (RecurrentPPO), ``batchrenorm`` (CrossQ's normalization
            layers and their running statistics), ``linear`` (ARS's linear policy), or ``""``.
    """

    network: str
    depth: int = -1
    head: str | None = None
    input: str | None = None
    output_axis: int | None = None
    target_net: bool = False
    kind: str = ""

    @property
    def feature(self) -> bool:
        return self.head is None and self.depth >= 0


_KIND_TEXT = {"quantile": "quantile ", "lstm": "LSTM ", "batchrenorm": "batch-renorm ", "linear": "linear "}


def role_text(role: Role) -> str:
    """A short human description of a role (``pi layer 0``, ``value head``, ``target network (qf0)``,
    ``quantile critic head (qf0)``, ``quantile net layer 1``)."""
    kind = _KIND_TEXT.get(role.kind, "")
    if role.target_net:
        return f"target network ({kind}{role.network})"
    if role.head:
        if role.kind == "quantile":
            return f"quantile {role.head} head ({role.network})" if role.head == "critic" else "quantile head"
        return f"{kind}{role.head} head"
    if role.kind == "quantile":
        what = "critic " + role.network if role.network.startswith("qf") else "net"
        return f"quantile {what} layer {role.depth}"
    if role.depth >= 0:
        return f"{kind}{role.network} layer {role.depth}"
    return f"{kind}{role.network}".strip()


def _seq_index(keys: Sequence[str], prefix: str) -> list[int]:
    """Indices ``i`` of the Linear layers ``{prefix}.{i}.weight`` (2-D weights only when shapes are known)."""
    pattern = re.compile(re.escape(prefix) + r"\.(\d+)\.weight$")
    return sorted({int(m.group(1)) for k in keys if (m := pattern.match(k))})


def tensor_roles(algo: str, keys: Sequence[str], shapes: dict[str, tuple[int, ...]]) -> dict[str, Role]:
    """Roles of every tensor of an SB3 policy state dict (SB3 >= 1.8 naming)."""
    linear = [k for k in keys if k.endswith(".weight") and len(shapes.get(k, (0, 0))) == 2]
    roles: dict[str, Role] = {}
    for key in keys:
        roles[key] = _role(algo, key, linear, shapes)
    return roles


def _mlp_role(key: str, prefix: str, linear: Sequence[str], network: str, head: str | None, input_: str,
              target_net: bool = False, kind: str = "", output_axis: bool = True) -> Role | None:
    """Role of ``{prefix}.{i}.weight|bias`` in a Sequential MLP whose last Linear is ``head`` (None: the MLP
    has no head of its own). Tensors of other layers in the Sequential (CrossQ's BatchRenorm) come back with
    kind ``batchrenorm`` and the depth of the Linear that follows them."""
    m = re.match(re.escape(prefix) + r"\.(\d+)\.(\w+)$", key)
    if not m:
        return None
    layers = _seq_index(linear, prefix)
    idx, param = int(m.group(1)), m.group(2)
    if idx not in layers:
        following = [i for i in layers if i > idx]
        depth = layers.index(following[0]) if following else len(layers)
        return Role(network, depth, target_net=target_net, kind="batchrenorm")
    depth = layers.index(idx)
    last = head is not None and idx == layers[-1]
    return Role(
        network, depth, head=head if last else None,
        input=input_ if depth == 0 and param == "weight" else None,
        output_axis=0 if last and output_axis else None, target_net=target_net, kind=kind,
    )


def _role(algo: str, key: str, linear: Sequence[str], shapes: dict[str, tuple[int, ...]]) -> Role:
    is_weight = key.endswith(".weight")
    if algo in (*ON_POLICY, "recurrentppo"):
        m = re.match(r"^mlp_extractor\.(policy_net|value_net|shared_net)\.(\d+)\.(weight|bias)$", key)
        reads_obs = algo != "recurrentppo"  # RecurrentPPO's mlp_extractor reads the LSTM's output
        if m:
            layers = _seq_index(linear, f"mlp_extractor.{m.group(1)}")
            depth = layers.index(int(m.group(2))) if int(m.group(2)) in layers else -1
            net = {"policy_net": "pi", "value_net": "vf", "shared_net": "shared"}[m.group(1)]
            return Role(net, depth, input="obs" if depth == 0 and is_weight and reads_obs else None)
        if key.startswith("action_net."):
            no_hidden = not _seq_index(linear, "mlp_extractor.policy_net")
            return Role("pi", head="policy", output_axis=0,
                        input="obs" if no_hidden and is_weight and reads_obs else None)
        if key.startswith("value_net."):
            no_hidden = not _seq_index(linear, "mlp_extractor.value_net")
            return Role("vf", head="value", input="obs" if no_hidden and is_weight and reads_obs else None)
        if key == "log_std":
            return Role("pi", head="policy", output_axis=0 if len(shapes[key]) == 1 else 1)
        m = re.match(r"^(lstm_actor|lstm_critic)\.(weight|bias)_(ih|hh)_l(\d+)$", key)
        if m:
            net = "pi" if m.group(1) == "lstm_actor" else "vf"
            first = m.group(3) == "ih" and m.group(4) == "0" and m.group(2) == "weight"
            return Role(net, int(m.group(4)), input="obs" if first else None, kind="lstm")
        if re.match(r"^critic\.(weight|bias)$", key):  # RecurrentPPO without a critic LSTM
            return Role("vf", 0, input="obs" if is_weight else None)
        return Role("other")
    if algo in CONTINUOUS_ONLY:
        m = re.match(r"^(critic|critic_target)\.(qf\d+)\.", key)
        if m:
            role = _mlp_role(key, f"{m.group(1)}.{m.group(2)}", linear, m.group(2), "critic", "obs+act",
                             target_net=m.group(1) == "critic_target",
                             kind="quantile" if algo == "tqc" else "", output_axis=False)
            if role is not None:
                return role
    if algo in ("sac", "tqc", "crossq"):
        role = _mlp_role(key, "actor.latent_pi", linear, "pi", None, "obs")
        if role is not None:
            return role
        no_hidden = not _seq_index(linear, "actor.latent_pi")
        if re.match(r"^actor\.mu(\.0)?\.(weight|bias)$", key):
            return Role("pi", head="policy", output_axis=0, input="obs" if no_hidden and is_weight else None)
        if key.startswith("actor.log_std"):
            if key == "actor.log_std":  # gSDE: (latent, action)
                return Role("pi", head="policy", output_axis=1)
            return Role("pi", head="policy", output_axis=0, input="obs" if no_hidden and is_weight else None)
    if algo in ("td3", "ddpg"):
        m = re.match(r"^(actor|actor_target)\.mu\.", key)
        if m:
            role = _mlp_role(key, f"{m.group(1)}.mu", linear, "pi", "policy", "obs",
                             target_net=m.group(1) == "actor_target")
            if role is not None:
                return role
    if algo == "dqn":
        m = re.match(r"^(q_net|q_net_target)\.q_net\.", key)
        if m:
            role = _mlp_role(key, f"{m.group(1)}.q_net", linear, "q", "q", "obs",
                             target_net=m.group(1) == "q_net_target")
            if role is not None:
                return role
    if algo == "qrdqn":
        m = re.match(r"^(quantile_net|quantile_net_target)\.quantile_net\.", key)
        if m:
            # the head's rows are (action, quantile) pairs: n_actions x n_quantiles, not indexed by action alone
            role = _mlp_role(key, f"{m.group(1)}.quantile_net", linear, "q", "q", "obs",
                             target_net=m.group(1) == "quantile_net_target", kind="quantile", output_axis=False)
            if role is not None:
                return role
    if algo == "ars":
        if re.match(r"^action_net\.(weight|bias)$", key):  # ARS < 2.0's linear policy: one nn.Linear
            return Role("pi", head="policy", output_axis=0, input="obs" if is_weight else None, kind="linear")
        role = _mlp_role(key, "action_net", linear, "pi", "policy", "obs")
        if role is not None:
            if len(_seq_index(linear, "action_net")) == 1:
                return Role("pi", head="policy", output_axis=0, input=role.input, kind="linear")
            return role
    return Role("other")


#: Target-network prefixes and their online twins.
_TARGET_PREFIXES = (
    ("critic_target.", "critic."), ("actor_target.", "actor."), ("q_net_target.", "q_net."),
    ("quantile_net_target.", "quantile_net."),
)


def online_twin(key: str) -> str:
    """The online network's name for a target-network tensor (``critic_target.x`` -> ``critic.x``)."""
    for target, online in _TARGET_PREFIXES:
        if key.startswith(target):
            return online + key[len(target):]
    return key


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
    if algo in (*ON_POLICY, "recurrentppo"):
        if (
            not any(k.startswith("mlp_extractor.") for k in state_dict)
            or "action_net.weight" not in state_dict
        ):
            return None
        return {
            "pi": layer_sizes(state_dict, "mlp_extractor.policy_net."),
            "vf": layer_sizes(state_dict, "mlp_extractor.value_net."),
        }
    if algo in ("dqn", "qrdqn"):
        prefix = "q_net.q_net." if algo == "dqn" else "quantile_net.quantile_net."
        sizes = layer_sizes(state_dict, prefix)
        return sizes[:-1] if sizes else None
    if algo == "ars":
        if "action_net.weight" in state_dict:  # ARS < 2.0's linear policy
            return []
        sizes = layer_sizes(state_dict, "action_net.")
        return sizes[:-1] if sizes else None
    qf = layer_sizes(state_dict, "critic.qf0.")
    if not qf:
        return None
    if algo in ("sac", "tqc", "crossq"):
        if not any(k.startswith("actor.latent_pi.") for k in state_dict) and not any(
            k.startswith("actor.mu") for k in state_dict
        ):
            return None
        pi = layer_sizes(state_dict, "actor.latent_pi.")
    else:  # td3/ddpg: actor.mu is the whole MLP, the last Linear maps to the action
        pi = layer_sizes(state_dict, "actor.mu.")[:-1]
    qf = qf[:-1]
    return list(pi) if pi == qf else {"pi": pi, "qf": qf}


def infer_quantiles(state_dict: Mapping[str, torch.Tensor], algo: str, n_actions: int) -> int | None:
    """``n_quantiles`` from the output layer of TQC's first critic or QR-DQN's quantile net (None: unknown)."""
    if algo == "tqc":
        sizes = layer_sizes(state_dict, "critic.qf0.")
        return sizes[-1] if sizes else None
    if algo == "qrdqn":
        sizes = layer_sizes(state_dict, "quantile_net.quantile_net.")
        if sizes and n_actions > 0 and sizes[-1] % n_actions == 0:
            return sizes[-1] // n_actions
    return None


def infer_lstm_kwargs(state_dict: Mapping[str, torch.Tensor]) -> dict[str, Any] | None:
    """RecurrentPPO's LSTM settings from tensor shapes: ``lstm_hidden_size``, ``n_lstm_layers``,
    ``shared_lstm`` and ``enable_critic_lstm`` (None when there is no ``lstm_actor``)."""
    hh = state_dict.get("lstm_actor.weight_hh_l0")
    if hh is None or hh.ndim != 2:
        return None
    layers = len({k for k in state_dict if re.match(r"^lstm_actor\.weight_ih_l\d+$", k)})
    critic_lstm = "lstm_critic.weight_ih_l0" in state_dict
    critic_linear = "critic.weight" in state_dict
    return {
        "lstm_hidden_size": int(hh.shape[1]),
        "n_lstm_layers": layers,
        "shared_lstm": not critic_lstm and not critic_linear,
        "enable_critic_lstm": critic_lstm,
    }


def convert_legacy_keys(state_dict: dict[str, torch.Tensor], algo: str) -> tuple[dict[str, torch.Tensor], str]:
    """Rename tensors of layouts that older versions wrote into today's names.

    ARS < 2.0's linear policy was one ``nn.Linear`` (``action_net.weight``); today it is a Sequential
    holding that Linear (``action_net.0.weight``): same weights, same outputs.

    Returns:
        The state dict and a remark (``""`` when nothing changed).
    """
    if algo == "ars" and "action_net.weight" in state_dict:
        out = {("action_net.0." + k[len("action_net."):]) if re.match(r"^action_net\.(weight|bias)$", k) else k: v
               for k, v in state_dict.items()}
        return out, "ARS < 2.0 linear policy: action_net.weight/bias renamed action_net.0.weight/bias (today's layout)"
    return state_dict, ""


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
