"""Counting, scoring, sparsity and latency (accuracy: evaluation.py).

Counting convention (the thop convention, which reproduces the study's baseline score exactly):
- `params`: every parameter; `nonzero_params`: those that are not exactly zero.
- `ops`: multiply-accumulates of every conv and linear layer, plus 4 operations per BatchNorm
  output element. ResNet-18 (CIFAR) gives 557,880,320. The study's quoted "FLOPs 556,651,520" is
  the same count with 2 per BN element.

score = nonzero_params * (q_w/32) / 5.6e6 + ops * max(q_w, q_a) / 32 / 2.8e8   (lower is better)
5.6e6 and 2.8e8 are the study's normalisers (params' score section: any others, or `auto`).
"""
from __future__ import annotations

import statistics
import time
from pathlib import Path

import torch
from torch import nn

from . import checkpoint, models
from .config import SCORE_AUTO, STUDY_NORMS, ScoreConfig

Norms = tuple[float, float]  # (params_norm, ops_norm): what the score divides the counts by
REFERENCE_PARAMS, REFERENCE_OPS = STUDY_NORMS
BN_OPS_PER_ELEMENT = 4
BITS = {"fp32": (32, 32), "fp16": (16, 16), "int8": (8, 8)}  # (q_w, q_a)

# The study's baseline counts: the reference for `score_seed` (its nominal formula).
BASELINE_PARAMS = 11_173_962
BASELINE_OPS = 557_880_320


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_nonzero(model: nn.Module) -> int:
    return sum(int(torch.count_nonzero(p)) for p in model.parameters())


@torch.no_grad()
def count_ops(model: nn.Module, image_size: int | None = None) -> int:
    """Conv/linear MACs + 4 ops per BN output element, for one 3 x size x size image (default:
    the size the model takes, models.input_size)."""
    image_size = image_size or models.input_size(model)
    total = 0

    def macs_hook(m: nn.Module, _inp, out):
        nonlocal total
        total += _macs(m, out)

    def bn_hook(_m, _inp, out):
        nonlocal total
        total += BN_OPS_PER_ELEMENT * out.numel()

    hooks = []
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            hooks.append(m.register_forward_hook(macs_hook))
        elif isinstance(m, nn.BatchNorm2d):
            hooks.append(m.register_forward_hook(bn_hook))
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        model(torch.zeros(1, 3, image_size, image_size, device=device))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return total


def bits(quant: str) -> tuple[int, int]:
    """(q_w, q_a) of a type: fp32, fp16, int8, or a low-bit `wXaY` (lowbit.py)."""
    if quant in BITS:
        return BITS[quant]
    from .config import LOW_BIT_ALLOWED, low_bit_bits

    found = low_bit_bits(quant)
    if found is None:
        raise ValueError(f"unknown quantization type {quant!r}; allowed: {', '.join(BITS)} "
                         f"or {LOW_BIT_ALLOWED}")
    return found


def score(nonzero_params: int, ops: int, quant: str, norms: Norms = STUDY_NORMS) -> float:
    q_w, q_a = bits(quant)
    return nonzero_params * (q_w / 32) / norms[0] + ops * max(q_w, q_a) / 32 / norms[1]


def score_norms(score_cfg: ScoreConfig | None, baseline: Path | None) -> Norms:
    """(params_norm, ops_norm) of params' score section (None: the study's). `auto`: half the
    unpruned baseline's own count (its nonzero parameters, its ops; its checkpoint, `baseline`,
    read only then), so that baseline scores 4.0 in fp32."""
    if score_cfg is None:
        return STUDY_NORMS
    given = (score_cfg.params_norm, score_cfg.ops_norm)
    if not score_cfg.needs_baseline:
        return given
    if baseline is None:
        raise ValueError("score normaliser auto needs the baseline checkpoint (--baseline)")
    model, _ = checkpoint.load_model(baseline)
    half = (count_nonzero(model) / 2, count_ops(model) / 2)
    return tuple(h if g == SCORE_AUTO else g for g, h in zip(given, half))


def norms_record(norms: Norms) -> dict:
    """What a metrics file records of the normalisers its score used."""
    return {"score_params_norm": norms[0], "score_ops_norm": norms[1]}


def score_seed(structured: float, unstructured: float, quant: str) -> float:
    """The study's nominal score: baseline counts scaled by the pruning amounts.

    p_s = s removes that fraction of params and ops; p_u = u * (1 - s) removes a further fraction
    of params (zeros still cost ops when stored densely). (0.5, 0.5, fp16) gives 0.7475.
    """
    q_w, q_a = bits(quant)
    p_s, p_u = structured, unstructured * (1 - structured)
    return (BASELINE_PARAMS * (1 - p_s - p_u) * (q_w / 32) / REFERENCE_PARAMS
            + BASELINE_OPS * (1 - p_s) * max(q_w, q_a) / 32 / REFERENCE_OPS)


@torch.no_grad()
def layer_counts(model: nn.Module, image_size: int | None = None) -> dict[str, dict]:
    """Per conv/linear layer (by module name): its nonzero parameters and its ops (MACs), as
    count_nonzero and count_ops count them; "" holds everything else (BatchNorm parameters and
    ops). The values sum to model_counts' nonzero_params and ops."""
    found: dict[str, dict] = {}
    hooks = []
    for name, m in model.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            found[name] = {"nonzero": sum(int(torch.count_nonzero(p)) for p in m.parameters()),
                           "ops": 0}
            hooks.append(m.register_forward_hook(
                lambda mod, _i, out, name=name: found[name].__setitem__("ops", _macs(mod, out))))
    try:
        total = count_ops(model, image_size)
    finally:
        for h in hooks:
            h.remove()
    found[""] = {"nonzero": count_nonzero(model) - sum(v["nonzero"] for v in found.values()),
                 "ops": total - sum(v["ops"] for v in found.values())}
    return found


def _macs(m: nn.Module, out: torch.Tensor) -> int:
    if isinstance(m, nn.Linear):
        return out.numel() * m.in_features
    kh, kw = m.kernel_size
    return out.numel() * (m.in_channels // m.groups) * kh * kw


def layer_score(layers: dict[str, dict], bits: dict[str, tuple[int, int]],
                rest: tuple[int, int], norms: Norms = STUDY_NORMS) -> float:
    """The score summed over layers, each at its own (q_w, q_a): nonzero_l * q_w,l / 32 /
    params_norm + ops_l * max(q_w,l, q_a,l) / 32 / ops_norm. `layers`: layer_counts; `bits`: per
    layer name; `rest` (BatchNorm, the "" entry): the type's nominal bits. Uniform bits give
    score()."""
    total = 0.0
    for name, found in layers.items():
        q_w, q_a = bits[name] if name else rest
        total += found["nonzero"] * (q_w / 32) / norms[0]
        total += found["ops"] * max(q_w, q_a) / 32 / norms[1]
    return total


def model_counts(model: nn.Module) -> dict:
    """params, nonzero_params and ops of a float model: what every metrics file records."""
    return {"params": count_params(model), "nonzero_params": count_nonzero(model),
            "ops": count_ops(model)}


def counts(model: nn.Module) -> dict:
    """model_counts and the fp32/fp16/int8 scores of a float model."""
    found = model_counts(model)
    return {**found, "score": {q: round(score(found["nonzero_params"], found["ops"], q), 6)
                               for q in BITS}}


def latency_ms(model: nn.Module, batch_size: int, threads: int, warmup: int, repeats: int,
               dtype=torch.float32) -> float:
    """Median CPU milliseconds per image at `batch_size`, after `warmup` untimed runs."""
    return latency_stats(model, batch_size, threads, warmup, repeats, dtype)["median"]


@torch.no_grad()
def latency_stats(model: nn.Module, batch_size: int, threads: int, warmup: int, repeats: int,
                  dtype=torch.float32, image_size: int | None = None) -> dict:
    """CPU milliseconds per image at `batch_size` over `repeats` timed runs (after `warmup`
    untimed ones): the median and the quartiles q1/q3, whose distance is the spread a reader
    needs to tell a difference from the machine's noise (a loaded machine spreads wide)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        model.eval()
        size = image_size or models.input_size(model)
        x = torch.randn(batch_size, 3, size, size).to(dtype)
        for _ in range(warmup):
            model(x)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            model(x)
            times.append((time.perf_counter() - start) * 1000 / batch_size)
        q1, _, q3 = (statistics.quantiles(times, n=4, method="inclusive") if len(times) > 1
                     else times * 3)
        return {"median": statistics.median(times), "q1": q1, "q3": q3}
    finally:
        torch.set_num_threads(previous)


def prunable_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """The conv and linear weights, by parameter name."""
    return {f"{name}.weight": m.weight for name, m in model.named_modules()
            if isinstance(m, (nn.Conv2d, nn.Linear))}


def sparsity(model: nn.Module) -> float:
    """Fraction of conv and linear weights that are exactly zero."""
    weights = list(prunable_weights(model).values())
    total = sum(w.numel() for w in weights)
    zeros = sum(int((w == 0).sum()) for w in weights)
    return zeros / total
