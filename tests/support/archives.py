"""CIFAR-like ImageFolder archives of random JPEGs, written by the tests that need a .tar.gz."""
from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image


def write_archive(path: Path, per_class: dict[str, int], classes: int = 10) -> Path:
    """A CIFAR-like ImageFolder .tar.gz of random 32x32 JPEGs."""
    rng = np.random.default_rng(0)
    with tarfile.open(path, "w:gz") as tar:
        for split, count in per_class.items():
            for c in range(classes):
                for i in range(count):
                    buf = io.BytesIO()
                    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buf, "JPEG")
                    info = tarfile.TarInfo(f"cifar/{split}/class{c}/{i:04d}.jpg")
                    info.size = buf.tell()
                    buf.seek(0)
                    tar.addfile(info, buf)
    return path
