"""Benchmark suites as data: the YAML schema, its loading and checking, and where a suite's runs live.

A suite (``benchmarks/<name>.yaml``) lists *pairs*: a source policy (trained from a spec, or an existing
bundle / SB3 zip) and a target task, plus the arms to compare with training from scratch: transfer
strategies, and curricula (the target agent trained from scratch with a curriculum; a pair of curriculum
arms only needs no source).
:func:`load_suite` validates one (unknown keys are errors naming the file and key path) and resolves every
name it uses (:func:`check_suite`); :func:`save_suite` / :func:`stored_suite` keep the validated suite in
a benchmark folder as ``suite.json``, which reports are rendered from.

Also here, because both the runner (:mod:`rltransfer.benchmark`) and the analysis
(:mod:`rltransfer.analysis`) need them: the names of the files in a run directory (:data:`TASK_FILE`,
:data:`DETECTION_FILE`) and the scratch arm's name (:data:`SCRATCH`). What runs a suite makes, as run
specs with content fingerprints, is :mod:`rltransfer.arms`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from rltransfer import resources
from rltransfer.config import (
    MAX_EVAL_EPISODES,
    MAX_MAGNITUDE,
    MAX_NAME_CHARS,
    MAX_SEED,
    MAX_SEEDS,
    MAX_STEPS,
    Bounded,
    Float,
    Int,
    Seed,
    Strict,
    read_yaml,
    validate,
)
from rltransfer.errors import ConfigError, RLTransferError, unknown_name
from rltransfer.limits import short_repr
from rltransfer.rundir import atomic_write_json, read_json

__all__ = [
    "CURRICULUM_PREFIX",
    "DETECTION_FILE",
    "EXPECTED",
    "EXPECTED_LABELS",
    "ROLES",
    "SCRATCH",
    "TASK_FILE",
    "CurriculumEntry",
    "DetectionSettings",
    "EvalSpec",
    "Margins",
    "MetricsSettings",
    "PairSpec",
    "SourceSpec",
    "StrategyEntry",
    "Suite",
    "TargetSpec",
    "TrainSource",
    "UntilDecided",
    "WrapperEntry",
    "check_suite",
    "load_suite",
    "save_suite",
    "stored_suite",
]

ROLES = ("useful", "planted_negative", "null", "other")
#: What each control role must come out as (checked in the report): a useful pair "positive", a planted negative
#: "negative"; a null control passes when it is called neither positive nor negative ("equivalent" within the
#: margin, or "inconclusive").
EXPECTED = {"useful": "positive", "planted_negative": "negative", "null": "equivalent or inconclusive"}
#: The verdicts each role's expectation accepts.
EXPECTED_LABELS: dict[str, tuple[str, ...]] = {
    "useful": ("positive",), "planted_negative": ("negative",), "null": ("equivalent", "inconclusive"),
}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
#: The from-scratch arm of every pair (a strategy label may not take this name).
SCRATCH = "scratch"
#: What the ``strategy`` of a curriculum arm reads as in analyses and reports: ``curriculum:<name>``.
CURRICULUM_PREFIX = "curriculum:"
#: In every run directory of a benchmark: the task's fingerprint and whether it completed.
TASK_FILE = "task.json"
#: In a transfer or curriculum arm's run directory: what the online negative-transfer detector saw and did.
DETECTION_FILE = "detection.json"


# ---------------------------------------------------------------------------------------------- the model


class EvalSpec(Strict):
    """Evaluation schedule: every ``freq`` environment steps (and at step 0), ``episodes`` episodes."""

    freq: Int = Field(ge=1, le=MAX_STEPS)
    episodes: Int = Field(default=5, ge=1, le=MAX_EVAL_EPISODES, description="episodes per evaluation (>= 1)")


class WrapperEntry(Strict):
    """A wrapper from :data:`rltransfer.wrappers.WRAPPERS` with keyword arguments."""

    name: str = Field(max_length=MAX_NAME_CHARS)
    kwargs: dict[str, Any] = Field(default_factory=dict, max_length=64)

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        from rltransfer.wrappers import WRAPPERS

        if v not in WRAPPERS:
            raise unknown_name("wrapper", v, WRAPPERS)
        return v


class TrainSource(Strict):
    """A source trained by the benchmark (once, cached by the hash of this resolved spec)."""

    env: str = Field(max_length=4096)
    agent: str = Field(default="ppo", max_length=4096)
    params: dict[str, Bounded] = Field(default_factory=dict, max_length=1000)
    steps: Int = Field(ge=0, le=MAX_STEPS, description="training steps; 0 = the untrained initialization (a null source)")
    seed: Seed = 0
    training_wrappers: list[WrapperEntry] = Field(
        default_factory=list, max_length=32,
        description="wrappers used while training the source only (planted corruptions)",
    )
    eval: EvalSpec | None = None
    randomize: str | None = Field(
        default=None, max_length=4096,
        description="train with this domain-randomization preset of the family (a name, or a preset .yaml file "
        "relative to the suite file)",
    )
    variant: str | None = Field(default=None, max_length=100, description="train on this variant of the family")
    curriculum: str | None = Field(
        default=None, max_length=4096,
        description="train with this curriculum (a shipped name, or a curriculum .yaml file relative to the suite "
        "file); its family must be the source env's",
    )
    source_seeds: Int | list[Seed] | None = Field(
        default=None,
        description="train the source once at each of several seeds, so that the variance from the source is "
        "measured: a count n (seeds seed, seed + 1, ..., seed + n - 1) or a list of distinct seeds (then 'seed' "
        "is the first). The k-th target seed of the suite starts from source k mod n; scratch runs are unchanged. "
        "Unset (or one seed): one source, as before",
    )

    @field_validator("training_wrappers", mode="before")
    @classmethod
    def _names(cls, v: Any) -> Any:
        if isinstance(v, list):
            return [{"name": w} if isinstance(w, str) else w for w in v]
        return v

    @model_validator(mode="before")
    @classmethod
    def _first_source_seed(cls, data: Any) -> Any:
        """With a list of ``source_seeds``, ``seed`` is its first (given both, they must agree)."""
        if not isinstance(data, dict) or not isinstance(data.get("source_seeds"), list) or not data["source_seeds"]:
            return data
        first = data["source_seeds"][0]
        if "seed" in data and data["seed"] != first:
            raise ValueError(
                f"seed {short_repr(data['seed'])} and source_seeds {short_repr(data['source_seeds'])} disagree: with a "
                "list of source_seeds, seed is its first; give the seeds in one place"
            )
        return {**data, "seed": first}

    @field_validator("source_seeds")
    @classmethod
    def _source_seeds(cls, v: int | list[int] | None) -> int | list[int] | None:
        if isinstance(v, int) and not 1 <= v <= MAX_SEEDS:
            raise ValueError(f"source_seeds must be a count in [1, {MAX_SEEDS}] or a list, got {short_repr(v)}")
        if isinstance(v, list) and (not v or len(v) > MAX_SEEDS or len(set(v)) != len(v)):
            raise ValueError(
                f"source_seeds must be a non-empty list of at most {MAX_SEEDS} distinct seeds, got {short_repr(v)}"
            )
        return v

    @model_validator(mode="after")
    def _seed_range(self) -> TrainSource:
        if isinstance(self.source_seeds, int) and self.seed + self.source_seeds - 1 > MAX_SEED:
            raise ValueError(f"source_seeds: seeds {self.seed}..{self.seed + self.source_seeds - 1} go past {MAX_SEED}")
        return self

    @property
    def seed_list(self) -> list[int]:
        """The seeds the source is trained at, in order (``[seed]`` without ``source_seeds``)."""
        if self.source_seeds is None:
            return [self.seed]
        if isinstance(self.source_seeds, int):
            return list(range(self.seed, self.seed + self.source_seeds))
        return list(self.source_seeds)


class SourceSpec(Strict):
    """Where a pair's source policy comes from; exactly one key says which kind it is.

    * ``train: {...}``: a training spec (:class:`TrainSource`);
    * ``policy: PATH``: an rltransfer bundle, a run directory or any SB3 zip (relative to the suite file).

    A trained source may use domain randomization (``train.randomize``), a variant (``train.variant``) or a
    curriculum (``train.curriculum``).
    """

    train: TrainSource | None = None
    policy: str | None = Field(default=None, max_length=4096)

    @model_validator(mode="after")
    def _one(self) -> SourceSpec:
        given = [k for k in ("train", "policy") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"a source needs exactly one of 'train' or 'policy', got {given or 'none'}")
        return self

    @property
    def kind(self) -> Literal["train", "policy"]:
        return "train" if self.train is not None else "policy"


class TargetSpec(Strict):
    """The target task: an env family, optionally one of its variants (e.g. ``real``: its parameters and
    sensor effects, which evaluation keeps), and parameter overrides on top."""

    env: str = Field(max_length=4096)
    variant: str | None = Field(default=None, max_length=100)
    params: dict[str, Bounded] = Field(default_factory=dict, max_length=1000)


class StrategyEntry(Strict):
    """A transfer arm: a strategy from :data:`rltransfer.transfer.STRATEGIES` and its options.

    In YAML either a bare name (``finetune``) or
    ``{name: freeze, label: freeze1, options: {freeze_layers: 1}}``.
    """

    name: str = Field(max_length=MAX_NAME_CHARS)
    label: str | None = Field(default=None, max_length=MAX_NAME_CHARS)
    options: dict[str, Any] = Field(default_factory=dict, max_length=64)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        return {"name": v} if isinstance(v, str) else v

    @model_validator(mode="after")
    def _check(self) -> StrategyEntry:
        from rltransfer.strategies import parse_strategy

        parse_strategy(self.name, self.options)  # unknown names get "Did you mean", bad options are errors
        if self.label is not None and not _NAME.match(self.label):
            raise ValueError(f"label {short_repr(self.label)} must be letters, digits, '_', '-' or '.'")
        return self

    @property
    def arm(self) -> str:
        return self.label or self.name


class CurriculumEntry(Strict):
    """A curriculum arm: the pair's target agent trained from scratch on the target with a curriculum.

    In YAML either a bare name (``mountaincar-power``: a shipped curriculum, or a curriculum ``.yaml`` file
    relative to the suite file) or ``{name: mountaincar-power, label: power-curriculum}``. The arm's label
    defaults to the name (a file's stem for a path).
    """

    name: str = Field(max_length=4096)
    label: str | None = Field(default=None, max_length=MAX_NAME_CHARS)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        return {"name": v} if isinstance(v, str) else v

    @model_validator(mode="after")
    def _check(self) -> CurriculumEntry:
        if self.label is not None and not _NAME.match(self.label):
            raise ValueError(f"label {short_repr(self.label)} must be letters, digits, '_', '-' or '.'")
        if self.label is None and not _NAME.match(self.arm):
            raise ValueError(
                f"curriculum {short_repr(self.name)} gives no usable arm name ({short_repr(self.arm)}); give it a "
                "'label' of letters, digits, '_', '-' or '.'"
            )
        return self

    @property
    def arm(self) -> str:
        return self.label or Path(self.name).stem

    @property
    def strategy(self) -> str:
        """How the arm reads in the ``strategy`` column of analyses and reports: ``curriculum:<name>``."""
        return f"{CURRICULUM_PREFIX}{Path(self.name).stem}"


#: What each margin is measured in, for error messages and the report.
MARGIN_UNITS = {
    "auc": "normalized AUC (a fraction of the return range)",
    "jumpstart": "return units (first evaluation)",
    "asymptotic": "return units (final performance)",
    "time_to_threshold": "environment steps",
}


class Margins(Strict):
    """Equivalence margins, one per metric, in that metric's units.

    A margin is the largest difference from scratch that still counts as "no difference": a comparison is
    *equivalent* when two one-sided tests put the difference inside ``(-margin, +margin)``
    (:func:`rltransfer.statistics.tost`), and the planning figure says how many seeds per arm would detect a
    difference of one margin, or show equivalence within it (:func:`rltransfer.statistics.seeds_for_margin`).
    Declare them in advance: a margin chosen after seeing the data makes "equivalent" meaningless.

    Unset metrics take their defaults: 0.05 normalized AUC, 5% of the target family's return range for the
    jumpstart and the asymptotic return, 5% of the pair's budget for the time to threshold (compared as a
    restricted mean up to the budget). Set at the suite's top level for every pair, or in a pair (overriding the
    suite's, metric by metric: return units differ between families).

    In YAML: ``margins: {auc: 0.05, jumpstart: 25, asymptotic: 25, time_to_threshold: 2000}``.
    """

    auc: Float | None = Field(default=None, description="normalized AUC, a fraction of the return range in (0, 1); "
                              "default 0.05")
    jumpstart: Float | None = Field(default=None, description="return units; default 5% of the return range")
    asymptotic: Float | None = Field(default=None, description="return units; default 5% of the return range")
    time_to_threshold: Float | None = Field(default=None, description="environment steps; default 5% of the budget")

    @field_validator("auc", "jumpstart", "asymptotic", "time_to_threshold")
    @classmethod
    def _positive(cls, v: float | None, info: Any) -> float | None:
        if v is None:
            return v
        name = info.field_name
        if name == "auc" and not 0.0 < v < 1.0:
            raise ValueError(
                "the margin of normalized AUC must be a fraction of the return range in (0, 1), e.g. 0.05"
            )
        limit = MAX_STEPS if name == "time_to_threshold" else MAX_MAGNITUDE
        if not 0.0 < v <= limit:
            raise ValueError(
                f"a margin must be a positive difference in {MARGIN_UNITS[name]}, at most {limit:g}"
            )
        return v

    def declared(self) -> dict[str, float]:
        """The margins set here, by metric."""
        return {k: v for k, v in self.model_dump().items() if v is not None}


class PairSpec(Strict):
    """One target task and the arms compared with scratch on it: transfer strategies from a source, and
    curricula (the target agent trained from scratch with a curriculum).

    ``source`` is needed when there are strategies; a pair of curriculum arms only may leave it out, and then
    names its target agent with ``agent`` (there is no source to take the algorithm and architecture from).
    """

    name: str = Field(max_length=MAX_NAME_CHARS)
    source: SourceSpec | None = None
    target: TargetSpec
    strategies: list[StrategyEntry] = Field(default_factory=list, max_length=64)
    curricula: list[CurriculumEntry] = Field(default_factory=list, max_length=64)
    agent: str | None = Field(
        default=None, max_length=4096,
        description="target agent (name or YAML path); default: the shipped agent of the source's algorithm "
        "(required when the pair has no source)",
    )
    role: Literal[ROLES] = "other"  # type: ignore[valid-type]
    description: str = ""
    budget: Int | None = Field(default=None, ge=1, le=MAX_STEPS, description="overrides the suite's budget for this pair")
    eval: EvalSpec | None = None
    threshold: Bounded | None = None
    margins: Margins | None = Field(
        default=None, description="equivalence margins of this pair, overriding the suite's metric by metric",
    )

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError(f"pair name {short_repr(v)} must be letters, digits, '_', '-' or '.' (it names a folder)")
        return v

    @field_validator("role", mode="before")
    @classmethod
    def _null_role(cls, v: Any) -> Any:
        return "null" if v is None else v  # YAML `role: null` parses as None

    @model_validator(mode="after")
    def _arms(self) -> PairSpec:
        if not self.strategies and not self.curricula:
            raise ValueError("a pair needs at least one arm to compare with scratch: 'strategies' and/or 'curricula'")
        if self.strategies and self.source is None:
            raise ValueError("a pair with 'strategies' needs a 'source' to transfer from")
        if self.source is None and self.agent is None:
            raise ValueError(
                "a pair without a source needs 'agent' (a shipped agent name such as sac, or a YAML path): "
                "there is no source to take the target agent's algorithm from"
            )
        strategies = [s.arm for s in self.strategies]
        dup = sorted({a for a in strategies if strategies.count(a) > 1})
        if dup:
            raise ValueError(f"strategies {short_repr(dup)} appear twice; give each a distinct 'label'")
        arms = self.arms
        dup = sorted({a for a in arms if arms.count(a) > 1})
        if dup:
            raise ValueError(
                f"arms {short_repr(dup)} appear twice among strategies and curricula; give each a distinct 'label'"
            )
        if SCRATCH in arms:
            raise ValueError(f"'{SCRATCH}' is the from-scratch arm; pick another label")
        return self

    @property
    def arms(self) -> list[str]:
        """The labels of the arms compared with scratch: strategies first, then curricula."""
        return [s.arm for s in self.strategies] + [c.arm for c in self.curricula]

    def arm_kind(self, arm: str) -> Literal["scratch", "transfer", "curriculum"]:
        """Whether ``arm`` is the scratch arm, a transfer strategy or a curriculum."""
        if any(s.arm == arm for s in self.strategies):
            return "transfer"
        if any(c.arm == arm for c in self.curricula):
            return "curriculum"
        return "scratch"

    def arm_strategy(self, arm: str) -> str:
        """What ``arm`` applies: a strategy's name, ``curriculum:<name>``, or ``scratch``."""
        for s in self.strategies:
            if s.arm == arm:
                return s.name
        for c in self.curricula:
            if c.arm == arm:
                return c.strategy
        return SCRATCH


class MetricsSettings(Strict):
    last_k: Int = Field(default=3, ge=1, le=10_000, description="evaluations averaged for asymptotic performance")


class DetectionSettings(Strict):
    """The online negative-transfer detector on transfer arms (see :mod:`rltransfer.detection`).

    ``action``: ``warn`` (runs continue; the report says what stopping would have saved), ``stop`` (the
    run stops at the alarm; its last evaluation is held to the budget for the metrics), ``fallback``
    (stop, then train from scratch for the rest of the budget in ``fallback/``; the arm's curve is the
    transfer curve up to the alarm followed by the fallback's).
    """

    enable: bool = True
    action: Literal["warn", "stop", "fallback"] = "warn"
    rule: Literal["sequential", "per_look"] = Field(
        default="sequential", description="sequential: alpha spent over the evaluations, the arm's runs tested "
        "jointly (false alarms <= alpha per arm); per_look: the old t check with patience (no error control)")
    alpha: Float = Field(default=0.05, gt=0.0, lt=0.5, description="false-alarm rate per arm over the whole schedule")
    spending: Literal["pocock", "obrien_fleming", "linear"] = "pocock"
    min_evals: Int = Field(default=3, ge=1, le=10_000)
    confidence: Float = Field(default=0.975, gt=0.5, lt=1.0, description="per_look rule only: one-sided, in (0.5, 1)")
    patience: Int = Field(default=4, ge=1, le=10_000,
                          description="per_look rule only: consecutive worse evaluations before an alarm")
    margin: Float = Field(default=0.0, ge=0.0, lt=1.0, description="fraction of the return range")
    window: Int = Field(default=1, ge=1, le=10_000, description="evaluations averaged on both sides")

    @model_validator(mode="before")
    @classmethod
    def _rule_of_older_suites(cls, data: Any) -> Any:
        # before `rule` existed, confidence and patience were the only rule: a suite (or a stored
        # suite.json) that sets them and names no rule keeps meaning it
        if isinstance(data, dict) and "rule" not in data and ({"confidence", "patience"} & set(data)):
            return {**data, "rule": "per_look"}
        return data

    @model_validator(mode="after")
    def _rule_settings(self) -> DetectionSettings:
        # a dumped suite.json carries every field at its default: only a changed value would be ignored
        given = sorted(k for k in ("confidence", "patience")
                       if getattr(self, k) != type(self).model_fields[k].default)
        if self.rule == "sequential" and given:
            raise ValueError(f"{' and '.join(given)} {'is a setting' if len(given) == 1 else 'are settings'} of "
                             "rule: per_look (add it, or leave them out); the sequential rule takes alpha (false "
                             "alarms per arm) and spending")
        return self


class UntilDecided(Strict):
    """Seeds added in rounds until each comparison is decided (a group-sequential design,
    :mod:`rltransfer.sequential`).

    Every arm-versus-scratch comparison is first judged on ``first`` seeds per arm; each round adds ``round``
    seeds per arm to the comparisons still undecided on the primary metric (normalized AUC), up to the suite's
    ``seeds`` (the most a comparison gets, in their order). A comparison stops when its p-value falls below the
    look's level from the ``spending`` function, so that the total false-verdict rate stays at most ``alpha``
    however early it stops. In YAML: ``until_decided: {first: 3, round: 2}`` (or ``until_decided: true``).
    """

    first: Int | None = Field(default=None, ge=2, le=MAX_SEEDS,
                              description="seeds per arm at the first look (default: min_seeds)")
    round: Int = Field(default=2, ge=1, le=MAX_SEEDS, description="seeds per arm added to undecided comparisons "
                       "each round")
    spending: Literal["obrien-fleming", "pocock", "bonferroni"] = Field(
        default="obrien-fleming",
        description="alpha-spending function over the looks: obrien-fleming (stops only on very clear comparisons, "
        "keeps the power at the last look), pocock (stops earlier, less power at the end), bonferroni (alpha / looks)",
    )

    def first_of(self, suite: Suite) -> int:
        """Seeds per arm at the first look."""
        return suite.min_seeds if self.first is None else self.first

    def looks(self, suite: Suite) -> tuple[int, ...]:
        """Seeds per arm at each look: ``first``, ``first + round``, ..., the suite's number of seeds."""
        first, total = self.first_of(suite), len(suite.seed_list)
        return (*range(first, total, self.round), total)


class Suite(Strict):
    """A benchmark suite (``benchmarks/<name>.yaml``)."""

    name: str = Field(max_length=MAX_NAME_CHARS)
    description: str = ""
    seeds: Int | list[Seed] = Field(
        description=f"number of seeds (0..n-1, n in [1, {MAX_SEEDS}]) or an explicit list of at most {MAX_SEEDS} "
        f"distinct seeds in [0, {MAX_SEED}]"
    )
    budget: Int = Field(ge=1, le=MAX_STEPS, description="training steps of every target run")
    eval: EvalSpec
    threshold: Bounded | None = Field(default=None, description="success threshold (default: the family's)")
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    detection: DetectionSettings = Field(default_factory=DetectionSettings)
    min_seeds: Int = Field(default=3, ge=2, le=MAX_SEEDS)
    alpha: Float = Field(default=0.05, gt=0.0, lt=1.0)
    margins: Margins = Field(
        default_factory=Margins,
        description="equivalence margins per metric, in each metric's units (default: 0.05 normalized AUC, 5% of "
        "the return range, 5% of the budget)",
    )
    save_freq: Int | None = Field(
        default=10_000, ge=1, le=MAX_STEPS,
        description="checkpoint every run every this many env steps, so an interrupted benchmark resumes its runs "
        "where they were (null: no checkpoints; interrupted runs start over)",
    )
    until_decided: UntilDecided | None = Field(
        default=None,
        description="add seeds in rounds until each comparison is decided, up to 'seeds' (unset: every comparison "
        "gets all the seeds)",
    )
    pairs: list[PairSpec] = Field(min_length=1, max_length=1000)
    source_file: str = Field(default="", exclude=True)

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: int | list[int]) -> int | list[int]:
        if isinstance(v, int) and not 1 <= v <= MAX_SEEDS:
            raise ValueError(f"seeds must be a count in [1, {MAX_SEEDS}] or a list, got {short_repr(v)}")
        if isinstance(v, list) and (not v or len(v) > MAX_SEEDS or len(set(v)) != len(v)):
            raise ValueError(
                f"seeds must be a non-empty list of at most {MAX_SEEDS} distinct integers, got {short_repr(v)}"
            )
        return v

    @field_validator("until_decided", mode="before")
    @classmethod
    def _until_decided_flag(cls, v: Any) -> Any:
        if v is True:
            return {}
        return None if v is False else v

    @model_validator(mode="after")
    def _unique(self) -> Suite:
        names = [p.name for p in self.pairs]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"pair names must be unique, got {short_repr(dup)} more than once")
        return self

    @model_validator(mode="after")
    def _sequential(self) -> Suite:
        if self.until_decided is None:
            return self
        first, total = self.until_decided.first_of(self), len(self.seed_list)
        if first < self.min_seeds:
            raise ValueError(
                f"until_decided.first ({first}) is below min_seeds ({self.min_seeds}): a look with fewer seeds could "
                f"not decide anything; use first >= {self.min_seeds}"
            )
        if first > total:
            raise ValueError(
                f"until_decided: the first look needs {first} seeds per arm but the suite has {total} ('seeds' is the "
                f"most a comparison gets); raise seeds to at least {first} or lower until_decided.first"
            )
        return self

    @property
    def seed_list(self) -> list[int]:
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)

    def budget_of(self, pair: PairSpec) -> int:
        return pair.budget or self.budget

    def eval_of(self, pair: PairSpec) -> EvalSpec:
        return pair.eval or self.eval

    def margins_of(self, pair: PairSpec) -> dict[str, float]:
        """The margins declared for ``pair``: the suite's, overridden metric by metric by the pair's (metrics
        left unset are not in the result: the analysis gives them their defaults)."""
        return {**self.margins.declared(), **(pair.margins.declared() if pair.margins is not None else {})}

    def pair(self, name: str) -> PairSpec:
        for p in self.pairs:
            if p.name == name:
                return p
        raise unknown_name("pair", name, [p.name for p in self.pairs], where=self.source_file)


def _resolve_path(value: str, base: Path) -> str:
    """A path relative to the suite file's folder (names without a suffix or a slash stay names)."""
    p = Path(value).expanduser()
    if p.suffix or p.parent != Path("."):
        return str(p if p.is_absolute() else (base / p).resolve())
    return value


def load_suite(name_or_path: str | Path) -> Suite:
    """Load and check a suite by shipped name (``quick``) or YAML path.

    Everything is checked before anything runs: keys (unknown ones are errors naming the file and key
    path), strategy names and options, env families, parameter bounds, agents, wrappers, policy paths,
    curricula (names, files and families).

    Raises:
        ConfigError: with the file, the key path and what would be valid.
    """
    path = resources.find("benchmarks", name_or_path)
    suite: Suite = validate(Suite, read_yaml(path), str(path))
    suite.source_file = str(path)
    base = Path(path).resolve().parent
    for pair in suite.pairs:
        if pair.agent is not None:
            pair.agent = _resolve_path(pair.agent, base)
        pair.target.env = _resolve_path(pair.target.env, base)
        for entry in pair.curricula:
            entry.name = _resolve_path(entry.name, base)
        source = pair.source
        if source is not None and source.train is not None:
            source.train.agent = _resolve_path(source.train.agent, base)
            source.train.env = _resolve_path(source.train.env, base)
            if source.train.randomize is not None:
                source.train.randomize = _resolve_path(source.train.randomize, base)
            if source.train.curriculum is not None:
                source.train.curriculum = _resolve_path(source.train.curriculum, base)
        if source is not None and source.policy is not None:
            source.policy = _resolve_path(source.policy, base)
    check_suite(suite)
    return suite


def _check_env(family: Any, params: dict[str, float], variant: str | None, randomize: str | None, loc: str) -> None:
    """The variant, the preset and the parameters of one env of a pair, each error naming its key."""
    from rltransfer.randomization import get_variant
    from rltransfer.spec import env_spec, resolve_preset

    if variant is not None:
        try:
            get_variant(family, variant)
        except RLTransferError as exc:
            raise ConfigError(f"{loc}.variant: {exc}") from None
    if randomize is not None:
        try:
            resolve_preset(family, randomize)
        except RLTransferError as exc:
            raise ConfigError(f"{loc}.randomize: {exc}") from None
    try:
        family.resolve_params(params)
    except RLTransferError as exc:
        raise ConfigError(f"{loc}.params: {exc}") from None
    try:  # the combination: a parameter set twice (variant or override, and preset) is an error
        env_spec(family, params, randomize=randomize, variant=variant)
    except RLTransferError as exc:
        raise ConfigError(f"{loc}: {exc}") from None


def _check_curriculum(name: str, family: Any, loc: str) -> None:
    """A curriculum a pair uses: it exists (unknown names get "Did you mean"), is valid, and is for ``family``
    (the env it trains on) within that family's bounds; errors name ``loc``, the key."""
    from rltransfer.curricula import load_curriculum

    try:
        curriculum = load_curriculum(name)
    except RLTransferError as exc:
        raise ConfigError(f"{loc}: {exc}") from None
    if curriculum.family != family.name:
        raise ConfigError(
            f"{loc}: curriculum {curriculum.name!r} ({curriculum.source}) is for env family {curriculum.family!r}, "
            f"but it would train on {family.name!r}; use a curriculum of family {family.name!r}"
        )
    try:
        curriculum.check_against(family)  # the stages' values within this family's bounds (a family file may differ)
    except RLTransferError as exc:
        raise ConfigError(f"{loc}: {exc}") from None


def _check_margins(suite: Suite, pair: PairSpec, family: Any, loc: str) -> None:
    """The margins of a pair against its target's return range and its budget: a margin as wide as the whole
    range would make every comparison "equivalent". ``loc`` names the pair (``file: pairs.0 (name)``)."""
    low, high = (float(v) for v in family.return_range)
    width = high - low
    own = pair.margins.declared() if pair.margins is not None else {}
    where = suite.source_file or suite.name
    for metric, value in suite.margins_of(pair).items():
        key = f"{loc}.margins.{metric}" if metric in own else f"{where}: margins.{metric} (pair {pair.name})"
        if metric in ("jumpstart", "asymptotic") and value >= width:
            raise ConfigError(
                f"{key}: {value:g} is at least the whole return range of {family.name!r} ({low:g} to {high:g}), "
                f"so every comparison would be equivalent; use a margin well inside it, e.g. {0.05 * width:.3g} "
                "(5% of the range)"
            )
        if metric == "time_to_threshold" and value >= suite.budget_of(pair):
            raise ConfigError(
                f"{key}: {value:g} steps is at least the pair's budget ({suite.budget_of(pair):,} steps), so every "
                f"comparison would be equivalent; use a margin well inside it, e.g. {0.05 * suite.budget_of(pair):.3g} "
                "(5% of the budget)"
            )


def check_suite(suite: Suite) -> None:
    """Resolve every name the suite uses (families, variants, randomization presets, agents, parameters,
    policy files, curricula)."""
    from rltransfer.agents import load_agent
    from rltransfer.config import load_family

    where = suite.source_file or suite.name
    for i, pair in enumerate(suite.pairs):
        loc = f"{where}: pairs.{i} ({pair.name})"
        try:
            family = load_family(pair.target.env)
        except RLTransferError as exc:
            raise ConfigError(f"{loc}.target.env: {exc}") from None
        _check_env(family, dict(pair.target.params), pair.target.variant, None, f"{loc}.target")
        if suite.threshold is None and pair.threshold is None and family.success_threshold is None:
            raise ConfigError(
                f"{loc}: no success threshold: family {family.name!r} has none; set 'threshold'"
            )
        if pair.agent is not None:
            try:
                load_agent(pair.agent, family.name)
            except RLTransferError as exc:
                raise ConfigError(f"{loc}.agent: {exc}") from None
        _check_margins(suite, pair, family, loc)
        for j, entry in enumerate(pair.curricula):
            _check_curriculum(entry.name, family, f"{where}: pairs.{i}.curricula.{j} (pair {pair.name})")
        if pair.source is None:
            continue
        train = pair.source.train
        if train is not None:
            try:
                src_family = load_family(train.env)
            except RLTransferError as exc:
                raise ConfigError(f"{loc}.source.train.env: {exc}") from None
            _check_env(src_family, dict(train.params), train.variant, train.randomize, f"{loc}.source.train")
            try:
                load_agent(train.agent, src_family.name)
            except RLTransferError as exc:
                raise ConfigError(f"{loc}.source.train.agent: {exc}") from None
            if train.curriculum is not None:
                _check_curriculum(train.curriculum, src_family, f"{loc}.source.train.curriculum")
                from rltransfer.spec import train_spec

                try:  # with the source's preset and variant (a parameter both fix and draw is refused)
                    train_spec(train.env, train.agent, dict(train.params), max(1, train.steps), train.seed,
                               curriculum=train.curriculum, randomize=train.randomize, variant=train.variant)
                except RLTransferError as exc:
                    raise ConfigError(f"{loc}.source.train.curriculum: {exc}") from None
        elif pair.source.policy is not None and not Path(pair.source.policy).exists():
            raise ConfigError(f"{loc}.source.policy: {pair.source.policy} does not exist")


# ------------------------------------------------------------------------------------- stored with runs


def save_suite(suite: Suite, out: Path) -> None:
    """Write the validated suite to ``out/suite.json`` (what reports are rendered from).

    Curriculum keys left at their defaults (no ``curricula``, no source ``curriculum``), margins not declared,
    and ``until_decided`` and a source's ``source_seeds`` when unset are not written, so a suite without them is stored exactly as before they existed (and older versions can
    read it).
    """
    data = suite.model_dump(mode="json")
    if not suite.margins.declared():
        data.pop("margins", None)
    if suite.until_decided is None:
        data.pop("until_decided", None)
    for pair in data["pairs"]:
        if not pair.get("curricula"):
            pair.pop("curricula", None)
        if not any(v is not None for v in (pair.get("margins") or {}).values()):
            pair.pop("margins", None)
        train = (pair.get("source") or {}).get("train")
        if train is not None and train.get("curriculum") is None:
            train.pop("curriculum", None)
        if train is not None and train.get("source_seeds") is None:
            train.pop("source_seeds", None)
    atomic_write_json(out / "suite.json", {"source_file": suite.source_file, **data})


def stored_suite(out: str | Path) -> Suite:
    """The suite a benchmark folder was run with (``suite.json``)."""
    path = Path(out) / "suite.json"
    if not path.is_file():
        raise ConfigError(f"{out}: not a benchmark folder (no suite.json); run `rltransfer benchmark` first")
    data = read_json(path, "stored suite")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object")
    source = str(data.pop("source_file", ""))[:1000]
    suite: Suite = validate(Suite, data, str(path))
    suite.source_file = source
    return suite
