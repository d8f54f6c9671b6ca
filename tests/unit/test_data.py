"""data: ImageFolder/.tar.gz decoding, prepared files, subsets, synthetic data, augmentation and
device batches. Every image is generated in tmp_path with PIL; nothing is downloaded."""
from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from squeeze import batches, data, prepared
from squeeze.config import ConfigError, DataConfig
from squeeze.data import DataError

# Deliberately not in sorted order: labels must follow the sorted class-folder names.
CLASSES = ("dog", "airplane", "cat")
SORTED_CLASSES = ["airplane", "cat", "dog"]
PER_CLASS = {"train": 3, "test": 2}
SPLIT_IDS = {"train": 1, "test": 2}


# ---- helpers ------------------------------------------------------------------------------------

def pixels(split: str, cls: str, i: int, size: int = 32) -> np.ndarray:
    """A deterministic, distinct H x W x 3 uint8 image for (split, class, index)."""
    seed = (SPLIT_IDS[split] * 100 + CLASSES.index(cls) * 10 + i) if cls in CLASSES else i
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)



def encode(array: np.ndarray, fmt: str = "PNG", mode: str | None = None) -> bytes:
    img = Image.fromarray(array)
    if mode is not None:
        img = img.convert(mode)
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def image_files(classes: dict[str, tuple[str, ...]] | None = None) -> dict[str, bytes]:
    """relative path -> encoded image. Train images: PNG, except one JPEG per class (lossy, so
    only shape is checked for it); test images: PNG."""
    classes = classes or {split: CLASSES for split in PER_CLASS}
    files = {}
    for split, names in classes.items():
        for cls in names:
            for i in range(PER_CLASS[split]):
                if split == "train" and i == PER_CLASS[split] - 1:
                    files[f"{split}/{cls}/img{i}.jpg"] = encode(pixels(split, cls, i), "JPEG")
                else:
                    files[f"{split}/{cls}/img{i}.png"] = encode(pixels(split, cls, i))
    return files


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, content in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    return root


def write_targz(path: Path, files: dict[str, bytes], top: str | None = None) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for rel, content in files.items():
            info = tarfile.TarInfo(f"{top}/{rel}" if top else rel)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return path


def folder_config(path: Path, train_subset: int = 0, test_subset: int = 0) -> DataConfig:
    return DataConfig(source="folder", path=str(path), train_subset=train_subset,
                      test_subset=test_subset, synthetic_train_size=1, synthetic_test_size=1,
                      seed=0)


def constant_batch(n: int) -> torch.Tensor:
    """n images, image i filled with the value i + 1 (never 0, the padding value)."""
    return (torch.arange(1, n + 1, dtype=torch.uint8).view(n, 1, 1, 1)
            .expand(n, 3, 32, 32).contiguous())


def generator(seed: int = 0) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(seed)
    return g


# ---- folder source -------------------------------------------------------------------------------

@pytest.mark.parametrize("layout", ["targz", "targz_top_folder", "tree"])
def test_prepare_folder_source(tmp_path, layout):
    files = image_files()
    if layout == "tree":
        source = write_tree(tmp_path / "images", files)
    else:
        top = "cifar-like" if layout == "targz_top_folder" else None
        source = write_targz(tmp_path / "images.tar.gz", files, top=top)
    out = tmp_path / "prepared" / "data.npz"

    summary = data.prepare(folder_config(source), out)

    assert summary["source"] == "folder"
    assert summary["classes"] == SORTED_CLASSES
    assert (summary["train_images"], summary["test_images"]) == (9, 6)
    ds, mean, std = prepared.load_prepared(out)
    assert ds.classes == SORTED_CLASSES
    assert ds.x_train.shape == (9, 3, 32, 32) and ds.x_train.dtype == np.uint8
    assert ds.x_test.shape == (6, 3, 32, 32) and ds.x_test.dtype == np.uint8
    assert ds.y_train.dtype == np.int64
    # grouped by sorted class name, files in name order within a class
    assert ds.y_train.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert ds.y_test.tolist() == [0, 0, 1, 1, 2, 2]
    # PNG pixels survive exactly: train "cat" img1 is index 3 + 1, test "dog" img0 is index 4
    np.testing.assert_array_equal(ds.x_train[4], pixels("train", "cat", 1).transpose(2, 0, 1))
    np.testing.assert_array_equal(ds.x_test[4], pixels("test", "dog", 0).transpose(2, 0, 1))
    np.testing.assert_array_equal(ds.x_train[0], pixels("train", "airplane", 0).transpose(2, 0, 1))
    # the JPEG (airplane img2) decodes to something close to its source
    jpeg_error = np.abs(ds.x_train[2].astype(int) - pixels("train", "airplane", 2).transpose(2, 0, 1))
    assert jpeg_error.mean() < 60
    # mean/std are the train split's, on the [0, 1] scale
    x = ds.x_train.astype(np.float64) / 255
    np.testing.assert_allclose(mean, x.mean(axis=(0, 2, 3)))
    np.testing.assert_allclose(std, x.std(axis=(0, 2, 3)))
    assert summary["mean"] == [round(float(m), 4) for m in mean]
    assert sorted(p.name for p in out.parent.iterdir()) == ["data.npz"]  # no temp files left


def test_prepare_folder_subset_is_stratified(tmp_path):
    source = write_targz(tmp_path / "images.tar.gz", image_files())
    out = tmp_path / "data.npz"
    summary = data.prepare(folder_config(source, train_subset=6, test_subset=3), out)
    ds, _, _ = prepared.load_prepared(out)
    assert (summary["train_images"], summary["test_images"]) == (6, 3)
    assert np.bincount(ds.y_train).tolist() == [2, 2, 2]
    assert np.bincount(ds.y_test).tolist() == [1, 1, 1]


def test_files_outside_split_class_layout_are_ignored(tmp_path):
    files = image_files()
    files["README.txt"] = b"not an image"
    files["train/cat/notes.txt"] = b"not an image either"
    ds = data.load_folder(write_targz(tmp_path / "images.tar.gz", files))
    assert len(ds.y_train) == 9 and len(ds.y_test) == 6


# ---- folder source errors --------------------------------------------------------------------------

def assert_data_error(path: Path, *fragments: str) -> str:
    with pytest.raises(DataError) as info:
        data.load_folder(path)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


def test_missing_folder(tmp_path):
    missing = tmp_path / "no-such-folder"
    assert_data_error(missing, str(missing), "does not exist")


def test_prepare_reports_missing_folder_without_writing(tmp_path):
    out = tmp_path / "data.npz"
    with pytest.raises(DataError, match="does not exist"):
        data.prepare(folder_config(tmp_path / "missing.tar.gz"), out)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_file_that_is_not_a_tar(tmp_path):
    path = tmp_path / "images.tar.gz"
    path.write_bytes(b"this is plain text, not a tar archive\n" * 20)
    assert_data_error(path, str(path), "not a readable tar archive")


def test_truncated_targz(tmp_path):
    path = write_targz(tmp_path / "images.tar.gz", image_files())
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 2])
    message = assert_data_error(path, str(path))
    assert "truncated" in message or "not a readable tar archive" in message


def test_train_and_test_with_different_classes(tmp_path):
    files = image_files({"train": ("cat", "dog"), "test": ("cat", "horse")})
    path = write_targz(tmp_path / "images.tar.gz", files)
    assert_data_error(path, "different classes", "'dog'", "'horse'")


def test_missing_split(tmp_path):
    files = image_files({"train": CLASSES})
    assert_data_error(write_tree(tmp_path / "tree", files), "no images under test/")


@pytest.mark.parametrize("bad_image, fragments", [
    (encode(pixels("train", "x", 0), mode="L"), ("32x32 L", "must be RGB")),
    (encode(pixels("train", "x", 0), mode="RGBA"), ("32x32 RGBA",)),
    (b"\x89PNG but not really", ("not a readable image",)),
])
def test_bad_image_is_named(tmp_path, bad_image, fragments):
    files = image_files()
    files["train/cat/zz_bad.png"] = bad_image
    assert_data_error(write_targz(tmp_path / "images.tar.gz", files),
                      "train/cat/zz_bad.png", *fragments)


def test_unknown_source_is_a_config_error():
    params = {"source": "imagenet", "path": "x", "train_subset": 0, "test_subset": 0,
              "synthetic_train_size": 1, "synthetic_test_size": 1, "seed": 0}
    with pytest.raises(ConfigError, match="data.source = 'imagenet'"):
        DataConfig.from_params(params)


def test_load_prepared_errors(tmp_path):
    with pytest.raises(DataError, match="prepared data not found"):
        prepared.load_prepared(tmp_path / "missing.npz")
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"\x00" * 100)
    with pytest.raises(DataError, match="not a prepared squeeze data file"):
        prepared.load_prepared(garbage)
    partial = tmp_path / "partial.npz"
    np.savez(partial, x_train=np.zeros((1, 3, 32, 32), np.uint8))
    with pytest.raises(DataError, match="not a prepared squeeze data file"):
        prepared.load_prepared(partial)


# ---- subsets and synthetic data --------------------------------------------------------------------

def test_stratified_subset_is_balanced_and_deterministic():
    y = np.repeat([0, 1, 2], [50, 30, 20])
    np.random.default_rng(1).shuffle(y)
    idx = data.stratified_subset(y, 30, seed=7)
    assert len(idx) == 30 and len(set(idx.tolist())) == 30
    assert np.all(np.diff(idx) > 0), "indices are sorted"
    assert np.bincount(y[idx]).tolist() == [10, 10, 10]
    np.testing.assert_array_equal(idx, data.stratified_subset(y, 30, seed=7))
    assert not np.array_equal(idx, data.stratified_subset(y, 30, seed=8))
    assert np.bincount(y[data.stratified_subset(y, 32, seed=0)]).tolist() == [11, 11, 10]


@pytest.mark.parametrize("size", [0, 100, 1000])
def test_stratified_subset_zero_or_large_keeps_everything(size):
    y = np.arange(100) % 4
    np.testing.assert_array_equal(data.stratified_subset(y, size, seed=0), np.arange(100))


def test_synthetic_is_deterministic_per_seed():
    a = data.synthetic(200, 50, seed=3)
    b = data.synthetic(200, 50, seed=3)
    c = data.synthetic(200, 50, seed=4)
    for name in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.x_train, c.x_train)
    assert not np.array_equal(a.x_test, c.x_test)
    assert a.x_train.shape == (200, 3, 32, 32) and a.x_train.dtype == np.uint8
    assert a.x_test.shape == (50, 3, 32, 32)
    assert np.bincount(a.y_train).tolist() == [20] * 10
    assert a.classes == [f"class{i}" for i in range(10)]
    assert not np.array_equal(a.x_train[:50], a.x_test), "test images are new draws"


def test_synthetic_source_through_prepare(tmp_path):
    cfg = DataConfig(source="synthetic", path="", train_subset=40, test_subset=0,
                     synthetic_train_size=100, synthetic_test_size=30, seed=5)
    summary = data.prepare(cfg, tmp_path / "d.npz")
    ds, _, _ = prepared.load_prepared(tmp_path / "d.npz")
    assert (summary["train_images"], summary["test_images"]) == (40, 30)
    assert np.bincount(ds.y_train).tolist() == [4] * 10
    full = data.synthetic(100, 30, seed=5)
    np.testing.assert_array_equal(ds.x_test, full.x_test)


# ---- augmentation ------------------------------------------------------------------------------------

def test_augment_keeps_shape_dtype_and_image_order():
    x = constant_batch(32)
    out = batches.augment(x, generator(0))
    assert out.shape == x.shape and out.dtype == torch.uint8
    padded = 0
    for i in range(len(x)):
        values = set(out[i].unique().tolist())
        assert values <= {0, i + 1}, f"image {i} has foreign values {values}"
        assert i + 1 in values
        padded += 0 in values
    assert 0 < padded < len(x), "some crops reach into the zero padding, not all"


def test_augment_is_a_shifted_crop_or_its_mirror():
    """Each output is exactly one of the 81 crops of the padded image or its mirror."""
    x = torch.randint(0, 256, (12, 3, 32, 32), generator=generator(1), dtype=torch.uint8)
    out = batches.augment(x, generator(2))
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    flipped = 0
    for i in range(len(x)):
        matches = [(dy, dx, flip) for dy in range(9) for dx in range(9) for flip in (False, True)
                   if torch.equal(out[i], _crop(padded[i], dy, dx, flip))]
        assert len(matches) == 1, f"image {i}: {matches}"
        flipped += matches[0][2]
    assert 0 < flipped < len(x)


def _crop(img: torch.Tensor, dy: int, dx: int, flip: bool) -> torch.Tensor:
    crop = img[:, dy:dy + 32, dx:dx + 32]
    return crop.flip(-1) if flip else crop


def test_augment_without_padding_is_identity_or_flip():
    x = torch.randint(0, 256, (64, 3, 32, 32), generator=generator(3), dtype=torch.uint8)
    out = batches.augment(x, generator(4), padding=0)
    same = [torch.equal(out[i], x[i]) for i in range(len(x))]
    mirrored = [torch.equal(out[i], x[i].flip(-1)) for i in range(len(x))]
    assert all(s or m for s, m in zip(same, mirrored))
    assert 10 < sum(mirrored) < 54, "about half are flipped"


def test_augment_is_deterministic_per_generator_seed():
    x = torch.randint(0, 256, (16, 3, 32, 32), generator=generator(5), dtype=torch.uint8)
    assert torch.equal(batches.augment(x, generator(9)), batches.augment(x, generator(9)))
    assert not torch.equal(batches.augment(x, generator(9)), batches.augment(x, generator(10)))


# ---- device batches ------------------------------------------------------------------------------------

def constant_dataset(n_train: int, n_test: int) -> prepared.Dataset:
    x_train = constant_batch(n_train).numpy()
    x_test = constant_batch(n_test).numpy()
    return prepared.Dataset(x_train, np.arange(n_train) % 3, x_test, np.arange(n_test) % 3,
                        ["a", "b", "c"])


def test_train_batches_cover_every_image_once_with_labels():
    ds = constant_dataset(50, 10)
    dd = batches.DeviceData(ds, mean=[0, 0, 0], std=[1, 1, 1], device="cpu")
    got = list(dd.train_batches(16, generator(0)))
    assert [len(y) for _, y in got] == [16, 16, 16, 2]
    seen = []
    for x, y in got:
        assert x.dtype == torch.float32 and x.shape[1:] == (3, 32, 32)
        # image i is the constant (i + 1) / 255, or 0 where padded
        ids = (x.amax(dim=(1, 2, 3)) * 255).round().long() - 1
        assert torch.equal(y, ids % 3), "labels travel with their images"
        seen += ids.tolist()
    assert sorted(seen) == list(range(50))
    assert seen != list(range(50)), "shuffled"


def test_test_batches_are_in_order_and_normalised():
    ds = constant_dataset(6, 7)
    dd = batches.DeviceData(ds, mean=[0.5, 0.5, 0.5], std=[0.25, 0.25, 0.25], device="cpu")
    got = list(dd.test_batches(3))
    assert [len(y) for _, y in got] == [3, 3, 1]
    x = torch.cat([b[0] for b in got])
    expected = ((torch.arange(1, 8).float() / 255 - 0.5) / 0.25).view(7, 1, 1, 1).expand(7, 3, 32, 32)
    torch.testing.assert_close(x, expected)


def test_calibration_batches_use_train_images_only():
    ds = constant_dataset(20, 5)
    dd = batches.DeviceData(ds, mean=[0, 0, 0], std=[1, 1, 1], device="cpu")
    got = list(dd.calibration_batches(batch_size=4, count=3, seed=0))
    assert [len(b) for b in got] == [4, 4, 4]
    ids = [int(round(float(b[i, 0, 0, 0]) * 255)) - 1 for b in got for i in range(len(b))]
    assert len(set(ids)) == 12 and all(0 <= i < 20 for i in ids)


def test_plain_tar_truncated_inside_a_member_header(tmp_path):
    path = tmp_path / "images.tar"
    with tarfile.open(path, "w") as tar:
        for rel, content in image_files().items():
            info = tarfile.TarInfo(rel)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    with tarfile.open(path) as tar:
        last = tar.getmembers()[-1]
    path.write_bytes(path.read_bytes()[: last.offset + 256])  # half of the last header block
    with pytest.raises(DataError):
        data.load_folder(path)


def test_prepared_file_is_byte_reproducible(tmp_path, monkeypatch):
    # DVC hashes the bytes: a timestamp inside the .npz would rerun everything downstream
    import time
    ds = data.synthetic(40, 10, seed=3)
    prepared.save(ds, tmp_path / "a.npz")
    later = time.time() + 3600
    monkeypatch.setattr(time, "time", lambda: later)
    prepared.save(ds, tmp_path / "b.npz")
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    loaded, _, _ = prepared.load_prepared(tmp_path / "b.npz")
    assert np.array_equal(loaded.x_train, ds.x_train) and loaded.classes == ds.classes


# ---- data.image_size and cifar100 ---------------------------------------------------------------

def test_folder_images_of_any_size_are_resized_to_image_size(tmp_path):
    """Images of mixed sizes (16x16, 48x40, 32x32) all come out image_size square; at 32 a 32x32
    image is kept pixel for pixel (the study's data: no resize)."""
    files = image_files()
    files["train/cat/zz_small.png"] = encode(pixels("train", "x", 0, size=16))
    files["train/dog/zz_wide.png"] = encode(np.zeros((40, 48, 3), np.uint8) + 200)
    archive = write_targz(tmp_path / "images.tar.gz", files)
    for size in (32, 64):
        ds = data.load_folder(archive, size)
        assert ds.x_train.shape[1:] == (3, size, size) and ds.x_test.shape[1:] == (3, size, size)
    same = data.load_folder(archive, 32)
    first = np.asarray(Image.open(io.BytesIO(files["test/airplane/img0.png"])))
    assert np.array_equal(same.x_test[0], first.transpose(2, 0, 1))
    wide = data.load_folder(archive, 64).x_train[-1]
    assert (wide == 200).all()  # a constant image stays constant through the resize


def test_prepare_resizes_every_source(tmp_path):
    cfg = DataConfig(source="synthetic", path="", train_subset=0, test_subset=0,
                     synthetic_train_size=20, synthetic_test_size=10, seed=0, image_size=48)
    summary = data.prepare(cfg, tmp_path / "d.npz")
    ds, mean, std = prepared.load_prepared(tmp_path / "d.npz")
    assert summary["image_size"] == 48 and ds.x_train.shape == (20, 3, 48, 48)
    assert batches.DeviceData(ds, mean, std, torch.device("cpu")).preprocess["image_size"] == 48


def test_the_train_crop_pads_an_eighth_of_the_size(tmp_path):
    x = (torch.arange(1, 3, dtype=torch.uint8).view(2, 1, 1, 1).expand(2, 3, 64, 64).contiguous())
    out = batches.augment(x, generator(), padding=64 // 8)
    zeros = (out == 0).all(dim=1)  # padding rows/columns that came in
    assert out.shape == x.shape and zeros.sum(dim=(1, 2)).max() <= 2 * 8 * 64


def test_cifar100_offline_is_one_line_naming_it(tmp_path, monkeypatch):
    import torchvision.datasets

    def offline(*_args, **_kwargs):
        raise RuntimeError("<urlopen error [Errno -3] Temporary failure in name resolution>")

    monkeypatch.setattr(torchvision.datasets, "CIFAR100", offline)
    with pytest.raises(DataError) as err:
        data.load_cifar(tmp_path, "cifar100")
    assert "CIFAR-100" in str(err.value) and "\n" not in str(err.value)
    assert "data.source: folder" in str(err.value)


def test_image_size_other_than_32_needs_another_arch():
    import yaml
    from squeeze.config import Params

    params = yaml.safe_load(open("params.yaml"))
    params["data"]["image_size"] = 64
    with pytest.raises(ConfigError) as err:
        Params.parse(params)
    assert "data.image_size = 64" in str(err.value) and "resnet18_cifar" in str(err.value)
    params["model"]["arch"] = "torchvision:mobilenet_v2"
    assert Params.parse(params).data.image_size == 64
