"""provenance: the "Run" table at the top of tradeoff.md, from params, logs and model files."""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import yaml

from squeeze.report import provenance
from squeeze.config import (NOTHING, Params, dotted_set, integer, leaves, setting, validate,
                            value_at)

ROOT = Path(__file__).resolve().parents[2]
PROFILES = ROOT / "profiles"


def study_params() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def with_profile(*names: str) -> dict:  # the raw tree: tests change values before parsing
    params = study_params()
    for name in names:
        for key, value in (yaml.safe_load((PROFILES / f"{name}.yaml").read_text()) or {}).items():
            dotted_set(params, key, value)
    return params


def curve(run: str, stage: str, seconds: float, speed: float) -> dict:
    return {"run": run, "stage": stage, "epoch_seconds": seconds, "images_per_second": speed}


def test_params_match_the_profile_they_were_made_from():
    assert provenance.matching_profiles(validate(with_profile("quick")), PROFILES) == ["quick"]
    assert provenance.matching_profiles(validate(with_profile("cpu")), PROFILES) == ["cpu"]
    assert provenance.matching_profiles(validate(study_params()), PROFILES) == []


def test_a_stack_of_profiles_names_each_one_applied():
    """A method run: the cpu base, the methods grid over it, the method over that. `cpu` no
    longer matches on its own (its grid was overridden) but sits under the grid profile."""
    stacked = validate(with_profile("cpu", "structured-fp32", "methods/recal"))
    assert provenance.matching_profiles(stacked, PROFILES) == ["cpu", "methods/recal",
                                                                "structured-fp32"]
    study_method = validate(with_profile("cpu", "structured-fp32", "methods/study"))
    assert provenance.matching_profiles(study_method, PROFILES) == ["cpu", "structured-fp32"]


def test_one_changed_setting_breaks_the_match_but_data_paths_do_not():
    params = with_profile("cpu")
    params["data"].update(source="folder", path="elsewhere/cifar.tar.gz")  # what --data sets
    assert provenance.matching_profiles(validate(params), PROFILES) == ["cpu"]
    changed = copy.deepcopy(params)
    changed["train"]["epochs"] = 13
    assert provenance.matching_profiles(validate(changed), PROFILES) == []


def test_training_time_sums_the_logged_epochs():
    curves = [curve("baseline", "baseline", 120.0, 400.0), curve("baseline", "baseline", 60.0, 200.0),
              curve("baseline", "baseline", 90.0, 300.0), curve("s0.5", "structured", 30.0, 900.0),
              curve("s0.5-u0.3", "unstructured", 24.0, 900.0)]
    assert provenance.training_time(curves) == (
        "baseline 4.5 min (3 epochs, median 300 images/s); 2 fine-tunes 0.9 min in all "
        "(evaluation, pruning and quantization not included)")
    assert provenance.training_time([]) == "no baseline log"


ROWS = [{"structured": 0.0, "unstructured": 0.0, "params": 702_346, "cpu": "AMD EPYC",
         "latency_threads": 2, "latency_repeats": 10}]


def describe(raw: dict, keys=None) -> dict:
    parsed = validate(raw)
    return dict(provenance.describe(parsed.only(keys) if keys else parsed,
                                    {"train_images": 50_000, "test_images": 10_000}, ROWS,
                                    [curve("baseline", "baseline", 60.0, 800.0)],
                                    profiles_dir=PROFILES))


def test_describe_says_what_was_measured_and_where():
    params = with_profile("cpu")
    params["data"].update(source="folder", path="../shared/data/cifar10-jpeg.tar.gz")
    lines = describe(params)
    assert lines["profile"] == "`cpu` (profiles/cpu.yaml)"
    assert lines["images"] == ("folder `../shared/data/cifar10-jpeg.tar.gz`: 50,000 train / "
                               "10,000 test images")
    assert lines["network"] == "ResNet-18, width 16 (702,346 parameters)"
    assert lines["latency measured on"] == "AMD EPYC, 2 threads, 10 timed runs"
    assert lines["software (at report time)"].startswith("torch ")


def test_describe_names_another_network_and_the_score_normalisers_the_models_used():
    params = study_params()
    params["model"].update(arch="torchvision:mobilenet_v2", kwargs={"width_mult": 0.5})
    assert describe(params)["network"] == ("torchvision:mobilenet_v2 (width_mult=0.5) "
                                           "(702,346 parameters)")
    counted = {"train_images": 1, "test_images": 1}
    study = dict(provenance.describe(validate(study_params()), counted,
                                     [{**ROWS[0], "score_params_norm": 5.6e6,
                                       "score_ops_norm": 2.8e8}], [], profiles_dir=PROFILES))
    assert study["score (measured)"] == ("nonzero_params x q_w/32 / 5,600,000 + ops x max(q_w, "
                                         "q_a)/32 / 280,000,000 (the study's)")
    auto = [{**ROWS[0], "score_params_norm": 351_173.0, "score_ops_norm": 1.5e7}]
    assert provenance.score_line(auto) == ("nonzero_params x q_w/32 / 351,173 + ops x max(q_w, "
                                           "q_a)/32 / 15,000,000")


def test_describe_has_a_row_per_section_with_every_setting_of_the_schema():
    """Generated from the schema, so no setting can be left out: every leaf of params.yaml (the
    grid's lists in their sections) is in the row of its section, as `name value`."""
    params = with_profile("cpu")
    params["prune"]["structured"].update(residual_scale=0.25, max_layer_amount=0.8)
    lines = describe(params)
    assert lines["train"] == ("epochs 12, batch_size 128, lr 0.05, momentum 0.9, weight_decay "
                              "0.0005, schedule cosine, seed 0, warmup_epochs 0, "
                              "deterministic false")
    assert lines["prune.structured"].startswith("amounts [0, 0.3, 0.5, 0.7], scope layerwise, ")
    assert "residual_scale 0.25" in lines["prune.structured"]
    assert "max_layer_amount 0.8" in lines["prune.structured"]
    assert lines["quantize"] == "types [fp32, fp16, int8], qat_types [], mix_budgets []"
    assert lines["quantize.int8"].startswith("calibration_batches 8, calibration_batch_size 128, "
                                             "calibration_method minmax, reduce_range true")
    parsed = validate(params)
    for key, f in leaves(Params):
        section, name = key.rsplit(".", 1)
        if f.metadata.get("rule") is not NOTHING and value_at(parsed, key) != {}:
            # quantize.fp32/fp16 hold no settings; an empty model.kwargs is left out
            cell = f"{name} {provenance._spell(value_at(parsed, key))}"
            assert cell in lines[section].split(", ") or cell in lines[section], key


def test_a_new_setting_reaches_the_table_with_no_other_change():
    @dataclass(frozen=True)
    class DeeperModel(type(validate(study_params()).model)):
        depth: int = setting(integer(10, 200), "layers", 18)

    parsed = validate(study_params())
    deeper = replace(parsed, model=DeeperModel(**asdict(parsed.model), depth=34))
    rows = dict(provenance.settings(deeper))
    assert rows["model"] == "width 64, num_classes 10, arch resnet18_cifar, depth 34"


def test_sections_the_stage_does_not_declare_are_left_out():
    lines = describe(study_params(), keys=["data", "model", "train"])
    assert {"data", "model", "train"} <= set(lines)
    assert not {"export", "prune.structured", "quantize.int8"} & set(lines)
