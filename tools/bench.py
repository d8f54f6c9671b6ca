"""Benchmarks: how fast squeeze is against what a user would otherwise write -> reports/bench.json.

    python tools/bench.py [--data ARCHIVE] [--out reports/bench.json] [--quick]
                            [--pipeline-overhead [--keep-copy DIR]] [--threads N]
                            [--int8-engines x86,onnxruntime,openvino]
                            [--only data_path,int8,structured,training]

Every figure is a ratio of two things measured interleaved in the same run (see benchlib.py);
the file records the machine, threads, torch version, date and load average. Goals are written
beside the figures for the reader; nothing fails on time. --pipeline-overhead runs the whole
default grid once on tiny settings in a temporary copy of the repository (several minutes on a
small CPU), then times a `dvc repro` that has nothing to do.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

import benchlib  # noqa: E402  (beside this file: tools/ is sys.path[0] when run directly)
from squeeze import data, profiles  # noqa: E402
from squeeze.config import load_params, validate  # noqa: E402
from squeeze.fsutil import read_json, write_json  # noqa: E402
from squeeze.prepared import Dataset  # noqa: E402

SECTIONS = ("data_path", "int8", "structured", "training", "distill")

# Full: the figures quoted in the README. Quick: the same code on small settings (about a minute).
SETTINGS = {
    "full": {"synthetic_images": 5000, "batches_per_round": 40, "rounds": 5, "latency_width": None,
             "train_images": 512, "quick_train_images": 2048, "train_width": None,
             "distill_images": 2048},
    "quick": {"synthetic_images": 1024, "batches_per_round": 4, "rounds": 3, "latency_width": 16,
              "warmup": 1, "repeats": 3, "train_images": 128, "quick_train_images": 256,
              "train_width": 16, "distill_images": 256},
}


def load_data(archive: str | None, synthetic_images: int) -> tuple[Dataset, str]:
    if archive is None:
        return data.synthetic(synthetic_images, 200, seed=0), f"synthetic ({synthetic_images} images)"
    return data.load_folder(Path(archive)), str(archive)


def timed(results: dict, name: str, run) -> None:
    """Run one benchmark, recording its wall time and the load average around it."""
    load_before, start = benchlib.loadavg(), time.perf_counter()
    print(f"{name} ...", flush=True)
    results[name] = {**run(), "date": benchlib.now(), "loadavg_before": load_before,
                     "loadavg_after": benchlib.loadavg(),
                     "bench_seconds": round(time.perf_counter() - start, 1)}
    print(json.dumps({name: results[name]}, indent=1), flush=True)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", help="ImageFolder .tar.gz or tree (e.g. ../shared/data/cifar10-jpeg.tar.gz); "
                                  "default: synthetic images")
    p.add_argument("--out", default=str(ROOT / "reports" / "bench.json"))
    p.add_argument("--quick", action="store_true", help="small settings: checks that it runs")
    p.add_argument("--pipeline-overhead", action="store_true",
                   help="also time a no-op `dvc repro` of the full default grid (minutes)")
    p.add_argument("--keep-copy", type=Path, help="with --pipeline-overhead: leave the pipeline's "
                                                  "copy in this folder (for profiling DVC)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: evaluate.latency_threads)")
    p.add_argument("--int8-engines", default=",".join(benchlib.ENGINES),
                   help="comma-separated int8 engines to time: x86 (torch.ao FX, the reference), "
                        "onnxruntime, openvino")
    p.add_argument("--only", help=f"comma-separated subset of {','.join(SECTIONS)}; the other "
                                  "sections of an existing --out file are kept, each with its date")
    args = p.parse_args(argv)

    params = load_params(ROOT / "params.yaml")
    cfg = validate(params)
    settings = {"warmup": cfg.evaluate.latency_warmup, "repeats": cfg.evaluate.latency_repeats,
                **SETTINGS["quick" if args.quick else "full"]}
    threads = args.threads or cfg.evaluate.latency_threads
    only = set(args.only.split(",")) if args.only else set(SECTIONS)
    width = settings["latency_width"] or cfg.model.width
    structured, unstructured_amounts, _ = cfg.grid
    unstructured = max(unstructured_amounts)
    latency = {"width": width, "threads": threads, "warmup": settings["warmup"],
               "repeats": settings["repeats"]}

    started = time.perf_counter()
    results: dict = {"environment": benchlib.environment(threads), "mode": "quick" if args.quick else "full"}
    if args.only and Path(args.out).is_file():
        kept = read_json(args.out)
        for name in (*SECTIONS, "pipeline_overhead"):
            if name in kept:
                results[name] = {"date": kept["environment"]["date"], **kept[name]}
    ds, source = load_data(args.data, settings["synthetic_images"])
    mean, std = ds.mean_std()
    results["data"] = source

    with tempfile.TemporaryDirectory(prefix="squeeze-bench-") as tmp:
        if "data_path" in only:
            folder = (benchlib.extract_train_split(Path(args.data), Path(tmp))
                      if args.data and not args.quick else None)
            timed(results, "data_path", lambda: benchlib.data_path(
                ds, mean, std, batch_size=cfg.train.batch_size,
                batches_per_round=settings["batches_per_round"], rounds=settings["rounds"],
                imagefolder=folder))
    if "structured" in only:
        timed(results, "structured", lambda: benchlib.structured_latency(
            amounts=structured, unstructured=unstructured, **latency))
    if "training" in only:
        timed(results, "training", lambda: training(params, ds, mean, std, settings, threads))
    if "distill" in only:
        timed(results, "distill", lambda: benchlib.distill_cost(
            ds, mean, std, images=settings["distill_images"], repeats=settings["repeats"],
            threads=threads))
    if args.pipeline_overhead:
        timed(results, "pipeline_overhead", lambda: benchlib.pipeline_overhead(ROOT, keep=args.keep_copy))
    elif "noop_repro_seconds" not in results.get("pipeline_overhead", {}):
        results["pipeline_overhead"] = {"skipped": "run with --pipeline-overhead (minutes)"}
    # last: once OpenVINO has run in a process, a fork in it (a DataLoader's workers, a
    # subprocess) has crashed it, so nothing that forks comes after
    if "int8" in only:
        timed(results, "int8", lambda: benchlib.int8_latency(
            structured=(0, 0.5), engines=tuple(args.int8_engines.split(",")), **latency))
    results["loadavg_end"] = benchlib.loadavg()
    results["bench_seconds"] = round(time.perf_counter() - started, 1)
    results["goals"] = goals(results)
    write_json(args.out, results)
    print(f"wrote {args.out}", flush=True)
    return results


def goals(results: dict) -> list[dict]:
    """Each headline figure beside the issue's goal, for the README (informative, never a gate)."""
    rows = []

    def row(figure: str, value, goal: str, met) -> None:
        rows.append({"figure": figure, "value": value, "goal": goal, "met": met})

    if "data_path" in results:
        x = results["data_path"]["speedup"]
        row("data path: squeeze / torchvision DataLoader, batches/s", x, ">= 10", x >= 10)
    if "int8" in results:
        r = results["int8"]
        engine = r["default_engine"]
        if "b32" in r["speedup"].get(engine, {}):
            x = r["speedup"][engine]["b32"]["s0"]
            row(f"int8 ({engine}) / fp32 latency, batch 32", x, ">= 4", x >= 4)
            x = r["vs_fp32_baseline"][engine]["b32"]["s0.5"]
            row(f"s0.5 + int8 ({engine}) / fp32 baseline latency, batch 32", x, ">= 14", x >= 14)
        for b, goal in (("b1", 2.0), ("b32", 1.2)):
            if b in r.get("vs_fx", {}).get(engine, {}):
                x = r["vs_fx"][engine][b]["s0"]
                row(f"int8 ({engine}) / FX int8 latency, batch {b[1:]}", x, f">= {goal}", x >= goal)
    if "structured" in results:
        for name, x in results["structured"]["speedup_vs_dense"].get("b32", {}).items():
            dense_zeros = "-u" in name
            row(f"{name} / dense fp32 latency, batch 32", x,
                "none (zeros stored densely: no speedup claimed)" if dense_zeros else "none", None)
    for name, r in results.get("training", {}).items():
        if isinstance(r, dict) and "images_per_second" in r:
            row(f"fit() images/s, {name} (width {r['width']}, {r['device']})",
                r["images_per_second"], "none", None)
    if "noop_repro_seconds" in results.get("pipeline_overhead", {}):
        x = results["pipeline_overhead"]["noop_repro_seconds"]
        row(f"no-op `dvc repro`, {results['pipeline_overhead']['stages']} stages, seconds", x,
            "< 3", x < 3)
    return rows


def training(params: dict, ds, mean, std, settings: dict, threads: int) -> dict:
    """fit() images/s at the baseline width (the study's recipe) and with the quick profile."""
    quick = benchlib.with_overrides(params, profiles.load("quick", ROOT / "profiles"))
    out = {}
    for name, p, images in (("baseline", params, settings["train_images"]),
                            ("quick_profile", quick, settings["quick_train_images"])):
        parsed = validate(p)
        width = parsed.model.width
        if name == "baseline" and settings["train_width"]:
            width = settings["train_width"]
        cfg = parsed.train
        out[name] = benchlib.training_throughput(ds, mean, std, width=width, cfg=cfg,
                                                 images=images, threads=threads)
    return out


if __name__ == "__main__":
    main()
