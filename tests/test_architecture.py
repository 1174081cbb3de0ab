"""The layering DESIGN section 1 asks for, checked on the source: no import cycle anywhere,
and the CLI and the HTTP server thin front ends that reach the runtime through the Engine
only."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"dsl": "aiosrun.dsl", "runtime": "aiosrun.runtime", "adapters": "aiosrun.adapters"}


def modules() -> dict[str, Path]:
    found = {}
    for folder, package in PACKAGES.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([package, *parts])] = path
    return found


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every module of the project that ``name`` imports, wherever the import stands (inside
    functions and ``if TYPE_CHECKING:`` too): each is a dependency of the design."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for alias in node.names:
                submodule = f"{module}.{alias.name}"
                found.add(submodule if submodule in known else module)
    return {m for m in found if m in known and m != name}


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports(name, path, set(found)) for name, path in found.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in edges:
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
                    work.append((child, iter(sorted(edges[child]))))
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
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_between_modules() -> None:
    edges = graph()
    assert len(edges) > 60  # the walk found the tree
    assert cycles(edges) == []


@pytest.mark.parametrize("front", ["aiosrun.runtime.cli", "aiosrun.runtime.server",
                                   "aiosrun.runtime.mcp"])
def test_front_ends_reach_the_runtime_through_the_engine(front: str) -> None:
    edges = graph()
    forbidden = ("aiosrun.runtime.log", "aiosrun.runtime.coordinator")
    reached = {(module, target) for module, targets in edges.items()
               if module.startswith(front) for target in targets
               if target.startswith(forbidden)}
    assert reached == set()
    assert any("aiosrun.runtime.engine" in targets for module, targets in edges.items()
               if module.startswith(front))


def test_the_cli_does_not_load_the_web_stack_at_start_up() -> None:
    """Only `serve` (when it serves HTTP) imports the server package, inside its body."""
    edges = graph()
    cli_modules = [m for m in edges if m.startswith("aiosrun.runtime.cli")]
    for module in cli_modules:
        tree = ast.parse(modules()[module].read_text("utf-8"))
        top_level = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        for node in top_level:
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""])
            assert not any(n.startswith(("aiosrun.runtime.server", "starlette", "hypercorn",
                                         "standardwebhooks")) for n in names), module


def test_the_import_walk_sees_imports_inside_functions(tmp_path: Path) -> None:
    source = tmp_path / "mod.py"
    source.write_text("def f():\n    from .other import thing\n", "utf-8")
    assert imports("pkg.mod", source, {"pkg.other", "pkg.mod"}) == {"pkg.other"}
