"""The public API, for using a model outside the pipeline:

    import squeeze
    model = squeeze.load("models/quantized/s0.5-u0.3-int8.pt")   # any checkpoint of the pipeline
    logits = model(squeeze.preprocess(images, model))           # uint8 HWC/NHWC/NCHW, PIL images

`load` returns a torch.nn.Module in eval mode on the CPU: fp32 models as trained; fp16 models with
their fp16 weights, computing in fp32 (as the pipeline measures fp16 on a CPU; `.half().cuda()`
runs them in real fp16 on a GPU); int8 models as their ONNX file on the engine they were measured
on (OpenVINO or ONNX Runtime, int8 kernels, CPU), called the same way. The normalisation,
class names and image size the model was trained with come from the checkpoint (`preprocess`),
never from constants here.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import checkpoint
from ..device import torch_runtime


def load(path: str | Path) -> nn.Module:
    """A ready model for any squeeze checkpoint (baseline, pruned, or quantized fp32/fp16/int8,
    or a low-bit wXaY model: fake-quantized, simulated in fp32)."""
    from .. import quantize

    payload = checkpoint.load(path)  # read once, rebuilt by the loader of its kind
    if payload.get("kind") == "model":
        model, payload = checkpoint.load_model(path, payload)
    elif str(payload.get("kind", "")).startswith("quantized-"):
        model, payload = quantize.load_quantized(path, payload)
    else:
        raise checkpoint.CheckpointError(f"{path}: a {payload.get('kind')!r} checkpoint is not "
                                         "a model (expected a model or quantized checkpoint)")
    model.squeeze_preprocess = payload.get("preprocess")
    model.squeeze_quant = payload.get("quant", "fp32")
    # what runs it: the int8 engine and its version, else this torch
    model.squeeze_runtime = payload.get("runtime") or torch_runtime()
    # the float model a quantized checkpoint was made from (the int8 export checks against it)
    model.squeeze_source = payload.get("source")
    return model.eval()


def preprocess(images, model: nn.Module) -> torch.Tensor:
    """uint8 images -> the normalised float batch (N, 3, H, W) `model` expects.

    images: a PIL image, a list of them, or a uint8 array/tensor of shape HWC, NHWC or NCHW
    (3 channels, the model's image size)."""
    info = getattr(model, "squeeze_preprocess", None)
    if not info:
        raise ValueError("this model carries no preprocessing (its checkpoint predates it, or "
                         "it was not made by squeeze.load); rerun the pipeline's stages")
    batch = _as_uint8_nchw(images)
    size = info["image_size"]
    if tuple(batch.shape[1:]) != (3, size, size):
        raise ValueError(f"images of shape {tuple(batch.shape[1:])} (C, H, W); the model takes "
                         f"(3, {size}, {size})")
    mean = torch.tensor(info["mean"], dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(info["std"], dtype=torch.float32).view(1, 3, 1, 1)
    # (x / 255 - mean) / std as the pipeline computes it (batches.DeviceData.normalize), to the
    # bit: an int8 model's input quantization rounds, so a last-bit difference can flip a class
    return batch.float().mul_(1 / (255 * std)).add_(-mean / std)


def classes(model: nn.Module) -> list[str]:
    """The class names, in the order of the model's outputs."""
    return list((getattr(model, "squeeze_preprocess", None) or {}).get("classes", []))


def _as_uint8_nchw(images) -> torch.Tensor:
    if not isinstance(images, (np.ndarray, torch.Tensor)):
        items = images if isinstance(images, (list, tuple)) else [images]
        images = np.stack([np.asarray(im.convert("RGB") if hasattr(im, "convert") else im)
                           for im in items])
    array = torch.as_tensor(np.asarray(images) if isinstance(images, np.ndarray) else images)
    if array.dtype != torch.uint8:
        raise ValueError(f"images must be uint8 (0-255), got {array.dtype}")
    if array.dim() == 3:
        array = array.unsqueeze(0)
    if array.dim() != 4:
        raise ValueError(f"images must be HWC, NHWC or NCHW; got {array.dim()} dimensions")
    if array.shape[1] != 3 and array.shape[-1] == 3:
        array = array.permute(0, 3, 1, 2)
    return array.contiguous()
