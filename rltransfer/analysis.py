"""Analysis of a benchmark folder's stored runs: per-run metrics, arm-vs-scratch comparisons, verdicts.

:func:`analyze` reads only what is stored (``suite.json``, each run's ``eval.npz``, ``status.json``,
``task.json`` and ``detection.json``), so it works on a finished or a partially finished benchmark and
never trains anything. Per-run metrics come from :func:`rltransfer.metrics.run_metrics` (AUC normalized by
the family's ``return_range``). Per (pair, arm), with :mod:`rltransfer.statistics`:

* **the verdict** on normalized AUC (:func:`~rltransfer.statistics.judge_suite`: Welch t with Hsu's degrees
  of freedom and its t interval, an exact permutation test when both arms are constant, Holm across the
  suite's pairs x arms, "equivalent" by two one-sided tests within the pair's AUC margin); it is the
  ``label`` that control pairs are checked against (:data:`PRIMARY_VERDICT`);
* **the profile** (:func:`~rltransfer.statistics.profile_verdict`): jumpstart, AUC and final performance read
  together, Holm across pairs x arms x these three metrics, each pair with its family's return range and
  margins (:data:`PROFILE_RULE`): better, worse, jumpstart only, crossover, slow start, equivalent or
  inconclusive;
* **per metric**: the difference with its Welch-Hsu t interval, the Welch-Hsu and exact permutation
  p-values, the p-value Holm-adjusted across pairs x arms (Welch-Hsu; the permutation test where Welch is
  undefined), TOST within the metric's margin and the seeds per arm a margin would take
  (:func:`~rltransfer.statistics.seeds_for_margin`, from the runs' pooled sd, never the observed effect);
* **time to threshold** as censored data: Kaplan-Meier curves per arm, a permutation log-rank test and the
  difference of restricted mean times up to the budget (:func:`~rltransfer.statistics.rmst_difference`),
  instead of filling the censored runs with the budget;
* **across the suite** (:class:`Aggregate`): IQM of normalized AUC per arm kind (and per arm name used in
  several pairs) with stratified bootstrap intervals, its difference from scratch, a performance profile and
  the probability of improvement averaged over pairs, with an interval.

An arm is a transfer strategy or a curriculum (the target agent trained from scratch with it): both are
compared with the pair's scratch arm the same way; in the results a curriculum arm's ``strategy`` reads
``curriculum:<name>`` (:attr:`ArmResult.kind` says which kind an arm is).

Sign convention (:data:`SIGN_CONVENTION`): every difference is oriented so that positive means the arm is
better than scratch (arm minus scratch, and scratch minus arm for time to threshold: the steps by which
the arm reaches the threshold sooner). Run counts (:func:`count_runs`) count what the benchmark runner
counts: every run of the suite (sources, scratch runs once even when pairs share them, the arms), in its
words. Writing the results down is :mod:`rltransfer.report`'s job.

Nested sources (several source seeds per pair) are analysed elsewhere: :func:`arm_values` is where an arm's
per-seed values are read, and :attr:`ArmResult.sources` is where that analysis puts its result.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rltransfer.errors import RLTransferError
from rltransfer.rundir import read_json, read_status
from rltransfer.suite import (
    CURRICULUM_PREFIX,
    DETECTION_FILE,
    EXPECTED,
    EXPECTED_LABELS,
    SCRATCH,
    TASK_FILE,
    PairSpec,
    Suite,
    stored_suite,
)

__all__ = [
    "AGGREGATE_EXCLUDED_ROLES",
    "METRICS",
    "PRIMARY",
    "PRIMARY_VERDICT",
    "PROFILE_METRICS",
    "PROFILE_RULE",
    "SIGN_CONVENTION",
    "Aggregate",
    "Analysis",
    "ArmResult",
    "KaplanMeierCurve",
    "MetricComparison",
    "RunCounts",
    "RunRecord",
    "SurvivalCurves",
    "analyze",
    "arm_values",
    "collect_runs",
    "count_runs",
    "resolved_margins",
]

#: Metrics compared per (pair, arm): name -> (run_metrics key, higher is better).
METRICS: dict[str, tuple[str, bool]] = {
    "jumpstart": ("initial", True),
    "asymptotic": ("asymptotic", True),
    "auc": ("auc", True),
    "time_to_threshold": ("time_to_threshold", False),
}
PRIMARY = "auc"
#: The metrics the profile reads, in time order: analysis name -> :data:`rltransfer.statistics.PROFILE_METRICS`.
PROFILE_METRICS: dict[str, str] = {"jumpstart": "initial", "auc": "auc", "asymptotic": "asymptotic"}
#: Default margins of the return and time metrics, as a fraction of the return range and of the budget.
DEFAULT_MARGIN_FRACTION = 0.05
#: Pairs built to show no or negative transfer are left out of the suite aggregates.
AGGREGATE_EXCLUDED_ROLES = ("planted_negative", "null")

#: How every difference (``diff``, ``ci_low``, ``ci_high``) is oriented, in the report and report.json.
SIGN_CONVENTION = (
    "every difference is oriented so that positive means the arm is better than scratch: arm minus scratch "
    "for jumpstart, asymptotic return and normalized AUC, scratch minus arm for time to threshold (the "
    "environment steps by which the arm reaches the threshold sooner)"
)

#: Which of the two verdicts is the verdict.
PRIMARY_VERDICT = (
    "The verdict is the verdict rule on normalized AUC (positive, negative, equivalent or inconclusive): it is "
    "what control pairs are checked against and what `rltransfer benchmark` prints. The profile reads the "
    "jumpstart, the AUC and the final performance together (profile rule) and names the pattern the AUC alone "
    "hides (a head start that fades, a crossover); where the two seem to disagree, the profile says why."
)

PROFILE_RULE = """\
Profile rule. Each (task pair, arm) comparison is also read on three metrics together, in time order:
jumpstart (first evaluation), normalized AUC and final performance (mean of the last evaluations), each
oriented so that a positive difference means the arm is better.

1. Too few seeds: if either arm has fewer than `min_seeds` runs, the profile is "inconclusive".
2. Each metric: the Welch t-test with Hsu's degrees of freedom min(n_t, n_s) - 1 and the matching
   (1 - alpha) t interval (an exact permutation test when both arms are constant).
3. Holm: the three p-values of every comparison of the suite with enough seeds form one family
   (3 x pairs x arms), Holm-Bonferroni adjusted, so that on a suite of null comparisons the chance of
   naming any pattern anywhere is at most alpha. A metric is better / worse when its adjusted p < alpha.
4. The label:
   "better"          only better metrics, the final performance among them (or the AUC alone);
   "jumpstart only"  only better metrics, the jumpstart among them, the final performance not: a head
                     start that scratch catches up with;
   "worse"           only worse metrics;
   "crossover"       better early, worse later (every better metric before every worse one);
   "slow start"      worse early, better later;
   "equivalent"      nothing better or worse, and every metric equivalent within its margin by two
                     one-sided tests at alpha (margins: 0.05 normalized AUC and 5% of the family's return
                     range, unless the suite declares others);
   "inconclusive"    otherwise (better and worse interleaved, or nothing shown either way)."""


@dataclass
class RunRecord:
    """One stored run and its metrics.

    Attributes:
        steps, returns: the run's evaluation curve as recorded (a run stopped by the detector ends at its
            stop; comparisons put every run on the span all of them reached, :func:`_on_common_span`).
        metrics: ``{"initial", "asymptotic", "auc", "time_to_threshold", "ttt_censored"}``.
        stopped_early: the detector stopped the run. ``alarm_step``, ``steps_saved``, ``would_save``:
            from ``detection.json`` (``would_save``: what stopping at the alarm saves, whatever the action).
    """

    pair: str
    arm: str
    strategy: str
    seed: int
    run_dir: str
    status: str
    budget: int
    steps: list[float] = field(default_factory=list)
    returns: list[float] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    stopped_early: bool = False
    alarm_step: int | None = None
    steps_saved: int = 0
    would_save: int = 0
    trained_steps: int | None = None


@dataclass
class MetricComparison:
    """Arm versus scratch on one metric.

    ``diff``, ``ci_low`` and ``ci_high`` follow :data:`SIGN_CONVENTION` (positive = the arm better); the means
    are in the metric's own units. ``*_transfer`` fields are the arm's (a transfer or a curriculum arm).

    For jumpstart, asymptotic return and AUC: the difference of means with its ``1 - alpha`` Welch-Hsu t
    interval; ``p_value`` is the Welch-Hsu p (``test="welch"``), or the exact permutation p where Welch is
    undefined (both arms constant, ``test="permutation"``). For time to threshold: the means are restricted
    mean times to the threshold up to ``tau`` (the budget; Kaplan-Meier), ``diff`` is scratch's minus the
    arm's with its t interval (``rmst_p``), and ``p_value`` is the permutation log-rank test
    (``test="logrank"``); ``welch_p`` and ``permutation_p`` are then ``nan``.

    Attributes:
        holm_p: ``p_value`` Holm-adjusted across the suite's pairs x arms for this metric (for AUC: the
            verdict's own adjusted p).
        profile_holm_p: the profile's adjusted p (across pairs x arms x jumpstart, AUC, final); ``nan`` for
            time to threshold.
        margin: equivalence margin in the metric's units; ``equivalence_p`` the TOST p-value (for time to
            threshold ``nan``: equivalence there is the ``1 - 2 alpha`` RMST interval inside the margin);
            ``equivalent`` whether it is shown.
        seeds_needed: seeds per arm with which the test would detect a true difference of one margin with
            80% power; ``seeds_needed_equivalence``: to show equivalence within it if the true difference is
            0. Both from the runs' pooled sd (a planning figure, not the observed effect); ``inf`` above 1000,
            ``nan`` when it cannot be planned (fewer than two runs, no spread, time to threshold).
        prob_improvement: P(an arm run beats a scratch run) with a bootstrap interval (descriptive; time to
            threshold: censored runs counted at the budget).
    """

    metric: str
    higher_is_better: bool
    n_transfer: int
    n_scratch: int
    mean_transfer: float
    mean_scratch: float
    diff: float
    ci_low: float
    ci_high: float
    prob_improvement: float
    poi_low: float
    poi_high: float
    welch_p: float
    permutation_p: float
    p_value: float = math.nan
    test: str = "welch"
    holm_p: float = math.nan
    profile_holm_p: float = math.nan
    margin: float = math.nan
    equivalence_p: float = math.nan
    equivalent: bool = False
    seeds_needed: float = math.nan
    seeds_needed_equivalence: float = math.nan
    censored_transfer: int = 0
    censored_scratch: int = 0
    logrank_p: float = math.nan
    rmst_p: float = math.nan
    tau: float = math.nan


@dataclass
class KaplanMeierCurve:
    """One arm's Kaplan-Meier estimate of P(threshold not yet reached at step t)
    (:func:`rltransfer.statistics.kaplan_meier`): a right-continuous step function, 1 before ``times[0]``.

    Attributes:
        times: distinct steps at which some run first reached the threshold.
        survival: the estimate just after each of them; ``low``, ``high``: pointwise interval (Greenwood,
            log-log).
        at_risk, events: runs not yet at the threshold (and not censored) just before each time, and runs
            reaching it then.
        censored_at: the steps at which the censored runs were last seen (never at the threshold).
        n: runs of the arm.
    """

    times: list[float]
    survival: list[float]
    low: list[float]
    high: list[float]
    at_risk: list[int]
    events: list[int]
    censored_at: list[float]
    n: int


@dataclass
class SurvivalCurves:
    """Time to threshold of one (pair, arm) as censored data: both arms' Kaplan-Meier curves.

    Attributes:
        threshold: the return that counts as reaching it; ``tau``: the budget, the restriction time of
            the restricted means.
    """

    threshold: float
    tau: float
    transfer: KaplanMeierCurve
    scratch: KaplanMeierCurve


@dataclass
class ArmResult:
    """The verdicts and comparisons of one arm of one pair (a transfer strategy, or a curriculum: then
    ``strategy`` is ``curriculum:<name>`` and the ``*_transfer`` values are the curriculum arm's).

    Attributes:
        label: the verdict on normalized AUC (positive, negative, equivalent, inconclusive):
            :data:`PRIMARY_VERDICT`. ``reason``: its sentence with the numbers.
        seeds_needed: seeds per arm to detect a difference of ``margin`` in normalized AUC (planning figure);
            ``seeds_needed_equivalence``: to show equivalence within it.
        margin, equivalence_p: the AUC margin and the TOST p-value within it.
        profile, profile_reason: the profile label (:data:`PROFILE_RULE`) and its sentence.
        survival: the Kaplan-Meier curves of time to threshold (``None`` with fewer than one run per arm).
        sources: filled by the analysis of nested sources (several source seeds per pair), ``None`` here.
    """

    pair: str
    arm: str
    strategy: str
    role: str
    label: str
    reason: str
    seeds_needed: float
    comparisons: dict[str, MetricComparison]
    transfer_ratio: tuple[float, float, float]
    steps_saved: int
    would_save: int
    alarms: int
    budget: int
    n_runs: int
    scratch_from: str = ""
    #: Zero-shot return: the mean over seeds of the first evaluation (step 0, before any target training),
    #: absolute, of the transfer arm and of scratch (the jumpstart is their difference).
    zero_shot_transfer: float = math.nan
    zero_shot_scratch: float = math.nan
    margin: float = math.nan
    equivalence_p: float = math.nan
    seeds_needed_equivalence: float = math.nan
    profile: str = "inconclusive"
    profile_reason: str = ""
    survival: SurvivalCurves | None = None
    sources: dict[str, Any] | None = None
    horizon: float | None = None

    @property
    def kind(self) -> str:
        """``transfer`` or ``curriculum``."""
        return "curriculum" if self.strategy.startswith(CURRICULUM_PREFIX) else "transfer"

    @property
    def expected(self) -> str | None:
        return EXPECTED.get(self.role)

    @property
    def control_ok(self) -> bool | None:
        """Whether a control pair came out as its role expects (``None`` for other pairs): a useful pair
        positive, a planted negative negative, a null control neither positive nor negative (equivalent or
        inconclusive)."""
        accepted = EXPECTED_LABELS.get(self.role)
        return None if accepted is None else self.label in accepted


@dataclass
class Aggregate:
    """Normalized AUC across the suite's pairs for a group of arms (all transfer arms, all curriculum arms, or
    one arm name used in several pairs), rliable-style (:mod:`rltransfer.statistics`' aggregates).

    The tasks are the group's (pair, arm) comparisons with at least ``min_seeds`` runs per arm, control pairs
    with roles in :data:`AGGREGATE_EXCLUDED_ROLES` left out. Each task contributes its first ``runs_per_task``
    runs of the arm and ``scratch_runs_per_task`` of its pair's scratch (by seed), so that the score matrices
    are rectangular. Intervals: stratified bootstrap (runs resampled within each task), percentile,
    ``1 - alpha``; descriptive (the verdicts do not use them).

    Attributes:
        iqm_arm, iqm_scratch: interquartile mean of normalized AUC over runs x tasks ``(point, low, high)``.
        iqm_difference: arm minus scratch (positive = the arms better).
        prob_improvement: P(an arm run's AUC beats a scratch run's of the same pair), averaged over tasks.
        taus: thresholds of the performance profile; ``profile_arm``/``profile_scratch``: fraction of runs
            with normalized AUC above each, ``*_low``/``*_high`` their pointwise bands.
    """

    group: str
    kind: str
    tasks: list[str]
    runs_per_task: int
    scratch_runs_per_task: int
    iqm_arm: tuple[float, float, float]
    iqm_scratch: tuple[float, float, float]
    iqm_difference: tuple[float, float, float]
    prob_improvement: tuple[float, float, float]
    taus: list[float]
    profile_arm: list[float]
    profile_arm_low: list[float]
    profile_arm_high: list[float]
    profile_scratch: list[float]
    profile_scratch_low: list[float]
    profile_scratch_high: list[float]
    excluded: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RunCounts:
    """The runs of a suite in a benchmark folder, counted as the benchmark runner counts them: every run
    it executes (sources, each scratch run once even when pairs share it, transfer and curriculum arms).

    Attributes:
        by_kind: the suite's runs per kind: ``{"source": 1, "scratch": 3, "transfer": 6, "curriculum": 0}``.
        finished: runs found done (executed in the last session or an earlier one).
        failed: runs that failed plus runs not run because a run they depend on failed (the runner counts
            both as failed); ``blocked`` says how many of them are the latter.
        to_run: runs neither finished nor failed (not started, interrupted or killed): a rerun does them.
        session: the last session's counts as ``rltransfer benchmark`` printed them
            (``{"executed", "already_done", "failed", "total"}``), ``None`` when no session was recorded.
        unfinished: keys of the runs not finished (sources first).
    """

    by_kind: dict[str, int]
    finished: int
    failed: int
    blocked: int
    to_run: int
    session: dict[str, Any] | None = None
    unfinished: tuple[str, ...] = ()
    not_needed: int = 0

    @property
    def total(self) -> int:
        return sum(self.by_kind.values())

    def summary(self) -> str:
        """``10 runs (1 source, 3 scratch, 6 transfer): 9 finished, 1 failed, 0 still to run``."""
        kinds = ", ".join(f"{n} {kind}" for kind, n in self.by_kind.items() if n)
        failed = f"{self.failed} failed"
        if self.blocked:
            failed += f" ({self.blocked} of them not run: a run they depend on failed)"
        runs = "run" if self.total == 1 else "runs"
        text = f"{self.total} {runs} ({kinds}): {self.finished} finished, {failed}, {self.to_run} still to run"
        if self.not_needed:
            text += (f"; {self.not_needed} more the fixed design would make, not needed (their comparisons were "
                     "decided with fewer seeds)")
        return text

    def session_summary(self) -> str | None:
        """The last session in the words ``rltransfer benchmark`` printed it: ``9 executed, 1 already done,
        0 failed`` (``None`` without a recorded session)."""
        if self.session is None:
            return None
        s = self.session
        return f"{s['executed']} executed, {s['already_done']} already done, {s['failed']} failed"

    def to_dict(self) -> dict[str, Any]:
        return {"total": self.total, "by_kind": dict(self.by_kind), "finished": self.finished,
                "failed": self.failed, "blocked": self.blocked, "still_to_run": self.to_run,
                "not_needed": self.not_needed,
                "last_session": self.session, "summary": self.summary()}


@dataclass
class Analysis:
    """Everything the report shows, computed from the stored runs only.

    Attributes:
        runs: the finished runs, per pair (a scratch run shared by pairs appears once per pair).
        missing: keys of the suite's runs not finished (sources included).
        return_ranges: ``{pair: (low, high)}``, the target family's ``return_range`` (what AUC is
            normalized by, and what the plots keep their bands inside).
        counts: the suite's runs counted as the runner counts them (:func:`count_runs`).
        margins: ``{pair: {metric: margin}}`` as used (declared in the suite, else the defaults).
        thresholds: ``{pair: success threshold}`` used for time to threshold.
        aggregates: the suite aggregates (:class:`Aggregate`).
    """

    suite: Suite
    out: Path
    runs: list[RunRecord]
    results: list[ArmResult]
    sessions: list[dict[str, Any]]
    missing: list[str]
    return_ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    counts: RunCounts | None = None
    margins: dict[str, dict[str, float]] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)
    aggregates: list[Aggregate] = field(default_factory=list)

    @property
    def wall_time(self) -> float:
        return float(sum(s.get("seconds", 0.0) for s in self.sessions))

    def runs_of(self, pair: str, arm: str) -> list[RunRecord]:
        return [r for r in self.runs if r.pair == pair and r.arm == arm]

    def to_dict(self) -> dict[str, Any]:
        """What ``report.json`` holds (no negative zeros)."""
        from rltransfer.statistics import VERDICT_RULE

        return _no_negative_zero({
            "suite": self.suite.name,
            "sign_convention": SIGN_CONVENTION,
            "ci_level": 1 - self.suite.alpha,
            "primary_verdict": PRIMARY_VERDICT,
            "rules": {"verdict": VERDICT_RULE, "profile": PROFILE_RULE},
            "run_counts": self.counts.to_dict() if self.counts is not None else None,
            "wall_time_seconds": round(self.wall_time, 3),
            "last_session_seconds": self.sessions[-1].get("seconds") if self.sessions else None,
            "sessions": self.sessions,
            "missing_runs": self.missing,
            "settings": {"seeds": self.suite.seed_list, "budget": self.suite.budget,
                         "alpha": self.suite.alpha, "min_seeds": self.suite.min_seeds,
                         "eval": self.suite.eval.model_dump(), "detection": self.suite.detection.model_dump(),
                         "metrics": self.suite.metrics.model_dump(),
                         "return_ranges": {k: list(v) for k, v in self.return_ranges.items()},
                         "margins": self.margins, "thresholds": self.thresholds},
            "results": [{**{k: v for k, v in asdict(r).items() if k != "comparisons"},
                         "kind": r.kind, "expected": r.expected, "control_ok": r.control_ok,
                         "comparisons": {m: asdict(c) for m, c in r.comparisons.items()}}
                        for r in self.results],
            "aggregates": [asdict(a) for a in self.aggregates],
            "runs": [{k: v for k, v in asdict(r).items() if k not in ("steps", "returns")}
                     for r in self.runs],
        })


def _no_negative_zero(obj: Any) -> Any:
    """``obj`` with every ``-0.0`` (in dicts, lists and tuples) made ``0.0``."""
    if isinstance(obj, float):
        return 0.0 if obj == 0 else obj
    if isinstance(obj, dict):
        return {k: _no_negative_zero(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_no_negative_zero(v) for v in obj]
    return obj


def _curve_for_metrics(run_dir: Path, budget: int) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """The evaluation curve of a stored run as it was recorded, and its detection record.

    A run the detector stopped keeps its own, shorter curve: it is never held at its last value to the
    budget nor spliced with its fallback's (both measure something else than the comparison does; see
    :func:`_on_common_span`). The fallback run has its own run directory and curve."""
    from rltransfer.training import EvalCurve

    curve = EvalCurve.load(run_dir)
    steps = np.asarray(curve.steps, dtype=float)
    rets = np.asarray(curve.mean, dtype=float)
    info: dict[str, Any] = {}
    det_path = run_dir / DETECTION_FILE
    if det_path.is_file():
        with contextlib.suppress(OSError, ValueError):
            info = read_json(det_path, "detection record")
        if not isinstance(info, dict):
            info = {}
    return steps, rets, info


def _on_common_span(transfer: list[RunRecord], scratch: list[RunRecord], budget: float, threshold: float,
                    low: float, high: float, last_k: int) -> tuple[list[RunRecord], list[RunRecord], float | None]:
    """An arm and its scratch runs compared on the evaluations every one of them reached.

    When the detector stopped runs of the arm, each run's metrics are recomputed on the span up to the
    common horizon (:func:`rltransfer.detection.censored_metrics`, :func:`~rltransfer.detection.common_horizon`)
    and runs that stopped before it (stopped at their first evaluation by another run's alarm) are left
    out. With the sequential rule's one group of all runs, the horizon is the alarm's evaluation, which
    depends on the runs' data only, not on the order they trained in. Without a stop: the records as they
    are and ``None``.
    """
    from rltransfer.detection import censored_metrics, common_horizon

    stops = {id(r): float(r.alarm_step) if r.stopped_early and r.alarm_step is not None else None
             for r in (*transfer, *scratch)}
    if not any(v is not None for v in stops.values()):
        return transfer, scratch, None
    kw = {"threshold": threshold, "low": low, "high": high, "last_k": last_k}
    reached = [censored_metrics(r.steps, r.returns, stops[id(r)], budget, **kw).reached for r in (*transfer, *scratch)]
    first = min(float(r.steps[0]) for r in (*transfer, *scratch))
    horizon = common_horizon(reached, budget, first_step=first)

    def on_span(runs: list[RunRecord]) -> list[RunRecord]:
        kept = []
        for r in runs:
            m = censored_metrics(r.steps, r.returns, stops[id(r)], budget, horizon=horizon, **kw)
            if not m.censored and m.metrics is not None:
                kept.append(dataclasses.replace(r, metrics=m.metrics))
        return kept

    return on_span(transfer), on_span(scratch), float(horizon)


def _arm_strategy(pair: PairSpec, arm: str) -> str:
    return pair.arm_strategy(arm)


def collect_runs(suite: Suite, out: Path) -> tuple[list[RunRecord], list[str]]:
    """Metrics of every finished run of the suite in ``out``; also the keys of runs not (yet) done."""
    from rltransfer.config import load_family
    from rltransfer.metrics import run_metrics

    records: list[RunRecord] = []
    missing: list[str] = []
    owners = stored_scratch_owners(suite, out)
    thresholds = _thresholds(suite)
    for pair in suite.pairs:
        family = load_family(pair.target.env)
        low, high = family.return_range
        threshold = thresholds[pair.name]
        budget = suite.budget_of(pair)
        for arm in [SCRATCH, *pair.arms]:
            for seed in suite.seed_list:
                key = f"runs/{owners[pair.name] if arm == SCRATCH else pair.name}/{arm}/seed{seed}"
                run_dir = out / key
                status = read_status(run_dir).get("status", "missing")
                task_ok = False
                with contextlib.suppress(OSError, ValueError, AttributeError):
                    task_ok = bool(read_json(run_dir / TASK_FILE, "task record").get("complete"))
                if status != "done" or not task_ok or not (run_dir / "eval.npz").is_file():
                    if key not in missing:
                        missing.append(key)
                    continue
                steps, rets, info = _curve_for_metrics(run_dir, budget)
                m = run_metrics(steps, rets, threshold, low, high, suite.metrics.last_k)
                trained = read_status(run_dir).get("steps")
                records.append(RunRecord(
                    pair=pair.name, arm=arm, strategy=_arm_strategy(pair, arm), seed=seed,
                    run_dir=str(run_dir),
                    status=status, budget=budget, steps=steps.tolist(), returns=rets.tolist(), metrics=m,
                    stopped_early=bool(info.get("alarm_step") is not None
                                       and info.get("action") in ("stop", "fallback")),
                    alarm_step=info.get("alarm_step"), steps_saved=int(info.get("steps_saved") or 0),
                    would_save=int(info.get("would_save") or 0), trained_steps=trained,
                ))
    return records, missing


def _ratio_interval(
    t: np.ndarray, s: np.ndarray, n_boot: int, alpha: float, seed: int
) -> tuple[float, float, float]:
    """Transfer ratio of mean AUCs, ``(mean_t - mean_s) / mean_s``, with a stratified bootstrap interval."""
    from rltransfer.metrics import transfer_ratio

    point = transfer_ratio(float(t.mean()), float(s.mean()))
    if not math.isfinite(point):
        return point, math.nan, math.nan
    rng = np.random.default_rng(seed)
    bt = t[rng.integers(0, t.size, size=(n_boot, t.size))].mean(axis=1)
    bs = s[rng.integers(0, s.size, size=(n_boot, s.size))].mean(axis=1)
    ok = np.abs(bs) > 1e-8
    ratios = (bt[ok] - bs[ok]) / bs[ok]
    if ratios.size == 0:
        return point, math.nan, math.nan
    low, high = np.quantile(ratios, [alpha / 2, 1 - alpha / 2])
    return point, float(low), float(high)


def _source_key(suite: Suite, pair: PairSpec, out: Path) -> str | None:
    """The key (``sources/<fingerprint>``) of the source run a pair's transfer arms start from, as the runner
    names it; ``None`` when the suite trains no source for the pair (a policy file, or no transfer arm)."""
    if not pair.strategies or pair.source is None or pair.source.train is None:
        return None
    from rltransfer.arms import source_spec
    from rltransfer.spec import CheckpointSpec

    try:
        return f"sources/{source_spec(pair.source.train, CheckpointSpec(save_freq=suite.save_freq)).fingerprint()}"
    except (RLTransferError, OSError, ValueError):  # a file it names is gone: the key an arm recorded
        for strat in pair.strategies:
            for seed in suite.seed_list:
                with contextlib.suppress(OSError, ValueError, AttributeError):
                    deps = read_json(out / "runs" / pair.name / strat.arm / f"seed{seed}" / TASK_FILE,
                                     "task record").get("deps", [])
                    for dep in deps if isinstance(deps, list) else []:
                        if isinstance(dep, str) and dep.startswith("sources/"):
                            return dep
        digest = hashlib.sha256(pair.source.train.model_dump_json().encode()).hexdigest()[:16]
        return f"sources/unresolved-{digest}"  # its spec cannot be resolved and no arm recorded it: not finished


def _run_state(run_dir: Path, needs_curve: bool) -> str:
    """``finished`` (done, task complete, and its curve when ``needs_curve``), ``failed`` or ``other``."""
    status = read_status(run_dir).get("status", "missing")
    complete = False
    with contextlib.suppress(OSError, ValueError, AttributeError):
        complete = bool(read_json(run_dir / TASK_FILE, "task record").get("complete"))
    if status == "done" and complete and (not needs_curve or (run_dir / "eval.npz").is_file()):
        return "finished"
    return "failed" if status == "failed" else "other"


def _last_session(sessions: list[dict[str, Any]]) -> dict[str, Any] | None:
    if not sessions:
        return None
    last = sessions[-1]
    counts = {name: last.get(key) for name, key in (("executed", "runs_executed"), ("already_done", "runs_skipped"),
                                                     ("failed", "runs_failed"), ("total", "runs_total"))}
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in counts.values()):
        return None
    return {**counts, "interrupted": bool(last.get("interrupted"))}


def count_runs(suite: Suite, out: str | Path, sessions: list[dict[str, Any]] | None = None,
               design: Any = None) -> RunCounts:
    """Count the suite's runs in ``out`` as the benchmark runner counts them.

    The runs are those :func:`rltransfer.benchmark.expand` makes: each trained source once (shared by the
    pairs whose sources are the same), each scratch run once (pairs that share scratch runs, as
    ``arms.json`` records, count them once), each transfer and curriculum arm run. A run is finished when
    its status is done and its ``task.json`` complete; failed when its status says so, or when a run it
    depends on failed (a transfer arm on its source; with the online detector, an arm on its pair's
    scratch runs): the runner does not run those and counts them as failed.

    Args:
        suite: the suite (:func:`rltransfer.suite.stored_suite`).
        out: the benchmark folder.
        sessions: the sessions of ``benchmark.json`` (the last one's counts are kept as they were printed).
        design: for a suite run until decided, its :class:`rltransfer.sequential.SequentialState`: runs at
            seeds a decided comparison no longer wants are not counted as still to run but as not needed.
    """
    out = Path(out)
    owners = stored_scratch_owners(suite, out)
    kinds: dict[str, str] = {}
    deps: dict[str, list[str]] = {}
    sources = {pair.name: _source_key(suite, pair, out) for pair in suite.pairs}
    for source in sources.values():
        if source is not None:
            kinds.setdefault(source, "source")
    for pair in suite.pairs:
        for seed in suite.seed_list:
            kinds.setdefault(f"runs/{owners[pair.name]}/{SCRATCH}/seed{seed}", SCRATCH)
    for pair in suite.pairs:
        source = sources[pair.name]
        scratch = [f"runs/{owners[pair.name]}/{SCRATCH}/seed{seed}" for seed in suite.seed_list]
        for arm in pair.arms:
            kind = pair.arm_kind(arm)
            for seed in suite.seed_list:
                key = f"runs/{pair.name}/{arm}/seed{seed}"
                kinds[key] = kind
                deps[key] = ([source] if kind == "transfer" and source else []) + (
                    scratch if suite.detection.enable else [])
    not_needed = 0
    if design is not None:  # seeds the group-sequential design did not need (their comparisons were decided)
        index = {seed: i for i, seed in enumerate(suite.seed_list)}
        wanted: set[str] = set(sources.values()) - {None}  # type: ignore[arg-type]
        for pair in suite.pairs:
            for arm in pair.arms:
                decision = design.decisions.get((pair.name, arm))
                n = decision.wanted if decision is not None else len(index)
                wanted.update(f"runs/{pair.name}/{arm}/seed{seed}" for seed in suite.seed_list if index[seed] < n)
                wanted.update(f"runs/{owners[pair.name]}/{SCRATCH}/seed{seed}" for seed in suite.seed_list
                              if index[seed] < n)
        unneeded = [k for k in kinds if k not in wanted and _run_state(out / k, needs_curve=True) != "finished"]
        not_needed = len(unneeded)
        for key in unneeded:
            kinds.pop(key)
    states = {key: _run_state(out / key, needs_curve=kind != "source") for key, kind in kinds.items()}
    failed = {k for k, v in states.items() if v == "failed"}
    blocked = {k for k, v in states.items() if v == "other" and any(d in failed for d in deps.get(k, ()))}
    by_kind = {kind: sum(v == kind for v in kinds.values()) for kind in ("source", SCRATCH, "transfer", "curriculum")}
    finished = sum(v == "finished" for v in states.values())
    return RunCounts(
        by_kind=by_kind, finished=finished, failed=len(failed) + len(blocked), blocked=len(blocked),
        to_run=len(kinds) - finished - len(failed) - len(blocked), session=_last_session(sessions or []),
        unfinished=tuple(k for k, v in states.items() if v != "finished"), not_needed=not_needed,
    )


def _thresholds(suite: Suite) -> dict[str, float]:
    """``{pair: success threshold}``: the pair's, else the suite's, else the target family's (else the top of
    its return range)."""
    from rltransfer.config import load_family

    out = {}
    for pair in suite.pairs:
        threshold = pair.threshold if pair.threshold is not None else suite.threshold
        if threshold is None:
            family = load_family(pair.target.env)
            threshold = family.success_threshold if family.success_threshold is not None else family.return_range[1]
        out[pair.name] = float(threshold)
    return out


def _return_ranges(suite: Suite) -> dict[str, tuple[float, float]]:
    from rltransfer.config import load_family

    by_env: dict[str, tuple[float, float]] = {}
    for env in dict.fromkeys(p.target.env for p in suite.pairs):
        low, high = load_family(env).return_range
        by_env[env] = (float(low), float(high))
    return {p.name: by_env[p.target.env] for p in suite.pairs}


def resolved_margins(suite: Suite, pair: PairSpec, return_range: tuple[float, float]) -> dict[str, float]:
    """The equivalence margins of ``pair`` by metric (keys of :data:`METRICS`), in each metric's units.

    Declared in the suite (:meth:`rltransfer.suite.Suite.margins_of`: the pair's over the suite's), else the
    defaults: 0.05 normalized AUC (:data:`rltransfer.statistics.DEFAULT_MARGINS`), 5% of the target family's
    return range for jumpstart and asymptotic return, 5% of the pair's budget for time to threshold.
    """
    from rltransfer.statistics import DEFAULT_MARGINS

    width = float(return_range[1]) - float(return_range[0])
    out = {"jumpstart": DEFAULT_MARGIN_FRACTION * width, "asymptotic": DEFAULT_MARGIN_FRACTION * width,
           "auc": DEFAULT_MARGINS["auc"], "time_to_threshold": DEFAULT_MARGIN_FRACTION * suite.budget_of(pair)}
    out.update(suite.margins_of(pair))
    return out


def arm_values(runs: list[RunRecord], metric: str) -> np.ndarray:
    """The per-seed values of ``metric`` (a key of :data:`METRICS`) of one arm's runs: ``(n_runs,)``, in the
    runs' order. For time to threshold: the step each run first reached the threshold, or its last step when
    it never did (:func:`_censored` says which)."""
    return np.array([r.metrics[METRICS[metric][0]] for r in runs], dtype=float)


def _censored(runs: list[RunRecord]) -> np.ndarray:
    """``(n_runs,)`` booleans: the run never reached the threshold."""
    return np.array([bool(r.metrics["ttt_censored"]) for r in runs], dtype=bool)


def _compare(t: np.ndarray, s: np.ndarray, metric: str, higher: bool, alpha: float, margin: float,
             seed: int) -> MetricComparison:
    """One metric, arm ``t: (n_t,)`` against scratch ``s: (n_s,)``: Welch-Hsu t interval and p-value, exact
    permutation p-value, TOST within ``margin`` and the planning figures."""
    from rltransfer import statistics as st

    two = t.size >= 2 and s.size >= 2
    if two:
        res = st.welch_test(t, s, alpha=alpha, higher_is_better=higher)
        diff, low, high, welch = float(res.diff), float(res.low), float(res.high), float(res.p_value)
        perm = st.permutation_p(t, s, random_state=seed)
    else:
        diff = (1.0 if higher else -1.0) * float(t.mean() - s.mean())
        low = high = welch = perm = math.nan
    p, test = (welch, "welch") if math.isfinite(welch) or not two else (perm, "permutation")
    poi = st.probability_of_improvement(t, s, alpha=alpha, random_state=seed + 1, higher_is_better=higher)
    eq_p, eq, need, need_eq = math.nan, False, math.nan, math.nan
    if two and math.isfinite(margin):
        e = st.tost(t, s, margin, alpha=alpha, higher_is_better=higher)
        eq_p, eq = e.p_value, e.equivalent
        sd = st.pilot_sd(t, s)
        if sd > 0:
            need = st.seeds_for_margin(sd, margin, alpha=alpha)
            need_eq = st.seeds_for_margin(sd, margin, goal="equivalence", alpha=alpha)
    return MetricComparison(
        metric=metric, higher_is_better=higher, n_transfer=int(t.size), n_scratch=int(s.size),
        mean_transfer=float(t.mean()), mean_scratch=float(s.mean()), diff=diff, ci_low=low, ci_high=high,
        prob_improvement=poi.point, poi_low=poi.low, poi_high=poi.high, welch_p=welch, permutation_p=perm,
        p_value=p, test=test, margin=margin, equivalence_p=eq_p, equivalent=eq, seeds_needed=need,
        seeds_needed_equivalence=need_eq,
    )


def _km(times: np.ndarray, censored: np.ndarray, alpha: float) -> KaplanMeierCurve:
    from rltransfer import statistics as st

    c = st.kaplan_meier(times, censored, alpha=alpha)
    return KaplanMeierCurve(c.times.tolist(), c.survival.tolist(), c.low.tolist(), c.high.tolist(),
                            c.at_risk.tolist(), c.events.tolist(), times[censored].tolist(), int(times.size))


def _time_to_threshold(transfer: list[RunRecord], scratch: list[RunRecord], tau: float, alpha: float,
                       margin: float, threshold: float, seed: int) -> tuple[MetricComparison, SurvivalCurves]:
    """Time to threshold as censored data: restricted means up to ``tau`` (the budget) and their difference
    (scratch minus arm: steps sooner) with its t interval, the permutation log-rank test, equivalence as the
    ``1 - 2 alpha`` RMST interval inside ``+-margin``, and both arms' Kaplan-Meier curves."""
    from rltransfer import statistics as st

    tt, ct = arm_values(transfer, "time_to_threshold"), _censored(transfer)
    ts, cs = arm_values(scratch, "time_to_threshold"), _censored(scratch)
    cap = max(tau, float(tt.max()), float(ts.max()))
    bt, bs = st.censored_as_budget(tt, ct, cap), st.censored_as_budget(ts, cs, cap)  # only for P(improvement)
    poi = st.probability_of_improvement(bt, bs, alpha=alpha, random_state=seed + 1, higher_is_better=False)
    logrank = float(st.logrank_test(tt, ct, ts, cs, random_state=seed))
    eq = False
    if tt.size >= 2 and ts.size >= 2:
        r = st.rmst_difference(tt, ct, ts, cs, tau=tau, alpha=alpha)
        diff, low, high, rmst_p = r.ci.point, r.ci.low, r.ci.high, r.p_value
        mean_t, mean_s = r.rmst_transfer, r.rmst_scratch
        if math.isfinite(margin) and 2 * alpha < 1:
            eq = st.rmst_difference(tt, ct, ts, cs, tau=tau, alpha=2 * alpha).ci.within(margin)
    else:  # one run: its time capped at tau (the restricted mean of a single run) and no interval
        mean_t, mean_s = float(np.minimum(tt, tau).mean()), float(np.minimum(ts, tau).mean())
        diff, low, high, rmst_p = mean_s - mean_t, math.nan, math.nan, math.nan
    comp = MetricComparison(
        metric="time_to_threshold", higher_is_better=False, n_transfer=int(tt.size), n_scratch=int(ts.size),
        mean_transfer=float(mean_t), mean_scratch=float(mean_s), diff=float(diff), ci_low=float(low),
        ci_high=float(high), prob_improvement=poi.point, poi_low=poi.low, poi_high=poi.high, welch_p=math.nan,
        permutation_p=math.nan, p_value=logrank, test="logrank", margin=margin, equivalent=bool(eq),
        censored_transfer=int(ct.sum()), censored_scratch=int(cs.sum()), logrank_p=logrank,
        rmst_p=float(rmst_p), tau=float(tau),
    )
    return comp, SurvivalCurves(float(threshold), float(tau), _km(tt, ct, alpha), _km(ts, cs, alpha))


def _profiles(suite: Suite, keys: list[tuple[str, str]],
              arms: dict[tuple[str, str], tuple[list[RunRecord], list[RunRecord]]],
              margins: dict[str, dict[str, float]], ranges: dict[str, tuple[float, float]],
              ) -> dict[tuple[str, str], tuple[str, str, dict[str, float]]]:
    """``{key: (profile label, reason, {metric: adjusted p})}``: :func:`rltransfer.statistics.profile_verdict`
    per comparison, Holm across pairs x arms x the three profile metrics as
    :func:`rltransfer.statistics.profile_suite` does, but each pair with its own family's return range and
    margins (``profile_suite`` takes one of each for the whole suite)."""
    from rltransfer import statistics as st

    ms = suite.min_seeds
    names = st.PROFILE_METRICS  # ("initial", "auc", "asymptotic")
    ours = {v: k for k, v in PROFILE_METRICS.items()}
    inputs: dict[tuple[str, str], tuple[dict[str, np.ndarray], dict[str, np.ndarray]]] = {}
    raw = np.full((len(keys), len(names)), np.nan)
    for i, key in enumerate(keys):
        transfer, scratch = arms[key]
        t = {m: arm_values(transfer, ours[m]) for m in names}
        s = {m: arm_values(scratch, ours[m]) for m in names}
        inputs[key] = (t, s)
        if len(transfer) >= ms and len(scratch) >= ms:
            for j, m in enumerate(names):
                p = st.welch_p(t[m], s[m])
                raw[i, j] = st.permutation_p(t[m], s[m]) if math.isnan(p) else p
    adjusted = st.holm(raw.ravel()).reshape(raw.shape) if keys else raw
    out: dict[tuple[str, str], tuple[str, str, dict[str, float]]] = {}
    for i, key in enumerate(keys):
        t, s = inputs[key]
        n_t, n_s = t["auc"].size, s["auc"].size
        if n_t < 2 or n_s < 2:
            reason = f"too few seeds: {n_t} arm and {n_s} scratch runs, need at least {ms} per arm"
            out[key] = ("inconclusive", reason, {})
            continue
        prof = st.profile_verdict(
            t, s, margins={m: margins[key[0]][ours[m]] for m in names}, return_range=ranges[key[0]],
            alpha=suite.alpha, min_seeds=ms, p_adjusted=dict(zip(names, adjusted[i])),
        )
        out[key] = (prof.label, prof.reason, {ours[m]: prof.metrics[m].p_adjusted for m in names})
    return out


def _aggregates(suite: Suite, keys: list[tuple[str, str]],
                arms: dict[tuple[str, str], tuple[list[RunRecord], list[RunRecord]]]) -> list[Aggregate]:
    """IQM of normalized AUC, its difference from scratch, performance profiles and the probability of
    improvement across pairs, per arm kind and per arm name used in several pairs (:class:`Aggregate`)."""
    from rltransfer import statistics as st

    ms = suite.min_seeds
    excluded = [f"{p}/{a}" for p, a in keys if suite.pair(p).role in AGGREGATE_EXCLUDED_ROLES]
    eligible = [k for k in keys if suite.pair(k[0]).role not in AGGREGATE_EXCLUDED_ROLES
                and len(arms[k][0]) >= ms and len(arms[k][1]) >= ms]
    kind_of = {k: suite.pair(k[0]).arm_kind(k[1]) for k in eligible}
    groups: list[tuple[str, str, list[tuple[str, str]]]] = []
    for kind in ("transfer", "curriculum"):
        tasks = [k for k in eligible if kind_of[k] == kind]
        if tasks:
            groups.append((f"all {kind} arms", kind, tasks))
    by_arm: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for k in eligible:
        by_arm.setdefault((kind_of[k], k[1]), []).append(k)
    for (kind, arm), tasks in by_arm.items():
        if len(tasks) >= 2 and any(kind_of[k] == kind and k[1] != arm for k in eligible):
            groups.append((arm, kind, tasks))
    taus = np.linspace(0.0, 1.0, 51)
    out = []
    for g, (name, kind, tasks) in enumerate(groups):
        n_a = min(len(arms[k][0]) for k in tasks)
        n_s = min(len(arms[k][1]) for k in tasks)
        a = np.column_stack([arm_values(arms[k][0][:n_a], PRIMARY) for k in tasks])  # (n_a, n_tasks)
        s = np.column_stack([arm_values(arms[k][1][:n_s], PRIMARY) for k in tasks])  # (n_s, n_tasks)
        seed = 100 * (g + 1)
        ia = st.aggregate_interval(a, alpha=suite.alpha, random_state=seed)
        is_ = st.aggregate_interval(s, alpha=suite.alpha, random_state=seed + 1)
        diff = st.aggregate_difference(a, s, alpha=suite.alpha, random_state=seed + 2)
        poi = st.aggregate_probability_of_improvement(a, s, alpha=suite.alpha, random_state=seed + 3)
        pa = st.performance_profile(a, taus, alpha=suite.alpha, random_state=seed + 4)
        ps = st.performance_profile(s, taus, alpha=suite.alpha, random_state=seed + 5)
        out.append(Aggregate(
            group=name, kind=kind, tasks=[f"{p}/{arm}" for p, arm in tasks], runs_per_task=n_a,
            scratch_runs_per_task=n_s, iqm_arm=(ia.point, ia.low, ia.high), iqm_scratch=(is_.point, is_.low, is_.high),
            iqm_difference=(diff.point, diff.low, diff.high), prob_improvement=(poi.point, poi.low, poi.high),
            taus=taus.tolist(), profile_arm=pa.fraction.tolist(), profile_arm_low=pa.low.tolist(),
            profile_arm_high=pa.high.tolist(), profile_scratch=ps.fraction.tolist(),
            profile_scratch_low=ps.low.tolist(), profile_scratch_high=ps.high.tolist(), excluded=excluded,
        ))
    return out


def analyze(out: str | Path) -> Analysis:
    """Metrics, comparisons, verdicts, profiles and suite aggregates of a benchmark folder, from its stored
    runs only.

    Works on a partially finished benchmark: arms with no finished run are skipped, arms with fewer
    than ``min_seeds`` runs are judged inconclusive (too few seeds).
    """
    from rltransfer import statistics as st

    out = Path(out).resolve()
    suite = stored_suite(out)
    runs, missing = collect_runs(suite, out)
    sessions: list[dict[str, Any]] = []
    with contextlib.suppress(OSError, ValueError, AttributeError):
        sessions = read_json(out / "benchmark.json", "benchmark sessions").get("sessions", [])
    sessions = [s for s in sessions if isinstance(s, dict)] if isinstance(sessions, list) else []
    ranges = _return_ranges(suite)
    margins = {p.name: resolved_margins(suite, p, ranges[p.name]) for p in suite.pairs}
    thresholds = _thresholds(suite)

    keys: list[tuple[str, str]] = []
    arms: dict[tuple[str, str], tuple[list[RunRecord], list[RunRecord]]] = {}
    horizons: dict[tuple[str, str], float] = {}
    for pair in suite.pairs:
        scratch = [r for r in runs if r.pair == pair.name and r.arm == SCRATCH]
        low, high = ranges[pair.name]
        for arm in pair.arms:
            transfer = [r for r in runs if r.pair == pair.name and r.arm == arm]
            if transfer and scratch:
                t_span, s_span, horizon = _on_common_span(transfer, scratch, float(suite.budget_of(pair)),
                                                          thresholds[pair.name], low, high, suite.metrics.last_k)
                if not t_span or not s_span:
                    continue
                keys.append((pair.name, arm))
                arms[(pair.name, arm)] = (t_span, s_span)
                if horizon is not None and horizon < suite.budget_of(pair):
                    horizons[(pair.name, arm)] = horizon

    comparisons: dict[tuple[str, str], dict[str, MetricComparison]] = {}
    survival: dict[tuple[str, str], SurvivalCurves] = {}
    for i, key in enumerate(keys):
        transfer, scratch = arms[key]
        pair = suite.pair(key[0])
        comps = {}
        for j, (metric, (_, higher)) in enumerate(METRICS.items()):
            seed = 1000 * i + 10 * j
            if metric == "time_to_threshold":
                comps[metric], survival[key] = _time_to_threshold(
                    transfer, scratch, float(suite.budget_of(pair)), suite.alpha, margins[pair.name][metric],
                    thresholds[pair.name], seed)
            else:
                comps[metric] = _compare(arm_values(transfer, metric), arm_values(scratch, metric), metric, higher,
                                         suite.alpha, margins[pair.name][metric], seed)
        comparisons[key] = comps
    for metric in METRICS:  # Holm across the suite's pairs x arms, per metric
        eligible = [k for k in keys if min(comparisons[k][metric].n_transfer,
                                           comparisons[k][metric].n_scratch) >= suite.min_seeds]
        raw = np.array([comparisons[k][metric].p_value for k in eligible], dtype=float)
        for k, p in zip(eligible, st.holm(raw) if eligible else []):
            comparisons[k][metric].holm_p = float(p)

    verdicts = st.judge_suite(
        {k: st.Comparison(arm_values(arms[k][0], PRIMARY), arm_values(arms[k][1], PRIMARY), True, "normalized AUC",
                          margin=margins[k[0]][PRIMARY])
         for k in keys},
        alpha=suite.alpha, min_seeds=suite.min_seeds, random_state=0, equivalence=True,
    ) if keys else {}
    profiles = _profiles(suite, keys, arms, margins, ranges)
    from rltransfer.sequential import suite_state

    design = suite_state(suite, runs)  # a suite run until decided: its group-sequential decisions are the verdicts

    owners = stored_scratch_owners(suite, out)
    results = []
    for i, key in enumerate(keys):
        transfer, scratch = arms[key]
        pair = suite.pair(key[0])
        v = verdicts[key]
        auc = comparisons[key][PRIMARY]  # one set of numbers for the primary metric: the verdict's own
        auc.diff, auc.ci_low, auc.ci_high = v.ci.point, v.ci.low, v.ci.high
        auc.prob_improvement, auc.poi_low, auc.poi_high = (v.prob_improvement.point, v.prob_improvement.low,
                                                           v.prob_improvement.high)
        if math.isfinite(v.p_adjusted):
            auc.holm_p = v.p_adjusted
        profile, profile_reason, profile_p = profiles[key]
        for metric, p in profile_p.items():
            comparisons[key][metric].profile_holm_p = float(p)
        auc_t = arm_values(transfer, PRIMARY)
        auc_s = arm_values(scratch, PRIMARY)
        reason, label, seeds_needed = v.reason, v.label, v.seeds_needed
        if design is not None and key in design.decisions:
            # the fixed test on all the seeds is not valid after stopping on the data: the design's decision is
            d = design.decisions[key]
            label = d.label if d.label in ("positive", "negative") else "inconclusive"
            reason = (f"{d.reason} (seeds added until decided, group-sequential {design.design.spending}: the "
                      "verdict's error holds under the stopping)")
            seeds_needed = d.seeds_needed
        nested = nested_comparison(suite, runs, key[0], key[1]) if pair.arm_kind(key[1]) == "transfer" else None
        if nested is not None:  # the report says when a verdict rests on a single source
            c = nested.cluster
            if (nested.n_sources > 1 and label in ("positive", "negative") and math.isfinite(c.low)
                    and c.low <= 0.0 <= c.high):
                label = "inconclusive"
                reason += (f"; over its {nested.n_sources} sources the interval includes 0 (cluster t "
                           f"[{c.low:+.3g}, {c.high:+.3g}]): the verdict does not hold across sources")
            reason += f"; source: {nested.reason}"
        if key in horizons:
            reason += (f"; compared on the first {horizons[key]:,.0f} of {suite.budget_of(pair):,} steps: the "
                       "online detector stopped the arm there, and every run reached it")
        results.append(ArmResult(
            pair=key[0], arm=key[1], strategy=_arm_strategy(pair, key[1]), role=pair.role, label=label,
            reason=reason, seeds_needed=seeds_needed, comparisons=comparisons[key],
            horizon=horizons.get(key),
            sources=dataclasses.asdict(nested) if nested is not None else None,
            transfer_ratio=_ratio_interval(auc_t, auc_s, 2000, suite.alpha, seed=7 + i),
            steps_saved=sum(r.steps_saved for r in transfer), would_save=sum(r.would_save for r in transfer),
            alarms=sum(r.alarm_step is not None for r in transfer), budget=suite.budget_of(pair),
            n_runs=len(transfer), scratch_from=owners.get(key[0], key[0]),
            zero_shot_transfer=float(np.mean([r.metrics["initial"] for r in transfer])),
            zero_shot_scratch=float(np.mean([r.metrics["initial"] for r in scratch])),
            margin=v.margin, equivalence_p=v.equivalence_p, seeds_needed_equivalence=v.seeds_needed_equivalence,
            profile=profile, profile_reason=profile_reason, survival=survival.get(key),
        ))
    counts = count_runs(suite, out, sessions, design)
    missing = [k for k in counts.unfinished if k not in missing] + missing
    return Analysis(suite, out, runs, results, sessions, missing, ranges, counts, margins, thresholds,
                    _aggregates(suite, keys, arms))


ARMS_FILE = "arms.json"


def stored_scratch_owners(suite: Suite, out: str | Path) -> dict[str, str]:
    """``{pair: pair whose scratch runs it uses}`` as the benchmark recorded it (``arms.json``); pairs not
    recorded own their scratch runs."""
    from rltransfer.rundir import read_json

    owners = {p.name: p.name for p in suite.pairs}
    path = Path(out) / ARMS_FILE
    if path.is_file():
        try:
            data = read_json(path, "scratch arm owners")
        except (OSError, ValueError):
            data = {}
        recorded = data.get("scratch_owners", {}) if isinstance(data, dict) else {}
        if isinstance(recorded, dict):
            owners.update({k: v for k, v in recorded.items() if k in owners and v in owners})
    return owners


def nested_comparison(suite: Suite, runs: list[RunRecord], pair: str, arm: str, metric: str = PRIMARY, *,
                      n_boot: int = 2000, random_state: int = 0) -> Any:
    """A transfer arm against scratch with its target seeds nested in the pair's source seeds.

    A pair whose trained source declares ``source_seeds`` starts the arm's run at the k-th target seed from
    source ``k mod n_sources`` (:func:`rltransfer.arms.source_index`); its runs are grouped by source here into
    ``n_sources`` per-source arrays (``(n_sources, n_targets_per_source)``, ragged when the seeds do not divide
    evenly) and compared with the flat scratch arm by :func:`rltransfer.statistics.source_reliance`: the
    hierarchical (two-stage) bootstrap interval (:func:`~rltransfer.statistics.hierarchical_bootstrap_ci_diff`),
    the cluster t interval with sources as units (:func:`~rltransfer.statistics.cluster_t_ci_diff`; ``nan``
    with one source), the flat interval the verdict sees, each source left out in turn, the intraclass
    correlation, design effect and effective number of seeds, and whether the result rests on a single
    source. With one source (no ``source_seeds``) the answer is that it does, by construction.

    Args:
        suite: the suite (:func:`rltransfer.suite.stored_suite`).
        runs: finished runs (:attr:`Analysis.runs` or :func:`collect_runs`).
        pair: the pair's name.
        arm: a transfer arm of the pair.
        metric: ``auc`` (default), ``jumpstart`` or ``asymptotic`` (time to threshold is censored: compare it
            with the survival methods instead).
        n_boot: resamples of the hierarchical interval.
        random_state: its seed.

    Returns:
        A :class:`rltransfer.statistics.SourceReliance` (oriented: positive = the arm better), or ``None``
        when the arm is not a transfer arm, or has fewer than two finished runs in all, or scratch fewer than two.

    Raises:
        ConfigError: ``metric`` is not one of the three.
    """
    from rltransfer import statistics as st
    from rltransfer.arms import source_index
    from rltransfer.errors import ConfigError

    if metric not in ("auc", "jumpstart", "asymptotic"):
        raise ConfigError(f"nested_comparison: metric must be 'auc', 'jumpstart' or 'asymptotic', got {metric!r}")
    spec = suite.pair(pair)
    if spec.arm_kind(arm) != "transfer":
        return None
    transfer = sorted((r for r in runs if r.pair == pair and r.arm == arm), key=lambda r: suite.seed_list.index(r.seed))
    scratch = [r for r in runs if r.pair == pair and r.arm == SCRATCH]
    if len(transfer) < 2 or len(scratch) < 2:
        return None
    train = spec.source.train if spec.source is not None else None
    n_sources = len(train.seed_list) if train is not None else 1
    groups: list[list[RunRecord]] = [[] for _ in range(n_sources)]
    for r in transfer:
        groups[source_index(suite, spec, r.seed)].append(r)
    nested = [arm_values(g, metric) for g in groups if g]
    return st.source_reliance(nested, arm_values(scratch, metric), alpha=suite.alpha, n_boot=n_boot,
                              random_state=random_state, higher_is_better=METRICS[metric][1])
