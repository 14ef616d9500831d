"""YAML configuration as typed, validated data.

Every YAML file rltransfer reads (env families, agents, suites) goes through :func:`read_yaml` (the safe
loader) and then a pydantic model that rejects unknown keys. Errors name the file, the key path, the bad
value and what would be valid. Nothing in a config is ever evaluated as code: schedules are structured
values (``{schedule: linear, start: 3e-4, end: 0}``) and activations/policies are names from an allowlist.

Nothing a config says can run code, exhaust the machine or half-load: :func:`read_yaml` reads within the
budget of :mod:`rltransfer.limits` (size, nesting, alias expansion), refuses duplicate keys, and every
numeric field has the bounds its meaning implies (no NaN or infinity anywhere), checked before anything
runs. A Gymnasium id that names a module (``module:Env-v0``, which Gymnasium imports) is refused unless
the family file sets ``allow_import: true``.
"""

from __future__ import annotations

import copy
import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal, get_origin

import yaml
from pydantic import (
    PrivateAttr,
    BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, ValidationError, field_validator, model_validator,
)

from rltransfer import resources
from rltransfer.errors import ConfigError, ParameterBoundsError, ResourceLimitError, did_you_mean, unknown_name
from rltransfer.limits import (
    MAX_LAYER_WIDTH, MAX_NESTING, MAX_NODES, MAX_YAML_BYTES, check_structure, read_bytes, short_repr,
)
from rltransfer.randomization import Preset, Variant, check_family
from rltransfer.sb3layout import (
    ACTIVATION_NAMES, ALGOS, CONTINUOUS_ONLY, POLICIES, READ_ONLY, algo_class, constructor_params,
)


class Strict(BaseModel):
    """Base for config models: unknown keys are errors, values are validated on assignment, and no float
    may be NaN or infinite."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


# ------------------------------------------------------------------------------------------ value bounds

#: Largest training budget (environment steps) of one run, and of any step count in a config.
MAX_STEPS = 10**9
#: Largest magnitude of a physical parameter, a return or a threshold in a config.
MAX_MAGNITUDE = 1e9
#: Largest seed (SB3 and NumPy take 32-bit seeds) and most seeds per suite.
MAX_SEED = 2**31 - 1
MAX_SEEDS = 1000
#: Most vectorized envs, replay-buffer transitions and hidden layers of one agent.
MAX_ENVS = 256
MAX_BUFFER = 10_000_000
MAX_LAYERS = 16
#: Most evaluation episodes per evaluation.
MAX_EVAL_EPISODES = 10_000
#: Longest name (family, suite, pair, curriculum, adapter).
MAX_NAME_CHARS = 100


def _no_bool(value: Any) -> Any:
    """YAML ``true``/``false`` are not numbers (pydantic would read ``n_envs: true`` as 1)."""
    if isinstance(value, bool):
        raise ValueError("expected a number, not true/false")
    return value


#: An integer (integral floats such as ``1.0e+6`` accepted, booleans refused).
Int = Annotated[int, BeforeValidator(_no_bool)]
#: A finite float (booleans refused; NaN and infinity refused by :class:`Strict`).
Float = Annotated[float, BeforeValidator(_no_bool)]
#: A finite float of magnitude at most :data:`MAX_MAGNITUDE`.
Bounded = Annotated[float, BeforeValidator(_no_bool), Field(ge=-MAX_MAGNITUDE, le=MAX_MAGNITUDE)]
#: A step count: an integer in [1, MAX_STEPS].
Steps = Annotated[int, BeforeValidator(_no_bool), Field(ge=1, le=MAX_STEPS)]
#: A seed: an integer in [0, 2**31 - 1].
Seed = Annotated[int, BeforeValidator(_no_bool), Field(ge=0, le=MAX_SEED)]
#: A name that can become part of a folder or run name.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME_CHARS, pattern=NAME_PATTERN)]


# ----------------------------------------------------------------------------------------------- YAML

_MERGE_TAG = "tag:yaml.org,2002:merge"
_BaseLoader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _DuplicateKeyError(yaml.constructor.ConstructorError):
    """A mapping that gives the same key twice (PyYAML would silently keep the last value)."""

    def __init__(self, key: Any, line: int, first_line: int) -> None:
        super().__init__(None, None, f"duplicate key {short_repr(key)} at line {line} (first given at line {first_line})")
        self.key, self.line, self.first_line = key, line, first_line


class _ConfigLoader(_BaseLoader):  # type: ignore[misc, valid-type]
    """The safe loader (no tags beyond plain YAML data) that refuses duplicate keys and merge keys."""

    def flatten_mapping(self, node: yaml.MappingNode) -> None:
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                raise yaml.constructor.ConstructorError(
                    None, None, f"merge keys ('<<') are not supported (line {key_node.start_mark.line + 1}); "
                    "use an anchor and alias for the whole value instead", key_node.start_mark,
                )
        super().flatten_mapping(node)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            self.flatten_mapping(node)
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                line = key_node.start_mark.line + 1
                try:
                    if key in seen:
                        raise _DuplicateKeyError(key, line, seen[key])
                    seen[key] = line
                except TypeError:
                    continue  # unhashable: the base class raises its own error
        return super().construct_mapping(node, deep=deep)


def _check_events(text: str, source: str) -> None:
    """Refuse a document nested deeper than MAX_NESTING or with more than MAX_NODES events, before the
    (recursive) composer builds anything. Streams parser events: constant memory, no recursion."""
    depth = events = 0
    for event in yaml.parse(text, Loader=_BaseLoader):
        events += 1
        if events > MAX_NODES:
            raise ResourceLimitError(f"{source}: more than {MAX_NODES:,} YAML values; refused")
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_NESTING:
                raise ResourceLimitError(f"{source}: nested deeper than {MAX_NESTING} levels (line "
                                         f"{event.start_mark.line + 1}); refused")
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """One short line from a PyYAML error (its ``str`` quotes the input around the mark)."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        what = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        return short_repr(what, 300).strip("'\"") + where
    return short_repr(str(exc), 300)


def read_yaml(path: str | Path) -> Any:
    """Read a YAML config with the safe loader, within the resource budget of :mod:`rltransfer.limits`.

    Refused with a :class:`ConfigError` naming the file (and the line where there is one): a file larger
    than ``MAX_YAML_BYTES``, not UTF-8 text, not valid YAML, a tag (``!!python/...``), a duplicate key, a
    merge key, nesting deeper than ``MAX_NESTING`` or more than ``MAX_NODES`` values with aliases counted
    as expanded (alias bombs). The value returned is safe to walk (validate, repr, deepcopy).
    """
    source = str(path)
    try:
        raw = read_bytes(path, MAX_YAML_BYTES, "YAML config")
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{source}: not a UTF-8 text file (byte {exc.start}: {short_repr(raw[exc.start:exc.start + 4])}); "
            "a YAML config must be UTF-8 text"
        ) from None
    if "\x00" in text:
        raise ConfigError(f"{source}: contains NUL bytes; a YAML config must be UTF-8 text")
    try:
        _check_events(text, source)
        value = yaml.load(text, Loader=_ConfigLoader)  # noqa: S506 (a SafeLoader subclass)
    except ResourceLimitError:
        raise
    except _DuplicateKeyError as exc:
        raise ConfigError(f"{source}: line {exc.line}: duplicate key {short_repr(exc.key)} (first given at "
                          f"line {exc.first_line}); each key may appear once per mapping") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML (or uses a tag that is not allowed): {_yaml_problem(exc)}") from None
    except RecursionError:
        raise ResourceLimitError(f"{source}: nested too deeply; refused") from None
    except ValueError as exc:  # e.g. an integer literal beyond Python's 4,300-digit conversion limit
        raise ConfigError(f"{source}: a value cannot be read: {short_repr(str(exc), 200)}") from None
    check_structure(value, source)
    return value


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


#: Most problems listed in one validation message (the rest are counted), and its longest length.
MAX_ERRORS_SHOWN = 4
MAX_MESSAGE_CHARS = 1800


_UNION_TAG = re.compile(
    r"^(?:function-(?:before|after|wrap|plain)\[|literal\[|list\[|dict\[|tuple\[|set\[|frozenset\[|nullable\[|"
    r"union\[|tagged-union\[|lax-or-strict\[|json-or-python\[|constrained-)"
)
_TYPE_TAGS = frozenset({"int", "float", "str", "bool", "bytes", "none", "any"})


def _model_names(cls: type[BaseModel] = BaseModel) -> set[str]:
    names = set()
    for sub in cls.__subclasses__():
        names |= {sub.__name__} | _model_names(sub)
    return names


def _is_union_tag(part: Any) -> bool:
    """Pydantic names the member of a union it tried in ``loc`` (``function-after[...]``, ``Schedule``)."""
    if not isinstance(part, str):
        return False
    return bool(_UNION_TAG.match(part)) or part in _TYPE_TAGS or (part[:1].isupper() and part in _model_names())


def _loc_part(part: Any) -> str:
    text = str(part) if isinstance(part, (str, int)) else short_repr(part)
    return text if len(text) <= 60 else short_repr(text, 60)


def _hint(err: Any) -> str:
    """Extra advice for errors whose pydantic wording is unclear in a YAML context."""
    got = err.get("input")
    if err["type"] == "int_parsing" and isinstance(got, str):
        try:
            number = float(got)
        except ValueError:
            return ""
        if math.isfinite(number) and number == int(number) and abs(number) < 1e30:
            return f"; YAML reads {short_repr(got)} as text: write it as {int(number)}"
    if err["type"] == "finite_number":
        return "; NaN and infinity are not allowed"
    return ""


def format_validation_error(exc: ValidationError, model: type[BaseModel], source: str) -> str:
    """Turn a pydantic error into lines ``file: key.path: problem (got value); valid: ...``.

    Errors from the members of one union are joined into one line ("... or ..."). At most
    :data:`MAX_ERRORS_SHOWN` problems are listed and every value is shown with ``short_repr``, so the
    message stays short whatever the file holds.
    """
    def clean(err: Any) -> tuple[Any, ...]:
        loc = tuple(err["loc"])
        if err["type"] == "extra_forbidden" and loc:  # the last part is the user's key, even if it looks like a tag
            return tuple(p for p in loc[:-1] if not _is_union_tag(p)) + loc[-1:]
        return tuple(p for p in loc if not _is_union_tag(p))

    cleaned = [(clean(err), err) for err in exc.errors()]
    deeper = {loc[:i] for loc, _ in cleaned for i in range(len(loc))}
    grouped: dict[tuple[bool, tuple[Any, ...]], list[Any]] = {}
    for loc, err in cleaned:
        wrong_branch = err["type"].endswith(("_type", "_parsing")) or err["type"] == "literal_error"
        if wrong_branch and loc in deeper:
            continue  # a union member of the wrong type, when another member got further: noise
        grouped.setdefault((err["type"] == "extra_forbidden", loc), []).append(err)
    lines = []
    for (extra, loc), errs in list(grouped.items())[:MAX_ERRORS_SHOWN]:
        path = ".".join(_loc_part(p) for p in loc) or "(top level)"
        if extra:
            valid = _fields_at(model, loc[:-1]) or []
            hint = did_you_mean(str(loc[-1])[:MAX_NAME_CHARS], valid)
            lines.append(f"{source}: unknown key {path!r}.{hint} Valid keys here: {', '.join(valid)}")
            continue
        msgs = []
        for err in errs:
            msg = str(err["msg"])
            msg = msg[len("Value error, "):] if msg.startswith("Value error, ") else msg
            if msg not in msgs:
                msgs.append(msg)
        got = errs[0].get("input")
        shown = "" if isinstance(got, dict) else f" (got {short_repr(got)})"
        msg = "; or ".join(msgs)
        msg = msg if len(msg) <= 400 else msg[:397] + "..."
        lines.append(f"{source}: {path}: {msg}{shown}{_hint(errs[0])}")
    if len(grouped) > MAX_ERRORS_SHOWN:
        lines.append(f"{source}: ... and {len(grouped) - MAX_ERRORS_SHOWN} more problems")
    text = "\n".join(lines)
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 3] + "..."


def validate(model: type[BaseModel], data: Any, source: str) -> Any:
    """Validate ``data`` into ``model``; raise :class:`ConfigError` naming ``source`` on failure."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    check_structure(data, source)  # before pydantic walks it (read_yaml checks too; data may come from elsewhere)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, model, source)) from None


# ------------------------------------------------------------------------------------------ env families


class ParamSpec(Strict):
    """One physical parameter of an env family: nominal value and hard bounds."""

    nominal: Bounded
    low: Bounded
    high: Bounded
    description: str = Field(default="", max_length=1000)

    @model_validator(mode="after")
    def _check(self) -> ParamSpec:
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.low <= self.high):
            raise ValueError(f"need finite low <= high, got low={self.low}, high={self.high}")
        if not self.low <= self.nominal <= self.high:
            raise ValueError(f"nominal {self.nominal} is outside [{self.low}, {self.high}]")
        return self


#: Gymnasium's env id syntax ``[module:][namespace/]name[-vN]`` (``module:`` makes Gymnasium import it).
GYM_ID = re.compile(
    r"^(?:(?P<module>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*):)?(?:(?P<namespace>[\w-]+)/)?"
    r"(?P<name>[\w.-]+?)(?:-v(?P<version>\d+))?$",
    re.ASCII,
)
ADAPTER_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
MakeKwarg = Annotated[bool | int | Float | str | None, Field(union_mode="left_to_right")]


class EnvFamily(Strict):
    """A parametric environment family (``envs/<name>.yaml``)."""

    name: Name
    gym_id: str = Field(max_length=200, description="Gymnasium id: [module:][namespace/]name[-vN]")
    allow_import: StrictBool = Field(
        default=False,
        description="the user wrote this file and allows Gymnasium to import the module named in gym_id "
        "(`module:Env-v0`), which runs that module's code; never honored from a bundle",
    )
    adapter: str = Field(
        max_length=MAX_NAME_CHARS, pattern=ADAPTER_NAME,
        description="name of the per-family setter map in rltransfer.families",
    )
    description: str = ""
    make_kwargs: dict[str, MakeKwarg] = Field(
        default_factory=dict, max_length=64, description="keyword arguments of gym.make (plain values only)"
    )
    return_range: tuple[Bounded, Bounded] = Field(description="return range used to normalize AUC (low, high)")
    success_threshold: Bounded | None = None
    observation_names: list[Annotated[str, Field(max_length=MAX_NAME_CHARS)]] | None = Field(
        default=None, max_length=2**16,
        description="a name per observation feature (for name-based observation mappings)",
    )
    params: dict[str, ParamSpec] = Field(max_length=1000)
    randomization: dict[Name, Preset] = Field(
        default_factory=dict, max_length=100,
        description="domain-randomization presets by name (training only; see rltransfer.randomization)",
    )
    variants: dict[Name, Variant] = Field(
        default_factory=dict, max_length=100,
        description="held-out systems by name: fixed params and sensor effects (kept at evaluation)",
    )
    _source: str = PrivateAttr(default="")

    @property
    def source(self) -> str:
        """Where the family was read from (for messages; not part of its content or its equality)."""
        return self._source

    @source.setter
    def source(self, value: str) -> None:
        self._source = str(value)

    def __eq__(self, other: object) -> bool:  # content equality: where it was read from does not count
        return isinstance(other, EnvFamily) and self.model_dump() == other.model_dump()

    __hash__ = None  # type: ignore[assignment]

    @field_validator("gym_id")
    @classmethod
    def _gym_id(cls, v: str) -> str:
        if not GYM_ID.match(v):
            raise ValueError(
                f"gym_id {short_repr(v)} is not a Gymnasium id: expected [namespace/]name[-vN], "
                "e.g. CartPole-v1 or ALE/Pong-v5"
            )
        return v

    @field_validator("return_range")
    @classmethod
    def _range(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not v[0] < v[1]:
            raise ValueError(f"return_range needs low < high, got [{v[0]}, {v[1]}]")
        return v

    @model_validator(mode="after")
    def _trust(self) -> EnvFamily:
        module = GYM_ID.match(self.gym_id).group("module")  # type: ignore[union-attr]
        if module is not None and not self.allow_import:
            raise ValueError(
                f"gym_id {short_repr(self.gym_id)} makes Gymnasium import the Python module {module!r}, "
                "which runs its code; refused. If you wrote this file and trust that module, "
                "set 'allow_import: true'"
            )
        return self

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
    check_family(family)  # presets and variants: names and every value within the hard bounds
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
            raise ConfigError(f"{where}: value of {key!r} must be a number, got {short_repr(raw)}") from None
        if not math.isfinite(value):
            raise ConfigError(f"{where}: value of {key!r} must be a finite number, got {short_repr(raw)} "
                              "(NaN and infinity are not allowed)")
        out[key] = value
    return out


# ------------------------------------------------------------------------------------------------ agents


class Schedule(Strict):
    """A hyperparameter that changes with training progress (no code in strings). Used for the learning
    rate and the clip range: ``start`` in (0, 1], ``end`` in [0, 1] (0: annealed to zero)."""

    schedule: Literal["linear", "constant"]
    start: Float = Field(gt=0, le=1)
    end: Float = Field(default=0.0, ge=0, le=1)

    def value(self, progress_remaining: float) -> float:
        if self.schedule == "constant":
            return self.start
        return self.end + (self.start - self.end) * progress_remaining


#: A rate in (0, 1] (learning rate, clip range) or a schedule of one.
RateOrSchedule = Annotated[float, BeforeValidator(_no_bool), Field(gt=0, le=1)] | Schedule
LayerWidth = Annotated[int, BeforeValidator(_no_bool), Field(ge=1, le=MAX_LAYER_WIDTH)]
Layers = Annotated[list[LayerWidth], Field(max_length=MAX_LAYERS)]


class PolicyKwargs(Strict):
    """Network settings passed to the SB3 policy."""

    net_arch: Layers | dict[str, Layers] | None = Field(
        default=None, description=f"hidden layer widths in [1, {MAX_LAYER_WIDTH}], at most {MAX_LAYERS} layers"
    )
    activation_fn: Literal[ACTIVATION_NAMES] | None = None  # type: ignore[valid-type]
    ortho_init: bool | None = None
    log_std_init: Float | None = Field(default=None, ge=-20, le=20)
    squash_output: bool | None = None
    full_std: bool | None = None
    n_critics: Int | None = Field(default=None, ge=1, le=16)
    share_features_extractor: bool | None = None
    n_quantiles: Int | None = Field(default=None, ge=1, le=1000, description="TQC, QR-DQN: quantiles per critic "
                                    "or per action")
    with_bias: bool | None = None

    @field_validator("net_arch")
    @classmethod
    def _arch(cls, v: Any) -> Any:
        if isinstance(v, dict):
            bad = set(v) - {"pi", "vf", "qf"}
            if bad:
                raise ValueError(f"net_arch keys must be among pi, vf, qf, got {short_repr(sorted(bad))}")
        return v


class Hyperparams(Strict):
    """Algorithm hyperparameters. Only keys the chosen algorithm accepts are allowed (checked on resolve)."""

    learning_rate: RateOrSchedule | None = Field(default=None, description="in (0, 1], or a schedule")
    n_steps: Int | None = Field(default=None, ge=1, le=100_000, description="rollout steps per env")
    batch_size: Int | None = Field(default=None, ge=1, le=100_000)
    n_epochs: Int | None = Field(default=None, ge=1, le=1000)
    gamma: Float | None = Field(default=None, ge=0, le=1)
    gae_lambda: Float | None = Field(default=None, ge=0, le=1)
    clip_range: RateOrSchedule | None = Field(default=None, description="in (0, 1], or a schedule")
    ent_coef: Annotated[Float, Field(ge=0, le=1)] | Literal["auto"] | None = Field(
        default=None, description="in [0, 1], or 'auto' (SAC: learned)"
    )
    vf_coef: Float | None = Field(default=None, ge=0, le=100)
    max_grad_norm: Float | None = Field(default=None, gt=0, le=1e6)
    normalize_advantage: bool | None = None
    target_kl: Float | None = Field(default=None, gt=0, le=100)
    use_rms_prop: bool | None = None
    use_sde: bool | None = None
    sde_sample_freq: Int | None = Field(default=None, ge=-1, le=MAX_STEPS, description="-1: only at rollout start")
    use_sde_at_warmup: bool | None = Field(default=None, description="off-policy gSDE: sample with it before "
                                           "learning starts, not uniformly")
    buffer_size: Int | None = Field(default=None, ge=1, le=MAX_BUFFER)
    learning_starts: Int | None = Field(default=None, ge=0, le=MAX_STEPS)
    tau: Float | None = Field(default=None, ge=0, le=1)
    train_freq: Int | None = Field(default=None, ge=1, le=1_000_000)
    gradient_steps: Int | None = Field(
        default=None, ge=-1, le=10_000, description="gradient steps per rollout; -1: as many as env steps"
    )
    target_update_interval: Int | None = Field(default=None, ge=1, le=MAX_STEPS)
    exploration_fraction: Float | None = Field(default=None, ge=0, le=1)
    exploration_initial_eps: Float | None = Field(default=None, ge=0, le=1)
    exploration_final_eps: Float | None = Field(default=None, ge=0, le=1)
    policy_delay: Int | None = Field(default=None, ge=1, le=1000)
    target_policy_noise: Float | None = Field(default=None, ge=0, le=10)
    target_noise_clip: Float | None = Field(default=None, ge=0, le=10)
    action_noise_std: Float | None = Field(
        default=None, ge=0, le=10, description="Gaussian action noise (SAC/TD3/DDPG/TQC/CrossQ)"
    )
    # TRPO (sb3-contrib)
    cg_max_steps: Int | None = Field(default=None, ge=1, le=1000, description="TRPO: conjugate-gradient steps")
    cg_damping: Float | None = Field(default=None, ge=0, le=1)
    line_search_shrinking_factor: Float | None = Field(default=None, gt=0, lt=1)
    line_search_max_iter: Int | None = Field(default=None, ge=1, le=1000)
    n_critic_updates: Int | None = Field(default=None, ge=1, le=1000)
    sub_sampling_factor: Int | None = Field(default=None, ge=1, le=1000)
    # TQC (sb3-contrib)
    top_quantiles_to_drop_per_net: Int | None = Field(default=None, ge=0, le=1000)
    # ARS (sb3-contrib)
    n_delta: Int | None = Field(default=None, ge=1, le=10_000, description="ARS: random directions per update")
    n_top: Int | None = Field(default=None, ge=1, le=10_000)
    delta_std: RateOrSchedule | None = Field(default=None, description="ARS: exploration noise, in (0, 1], or a schedule")
    zero_policy: bool | None = None
    alive_bonus_offset: Float | None = Field(default=None, ge=-MAX_MAGNITUDE, le=MAX_MAGNITUDE)
    n_eval_episodes: Int | None = Field(default=None, ge=1, le=1000)

    @field_validator("gradient_steps")
    @classmethod
    def _gradient_steps(cls, v: int | None) -> int | None:
        if v == 0:
            raise ValueError("gradient_steps must be >= 1, or -1 (as many as environment steps)")
        return v

    def for_sb3(self) -> dict[str, Any]:
        """The set keys, schedules left as :class:`Schedule` (turned into callables by the trainer)."""
        return {k: v for k, v in self if v is not None}


class Normalize(Strict):
    obs: bool = True
    reward: bool = False
    clip_obs: Float = Field(default=10.0, gt=0, le=1e6)


class EvalSettings(Strict):
    freq: Int = Field(default=10_000, ge=1, le=MAX_STEPS, description="evaluate every this many environment steps")
    episodes: Int = Field(default=10, ge=1, le=MAX_EVAL_EPISODES, description="episodes per evaluation (>= 1)")


class AgentSettings(Strict):
    """One agent configuration (the defaults of an agent file, or one family's section)."""

    policy: Literal[POLICIES] | None = None  # type: ignore[valid-type]
    n_envs: Int | None = Field(default=None, ge=1, le=MAX_ENVS)
    vec_env: Literal["dummy", "subproc"] | None = None
    normalize: bool | Normalize | None = None
    n_timesteps: Int | None = Field(default=None, ge=1, le=MAX_STEPS)
    hyperparams: Hyperparams = Field(default_factory=Hyperparams)
    policy_kwargs: PolicyKwargs = Field(default_factory=PolicyKwargs)
    wrappers: list[Annotated[str, Field(max_length=MAX_NAME_CHARS)]] | None = Field(
        default=None, max_length=32, description="env wrappers by name, e.g. TimeFeatureWrapper"
    )
    eval: EvalSettings | None = None


class AgentFile(Strict):
    """``agents/<algo>.yaml``: defaults plus per-family sections (Zoo style)."""

    algo: Literal[ALGOS]  # type: ignore[valid-type]
    description: str = ""
    defaults: AgentSettings = Field(default_factory=AgentSettings)
    families: dict[Annotated[str, Field(max_length=MAX_NAME_CHARS)], AgentSettings] = Field(
        default_factory=dict, max_length=1000
    )


class AgentSpec(Strict):
    """A resolved agent: one algorithm with concrete settings for one env family."""

    name: str
    algo: Literal[ALGOS]  # type: ignore[valid-type]
    family: str
    policy: str = "MlpPolicy"
    n_envs: Int = Field(default=1, ge=1, le=MAX_ENVS)
    vec_env: Literal["dummy", "subproc"] = "dummy"
    normalize: Normalize | None = None
    n_timesteps: Int = Field(default=100_000, ge=1, le=MAX_STEPS)
    hyperparams: Hyperparams = Field(default_factory=Hyperparams)
    policy_kwargs: PolicyKwargs = Field(default_factory=PolicyKwargs)
    wrappers: list[str] = Field(default_factory=list, max_length=32)
    eval: EvalSettings = Field(default_factory=EvalSettings)

    @model_validator(mode="after")
    def _rollout_size(self) -> AgentSpec:
        n_steps = self.hyperparams.n_steps
        if n_steps is not None and n_steps * self.n_envs > MAX_BUFFER:
            raise ValueError(
                f"n_steps x n_envs = {n_steps} x {self.n_envs} = {n_steps * self.n_envs:,} transitions per rollout; "
                f"at most {MAX_BUFFER:,} allowed"
            )
        return self


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
    accepted = constructor_params(algo_class(spec.algo)) | {"action_noise_std"}
    for key in spec.hyperparams.for_sb3():
        if key not in accepted:
            raise ConfigError(
                f"{source}: hyperparameter {key!r} is not used by {spec.algo.upper()}."
                f"{did_you_mean(key, accepted)} {spec.algo.upper()} takes: {', '.join(sorted(accepted))}"
            )
    if spec.algo not in CONTINUOUS_ONLY and spec.hyperparams.action_noise_std is not None:
        raise ConfigError(f"{source}: action_noise_std applies to off-policy algorithms with continuous actions "
                          f"({', '.join(CONTINUOUS_ONLY)}), not {spec.algo}")
    if spec.algo in READ_ONLY:
        raise ConfigError(f"{source}: {spec.algo} agents cannot be trained here: {READ_ONLY[spec.algo]}")


def load_agent_file(path: str | Path, family: str) -> AgentSpec:
    """An rltransfer agent file (``agents/<algo>.yaml`` or one like it) for one env family: the family's
    section merged over the defaults. Use :func:`rltransfer.agents.load_agent` to resolve names, paths and
    RL Zoo hyperparameter files alike."""
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
