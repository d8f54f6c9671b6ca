"""Export a pipeline checkpoint to a file that runs without squeeze, and check it.

fp32 and fp16 models (physically pruned: the graph holds only the filters left) go to ONNX
(opset 17, dynamic batch, float32 input "images" and output "logits"; an fp16 model computes in
fp16 inside) or TorchScript; int8 models to TorchScript, which keeps their int8
kernels (ONNX has no export for torch.ao's quantized modules: asking for it is a one-line error).
Every export checks itself: N test images through the checkpoint's model and through the
exported file (onnxruntime for ONNX, torch.jit.load for TorchScript), and fails below 99% top-1
agreement, leaving no file behind.
"""
from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import torch

from . import api
from ..config import EXPORT_FORMATS
from ..errors import SqueezeError
from ..fsutil import atomic_path
from ..prepared import load_prepared

FORMATS = tuple(f for f in EXPORT_FORMATS if f != "auto")  # onnx, torchscript
SUPPORTED = {"fp32": FORMATS, "fp16": FORMATS, "int8": ("torchscript",)}
MIN_AGREEMENT = 0.99


class ExportError(SqueezeError, ValueError):
    """An export that cannot be made or failed its check; one line for the user."""


def test_images(data_path: str | Path, count: int) -> np.ndarray:
    """The first `count` test images (uint8 NCHW) of the prepared data file."""
    ds, _, _ = load_prepared(Path(data_path))
    return ds.x_test[:count]


def export(checkpoint: str | Path, fmt: str, out: str | Path, data_path: str | Path,
           images: int = 256) -> dict:
    if fmt not in FORMATS:
        raise ExportError(f"format {fmt!r} is not allowed; expected one of {', '.join(FORMATS)}")
    if images < 1:
        raise ExportError(f"--images {images} is not allowed; expected an integer >= 1")
    model = api.load(checkpoint)
    quant = model.squeeze_quant
    if fmt not in SUPPORTED[quant]:
        raise ExportError(f"{checkpoint}: an {quant} model exports to "
                          f"{' or '.join(SUPPORTED[quant])} only, not {fmt}")
    x = api.preprocess(test_images(data_path, images), model)
    with torch.no_grad():
        reference = model(x)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TorchScript and exporter deprecation notices
            produced = _write(model, quant, fmt, x, tmp)
        agreement = float((produced.argmax(1) == reference.argmax(1)).float().mean())
        diff = float((produced.float() - reference.float()).abs().max())
        if agreement < MIN_AGREEMENT:
            raise ExportError(f"{out}: the exported model agrees with the checkpoint on "
                              f"{agreement:.2%} of {len(x)} test images' top-1 class, below "
                              f"{MIN_AGREEMENT:.0%}; nothing was written")
    return {"checkpoint": str(checkpoint), "format": fmt, "out": str(out), "quant": quant,
            "images": len(x), "top1_agreement": round(agreement, 6),
            "max_abs_diff": float(f"{diff:.3g}"), "size_bytes": out.stat().st_size}


def _write(model, quant: str, fmt: str, x: torch.Tensor, path: Path) -> torch.Tensor:
    """Write the export to `path`; return the exported file's logits for `x`."""
    example = x[:2]
    if fmt == "torchscript":
        with torch.no_grad():
            traced = torch.jit.trace(model, example)
        # through a buffer: a path would name the archive's inner folder after the temporary
        # file (a random name), so two exports of one model would differ in bytes
        buffer = io.BytesIO()
        torch.jit.save(traced, buffer)
        path.write_bytes(buffer.getvalue())
        loaded = torch.jit.load(str(path))
        with torch.no_grad():
            return loaded(x)
    # fp16: the graph computes in fp16 (weights and activations) behind float32 inputs and
    # outputs, so every exported model is fed and read the same way
    net = HalfInside(model.half()) if quant == "fp16" else model.eval()
    torch.onnx.export(net, (example,), str(path), dynamo=False, opset_version=17,
                      input_names=["images"], output_names=["logits"],
                      dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}})
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
