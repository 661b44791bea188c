"""The import arrows of the layers hold for every module, and no module imports itself back, counting imports
inside functions and under ``if TYPE_CHECKING:`` (docs/design.md, "Layers")."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "memsched"

BASE = (
    "memsched.uapi",
    "memsched.units",
    "memsched.numeric",
    "memsched.errors",
    "memsched.topology",
    "memsched.config",
    "memsched.data",
    "memsched.registry",
    "memsched.fdobj",
    "memsched.record",
    "memsched.kfile",
)
PURE = ("memsched.pressure", "memsched.policies", "memsched.admission")

# Layer of a module -> the layers it may import from (itself included).
ALLOWED: dict[str, tuple[str, ...]] = {
    "base": BASE,
    "pure": BASE + PURE,
    "sim": BASE + PURE + ("memsched.sim",),
    "live": BASE + PURE + ("memsched.live",),
    "upper": BASE + PURE + ("memsched.sim", "memsched.live", "memsched.workloads", "memsched.report"),
    "results": (*BASE, "memsched.results"),
    "sweep": BASE + PURE + ("memsched.sim", "memsched.live", "memsched.workloads", "memsched.report")
    + ("memsched.results", "memsched.sweep"),
    "cli": ("memsched",),
}


def layer_of(module: str) -> str:
    if module in {"memsched", "memsched.__main__"} or module.startswith("memsched.cli"):
        return "cli"
    for prefix in BASE:
        if module == prefix or module.startswith(prefix + "."):
            return "base"
    for prefix in PURE:
        if module == prefix or module.startswith(prefix + "."):
            return "pure"
    for name in ("sim", "live", "results", "sweep"):
        if module == f"memsched.{name}" or module.startswith(f"memsched.{name}."):
            return name
    return "upper"


def imports_of(path: Path, module: str, *, names: bool = False) -> list[str]:
    """Every memsched module ``path`` imports; with ``names``, also ``pkg.name`` of each ``from pkg import name``
    (a submodule when ``name`` is one)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                pkg = module.split(".")
                base = ".".join(pkg[: len(pkg) - node.level + (1 if path.name == "__init__.py" else 0)])
                target = f"{base}.{node.module}" if node.module else base
            elif node.module:
                target = node.module
            else:  # pragma: no cover - "from . import x" handled above
                continue
            out.append(target)
            if names:
                out += [f"{target}.{a.name}" for a in node.names]
    return [m for m in out if m == "memsched" or m.startswith("memsched.")]


def modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out.append((".".join(parts), path))
    return out


@pytest.mark.parametrize(("module", "path"), modules(), ids=[m for m, _ in modules()])
def test_module_respects_layers(module: str, path: Path) -> None:
    """A module imports only from its own layer and the layers below it (sim and live never meet)."""
    allowed = ALLOWED[layer_of(module)]
    bad = [imp for imp in imports_of(path, module) if not any(imp == a or imp.startswith(a + ".") for a in allowed)]
    assert not bad, f"{module} ({layer_of(module)}) imports {bad}"


POLICY_ALLOWED = (*BASE, "memsched.policies")


@pytest.mark.parametrize(
    ("module", "path"),
    [(m, p) for m, p in modules() if m.startswith("memsched.policies.")],
    ids=[m for m, _ in modules() if m.startswith("memsched.policies.")],
)
def test_policies_import_only_views_actions_and_base(module: str, path: Path) -> None:
    """A policy runs in the simulator and as a live agent: it sees only uapi/base types and policies.*."""
    bad = [
        imp for imp in imports_of(path, module) if not any(imp == a or imp.startswith(a + ".") for a in POLICY_ALLOWED)
    ]
    assert not bad, f"{module} imports {bad}"


def _import_graph() -> dict[str, set[str]]:
    """module -> the memsched modules it imports (explicitly: a package's ``__init__`` only when named)."""
    mods = dict(modules())
    graph: dict[str, set[str]] = {}
    for module, path in mods.items():
        deps = set()
        for imp in imports_of(path, module, names=True):
            target = imp
            while target and target not in mods:
                target = target.rpartition(".")[0]
            if target and target != module:
                deps.add(target)
        graph[module] = deps
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles() -> None:
    """No set of modules imports itself back, counting imports in functions and under TYPE_CHECKING."""
    assert _cycles(_import_graph()) == []


def test_cycle_finder_finds_a_cycle() -> None:
    """The cycle check itself: a two-module loop and a three-module loop are found, a chain is not."""
    graph = {"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"e"}, "e": {"c"}, "f": {"a"}}
    assert sorted(_cycles(graph)) == [["a", "b"], ["c", "d", "e"]]
