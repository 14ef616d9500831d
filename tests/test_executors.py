"""Tests for rltransfer/executors.py: the local process pool and the optional Ray backend."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from rltransfer.errors import ConfigError, MissingDependencyError, UnknownNameError
from rltransfer.executors import LocalExecutor, make_executor


def worker_info(x: int) -> tuple[int, int, int]:
    """(x squared, the worker's pid, its torch thread count)."""
    import torch

    return x * x, os.getpid(), torch.get_num_threads()


def fail(x: int) -> int:
    raise ValueError(f"bad value {x}")


def test_local_pool_runs_tasks_in_worker_processes_with_one_thread() -> None:
    with make_executor("local", workers=2) as ex:
        assert isinstance(ex, LocalExecutor)
        handles = [ex.submit(worker_info, i) for i in range(4)]
        results = []
        pending = list(handles)
        while pending:
            for h in ex.wait(pending):
                pending.remove(h)
                results.append(ex.result(h))
    assert sorted(r[0] for r in results) == [0, 1, 4, 9]
    assert all(pid != os.getpid() for _, pid, _ in results)
    assert {threads for _, _, threads in results} == {1}


def test_task_errors_reach_the_caller() -> None:
    with make_executor("local", workers=1) as ex:
        h = ex.submit(fail, 3)
        ex.wait([h])
        with pytest.raises(ValueError, match="bad value 3"):
            ex.result(h)


def test_bad_backend_and_arguments() -> None:
    with pytest.raises(UnknownNameError, match="Did you mean: 'local'"):
        make_executor("locl", workers=1)
    with pytest.raises(ConfigError, match="--address.*Ray backend"):
        make_executor("local", workers=1, address="auto")
    with pytest.raises(ConfigError, match="workers must be a positive integer"):
        make_executor("local", workers=0)


def test_ray_missing_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails, whether or not it is installed
    with pytest.raises(MissingDependencyError, match=r"pip install 'rltransfer\[ray\]'"):
        make_executor("ray", workers=1)


def test_ray_executor_runs_tasks() -> None:
    pytest.importorskip("ray", reason="the Ray backend is an optional extra: pip install 'rltransfer[ray]'")
    # Ray workers cannot import this test module: send the function by value (cloudpickle pickles lambdas so)
    info = lambda x: (x * x, os.getpid(), __import__("torch").get_num_threads())  # noqa: E731
    with make_executor("ray", workers=2) as ex:
        handles = [ex.submit(info, i) for i in range(3)]
        results = [ex.result(h) for h in handles]
    assert sorted(r[0] for r in results) == [0, 1, 4]
    assert {threads for _, _, threads in results} == {1}


_PARENT = """
import sys, time
from rltransfer.executors import LocalExecutor
if __name__ == "__main__":
    ex = LocalExecutor(1)
    ex.submit(time.sleep, 60)
    deadline = time.time() + 60
    while not ex._pool._processes and time.time() < deadline:
        time.sleep(0.01)
    time.sleep(0.5)  # the worker is in its task
    print(*ex._pool._processes, flush=True)
    time.sleep(60)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG and /proc are Linux")
def test_workers_die_within_a_second_of_a_killed_parent(tmp_path: Path) -> None:
    import subprocess

    script = tmp_path / "parent.py"
    script.write_text(_PARENT)
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        pids = [int(p) for p in proc.stdout.readline().split()]  # type: ignore[union-attr]
    finally:
        proc.kill()
        proc.wait(timeout=30)
    killed = time.monotonic()
    assert pids

    def alive(pid: int) -> bool:
        try:
            raw = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        return raw[raw.rindex(")") + 2] != "Z"

    while any(alive(p) for p in pids) and time.monotonic() - killed < 5:
        time.sleep(0.01)
    assert time.monotonic() - killed < 1.0
