"""The tools that start processes: the GPU check script (here on the CPU, tiny settings) and the
DVC overhead benchmark. Structure and positive numbers only, never a wall-clock threshold."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

import benchlib
from archives import write_archive

ROOT = Path(__file__).resolve().parents[2]


def positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


@pytest.mark.slow  # a tiny grid through DVC, timed: minutes on a loaded machine
def test_pipeline_overhead_on_a_one_model_grid():
    result = benchlib.pipeline_overhead(ROOT, overrides={"prune.structured.amounts": [0],
                                                         "prune.unstructured.amounts": [0],
                                                         "quantize.types": ["fp32"]}, repeats=1)
    assert result["stages"] >= 5  # prepare, train, prune x2, quantize (+ any report stage)
    assert positive(result["noop_repro_seconds"]) and positive(result["status_seconds"])


def test_gpu_check_runs_on_cpu_with_tiny_settings(tmp_path):
    archive = write_archive(tmp_path / "cifar.tar.gz", {"train": 8, "test": 3})
    env = {**os.environ, "SQUEEZE_DEVICE": "cpu", "OMP_NUM_THREADS": "1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(["bash", str(ROOT / "tools" / "gpu-check.sh"), str(archive),
                           str(tmp_path / "out"), "--tiny", "--paths"], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((tmp_path / "out" / "gpu-check.json").read_text())
    assert json.loads(done.stdout[done.stdout.rindex("\n{") + 1:]) == summary
    assert summary["device"] == "cpu" and summary["tiny"] is True
    assert summary["train_images"] == 80 and summary["test_images"] == 30
    base = summary["baseline"]
    assert 1 <= base["epochs"] <= 2 and base["meets_goal"] is None
    assert positive(base["seconds_per_epoch"]) and positive(base["images_per_second"])
    assert 0 <= base["test_accuracy"] <= 1
    pruned = summary["s0.5"]
    assert set(pruned["quantized"]) == {"fp32", "fp16", "int8"}
    assert pruned["quantized"]["int8"]["params"] < 11_173_962
    assert all(0 <= q["accuracy"] <= 1 for q in pruned["quantized"].values())
    assert (tmp_path / "out" / "baseline.csv").is_file() and (tmp_path / "out" / "s0.5.csv").is_file()
    paths = summary["paths"]
    assert {name: found["ok"] for name, found in paths.items()} == dict.fromkeys(
        ("resume", "masks", "other_device", "evaluate", "quantize"), True)
    assert paths["resume"] == {"ok": True, "resumed_from_epoch": 1, "max_abs_weight_diff": 0.0}
    assert paths["masks"]["layers"] == 21 and paths["masks"]["zero_fraction"] == 0.5
    own, forged = paths["other_device"]["its own fingerprint"], paths["other_device"]["this run's fingerprint"]
    assert "another device" in own["notice"] and own["resumed_from_epoch"] == 0
    assert "RNG state size to be 16" in forged["notice"] and forged["max_abs_weight_diff_to_fresh"] == 0
    assert paths["evaluate"]["last_epoch_logged"] == paths["evaluate"]["evaluation_accuracy"]
    assert paths["quantize"]["int8"]["device"] == "cpu"
    # judged on whole epochs: evaluation and checkpoint on top of the training steps
    assert base["seconds_per_epoch"] >= base["training_seconds_per_epoch"]
