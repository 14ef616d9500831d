"""Third-party agents the RL Zoo fixtures lack, built as small zips in the format their SB3 version wrote, and
the plain SB3 / sb3-contrib reference that rltransfer's reading of any such zip is compared against.

* :func:`plain_load` opens a zip with plain ``Algo.load``, passing every pickled ``data`` entry through
  ``custom_objects`` (so nothing in the file is unpickled: SB3 then loads ``policy.pth`` with
  ``weights_only=True``). The spaces and policy keyword arguments given are the ones the caller knows.
* The builders write: an SB3 1.x SAC (and TQC) with a fixed ``ent_coef``, whose ``pytorch_variables.pth``
  holds ``{'log_ent_coef': None, 'ent_coef_tensor': tensor}`` and whose ``data`` names ``gym`` spaces; and
  today's (SB3 2.9 / sb3-contrib 2.9) DDPG, CNN, RecurrentPPO, CrossQ and ARS (MLP) saves.

Used by ``tests/test_zoo_agents.py``, ``tests/test_contrib.py`` and ``benchmarks/scripts/zoo_table.py``.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.save_util import data_to_json
from stable_baselines3.common.vec_env import DummyVecEnv

# ---------------------------------------------------------------------------------------- the reference

#: Values for the pickled ``data`` entries that a model needs to be set up (everything else: None).
_SETUP_VALUES: dict[str, Any] = {
    "learning_rate": 0.0, "lr_schedule": lambda _: 0.0, "clip_range": 0.2, "clip_range_vf": None,
    "target_entropy": -1.0, "delta_std": 0.05, "delta_std_schedule": lambda _: 0.05, "train_freq": 1,
    "exploration_schedule": lambda _: 0.0, "buffer_size": 1, "replay_buffer_class": None,
}


def readable_policy_kwargs(path: Path) -> dict[str, Any]:
    """The JSON-readable entries of a zip's ``policy_kwargs`` (device and optimizer left out), with the
    activation class its printed name stands for (``<class 'torch.nn.modules.activation.ReLU'>``)."""
    with zipfile.ZipFile(path) as archive:
        raw = json.loads(archive.read("data")).get("policy_kwargs") or {}
    out = {k: v for k, v in raw.items()
           if not k.startswith(":") and not isinstance(v, str) and k not in ("device", "optimizer_kwargs")}
    activation = raw.get("activation_fn")
    if isinstance(activation, str) and activation.startswith("<class 'torch.nn.modules.activation."):
        out["activation_fn"] = getattr(torch.nn, activation.rsplit(".", 1)[-1].rstrip("'>"))  # e.g. ReLU
    return out


def plain_load(cls: type[BaseAlgorithm], path: Path, observation_space: spaces.Space, action_space: spaces.Space,
               policy_class: type | None = None, policy_kwargs: dict[str, Any] | None = None,
               **overrides: Any) -> BaseAlgorithm:
    """``cls.load(path)`` with every pickled ``data`` entry replaced (nothing in the file is unpickled).

    ``policy_class`` and ``policy_kwargs`` replace pickled ones (default: the algorithm's ``MlpPolicy``
    and the readable ``policy_kwargs``); ``overrides`` replace any other entry.
    """
    with zipfile.ZipFile(path) as archive:
        data = json.loads(archive.read("data"))
    custom: dict[str, Any] = {key: None for key, value in data.items()
                              if isinstance(value, dict) and ":serialized:" in value}
    custom.update({k: v for k, v in _SETUP_VALUES.items() if k in custom or k == "buffer_size"})
    custom.update(observation_space=observation_space, action_space=action_space,
                  policy_class=policy_class or cls.policy_aliases["MlpPolicy"],
                  policy_kwargs=readable_policy_kwargs(path) if policy_kwargs is None else policy_kwargs,
                  **overrides)
    if "buffer_size" not in data:
        custom.pop("buffer_size")
    return cls.load(path, device="cpu", custom_objects=custom)


def gym_env(env_id: str, seed: int = 0, **make_kwargs: Any) -> DummyVecEnv:
    """One ``gym.make(env_id)`` in a Monitor and a DummyVecEnv seeded like rltransfer's evaluation env."""
    venv = DummyVecEnv([lambda: Monitor(gym.make(env_id, **make_kwargs))])
    venv.seed(seed)
    return venv


def plain_returns(model: BaseAlgorithm, env_id: str, episodes: int, seed: int = 0) -> list[float]:
    """Returns of ``episodes`` deterministic episodes of ``model`` on ``gym.make(env_id)`` seeded ``seed``,
    as rltransfer's ``evaluate`` runs them (one env, consecutive episodes)."""
    venv = gym_env(env_id, seed)
    try:
        returns, _ = evaluate_policy(model, venv, n_eval_episodes=episodes, deterministic=True,
                                     return_episode_rewards=True, warn=False)
    finally:
        venv.close()
    return [float(r) for r in returns]


def same_actions(a: BaseAlgorithm, b: BaseAlgorithm, space: spaces.Space, n: int = 64, seed: int = 0) -> float:
    """Largest difference between the deterministic actions of two models on ``n`` sampled observations."""
    space.seed(seed)
    if isinstance(space, spaces.Dict):
        obs: Any = {k: np.stack([space[k].sample() for _ in range(n)]) for k in space.spaces}
    else:
        obs = np.stack([space.sample() for _ in range(n)])
    if isinstance(space, spaces.Box) and not np.all(np.isfinite(space.low)):
        obs = np.random.default_rng(seed).normal(size=(n, *space.shape)).astype(space.dtype)
    if isinstance(space, spaces.Dict):
        obs = {k: np.random.default_rng(seed).normal(size=v.shape).astype(np.float32) for k, v in obs.items()}
    x, _ = a.predict(obs, deterministic=True)
    y, _ = b.predict(obs, deterministic=True)
    return float(np.max(np.abs(np.asarray(x, dtype=np.float64) - np.asarray(y, dtype=np.float64))))


# ------------------------------------------------------------------------------------------ the builders


def _torch_bytes(obj: Any) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _gym_types(entry: Any) -> Any:
    """Old ``gym`` type names in the readable fields, as SB3 1.x wrote them (``gym.spaces.box.Box``)."""
    if isinstance(entry, dict):
        return {k: _gym_types(v) for k, v in entry.items()}
    if isinstance(entry, str):
        return entry.replace("'gymnasium.spaces.", "'gym.spaces.")
    return entry


def sb3_1x_zip(model: BaseAlgorithm, path: Path, version: str, pytorch_variables: dict[str, Any],
               drop: tuple[str, ...] = ()) -> Path:
    """``model`` as SB3 1.x's ``save_to_zip_file`` wrote it: ``data`` (old-gym type names, 1.x fields),
    ``pytorch_variables.pth`` as given, ``policy.pth`` and the optimizers, ``_stable_baselines3_version``
    (no ``system_info.txt``, which 1.x added only in 1.3)."""
    data = model.__dict__.copy()
    for key in (*model._excluded_save_params(), *drop):
        data.pop(key, None)
    state_dicts, _ = model._get_torch_save_params()
    for name in state_dicts:
        data.pop(name.split(".")[0], None)
    data["remove_time_limit_termination"] = False  # a 1.x field, gone from today's SB3
    serialized = json.dumps({k: _gym_types(v) for k, v in json.loads(data_to_json(data)).items()}, indent=4)
    params = {}
    for name in state_dicts:
        obj = model
        for part in name.split("."):
            obj = getattr(obj, part)
        params[name] = obj.state_dict()
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("data", serialized)
        archive.writestr("pytorch_variables.pth", _torch_bytes(pytorch_variables))
        for name, state in params.items():
            archive.writestr(f"{name}.pth", _torch_bytes(state))
        archive.writestr("_stable_baselines3_version", version)
    return path


def old_sac_fixed_ent_coef(folder: Path, algo: str = "sac") -> Path:
    """SB3 1.x SAC (or sb3-contrib 1.x TQC) on Pendulum-v1 with ``ent_coef=0.1``: its pytorch_variables.pth
    holds ``{'log_ent_coef': None, 'ent_coef_tensor': tensor(0.1)}``, as SB3 1.0-1.6 saved it."""
    from sb3_contrib import TQC
    from stable_baselines3 import SAC

    cls = {"sac": SAC, "tqc": TQC}[algo]
    model = cls("MlpPolicy", "Pendulum-v1", ent_coef=0.1, policy_kwargs={"net_arch": [16]}, buffer_size=1,
                learning_starts=0, seed=3, device="cpu", **({"top_quantiles_to_drop_per_net": 2} if algo == "tqc"
                                                            else {}))
    with torch.no_grad():  # weights that act: a deterministic, non-trivial policy
        for p in model.policy.parameters():
            p.normal_(0.0, 0.5, generator=torch.Generator().manual_seed(p.numel()))
    variables = {"log_ent_coef": None, "ent_coef_tensor": model.ent_coef_tensor.detach().clone()}
    return sb3_1x_zip(model, folder / f"{algo}-fixed-ent-coef-sb3-1.x.zip", "1.1.0" if algo == "sac" else "1.1.0a11",
                      variables)


def today_zip(folder: Path, name: str, make: Callable[[], BaseAlgorithm]) -> Path:
    """``make()``'s model saved by today's SB3 / sb3-contrib (``model.save``)."""
    model = make()
    path = folder / f"{name}.zip"
    model.save(path)
    return path


def _perturbed(model: BaseAlgorithm, seed: int = 0) -> BaseAlgorithm:
    with torch.no_grad():
        gen = torch.Generator().manual_seed(seed)
        for p in model.policy.parameters():
            if p.is_floating_point():
                p.add_(torch.randn(p.shape, generator=gen) * 0.3)
    if hasattr(model, "weights") and hasattr(model.policy, "load_from_vector"):
        model.weights = torch.nn.utils.parameters_to_vector(model.policy.parameters()).detach().clone()
    return model


def ddpg_zip(folder: Path) -> Path:
    from stable_baselines3 import DDPG

    return today_zip(folder, "ddpg-Pendulum-v1", lambda: _perturbed(DDPG(
        "MlpPolicy", "Pendulum-v1", policy_kwargs={"net_arch": [16]}, buffer_size=1, seed=0, device="cpu")))


def td3_zip(folder: Path) -> Path:
    from stable_baselines3 import TD3

    return today_zip(folder, "td3-Pendulum-v1", lambda: _perturbed(TD3(
        "MlpPolicy", "Pendulum-v1", policy_kwargs={"net_arch": [16]}, buffer_size=1, seed=0, device="cpu")))


class ImageEnv(gym.Env):
    """A 36x36 grayscale image observation (the smallest NatureCNN takes), two actions."""

    observation_space = spaces.Box(0, 255, (36, 36, 1), np.uint8)
    action_space = spaces.Discrete(2)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        return self.observation_space.sample(), 0.0, True, False, {}


def cnn_zip(folder: Path) -> Path:
    from stable_baselines3 import DQN

    return today_zip(folder, "dqn-image-cnn", lambda: DQN(
        "CnnPolicy", DummyVecEnv([ImageEnv]), buffer_size=1, policy_kwargs={"features_extractor_kwargs":
                                                                            {"features_dim": 8}}, device="cpu"))


def recurrent_zip(folder: Path) -> Path:
    from sb3_contrib import RecurrentPPO

    return today_zip(folder, "ppo_lstm-CartPole-v1", lambda: _perturbed(RecurrentPPO(
        "MlpLstmPolicy", "CartPole-v1", n_steps=16, batch_size=16,
        policy_kwargs={"lstm_hidden_size": 8, "net_arch": [8]}, seed=0, device="cpu"), seed=3))


def crossq_zip(folder: Path) -> Path:
    from sb3_contrib import CrossQ

    return today_zip(folder, "crossq-Pendulum-v1", lambda: _perturbed(CrossQ(
        "MlpPolicy", "Pendulum-v1", policy_kwargs={"net_arch": [16]}, buffer_size=1, seed=0, device="cpu")))


def ars_mlp_zip(folder: Path) -> Path:
    from sb3_contrib import ARS

    return today_zip(folder, "ars-Pendulum-v1", lambda: _perturbed(ARS(
        "MlpPolicy", "Pendulum-v1", policy_kwargs={"net_arch": [16]}, seed=0, device="cpu", zero_policy=False)))
