"""An example factory: a small CNN with a depthwise-separable block and squeeze-excitation.

Use it with `model.arch: nets.example:small_cnn` (and e.g. `model.kwargs: {width: 32}`). A factory
takes `num_classes` (from model.num_classes) and any model.kwargs, and returns an nn.Module that
maps a batch of 3-channel images to class logits.
"""
from torch import nn


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, reduced: int):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, reduced, 1)
        self.fc2 = nn.Conv2d(reduced, channels, 1)

    def forward(self, x):
        scale = self.fc2(nn.functional.relu(self.fc1(self.pool(x))))
        return x * scale.sigmoid()


def _conv_bn(cin: int, cout: int, stride: int = 1, groups: int = 1, kernel: int = 3):
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def small_cnn(num_classes: int = 10, width: int = 32) -> nn.Module:
    w = width
    return nn.Sequential(
        _conv_bn(3, w),
        _conv_bn(w, 2 * w, stride=2),
        _conv_bn(2 * w, 2 * w, groups=2 * w),          # depthwise
        _conv_bn(2 * w, 4 * w, kernel=1),               # pointwise
        SqueezeExcite(4 * w, w),
        _conv_bn(4 * w, 4 * w, stride=2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(4 * w, num_classes),
    )
