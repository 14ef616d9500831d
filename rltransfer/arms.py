"""The runs of a suite as run specs: each pair's source, its scratch arm, its transfer arms and its
curriculum arms.

Every benchmark run is a :class:`~rltransfer.spec.RunSpec` built here from the suite (names resolved to
content once, in the parent process); workers only execute specs. A run's fingerprint is its spec's
content hash, so changing any value in any YAML a run depends on (the family, the agent, the suite)
reruns exactly the runs it changes, and pairs whose scratch runs would be identical share them.

The scratch arm is the transfer arms' target agent (the target's hyperparameters with the source's
architecture, normalization and wrappers) trained from its own initialization on the same target (its
variant included): only the initialization differs between the arms of a pair. A curriculum arm is the
scratch arm's spec plus the curriculum's content (same agent, seed, budget and evaluation): only the
training envs' parameter schedule differs. A pair without a source (curriculum arms only) has the pair's
``agent`` as its target agent.

A trained source with ``source_seeds`` is trained once per source seed (each its own source run, shared with
any pair that trains the same spec); the k-th of the suite's target seeds starts from source ``k mod
n_sources`` (:func:`source_index`), so the arm's variance includes the variance from the source. The target
agent comes from the first source (the seed does not change the architecture). With one source seed every
spec is what it was before ``source_seeds`` existed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rltransfer.agents import load_agent
from rltransfer.config import AgentSpec, EnvFamily, load_family
from rltransfer.errors import ConfigError
from rltransfer.spec import (
    CheckpointSpec,
    DetectionSpec,
    RunSpec,
    SourceRef,
    TransferSpec,
    WrapperEntry,
    train_spec,
)
from rltransfer.suite import SCRATCH, CurriculumEntry, PairSpec, StrategyEntry, Suite, TrainSource

__all__ = [
    "PairPlan", "curriculum_arm_spec", "pair_plan", "scratch_owners", "scratch_spec", "source_index", "source_keys",
    "source_spec", "transfer_arm_spec",
]


def source_spec(train: TrainSource, checkpoints: CheckpointSpec | None = None) -> RunSpec:
    """The run spec of a source a suite trains (``steps: 0``: the untrained initialization), with its
    domain-randomization preset, variant and curriculum if it names them (its policy's description, hence
    the target agent, does not depend on any of them; its fingerprint does: a curriculum's content is in
    the spec)."""
    freq = train.eval.freq if train.eval else max(1, train.steps // 5)
    episodes = train.eval.episodes if train.eval else 5
    spec = train_spec(train.env, train.agent, dict(train.params), max(1, train.steps), train.seed, freq, episodes,
                      training_wrappers=[WrapperEntry(name=w.name, kwargs=dict(w.kwargs)) for w in train.training_wrappers],
                      curriculum=train.curriculum, checkpoints=checkpoints, label="source",
                      randomize=train.randomize, variant=train.variant)
    return spec.model_copy(update={"steps": 0}) if train.steps == 0 else spec


def source_index(suite: Suite, pair: PairSpec, seed: int) -> int:
    """Which of the pair's sources the transfer arm's run at target ``seed`` starts from: ``k mod n_sources``
    for the ``k``-th of the suite's seeds (0 for a pair with one source, or none).

    Raises:
        ConfigError: ``seed`` is not one of the suite's seeds.
    """
    seeds = suite.seed_list
    if seed not in seeds:
        raise ConfigError(f"pair {pair.name!r}: seed {seed!r} is not one of the suite's seeds {seeds}")
    train = pair.source.train if pair.source is not None else None
    n_sources = len(train.seed_list) if train is not None else 1
    return seeds.index(seed) % n_sources


def source_keys(suite: Suite, pair: PairSpec) -> list[str]:
    """The keys (``sources/<fingerprint>``) of the source runs the suite trains for ``pair``, one per source
    seed in order (empty for a policy file or no source), as :func:`rltransfer.benchmark.expand` names them
    (whether the pair trains them at all depends on its having transfer arms)."""
    train = pair.source.train if pair.source is not None else None
    if train is None:
        return []
    checkpoints = CheckpointSpec(save_freq=suite.save_freq)
    return [f"sources/{source_spec(train.model_copy(update={'seed': seed}), checkpoints).fingerprint()}"
            for seed in train.seed_list]


class PairPlan:
    """A pair resolved: its sources (specs to train, a policy file, or none), the target agent, the target env.

    Attributes:
        source_runs: the specs of the sources to train (one per source seed), when the pair trains its source.
        source_keys: their folders under the benchmark (``sources/<fingerprint>``).
        sources: the sources the transfer arms load (one per source seed; one for a policy file; none without
            a source).
        source_run, source_key, source: the first of each (``None`` when there is none).
        agent: the target agent of every arm (the source's architecture on the target's hyperparameters;
            without a source, the pair's ``agent`` for the target family).
    """

    def __init__(self, suite: Suite, pair: PairSpec, out: Path, checkpoints: CheckpointSpec | None) -> None:
        from rltransfer.transfer import describe_policy, describe_spec, target_agent

        self.suite, self.pair, self.out = suite, pair, Path(out)
        self.checkpoints = checkpoints
        self.family: EnvFamily = load_family(pair.target.env)
        self.source_runs: list[RunSpec] = []
        self.source_keys: list[str] = []
        self.sources: list[SourceRef] = []
        if pair.source is None:
            if pair.agent is None:  # the suite's model refuses this; a Suite built by hand might not
                raise ConfigError(f"pair {pair.name!r}: a pair without a source needs 'agent'")
            self.agent: AgentSpec = load_agent(pair.agent, self.family.name)
            return
        train = pair.source.train
        if train is not None:
            for seed in train.seed_list:
                run = source_spec(train if seed == train.seed else train.model_copy(update={"seed": seed}),
                                  checkpoints)
                fp = run.fingerprint()
                self.source_runs.append(run)
                self.source_keys.append(f"sources/{fp}")
                self.sources.append(SourceRef(path=str(self.out / "sources" / fp / "policy"), fingerprint=fp))
            description = describe_spec(self.source_runs[0])
        else:
            from rltransfer.bundle import load_policy, policy_fingerprint

            path = str(pair.source.policy)
            self.sources.append(SourceRef(path=str(Path(path).resolve()), fingerprint=policy_fingerprint(path)))
            description = describe_policy(load_policy(path))
        self.agent = target_agent(description, self.family, agent=pair.agent)

    @property
    def source_run(self) -> RunSpec | None:
        return self.source_runs[0] if self.source_runs else None

    @property
    def source_key(self) -> str | None:
        return self.source_keys[0] if self.source_keys else None

    @property
    def source(self) -> SourceRef | None:
        return self.sources[0] if self.sources else None

    def source_of(self, seed: int) -> tuple[SourceRef, str | None]:
        """The source the transfer run at target ``seed`` loads, and the key of its source run (``None`` for a
        policy file)."""
        if not self.sources:
            raise ConfigError(f"pair {self.pair.name!r}: no source to transfer from")
        i = source_index(self.suite, self.pair, seed)
        return self.sources[i], (self.source_keys[i] if self.source_keys else None)

    def target(self, seed: int, label: str, curriculum: str | None = None) -> RunSpec:
        """The target agent's training spec on the target at ``seed`` (with ``curriculum``, if given)."""
        ev = self.suite.eval_of(self.pair)
        return train_spec(self.family, self.agent, dict(self.pair.target.params), self.suite.budget_of(self.pair),
                          seed, ev.freq, ev.episodes, curriculum=curriculum, checkpoints=self.checkpoints,
                          label=label, variant=self.pair.target.variant)


def pair_plan(suite: Suite, pair: PairSpec, out: str | Path = ".", save_freq: int | None = None) -> PairPlan:
    """The resolved plan of ``pair``: files are read anew every time (never cached by name), so what a
    run depends on is always the files' current content."""
    return PairPlan(suite, pair, Path(out).resolve(), CheckpointSpec(save_freq=save_freq))


def scratch_spec(plan: PairPlan, seed: int) -> RunSpec:
    """The scratch arm of a pair at one seed: the target agent trained from its own initialization."""
    return plan.target(seed, SCRATCH)


def _detection(plan: PairPlan, reference: tuple[str, ...], reference_fingerprints: tuple[str, ...]
               ) -> DetectionSpec | None:
    """The online detector of an arm (when the suite's detector is on and there are scratch runs to compare with)."""
    det = plan.suite.detection
    if not det.enable or not reference:
        return None
    return DetectionSpec(settings=det.model_dump(mode="json"), reference=reference,
                         reference_fingerprints=reference_fingerprints)


def transfer_arm_spec(plan: PairPlan, strategy: StrategyEntry, seed: int,
                      reference: tuple[str, ...] = (), reference_fingerprints: tuple[str, ...] = ()) -> RunSpec:
    """A transfer arm at one seed: the target spec plus the source (the seed's, :func:`source_index`), the
    strategy and (when the suite's detector is on) the scratch runs it compares with."""
    if plan.source is None:  # the suite's model refuses strategies without a source
        raise ConfigError(f"pair {plan.pair.name!r}: strategy {strategy.arm!r} needs a 'source' to transfer from")
    base = plan.target(seed, strategy.arm)
    source, _ = plan.source_of(seed)
    ts = TransferSpec(source=source, strategy={"name": strategy.name, **dict(strategy.options)})
    return base.model_copy(update={"transfer": ts, "detection": _detection(plan, reference, reference_fingerprints)})


def curriculum_arm_spec(plan: PairPlan, entry: CurriculumEntry, seed: int,
                        reference: tuple[str, ...] = (), reference_fingerprints: tuple[str, ...] = ()) -> RunSpec:
    """A curriculum arm at one seed: the scratch spec (same agent, seed, budget and evaluation) plus the
    curriculum's content, and (when the suite's detector is on) the scratch runs it compares with."""
    base = plan.target(seed, entry.arm, curriculum=entry.name)
    return base.model_copy(update={"detection": _detection(plan, reference, reference_fingerprints)})


def scratch_owners(suite: Suite) -> dict[str, str]:
    """``{pair: pair whose scratch runs it uses}``: the first pair whose scratch spec is the same content."""
    first: dict[str, str] = {}
    owners: dict[str, str] = {}
    for pair in suite.pairs:
        plan = pair_plan(suite, pair)
        owners[pair.name] = first.setdefault(scratch_spec(plan, suite.seed_list[0]).fingerprint(), pair.name)
    return owners


def describe(spec: RunSpec) -> dict[str, Any]:
    """A short JSON-able summary of a spec for ``task.json`` (the spec itself is in ``config.yaml``)."""
    return {"label": spec.label, "family": spec.env.family.name, "params": spec.env.params, "steps": spec.steps,
            "seed": spec.seed, "algo": spec.agent.algo, "fingerprint": spec.fingerprint()}
