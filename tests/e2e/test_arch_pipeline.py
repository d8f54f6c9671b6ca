"""model.arch through the real pipeline: an unknown name stops the first stage in one line, and the
quick profile's shape (subset, few epochs, the 2 x 2 x fp32/fp16/int8 grid) runs end to end through
DVC for torchvision's mobilenet_v2, resnet50 and vgg11_bn and for the project's own factory
(marked slow: minutes each; run them with `pytest -m slow tests/e2e/test_arch_pipeline.py`).
With $SQUEEZE_ARCH_OUT set, each run's measured models are written there as JSON (docs/your-model.md
quotes them)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from test_pipeline_e2e import ARCHIVE, environment, fresh_clone, run

REPO = Path(__file__).resolve().parents[2]


def test_check_params_builds_the_arch_before_any_data(tmp_path):
    """The first stage of a run builds a model.arch other than the study's: an unknown
    torchvision name stops it in one line naming it, with nothing written."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["model"]["arch"] = "torchvision:nonexistent_net"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    found = subprocess.run([sys.executable, "stages/check_params.py", "--params",
                            str(tmp_path / "params.yaml"), "--out", str(tmp_path / "valid")],
                           cwd=REPO, capture_output=True, text=True, timeout=120)
    assert found.returncode == 1 and not (tmp_path / "valid").exists()
    assert found.stderr.count("\n") == 1 and "'nonexistent_net'" in found.stderr, found.stderr


def test_profile_refuses_an_unknown_arch_before_dvc_runs():
    found = subprocess.run([sys.executable, "-m", "squeeze", "profile", "quick", "--",
                            "-S", "model.arch=torchvision:nonexistent_net"],
                           cwd=REPO, capture_output=True, text=True, timeout=120)
    assert found.returncode == 1 and found.stdout == "", found.stdout
    assert found.stderr.startswith("error: model.arch 'torchvision:nonexistent_net'")
    assert found.stderr.count("\n") == 1, found.stderr


# the bigger two train 2 epochs at lr 0.01 (the quick profile's 4 at 0.05 sent resnet50's loss
# past 16 in its first epoch; on 2,000 images it stayed at chance after 2)
BIGGER = ["-S", "train.epochs=2", "-S", "train.lr=0.01"]
RUNS = {
    "mobilenet_v2": ["-S", "model.arch=torchvision:mobilenet_v2"],
    "resnet50": ["-S", "model.arch=torchvision:resnet50", *BIGGER],
    # its cheapest model (s0.5-u0.5-int8) scores 1.67: over the export stage's budget of 1
    "vgg11_bn": ["-S", "model.arch=torchvision:vgg11_bn", *BIGGER, "-S", "export.budget=4"],
    "small_cnn": ["-S", "model.arch=nets.example:small_cnn", "-S", "+model.kwargs.width=16"],
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(RUNS))
def test_the_quick_profile_runs_end_to_end_for_another_arch(name, tmp_path):
    env = environment()
    repo = fresh_clone(tmp_path / "repo", env)
    command = [sys.executable, "-m", "squeeze", "profile", "quick"]
    if ARCHIVE.is_file():
        command += ["--data", str(ARCHIVE)]
    run([*command, "--", *RUNS[name]], repo, env)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    arch = params["model"]["arch"]
    assert arch != "resnet18_cifar"
    measured = {}
    for s in params["prune"]["structured"]["amounts"]:
        for u in params["prune"]["unstructured"]["amounts"]:
            for q in params["quantize"]["types"]:
                m = json.loads((repo / f"metrics/models/s{s}-u{u}-{q}.json").read_text())
                assert m["spec"]["arch"] == arch and m["quant"] == q
                measured[f"s{s}-u{u}-{q}"] = {k: m[k] for k in (
                    "accuracy", "params", "nonzero_params", "ops", "score", "latency_ms_b32")}
    base, pruned = measured["s0-u0-fp32"], measured["s0.5-u0-fp32"]
    assert pruned["params"] < base["params"] and pruned["ops"] < 0.5 * base["ops"]
    assert measured["s0-u0.5-fp32"]["nonzero_params"] < 0.6 * base["nonzero_params"]
    prepare = json.loads((repo / "metrics/prepare.json").read_text())
    chance = 0.1 + 1.96 * (0.1 * 0.9 / prepare["test_images"]) ** 0.5  # its 95% upper end
    assert base["accuracy"] > chance
    summary = json.loads((repo / "reports/summary.json").read_text())
    assert summary["models"] == len(measured)
    assert f"arch {arch}" in (repo / "reports/tradeoff.md").read_text()  # its Run table
    out = os.environ.get("SQUEEZE_ARCH_OUT")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / f"{name}.json").write_text(json.dumps(
            {"arch": arch, "kwargs": params["model"]["kwargs"], "command": RUNS[name],
             "train_images": prepare.get("train_images"), "test_images": prepare.get("test_images"),
             "models": measured}, indent=1))


def archive_at(source: Path, out: Path, size: int, per_class: dict[str, int]) -> Path:
    """An ImageFolder .tar.gz of the first `per_class[split]` images of each class of `source`
    (the CIFAR-10 JPEG archive), each resized to size x size."""
    import io
    import tarfile

    from PIL import Image

    taken: dict[tuple[str, str], int] = {}
    with tarfile.open(source) as src, tarfile.open(out, "w:gz") as dst:
        for member in src:
            parts = Path(member.name.lstrip("./")).parts
            if not member.isfile() or len(parts) < 3 or parts[-3] not in per_class:
                continue
            split, cls = parts[-3], parts[-2]
            if taken.get((split, cls), 0) >= per_class[split]:
                continue
            taken[(split, cls)] = taken.get((split, cls), 0) + 1
            with Image.open(src.extractfile(member)) as img:
                buf = io.BytesIO()
                img.convert("RGB").resize((size, size), Image.BILINEAR).save(buf, "JPEG", quality=95)
            info = tarfile.TarInfo(f"cifar64/{split}/{cls}/{parts[-1]}")
            info.size = buf.tell()
            buf.seek(0)
            dst.addfile(info, buf)
    return out


@pytest.mark.slow
@pytest.mark.skipif(not ARCHIVE.is_file(), reason="needs the CIFAR-10 JPEG archive")
def test_the_quick_profile_runs_on_a_64_pixel_image_folder(tmp_path):
    """The same CIFAR images at 64x64 in an ImageFolder archive: prepare keeps them at
    data.image_size 64, and counts, pruning, int8 and latency all run at 64."""
    env = environment()
    repo = fresh_clone(tmp_path / "repo", env)
    archive = archive_at(ARCHIVE, tmp_path / "cifar64.tar.gz", 64, {"train": 200, "test": 50})
    run([sys.executable, "-m", "squeeze", "profile", "quick", "--data", str(archive), "--",
         "-S", "model.arch=nets.example:small_cnn", "-S", "+model.kwargs.width=16",
         "-S", "data.image_size=64", "-S", "data.train_subset=0", "-S", "data.test_subset=0"],
        repo, env)
    prepare = json.loads((repo / "metrics/prepare.json").read_text())
    assert prepare["image_size"] == 64 and prepare["train_images"] == 2000
    measured = {}
    for name in ("s0-u0-fp32", "s0.5-u0-fp32", "s0.5-u0.5-int8"):
        m = json.loads((repo / f"metrics/models/{name}.json").read_text())
        assert m["spec"]["image_size"] == 64 and m["latency_ms_b32"] > 0
        measured[name] = {k: m[k] for k in ("accuracy", "params", "nonzero_params", "ops", "score")}
    assert measured["s0.5-u0-fp32"]["ops"] < 0.5 * measured["s0-u0-fp32"]["ops"]
    assert measured["s0-u0-fp32"]["accuracy"] > 0.1 + 1.96 * (0.09 / 500) ** 0.5  # above chance
    out = os.environ.get("SQUEEZE_ARCH_OUT")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "small_cnn-64.json").write_text(json.dumps(
            {"arch": "nets.example:small_cnn", "image_size": 64, "models": measured}, indent=1))
