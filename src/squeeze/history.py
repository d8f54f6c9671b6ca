"""The per-epoch training log: one CSV per run, written by train.fit, read by the report and by
`dvc plots`. Kept apart from train (which needs torch) so the report reads it without torch."""
from __future__ import annotations

import csv
from pathlib import Path

from .fsutil import write_text

HISTORY_COLUMNS = ("epoch", "train_loss", "train_accuracy", "test_accuracy", "lr",
                   "epoch_seconds", "images_per_second")


def write_history(path: Path, history: list[dict]) -> None:
    """Per-epoch log as CSV, the shape `dvc plots` reads."""
    lines = [",".join(HISTORY_COLUMNS)]
    lines += [",".join(str(row[c]) for c in HISTORY_COLUMNS) for row in history]
    write_text(path, "\n".join(lines) + "\n")


def read_history(path: Path) -> list[dict]:
    """The rows write_history wrote, numbers parsed (none where nothing was trained)."""
    with open(path, newline="") as fh:
        return [{c: _number(line[c]) for c in HISTORY_COLUMNS} for line in csv.DictReader(fh)]


def _number(text: str) -> float | int:
    return int(text) if text.isdigit() else float(text)
