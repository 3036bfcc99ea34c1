"""No import cycles between the package's modules.

Every import of a ``mutualctr`` module counts, wherever it is written: at module level, inside
a function, or under ``TYPE_CHECKING``. A function-level import hides a cycle from the
interpreter but not from the reader, and the layering (``files``, ``config``, ``data``,
``models`` below ``training``, ``methods``, ``experiments``, ``commands``) is only real when no
lower module reaches back up.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "mutualctr"


def module_name(path: Path, root: Path) -> str:
    """``root/a/b.py`` -> ``pkg.a.b`` and ``root/a/__init__.py`` -> ``pkg.a``."""
    parts = [root.name, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(node: ast.AST, current: str, is_package: bool, modules: set[str]) -> set[str]:
    """The modules of ``modules`` an import statement depends on.

    ``import a.b`` is an edge to ``a.b`` only (a package means its ``__init__``, not its
    parents); ``from a import b`` is an edge to ``a.b`` when that is a module, else to ``a``.
    """
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names} & modules
    if not isinstance(node, ast.ImportFrom):
        return set()
    base = node.module or ""
    if node.level:  # relative: from the current package, one level up per extra dot
        package = current.split(".") if is_package else current.split(".")[:-1]
        package = package[: len(package) - node.level + 1]
        base = ".".join([*package, base] if base else package)
    found = set()
    for alias in node.names:
        submodule = f"{base}.{alias.name}"
        found.add(submodule if submodule in modules else base)
    return found & modules


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports, for every ``.py`` file under ``root``."""
    files = {module_name(path, root): path for path in sorted(root.rglob("*.py"))}
    modules = set(files)
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        is_package = path.name == "__init__.py"
        graph[name] = set().union(
            *(_imported(node, name, is_package, modules) for node in ast.walk(tree))
        ) - {name}
    return graph


def find_cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """One shortest cycle (``[a, b, ..., a]``) per strongly connected component that has one.

    Tarjan's algorithm finds the components; a breadth-first search inside each, from its
    smallest name, gives the cycle to show.
    """
    edges = {node: sorted(set(targets)) for node, targets in graph.items()}
    for targets in list(edges.values()):
        for target in targets:
            edges.setdefault(target, [])
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges[node]:
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            components.append(component)

    for node in sorted(edges):
        if node not in index:
            connect(node)
    cycles = []
    for component in components:
        start = min(component)
        if len(component) > 1 or start in edges[start]:
            cycles.append(_shortest_cycle(edges, component, start))
    return sorted(cycles)


def _shortest_cycle(edges: Mapping[str, list[str]], component: set[str], start: str) -> list[str]:
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for target in edges[node]:
                if target == start:  # back at the start: walk the way there backwards
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [*reversed(path), start]
                if target in component and target not in previous:
                    previous[target] = node
                    following.append(target)
        frontier = following
    raise ValueError(f"{sorted(component)} is not a cycle")


def test_find_cycles_on_a_hand_made_graph() -> None:
    graph = {"a": {"b"}, "b": {"c", "d"}, "c": {"a"}, "d": set(), "e": {"e"}, "f": {"a"}}
    assert find_cycles(graph) == [["a", "b", "c", "a"], ["e", "e"]]
    assert find_cycles({"a": {"b"}, "b": {"c"}, "d": {"a", "c"}}) == []
    # two loops through one component: the shortest one through its smallest module is shown
    assert find_cycles({"x": {"y"}, "y": {"z", "x"}, "z": {"x"}}) == [["x", "y", "x"]]


def test_import_graph_counts_every_import_and_resolves_submodules(tmp_path: Path) -> None:
    root = tmp_path / "pkg"
    (root / "sub").mkdir(parents=True)
    sources = {
        "__init__.py": "",
        "sub/__init__.py": "from pkg.sub.leaf import VALUE\n",
        "sub/leaf.py": "VALUE = 1\n",
        "low.py": (
            "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from pkg.high import High\n"
        ),
        "high.py": (
            "import os\nimport pkg.sub\nfrom pkg import low\nfrom . import mid\n"
            "def f():\n    from pkg.sub import VALUE\n    return VALUE\n"
        ),
        "mid.py": "def g():\n    from .sub.leaf import VALUE\n    return VALUE\n",
    }
    for name, text in sources.items():
        (root / name).write_text(text)
    graph = import_graph(root)
    assert graph == {
        "pkg": set(),
        "pkg.sub": {"pkg.sub.leaf"},
        "pkg.sub.leaf": set(),
        "pkg.low": {"pkg.high"},
        "pkg.high": {"pkg.sub", "pkg.low", "pkg.mid"},
        "pkg.mid": {"pkg.sub.leaf"},
    }
    assert find_cycles(graph) == [["pkg.high", "pkg.low", "pkg.high"]]


def test_no_import_cycles() -> None:
    cycles = find_cycles(import_graph(SRC))
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


COMMAND_LINE = ("mutualctr.cli", "mutualctr.cli_config", "mutualctr.commands", "mutualctr.__main__")


def _command_line(module: str) -> bool:
    return any(module == top or module.startswith(f"{top}.") for top in COMMAND_LINE)


def test_the_library_imports_nothing_from_the_command_line() -> None:
    """The command line sits on top: no library module (experiments, tuning, methods ...)
    imports ``cli``, ``cli_config`` or a command, so everything a command does is callable
    from Python without it."""
    graph = import_graph(SRC)
    found = sorted(f"{module} -> {target}" for module, targets in graph.items()
                   if not _command_line(module) for target in targets if _command_line(target))
    assert not found, "library modules importing the command line:\n" + "\n".join(found)


def test_experiments_parse_no_command_line() -> None:
    """An experiment declares its shorthand flags as data (``experiments.base.Flag``); the
    parsers are built on the command-line side, so no module under ``experiments`` imports
    ``argparse``, nor any of the command line's modules."""
    graph = import_graph(SRC)
    experiments = sorted(m for m in graph if m.split(".")[:2] == ["mutualctr", "experiments"])
    assert "mutualctr.experiments.engine" in experiments
    found = [f"{m} -> {t}" for m in experiments for t in sorted(graph[m]) if _command_line(t)]
    for module in experiments:
        path = SRC.joinpath(*module.split(".")[1:])
        path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                    if isinstance(node, ast.Import) for alias in node.names}
        imported |= {(node.module or "").split(".")[0] for node in ast.walk(tree)
                     if isinstance(node, ast.ImportFrom) and not node.level}
        found += [f"{module} -> argparse"] if "argparse" in imported else []
    assert not found, "experiments importing the command line:\n" + "\n".join(found)
