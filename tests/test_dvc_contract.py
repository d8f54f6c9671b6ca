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
    declared = [re.sub(r"\$\{item\.(\w+)\}", r"{\1}", p) for p in stage.get("params", [])]
    assert sorted(declared) == sorted(module.PARAMS)


def test_closures_are_small_by_design():
    """The report never runs training code; training never runs report code."""
    report = closure(ROOT / "stages/report.py")
    assert not [p for p in report if re.search(r"/(train|prune|quantize|batches|steps/)", p)]
    for stage in ("train", "prune_structured", "prune_unstructured", "quantize"):
        deps = closure(script_of(stages()[stage]))
        assert not [p for p in deps if re.search(r"/(report|figures|provenance|profiles)\.py", p)]
    assert "src/squeeze/data.py" not in closure(ROOT / "stages/train.py")  # sources: prepare only


def load_stage(name: str):
    spec = importlib.util.spec_from_file_location(f"stage_{name}", ROOT / "stages" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("profile", [None, "quick", "cpu"])
@pytest.mark.parametrize("name", ["prepare", "train", "prune_structured", "prune_unstructured",
                                  "quantize"])
def test_each_stage_builds_its_configs_from_its_declared_params_alone(name, profile):
    """What a stage parses comes from the keys it declares: its configs build from
    `restrict(params, PARAMS)` for every grid item (a key read but not declared fails here)."""
    import argparse

    from squeeze import cli, profiles
    from squeeze.config import dotted_set, grid, load_params, restrict

    params = load_params(ROOT / "params.yaml")
    if profile:
        for key, value in profiles.load(profile, ROOT / "profiles").items():
            dotted_set(params, key, value)
    module = load_stage(name)
    structured, unstructured, quants = grid(params)
    items = [{"amount": str(s), "structured": str(s), "unstructured": str(u), "quant": q}
             for s in structured for u in unstructured for q in quants]
    for item in items:
        args = argparse.Namespace(**item)
        built = module.configs(args, restrict(params, cli.declared(module.PARAMS, args)))
        assert built and all(value is not None for key, value in built.items()
                             if key != "int8_cfg")
