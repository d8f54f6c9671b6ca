"""Step prune_unstructured@<s>-<u>: magnitude pruning of a structured model, masks held through
the fine-tune."""
from __future__ import annotations

from .. import prune
from ..config import FinetuneConfig, UnstructuredConfig
from ..names import model_name
from ..paths import StagePaths
from .finetune import prune_then_finetune


def run(structured: float, amount: float, prune_cfg: UnstructuredConfig,
        finetune_cfg: FinetuneConfig, paths: StagePaths, device: str | None = None) -> dict:

    def prune_weights(model, _index: int, _rounds: int):
        masks = prune.magnitude_masks(model, amount, prune_cfg.scope)
        prune.apply_masks(model, masks)
        return lambda m: prune.apply_masks(m, masks)  # pruned weights stay exactly zero

    return prune_then_finetune(
        amount=amount, prune=prune_weights, prune_cfg=prune_cfg, finetune_cfg=finetune_cfg,
        name=model_name(structured, amount), paths=paths, identity={"structured": structured, "unstructured": amount}, device=device)
