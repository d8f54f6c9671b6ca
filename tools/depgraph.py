"""The import closure of each stage script, computed from the source with ast (no torch is
imported): what a stage's `deps` in dvc.yaml must list besides its data inputs.

    python tools/depgraph.py           # print each stage's closure
    python tools/depgraph.py --write   # rewrite the code deps of every stage in dvc.yaml

tests/unit/test_dvc_contract.py fails when dvc.yaml lists fewer or more than this.
"""
from __future__ import annotations

import argparse
import ast
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PACKAGE = "squeeze"


def module_path(name: str) -> Path | None:
    """The file of project module `name` (squeeze.x or squeeze.x.y), None for other packages."""
    if name != PACKAGE and not name.startswith(PACKAGE + "."):
        return None
    base = SRC.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    raise AssertionError(f"import of {name}, which is not a module of the project")


def module_name(path: Path) -> str:
    rel = path.relative_to(SRC).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path) -> set[str]:
    """Every project module `path` imports anywhere (top level or inside functions), with the
    packages on the way (importing squeeze.steps.x runs squeeze/__init__ and steps/__init__)."""
    tree = ast.parse(path.read_text(), str(path))
    is_package = path.name == "__init__.py"
    here = module_name(path) if path.is_relative_to(SRC) else ""
    package = here if is_package else here.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(base_parts)
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module
            found.add(module)
            # `from squeeze import x` and `from . import x` import the submodule x
            for alias in node.names:
                candidate = f"{module}.{alias.name}"
                if module_path_or_none(candidate):
                    found.add(candidate)
    closed = set()
    for name in found:
        if module_path_or_none(name) is None:
            continue
        parts = name.split(".")
        closed.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return closed


def module_path_or_none(name: str) -> Path | None:
    try:
        return module_path(name)
    except AssertionError:
        return None


def closure(script: Path) -> list[str]:
    """The script and every project file it runs, as repo-relative paths, sorted."""
    seen: set[Path] = set()
    todo = [script]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        todo.extend(module_path(name) for name in imported(path))
    return sorted(p.relative_to(ROOT).as_posix() for p in seen)


def stages() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def script_of(stage: dict) -> Path:
    match = re.match(r"python (stages/\S+\.py)", stage["cmd"].strip())
    assert match, stage["cmd"]
    return ROOT / match.group(1)


def is_code(dep: str) -> bool:
    return dep.startswith(("src/", "stages/"))


def rewrite_dvc_yaml(path: Path = ROOT / "dvc.yaml") -> bool:
    """Replace each stage's code deps with its closure, keeping data deps and comments in place.
    Returns whether the file changed."""
    text = path.read_text()
    defined = stages()
    out, stage, lines, i = [], None, text.split("\n"), 0
    while i < len(lines):
        line = lines[i]
        match = re.match(r"^  (\w+):\s*$", line)
        if match and match.group(1) in defined:
            stage = match.group(1)
        if line.strip() == "deps:" and stage:
            out.append(line)
            i += 1
            data = []
            while i < len(lines) and lines[i].startswith("      - "):
                if not is_code(lines[i][8:]):
                    data.append(lines[i])
                i += 1
            out += [f"      - {p}" for p in closure(script_of(defined[stage]))] + data
            continue
        out.append(line)
        i += 1
    new = "\n".join(out)
    path.write_text(new)
    return new != text


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite dvc.yaml's code deps")
    if parser.parse_args().write:
        print("dvc.yaml updated" if rewrite_dvc_yaml() else "dvc.yaml already up to date")
    else:
        for name, definition in stages().items():
            print(name)
            print("\n".join(f"  {p}" for p in closure(script_of(definition))))
