"""The house drawn from the imports: every module of ``harness`` imports only from its own
subpackage or from those below it (DESIGN.md, "Layout"), and no import cycle exists.

Read from the source with ``ast`` (every import, at module level or inside a function), so the test
sees the imports a lazy ``import`` inside a function would hide from ``sys.modules``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "harness"

# top to bottom; a module may import from its own layer's package and from any layer below
LAYERS = [
    ("harness",),  # the public API (__init__), cli.py and __main__.py
    ("harness.execution",),
    ("harness.analysis",),
    ("harness.tracking",),
    ("harness.study",),
    ("harness.evaluation", "harness.learners"),  # side by side: neither imports the other
    ("harness.exact",),
    ("harness.models",),
    ("harness.data",),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def harness_imports(path: Path) -> set[str]:
    """The harness modules that ``path`` imports (``from harness.x import y`` counts as harness.x,
    or harness.x.y where that is a module)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "harness"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "harness":
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                out.add(sub if module_path(sub) is not None else node.module)
    return out


def module_path(name: str) -> Path | None:
    base = ROOT.parent.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def package_of(name: str) -> str:
    """The layer package a module belongs to: the longest prefix named in LAYERS."""
    names = [p for layer in LAYERS for p in layer]
    return max((p for p in names if name == p or name.startswith(p + ".")), key=len)


def layer_index(name: str) -> int:
    package = package_of(name)
    return next(i for i, layer in enumerate(LAYERS) if package in layer)


MODULES = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}
GRAPH = {name: harness_imports(path) for name, path in MODULES.items()}


def test_every_module_belongs_to_a_subpackage():
    top_level = [m for m in MODULES if package_of(m) == "harness" and m != "harness"]
    assert sorted(top_level) == ["harness.__main__", "harness.cli"], "a module outside the subpackages"


def not_below(name: str, imports) -> list[str]:
    """The imports of module ``name`` that are not its own package's nor a lower layer's."""
    mine = layer_index(name)
    return sorted(t for t in imports if package_of(t) != package_of(name) and layer_index(t) <= mine)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_point_down(name):
    upward = not_below(name, GRAPH[name])
    assert not upward, f"{name} imports {upward}, which are not below it (DESIGN.md, 'Layout')"


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (module -> modules it imports), or None."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(node):
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for name in sorted(graph):
        if name not in state and (found := visit(name)):
            return found
    return None


def test_no_import_cycle():
    cycle = find_cycle(GRAPH)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_checker_finds_upward_and_sideways_imports():
    """The checks can fail: an upward import, one between the side-by-side evaluation and learners,
    and a cycle are found; imports within a package and downward ones are not."""
    assert not_below("harness.tracking.sessions", ["harness.analysis.compare"]) == ["harness.analysis.compare"]
    assert not_below("harness.learners._dibs", ["harness.evaluation.metrics"]) == ["harness.evaluation.metrics"]
    assert not_below("harness.evaluation.metrics", ["harness.learners.svgd"]) == ["harness.learners.svgd"]
    assert not_below("harness.learners._dibs", ["harness.learners._compiled", "harness.models.likelihoods"]) == []
    assert not_below("harness.cli", ["harness.analysis.report"]) == []
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_every_subpackage_is_a_regular_package():
    """A folder of modules without ``__init__.py`` imports from a checkout (a namespace package) but
    is left out of a wheel by setuptools' package discovery."""
    folders = {p.parent for p in ROOT.rglob("*.py") if "__pycache__" not in p.parts}
    assert sorted(str(f.relative_to(ROOT.parent)) for f in folders if not (f / "__init__.py").exists()) == []
