"""prune: L1 filter pruning (structured, torch-pruning) and magnitude pruning (unstructured), and
the two pipeline steps built on them. CPU only, width 4-16 models, synthetic data."""
from __future__ import annotations

import copy
import dataclasses
import csv

import pytest
import torch

from squeeze import batches, checkpoint, data, evaluation, measure, models, prune, train
from squeeze.prepared import save as save_dataset
from squeeze.fsutil import read_json
from squeeze.history import HISTORY_COLUMNS
from squeeze.steps import structured, unstructured
from squeeze.paths import StagePaths
from squeeze.config import ConfigError, FinetuneConfig, StructuredConfig, UnstructuredConfig
from squeeze.models import ResNetSpec

STAGES = ("layer1", "layer2", "layer3", "layer4")


# ---- helpers -------------------------------------------------------------------------------------

def fresh_model(width: int = 8, seed: int = 0) -> models.ResNet18:
    torch.manual_seed(seed)
    return models.build(ResNetSpec.resnet18(width))


def batch(n: int = 2, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def device_data(train_size: int, test_size: int, seed: int = 0) -> batches.DeviceData:
    ds = data.synthetic(train_size, test_size, seed=seed)
    mean, std = ds.mean_std()
    return batches.DeviceData(ds, mean, std, "cpu")


def finetune_config(**overrides) -> FinetuneConfig:
    values = dict(epochs=1, batch_size=64, lr=0.02, momentum=0.9, weight_decay=5e-4,
                  schedule="cosine", seed=0)
    values.update(overrides)
    return FinetuneConfig(**values)


def blocks(model):
    for stage in STAGES:
        yield from getattr(model, stage)


def block_conv1s(model) -> list[torch.nn.Conv2d]:
    return [block.conv1 for block in blocks(model)]


def assert_same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"tensors differ: {different[:5]}"


def kept_filters(original: torch.Tensor, pruned: torch.Tensor) -> list[int]:
    """Which of `original`'s output filters each row of `pruned` is. Input channels may have
    been removed too, so a pruned filter is matched as the original filter that holds all of its
    (random, hence distinct) values."""
    flat = original.flatten(1)
    kept = []
    for row in pruned.flatten(1):
        candidates = torch.nonzero((flat == row[0]).any(1)).flatten().tolist()
        owners = [i for i in candidates if bool(torch.isin(row, flat[i]).all())]
        assert len(owners) == 1, f"pruned filter matches original filters {owners}"
        kept.append(owners[0])
    return kept


def kept_input_channels(rows: torch.Tensor, pruned: torch.Tensor) -> list[int]:
    """Which input channels of `rows` (original filters, already selected) survive in `pruned`."""
    kept = []
    for j in range(pruned.shape[1]):
        owners = [c for c in range(rows.shape[1]) if torch.equal(rows[:, c], pruned[:, j])]
        assert len(owners) == 1, f"pruned input channel {j} matches original channels {owners}"
        kept.append(owners[0])
    return kept


@torch.no_grad()
def with_ranked_conv1_filters(model: models.ResNet18, seed: int = 0) -> list[list[int]]:
    """Give every block's conv1 filters distinct, known L1 norms: filter i gets L1 = rank[i] + 1
    where rank is a random permutation. Returns, per block, the indices of the top half by L1
    in their original order (what L1 filter pruning at 0.5 must keep)."""
    g = torch.Generator().manual_seed(seed)
    expected = []
    for conv in block_conv1s(model):
        n = conv.out_channels
        rank = torch.randperm(n, generator=g)
        base = torch.randn(conv.weight.shape, generator=g)
        base /= base.abs().flatten(1).sum(1).view(-1, 1, 1, 1)  # every filter has L1 norm 1
        conv.weight.copy_(base * (rank + 1).float().view(-1, 1, 1, 1))
        l1 = conv.weight.abs().flatten(1).sum(1)
        assert len(set(l1.tolist())) == n
        expected.append(sorted(torch.topk(l1, n // 2).indices.tolist()))
    return expected


def save_prepared(path, train_size: int = 256, test_size: int = 100) -> None:
    save_dataset(data.synthetic(train_size, test_size, seed=0), path)


def save_baseline(path, width: int = 8, epoch: int = 3) -> models.ResNet18:
    model = fresh_model(width)
    checkpoint.save_model(path, model, {"model": {"width": width}}, epoch=epoch)
    return model


def history_rows(path) -> list[dict]:
    with open(path) as fh:
        return list(csv.DictReader(fh))


# ---- structured: shapes, widths, counts ------------------------------------------------------------

def test_prune_filters_half_layerwise_halves_every_width():
    original_spec = ResNetSpec.resnet18(16)
    model = fresh_model(16)
    params_before = measure.count_params(model)
    x = batch()

    returned = prune.prune_filters(model, 0.5, scope="layerwise")

    assert returned is model
    spec = model.spec
    assert spec == models.spec_of(model)
    assert spec.stage_widths == (8, 16, 32, 64)
    assert spec.stage_widths == tuple(w // 2 for w in original_spec.stage_widths)
    assert spec.block_widths == ((8, 8), (16, 16), (32, 32), (64, 64))
    assert spec.block_widths == tuple(tuple(w // 2 for w in ws) for ws in original_spec.block_widths)
    assert [c.out_channels for c in block_conv1s(model)] == [8, 8, 16, 16, 32, 32, 64, 64]
    assert model.linear.out_features == 10
    assert model.linear.in_features == 64

    model.eval()
    with torch.no_grad():
        out = model(x)
    assert out.shape == (2, 10)
    assert torch.isfinite(out).all()

    # A conv's weight count is in_channels * out_channels * k * k, and both halve, so each conv
    # keeps (1 - 0.5)^2 = 1/4 of its weights. Slightly more than 1/4 survives overall because the
    # stem's 3 input channels, the classifier's 10 outputs and its bias are never pruned and BN
    # parameters only scale with one width (1/2).
    ratio = measure.count_params(model) / params_before
    assert 0.24 <= ratio <= 0.27, ratio
    assert measure.count_params(model) == measure.count_params(models.build(spec))

    rebuilt = models.from_state(spec, model.state_dict()).eval()
    with torch.no_grad():
        assert torch.equal(rebuilt(x), out)


def test_residual_channels_stay_tied():
    model = fresh_model(16)
    prune.prune_filters(model, 0.5, scope="layerwise")
    spec = model.spec
    # the stem's output joins layer1's residual adds: one width for all of them
    assert model.conv1.out_channels == model.bn1.num_features == spec.stage_widths[0] == 8
    assert [b.conv2.out_channels for b in model.layer1] == [spec.stage_widths[0]] * 2
    assert [b.conv1.in_channels for b in model.layer1] == [spec.stage_widths[0]] * 2
    assert all(len(b.shortcut) == 0 for b in model.layer1), "identity shortcuts stay identities"
    for i, stage in enumerate(STAGES[1:], start=1):
        first, second = getattr(model, stage)
        width = spec.stage_widths[i]
        assert first.shortcut[0].out_channels == first.conv2.out_channels == width
        assert second.conv2.out_channels == second.conv1.in_channels == width
        assert first.conv1.in_channels == first.shortcut[0].in_channels == spec.stage_widths[i - 1]


@pytest.mark.parametrize("amount", [0.5, 0.8])
def test_global_scope_is_non_uniform_but_never_empties_a_layer(amount):
    original = ResNetSpec.resnet18(8)
    model = fresh_model(8)
    prune.prune_filters(model, amount, scope="global")
    spec = model.spec
    assert spec == models.spec_of(model)

    widths = spec.stage_widths + sum(spec.block_widths, ())
    full = original.stage_widths + sum(original.block_widths, ())
    kept = [w / f for w, f in zip(widths, full)]
    assert min(widths) >= 1, f"a layer was removed entirely: {spec}"
    assert len(set(kept)) > 1, f"global pruning kept the same fraction everywhere: {spec}"
    assert sum(widths) < sum(full)

    # residual ties hold with uneven widths too
    assert model.conv1.out_channels == spec.stage_widths[0]
    assert [b.conv2.out_channels for b in model.layer1] == [spec.stage_widths[0]] * 2
    model.eval()
    with torch.no_grad():
        assert model(batch()).shape == (2, 10)
    assert models.from_state(spec, model.state_dict()).spec == spec


def test_global_scope_prunes_more_at_larger_amounts():
    # a global ranking computed once selects a superset of channels at a larger amount, so no
    # layer may get wider as the amount grows
    specs = {}
    for amount in (0.5, 0.7, 0.8):
        model = fresh_model(8)
        prune.prune_filters(model, amount, scope="global")
        specs[amount] = model.spec.stage_widths + sum(model.spec.block_widths, ())
    amounts = sorted(specs)
    for smaller, larger in zip(amounts, amounts[1:]):
        wider = [i for i, (a, b) in enumerate(zip(specs[smaller], specs[larger])) if b > a]
        assert not wider, (f"layers {wider} are wider at amount {larger} than at {smaller}: "
                           f"{specs[smaller]} -> {specs[larger]}")
    full = sum(ResNetSpec.resnet18(8).stage_widths + sum(ResNetSpec.resnet18(8).block_widths, ()))
    assert 1 - sum(specs[0.8]) / full >= 0.7


def test_global_scope_refuses_amounts_above_its_per_layer_cap():
    with pytest.raises(ConfigError, match="contains 0.9.*max_layer_amount \\(0.8\\)"):
        StructuredConfig("global", "l1", max_layer_amount=0.8).check_amount(0.9)
    assert StructuredConfig("layerwise", "l1", max_layer_amount=0.8).check_amount(0.9) == 0.9
    # at the cap itself whole channels fall short of the amount: an error naming the most
    with pytest.raises(ValueError, match="at most 0.88"):
        prune.prune_filters(fresh_model(8), 0.9, scope="global", max_layer_amount=0.9)


def group_widths(model) -> list[int]:
    spec = models.spec_of(model)
    return list(spec.stage_widths) + list(sum(spec.block_widths, ()))


@pytest.mark.parametrize("amount, cap", [(0.3, 0.9), (0.5, 0.6), (0.8, 0.9), (0.6, 0.65)])
def test_global_scope_removes_the_amount_of_all_channels_and_caps_every_layer(amount, cap):
    full = group_widths(fresh_model(8))  # the 12 filter groups: 4 residual streams, 8 internal
    model = fresh_model(8)
    prune.prune_filters(model, amount, scope="global", max_layer_amount=cap)
    kept = group_widths(model)
    assert sum(full) - sum(kept) == int(sum(full) * amount)
    assert all(f - k <= int(f * cap) for f, k in zip(full, kept)), (full, kept)
    assert len({k / f for k, f in zip(kept, full)}) > 1  # non-uniform: one ranking, not per layer


def test_uncapped_global_scope_removes_the_filters_torch_pruning_global_ranking_removes():
    import torch_pruning as tp

    ours = fresh_model(8)
    prune.prune_filters(ours, 0.5, scope="global", max_layer_amount=0.99)
    theirs = fresh_model(8)
    tp.pruner.MetaPruner(theirs, batch(), importance=prune._importance("l1", "global"),
                         pruning_ratio=0.5, global_pruning=True,
                         ignored_layers=[theirs.linear]).step()
    assert group_widths(ours) == group_widths(theirs)
    survivors = {n: p for n, p in theirs.named_parameters()}
    for name, param in ours.named_parameters():  # the same filters, not only the same counts
        assert torch.equal(param, survivors[name]), name


# ---- structured: which filters survive --------------------------------------------------------------

def test_l1_keeps_the_highest_norm_filters_in_order():
    model = fresh_model(8)
    expected = with_ranked_conv1_filters(model)
    originals = [c.weight.detach().clone() for c in block_conv1s(model)]
    stem = model.conv1.weight.detach().clone()

    prune.prune_filters(model, 0.5, scope="layerwise", criterion="l1")

    pruned = [c.weight.detach() for c in block_conv1s(model)]
    assert [kept_filters(o, p) for o, p in zip(originals, pruned)] == expected
    for original, keep, after in zip(originals, expected, pruned):
        rows = original[keep]
        columns = kept_input_channels(rows, after)
        assert columns == sorted(columns), "input channels keep their order"
        assert torch.equal(after, rows[:, columns])
    # layer1's input channels are the stem's outputs: cross-check against the stem's survivors
    stem_kept = kept_filters(stem, model.conv1.weight.detach())
    for block, original, keep in zip(model.layer1, originals, expected):
        assert torch.equal(block.conv1.weight.detach(), original[keep][:, stem_kept])


def test_random_criterion_differs_from_l1_and_is_seeded():
    def kept_sets(criterion: str, seed: int) -> list[list[int]]:
        model = fresh_model(8)
        with_ranked_conv1_filters(model)
        originals = [c.weight.detach().clone() for c in block_conv1s(model)]
        prune.prune_filters(model, 0.5, scope="layerwise", criterion=criterion, seed=seed)
        assert model.spec.block_widths == ((4, 4), (8, 8), (16, 16), (32, 32))
        return [kept_filters(o, c.weight.detach()) for o, c in zip(originals, block_conv1s(model))]

    l1 = kept_sets("l1", 0)
    random_a = kept_sets("random", 7)
    random_b = kept_sets("random", 7)
    assert random_a == random_b, "the same seed keeps the same filters"
    differing = sum(a != b for a, b in zip(random_a, l1))
    assert differing >= 4, f"random kept the L1 filters in {8 - differing} of 8 blocks"
    assert kept_sets("random", 8) != random_a, "another seed keeps other filters"


def test_unknown_criterion_and_layers():
    with pytest.raises(ValueError, match="criterion"):
        prune.prune_filters(fresh_model(4), 0.5, criterion="taylor")
    with pytest.raises(ValueError, match="layers"):
        prune.prune_filters(fresh_model(4), 0.5, layers="first")


def test_l2_ranks_filters_by_their_l2_norm():
    """Four filters of 36 weights: 0.05 everywhere (L1 1.8, L2 0.3), one spike of 1.0 (L1 1.0,
    L2 1.0), 0.1 everywhere twice (L1 3.6, L2 0.6). Keeping half, l1 drops the spike and l2 keeps
    it."""
    model = fresh_model(4)
    conv = model.layer1[0].conv1
    with torch.no_grad():
        conv.weight.fill_(0.1)
        conv.weight[0].fill_(0.05)
        conv.weight[1].zero_()
        conv.weight[1, 0, 0, 0] = 1.0
    largest = {}
    for criterion in ("l1", "l2"):
        pruned = prune.prune_filters(copy.deepcopy(model), 0.5, criterion=criterion,
                                     layers="block-internal")
        kept = pruned.layer1[0].conv1.weight
        assert kept.shape[0] == 2
        largest[criterion] = round(float(kept.abs().max()), 4)
    assert largest == {"l1": 0.1, "l2": 1.0}


def test_residual_scale_prunes_residual_tied_channels_less():
    """Width 16 at amount 0.5: each block's first conv keeps half its filters; the residual-tied
    channels (stem, second convs, shortcuts) lose 0.5 * scale. Scale 1 is the study's uniform
    pruning, scale 0 the same model as block-internal, filter for filter."""
    widths = {}
    for scale in (1.0, 0.5, 0.25, 0.0):
        spec = prune.prune_filters(fresh_model(16), 0.5, residual_scale=scale).spec
        widths[scale] = (spec.stage_widths, spec.block_widths[0][0], spec.block_widths[3][1])
    assert widths == {1.0: ((8, 16, 32, 64), 8, 64), 0.5: ((12, 24, 48, 96), 8, 64),
                      0.25: ((14, 28, 56, 112), 8, 64), 0.0: ((16, 32, 64, 128), 8, 64)}
    kept = prune.prune_filters(fresh_model(16), 0.5, residual_scale=0.0)
    internal = prune.prune_filters(fresh_model(16), 0.5, layers="block-internal")
    assert_same_state(kept.state_dict(), internal.state_dict())
    # fewer ops than block-internal, more than uniform
    ops = [measure.count_ops(prune.prune_filters(fresh_model(16), 0.5, residual_scale=s))
           for s in (0.0, 0.5, 1.0)]
    assert ops[0] > ops[1] > ops[2]


# ---- structured: amount bounds --------------------------------------------------------------------

def test_amount_zero_returns_the_model_unchanged():
    model = fresh_model(8)
    before = copy.deepcopy(model.state_dict())
    spec = model.spec
    assert prune.prune_filters(model, 0) is model
    assert model.spec == spec == ResNetSpec.resnet18(8)
    assert_same_state(model.state_dict(), before)


# ---- unstructured: magnitude masks -----------------------------------------------------------------

def zero_count(model) -> tuple[int, int]:
    weights = prune.prunable_weights(model).values()
    return sum(int((w == 0).sum()) for w in weights), sum(w.numel() for w in weights)


def test_prunable_weights_are_convs_and_the_linear():
    names = list(prune.prunable_weights(fresh_model(4)))
    assert len(names) == 21  # stem + 8 blocks x 2 + 3 projections + linear
    assert names[0] == "conv1.weight" and names[-1] == "linear.weight"
    assert "layer2.0.shortcut.0.weight" in names
    assert not any("bn" in n for n in names)


def test_magnitude_masks_global_zeroes_the_exact_fraction_of_smallest_weights():
    model = fresh_model(8)
    zeros, n = zero_count(model)
    assert zeros == 0
    masks = prune.magnitude_masks(model, 0.3, scope="global")
    weights = prune.prunable_weights(model)
    assert list(masks) == list(weights)
    assert all(masks[k].dtype == torch.bool and masks[k].shape == w.shape for k, w in weights.items())

    dropped = torch.cat([w.detach().abs()[~masks[k]] for k, w in weights.items()])
    kept = torch.cat([w.detach().abs()[masks[k]] for k, w in weights.items()])
    assert len(dropped) == round(0.3 * n)
    assert dropped.max() <= kept.min()

    prune.apply_masks(model, masks)
    assert prune.sparsity(model) == round(0.3 * n) / n
    assert zero_count(model)[0] == round(0.3 * n)
    # the ranking is global: layers are pruned unevenly
    per_layer = {k: float((~m).float().mean()) for k, m in masks.items()}
    assert max(per_layer.values()) - min(per_layer.values()) > 0.1


def test_magnitude_masks_layerwise_prunes_every_layer_by_the_amount():
    model = fresh_model(8)
    masks = prune.magnitude_masks(model, 0.3, scope="layerwise")
    for name, w in prune.prunable_weights(model).items():
        n = w.numel()
        mask = masks[name]
        assert int((~mask).sum()) == round(0.3 * n), name
        assert w.detach().abs()[~mask].max() <= w.detach().abs()[mask].min(), name
    prune.apply_masks(model, masks)
    for name, w in prune.prunable_weights(model).items():
        assert int((w == 0).sum()) / w.numel() == round(0.3 * w.numel()) / w.numel(), name


def test_magnitude_amount_applies_to_the_remaining_weights():
    model = fresh_model(8)
    _, n = zero_count(model)
    prune.apply_masks(model, prune.magnitude_masks(model, 0.5))
    first, _ = zero_count(model)
    assert first == round(0.5 * n)
    masks = prune.magnitude_masks(model, 0.5)
    assert all(not bool(m[w == 0].any()) for m, w in
               zip(masks.values(), prune.prunable_weights(model).values())), "zeros stay dropped"
    prune.apply_masks(model, masks)
    second, _ = zero_count(model)
    assert second == first + round(0.5 * (n - first))
    assert abs(prune.sparsity(model) - 0.75) <= 1 / n


def test_magnitude_unknown_scope():
    with pytest.raises(ValueError, match="scope"):
        prune.magnitude_masks(fresh_model(4), 0.3, scope="per-channel")


def test_sparsity_survives_fine_tuning():
    dd = device_data(512, 128)
    model = fresh_model(4)
    masks = prune.magnitude_masks(model, 0.5, scope="global")
    prune.apply_masks(model, masks)
    before_sparsity = prune.sparsity(model)
    before = {k: w.detach().clone() for k, w in prune.prunable_weights(model).items()}

    train.fit(model, dd, finetune_config(epochs=2, lr=0.05), name="t",
              constraint=lambda m: prune.apply_masks(m, masks))

    assert prune.sparsity(model) == before_sparsity
    changed = unmasked = 0
    for name, w in prune.prunable_weights(model).items():
        w = w.detach()
        assert torch.all(w[~masks[name]] == 0.0), name
        changed += int((w[masks[name]] != before[name][masks[name]]).sum())
        unmasked += int(masks[name].sum())
    assert changed / unmasked > 0.99, "fine-tuning changed the weights that were kept"


# ---- pipeline steps --------------------------------------------------------------------------------

@pytest.fixture
def prepared(tmp_path):
    path = tmp_path / "data.npz"
    save_prepared(path)
    return path


def test_run_prune_structured(tmp_path, prepared):
    base = tmp_path / "baseline.pt"
    baseline = save_baseline(base)
    out, log, resume = tmp_path / "out" / "s0.5.pt", tmp_path / "logs" / "s0.5.csv", tmp_path / "r.pt"
    out_metrics = tmp_path / "metrics" / "s0.5.json"
    cfg = StructuredConfig(scope="layerwise", criterion="l1")

    metrics = structured.run(0.5, cfg, finetune_config(),
                             StagePaths(prepared, out, out_metrics, log, resume, base=base),
                             device="cpu")

    model, payload = checkpoint.load_model(out)
    expected = prune.prune_filters(copy.deepcopy(baseline), 0.5, "layerwise", "l1")
    assert model.spec == expected.spec == models.spec_of(model)
    assert model.spec.stage_widths == (4, 8, 16, 32)
    assert "metrics" not in payload and read_json(out_metrics) == metrics
    assert metrics["structured"] == 0.5
    dd = batches.DeviceData.from_file(prepared, "cpu")
    assert metrics["accuracy_pruned"] == round(evaluation.accuracy(expected, dd), 6)
    assert metrics["accuracy"] == round(evaluation.accuracy(model, dd), 6)
    assert (metrics["params"], metrics["ops"]) == (measure.count_params(model),
                                                   measure.count_ops(model))
    assert metrics["epochs"] == 1 and metrics["train_seconds"] > 0
    assert (metrics["device"], metrics["tf32"]) == ("cpu", None)
    assert payload["epoch"] == 1
    assert payload["config"] == {"structured": 0.5,
                                 "prune": {"scope": "layerwise", "criterion": "l1",
                                           "layers": "all", "rounds": 1, "target": "channels",
                                           "spare_drop": 0.0, "round_to": 1,
                                           "max_layer_amount": 0.9, "residual_scale": 1.0},
                                 "finetune": dataclasses.asdict(finetune_config())}
    rows = history_rows(log)
    assert [int(r["epoch"]) for r in rows] == [1]
    # the last epoch's logged accuracy and the stage's final measurement: one function, one number
    assert float(rows[0]["test_accuracy"]) == metrics["accuracy"]
    changed = [k for k, v in expected.state_dict().items() if not torch.equal(v, model.state_dict()[k])]
    assert changed, "the pruned model was fine-tuned"
    assert not resume.exists()


def test_run_prune_structured_amount_zero_copies_the_baseline(tmp_path, prepared):
    base = tmp_path / "baseline.pt"
    baseline = save_baseline(base, epoch=3)
    out, log, out_metrics = tmp_path / "s0.pt", tmp_path / "s0.csv", tmp_path / "s0.json"
    cfg = StructuredConfig(scope="layerwise", criterion="l1")

    metrics = structured.run(0.0, cfg, finetune_config(),
                             StagePaths(prepared, out, out_metrics, log, tmp_path / "r.pt",
                                        base=base), device="cpu")

    model, payload = checkpoint.load_model(out)
    assert model.spec == ResNetSpec.resnet18(8)
    assert_same_state(model.state_dict(), baseline.state_dict())
    accuracy = round(evaluation.accuracy(baseline, batches.DeviceData.from_file(prepared, "cpu")), 6)
    assert metrics["accuracy"] == metrics["accuracy_pruned"] == accuracy
    assert (metrics["structured"], metrics["epochs"], metrics["train_seconds"]) == (0.0, 0, 0.0)
    assert read_json(out_metrics) == metrics
    assert payload["epoch"] == 3 and payload["config"] == {"structured": 0.0}
    assert log.read_text() == ",".join(HISTORY_COLUMNS) + "\n"
    assert history_rows(log) == []


def test_run_prune_unstructured(tmp_path, prepared):
    base = tmp_path / "s0.5.pt"
    source = save_baseline(base)
    out, log, resume = tmp_path / "s0.5-u0.5.pt", tmp_path / "u.csv", tmp_path / "r.pt"
    out_metrics = tmp_path / "u.json"
    cfg = UnstructuredConfig(scope="global")

    metrics = unstructured.run(0.5, 0.5, cfg, finetune_config(),
                               StagePaths(prepared, out, out_metrics, log, resume, base=base),
                               device="cpu")

    model, payload = checkpoint.load_model(out)
    assert model.spec == ResNetSpec.resnet18(8)
    assert "metrics" not in payload and read_json(out_metrics) == metrics
    assert (metrics["structured"], metrics["unstructured"]) == (0.5, 0.5)
    dd = batches.DeviceData.from_file(prepared, "cpu")
    masked = copy.deepcopy(source)
    prune.apply_masks(masked, prune.magnitude_masks(masked, 0.5, "global"))
    assert metrics["accuracy_pruned"] == round(evaluation.accuracy(masked, dd), 6)
    assert metrics["accuracy"] == round(evaluation.accuracy(model, dd), 6)
    _, n = zero_count(model)
    assert metrics["sparsity"] == round(prune.sparsity(model), 6) == round(round(0.5 * n) / n, 6)
    assert metrics["nonzero_params"] == measure.count_nonzero(model) < metrics["params"]
    # the zeros are exactly the smallest half of the source weights, kept through the fine-tune
    masks = prune.magnitude_masks(source, 0.5, "global")
    weights = prune.prunable_weights(model)
    for name, mask in masks.items():
        assert torch.equal(weights[name].detach() == 0, ~mask), name
    assert [int(r["epoch"]) for r in history_rows(log)] == [1]
    assert not resume.exists()


def test_run_prune_unstructured_amount_zero_copies_the_source(tmp_path, prepared):
    base = tmp_path / "s0.5.pt"
    source = save_baseline(base, epoch=2)
    out, log, out_metrics = tmp_path / "s0.5-u0.pt", tmp_path / "u0.csv", tmp_path / "u0.json"
    cfg = UnstructuredConfig(scope="global")

    metrics = unstructured.run(0.5, 0.0, cfg, finetune_config(),
                               StagePaths(prepared, out, out_metrics, log, tmp_path / "r.pt",
                                          base=base), device="cpu")

    model, payload = checkpoint.load_model(out)
    assert_same_state(model.state_dict(), source.state_dict())
    assert read_json(out_metrics) == metrics
    accuracy = round(evaluation.accuracy(source, batches.DeviceData.from_file(prepared, "cpu")), 6)
    assert metrics["accuracy"] == metrics["accuracy_pruned"] == accuracy
    assert metrics["unstructured"] == 0.0 and metrics["epochs"] == 0
    assert payload["epoch"] == 2
    assert history_rows(log) == []
    assert log.read_text() == ",".join(HISTORY_COLUMNS) + "\n"
