"""The module graph of rltransfer: no import cycles, read from the source with ``ast``.

Every import of an rltransfer module counts, wherever it is written: at the top of a module, inside a
function (a "lazy" import is still a dependency) or under ``if TYPE_CHECKING:``. ``rltransfer/__init__.py``
is left out: it is a façade whose ``__getattr__`` re-exports the public functions lazily, so every module
importing ``rltransfer`` (``from rltransfer import __version__``) would otherwise close a cycle through it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "rltransfer"
MODULES = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")


def _imports(path: Path) -> set[str]:
    """Names of the rltransfer modules that ``path`` imports anywhere (``__init__`` excluded)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("rltransfer.")}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "rltransfer":  # from rltransfer import config, resources, __version__
                found |= {a.name for a in node.names if (PACKAGE / f"{a.name}.py").is_file()}
            elif node.module.startswith("rltransfer."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.ImportFrom) and node.level > 0:  # from .x import y, from . import x
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found |= {a.name for a in node.names if (PACKAGE / f"{a.name}.py").is_file()}
    return found - {"__init__", path.stem}


def import_graph() -> dict[str, set[str]]:
    """``{module: modules it imports}`` over the package's modules."""
    return {name: _imports(PACKAGE / f"{name}.py") & set(MODULES) for name in MODULES}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as ``[a, b, ..., a]``, or None (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for root in sorted(graph):
        if state.get(root):
            continue
        path: list[str] = [root]
        stack = [iter(sorted(graph[root]))]
        state[root] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph[nxt])))
    return None


def test_find_cycle_on_tiny_graphs() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"a"}}) == ["a", "a"]


def test_reads_function_level_imports(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text(
        "from rltransfer.config import x\n"
        "def f():\n    import rltransfer.bundle\n    from rltransfer import zoo, __version__\n"
    )
    assert _imports(tmp_path / "m.py") == {"config", "bundle", "zoo"}


def test_no_import_cycles() -> None:
    graph = import_graph()
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle between rltransfer modules: " + " -> ".join(cycle or [])


@pytest.mark.parametrize("module", ["sb3layout", "errors", "limits"])
def test_foundation_modules_import_no_higher_layer(module: str) -> None:
    """The SB3 layout knowledge and the error/limit modules sit at the bottom of the graph."""
    allowed = {"errors", "limits"}
    assert import_graph()[module] <= allowed, f"{module} imports {sorted(import_graph()[module] - allowed)}"


def test_report_reads_the_analysis_not_the_runner() -> None:
    assert "benchmark" not in import_graph()["report"]
    assert "benchmark" not in import_graph()["analysis"]


def test_plan_and_strategies_sit_below_transfer() -> None:
    """The plan knows no strategy (it calls their hooks duck-typed) and neither knows the transfer run."""
    graph = import_graph()
    assert not graph["plan"] & {"strategies", "transfer"}
    assert "transfer" not in graph["strategies"]


def test_transfer_reexports_the_plan_and_strategy_names() -> None:
    """``from rltransfer.transfer import X`` keeps working for every name moved to plan.py/strategies.py."""
    import importlib

    from rltransfer import plan, strategies

    transfer = importlib.import_module("rltransfer.transfer")  # rltransfer.transfer is the function

    for module in (plan, strategies):
        moved = [n for n, v in vars(module).items() if not n.startswith("_")
                 and getattr(v, "__module__", None) == module.__name__]
        assert moved, module.__name__
        for name in moved:
            assert getattr(transfer, name, None) is getattr(module, name), f"{module.__name__}.{name}"
            assert name in transfer.__all__, name
