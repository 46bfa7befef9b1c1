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
PAPER_NEVER = (
    "study.bench",
    "study.engines",
    "study.make.train",
    "study.variants",
    "study.compare",
)


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
    assert graph.has_edge(
        "study.compare", "study.analysis.markdown"
    )  # a known arrow: the reader works
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


# Inside study, the stages a newcomer reads top-down: a module imports only its own room or the
# rooms below it (a lower rank). Rooms of one rank do not import each other.
STUDY_RANKS = {
    "study.records": 0,  # what a run writes and reads back
    "study.onnx": 0,  # facts about ONNX files
    "study.engines": 1,  # one adapter per engine
    "study.stats": 1,  # estimators over rows
    "study.bench": 2,  # the harness
    "study.make": 2,  # data, models, training, export, QAT
    "study.config": 3,  # presets and the design they declare
    "study.design": 3,
    "study.toolchains": 3,
    "study.presets": 3,  # the presets' YAML files
    "study.variants": 4,  # make every variant's files
    "study.analysis": 4,  # analyse a run's results
    "study.compare": 5,  # the commands
    "study.replication": 5,
    "study.variance": 5,
    "study.check": 5,
}
PLAN = {
    "study.config",
    "study.design",
    "study.toolchains",
    "study.presets",
}  # one room: what a preset asks for


def _room(module: str) -> str | None:
    for room in STUDY_RANKS:
        if module == room or module.startswith(room + "."):
            return room
    return None


def test_every_study_module_has_a_room(graph):
    homeless = [m for m in graph if m.startswith("study.") and _room(m) is None]
    assert not homeless, f"give these a room in STUDY_RANKS: {homeless}"


def test_study_imports_only_go_down(graph):
    bad = []
    for a, b in graph.edges:
        ra, rb = _room(a), _room(b)
        if ra is None or rb is None or ra == rb or {ra, rb} <= PLAN:
            continue
        if STUDY_RANKS[rb] >= STUDY_RANKS[ra]:
            bad.append(f"{a} (rank {STUDY_RANKS[ra]}) -> {b} (rank {STUDY_RANKS[rb]})")
    assert not bad, bad


def test_baselines_sit_between_making_and_the_variants(graph):
    # baselines stands on study's lower rooms (the loop, export, QAT, records) and registers its
    # toolchains there; only study's upper rooms (variants, analysis, commands) import it.
    bad = []
    for a, b in graph.edges:
        if a.startswith("study.") and b.split(".")[0] == "baselines" and STUDY_RANKS[_room(a)] < 4:
            bad.append(f"{a} -> {b} (study's lower rooms never import baselines)")
        if a.startswith("baselines") and _room(b) is not None and STUDY_RANKS[_room(b)] > 2:
            bad.append(f"{a} -> {b} (baselines imports only study's rooms of rank <= 2)")
    assert not bad, bad


def test_the_rank_check_finds_an_upward_import(graph):
    g = graph.copy()
    g.add_edge("study.records.schema", "study.bench.run")  # made up: records importing the harness
    with pytest.raises(AssertionError, match="study.records.schema"):
        test_study_imports_only_go_down(g)
