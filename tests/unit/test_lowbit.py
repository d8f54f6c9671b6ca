"""lowbit: LSQ fake quantization to wXaY, the per-layer score, and the qat step (quantization-aware
fine-tune, simulated: no latency, no export). CPU, width 4-8 models, synthetic data."""
from __future__ import annotations

import copy
import json

import pytest
import torch

from squeeze import batches, checkpoint, data, evaluation, lowbit, measure, models, prune, train
from squeeze.config import ConfigError, QatConfig, QatTrainConfig, TrainConfig, low_bit_arg
from squeeze.deploy import api, export, recommend
from squeeze.models import ResNetSpec
from squeeze.paths import StagePaths
from squeeze.prepared import save as save_dataset
from squeeze.steps import qat

QAT_CFG = QatConfig(ends_bits=8, init_batches=2)
FT_CFG = QatTrainConfig(epochs=1, batch_size=64, lr=0.005, momentum=0.9, weight_decay=5e-4,
                        schedule="cosine", seed=0)


def fresh_model(width: int = 4, seed: int = 0) -> models.ResNet18:
    torch.manual_seed(seed)
    return models.build(ResNetSpec.resnet18(width))


# ---- the quantizer ---------------------------------------------------------------------------------

@pytest.mark.parametrize("bits,signed", [(2, True), (4, True), (4, False), (8, False)])
def test_lsq_output_lies_on_its_grid_and_passes_gradients(bits, signed):
    torch.manual_seed(0)
    x = torch.randn(6, 3, 5, 5, requires_grad=True)
    q = lowbit.LsqQuantizer(bits, signed=signed, channels=6)
    q.init_from(x)
    y = q(x)
    levels = y.detach() / q.step.detach().view(-1, 1, 1, 1)
    lo, hi = q.bounds()
    assert torch.allclose(levels, levels.round(), atol=1e-4)
    assert levels.min() >= lo - 1e-4 and levels.max() <= hi + 1e-4
    assert hi - lo + 1 == 2 ** bits
    y.pow(2).sum().backward()
    assert x.grad is not None and q.step.grad is not None and q.step.grad.abs().sum() > 0


def test_lsq_initial_step_beats_scaling_to_the_largest_value():
    """The fitted step has a lower squared error than the plain max/levels step it searches from."""
    torch.manual_seed(0)
    x = torch.randn(4096) ** 3  # heavy tails: clipping pays off
    q = lowbit.LsqQuantizer(4, signed=True)
    q.init_from(x)
    fitted = (q(x) - x).pow(2).mean()
    q.step.data.fill_(float(x.abs().max()) / q.bounds()[1])
    plain = (q(x) - x).pow(2).mean()
    assert fitted < 0.8 * plain


def test_bits_out_of_range_fail_in_one_line():
    with pytest.raises(lowbit.LowBitError, match="bits 1: allowed integers from 2 to 8"):
        lowbit.LsqQuantizer(1)


# ---- params -------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", ["w9a4", "w4a1", "wxa4", "int4", "W4A4"])
def test_bad_low_bit_type_is_one_line_naming_it(bad):
    with pytest.raises(ConfigError) as err:
        low_bit_arg(bad)
    assert repr(bad) in str(err.value) and "from 2 to 8" in str(err.value)
    assert "\n" not in str(err.value)


def test_parse_reads_both_widths():
    assert lowbit.parse("w4a8") == (4, 8) and lowbit.parse("w2a4") == (2, 4)
    assert lowbit.parse("int8") is None and measure.bits("w2a4") == (2, 4)


# ---- layers, bits and the score ----------------------------------------------------------------------

def test_ends_keep_their_bits_and_the_rest_get_the_type():
    model = fresh_model()
    bits = lowbit.layer_bits(model, "w4a4", ends_bits=8)
    names = [n for n, _ in lowbit.layers(model)]
    assert names[0] == "conv1" and names[-1] == "linear"
    assert bits["conv1"] == bits["linear"] == (8, 8)
    assert {bits[n] for n in names[1:-1]} == {(4, 4)}
    assert set(lowbit.layer_bits(model, "w2a4", ends_bits=0).values()) == {(2, 4)}


def test_layer_counts_sum_to_the_model_counts():
    model = fresh_model(width=8)
    prune.apply_masks(model, prune.magnitude_masks(model, 0.5, scope="global"))
    per_layer = measure.layer_counts(model)
    counts = measure.model_counts(model)
    assert sum(v["nonzero"] for v in per_layer.values()) == counts["nonzero_params"]
    assert sum(v["ops"] for v in per_layer.values()) == counts["ops"]
    assert per_layer[""]["ops"] > 0  # BatchNorm


@pytest.mark.parametrize("quant", ["fp32", "fp16", "int8", "w4a4", "w2a4", "w4a8"])
def test_uniform_bits_give_todays_score(quant):
    model = fresh_model(width=8)
    counts = measure.model_counts(model)
    bits = measure.bits(quant)
    uniform = {name: bits for name, _ in lowbit.layers(model)}
    assert measure.layer_score(measure.layer_counts(model), uniform, bits) == pytest.approx(
        measure.score(counts["nonzero_params"], counts["ops"], quant), rel=1e-12)


def test_eight_bit_ends_cost_more_than_uniform_and_less_than_int8():
    model = fresh_model(width=8)
    per_layer = measure.layer_counts(model)
    mixed = measure.layer_score(per_layer, lowbit.layer_bits(model, "w4a4", 8), (4, 4))
    uniform = measure.layer_score(per_layer, lowbit.layer_bits(model, "w4a4", 0), (4, 4))
    counts = measure.model_counts(model)
    assert uniform < mixed < measure.score(counts["nonzero_params"], counts["ops"], "int8")


def test_the_study_baseline_at_w4a4_scores_an_eighth():
    """The study's full-width ResNet-18 at uniform 4 bits (every parameter nonzero, as trained):
    3.98778 / 8."""
    model = models.build(ResNetSpec.resnet18(64))
    with torch.no_grad():
        for p in model.parameters():
            p[p == 0] = 1.0  # a fresh BatchNorm's biases are zero
    uniform = {name: (4, 4) for name, _ in lowbit.layers(model)}
    assert measure.layer_score(measure.layer_counts(model), uniform, (4, 4)) == pytest.approx(
        3.98778 / 8, abs=1e-5)


# ---- prepare / init: masks held, weights on their grid ---------------------------------------------

def test_masks_hold_through_training_and_weights_stay_on_their_grid():
    dd = _device_data(256, 64)
    model = fresh_model(width=4)
    prune.apply_masks(model, prune.magnitude_masks(model, 0.5, scope="global"))
    zeros = {n: m.weight == 0 for n, m in lowbit.layers(model)}
    lowbit.prepare(model, lowbit.layer_bits(model, "w2a4", 8))
    lowbit.init(model, dd.calibration_batches(64, 2, seed=0))
    train.fit(model, dd, TrainConfig(epochs=1, batch_size=64, lr=0.05, momentum=0.9,
                                     weight_decay=5e-4, schedule="constant", seed=0), name="t")
    for name, m in lowbit.layers(model):
        w = m.weight.detach()  # the quantized weight (the parametrization)
        assert torch.all(w[zeros[name]] == 0), name
        step = m.parametrizations.weight[0].quant.step.detach().abs().view(-1, *[1] * (w.dim() - 1))
        levels = w / step
        assert torch.allclose(levels, levels.round(), atol=1e-3)
        bits = 8 if name in ("conv1", "linear") else 2
        assert levels.round().unique().numel() <= 2 ** bits
    plain = lowbit.unwrapped(model)
    assert measure.sparsity(plain) == pytest.approx(measure.sparsity(_masked_copy_of(zeros, plain)))
    assert not any(hasattr(m, "input_quant") for _, m in lowbit.layers(plain))


def _masked_copy_of(zeros, model):
    out = copy.deepcopy(model)
    with torch.no_grad():
        for name, m in lowbit.layers(out):
            m.weight[zeros[name]] = 0
    return out


def test_the_stem_input_is_quantized_signed_and_the_rest_unsigned():
    dd = _device_data(128, 64)
    model = fresh_model()
    lowbit.prepare(model, lowbit.layer_bits(model, "w4a4", 8))
    lowbit.init(model, dd.calibration_batches(64, 1, seed=0))
    signed = {name: bool(m.input_quant.signed) for name, m in lowbit.layers(model)}
    assert signed.pop("conv1") is True  # the normalised image
    assert not any(signed.values())     # every other conv and the linear follow a ReLU


# ---- the qat step --------------------------------------------------------------------------------

def _device_data(train_size: int, test_size: int) -> batches.DeviceData:
    ds = data.synthetic(train_size, test_size, seed=0)
    mean, std = ds.mean_std()
    return batches.DeviceData(ds, mean, std, "cpu")


@pytest.fixture(scope="module")
def qat_inputs(tmp_path_factory):
    """A trained, half-sparse width-8 model checkpoint and a small prepared dataset."""
    root = tmp_path_factory.mktemp("qat")
    ds = data.synthetic(512, 200, seed=0)
    mean, std = ds.mean_std()
    dd = batches.DeviceData(ds, mean, std, "cpu")
    model = fresh_model(width=8)
    train.fit(model, dd, TrainConfig(epochs=2, batch_size=64, lr=0.05, momentum=0.9,
                                     weight_decay=5e-4, schedule="cosine", seed=0), name="fp32")
    prune.apply_masks(model, prune.magnitude_masks(model, 0.5, scope="global"))
    base = root / "base.pt"
    checkpoint.save_model(base, model, {}, 0)
    prepared = root / "dataset.npz"
    save_dataset(ds, prepared)
    return root, base, prepared


@pytest.fixture(scope="module")
def qat_run(qat_inputs):
    root, base, prepared = qat_inputs
    paths = StagePaths(prepared, root / "w4a4.pt", root / "w4a4.json", root / "w4a4.csv",
                       root / "resume.pt", base=base)
    return qat.run(0.5, 0.5, "w4a4", QAT_CFG, FT_CFG, paths, device="cpu"), paths


def test_the_qat_step_measures_a_simulated_model(qat_run):
    metrics, paths = qat_run
    assert json.loads(paths.metrics.read_text()) == metrics
    assert metrics["kernel"] == "simulated" and metrics["quant"] == "w4a4"
    assert metrics["latency_ms_b1"] is None and metrics["latency_ms_b32"] is None
    assert metrics["size_bytes"] is None
    assert metrics["sparsity"] == pytest.approx(0.5, abs=0.01)  # the masks held
    assert metrics["layer_bits"]["conv1"] == "w8a8" and metrics["layer_bits"]["linear"] == "w8a8"
    assert metrics["layer_bits"]["layer1.0.conv1"] == "w4a4"
    assert metrics["score_seed"] is None  # 8-bit ends: not the study's uniform formula
    assert metrics["score"] < measure.score(metrics["nonzero_params"], metrics["ops"], "int8")
    assert metrics["epochs"] == 1 and paths.log.is_file() and not paths.resume.exists()
    assert 0 <= metrics["accuracy"] <= 1 and metrics["accuracy_quantized_init"] is not None


def test_a_qat_checkpoint_loads_and_gives_the_measured_accuracy(qat_run):
    metrics, paths = qat_run
    model = api.load(paths.out)
    assert model.squeeze_quant == "w4a4"
    dd = batches.DeviceData.from_file(paths.data, "cpu")
    assert round(evaluation.accuracy(model, dd), 6) == metrics["accuracy"]


def test_a_qat_model_does_not_export(qat_run, tmp_path):
    _, paths = qat_run
    out = tmp_path / "model.onnx"
    with pytest.raises(export.ExportError) as err:
        export.export(paths.out, "onnx", out, paths.data, images=16)
    assert "w4a4 model is simulated" in str(err.value) and "fp32, fp16, int8" in str(err.value)
    assert "\n" not in str(err.value) and not out.exists()


def test_recommend_ships_only_real_kernels_and_names_better_simulated_ones():
    rows = [
        {"model": "s0-u0-int8", "accuracy": 0.80, "accuracy_low": 0.79, "accuracy_high": 0.81,
         "score": 0.06, "score_seed": 1.0, "checkpoint": "a", "kernel": "real"},
        {"model": "s0-u0-w4a4", "accuracy": 0.82, "accuracy_low": 0.81, "accuracy_high": 0.83,
         "score": 0.03, "score_seed": None, "checkpoint": "b", "kernel": "simulated"},
    ]
    rows.append(rows[1] | {"model": "s0-u0-w4a8", "accuracy": 0.805, "accuracy_low": 0.795,
                           "accuracy_high": 0.815, "score": 0.05})
    found = recommend.recommend(rows, 0.1)
    assert found["model"] == "s0-u0-int8"
    assert found["simulated_better"] == [  # each with its interval; inside the int8's: a tie
        {"model": "s0-u0-w4a4", "accuracy": 0.82, "accuracy_interval_95": [0.81, 0.83],
         "score": 0.03, "tie": False},
        {"model": "s0-u0-w4a8", "accuracy": 0.805, "accuracy_interval_95": [0.795, 0.815],
         "score": 0.05, "tie": True}]
    assert recommend.recommend(rows, 2.0, "score_seed")["model"] == "s0-u0-int8"  # blank skipped
    with pytest.raises(recommend.RecommendError, match="only simulated"):
        recommend.recommend(rows[1:], 0.1)


# ---- per-layer bits under a budget (wmix<b>) -------------------------------------------------------

def _toy_counts() -> dict:
    """Four layers (the first and last are the ends) of equal cost, and BatchNorm."""
    return {"stem": {"nonzero": 1000, "ops": 100_000}, "a": {"nonzero": 1000, "ops": 100_000},
            "b": {"nonzero": 1000, "ops": 100_000}, "head": {"nonzero": 1000, "ops": 100_000},
            "": {"nonzero": 100, "ops": 4000}}


CANDIDATES = ["w8a8", "w4a4", "w2a4"]


def test_allocate_lowers_the_layer_that_minds_least_first():
    counts = _toy_counts()
    losses = {"a": {"w8a8": 1.0, "w4a4": 1.01, "w2a4": 1.02},   # a barely minds
              "b": {"w8a8": 1.0, "w4a4": 1.5, "w2a4": 3.0}}     # b minds a lot
    top = lowbit.allocate(counts, losses, CANDIDATES, 8, budget_score=1e9)
    assert top == {"stem": (8, 8), "head": (8, 8), "a": (8, 8), "b": (8, 8)}
    one_step = measure.layer_score(counts, {**top, "a": (4, 4)}, (8, 8))
    found = lowbit.allocate(counts, losses, CANDIDATES, 8, budget_score=one_step)
    assert found["a"] == (4, 4) and found["b"] == (8, 8)
    low = measure.layer_score(counts, {**top, "a": (2, 4)}, (8, 8))
    found = lowbit.allocate(counts, losses, CANDIDATES, 8, budget_score=low)
    assert found["a"] == (2, 4) and found["b"] == (8, 8)
    assert measure.layer_score(counts, found, (8, 8)) <= low


@pytest.mark.parametrize("norms,first", [((1.0, 1e12), "a"), ((1e12, 1.0), "b")])
def test_allocate_weighs_params_and_ops_by_the_scores_normalisers(norms, first):
    """score.*_norm: the score per bit saved depends on them; with equal losses, the layer whose
    lowering saves the most score goes first: a (params-heavy) where parameters dominate the
    score, b (ops-heavy) where operations do."""
    counts = {"stem": {"nonzero": 10, "ops": 10}, "a": {"nonzero": 100_000, "ops": 1_000},
              "b": {"nonzero": 1_000, "ops": 100_000}, "head": {"nonzero": 10, "ops": 10},
              "": {"nonzero": 0, "ops": 0}}
    same = {"w8a8": 1.0, "w4a4": 1.1, "w2a4": 1.2}
    top = {n: (8, 8) for n in counts if n}
    budget = measure.layer_score(counts, top, (8, 8), norms) * 0.9  # one step of either fits
    found = lowbit.allocate(counts, {"a": same, "b": same}, CANDIDATES, 8, budget, norms=norms)
    assert found[first] == (4, 4) and found[{"a": "b", "b": "a"}[first]] == (8, 8)
    assert lowbit.cheapest_score(counts, CANDIDATES, 8, norms=norms) < budget


def test_a_budget_below_the_cheapest_bits_is_one_line():
    counts = _toy_counts()
    cheapest = lowbit.cheapest_score(counts, CANDIDATES, 8)
    with pytest.raises(lowbit.LowBitError) as err:
        lowbit.allocate(counts, {}, CANDIDATES, 8, budget_score=cheapest * 0.99)
    assert "below what every layer at w2a4 reaches" in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("key,value,fragment", [
    ("quantize.mix_budgets", [0], "contains 0"),
    ("quantize.mix_budgets", [1.5], "contains 1.5"),
    ("quantize.mixed.candidates", ["w4a4"], "at least two wXaY types"),
    ("quantize.mixed.candidates", ["w4a4", "w9a4"], "contains 'w9a4'"),
])
def test_bad_mixed_params_are_one_line(key, value, fragment):
    from squeeze.config import dotted_set, load_params, validate

    params = load_params()
    dotted_set(params, key, value)
    with pytest.raises(ConfigError, match=fragment) as err:
        validate(params)
    assert key in str(err.value) and "\n" not in str(err.value)


def test_the_mixed_step_picks_bits_under_its_budget(qat_inputs):
    from squeeze.config import MixedConfig

    root, base, prepared = qat_inputs
    paths = StagePaths(prepared, root / "mix.pt", root / "mix.json", root / "mix.csv",
                       root / "mix-resume.pt", base=base)
    mixed = MixedConfig(candidates=("w8a8", "w2a4"), images=64)
    metrics = qat.run(0.5, 0.5, "wmix0.5", QAT_CFG, FT_CFG, paths, device="cpu",
                      mixed_cfg=mixed)
    mix = metrics["mix"]
    assert metrics["score"] <= mix["budget_score"] == pytest.approx(0.5 * mix["int8_score"], abs=1e-6)
    assert metrics["kernel"] == "simulated" and metrics["score_seed"] is None
    assert metrics["q_w"] is None and metrics["layer_bits"]["conv1"] == "w8a8"
    inner = {v for k, v in metrics["layer_bits"].items() if k not in ("conv1", "linear")}
    assert inner == {"w8a8", "w2a4"}  # a mix, not one width
    assert set(mix["layer_loss"]) - {""} == {k for k in metrics["layer_bits"]
                                             if k not in ("conv1", "linear")}
    assert api.load(paths.out).squeeze_quant == "wmix0.5"


def test_the_mixed_step_scores_on_auto_normalisers(qat_inputs, tmp_path):
    """score.*_norm auto in the qat_mixed stage: the budget, the int8 score it is a fraction of
    and the score all divide by half the baseline's own counts (here the base model is its own
    baseline, so its int8 score is 1.0), and the metrics record them."""
    from squeeze.config import MixedConfig, ScoreConfig

    root, base, prepared = qat_inputs
    paths = StagePaths(prepared, tmp_path / "mix.pt", tmp_path / "mix.json", tmp_path / "mix.csv",
                       tmp_path / "resume.pt", base=base, baseline=base)
    metrics = qat.run(0.5, 0.5, "wmix0.5", QAT_CFG, FT_CFG, paths, device="cpu",
                      mixed_cfg=MixedConfig(candidates=("w8a8", "w2a4"), images=64),
                      score_cfg=ScoreConfig("auto", "auto"))
    model, _ = checkpoint.load_model(base)
    assert (metrics["score_params_norm"], metrics["score_ops_norm"]) == (
        measure.count_nonzero(model) / 2, measure.count_ops(model) / 2)
    assert metrics["mix"]["int8_score"] == pytest.approx(1.0, abs=1e-6)
    assert metrics["score"] <= metrics["mix"]["budget_score"] == pytest.approx(0.5, abs=1e-6)


def test_an_unreachable_mixed_budget_fails_before_any_work(qat_inputs, tmp_path):
    from squeeze.config import MixedConfig

    _, base, prepared = qat_inputs
    paths = StagePaths(prepared, tmp_path / "m.pt", tmp_path / "m.json", tmp_path / "m.csv",
                       tmp_path / "r.pt", base=base)
    with pytest.raises(lowbit.LowBitError) as err:
        qat.run(0.5, 0.5, "wmix0.05", QAT_CFG, FT_CFG, paths, device="cpu",
                mixed_cfg=MixedConfig(candidates=("w8a8", "w2a4"), images=100))
    assert "quantize.mix_budgets: 0.05 is not reachable by s0.5-u0.5-wmix0.05" in str(err.value)
    assert "\n" not in str(err.value) and list(tmp_path.iterdir()) == []
