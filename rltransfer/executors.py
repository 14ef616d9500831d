"""Where benchmark runs execute: a local process pool (default) or a Ray cluster (optional extra).

An executor runs one picklable function on one picklable argument per task and lets the caller wait
for whichever task finishes first; the benchmark runner (:mod:`rltransfer.benchmark`) does the
scheduling (dependencies, resume) on top of it. Both executors give every task a fresh start: the
function itself seeds everything from the task's seed, and each worker uses one torch thread, so a
run's numbers do not depend on which worker, or which backend, ran it.

* :class:`LocalExecutor`: ``concurrent.futures.ProcessPoolExecutor`` with the ``spawn`` start method
  (no state inherited from the parent), one thread per worker (``torch.set_num_threads(1)``, and the
  OpenMP/OpenBLAS/MKL pools set to 1 before numpy and torch load: about 10% faster with 2 workers on
  2 cores than letting each worker start its own pool), SIGINT ignored
  in the workers (the parent decides what Ctrl-C means), and workers that die with their parent (so a
  killed benchmark leaves no orphan writing into a run directory): on Linux the kernel sends them
  SIGKILL when the parent dies (``prctl(PR_SET_PDEATHSIG)``, within milliseconds); elsewhere, and as a
  second line, a watchdog thread polls ``os.getppid()`` every :data:`WATCHDOG_INTERVAL` seconds.
* :class:`RayExecutor`: one Ray task per run (``num_cpus=1``); ``address`` connects to a running
  cluster (``"auto"``), otherwise a local Ray instance with ``workers`` CPUs is started. On a cluster
  the output folder must be on a file system every node sees.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection
from concurrent import futures
from typing import Any

from rltransfer.errors import ConfigError, MissingDependencyError

__all__ = ["BACKENDS", "Executor", "LocalExecutor", "RayExecutor", "check_backend", "make_executor"]

BACKENDS = ("local", "ray")

TaskFn = Callable[[Any], Any]


class Executor(ABC):
    """Runs ``fn(arg)`` tasks on ``workers`` parallel slots.

    Args:
        workers: how many tasks may run at once (the caller never submits more).
    """

    name = "executor"

    def __init__(self, workers: int) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ConfigError(f"workers must be a positive integer, got {workers!r}")
        self.workers = workers

    @abstractmethod
    def submit(self, fn: TaskFn, arg: Any) -> Any:
        """Start ``fn(arg)``; return a handle."""

    @abstractmethod
    def wait(self, handles: Collection[Any], timeout: float | None = None) -> list[Any]:
        """Block until one of ``handles`` is finished (or ``timeout`` seconds); return the finished ones."""

    @abstractmethod
    def result(self, handle: Any) -> Any:
        """The return value of a finished task (re-raises the task's exception)."""

    @abstractmethod
    def shutdown(self, kill: bool = False) -> None:
        """Release the workers; with ``kill`` stop tasks in flight at once (their runs are lost)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        self.shutdown(kill=exc_type is not None)


# ------------------------------------------------------------------------------------------------ local


#: Seconds between two checks of the watchdog (the fallback where ``PR_SET_PDEATHSIG`` is unavailable).
WATCHDOG_INTERVAL = 0.2

_PR_SET_PDEATHSIG = 1


def _watch_parent(parent: int, interval: float = WATCHDOG_INTERVAL) -> None:
    while True:
        time.sleep(interval)
        if os.getppid() != parent:  # re-parented: the benchmark process is gone
            os._exit(1)


def die_with_parent() -> bool:
    """Ask the Linux kernel to SIGKILL this process when its parent dies; ``False`` where unsupported.

    (The signal follows the parent *thread* that forked this process; the pool starts its workers from
    the thread that submits tasks, the benchmark's main thread.)
    """
    if not os.uname().sysname == "Linux":
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


#: Thread pools of the numerical libraries, pinned in every worker before they load (with several workers
#: on few cores, an OpenBLAS or OpenMP pool per worker oversubscribes the CPU and slows every run).
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _init_worker(threads: int, parent: int) -> None:
    """Initializer of every local worker process (it is this process's own environment that is changed)."""
    die_with_parent()
    if os.getppid() != parent:  # the parent died before the death signal was armed
        os._exit(1)
    for var in THREAD_VARS:
        os.environ[var] = str(threads)
    import torch

    torch.set_num_threads(threads)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.getLogger().addHandler(logging.NullHandler())  # no "last resort" lines across the progress bar
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True, name="parent-watchdog").start()


class LocalExecutor(Executor):
    """A pool of ``workers`` fresh Python processes on this machine (start method ``spawn``).

    Args:
        workers: number of worker processes.
        threads: torch CPU threads per worker (1: fastest for small networks, and reproducible).
    """

    name = "local"

    def __init__(self, workers: int, threads: int = 1) -> None:
        super().__init__(workers)
        self._pool = futures.ProcessPoolExecutor(
            max_workers=workers, mp_context=mp.get_context("spawn"), initializer=_init_worker,
            initargs=(threads, os.getpid()),
        )

    def submit(self, fn: TaskFn, arg: Any) -> futures.Future[Any]:
        return self._pool.submit(fn, arg)

    def wait(self, handles: Collection[Any], timeout: float | None = None) -> list[Any]:
        done, _ = futures.wait(list(handles), timeout=timeout, return_when=futures.FIRST_COMPLETED)
        return list(done)

    def result(self, handle: Any) -> Any:
        return handle.result()

    def shutdown(self, kill: bool = False) -> None:
        if kill:
            # ProcessPoolExecutor has no public way to stop running tasks before Python 3.14.
            for proc in list(getattr(self._pool, "_processes", {}).values()):
                if proc.is_alive():
                    proc.terminate()
        self._pool.shutdown(wait=True, cancel_futures=True)


# -------------------------------------------------------------------------------------------------- ray


def _ray_call(fn: TaskFn, arg: Any, threads: int) -> Any:
    import torch

    torch.set_num_threads(threads)
    return fn(arg)


class RayExecutor(Executor):
    """One Ray task (``num_cpus=1``) per run.

    Args:
        workers: how many runs the caller keeps in flight.
        address: a Ray cluster to connect to (``"auto"`` or ``"ray://host:port"``); ``None`` starts a local
            Ray instance with ``workers`` CPUs (and stops it at shutdown).
        threads: torch CPU threads per task.

    Raises:
        MissingDependencyError: ``ray`` is not installed.
    """

    name = "ray"

    def __init__(self, workers: int, address: str | None = None, threads: int = 1) -> None:
        super().__init__(workers)
        try:
            import ray
        except ImportError as exc:
            raise MissingDependencyError(
                "the Ray backend needs the 'ray' package: pip install 'rltransfer[ray]'"
            ) from exc
        self._ray = ray
        self._started = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if address is None:
                kwargs["num_cpus"] = workers
            ray.init(address=address, **kwargs)
            self._started = True
        self._remote = ray.remote(num_cpus=1, max_retries=0)(_ray_call)
        self._threads = threads
        self._pending: set[Any] = set()

    def submit(self, fn: TaskFn, arg: Any) -> Any:
        ref = self._remote.remote(fn, arg, self._threads)
        self._pending.add(ref)
        return ref

    def wait(self, handles: Collection[Any], timeout: float | None = None) -> list[Any]:
        done, _ = self._ray.wait(list(handles), num_returns=1, timeout=timeout)
        return list(done)

    def result(self, handle: Any) -> Any:
        self._pending.discard(handle)
        return self._ray.get(handle)

    def shutdown(self, kill: bool = False) -> None:
        if kill:
            for ref in self._pending:
                self._ray.cancel(ref, force=True)
        self._pending.clear()
        if self._started:
            self._ray.shutdown()
            self._started = False


def check_backend(backend: str, address: str | None = None) -> None:
    """Fail early (before any output is written) on a backend that cannot be used as asked.

    Raises:
        UnknownNameError: an unknown backend.
        ConfigError: ``address`` given for the local backend.
        MissingDependencyError: ``"ray"`` without ray installed.
    """
    from rltransfer.errors import unknown_name

    if backend not in BACKENDS:
        raise unknown_name("executor backend", backend, BACKENDS)
    if backend == "local" and address is not None:
        raise ConfigError(f"--address {address!r} is for the Ray backend; add --backend ray")
    if backend == "ray":
        try:
            import ray  # noqa: F401
        except ImportError as exc:
            raise MissingDependencyError(
                "the Ray backend needs the 'ray' package: pip install 'rltransfer[ray]'"
            ) from exc


def make_executor(backend: str, workers: int, address: str | None = None, threads: int = 1) -> Executor:
    """The executor for a backend name (``"local"`` or ``"ray"``).

    Raises:
        UnknownNameError: an unknown backend.
        ConfigError: ``address`` given for the local backend.
        MissingDependencyError: ``"ray"`` without ray installed.
    """
    check_backend(backend, address)
    if backend == "local":
        return LocalExecutor(workers, threads)
    return RayExecutor(workers, address, threads)
