"""Step sensitivity: Li et al.'s per-group sensitivity of the baseline (see sensitivity.py)."""
from __future__ import annotations

from .. import checkpoint, sensitivity
from ..config import SensitivityConfig
from ..paths import StagePaths
from .common import load_data


def run(cfg: SensitivityConfig, criterion: str, paths: StagePaths,
        device: str | None = None) -> list[dict]:
    model, _ = checkpoint.load_model(paths.base)
    data = load_data(paths.data, device)
    model.to(data.device)
    rows = sensitivity.analyse(model, data, cfg.amounts, criterion, cfg.images)
    sensitivity.write(rows, paths.out)
    return rows
