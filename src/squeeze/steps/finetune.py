"""What the structured and unstructured steps share: prune, measure, fine-tune, measure, save."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Callable

from torch import nn

from .. import checkpoint, train
from ..config import TrainConfig
from ..fsutil import write_json
from ..history import write_history
from ..measure import model_counts
from ..prune import sparsity
from .common import file_sha256, load_data, measured, on, to_cpu, untrained


def prune_then_finetune(*, amount: float, prune: Callable[[nn.Module], Callable | None],
                        prune_cfg, finetune_cfg: TrainConfig, name: str, base: Path,
                        data_path: Path, out: Path, out_metrics: Path, log_path: Path,
                        resume_path: Path, identity: dict, device: str | None = None) -> dict:
    """The structured and unstructured steps: load `base`, prune it (`prune(model)` works in place
    and returns the constraint to hold through the fine-tune, or None), measure, fine-tune,
    measure, save. Amount 0 keeps the weights (measured again, so the metrics file is this
    stage's own). `identity` (the amounts) heads the metrics file and the checkpoint's config."""
    model, payload = checkpoint.load_model(base)
    data = load_data(data_path, device)
    model.to(data.device)
    config = dict(identity)
    if amount == 0:
        write_history(log_path, [])
        pruned = after = measured(model, data)
        training, epoch = untrained(), payload["epoch"]
    else:
        constraint = prune(model)
        pruned = measured(model, data)
        print(f"{name}: accuracy right after pruning {pruned:.4f}", flush=True)
        result = train.fit(model, data, finetune_cfg, name=name, log_path=log_path,
                           resume_path=resume_path, constraint=constraint,
                           fingerprint_extra={"base": file_sha256(base), "amount": amount,
                                              "prune": asdict(prune_cfg)})
        after, training, epoch = measured(model, data), result.summary(), finetune_cfg.epochs
        config.update(prune=asdict(prune_cfg), finetune=asdict(finetune_cfg))
    metrics = {**identity, "accuracy_pruned": pruned, "accuracy": after,
               "sparsity": round(sparsity(model), 6), **model_counts(model), **training,
               **on(data)}
    checkpoint.save_model(out, to_cpu(model), config, epoch)
    write_json(out_metrics, metrics)
    return metrics
