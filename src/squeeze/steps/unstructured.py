"""Step prune_unstructured@<s>-<u>: magnitude pruning of a structured model, masks held through
the fine-tune. Amount 0 keeps the structured model's weights (measured again)."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from .. import checkpoint, prune, train
from ..measure import model_counts
from ..config import TrainConfig, UnstructuredConfig
from ..fsutil import write_json
from ..history import write_history
from ..names import model_name
from .common import file_sha256, load_data, measured, on, to_cpu, untrained


def run(structured: float, amount: float, prune_cfg: UnstructuredConfig,
        finetune_cfg: TrainConfig, base: Path, data_path: Path, out: Path, out_metrics: Path,
        log_path: Path, resume_path: Path, device: str | None = None) -> dict:
    model, payload = checkpoint.load_model(base)
    data = load_data(data_path, device)
    model.to(data.device)
    config = {"structured": structured, "unstructured": amount}
    if amount == 0:
        write_history(log_path, [])
        pruned = after = measured(model, data)
        training = untrained()
        epoch = payload["epoch"]
    else:
        masks = prune.magnitude_masks(model, amount, prune_cfg.scope)
        prune.apply_masks(model, masks)
        pruned = measured(model, data)
        print(f"unstructured {amount:g} on s{structured:g}: sparsity {prune.sparsity(model):.4f}, "
              f"accuracy right after pruning {pruned:.4f}", flush=True)
        result = train.fit(model, data, finetune_cfg, name=model_name(structured, amount),
                           log_path=log_path, resume_path=resume_path,
                           constraint=lambda m: prune.apply_masks(m, masks),
                           fingerprint_extra={"base": file_sha256(base), "amount": amount,
                                              "prune": asdict(prune_cfg)})
        after, training = measured(model, data), result.summary()
        config.update(prune=asdict(prune_cfg), finetune=asdict(finetune_cfg))
        epoch = finetune_cfg.epochs
    metrics = {"structured": structured, "unstructured": amount, "accuracy_pruned": pruned,
               "accuracy": after, "sparsity": round(prune.sparsity(model), 6),
               **model_counts(model), **training, **on(data)}
    checkpoint.save_model(out, to_cpu(model), config, epoch)
    write_json(out_metrics, metrics)
    return metrics
