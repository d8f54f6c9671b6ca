"""Step prune_structured@<s>: filter pruning of the baseline at one amount, then a fine-tune."""
from __future__ import annotations

from pathlib import Path

from .. import prune
from ..config import FinetuneConfig, StructuredConfig
from ..names import model_name
from .finetune import prune_then_finetune


def run(amount: float, prune_cfg: StructuredConfig, finetune_cfg: FinetuneConfig, base: Path,
        data_path: Path, out: Path, out_metrics: Path, log_path: Path, resume_path: Path,
        device: str | None = None) -> dict:
    amount = prune_cfg.check_amount(amount)

    def prune_filters(model, index: int, rounds: int):
        # round r removes channels so that r/rounds of `amount` of the original ones are gone
        before, target = amount * (index - 1) / rounds, amount * index / rounds
        ratio = amount if rounds == 1 else 1 - (1 - target) / (1 - before)
        prune.prune_filters(model, ratio, prune_cfg.scope, prune_cfg.criterion,
                            seed=finetune_cfg.seed, layers=prune_cfg.layers)
        return None  # filters are gone: nothing to hold during the fine-tune

    return prune_then_finetune(
        amount=amount, prune=prune_filters, prune_cfg=prune_cfg, finetune_cfg=finetune_cfg,
        name=model_name(amount), base=base, data_path=data_path, out=out,
        out_metrics=out_metrics, log_path=log_path, resume_path=resume_path,
        identity={"structured": amount}, rounds=prune_cfg.rounds, device=device)
