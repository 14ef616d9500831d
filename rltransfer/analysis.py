"""Analysis of a benchmark folder's stored runs: per-run metrics, arm-vs-scratch comparisons, verdicts.

:func:`analyze` reads only what is stored (``suite.json``, each run's ``eval.npz``, ``status.json``,
``task.json`` and ``detection.json``), so it works on a finished or a partially finished benchmark and
never trains anything. Per-run metrics come from :func:`rltransfer.metrics.run_metrics` (AUC normalized by
the family's ``return_range``); per (pair, arm, metric) it computes differences with bootstrap CIs,
probability of improvement, Welch and Mann-Whitney p-values (Holm-adjusted across the suite's pairs x
arms), and the verdict on normalized AUC by :func:`rltransfer.statistics.judge_suite`. An arm is a
transfer strategy or a curriculum (the target agent trained from scratch with it): both are compared with
the pair's scratch arm the same way; in the results a curriculum arm's ``strategy`` reads
``curriculum:<name>`` (:attr:`ArmResult.kind` says which kind an arm is).

Sign convention (:data:`SIGN_CONVENTION`): every difference is oriented so that positive means the arm is
better than scratch (arm minus scratch, and scratch minus arm for time to threshold: the steps by which
the arm reaches the threshold sooner). Run counts (:func:`count_runs`) count what the benchmark runner
counts: every run of the suite (sources, scratch runs once even when pairs share them, the arms), in its
words. Writing the results down is :mod:`rltransfer.report`'s job.
"""

from __future__ import annotations

import contextlib
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
    SCRATCH,
    TASK_FILE,
    PairSpec,
    Suite,
    stored_suite,
)

__all__ = [
    "METRICS",
    "PRIMARY",
    "SIGN_CONVENTION",
    "Analysis",
    "ArmResult",
    "MetricComparison",
    "RunCounts",
    "RunRecord",
    "analyze",
    "collect_runs",
    "count_runs",
]

#: Metrics compared per (pair, arm): name -> (run_metrics key, higher is better).
METRICS: dict[str, tuple[str, bool]] = {
    "jumpstart": ("initial", True),
    "asymptotic": ("asymptotic", True),
    "auc": ("auc", True),
    "time_to_threshold": ("time_to_threshold", False),
}
PRIMARY = "auc"

#: How every difference (``diff``, ``ci_low``, ``ci_high``) is oriented, in the report and report.json.
SIGN_CONVENTION = (
    "every difference is oriented so that positive means the arm is better than scratch: arm minus scratch "
    "for jumpstart, asymptotic return and normalized AUC, scratch minus arm for time to threshold (the "
    "environment steps by which the arm reaches the threshold sooner)"
)


@dataclass
class RunRecord:
    """One stored run and its metrics.

    Attributes:
        steps, returns: the evaluation curve used for the metrics (a run stopped by the detector is
            held at its last evaluation up to the budget; a fallback run continues with its fallback).
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
    """Arm versus scratch on one metric: ``diff``, ``ci_low`` and ``ci_high`` follow
    :data:`SIGN_CONVENTION` (positive = the arm better: scratch minus arm for time to threshold); the means
    are in the metric's own units. ``*_transfer`` fields are the arm's (a transfer or a curriculum arm)."""

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
    mann_whitney_p: float
    holm_p: float = math.nan
    censored_transfer: int = 0
    censored_scratch: int = 0


@dataclass
class ArmResult:
    """The verdict and comparisons of one arm of one pair (a transfer strategy, or a curriculum: then
    ``strategy`` is ``curriculum:<name>`` and the ``*_transfer`` values are the curriculum arm's)."""

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

    @property
    def kind(self) -> str:
        """``transfer`` or ``curriculum``."""
        return "curriculum" if self.strategy.startswith(CURRICULUM_PREFIX) else "transfer"

    @property
    def expected(self) -> str | None:
        return EXPECTED.get(self.role)

    @property
    def control_ok(self) -> bool | None:
        exp = self.expected
        if exp is None:
            return None
        return self.label != "positive" if exp == "not positive" else self.label == exp


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
        return f"{self.total} {runs} ({kinds}): {self.finished} finished, {failed}, {self.to_run} still to run"

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
    """

    suite: Suite
    out: Path
    runs: list[RunRecord]
    results: list[ArmResult]
    sessions: list[dict[str, Any]]
    missing: list[str]
    return_ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    counts: RunCounts | None = None

    @property
    def wall_time(self) -> float:
        return float(sum(s.get("seconds", 0.0) for s in self.sessions))

    def runs_of(self, pair: str, arm: str) -> list[RunRecord]:
        return [r for r in self.runs if r.pair == pair and r.arm == arm]

    def to_dict(self) -> dict[str, Any]:
        """What ``report.json`` holds (no negative zeros)."""
        return _no_negative_zero({
            "suite": self.suite.name,
            "sign_convention": SIGN_CONVENTION,
            "ci_level": 1 - self.suite.alpha,
            "run_counts": self.counts.to_dict() if self.counts is not None else None,
            "wall_time_seconds": round(self.wall_time, 3),
            "last_session_seconds": self.sessions[-1].get("seconds") if self.sessions else None,
            "sessions": self.sessions,
            "missing_runs": self.missing,
            "settings": {"seeds": self.suite.seed_list, "budget": self.suite.budget,
                         "alpha": self.suite.alpha, "min_seeds": self.suite.min_seeds,
                         "eval": self.suite.eval.model_dump(), "detection": self.suite.detection.model_dump(),
                         "metrics": self.suite.metrics.model_dump(),
                         "return_ranges": {k: list(v) for k, v in self.return_ranges.items()}},
            "results": [{**{k: v for k, v in asdict(r).items() if k != "comparisons"},
                         "kind": r.kind, "expected": r.expected, "control_ok": r.control_ok,
                         "comparisons": {m: asdict(c) for m, c in r.comparisons.items()}}
                        for r in self.results],
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
    """The evaluation curve of a stored run, completed to the budget when the detector cut it short."""
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
    fb = info.get("fallback")
    if fb and (run_dir / fb["run_dir"] / "eval.npz").is_file():
        extra = EvalCurve.load(run_dir / fb["run_dir"])
        offset = float(steps[-1])
        es = np.asarray(extra.steps, dtype=float)[1:] + offset  # its step 0 is the restart itself
        steps = np.concatenate([steps, es])
        rets = np.concatenate([rets, np.asarray(extra.mean, dtype=float)[1:]])
    elif steps[-1] < budget:
        steps = np.append(steps, float(budget))
        rets = np.append(rets, rets[-1])
    return steps, rets, info


def _arm_strategy(pair: PairSpec, arm: str) -> str:
    return pair.arm_strategy(arm)


def collect_runs(suite: Suite, out: Path) -> tuple[list[RunRecord], list[str]]:
    """Metrics of every finished run of the suite in ``out``; also the keys of runs not (yet) done."""
    from rltransfer.config import load_family
    from rltransfer.metrics import run_metrics

    records: list[RunRecord] = []
    missing: list[str] = []
    owners = stored_scratch_owners(suite, out)
    for pair in suite.pairs:
        family = load_family(pair.target.env)
        low, high = family.return_range
        threshold = pair.threshold if pair.threshold is not None else suite.threshold
        if threshold is None:
            threshold = family.success_threshold if family.success_threshold is not None else high
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


def _compare(
    t: np.ndarray, s: np.ndarray, metric: str, higher: bool, alpha: float, seed: int
) -> MetricComparison:
    from rltransfer import statistics as st

    ci = st.bootstrap_ci_diff(t, s, alpha=alpha, random_state=seed, higher_is_better=higher)
    poi = st.probability_of_improvement(t, s, alpha=alpha, random_state=seed + 1, higher_is_better=higher)
    return MetricComparison(
        metric=metric, higher_is_better=higher, n_transfer=int(t.size), n_scratch=int(s.size),
        mean_transfer=float(t.mean()), mean_scratch=float(s.mean()), diff=ci.point, ci_low=ci.low,
        ci_high=ci.high, prob_improvement=poi.point, poi_low=poi.low, poi_high=poi.high,
        welch_p=st.welch_p(t, s), mann_whitney_p=st.mann_whitney_p(t, s),
    )


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


def count_runs(suite: Suite, out: str | Path, sessions: list[dict[str, Any]] | None = None) -> RunCounts:
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
    states = {key: _run_state(out / key, needs_curve=kind != "source") for key, kind in kinds.items()}
    failed = {k for k, v in states.items() if v == "failed"}
    blocked = {k for k, v in states.items() if v == "other" and any(d in failed for d in deps.get(k, ()))}
    by_kind = {kind: sum(v == kind for v in kinds.values()) for kind in ("source", SCRATCH, "transfer", "curriculum")}
    finished = sum(v == "finished" for v in states.values())
    return RunCounts(
        by_kind=by_kind, finished=finished, failed=len(failed) + len(blocked), blocked=len(blocked),
        to_run=len(kinds) - finished - len(failed) - len(blocked), session=_last_session(sessions or []),
        unfinished=tuple(k for k, v in states.items() if v != "finished"),
    )


def _return_ranges(suite: Suite) -> dict[str, tuple[float, float]]:
    from rltransfer.config import load_family

    by_env: dict[str, tuple[float, float]] = {}
    for env in dict.fromkeys(p.target.env for p in suite.pairs):
        low, high = load_family(env).return_range
        by_env[env] = (float(low), float(high))
    return {p.name: by_env[p.target.env] for p in suite.pairs}


def analyze(out: str | Path) -> Analysis:
    """Metrics, comparisons and verdicts of a benchmark folder, from its stored runs only.

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

    keys: list[tuple[str, str]] = []
    arms: dict[tuple[str, str], tuple[list[RunRecord], list[RunRecord]]] = {}
    for pair in suite.pairs:
        scratch = [r for r in runs if r.pair == pair.name and r.arm == SCRATCH]
        for arm in pair.arms:
            transfer = [r for r in runs if r.pair == pair.name and r.arm == arm]
            if transfer and scratch:
                keys.append((pair.name, arm))
                arms[(pair.name, arm)] = (transfer, scratch)

    def values(rs: list[RunRecord], metric: str, budget: int) -> np.ndarray:
        name = METRICS[metric][0]
        v = np.array([r.metrics[name] for r in rs], dtype=float)
        if metric == "time_to_threshold":
            cens = np.array([r.metrics["ttt_censored"] for r in rs], dtype=bool)
            v = np.where(cens, float(max(budget, *v)), v)
        return v

    comparisons: dict[tuple[str, str], dict[str, MetricComparison]] = {}
    for i, key in enumerate(keys):
        transfer, scratch = arms[key]
        budget = transfer[0].budget
        comps = {}
        for j, (metric, (_, higher)) in enumerate(METRICS.items()):
            t, s = values(transfer, metric, budget), values(scratch, metric, budget)
            c = _compare(t, s, metric, higher, suite.alpha, seed=1000 * i + 10 * j)
            if metric == "time_to_threshold":
                c.censored_transfer = int(sum(r.metrics["ttt_censored"] for r in transfer))
                c.censored_scratch = int(sum(r.metrics["ttt_censored"] for r in scratch))
            comps[metric] = c
        comparisons[key] = comps
    for metric in METRICS:  # Holm across the suite's pairs x arms, per metric
        eligible = [k for k in keys if min(comparisons[k][metric].n_transfer,
                                           comparisons[k][metric].n_scratch) >= suite.min_seeds]
        raw = [comparisons[k][metric].welch_p for k in eligible]
        raw = [p if math.isfinite(p) else comparisons[k][metric].mann_whitney_p
               for p, k in zip(raw, eligible)]
        for k, p in zip(eligible, st.holm(np.array(raw, dtype=float)) if eligible else []):
            comparisons[k][metric].holm_p = float(p)

    verdicts = st.judge_suite(
        {k: st.Comparison(values(arms[k][0], PRIMARY, arms[k][0][0].budget),
                          values(arms[k][1], PRIMARY, arms[k][0][0].budget), True, "normalized AUC")
         for k in keys},
        alpha=suite.alpha, min_seeds=suite.min_seeds, random_state=0,
    ) if keys else {}

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
        auc_t = values(transfer, PRIMARY, transfer[0].budget)
        auc_s = values(scratch, PRIMARY, transfer[0].budget)
        results.append(ArmResult(
            pair=key[0], arm=key[1], strategy=_arm_strategy(pair, key[1]), role=pair.role, label=v.label,
            reason=v.reason, seeds_needed=v.seeds_needed, comparisons=comparisons[key],
            transfer_ratio=_ratio_interval(auc_t, auc_s, 2000, suite.alpha, seed=7 + i),
            steps_saved=sum(r.steps_saved for r in transfer), would_save=sum(r.would_save for r in transfer),
            alarms=sum(r.alarm_step is not None for r in transfer), budget=suite.budget_of(pair),
            n_runs=len(transfer), scratch_from=owners.get(key[0], key[0]),
            zero_shot_transfer=float(np.mean([r.metrics["initial"] for r in transfer])),
            zero_shot_scratch=float(np.mean([r.metrics["initial"] for r in scratch])),
        ))
    counts = count_runs(suite, out, sessions)
    missing = [k for k in counts.unfinished if k not in missing] + missing
    return Analysis(suite, out, runs, results, sessions, missing, _return_ranges(suite), counts)


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
