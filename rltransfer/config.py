"""YAML configuration as typed, validated data.

Every YAML file rltransfer reads (env families, agents, suites) goes through :func:`read_yaml` (the safe
loader) and then a pydantic model that rejects unknown keys. Errors name the file, the key path, the bad
value and what would be valid. Nothing in a config is ever evaluated as code: schedules are structured
values (``{schedule: linear, start: 3e-4, end: 0}``) and activations/policies are names from an allowlist.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any, Literal, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from rltransfer import resources
from rltransfer.errors import ConfigError, ParameterBoundsError, did_you_mean, unknown_name

ALGOS = ("ppo", "a2c", "sac", "td3", "dqn")
ON_POLICY = ("ppo", "a2c")
POLICIES = ("MlpPolicy",)
ACTIVATION_NAMES = ("ReLU", "Tanh", "ELU", "LeakyReLU", "GELU", "SiLU", "Sigmoid", "Softplus", "Identity")


class Strict(BaseModel):
    """Base for config models: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# ----------------------------------------------------------------------------------------------- YAML


def read_yaml(path: Path) -> Any:
    """Read a YAML file with the safe loader; errors name the file and the line."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML (or uses a tag that is not allowed): {exc}") from exc


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    args = getattr(annotation, "__args__", ())
    return [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]


def _fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str] | None:
    """The field names of the model that ``loc`` points into (for 'valid keys' in messages)."""
    current: Any = model
    for part in loc:
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return None
            current = field.annotation
            if get_origin(current) not in (dict, list) and _models_in(current):
                current = _models_in(current)[-1]  # Optional[Model] / Union[..., Model]
        elif get_origin(current) in (dict, list) and _models_in(current):
            current = _models_in(current)[-1]  # a key or index into a container of models
        else:
            return None
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return None


def format_validation_error(exc: ValidationError, model: type[BaseModel], source: str) -> str:
    """Turn a pydantic error into lines ``file: key.path: problem (got value); valid: ...``."""
    lines = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        path = ".".join(str(p) for p in loc) or "(top level)"
        if err["type"] == "extra_forbidden":
            valid = _fields_at(model, loc[:-1]) or []
            hint = did_you_mean(str(loc[-1]), valid)
            lines.append(f"{source}: unknown key {path!r}.{hint} Valid keys here: {', '.join(valid)}")
        else:
            got = err.get("input")
            shown = repr(got) if not isinstance(got, dict) else "{...}"
            lines.append(f"{source}: {path}: {err['msg']} (got {shown})")
    return "\n".join(lines)


def validate(model: type[BaseModel], data: Any, source: str) -> Any:
    """Validate ``data`` into ``model``; raise :class:`ConfigError` naming ``source`` on failure."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, model, source)) from None


# ------------------------------------------------------------------------------------------ env families


class ParamSpec(Strict):
    """One physical parameter of an env family: nominal value and hard bounds."""

    nominal: float
    low: float
    high: float
    description: str = ""

    @model_validator(mode="after")
    def _check(self) -> ParamSpec:
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.low <= self.high):
            raise ValueError(f"need finite low <= high, got low={self.low}, high={self.high}")
        if not self.low <= self.nominal <= self.high:
            raise ValueError(f"nominal {self.nominal} is outside [{self.low}, {self.high}]")
        return self


class EnvFamily(Strict):
    """A parametric environment family (``envs/<name>.yaml``)."""

    name: str
    gym_id: str
    adapter: str = Field(description="name of the per-family setter map in rltransfer.families")
    description: str = ""
    make_kwargs: dict[str, Any] = Field(default_factory=dict)
    return_range: tuple[float, float] = Field(description="return range used to normalize AUC (low, high)")
    success_threshold: float | None = None
    observation_names: list[str] | None = Field(
        default=None, description="a name per observation feature (for name-based observation mappings)"
    )
    params: dict[str, ParamSpec]
    source: str = Field(default="", exclude=True)

    @property
    def nominal(self) -> dict[str, float]:
        return {k: p.nominal for k, p in self.params.items()}

    def resolve_params(self, overrides: dict[str, float] | None = None) -> dict[str, float]:
        """Nominal values updated with ``overrides``, each checked against the hard bounds."""
        values = self.nominal
        for key, value in (overrides or {}).items():
            if key not in self.params:
                raise unknown_name("parameter", key, self.params, where=f"env family {self.name!r} ({self.source})")
            spec = self.params[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(
                    f"{self.source}: parameter {key!r} of {self.name!r} must be a finite number, got {value!r}"
                )
            if not spec.low <= value <= spec.high:
                raise ParameterBoundsError(
                    f"{self.source}: parameter {key!r} of {self.name!r} = {value} is outside its hard bounds "
                    f"[{spec.low}, {spec.high}]"
                )
            values[key] = float(value)
        return values


def load_family(name_or_path: str | Path) -> EnvFamily:
    """Load and validate an env family by shipped name (``cartpole``) or YAML path."""
    path = resources.find("envs", name_or_path)
    data = read_yaml(path)
    family: EnvFamily = validate(EnvFamily, data, str(path))
    family.source = str(path)
    from rltransfer.families import check_adapter  # local: families imports gymnasium/pybullet lazily

    check_adapter(family)
    return family


def parse_set(items: list[str] | None, where: str = "--set") -> dict[str, float]:
    """Parse ``["length=1.0", "gravity=9.8"]`` into ``{"length": 1.0, ...}`` (numbers only)."""
    out: dict[str, float] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"{where}: expected KEY=VALUE, got {item!r}")
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{where}: value of {key!r} must be a number, got {raw!r}") from None
        out[key] = value
    return out


# ------------------------------------------------------------------------------------------------ agents


class Schedule(Strict):
    """A hyperparameter that changes with training progress (no code in strings)."""

    schedule: Literal["linear", "constant"]
    start: float
    end: float = 0.0

    def value(self, progress_remaining: float) -> float:
        if self.schedule == "constant":
            return self.start
        return self.end + (self.start - self.end) * progress_remaining


FloatOrSchedule = float | Schedule


class PolicyKwargs(Strict):
    """Network settings passed to the SB3 policy."""

    net_arch: list[int] | dict[str, list[int]] | None = None
    activation_fn: Literal[ACTIVATION_NAMES] | None = None  # type: ignore[valid-type]
    ortho_init: bool | None = None
    log_std_init: float | None = None
    squash_output: bool | None = None
    full_std: bool | None = None
    n_critics: int | None = Field(default=None, ge=1)
    share_features_extractor: bool | None = None

    @field_validator("net_arch")
    @classmethod
    def _arch(cls, v: Any) -> Any:
        if isinstance(v, dict):
            bad = set(v) - {"pi", "vf", "qf"}
            if bad:
                raise ValueError(f"net_arch keys must be among pi, vf, qf, got {sorted(bad)}")
            layers = [n for arch in v.values() for n in arch]
        else:
            layers = v or []
        if any(n <= 0 for n in layers):
            raise ValueError(f"layer sizes must be positive, got {v}")
        return v


class Hyperparams(Strict):
    """Algorithm hyperparameters. Only keys the chosen algorithm accepts are allowed (checked on resolve)."""

    learning_rate: FloatOrSchedule | None = None
    n_steps: int | None = Field(default=None, ge=1)
    batch_size: int | None = Field(default=None, ge=1)
    n_epochs: int | None = Field(default=None, ge=1)
    gamma: float | None = Field(default=None, ge=0, le=1)
    gae_lambda: float | None = Field(default=None, ge=0, le=1)
    clip_range: FloatOrSchedule | None = None
    ent_coef: float | Literal["auto"] | None = None
    vf_coef: float | None = None
    max_grad_norm: float | None = None
    normalize_advantage: bool | None = None
    target_kl: float | None = None
    use_rms_prop: bool | None = None
    use_sde: bool | None = None
    sde_sample_freq: int | None = None
    buffer_size: int | None = Field(default=None, ge=1)
    learning_starts: int | None = Field(default=None, ge=0)
    tau: float | None = Field(default=None, ge=0, le=1)
    train_freq: int | None = Field(default=None, ge=1)
    gradient_steps: int | None = None
    target_update_interval: int | None = Field(default=None, ge=1)
    exploration_fraction: float | None = Field(default=None, ge=0, le=1)
    exploration_initial_eps: float | None = Field(default=None, ge=0, le=1)
    exploration_final_eps: float | None = Field(default=None, ge=0, le=1)
    policy_delay: int | None = Field(default=None, ge=1)
    target_policy_noise: float | None = None
    target_noise_clip: float | None = None
    action_noise_std: float | None = Field(default=None, ge=0, description="Gaussian action noise (SAC/TD3)")

    def for_sb3(self) -> dict[str, Any]:
        """The set keys, schedules left as :class:`Schedule` (turned into callables by the trainer)."""
        return {k: v for k, v in self if v is not None}


class Normalize(Strict):
    obs: bool = True
    reward: bool = False
    clip_obs: float = 10.0


class EvalSettings(Strict):
    freq: int = Field(default=10_000, ge=1, description="evaluate every this many environment steps")
    episodes: int = Field(default=10, ge=1)


class AgentSettings(Strict):
    """One agent configuration (the defaults of an agent file, or one family's section)."""

    policy: Literal[POLICIES] | None = None  # type: ignore[valid-type]
    n_envs: int | None = Field(default=None, ge=1)
    vec_env: Literal["dummy", "subproc"] | None = None
    normalize: bool | Normalize | None = None
    n_timesteps: int | None = Field(default=None, ge=1)
    hyperparams: Hyperparams = Field(default_factory=Hyperparams)
    policy_kwargs: PolicyKwargs = Field(default_factory=PolicyKwargs)
    wrappers: list[str] | None = Field(default=None, description="env wrappers by name, e.g. TimeFeatureWrapper")
    eval: EvalSettings | None = None


class AgentFile(Strict):
    """``agents/<algo>.yaml``: defaults plus per-family sections (Zoo style)."""

    algo: Literal[ALGOS]  # type: ignore[valid-type]
    description: str = ""
    defaults: AgentSettings = Field(default_factory=AgentSettings)
    families: dict[str, AgentSettings] = Field(default_factory=dict)


class AgentSpec(Strict):
    """A resolved agent: one algorithm with concrete settings for one env family."""

    name: str
    algo: Literal[ALGOS]  # type: ignore[valid-type]
    family: str
    policy: str = "MlpPolicy"
    n_envs: int = 1
    vec_env: Literal["dummy", "subproc"] = "dummy"
    normalize: Normalize | None = None
    n_timesteps: int = 100_000
    hyperparams: Hyperparams = Field(default_factory=Hyperparams)
    policy_kwargs: PolicyKwargs = Field(default_factory=PolicyKwargs)
    wrappers: list[str] = Field(default_factory=list)
    eval: EvalSettings = Field(default_factory=EvalSettings)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key != "net_arch":
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def check_algo_keys(spec: AgentSpec, source: str) -> None:
    """Reject hyperparameters that the chosen SB3 algorithm does not take."""
    from rltransfer.algos import algo_class, constructor_params

    accepted = constructor_params(algo_class(spec.algo)) | {"action_noise_std"}
    for key in spec.hyperparams.for_sb3():
        if key not in accepted:
            raise ConfigError(
                f"{source}: hyperparameter {key!r} is not used by {spec.algo.upper()}."
                f"{did_you_mean(key, accepted)} {spec.algo.upper()} takes: {', '.join(sorted(accepted))}"
            )
    if spec.algo in ON_POLICY and spec.hyperparams.action_noise_std is not None:
        raise ConfigError(f"{source}: action_noise_std applies to off-policy algorithms (sac, td3), not {spec.algo}")


def load_agent(name_or_path: str | Path, family: str) -> AgentSpec:
    """Resolve ``agents/<name>.yaml`` for one env family: the family's section merged over the defaults."""
    path = resources.find("agents", name_or_path)
    raw = read_yaml(path)
    agent_file: AgentFile = validate(AgentFile, raw, str(path))
    if family not in agent_file.families:
        raise unknown_name(
            "env family", family, agent_file.families,
            where=f"agent {Path(path).stem!r} ({path}), which has settings only for the families listed",
        )
    merged = _merge(
        agent_file.defaults.model_dump(exclude_none=True, exclude_defaults=True),
        agent_file.families[family].model_dump(exclude_none=True, exclude_defaults=True),
    )
    if isinstance(merged.get("normalize"), bool):
        merged["normalize"] = {} if merged["normalize"] else None
    spec: AgentSpec = validate(
        AgentSpec, {"name": Path(path).stem, "algo": agent_file.algo, "family": family, **merged}, str(path)
    )
    where = f"{path} (families.{family})"
    check_algo_keys(spec, where)
    from rltransfer.wrappers import WRAPPERS

    for wrapper in spec.wrappers:
        if wrapper not in WRAPPERS:
            raise unknown_name("wrapper", wrapper, WRAPPERS, where=where)
    return spec
