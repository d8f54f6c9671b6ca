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


# the vector units that decide CPU speed and float results (int8 kernels gain ~2x with VNNI)
CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8", "asimd")


def torch_runtime() -> str:
    """What runs a torch model, as metrics files name it: "torch 2.14.1" (no local build tag)."""
    return f"torch {torch.__version__.split('+')[0]}"


def cpu_name(cpuinfo: str = "/proc/cpuinfo") -> str:
    """The CPU model and its relevant vector flags, e.g. `AMD EPYC [avx2 avx512f avx512_vnni]`:
    one model name has been seen both with and without AVX-512 here."""
    name, flags = None, None
    try:
        with open(cpuinfo) as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and name is None:
                    name = value.strip()
                elif key.strip() in ("flags", "Features") and flags is None:
                    flags = [f for f in CPU_FLAGS if f in value.split()]
    except OSError:
        pass
    name = name or platform.machine()  # not processor(): it starts `uname -p`
    return f"{name} [{' '.join(flags)}]" if flags else name


def describe(device: torch.device) -> dict:
    """{device, device_name, tf32}: tf32 is whether CUDA convolutions may use TF32 (PyTorch's
    default for cuDNN); null off CUDA."""
    device = torch.device(device)
    if device.type == "cuda":
        return {"device": "cuda", "device_name": torch.cuda.get_device_name(device),
                "tf32": bool(torch.backends.cudnn.allow_tf32)}
    return {"device": device.type, "device_name": cpu_name() if device.type == "cpu" else device.type,
            "tf32": None}
