"""The package's structure: no import cycle among funcnet's modules, no function over 100 lines.

Self-contained (``ast`` over ``funcnet/``), so it runs in a plain clone. An import anywhere in a file counts,
inside a function too: a cycle there is still a cycle a reader has to untangle. Importing a package's
``__init__`` does not count as depending on the package's modules (``from funcnet import tracer`` depends
on ``funcnet.tracer``'s ``__init__`` only).
"""

from __future__ import annotations

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
LONGEST = 100  # lines; the style's aim is ~80


def _modules(package: pathlib.Path) -> dict[str, pathlib.Path]:
    """``{"funcnet.check._compare": path}`` for every ``.py`` file; a package is named by its ``__init__``."""
    out = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _imported(module: str, path: pathlib.Path, node: ast.Import | ast.ImportFrom, mods: dict) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    base = node.module or ""
    if node.level:
        pkg = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        pkg = pkg[: len(pkg) - (node.level - 1)]
        base = ".".join(pkg + ([node.module] if node.module else []))
    return [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]


def import_graph(package: pathlib.Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (resolved to the longest existing module name)."""
    mods = _modules(package)
    graph = {}
    for module, path in mods.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in _imported(module, path, node, mods):
                    while target and target not in mods and "." in target:
                        target = target.rsplit(".", 1)[0]
                    if target in mods and target != module and mods[target].name != "__init__.py":
                        deps.add(target)
        graph[module] = deps
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm, iterative)."""
    index, low, on_stack, stack, found, counter = {}, {}, set(), [], [], 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            v, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[v] = min(low[v], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return found


def test_the_cycle_finder_finds_cycles(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg import b\n")
    (pkg / "b.py").write_text("def f():\n    from .sub import _c\n")
    (pkg / "sub" / "__init__.py").write_text("from pkg.sub._c import x\n")
    (pkg / "sub" / "_c.py").write_text("import pkg.a\nx = 1\n")
    (pkg / "d.py").write_text("import pkg.a\n")                   # depends on the cycle, is not part of it
    graph = import_graph(pkg)
    assert graph["pkg.b"] == {"pkg.sub._c"} and graph["pkg.sub._c"] == {"pkg.a"}
    assert cycles(graph) == [["pkg.a", "pkg.b", "pkg.sub._c"]]
    (pkg / "b.py").write_text("x = 1\n")
    assert cycles(import_graph(pkg)) == []


def test_funcnet_has_no_import_cycle():
    graph = import_graph(ROOT / "funcnet")
    assert len(graph) > 20 and "funcnet.check._compare" in graph
    found = cycles(graph)
    assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_no_function_is_longer_than_a_screen():
    too_long = []
    for path in sorted((ROOT / "funcnet").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > LONGEST:
                    too_long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({n} lines)")
    assert not too_long, f"functions over {LONGEST} lines: {too_long}"


def test_packaging_files():
    import tomllib

    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert meta["project"]["license"] == {"text": "Apache-2.0"}
    license_text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in license_text and "Version 2.0, January 2004" in license_text
    assert "END OF TERMS AND CONDITIONS" in license_text
    assert (ROOT / "funcnet" / "py.typed").exists()
    assert "py.typed" in meta["tool"]["setuptools"]["package-data"]["funcnet"]
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert "## [Unreleased]" in changelog and f"## [{meta['project']['version']}]" in changelog
    # runtime dependencies are only what runtime code imports
    runtime = {d.split(">")[0].split("=")[0].split("[")[0] for d in meta["project"]["dependencies"]}
    imported = set()
    for path in (ROOT / "funcnet").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                imported.add(node.module.split(".")[0])
    assert runtime - {"jaxlib"} <= imported, f"runtime dependencies no runtime code imports: {runtime - imported}"
