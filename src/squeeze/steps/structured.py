"""Step prune_structured@<s>: filter pruning of the baseline at one amount, then a fine-tune.

Amount 0 keeps the baseline's weights (measured again, so the metrics file is this stage's own).
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from .. import checkpoint, prune, train
from ..measure import model_counts
from ..config import StructuredConfig, TrainConfig
from ..fsutil import write_json
from ..history import write_history
from ..names import model_name
from .common import file_sha256, load_data, measured, on, to_cpu, untrained


def run(amount: float, prune_cfg: StructuredConfig, finetune_cfg: TrainConfig, base: Path,
        data_path: Path, out: Path, out_metrics: Path, log_path: Path, resume_path: Path,
        device: str | None = None) -> dict:
    amount = prune_cfg.check_amount(amount)
    model, payload = checkpoint.load_model(base)
    data = load_data(data_path, device)
    model.to(data.device)
    config = {"structured": amount}
    if amount == 0:
        write_history(log_path, [])
        pruned = after = measured(model, data)
        training = untrained()
        epoch = payload["epoch"]
    else:
        prune.prune_filters(model, amount, prune_cfg.scope, prune_cfg.criterion,
                            seed=finetune_cfg.seed)
        pruned = measured(model, data)
        print(f"structured {amount:g}: accuracy right after pruning {pruned:.4f}", flush=True)
        result = train.fit(model, data, finetune_cfg, name=model_name(amount), log_path=log_path,
                           resume_path=resume_path,
                           fingerprint_extra={"base": file_sha256(base), "amount": amount,
                                              "prune": asdict(prune_cfg)})
        after, training = measured(model, data), result.summary()
        config.update(prune=asdict(prune_cfg), finetune=asdict(finetune_cfg))
        epoch = finetune_cfg.epochs
    metrics = {"structured": amount, "accuracy_pruned": pruned, "accuracy": after,
               **model_counts(model), **training, **on(data)}
    checkpoint.save_model(out, to_cpu(model), config, epoch)
    write_json(out_metrics, metrics)
    return metrics
