"""checkpoint and fsutil: weights-only checkpoints that refuse pickled code, clear errors for
damaged files, and atomic writes."""
from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch

from squeeze import checkpoint, fsutil, models
from squeeze.checkpoint import CheckpointError
from squeeze.models import ResNetSpec

NARROW = ResNetSpec(stage_widths=(5, 9, 17, 33),
                    block_widths=((3, 7), (4, 11), (6, 2), (13, 1)), num_classes=7)


# ---- helpers -----------------------------------------------------------------------------------

def trained_looking_model(spec: ResNetSpec, seed: int = 0) -> models.ResNet18:
    """A model whose BN buffers are not at their defaults, so buffers are checked too."""
    torch.manual_seed(seed)
    model = models.build(spec)
    model.train()
    with torch.no_grad():
        model(torch.randn(4, 3, 32, 32))
    return model


def save_small(path, spec: ResNetSpec = ResNetSpec.resnet18(4)) -> models.ResNet18:
    model = trained_looking_model(spec)
    checkpoint.save_model(path, model, config={"lr": 0.1, "name": "baseline"}, epoch=7)
    return model


def assert_checkpoint_error(path, *fragments: str, loader=checkpoint.load) -> str:
    with pytest.raises(CheckpointError) as info:
        loader(path)
    message = str(info.value)
    assert str(path) in message, "the error names the file"
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


class Exploit:
    """Unpickling this runs a shell command that creates `marker`."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


# ---- round trip --------------------------------------------------------------------------------

@pytest.mark.parametrize("spec", [ResNetSpec.resnet18(4), NARROW], ids=["width4", "narrow"])
def test_save_and_load_model_round_trip(tmp_path, spec):
    path = tmp_path / "model.pt"
    model = save_small(path, spec)

    loaded, payload = checkpoint.load_model(path)

    assert isinstance(loaded, models.ResNet18)
    assert loaded.spec == spec and models.spec_of(loaded) == spec
    original, restored = model.state_dict(), loaded.state_dict()
    assert original.keys() == restored.keys()
    for key in original:
        assert torch.equal(original[key], restored[key]), key
    assert payload["epoch"] == 7
    assert payload["config"] == {"lr": 0.1, "name": "baseline"}
    assert "metrics" not in payload  # metrics are files of the stage that measured them
    assert payload["kind"] == "model" and payload["format"] == checkpoint.FORMAT
    x = torch.randn(2, 3, 32, 32)
    model.eval(), loaded.eval()
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


def test_file_is_plain_weights(tmp_path):
    path = tmp_path / "model.pt"
    save_small(path)
    payload = torch.load(path, map_location="cpu", weights_only=True)
    assert payload["format"] == "squeeze/1"
    assert payload["spec"] == ResNetSpec.resnet18(4).to_dict()
    assert all(isinstance(v, torch.Tensor) for v in payload["state_dict"].values())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"], "no temporary files left"


# ---- damaged and foreign files -------------------------------------------------------------------

def test_missing_file(tmp_path):
    assert_checkpoint_error(tmp_path / "missing.pt", "not found")


def test_truncated_checkpoint(tmp_path):
    path = tmp_path / "model.pt"
    save_small(path)
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 2])
    assert_checkpoint_error(path, "truncated or corrupt")
    assert_checkpoint_error(path, loader=checkpoint.load_model)


def test_random_bytes(tmp_path):
    path = tmp_path / "model.pt"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    assert_checkpoint_error(path)
    assert_checkpoint_error(path, loader=checkpoint.load_model)


@pytest.mark.parametrize("content", [
    b"",
    b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"ab" * 32 + b"\nsize 217483\n",
    b"<!DOCTYPE html><html><body>404 Not Found</body></html>",
    b"PK\x03\x04" + b"\x00" * 100,
    b"hello, I am not a checkpoint\n",  # 'h' is the BINGET opcode: memo lookup
    b".",  # STOP with an empty stack
    b"\x80\x02R.",  # REDUCE with an empty stack
], ids=["empty", "lfs-pointer", "html", "zip-magic", "text-starting-with-h", "pickle-stop",
        "pickle-reduce"])
def test_garbage_files(tmp_path, content):
    path = tmp_path / "model.pt"
    path.write_bytes(content)
    assert_checkpoint_error(path)


def test_dict_without_format_marker(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, path)
    assert_checkpoint_error(path, "not a squeeze checkpoint")


def test_wrong_kind(tmp_path):
    path = tmp_path / "model.pt"
    save_small(path)
    with pytest.raises(CheckpointError, match="is a 'model' checkpoint, expected 'resume'"):
        checkpoint.load(path, kind="resume")


# ---- pickled code is refused ----------------------------------------------------------------------

@pytest.mark.parametrize("writer", ["torch.save", "pickle"])
def test_malicious_pickle_is_refused_and_not_run(tmp_path, writer):
    path, marker = tmp_path / "evil.pt", tmp_path / "pwned"
    payload = {"format": checkpoint.FORMAT, "kind": "model", "evil": Exploit(marker)}
    if writer == "torch.save":
        torch.save(payload, path)
    else:
        with open(path, "wb") as fh:
            pickle.dump(payload, fh, protocol=2)

    assert_checkpoint_error(path, "refused to load")
    assert_checkpoint_error(path, loader=checkpoint.load_model)
    assert not marker.exists(), "the pickled command ran"


def test_exploit_payload_is_live(tmp_path):
    """Control for the test above: an unsafe load of the same payload does run the command."""
    path, marker = tmp_path / "evil.pt", tmp_path / "control"
    torch.save({"evil": Exploit(marker)}, path)
    torch.load(path, weights_only=False)
    assert marker.exists()


# ---- spec and weights disagree --------------------------------------------------------------------

def save_payload(path, state_dict, spec):
    checkpoint.save(path, {"kind": "model", "state_dict": state_dict, "spec": spec,
                           "config": {}, "epoch": 1})


def test_spec_that_does_not_match_weights(tmp_path):
    path = tmp_path / "model.pt"
    state = trained_looking_model(ResNetSpec.resnet18(4)).state_dict()
    save_payload(path, state, ResNetSpec.resnet18(8).to_dict())
    assert_checkpoint_error(path, "architecture spec", "'conv1.weight'", loader=checkpoint.load_model)


@pytest.mark.parametrize("spec", [None, {}, {"stage_widths": [4, 8, 16, 32]}],
                         ids=["none", "empty", "partial"])
def test_missing_or_broken_spec(tmp_path, spec):
    path = tmp_path / "model.pt"
    save_payload(path, trained_looking_model(ResNetSpec.resnet18(4)).state_dict(), spec)
    assert_checkpoint_error(path, "architecture spec", loader=checkpoint.load_model)


def test_weights_with_a_missing_tensor(tmp_path):
    path = tmp_path / "model.pt"
    state = trained_looking_model(ResNetSpec.resnet18(4)).state_dict()
    del state["layer4.1.bn2.running_var"]
    save_payload(path, state, ResNetSpec.resnet18(4).to_dict())
    assert_checkpoint_error(path, "architecture spec", "'layer4.1.bn2.running_var'",
                            loader=checkpoint.load_model)


# ---- atomic writes ----------------------------------------------------------------------------------

def test_atomic_path_error_leaves_target_and_no_temp_files(tmp_path):
    target = tmp_path / "out" / "result.json"
    fsutil.write_text(target, "old\n")
    with pytest.raises(RuntimeError, match="boom"):
        with fsutil.atomic_path(target) as tmp:
            assert tmp.parent == target.parent and tmp != target
            tmp.write_text("half-writ")
            raise RuntimeError("boom")
    assert target.read_text() == "old\n"
    assert [p.name for p in target.parent.iterdir()] == ["result.json"]


def test_atomic_path_error_without_target_creates_nothing(tmp_path):
    target = tmp_path / "model.pt"
    with pytest.raises(KeyboardInterrupt):
        with fsutil.atomic_path(target) as tmp:
            torch.save({"x": torch.zeros(3)}, tmp)
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_success_replaces_target(tmp_path):
    target = tmp_path / "result.json"
    target.write_text("old\n")
    fsutil.write_json(target, {"a": [1, 2], "b": 0.5})
    assert fsutil.read_json(target) == {"a": [1, 2], "b": 0.5}
    assert target.read_text().endswith("\n")
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_failed_checkpoint_save_keeps_previous_checkpoint(tmp_path):
    path = tmp_path / "model.pt"
    save_small(path)
    before = path.read_bytes()
    with pytest.raises(Exception):
        checkpoint.save(path, {"kind": "model", "bad": lambda: None})  # not picklable
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]
