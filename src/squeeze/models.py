"""The networks: the study's ResNet-18 (CIFAR variant), any torchvision classifier, a user's factory.

`model.arch` names one of three kinds:
- `resnet18_cifar` (the study's; He et al. 2016, the kuangliu/pytorch-cifar layout): 3x3 stem, no
  max-pool, BasicBlocks [2, 2, 2, 2]. Every conv width comes from a small spec (ResNetSpec), so a
  network whose filters were physically pruned is rebuilt from its spec and a state dict. At
  width 64 it has exactly 11,173,962 parameters.
- `torchvision:<name>`: a torchvision classification model, untrained (`weights=None`), built
  with `num_classes` and `model.kwargs` (e.g. `width_mult` of mobilenet_v2).
- `<package.module>:<function>`: a factory called as `function(num_classes=..., **kwargs)` that
  returns an nn.Module. A module of this project must live in its `nets/` package, which every
  stage that builds a model declares as a dep (so editing it reruns them: the DVC contract).

Either of the last two is an ArchSpec: the recipe, not the widths. A pruned one is rebuilt by
building the recipe and giving every conv, linear and norm layer the shapes its state dict holds
(`reshaped`): no pickled modules, whatever torch-pruning removed.
"""
from __future__ import annotations

import importlib
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
import torch.nn.functional as F

from . import config
from .config import IMAGE_SIZE
from .errors import SqueezeError

BLOCKS_PER_STAGE = (2, 2, 2, 2)
DEFAULT_ARCH = config.ARCH_DEFAULT
FACTORY = re.compile(config.FACTORY)
TORCHVISION = "torchvision:"
NETS = "nets"  # the project's package of model factories: a dep of every stage that builds a model


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


class ArchError(SqueezeError, ValueError):
    """A model.arch that cannot be built; the message is one line for the user."""


@dataclass(frozen=True)
class ArchSpec:
    """How to build a network other than the study's: its arch, constructor kwargs and classes.
    Pruned widths are not here: they are the shapes of its state dict (see `reshaped`)."""
    arch: str
    kwargs: dict = field(default_factory=dict)
    num_classes: int = 10
    image_size: int = IMAGE_SIZE  # its input: image_size x image_size RGB (data.image_size)

    def to_dict(self) -> dict:
        return {"arch": self.arch, "kwargs": dict(self.kwargs), "num_classes": self.num_classes,
                "image_size": self.image_size}

    @classmethod
    def from_dict(cls, d: dict) -> "ArchSpec":
        if not isinstance(d.get("kwargs", {}), dict):
            raise ValueError(f"not an architecture spec: {d}")
        return cls(str(d["arch"]), dict(d.get("kwargs", {})), int(d["num_classes"]),
                   int(d.get("image_size", IMAGE_SIZE)))

    def __hash__(self) -> int:
        return hash((self.arch, tuple(sorted(self.kwargs.items())), self.num_classes,
                     self.image_size))


def spec_for(arch: str, width: int, num_classes: int, kwargs: dict | None = None,
             image_size: int = IMAGE_SIZE):
    """The spec of a fresh model of `model.*` settings: the study's ResNetSpec, else an ArchSpec
    (`width` is the study's ResNet width and applies to it alone; the study's ResNet takes
    32 x 32 images alone)."""
    if arch == DEFAULT_ARCH:
        if image_size != IMAGE_SIZE:
            raise ArchError(f"data.image_size {image_size}: {DEFAULT_ARCH} takes {IMAGE_SIZE}x"
                            f"{IMAGE_SIZE} images (its head pools a 4x4 map)")
        return ResNetSpec.resnet18(width, num_classes)
    return ArchSpec(arch, dict(kwargs or {}), num_classes, image_size)


def input_size(model: nn.Module) -> int:
    """The side of the square images `model` takes: its ArchSpec's image_size, else 32."""
    return getattr(getattr(model, "spec", None), "image_size", IMAGE_SIZE)


def example_input(model: nn.Module, batch: int = 1) -> torch.Tensor:
    """Zeros of the model's input shape, on the model's device (for tracing and counting)."""
    size = input_size(model)
    device = next(model.parameters()).device
    return torch.zeros(batch, 3, size, size, device=device)


def spec_from_dict(d: dict):
    """A checkpoint's spec: an ArchSpec where it names an arch, else the study's ResNetSpec."""
    if isinstance(d, dict) and "arch" in d:
        try:
            return ArchSpec.from_dict(d)
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"not an architecture spec ({err!r})") from None
    return ResNetSpec.from_dict(d)


def factory(arch: str):
    """The callable that builds `arch` (torchvision:<name> or package.module:function); an
    ArchError naming it and what is allowed when there is none."""
    if arch.startswith(TORCHVISION):
        import torchvision

        name = arch[len(TORCHVISION):]
        known = torchvision.models.list_models(module=torchvision.models)
        if name not in known:
            near = [k for k in known if k.split("_")[0] == name.split("_")[0]][:6]
            raise ArchError(f"model.arch {arch!r}: torchvision has no classification model "
                            f"{name!r}; e.g. {', '.join(near or ['mobilenet_v2', 'resnet50', 'vgg11_bn'])}"
                            " (torchvision.models.list_models() lists all)")
        return lambda **kwargs: torchvision.models.get_model(name, weights=None, **kwargs)
    if not FACTORY.fullmatch(arch):
        raise ArchError(f"model.arch {arch!r} is not allowed; expected {DEFAULT_ARCH}, "
                        "torchvision:<name> or <package.module>:<function>")
    module_name, function = arch.split(":")
    root = str(Path.cwd())
    if root not in sys.path:
        sys.path.append(root)  # a project package (nets/) imports from the repository root
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ArchError(f"model.arch {arch!r}: cannot import {module_name!r} ({err})") from None
    source = Path(getattr(module, "__file__", "") or "").resolve()
    if (source.is_relative_to(Path.cwd().resolve())
            and not source.is_relative_to((Path.cwd() / NETS).resolve())):
        raise ArchError(f"model.arch {arch!r}: {source.relative_to(Path.cwd().resolve())} is "
                        f"project code outside {NETS}/, which the stages do not declare as a "
                        f"dep; move it into {NETS}/ (e.g. {NETS}.{module_name.split('.')[-1]}:"
                        f"{function})")
    built = getattr(module, function, None)
    if not callable(built):
        raise ArchError(f"model.arch {arch!r}: {module_name} has no function {function!r}")
    return built


def build(spec) -> nn.Module:
    if isinstance(spec, ResNetSpec):
        return ResNet18(spec)
    try:
        model = factory(spec.arch)(num_classes=spec.num_classes, **spec.kwargs)
    except ArchError:
        raise
    except (TypeError, ValueError) as err:
        raise ArchError(f"model.arch {spec.arch!r} with model.kwargs {spec.kwargs} and "
                        f"num_classes {spec.num_classes}: {str(err).splitlines()[0]}") from None
    if not isinstance(model, nn.Module):
        raise ArchError(f"model.arch {spec.arch!r} returned {type(model).__name__}, not an "
                        "nn.Module")
    model.spec = spec
    return model


def classifier(model: nn.Module) -> nn.Module:
    """The layer whose outputs are the classes (never pruned): the study's `linear`, else the
    last nn.Linear (or last conv) of the model."""
    if isinstance(model, ResNet18):
        return model.linear
    layers = [m for m in model.modules() if isinstance(m, nn.Linear)]
    layers = layers or [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not layers:
        raise ArchError(f"{type(model).__name__} has no linear or conv layer to classify with")
    return layers[-1]


def spec_of(model: nn.Module):
    """Read the widths back off a model's layers (e.g. after torch-pruning removed filters); an
    ArchSpec model keeps its spec (its widths are its state dict's shapes)."""
    if not isinstance(model, ResNet18):
        return model.spec
    stages = [model.layer1, model.layer2, model.layer3, model.layer4]
    return ResNetSpec(
        stage_widths=tuple(stage[-1].conv2.out_channels for stage in stages),
        block_widths=tuple(tuple(block.conv1.out_channels for block in stage) for stage in stages),
        num_classes=model.linear.out_features,
    )


def _weight(state: dict, name: str) -> torch.Tensor | None:
    """A layer's weight in a state dict, plain or under a parametrization (lowbit.py's)."""
    prefix = f"{name}." if name else ""
    return state.get(f"{prefix}weight", state.get(f"{prefix}parametrizations.weight.original"))


@torch.no_grad()
def reshaped(model: nn.Module, state_dict: dict) -> nn.Module:
    """`model` (as built from its recipe) with every conv, linear and norm layer given the shapes
    `state_dict` holds (what torch-pruning left), in place; the values are still to be loaded.
    A depthwise conv stays depthwise (its groups follow its channels)."""
    def empty(like: torch.Tensor, shape) -> nn.Parameter | torch.Tensor:
        fresh = torch.empty(tuple(shape), dtype=like.dtype)
        return nn.Parameter(fresh, like.requires_grad) if isinstance(like, nn.Parameter) else fresh

    for name, m in model.named_modules():
        w = _weight(state_dict, name)
        if w is None:
            continue
        if isinstance(m, nn.Conv2d) and tuple(w.shape) != tuple(m.weight.shape):
            depthwise = m.groups > 1 and m.groups == m.in_channels == m.out_channels
            m.out_channels = int(w.shape[0])
            m.groups = m.out_channels if depthwise else m.groups
            m.in_channels = int(w.shape[1]) * m.groups
            m.weight = empty(m.weight, w.shape)
            if m.bias is not None:
                m.bias = empty(m.bias, w.shape[:1])
        elif isinstance(m, nn.Linear) and tuple(w.shape) != tuple(m.weight.shape):
            m.out_features, m.in_features = int(w.shape[0]), int(w.shape[1])
            m.weight = empty(m.weight, w.shape)
            if m.bias is not None:
                m.bias = empty(m.bias, w.shape[:1])
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d, nn.GroupNorm, nn.LayerNorm)) \
                and m.weight is not None and tuple(w.shape) != tuple(m.weight.shape):
            n = int(w.shape[0])
            m.weight, m.bias = empty(m.weight, w.shape), empty(m.bias, w.shape)
            if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
                m.num_features = n
                m.running_mean = torch.zeros(n)
                m.running_var = torch.ones(n)
            elif isinstance(m, nn.GroupNorm):
                m.num_channels = n
            else:
                m.normalized_shape = tuple(w.shape)
    return model


def from_state(spec, state_dict: dict) -> nn.Module:
    """Rebuild a model from its spec and weights; a mismatch is a ValueError naming the key."""
    model = build(spec)
    if isinstance(spec, ArchSpec):
        reshaped(model, state_dict)
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


def check_arch(arch: str, kwargs: dict | None = None, num_classes: int = 10,
               image_size: int = IMAGE_SIZE) -> None:
    """Build `arch` once on the CPU and run one image through it (seconds): an unknown name, a bad
    kwarg, a factory that returns something else or a network that cannot take the image size
    fails here in one line, before any data is read or trained."""
    if arch == DEFAULT_ARCH:
        return
    model = build(spec_for(arch, 64, num_classes, kwargs, image_size)).eval()
    try:
        with torch.no_grad():
            out = model(example_input(model))
    except (RuntimeError, ValueError, TypeError) as err:
        raise ArchError(f"model.arch {arch!r} cannot take a {image_size}x{image_size} image "
                        f"(data.image_size): {str(err).splitlines()[0][:200]}") from None
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (1, num_classes):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ArchError(f"model.arch {arch!r} gives {shape} for one image; expected (1, "
                        f"{num_classes}) logits (model.num_classes)")
