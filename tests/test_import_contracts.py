"""The package's shape: rooms import only rooms below them (setup.cfg [importlinter]) and no
module imports one that imports it back, not even inside a function or under TYPE_CHECKING."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Dict, List, Set

import grimp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_the_layer_contract_is_kept() -> None:
    lint = os.path.join(os.path.dirname(sys.executable), "lint-imports")
    result = subprocess.run([lint, "--config", os.path.join(ROOT, "setup.cfg")], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def _cycles(edges: Dict[str, Set[str]]) -> List[List[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    found: List[List[str]] = []
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_imports_one_that_imports_it_back() -> None:
    graph = grimp.build_graph("triplit_sync")
    edges = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    assert _cycles(edges) == []


def test_no_room_imports_another_rooms_private_module() -> None:
    """A room's `_private` modules are its own; other rooms import what its __init__ exports."""
    graph = grimp.build_graph("triplit_sync")

    def room(module: str) -> str:
        return module.split(".")[1] if module.count(".") else ""

    crossing = sorted(
        f"{m} -> {t}" for m in graph.modules for t in graph.find_modules_directly_imported_by(m)
        if t.count(".") >= 2 and t.split(".")[2].startswith("_") and room(m) != room(t))
    assert crossing == []
