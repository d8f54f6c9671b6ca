"""Benchmarks: how fast squeeze is against what a user would otherwise write.

Every figure is a ratio of two things measured in the same run, interleaved (A, B, A, B, ...,
with the order rotated each round), so that load from other processes falls on both sides; the
speedup is the median of the per-round ratios. Timings follow the usual rules: warm-up, a fixed
thread count, stated batch size and device, medians of repeats. Each function returns a plain
dict for reports/bench.json; nothing here decides pass or fail on time.

A plain module beside tools/bench.py, not part of the squeeze package: the pipeline never
imports it (tests reach it through pytest's `pythonpath = ["tools", ...]`).
"""
from __future__ import annotations

import copy
import datetime
import io
import itertools
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from contextlib import contextmanager, redirect_stdout
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from squeeze import data, measure, models, prune, quantize, recovery, train
from squeeze import device as devices
from squeeze.batches import DeviceData
from squeeze.config import TrainConfig, dotted_get, dotted_set, grid, load_params
from squeeze.errors import DataError
from squeeze.prepared import Dataset


# ---- timing ---------------------------------------------------------------------------------

@contextmanager
def fixed_threads(threads: int) -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def interleaved(calls: dict[str, Callable[[], object]], repeats: int, warmup: int = 1,
                settle: float = 0.0) -> dict[str, list[float]]:
    """Seconds per call of each candidate: `warmup` untimed rounds, then `repeats` timed rounds,
    one call of every candidate per round, the order rotated each round. settle: untimed seconds
    after each call, for background work a candidate leaves behind (prefetching workers) to end
    before the next candidate is timed."""
    names = list(calls)
    for _ in range(warmup):
        for name in names:
            calls[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(repeats):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            calls[name]()
            times[name].append(time.perf_counter() - start)
            time.sleep(settle)
    return times


def paired_speedup(slow: list[float], fast: list[float]) -> float:
    """Median over rounds of slow/fast: each ratio compares two runs adjacent in time."""
    return statistics.median(s / f for s, f in zip(slow, fast))


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def loadavg() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # not on every platform
        return []


def environment(threads: int) -> dict:
    """What the figures were measured on: machine, threads, versions, date, load."""
    import torchvision

    device = devices.pick()
    env = {
        "machine": devices.cpu_name(), "platform": platform.platform(),
        "cpu_count": os.cpu_count(), "threads": threads,
        "torch": torch.__version__, "torchvision": torchvision.__version__,
        "python": platform.python_version(),
        "date": now(), "device": str(device),
        "quantized_engines": list(torch.backends.quantized.supported_engines),
        "loadavg": loadavg(),
    }
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
    return env


# ---- 1. data path -----------------------------------------------------------------------------

class ArrayImages(torch.utils.data.Dataset):
    """What torchvision.datasets.CIFAR10 does per item: uint8 array -> PIL image -> transform."""

    def __init__(self, x_nchw: np.ndarray, y: np.ndarray, transform):
        self.x = np.ascontiguousarray(x_nchw.transpose(0, 2, 3, 1))
        self.y = y
        self.transform = transform

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        from PIL import Image

        return self.transform(Image.fromarray(self.x[i])), int(self.y[i])


def conventional_transform(mean, std):
    """The usual CIFAR-10 training transform, on PIL images."""
    import torchvision.transforms as T

    return T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(),
                      T.Normalize([float(m) for m in mean], [float(s) for s in std])])


def conventional_loader(dataset, batch_size: int, workers: int) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True,
                                       num_workers=workers, persistent_workers=workers > 0)


def _forever(epochs: Callable[[], object]) -> Iterator:
    """Batches across epoch boundaries, so a round may span two epochs."""
    return itertools.chain.from_iterable(epochs() for _ in itertools.count())


def _take(batches: Iterator, count: int) -> Callable[[], None]:
    def run() -> None:
        for _ in range(count):
            next(batches)
    return run


def extract_train_split(archive: Path, dest: Path) -> Path:
    """The train/ tree of an ImageFolder .tar.gz, extracted for torchvision's ImageFolder."""
    with tarfile.open(archive, "r:*") as tar:
        members = [m for m in tar.getmembers()
                   if m.isfile() and "train" in m.name.lstrip("./").split("/")[:2]]
        tar.extractall(dest, members=members, filter="data")
    for candidate in (dest / "train", *dest.glob("*/train")):
        if candidate.is_dir():
            return candidate
    raise DataError(f"{archive}: no train/ folder in the archive")


def data_path(ds: Dataset, mean, std, *, batch_size: int = 128, batches_per_round: int = 40,
              rounds: int = 5, workers: int = 2, threads: int = 1, settle: float = 1.0,
              imagefolder: Path | None = None) -> dict:
    """Augmented training batches per second: squeeze's tensor-resident pipeline against a
    torchvision DataLoader (PIL RandomCrop + flip + ToTensor + Normalize, `workers` processes).

    The reference loader reads the same uint8 arrays the way torchvision's CIFAR10 does (no file
    decoding), so it is the fastest conventional path; `imagefolder` (a train/<class>/ tree of
    image files) adds torchvision's ImageFolder, which decodes a file per image.
    No model runs. squeeze gets `threads` (one by default: OpenMP threads stall badly on a shared
    machine) against `workers` processes. After each turn the timer waits `settle` seconds, so the
    workers' prefetching does not run during squeeze's turn; the DataLoader starts each turn with
    its prefetched batches ready (2 per worker), which favours it.
    """
    device_data = DeviceData(ds, mean, std, "cpu")
    generator = torch.Generator().manual_seed(0)
    transform = conventional_transform(mean, std)
    loaders = {"dataloader": conventional_loader(ArrayImages(ds.x_train, ds.y_train, transform),
                                                 batch_size, workers)}
    if imagefolder is not None:
        from torchvision.datasets import ImageFolder
        loaders["imagefolder"] = conventional_loader(ImageFolder(str(imagefolder), transform),
                                                     batch_size, workers)
    streams = {"squeeze": _forever(lambda: device_data.train_batches(batch_size, generator))}
    streams.update({name: _forever(lambda loader=loader: loader) for name, loader in loaders.items()})
    with fixed_threads(threads):
        times = interleaved({name: _take(s, batches_per_round) for name, s in streams.items()},
                            repeats=rounds, warmup=1, settle=settle)
    result = {
        "batch_size": batch_size, "batches_per_round": batches_per_round, "rounds": rounds,
        "workers": workers, "threads": threads, "train_images": int(len(ds.y_train)),
        "batches_per_second": {name: round(batches_per_round / statistics.median(t), 2)
                               for name, t in times.items()},
        "speedup": round(paired_speedup(times["dataloader"], times["squeeze"]), 2),
        "goal_speedup": 10,
    }
    if "imagefolder" in times:
        result["speedup_vs_imagefolder"] = round(paired_speedup(times["imagefolder"],
                                                                times["squeeze"]), 2)
    return result


# ---- 2, 3. latency: int8 and structured pruning ---------------------------------------------

def pruned_model(width: int, structured: float, seed: int = 0) -> models.ResNet18:
    """A freshly initialised ResNet-18 with `structured` of its filters removed (L1, layerwise).
    Latency depends on the widths, not on the trained values of the weights."""
    torch.manual_seed(seed)
    model = models.build(models.ResNetSpec.resnet18(width)).eval()
    return prune.prune_filters(model, structured).eval() if structured else model


def calibration_inputs(batches: int = 4, batch_size: int = 32, seed: int = 0) -> list[torch.Tensor]:
    """Normalised-image-like inputs; int8 kernel speed does not depend on their values."""
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch_size, 3, 32, 32, generator=g) for _ in range(batches)]


FX_ENGINE = "x86"  # torch.ao FX int8 (fbgemm/onednn kernels): the reference while torch has it
ENGINES = (FX_ENGINE, "onnxruntime", "openvino")


def fx_int8(model: torch.nn.Module) -> torch.nn.Module:
    """torch.ao FX static int8 of `model` on the x86 engine (per-channel symmetric weights, uint8
    activations with reduce_range): what the pipeline ran before int8 became ONNX, kept here as
    the reference. torch.ao.quantization is deprecated; its warnings are left to show."""
    from torch.ao.quantization import QConfig, get_default_qconfig_mapping
    from torch.ao.quantization.observer import MinMaxObserver, default_per_channel_weight_observer
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    qconfig = QConfig(activation=MinMaxObserver.with_args(reduce_range=True),
                      weight=default_per_channel_weight_observer)
    mapping = get_default_qconfig_mapping(FX_ENGINE).set_global(qconfig)
    torch.backends.quantized.engine = FX_ENGINE
    prepared = prepare_fx(copy.deepcopy(model).eval(), mapping, (calibration_inputs()[0],))
    with torch.no_grad():
        for x in calibration_inputs():
            prepared(x)
    return convert_fx(prepared)


def to_int8(model: torch.nn.Module, engine: str) -> torch.nn.Module:
    """An int8 copy of `model` on `engine`: x86 (torch.ao FX, the reference), or onnxruntime /
    openvino (the pipeline's int8: quantize.py's ONNX QDQ file on that runtime). The caller's
    torch.backends.quantized selection is put back (latencies() selects each model's before
    every call)."""
    if engine != FX_ENGINE:
        settings = replace(quantize.DEFAULT_INT8, engine=engine)
        return quantize.quantize(copy.deepcopy(model), "int8", calibration_inputs(), settings)
    saved = torch.backends.quantized.engine
    try:
        return fx_int8(model)
    finally:
        torch.backends.quantized.engine = saved


def _latency_calls(named_models: dict[str, tuple[torch.nn.Module, str | None]],
                   batch_size: int) -> dict[str, Callable[[], object]]:
    x = torch.randn(batch_size, 3, 32, 32, generator=torch.Generator().manual_seed(1))

    def call(model, engine):
        def run():
            if engine == FX_ENGINE:
                torch.backends.quantized.engine = engine
            with torch.no_grad():
                return model(x)
        return run

    return {name: call(model, engine) for name, (model, engine) in named_models.items()}


def latencies(named_models: dict[str, tuple[torch.nn.Module, str | None]], batch_sizes, *,
              threads: int, warmup: int, repeats: int) -> dict[int, dict[str, list[float]]]:
    """Seconds per batch of every model at every batch size, interleaved, fixed threads."""
    out = {}
    saved = torch.backends.quantized.engine
    try:
        with fixed_threads(threads):
            for b in batch_sizes:
                out[b] = interleaved(_latency_calls(named_models, b), repeats=repeats, warmup=warmup)
    finally:
        torch.backends.quantized.engine = saved
    return out


def _ms_per_image(seconds: list[float], batch_size: int) -> dict:
    return {"median": round(statistics.median(seconds) * 1000 / batch_size, 4),
            "min": round(min(seconds) * 1000 / batch_size, 4)}


def int8_latency(*, width: int = 64, structured: tuple[float, ...] = (0, 0.5),
                 batch_sizes: tuple[int, ...] = (1, 32), engines: tuple[str, ...] = ENGINES,
                 threads: int = 2, warmup: int = 3, repeats: int = 10) -> dict:
    """int8 against fp32 CPU latency for the baseline and structured amounts, per int8 engine.

    `speedup[engine][b{B}][s{S}]`: fp32 s{S} / int8 s{S}; `vs_fp32_baseline`: fp32 s0 / int8 s{S};
    `vs_fx[engine][b{B}][s{S}]`: FX int8 s{S} / int8 s{S} (when x86 is among the engines).
    """
    structured = tuple(dict.fromkeys((0, *structured)))  # the fp32 baseline is always measured
    named = {}
    for s in structured:
        float_model = pruned_model(width, s)
        named[f"fp32-s{s:g}"] = (float_model, None)
        for engine in engines:
            named[f"int8-{engine}-s{s:g}"] = (to_int8(float_model, engine), engine)
    times = latencies(named, batch_sizes, threads=threads, warmup=warmup, repeats=repeats)

    def ratios(reference: Callable[[float], str], against=engines) -> dict:
        """{engine: {"b32": {"s0.5": time of the reference model / time of int8 s0.5}}}"""
        out: dict = {}
        for engine in against:
            for b, per_model in times.items():
                out.setdefault(engine, {})[f"b{b}"] = {
                    f"s{s:g}": round(paired_speedup(per_model[reference(s)],
                                                    per_model[f"int8-{engine}-s{s:g}"]), 2)
                    for s in structured}
        return out

    return {"width": width, "threads": threads, "warmup": warmup, "repeats": repeats,
            "default_engine": quantize.DEFAULT_INT8.engine,
            "runtimes": {e: (quantize.engine_version(e) if e != FX_ENGINE
                             else f"{devices.torch_runtime()} (torch.ao FX)")
                         for e in engines},
            "ms_per_image": {f"b{b}": {n: _ms_per_image(t, b) for n, t in per_model.items()}
                             for b, per_model in times.items()},
            "speedup": ratios(lambda s: f"fp32-s{s:g}"),
            "vs_fp32_baseline": ratios(lambda s: "fp32-s0"),
            **({"vs_fx": ratios(lambda s: f"int8-{FX_ENGINE}-s{s:g}",
                                [e for e in engines if e != FX_ENGINE])}
               if FX_ENGINE in engines else {}),
            "goal": {"int8_vs_fp32_b32": 4, "s0.5_int8_vs_fp32_baseline": 14,
                     "int8_vs_fx_b1": 2.0, "int8_vs_fx_b32": 1.2}}


def structured_latency(*, width: int = 64, amounts: tuple[float, ...] = (0, 0.1, 0.3, 0.5, 0.7),
                       unstructured: float = 0.7, batch_sizes: tuple[int, ...] = (1, 32),
                       threads: int = 2, warmup: int = 3, repeats: int = 10) -> dict:
    """fp32 latency of each structured amount against the dense baseline, plus the dense
    baseline with `unstructured` of its weights zeroed: zeros stored densely cost the same
    multiply-adds, so that ratio is expected to stay near 1 and is not a speedup."""
    dense = pruned_model(width, 0)
    named = {f"s{s:g}": (pruned_model(width, s) if s else dense, None) for s in amounts}
    named.setdefault("s0", (dense, None))
    masked = copy.deepcopy(dense)
    prune.apply_masks(masked, prune.magnitude_masks(masked, unstructured))
    named[f"s0-u{unstructured:g}"] = (masked, None)
    times = latencies(named, batch_sizes, threads=threads, warmup=warmup, repeats=repeats)
    result = {"width": width, "threads": threads, "warmup": warmup, "repeats": repeats,
              "dtype": "fp32", "ms_per_image": {}, "speedup_vs_dense": {},
              "ops": {n: measure.count_ops(m) for n, (m, _) in named.items()},
              "note": (f"s0-u{unstructured:g} is magnitude pruning stored densely: "
                       f"{prune.sparsity(masked):.2f} of the weights are zero, but dense kernels "
                       "do the same work, so it is no speedup (its ratio is noise around 1)")}
    for b, per_model in times.items():
        result["ms_per_image"][f"b{b}"] = {n: _ms_per_image(t, b) for n, t in per_model.items()}
        result["speedup_vs_dense"][f"b{b}"] = {
            n: round(paired_speedup(per_model["s0"], t), 2) for n, t in per_model.items() if n != "s0"}
    return result


# ---- 4. training throughput ---------------------------------------------------------------

def training_throughput(ds: Dataset, mean, std, *, width: int, cfg: TrainConfig,
                        images: int, epochs: int = 2, test_images: int = 100,
                        device: str | None = None, threads: int = 2) -> dict:
    """Images/s of fit() on this machine's device: `images` training images per epoch; the first
    epoch is warm-up and not counted when there are more."""
    subset = data.subset(ds, images, test_images, seed=0)
    device_data = DeviceData(subset, mean, std, devices.pick(device))
    torch.manual_seed(cfg.seed)
    model = models.build(models.ResNetSpec.resnet18(width))
    with fixed_threads(threads), redirect_stdout(io.StringIO()):
        history = train.fit(model, device_data, replace(cfg, epochs=epochs),
                            name=f"bench-w{width}").history
    counted = history[1:] or history
    return {"width": width, "batch_size": cfg.batch_size, "images_per_epoch": int(len(subset.y_train)),
            "epochs_counted": len(counted), "device": str(device_data.device), "threads": threads,
            "images_per_second": round(statistics.median(r["images_per_second"] for r in counted), 1),
            "epoch_seconds": round(statistics.median(r["epoch_seconds"] for r in counted), 3)}


# ---- 4b. the cost of distillation ----------------------------------------------------------

def distill_cost(ds: Dataset, mean, std, *, width: int = 16, structured: float = 0.5,
                 images: int = 2048, repeats: int = 3, threads: int = 2,
                 device: str | None = None) -> dict:
    """Seconds of one fine-tune epoch with distillation (alpha 0.7, T 4; the teacher: the
    unpruned model) over one with cross-entropy, interleaved in one run: the per-epoch cost the
    `distill_alpha` lever adds (one teacher forward per batch)."""
    subset = data.subset(ds, images, 100, seed=0)
    device_data = DeviceData(subset, mean, std, devices.pick(device))
    torch.manual_seed(0)
    teacher = models.build(models.ResNetSpec.resnet18(width)).to(device_data.device).eval()
    student = prune.prune_filters(copy.deepcopy(teacher), structured)
    cfg = TrainConfig(epochs=1, batch_size=128, lr=0.01, momentum=0.9, weight_decay=5e-4,
                      schedule="cosine", seed=0)
    losses = {"cross_entropy": train.cross_entropy,
              "distillation": recovery.distillation_loss(teacher, 0.7, 4.0)}

    def epoch(loss_fn) -> Callable[[], object]:
        return lambda: train.fit(copy.deepcopy(student), device_data, cfg, name="bench",
                                 loss_fn=loss_fn)

    with fixed_threads(threads), redirect_stdout(io.StringIO()):
        times = interleaved({name: epoch(fn) for name, fn in losses.items()}, repeats)
    return {"width": width, "structured": structured, "images_per_epoch": int(len(subset.y_train)),
            "threads": threads, "device": str(device_data.device),
            "seconds": {k: round(statistics.median(v), 3) for k, v in times.items()},
            "distillation_over_cross_entropy": round(paired_speedup(
                times["distillation"], times["cross_entropy"]), 3)}


# ---- 5. pipeline overhead -----------------------------------------------------------------

def with_overrides(params: dict, overrides: dict) -> dict:
    """A copy of params with dotted-key overrides (`train.epochs: 1`) applied."""
    out = copy.deepcopy(params)
    for dotted, value in overrides.items():
        dotted_set(out, dotted, value)
    return out


# Every stage of the grid, on data and a model small enough that the first, real `dvc repro`
# is bounded by process start-up, not by compute.
TINY_PIPELINE = {
    "data.source": "synthetic", "data.synthetic_train_size": 64, "data.synthetic_test_size": 32,
    "model.width": 8, "train.epochs": 1, "train.batch_size": 32,
    "finetune.structured.epochs": 1, "finetune.structured.batch_size": 32,
    "finetune.unstructured.epochs": 1, "finetune.unstructured.batch_size": 32,
    "quantize.int8.calibration_batches": 1, "quantize.int8.calibration_batch_size": 16,
    "evaluate.latency_warmup": 0, "evaluate.latency_repeats": 1,
}


def child_env(**extra: str) -> dict:
    """The environment of a child dvc or python process: this interpreter's bin first on PATH (its
    dvc), no DVC analytics, no inherited PYTHONPATH, plus `extra` (e.g. SQUEEZE_DEVICE)."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "DVC_NO_ANALYTICS": "1", **extra}
    env.pop("PYTHONPATH", None)
    return env


def copy_sources(repo: Path, dest: Path) -> int:
    """The repository's files as they are in the working tree (tracked, and new files git does
    not ignore), less dvc.lock: no outputs, no cache."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=repo, check=True, capture_output=True).stdout.decode().split("\0")
    count = 0
    for rel in filter(None, listed):
        src = repo / rel
        if rel == "dvc.lock" or not src.is_file():
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / rel)
        count += 1
    return count


def _run(cmd: list[str], cwd: Path, env: dict) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed in {cwd} (exit {done.returncode}): "
                           f"{(done.stderr or done.stdout).strip()[-2000:]}")
    return seconds, done.stdout


def set_params(path: Path, overrides: dict) -> dict:
    """Apply dotted-key overrides to a params.yaml in place, keeping its comments (DVC parses
    the file once per stage, so its size is part of the overhead). Returns the new params."""
    from ruamel.yaml import YAML  # DVC's own YAML library: here only where DVC is

    round_trip = YAML()  # keeps comments; ruamel's round-trip loader builds no arbitrary objects
    document = round_trip.load(path.read_text())
    for dotted, value in overrides.items():
        parent, _, leaf = dotted.rpartition(".")
        (dotted_get(document, parent) if parent else document)[leaf] = value
    with open(path, "w") as fh:
        round_trip.dump(document, fh)
    return load_params(path)


def pipeline_overhead(repo: Path, *, overrides: dict | None = None, repeats: int = 3,
                      keep: Path | None = None) -> dict:
    """Wall time of a `dvc repro` with nothing to do, on the grid of the repository's params.yaml.

    A copy of the repository's files gets tiny data and model settings (TINY_PIPELINE, plus
    `overrides`), runs the whole pipeline once for real, then times `dvc repro` and `dvc status`
    with every stage up to date (median of `repeats`). keep: make the copy there and leave it.
    """
    import dvc
    from ruamel.yaml import main as ruamel_main

    with tempfile.TemporaryDirectory(prefix="squeeze-bench-") as tmp:
        root = Path(keep or tmp)
        root.mkdir(parents=True, exist_ok=True)
        files = copy_sources(repo, root)
        params = set_params(root / "params.yaml", {**TINY_PIPELINE, **(overrides or {})})
        structured, unstructured, quants = grid(params)
        env = {**os.environ, "PYTHONPATH": str(root / "src"), "DVC_NO_ANALYTICS": "1",
               "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        env.pop("CI", None)
        git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost"]
        for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "bench copy"]):
            _run(git + args, root, env)
        dvc_cmd = [sys.executable, "-m", "dvc"]
        first, out = _run(dvc_cmd + ["repro"], root, env)
        stages = out.count("Running stage")
        noop, status = [], []
        for _ in range(repeats):
            seconds, out = _run(dvc_cmd + ["repro"], root, env)
            if "Running stage" in out or "up to date" not in out:
                raise RuntimeError(f"a second `dvc repro` was not a no-op:\n{out[-2000:]}")
            noop.append(seconds)
            status.append(_run(dvc_cmd + ["status"], root, env)[0])
    return {"dvc": dvc.__version__,
            # DVC parses YAML with ruamel, several times faster with its C parser (ruamel.yaml.clib)
            "yaml_c_parser": ruamel_main.CParser is not None,
            "grid": {"structured": list(structured), "unstructured": list(unstructured),
                     "quant": list(quants)},
            "stages": stages, "files_copied": files, "first_repro_seconds": round(first, 1),
            "noop_repro_seconds": round(statistics.median(noop), 2),
            "noop_repro_seconds_all": [round(x, 2) for x in noop],
            "status_seconds": round(statistics.median(status), 2),
            "goal_noop_repro_seconds": 3, **({"copy": str(keep)} if keep else {})}
