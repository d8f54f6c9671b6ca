"""Low-bit QAT libraries side by side: squeeze's own LSQ (src/squeeze/lowbit.py) against brevitas
on the same structured-pruned, magnitude-masked width-16 ResNet-18, both at w4a4 with 8-bit ends:
seconds per training step (float, own LSQ and brevitas interleaved in each round, as benchlib
times everything), whether each keeps the unstructured masks through training, and whether each
writes an ONNX file with quantize/dequantize nodes that ONNX Runtime runs to its own outputs.

brevitas is not a squeeze requirement (the pipeline uses lowbit.py): install it to run this,
`pip install brevitas` (0.13.4 measured). Synthetic images: a step's time does not depend on them.
Run: python tools/lowbit_libs.py --out reports/lowbit-libs.json
"""
from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import tempfile
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils import parametrize

from benchlib import environment, fixed_threads, interleaved, paired_speedup
from squeeze import lowbit, models, prune, train


class Mask(nn.Module):
    """weight * mask: the unstructured mask held on a brevitas layer's weight."""

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.register_buffer("mask", (weight != 0).to(weight.dtype))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight * self.mask


def to_brevitas(model: nn.Module, bits: dict[str, tuple[int, int]]) -> nn.Module:
    """Every conv/linear replaced by brevitas's quantized layer at its (weight, activation) bits:
    per-channel weight scales initialised by MSE and learned, per-tensor learned input scales
    (signed for the image, unsigned after a ReLU), the weights and masks carried over."""
    import brevitas.nn as qnn
    from brevitas.quant import (Int8ActPerTensorFloat, Int8WeightPerChannelFloatMSE,
                                Uint8ActPerTensorFloat)

    model = copy.deepcopy(model)
    first = next(iter(bits))
    for name, (w_bits, a_bits) in bits.items():
        parent, _, attr = name.rpartition(".")
        holder = model.get_submodule(parent) if parent else model
        old = getattr(holder, attr)
        act = (Int8ActPerTensorFloat if name == first else Uint8ActPerTensorFloat).let(
            bit_width=a_bits, collect_stats_steps=4)
        quant = {"weight_quant": Int8WeightPerChannelFloatMSE.let(bit_width=w_bits),
                 "input_quant": act, "return_quant_tensor": False}
        if isinstance(old, nn.Linear):
            new = qnn.QuantLinear(old.in_features, old.out_features, bias=old.bias is not None,
                                  **quant)
        else:
            new = qnn.QuantConv2d(old.in_channels, old.out_channels, old.kernel_size,
                                  stride=old.stride, padding=old.padding,
                                  bias=old.bias is not None, **quant)
        new.load_state_dict(old.state_dict(), strict=False)
        parametrize.register_parametrization(new, "weight", Mask(old.weight.detach()))
        setattr(holder, attr, new)
    return model


def step_fn(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int):
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

    def run():
        model.train()
        for _ in range(steps):
            optimizer.zero_grad(set_to_none=True)
            train.cross_entropy(model(x), x, y).backward()
            optimizer.step()
    return run


def masks_held(weights: dict[str, torch.Tensor], masks: dict[str, torch.Tensor]) -> bool:
    return all(bool((weights[n][~masks[n]] == 0).all()) for n in masks)


def onnx_check(model: nn.Module, x: torch.Tensor, export) -> dict:
    """Export with `export(model, x, path)`, run it in ONNX Runtime, compare with the model."""
    import onnx
    import onnxruntime as ort

    model.eval()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        export(model, x[:1], path)
        graph = onnx.load(path).graph
        ops = [n.op_type for n in graph.node]
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        got = torch.cat([torch.from_numpy(session.run(None, {name: x[i:i + 1].numpy()})[0])
                         for i in range(len(x))])  # one image at a time: the file's batch is 1
    with torch.no_grad():
        want = model(x)
    return {"ops": {op: ops.count(op) for op in ("QuantizeLinear", "Clip", "DequantizeLinear")},
            "images": len(x), "max_abs_diff": round(float((got - want).abs().max()), 6),
            "top1_agreement": float((got.argmax(1) == want.argmax(1)).float().mean())}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=5, help="training steps per timed call")
    p.add_argument("--repeats", type=int, default=5, help="timed rounds")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = p.parse_args(argv)
    try:
        import brevitas
    except ImportError:
        print("error: brevitas is not installed; pip install brevitas (not a squeeze "
              "requirement: this tool compares it with lowbit.py)", file=sys.stderr)
        return 1
    torch.manual_seed(0)
    model = prune.prune_filters(models.build(models.ResNetSpec.resnet18(16)), 0.5)
    masks = prune.magnitude_masks(model, 0.6)
    prune.apply_masks(model, masks)
    x = torch.randn(args.batch, 3, 32, 32)
    y = torch.randint(0, 10, (args.batch,))
    bits = lowbit.layer_bits(model, "w4a4", 8)
    ours = lowbit.prepare(copy.deepcopy(model), bits)
    lowbit.init(ours, [x])
    theirs = to_brevitas(model, bits)
    calls = {"float": step_fn(model, x, y, args.steps), "lowbit": step_fn(ours, x, y, args.steps),
             "brevitas": step_fn(theirs, x, y, args.steps)}
    with fixed_threads(args.threads):
        times = interleaved(calls, args.repeats, warmup=1)
    per_step = {k: round(statistics.median(v) / args.steps, 4) for k, v in times.items()}
    with torch.no_grad():
        ours_w = {n: m.weight for n, m in lowbit.layers(ours)}  # quantized, masked
        theirs_w = {n: m.quant_weight().value for n, m in lowbit.layers(theirs)}
    masks_of = {n.removesuffix(".weight"): m for n, m in masks.items()}
    result = {
        "environment": environment(args.threads), "batch": args.batch,
        "model": "width-16 ResNet-18, structured 0.5, unstructured 0.6, w4a4, 8-bit ends",
        "seconds_per_step": per_step,
        "slowdown_vs_float": {k: round(paired_speedup(times[k], times["float"]), 3)
                              for k in ("lowbit", "brevitas")},
        "brevitas_vs_lowbit": round(paired_speedup(times["brevitas"], times["lowbit"]), 3),
        "masks_held_after_training": {"lowbit": masks_held(ours_w, masks_of),
                                      "brevitas": masks_held(theirs_w, masks_of)},
        "brevitas": brevitas.__version__,
    }
    from brevitas.export import export_onnx_qcdq

    try:
        result["onnx_brevitas_qcdq"] = onnx_check(
            theirs, x[:16], lambda m, a, path: export_onnx_qcdq(m, args=a, export_path=str(path)))
    except Exception as err:  # what the library does with this model is the finding
        result["onnx_brevitas_qcdq"] = {"error": f"{type(err).__name__}: {str(err)[:300]}"}
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
