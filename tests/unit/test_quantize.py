"""quantize: fp16 rounding, static int8 PTQ to an ONNX QDQ file run by OpenVINO or ONNX Runtime,
saving/loading quantized models, and the quantize+evaluate step. CPU only, width 4-8 models, synthetic data; one small model is
trained once for the whole file."""
from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from squeeze import batches, checkpoint, data, evaluation, measure, models, prune, quantize, train
from squeeze.prepared import save as save_dataset
from squeeze.steps import quantized
from squeeze.paths import StagePaths
from squeeze.config import EvaluateConfig, Int8Config, TrainConfig
from squeeze.models import ResNetSpec

METRIC_KEYS = {"structured", "unstructured", "quant", "accuracy", "params", "nonzero_params",
               "sparsity", "ops", "q_w", "q_a", "score", "score_seed", "latency_ms_b1",
               "latency_ms_b32", "size_bytes"}
EVAL_CFG = EvaluateConfig(latency_threads=1, latency_warmup=0, latency_repeats=1)
INT8_CFG = Int8Config(calibration_batches=2, calibration_batch_size=32, calibration_method="minmax",
                      reduce_range=True, engine="onnxruntime")
ENGINES = ("onnxruntime", "openvino")


# ---- helpers -------------------------------------------------------------------------------------

def fresh_model(width: int = 4, seed: int = 0) -> models.ResNet18:
    torch.manual_seed(seed)
    return models.build(ResNetSpec.resnet18(width))


def device_data(train_size: int, test_size: int, seed: int = 0) -> batches.DeviceData:
    ds = data.synthetic(train_size, test_size, seed=seed)
    mean, std = ds.mean_std()
    return batches.DeviceData(ds, mean, std, "cpu")


def fixed_batch(dd: batches.DeviceData, n: int = 16) -> torch.Tensor:
    return next(dd.test_batches(n))[0]


@torch.no_grad()
def predictions(model, dd: batches.DeviceData) -> torch.Tensor:
    model.eval()
    return torch.cat([model(x).argmax(1) for x, _ in dd.test_batches(250)])


@pytest.fixture(scope="module")
def trained():
    """A width-8 net trained to ~0.98+ test accuracy on the synthetic task, with its data.

    1000 training images in batches of 64 (48 steps) learn the task as reliably as 2000 in
    batches of 128 (checked over model seeds 0-2: 0.98-1.0) at half the CPU time (~10 s)."""
    dd = device_data(1000, 500)
    model = fresh_model(width=8)
    cfg = TrainConfig(epochs=3, batch_size=64, lr=0.05, momentum=0.9, weight_decay=5e-4,
                      schedule="cosine", seed=0)
    train.fit(model, dd, cfg, name="fp32")
    return model.eval(), dd


@pytest.fixture(scope="module")
def small_data() -> batches.DeviceData:
    return device_data(128, 64)


# ---- int8 -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("engine", ENGINES)
def test_int8_agrees_with_fp32(trained, engine):
    model, dd = trained
    fp32_accuracy = evaluation.accuracy(model, dd)
    assert fp32_accuracy >= 0.9, "the fixture model did not learn; the comparison would be weak"

    q = quantize.quantize(copy.deepcopy(model), "int8", dd.calibration_batches(64, 4, seed=0),
                          replace(INT8_CFG, engine=engine))

    assert isinstance(q, quantize.Int8Model) and q.engine == engine
    assert len(quantize.int8_weights(q.onnx)) == len(prune.prunable_weights(model)) == 21
    agreement = float((predictions(q, dd) == predictions(model, dd)).float().mean())
    int8_accuracy = evaluation.accuracy(q, dd)
    assert agreement > 0.95
    assert abs(int8_accuracy - fp32_accuracy) <= 0.03
    # it really is int8: the outputs are not the float model's bit for bit
    with torch.no_grad():
        x = fixed_batch(dd)
        assert not torch.allclose(q(x), model(x), atol=1e-6)


def test_int8_file_is_deterministic_and_needs_no_torch_ao(small_data, monkeypatch):
    """The same model and batches give the same bytes (DVC caches them), and the int8 path
    never imports the deprecated torch.ao.quantization (here: importing it would fail)."""
    import sys

    for name in [n for n in sys.modules if n.startswith("torch.ao.quantization")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "torch.ao.quantization", None)  # import -> ImportError
    model = fresh_model().eval()
    a = quantize.to_int8(copy.deepcopy(model), small_data.calibration_batches(32, 2, seed=0), INT8_CFG)
    b = quantize.to_int8(copy.deepcopy(model), small_data.calibration_batches(32, 2, seed=0), INT8_CFG)
    assert a == b
    with torch.no_grad():
        quantize.Int8Model(a, "onnxruntime")(fixed_batch(small_data))


def test_int8_needs_calibration():
    with pytest.raises(quantize.QuantizationError, match="no batches"):
        quantize.to_int8(fresh_model(), [])
    with pytest.raises(quantize.QuantizationError, match="calibration"):
        quantize.quantize(fresh_model(), "int8")


def test_unknown_quant_type():
    with pytest.raises(quantize.QuantizationError, match="unknown quantization type 'int4'"):
        quantize.quantize(fresh_model(), "int4")


def test_int8_keeps_pruned_weights_zero(trained):
    model, dd = trained
    model = copy.deepcopy(model)
    prune.apply_masks(model, prune.magnitude_masks(model, 0.5, scope="global"))
    float_weights = [w.detach() for w in prune.prunable_weights(model).values()]
    float_zeros = sum(int((w == 0).sum()) for w in float_weights)
    assert float_zeros > 0

    onnx_bytes = quantize.to_int8(copy.deepcopy(model), dd.calibration_batches(64, 2, seed=0), INT8_CFG)

    # the exporter folds BatchNorm into the convolutions (a per-output-channel scale, which
    # keeps zeros zero) and names the folded weights its own way: matched by shape, in order
    int_weights = list(quantize.int8_weights(onnx_bytes).values())
    assert sorted(tuple(w.shape) for w in int_weights) == sorted(tuple(w.shape) for w in float_weights)
    assert sum(int((w == 0).sum()) for w in int_weights) >= float_zeros
    by_shape = {}
    for w in int_weights:
        by_shape.setdefault(tuple(w.shape), []).append(w)
    for i, f in enumerate(float_weights):
        candidates = by_shape[tuple(f.shape)]
        mask = (f == 0).numpy()
        assert any((w[mask] == 0).all() for w in candidates), f"layer {i}: a pruned weight is nonzero"
    assert max(int(abs(w).max()) for w in int_weights) <= (64 if INT8_CFG.reduce_range else 127), \
        "reduce_range keeps the weights to 7 bits"


# ---- fp16 -------------------------------------------------------------------------------------------

def test_round_to_fp16(small_data):
    model = fresh_model().eval()
    with torch.no_grad():  # BN statistics and affine values that fp16 cannot hold exactly
        g = torch.Generator().manual_seed(3)
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(0.1 * torch.randn(m.num_features, generator=g))
                m.running_var.copy_(1 + 0.1 * torch.rand(m.num_features, generator=g))
                m.weight.copy_(1 + 0.1 * torch.randn(m.num_features, generator=g))
    original = copy.deepcopy(model)
    x = fixed_batch(small_data)
    with torch.no_grad():
        before = model(x)

    assert quantize.round_to_fp16(model) is model

    changed = 0
    for (name, p), p0 in zip(model.named_parameters(), original.parameters()):
        assert p.dtype == torch.float32, name
        assert torch.equal(p, p.half().float()), f"{name} is not fp16-representable"
        assert torch.equal(p, p0.half().float()), name
        changed += int((p != p0).sum())
    assert changed > 0
    changed = 0
    for (name, b), b0 in zip(model.named_buffers(), original.buffers()):
        if b.is_floating_point():
            assert torch.equal(b, b.half().float()), f"buffer {name} is not fp16-representable"
            changed += int((b != b0).sum())
    assert changed > 0, "BN running statistics are rounded too"
    with torch.no_grad():
        after = model(x)
    diff = float((after - before).abs().max())
    assert 0 < diff < 1e-2 * max(1.0, float(before.abs().max()))
    assert torch.equal(after.argmax(1), before.argmax(1))


# ---- save / load ------------------------------------------------------------------------------------

@pytest.mark.parametrize("quant", ["fp32", "fp16", "int8"])
def test_save_and_load_quantized_round_trip(tmp_path, small_data, quant):
    model = fresh_model().eval()
    spec = model.spec
    calibration = small_data.calibration_batches(32, 2, seed=0) if quant == "int8" else None
    q = quantize.quantize(copy.deepcopy(model), quant, calibration, INT8_CFG)
    x = fixed_batch(small_data)
    with torch.no_grad():
        expected = q(x)
    path = tmp_path / f"{quant}.pt"

    source = tmp_path / "float.pt"
    checkpoint.save_model(source, model, {}, epoch=1)
    quantize.save_quantized(path, q, spec, quant, {"structured": 0.0}, source=str(source))

    payload = torch.load(path, map_location="cpu", weights_only=True)
    assert payload["kind"] == f"quantized-{quant}" and payload["quant"] == quant
    assert payload["spec"] == spec.to_dict()
    assert payload["config"] == {"structured": 0.0} and "metrics" not in payload
    loaded, loaded_payload = quantize.load_quantized(path)
    assert loaded_payload["quant"] == quant
    assert not loaded.training
    with torch.no_grad():
        assert torch.equal(loaded(x), expected)
    if quant == "int8":
        assert payload["onnx"] == q.onnx and payload["engine"] == "onnxruntime"
        assert payload["runtime"].startswith("onnxruntime 1.")
        assert payload["source"] == str(source)
        with torch.no_grad():  # the float model it came from, found from its path
            assert torch.equal(quantize.float_of(path, payload["source"])(x), model(x))
        source.unlink()
        with pytest.raises(checkpoint.CheckpointError, match="float.pt, is not there"):
            quantize.float_of(path, payload["source"])


def test_an_int8_checkpoint_from_torch_ao_is_refused_in_one_line(tmp_path):
    path = tmp_path / "old-int8.pt"
    checkpoint.save(path, {"kind": "quantized-int8", "quant": "int8", "state_dict": {},
                           "spec": fresh_model().spec.to_dict(), "engine": "x86"})
    with pytest.raises(checkpoint.CheckpointError, match="rerun its quantize stage"):
        quantize.load_quantized(path)


def test_load_quantized_refuses_a_float_model_checkpoint(tmp_path):
    path = tmp_path / "model.pt"
    checkpoint.save_model(path, fresh_model(), {}, epoch=1)
    with pytest.raises(checkpoint.CheckpointError, match="not a quantized squeeze model"):
        quantize.load_quantized(path)


# ---- the int8 engine --------------------------------------------------------------------------------

def test_a_missing_engine_package_is_a_one_line_error_naming_it(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "openvino" else real(name, *a))
    with pytest.raises(quantize.QuantizationError) as info:
        quantize.check_engine("openvino")
    message = str(info.value)
    assert "\n" not in message
    assert "quantize.int8.engine = 'openvino'" in message and "pip install openvino" in message
    assert quantize.check_engine("onnxruntime") == "onnxruntime", "the other engine still works"
    with pytest.raises(quantize.QuantizationError, match="pip install openvino"):
        quantize.to_int8(fresh_model(), [torch.zeros(1, 3, 32, 32)], replace(INT8_CFG, engine="openvino"))


def test_an_unknown_engine_is_a_one_line_error():
    with pytest.raises(quantize.QuantizationError, match="'x86' is not allowed; expected one of onnxruntime, openvino"):
        quantize.check_engine("x86")


def test_int8_engines_present_and_versioned():
    for engine in ENGINES:
        assert quantize.check_engine(engine) == engine
        name, version = quantize.engine_version(engine).split(" ")
        assert name == engine and version[0].isdigit()


def test_int8_accuracy_repeats_on_both_engines(trained):
    """ONNX Runtime repeats its outputs at any thread count; OpenVINO's `exact()` (one thread)
    repeats them call after call (with two threads it may not: see quantize.py)."""
    model, dd = trained
    onnx_bytes = quantize.to_int8(copy.deepcopy(model), dd.calibration_batches(64, 2, seed=0), INT8_CFG)
    x = torch.cat([x for x, _ in dd.test_batches(250)])
    previous = torch.get_num_threads()
    try:
        outs = {}
        for threads in (1, 2):
            torch.set_num_threads(threads)
            with torch.no_grad():
                outs[threads] = quantize.Int8Model(onnx_bytes, "onnxruntime")(x)
        assert torch.equal(outs[1], outs[2])
        torch.set_num_threads(2)
        ov = quantize.Int8Model(onnx_bytes, "openvino").exact()
        assert ov.threads == 1
        with torch.no_grad():
            assert all(torch.equal(ov(x), ov(x)) for _ in range(3))
    finally:
        torch.set_num_threads(previous)


def test_both_engines_run_one_file_alike(trained):
    """One ONNX file, two runtimes: the same top-1 classes on (almost) every image."""
    model, dd = trained
    onnx_bytes = quantize.to_int8(copy.deepcopy(model), dd.calibration_batches(64, 2, seed=0), INT8_CFG)
    ort, ov = (quantize.Int8Model(onnx_bytes, e) for e in ENGINES)
    assert float((predictions(ov, dd) == predictions(ort, dd)).float().mean()) >= 0.98


def test_evaluate_fails_before_writing_without_the_engine(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "openvino" else real(name, *a))
    base, prepared = tmp_path / "in" / "model.pt", tmp_path / "in" / "data.npz"
    checkpoint.save_model(base, fresh_model(), {}, epoch=1)
    save_dataset(data.synthetic(64, 32), prepared)
    out = tmp_path / "out"

    def no_work(*args, **kwargs):
        raise AssertionError("the model was loaded before the int8 engine was checked")

    monkeypatch.setattr(checkpoint, "load_model", no_work)
    with pytest.raises(quantize.QuantizationError, match="pip install openvino"):
        quantized.run(0.0, 0.0, "int8", replace(INT8_CFG, engine="openvino"), EVAL_CFG,
                      StagePaths(prepared, out / "model.pt", out / "metrics.json", base=base),
                      device="cpu")
    assert not out.exists() or list(out.rglob("*")) == []


# ---- quantize + evaluate step -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def evaluate_inputs(tmp_path_factory, trained):
    """A half-sparse copy of the trained net as a model checkpoint, and a tiny prepared dataset."""
    root = tmp_path_factory.mktemp("evaluate")
    model = copy.deepcopy(trained[0])
    prune.apply_masks(model, prune.magnitude_masks(model, 0.5, scope="global"))
    base = root / "s0.5-u0.5.pt"
    checkpoint.save_model(base, model, {}, epoch=1)
    prepared = root / "data.npz"
    save_dataset(data.synthetic(256, 100, seed=0), prepared)
    return base, prepared, model


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, evaluate_inputs):
    base, prepared, _ = evaluate_inputs
    root = tmp_path_factory.mktemp("evaluated")
    results = {}
    for quant in ("fp32", "fp16", "int8"):
        out_model, out_metrics = root / f"{quant}.pt", root / f"{quant}.json"
        returned = quantized.run(0.5, 0.5, quant, INT8_CFG if quant == "int8" else None,
                                 EVAL_CFG, StagePaths(prepared, out_model, out_metrics, base=base),
                                 device="cpu")
        results[quant] = (returned, out_model, out_metrics)
    return results


@pytest.mark.parametrize("quant", ["fp32", "fp16", "int8"])
def test_run_quantize_evaluate_metrics(evaluated, evaluate_inputs, quant):
    _, prepared, float_model = evaluate_inputs
    returned, out_model, out_metrics = evaluated[quant]
    metrics = json.loads(out_metrics.read_text())
    assert metrics == returned
    assert set(metrics) >= METRIC_KEYS
    assert metrics["quant"] == quant and metrics["model"] == f"s0.5-u0.5-{quant}"
    assert (metrics["structured"], metrics["unstructured"]) == (0.5, 0.5)
    assert (metrics["q_w"], metrics["q_a"]) == measure.bits(quant)

    nonzero, ops = measure.count_nonzero(float_model), measure.count_ops(float_model)
    assert metrics["params"] == measure.count_params(float_model)
    assert metrics["nonzero_params"] == nonzero < metrics["params"]
    assert metrics["ops"] == ops
    assert metrics["sparsity"] == pytest.approx(prune.sparsity(float_model), abs=1e-6)
    assert metrics["sparsity"] == pytest.approx(0.5, abs=1e-4)
    assert metrics["score"] == pytest.approx(measure.score(nonzero, ops, quant), abs=1e-6)
    assert metrics["score_seed"] == pytest.approx(measure.score_seed(0.5, 0.5, quant), abs=1e-6)
    assert metrics["latency_ms_b1"] > 0 and metrics["latency_ms_b32"] > 0
    if quant == "int8":  # what ships: the ONNX file, run by the engine named in the metrics
        assert metrics["size_bytes"] == len(torch.load(out_model, weights_only=True)["onnx"])
        assert metrics["runtime"] == quantize.engine_version("onnxruntime")
    else:
        assert metrics["size_bytes"] == out_model.stat().st_size
        assert metrics["runtime"] == f"torch {torch.__version__.split('+')[0]}"
    assert "accuracy_float" not in metrics, "the float model's accuracy is its own stage's metric"
    assert (metrics["device"], metrics["tf32"]) == ("cpu", None)
    assert metrics["precision"] == {"fp32": "fp32", "fp16": "fp16-rounded weights, fp32 compute",
                                    "int8": "int8, weights in 7 bits"}[quant]

    # the saved model is the one that was measured
    loaded, payload = quantize.load_quantized(out_model)
    assert payload["quant"] == quant
    dd = batches.DeviceData.from_file(prepared, "cpu")
    assert metrics["accuracy"] == round(evaluation.accuracy(loaded, dd), 6)
    assert metrics["accuracy"] >= 0.8, "the trained net still works after quantization"


def test_run_quantize_evaluate_scores_scale_with_bits(evaluated):
    fp32, fp16, int8 = (evaluated[q][0] for q in ("fp32", "fp16", "int8"))
    assert fp16["nonzero_params"] == int8["nonzero_params"] == fp32["nonzero_params"]
    assert fp16["score"] == pytest.approx(fp32["score"] / 2, abs=2e-6)
    assert int8["score"] == pytest.approx(fp32["score"] / 4, abs=2e-6)
    assert fp16["score_seed"] == pytest.approx(0.7475, rel=3e-3)
    assert int8["size_bytes"] < fp16["size_bytes"] < fp32["size_bytes"]


def test_run_quantize_scores_with_params_score_normalisers(evaluate_inputs, trained, tmp_path):
    """score.*_norm auto: the stage divides by half the baseline's own counts (the unpruned
    checkpoint it is given) and records what it divided by; the study's are recorded too."""
    from squeeze.config import ScoreConfig

    base, prepared, sparse = evaluate_inputs
    baseline = tmp_path / "baseline.pt"
    checkpoint.save_model(baseline, trained[0], {}, epoch=1)
    paths = StagePaths(prepared, tmp_path / "q.pt", tmp_path / "q.json", base=base,
                       baseline=baseline)
    auto = quantized.run(0.5, 0.5, "fp16", None, EVAL_CFG, paths, device="cpu",
                         score_cfg=ScoreConfig("auto", "auto"))
    half = (measure.count_nonzero(trained[0]) / 2, measure.count_ops(trained[0]) / 2)
    assert (auto["score_params_norm"], auto["score_ops_norm"]) == half
    nonzero, ops = measure.count_nonzero(sparse), measure.count_ops(sparse)
    assert auto["score"] == round(nonzero * 0.5 / half[0] + ops * 0.5 / half[1], 6)
    # fp16 halves both terms: ~half the weights left -> ~0.5 of its 2.0, all the ops -> 1.0 of 2.0
    assert auto["score"] == pytest.approx(1.5, abs=0.01)
    study = quantized.run(0.5, 0.5, "fp16", None, EVAL_CFG, paths, device="cpu",
                          score_cfg=ScoreConfig(5.6e6, 2.8e8))
    assert (study["score_params_norm"], study["score_ops_norm"]) == (5.6e6, 2.8e8)
    assert study["score"] == round(measure.score(nonzero, ops, "fp16"), 6)


def test_score_seed_reference():
    assert measure.score_seed(0.5, 0.5, "fp16") == pytest.approx(0.7475, rel=3e-3)
    assert measure.score_seed(0.0, 0.0, "fp32") == pytest.approx(
        measure.score(measure.BASELINE_PARAMS, measure.BASELINE_OPS, "fp32"))


def test_a_failed_onnx_export_is_one_line_and_nothing_is_left(monkeypatch, small_data):
    import tempfile
    from pathlib import Path

    def scratch() -> set:
        return set(Path(tempfile.gettempdir()).glob("squeeze-int8-*"))

    before = scratch()

    def broken(*args, **kwargs):
        raise RuntimeError("Failed to export the model with torch.export.\nmany lines of trace")

    monkeypatch.setattr(torch.onnx, "export", broken)
    with pytest.raises(quantize.QuantizationError) as info:
        quantize.to_int8(fresh_model(), small_data.calibration_batches(32, 1, seed=0), INT8_CFG)
    # every try fails here, so the search ends at the first leaf the forward pass reaches
    assert str(info.value) == ("ONNX export failed at layer conv1 (Conv2d): Failed to export the "
                               "model with torch.export.")
    assert scratch() == before


class Gate(torch.nn.Module):
    """Data-dependent control flow: eager PyTorch runs it, torch.export cannot trace it."""

    def forward(self, x):
        return x if x.mean() > 0 else -x


def gated_net() -> torch.nn.Module:
    from torch import nn
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Sequential(nn.Identity(), Gate()), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(8, 10))


def test_an_onnx_export_that_fails_names_the_layer_and_why_in_one_line(small_data):
    """int8 starts from the ONNX file: a layer the exporter cannot convert is named, with the
    exporter's innermost reason, in one line; the eager model itself runs."""
    model = gated_net()
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    with pytest.raises(quantize.QuantizationError) as info:
        quantize.to_int8(model, small_data.calibration_batches(32, 1, seed=0), INT8_CFG)
    message = str(info.value)
    assert message.startswith("ONNX export failed at layer 3.1 (Gate): Could not guard on "
                              "data-dependent expression"), message
    assert "\n" not in message and "\x1b" not in message


def test_failing_layer_searches_children_before_their_parent():
    """quantize.failing_layer with a stand-in export: the innermost module that fails alone is
    named; a parent whose children all export is named itself (its own forward); a module that
    returns something other than tensors is never tried alone; the reason is the failing try's."""
    from torch import nn

    class Pair(nn.Module):  # returns a dict: its parent unpacks it
        def forward(self, x):
            return {"x": x}

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.pair, self.conv, self.gate = Pair(), nn.Conv2d(8, 8, 1), Gate()

        def forward(self, x):
            return self.gate(self.conv(self.pair(x)["x"]))

    model = nn.Sequential(nn.Conv2d(3, 8, 1), Block(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    example = (torch.randn(2, 3, 8, 8),)
    tried = []

    def refuses(*kinds):
        def attempt(module, args):
            tried.append(type(module).__name__)
            if isinstance(module, kinds) or isinstance(module, Pair):
                raise RuntimeError(f"no {type(module).__name__}\nmore")
        return attempt

    whole = RuntimeError("whole")
    assert quantize.failing_layer(model, example, refuses(Gate, Block), whole) == (
        "layer 1.gate (Gate)", "no Gate")
    assert "Pair" not in tried
    assert quantize.failing_layer(model, example, refuses(Block), whole) == (
        "layer 1 (Block)", "no Block")
    assert quantize.failing_layer(model, example, refuses(), whole) == (
        "the model's own forward (Sequential)", "whole")


def test_the_quantize_step_on_openvino_measures_a_repeatable_accuracy(tmp_path, evaluate_inputs):
    """engine: openvino through the whole step: its runtime is recorded, and the accuracy is the
    single-threaded one, which the saved file gives again when loaded."""
    base, prepared, _ = evaluate_inputs
    out_model, out_metrics = tmp_path / "int8.pt", tmp_path / "int8.json"
    metrics = quantized.run(0.5, 0.5, "int8", replace(INT8_CFG, engine="openvino"), EVAL_CFG,
                            StagePaths(prepared, out_model, out_metrics, base=base), device="cpu")
    assert metrics["runtime"] == quantize.engine_version("openvino")
    loaded, payload = quantize.load_quantized(out_model)
    assert payload["engine"] == "openvino" and loaded.exact().threads == 1
    dd = batches.DeviceData.from_file(prepared, "cpu")
    assert metrics["accuracy"] == round(evaluation.accuracy(loaded.exact(), dd), 6)


def test_onnx_bytes_hold_no_source_paths():
    """The exporter records each node's Python stack (absolute paths, line numbers); left in, the
    int8 checkpoint of one model differed between two checkouts of the same commit."""
    import squeeze

    onnx_bytes = quantize.to_onnx(models.build(models.ResNetSpec.resnet18(4)).eval())
    source = str(Path(squeeze.__file__).resolve().parent).encode()
    assert source not in onnx_bytes and b"stack_trace" not in onnx_bytes
    assert b"pkg.torch.onnx.class_hierarchy" in onnx_bytes  # the rest of the metadata is kept
