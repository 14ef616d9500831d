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
    "PairPlan", "curriculum_arm_spec", "pair_plan", "scratch_owners", "scratch_spec", "source_spec",
    "transfer_arm_spec",
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


class PairPlan:
    """A pair resolved: its source (a spec to train, a policy file, or none), the target agent, the target env.

    Attributes:
        source_run: the spec of the source to train, when the pair's transfer arms need one trained.
        source_key: its folder under the benchmark (``sources/<fingerprint>``), or ``None``.
        source: the source the transfer arms load, or ``None`` (a pair without a source).
        agent: the target agent of every arm (the source's architecture on the target's hyperparameters;
            without a source, the pair's ``agent`` for the target family).
    """

    def __init__(self, suite: Suite, pair: PairSpec, out: Path, checkpoints: CheckpointSpec | None) -> None:
        from rltransfer.transfer import describe_policy, describe_spec, target_agent

        self.suite, self.pair, self.out = suite, pair, Path(out)
        self.checkpoints = checkpoints
        self.family: EnvFamily = load_family(pair.target.env)
        self.source_run: RunSpec | None = None
        self.source_key: str | None = None
        self.source: SourceRef | None = None
        if pair.source is None:
            if pair.agent is None:  # the suite's model refuses this; a Suite built by hand might not
                raise ConfigError(f"pair {pair.name!r}: a pair without a source needs 'agent'")
            self.agent: AgentSpec = load_agent(pair.agent, self.family.name)
            return
        if pair.source.train is not None:
            self.source_run = source_spec(pair.source.train, checkpoints)
            fp = self.source_run.fingerprint()
            self.source_key = f"sources/{fp}"
            self.source = SourceRef(path=str(self.out / self.source_key / "policy"), fingerprint=fp)
            description = describe_spec(self.source_run)
        else:
            from rltransfer.bundle import load_policy, policy_fingerprint

            path = str(pair.source.policy)
            self.source = SourceRef(path=str(Path(path).resolve()), fingerprint=policy_fingerprint(path))
            description = describe_policy(load_policy(path))
        self.agent = target_agent(description, self.family, agent=pair.agent)

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
    """A transfer arm at one seed: the target spec plus the source, the strategy and (when the suite's
    detector is on) the scratch runs it compares with."""
    if plan.source is None:  # the suite's model refuses strategies without a source
        raise ConfigError(f"pair {plan.pair.name!r}: strategy {strategy.arm!r} needs a 'source' to transfer from")
    base = plan.target(seed, strategy.arm)
    ts = TransferSpec(source=plan.source, strategy={"name": strategy.name, **dict(strategy.options)})
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
