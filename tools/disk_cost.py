"""What the default grid writes to disk at the study's size, measured from real files.

    python tools/disk_cost.py [--out reports/disk.json]

A checkpoint's size depends on the model's shape, not on its training, so every output file of
params.yaml's grid can be measured without training: the full-width ResNet-18 pruned by
`prune.prune_filters` at each structured amount, saved as the stages save it (float checkpoint,
fp16 and int8 quantized files; an unstructured model is stored densely, the size of its base).
The prepared dataset is CIFAR-10's 60,000 uint8 images as `prepare` writes them (the full split,
synthetic pixels of the same shape: np.savez stores them uncompressed).
With cache.type reflink,copy (.dvc/config) the workspace holds a second copy of every output
where the filesystem has no reflinks, so the disk a run needs is about twice the cache.
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from squeeze import checkpoint, models, prune, quantize  # noqa: E402
from squeeze.config import load_params  # noqa: E402
from squeeze.prepared import Dataset, save  # noqa: E402

MIB = 2 ** 20


def measure(params: dict, work: Path, images: tuple[int, int] = (50_000, 10_000)) -> dict:
    structured = params["prune"]["structured"]["amounts"]
    unstructured = params["prune"]["unstructured"]["amounts"]
    types = params["quantize"]["types"]
    width = params["model"]["width"]
    sizes: dict[str, dict] = {}
    torch.manual_seed(0)
    base = models.build(models.ResNetSpec.resnet18(width))
    calibration = [torch.randn(32, 3, 32, 32)]
    for s in structured:
        model = prune.prune_filters(copy.deepcopy(base), float(s)) if s else copy.deepcopy(base)
        model.eval()
        path = work / f"s{s}.pt"
        checkpoint.save_model(path, model, {}, epoch=1)
        row = {"float": path.stat().st_size}
        for quant in types:
            qmodel = quantize.quantize(copy.deepcopy(model), quant,
                                       calibration if quant == "int8" else None)
            qpath = work / f"s{s}-{quant}.pt"
            quantize.save_quantized(qpath, qmodel, model.spec, quant, {})
            row[quant] = qpath.stat().st_size
        sizes[f"s{s}"] = row
    n_train, n_test = images
    rng = np.random.default_rng(0)
    dataset = work / "dataset.npz"
    save(Dataset(rng.integers(0, 256, (n_train, 3, 32, 32), dtype=np.uint8),
                 rng.integers(0, 10, n_train).astype(np.int64),
                 rng.integers(0, 256, (n_test, 3, 32, 32), dtype=np.uint8),
                 rng.integers(0, 10, n_test).astype(np.int64), [str(i) for i in range(10)]),
         dataset)
    per_s = {s: sizes[f"s{s}"] for s in structured}
    baseline = per_s[structured[0]]["float"] if structured[0] == 0 else sizes["s0"]["float"]
    checkpoints = (baseline                                               # models/baseline.pt
                   + sum(r["float"] for r in per_s.values())              # models/structured/
                   + len(unstructured) * sum(r["float"] for r in per_s.values())  # unstructured/
                   + len(unstructured) * sum(r[q] for r in per_s.values() for q in types))
    total = checkpoints + dataset.stat().st_size
    return {"width": width, "grid": [len(structured), len(unstructured), len(types)],
            "file_bytes": sizes, "dataset_bytes": dataset.stat().st_size,
            "checkpoints_mib": round(checkpoints / MIB, 1),
            "cache_mib": round(total / MIB, 1),
            "workspace_copy_mib": round(total / MIB, 1),
            "disk_mib_with_copies": round(2 * total / MIB, 1)}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, help="write the JSON here too")
    p.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="squeeze-disk-") as tmp:
        result = measure(load_params(args.params), Path(tmp))
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    return result


if __name__ == "__main__":
    main()
