"""Data sources (cifar10, cifar100, folder, synthetic) and `prepare`: decode once into the
prepared file.

Images become N x 3 x S x S uint8 arrays, S = data.image_size (32, CIFAR's own, by default; any
other size is a bilinear resize of each image, a folder's images of any size included; format:
prepared.py); training reads them through batches.py. Only the prepare stage imports this module.
"""
from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np

from .config import IMAGE_SIZE, DataConfig
from .errors import DataError
from .prepared import Dataset, save

SPLITS = ("train", "test")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".webp"}


# ---- sources --------------------------------------------------------------------------------

def load_source(cfg: DataConfig) -> Dataset:
    """The source's images at data.image_size."""
    if cfg.source == "folder":
        return load_folder(Path(cfg.path), cfg.image_size)
    if cfg.source == "synthetic":
        ds = synthetic(cfg.synthetic_train_size, cfg.synthetic_test_size, seed=cfg.seed)
    else:
        ds = load_cifar(Path(cfg.path), cfg.source)
    return resized(ds, cfg.image_size)


def load_cifar(root: Path, source: str = "cifar10") -> Dataset:
    """The official CIFAR-10 or CIFAR-100 (fine labels) batches via torchvision, which verifies
    the archive's MD5."""
    from torchvision.datasets import CIFAR10, CIFAR100

    kind, name = {"cifar10": (CIFAR10, "CIFAR-10"), "cifar100": (CIFAR100, "CIFAR-100")}[source]
    try:
        train = kind(str(root), train=True, download=True)
        test = kind(str(root), train=False, download=True)
    except Exception as err:  # network errors come in many types; all mean the same here
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DataError(
            f"could not download {name} into {root} ({reason}); offline, set data.source: folder "
            "and data.path to an ImageFolder tree or .tar.gz (e.g. ../shared/data/cifar10-jpeg.tar.gz)"
        ) from None

    def arrays(ds):
        return (np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2)),
                np.asarray(ds.targets, dtype=np.int64))

    x_train, y_train = arrays(train)
    x_test, y_test = arrays(test)
    return Dataset(x_train, y_train, x_test, y_test, list(train.classes))


def load_folder(path: Path, size: int = IMAGE_SIZE) -> Dataset:
    """An ImageFolder tree `train/<class>/*`, `test/<class>/*`, or a .tar.gz of one; its RGB images
    of any size, each resized to `size` x `size` (one already that size is kept as it is)."""
    if not path.exists():
        raise DataError(f"data.path {path} does not exist; expected an ImageFolder tree or .tar.gz")
    files = _archive_files(path) if path.is_file() else _tree_files(path)
    by_split: dict[str, dict[str, list]] = {s: {} for s in SPLITS}
    for rel, opener in files:
        parts = rel.split("/")
        # accept one optional top-level folder: <root>/train/<class>/<file>
        if len(parts) >= 4 and parts[-3] in SPLITS:
            split, cls = parts[-3], parts[-2]
        elif len(parts) == 3 and parts[0] in SPLITS:
            split, cls = parts[0], parts[1]
        else:
            continue
        if Path(parts[-1]).suffix.lower() in IMAGE_SUFFIXES and not parts[-1].startswith("._"):
            by_split[split].setdefault(cls, []).append((rel, opener))
    for split in SPLITS:
        if not by_split[split]:
            raise DataError(f"{path}: no images under {split}/<class>/; expected train/ and test/ "
                            "split folders, each with one folder per class")
    train_classes, test_classes = sorted(by_split["train"]), sorted(by_split["test"])
    if train_classes != test_classes:
        only = sorted(set(train_classes) ^ set(test_classes))
        raise DataError(f"{path}: train and test have different classes (not in both: {only})")
    x_train, y_train = _decode_split(by_split["train"], train_classes, size)
    x_test, y_test = _decode_split(by_split["test"], train_classes, size)
    return Dataset(x_train, y_train, x_test, y_test, train_classes)


def _tree_files(root: Path):
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        yield file.relative_to(root).as_posix(), file.read_bytes


def _archive_files(path: Path):
    try:
        tar = tarfile.open(path, "r:*")
        members = [m for m in tar.getmembers() if m.isfile()]
        # tarfile takes a cut-off header for the end of the archive: what follows the last
        # member must be the zero padding of a complete archive
        tar.fileobj.seek(tar.offset)
        if tar.fileobj.read().strip(b"\0"):
            raise tarfile.ReadError("archive ends inside a member header (truncated)")
    except (tarfile.TarError, EOFError, OSError) as err:
        raise DataError(f"{path}: not a readable tar archive ({err}); expected a .tar.gz of an "
                        "ImageFolder tree") from None

    def opener(member):
        def read() -> bytes:
            try:
                return tar.extractfile(member).read()
            except (tarfile.TarError, EOFError, OSError) as err:
                raise DataError(f"{path}: archive is truncated or corrupt at {member.name} "
                                f"({err})") from None
        return read

    for member in sorted(members, key=lambda m: m.name):
        yield member.name.lstrip("./"), opener(member)


def _resize(img, size: int):
    """A PIL image at size x size: itself when it is already, else a bilinear resize."""
    from PIL import Image

    return img if img.size == (size, size) else img.resize((size, size), Image.BILINEAR)


def resized(ds: Dataset, size: int) -> Dataset:
    """`ds` with every image at size x size (itself when they are already)."""
    if ds.x_train.shape[-1] == size and ds.x_train.shape[-2] == size:
        return ds
    from PIL import Image

    def each(x: np.ndarray) -> np.ndarray:
        return np.stack([np.asarray(_resize(Image.fromarray(im.transpose(1, 2, 0)), size))
                         .transpose(2, 0, 1) for im in x])

    return Dataset(each(ds.x_train), ds.y_train, each(ds.x_test), ds.y_test, ds.classes)


def _decode_split(by_class: dict[str, list], classes: list[str],
                  size: int = IMAGE_SIZE) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image, UnidentifiedImageError

    images, labels = [], []
    for label, cls in enumerate(classes):
        for rel, read in sorted(by_class[cls], key=lambda item: item[0]):
            try:
                with Image.open(io.BytesIO(read())) as img:
                    img.load()
                    mode, found = img.mode, img.size
                    array = np.asarray(_resize(img, size)) if mode == "RGB" else None
            except (UnidentifiedImageError, OSError) as err:
                raise DataError(f"{rel}: not a readable image ({err})") from None
            if mode != "RGB":
                raise DataError(f"{rel}: image is {found[0]}x{found[1]} {mode}; every image must be "
                                "RGB (any size: data.image_size resizes)")
            images.append(array.transpose(2, 0, 1))
            labels.append(label)
    return np.stack(images), np.asarray(labels, dtype=np.int64)


def synthetic(train_size: int, test_size: int, seed: int = 0, num_classes: int = 10) -> Dataset:
    """Deterministic 32x32 images with learnable class structure: each class is a smooth colour
    pattern of its own, each image that pattern shifted, scaled in contrast and noised."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 1, size=(num_classes, 3, 4, 4))
    prototypes = coarse.repeat(8, axis=2).repeat(8, axis=3)  # 4x4 colour blocks, 32x32

    def make(n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = np.arange(n) % num_classes
        rng.shuffle(labels)
        shifts = rng.integers(-3, 4, size=(n, 2))
        contrast = rng.uniform(0.6, 1.0, size=(n, 1, 1, 1))
        x = np.stack([np.roll(prototypes[c], tuple(s), axis=(1, 2)) for c, s in zip(labels, shifts)])
        x = 0.5 + contrast * (x - 0.5) + rng.normal(0, 0.12, size=x.shape)
        return (np.clip(x, 0, 1) * 255).round().astype(np.uint8), labels.astype(np.int64)

    x_train, y_train = make(train_size)
    x_test, y_test = make(test_size)
    return Dataset(x_train, y_train, x_test, y_test, [f"class{c}" for c in range(num_classes)])


# ---- prepare: subsets and the compact file --------------------------------------------------

def stratified_subset(y: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Indices of a deterministic subset with (as near as possible) equal counts per class."""
    if size == 0 or size >= len(y):
        return np.arange(len(y))
    rng = np.random.default_rng(seed)
    classes = np.unique(y)
    per_class = [rng.permutation(np.flatnonzero(y == c)) for c in classes]
    base, extra = divmod(size, len(classes))
    chosen = [idx[: base + (1 if i < extra else 0)] for i, idx in enumerate(per_class)]
    return np.sort(np.concatenate(chosen))


def subset(ds: Dataset, train_size: int, test_size: int, seed: int) -> Dataset:
    tr = stratified_subset(ds.y_train, train_size, seed)
    te = stratified_subset(ds.y_test, test_size, seed + 1)
    return Dataset(ds.x_train[tr], ds.y_train[tr], ds.x_test[te], ds.y_test[te], ds.classes)


def prepare(cfg: DataConfig, out: Path) -> dict:
    """Source -> optional stratified subsets -> one .npz of uint8 arrays. Returns a summary."""
    ds = subset(load_source(cfg), cfg.train_subset, cfg.test_subset, cfg.seed)
    save(ds, out)
    mean, std = ds.mean_std()
    return {"source": cfg.source, "image_size": int(ds.x_train.shape[-1]),
            "train_images": int(len(ds.y_train)),
            "test_images": int(len(ds.y_test)), "classes": ds.classes,
            "mean": [round(float(m), 4) for m in mean], "std": [round(float(s), 4) for s in std]}
