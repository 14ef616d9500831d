"""Running transfer benchmark suites: expansion into runs, running one run, and the resumable runner.

:func:`run_suite` turns a suite (:mod:`rltransfer.suite`) into runs (:func:`expand`) and executes them on
an executor (:mod:`rltransfer.executors`); then :mod:`rltransfer.report` writes the report from the
analysis of the stored runs (:mod:`rltransfer.analysis`)::

    out/
      suite.json                       the validated suite (what `rltransfer report` re-renders from)
      benchmark.json                   sessions: start, end, workers, backend, runs executed (wall time),
                                       written when a session starts and after every run it finishes
      sources/<config-hash>/           one run directory per distinct source training spec
      runs/<pair>/scratch/seed<k>/     the scratch arm: target agent with the source's architecture
      runs/<pair>/<strategy>/seed<k>/  each transfer arm (+ detection.json: the online detector)
      runs/<pair>/<curriculum>/seed<k>/  each curriculum arm: scratch with the curriculum (+ detection.json)
      sequential.json                  run until decided: the design, each comparison's looks and decision
      report.md, report.json, runs.csv, comparisons.csv, *.png, tb_summary/<pair>/

Caching and resume: every run directory gets ``task.json`` (the task's fingerprint, a hash of
everything that determines its result) when it starts, marked complete when it ends. A run whose
``status.json`` says done and whose ``task.json`` is complete with the same fingerprint is skipped;
anything else found in its place (a crash, a kill, a changed suite) is deleted and rerun. Sources come
first; each pair's scratch runs come before its transfer and curriculum runs (the online detector compares
with them).

Seeds until decided (``run_suite(..., until_decided=True)`` or the suite's ``until_decided``): the runs
come in rounds, the first look's seeds for every comparison, then more seeds only for the comparisons not
yet decided (:mod:`rltransfer.sequential`, which also keeps the error at ``alpha`` under this stopping);
the seeds are the suite's, in order, and the rounds are replayed from the stored runs, so a rerun continues
where the last one stopped. Variance from the source: a trained source with ``source_seeds`` is one source
run per source seed, and the transfer run at the k-th target seed starts from source ``k mod n_sources``.

The suite schema and the analysis used to live here; their public names are re-exported, so
``from rltransfer.benchmark import Suite, load_suite, analyze`` keeps working.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rltransfer.analysis import Analysis, ArmResult, RunRecord, analyze
from rltransfer.arms import scratch_owners
from rltransfer.errors import ConfigError
from rltransfer.rundir import atomic_write_json, read_json, read_status
from rltransfer.sequential import SequentialState
from rltransfer.suite import (
    DETECTION_FILE,
    SCRATCH,
    TASK_FILE,
    DetectionSettings,
    PairSpec,
    Suite,
    check_suite,
    load_suite,
    save_suite,
    stored_suite,
)

__all__ = [
    "Analysis",
    "ArmResult",
    "DetectionSettings",
    "PairSpec",
    "RunRecord",
    "Suite",
    "SuiteResult",
    "Task",
    "analyze",
    "check_suite",
    "expand",
    "is_done",
    "load_suite",
    "run_suite",
    "run_task",
    "save_suite",
    "scratch_owners",
    "sequential_state",
    "stored_suite",
    "with_until_decided",
]

logger = logging.getLogger(__name__)

#: Task kinds of the arms compared with scratch (online detection, the detector's fallback).
ARM_KINDS = ("transfer", "curriculum")


# ------------------------------------------------------------------------------------------------ tasks


@dataclass(frozen=True)
class Task:
    """One run of a benchmark, as data a worker process can receive.

    Attributes:
        kind: ``source``, ``scratch``, ``transfer`` or ``curriculum`` (the last two: arms compared with
            scratch).
        key: ``sources/<hash>`` or ``runs/<pair>/<arm>/seed<k>`` (also its folder under the output).
        run_dir: absolute path of the run directory.
        fingerprint: hash of everything that determines the run's result.
        spec: what the worker needs (JSON-able).
        deps: keys of the tasks that must be done first.
        pair, arm, seed: where it belongs (``None`` for sources).
        scratch: keys of the scratch runs an arm is compared with (its pair's, or a shared set).
    """

    kind: Literal["source", "scratch", "transfer", "curriculum"]
    key: str
    run_dir: str
    fingerprint: str
    spec: dict[str, Any]
    deps: tuple[str, ...] = ()
    pair: str | None = None
    arm: str | None = None
    seed: int | None = None
    scratch: tuple[str, ...] = ()


def expand(suite: Suite, out: str | Path) -> list[Task]:
    """All the runs of a suite, in a good order to start them: sources, then scratch runs, then transfers,
    then curriculum arms.

    Each run is a resolved :class:`~rltransfer.spec.RunSpec` (:mod:`rltransfer.arms`) and its fingerprint
    is the spec's content hash. Sources with the same spec are one task, shared by every pair that uses
    them (a pair trains its sources only if it has transfer arms; one per source seed, and the transfer run
    at the k-th target seed depends on source ``k mod n_sources``); so are scratch runs with the same spec
    (they live under the first such pair). With ``until_decided`` the online detector of every arm compares
    with the scratch runs of the first look only (those exist from the first round on), so an arm's spec
    never depends on how many seeds its pair ends up with.
    """
    from rltransfer.arms import curriculum_arm_spec, pair_plan, scratch_spec, transfer_arm_spec

    out = Path(out).resolve()
    sources: dict[str, Task] = {}
    scratch: dict[str, Task] = {}
    scratch_by_fp: dict[str, Task] = {}
    transfers: list[Task] = []
    curricula: list[Task] = []
    first = suite.until_decided.first_of(suite) if suite.until_decided is not None else None
    for pair in suite.pairs:
        plan = pair_plan(suite, pair, out, suite.save_freq)
        if pair.strategies:
            for key, run in zip(plan.source_keys, plan.source_runs):
                if key not in sources:
                    sources[key] = Task("source", key, str(out / key), run.fingerprint(), run.model_dump(mode="json"))
        scratch_keys: list[str] = []
        for seed in suite.seed_list:
            spec = scratch_spec(plan, seed)
            fp = spec.fingerprint()
            if fp not in scratch_by_fp:
                key = f"runs/{pair.name}/{SCRATCH}/seed{seed}"
                task = Task("scratch", key, str(out / key), fp, spec.model_dump(mode="json"), (), pair.name,
                            SCRATCH, seed)
                scratch_by_fp[fp] = scratch[key] = task
            scratch_keys.append(scratch_by_fp[fp].key)
        det = suite.detection.enable
        ref_keys = tuple(scratch_keys[:first] if first is not None else scratch_keys) if det else ()
        references = tuple(str(out / k) for k in ref_keys)
        ref_fps = tuple(scratch[k].fingerprint for k in ref_keys)
        for strat in pair.strategies:
            for seed in suite.seed_list:
                key = f"runs/{pair.name}/{strat.arm}/seed{seed}"
                spec = transfer_arm_spec(plan, strat, seed, references, ref_fps)
                source_key = plan.source_of(seed)[1]
                t_deps = ((source_key,) if source_key is not None else ()) + ref_keys
                transfers.append(Task("transfer", key, str(out / key), spec.fingerprint(),
                                      spec.model_dump(mode="json"), t_deps, pair.name, strat.arm, seed,
                                      tuple(scratch_keys)))
        for entry in pair.curricula:
            for seed in suite.seed_list:
                key = f"runs/{pair.name}/{entry.arm}/seed{seed}"
                spec = curriculum_arm_spec(plan, entry, seed, references, ref_fps)
                curricula.append(Task("curriculum", key, str(out / key), spec.fingerprint(),
                                      spec.model_dump(mode="json"), ref_keys, pair.name,
                                      entry.arm, seed, tuple(scratch_keys)))
    return [*sources.values(), *scratch.values(), *transfers, *curricula]


# ----------------------------------------------------------------------------------------- running one


def is_done(task: Task) -> bool:
    """Whether ``task``'s run directory holds its finished run (same fingerprint, marked complete)."""
    run_dir = Path(task.run_dir)
    if read_status(run_dir).get("status") != "done":
        return False
    try:
        info = read_json(run_dir / TASK_FILE, "task record")
    except (OSError, ValueError):
        return False
    return isinstance(info, dict) and bool(info.get("complete")) and info.get("fingerprint") == task.fingerprint


def _mark(task: Task, complete: bool, **extra: Any) -> None:
    atomic_write_json(Path(task.run_dir) / TASK_FILE, {
        "kind": task.kind, "key": task.key, "fingerprint": task.fingerprint, "pair": task.pair, "arm": task.arm,
        "seed": task.seed, "deps": list(task.deps), "complete": complete, **extra,
    })


def scratch_owners_of(tasks: Sequence[Task], suite: Suite) -> dict[str, str]:
    """``{pair: pair whose scratch runs it uses}``, read off the expanded tasks."""
    owners: dict[str, str] = {}
    scratch = {t.key: t.pair for t in tasks if t.kind == "scratch"}
    for t in tasks:
        if t.kind in ARM_KINDS and t.pair not in owners and t.scratch:
            owners[str(t.pair)] = str(scratch[t.scratch[0]])
    for pair in suite.pairs:
        owners.setdefault(pair.name, pair.name)
    return owners


def _command(task: Task) -> str:
    return f"rltransfer benchmark (task {task.key}, fingerprint {task.fingerprint})"


def _resumable(task: Task) -> Path | None:
    """The last checkpoint of an interrupted run of this very task (same fingerprint), if any."""
    from rltransfer.checkpoints import latest_checkpoint
    from rltransfer.rundir import run_state

    run_dir = Path(task.run_dir)
    try:
        info = read_json(run_dir / TASK_FILE, "task record")
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or info.get("fingerprint") != task.fingerprint:
        return None
    if run_state(run_dir) not in ("dead", "failed") or read_status(run_dir).get("status") == "failed":
        return None  # a failed run (an error, not a kill) starts over
    return latest_checkpoint(run_dir / "checkpoints")


def run_task(task: Task) -> dict[str, Any]:
    """Run one task in this process (the function executors call); returns a small summary.

    A run of the same task that was killed or interrupted continues from its last checkpoint; anything
    else in its directory (a failure, a changed task) is deleted and the run starts over. The directory is
    written as every run directory is, plus ``task.json`` (and ``detection.json`` for transfer and
    curriculum arms).
    """
    from rltransfer.detection import NegativeTransferWarning
    from rltransfer.pipeline import execute
    from rltransfer.spec import RunSpec

    start = time.time()
    run_dir = Path(task.run_dir)
    spec = RunSpec.model_validate(task.spec)
    checkpoint = _resumable(task)
    if checkpoint is None:
        if run_dir.exists():
            shutil.rmtree(run_dir)
        run_dir.mkdir(parents=True)
        _mark(task, complete=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NegativeTransferWarning)
        result = execute(spec, run_dir, command=_command(task), from_checkpoint=checkpoint)
        extra: dict[str, Any] = {"final_mean": result.final_mean if result.curve.mean else None,
                                 "resumed_from": str(checkpoint) if checkpoint else None}
        if task.kind in ARM_KINDS:
            extra.update(_after_transfer(task, spec, run_dir))
    seconds = round(time.time() - start, 3)
    _mark(task, complete=True, seconds=seconds)
    return {"key": task.key, "seconds": seconds, **extra}


def _after_transfer(task: Task, spec: Any, run_dir: Path) -> dict[str, Any]:
    """The detector's ``fallback`` action: after an alarm, train from scratch for the rest of the budget
    (no transfer, no curriculum)."""
    from rltransfer.pipeline import execute

    if spec.detection is None or not (run_dir / DETECTION_FILE).is_file():
        return {"alarm_step": None}
    record = read_json(run_dir / DETECTION_FILE, "detection record")
    alarm = record.get("alarm_step")
    if alarm is not None and spec.detection.settings.get("action") == "fallback":
        rest = int(spec.steps) - int(alarm)
        if rest > 0:
            fallback = spec.model_copy(update={"transfer": None, "curriculum": None, "detection": None,
                                               "steps": rest, "label": "fallback"})
            fb = execute(fallback, run_dir / "fallback", command=_command(task) + " (fallback from scratch)")
            record["fallback"] = {"steps": rest, "run_dir": "fallback", "final_mean": fb.final_mean}
            atomic_write_json(run_dir / DETECTION_FILE, record)
    return {"alarm_step": alarm}


# ------------------------------------------------------------------------------------------- the runner


@dataclass
class SuiteResult:
    """What :func:`run_suite` did and where the report is.

    Attributes:
        out: the benchmark folder.
        report: path of ``report.md``.
        verdicts: ``{(pair, arm): label}``; run until decided, the design's labels (``positive``,
            ``negative``, ``inconclusive``; ``continue`` for a comparison a failure or an interruption left
            between rounds).
        executed: runs executed in this session; ``skipped``: runs found done; ``failed``: ``{key: error}``.
        wall_time: seconds this session took.
        sequential: run until decided, every comparison's looks and decision (also in ``sequential.json``).
    """

    out: Path
    report: Path
    verdicts: dict[tuple[str, str], str]
    executed: int
    skipped: int
    failed: dict[str, str]
    wall_time: float
    analysis: Analysis | None = None
    sequential: SequentialState | None = None


@contextlib.contextmanager
def _lock(out: Path) -> Iterator[None]:
    """One benchmark process per output folder (an advisory lock, released when the process dies)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    fh = open(out / ".lock", "w")  # noqa: SIM115 - held for the duration
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise ConfigError(f"{out} is in use by another `rltransfer benchmark` process") from None
        yield
    finally:
        fh.close()


def _dependents_blocked(tasks: list[Task], failed: set[str]) -> set[str]:
    blocked = set(failed)
    changed = True
    while changed:
        changed = False
        for t in tasks:
            if t.key not in blocked and any(d in blocked for d in t.deps):
                blocked.add(t.key)
                changed = True
    return blocked - failed


# ---------------------------------------------------------------------------------- seeds until decided


def with_until_decided(suite: Suite, until_decided: bool | None) -> Suite:
    """``suite`` run until decided (``True``: its ``until_decided`` settings, or their defaults), with every
    seed (``False``), or as it says (``None``). The suite itself is not changed.

    Raises:
        ConfigError: the suite's seeds do not allow the default design (fewer seeds than ``min_seeds``).
    """
    from pydantic import ValidationError

    from rltransfer.suite import UntilDecided

    if until_decided is None:
        return suite
    if not isinstance(until_decided, bool):
        raise ConfigError(f"until_decided must be True, False or None, got {until_decided!r}")
    if not until_decided:
        if suite.until_decided is None:
            return suite
        fixed = suite.model_copy()
        fixed.until_decided = None
        return fixed
    if suite.until_decided is not None:
        return suite
    sequential = suite.model_copy()
    try:
        sequential.until_decided = UntilDecided()
    except ValidationError as exc:
        msg = "; ".join(str(e.get("msg", "")).removeprefix("Value error, ") for e in exc.errors())
        raise ConfigError(f"{suite.source_file or suite.name}: --until-decided: {msg}") from None
    return sequential


def sequential_state(suite: Suite, out: str | Path, tasks: Sequence[Task] | None = None,
                     done: set[str] | None = None) -> SequentialState | None:
    """The suite's design replayed on the runs in ``out`` that are done (same fingerprint, complete): what is
    decided, and which seeds each comparison needs next; ``None`` when the suite is not run until decided."""
    from rltransfer.analysis import collect_runs
    from rltransfer.sequential import design_of, suite_state

    if design_of(suite) is None:
        return None
    out = Path(out).resolve()
    tasks = expand(suite, out) if tasks is None else tasks
    done = {t.key for t in tasks if is_done(t)} if done is None else done
    finished = {t.run_dir for t in tasks if t.key in done}
    records, _ = collect_runs(suite, out)
    return suite_state(suite, [r for r in records if r.run_dir in finished])


def _wanted(suite: Suite, tasks: Sequence[Task], state: SequentialState) -> list[Task]:
    """The runs the design needs now: each comparison's arm and scratch runs at its first ``wanted`` seeds,
    and what those depend on (their sources, the first look's scratch runs)."""
    index = {seed: i for i, seed in enumerate(suite.seed_list)}
    keep: set[str] = set()
    for t in tasks:
        if t.kind in ARM_KINDS:
            n = state.decisions[(str(t.pair), str(t.arm))].wanted
            if index[int(t.seed)] < n:  # type: ignore[arg-type]
                keep.add(t.key)
                keep.update(t.deps)
                keep.update(t.scratch[:n])
    return [t for t in tasks if t.key in keep]


def _write_sequential(out: Path, state: SequentialState, wanted: Sequence[Task], tasks: Sequence[Task]) -> None:
    from rltransfer.sequential import SEQUENTIAL_FILE

    atomic_write_json(out / SEQUENTIAL_FILE, {
        **state.to_dict(),
        "runs": {"made_or_wanted": len(wanted), "fixed_design": len(tasks),
                 "by_kind": {k: sum(t.kind == k for t in wanted) for k in ("source", SCRATCH, *ARM_KINDS)}},
    })


def run_suite(
    suite: str | Path | Suite,
    out: str | Path,
    workers: int = 2,
    backend: str = "local",
    address: str | None = None,
    progress: bool = True,
    formats: str | Sequence[str] = ("png",),
    dpi: int | None = None,
    until_decided: bool | None = None,
) -> SuiteResult:
    """Run a suite (resuming whatever is already done in ``out``) and write its report.

    Run until decided (``until_decided``, or the suite's ``until_decided`` settings), the seeds come in
    rounds (:mod:`rltransfer.sequential`): every comparison's first look (``first`` seeds per arm, default
    ``min_seeds``), then ``round`` more seeds per arm (default 2) for each comparison not yet decided on
    normalized AUC, up to the suite's seeds; a round starts when all the runs of the one before are done.
    The seeds are the suite's, in their order, and which runs are made depends on the runs' results only, so
    rerunning the command replays the rounds made and continues (nothing done is rerun).

    Args:
        suite: a :class:`Suite`, a shipped suite name (``"quick"``) or a YAML path.
        out: the benchmark folder.
        workers: runs in flight at once.
        backend: ``"local"`` (process pool) or ``"ray"``.
        address: Ray cluster address (``"auto"``), for ``backend="ray"``.
        progress: show a progress bar over runs (on stderr).
        formats: the report's figure formats (``png``, ``pdf``, ``svg``; a list or ``"png,pdf"``).
        dpi: raster resolution of PNG figures (default: the report's).
        until_decided: ``True``: add seeds until decided (the suite's settings, or ``first = min_seeds``,
            ``round = 2``, O'Brien-Fleming-type spending); ``False``: every comparison gets all the seeds;
            ``None`` (default): as the suite says.

    Returns:
        A :class:`SuiteResult`. Runs that failed are listed there (their dependents are not run; run until
        decided, no later round starts); the report covers what finished.

    Raises:
        KeyboardInterrupt: after stopping the workers; finished runs are kept, rerun to resume.
    """
    from rltransfer.executors import check_backend, make_executor
    from rltransfer.plots import DEFAULT_DPI, check_dpi, check_formats
    from rltransfer.sequential import design_of

    check_backend(backend, address)
    formats = check_formats(formats)  # before anything runs
    dpi = check_dpi(DEFAULT_DPI if dpi is None else dpi)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers must be a positive integer, got {workers!r}")
    if not isinstance(suite, Suite):
        suite = load_suite(suite)
    suite = with_until_decided(suite, until_decided)
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    with _lock(out):
        save_suite(suite, out)
        tasks = expand(suite, out)
        atomic_write_json(out / "arms.json", {"scratch_owners": scratch_owners_of(tasks, suite)})
        by_key = {t.key: t for t in tasks}
        done = {t.key for t in tasks if is_done(t)}
        found_done = set(done)
        sequential = design_of(suite) is not None
        state = sequential_state(suite, out, tasks, done) if sequential else None
        wanted = _wanted(suite, tasks, state) if state is not None else list(tasks)
        failed: dict[str, str] = {}
        executed = 0
        session: dict[str, Any] = {
            "start": started, "end": started, "seconds": 0.0, "complete": False, "workers": workers,
            "backend": backend, "runs_total": len(wanted), "runs_skipped": len(found_done & {t.key for t in wanted}),
            "runs_executed": 0, "runs_failed": 0,
        }
        if sequential:
            session.update(until_decided=True, runs_fixed_design=len(tasks))
        index = _append_session(out, session)

        def record(**final: Any) -> None:  # rewritten as the session goes: a killed session still counts
            now = time.time()
            keys = {t.key for t in wanted}
            session.update(end=now, seconds=round(now - started, 3), runs_total=len(wanted),
                           runs_skipped=len(found_done & keys), runs_executed=executed, runs_failed=len(failed),
                           **final)
            _update_session(out, index, session)

        bar = _Progress(len(wanted), len(found_done & {t.key for t in wanted}), enabled=progress)
        interrupted = False
        try:
            with bar, make_executor(backend, workers, address) as ex:

                def run_all(batch: list[Task]) -> None:
                    nonlocal executed
                    running: dict[Any, str] = {}
                    pending = [t for t in batch if t.key not in done and t.key not in failed]
                    while pending or running:
                        blocked = _dependents_blocked(batch, set(failed))
                        pending = [t for t in pending if t.key not in blocked]
                        for t in list(pending):
                            if len(running) >= workers:
                                break
                            if all(d in done for d in t.deps):
                                running[ex.submit(run_task, t)] = t.key
                                pending.remove(t)
                        bar.show([running[h] for h in running])
                        if not running:
                            break
                        finished = ex.wait(list(running), timeout=SESSION_REFRESH)
                        for handle in finished:
                            key = running.pop(handle)
                            try:
                                ex.result(handle)
                                done.add(key)
                                executed += 1
                            except Exception as exc:  # noqa: BLE001 - a failed run is reported, others go on
                                failed[key] = f"{type(exc).__name__}: {exc}"
                                logger.error("run %s failed: %s", key, failed[key])
                            bar.advance()
                        record()

                while True:  # one round per pass (the fixed design: one pass)
                    run_all(wanted)
                    if state is None:
                        break
                    state = sequential_state(suite, out, tasks, done) or state
                    have = {t.key for t in wanted}
                    new = [t for t in _wanted(suite, tasks, state) if t.key not in have]
                    if failed or not new:
                        break
                    grown = have | {t.key for t in new}
                    wanted = [t for t in tasks if t.key in grown]
                    bar.grow(len(new), sum(t.key in found_done for t in new))
                    _write_sequential(out, state, wanted, tasks)
                    record()
                for key in _dependents_blocked(wanted, set(failed)):
                    deps_txt = ", ".join(by_key[key].deps)
                    failed.setdefault(key, f"not run: a run it depends on failed ({deps_txt})")
        except KeyboardInterrupt:
            interrupted = True
            raise
        finally:
            record(complete=True, interrupted=interrupted)
            if state is not None:
                _write_sequential(out, state, wanted, tasks)
    from rltransfer.report import write_report

    analysis = write_report(out, formats=formats, dpi=dpi)
    verdicts = {(r.pair, r.arm): r.label for r in analysis.results}
    if state is not None:
        verdicts = dict(state.labels)
    skipped = len(found_done & {t.key for t in wanted})
    return SuiteResult(out, out / "report.md", verdicts, executed, skipped, failed, time.time() - started, analysis,
                       state)


#: Seconds between two rewrites of the running session's record while no run finishes.
SESSION_REFRESH = 30.0


def _read_sessions(out: Path) -> dict[str, Any]:
    path = out / "benchmark.json"
    data: dict[str, Any] = {"sessions": []}
    if path.is_file():
        with contextlib.suppress(OSError, ValueError):
            loaded = read_json(path)
            if isinstance(loaded, dict) and isinstance(loaded.get("sessions"), list):
                data = loaded
    return data


def _append_session(out: Path, session: dict[str, Any]) -> int:
    """Add ``session`` to ``benchmark.json`` (atomically) when it starts; returns its index."""
    data = _read_sessions(out)
    data["sessions"].append(session)
    atomic_write_json(out / "benchmark.json", data)
    return len(data["sessions"]) - 1


def _update_session(out: Path, index: int, session: dict[str, Any]) -> None:
    """Rewrite session ``index`` of ``benchmark.json`` (the caller holds the folder's lock)."""
    data = _read_sessions(out)
    sessions = data["sessions"]
    if 0 <= index < len(sessions):
        sessions[index] = session
    else:
        sessions.append(session)
    atomic_write_json(out / "benchmark.json", data)


class _Progress:
    """A rich progress bar over runs (no-op when disabled)."""

    def __init__(self, total: int, completed: int, enabled: bool) -> None:
        self.enabled = enabled
        self._progress: Any = None
        self._task: Any = None
        self.total, self.completed = total, completed

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn("[bold]runs"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                TextColumn("{task.description}"), console=Console(stderr=True), transient=False,
            )
            self._progress.__enter__()
            self._task = self._progress.add_task("", total=self.total, completed=self.completed)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def show(self, keys: list[str]) -> None:
        if self._progress is not None:
            shown = ", ".join(k.removeprefix("runs/") for k in keys)
            self._progress.update(self._task, description=f"[dim]{shown}")

    def advance(self) -> None:
        if self._progress is not None:
            self._progress.advance(self._task)

    def grow(self, runs: int, already_done: int) -> None:
        """A new round: ``runs`` more runs, ``already_done`` of them found done."""
        self.total += runs
        self.completed += already_done
        if self._progress is not None:
            self._progress.update(self._task, total=self.total)
            self._progress.advance(self._task, already_done)
