"""The figure of issue 12: every RL Zoo fixture and every case built in ``tests/zoo_cases.py``, read by rltransfer
and by plain SB3 / sb3-contrib, evaluated on the same episodes, and used as a transfer source.

    .venv/bin/python benchmarks/scripts/zoo_table.py [--episodes 5] [--json out.json]

Columns: inspect ok; the true algorithm rltransfer names; zero-shot return with rltransfer (``evaluate`` on the
family that wraps the agent's env, seeds 0..) and with plain SB3 (``Algo.load`` with every pickled entry of the
zip replaced through ``custom_objects``, so nothing is unpickled, on ``gym.make(id)`` seeded the same way);
the largest difference of deterministic actions on sampled observations; the transfer start (the return of the
untrained transfer target, same family and algorithm, on the same episodes), or the refusal.

The plain-SB3 side of the PyBullet Hopper agent uses sb3-contrib's TimeFeatureWrapper and a VecNormalize whose
statistics come from rltransfer's restricted reader of the Zoo pickle (the pickle itself is never unpickled).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

import gymnasium as gym  # noqa: E402
import zoo_cases as zc  # noqa: E402
from conftest import FIXTURES  # noqa: E402

from rltransfer.bundle import load_policy  # noqa: E402
from rltransfer.errors import RLTransferError  # noqa: E402
from rltransfer.evaluation import evaluate, set_threads  # noqa: E402
from rltransfer.inspection import inspect_source  # noqa: E402
from rltransfer.pipeline import prepare_transfer  # noqa: E402


def _classes() -> dict[str, type]:
    from sb3_contrib import ARS, QRDQN, TQC, TRPO, CrossQ, RecurrentPPO
    from stable_baselines3 import A2C, DDPG, DQN, PPO, SAC, TD3

    return {"ppo": PPO, "a2c": A2C, "dqn": DQN, "sac": SAC, "td3": TD3, "ddpg": DDPG, "trpo": TRPO, "qrdqn": QRDQN,
            "ars": ARS, "tqc": TQC, "crossq": CrossQ, "recurrentppo": RecurrentPPO}


def _plain_hopper(model: Any, loaded: Any, episodes: int, seed: int) -> list[float]:
    import pybullet_envs_gymnasium  # noqa: F401  (registers HopperBulletEnv-v0)
    from sb3_contrib.common.wrappers import TimeFeatureWrapper
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    venv = DummyVecEnv([lambda: Monitor(TimeFeatureWrapper(gym.make("HopperBulletEnv-v0")))])
    venv.seed(seed)
    norm = VecNormalize(venv, training=False, norm_reward=False)
    loaded.normalization.apply_to(norm)
    try:
        returns, _ = evaluate_policy(model, norm, n_eval_episodes=episodes, deterministic=True,
                                     return_episode_rewards=True, warn=False)
    finally:
        norm.close()
    return [float(r) for r in returns]


def _fmt(returns: list[float] | None) -> str:
    if not returns:
        return "-"
    return f"{sum(returns) / len(returns):.2f}"


def row(label: str, path: Path, family: str | None, env_id: str | None, episodes: int) -> dict[str, Any]:
    out: dict[str, Any] = {"case": label, "file": path.name}
    try:
        info = inspect_source(path)
        out["inspect"] = "ok"
        out["algo"] = info["algo"]
    except RLTransferError as exc:
        out.update(inspect=f"refused: {exc}", algo="-")
        return out
    try:
        loaded = load_policy(path)
    except RLTransferError as exc:
        out["load"] = f"refused: {str(exc).split(': ', 1)[-1]}"
        return out
    cls = _classes()[loaded.algo]
    policy_class = type(loaded.model.policy)
    dict_obs = isinstance(loaded.observation_space, gym.spaces.Dict)
    extra = {"replay_buffer_kwargs": {}} if dict_obs else {}  # HER's kwargs: no replay buffer is needed here
    try:
        ref = zc.plain_load(cls, path, loaded.observation_space, loaded.action_space, policy_class=policy_class, **extra)
        out["max |action diff|"] = zc.same_actions(loaded.model, ref, loaded.observation_space, n=256)
    except Exception as exc:  # the reference failing is a finding, not a crash of the table
        ref = None
        out["plain SB3"] = f"fails: {type(exc).__name__}: {str(exc)[:120]}"
    n = 2 if family == "hopper" else episodes
    if family is None:
        out["zero-shot"] = "no env family (FetchReach needs gymnasium-robotics)"
    else:
        start = time.perf_counter()
        ours = evaluate(loaded, family, episodes=n, seed=0).returns
        out["seconds"] = round(time.perf_counter() - start, 1)
        out["rltransfer returns"] = ours
        if ref is not None:
            plain = (_plain_hopper(ref, loaded, n, 0) if family == "hopper" else zc.plain_returns(ref, env_id, n, 0))
            out["plain returns"] = plain
            out["same episodes"] = plain == ours
    try:
        if family is None:  # no env of its own: ask for a transfer anyway, to show the refusal
            prepare_transfer(loaded, "pendulum", algo=loaded.algo, steps=100_000)
        prepared = prepare_transfer(loaded, family, steps=100_000)
        try:
            target = dataclasses.replace(loaded, model=prepared.model, path=path)
            out["transfer start"] = evaluate(target, family, episodes=n, seed=0).returns
            out["plan"] = prepared.plan.summary()
        finally:
            prepared.venv.close()
            prepared.eval_env.close()
    except RLTransferError as exc:
        out["transfer start"] = f"refused: {str(exc)[:160]}"
    return out


def cases(folder: Path) -> list[tuple[str, Path, str | None, str | None]]:
    found = []
    if FIXTURES.exists():
        for name, family, env_id in [
            ("a2c-CartPole-v1", "cartpole", "CartPole-v1"), ("ppo-CartPole-v1", "cartpole", "CartPole-v1"),
            ("dqn-CartPole-v1", "cartpole", "CartPole-v1"), ("trpo-CartPole-v1", "cartpole", "CartPole-v1"),
            ("qrdqn-CartPole-v1", "cartpole", "CartPole-v1"), ("ars-CartPole-v1", "cartpole", "CartPole-v1"),
            ("sac-Pendulum-v1", "pendulum", "Pendulum-v1"), ("tqc-FetchReach-v1", None, None),
            ("ppo-HopperBulletEnv-v0", "hopper", "HopperBulletEnv-v0"),
        ]:
            found.append((f"fixture {name}", FIXTURES / f"{name}.zip", family, env_id))
    built = [
        ("SB3 1.x SAC, fixed ent_coef", zc.old_sac_fixed_ent_coef(folder), "pendulum", "Pendulum-v1"),
        ("sb3-contrib 1.x TQC, fixed ent_coef", zc.old_sac_fixed_ent_coef(folder, "tqc"), "pendulum", "Pendulum-v1"),
        ("SB3 2.9 DDPG", zc.ddpg_zip(folder), "pendulum", "Pendulum-v1"),
        ("SB3 2.9 TD3", zc.td3_zip(folder), "pendulum", "Pendulum-v1"),
        ("SB3 2.9 DQN CnnPolicy", zc.cnn_zip(folder), "cartpole", "CartPole-v1"),
        ("sb3-contrib 2.9 RecurrentPPO", zc.recurrent_zip(folder), "cartpole", "CartPole-v1"),
        ("sb3-contrib 2.9 CrossQ", zc.crossq_zip(folder), "pendulum", "Pendulum-v1"),
        ("sb3-contrib 2.9 ARS MlpPolicy", zc.ars_mlp_zip(folder), "pendulum", "Pendulum-v1"),
    ]
    return found + [(label, path, family, env_id) for label, path, family, env_id in built]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=5, help="episodes per evaluation (Hopper: 2)")
    parser.add_argument("--json", help="also write every row as JSON to this file")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    set_threads(1)
    rows = []
    with tempfile.TemporaryDirectory(prefix="zoo-table-") as folder:
        for label, path, family, env_id in cases(Path(folder)):
            rows.append(row(label, path, family, env_id, args.episodes))
            print(f"done: {label}", file=sys.stderr)
    print("| case | inspect | algorithm | zero-shot, rltransfer | zero-shot, plain SB3 | same episodes | "
          "max action diff | transfer start |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        zero = r.get("zero-shot") or _fmt(r.get("rltransfer returns")) if "load" not in r else r["load"]
        plain = r.get("plain SB3") or _fmt(r.get("plain returns"))
        start = r.get("transfer start", "-")
        start = _fmt(start) if isinstance(start, list) else start
        diff = r.get("max |action diff|", "-")
        print(f"| {r['case']} | {r['inspect'] if r['inspect'] == 'ok' else 'refused'} | {r.get('algo', '-')} | {zero} | "
              f"{plain if 'load' not in r else '-'} | {r.get('same episodes', '-')} | {diff} | {start} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
