"""Kill `rltransfer train` with SIGKILL at random moments and check what each kill leaves behind.

Every kill is followed by the checks a user relies on: ``status.json`` is strict JSON; a run that is not
done is recognised as dead (:func:`rltransfer.rundir.run_state`), never as alive; a ``policy/`` folder,
if there is one, loads and verifies (:func:`rltransfer.bundle.load_bundle`); a good bundle trained
first, beside the victim, is byte-for-byte unchanged. The next run goes into the same (dead) directory,
which must be accepted, and temporaries a kill left there (``.policy.tmp-*``) must be gone once it has
started. A last, uninterrupted run into the dead directory must finish cleanly.

Most kills hit a fork server (one Python process that has imported torch and SB3 and forks a child per
run, which then runs the CLI's ``main``), so a kill costs about a second instead of the CLI's 2-3 s
start-up; ``--cli-kills`` of them kill the real ``rltransfer`` executable. One kill in three waits for
the bundle's temporary folder to appear and kills then (during the bundle save).

    python benchmarks/scripts/kill_train.py --kills 100 --cli-kills 5

prints a summary table (and ``--json PATH`` writes it); exit code 1 if anything was damaged.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TINY_AGENT = """\
algo: ppo
families:
  cartpole:
    n_envs: 2
    n_timesteps: 1500
    hyperparams: {n_steps: 64, batch_size: 64, n_epochs: 2, learning_rate: 0.001}
    policy_kwargs: {net_arch: [16]}
"""

STEPS = 1500


def train_argv(agent: Path, out: Path, name: str, steps: int = STEPS) -> list[str]:
    return ["train", "--env", "cartpole", "--agent", str(agent), "--steps", str(steps), "--out", str(out),
            "--name", name, "--eval-freq", str(max(1, steps // 3)), "--eval-episodes", "2", "--no-progress"]


# ---------------------------------------------------------------------------------------- fork server


def serve() -> None:
    """Read one JSON argv per line on stdin; fork a child running ``rltransfer.cli.main(argv)``; print
    the child's pid, then ``exit <status>`` once it has ended (reaped here, so it cannot look alive)."""
    import torch

    import rltransfer.bundle  # noqa: F401 - imported once, before forking
    import rltransfer.cli
    import rltransfer.training  # noqa: F401

    torch.set_num_threads(1)
    for line in sys.stdin:
        argv = json.loads(line)
        pid = os.fork()
        if pid == 0:  # child
            devnull = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(devnull, fd)
            try:
                code = rltransfer.cli.main(argv)
            except BaseException:  # noqa: BLE001 - a traceback is a failure code, the driver reports it
                code = 1
            os._exit(int(code))
        print(pid, flush=True)
        _, status = os.waitpid(pid, 0)
        print("exit", os.waitstatus_to_exitcode(status), flush=True)


class ForkServer:
    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, __file__, "--serve"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, bufsize=1)

    def start(self, argv: list[str]) -> int:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps(argv) + "\n")
        self.proc.stdin.flush()
        return int(self.proc.stdout.readline())

    def wait_exit(self, timeout: float | None) -> int | None:
        """The child's exit code if it ends within ``timeout`` seconds (``None``: still running)."""
        assert self.proc.stdout
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            return None
        line = self.proc.stdout.readline().split()
        return int(line[1])

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)


# ------------------------------------------------------------------------------------------- checks


def tree_hash(path: Path) -> str:
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(file.relative_to(path).as_posix().encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()


def strict_json(path: Path) -> Any:
    def refuse(token: str) -> None:
        raise ValueError(f"non-standard JSON constant {token}")

    return json.loads(path.read_text(), parse_constant=refuse)


def residue(run_dir: Path) -> set[str]:
    from rltransfer.rundir import RESIDUE_PATTERNS

    return {p.name for pattern in RESIDUE_PATTERNS for p in run_dir.glob(pattern)} if run_dir.is_dir() else set()


class Tally:
    def __init__(self) -> None:
        self.counts: dict[str, int] = {k: 0 for k in (
            "kills", "cli_kills", "during_save", "finished_before_kill", "killed_after_done", "statuses_valid",
            "statuses_missing", "statuses_invalid", "dead_recognised", "seen_alive", "bundles_verified", "reruns_accepted",
            "reruns_refused", "residue_left", "residue_cleaned", "residue_not_cleaned", "damaged")}
        self.problems: list[str] = []

    def bad(self, key: str, message: str) -> None:
        self.counts[key] += 1
        self.problems.append(message)


def inspect(run_dir: Path, tally: Tally, good: Path, good_hash: str, label: str) -> str:
    """Check a run directory after a kill; returns its state."""
    from rltransfer.bundle import load_bundle
    from rltransfer.rundir import run_state

    status_path = run_dir / "status.json"
    if status_path.exists():
        try:
            strict_json(status_path)
            tally.counts["statuses_valid"] += 1
        except ValueError as exc:
            tally.bad("statuses_invalid", f"{label}: status.json is not valid JSON: {exc}")
    else:
        tally.counts["statuses_missing"] += 1
    state = run_state(run_dir)
    if state == "alive":
        tally.bad("seen_alive", f"{label}: killed run looks alive")
    elif state != "done":
        tally.counts["dead_recognised"] += 1
    if (run_dir / "policy").exists():
        try:
            load_bundle(run_dir / "policy")
            tally.counts["bundles_verified"] += 1
        except Exception as exc:  # noqa: BLE001 - any failure to load is damage
            tally.bad("damaged", f"{label}: policy/ does not load: {type(exc).__name__}: {exc}")
    if tree_hash(good) != good_hash:
        tally.bad("damaged", f"{label}: the good bundle {good} changed")
    return state


# --------------------------------------------------------------------------------------------- driver


def run_kills(work: Path, kills: int = 30, cli_kills: int = 3, seed: int = 0, steps: int = STEPS,
              rltransfer_exe: str | None = None) -> dict[str, Any]:
    """Kill ``kills`` trainings (``cli_kills`` of them the real CLI) and check each; returns the tally."""
    from rltransfer.rundir import read_status

    rng = random.Random(seed)
    work.mkdir(parents=True, exist_ok=True)
    agent = work / "tiny_ppo.yaml"
    agent.write_text(TINY_AGENT)
    out = work / "runs"
    exe = rltransfer_exe or str(Path(sys.executable).with_name("rltransfer"))
    tally = Tally()
    server = ForkServer()
    started = time.monotonic()
    try:
        server.start(train_argv(agent, out, "good", steps))  # returns once forked: the imports are done
        t0 = time.monotonic()
        if server.wait_exit(None) != 0:
            raise RuntimeError("the uninterrupted reference run failed")
        duration = time.monotonic() - t0
        good = out / "good" / "policy"
        good_hash = tree_hash(good)
        victim_index = 0
        victim = "victim0"
        cli_at = set(rng.sample(range(kills), min(cli_kills, kills)))
        for i in range(kills):
            run_dir = out / victim
            before = residue(run_dir)
            label = f"kill {i} ({victim})"
            during_save = i % 3 == 2
            if i in cli_at:
                tally.counts["cli_kills"] += 1
                proc = subprocess.Popen([exe, *train_argv(agent, out, victim, steps)], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
                pid = proc.pid
                end = time.monotonic() + (rng.uniform(2.0, 2.0 + 1.5 * duration) if not during_save else 60)
                code = None
                while time.monotonic() < end and code is None:
                    if during_save and residue(run_dir) - before:
                        break
                    code = proc.poll()
                    time.sleep(0.001 if during_save else 0.01)
                if code is None:
                    proc.kill()
                proc.wait()
                code = None if proc.returncode == -signal.SIGKILL else proc.returncode
            else:
                pid = server.start(train_argv(agent, out, victim, steps))
                if during_save:
                    code = None
                    deadline = time.monotonic() + 60
                    while time.monotonic() < deadline:
                        if residue(run_dir) - before:
                            break
                        code = server.wait_exit(0.001)
                        if code is not None:
                            break
                else:
                    code = server.wait_exit(rng.uniform(0.0, 1.2 * duration))
                if code is None:
                    os.kill(pid, signal.SIGKILL)
                    code = server.wait_exit(None)
                    code = None if code == -signal.SIGKILL else code
            tally.counts["kills"] += 1
            if code is not None:
                tally.counts["finished_before_kill"] += 1
                if code == 2:
                    tally.bad("reruns_refused", f"{label}: the rerun into a dead directory was refused")
            elif during_save and residue(run_dir) - before:
                tally.counts["during_save"] += 1
            state = inspect(run_dir, tally, good, good_hash, label)
            if code is None and state == "done":
                # the SIGKILL landed after status.json said done (the run was exiting): correctly not dead
                tally.counts["killed_after_done"] += 1
            # the run just killed started (its pid owns status.json): what an earlier kill left must be gone
            owner = read_status(run_dir).get("pid")
            if before and owner == pid:
                if before & residue(run_dir):
                    tally.bad("residue_not_cleaned", f"{label}: {sorted(before & residue(run_dir))} not cleaned")
                else:
                    tally.counts["residue_cleaned"] += 1
            if owner == pid or code == 0:
                tally.counts["reruns_accepted"] += 1
            if residue(run_dir):
                tally.counts["residue_left"] += 1
            if state == "done":  # the kill came too late: the next victim is a fresh directory
                victim_index += 1
                victim = f"victim{victim_index}"
        # last: an uninterrupted run into the (dead) victim directory must finish cleanly
        run_dir = out / victim
        server.start(train_argv(agent, out, victim, steps))
        code = server.wait_exit(None)
        final_ok = (code == 0 and read_status(run_dir).get("status") == "done" and not residue(run_dir))
        if final_ok:
            inspect(run_dir, tally, good, good_hash, "final run")
        else:
            tally.bad("damaged", f"final run into {run_dir}: exit {code}, status {read_status(run_dir)}, "
                                 f"residue {sorted(residue(run_dir))}")
    finally:
        server.close()
    return {**tally.counts, "final_run_ok": final_ok, "reference_run_seconds": round(duration, 2),
            "seconds": round(time.monotonic() - started, 1), "problems": tally.problems}


def table(summary: dict[str, Any]) -> str:
    rows = [(k, v) for k, v in summary.items() if k != "problems"]
    width = max(len(k) for k, _ in rows)
    lines = [f"{'check':<{width}}  value", f"{'-' * width}  -----"]
    lines += [f"{k:<{width}}  {v}" for k, v in rows]
    lines += [f"problem: {p}" for p in summary["problems"]]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=30)
    parser.add_argument("--cli-kills", type=int, default=3, help="how many of the kills hit the real CLI")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=STEPS, help="environment steps of each training")
    parser.add_argument("--work", type=Path, default=None, help="folder for the runs (default: a temp folder)")
    parser.add_argument("--json", type=Path, default=None, help="also write the summary here")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve()
        return 0
    work = args.work or Path(tempfile.mkdtemp(prefix="kill_train-"))
    try:
        summary = run_kills(work, args.kills, args.cli_kills, args.seed, args.steps)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    print(table(summary))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    failures = ("statuses_invalid", "seen_alive", "damaged", "reruns_refused", "residue_not_cleaned")
    return 1 if any(summary[k] for k in failures) or not summary["final_run_ok"] else 0


if __name__ == "__main__":
    sys.exit(main())
