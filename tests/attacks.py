"""Shared machinery of the tests that attack rltransfer's loaders (``tests/test_security_*.py``).

Each attack module lists its inputs as :class:`AttackCase` values in a module-level ``CASES`` list; its
tests run them through :func:`run_case` and assert :attr:`Outcome.ok`. ``benchmarks/scripts/attacks.py``
runs every module's ``CASES`` in one process and tabulates the outcomes (the security issue's census:
executed code, half-loaded, over budget, traceback, hung).

A payload never does harm: it only creates the file named by :func:`sentinel`, so "did it run?" is
"does the sentinel exist?".
"""

from __future__ import annotations

import os
import resource
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rltransfer.errors import RLTransferError

#: Kinds of attack, as the census counts them.
KINDS = ("hostile", "damaged", "config", "valid")

#: Wall-clock budget of one case: anything slower counts as hung.
CASE_SECONDS = 20.0
#: Peak-RSS growth budget of one case (bytes).
CASE_RSS_BYTES = 1 << 30


@dataclass(frozen=True)
class AttackCase:
    """One input and the public loader it is fed to.

    Attributes:
        kind: ``hostile`` (crafted to run code, escape a folder or exhaust resources), ``damaged``
            (truncated, bit-flipped, edited), ``config`` (a mutated config value) or ``valid`` (a control
            that must load).
        name: a readable id (used as the pytest id).
        build: writes the input into the given empty folder and returns the path to load.
        load: the loader under attack, called with that path.
        expect: the error class the loader must raise (``None``: it must load without error).
    """

    kind: str
    name: str
    build: Callable[[Path], Path]
    load: Callable[[Path], Any]
    expect: type[BaseException] | None = RLTransferError


@dataclass
class Outcome:
    """What happened when a case ran."""

    case: AttackCase
    error: BaseException | None
    seconds: float
    rss_growth: int
    executed_code: bool

    @property
    def refused(self) -> bool:
        return self.error is not None and isinstance(self.error, RLTransferError)

    @property
    def half_loaded(self) -> bool:
        """A case that should have been refused but loaded."""
        return self.case.expect is not None and self.error is None

    @property
    def traceback(self) -> bool:
        """An error that is not one of rltransfer's documented ones (the CLI would print a traceback)."""
        return self.error is not None and not isinstance(self.error, RLTransferError)

    @property
    def hung(self) -> bool:
        return self.seconds > CASE_SECONDS

    @property
    def over_budget(self) -> bool:
        return self.rss_growth > CASE_RSS_BYTES

    @property
    def ok(self) -> bool:
        if self.executed_code or self.traceback or self.hung or self.over_budget:
            return False
        if self.case.expect is None:
            return self.error is None
        return isinstance(self.error, self.case.expect)

    def describe(self) -> str:
        err = f"{type(self.error).__name__}: {str(self.error)[:300]}" if self.error else "no error"
        return (
            f"{self.case.kind}/{self.case.name}: {err}; {self.seconds:.2f}s; "
            f"+{self.rss_growth / 2**20:.0f} MiB; executed_code={self.executed_code}"
        )


def sentinel(folder: Path) -> Path:
    """The file a payload creates to prove it ran (inside the case's folder)."""
    return Path(folder) / "PAYLOAD_RAN"


def payload_source(folder: Path) -> str:
    """Python source that creates the sentinel of ``folder`` (what hostile files try to get run)."""
    return f"open({str(sentinel(folder))!r}, 'w').write('ran')"


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


class _Timeout(BaseException):
    pass


def run_case(case: AttackCase, folder: Path, seconds: float = 2 * CASE_SECONDS) -> Outcome:
    """Build the case in ``folder``, feed it to its loader under a wall-clock alarm, and report.

    Peak RSS only grows, so ``rss_growth`` is how much this case raised the process's peak: a case after
    a larger one reports 0 even if it allocated a lot; the census runs cases in order of size-agnostic
    ids, and any case that allocates more than the budget still shows up as the first to reach it.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    target = case.build(folder)
    before = _peak_rss()

    def _alarm(signum: int, frame: Any) -> None:
        raise _Timeout()

    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    start = time.perf_counter()
    error: BaseException | None = None
    try:
        case.load(target)
    except _Timeout:
        error = TimeoutError(f"still running after {seconds}s")
    except Exception as exc:  # the point is to see what escapes
        error = exc
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    elapsed = time.perf_counter() - start
    return Outcome(case, error, elapsed, max(0, _peak_rss() - before), sentinel(folder).exists())


def case_id(case: AttackCase) -> str:
    return f"{case.kind}-{case.name}"


def env_without_pythonpath() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
