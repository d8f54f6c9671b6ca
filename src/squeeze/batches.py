"""Device-resident batches: both splits as uint8 tensors on the training device, augmented and
normalised there in whole batches (random crop with 4-pixel zero padding, horizontal flip): no PIL,
no worker processes. Every stage that trains or evaluates reads its images through this module.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from .prepared import Dataset, load_prepared


class DeviceData:
    """Both splits as uint8 tensors on `device`; batches are augmented and normalised there."""

    def __init__(self, ds: Dataset, mean, std, device):
        import torch

        self.device = torch.device(device)
        self.x_train = torch.from_numpy(ds.x_train).to(self.device)
        self.y_train = torch.from_numpy(ds.y_train).to(self.device)
        self.x_test = torch.from_numpy(ds.x_test).to(self.device)
        self.y_test = torch.from_numpy(ds.y_test).to(self.device)
        # what a checkpoint records so that its model can be fed outside the pipeline (read from
        # the host arrays: a CUDA tensor has no numpy view)
        mean_list = [float(v) for v in np.asarray(mean, dtype=np.float32).ravel()]
        std_list = [float(v) for v in np.asarray(std, dtype=np.float32).ravel()]
        mean = torch.as_tensor(np.asarray(mean), dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        std = torch.as_tensor(np.asarray(std), dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        # (x / 255 - mean) / std as one multiply-add
        self.scale, self.shift = 1 / (255 * std), -mean / std
        self.classes = ds.classes
        self.preprocess = {"mean": mean_list, "std": std_list,
                           "classes": list(ds.classes), "image_size": int(ds.x_train.shape[-1])}

    @classmethod
    def from_file(cls, path: Path, device) -> "DeviceData":
        ds, mean, std = load_prepared(path)
        return cls(ds, mean, std, device)

    def normalize(self, x_uint8):
        return x_uint8.float().mul_(self.scale).add_(self.shift)

    def train_batches(self, batch_size: int, generator) -> Iterator[tuple]:
        """One epoch of shuffled, augmented, normalised batches (the last may be smaller)."""
        import torch

        n = len(self.y_train)
        order = torch.randperm(n, generator=generator, device=generator.device).to(self.device)
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            x = augment(self.x_train[idx], generator, padding=self.x_train.shape[-1] // 8)
            yield self.normalize(x), self.y_train[idx]

    def test_batches(self, batch_size: int) -> Iterator[tuple]:
        for start in range(0, len(self.y_test), batch_size):
            yield (self.normalize(self.x_test[start:start + batch_size]),
                   self.y_test[start:start + batch_size])

    def calibration_batches(self, batch_size: int, count: int, seed: int) -> Iterator:
        """Un-augmented, normalised training images (never test) for int8 calibration."""
        for x, _ in self.held_batches(batch_size, batch_size * count, seed):
            yield x

    def held_batches(self, batch_size: int, images: int, seed: int) -> Iterator[tuple]:
        """`images` training images drawn without replacement by `seed`, un-augmented and
        normalised, with their labels: measurements that must not look at the test set."""
        import torch

        rng = np.random.default_rng(seed)
        idx = torch.as_tensor(rng.permutation(len(self.y_train))[:images], device=self.device)
        for start in range(0, len(idx), batch_size):
            chunk = idx[start:start + batch_size]
            yield self.normalize(self.x_train[chunk]), self.y_train[chunk]


def augment(x, generator, padding: int = 4):  # the caller's padding: an eighth of the size
    """Random crop (zero padding `padding`) and horizontal flip of a uint8 batch, on its device.

    One gather for the whole batch: each image gets its own (dy, dx) offset into its padded copy,
    a random half read their columns mirrored. Shapes, dtype and order are kept.
    """
    import torch
    import torch.nn.functional as F

    b, c, h, w = x.shape
    width = w + 2 * padding
    padded = F.pad(x, (padding,) * 4).view(b, c, -1)
    dev = generator.device
    offsets = torch.randint(0, 2 * padding + 1, (b, 2), generator=generator, device=dev).to(x.device)
    flips = torch.rand(b, generator=generator, device=dev).to(x.device) < 0.5
    rows = offsets[:, 0:1] + torch.arange(h, device=x.device)
    cols = offsets[:, 1:2] + torch.arange(w, device=x.device)
    cols = torch.where(flips.view(b, 1), cols.flip(-1), cols)
    index = (rows.view(b, h, 1) * width + cols.view(b, 1, w)).view(b, 1, h * w)
    return padded.gather(2, index.expand(b, c, h * w)).view(b, c, h, w)
