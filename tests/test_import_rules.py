"""The house's rules on imports, over the whole aidi package (DESIGN.md, "Dependencies point one way").

Between the top-level packages, edges follow :data:`ALLOWED`: analysis -> models -> sim, analysis ->
scenarios -> sim, and analysis -> sim. models and scenarios import nothing of each other: a scenario is
parsed into sim's records (scenarios/loader.py imports nothing of aidi.models), and models take those
records, never a scenario file (no module of models imports aidi.scenarios today, so the rule holds the
line where the code stands). sim imports nothing of aidi outside sim.

Inside every package, its direct children (modules and subpackages) import each other without a cycle:
a subpackage counts as one node, so ``models/schedule -> models/costs -> models/schedule`` is a cycle
even when no single module closes it. Imports inside functions (lazy ones) count: a cycle that only
runs late is still a cycle in the design. ``if TYPE_CHECKING:`` imports count as well.

The graph is read from the source (``ast``), so that nothing is imported; what makes a module part of
aidi is pyproject.toml's list of packages.
"""

import ast
import tomllib
from pathlib import Path

import networkx as nx
import pytest

import aidi

ROOT = Path(aidi.__file__).parent

#: top-level package -> the top-level packages it may import (DESIGN.md: analysis -> models -> sim,
#: scenarios -> sim; analysis owns the CLI and so reads scenarios and drives sim directly)
ALLOWED = {
    "analysis": {"models", "scenarios", "sim"},
    "models": {"sim"},
    "scenarios": {"sim"},
    "sim": set(),
}

#: libraries a top-level package must not import (DESIGN.md: sim knows nothing about torch, models own torch,
#: analysis owns plotly and the CLI); analysis may import any
OWNED_ABOVE = {
    "sim": {"torch", "plotly", "typer", "rich"},
    "scenarios": {"torch", "plotly", "typer", "rich"},
    "models": {"plotly", "typer"},
    "analysis": set(),
}


def module_names(root: Path = ROOT) -> dict[str, Path]:
    """Dotted name -> source file, for every module of the packages pyproject.toml ships (``aidi`` is
    ``root`` itself; a package is its ``__init__.py``)."""
    pyproject = tomllib.loads((root / "pyproject.toml").read_text())
    out = {}
    for pkg in pyproject["tool"]["setuptools"]["packages"]:
        folder = root.joinpath(*pkg.split(".")[1:])
        for path in sorted(folder.glob("*.py")):
            out[pkg if path.name == "__init__.py" else f"{pkg}.{path.stem}"] = path
    return out


def _imported_names(mod: str, path: Path, mods: dict[str, Path]) -> list[str]:
    """Absolute dotted names a module's body imports (anywhere: module level or inside a function),
    relative imports resolved; ``from p import name`` gives ``p.name`` when that is a module, else ``p``."""
    pkg = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    targets = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets += [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
    return targets


def import_graph(mods: dict[str, Path] | None = None) -> nx.DiGraph:
    """Edges module -> aidi modules it imports (see :func:`_imported_names`).

    Importing ``a.b.c`` from outside package ``a.b`` runs ``a/b/__init__.py`` first, so it is an edge to
    ``a.b`` as well; a module's own enclosing packages are not edges (they are loaded before it anyway).
    """
    mods = module_names() if mods is None else mods
    graph = nx.DiGraph()
    graph.add_nodes_from(mods)
    for mod, path in mods.items():
        for t in _imported_names(mod, path, mods):
            parts = t.split(".")
            for i in range(2, len(parts) + 1):  # the target and each package above it, up to aidi.x
                dep = ".".join(parts[:i])
                if dep in mods and dep != mod and not (mod + ".").startswith(dep + "."):
                    graph.add_edge(mod, dep)
    return graph


def children_graph(graph: nx.DiGraph, pkg: str) -> nx.DiGraph:
    """The import graph among ``pkg``'s direct children: each module below ``pkg`` stands for the child
    that holds it (``aidi.models.costs.fast`` is ``aidi.models.costs`` under ``aidi.models``); each edge
    keeps the module edges that make it (attribute ``via``). ``pkg``'s own ``__init__`` is left out."""
    def child(m: str) -> str | None:
        if not m.startswith(pkg + "."):
            return None
        return ".".join(m.split(".")[: pkg.count(".") + 2])

    out = nx.DiGraph()
    out.add_nodes_from({c for m in graph if (c := child(m))})
    for a, b in graph.edges:
        ca, cb = child(a), child(b)
        if ca and cb and ca != cb:
            if not out.has_edge(ca, cb):
                out.add_edge(ca, cb, via=[])
            out.edges[ca, cb]["via"].append(f"{a} -> {b}")
    return out


def packages(mods) -> list[str]:
    """The packages among ``mods`` (a name that another name extends)."""
    return sorted({m for m in mods if any(n.startswith(m + ".") for n in mods)})


def package_cycles(graph: nx.DiGraph, pkg: str) -> list[str]:
    """One line per group of ``pkg``'s direct children that import each other in a cycle (a strongly
    connected component): one cycle through it and, for each of its edges, a module import that makes it."""
    sub = children_graph(graph, pkg)
    found = []
    for group in sorted(sorted(c) for c in nx.strongly_connected_components(sub) if len(c) > 1):
        cycle = nx.find_cycle(sub.subgraph(group))
        why = "; ".join(sub.edges[a, b]["via"][0] for a, b in cycle)
        found.append(" -> ".join([a for a, _ in cycle] + [cycle[0][0]]) + f" ({why})")
    return found


def direction_violations(graph: nx.DiGraph) -> list[str]:
    """Every module edge between top-level packages that :data:`ALLOWED` does not allow."""
    def top(m: str) -> str | None:
        parts = m.split(".")
        return parts[1] if len(parts) > 1 else None

    return sorted(f"{a} -> {b}" for a, b in graph.edges
                  if top(a) and top(b) and top(a) != top(b) and top(b) not in ALLOWED[top(a)])


def library_violations(mods: dict[str, Path]) -> list[str]:
    """Every import of a library that :data:`OWNED_ABOVE` keeps out of the importing module's package."""
    return sorted({f"{m} imports {lib}" for m, path in mods.items() if m.count(".")
                   for lib in (t.split(".")[0] for t in _imported_names(m, path, mods))
                   if lib in OWNED_ABOVE[m.split(".")[1]]})


@pytest.fixture(scope="module")
def graph() -> nx.DiGraph:
    return import_graph()


def test_the_graph_covers_the_package_and_resolves_every_import_form(graph):
    tops = {m.split(".")[1] for m in graph if m.count(".") >= 1}
    assert tops == set(ALLOWED)  # every top-level package is ruled on, and no other is read
    assert "aidi.models.net" in graph["aidi.models.nas.supernet"]  # relative, `from .. import x`
    assert "aidi.sim.config" in graph["aidi.scenarios.loader"]  # absolute, `from aidi.sim.config import`
    assert "aidi.sim" in graph["aidi.scenarios.loader"]  # ... which runs aidi/sim/__init__.py first
    assert "aidi.models.schedule.plan" in graph["aidi.analysis.nas_run"]  # an import inside a function


def test_checker_sees_a_cycle_between_subpackages_that_no_module_closes():
    mods = {"aidi.x": None, "aidi.x.p": None, "aidi.x.p.a": None, "aidi.x.q": None, "aidi.x.q.b": None,
            "aidi.x.q.c": None}
    g = nx.DiGraph([("aidi.x.p.a", "aidi.x.q.b"), ("aidi.x.q.c", "aidi.x.p.a")])
    g.add_nodes_from(mods)
    assert nx.is_directed_acyclic_graph(g)
    assert packages(mods) == ["aidi.x", "aidi.x.p", "aidi.x.q"]
    (line,) = package_cycles(g, "aidi.x")
    assert "aidi.x.p.a -> aidi.x.q.b" in line and "aidi.x.q.c -> aidi.x.p.a" in line
    assert package_cycles(g, "aidi.x.p") == package_cycles(g, "aidi.x.q") == []  # no cycle inside either
    g.remove_edge("aidi.x.q.c", "aidi.x.p.a")
    assert package_cycles(g, "aidi.x") == []


def test_checker_sees_a_wrong_direction():
    g = nx.DiGraph([("aidi.sim.a", "aidi.models.b"), ("aidi.models.b", "aidi.sim.a"),
                    ("aidi.scenarios.c", "aidi.models.b"), ("aidi.analysis.d", "aidi.scenarios.c")])
    assert direction_violations(g) == ["aidi.scenarios.c -> aidi.models.b", "aidi.sim.a -> aidi.models.b"]


def test_imports_between_top_level_packages_point_one_way(graph):
    bad = direction_violations(graph)
    assert not bad, "imports against analysis -> models -> sim, analysis -> scenarios -> sim:\n" + "\n".join(bad)


#: packages with a known cycle, each marked strict: the test fails once the cycle is gone, so the mark goes
KNOWN_CYCLES: dict[str, str] = {}


def test_torch_plotly_and_the_cli_stay_in_the_packages_that_own_them():
    assert library_violations(module_names()) == []
    mods = {"aidi.sim.x": Path(aidi.__file__).parent / "models" / "net.py"}  # a torch module, read as if in sim
    assert library_violations(mods) == ["aidi.sim.x imports torch"]


@pytest.mark.parametrize("pkg", [pytest.param(p, marks=pytest.mark.xfail(reason=KNOWN_CYCLES[p], strict=True))
                                 if p in KNOWN_CYCLES else p for p in packages(module_names())])
def test_no_import_cycle_inside_a_package(graph, pkg):
    cycles = package_cycles(graph, pkg)
    assert not cycles, f"import cycles among the children of {pkg}:\n" + "\n".join(cycles)
