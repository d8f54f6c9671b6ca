"""recovery: BatchNorm recalibration and distillation, and the pruning steps' opt-in levers
(recalibration, distillation, rounds) through the real step functions on tiny synthetic data."""
from __future__ import annotations

import copy
import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from squeeze import batches, checkpoint, data, models, prune, recovery
from squeeze.paths import StagePaths
from squeeze.config import FinetuneConfig, StructuredConfig
from squeeze.models import ResNetSpec
from squeeze.prepared import save as save_dataset
from squeeze.steps import structured
from squeeze.steps.finetune import round_epochs


def device_data(train_size: int = 256, test_size: int = 64) -> batches.DeviceData:
    ds = data.synthetic(train_size, test_size, seed=0)
    mean, std = ds.mean_std()
    return batches.DeviceData(ds, mean, std, "cpu")


def test_recalibration_sets_running_stats_to_the_batch_average():
    dd = device_data()
    bn = nn.BatchNorm2d(3)
    bn.running_mean.fill_(5.0)
    model = nn.Sequential(bn)
    recovery.recalibrate_batchnorm(model, dd, batches=2, batch_size=32, seed=3)
    generator = torch.Generator().manual_seed(3)
    first_two = [x for _, (x, _) in zip(range(2), dd.train_batches(32, generator))]
    expected = torch.stack([x.mean(dim=(0, 2, 3)) for x in first_two]).mean(0)
    assert torch.allclose(bn.running_mean, expected, atol=1e-6)
    assert bn.momentum == 0.1 and not model.training


def test_recalibration_leaves_weights_alone():
    torch.manual_seed(0)
    model = models.build(ResNetSpec.resnet18(4))
    before = {k: v.clone() for k, v in model.named_parameters()}
    recovery.recalibrate_batchnorm(model, device_data(), batches=1, batch_size=32)
    assert all(torch.equal(v, dict(model.named_parameters())[k]) for k, v in before.items())


def test_distillation_loss_ends():
    torch.manual_seed(0)
    teacher = nn.Linear(4, 3)
    x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
    logits = torch.randn(8, 3)
    plain = recovery.distillation_loss(teacher, alpha=0.0, temperature=4.0)
    assert torch.allclose(plain(logits, x, y), F.cross_entropy(logits, y))
    only_teacher = recovery.distillation_loss(teacher, alpha=1.0, temperature=2.0)
    assert float(only_teacher(teacher(x).detach(), x, y)) == pytest.approx(0.0, abs=1e-6)
    kl = F.kl_div(F.log_softmax(logits / 2, 1), F.softmax(teacher(x).detach() / 2, 1),
                  reduction="batchmean")
    assert float(only_teacher(logits, x, y)) == pytest.approx(4 * float(kl), rel=1e-5)


def test_round_epochs():
    assert round_epochs(3, 1) == [3]
    assert round_epochs(3, 3) == [1, 1, 1]
    assert round_epochs(30, 4) == [7, 7, 8, 8]


def finetune(**overrides) -> FinetuneConfig:
    values = dict(epochs=2, batch_size=64, lr=0.02, momentum=0.9, weight_decay=5e-4,
                  schedule="cosine", seed=0)
    values.update(overrides)
    return FinetuneConfig(**values)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("recovery")
    save_dataset(data.synthetic(256, 64, seed=0), root / "data.npz")
    torch.manual_seed(0)
    checkpoint.save_model(root / "base.pt", models.build(ResNetSpec.resnet18(8)), {}, epoch=1)
    return root


def run_structured(root, name, prune_cfg, finetune_cfg, amount=0.5, sensitivity=None):
    return structured.run(amount, prune_cfg, finetune_cfg, StagePaths(
        root / "data.npz", root / f"{name}.pt", root / f"{name}.json", root / f"{name}.csv",
        root / f"{name}-resume.pt", base=root / "base.pt",
        sensitivity=sensitivity or root / "absent.csv"), device="cpu")


def test_structured_step_with_every_lever(inputs):
    cfg = finetune(schedule="cosine_iter", recalibrate_batches=2, distill_alpha=0.5)
    one_shot = run_structured(inputs, "one", StructuredConfig("layerwise", "l1"), cfg)
    assert one_shot["accuracy_recalibrated"] is not None
    assert one_shot["epochs"] == 2
    two = run_structured(inputs, "two", StructuredConfig("layerwise", "l1", rounds=2), cfg)
    # two rounds reach the same widths as one shot (0.25 then a third of what is left)
    assert two["params"] == one_shot["params"]
    assert two["epochs"] == 2
    # whole-epoch seconds reach the metrics through every round's fit
    assert one_shot["epoch_wall_seconds"] > 0 and two["epoch_wall_seconds"] > 0
    log = (inputs / "two.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in log[1:]] == ["1", "2"]
    saved = json.loads((inputs / "two.json").read_text())
    assert saved == two and checkpoint.load_model(inputs / "two.pt")[0].spec == \
        checkpoint.load_model(inputs / "one.pt")[0].spec


def test_block_internal_keeps_residual_widths(inputs):
    cfg = finetune(epochs=1)
    result = run_structured(inputs, "inner", StructuredConfig("layerwise", "l2", "block-internal"),
                            cfg)
    model, payload = checkpoint.load_model(inputs / "inner.pt")
    assert model.spec.stage_widths == (8, 16, 32, 64)
    assert model.spec.block_widths == ((4, 4), (8, 8), (16, 16), (32, 32))
    assert payload["config"]["prune"] == {"scope": "layerwise", "criterion": "l2",
                                          "layers": "block-internal", "rounds": 1,
                                          "target": "channels", "spare_drop": 0.0, "round_to": 1,
                                          "max_layer_amount": 0.9, "residual_scale": 1.0}
    assert result["accuracy_recalibrated"] is None
