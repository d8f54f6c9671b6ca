"""Step prune_structured@<s>: filter pruning of the baseline at one amount, then a fine-tune."""
from __future__ import annotations

from pathlib import Path

from .. import prune
from ..config import StructuredConfig, TrainConfig
from ..names import model_name
from .finetune import prune_then_finetune


def run(amount: float, prune_cfg: StructuredConfig, finetune_cfg: TrainConfig, base: Path,
        data_path: Path, out: Path, out_metrics: Path, log_path: Path, resume_path: Path,
        device: str | None = None) -> dict:
    amount = prune_cfg.check_amount(amount)

    def prune_filters(model):
        prune.prune_filters(model, amount, prune_cfg.scope, prune_cfg.criterion,
                            seed=finetune_cfg.seed)
        return None  # filters are gone: nothing to hold during the fine-tune

    return prune_then_finetune(
        amount=amount, prune=prune_filters, prune_cfg=prune_cfg, finetune_cfg=finetune_cfg,
        name=model_name(amount), base=base, data_path=data_path, out=out,
        out_metrics=out_metrics, log_path=log_path, resume_path=resume_path,
        identity={"structured": amount}, device=device)
