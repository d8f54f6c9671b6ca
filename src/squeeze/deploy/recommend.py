"""The most accurate model under a score budget, from the report's CSV, with the models that tie
with it within the test set's noise (no torch: answers in a moment)."""
from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Mapping, Sequence

from ..config import EXPORT_SCORES as SCORES
from ..errors import SqueezeError

NUMBERS = ("accuracy", "accuracy_low", "accuracy_high", "score", "score_seed")


class RecommendError(SqueezeError, ValueError):
    """No answer for these inputs; the message is one line for the user."""


def read_report(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        raise RecommendError(f"{path}: report not found; `dvc repro` writes it (report stage)")
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise RecommendError(f"{path}: the report lists no models")
    missing = [c for c in (*NUMBERS, "model", "checkpoint") if c not in rows[0]]
    if missing:
        raise RecommendError(f"{path}: no column {missing[0]!r}: a report from an older squeeze; "
                             "rerun the report stage (dvc repro)")
    for row in rows:
        for key in NUMBERS:
            row[key] = float(row[key]) if row[key] != "" else None
    return rows


def recommend(rows: Sequence[Mapping], budget: float, score: str = "score") -> dict:
    """The most accurate model whose `score` is at most `budget` (equal accuracy: the cheaper),
    and `ties`: the other models under the budget whose accuracy lies inside its 95% interval,
    so one measurement cannot tell them from it."""
    if score not in SCORES:
        raise RecommendError(f"unknown score {score!r}; allowed: {', '.join(SCORES)}")
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not (
            math.isfinite(budget) and budget > 0):
        raise RecommendError(f"budget {budget!r} is not allowed; expected a number > 0")
    scored = [r for r in rows if r[score] is not None]  # score_seed: blank for mixed bits
    # a model to ship runs on real kernels: simulated low-bit ones are named, not recommended
    simulated = [r for r in scored if r.get("kernel") == "simulated"]
    shippable = [r for r in scored if r.get("kernel") != "simulated"]
    if not shippable:
        raise RecommendError(f"no model with a {score} runs on real kernels (the report lists "
                             "only simulated low-bit models); add fp32, fp16 or int8 to quantize.types")
    fitting = [r for r in shippable if r[score] <= budget]
    if not fitting:
        cheapest = min(shippable, key=lambda r: r[score])
        raise RecommendError(f"no model has {score} <= {budget:g}; the cheapest is "
                             f"{cheapest['model']} at {cheapest[score]:g}")
    best = min(fitting, key=lambda r: (-r["accuracy"], r[score]))
    low = best["accuracy_low"]
    ties = sorted((r for r in fitting if r is not best and low is not None
                   and r["accuracy"] >= low), key=lambda r: (r[score], -r["accuracy"]))
    return {"model": best["model"], "accuracy": best["accuracy"],
            "accuracy_interval_95": [best["accuracy_low"], best["accuracy_high"]],
            score: best[score], "budget": budget, "checkpoint": best["checkpoint"],
            "ties": [{"model": r["model"], "accuracy": r["accuracy"], score: r[score],
                      "checkpoint": r["checkpoint"]} for r in ties],
            # simulated low-bit models under the budget more accurate than it: what fewer bits
            # would give where a kernel ran them (not exportable here); `tie`: inside its interval
            "simulated_better": [{"model": r["model"], "accuracy": r["accuracy"],
                                  "accuracy_interval_95": [r["accuracy_low"], r["accuracy_high"]],
                                  score: r[score], "tie": best["accuracy_high"] is not None
                                  and r["accuracy"] <= best["accuracy_high"]}
                                 for r in simulated if r[score] <= budget
                                 and r["accuracy"] > best["accuracy"]]}
