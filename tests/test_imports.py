"""The structure drawn from the code's own imports: no cycle among rie_cli modules.

Every `import rie_cli.x` / `from rie_cli.x import y` in a module counts, at top level
or inside a function (a deferred import hides a cycle from Python, not from a reader).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "rie_cli"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # `from rie_cli.pkg import mod` imports the submodule where one exists.
                targets = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                           for a in node.names]
            for target in targets:
                # A package's __init__ re-exporting its own submodules (rie_cli/__init__.py
                # exporting Lifter) is a facade, not a dependency: submodules may use the package.
                facade = path.name == "__init__.py" and target.startswith(name + ".")
                if target in modules and target != name and not facade:
                    graph[name].add(target)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a path [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_finder_sees_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_among_rie_cli_modules():
    graph = import_graph()
    assert "rie_cli.windowing" in graph and graph["rie_cli.export"]  # the graph is really read
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_the_api_sits_above_what_the_commands_share():
    """The loader and the keypoint preparation are below both the API and the commands:
    neither imports a command module or the API (which is what made the cycles)."""
    graph = import_graph()
    above = {"rie_cli.api", "rie_cli.predict", "rie_cli.streaming", "rie_cli.evaluation", "rie_cli.export",
             "rie_cli.render"}
    for shared in ("rie_cli.loading", "rie_cli.lifting"):
        reachable, todo = set(), [shared]
        while todo:
            for nxt in graph[todo.pop()] - reachable:
                reachable.add(nxt)
                todo.append(nxt)
        assert not reachable & above, f"{shared} reaches {sorted(reachable & above)}"
