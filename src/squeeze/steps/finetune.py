"""What the structured and unstructured steps share: prune, measure, (recalibrate, measure),
fine-tune (optionally distilled), measure, save; optionally in several rounds."""
from __future__ import annotations

from dataclasses import asdict, replace
from typing import Callable

from torch import nn

from .. import checkpoint, recovery, train
from ..config import FinetuneConfig
from ..fsutil import write_json
from ..history import write_history
from ..measure import model_counts, sparsity
from ..paths import StagePaths
from .common import file_sha256, load_data, measured, on, to_cpu, untrained

# prune(model, round, rounds) prunes in place to round/rounds of the stage's amount and returns
# the constraint to hold through the fine-tune (or None)
Pruner = Callable[[nn.Module, int, int], Callable | None]


def round_epochs(epochs: int, rounds: int) -> list[int]:
    """The fine-tune epochs split over the rounds, the later rounds taking any remainder."""
    base, extra = divmod(epochs, rounds)
    return [base + (1 if i >= rounds - extra else 0) for i in range(rounds)]


def prune_then_finetune(*, amount: float, prune: Pruner, prune_cfg, finetune_cfg: FinetuneConfig,
                        name: str, paths: StagePaths, identity: dict, rounds: int = 1,
                        device: str | None = None, details: dict | None = None) -> dict:
    """The structured and unstructured steps: load `paths.base`, prune it, measure it right after
    pruning (raw, and after BatchNorm recalibration when finetune.*.recalibrate_batches > 0),
    fine-tune (distilled from `base` when distill_alpha > 0), measure, save. With rounds > 1 the
    pruning and the fine-tune epochs are split over the rounds (no mid-run resume then). Amount 0
    keeps the weights (measured again, so the metrics file is this stage's own). `identity` (the
    amounts) heads the metrics file and the checkpoint's config; `details` (what the pruner
    recorded while it pruned) follows the accuracies."""
    model, payload = checkpoint.load_model(paths.base)
    data = load_data(paths.data, device)
    model.to(data.device)
    config = dict(identity)
    recalibrated = None  # stays None at amount 0: nothing was pruned
    if amount == 0:
        write_history(paths.log, [])
        pruned = after = measured(model, data)
        training, epoch = untrained(), payload["epoch"]
    else:
        loss_fn = (recovery.distillation_loss(model, finetune_cfg.distill_alpha,
                                              finetune_cfg.distill_temperature)
                   if finetune_cfg.distill_alpha > 0 else train.cross_entropy)
        run_id = {"base": file_sha256(paths.base), "amount": amount, "prune": asdict(prune_cfg)}
        history: list[dict] = []
        walls: list[float] = []
        for index, epochs in enumerate(round_epochs(finetune_cfg.epochs, rounds), start=1):
            constraint = prune(model, index, rounds)
            accuracy, recalibrated_now = measured(model, data), None
            if finetune_cfg.recalibrate_batches:
                recovery.recalibrate_batchnorm(model, data, finetune_cfg.recalibrate_batches,
                                               finetune_cfg.batch_size, seed=finetune_cfg.seed)
                recalibrated_now = measured(model, data)
            if index == 1:  # right after the first pruning: what the fine-tune starts from
                pruned, recalibrated = accuracy, recalibrated_now
            print(f"{name} round {index}/{rounds}: accuracy right after pruning {accuracy:.4f}"
                  + ("" if recalibrated_now is None else f", recalibrated {recalibrated_now:.4f}"),
                  flush=True)
            result = train.fit(
                model, data, replace(finetune_cfg, epochs=epochs), name=name,
                log_path=None if rounds > 1 else paths.log,
                resume_path=None if rounds > 1 else paths.resume, constraint=constraint,
                loss_fn=loss_fn, fingerprint_extra=run_id)
            history += [{**row, "epoch": len(history) + i + 1}
                        for i, row in enumerate(result.history)]
            walls += result.epoch_wall_seconds
            if rounds > 1:
                write_history(paths.log, history)
        after, epoch = measured(model, data), finetune_cfg.epochs
        training = train.FitResult(history=history, epoch_wall_seconds=walls).summary()
        config.update(prune=asdict(prune_cfg), finetune=asdict(finetune_cfg))
    metrics = {**identity, "accuracy_pruned": pruned, "accuracy_recalibrated": recalibrated,
               "accuracy": after, **(details or {}), "sparsity": round(sparsity(model), 6),
               **model_counts(model),
               **training, **on(data)}
    checkpoint.save_model(paths.out, to_cpu(model), config, epoch,
                          preprocess=payload.get("preprocess") or data.preprocess)
    write_json(paths.metrics, metrics)
    return metrics
