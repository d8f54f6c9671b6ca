"""The DVC contract, held to the code: each stage's deps are its script plus the transitive
closure of the project modules it imports (tools/depgraph.py computes it from the source with
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
        f"tools/depgraph.py --write); they should be:\n"
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
        assert not [p for p in deps if re.search(r"/(report/|deploy/|sharding/|profiles\.py)", p)]
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
    """What a stage reads comes from the keys it declares: its configs build from
    `Params.only(PARAMS)` for every grid item, and hold no Hidden setting (a key read but not
    declared fails here)."""
    import argparse
    from dataclasses import fields, is_dataclass

    from squeeze import cli, profiles
    from squeeze.config import Hidden, dotted_set, load_params, validate

    def hidden_inside(value) -> list:
        if isinstance(value, Hidden):
            return [value]
        if is_dataclass(value):
            return [h for f in fields(value) for h in hidden_inside(getattr(value, f.name))]
        return []

    params = load_params(ROOT / "params.yaml")
    if profile:
        for key, value in profiles.load(profile, ROOT / "profiles").items():
            dotted_set(params, key, value)
    parsed = validate(params)
    module = load_stage(name)
    items = [{"amount": str(s), "structured": str(s), "unstructured": str(u), "quant": q}
             for s, u, q in parsed.grid.points()]
    for item in items:
        args = argparse.Namespace(**item)
        built = module.configs(args, parsed.only(cli.declared(module.PARAMS, args)))
        assert built and all(value is not None for key, value in built.items()
                             if key != "int8_cfg")
        assert not [h for value in built.values() for h in hidden_inside(value)]


def test_a_stage_that_reads_an_undeclared_key_fails():
    """The check above can fail: a stage reading the grid (which no stage declares) gets Hidden."""
    from squeeze.config import UndeclaredParam, load_params, validate

    view = validate(load_params(ROOT / "params.yaml")).only(["prune.structured.scope"])
    assert view.prune.structured.scope == "layerwise" or view.prune.structured.scope
    with pytest.raises(UndeclaredParam, match="prune.structured.amounts"):
        len(view.grid.structured)
    with pytest.raises(UndeclaredParam, match="train.epochs"):
        view.train.epochs + 1




@pytest.mark.parametrize("name", list(stages()))
def test_a_stage_that_can_build_a_model_declares_the_nets_package(name):
    """model.arch may name a factory in nets/ (models.factory refuses project code elsewhere), so
    every stage whose code builds models (its closure holds models.py) declares nets as a dep:
    editing a factory reruns exactly those stages."""
    stage = stages()[name]
    builds = "src/squeeze/models.py" in closure(script_of(stage))
    assert ("nets" in stage["deps"]) == builds, name
