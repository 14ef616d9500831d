"""Run directories (rltransfer/rundir.py): owner and heartbeat in status.json, alive vs dead, residue
cleaning, and what a new run may do with a directory already there (training.claim_run_dir)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rltransfer.errors import ConfigError
from rltransfer.rundir import (
    atomic_write_json,
    clean_residue,
    heartbeat,
    pid_alive,
    process_start_ticks,
    read_status,
    run_state,
    write_status,
)
from rltransfer.rundir import claim_run_dir


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _status(run: Path, **fields: object) -> None:
    atomic_write_json(run / "status.json", {"status": "running", "time": time.time(), **fields})


def test_status_names_its_owner_and_heartbeat(tmp_path: Path) -> None:
    write_status(tmp_path, "running", started=1.0)
    data = read_status(tmp_path)
    assert data["pid"] == os.getpid() and data["host"] and data["started"] == 1.0
    assert data["pid_start"] == process_start_ticks(os.getpid())
    assert run_state(tmp_path) == "alive"
    first = data["heartbeat"]
    time.sleep(0.01)
    heartbeat(tmp_path)
    assert read_status(tmp_path)["heartbeat"] > first
    assert read_status(tmp_path)["started"] == 1.0


def test_dead_owner_is_recognised(tmp_path: Path) -> None:
    import socket

    host = socket.gethostname()
    _status(tmp_path, pid=_dead_pid(), host=host, heartbeat=time.time())
    assert run_state(tmp_path) == "dead"
    # a pid reused by another process: same pid, another start time
    _status(tmp_path, pid=os.getpid(), pid_start=(process_start_ticks(os.getpid()) or 0) + 1, host=host,
            heartbeat=time.time())
    assert run_state(tmp_path) == "dead"
    # a silent owner on another host: only the heartbeat can tell
    _status(tmp_path, pid=1, host="elsewhere", heartbeat=time.time() - 10_000)
    assert run_state(tmp_path) == "dead"
    _status(tmp_path, pid=1, host="elsewhere", heartbeat=time.time())
    assert run_state(tmp_path) == "alive"
    # statuses written before pids were recorded, and unreadable ones, are dead
    _status(tmp_path)
    assert run_state(tmp_path) == "dead"
    (tmp_path / "status.json").write_text('{"status": "running", "time": NaN')
    assert run_state(tmp_path) == "dead"


def test_terminal_states(tmp_path: Path) -> None:
    assert run_state(tmp_path) == "missing"
    write_status(tmp_path, "done")
    assert run_state(tmp_path) == "done"
    write_status(tmp_path, "failed", error="x")
    assert run_state(tmp_path) == "failed"


def test_pid_alive() -> None:
    assert pid_alive(os.getpid())
    assert not pid_alive(_dead_pid())
    assert not pid_alive(-1) and not pid_alive(0)


def _residue(run: Path) -> list[Path]:
    paths = [run / ".policy.tmp-abc", run / ".policy.old-def", run / ".eval.tmp.npz", run / ".status.json.x1.tmp"]
    paths[0].mkdir()
    (paths[0] / "model.zip").write_bytes(b"partial")
    paths[1].mkdir()
    paths[2].write_bytes(b"partial")
    paths[3].write_text("{")
    return paths


def test_clean_residue_keeps_the_rest(tmp_path: Path) -> None:
    residue = _residue(tmp_path)
    (tmp_path / "policy").mkdir()
    (tmp_path / "task.json").write_text("{}")
    write_status(tmp_path, "failed")
    assert sorted(clean_residue(tmp_path)) == sorted(residue)
    assert not any(p.exists() for p in residue)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["policy", "status.json", "task.json"]


def test_dead_or_failed_run_directory_is_replaced(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    run = tmp_path / "run"
    run.mkdir()
    _residue(run)
    (run / "eval.csv").write_text("partial")
    import socket

    _status(run, pid=_dead_pid(), host=socket.gethostname(), heartbeat=time.time())
    claim_run_dir(run)
    assert run.is_dir() and not any(run.iterdir())
    assert "replacing" in caplog.text
    write_status(run, "failed", error="boom")
    (run / "eval.csv").write_text("partial")
    claim_run_dir(run)
    assert not any(run.iterdir())


def test_live_and_finished_run_directories_are_refused(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    write_status(run, "running")
    with pytest.raises(ConfigError, match=rf"in use by a live run \(pid {os.getpid()} on host"):
        claim_run_dir(run)
    write_status(run, "done")
    with pytest.raises(ConfigError, match="already holds a finished run"):
        claim_run_dir(run)
    assert (run / "status.json").exists()


def test_directory_without_status_keeps_its_files_but_loses_residue(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    residue = _residue(run)
    (run / "task.json").write_text(json.dumps({"complete": False}))  # what the benchmark writes first
    claim_run_dir(run)
    assert (run / "task.json").exists() and not any(p.exists() for p in residue)
    claim_run_dir(tmp_path / "new" / "run")
    assert (tmp_path / "new" / "run").is_dir()


def test_clean_residue_restores_a_bundle_left_between_two_renames(tmp_path: Path) -> None:
    """A save killed after moving the old bundle aside but before renaming the new one into place."""
    from rltransfer.rundir import clean_residue

    old = tmp_path / ".policy.old-abc"
    (old / "policy").mkdir(parents=True)
    (old / "policy" / "manifest.json").write_text("{}")
    (tmp_path / ".policy.tmp-def").mkdir()
    clean_residue(tmp_path)
    assert (tmp_path / "policy" / "manifest.json").read_text() == "{}"
    assert not old.exists() and not (tmp_path / ".policy.tmp-def").exists()


def test_read_npz_round_trip_and_refusals(tmp_path: Path) -> None:
    import io
    import zipfile

    import numpy as np

    from rltransfer.errors import BundleError
    from rltransfer.rundir import read_npz

    good = tmp_path / "good.npz"
    np.savez(good, steps=np.arange(3), returns=np.ones((3, 2)))
    data = read_npz(good)
    assert data["steps"].tolist() == [0, 1, 2] and data["returns"].shape == (3, 2)

    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, x=np.array([{"a": 1}], dtype=object))
    with pytest.raises(BundleError, match="object"):
        read_npz(pickled)

    # A header declaring 2**40 elements over a few bytes of data: refused from the header alone.
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False, "shape": (2**20, 2**20)})
    lying = tmp_path / "lying.npz"
    with zipfile.ZipFile(lying, "w") as zf:
        zf.writestr("x.npy", buf.getvalue() + b"\0" * 64)
    with pytest.raises(BundleError, match="at most"):
        read_npz(lying)

    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[:40])
    with pytest.raises(BundleError):
        read_npz(truncated)
