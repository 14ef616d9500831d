"""Domain randomization (rltransfer/randomization.py): presets and variants validated at load, values drawn
per episode and reproducible per worker, applied to the simulator, sensor wrappers, evaluation envs without
randomization, and the ``dr/*`` scalars of a training run."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import yaml
from tiny import tiny

from rltransfer import resources
from rltransfer.config import load_family, read_yaml
from rltransfer.environments import make_env, make_vec_env
from rltransfer.errors import ConfigError, ParameterBoundsError, UnknownNameError
from rltransfer.families import family_env
from rltransfer.pipeline import build_envs, train
from rltransfer.randomization import (
    RANDOMIZATION_WRAPPERS,
    ActionLatency,
    Latency,
    Noise,
    ObservationNoise,
    ParamDist,
    PhysicsRandomizer,
    preset_ranges,
    sample_param,
    variant_inside,
)
from rltransfer.spec import train_spec

FAMILIES = ["cartpole", "pendulum", "invertedpendulum", "hopper", "halfcheetah"]


def _chain(env: Any) -> list[str]:
    names = []
    while env is not None:
        names.append(type(env).__name__)
        env = getattr(env, "env", None)
    return names


def _family_file(tmp_path: Path, family: str, edit: Any) -> Path:
    """A copy of a shipped family file, changed by ``edit(data)``."""
    data = copy.deepcopy(read_yaml(resources.find("envs", family)))
    edit(data)
    path = tmp_path / f"{family}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _episodes(venv: Any, n_steps: int) -> list[list[tuple[dict, dict]]]:
    """Per worker: ``(env_params, dr)`` of each episode, at reset and at its last step (must agree)."""
    venv.reset()
    starts = [[(i["env_params"], i["dr"])] for i in venv.reset_infos]
    out: list[list[tuple[dict, dict]]] = [[] for _ in range(venv.num_envs)]
    for _ in range(n_steps):
        _, _, dones, infos = venv.step(np.array([venv.action_space.sample() for _ in range(venv.num_envs)]))
        for w, (done, info) in enumerate(zip(dones, infos)):
            if done:
                assert (info["env_params"], info["dr"]) == starts[w][-1]
                out[w].append((info["env_params"], info["dr"]))
                starts[w].append((venv.reset_infos[w]["env_params"], venv.reset_infos[w]["dr"]))
    return out


# ------------------------------------------------------------------------------------------- shipped


@pytest.mark.parametrize("family", FAMILIES)
def test_shipped_presets_and_variants_load(family: str) -> None:
    fam = load_family(family)
    assert "dr" in fam.randomization and "real" in fam.variants
    ranges = preset_ranges(fam.randomization["dr"])
    for name, (lo, hi) in ranges.items():
        assert fam.params[name].low <= lo <= hi <= fam.params[name].high
    inside = variant_inside(fam, "real", "dr")
    assert set(inside) == set(fam.variants["real"].params)
    assert any(inside.values()) and not all(inside.values())  # partly held out
    spec = train_spec(family, tiny("ppo", family), steps=64, variant="real")
    assert spec.env.variant == "real" and spec.eval.env.sensors == spec.env.sensors is not None
    for key, value in fam.variants["real"].params.items():
        assert spec.eval.env.params[key] == value


# -------------------------------------------------------------------------------------------- errors


def _set(path: list[str], value: Any):
    def edit(data: dict) -> None:
        node = data
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value

    return edit


@pytest.mark.parametrize("path,value,error,words", [
    (["randomization", "dr", "params", "torso_mass_scale", "high"], 9, ParameterBoundsError,
     ["randomization.dr.params.torso_mass_scale.high = 9 is outside the hard bounds [0.2, 5.0]"]),
    (["variants", "real", "params", "power"], 5.0, ParameterBoundsError,
     ["variants.real.params.power = 5 is outside the hard bounds [0.1, 3.0]"]),
    (["randomization", "dr", "params", "gravity", "values"], [9.8, 40], ParameterBoundsError,
     ["randomization.dr.params.gravity.values[1] = 40"]),
    (["randomization", "dr", "params", "torso_mas"], {"dist": "uniform", "low": 1, "high": 2}, UnknownNameError,
     ["randomization.dr.params", "'torso_mas'", "Did you mean", "torso_mass_scale"]),
    (["randomization", "dr", "variants"], {"choice": ["rael"]}, UnknownNameError,
     ["randomization.dr.variants.choice[0]", "'rael'", "Did you mean: 'real'"]),
    (["randomization", "dr", "latency"], {"steps": -1}, ConfigError, ["randomization.dr.latency.steps", "-1"]),
    (["randomization", "dr", "obs_noise"], {"std": -0.1}, ConfigError, ["randomization.dr.obs_noise.std", "-0.1"]),
    (["randomization", "dr", "params", "gravity"], {"dist": "choice", "values": []}, ConfigError,
     ["randomization.dr.params.gravity", "at least one value"]),
    (["randomization", "dr", "params", "friction"], {"dist": "uniform", "low": 1.0, "high": 0.7}, ConfigError,
     ["randomization.dr.params.friction", "low <= high"]),
    (["randomization", "dr", "latency"], {"low": 2, "high": 1}, ConfigError, ["randomization.dr.latency", "low <= high"]),
    (["randomization", "dr", "obs_nosie"], {"std": 0.1}, ConfigError,
     ["unknown key 'randomization.dr.obs_nosie'", "Did you mean: 'obs_noise'"]),
    (["randomization", "dr", "params", "power"], {"dist": "normal", "mean": 0.75, "low": 0.6, "high": 0.9},
     ConfigError, ["randomization.dr.params.power", "missing std"]),
])
def test_bad_presets_and_variants_fail_at_load_naming_file_and_key(
    tmp_path: Path, path: list[str], value: Any, error: type, words: list[str]
) -> None:
    file = _family_file(tmp_path, "hopper", _set(path, value))
    with pytest.raises(error) as info:
        load_family(file)
    message = str(info.value)
    assert str(file) in message
    for word in words:
        assert word in message


def test_unknown_preset_or_variant_names_suggest() -> None:
    with pytest.raises(UnknownNameError, match=r"preset 'rd'.*Did you mean: 'dr'\?.*Valid: dr"):
        train_spec("cartpole", tiny("ppo", "cartpole"), steps=64, randomize="rd")
    with pytest.raises(UnknownNameError, match=r"variant 'reel'.*Did you mean: 'real'\?"):
        train_spec("cartpole", tiny("ppo", "cartpole"), steps=64, variant="reel")


def test_overrides_of_a_randomized_parameter_are_refused() -> None:
    with pytest.raises(ConfigError, match="length.*also draws per episode"):
        train_spec("cartpole", tiny("ppo", "cartpole"), {"length": 0.8}, steps=64, randomize="dr")
    with pytest.raises(ConfigError, match="variant 'real'"):
        train_spec("cartpole", tiny("ppo", "cartpole"), steps=64, randomize="dr", variant="real")


# ----------------------------------------------------------------------------------- per episode, seeds


def test_values_are_drawn_per_episode_reported_in_info_and_reach_the_simulator() -> None:
    spec = train_spec("cartpole", tiny("ppo", "cartpole", n_envs=1), steps=64, randomize="dr", eval_episodes=1)
    venv, eval_env = build_envs(spec)
    try:
        venv.reset()
        current = venv.reset_infos[0]
        episodes = [current["dr"]["params"]]
        for _ in range(300):
            _, _, dones, infos = venv.step(np.array([venv.action_space.sample()]))
            if dones[0]:
                assert infos[0]["dr"]["params"] == episodes[-1]
                current = venv.reset_infos[0]
                episodes.append(current["dr"]["params"])
            read = venv.env_method("get_params")[0]  # the simulator's getters, every step
            for key, value in current["dr"]["params"].items():
                assert math.isclose(read[key], value)
            assert math.isclose(venv.get_attr("length")[0], current["env_params"]["length"])
            assert math.isclose(venv.get_attr("masspole")[0], current["env_params"]["pole_mass"])
        assert len(episodes) >= 5
        assert len({e["length"] for e in episodes}) == len(episodes)  # new values each episode
        assert {"params", "variant", "episode", "latency"} <= set(current["dr"])
    finally:
        venv.close()
        eval_env.close()


def _sampled(seed: int, n_envs: int = 2, vec_env: str = "dummy", steps: int = 200) -> list[list[dict]]:
    spec = train_spec("cartpole", tiny("ppo", "cartpole", n_envs=n_envs, vec_env=vec_env), steps=64, seed=seed,
                      randomize="dr", eval_episodes=1)
    venv, eval_env = build_envs(spec)
    try:
        return [[dr["params"] | {"latency": dr["latency"]} for _, dr in w] for w in _episodes(venv, steps)]
    finally:
        venv.close()
        eval_env.close()


def test_sampled_values_are_reproducible_from_the_seed_and_differ_across_workers() -> None:
    a, b, c = _sampled(3), _sampled(3), _sampled(4)
    assert a == b
    assert all(len(w) >= 3 for w in a)
    assert a[0][0] != a[1][0]
    assert a[0][0] != c[0][0]


@pytest.mark.parametrize("family,read", [
    ("cartpole", lambda venv, i: {"length": venv.get_attr("length", [i])[0],
                                  "pole_mass": venv.get_attr("masspole", [i])[0]}),
    ("invertedpendulum", None),
])
def test_subprocess_workers_sample_independently_and_apply_to_their_simulator(family: str, read: Any) -> None:
    spec = train_spec(family, tiny("ppo", family, n_envs=2, vec_env="subproc"), steps=64, randomize="dr",
                      eval_episodes=1)
    venv, eval_env = build_envs(spec)
    try:
        assert type(venv).__name__ == "SubprocVecEnv"
        venv.reset()
        seen: list[list[dict]] = [[], []]

        def check(i: int) -> None:
            info = venv.reset_infos[i]
            got = venv.env_method("get_params", indices=[i])[0]  # FamilyEnv's getters read the simulator
            for key, value in info["dr"]["params"].items():
                assert math.isclose(got[key], value, rel_tol=1e-5), (key, got[key], value)
            if read is not None:
                for key, value in read(venv, i).items():
                    assert math.isclose(value, info["env_params"][key])
            seen[i].append(info["dr"]["params"])

        for i in range(2):
            check(i)
        for _ in range(150):
            _, _, dones, _ = venv.step(np.array([venv.action_space.sample() for _ in range(2)]))
            for i in np.flatnonzero(dones):
                check(int(i))
        assert all(len(s) >= 2 for s in seen)
        assert seen[0][0] != seen[1][0]
        assert _sampled(0, 2, "subproc", 100) == _sampled(0, 2, "dummy", 100)
    finally:
        venv.close()
        eval_env.close()


# ---------------------------------------------------------------------------------------- distributions


def test_distributions_stay_in_their_support_with_the_right_moments() -> None:
    rng = np.random.default_rng(0)
    uni = [sample_param(ParamDist(dist="uniform", low=0.5, high=1.5), rng) for _ in range(4000)]
    log = [sample_param(ParamDist(dist="loguniform", low=0.1, high=10.0), rng) for _ in range(4000)]
    tn = [sample_param(ParamDist(dist="normal", mean=1.0, std=0.3, low=0.8, high=1.5), rng) for _ in range(4000)]
    ch = [sample_param(ParamDist(dist="choice", values=[9.6, 9.8, 10.0]), rng) for _ in range(600)]
    assert 0.5 <= min(uni) and max(uni) <= 1.5 and abs(np.mean(uni) - 1.0) < 0.03
    assert 0.1 <= min(log) and max(log) <= 10.0 and abs(np.mean(np.log(log))) < 0.1  # log-uniform: mean log 0
    assert 0.8 <= min(tn) and max(tn) <= 1.5
    # truncated-normal mean: mu + sigma * (phi(a) - phi(b)) / (Phi(b) - Phi(a))
    a, b = (0.8 - 1.0) / 0.3, (1.5 - 1.0) / 0.3
    pdf = lambda x: math.exp(-x * x / 2) / math.sqrt(2 * math.pi)
    cdf = lambda x: 0.5 * (1 + math.erf(x / math.sqrt(2)))
    expected = 1.0 + 0.3 * (pdf(a) - pdf(b)) / (cdf(b) - cdf(a))
    assert abs(np.mean(tn) - expected) < 0.01
    assert set(ch) == {9.6, 9.8, 10.0}


def test_a_truncation_window_in_the_far_tail_is_refused() -> None:
    with pytest.raises(ValueError, match="holds"):
        ParamDist(dist="normal", mean=0.0, std=0.1, low=5.0, high=6.0)


# ------------------------------------------------------------------------------------ sensor wrappers


class Recorder(gym.Wrapper):
    """Records the actions the env below receives and the observations it returns."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.actions: list[Any] = []
        self.observations: list[np.ndarray] = []

    def reset(self, **kwargs: Any) -> Any:
        obs, info = self.env.reset(**kwargs)
        self.observations.append(np.asarray(obs, dtype=np.float64))
        return obs, info

    def step(self, action: Any) -> Any:
        self.actions.append(np.array(action))
        out = self.env.step(action)
        self.observations.append(np.asarray(out[0], dtype=np.float64))
        return out


def test_latency_one_gives_the_env_the_previous_action() -> None:
    rec = Recorder(make_env(load_family("pendulum"), monitor=False))
    env = ActionLatency(rec, Latency(steps=1))
    _, info = env.reset(seed=0)
    assert info["dr"]["latency"] == 1
    sent = [np.array([v], dtype=np.float32) for v in (0.5, -1.0, 1.5, 2.0)]
    for a in sent:
        env.step(a)
    assert [float(a[0]) for a in rec.actions] == [0.0, 0.5, -1.0, 1.5]  # zeros first (neutral Box action)
    env.reset()
    env.step(np.array([1.0], dtype=np.float32))
    assert float(rec.actions[-1][0]) == 0.0  # the queue is refilled at reset

    rec = Recorder(make_env(load_family("cartpole"), monitor=False))
    env = ActionLatency(rec, Latency(steps=2))
    env.reset(seed=0)
    for a in (1, 0, 1, 1):
        env.step(a)
    assert [int(a) for a in rec.actions] == [1, 1, 1, 0]  # Discrete: the first action fills the queue


def test_observation_noise_and_bias_statistics() -> None:
    rec = Recorder(make_env(load_family("pendulum"), monitor=False))
    env = ObservationNoise(rec, Noise(std=0.1), Noise(std=[0.5, 0.5, 1.0]), seed=7)
    biases = []
    for _ in range(30):
        rec.observations.clear()
        first, info = env.reset()
        seen = [first]
        for _ in range(200):
            seen.append(env.step(env.action_space.sample())[0])
        diffs = np.asarray(seen, dtype=np.float64) - np.asarray(rec.observations)
        bias = np.asarray(info["dr"]["obs_bias"])
        assert np.allclose(diffs.mean(axis=0), bias, atol=0.03)  # constant within the episode
        assert np.allclose(diffs.std(axis=0), 0.1, rtol=0.15)  # per-step noise
        biases.append(bias)
    assert np.allclose(np.std(biases, axis=0), [0.5, 0.5, 1.0], rtol=0.4)  # drawn per episode


# ---------------------------------------------------------------------------------- nominal, evaluation


def test_without_a_preset_trajectories_equal_plain_envs() -> None:
    spec = train_spec("pendulum", tiny("ppo", "pendulum", n_envs=2), steps=64, seed=5, eval_episodes=1)
    venv, eval_env = build_envs(spec)
    plain = make_vec_env(load_family("pendulum"), None, 2, 5, "dummy", ())
    try:
        assert not any(n in _chain(venv.envs[0]) for n in ("PhysicsRandomizer", "ObservationNoise", "ActionLatency"))
        assert np.array_equal(venv.reset(), plain.reset())
        rng = np.random.default_rng(0)
        for _ in range(250):
            actions = rng.uniform(-2, 2, size=(2, 1)).astype(np.float32)
            a, b = venv.step(actions), plain.step(actions)
            for x, y in zip(a[:3], b[:3]):
                assert np.array_equal(x, y)
    finally:
        for v in (venv, eval_env, plain):
            v.close()


def test_evaluation_envs_drop_the_preset_but_keep_the_variant_sensors(tmp_path: Path) -> None:
    preset = tmp_path / "gravity_only.yaml"
    preset.write_text("family: cartpole\nparams:\n  gravity: {dist: uniform, low: 9.0, high: 10.5}\n"
                      "action_noise: {std: 0.1}\n")
    spec = train_spec("cartpole", tiny("ppo", "cartpole"), steps=64, randomize=preset, variant="real", eval_episodes=2)
    assert spec.env.randomization_name == "gravity_only" and spec.eval.env.randomization is None
    assert spec.eval.env.variant == "real" and spec.eval.env.params == spec.env.params
    with pytest.raises(Exception, match="ActionNoise needs a Box space"):
        build_envs(spec)  # CartPole's actions are discrete
    preset.write_text("family: cartpole\nparams:\n  gravity: {dist: uniform, low: 9.0, high: 10.5}\n"
                      "latency: {low: 0, high: 2}\n")
    spec = train_spec("cartpole", tiny("ppo", "cartpole"), steps=64, randomize=preset, variant="real", eval_episodes=2)
    venv, eval_env = build_envs(spec)
    try:
        train_chain = _chain(venv.envs[0])
        assert train_chain[:5] == ["EpisodeMonitor", "ActionLatency", "ActionLatency", "ObservationNoise", "PhysicsRandomizer"]
        for env in eval_env.envs:
            chain = _chain(env)
            assert chain[:4] == ["EpisodeMonitor", "ActionLatency", "ObservationNoise", "FamilyEnv"]
            assert not any(isinstance(w, PhysicsRandomizer) for w in _wrappers(env))
            assert family_env(env).params["pole_mass"] == 0.25
    finally:
        venv.close()
        eval_env.close()
    other = train_spec("cartpole", tiny("ppo", "cartpole"), steps=64, variant="real", eval_episodes=2)
    assert other.fingerprint() != spec.fingerprint()  # the preset's content is in the fingerprint


def _wrappers(env: Any) -> list[Any]:
    out = []
    while isinstance(env, gym.Wrapper):
        out.append(env)
        env = env.env
    return out


def test_a_preset_may_choose_a_variant_per_episode(tmp_path: Path) -> None:
    def edit(data: dict) -> None:
        data["variants"]["long"] = {"params": {"length": 1.0}}
        data["variants"]["heavy"] = {"params": {"pole_mass": 0.5, "length": 0.3}}
        data["randomization"]["multi"] = {"params": {"gravity": {"dist": "uniform", "low": 9.5, "high": 10.0}},
                                          "variants": {"choice": ["long", "heavy"]}}

    fam = load_family(_family_file(tmp_path, "cartpole", edit))
    spec = train_spec(fam, tiny("ppo", "cartpole", n_envs=1), steps=64, randomize="multi", eval_episodes=1)
    venv, eval_env = build_envs(spec)
    try:
        episodes = _episodes(venv, 300)[0]
        names = {dr["variant"] for _, dr in episodes}
        assert names == {"long", "heavy"}
        for params, dr in episodes:
            assert params == {**fam.nominal, **fam.variants[dr["variant"]].params, **dr["params"]}
    finally:
        venv.close()
        eval_env.close()


def test_randomization_wrappers_are_all_known() -> None:
    assert {c.__name__ for c in RANDOMIZATION_WRAPPERS} == {
        "PhysicsRandomizer", "ObservationNoise", "ActionNoise", "ActionLatency"}


# ------------------------------------------------------------------------------------------- logging


def test_training_with_a_preset_logs_dr_scalars(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = train("cartpole", tiny("ppo", "cartpole"), steps=192, out=tmp_path, name="dr", eval_freq=10_000,
                   eval_episodes=1, randomize="dr")
    acc = EventAccumulator(str(result.run_dir / "tb"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    for name in ("length", "pole_mass", "force_mag", "latency"):
        assert {f"dr/{name}_mean", f"dr/{name}_min", f"dr/{name}_max"} <= tags
    lo, hi = preset_ranges(load_family("cartpole").randomization["dr"])["length"]
    assert all(lo <= e.value <= hi for e in acc.Scalars("dr/length_mean"))
    assert "randomization_name: dr" in (result.run_dir / "config.yaml").read_text()
