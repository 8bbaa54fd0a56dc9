"""Imports flow one way: no module of the package imports one that imports it back.

Module-level imports count, those under ``if TYPE_CHECKING:`` too (a type-only cycle is
still a knot a reader has to untie); imports inside functions are the deliberate lazy
imports of optional dependencies and do not. Internals shared between modules live in
``_`` modules: no module imports a ``_name`` from a public module.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "cdrrating"


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def top_level_imports(tree: ast.Module) -> list[ast.ImportFrom | ast.Import]:
    found: list[ast.ImportFrom | ast.Import] = []

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.Import | ast.ImportFrom):
                found.append(node)
            elif isinstance(node, ast.If | ast.Try):
                visit(node.body)
                visit(node.orelse)
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)

    visit(tree.body)
    return found


def graph() -> tuple[dict[str, set[str]], list[str]]:
    modules = {module_name(p): p for p in SRC.rglob("*.py")}
    edges: dict[str, set[str]] = {m: set() for m in modules}
    private_reach: list[str] = []
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in top_level_imports(tree):
            if isinstance(node, ast.ImportFrom):
                if node.level or not node.module or not node.module.startswith("cdrrating"):
                    continue
                target = node.module
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    if sub in modules:
                        edges[name].add(sub)
                        continue
                    edges[name].add(target)
                    public = not any(p.startswith("_") for p in target.split("."))
                    if alias.name.startswith("_") and public:
                        private_reach.append(f"{name} imports {alias.name} from {target}")
            else:
                for alias in node.names:
                    if alias.name.startswith("cdrrating") and alias.name in modules:
                        edges[name].add(alias.name)
    for name, targets in edges.items():
        targets.discard(name)
    return edges, private_reach


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_import_graph_has_no_cycle() -> None:
    edges, _ = graph()
    # The package façade imports everything below it by design; cycles through it are
    # the re-exports, so it is left out, as are packages importing their own modules.
    trimmed = {
        m: {t for t in ts if t != "cdrrating" and not m.startswith(t + ".")}
        for m, ts in edges.items()
        if m != "cdrrating"
    }
    assert find_cycle(trimmed) is None, " -> ".join(find_cycle(trimmed) or [])


def test_no_private_name_is_imported_from_a_public_module() -> None:
    _, private_reach = graph()
    assert private_reach == []


def test_the_checker_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
