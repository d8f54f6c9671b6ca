"""The sensitivity stage's CSV (one row per filter group and amount): written by
sensitivity.py, read by it (which groups to spare) and by the report (its table and figure).
No torch, so the report can read it."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Mapping, Sequence

from .fsutil import write_text

COLUMNS = ("group", "convs", "channels", "amount", "accuracy", "drop")
FILE = "sensitivity.csv"  # in the metrics folder


def write(rows: Sequence[Mapping], path: Path) -> None:
    lines = [",".join(COLUMNS)]
    lines += [",".join(str(r[c]) for c in COLUMNS) for r in rows]
    write_text(path, "\n".join(lines) + "\n")


def read(path: Path) -> list[dict]:
    """The rows, numbers as numbers."""
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [{**r, "channels": int(r["channels"]),
             **{k: float(r[k]) for k in ("amount", "accuracy", "drop")}} for r in rows]
