"""The import structure: no file imports another that (through any chain) imports it back.

Every ``import`` of a project module counts, at module level or inside a function, outside
``if TYPE_CHECKING:`` blocks (annotations only). A new cycle fails here with its files named; so
does a package that imports one it must stay below (``gmp`` imports nothing of the project;
``study`` never imports ``paper`` or ``benchmarks``; ``paper`` reads results through ``study``'s
records and statistics and never runs a benchmark or trains).
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"study": ROOT / "study", "paper": ROOT / "paper", "baselines": ROOT / "baselines",
            "benchmarks": ROOT / "benchmarks", "gmp": ROOT / "gmp" / "src" / "gmp"}  # fmt: skip

# package -> the project packages it may import.
ALLOWED = {
    "gmp": set(),
    "baselines": {"gmp", "study"},
    "study": {"gmp", "baselines"},
    "paper": {"study"},
    "benchmarks": {"study", "baselines", "gmp"},
}
# The top of the house: the end-to-end study (make -> bench -> analyse -> paper) builds the paper.
TOP = {"study.compare": {"paper"}}
# paper reads results: it never imports what measures, trains or makes models.
PAPER_NEVER = ("study.bench", "study.engines", "study.train", "study.pipeline", "study.compare")


def _module_of(path: Path) -> str:
    for package, base in PACKAGES.items():
        if path.is_relative_to(base):
            parts = path.relative_to(base).with_suffix("").parts
            parts = parts[:-1] if parts[-1] == "__init__" else parts
            return ".".join((package, *parts))
    raise AssertionError(path)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    found: set[str] = set()
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = module.split(".")
                base = base if is_package else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            found.add(name)
            found.update(f"{name}.{alias.name}" for alias in node.names)
        stack.extend(ast.iter_child_nodes(node))
    return found


@pytest.fixture(scope="module")
def graph() -> nx.DiGraph:
    files = {_module_of(p): p for base in PACKAGES.values() for p in base.rglob("*.py")}
    g = nx.DiGraph()
    g.add_nodes_from(files)
    for module, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for name in _imports(tree, module, path.name == "__init__.py"):
            # the longest project module the imported name starts with (a name inside it counts)
            parts = name.split(".")
            target = next(
                (
                    ".".join(parts[:k])
                    for k in range(len(parts), 0, -1)
                    if ".".join(parts[:k]) in files
                ),
                None,
            )
            if target and target != module and not module.startswith(target + "."):
                g.add_edge(module, target)
    return g


def test_the_graph_was_read(graph):
    assert graph.has_edge("study.compare", "study.summary_md")  # a known arrow: the reader works
    assert graph.number_of_nodes() > 100


def test_no_import_cycles_between_files(graph):
    # A package's __init__ re-exporting its own modules is not a cycle of the layout.
    g = graph.copy()
    g.remove_edges_from([(a, b) for a, b in graph.edges if b.startswith(a + ".")])
    cycles = sorted(sorted(c) for c in nx.simple_cycles(g, length_bound=6))
    assert not cycles, f"import cycles: {cycles[:5]}"


def test_packages_import_only_what_they_stand_on(graph):
    bad = []
    for a, b in graph.edges:
        pa, pb = a.split(".")[0], b.split(".")[0]
        if pa != pb and pb not in ALLOWED[pa] | TOP.get(a, set()):
            bad.append(f"{a} -> {b}")
        if pa == "paper" and b.startswith(PAPER_NEVER):
            bad.append(f"{a} -> {b} (paper reads results only)")
    assert not bad, bad
