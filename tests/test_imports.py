"""The package's import graph has no loop, and the library imports no command: every
`import` in scdepth/ (module level and inside functions alike) read with ast, resolved to the
scdepth module it names (and the packages above it, whose __init__ runs first), and the graph
searched for cycles."""

import ast
from pathlib import Path

import scdepth

PACKAGE = Path(scdepth.__file__).parent


def module_names() -> dict[str, Path]:
    names = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def imports_of(name: str, path: Path, modules) -> set[str]:
    """The scdepth modules that `name` (at `path`) imports."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)
    # importing scdepth.data.folders runs scdepth/data/__init__.py first: an edge to each package
    found = {p for m in found for p in (m, *_packages(m))}
    # a module's own packages are initialised before it runs: an import of one is no edge
    ancestors = set(_packages(name))
    return {m for m in found if m in modules and m != name and m not in ancestors}


def _packages(name: str) -> list[str]:
    """The packages above a dotted module name: a.b.c -> [a.b, a]."""
    return [name.rsplit(".", k)[0] for k in range(1, name.count(".") + 1)]


def import_graph() -> dict[str, set[str]]:
    modules = module_names()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def find_cycle(graph) -> list[str] | None:
    """One import loop as [a, b, ..., a], or None."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_package_has_no_import_loop():
    graph = import_graph()
    assert "scdepth.cli.train" in graph and "scdepth.train" in graph["scdepth.cli.train"]
    # evaluate imports scdepth.data.folders, which runs scdepth/data/__init__.py first
    assert {"scdepth.data", "scdepth.data.folders"} <= graph["scdepth.evaluate"]
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_the_cycle_finder_finds_a_loop():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_library_imports_no_command():
    graph = import_graph()
    library = [m for m in graph if not m.startswith("scdepth.cli")]
    offenders = {m: sorted(d for d in graph[m] if d.startswith("scdepth.cli")) for m in library}
    assert not {m: d for m, d in offenders.items() if d}
