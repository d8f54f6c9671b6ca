"""Li et al.'s sensitivity analysis, the groups it spares, and amounts as fractions of params or
ops: through prune.py, sensitivity.py and the structured step on tiny synthetic data."""
from __future__ import annotations

import copy
import json

import pytest
import torch
from torch import nn

from squeeze import checkpoint, measure, models, prune, sensitivity
from squeeze.paths import StagePaths
from squeeze.config import ConfigError, StructuredConfig
from squeeze.evaluation import BATCH_SIZE, accuracy_on
from squeeze.models import ResNetSpec
from squeeze.steps import sensitive

from test_recovery import device_data, finetune, inputs, run_structured  # noqa: F401 (shared)

RESIDUAL = {"conv1": ["conv1", "layer1.0.conv2", "layer1.1.conv2"],
            "layer2.0.conv2": ["layer2.0.conv2", "layer2.0.shortcut.0", "layer2.1.conv2"]}


def tiny(width: int = 8) -> models.ResNet18:
    torch.manual_seed(0)
    return models.build(ResNetSpec.resnet18(width))


def widths(model: nn.Module) -> dict[str, int]:
    return {n: m.out_channels for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}


def test_filter_groups_are_torch_prunings_couplings():
    groups = prune.filter_groups(tiny())
    assert len(groups) == 12  # 4 residual streams + 8 block-internal convs
    assert {k: groups[k] for k in RESIDUAL} == RESIDUAL
    assert groups["layer3.1.conv1"] == ["layer3.1.conv1"]
    every = [c for convs in groups.values() for c in convs]
    assert len(every) == len(set(every)) == 20  # every conv of ResNet-18 in exactly one group


def test_only_prunes_one_group_and_spare_keeps_one():
    model = tiny()
    before = widths(model)
    alone = prune.prune_filters(copy.deepcopy(model), 0.5, only="layer2.0.conv2")
    changed = {n for n, w in widths(alone).items() if w != before[n]}
    assert changed == set(RESIDUAL["layer2.0.conv2"])
    assert all(widths(alone)[n] == before[n] // 2 for n in changed)
    spared = prune.prune_filters(copy.deepcopy(model), 0.5, spare=["conv1", "layer2.0.conv1"])
    kept = {n for n, w in widths(spared).items() if w == before[n]}
    assert kept == set(RESIDUAL["conv1"]) | {"layer2.0.conv1"}


@pytest.mark.parametrize("target", ["params", "ops"])
def test_ratio_for_reaches_the_goal_with_the_least_ratio(target):
    model = tiny(16)
    count = prune.TARGET_COUNTS[target]
    full = count(model)
    goal = round(full * 0.5)
    ratio = prune.ratio_for(model, goal, target)
    assert count(model) == full  # the model itself is not pruned
    assert count(prune.prune_filters(copy.deepcopy(model), ratio)) <= goal
    # one whole channel fewer removed would miss the goal: 16 channels per 1/16 of the stem
    assert count(prune.prune_filters(copy.deepcopy(model), ratio - 1 / 16)) > goal
    assert 0.25 < ratio < 0.35  # params and ops fall about as (1 - ratio)^2


def test_ratio_for_names_what_it_cannot_reach():
    with pytest.raises(ValueError, match=r"removing 0\.900 of the params is not reachable"):
        prune.ratio_for(tiny(), round(measure.count_params(tiny()) * 0.1), "params",
                        layers="block-internal")


ROWS = [{"group": "a", "amount": 0.2, "drop": 0.02}, {"group": "a", "amount": 0.6, "drop": 0.30},
        {"group": "b", "amount": 0.2, "drop": 0.00}, {"group": "b", "amount": 0.6, "drop": 0.04}]


def test_drop_at_interpolates_and_sensitive_uses_it():
    assert sensitivity.drop_at(ROWS, "a", 0.1) == pytest.approx(0.01)  # from (0, 0)
    assert sensitivity.drop_at(ROWS, "a", 0.4) == pytest.approx(0.16)
    assert sensitivity.drop_at(ROWS, "a", 0.9) == pytest.approx(0.30)  # the last measured
    assert sensitivity.sensitive(ROWS, 0.4, 0.1) == ["a"]
    assert sensitivity.sensitive(ROWS, 0.6, 0.03) == ["a", "b"]
    assert sensitivity.sensitive(ROWS, 0.2, 0.05) == []
    with pytest.raises(ValueError, match="'c' is not in"):
        sensitivity.drop_at(ROWS, "c", 0.5)


def test_analyse_measures_each_group_alone_on_training_images(tmp_path):
    dd = device_data(train_size=256, test_size=64)
    model = tiny()
    rows = sensitivity.analyse(model, dd, [0.25, 0.75], "l1", images=200, progress=lambda _: None)
    assert len(rows) == 24 and [r["amount"] for r in rows[:2]] == [0.25, 0.75]
    base = accuracy_on(model, dd.held_batches(BATCH_SIZE, 200, sensitivity.SEED), dd.device)
    for row in rows[:4]:
        trial = prune.prune_filters(copy.deepcopy(model), row["amount"], only=row["group"])
        left = accuracy_on(trial, dd.held_batches(BATCH_SIZE, 200, sensitivity.SEED), dd.device)
        assert row["accuracy"] == round(left, 6)
        assert row["drop"] == pytest.approx(base - left, abs=2e-6)
    assert rows[0]["channels"] == 8 and rows[0]["convs"] == " ".join(RESIDUAL["conv1"])
    sensitivity.write(rows, tmp_path / "s.csv")
    assert sensitivity.read(tmp_path / "s.csv") == rows


def test_structured_step_spares_what_the_csv_finds_sensitive(inputs):
    rows = [{"group": g, "convs": g, "channels": 8, "amount": 0.5, "accuracy": 0.5,
             "drop": 0.2 if g in ("conv1", "layer4.1.conv1") else 0.01}
            for g in prune.filter_groups(tiny())]
    sensitivity.write(rows, inputs / "sens.csv")
    cfg = StructuredConfig("layerwise", "l1", spare_drop=0.1)
    result = run_structured(inputs, "spare", cfg, finetune(epochs=1),
                            sensitivity=inputs / "sens.csv")
    assert result["spared"] == ["conv1", "layer4.1.conv1"]
    model, _ = checkpoint.load_model(inputs / "spare.pt")
    assert model.spec.stage_widths == (8, 8, 16, 32)  # the stem's stream kept, the rest halved
    assert model.spec.block_widths[3] == (32, 64)  # layer4.1.conv1 kept
    assert json.loads((inputs / "spare.json").read_text())["spared"] == result["spared"]


def test_structured_step_with_a_params_target(inputs):
    base = checkpoint.load_model(inputs / "base.pt")[0]
    cfg = StructuredConfig("layerwise", "l1", target="params")
    result = run_structured(inputs, "params", cfg, finetune(epochs=1), amount=0.5)
    assert result["params"] <= 0.5 * measure.count_params(base)
    assert result["target"] == "params" and len(result["channel_ratios"]) == 1
    assert result["channel_ratios"][0] < 0.35  # much less than 0.5 of each layer's channels
    with pytest.raises(ConfigError, match="contains 0.9 with target: params: removing 0.900"):
        run_structured(inputs, "far", StructuredConfig("layerwise", "l1", "block-internal",
                                                            target="params"),
                       finetune(epochs=1), amount=0.9)


def test_sensitivity_step_writes_the_csv(inputs):
    from squeeze.config import SensitivityConfig

    rows = sensitive.run(SensitivityConfig((0.5,), 100), "l1",
                         StagePaths(inputs / "data.npz", inputs / "out.csv",
                                    base=inputs / "base.pt"), device="cpu")
    assert sensitivity.read(inputs / "out.csv") == rows and len(rows) == 12


def test_round_to_rounds_the_channels_left_down_to_a_multiple():
    study = prune.prune_filters(tiny(64), 0.1)
    assert study.spec.stage_widths == (57, 115, 230, 460)  # the study's amounts exactly
    rounded = prune.prune_filters(tiny(64), 0.1, round_to=8)
    assert rounded.spec.stage_widths == (56, 112, 224, 456)
    assert all(w % 8 == 0 for block in rounded.spec.block_widths for w in block)
    with pytest.raises(ValueError, match="round_to 8 at structured amount 0.7 would remove every "
                                         r"filter of a layer of 16 channels \(it keeps 4\)"):
        prune.prune_filters(tiny(16), 0.7, round_to=8)


def test_an_amount_that_would_empty_a_layer_is_an_error():
    # width 8: keeping one of 8 channels is 0.875; beyond it torch-pruning would skip the layer
    assert prune.prune_filters(tiny(8), 0.875).spec.stage_widths == (1, 2, 4, 8)
    with pytest.raises(ValueError, match="0.9 would remove every filter of a layer of 8 channels"):
        prune.prune_filters(tiny(8), 0.9)


def test_analyse_skips_amounts_that_would_empty_a_group():
    dd = device_data(train_size=64, test_size=16)
    rows = sensitivity.analyse(tiny(8), dd, [0.5, 0.9], "l1", images=32, progress=lambda _: None)
    # width 8: the stem's stream and layer1's convs have 8 channels, 0.9 of 8 keeps none
    assert {r["group"] for r in rows if r["amount"] == 0.9} == {
        g for g, convs in prune.filter_groups(tiny(8)).items() if not g.startswith(("conv1", "layer1"))}
    assert len(rows) == 12 + 12 - 3
