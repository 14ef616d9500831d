"""Property test of the transfer planner's shape logic (rltransfer/plan.py): for random small source
and target state dicts and spaces, :func:`compute_plan` either returns a plan whose every new tensor has
exactly the target's shape, or raises an :class:`~rltransfer.errors.RLTransferError`, nothing else."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import torch
from gymnasium import spaces
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rltransfer.errors import RLTransferError
from rltransfer.plan import compute_plan
from rltransfer.strategies import parse_strategy

_dims = st.integers(min_value=1, max_value=4)


def _space(draw: Any, kind: str, n: int) -> spaces.Space:
    return spaces.Discrete(n) if kind == "discrete" else spaces.Box(-1.0, 1.0, (n,))


def _ppo_state(obs: int, act: int, hidden: list[int], box: bool) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = {}
    for net in ("policy_net", "value_net"):
        prev = obs
        for i, width in enumerate(hidden):
            state[f"mlp_extractor.{net}.{2 * i}.weight"] = torch.randn(width, prev)
            state[f"mlp_extractor.{net}.{2 * i}.bias"] = torch.randn(width)
            prev = width
    last = hidden[-1] if hidden else obs
    state["action_net.weight"] = torch.randn(act, last)
    state["action_net.bias"] = torch.randn(act)
    state["value_net.weight"] = torch.randn(1, last)
    state["value_net.bias"] = torch.randn(1)
    if box:
        state["log_std"] = torch.zeros(act)
    return state


@st.composite
def _scenario(draw: Any) -> dict[str, Any]:
    kind = draw(st.sampled_from(["box", "discrete"]))
    tgt_kind = draw(st.sampled_from([kind, kind, "box", "discrete"]))
    src_obs, tgt_obs = draw(_dims), draw(_dims)
    src_act, tgt_act = draw(_dims), draw(_dims)
    src_hidden = draw(st.lists(_dims, min_size=0, max_size=2))
    tgt_hidden = draw(st.sampled_from([src_hidden, draw(st.lists(_dims, min_size=0, max_size=2))]))
    source = _ppo_state(src_obs, src_act if kind == "box" else src_act + 1, src_hidden, kind == "box")
    # damage the source: drop, reshape or change the rank of some tensors
    for key in list(source):
        action = draw(st.sampled_from(["keep"] * 6 + ["drop", "reshape", "rank"]))
        if action == "drop":
            del source[key]
        elif action == "reshape":
            source[key] = torch.randn(tuple(draw(_dims) for _ in range(source[key].dim())))
        elif action == "rank":
            source[key] = torch.randn(tuple(draw(_dims) for _ in range(draw(st.integers(0, 3)))))
    obs_map = draw(st.one_of(
        st.none(), st.just("auto"),
        st.lists(st.one_of(st.none(), st.integers(-1, 5)), min_size=0, max_size=5),
    ))
    action_map = draw(st.one_of(st.none(), st.lists(st.one_of(st.none(), st.integers(-1, 5)), max_size=5)))
    return dict(
        source=SimpleNamespace(
            algo="ppo", path="source.zip", state_dict=source,
            observation_space=spaces.Box(-1.0, 1.0, (src_obs,)),
            action_space=_space(draw, kind, src_act + (0 if kind == "box" else 1)),
        ),
        target_state=_ppo_state(tgt_obs, tgt_act if tgt_kind == "box" else tgt_act + 1, tgt_hidden,
                                tgt_kind == "box"),
        target_obs=spaces.Box(-1.0, 1.0, (tgt_obs,)),
        target_act=_space(draw, tgt_kind, tgt_act + (0 if tgt_kind == "box" else 1)),
        obs_map=obs_map, action_map=action_map,
        strategy=draw(st.sampled_from(["finetune", "freeze", "reinit_heads"])),
    )


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_scenario())
def test_plan_shapes_or_documented_error(sc: dict[str, Any]) -> None:
    target_state = sc["target_state"]
    target = SimpleNamespace(
        observation_space=sc["target_obs"], action_space=sc["target_act"],
        policy=SimpleNamespace(state_dict=lambda: {k: v.clone() for k, v in target_state.items()}),
    )
    try:
        plan, new_sd = compute_plan(
            sc["source"], target, "ppo", parse_strategy(sc["strategy"]),
            obs_map=sc["obs_map"], action_map=sc["action_map"],
        )
    except RLTransferError:
        return
    for name, value in new_sd.items():
        assert tuple(value.shape) == tuple(target_state[name].shape), name
    for entry in plan.tensors:
        assert tuple(entry.target_shape) == tuple(target_state[entry.name].shape), entry.name
        if entry.transferred:
            assert entry.name in new_sd, entry.name
