"""ResNet-18, CIFAR variant (He et al. 2016; the kuangliu/pytorch-cifar layout).

3x3 stem, no max-pool, BasicBlocks [2, 2, 2, 2]. Every conv width comes from a small spec, so a
network whose filters were physically pruned is rebuilt from its spec and a state dict, with no
pickled modules. At width 64 it has exactly 11,173,962 parameters.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
import torch.nn.functional as F

BLOCKS_PER_STAGE = (2, 2, 2, 2)


@dataclass(frozen=True)
class ResNetSpec:
    """Widths of a (possibly pruned) ResNet-18.

    stage_widths[i]: output channels of stage i. Channels joined by a residual add share one
      width, so the stem's width is stage_widths[0] (stage 1 has identity shortcuts).
    block_widths[i][j]: the inner width (conv1 output) of block j of stage i.
    """
    stage_widths: tuple[int, ...]
    block_widths: tuple[tuple[int, ...], ...]
    num_classes: int = 10

    @classmethod
    def resnet18(cls, width: int = 64, num_classes: int = 10) -> "ResNetSpec":
        stages = tuple(width * m for m in (1, 2, 4, 8))
        return cls(stages, tuple((w,) * n for w, n in zip(stages, BLOCKS_PER_STAGE)), num_classes)

    def to_dict(self) -> dict:
        return {"stage_widths": list(self.stage_widths),
                "block_widths": [list(b) for b in self.block_widths],
                "num_classes": self.num_classes}

    @classmethod
    def from_dict(cls, d: dict) -> "ResNetSpec":
        try:
            spec = cls(tuple(int(w) for w in d["stage_widths"]),
                       tuple(tuple(int(w) for w in b) for b in d["block_widths"]),
                       int(d["num_classes"]))
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"not a ResNet-18 architecture spec ({err!r})") from None
        if (len(spec.stage_widths) != 4 or tuple(map(len, spec.block_widths)) != BLOCKS_PER_STAGE
                or min(spec.stage_widths + sum(spec.block_widths, ())) < 1):
            raise ValueError(f"not a ResNet-18 architecture spec: {d}")
        return spec


class BasicBlock(nn.Module):
    def __init__(self, in_ch: int, mid_ch: int, out_ch: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, mid_ch, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid_ch)
        self.conv2 = nn.Conv2d(mid_ch, out_ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False),
                                          nn.BatchNorm2d(out_ch))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    def __init__(self, spec: ResNetSpec):
        super().__init__()
        self.spec = spec
        stem = spec.stage_widths[0]
        self.conv1 = nn.Conv2d(3, stem, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        in_ch, stages = stem, []
        for i, (out_ch, mids) in enumerate(zip(spec.stage_widths, spec.block_widths)):
            blocks = []
            for j, mid in enumerate(mids):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(BasicBlock(in_ch, mid, out_ch, stride))
                in_ch = out_ch
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.linear = nn.Linear(in_ch, spec.num_classes)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


def build(spec: ResNetSpec) -> ResNet18:
    return ResNet18(spec)


def spec_of(model: nn.Module) -> ResNetSpec:
    """Read the widths back off a model's layers (e.g. after torch-pruning removed filters)."""
    stages = [model.layer1, model.layer2, model.layer3, model.layer4]
    return ResNetSpec(
        stage_widths=tuple(stage[-1].conv2.out_channels for stage in stages),
        block_widths=tuple(tuple(block.conv1.out_channels for block in stage) for stage in stages),
        num_classes=model.linear.out_features,
    )


def from_state(spec: ResNetSpec, state_dict: dict) -> ResNet18:
    """Rebuild a model from its spec and weights; a mismatch is a ValueError naming the key."""
    model = build(spec)
    expected = model.state_dict()
    for key, value in state_dict.items():
        if key not in expected:
            raise ValueError(f"weights have key {key!r} that the architecture spec does not")
        if tuple(value.shape) != tuple(expected[key].shape):
            raise ValueError(f"weights {key!r} have shape {tuple(value.shape)} but the architecture "
                             f"spec gives {tuple(expected[key].shape)}")
    missing = sorted(set(expected) - set(state_dict))
    if missing:
        raise ValueError(f"weights lack {missing[0]!r} that the architecture spec needs")
    model.load_state_dict(state_dict)
    return model
