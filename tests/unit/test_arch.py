"""model.arch: torchvision classifiers and the project's own factories (nets/), next to the study's
ResNet-18: the rule, one-line errors, pruning, checkpoints, counts and int8 for each."""
import copy
import sys
import textwrap

import pytest
import torch
import yaml
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from squeeze import checkpoint, config, measure, models, prune, quantize
from squeeze.config import ConfigError, ModelConfig, Params


# (arch, kwargs): small enough to build, prune and trace in seconds on two cores
ARCHS = [
    ("torchvision:mobilenet_v2", {"width_mult": 0.5}),
    ("torchvision:resnet50", {}),
    ("torchvision:vgg11_bn", {}),
    ("nets.example:small_cnn", {"width": 16}),
]


@pytest.fixture
def study_params() -> dict:
    return yaml.safe_load(open("params.yaml"))


def one_line(err: BaseException) -> str:
    text = str(err)
    assert "\n" not in text, text
    return text


def flop_counter_total(model: nn.Module) -> int:
    with FlopCounterMode(display=False) as mode:
        model.eval()(torch.zeros(1, 3, 32, 32))
    return mode.get_total_flops()


# ---- the rule and its one-line errors -----------------------------------------------------------

def test_study_arch_is_the_default_and_records_what_it_did_before():
    model = ModelConfig.from_params({"width": 64, "num_classes": 10, "arch": "resnet18_cifar",
                                     "kwargs": {}})
    assert model.recorded() == {"width": 64, "num_classes": 10}  # checkpoints: same bytes
    other = ModelConfig.from_params({"width": 64, "num_classes": 10,
                                     "arch": "torchvision:mobilenet_v2",
                                     "kwargs": {"width_mult": 0.5}})
    assert other.recorded() == {"width": 64, "num_classes": 10, "arch": "torchvision:mobilenet_v2",
                                "kwargs": {"width_mult": 0.5}}
    assert yaml.safe_load(open("params.yaml"))["model"]["arch"] == "resnet18_cifar"


@pytest.mark.parametrize("arch", ["mobilenet_v2", "torchvision:", "torchvision:mobilenet v2",
                                  "nets/example.py:small_cnn", 3])
def test_a_malformed_arch_is_one_line_naming_it(arch):
    with pytest.raises(ConfigError) as err:
        ModelConfig.from_params({"width": 64, "num_classes": 10, "arch": arch, "kwargs": {}})
    assert "model.arch" in one_line(err.value) and "torchvision:<name>" in str(err.value)


def test_kwargs_belong_to_the_other_archs():
    with pytest.raises(ConfigError) as err:
        ModelConfig.from_params({"width": 64, "num_classes": 10, "arch": "resnet18_cifar",
                                 "kwargs": {"width_mult": 0.5}})
    assert "model.kwargs" in one_line(err.value) and "model.width" in str(err.value)


@pytest.mark.parametrize("lever,value", [("layers", "block-internal"), ("residual_scale", 0.5),
                                         ("spare_drop", 0.1)])
def test_the_resnet_levers_fail_in_one_line_on_other_archs(study_params, lever, value):
    study_params["model"]["arch"] = "torchvision:mobilenet_v2"
    study_params["prune"]["structured"][lever] = value
    with pytest.raises(ConfigError) as err:
        Params.parse(study_params)
    assert f"prune.structured.{lever}" in one_line(err.value)
    assert "torchvision:mobilenet_v2" in str(err.value)


def test_the_studys_nominal_score_is_refused_as_the_export_score_of_another_arch(study_params):
    study_params["model"]["arch"] = "torchvision:mobilenet_v2"
    study_params["export"]["score"] = "score_seed"
    with pytest.raises(ConfigError) as err:
        Params.parse(study_params)
    assert "export.score = 'score_seed'" in one_line(err.value) and "score with" in str(err.value)


def test_another_arch_gets_no_study_nominal_score(tmp_path):
    """score_seed scales ResNet-18's counts by the amounts: for another network the quantize step
    writes none (blank in the report), and its measured score as for any model."""
    from squeeze import data
    from squeeze.config import EvaluateConfig
    from squeeze.paths import StagePaths
    from squeeze.prepared import save as save_dataset
    from squeeze.steps import quantized

    spec = models.spec_for("nets.example:small_cnn", 64, 10, {"width": 4})
    base = tmp_path / "base.pt"
    checkpoint.save_model(base, models.build(spec), {}, epoch=1)
    prepared = tmp_path / "data.npz"
    save_dataset(data.synthetic(64, 50, seed=0), prepared)
    found = quantized.run(0.0, 0.0, "fp16", None, EvaluateConfig(1, 0, 1),
                          StagePaths(prepared, tmp_path / "q.pt", tmp_path / "q.json", base=base),
                          device="cpu")
    assert found["score_seed"] is None
    assert found["score"] == round(measure.score(found["nonzero_params"], found["ops"], "fp16"), 6)


def test_an_unknown_torchvision_name_is_one_line_naming_it():
    with pytest.raises(models.ArchError) as err:
        models.check_arch("torchvision:nonexistent_net")
    assert "'nonexistent_net'" in one_line(err.value) and "list_models" in str(err.value)


def test_a_bad_constructor_argument_is_one_line_naming_it():
    with pytest.raises(models.ArchError) as err:
        models.check_arch("torchvision:mobilenet_v2", {"width_multiplier": 0.5})
    assert "width_multiplier" in one_line(err.value)


@pytest.fixture
def elsewhere(tmp_path, monkeypatch):
    """A project root in tmp_path: its own nets/ package, which leaves sys.modules as it was."""
    saved = {m: sys.modules.pop(m) for m in list(sys.modules) if m == "nets" or m.startswith("nets.")}
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for m in [m for m in sys.modules if m in ("nets", "mynet") or m.startswith("nets.")]:
        del sys.modules[m]
    sys.modules.update(saved)


def test_a_factory_must_live_in_nets(elsewhere):
    """Project code outside nets/ is not a dep of the stages: refused, with where to move it."""
    tmp_path = elsewhere
    source = textwrap.dedent("""
        from torch import nn
        def make(num_classes=10, hidden=8):
            return nn.Sequential(nn.Conv2d(3, hidden, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                 nn.Flatten(), nn.Linear(hidden, num_classes))
        NOT_CALLABLE = 3
    """)
    (tmp_path / "mynet.py").write_text(source)
    with pytest.raises(models.ArchError) as err:
        models.check_arch("mynet:make")
    assert "mynet.py" in one_line(err.value) and "nets/" in str(err.value)
    (tmp_path / "nets").mkdir()
    (tmp_path / "nets" / "__init__.py").write_text("")
    (tmp_path / "nets" / "mine.py").write_text(source)
    model = models.build(models.spec_for("nets.mine:make", 64, 7, {"hidden": 4}))
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 7)
    for arch, named in [("nets.mine:absent", "'absent'"), ("nets.mine:NOT_CALLABLE", "NOT_CALLABLE"),
                        ("nets.nothere:make", "nets.nothere")]:
        with pytest.raises(models.ArchError) as err:
            models.check_arch(arch)
        assert named in one_line(err.value)


def test_a_factory_must_return_a_module(elsewhere):
    tmp_path = elsewhere
    (tmp_path / "nets").mkdir()
    (tmp_path / "nets" / "__init__.py").write_text("")
    (tmp_path / "nets" / "bad.py").write_text("def make(num_classes=10):\n    return 'a net'\n")
    with pytest.raises(models.ArchError) as err:
        models.check_arch("nets.bad:make")
    assert "returned str" in one_line(err.value)
    (tmp_path / "nets" / "flat.py").write_text(
        "from torch import nn\ndef make(num_classes=10):\n    return nn.Conv2d(3, 4, 1)\n")
    with pytest.raises(models.ArchError) as err:
        models.check_arch("nets.flat:make")
    assert "(1, 4, 32, 32)" in one_line(err.value) and "(1, 10) logits" in str(err.value)


# ---- every arch: prune, checkpoint, counts, int8 -----------------------------------------------

@pytest.fixture(scope="module", params=ARCHS, ids=[a for a, _ in ARCHS])
def pruned(request):
    arch, kwargs = request.param
    torch.manual_seed(0)
    model = models.build(models.spec_for(arch, 64, 10, kwargs)).eval()
    before = measure.model_counts(model)
    flops_before = flop_counter_total(model)
    layers_before = measure.layer_counts(model)
    prune.prune_filters(model, 0.5)
    return arch, kwargs, model, before, flops_before, layers_before


def test_pruning_keeps_the_classifier_whole_and_removes_filters(pruned):
    arch, _, model, before, _, _ = pruned
    assert models.classifier(model).out_features == 10
    after = measure.model_counts(model)
    # every conv loses half its filters (so about 3/4 of its weights); linear layers before the
    # classifier lose only inputs (vgg11_bn's 4096-wide hidden layers keep it above one half)
    assert after["params"] < 0.6 * before["params"]
    assert after["ops"] < 0.5 * before["ops"]
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    with pytest.raises(ValueError) as err:
        prune.prune_filters(models.build(models.spec_for(arch, 64, 10, pruned[1])), 0.3,
                            layers="block-internal")
    assert models.DEFAULT_ARCH in one_line(err.value)


def test_a_pruned_model_comes_back_from_its_checkpoint_exactly(pruned, tmp_path):
    arch, kwargs, model, _, _, _ = pruned
    path = tmp_path / "m.pt"
    checkpoint.save_model(path, model, {"model": {"arch": arch, "kwargs": kwargs}}, epoch=0)
    back, _ = checkpoint.load_model(path)
    assert back.spec == models.ArchSpec(arch, kwargs, 10)
    x = torch.randn(4, 3, 32, 32)
    assert torch.equal(back.eval()(x), model.eval()(x))
    assert measure.model_counts(back) == measure.model_counts(model)


def test_counts_agree_with_torch_flop_counter(pruned):
    """flop_counter counts 2 FLOPs per multiply-accumulate of every conv and linear (its
    convention; it leaves out BatchNorm, activations, pooling and adds), so twice our conv/linear
    MACs must equal it, before and after pruning; our ops add 4 per BatchNorm output element."""
    _, _, model, before, flops_before, layers_before = pruned
    for layers, flops, counts in [(layers_before, flops_before, before),
                                  (measure.layer_counts(model), flop_counter_total(model),
                                   measure.model_counts(model))]:
        macs = sum(v["ops"] for k, v in layers.items() if k)
        assert 2 * macs == flops
        assert counts["ops"] == macs + layers[""]["ops"]


SLOW_INT8 = ("torchvision:resnet50", "torchvision:vgg11_bn")  # ~10 s each; CI covers the others


@pytest.mark.parametrize("arch,kwargs", [
    pytest.param(a, k, id=a, marks=[pytest.mark.slow] if a in SLOW_INT8 else [])
    for a, k in ARCHS])
def test_int8_of_a_pruned_model(arch, kwargs):
    torch.manual_seed(0)
    model = prune.prune_filters(models.build(models.spec_for(arch, 64, 10, kwargs)).eval(), 0.5)
    x = torch.randn(8, 3, 32, 32)
    reference = model.eval()(x)
    int8 = quantize.quantize(model, "int8", [torch.randn(8, 3, 32, 32)])
    out = int8(x)
    assert out.shape == (8, 10)
    # int8 of an untrained net: close to fp32 in direction, not equal
    assert torch.corrcoef(torch.stack([out.flatten(), reference.flatten()]))[0, 1] > 0.9


# ---- data.image_size: the model's input size travels in its spec --------------------------------

def test_a_64_pixel_model_is_counted_pruned_and_rebuilt_at_64(tmp_path):
    spec = models.spec_for("torchvision:mobilenet_v2", 64, 10, {"width_mult": 0.5}, image_size=64)
    model = models.build(spec).eval()
    assert models.input_size(model) == 64 and models.example_input(model).shape == (1, 3, 64, 64)
    with FlopCounterMode(display=False) as mode:
        model(torch.zeros(1, 3, 64, 64))
    layers = measure.layer_counts(model)
    assert 2 * sum(v["ops"] for k, v in layers.items() if k) == mode.get_total_flops()
    assert measure.count_ops(model) > 3 * measure.count_ops(model, 32)  # 4x the pixels
    prune.prune_filters(model, 0.5)
    checkpoint.save_model(tmp_path / "m.pt", model, {}, epoch=0)
    back, _ = checkpoint.load_model(tmp_path / "m.pt")
    assert back.spec.image_size == 64 and measure.count_ops(back) == measure.count_ops(model)


def test_an_arch_that_cannot_take_the_image_size_is_one_line():
    with pytest.raises(models.ArchError) as err:
        models.check_arch("torchvision:vgg11_bn", {}, 10, image_size=8)
    assert "cannot take a 8x8 image" in one_line(err.value) and "data.image_size" in str(err.value)
    with pytest.raises(models.ArchError) as err:
        models.spec_for("resnet18_cifar", 64, 10, image_size=64)
    assert "data.image_size 64" in one_line(err.value)


@pytest.mark.parametrize("override", [
    "model.kwargs={width:16}", "+model.kwargs.width=16", "++model.kwargs={width:16}",
    "+model.kwargs={width:16}", "model.arch=torchvision:mobilenet_v2",
    "+model.kwargs={width_mult: 0.5, dropout: 0.2}"])
@pytest.mark.parametrize("kwargs", [{}, {"width": 8, "depth": 2}])
def test_kwargs_overrides_read_as_dvc_reads_them(tmp_path, override, kwargs):
    """The checks before a run apply -S as `dvc exp run -S` does (DVC's own code is the oracle
    here): a mapping merges into a mapping, `=` adds no key to it (DVC refuses; so do we, in one
    line that says how), `{width:16}` is {width: 16} (Hydra's grammar, not YAML's)."""
    from dvc.utils.hydra import apply_overrides
    from squeeze.check import apply_sets

    params = {"model": {"arch": "resnet18_cifar", "kwargs": dict(kwargs)}}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    try:
        apply_overrides(str(path), [override])
        dvc = yaml.safe_load(path.read_text())
    except Exception:  # DVC refuses it (its error types vary)
        dvc = None
    if dvc is None:
        with pytest.raises(ConfigError) as err:
            apply_sets(params, [override])
        assert "+model.kwargs." in one_line(err.value)
    else:
        assert apply_sets(params, [override]) == dvc



@pytest.mark.parametrize("fmt,quant", [("onnx", "fp32"), ("onnx", "fp16"), ("torchscript", "fp32")])
def test_a_pruned_torchvision_model_exports_and_matches(tmp_path, fmt, quant):
    from squeeze.deploy.export import _write

    torch.manual_seed(0)
    model = prune.prune_filters(models.build(models.spec_for(
        "torchvision:mobilenet_v2", 64, 10, {"width_mult": 0.5})).eval(), 0.5)
    if quant == "fp16":
        quantize.round_to_fp16(model)
    x = torch.randn(5, 3, 32, 32)
    with torch.no_grad():
        expected = model(x)
    out = _write(copy.deepcopy(model), quant, fmt, x, tmp_path / "m.bin")
    assert torch.allclose(out, expected, atol=(5e-2 if quant == "fp16" else 1e-4))


def test_a_factory_checkpoint_loaded_outside_the_project_names_the_module(tmp_path, monkeypatch):
    from pathlib import Path

    model = models.build(models.spec_for("nets.example:small_cnn", 64, 10, {"width": 4}))
    path = tmp_path / "sc.pt"
    checkpoint.save_model(path, model, {}, epoch=0)
    # loaded from a directory without a nets/ package, the project off sys.path
    root = Path.cwd().resolve()
    monkeypatch.setattr(sys, "path", [p for p in sys.path if Path(p or ".").resolve() != root])
    for name in [m for m in sys.modules if m == "nets" or m.startswith("nets.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(checkpoint.CheckpointError) as err:
        checkpoint.load_model(path)
    assert "nets.example" in one_line(err.value) and str(path) in str(err.value)


def test_inspect_counts_a_fresh_arch_and_refuses_a_bad_one_in_one_line(capsys):
    """`python -m squeeze inspect --arch`: the counts the pipeline would measure, before a run;
    a bad name, kwarg or spelling is one line (exit 1)."""
    import json

    from squeeze.__main__ import _main

    assert _main(["inspect", "--arch", "nets.example:small_cnn", "--kwargs", "{width: 16}",
                  "--image-size", "64"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert (found["params"], found["ops"]) == (47_434, 19_171_968)
    assert found["spec"]["image_size"] == 64
    for args, fragment in ((["--arch", "torchvision:nonexistent_net"], "'nonexistent_net'"),
                           (["--arch", "mobilenet_v2"], "--arch = 'mobilenet_v2'"),
                           (["--arch", "torchvision:mobilenet_v2", "--kwargs",
                             "{width_multiplier: 0.5}"], "width_multiplier")):
        assert _main(["inspect", *args]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("error: ") and fragment in err, err
