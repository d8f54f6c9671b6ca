"""Step sensitivity: Li et al.'s per-group sensitivity of the baseline (see sensitivity.py)."""
from __future__ import annotations

from pathlib import Path

from .. import checkpoint, sensitivity
from ..config import SensitivityConfig
from .common import load_data


def run(cfg: SensitivityConfig, criterion: str, base: Path, data_path: Path, out: Path,
        device: str | None = None) -> list[dict]:
    model, _ = checkpoint.load_model(base)
    data = load_data(data_path, device)
    model.to(data.device)
    rows = sensitivity.analyse(model, data, cfg.amounts, criterion, cfg.images)
    sensitivity.write(rows, out)
    return rows
