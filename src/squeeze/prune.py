"""Pruning: L1-norm filter pruning (structured) and magnitude pruning (unstructured).

Structured (Li et al. 2017, "Pruning Filters for Efficient ConvNets"): rank each layer's filters by
the L1 norm of their weights and physically remove the lowest, with torch-pruning, which keeps
the network consistent: channels joined by a residual add are pruned together (their importance
is the sum of the tied filters' L1 norms), and the next layer loses the matching input channels.
The classifier's outputs are never pruned. `amount` is the fraction of channels removed from each
prunable layer (layerwise scope); since a conv's size scales with its input *and* output
channels, parameters and ops fall by more than `amount` (about 1 - (1 - amount)^2).

Unstructured: zero the smallest-magnitude conv and linear weights. `amount` is the fraction of
the remaining (nonzero) weights set to zero; masks are re-applied after every optimizer step of
the fine-tune, so pruned weights stay exactly zero, and the saved weights hold the zeros.
"""
from __future__ import annotations

import copy
from typing import Iterable

import torch
from torch import nn

from . import models
from .measure import count_ops, count_params, prunable_weights, sparsity  # noqa: F401 (re-exported)


# ---- structured -------------------------------------------------------------------------------

# torch-pruning 1.6 does not cap a single layer under a global ranking (its max_pruning_ratio is
# not applied to one-shot global pruning): a layer whose channels all fall below the threshold
# is skipped whole, so amounts near 0.9 prune *less* than 0.8. Global scope here therefore ranks
# the filters itself, caps each group at `max_layer_amount`, and hands torch-pruning one ratio
# per group (`_global_ratios`).


def _filter_norm_importance(normalize: bool, p: int = 1):
    import torch_pruning as tp

    class FilterNorm(tp.importance.Importance):
        """Li et al.'s criterion (p = 1): the Lp norm of each output filter of the group's convs,
        summed over the convs a residual add ties together.

        normalize: divide by the group's mean, so that one global ranking compares filters
        relative to their own layer rather than favouring layers with a larger fan-in.
        """

        def __init__(self, normalize: bool, p: int):
            self.normalize, self.p = normalize, p

        @torch.no_grad()
        def __call__(self, group):
            total = None
            for i, (dep, idxs) in enumerate(group):
                layer = dep.layer
                if dep.pruning_fn != tp.prune_conv_out_channels or not isinstance(layer, nn.Conv2d):
                    continue
                # summed on the CPU: CUDA's scatter_add_ uses atomics, whose order (and so the
                # last bit of a sum, and a ranking between near-ties) varies from run to run
                local = layer.weight.data[idxs].flatten(1).norm(p=self.p, dim=1).cpu()
                root = torch.as_tensor(group[i].root_idxs)
                if total is None:
                    total = torch.zeros(len(group[0].idxs))
                total.scatter_add_(0, root, local)
            if self.normalize and total is not None:
                total = total / total.mean().clamp_min(1e-12)
            return total

    return FilterNorm(normalize, p)


def _importance(criterion: str, scope: str):
    import torch_pruning as tp

    if criterion in ("l1", "l2"):
        return _filter_norm_importance(normalize=(scope == "global"), p=int(criterion[1]))
    if criterion == "group_norm":  # torch-pruning's group L2 over conv, BN and linear weights
        return tp.importance.GroupMagnitudeImportance(p=2)
    if criterion == "random":
        return tp.importance.RandomImportance()
    raise ValueError(f"unknown criterion {criterion!r}")  # config.PRUNE_CRITERIA lists them


def _residual_tied(model: nn.Module) -> list[nn.Conv2d]:
    """Every conv that feeds a residual add: the stem, each block's second conv, the shortcuts
    (their output channels are tied across a stage)."""
    if not isinstance(model, models.ResNet18):
        raise ValueError(f"residual-tied layers are the study's ResNet's ({models.DEFAULT_ARCH}); "
                         f"this model is {type(model).__name__}")
    convs = [model.conv1]
    for stage in (model.layer1, model.layer2, model.layer3, model.layer4):
        for block in stage:
            convs.append(block.conv2)
            convs += [m for m in block.shortcut if isinstance(m, nn.Conv2d)]
    return convs


def _ignored(model: nn.Module, layers: str) -> list[nn.Module]:
    """Layers whose outputs are never pruned: the classifier; with `block-internal` also every
    conv that feeds a residual add, so only the first conv of each block loses filters, Li et
    al.'s recipe for ResNets."""
    if layers == "all":
        return [models.classifier(model)]
    if layers != "block-internal":
        raise ValueError(f"unknown layers {layers!r}")  # config.PRUNE_LAYERS lists them
    return [models.classifier(model), *_residual_tied(model)]


def _out_convs(graph, group) -> list[nn.Conv2d]:
    """The convs whose output channels a torch-pruning group removes together."""
    return [dep.target.module for dep, _ in group
            if graph.is_out_channel_pruning_fn(dep.handler)
            and isinstance(dep.target.module, nn.Conv2d)]


def filter_groups(model: nn.Module) -> dict[str, list[str]]:
    """The model's filter-pruning groups, as torch-pruning couples them: name (the group's first
    conv) -> the convs whose output channels are removed together (a residual add ties the stem,
    each block's second conv and the shortcuts of one stage). Groups never share a conv."""
    import torch_pruning as tp

    graph = tp.DependencyGraph().build_dependency(model, models.example_input(model))
    order = {module: (i, name) for i, (name, module) in enumerate(model.named_modules())}
    groups = []
    for group in graph.get_all_groups(ignored_layers=[models.classifier(model)],
                                      root_module_types=[nn.Conv2d]):
        convs = sorted({order[conv] for conv in _out_convs(graph, group)})
        groups.append([name for _, name in convs])
    position = {name: i for i, name in order.values()}
    return {convs[0]: convs for convs in sorted(groups, key=lambda c: position[c[0]])}


def prune_filters(model: nn.Module, amount: float, scope: str = "layerwise",
                  criterion: str = "l1", seed: int = 0, layers: str = "all",
                  spare: Iterable[str] = (), only: str | None = None,
                  round_to: int = 1, max_layer_amount: float = 0.9,
                  residual_scale: float = 1.0) -> nn.Module:
    """Remove `amount` of the filters of every prunable conv (`layers`: all, or block-internal),
    in place; returns the model with its spec updated to the new widths.

    spare: names of convs (see `filter_groups`) whose groups keep all their filters.
    only: the name of one group, the only one pruned (a sensitivity measurement).
    round_to: channel counts left are rounded down to a multiple of this (tensor-core friendly
      widths on a GPU); 1 = the amount exactly, as the study prunes.
    max_layer_amount: with scope global, the most of its channels any one group loses; the
      filters the cap keeps go to the next-lowest ones elsewhere, so `amount` of all prunable
      channels is still removed.
    residual_scale: layerwise, the residual-tied groups (stem, second convs, shortcuts) lose
      `amount * residual_scale` of their channels and each block's first conv `amount`; 1 = every
      layer the same (the study), 0 = the residual-tied channels kept (as `block-internal`).
    """
    import torch_pruning as tp

    # the values are config.StructuredConfig's, checked there (ranges, the global cap, the
    # residual scale's scope and layers) before any stage work
    if amount == 0:
        return model
    model.eval()
    importance = _importance(criterion, scope)
    ignored = _ignored(model, layers)
    modules = dict(model.named_modules())
    ignored += [modules[name] for name in spare]  # one conv of a group holds the whole group
    if only is not None:
        members = set(filter_groups(model)[only])
        ignored += [m for name, m in modules.items()
                    if isinstance(m, nn.Conv2d) and name not in members]
    if scope == "layerwise":
        narrowest = _narrowest(model, ignored)
        if kept_channels(narrowest, amount) < 1:
            raise ValueError(f"structured amount {amount:g} would remove every filter of a "
                             f"layer of {narrowest} channels; at most "
                             f"{_most_of(narrowest):.4f} at this width")
        if kept_channels(narrowest, amount) < round_to:
            raise ValueError(f"round_to {round_to} at structured amount {amount:g} would remove "
                             f"every filter of a layer of {narrowest} channels (it keeps "
                             f"{kept_channels(narrowest, amount)}); use a smaller round_to or "
                             "amount")
    torch.manual_seed(seed)  # only the random criterion draws numbers
    example = models.example_input(model)
    ratios = None
    if scope == "global":
        ratios = _global_ratios(model, example, importance, ignored, amount, max_layer_amount)
    elif residual_scale == 0:
        ignored += _residual_tied(model)
    elif residual_scale != 1:
        ratios = {conv: amount * residual_scale for conv in _residual_tied(model)
                  if conv not in ignored}
    pruner = tp.pruner.MetaPruner(
        model, example, importance=importance, pruning_ratio=0.0 if scope == "global" else amount,
        pruning_ratio_dict=ratios, global_pruning=False, ignored_layers=ignored,
        round_to=round_to if round_to > 1 else None,
    )
    pruner.step()
    model.spec = models.spec_of(model)
    return model


def _global_ratios(model: nn.Module, example: torch.Tensor, importance, ignored: list[nn.Module],
                   amount: float, cap: float) -> dict[nn.Module, float]:
    """One ranking of every prunable filter (the importance normalised per group): the lowest
    `amount` of all of them go, but no group loses more than `cap` of its channels (nor its last
    one). Returns, for every conv of each group, the ratio that makes torch-pruning's layerwise
    step remove exactly that group's count (its lowest-ranked filters, the same ones)."""
    import torch_pruning as tp

    graph = tp.DependencyGraph().build_dependency(model, example)
    groups = list(graph.get_all_groups(ignored_layers=ignored, root_module_types=[nn.Conv2d]))
    scores = [importance(group) for group in groups]
    sizes = [len(score) for score in scores]
    caps = [min(int(size * cap), size - 1) for size in sizes]
    goal = int(sum(sizes) * amount)
    ranked = sorted((float(value), g, c) for g, score in enumerate(scores)
                    for c, value in enumerate(score))
    removed = [0] * len(groups)
    taken = 0
    for _, g, _ in ranked:
        if taken == goal:
            break
        if removed[g] < caps[g]:
            removed[g] += 1
            taken += 1
    if taken < goal:
        raise ValueError(f"structured amount {amount:g} with max_layer_amount {cap:g} is not "
                         f"reachable at this width: the cap lets at most "
                         f"{sum(caps) / sum(sizes):.4f} of the channels go; lower the amount")
    ratios = {}
    for group, size, k in zip(groups, sizes, removed):
        # layerwise, torch-pruning removes size - int(size * (1 - ratio)): exactly k here
        ratio = (k - 0.5) / size if k else 0.0
        ratios.update(dict.fromkeys(_out_convs(graph, group), ratio))
    return ratios


def _narrowest(model: nn.Module, ignored: list[nn.Module]) -> int:
    return min(m.out_channels for m in model.modules()
               if isinstance(m, nn.Conv2d) and m not in ignored)


def kept_channels(channels: int, amount: float) -> int:
    """The channels a layer of `channels` keeps at a layerwise `amount`, as torch-pruning counts
    them; it skips a group that an amount would empty, so higher amounts would prune *less*."""
    return int(channels * (1 - amount))


def _most_of(channels: int) -> float:
    """The largest layerwise amount that leaves a layer of `channels` one channel."""
    most = (channels - 1) / channels
    return most if kept_channels(channels, most) >= 1 else most - 1e-9


def most_amount(model: nn.Module, layers: str = "all", spare: Iterable[str] = ()) -> float:
    modules = dict(model.named_modules())
    ignored = _ignored(model, layers) + [modules[name] for name in spare]
    return _most_of(_narrowest(model, ignored))


TARGET_COUNTS = {"params": count_params, "ops": count_ops}


def ratio_for(model: nn.Module, goal: int, target: str, *, upper: float = 0.99,
              steps: int = 14, **prune_kwargs) -> float:
    """The smallest per-layer channel ratio whose pruning leaves at most `goal` params or ops
    (`target`), found by bisection on copies of `model` (which is not changed); channel counts
    are whole, so the result removes at least what was asked, by the least whole step found.
    A goal that pruning at `upper` cannot reach (spared or ignored layers keep too much) is an
    error naming the most it can remove."""
    count = TARGET_COUNTS[target]
    full = count(model)
    if goal >= full:
        return 0.0

    def left_at(ratio: float) -> int:
        trial = copy.deepcopy(model)
        prune_filters(trial, ratio, **prune_kwargs)
        return count(trial)

    upper = min(upper, most_amount(model, prune_kwargs.get("layers", "all"),
                                   prune_kwargs.get("spare", ())))
    most = left_at(upper)
    if most > goal:
        raise ValueError(f"removing {1 - goal / full:.3f} of the {target} is not reachable with "
                         f"these layers: filter pruning at {upper:.4f} removes "
                         f"{1 - most / full:.3f} of them")
    low, high = 0.0, upper
    for _ in range(steps):
        mid = (low + high) / 2
        if left_at(mid) <= goal:
            high = mid
        else:
            low = mid
    return high


# ---- unstructured -----------------------------------------------------------------------------

def _smallest(values: torch.Tensor, candidates: torch.Tensor, count: int) -> torch.Tensor:
    """A mask of the `count` smallest `values` among `candidates` (ties broken by position)."""
    drop = torch.zeros_like(candidates)
    if count > 0:
        scores = torch.where(candidates, values, torch.full_like(values, float("inf")))
        order = torch.argsort(scores, stable=True)[:count]
        drop[order] = True
    return drop


@torch.no_grad()
def magnitude_masks(model: nn.Module, amount: float, scope: str = "global") -> dict[str, torch.Tensor]:
    """Keep-masks (bool) that zero `amount` of each prunable weight set's nonzero entries.

    global: one ranking of |w| across all conv and linear layers; layerwise: per layer.
    The count zeroed is round(amount * nonzero), exactly.
    """
    weights = prunable_weights(model)
    if scope == "layerwise":
        masks = {}
        for name, w in weights.items():
            flat = w.detach().abs().flatten()
            alive = flat != 0
            drop = _smallest(flat, alive, round(amount * int(alive.sum())))
            masks[name] = (alive & ~drop).view_as(w)
        return masks
    if scope != "global":
        raise ValueError(f"unknown scope {scope!r}")  # config.PRUNE_SCOPES lists them
    flat = torch.cat([w.detach().abs().flatten() for w in weights.values()])
    alive = flat != 0
    keep = alive & ~_smallest(flat, alive, round(amount * int(alive.sum())))
    masks, start = {}, 0
    for name, w in weights.items():
        masks[name] = keep[start:start + w.numel()].view_as(w)
        start += w.numel()
    return masks


@torch.no_grad()
def apply_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    params = dict(model.named_parameters())
    for name, mask in masks.items():
        weight = params[name]
        weight.mul_(mask.to(device=weight.device, dtype=weight.dtype))
