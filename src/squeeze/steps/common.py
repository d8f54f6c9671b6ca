"""What the training steps (baseline, structured, unstructured) share: the input digest that keys
a resume checkpoint, and the measurement fields of their metrics files."""
from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import nn

from .. import device as devices
from ..batches import DeviceData
from ..evaluation import accuracy


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_data(path: Path, requested: str | None = None) -> DeviceData:
    return DeviceData.from_file(path, devices.pick(requested))


def measured(model: nn.Module, data: DeviceData) -> float:
    """Test accuracy, rounded as every metrics file holds it."""
    return round(accuracy(model, data), 6)


def untrained() -> dict:
    """The training fields of a step that trained nothing (amount 0)."""
    return {"epochs": 0, "train_seconds": 0.0, "images_per_second": None, "epoch_wall_seconds": None}


def on(data: DeviceData) -> dict:
    return devices.describe(data.device)


def to_cpu(model: nn.Module) -> nn.Module:
    model.to(memory_format=torch.contiguous_format)
    return model.cpu()
