"""What helps a pruned network recover, each off by default (the study's method):

- BatchNorm recalibration: pruning removes or zeroes what a BN layer's running statistics were
  measured on, so right after pruning they are wrong. Re-estimate them on training batches
  (no gradients, weights untouched) before measuring and fine-tuning.
- Knowledge distillation: the fine-tune also matches the softened outputs of the model the stage
  pruned from (Hinton et al. 2015): alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE.
"""
from __future__ import annotations

import copy
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .batches import DeviceData


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, data: DeviceData, batches: int, batch_size: int,
                          seed: int = 0) -> nn.Module:
    """Reset every BN layer's running mean/var and re-estimate them as a plain average over
    `batches` augmented training batches. Weights do not change; the model ends in eval mode."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches seen, not an exponential one
    model.train()
    generator = torch.Generator(device=data.device)
    generator.manual_seed(seed)
    for i, (x, _) in enumerate(data.train_batches(batch_size, generator)):
        if i == batches:
            break
        if data.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        model(x)
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    return model.eval()


def distillation_loss(teacher: nn.Module, alpha: float, temperature: float
                      ) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    """A loss for train.fit: (student logits, inputs, labels) -> the distillation objective.
    The teacher is a frozen copy, run in eval mode on the same (augmented) inputs."""
    teacher = copy.deepcopy(teacher).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)

    def loss(logits: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target = teacher(x).float()
        soft = F.kl_div(F.log_softmax(logits.float() / temperature, dim=1),
                        F.log_softmax(target / temperature, dim=1), log_target=True,
                        reduction="batchmean")
        return alpha * temperature ** 2 * soft + (1 - alpha) * F.cross_entropy(logits, y)

    return loss
