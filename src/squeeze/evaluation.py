"""Test accuracy: the one function that measures a model, wherever it is measured.

The per-epoch accuracy of training, the accuracy right after pruning and the accuracy of every
quantized model all come from `accuracy`, with the same batch size and numerics, so one model
measured twice on one device gives one number:
- CPU: fp32 (int8 models: their int8 kernels).
- CUDA: fp32 weights and activations in channels_last, no autocast (training runs in bf16 autocast,
  its evaluation does not); convolutions may use TF32, PyTorch's cuDNN default (recorded as `tf32`
  in the metrics files). fp16 models run in real fp16 (`dtype=torch.float16`).
"""
from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from .batches import DeviceData

BATCH_SIZE = 500  # fixed: kernels may differ with batch size, and so might the last digit


def accuracy(model: nn.Module, data: DeviceData, dtype: torch.dtype | None = None) -> float:
    """Top-1 test accuracy (fraction) of `model` on data's test split, on data's device."""
    return accuracy_on(model, data.test_batches(BATCH_SIZE), data.device, dtype)


@torch.no_grad()
def accuracy_on(model: nn.Module, batches: Iterable[tuple], device: torch.device,
                dtype: torch.dtype | None = None) -> float:
    """Top-1 accuracy (fraction) over (images, labels) batches already on `device`."""
    model.eval()
    cuda = device.type == "cuda"
    if cuda:
        model.to(memory_format=torch.channels_last)
    correct = total = 0
    for x, y in batches:
        if cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        if dtype is not None:
            x = x.to(dtype)
        correct += int((model(x).argmax(1) == y).sum())
        total += len(y)
    return correct / total
