"""The DVC contract, held to the code: each stage's deps are its script plus the transitive
closure of the project modules it imports (scripts/depgraph.py computes it from the source with
ast, no torch imported), and its params are exactly the keys its script declares in PARAMS (the
only ones it can read: cli.run hands it nothing else).
"""
from __future__ import annotations

import importlib.util
import re

import pytest

from depgraph import ROOT, closure, is_code, script_of, stages


def code_deps(stage: dict) -> list[str]:
    return sorted(d for d in stage["deps"] if is_code(d))


@pytest.mark.parametrize("name", list(stages()))
def test_deps_are_exactly_the_import_closure(name):
    stage = stages()[name]
    expected = closure(script_of(stage))
    assert code_deps(stage) == expected, (
        f"dvc.yaml stage {name}: code deps differ from its import closure (fix: python "
        f"scripts/depgraph.py --write); they should be:\n"
        + "\n".join(f"      - {p}" for p in expected))


@pytest.mark.parametrize("name", list(stages()))
def test_params_are_exactly_what_the_script_declares(name):
    stage = stages()[name]
    script = script_of(stage)
    spec = importlib.util.spec_from_file_location(f"stage_{name}", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # stage scripts import torch only inside main()
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
