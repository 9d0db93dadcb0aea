"""The package's import graph has no circle, counting imports inside functions: every module of `agic/` can be read
and tested after the modules it imports. Run it to see the graph: `pytest tests/test_imports.py -s`."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "agic"


def module_name(path: Path) -> str:
    return ".".join(("agic", *path.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(".__init__")


def imports(path: Path) -> set[str]:
    "The agic modules `path` imports anywhere in its code (top level or inside functions), `from . import x` included."
    me, found = module_name(path), set()
    package = me if path.name == "__init__.py" else me.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("agic")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            if not base.startswith("agic"): continue
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}   # `from agic import distributed` is a module import
    return found


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py") if p.name != "_modidx.py"}
    return {m: {i for i in imports(p) if i in modules and i != m and i != "agic"} for m, p in modules.items()}


def cycle(g: dict[str, set[str]]) -> list[str] | None:
    "One import circle of `g`, as a list of modules, or None."
    state, stack = {}, []
    def visit(m):
        state[m] = "open"; stack.append(m)
        for n in sorted(g[m]):
            if state.get(n) == "open": return stack[stack.index(n):] + [n]
            if n not in state and (found := visit(n)): return found
        state[m] = "done"; stack.pop()
    for m in sorted(g):
        if m not in state and (found := visit(m)): return found
    return None


def test_the_cycle_finder_finds_a_circle():
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set()}) is None


def test_agic_has_no_import_circle():
    g = graph()
    print("\n" + "\n".join(f"{m} -> {', '.join(sorted(d))}" for m, d in sorted(g.items())))
    assert "agic.scoring" in g and "agic.graphs" in g["agic.pruning"]   # the walk sees the package's imports
    assert cycle(g) is None, f"import circle: {' -> '.join(cycle(g))}"
