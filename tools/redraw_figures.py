"""Redraw a report's PNG figures from its two CSV files, with this checkout's figures.py.

    python tools/redraw_figures.py REPORT_DIR [--out DIR] [--test-images N]

REPORT_DIR holds tradeoff.csv and training_curves.csv as the report stage writes them (or as the
2026-11-29 report did, whose `accuracy_before_finetune` column is read as the accuracies right
after pruning). For archived runs (reports/runs/), whose pipeline is not rerun. The test set's
size, which every accuracy's 95% interval needs, is read from REPORT_DIR/tradeoff.md's "Run"
table ("... / 1,000 test images") unless --test-images gives it; without either, the figures say
they draw no interval.
"""
from __future__ import annotations

import argparse
import csv
import re
from pathlib import Path

from squeeze.report import figures, tradeoff


def _value(text: str):
    if text == "":
        return None
    if text in ("true", "false"):
        return text == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return [{k: _value(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def upgrade(rows: list[dict]) -> list[dict]:
    """Rows of an older tradeoff.csv with the joined columns of today's report."""
    if not rows or "accuracy_pruned_structured" in rows[0]:
        return rows
    by_float = {(r["structured"], r["unstructured"]): r for r in rows if r["quant"] == "fp32"}
    out = []
    for row in rows:
        s, u = row["structured"], row["unstructured"]
        structured_base = by_float.get((s, 0), {})
        out.append({**row,
                    "accuracy_pruned_structured": (structured_base.get("accuracy_before_finetune")
                                                   if s else row["accuracy_float"]),
                    "accuracy_pruned_unstructured": (row["accuracy_before_finetune"]
                                                     if u else None)})
    return out


def test_images_of(report_dir: Path) -> int | None:
    """The test set's size as the report's "Run" table states it; None where it does not."""
    tables = report_dir / "tradeoff.md"
    found = re.search(r"([\d,]+) test images", tables.read_text()) if tables.is_file() else None
    return int(found.group(1).replace(",", "")) if found else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report_dir", type=Path)
    parser.add_argument("--out", type=Path, help="default: REPORT_DIR/figures")
    parser.add_argument("--test-images", type=int,
                        help="the test set's size (default: from REPORT_DIR/tradeoff.md)")
    args = parser.parse_args()
    result = tradeoff.Report(rows=upgrade(read_rows(args.report_dir / "tradeoff.csv")),
                           curves=read_rows(args.report_dir / "training_curves.csv"),
                           test_images=args.test_images or test_images_of(args.report_dir))
    for path in figures.write_figures(result, args.out or args.report_dir / "figures"):
        print(path)


if __name__ == "__main__":
    main()
