"""GPU check: the full-width ResNet-18 on real CIFAR-10 for as many epochs as fit in a time budget,
then one structured prune (0.5) with a 1-epoch fine-tune, and its fp32, fp16 and int8 evaluation.

    bash tools/gpu-check.sh ARCHIVE OUTDIR [--paths] [--tiny] [--budget-seconds 300] [--max-epochs 200]

--paths first runs tools/gpu_paths.py's checks of the device paths at tiny width (resume,
masks, a resume file from the other device, evaluation, fp16, int8 on CPU after device training)
and exits 1 when one fails, after writing the summary.

Runs the pipeline's own step functions (squeeze.steps, what stages/*.py call), not DVC, so it
needs only torch, torchvision, numpy, pyyaml and torch-pruning (gpu-check.sh finds a wheel of
it). Prints one JSON summary and writes it, with the per-epoch logs, into OUTDIR.

Epochs: the cosine schedule needs its length up front, so a throwaway 2-epoch probe times one
warm epoch (training, evaluation and the resume checkpoint, as in the real run), and the run gets
floor(budget / that) epochs, at most --max-epochs. The recipe is params.yaml's `train` section
with only `epochs` changed; the fine-tune is `finetune.structured` with 1 epoch.
--tiny: width 4 on a few hundred images with a 2-epoch cap, so that a CPU test can run every
line of this script in seconds.
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tools"))

import torch  # noqa: E402

from squeeze import data, models, prepared, train  # noqa: E402
from squeeze import device as devices  # noqa: E402
from squeeze.batches import DeviceData  # noqa: E402
from squeeze.config import load_params, validate  # noqa: E402
from squeeze.fsutil import write_json  # noqa: E402
from squeeze.paths import StagePaths  # noqa: E402
from squeeze.steps import baseline as baseline_step  # noqa: E402
from squeeze.steps import quantized as quantized_step  # noqa: E402
from squeeze.steps import structured as structured_step  # noqa: E402

import gpu_paths  # noqa: E402  (tools/, beside this file)

STRUCTURED = 0.5
GOAL_SECONDS_PER_EPOCH = 3.0  # on an H200 at batch 128: the 200-epoch baseline in 10 minutes
TINY = {"width": 4, "train_images": 256, "test_images": 64, "budget_seconds": 2.0, "max_epochs": 2}


def configs(params: dict, tiny: bool) -> dict:
    parsed = validate(params)
    cfg = {
        "model": parsed.model,
        "train": parsed.train,
        "prune": parsed.prune.structured,
        "finetune": replace(parsed.finetune.structured, epochs=1),
        "int8": parsed.quantize.int8,
        "evaluate": parsed.evaluate,
    }
    if tiny:
        cfg["model"] = replace(cfg["model"], width=TINY["width"])
        cfg["int8"] = replace(cfg["int8"], calibration_batches=1, calibration_batch_size=32)
        cfg["evaluate"] = replace(cfg["evaluate"], latency_warmup=0, latency_repeats=1)
    return cfg


def prepare(archive: Path, out: Path, tiny: bool) -> dict:
    ds = data.load_folder(archive)
    if tiny:
        ds = data.subset(ds, TINY["train_images"], TINY["test_images"], seed=0)
    prepared.save(ds, out)
    return {"train_images": int(len(ds.y_train)), "test_images": int(len(ds.y_test))}


def probe_epoch_seconds(cfg: dict, data_path: Path, work: Path) -> float:
    """Wall seconds of one warm epoch of the baseline run, from a throwaway 2-epoch fit."""
    device_data = DeviceData.from_file(data_path, devices.pick())
    torch.manual_seed(cfg["train"].seed)
    model = models.build(models.ResNetSpec.resnet18(cfg["model"].width, cfg["model"].num_classes))
    start = time.perf_counter()
    history = train.fit(model, device_data, replace(cfg["train"], epochs=2), name="probe",
                        log_path=work / "probe.csv", resume_path=work / "probe-resume.pt").history
    wall = time.perf_counter() - start
    first, second = (row["epoch_seconds"] for row in history)
    del model, device_data
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    # evaluation and checkpointing, split evenly (the first epoch's warm-up makes this generous)
    return second + (wall - first - second) / 2


def read_history(path: Path) -> list[dict]:
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    return [dict(zip(header, map(float, line.split(",")))) for line in lines[1:]]


def baseline_summary(history: list[dict], metrics: dict, epochs: int, train_seconds: float,
                     cfg: dict, budget: float, probe: float, on_gpu: bool) -> dict:
    """The baseline's timing, judged on whole epochs (training, evaluation, log and resume
    checkpoint: metrics' epoch_wall_seconds, the median after the first) against the goal."""
    warm = history[1:] or history  # the first epoch pays for warm-up (cuDNN, allocator)
    seconds_per_epoch = metrics["epoch_wall_seconds"]
    return {
        "width": cfg["model"].width, "batch_size": cfg["train"].batch_size, "epochs": epochs,
        "budget_seconds": budget, "probe_epoch_wall_seconds": round(probe, 3),
        "first_epoch_seconds": history[0]["epoch_seconds"],
        "seconds_per_epoch": seconds_per_epoch,
        "training_seconds_per_epoch": round(statistics.median(r["epoch_seconds"] for r in warm), 3),
        "images_per_second": round(statistics.median(r["images_per_second"] for r in warm), 1),
        "train_wall_seconds": round(train_seconds, 1),
        "projected_200_epochs_seconds": round(200 * train_seconds / epochs, 1),
        "test_accuracy": history[-1]["test_accuracy"],
        "goal_seconds_per_epoch": GOAL_SECONDS_PER_EPOCH,
        "meets_goal": (seconds_per_epoch <= GOAL_SECONDS_PER_EPOCH) if on_gpu else None,
    }


def environment() -> dict:
    device = devices.pick()
    env = {"device": str(device), "torch": torch.__version__,
           "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "cpu_threads": torch.get_num_threads()}
    if device.type == "cuda":
        env.update(gpu=torch.cuda.get_device_name(device), cuda=torch.version.cuda)
    return env


def run(archive: Path, outdir: Path, work: Path, tiny: bool, budget: float, max_epochs: int,
        paths: bool = False) -> dict:
    started = time.perf_counter()
    seconds = {}
    cfg = configs(load_params(ROOT / "params.yaml"), tiny)
    summary = {**environment(), "tiny": tiny, "data": str(archive)}

    mark = time.perf_counter()
    data_path = work / "dataset.npz"
    summary.update(prepare(archive, data_path, tiny))
    seconds["prepare"] = time.perf_counter() - mark

    if paths:
        mark = time.perf_counter()
        summary["paths"] = gpu_paths.check(data_path, work / "paths", cfg["evaluate"])
        seconds["paths"] = time.perf_counter() - mark

    mark = time.perf_counter()
    probe = probe_epoch_seconds(cfg, data_path, work)
    epochs = max(1, min(max_epochs, math.floor(budget / probe)))
    seconds["probe"] = time.perf_counter() - mark

    mark = time.perf_counter()
    baseline, baseline_log = work / "baseline.pt", outdir / "baseline.csv"
    baseline_step.run(cfg["model"], replace(cfg["train"], epochs=epochs),
                      StagePaths(data_path, baseline, work / "baseline.json", baseline_log,
                                 work / "train-resume.pt"))
    seconds["train"] = time.perf_counter() - mark
    summary["baseline"] = baseline_summary(
        read_history(baseline_log), json.loads((work / "baseline.json").read_text()), epochs,
        seconds["train"], cfg, budget, probe, summary["device"].startswith("cuda"))

    mark = time.perf_counter()
    pruned = work / f"s{STRUCTURED:g}.pt"
    metrics = structured_step.run(STRUCTURED, cfg["prune"], cfg["finetune"], StagePaths(
        data_path, pruned, work / f"s{STRUCTURED:g}.json", outdir / f"s{STRUCTURED:g}.csv",
        work / "prune-resume.pt", base=baseline))
    seconds["prune_finetune"] = time.perf_counter() - mark
    summary[f"s{STRUCTURED:g}"] = {"finetune_epochs": cfg["finetune"].epochs,
                                   "accuracy_pruned": round(metrics["accuracy_pruned"], 4),
                                   "accuracy": round(metrics["accuracy"], 4), "quantized": {}}

    mark = time.perf_counter()
    for quant in ("fp32", "fp16", "int8"):
        if quant == "int8" and (missing := gpu_paths.int8_missing(cfg["int8"].engine)):
            summary[f"s{STRUCTURED:g}"]["quantized"][quant] = {"skipped": missing}
            continue
        m = quantized_step.run(STRUCTURED, 0.0, quant, cfg["int8"] if quant == "int8" else None,
                               cfg["evaluate"], StagePaths(data_path, work / f"q-{quant}.pt",
                                                           work / f"q-{quant}.json", base=pruned))
        summary[f"s{STRUCTURED:g}"]["quantized"][quant] = {
            k: m[k] for k in ("accuracy", "device", "precision", "params", "ops", "score",
                              "latency_ms_b1", "latency_ms_b32", "latency_threads", "cpu")}
    seconds["quantize_evaluate"] = time.perf_counter() - mark
    seconds["total"] = time.perf_counter() - started
    summary["seconds"] = {k: round(v, 1) for k, v in seconds.items()}
    return summary


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("archive", type=Path, help="CIFAR-10 as an ImageFolder .tar.gz (or tree)")
    p.add_argument("outdir", type=Path, help="where gpu-check.json and the epoch logs go")
    p.add_argument("--tiny", action="store_true", help="tiny settings (CPU test)")
    p.add_argument("--paths", action="store_true",
                   help="first exercise the device paths at tiny width (tools/gpu_paths.py)")
    p.add_argument("--budget-seconds", type=float, help="baseline training budget (default 300)")
    p.add_argument("--max-epochs", type=int, help="cap on baseline epochs (default 200)")
    p.add_argument("--workdir", type=Path, help="keep checkpoints here (default: a temp dir)")
    args = p.parse_args(argv)
    if not args.archive.exists():
        p.error(f"{args.archive} does not exist; expected CIFAR-10 as an ImageFolder .tar.gz")
    budget = args.budget_seconds or (TINY["budget_seconds"] if args.tiny else 300.0)
    max_epochs = args.max_epochs or (TINY["max_epochs"] if args.tiny else 200)
    args.outdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="squeeze-gpu-check-") as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        summary = run(args.archive, args.outdir, work, args.tiny, budget, max_epochs, args.paths)
    write_json(args.outdir / "gpu-check.json", summary)
    print(json.dumps(summary, indent=2), flush=True)
    failed = [name for name, found in summary.get("paths", {}).items() if not found["ok"]]
    if failed:
        print(f"error: device paths failed: {', '.join(failed)} (see gpu-check.json)",
              file=sys.stderr)
        sys.exit(1)
    return summary


if __name__ == "__main__":
    main()
