"""The prepared data file: both splits as uint8 arrays in one .npz, written by `prepare` and read
by every stage that trains or evaluates. Its format lives here alone; numpy only.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DataError
from .fsutil import atomic_path


@dataclass
class Dataset:
    """Both splits as uint8 N x 3 x 32 x 32 arrays, int64 labels, and the class names."""
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: list[str]

    def mean_std(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel mean and std of the training split, on the [0, 1] scale."""
        x = self.x_train.astype(np.float64) / 255.0
        return x.mean(axis=(0, 2, 3)), x.std(axis=(0, 2, 3))


def save(ds: Dataset, out: Path) -> None:
    """One .npz of uint8 arrays. np.savez writes fixed member timestamps, so the same data gives
    the same bytes and DVC sees an unchanged prepare as unchanged (a test holds it to that)."""
    mean, std = ds.mean_std()
    with atomic_path(out) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, x_train=ds.x_train, y_train=ds.y_train, x_test=ds.x_test,
                     y_test=ds.y_test, classes=np.asarray(ds.classes), mean=mean, std=std)


def load_prepared(path: Path) -> tuple[Dataset, np.ndarray, np.ndarray]:
    """The prepared file -> (dataset, mean, std). Never unpickles (allow_pickle=False)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            ds = Dataset(z["x_train"], z["y_train"], z["x_test"], z["y_test"],
                         [str(c) for c in z["classes"]])
            return ds, z["mean"], z["std"]
    except FileNotFoundError:
        raise DataError(f"{path}: prepared data not found; run the prepare stage first") from None
    except (ValueError, KeyError, OSError) as err:
        raise DataError(f"{path}: not a prepared squeeze data file ({err})") from None
