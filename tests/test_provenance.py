"""provenance: the "Run" table at the top of tradeoff.md, from params, logs and model files."""
from __future__ import annotations

import copy
from pathlib import Path

import yaml

from squeeze import provenance
from squeeze.config import dotted_set

ROOT = Path(__file__).resolve().parents[1]
PROFILES = ROOT / "profiles"


def study_params() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def with_profile(name: str) -> dict:
    params = study_params()
    for key, value in yaml.safe_load((PROFILES / f"{name}.yaml").read_text()).items():
        dotted_set(params, key, value)
    return params


def curve(run: str, stage: str, seconds: float, speed: float) -> dict:
    return {"run": run, "stage": stage, "epoch_seconds": seconds, "images_per_second": speed}


def test_params_match_the_profile_they_were_made_from():
    assert provenance.matching_profiles(with_profile("quick"), PROFILES) == ["quick"]
    assert provenance.matching_profiles(with_profile("cpu"), PROFILES) == ["cpu"]
    assert provenance.matching_profiles(study_params(), PROFILES) == []


def test_one_changed_setting_breaks_the_match_but_data_paths_do_not():
    params = with_profile("cpu")
    params["data"].update(source="folder", path="elsewhere/cifar.tar.gz")  # what --data sets
    assert provenance.matching_profiles(params, PROFILES) == ["cpu"]
    changed = copy.deepcopy(params)
    changed["train"]["epochs"] = 13
    assert provenance.matching_profiles(changed, PROFILES) == []


def test_training_time_sums_the_logged_epochs():
    curves = [curve("baseline", "baseline", 120.0, 400.0), curve("baseline", "baseline", 60.0, 200.0),
              curve("baseline", "baseline", 90.0, 300.0), curve("s0.5", "structured", 30.0, 900.0),
              curve("s0.5-u0.3", "unstructured", 24.0, 900.0)]
    assert provenance.training_time(curves) == (
        "baseline 4.5 min (3 epochs, median 300 images/s); 2 fine-tunes 0.9 min in all "
        "(evaluation, pruning and quantization not included)")
    assert provenance.training_time([]) == "no baseline log"


def test_describe_names_every_setting_that_decides_the_numbers():
    params = with_profile("cpu")
    params["data"].update(source="folder", path="../shared/data/cifar10-jpeg.tar.gz")
    rows = [{"structured": 0.0, "unstructured": 0.0, "params": 702_346, "cpu": "AMD EPYC",
             "latency_threads": 2}]
    lines = dict(provenance.describe(params, {"train_images": 50_000, "test_images": 10_000},
                                     rows, [curve("baseline", "baseline", 60.0, 800.0)],
                                     profiles_dir=PROFILES))
    assert lines["profile"] == "`cpu` (profiles/cpu.yaml)"
    assert lines["data"] == ("folder `../shared/data/cifar10-jpeg.tar.gz`: 50,000 train / "
                             "10,000 test images")
    assert lines["model"] == "ResNet-18, width 16 (702,346 parameters)"
    assert lines["baseline training"] == ("12 epochs, batch 128, SGD lr 0.05 cosine, momentum 0.9, "
                                          "weight decay 0.0005")
    assert lines["unstructured fine-tune"].startswith("1 epoch, batch 128, SGD lr 0.005 ")
    assert lines["pruning"] == ("structured l1 layerwise at [0, 0.3, 0.5, 0.7]; unstructured "
                                "magnitude global at [0, 0.3, 0.6]")
    assert lines["quantization"] == ("fp32, fp16, int8 (int8: minmax observer, 8 x 128 "
                                     "calibration images)")
    assert lines["latency measured on"] == "AMD EPYC, 2 threads"
    assert lines["software (at report time)"].startswith("torch ")


def test_describe_names_the_levers_that_are_on():
    params = with_profile("cpu")
    params["finetune"]["structured"].update(schedule="cosine_iter", warmup_epochs=1,
                                            recalibrate_batches=50, distill_alpha=0.7)
    params["prune"]["structured"].update(layers="block-internal", rounds=3)
    rows = [{"structured": 0.0, "unstructured": 0.0, "params": 1, "cpu": "x",
             "latency_threads": 2}]
    lines = dict(provenance.describe(params, {"train_images": 1, "test_images": 1}, rows, [],
                                     profiles_dir=PROFILES))
    assert lines["structured fine-tune"] == (
        "3 epochs, batch 128, SGD lr 0.01 cosine_iter, momentum 0.9, weight decay 0.0005, "
        "1-epoch warm-up, BN recalibrated on 50 batches, distilled (alpha 0.7, T 4)")
    assert lines["pruning"].startswith("structured l1 layerwise block-internal in 3 rounds at ")


def test_describe_names_the_residual_tilt_and_the_global_cap():
    """A `tilt25` run (residual_scale 0.25) and a global run read differently from the study's."""
    rows = [{"structured": 0.0, "unstructured": 0.0, "params": 1, "cpu": "x",
             "latency_threads": 2, "latency_repeats": 10}]
    tilted = with_profile("cpu")
    tilted["prune"]["structured"]["residual_scale"] = 0.25
    lines = dict(provenance.describe(tilted, {"train_images": 1, "test_images": 1}, rows, [],
                                     profiles_dir=PROFILES))
    assert "residual-tied layers at 0.25 x the amount" in lines["pruning"]
    assert lines["latency measured on"] == "x, 2 threads, 10 timed runs"
    capped = with_profile("cpu")
    capped["prune"]["structured"].update(scope="global", max_layer_amount=0.8)
    lines = dict(provenance.describe(capped, {"train_images": 1, "test_images": 1}, rows, [],
                                     profiles_dir=PROFILES))
    assert "structured l1 global, at most 0.8 of any group" in lines["pruning"]
    study = dict(provenance.describe(with_profile("cpu"), {"train_images": 1, "test_images": 1},
                                     rows, [], profiles_dir=PROFILES))
    assert "residual" not in study["pruning"] and "at most" not in study["pruning"]
