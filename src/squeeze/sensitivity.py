"""Li et al.'s sensitivity analysis ("Pruning Filters for Efficient ConvNets", section 4.2 and
Figure 2): prune each filter group of a trained model alone, at several amounts, without
fine-tuning, and measure what accuracy is left. Groups are torch-pruning's (`prune.filter_groups`):
a residual stream's tied convs are one group, each block's first conv is its own.

Accuracy is measured on held-out *training* images, never test ones: the groups found sensitive
choose which layers a pruning stage spares, and the test set must not take part in that choice.
"""
from __future__ import annotations

import copy
from typing import Mapping, Sequence

from torch import nn

from . import prune
from .batches import DeviceData
from .evaluation import BATCH_SIZE, accuracy_on
from .sensitivity_table import COLUMNS, read, write  # noqa: F401 (the stage's file, re-exported)

SEED = 0  # which training images measure the accuracies


def analyse(model: nn.Module, data: DeviceData, amounts: Sequence[float], criterion: str,
            images: int, progress=print) -> list[dict]:
    """One row per (group, amount): the accuracy left when only that group loses `amount` of
    its channels (ranked by `criterion`), and the drop from the unpruned model's accuracy. An
    amount that would leave a group no channel (0.9 of 8) is skipped for that group."""
    images = min(images, len(data.y_train))

    def measure(m: nn.Module) -> float:
        return round(accuracy_on(m, data.held_batches(BATCH_SIZE, images, SEED), data.device), 6)

    base = measure(model)
    progress(f"sensitivity: unpruned accuracy {base:.4f} on {images} held-out training images")
    rows = []
    modules = dict(model.named_modules())
    for name, convs in prune.filter_groups(model).items():
        channels = modules[name].out_channels
        for amount in amounts:
            if prune.kept_channels(channels, amount) < 1:  # would empty it: not measurable
                continue
            trial = copy.deepcopy(model)
            prune.prune_filters(trial, amount, criterion=criterion, only=name)
            left = measure(trial)
            rows.append({"group": name, "convs": " ".join(convs), "channels": channels,
                         "amount": amount, "accuracy": left, "drop": round(base - left, 6)})
        progress(f"sensitivity: {name} ({channels} channels): "
                 + ", ".join(f"{r['amount']:g} -> {r['accuracy']:.4f}"
                             for r in rows if r["group"] == name))
    return rows


def drop_at(rows: Sequence[Mapping], group: str, amount: float) -> float:
    """The group's accuracy drop at `amount`, linear between measured amounts (0 drop at 0; the
    largest measured amount's drop beyond it)."""
    points = [(0.0, 0.0)] + sorted((r["amount"], r["drop"]) for r in rows if r["group"] == group)
    if len(points) == 1:
        raise ValueError(f"group {group!r} is not in the sensitivity analysis")
    for (a0, d0), (a1, d1) in zip(points, points[1:]):
        if amount <= a1:
            return d0 + (d1 - d0) * (amount - a0) / (a1 - a0)
    return points[-1][1]


def sensitive(rows: Sequence[Mapping], amount: float, max_drop: float) -> list[str]:
    """The groups whose accuracy drops by more than `max_drop` when pruned alone at `amount`:
    Li et al. spare these and prune the rest."""
    groups = dict.fromkeys(r["group"] for r in rows)
    return [g for g in groups if drop_at(rows, g, amount) > max_drop]
