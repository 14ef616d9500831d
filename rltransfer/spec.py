"""A run as one resolved, frozen spec: everything a training or transfer run needs, with every name
resolved to content.

The command line, :func:`rltransfer.train`, :func:`rltransfer.transfer` and every benchmark arm only build
a :class:`RunSpec`; :func:`rltransfer.pipeline.execute` is the one function that runs one. A spec holds the
env family's *content* (not its name or path), the agent with its hyperparameters, the policy's wrappers
and the training-only wrappers apart, the evaluation settings with their own env spec, and the slots later
features fill (randomization, curriculum, transfer source and strategy, online detection). Its
:meth:`RunSpec.fingerprint` is a hash of that content, so changing any value in any YAML a run depends on
changes the fingerprint of exactly the runs it affects.

``config.yaml`` in a run directory is :func:`dump_spec` of the run's spec (plus library versions) and
:func:`load_spec` reads it back into an equal spec.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rltransfer.agents import load_agent
from rltransfer.config import AgentSpec, EnvFamily, format_validation_error, load_family, read_yaml, validate
from rltransfer.errors import ConfigError
from rltransfer.randomization import Preset, PresetFile, Sensors, check_preset, get_preset, get_variant

__all__ = [
    "CheckpointSpec",
    "DetectionSpec",
    "EnvSpec",
    "EvalSpec",
    "RunSpec",
    "SourceRef",
    "TransferSpec",
    "WrapperEntry",
    "content_hash",
    "dump_spec",
    "env_spec",
    "eval_seed",
    "load_spec",
    "resolve_preset",
    "train_spec",
    "with_randomization",
]

#: Seeds of evaluation envs are offset from training seeds so that the two never share a start state.
EVAL_SEED_OFFSET = 1_000_003


def eval_seed(seed: int) -> int:
    return EVAL_SEED_OFFSET + int(seed)


def content_hash(data: Any, n: int = 16) -> str:
    """A short sha256 of JSON-able ``data`` (keys sorted): the fingerprint of content, not of names."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:n]


class Frozen(BaseModel):
    """Base of the spec models: immutable, unknown keys refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class WrapperEntry(Frozen):
    """A wrapper by registered name (:data:`rltransfer.wrappers.WRAPPERS`) and its keyword arguments."""

    name: str
    kwargs: dict[str, Any] = Field(default_factory=dict)

    def to_wrapper_spec(self) -> Any:
        from rltransfer.environments import WrapperSpec

        return WrapperSpec(self.name, dict(self.kwargs))

    @classmethod
    def of(cls, value: Any) -> WrapperEntry:
        """From a name, a :class:`~rltransfer.environments.WrapperSpec`, a dict or a WrapperEntry."""
        if isinstance(value, WrapperEntry):
            return value
        if isinstance(value, str):
            return cls(name=value)
        if isinstance(value, dict):
            return cls.model_validate(value)
        return cls(name=value.name, kwargs=dict(value.kwargs))


class EnvSpec(Frozen):
    """An env as a run builds it: the family's content, resolved parameter values, and wrappers.

    Attributes:
        family: the env family (content of its YAML, validated).
        params: every parameter's value (nominal values updated with overrides, bounds checked).
        wrappers: wrappers the policy expects, innermost first (reproduced by evaluation and transfer).
        training_wrappers: wrappers of the training envs only (e.g. a planted corruption), innermost first,
            applied inside ``wrappers``; evaluation envs never get them.
        randomization: the domain-randomization preset of the training envs (its content), if any.
        randomization_name: its name (a shipped preset's, or a preset file's stem).
        variant: the name of the held-out variant these parameters and sensors came from, if any.
        sensors: the variant's sensor effects (noise, bias, latency): part of the system, so evaluation
            envs keep them.
    """

    family: EnvFamily
    params: dict[str, float]
    wrappers: tuple[WrapperEntry, ...] = ()
    training_wrappers: tuple[WrapperEntry, ...] = ()
    randomization: Preset | None = None
    randomization_name: str | None = None
    variant: str | None = None
    sensors: Sensors | None = None

    def evaluation(self) -> EnvSpec:
        """The same env without anything that is for training only (training wrappers, randomization);
        a variant's parameters and sensors stay."""
        return self.model_copy(update={"training_wrappers": (), "randomization": None, "randomization_name": None})


class EvalSpec(Frozen):
    """Deterministic evaluation: ``episodes`` episodes every ``freq`` env steps on its own env spec,
    reseeded with ``seed`` at every evaluation (``episodes == 0``: no evaluation at all)."""

    freq: int = Field(ge=0)
    episodes: int = Field(ge=0)
    seed: int
    env: EnvSpec


def checkpoint_spec(save_freq: int | None = None) -> CheckpointSpec:
    """:class:`CheckpointSpec` from a user's ``save_freq`` (``--save-freq``), with a one-line error."""
    try:
        return CheckpointSpec(save_freq=save_freq)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, CheckpointSpec, "--save-freq")) from None


class CheckpointSpec(Frozen):
    """Checkpoints of a run: every ``save_freq`` env steps (``None``: only on interrupt), the last ``keep``
    kept; ``replay_buffer``: include an off-policy algorithm's replay buffer (needed for exact resume)."""

    save_freq: int | None = Field(default=None, ge=1)
    keep: int = Field(default=2, ge=1, le=100)
    replay_buffer: bool = True


class SourceRef(Frozen):
    """A transfer source: where its policy is and a hash of its content (manifest or zip bytes, or the
    spec of the run that trains it)."""

    path: str
    fingerprint: str
    algo: str | None = None  # the algorithm the source is read as, when its file does not tell (--source-algo)


class TransferSpec(Frozen):
    """What makes a run a transfer: the source, the strategy with its options, and the space mappings."""

    source: SourceRef
    strategy: dict[str, Any]
    obs_map: list[Any] | str | None = None
    action_map: list[int | None] | None = None


class DetectionSpec(Frozen):
    """Online negative-transfer detection against reference (scratch) runs."""

    settings: dict[str, Any]
    reference: tuple[str, ...]
    reference_fingerprints: tuple[str, ...] = ()


class RunSpec(Frozen):
    """Everything one run needs, resolved.

    Attributes:
        env: the training env.
        eval: evaluation settings and env.
        agent: the algorithm, hyperparameters, network and vectorization.
        steps: total env steps.
        seed: seeds the model, the training envs (``seed .. seed + n_envs - 1``) and (offset) evaluation.
        device, threads: where torch runs (threads: CPU threads; ``None`` leaves torch's default).
        curriculum: a curriculum's content (schedules over the training env's parameters).
        checkpoints: checkpoint settings.
        transfer: source and strategy (transfer runs only).
        detection: online detection (transfer arms of a benchmark).
        label: the run's label in run names (``ppo``, ``ppo-finetune``).
    """

    env: EnvSpec
    eval: EvalSpec
    agent: AgentSpec
    steps: int = Field(ge=0, description="0: the untrained initialization is saved (a null source)")
    seed: int = Field(ge=0, le=2**31 - 1)
    device: str = "cpu"
    threads: int | None = Field(default=1, ge=1, le=256)
    curriculum: dict[str, Any] | None = None
    checkpoints: CheckpointSpec = Field(default_factory=CheckpointSpec)
    transfer: TransferSpec | None = None
    detection: DetectionSpec | None = None
    label: str = ""

    @property
    def kind(self) -> Literal["train", "transfer"]:
        return "transfer" if self.transfer is not None else "train"

    def fingerprint(self) -> str:
        """Hash of everything that determines the run's result (not where it is written, nor how often it
        is checkpointed, nor a source's location: its content hash stands for it)."""
        data = self.model_dump(mode="json", exclude={"checkpoints": True, "label": True})
        if data.get("transfer"):
            data["transfer"]["source"].pop("path", None)
            if data["transfer"]["source"].get("algo") is None:
                data["transfer"]["source"].pop("algo", None)  # unchanged fingerprints without --source-algo
        if data.get("detection"):
            data["detection"].pop("reference", None)
        return content_hash(data)


# ------------------------------------------------------------------------------------------ building


def resolve_preset(family: EnvFamily, name_or_path: str | Path) -> tuple[str, Preset]:
    """A preset of ``family`` by name (``randomization.<name>`` in its file) or by YAML path (a file holding
    one preset plus ``family: <name>``; its name is the file's stem). Returns ``(name, preset)``.

    Raises:
        UnknownNameError: neither a preset of the family nor an existing ``.yaml`` file (with suggestions).
        ConfigError: the file is invalid, for another family, or outside the hard bounds.
    """
    text = str(name_or_path)
    path = Path(text)
    if text not in family.randomization and path.suffix in (".yaml", ".yml") and path.is_file():
        loaded: PresetFile = validate(PresetFile, read_yaml(path), str(path))
        if loaded.family != family.name:
            raise ConfigError(f"{path}: family: this preset is for {loaded.family!r}, not {family.name!r}")
        preset = Preset(**{k: getattr(loaded, k) for k in Preset.model_fields})
        check_preset(family, preset, str(path), "(preset)")
        return path.stem, preset
    return text, get_preset(family, text)


def _check_conflicts(family: EnvFamily, preset: Preset, overrides: dict[str, float], what: str) -> None:
    both = sorted(set(preset.params) & set(overrides))
    if both:
        raise ConfigError(
            f"{what} set {', '.join(both)}, which the randomization preset also draws per episode "
            f"(env family {family.name!r}, {family.source}); set each parameter in one place only"
        )


def env_spec(
    family: str | Path | EnvFamily,
    params: dict[str, float] | None = None,
    wrappers: tuple[Any, ...] | list[Any] = (),
    training_wrappers: tuple[Any, ...] | list[Any] = (),
    randomize: str | Path | None = None,
    variant: str | None = None,
) -> EnvSpec:
    """An :class:`EnvSpec` from a family name/path/model, parameter overrides and wrappers (by name or spec).

    Args:
        randomize: a randomization preset of the family by name, or a preset YAML file (training only).
        variant: a variant of the family by name: its params are the base (``params`` override them) and
            its sensors stay on evaluation envs.

    Raises:
        UnknownNameError: an unknown preset or variant (with suggestions).
        ConfigError: ``params`` or the variant set a parameter the preset randomizes.
    """
    fam = family if isinstance(family, EnvFamily) else load_family(family)
    base = EnvSpec(family=fam, params=fam.nominal)
    return with_randomization(
        base.model_copy(update={
            "wrappers": tuple(WrapperEntry.of(w) for w in wrappers),
            "training_wrappers": tuple(WrapperEntry.of(w) for w in training_wrappers),
        }),
        params, randomize, variant,
    )


def with_randomization(
    env: EnvSpec, params: dict[str, float] | None = None, randomize: str | Path | None = None,
    variant: str | None = None,
) -> EnvSpec:
    """``env`` with a variant (its params and sensors), parameter overrides on top, and a preset."""
    fam = env.family
    values = dict(env.params)
    update: dict[str, Any] = {}
    variant_params: dict[str, float] = {}
    if variant is not None:
        if env.variant is not None and env.variant != variant:
            raise ConfigError(f"the env already is variant {env.variant!r}; cannot also be {variant!r}")
        chosen = get_variant(fam, variant)
        variant_params = dict(chosen.params)
        values.update(variant_params)
        update.update(variant=variant, sensors=chosen.sensors())
    values = fam.resolve_params({**values, **(params or {})})
    preset = env.randomization
    if randomize is not None:
        name, preset = resolve_preset(fam, randomize)
        update.update(randomization=preset, randomization_name=name)
    if preset is not None:
        _check_conflicts(fam, preset, dict(params or {}), "parameter overrides")
        _check_conflicts(fam, preset, variant_params, f"variant {variant!r}")
    update["params"] = values
    return env.model_copy(update=update)


def _check_curriculum_preset(curriculum: Any, env: EnvSpec) -> None:
    """A curriculum and the run's preset must agree: the preset it names is the run's, the parameters
    its stages fix are not drawn by the preset (the draw would override them), and what it schedules over
    ranges is drawn by the preset."""
    where = f"{curriculum.source or curriculum.name}"
    preset = env.randomization
    if curriculum.randomize is not None:
        _, wanted = resolve_preset(env.family, curriculum.randomize)
        if preset is None or preset != wanted:
            got = repr(env.randomization_name) if preset is not None else "none"
            raise ConfigError(
                f"{where}: the curriculum schedules preset {curriculum.randomize!r} but the run uses {got}; "
                "drop --randomize or pass the same preset"
            )
    drawn = set(preset.params) if preset is not None else set()
    for i, stage in enumerate(curriculum.stages or []):
        clash = sorted(set(stage.params) & drawn)
        if clash:
            raise ConfigError(
                f"{where}: stages.{i}.params fixes {', '.join(clash)}, which the run's preset "
                f"{env.randomization_name!r} draws at every reset; schedule its range instead (stages.{i}.ranges)"
            )
        missing = sorted(set(getattr(stage, "ranges", None) or {}) - drawn)
        if missing:
            raise ConfigError(
                f"{where}: stages.{i}.ranges schedules {', '.join(missing)}, which the run's preset "
                f"{'(none)' if preset is None else repr(env.randomization_name)} does not draw"
            )


def train_spec(
    env: str | Path | EnvFamily | EnvSpec,
    agent: str | Path | AgentSpec,
    params: dict[str, float] | None = None,
    steps: int | None = None,
    seed: int = 0,
    eval_freq: int | None = None,
    eval_episodes: int | None = None,
    device: str = "cpu",
    threads: int | None = 1,
    wrappers: tuple[Any, ...] | list[Any] = (),
    training_wrappers: tuple[Any, ...] | list[Any] = (),
    curriculum: Any = None,
    checkpoints: CheckpointSpec | None = None,
    label: str | None = None,
    randomize: str | Path | None = None,
    variant: str | None = None,
) -> RunSpec:
    """Resolve names into the :class:`RunSpec` of a training run (validated before anything is created).

    The policy's wrappers are the agent's (e.g. ``TimeFeatureWrapper``) followed by ``wrappers``.
    ``randomize`` names a domain-randomization preset of the family (or a preset file) for the training
    envs only; ``variant`` a variant of the family, whose params are the base (``params`` override them)
    and whose sensors the evaluation envs keep.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= 2**31 - 1:
        raise ConfigError(f"seed must be an integer in [0, 2**31 - 1], got {seed!r}")
    if isinstance(env, EnvSpec):
        base = with_randomization(env, params, randomize, variant) if (params or randomize or variant) else env
    else:
        base = env_spec(env, params, randomize=randomize, variant=variant)
    params = None
    family = base.family
    spec = agent if isinstance(agent, AgentSpec) else load_agent(agent, family.name)
    base = base.model_copy(update={
        "wrappers": tuple(WrapperEntry.of(w) for w in spec.wrappers) + base.wrappers
        + tuple(WrapperEntry.of(w) for w in wrappers),
        "training_wrappers": base.training_wrappers + tuple(WrapperEntry.of(w) for w in training_wrappers),
    })
    total = int(steps if steps is not None else spec.n_timesteps)
    if total <= 0:
        raise ConfigError(f"steps must be positive, got {total}")
    freq = spec.eval.freq if eval_freq is None else int(eval_freq)
    episodes = spec.eval.episodes if eval_episodes is None else int(eval_episodes)
    if freq < 0 or episodes < 0:
        raise ConfigError(f"eval frequency and episodes must be >= 0, got {freq} and {episodes}")
    try:
        run = RunSpec(
            env=base, eval=EvalSpec(freq=freq, episodes=episodes, seed=eval_seed(seed), env=base.evaluation()),
            agent=spec, steps=total, seed=seed, device=device, threads=threads,
            checkpoints=checkpoints or CheckpointSpec(), label=label or spec.name,
        )
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, RunSpec, "run settings")) from None
    return with_curriculum(run, curriculum) if curriculum is not None else run


def with_curriculum(spec: RunSpec, curriculum: Any) -> RunSpec:
    """``spec`` trained with ``curriculum`` (a name, a YAML path or a
    :class:`~rltransfer.curricula.Curriculum`): its content goes into the spec's curriculum slot; the
    preset it names (for ADR or range schedules) becomes the training envs' preset when the run has none.

    Raises:
        ConfigError: the curriculum is for another family, names another preset than the run's, fixes
            parameters the preset draws, or schedules ranges the preset does not draw.
    """
    from rltransfer.curricula import Curriculum, load_curriculum

    loaded = curriculum if isinstance(curriculum, Curriculum) else load_curriculum(curriculum)
    env = spec.env
    loaded.check_against(env.family)
    if loaded.randomize is not None and env.randomization is None:
        env = with_randomization(env, randomize=loaded.randomize)  # evaluation never gets a preset
    _check_curriculum_preset(loaded, env)
    return spec.model_copy(update={"env": env, "curriculum": loaded.model_dump(mode="json")})


# ------------------------------------------------------------------------------------------ config.yaml


def dump_spec(spec: RunSpec) -> str:
    """``config.yaml``: the spec's dump, plus the library versions (not part of the spec)."""
    from rltransfer.rundir import versions

    data = {"spec": spec.model_dump(mode="json"), "versions": versions()}
    return yaml.safe_dump(data, sort_keys=False)


def load_spec(path: str | Path) -> RunSpec:
    """Read a run's ``config.yaml`` back into its :class:`RunSpec` (validated like any config)."""
    from rltransfer.config import read_yaml

    path = Path(path)
    if path.is_dir():
        path = path / "config.yaml"
    data = read_yaml(path)
    if not isinstance(data, dict) or "spec" not in data:
        raise ConfigError(f"{path}: not a run configuration (no 'spec' key); written by an older rltransfer?")
    return validate(RunSpec, data["spec"], str(path))
