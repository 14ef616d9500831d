"""Schedules reach every worker, on the env that reads them, and every worker says which one it applied.

The env side of curricula and ADR (:meth:`FamilyEnv.receive_schedule`,
:meth:`PhysicsRandomizer.receive_schedule`), through a VecEnv's ``env_method`` exactly as
:class:`~rltransfer.curricula.CurriculumCallback` sends them, for a DummyVecEnv and a SubprocVecEnv.
Values are checked by reading the unwrapped simulator back (``get_params``), not by trusting what was sent.
"""

from __future__ import annotations

import numpy as np
import pytest

from rltransfer.envsnapshot import restore_venv, snapshot_venv
from rltransfer.errors import ConfigError
from rltransfer.pipeline import _vec_env
from rltransfer.spec import env_spec

VEC = ["dummy", "subproc"]


def _episodes(venv, n: int, seed: int = 0) -> list[list[dict]]:
    """Step random actions until every env has finished ``n`` episodes; the terminal infos per env."""
    rng = np.random.default_rng(seed)
    done: list[list[dict]] = [[] for _ in range(venv.num_envs)]
    space = venv.action_space
    for _ in range(20_000):
        if all(len(d) >= n for d in done):
            return done
        if hasattr(space, "n"):
            actions = rng.integers(space.n, size=venv.num_envs)
        else:
            actions = rng.uniform(space.low, space.high, size=(venv.num_envs, *space.shape)).astype(space.dtype)
        _, _, dones, infos = venv.step(actions)
        for i, (d, info) in enumerate(zip(dones, infos)):
            if d:
                done[i].append(info)
    raise AssertionError("episodes did not end")


def _comparable(episodes: list[list[dict]]) -> list[list[dict]]:
    """Terminal infos without Monitor's wall-clock time, observations as lists."""
    out = []
    for per_env in episodes:
        rows = []
        for info in per_env:
            row = {k: v for k, v in info.items() if k != "terminal_observation"}
            row["episode"] = {k: v for k, v in info["episode"].items() if k != "t"}
            row["terminal_observation"] = np.asarray(info["terminal_observation"]).tolist()
            rows.append(row)
        out.append(rows)
    return out


@pytest.mark.parametrize("vec", VEC)
def test_params_reach_every_worker_and_each_reports_the_version(vec: str) -> None:
    venv = _vec_env(env_spec("cartpole"), 2, 0, vec)
    try:
        venv.reset()
        first = _episodes(venv, 1)
        assert all(info["schedule"] == {"version": 0} for per_env in first for info in per_env)
        venv.env_method("receive_schedule", 1, params={"length": 0.8})
        after = _episodes(venv, 2)
        for per_env in after:
            # the episode running when the schedule was sent may still carry version 0; the next one has 1
            assert per_env[1]["schedule"] == {"version": 1}
            assert per_env[1]["env_params"]["length"] == 0.8
        assert [p["length"] for p in venv.env_method("get_params")] == [0.8, 0.8]
        if vec == "subproc":
            return  # a worker that raises dies with its pipe: the errors are checked in-process below
        with pytest.raises(ConfigError, match="not newer"):
            venv.env_method("receive_schedule", 1, params={"length": 0.9}, indices=[0])
        with pytest.raises(ConfigError, match="needs a randomization preset"):
            venv.env_method("receive_schedule", 2, ranges={"length": [0.4, 0.5]}, indices=[0])
    finally:
        venv.close()


@pytest.mark.parametrize("vec", VEC)
def test_range_schedule_narrows_the_preset_draw_in_every_worker(vec: str) -> None:
    venv = _vec_env(env_spec("cartpole", randomize="dr"), 2, 0, vec)
    try:
        venv.reset()
        venv.env_method("receive_schedule", 1, ranges={"length": [0.65, 0.66], "cart_mass": [1.0, 1.0]})
        after = _episodes(venv, 3)
        for per_env in after:
            for info in per_env[1:]:
                assert info["schedule"] == {"version": 1}
                assert 0.65 <= info["dr"]["params"]["length"] <= 0.66
                assert info["dr"]["params"]["cart_mass"] == 1.0
                assert 8.0 <= info["dr"]["params"]["force_mag"] <= 12.0  # the others keep the preset's
        for params in venv.env_method("get_params"):
            assert 0.65 <= params["length"] <= 0.66 and params["cart_mass"] == 1.0
        if vec == "subproc":
            return  # a worker that raises dies with its pipe: the errors are checked in-process
        with pytest.raises(ConfigError, match="hard bounds"):
            venv.env_method("receive_schedule", 2, ranges={"length": [0.4, 9.0]}, indices=[0])
        with pytest.raises(ConfigError, match="choice"):
            venv.env_method("receive_schedule", 2, ranges={"gravity": [9.0, 10.0]}, indices=[0])
    finally:
        venv.close()


@pytest.mark.parametrize("vec", VEC)
def test_adr_boundary_episodes_report_bound_and_return_in_every_worker(vec: str) -> None:
    venv = _vec_env(env_spec("cartpole", randomize="dr"), 2, 0, vec)
    try:
        venv.reset()
        ranges = {"length": [0.5, 0.7], "pole_mass": [0.1, 0.1]}
        venv.env_method("receive_schedule", 1, adr={"ranges": ranges, "p_boundary": 1.0})
        after = _episodes(venv, 6)
        seen = set()
        for per_env in after:
            for info in per_env[1:]:
                adr = info["adr"]
                assert adr["version"] == 1 and "r" in info["episode"]
                assert adr["value"] == ranges[adr["param"]][0 if adr["side"] == "low" else 1]
                assert info["env_params"][adr["param"]] == adr["value"]
                seen.add((adr["param"], adr["side"]))
        assert len(seen) >= 3  # parameters and sides are chosen at random
        venv.env_method("receive_schedule", 2, adr={"ranges": ranges, "p_boundary": 0.0})
        later = _episodes(venv, 3)
        for per_env in later:
            for info in per_env[1:]:
                assert "adr" not in info and info["schedule"] == {"version": 2}
                assert 0.5 <= info["dr"]["params"]["length"] <= 0.7
    finally:
        venv.close()


@pytest.mark.pybullet
@pytest.mark.parametrize("vec", VEC)
def test_pybullet_schedule_reaches_the_simulator(vec: str) -> None:
    venv = _vec_env(env_spec("invertedpendulum", randomize="dr"), 2, 0, vec)
    try:
        venv.reset()
        venv.env_method("receive_schedule", 1, params={"cart_damping": 2.0},
                        adr={"ranges": {"power": [60.0, 60.0]}, "p_boundary": 0.5})
        after = _episodes(venv, 2)
        for per_env in after:
            assert per_env[1]["schedule"] == {"version": 1}
        for params in venv.env_method("get_params"):  # read from PyBullet
            assert params["cart_damping"] == 2.0 and params["power"] == 60.0
    finally:
        venv.close()


def test_schedule_without_a_preset_gets_a_randomizer_when_asked() -> None:
    venv = _vec_env(env_spec("cartpole"), 1, 0, "dummy", schedulable=True)
    try:
        venv.reset()
        venv.env_method("receive_schedule", 1, adr={"ranges": {"length": [0.6, 0.6]}, "p_boundary": 1.0})
        (per_env,) = _episodes(venv, 2)
        assert per_env[1]["adr"]["param"] == "length" and per_env[1]["env_params"]["length"] == 0.6
    finally:
        venv.close()


def test_schedule_state_survives_an_exact_snapshot() -> None:
    """Mid-episode, after a range schedule and an ADR schedule: snapshot, restore into a fresh venv, and both
    continue with the same draws, reports and versions."""
    spec = env_spec("cartpole", randomize="dr")
    a = _vec_env(spec, 2, 0, "dummy")
    b = _vec_env(spec, 2, 0, "dummy")
    try:
        a.reset()
        a.env_method("receive_schedule", 1, ranges={"length": [0.6, 0.65]})
        _episodes(a, 2)
        a.env_method("receive_schedule", 2, adr={"ranges": {"cart_mass": [1.0, 1.2]}, "p_boundary": 0.5})
        _episodes(a, 1)
        for _ in range(3):
            a.step(np.zeros(2, dtype=np.int64))
        b.reset()
        assert restore_venv(b, snapshot_venv(a), True, "test")
        ra, rb = _episodes(a, 4, seed=7), _episodes(b, 4, seed=7)
        assert _comparable(ra) == _comparable(rb)
        assert any("adr" in info for per_env in ra for info in per_env)
    finally:
        a.close()
        b.close()
