"""Export a pipeline checkpoint to a file that runs without squeeze, and check it.

fp32 and fp16 models (physically pruned: the graph holds only the filters left) go to ONNX
(opset 18, by torch.onnx's torch.export-based exporter; dynamic batch, float32 input "images" and
output "logits"; an fp16 model computes in fp16 inside) or TorchScript. int8 models are ONNX
already (quantize.py): the export writes that file, which ONNX Runtime, OpenVINO or TensorRT run.
Every export checks itself on N test images, leaving no file behind when it fails:
- fp32, fp16: the exported file (onnxruntime, torch.jit.load) against the checkpoint's model,
  at least 99% top-1 agreement (the same arithmetic, so only a broken export disagrees);
- int8: the file on its engine against the float model it was quantized from: its accuracy
  within the 95% interval of the float model's on those images (quantization itself moves some
  top-1 classes, so agreement is reported, not gated).
"""
from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import torch

from . import api
from .. import quantize
from ..config import EXPORT_FORMATS
from ..errors import SqueezeError
from ..fsutil import atomic_path
from ..prepared import load_prepared

FORMATS = tuple(f for f in EXPORT_FORMATS if f != "auto")  # onnx, torchscript
SUPPORTED = {"fp32": FORMATS, "fp16": FORMATS, "int8": ("onnx",)}
MIN_AGREEMENT = 0.99
Z95 = 1.96


class ExportError(SqueezeError, ValueError):
    """An export that cannot be made or failed its check; one line for the user."""


def test_images(data_path: str | Path, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The first `count` test images (uint8 NCHW) of the prepared data file, and their labels."""
    ds, _, _ = load_prepared(Path(data_path))
    return ds.x_test[:count], ds.y_test[:count]


def interval95(acc: float, n: int) -> float:
    """Half-width of the normal-approximation 95% interval of an accuracy measured on n images."""
    return Z95 * math.sqrt(max(acc * (1 - acc), 1e-12) / n)


def export(checkpoint: str | Path, fmt: str, out: str | Path, data_path: str | Path,
           images: int = 256) -> dict:
    if fmt not in FORMATS:
        raise ExportError(f"format {fmt!r} is not allowed; expected one of {', '.join(FORMATS)}")
    if images < 1:
        raise ExportError(f"--images {images} is not allowed; expected an integer >= 1")
    model = api.load(checkpoint)
    quant = model.squeeze_quant
    if quant not in SUPPORTED:  # a low-bit wXaY model: fake quantization, no kernel to ship on
        raise ExportError(f"{checkpoint}: a {quant} model is simulated (fake quantization; no "
                          "CPU kernel here runs its bit widths) and does not export; export "
                          f"supports {', '.join(SUPPORTED)} (quantize.types)")
    if fmt not in SUPPORTED[quant]:
        raise ExportError(f"{checkpoint}: an {quant} model exports to "
                          f"{' or '.join(SUPPORTED[quant])} only, not {fmt}")
    images_u8, labels = test_images(data_path, images)
    x, y = api.preprocess(images_u8, model), torch.as_tensor(labels).long()
    int8 = quant == "int8"
    # the reference: the float model an int8 file was made from; else the checkpoint's model
    ref_model = quantize.float_of(checkpoint, model.squeeze_source) if int8 else model
    with torch.no_grad():
        reference = ref_model(x)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        produced = _write(model, quant, fmt, x, tmp)
        agreement = float((produced.argmax(1) == reference.argmax(1)).float().mean())
        diff = float((produced.float() - reference.float()).abs().max())
        acc = float((produced.argmax(1) == y).float().mean())
        ref_acc = float((reference.argmax(1) == y).float().mean())
        check = {"accuracy": round(acc, 6), "reference_accuracy": round(ref_acc, 6),
                 "reference": "float model" if int8 else "checkpoint"}
        if int8:
            half = interval95(ref_acc, len(x))
            check["interval95"] = round(half, 6)
            if abs(acc - ref_acc) > half:
                raise ExportError(f"{out}: the int8 file's accuracy on {len(x)} test images, "
                                  f"{acc:.2%}, is outside the float model's {ref_acc:.2%} +- "
                                  f"{half:.2%} (95%); nothing was written")
        elif agreement < MIN_AGREEMENT:
            raise ExportError(f"{out}: the exported model agrees with the checkpoint on "
                              f"{agreement:.2%} of {len(x)} test images' top-1 class, below "
                              f"{MIN_AGREEMENT:.0%}; nothing was written")
    return {"checkpoint": str(checkpoint), "format": fmt, "out": str(out), "quant": quant,
            "images": len(x), "top1_agreement": round(agreement, 6),
            "max_abs_diff": float(f"{diff:.3g}"), **check,
            "runtime": getattr(model, "squeeze_runtime", None), "size_bytes": out.stat().st_size}


def _traces(module: torch.nn.Module, args: tuple) -> None:
    with torch.no_grad():
        torch.jit.trace(module, args)


def _write(model, quant: str, fmt: str, x: torch.Tensor, path: Path) -> torch.Tensor:
    """Write the export to `path`; return the exported file's logits for `x`."""
    example = x[:2]
    if fmt == "torchscript":
        try:
            with torch.no_grad():
                traced = torch.jit.trace(model, example)
        except Exception as err:  # the tracer raises many types; one line naming the layer
            where, why = quantize.failing_layer(model, (example,), _traces, err)
            raise ExportError(f"TorchScript trace failed at {where}: {why}") from None
        # through a buffer: a path would name the archive's inner folder after the temporary
        # file (a random name), so two exports of one model would differ in bytes
        buffer = io.BytesIO()
        torch.jit.save(traced, buffer)
        path.write_bytes(buffer.getvalue())
        loaded = torch.jit.load(str(path))
        with torch.no_grad():
            return loaded(x)
    if quant == "int8":  # the checkpoint holds the ONNX file: written as it is, run on its engine
        path.write_bytes(model.onnx)
        with torch.no_grad():
            return quantize.Int8Model(path.read_bytes(), model.engine).exact()(x)
    # fp16: the graph computes in fp16 (weights and activations) behind float32 inputs and
    # outputs, so every exported model is fed and read the same way
    net = HalfInside(model.half()) if quant == "fp16" else model.eval()
    path.write_bytes(quantize.to_onnx(net, x.shape[-1]))
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {"images": x.numpy()})[0])


class HalfInside(torch.nn.Module):
    """float32 in, fp16 compute, float32 out."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.half()).float()
