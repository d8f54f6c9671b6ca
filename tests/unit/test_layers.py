"""The layout is the architecture: the pipeline core at the bottom, then the audiences filed above
it (report/, deploy/, sharding/), the stage bodies (steps/) and the command line (__main__) on top.
Computed from the source with ast, every import counted (top level or inside a function)."""
from __future__ import annotations

import ast

from depgraph import ROOT, SRC, imported, module_name

PACKAGE = SRC / "squeeze"
# what each layer may import besides itself and the core; the core imports none of them
ALLOWED = {"report": set(), "deploy": set(), "sharding": set(), "steps": {"deploy"},
           "__main__": {"report", "deploy", "sharding", "steps"}}


def layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in ALLOWED:
        return parts[1]
    return "core"


def modules() -> dict[str, set[str]]:
    return {module_name(p): imported(p) - {"squeeze"} for p in sorted(PACKAGE.rglob("*.py"))}


def test_no_import_from_a_lower_layer_to_a_higher_one():
    wrong = []
    for module, deps in modules().items():
        here = layer(module)
        for dep in deps:
            there = layer(dep)
            if there in (here, "core"):
                continue
            if there not in ALLOWED.get(here, set()):
                wrong.append(f"{module} ({here}) imports {dep} ({there})")
    assert wrong == []


def test_no_import_cycle():
    graph = {m: {d for d in deps if d != m and not PACKAGE.joinpath(*d.split(".")[1:]).is_dir()}
             for m, deps in modules().items()}
    done, path = set(), []

    def visit(node):
        if node in path:
            raise AssertionError("import cycle: " + " -> ".join(path[path.index(node):] + [node]))
        if node in done:
            return
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            visit(nxt)
        path.pop()
        done.add(node)

    for node in sorted(graph):
        visit(node)


def test_nothing_under_src_imports_tools_or_tests():
    outside = {p.stem for folder in ("tools", "tests") for p in (ROOT / folder).rglob("*.py")}
    found = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            found += [f"{path.relative_to(ROOT)}: {n}" for n in names
                      if n.split(".")[0] in outside | {"tools", "tests"}]
    assert found == []


def test_the_subpackages_init_files_import_nothing():
    """A stage imports only the modules it names: an __init__ that re-exported would pull a
    subpackage's torch-heavy siblings into every closure."""
    for package in ("report", "deploy", "sharding"):
        tree = ast.parse((PACKAGE / package / "__init__.py").read_text())
        assert not [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
