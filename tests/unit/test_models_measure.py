"""models and measure: ResNet-18 from a width spec, parameter/op counts and the study's score.

The expected counts are computed here by independent closed-form helpers and checked against the
study's published numbers, so both the model layout and the counting convention are pinned."""
from __future__ import annotations

import json

import pytest
import torch

from squeeze import measure, models
from squeeze.models import ResNetSpec

NARROW = ResNetSpec(stage_widths=(5, 9, 17, 33),
                    block_widths=((3, 7), (4, 11), (6, 2), (13, 1)), num_classes=7)


# ---- independent closed-form counts ----------------------------------------------------------

def blocks(spec: ResNetSpec):
    """(in_ch, mid_ch, out_ch, stride, input size) of every BasicBlock, in order."""
    in_ch, size = spec.stage_widths[0], 32
    for i, (out_ch, mids) in enumerate(zip(spec.stage_widths, spec.block_widths)):
        for j, mid in enumerate(mids):
            stride = 2 if (i > 0 and j == 0) else 1
            yield in_ch, mid, out_ch, stride, size
            in_ch, size = out_ch, size // stride


def expected_params(spec: ResNetSpec) -> int:
    stem = spec.stage_widths[0]
    total = 3 * stem * 9 + 2 * stem                     # stem conv + BN (weight, bias)
    for in_ch, mid, out_ch, stride, _ in blocks(spec):
        total += in_ch * mid * 9 + 2 * mid + mid * out_ch * 9 + 2 * out_ch
        if stride != 1 or in_ch != out_ch:
            total += in_ch * out_ch + 2 * out_ch         # 1x1 projection + BN
    return total + spec.stage_widths[-1] * spec.num_classes + spec.num_classes


def expected_ops(spec: ResNetSpec) -> int:
    """Conv/linear MACs + 4 per BN output element, for one 32x32 image."""
    stem = spec.stage_widths[0]
    total = 32 * 32 * stem * (3 * 9 + 4)
    for in_ch, mid, out_ch, stride, size in blocks(spec):
        out = (size // stride) ** 2
        total += out * mid * (in_ch * 9 + 4) + out * out_ch * (mid * 9 + 4)
        if stride != 1 or in_ch != out_ch:
            total += out * out_ch * (in_ch + 4)
    return total + spec.stage_widths[-1] * spec.num_classes


# ---- the full-width model --------------------------------------------------------------------

@pytest.fixture(scope="module")
def resnet18() -> models.ResNet18:
    torch.manual_seed(0)
    return models.build(ResNetSpec.resnet18(64))


def test_resnet18_params(resnet18):
    """The study's published count, the closed form and the model agree; score_seed's constant is
    the model's own count."""
    assert measure.count_params(resnet18) == 11_173_962 == expected_params(resnet18.spec)
    assert measure.BASELINE_PARAMS == measure.count_params(resnet18)


def test_resnet18_ops(resnet18):
    assert measure.count_ops(resnet18) == 557_880_320 == expected_ops(resnet18.spec)
    assert measure.BASELINE_OPS == measure.count_ops(resnet18)


def test_count_ops_restores_training_mode(resnet18):
    resnet18.train()
    measure.count_ops(resnet18)
    assert resnet18.training
    assert not any(m._forward_hooks for m in resnet18.modules()), "hooks removed"


def test_resnet18_spec_layout():
    spec = ResNetSpec.resnet18(64)
    assert spec.stage_widths == (64, 128, 256, 512)
    assert spec.block_widths == ((64, 64), (128, 128), (256, 256), (512, 512))
    assert spec.num_classes == 10


# ---- score ---------------------------------------------------------------------------------------

def test_score_of_the_baseline():
    fp32 = measure.score(11_173_962, 557_880_320, "fp32")
    assert round(fp32, 5) == 3.98778
    assert measure.score(11_173_962, 557_880_320, "fp16") == fp32 / 2
    assert measure.score(11_173_962, 557_880_320, "int8") == fp32 / 4


def test_score_terms():
    assert measure.score(5_600_000, 0, "fp32") == pytest.approx(1.0)
    assert measure.score(0, 280_000_000, "fp32") == pytest.approx(1.0)
    assert measure.score(5_600_000, 280_000_000, "int8") == pytest.approx(0.5)


def test_score_with_other_normalisers():
    assert measure.score(1_000, 0, "fp32", (1_000, 1)) == 1.0
    assert measure.score(0, 8_000, "int8", (1, 1_000)) == 2.0  # 8000 ops x 8/32 / 1000
    assert measure.score(11_173_962, 557_880_320, "fp32", measure.STUDY_NORMS) == \
        measure.score(11_173_962, 557_880_320, "fp32")


def test_auto_normalisers_are_half_the_baselines_own_counts(tmp_path):
    """score.params_norm / ops_norm auto: half the unpruned baseline's nonzero parameters and ops
    (read from its checkpoint), so that baseline scores 4.0 in fp32, 2.0 in fp16, 1.0 in int8,
    at any width; a number given beside auto is kept."""
    from squeeze import checkpoint
    from squeeze.config import ScoreConfig

    model = models.build(ResNetSpec.resnet18(8))
    path = tmp_path / "baseline.pt"
    checkpoint.save_model(path, model, {}, epoch=1)
    params, ops = measure.count_nonzero(model), measure.count_ops(model)
    auto = measure.score_norms(ScoreConfig("auto", "auto"), path)
    assert auto == (params / 2, ops / 2)
    for quant, expected in (("fp32", 4.0), ("fp16", 2.0), ("int8", 1.0)):
        assert measure.score(params, ops, quant, auto) == expected
    assert measure.score_norms(ScoreConfig(5.6e6, "auto"), path) == (5.6e6, ops / 2)
    assert measure.score_norms(ScoreConfig("auto", 2.8e8), path) == (params / 2, 2.8e8)
    # numbers alone never read the baseline
    assert measure.score_norms(ScoreConfig(1.0, 2.0), tmp_path / "absent.pt") == (1.0, 2.0)
    layers = measure.layer_counts(model)
    assert measure.layer_score(layers, {n: (32, 32) for n in layers if n}, (32, 32), auto) == \
        pytest.approx(4.0)


def test_score_seed():
    assert measure.score_seed(0.5, 0.5, "fp16") == pytest.approx(0.7475, rel=3e-3)
    assert measure.score_seed(0.5, 0.5, "fp16") == pytest.approx(0.747526, abs=1e-6)
    assert measure.score_seed(0, 0, "fp32") == measure.score(11_173_962, 557_880_320, "fp32")
    # unstructured pruning removes params but not ops
    params_only = measure.score_seed(0, 0.5, "fp32") - measure.score_seed(0, 0, "fp32")
    assert params_only == pytest.approx(-0.5 * 11_173_962 / 5.6e6)


def test_unknown_quant_type():
    with pytest.raises(ValueError, match="'int4'"):
        measure.score(1, 1, "int4")
    with pytest.raises(ValueError, match="'bf16'"):
        measure.score_seed(0, 0, "bf16")


def test_counts_sees_zeroed_weights():
    torch.manual_seed(0)
    model = models.build(ResNetSpec.resnet18(4))
    with torch.no_grad():  # BN biases start at exactly 0; make every parameter nonzero first
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.bias.fill_(0.1)
    full = measure.counts(model)
    assert full["params"] == full["nonzero_params"] == expected_params(ResNetSpec.resnet18(4))
    with torch.no_grad():
        model.layer3[0].conv1.weight.zero_()
    zeroed = measure.counts(model)
    removed = model.layer3[0].conv1.weight.numel()
    assert zeroed["params"] == full["params"]
    assert zeroed["nonzero_params"] == full["params"] - removed
    assert zeroed["ops"] == full["ops"], "zeros stored densely still cost ops"
    assert zeroed["score"]["fp32"] == round(measure.score(full["params"] - removed, full["ops"], "fp32"), 6)
    assert set(zeroed["score"]) == {"fp32", "fp16", "int8"}


# ---- specs -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("spec", [ResNetSpec.resnet18(4), ResNetSpec.resnet18(8, num_classes=3), NARROW],
                         ids=["width4", "width8-3classes", "narrow"])
def test_spec_of_build_round_trips(spec):
    assert models.spec_of(models.build(spec)) == spec


def test_spec_dict_round_trip():
    d = NARROW.to_dict()
    assert d == {"stage_widths": [5, 9, 17, 33],
                 "block_widths": [[3, 7], [4, 11], [6, 2], [13, 1]], "num_classes": 7}
    assert ResNetSpec.from_dict(d) == NARROW
    assert ResNetSpec.from_dict(json.loads(json.dumps(d))) == NARROW


def test_narrow_spec_builds_and_runs():
    torch.manual_seed(0)
    model = models.build(NARROW)
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 7)
    assert torch.isfinite(out).all()
    assert model.layer1[0].conv1.out_channels == 3 and model.layer4[1].conv1.out_channels == 1
    assert model.layer2[1].conv2.in_channels == 11
    assert len(model.layer1[0].shortcut) == 0, "stage 1 keeps identity shortcuts"
    assert len(model.layer2[0].shortcut) == 2 and len(model.layer2[1].shortcut) == 0
    assert measure.count_params(model) == expected_params(NARROW)
    assert measure.count_ops(model) == expected_ops(NARROW)


@pytest.mark.parametrize("bad", [
    {"stage_widths": [5, 9, 17], "block_widths": [[3, 7], [4, 11], [6, 2]], "num_classes": 7},
    {"stage_widths": [5, 9, 17, 33], "block_widths": [[3], [4, 11], [6, 2], [13, 1]], "num_classes": 7},
    {"stage_widths": [5, 0, 17, 33], "block_widths": [[3, 7], [4, 11], [6, 2], [13, 1]], "num_classes": 7},
    {"stage_widths": [5, 9, 17, 33], "block_widths": [[3, 7], [4, 11], [6, 2], [13, 1]]},
    {"stage_widths": ["five", 9, 17, 33], "block_widths": [[3, 7], [4, 11], [6, 2], [13, 1]], "num_classes": 7},
    {},
], ids=["3-stages", "1-block", "zero-width", "no-classes", "not-int", "empty"])
def test_bad_spec_dicts_are_rejected(bad):
    with pytest.raises(ValueError, match="architecture spec"):
        ResNetSpec.from_dict(bad)


# ---- from_state ------------------------------------------------------------------------------------

def small_state(spec: ResNetSpec = ResNetSpec.resnet18(4), seed: int = 0) -> dict:
    torch.manual_seed(seed)
    return models.build(spec).state_dict()


def test_from_state_rebuilds_identical_weights():
    state = small_state(NARROW)
    model = models.from_state(NARROW, state)
    assert model.spec == NARROW
    rebuilt = model.state_dict()
    assert rebuilt.keys() == state.keys()
    assert all(torch.equal(rebuilt[k], state[k]) for k in state)


def test_from_state_shape_mismatch_names_the_key():
    state = small_state()
    state["layer2.0.conv1.weight"] = torch.zeros(3, 4, 3, 3)
    with pytest.raises(ValueError) as info:
        models.from_state(ResNetSpec.resnet18(4), state)
    message = str(info.value)
    assert "'layer2.0.conv1.weight'" in message
    assert "(3, 4, 3, 3)" in message and "(8, 4, 3, 3)" in message


def test_from_state_other_width_names_the_first_key():
    with pytest.raises(ValueError, match="'conv1.weight'"):
        models.from_state(ResNetSpec.resnet18(8), small_state(ResNetSpec.resnet18(4)))


def test_from_state_unexpected_key():
    state = small_state()
    state["layer5.0.conv1.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match="'layer5.0.conv1.weight'"):
        models.from_state(ResNetSpec.resnet18(4), state)


def test_from_state_missing_key():
    state = small_state()
    del state["linear.bias"]
    with pytest.raises(ValueError, match="lack 'linear.bias'"):
        models.from_state(ResNetSpec.resnet18(4), state)


# ---- the machine a figure was measured on ---------------------------------------------------------

def test_cpu_name_names_the_vector_units(tmp_path):
    from squeeze.device import cpu_name

    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse avx avx2 fma "
                    "avx512f avx512_vnni\n\nprocessor\t: 1\nmodel name\t: AMD EPYC\n")
    assert cpu_name(str(info)) == "AMD EPYC [avx2 avx512f avx512_vnni]"
    info.write_text("model name\t: AMD EPYC\nflags\t\t: fpu avx avx2\n")
    assert cpu_name(str(info)) == "AMD EPYC [avx2]"
    assert cpu_name(str(tmp_path / "missing")) not in ("", None)
