"""deploy.export's writer, in process (the CLI and the export stage run in tests/e2e)."""
from __future__ import annotations

import copy
import zipfile

import pytest
import torch

from squeeze import batches, checkpoint, data, models, quantize, train
from squeeze.config import Int8Config, TrainConfig
from squeeze.deploy.export import ExportError, _write, export
from squeeze.prepared import save as save_dataset

INT8 = Int8Config(calibration_batches=2, calibration_batch_size=64, calibration_method="minmax",
                  reduce_range=True, engine="onnxruntime")


def test_a_torchscript_archive_is_not_named_after_its_temporary_file(tmp_path):
    """The export is written through a temporary name (atomic_path). torch.jit.save given a path
    names the archive's inner folder after the file, so two exports of one model differed in
    bytes (a random temporary name inside); written through a buffer, the folder is `archive`
    whatever the file is called. (Two traces in one process differ anyway, by torch's name
    mangling, so this checks the folder's name, not two files' bytes.)"""
    torch.manual_seed(0)
    model = models.build(models.ResNetSpec.resnet18(width=4)).eval()
    x = torch.randn(3, 3, 32, 32)
    path = tmp_path / ".model.pt.a1b2c3.tmp"
    out = _write(model, "fp32", "torchscript", x, path)
    folders = {name.split("/")[0] for name in zipfile.ZipFile(path).namelist()}
    assert folders == {"archive"}
    with torch.no_grad():
        assert torch.allclose(out, model(x), atol=1e-5)


def test_a_torchscript_trace_that_fails_names_the_layer_in_one_line(tmp_path, monkeypatch):
    """torch.jit.trace raises for the layer it cannot trace (a stand-in refuses BatchNorm here):
    the export is one ExportError naming that layer, and nothing is written."""
    from torch import nn

    real = torch.jit.trace

    def refuses_batchnorm(module, example, *args, **kwargs):
        if any(isinstance(m, nn.BatchNorm2d) for m in module.modules()):
            raise RuntimeError("Tracer cannot infer type of output\nmore")
        return real(module, example, *args, **kwargs)

    monkeypatch.setattr(torch.jit, "trace", refuses_batchnorm)
    model = models.build(models.ResNetSpec.resnet18(width=4)).eval()
    path = tmp_path / "model.pt"
    with pytest.raises(ExportError) as info:
        _write(model, "fp32", "torchscript", torch.randn(3, 3, 32, 32), path)
    assert str(info.value) == ("TorchScript trace failed at layer bn1 (BatchNorm2d): Tracer "
                               "cannot infer type of output")
    assert not path.exists()


# ---- ONNX: fp32, fp16 through the torch.export-based exporter; int8 as its quantize stage made it

@pytest.fixture(scope="module")
def trained_pair(tmp_path_factory):
    """A width-8 net that learned the synthetic task (test_quantize's recipe: ~0.98), and the
    prepared data it came from."""
    tmp_path = tmp_path_factory.mktemp("trained")
    ds = data.synthetic(1000, 500, seed=0)
    mean, std = ds.mean_std()
    dd = batches.DeviceData(ds, mean, std, "cpu")
    torch.manual_seed(0)
    model = models.build(models.ResNetSpec.resnet18(width=8))
    train.fit(model, dd, TrainConfig(epochs=3, batch_size=64, lr=0.05, momentum=0.9,
                                     weight_decay=5e-4, schedule="cosine", seed=0), name="fp32")
    prepared = tmp_path / "data.npz"
    save_dataset(ds, prepared)
    return model.eval(), dd, prepared


@pytest.mark.parametrize("quant", ["fp32", "fp16"])
def test_float_onnx_exports_match_their_model(tmp_path, quant):
    torch.manual_seed(0)
    model = models.build(models.ResNetSpec.resnet18(width=4)).eval()
    x = torch.randn(5, 3, 32, 32)  # a batch size the export never saw: the batch is dynamic
    with torch.no_grad():
        expected = model(x)
    out = _write(model, quant, "onnx", x, tmp_path / "m.onnx")
    assert torch.allclose(out, expected, atol=(5e-2 if quant == "fp16" else 1e-4))


def int8_checkpoint(tmp_path, quantized_from, float_model, dd):
    """An int8 checkpoint of `quantized_from` whose recorded float model (`source`) is
    `float_model`, saved beside it; (its path, the Int8Model)."""
    q = quantize.quantize(copy.deepcopy(quantized_from), "int8",
                          dd.calibration_batches(64, 2, seed=0), INT8)
    ckpt, float_ckpt = tmp_path / "int8.pt", tmp_path / "float.pt"
    checkpoint.save_model(float_ckpt, float_model, {}, epoch=1)
    quantize.save_quantized(ckpt, q, float_model.spec, "int8", {}, preprocess=dd.preprocess,
                            source=str(float_ckpt))
    return ckpt, q


def test_int8_export_is_the_measured_file_checked_against_its_float_model(tmp_path, trained_pair):
    model, dd, prepared = trained_pair
    ckpt, q = int8_checkpoint(tmp_path, model, model, dd)
    out = tmp_path / "export" / "model.onnx"

    result = export(ckpt, "onnx", out, prepared, images=200)

    assert result["reference_accuracy"] >= 0.9, "the fixture model did not learn"
    assert out.read_bytes() == q.onnx
    assert result["reference"] == "float model" and result["images"] == 200
    assert abs(result["accuracy"] - result["reference_accuracy"]) <= result["interval95"]
    assert result["interval95"] == pytest.approx(
        1.96 * (result["reference_accuracy"] * (1 - result["reference_accuracy"]) / 200) ** 0.5, abs=1e-6)
    assert result["runtime"] == quantize.engine_version("onnxruntime")


def test_an_int8_file_far_from_its_float_model_is_refused_and_not_written(tmp_path, trained_pair):
    """The checkpoint's float model is not the one its int8 file came from (an untrained net
    quantized): the accuracies differ by far more than the interval, and nothing is written."""
    model, dd, prepared = trained_pair
    torch.manual_seed(1)
    stranger = models.build(models.ResNetSpec.resnet18(width=8)).eval()
    ckpt, _ = int8_checkpoint(tmp_path, stranger, model, dd)
    out = tmp_path / "export" / "model.onnx"
    with pytest.raises(ExportError) as info:
        export(ckpt, "onnx", out, prepared, images=200)
    assert "outside the float model's" in str(info.value) and "\n" not in str(info.value)
    assert not out.exists() and list(out.parent.iterdir()) == []
