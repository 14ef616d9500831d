"""Every subcommand with its mistakes (the table in ``benchmarks/scripts/cli_mistakes.py``): each exits 2
(130 for an interrupt) with one line on stderr naming the thing, no traceback, nothing half-written."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "scripts" / "cli_mistakes.py"


def _script():
    spec = importlib.util.spec_from_file_location("cli_mistakes", SCRIPT)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules["cli_mistakes"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> list:
    mp = pytest.MonkeyPatch()
    try:
        return _script().run_all(tmp_path_factory.mktemp("mistakes"), mp)
    finally:
        mp.undo()


def test_every_mistake_is_one_clear_line_and_leaves_nothing(outcomes: list) -> None:
    bad = [f"{' '.join(o.case.argv)} -> exit {o.code}, stderr {o.stderr.strip()!r}, "
           f"{'traceback ' + o.traceback.strip().splitlines()[-1] if o.traceback else ''} residue {o.residue[:5]}"
           for o in outcomes if not o.ok]
    assert not bad, "\n".join(bad)


def test_the_matrix_covers_every_subcommand(outcomes: list) -> None:
    from rltransfer.cli import build_parser

    commands = set(build_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    assert commands <= {o.case.command for o in outcomes}
    assert len(outcomes) >= 70


def test_a_full_disk_fails_the_run_in_its_status(outcomes: list) -> None:
    full = [o for o in outcomes if o.case.notes.startswith("every write")]
    assert full and all(o.code == 2 and "disk full" in o.stderr for o in full)
