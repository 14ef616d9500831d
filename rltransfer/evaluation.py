"""Evaluating a policy (a bundle, a run, or any SB3 zip) on an env family with any parameters, on one of
the family's variants (its params and sensors), or on a randomization preset's distribution.

The evaluation env is built by the run pipeline's builder (:func:`rltransfer.pipeline.build_eval_env`),
so it has the same wrapper stack as a run's envs: FamilyEnv, randomization wrappers, the policy's wrappers,
Monitor."""

from __future__ import annotations

import math
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from scipy import stats
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from rltransfer.bundle import LoadedPolicy, load_policy
from rltransfer.config import EnvFamily, load_family
from rltransfer.errors import ConfigError, IncompatibleSpacesError
from rltransfer.spec import EnvSpec, env_spec


@dataclass
class EvalResult:
    """Returns of ``n`` episodes with mean, sample std and a t-based 95% confidence interval of the mean.

    ``variant``: the variant evaluated on (its params are in ``params``, its sensors were applied);
    ``randomization``: the preset whose distribution the episodes were drawn from (``params`` are then the
    base values the preset's draws replace).
    """

    mean: float
    std: float
    ci95: tuple[float, float]
    returns: list[float]
    lengths: list[int]
    n_episodes: int
    env: str
    params: dict[str, float]
    policy: str
    variant: str | None = None
    randomization: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["ci95"] = list(self.ci95)
        return out


def set_threads(threads: int | None) -> None:
    """Limit torch to ``threads`` CPU threads (None: leave torch's setting), as a training run does.

    Raises:
        ConfigError: ``threads`` is not an integer in [1, 256].
    """
    if threads is None:
        return
    if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= 256:
        raise ConfigError(f"threads must be an integer in [1, 256], got {threads!r}")
    torch.set_num_threads(threads)


def mean_ci95(values: np.ndarray) -> tuple[float, float, tuple[float, float]]:
    """Mean, sample std (ddof=1) and the t-based 95% CI of the mean of ``values: (n,)``."""
    values = np.asarray(values, dtype=np.float64)
    mean = float(values.mean())
    if values.size < 2:
        return mean, 0.0, (mean, mean)
    std = float(values.std(ddof=1))
    half = float(stats.t.ppf(0.975, values.size - 1) * std / math.sqrt(values.size))
    return mean, std, (mean - half, mean + half)


def describe_space(space: gym.Space) -> str:
    if isinstance(space, gym.spaces.Box):
        return f"Box{tuple(space.shape)}"
    if isinstance(space, gym.spaces.Discrete):
        return f"Discrete({space.n})"
    if isinstance(space, gym.spaces.Dict):
        return "Dict(" + ", ".join(f"{key}: {describe_space(sub)}" for key, sub in space.spaces.items()) + ")"
    return repr(space)


def check_spaces(policy: LoadedPolicy, env: VecEnv, family: str) -> None:
    """Spaces of the policy and the env must agree (same type and shape; same n for Discrete)."""
    for label, mine, theirs in (
        ("Observation", policy.observation_space, env.observation_space),
        ("Action", policy.action_space, env.action_space),
    ):
        same = type(mine) is type(theirs) and mine.shape == theirs.shape
        if isinstance(mine, gym.spaces.Discrete) and isinstance(theirs, gym.spaces.Discrete):
            same = same and int(mine.n) == int(theirs.n)
        if not same:
            raise IncompatibleSpacesError(
                f"{label} spaces do not match: policy {policy.path} has {describe_space(mine)}, env family "
                f"{family!r} (with wrappers {[w.name for w in policy.wrappers]}) has {describe_space(theirs)}. "
                "Use `rltransfer transfer` to adapt the policy to this env."
            )


def eval_env_spec(
    policy: LoadedPolicy, family: EnvFamily, params: dict[str, float] | None = None, variant: str | None = None,
    randomize: str | Path | None = None,
) -> EnvSpec:
    """The env spec a policy is evaluated on: ``family`` with the policy's wrappers, the variant's params
    (``params`` override them) and sensors, and (``randomize``) the preset's randomization kept."""
    spec = env_spec(family, params, wrappers=policy.wrappers, randomize=randomize, variant=variant)
    return spec if randomize is not None else spec.evaluation()


def policy_env(policy: LoadedPolicy, family: EnvFamily | EnvSpec, params: dict[str, float] | None = None,
               seed: int = 0) -> VecEnv:
    """A 1-env VecEnv of ``family`` (or of an env spec from :func:`eval_env_spec`) with the policy's
    wrappers and frozen normalization statistics."""
    from rltransfer.pipeline import build_eval_env

    spec = family if isinstance(family, EnvSpec) else eval_env_spec(policy, family, params)
    venv: VecEnv = build_eval_env(spec, 1, seed)
    try:
        check_spaces(policy, venv, spec.family.name)
    except BaseException:
        venv.close()
        raise
    return _normalized(venv, policy)


def _normalized(venv: VecEnv, policy: LoadedPolicy) -> VecEnv:
    """``venv`` wrapped in the policy's observation normalization (frozen), if it has one."""
    if policy.normalization is None:
        return venv
    norm = VecNormalize(venv, training=False, norm_obs=policy.normalization.norm_obs, norm_reward=False)
    policy.normalization.apply_to(norm)
    return norm


def evaluate(
    policy: str | Path | LoadedPolicy,
    env: str | EnvFamily | None = None,
    params: dict[str, float] | None = None,
    episodes: int = 10,
    seed: int = 0,
    deterministic: bool = True,
    variant: str | None = None,
    randomize: str | Path | None = None,
    threads: int | None = 1,
    algo: str | None = None,
) -> EvalResult:
    """Return of a policy on an env family: ``episodes`` consecutive episodes of one env seeded with ``seed``.

    The same ``seed`` gives the same episodes (start states, variant noise, preset draws) to every policy.

    Args:
        policy: a bundle folder, a run directory, an SB3 zip, or an already loaded policy.
        env: family name or YAML path; defaults to the family recorded in the bundle (then also its
            training params and, unless ``variant`` is given, its training variant).
        params: parameter overrides for the family (on top of the variant's).
        episodes: number of episodes.
        seed: seed of the first episode.
        deterministic: act with the policy's mode (mean action / argmax), as SB3's evaluation does.
        variant: a variant of the family (e.g. ``"real"``): its params and its sensors (observation
            noise and bias, action noise, latency) are applied.
        randomize: a randomization preset of the family (or a preset YAML file): each episode's params and
            sensor effects are drawn from it, as in training (the "sim" distribution).
        threads: torch CPU threads, as training sets them (1 by default: small policies run fastest and
            reproducibly on one thread); None leaves torch's setting.
        algo: the algorithm of an SB3 zip whose data does not tell it (``--algo``).

    Recurrent policies (RecurrentPPO) carry their LSTM state from step to step and reset it at each
    episode start, as SB3's ``evaluate_policy`` does.

    Raises:
        UnknownNameError: an unknown variant or preset (with suggestions).
    """
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise ConfigError(f"episodes must be an integer >= 1, got {episodes!r}")
    set_threads(threads)
    loaded = policy if isinstance(policy, LoadedPolicy) else load_policy(policy, algo=algo)
    if env is None:
        if loaded.family_spec is None:
            raise ConfigError(f"{loaded.path}: the policy records no env family; pass --env")
        env = loaded.family_spec
        if variant is None:  # the training env: its variant and its non-nominal params
            variant = loaded.variant if loaded.variant in env.variants else None
            trained = {k: v for k, v in loaded.params.items() if k not in env.params or v != env.params[k].nominal}
            params = {**trained, **(params or {})}
    family = env if isinstance(env, EnvFamily) else load_family(env)
    spec = eval_env_spec(loaded, family, params, variant, randomize)
    values = dict(spec.params)
    venv = policy_env(loaded, spec, seed=seed)
    try:
        returns, lengths = evaluate_policy(
            loaded.model, venv, n_eval_episodes=episodes, deterministic=deterministic,
            return_episode_rewards=True, warn=False,
        )
    finally:
        venv.close()
    arr = np.asarray(returns, dtype=np.float64)
    mean, std, ci = mean_ci95(arr)
    return EvalResult(
        mean=mean, std=std, ci95=ci, returns=arr.tolist(), lengths=[int(n) for n in lengths],
        n_episodes=episodes, env=family.name, params=values, policy=str(loaded.path), variant=spec.variant,
        randomization=None if randomize is None else spec.randomization_name,
    )


# ------------------------------------------------------------------------------------------------ enjoy


@dataclass
class EnjoyResult:
    """What :func:`enjoy` ran: each episode's return and length, and the videos it wrote (if any)."""

    returns: list[float]
    lengths: list[int]
    env: str
    params: dict[str, float]
    videos: list[str]


def _render_env(policy: LoadedPolicy, spec: EnvSpec, seed: int, video: Path | None) -> tuple[VecEnv, Path | None]:
    """One env of ``spec`` built as every run builds its envs (:func:`rltransfer.pipeline._env_thunk`),
    rendered as RGB arrays, with Gymnasium's RecordVideo on top when ``video`` is given, frozen
    normalization over it."""
    from gymnasium.error import DependencyNotInstalled
    from gymnasium.wrappers import RecordVideo
    from stable_baselines3.common.vec_env import DummyVecEnv

    from rltransfer.errors import MissingDependencyError
    from rltransfer.pipeline import _env_thunk

    # RecordVideo writes into a folder it creates, inside a temporary one beside the video (removed after)
    folder = None if video is None else Path(tempfile.mkdtemp(prefix=f".{video.stem}.frames-", dir=video.parent)) / "v"

    def record(built: gym.Env) -> gym.Env:
        try:
            return RecordVideo(built, str(folder), episode_trigger=lambda _: True, name_prefix="episode",
                               disable_logger=True)
        except DependencyNotInstalled as exc:
            raise MissingDependencyError(
                f"recording a video needs moviepy ({exc}); install it with: pip install 'rltransfer[video]'"
            ) from None

    try:
        venv: VecEnv = DummyVecEnv([_env_thunk(spec, 0, seed, render_mode="rgb_array",
                                               outer=record if folder is not None else None)])
    except BaseException:
        if folder is not None:
            shutil.rmtree(folder.parent, ignore_errors=True)
        raise
    venv.seed(seed)
    try:
        check_spaces(policy, venv, spec.family.name)
    except BaseException:
        venv.close()
        raise
    return _normalized(venv, policy), folder


def enjoy(
    policy: str | Path | LoadedPolicy,
    env: str | EnvFamily | None = None,
    params: dict[str, float] | None = None,
    episodes: int = 1,
    seed: int = 0,
    deterministic: bool = True,
    variant: str | None = None,
    video: str | Path | None = None,
    threads: int | None = 1,
    algo: str | None = None,
) -> EnjoyResult:
    """Run a policy (bundle, run directory or any SB3 zip) on a family or variant, rendering each frame, and
    (``video``) record it with Gymnasium's ``RecordVideo``: one ``.mp4`` for one episode, else
    ``<stem>-episode-<i>.mp4`` beside ``video``. Recurrent policies carry their LSTM state across steps.

    Raises:
        MissingDependencyError: ``video`` without moviepy (``pip install 'rltransfer[video]'``), or a
            family whose rendering needs pygame.
        IncompatibleSpacesError: the policy's spaces do not fit the env.
    """
    from gymnasium.error import DependencyNotInstalled

    from rltransfer.errors import MissingDependencyError

    if isinstance(episodes, bool) or not isinstance(episodes, int) or not 1 <= episodes <= 1000:
        raise ConfigError(f"episodes must be an integer in [1, 1000], got {episodes!r}")
    set_threads(threads)
    loaded = policy if isinstance(policy, LoadedPolicy) else load_policy(policy, algo=algo)
    if env is None:
        if loaded.family_spec is None:
            raise ConfigError(f"{loaded.path}: the policy records no env family; pass --env")
        env = loaded.family_spec
    family = env if isinstance(env, EnvFamily) else load_family(env)
    spec = eval_env_spec(loaded, family, params, variant)
    target = None if video is None else Path(video)
    if target is not None:
        if target.suffix != ".mp4":
            raise ConfigError(f"--video {target}: expected a file name ending in .mp4")
        target.parent.mkdir(parents=True, exist_ok=True)
    try:
        venv, folder = _render_env(loaded, spec, seed, target)
    except DependencyNotInstalled as exc:
        raise MissingDependencyError(f"rendering {family.name!r} needs {exc}; pip install 'rltransfer[video]'") from None
    returns: list[float] = []
    lengths: list[int] = []
    videos: list[str] = []
    try:
        try:
            obs = venv.reset()
            state, starts = None, np.ones((1,), dtype=bool)
            steps = 0
            while len(returns) < episodes:
                action, state = loaded.model.predict(obs, state=state, episode_start=starts,
                                                     deterministic=deterministic)
                obs, rewards, dones, infos = venv.step(action)
                starts = dones
                steps += 1
                if dones[0]:
                    episode = infos[0].get("episode", {})
                    returns.append(float(episode.get("r", np.nan)))
                    lengths.append(int(episode.get("l", steps)))
                    steps = 0
        except DependencyNotInstalled as exc:
            raise MissingDependencyError(
                f"rendering {family.name!r} needs {exc}; pip install 'rltransfer[video]'") from None
        finally:
            venv.close()  # RecordVideo writes the last episode's file here
        if folder is not None and target is not None:
            recorded = sorted(folder.glob("episode-episode-*.mp4"), key=lambda p: int(p.stem.rsplit("-", 1)[-1]))
            for i, file in enumerate(recorded[:episodes]):
                out = target if episodes == 1 else target.with_name(f"{target.stem}-episode-{i}.mp4")
                file.replace(out)
                videos.append(str(out))
    finally:
        if folder is not None:
            shutil.rmtree(folder.parent, ignore_errors=True)
    return EnjoyResult(returns=returns, lengths=lengths, env=family.name, params=dict(spec.params), videos=videos)
