"""The package's internal import graph, by pipeline stage.

Run ``python tests/import_graph.py`` to print it (folder -> folders it
imports); ``tests/test_layout.py`` checks it: no circle, twins import plans
only, and no module imports a later stage (except through the top-level
``medfuse`` re-exports, which are the kernels). Imports inside functions
count: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "python" / "medfuse"

# Pipeline order: a module may import its own stage and earlier ones.
STAGES = {
    "medfuse._core": 0,
    "medfuse.kernels": 0,
    "medfuse.reference": 1,
    "medfuse.data": 2,
    "medfuse.restore": 3,
    "medfuse.segment": 3,
    "medfuse.features": 4,
    "medfuse.annotate": 4,
    "medfuse.nn": 5,
    "medfuse.learn": 5,
    "medfuse.extract": 6,
    "medfuse.bench": 6,
    "medfuse.cli": 7,
    "medfuse.__main__": 7,
    "medfuse": 0,  # the top-level package: kernels re-exported, the rest lazy
}


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(mod: str, is_pkg: bool, node: ast.ImportFrom) -> list[str]:
    if node.level == 0:
        base = node.module or ""
    else:
        parts = mod.split(".")
        if not is_pkg:
            parts = parts[:-1]
        parts = parts[: len(parts) - (node.level - 1)]
        base = ".".join(parts + ([node.module] if node.module else []))
    if not base.startswith("medfuse"):
        return []
    out = []
    for alias in node.names:
        sub = f"{base}.{alias.name}"
        where = PACKAGE.parent / Path(*sub.split("."))
        is_module = (where.with_suffix(".py").exists() or where.with_suffix(".pyi").exists()
                     or (where / "__init__.py").exists())
        out.append(sub if is_module else base)
    return out


def edges() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for path in sorted(PACKAGE.rglob("*.py")):
        mod = module_name(path)
        graph[mod]
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                graph[mod].update(a.name for a in node.names if a.name.startswith("medfuse"))
            elif isinstance(node, ast.ImportFrom):
                graph[mod].update(_resolve(mod, path.name == "__init__.py", node))
        graph[mod].discard(mod)
    return dict(graph)


def stage(mod: str) -> tuple[str, int]:
    best = max((k for k in STAGES if mod == k or mod.startswith(k + ".")), key=len)
    return best, STAGES[best]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Circles among the package's modules (the top-level package excluded:
    everything may use ``import medfuse`` for the kernels)."""
    found, state, stack = [], {}, []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph.get(m, ())):
            if n == "medfuse" or n not in graph:
                continue
            if state.get(n) == 1:
                found.append(stack[stack.index(n):] + [n])
            elif n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state and m != "medfuse":
            visit(m)
    return found


def folder_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = defaultdict(set)
    for m, deps in graph.items():
        for d in deps:
            a, b = stage(m)[0], stage(d)[0]
            if a != b:
                out[a].add(b)
    return out


def main() -> int:
    graph = edges()
    for folder, deps in sorted(folder_graph(graph).items(), key=lambda kv: (stage(kv[0])[1], kv[0])):
        print(f"{folder:20s} (stage {stage(folder)[1]}) -> {', '.join(sorted(deps))}")
    circ = cycles(graph)
    print("circles:", circ or "none")
    return 1 if circ else 0


if __name__ == "__main__":
    sys.exit(main())
