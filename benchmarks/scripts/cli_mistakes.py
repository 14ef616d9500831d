"""Every subcommand with the mistakes a new user makes, and what each leaves behind.

For each case: the exit code (2 for a mistake, 130 for an interrupt), whether stderr is one line that starts
``rltransfer: error:`` (or ``rltransfer: interrupted``), whether a traceback escaped, and whether anything
was left half-written (a run directory with a ``pending`` status, a temporary, a new folder where the
mistake should have stopped everything before it started).

    .venv/bin/python benchmarks/scripts/cli_mistakes.py            # the matrix, per subcommand
    .venv/bin/python benchmarks/scripts/cli_mistakes.py --cases    # every case with its one line

The cases run in-process (``rltransfer.cli.main``): an exception that escapes ``main`` is what the user
would see as a traceback. ``tests/test_cli_mistakes.py`` runs the same table.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import io
import json
import os
import sys
import tempfile
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TINY_AGENT = """\
algo: ppo
defaults:
  n_envs: 2
  hyperparams: {n_steps: 32, batch_size: 32, n_epochs: 1}
  policy_kwargs: {net_arch: [16]}
  eval: {freq: 64, episodes: 1}
families:
  cartpole: {}
  acrobot: {}
"""


@dataclass
class Case:
    """One mistake: the command line (``{w}`` is the work folder), what stderr must name, and an optional
    setup that runs before it (e.g. patching a write to fail as a full disk would)."""

    command: str
    argv: list[str]
    names: str  # a piece of text the one error line must contain
    expect: int = 2
    patch: Callable[[Any], Any] | None = None
    notes: str = ""


@dataclass
class Outcome:
    case: Case
    code: int | None
    stderr: str
    traceback: str | None
    residue: list[str] = field(default_factory=list)

    @property
    def one_line(self) -> bool:
        # one message; a list of problems in one file continues on indented lines (all named at once)
        lines = [line for line in self.stderr.splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith(("rltransfer: error:", "rltransfer: interrupted"))]
        return len(errors) == 1 and lines[0] == errors[0] and all(
            line.startswith(("rltransfer: warning: ", "  ")) for line in lines[1:])

    @property
    def ok(self) -> bool:
        return (self.traceback is None and self.code == self.case.expect and self.one_line
                and self.case.names in self.stderr and not self.residue)


def _full_disk(monkeypatch: Any) -> None:
    """Every atomic write in the run directory fails as it would on a full disk (after status.json)."""
    import rltransfer.rundir as rundir

    real = rundir.atomic_write_text

    def write(path: Path, text: str) -> None:
        if Path(path).name == "status.json":
            return real(path, text)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(rundir, "atomic_write_text", write)
    import rltransfer.pipeline as pipeline

    monkeypatch.setattr(pipeline, "atomic_write_text", write)


def _ctrl_c_at_start(monkeypatch: Any) -> None:
    import rltransfer.pipeline as pipeline

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "assemble", interrupted)


def cases(w: str) -> list[Case]:
    """The table. ``w`` is the work folder prepared by :func:`prepare`."""
    src = f"{w}/src/policy"
    tr = ["transfer", "--from", src, "--env", "cartpole", "--steps", "64", "--out", f"{w}/out", "--no-progress"]
    train = ["train", "--env", "cartpole", "--agent", f"{w}/tiny.yaml", "--steps", "64", "--out", f"{w}/out",
             "--no-progress"]
    ev = ["evaluate", "--policy", src, "--env", "cartpole", "--episodes", "1"]
    c = [
        # train
        Case("train", ["train", "--env", "cartpol", "--agent", "ppo", "--out", f"{w}/out"], "cartpole"),
        Case("train", ["train", "--env", "cartpole", "--agent", "ppoo", "--out", f"{w}/out"], "ppo"),
        Case("train", [*train, "--set", "lenght=0.6"], "length"),
        Case("train", [*train, "--set", "length=900"], "length"),
        Case("train", [*train, "--set", "length"], "length"),
        Case("train", [*train, "--set", "length=nan"], "length"),
        Case("train", [*train[:-3], "--steps", "-5", "--out", f"{w}/out"], "steps"),
        Case("train", [*train[:-3], "--steps", "abc", "--out", f"{w}/out"], "--steps"),
        Case("train", [*train, "--seed", "-1"], "seed"),
        Case("train", [*train, "--seed", "2.5"], "--seed"),
        Case("train", [*train, "--eval-episodes", "-1"], "episodes"),
        Case("train", [*train, "--eval-freq", "-3"], "frequency"),
        Case("train", [*train[:-3], "--out", f"{w}/a-file", "--no-progress"], "a-file"),
        Case("train", [*train, "--name", "../escaped"], "--name"),
        Case("train", [*train, "--name", "a/b"], "--name"),
        Case("train", [*train, "--randomize", "drr"], "dr"),
        Case("train", [*train, "--variant", "rael"], "real"),
        Case("train", [*train, "--curriculum", "nope"], "nope"),
        Case("train", ["train", "--env", "cartpole", "--agent", f"{w}/missing.yaml", "--out", f"{w}/out"], "missing.yaml"),
        Case("train", ["train", "--env", "cartpole", "--agent", f"{w}/empty.yaml", "--out", f"{w}/out"], "empty.yaml"),
        Case("train", ["train", "--env", "cartpole", "--agent", f"{w}/a-dir", "--out", f"{w}/out"], "a-dir"),
        Case("train", ["train", "--env", "cartpole", "--agent", f"{w}/binary.yaml", "--out", f"{w}/out"], "binary.yaml"),
        Case("train", ["train", "--env", f"{w}/badgym.yaml", "--agent", "ppo", "--out", f"{w}/out"], "NoSuchEnv"),
        Case("train", [*train, "--hyperparams", "learning_rate:eval('1')"], "eval"),
        Case("train", [*train, "--hyperparams", "n_stepz:8"], "n_stepz"),
        Case("train", [*train, "--n-envs", "0"], "n_envs"),
        Case("train", [*train, "--threads", "0"], "threads"),
        Case("train", [*train, "--save-freq", "-1"], "save"),
        Case("train", [*train, "--device", "tpu"], "--device"),
        Case("train", ["train", "--env", "pendulum", "--agent", "td3", "--steps", "500", "--strict",
                       "--out", f"{w}/out"], "learning_starts"),
        Case("train", train, "disk full", patch=_full_disk, notes="every write but status.json fails (ENOSPC)"),
        Case("train", train, "interrupted", expect=130, patch=_ctrl_c_at_start, notes="Ctrl-C while starting"),
        # evaluate / enjoy
        Case("evaluate", ["evaluate", "--policy", f"{w}/nothing", "--env", "cartpole"], "nothing"),
        Case("evaluate", ["evaluate", "--policy", f"{w}/a-dir", "--env", "cartpole"], "a-dir"),
        Case("evaluate", ["evaluate", "--policy", f"{w}/empty.zip", "--env", "cartpole"], "empty.zip"),
        Case("evaluate", [*ev[:-2], "--episodes", "0"], "episodes"),
        Case("evaluate", [*ev[:3], "--env", "acrobat", "--episodes", "1"], "acrobot"),
        Case("evaluate", [*ev, "--env", "pendulum"], "pendulum"),
        Case("evaluate", [*ev, "--json", f"{w}/a-dir"], "--json"),
        Case("evaluate", [*ev, "--variant", "nope"], "nope"),
        Case("evaluate", [*ev, "--algo", "ppp"], "ppp"),
        Case("enjoy", ["enjoy", "--policy", src, "--env", "cartpole", "--episodes", "0"], "episodes"),
        Case("enjoy", ["enjoy", "--policy", src, "--env", "cartpole", "--video", f"{w}/a-dir"], "a-dir"),
        # transfer
        Case("transfer", ["transfer", "--from", f"{w}/nothing", "--env", "cartpole", "--out", f"{w}/out"], "nothing"),
        Case("transfer", [*tr, "--strategy", "fintune"], "finetune"),
        Case("transfer", [*tr, "--strategy", "freeze", "--freeze-pattern", "nomatch*"], "nomatch*"),
        Case("transfer", [*tr, "--strategy", "freeze", "--freeze-layers", "7"], "--freeze-layers 7"),
        Case("transfer", [*tr, "--strategy", "lower_lr", "--lr-scale", "2"], "lr_scale"),
        Case("transfer", [*tr, "--strategy", "finetune", "--lr-scale", "0.5"], "lr"),
        Case("transfer", [*tr, "--strategy", "reinit_heads", "--heads", "q"], "head"),
        Case("transfer", [*tr, "--obs-map", "0,1,x"], "obs"),
        Case("transfer", [*tr, "--action-map", "0,0,0,0"], "action"),
        Case("transfer", [*tr, "--agent", "a2c"], "--algo a2c"),
        Case("transfer", [*tr, "--algo", "dqn"], "DQN"),
        Case("transfer", [*tr, "--wrapper", "TimeFeature"], "TimeFeatureWrapper"),
        Case("transfer", [*tr[:3], "--env", "pendulum", "--steps", "64", "--out", f"{w}/out"], "Observation spaces"),
        # inspect, list
        Case("inspect", ["inspect", f"{w}/nothing"], "nothing"),
        Case("inspect", ["inspect", f"{w}/a-file"], "a-file"),
        Case("inspect", ["inspect", f"{w}/a-dir"], "a-dir"),
        Case("list", ["list", "agent"], "agents"),
        # sim2real, sweep
        Case("sim2real", ["sim2real", "--policy", src, "--env", "cartpole", "--variant", "nope"], "nope"),
        Case("sim2real", ["sim2real", "--policy", src, "--env", "cartpole", "--episodes", "1"], "episodes"),
        Case("sweep", ["sweep", "--policy", src, "--env", "cartpole", "--param", "length", "--out", f"{w}/sw"], "length"),
        Case("sweep", ["sweep", "--policy", src, "--env", "cartpole", "--param", "lenght=0.4:0.6:3", "--out",
                       f"{w}/sw"], "length"),
        Case("sweep", ["sweep", "--policy", src, "--env", "cartpole", "--param", "length=0.4:0.6:3", "--out",
                       f"{w}/a-file"], "a-file"),
        # benchmark, report, resume, demo
        Case("benchmark", ["benchmark", "quik", "--out", f"{w}/bench"], "quick"),
        Case("benchmark", ["benchmark", f"{w}/benchmarks/quick.yaml", "--out", f"{w}/bench"], "'quick'",
             notes="the README's path, run outside the repository"),
        Case("benchmark", ["benchmark", f"{w}/badsuite.yaml", "--out", f"{w}/bench"], "badsuite.yaml"),
        Case("benchmark", ["benchmark", "quick", "--out", f"{w}/bench", "--workers", "0"], "workers"),
        Case("benchmark", ["benchmark", "quick", "--out", f"{w}/a-file"], "a-file"),
        Case("report", ["report", f"{w}/nothing"], "nothing"),
        Case("report", ["report", f"{w}/a-dir"], "a-dir"),
        Case("resume", ["resume", f"{w}/nothing"], "nothing"),
        Case("resume", ["resume", f"{w}/src"], "finished"),
        Case("demo", ["demo", "--out", f"{w}/demo", "--workers", "0"], "workers"),
        # global
        Case("(global)", ["lst"], "list"),
        Case("(global)", ["train", "--env", "cartpole", "--agent", "ppo", "-v", "-q"], "exclude"),
    ]
    return c


def prepare(w: Path) -> None:
    """The work folder: a trained tiny source, a file, a folder, empty and binary files, bad YAMLs."""
    from rltransfer.cli import main

    (w / "tiny.yaml").write_text(TINY_AGENT)
    (w / "a-file").write_text("not a folder\n")
    (w / "a-dir").mkdir()
    (w / "empty.yaml").write_text("")
    (w / "empty.zip").write_bytes(b"")
    (w / "binary.yaml").write_bytes(bytes(range(256)) * 4)
    (w / "badgym.yaml").write_text(
        (Path(__file__).resolve().parents[2] / "envs" / "cartpole.yaml").read_text().replace(
            "gym_id: CartPole-v1", "gym_id: NoSuchEnv-v9"))
    (w / "badsuite.yaml").write_text("name: bad\npairs: [{name: x}]\n")
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = main(["train", "--env", "cartpole", "--agent", str(w / "tiny.yaml"), "--steps", "64", "--out", str(w),
                     "--name", "src", "--eval-episodes", "1", "--no-progress"])
    if code != 0:
        raise RuntimeError("could not train the tiny source")


def _residue(w: Path, before: set[str]) -> list[str]:
    """What a mistake left: new files or folders, temporaries, a status that is pending."""
    now = {str(p.relative_to(w)) for p in w.rglob("*")}
    left = sorted(now - before)
    for status in w.rglob("status.json"):
        with contextlib.suppress(OSError, ValueError):
            if json.loads(status.read_text()).get("status") in ("pending", "running"):
                left.append(f"{status.relative_to(w)} says {json.loads(status.read_text())['status']}")
    return left


def run_case(case: Case, w: Path, monkeypatch: Any) -> Outcome:
    import traceback

    from rltransfer.cli import main

    before = {str(p.relative_to(w)) for p in w.rglob("*")}
    err, out = io.StringIO(), io.StringIO()
    tb = None
    code: int | None = None
    with monkeypatch.context() as mp:
        if case.patch is not None:
            case.patch(mp)
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
                code = main(case.argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 2
        except BaseException:  # noqa: BLE001 - whatever escapes main is a traceback the user sees
            tb = traceback.format_exc()
    residue = _residue(w, before)
    # a mistake may legitimately leave a failed run (status says why) only when it failed mid-run:
    # the full-disk case; its directory is a record, not half-written
    if case.patch is _full_disk:
        residue = [r for r in residue if "says" in r]
    return Outcome(case, code, err.getvalue(), tb, residue)


class _MonkeyPatch:
    """A minimal stand-in for pytest's ``monkeypatch`` when run as a script."""

    @contextlib.contextmanager
    def context(self) -> Any:
        undo: list[tuple[Any, str, Any]] = []

        class Patcher:
            def setattr(self, target: Any, name: str, value: Any) -> None:
                undo.append((target, name, getattr(target, name)))
                setattr(target, name, value)

        try:
            yield Patcher()
        finally:
            for target, name, value in reversed(undo):
                setattr(target, name, value)


def run_all(w: Path, monkeypatch: Any | None = None) -> list[Outcome]:
    prepare(w)
    mp = monkeypatch or _MonkeyPatch()
    return [run_case(case, w, mp) for case in cases(str(w))]


def matrix(outcomes: list[Outcome]) -> str:
    by: dict[str, list[Outcome]] = defaultdict(list)
    for o in outcomes:
        by[o.case.command].append(o)
    rows = ["| subcommand | mistakes | exit codes | one clear line | tracebacks | half-written |", "|---|---|---|---|---|---|"]
    for command, items in by.items():
        codes = Counter(o.code for o in items)
        rows.append(f"| {command} | {len(items)} | {', '.join(f'{k}: {v}' for k, v in sorted(codes.items(), key=str))} | "
                    f"{sum(o.one_line and o.case.names in o.stderr for o in items)} | "
                    f"{sum(o.traceback is not None for o in items)} | {sum(bool(o.residue) for o in items)} |")
    total = len(outcomes)
    rows.append(f"| **all** | {total} | {sum(o.code == o.case.expect for o in outcomes)} as expected | "
                f"{sum(o.one_line and o.case.names in o.stderr for o in outcomes)} | "
                f"{sum(o.traceback is not None for o in outcomes)} | {sum(bool(o.residue) for o in outcomes)} |")
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", action="store_true", help="print every case with its error line")
    args = parser.parse_args()
    os.environ.setdefault("COLUMNS", "200")
    with tempfile.TemporaryDirectory() as tmp:
        outcomes = run_all(Path(tmp))
        if args.cases:
            for o in outcomes:
                mark = "ok " if o.ok else "BAD"
                print(f"{mark} {o.code} {' '.join(o.case.argv).replace(tmp, '<w>')}\n      {o.stderr.strip().replace(tmp, '<w>')}")
                if o.traceback:
                    print("      TRACEBACK " + o.traceback.strip().splitlines()[-1])
                if o.residue:
                    print(f"      RESIDUE {o.residue}")
        print(matrix(outcomes))
    return 0 if all(o.ok for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
