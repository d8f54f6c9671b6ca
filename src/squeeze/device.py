"""Which device a stage runs on, and how to name it in a metrics file.

Every metrics file records the device type, its name and whether TF32 was allowed, so an accuracy
is never read without knowing what computed it (fp16 is real fp16 on CUDA, rounded weights on CPU).
"""
from __future__ import annotations

import os
import platform

import torch


def pick(requested: str | None = None) -> torch.device:
    """`requested`, or SQUEEZE_DEVICE, or the best available: cuda, then mps, then cpu."""
    requested = requested or os.environ.get("SQUEEZE_DEVICE")
    if requested:
        return torch.device(requested)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe(device: torch.device) -> dict:
    """{device, device_name, tf32}: tf32 is whether CUDA convolutions may use TF32 (PyTorch's
    default for cuDNN); null off CUDA."""
    device = torch.device(device)
    if device.type == "cuda":
        return {"device": "cuda", "device_name": torch.cuda.get_device_name(device),
                "tf32": bool(torch.backends.cudnn.allow_tf32)}
    return {"device": device.type, "device_name": cpu_name() if device.type == "cpu" else device.type,
            "tf32": None}
