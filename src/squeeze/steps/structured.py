"""Step prune_structured@<s>: filter pruning of the baseline at one amount, then a fine-tune."""
from __future__ import annotations

from pathlib import Path

from .. import prune, sensitivity
from ..config import ConfigError, FinetuneConfig, StructuredConfig
from ..names import model_name
from ..paths import StagePaths
from .finetune import prune_then_finetune


def spared_groups(prune_cfg: StructuredConfig, amount: float,
                  sensitivity_path: Path | None) -> list[str]:
    """The filter groups this stage leaves whole: those the sensitivity analysis finds losing
    more than prune.structured.spare_drop when pruned alone at `amount` (none when it is 0)."""
    if prune_cfg.spare_drop == 0 or amount == 0:
        return []
    if sensitivity_path is None or not Path(sensitivity_path).is_file():
        raise ConfigError(f"prune.structured.spare_drop is {prune_cfg.spare_drop:g} but the "
                          f"sensitivity analysis {sensitivity_path} is missing: run the "
                          "sensitivity stage first (dvc repro does)")
    return sensitivity.sensitive(sensitivity.read(sensitivity_path), amount, prune_cfg.spare_drop)


def run(amount: float, prune_cfg: StructuredConfig, finetune_cfg: FinetuneConfig,
        paths: StagePaths, device: str | None = None) -> dict:
    spared = spared_groups(prune_cfg, amount, paths.sensitivity)
    options = dict(scope=prune_cfg.scope, criterion=prune_cfg.criterion, seed=finetune_cfg.seed,
                   layers=prune_cfg.layers, spare=spared, round_to=prune_cfg.round_to,
                   max_layer_amount=prune_cfg.max_layer_amount,
                   residual_scale=prune_cfg.residual_scale)
    details = {"target": prune_cfg.target, "spared": spared, "channel_ratios": []}
    full: dict = {}

    def prune_filters(model, index: int, rounds: int):
        # round r removes so that r/rounds of `amount` of the original channels (or of the
        # original params or ops) are gone
        before, target = amount * (index - 1) / rounds, amount * index / rounds
        if prune_cfg.target == "channels":
            ratio = amount if rounds == 1 else 1 - (1 - target) / (1 - before)
        else:
            count = prune.TARGET_COUNTS[prune_cfg.target]
            full.setdefault("count", count(model))
            upper = prune_cfg.max_layer_amount if prune_cfg.scope == "global" else 0.99
            try:
                ratio = prune.ratio_for(model, round(full["count"] * (1 - target)),
                                        prune_cfg.target, upper=upper, **options)
            except ValueError as err:
                raise ConfigError(f"params.yaml: prune.structured.amounts contains {amount:g} "
                                  f"with target: {prune_cfg.target}: {err}") from None
        try:
            prune.prune_filters(model, ratio, **options)
        except ValueError as err:  # an amount or round_to this width cannot take
            raise ConfigError(f"params.yaml: prune.structured: {err}") from None
        details["channel_ratios"].append(round(ratio, 6))
        print(f"{model_name(amount)} round {index}/{rounds}: channel ratio {ratio:.4f}"
              + (f", spared {', '.join(spared)}" if spared else ""), flush=True)
        return None  # filters are gone: nothing to hold during the fine-tune

    return prune_then_finetune(
        amount=amount, prune=prune_filters, prune_cfg=prune_cfg, finetune_cfg=finetune_cfg,
        name=model_name(amount), paths=paths, identity={"structured": amount}, rounds=prune_cfg.rounds, device=device,
        details=details)
