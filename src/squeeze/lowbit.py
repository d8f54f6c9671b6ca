"""Fewer bits than int8: quantization-aware fine-tuning (QAT) to `wXaY` types, simulated.

A `wXaY` type has X-bit weights and Y-bit activations (X, Y from 2 to 8). Every conv and linear
layer gets learned-step-size fake quantization (LSQ, Esser et al. 2020, "Learned Step Size
Quantization"): its weights per output channel (signed, levels -2^(X-1) .. 2^(X-1)-1) and its input
activations per tensor (unsigned 0 .. 2^Y-1 where the input is never negative, as after a ReLU;
signed where it is, as the normalised image), each step size a parameter trained with the weights,
its gradient scaled by 1/sqrt(elements * levels). Step sizes start at the value that minimises the
squared quantization error of the weights, and of the activations on a few training batches.
The unstructured masks are held: a pruned weight is multiplied by its mask before it is quantized,
so it stays exactly zero and gets no gradient. BatchNorm stays float after each quantized conv, as
in LSQ: at inference it is the per-channel scale and shift of the requantization step.

The first conv and the last linear keep `ends_bits` (8 by default, as in LSQ and HAWQ), and the
score counts every layer at its own bits (`measure.layer_score`).

No CPU kernel here runs 4-bit or 2-bit convolutions: these models are evaluated with fake
quantization in fp32 arithmetic ("kernel: simulated"), have no latency figure and no export.
The own LSQ module (this file) was chosen over brevitas and torchao, see docs/measurement.md.
"""
from __future__ import annotations

import math
from typing import Iterable

import torch
from torch import nn
from torch.nn.utils import parametrize

from .config import LOW_BIT_ALLOWED as ALLOWED, MIXED_PREFIX, STUDY_NORMS, low_bit_bits as parse
from .errors import SqueezeError

MIN_BITS, MAX_BITS = 2, 8
INIT_SAMPLE = 1 << 20       # activation elements per layer the initial step size is fitted on
INIT_RATIOS = 64            # clipping ratios tried by the initial step-size search


class LowBitError(SqueezeError, ValueError):
    """A low-bit type or setting that cannot be used."""


def is_low_bit(quant) -> bool:
    """A fake-quantized type: wXaY, or wmix<budget> (per-layer bits)."""
    return parse(quant) is not None or is_mixed(quant)


def is_mixed(quant) -> bool:
    return isinstance(quant, str) and quant.startswith(MIXED_PREFIX)


def _round_ste(x: torch.Tensor) -> torch.Tensor:
    """round(x) forward, identity backward (the straight-through estimator)."""
    return (x.round() - x).detach() + x


def _scale_grad(x: torch.Tensor, scale: float) -> torch.Tensor:
    """x forward, its gradient times `scale` backward (LSQ's step-size gradient scale)."""
    return (x - x * scale).detach() + x * scale


class LsqQuantizer(nn.Module):
    """Fake quantization with a learned step: round(clamp(x / s, lo, hi)) * s. `channels` > 0:
    one step per slice of dim 0 (a weight's output channels); 0: one step for the tensor."""

    def __init__(self, bits: int, signed: bool = True, channels: int = 0):
        super().__init__()
        if not MIN_BITS <= bits <= MAX_BITS:
            raise LowBitError(f"bits {bits!r}: allowed integers from {MIN_BITS} to {MAX_BITS}")
        self.bits, self.channels = bits, channels
        self.step = nn.Parameter(torch.ones(max(channels, 1)))
        self.register_buffer("signed", torch.tensor(bool(signed)))
        self.register_buffer("ready", torch.tensor(False))  # step fitted (init_from)

    def bounds(self) -> tuple[int, int]:
        if bool(self.signed):
            return -(1 << (self.bits - 1)), (1 << (self.bits - 1)) - 1
        return 0, (1 << self.bits) - 1

    def _shaped(self, step: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return step.view(-1, *([1] * (x.dim() - 1))) if self.channels else step

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lo, hi = self.bounds()
        grad = 1.0 / math.sqrt(x.numel() / self.step.numel() * hi)
        step = self._shaped(_scale_grad(self.step, grad).abs() + 1e-12, x)
        return _round_ste(torch.clamp(x / step, lo, hi)) * step

    @torch.no_grad()
    def init_from(self, x: torch.Tensor, signed: bool | None = None) -> None:
        """The step that minimises the squared quantization error of `x` (per channel for a
        weight), searched over clipping ratios of its largest magnitude."""
        if signed is not None:
            self.signed.fill_(bool(signed))
        lo, hi = self.bounds()
        flat = x.detach().float().reshape(self.channels, -1) if self.channels else \
            x.detach().float().reshape(1, -1)
        top = flat.abs().amax(1).clamp_min(1e-8)
        best_err = torch.full_like(top, math.inf)
        best = top / hi
        for i in range(1, INIT_RATIOS + 1):
            step = top * (i / INIT_RATIOS) / hi
            q = torch.clamp((flat / step[:, None]).round(), lo, hi) * step[:, None]
            err = (q - flat).pow(2).mean(1)
            better = err < best_err
            best_err = torch.where(better, err, best_err)
            best = torch.where(better, step, best)
        self.step.copy_(best)
        self.ready.fill_(True)

    def extra_repr(self) -> str:
        return f"bits={self.bits}, signed={bool(self.signed)}, channels={self.channels}"


class _MaskedQuantWeight(nn.Module):
    """The parametrization of a conv or linear weight: quantize(weight * mask)."""

    def __init__(self, weight: torch.Tensor, bits: int):
        super().__init__()
        self.register_buffer("mask", (weight != 0).to(weight.dtype))
        self.quant = LsqQuantizer(bits, signed=True, channels=weight.shape[0])

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return self.quant(weight * self.mask)


def _quantize_input(module: nn.Module, args: tuple) -> tuple:
    if module.observe is not None:  # init pass: keep a sample of the float input
        module.observe.append(args[0].detach().flatten()[:INIT_SAMPLE])
        return args
    return (module.input_quant(args[0]), *args[1:])


def layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The conv and linear layers, in module order (the first is the stem, the last the head)."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def layer_bits(model: nn.Module, quant: str, ends_bits: int) -> dict[str, tuple[int, int]]:
    """(weight, activation) bits per conv/linear layer: the type's, the first and last layer
    `ends_bits` (0: the type's too)."""
    bits = parse(quant)
    if bits is None:
        raise LowBitError(f"quantization type {quant!r}: allowed {ALLOWED}")
    names = [name for name, _ in layers(model)]
    chosen = {name: bits for name in names}
    if ends_bits:
        for name in (names[0], names[-1]):
            chosen[name] = (ends_bits, ends_bits)
    return chosen


def prepare(model: nn.Module, bits: dict[str, tuple[int, int]]) -> nn.Module:
    """Fake-quantize the conv and linear layers `bits` names (all of them, but for the
    sensitivity measurement) in place at their (weight, activation) bits; step sizes unfitted
    (init, or load a state dict saved after init)."""
    modules = dict(layers(model))
    if not set(bits) <= set(modules):
        raise LowBitError(f"bits given for {sorted(set(bits) - set(modules))[:3]}, which are not "
                          "this model's conv/linear layers")
    for name, (w_bits, a_bits) in bits.items():
        module = modules[name]
        parametrize.register_parametrization(module, "weight",
                                             _MaskedQuantWeight(module.weight, w_bits))
        module.input_quant = LsqQuantizer(a_bits, signed=False)
        module.observe = None
        module.register_forward_pre_hook(_quantize_input)
    return model


@torch.no_grad()
def init(model: nn.Module, batches: Iterable[torch.Tensor]) -> None:
    """Fit every step size: weights now, activations on `batches` (training images, float
    inputs observed in one pass, each layer's sign taken from its inputs)."""
    modules = [m for _, m in layers(model) if parametrize.is_parametrized(m, "weight")]
    for m in modules:
        quant = m.parametrizations.weight[0]
        quant.quant.init_from(m.parametrizations.weight.original * quant.mask)
        m.observe = []
    was_training = model.training
    model.eval()
    try:
        for x in batches:
            model(x)
        for m in modules:
            if not m.observe:
                raise LowBitError("no calibration batches to fit the activation step sizes on")
            sample = torch.cat(m.observe)[:INIT_SAMPLE]
            m.input_quant.init_from(sample, signed=bool((sample < 0).any()))
    finally:
        for m in modules:
            m.observe = None
        model.train(was_training)


def unwrapped(model: nn.Module) -> nn.Module:
    """A float copy of a prepared model: each weight = its masked float weight (not quantized),
    no quantizers; what the counts (params, nonzero, ops) are taken on."""
    import copy

    plain = copy.deepcopy(model)
    for _, m in layers(plain):
        if parametrize.is_parametrized(m, "weight"):
            mask = m.parametrizations.weight[0].mask
            parametrize.remove_parametrizations(m, "weight", leave_parametrized=False)
            m.weight.data.mul_(mask)
        for attr in ("input_quant", "observe"):
            if hasattr(m, attr):
                delattr(m, attr)
        m._forward_pre_hooks.clear()
    return plain


def bits_table(bits: dict[str, tuple[int, int]]) -> dict[str, str]:
    """{layer: "w4a4"}: the per-layer bits as the metrics file records them."""
    return {name: f"w{w}a{a}" for name, (w, a) in bits.items()}


def bits_from_table(table: dict[str, str]) -> dict[str, tuple[int, int]]:
    found = {name: parse(text) for name, text in table.items()}
    bad = [name for name, b in found.items() if b is None]
    if bad:
        raise LowBitError(f"layer {bad[0]}: bits {table[bad[0]]!r}, allowed {ALLOWED}")
    return found


def load(payload: dict) -> nn.Module:
    """The fake-quantized model of a low-bit checkpoint (steps/qat.save), in eval mode."""
    from . import models

    spec = models.spec_from_dict(payload["spec"])
    model = models.build(spec)
    if isinstance(spec, models.ArchSpec):
        models.reshaped(model, payload["state_dict"])
    model = prepare(model, bits_from_table(payload["layer_bits"]))
    model.load_state_dict(payload["state_dict"])
    return model.eval()


# ---- per-layer bits under a budget (wmix<b>) -------------------------------------------------------

@torch.no_grad()
def sensitivity(model: nn.Module, candidates: list[str], ends_bits: int, calibration: list,
                held: list[tuple]) -> dict[str, dict[str, float]]:
    """{layer: {candidate: mean cross-entropy on `held` (image, label) batches with that layer
    alone fake-quantized to the candidate}}, for every conv/linear between the ends (all of
    them when ends_bits is 0); "" holds the float model's own loss. Step sizes are fitted on
    `calibration` batches as for the fine-tune."""
    import copy

    def loss(net: nn.Module) -> float:
        net.eval()
        total = sum(float(nn.functional.cross_entropy(net(x), y, reduction="sum")) for x, y in held)
        return total / sum(len(y) for _, y in held)

    names = [name for name, _ in layers(model)]
    free = names[1:-1] if ends_bits else names
    found = {"": {"float": loss(model)}}
    for name in free:
        found[name] = {}
        for cand in candidates:
            trial = prepare(copy.deepcopy(model), {name: parse(cand)})
            init(trial, calibration)
            found[name][cand] = loss(trial)
    return found


def allocate(layer_counts: dict[str, dict], losses: dict[str, dict[str, float]],
             candidates: list[str], ends_bits: int, budget_score: float,
             rest: tuple[int, int] = (8, 8), norms: tuple[float, float] = STUDY_NORMS
             ) -> dict[str, tuple[int, int]]:
    """Per-layer bits whose score (measure.layer_score) is at most `budget_score`: every free
    layer starts at its costliest candidate; the next-cheaper step with the least loss increase
    per score saved is taken until the budget holds. A LowBitError where even the cheapest
    candidate everywhere does not fit. `norms`: the score's (params_norm, ops_norm)."""
    from .measure import layer_score

    names = [n for n in layer_counts if n]
    ends = {n: (ends_bits, ends_bits) for n in (names[0], names[-1])} if ends_bits else {}
    order = sorted(candidates, key=lambda c: _cost(parse(c)), reverse=True)  # costliest first
    level = {n: 0 for n in names if n not in ends}

    def bits_at(levels: dict) -> dict[str, tuple[int, int]]:
        return {**ends, **{n: parse(order[i]) for n, i in levels.items()}}

    cheapest = cheapest_score(layer_counts, candidates, ends_bits, rest, norms)
    if cheapest > budget_score:
        raise LowBitError(f"score budget {budget_score:.6g} is below what every layer at "
                          f"{order[-1]} reaches ({cheapest:.6g})")
    while (score := layer_score(layer_counts, bits_at(level), rest, norms)) > budget_score:
        moves = []
        for n, i in level.items():
            if i + 1 < len(order):
                cheaper = bits_at({**level, n: i + 1})
                saved = score - layer_score(layer_counts, cheaper, rest, norms)
                worse = losses[n][order[i + 1]] - losses[n][order[i]]
                if saved > 0:
                    moves.append((max(worse, 0.0) / saved, n))
        level[min(moves)[1]] += 1
    return bits_at(level)


def cheapest_score(layer_counts: dict[str, dict], candidates: list[str], ends_bits: int,
                   rest: tuple[int, int] = (8, 8), norms: tuple[float, float] = STUDY_NORMS
                   ) -> float:
    """The score with every layer between the ends at the cheapest candidate."""
    from .measure import layer_score

    names = [n for n in layer_counts if n]
    low = parse(min(candidates, key=lambda c: _cost(parse(c))))
    bits = {n: low for n in names}
    if ends_bits:
        bits[names[0]] = bits[names[-1]] = (ends_bits, ends_bits)
    return layer_score(layer_counts, bits, rest, norms)


def _cost(bits: tuple[int, int]) -> tuple[int, int]:
    return (max(bits), bits[0])
