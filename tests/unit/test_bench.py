"""bench and the GPU check on tiny settings: the structure of what they write, and that every
ratio is a positive number. Never a wall-clock threshold: these machines are shared."""
from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

import benchlib  # tools/benchlib.py, on the path through pytest's `pythonpath`
from archives import write_archive
from squeeze import data
from squeeze.prepared import Dataset

ROOT = Path(__file__).resolve().parents[2]


def positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def all_positive(tree) -> bool:
    if isinstance(tree, dict):
        return all(all_positive(v) for v in tree.values())
    return positive(tree)


def tiny_dataset(train: int = 64, test: int = 20) -> tuple[Dataset, np.ndarray, np.ndarray]:
    ds = data.synthetic(train, test, seed=0)
    mean, std = ds.mean_std()
    return ds, mean, std


# ---- timing helpers -------------------------------------------------------------------------

def test_interleaved_rotates_order_and_times_every_round():
    order = []
    calls = {name: (lambda name=name: order.append(name)) for name in "abc"}
    times = benchlib.interleaved(calls, repeats=3, warmup=1)
    assert {k: len(v) for k, v in times.items()} == {"a": 3, "b": 3, "c": 3}
    assert order == list("abc") + list("abc") + list("bca") + list("cab")
    assert all(t >= 0 for v in times.values() for t in v)


def test_paired_speedup_is_median_of_round_ratios():
    assert benchlib.paired_speedup([4.0, 9.0, 2.0], [1.0, 1.0, 1.0]) == 4.0
    assert benchlib.paired_speedup([1.0, 1.0], [2.0, 2.0]) == 0.5


def test_with_overrides_sets_dotted_keys_on_a_copy():
    params = {"train": {"epochs": 200, "lr": 0.01}, "model": {"width": 64}}
    out = benchlib.with_overrides(params, {"train.epochs": 1, "finetune.structured.epochs": 2})
    assert out["train"] == {"epochs": 1, "lr": 0.01}
    assert out["finetune"]["structured"]["epochs"] == 2
    assert params["train"]["epochs"] == 200


def test_set_params_keeps_comments(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("# top\ntrain:\n  epochs: 200   # the study's\n  lr: 0.01\nmodel:\n  width: 64\n")
    params = benchlib.set_params(path, {"train.epochs": 1, "model.width": 8})
    assert params == {"train": {"epochs": 1, "lr": 0.01}, "model": {"width": 8}}
    text = path.read_text()
    assert "# top" in text and "# the study's" in text


def test_environment_records_machine_threads_torch_date_and_load():
    env = benchlib.environment(threads=2)
    for key in ("machine", "threads", "torch", "date", "loadavg", "device", "cpu_count"):
        assert key in env
    assert env["threads"] == 2


# ---- the benchmarks, tiny --------------------------------------------------------------------

def test_data_path_against_dataloader_and_imagefolder(tmp_path):
    ds, mean, std = tiny_dataset(train=80)
    archive = write_archive(tmp_path / "c.tar.gz", {"train": 4, "test": 1})
    folder = benchlib.extract_train_split(archive, tmp_path / "x")
    assert folder.name == "train" and len(list(folder.glob("*/*.jpg"))) == 40
    result = benchlib.data_path(ds, mean, std, batch_size=16, batches_per_round=2, rounds=2,
                                workers=1, settle=0.01, imagefolder=folder)
    assert set(result["batches_per_second"]) == {"squeeze", "dataloader", "imagefolder"}
    assert all_positive(result["batches_per_second"])
    assert positive(result["speedup"]) and positive(result["speedup_vs_imagefolder"])


def test_conventional_loader_yields_normalised_augmented_batches():
    ds, mean, std = tiny_dataset(train=32)
    transform = benchlib.conventional_transform(mean, std)
    loader = benchlib.conventional_loader(benchlib.ArrayImages(ds.x_train, ds.y_train, transform),
                                          8, 0)
    x, y = next(iter(loader))
    assert x.shape == (8, 3, 32, 32) and y.shape == (8,)
    assert abs(float(x.mean())) < 1.0  # normalised, not [0, 1] or [0, 255]


def test_int8_latency_structure():
    """FX (the reference), ONNX Runtime and OpenVINO against fp32, in one interleaved run."""
    import torch

    before = torch.backends.quantized.engine
    # OpenVINO stays out of this file: after it has run in a process, a later fork in that
    # process (test_checkpoint's os.system) crashed pytest once (see quantize.py); the bench
    # runs it in its own process, last (bench.py)
    result = benchlib.int8_latency(width=4, structured=(0.5,), batch_sizes=(1, 4), threads=1,
                                   warmup=1, repeats=2, engines=("x86", "onnxruntime"))
    engines = {"x86", "onnxruntime"}
    assert set(result["ms_per_image"]) == {"b1", "b4"}
    assert set(result["ms_per_image"]["b4"]) == {"fp32-s0", "fp32-s0.5"} | {
        f"int8-{e}-s{s}" for e in engines for s in ("0", "0.5")}
    assert set(result["speedup"]) == set(result["vs_fp32_baseline"]) == engines
    assert set(result["speedup"]["onnxruntime"]["b4"]) == {"s0", "s0.5"}
    assert set(result["vs_fx"]) == {"onnxruntime"}, "FX is the reference, not compared to itself"
    assert all_positive(result["speedup"]) and all_positive(result["vs_fp32_baseline"])
    assert all_positive(result["vs_fx"]) and all_positive(result["ms_per_image"])
    assert result["default_engine"] == "onnxruntime"
    assert result["runtimes"]["onnxruntime"].startswith("onnxruntime ")
    assert "torch.ao FX" in result["runtimes"]["x86"]
    assert torch.backends.quantized.engine == before


def test_structured_latency_reports_ops_and_a_dense_zeros_control():
    result = benchlib.structured_latency(width=4, amounts=(0, 0.5), unstructured=0.5,
                                         batch_sizes=(2,), threads=1, warmup=0, repeats=2)
    assert set(result["speedup_vs_dense"]["b2"]) == {"s0.5", "s0-u0.5"}
    assert all_positive(result["speedup_vs_dense"])
    ops = result["ops"]
    assert ops["s0.5"] < ops["s0"] and ops["s0-u0.5"] == ops["s0"]
    assert "no speedup" in result["note"]


def test_training_throughput_structure():
    ds, mean, std = tiny_dataset(train=64)
    from squeeze.config import TrainConfig

    cfg = TrainConfig(epochs=200, batch_size=32, lr=0.01, momentum=0.9, weight_decay=5e-4,
                      schedule="cosine", seed=0)
    result = benchlib.training_throughput(ds, mean, std, width=4, cfg=cfg, images=64,
                                          epochs=2, test_images=20, device="cpu", threads=1)
    assert result["device"] == "cpu" and result["epochs_counted"] == 1
    assert result["images_per_epoch"] == 64
    assert positive(result["images_per_second"]) and positive(result["epoch_seconds"])


def test_bench_cli_writes_json_and_keeps_other_sections_with_their_date(tmp_path):
    """--only int8 rewrites its own section and the goals, and keeps the sections it did not
    run (with their dates) from the file it updates."""
    spec = importlib.util.spec_from_file_location("bench_cli", ROOT / "tools" / "bench.py")
    bench_cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_cli)
    out = tmp_path / "bench.json"
    earlier = {"environment": {"date": "2000-01-01T00:00:00+00:00"},
               "structured": {"speedup_vs_dense": {"b32": {"s0.5": 3.0}},
                              "date": "2000-01-01T00:00:00+00:00"}}
    out.write_text(json.dumps(earlier))
    bench_cli.main(["--quick", "--only", "int8", "--threads", "1", "--out", str(out),
                    "--int8-engines", "x86,onnxruntime"])
    written = json.loads(out.read_text())
    assert written["environment"]["threads"] == 1
    assert "skipped" in written["pipeline_overhead"]  # not in the file, not run
    assert written["mode"] == "quick"
    assert all_positive(written["int8"]["speedup"])
    assert [g["figure"] for g in written["goals"]][:4] == [
        "int8 (onnxruntime) / fp32 latency, batch 32",
        "s0.5 + int8 (onnxruntime) / fp32 baseline latency, batch 32",
        "int8 (onnxruntime) / FX int8 latency, batch 1", "int8 (onnxruntime) / FX int8 latency, batch 32"]
    assert written["structured"]["date"] == "2000-01-01T00:00:00+00:00"
    assert written["structured"]["speedup_vs_dense"] == {"b32": {"s0.5": 3.0}}
    assert written["int8"]["date"] != "2000-01-01T00:00:00+00:00"
    figures = [g["figure"] for g in written["goals"]]
    assert "s0.5 / dense fp32 latency, batch 32" in figures  # a goal from the kept section


# ---- GPU check, on CPU -------------------------------------------------------------------------


def test_distill_cost_times_both_losses_in_one_run():
    ds = data.synthetic(256, 100, seed=0)
    mean, std = ds.mean_std()
    result = benchlib.distill_cost(ds, mean, std, width=4, images=128, repeats=1, threads=1,
                                   device="cpu")
    assert set(result["seconds"]) == {"cross_entropy", "distillation"}
    assert result["images_per_epoch"] == 128 and result["structured"] == 0.5
    assert positive(result["distillation_over_cross_entropy"])  # a ratio; never a CI gate


def test_interrupted_fit_leaves_no_bound_method_on_the_data(tmp_path):
    """On an H200 the other-device check trained its CPU copy on the CUDA tensors: the interrupted
    fit left `train_batches` bound to the CUDA data in the instance's __dict__, which the copy
    took over. On a CPU both are CPU tensors, so the visible symptom here is the leftover
    attribute and a copy whose batches come from the copy's own tensors."""
    import gpu_paths
    from squeeze.batches import DeviceData

    rng = np.random.default_rng(0)
    ds = Dataset(rng.integers(0, 255, (64, 3, 32, 32), dtype=np.uint8),
                 rng.integers(0, 10, 64).astype(np.int64),
                 rng.integers(0, 255, (16, 3, 32, 32), dtype=np.uint8),
                 rng.integers(0, 10, 16).astype(np.int64), [str(i) for i in range(10)])
    device_data = DeviceData(ds, [0.5] * 3, [0.25] * 3, "cpu")
    gpu_paths.interrupted_fit(device_data, tmp_path / "resume.pt")
    assert "train_batches" not in vars(device_data)


def test_disk_cost_adds_up_the_files_of_the_grid(tmp_path):
    import disk_cost  # tools/disk_cost.py

    # width 16: at width 4 the int8 file's per-channel scales and graph outweigh its weights
    params = {"model": {"width": 16}, "quantize": {"types": ["fp32", "fp16", "int8"]},
              "prune": {"structured": {"amounts": [0, 0.5]}, "unstructured": {"amounts": [0, 0.5]}}}
    found = disk_cost.measure(params, tmp_path, images=(20, 10))
    s0, s5 = found["file_bytes"]["s0"], found["file_bytes"]["s0.5"]
    assert s5["float"] < s0["float"] and s0["int8"] < s0["fp16"] < s0["fp32"]
    expected = (s0["float"] + (s0["float"] + s5["float"]) * 3  # baseline, structured, 2 x unstructured
                + 2 * sum(r[q] for r in (s0, s5) for q in ("fp32", "fp16", "int8"))
                + found["dataset_bytes"])
    assert found["cache_mib"] == round(expected / 2 ** 20, 1)
    assert found["disk_mib_with_copies"] == round(2 * expected / 2 ** 20, 1)


def test_lowbit_libs_says_in_one_line_that_brevitas_is_missing(monkeypatch, capsys):
    """tools/lowbit_libs.py compares lowbit.py with brevitas, which squeeze does not require:
    without it, one line naming what to install, before any model is built."""
    import lowbit_libs

    monkeypatch.setitem(sys.modules, "brevitas", None)  # import brevitas raises ImportError
    monkeypatch.setattr(lowbit_libs.models, "build", lambda *_: pytest.fail("built a model"))
    assert lowbit_libs.main(["--steps", "1"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: brevitas is not installed; pip install")
