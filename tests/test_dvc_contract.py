"""The DVC contract, held to the code: each stage's deps are its script plus the transitive
closure of the project modules it imports (computed here from the source with ast, no torch
imported), and its params are exactly the keys its script declares in PARAMS (the only ones it
can read: cli.run hands it nothing else).
"""
from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

import pytest
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


def code_deps(stage: dict) -> list[str]:
    return sorted(d for d in stage["deps"] if d.startswith(("src/", "stages/")))


@pytest.mark.parametrize("name", list(stages()))
def test_deps_are_exactly_the_import_closure(name):
    stage = stages()[name]
    expected = closure(script_of(stage))
    assert code_deps(stage) == expected, (
        f"dvc.yaml stage {name}: code deps differ from its import closure; they should be:\n"
        + "\n".join(f"      - {p}" for p in expected))


@pytest.mark.parametrize("name", list(stages()))
def test_params_are_exactly_what_the_script_declares(name):
    stage = stages()[name]
    script = script_of(stage)
    spec = importlib.util.spec_from_file_location(f"stage_{name}", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # stage scripts import torch only inside main()
    declared = [p.replace("${item.", "{").replace("}", "}") for p in stage["params"]]
    declared = [re.sub(r"\$\{item\.(\w+)\}", r"{\1}", p) for p in stage["params"]]
    assert sorted(declared) == sorted(module.PARAMS)


def test_closures_are_small_by_design():
    """The report never runs training code; training never runs report code."""
    report = closure(ROOT / "stages/report.py")
    assert not [p for p in report if re.search(r"/(train|prune|quantize|batches|steps/)", p)]
    for stage in ("train", "prune_structured", "prune_unstructured", "quantize"):
        deps = closure(script_of(stages()[stage]))
        assert not [p for p in deps if re.search(r"/(report|figures|provenance|profiles)\.py", p)]
    assert "src/squeeze/data.py" not in closure(ROOT / "stages/train.py")  # sources: prepare only


if __name__ == "__main__":  # print each stage's closure, to paste into dvc.yaml
    for stage_name, stage_def in stages().items():
        print(stage_name)
        print("\n".join(f"      - {p}" for p in closure(script_of(stage_def))))
