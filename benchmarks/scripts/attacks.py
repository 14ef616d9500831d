"""Census of the attack tests: run every ``CASES`` entry of ``tests/test_security_*.py`` in one process and
count, per kind of input, how many executed code, half-loaded, exceeded the resource budget, escaped as an
undocumented exception (a traceback on the command line) or hung.

    .venv/bin/python benchmarks/scripts/attacks.py [--json out.json] [--only bundle,files,config]

Goal: 0 in every column but "tried" and "refused/loaded as documented".
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from attacks import KINDS, run_case  # noqa: E402

COLUMNS = ("tried", "as documented", "executed code", "half-loaded", "over budget", "traceback", "hung")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="also write the table and every failure to this file")
    parser.add_argument("--only", help="comma-separated module suffixes (e.g. bundle,files,config)")
    args = parser.parse_args()
    modules = sorted(p.stem for p in (ROOT / "tests").glob("test_security_*.py"))
    if args.only:
        wanted = {f"test_security_{m.strip()}" for m in args.only.split(",")}
        modules = [m for m in modules if m in wanted]
    counts: dict[str, Counter[str]] = {kind: Counter() for kind in KINDS}
    failures: list[str] = []
    start = time.perf_counter()
    for name in modules:
        module = importlib.import_module(name)
        for case in getattr(module, "CASES", []):
            with tempfile.TemporaryDirectory(prefix="rltransfer-attack-") as folder:
                outcome = run_case(case, Path(folder))
            row = counts.setdefault(case.kind, Counter())
            row["tried"] += 1
            row["as documented"] += outcome.ok
            row["executed code"] += outcome.executed_code
            row["half-loaded"] += outcome.half_loaded
            row["over budget"] += outcome.over_budget
            row["traceback"] += outcome.traceback
            row["hung"] += outcome.hung
            if not outcome.ok:
                failures.append(f"{name}: {outcome.describe()}")
    seconds = time.perf_counter() - start
    print("| inputs | " + " | ".join(COLUMNS) + " |")
    print("|---|" + "---|" * len(COLUMNS))
    total: Counter[str] = Counter()
    for kind, row in counts.items():
        if row["tried"]:
            total.update(row)
            print(f"| {kind} | " + " | ".join(str(row[c]) for c in COLUMNS) + " |")
    print("| **all** | " + " | ".join(f"**{total[c]}**" for c in COLUMNS) + " |")
    print(f"\n{len(modules)} modules, {total['tried']} cases in {seconds:.0f} s")
    for line in failures:
        print("FAILED", line)
    if args.json:
        Path(args.json).write_text(json.dumps({"counts": counts, "failures": failures, "seconds": seconds}, indent=1))
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
