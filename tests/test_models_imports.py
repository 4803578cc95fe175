"""The import graph of aidi.models: no cycle, and loading data stays light (no torch, no NAS)."""

import ast
import os
import subprocess
import sys
from pathlib import Path

import aidi.models
from tests.test_nas_data import write_cifar, write_tiny

MODELS = Path(aidi.models.__file__).parent


def module_names() -> dict[str, Path]:
    """``aidi.models...`` dotted name -> source file, for every module under aidi.models."""
    out = {}
    for path in sorted(MODELS.rglob("*.py")):
        parts = path.relative_to(MODELS).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(("aidi", "models", *parts))] = path
    return out


def import_graph() -> dict[str, set[str]]:
    """Edges module -> modules it imports (anywhere in its body, lazy imports included), within aidi.models.

    Importing ``a.b.c`` from outside package ``a.b`` runs ``a/b/__init__.py`` first, so it is an edge to
    ``a.b`` as well.
    """
    mods = module_names()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
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
        for t in targets:
            parts = t.split(".")
            for i in range(3, len(parts) + 1):  # the target and each package above it, up to aidi.models.x
                dep = ".".join(parts[:i])
                if dep in mods and dep != mod and not (mod + ".").startswith(dep + "."):
                    graph[mod].add(dep)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as a list of nodes (first == last), or None."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(graph[n]):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state and (c := visit(m)):
                return c
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state and (c := visit(n)):
            return c
    return None


def test_graph_checker_sees_a_cycle():
    g = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}
    assert find_cycle(g) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_models_import_graph_has_no_cycle():
    graph = import_graph()
    assert "aidi.models.net" in graph["aidi.models.nas.supernet"]  # the checker resolves relative imports
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


LIGHT = """
import sys
import aidi.models.data as d
d.load_dataset("digits", 0)
d.load_dataset("cifar10", 0, data_dir=sys.argv[1])
d.load_dataset("tinyimagenet", 0, (3, 64, 64), data_dir=sys.argv[2])
heavy = sorted(m for m in sys.modules if m == "torch" or m.startswith("aidi.models.nas"))
assert not heavy, heavy
"""


def test_loading_data_imports_neither_torch_nor_nas(tmp_path):
    """In a fresh interpreter, so that what this test session imported does not hide an import."""
    write_cifar(tmp_path / "cifar")
    write_tiny(tmp_path / "tiny")  # JPEGs, decoded by Pillow
    env = {**os.environ, "AIDI_CACHE_DIR": str(tmp_path / "cache")}
    r = subprocess.run([sys.executable, "-c", LIGHT, str(tmp_path / "cifar"), str(tmp_path / "tiny")],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
