"""fit(): the one training loop, used by the baseline and by every fine-tune.

SGD with momentum and weight decay, cosine learning rate stepped per epoch (the study's) or per
iteration, optional linear warm-up, cross-entropy (or a given loss: distillation).
Each epoch ends with a test-accuracy measurement (evaluation.accuracy, the same function and
numerics as every other measurement; logged only, never used to select: the last epoch is kept)
and an atomic resume checkpoint, so a killed run loses at most one epoch and,
on CPU with the same seed, resumes to bit-identical final weights.

On CUDA: channels_last memory format and bf16 autocast for the training steps, for speed only.
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from . import checkpoint
from .batches import DeviceData
from .config import TrainConfig
from .errors import SqueezeError
from .evaluation import accuracy
from .history import write_history


class TrainingDiverged(SqueezeError, RuntimeError):
    """The loss stopped being finite; the message names the epoch and suggests a fix."""


@dataclass
class FitResult:
    history: list[dict] = field(default_factory=list)
    resumed_from_epoch: int = 0
    # whole epochs as a user waits for them: training, evaluation, log and resume checkpoint
    # (history's epoch_seconds is the training steps alone); this process's epochs only
    epoch_wall_seconds: list[float] = field(default_factory=list)

    @property
    def last(self) -> dict:
        return self.history[-1] if self.history else {}

    def summary(self) -> dict:
        """What a stage's metrics file records of its training: epochs, measured seconds (epochs
        before a resume included), median images/s."""
        speeds = sorted(row["images_per_second"] for row in self.history)
        walls = sorted(self.epoch_wall_seconds[1:] or self.epoch_wall_seconds)  # first: warm-up
        return {"epochs": len(self.history),
                "train_seconds": round(sum(row["epoch_seconds"] for row in self.history), 3),
                "images_per_second": speeds[len(speeds) // 2] if speeds else None,
                "epoch_wall_seconds": round(walls[len(walls) // 2], 3) if walls else None}


def fingerprint(cfg: TrainConfig, model: nn.Module, device: torch.device,
                extra: dict | None = None) -> str:
    """Identifies a run: a resume checkpoint is used only by the run that wrote it, on the same
    kind of device with the same torch (RNG states differ in size between devices)."""
    spec = getattr(model, "spec", None)
    blob = json.dumps({"cfg": asdict(cfg), "spec": spec.to_dict() if spec else None,
                       "device": torch.device(device).type, "torch": torch.__version__,
                       "extra": extra or {}}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _schedule(optimizer, cfg: TrainConfig, steps_per_epoch: int):
    """(scheduler, stepped per iteration?). `cosine` is the study's: annealed per epoch, so the
    first epoch runs at the full rate and a 1-epoch fine-tune never anneals. `cosine_iter`
    anneals every iteration; `warmup_epochs` ramps the rate up linearly per iteration first."""
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs), False
    total, warm = cfg.epochs * steps_per_epoch, cfg.warmup_epochs * steps_per_epoch

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        if cfg.schedule == "constant":
            return 1.0
        return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(total - warm, 1)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor), True


def cross_entropy(logits: torch.Tensor, _x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, y)


def _progress(iterable, total: int, desc: str):
    """A progress bar on a terminal; nothing per batch in CI logs (one line per epoch instead)."""
    if sys.stderr.isatty() and not os.environ.get("CI"):
        from tqdm import tqdm
        return tqdm(iterable, total=total, desc=desc, leave=False)
    return iterable


ESTIMATE_AFTER = 30  # batches timed (after WARM_BATCHES) before a run's length is estimated
WARM_BATCHES = 5  # not timed: allocator, cuDNN autotuning, first-touch costs
STUDY_WIDTH = 64


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 120:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"


def estimate_lines(name: str, images_per_second: float, batches: int, epochs_left: int,
                   train_images: int, test_images: int, device_type: str, width: int | None
                   ) -> list[str]:
    """What a run prints once its speed is known: the measured estimate of the whole run, and on
    a CPU at the study's width, the profile that gets a front in about an hour instead."""
    # evaluation: a forward pass, about a third of a training step per image, once per epoch
    per_epoch = (train_images + test_images / 3) / images_per_second
    epochs = f"{epochs_left} epoch{'s' * (epochs_left != 1)}"
    lines = [f"{name}: about {_duration(per_epoch * epochs_left)} for the {epochs} "
             f"left ({images_per_second:.0f} img/s over {batches} batches on {device_type}, "
             "per-epoch evaluation estimated)"]
    if device_type == "cpu" and width is not None and width >= STUDY_WIDTH:
        lines.append(f"{name}: this is the study's full-width model on a CPU; for a front in "
                     "about an hour on a CPU, run: python -m squeeze profile cpu --data "
                     "PATH/TO/cifar10 (see README)")
    return lines


def fit(model: nn.Module, data: DeviceData, cfg: TrainConfig, *, name: str,
        log_path: Path | None = None, resume_path: Path | None = None,
        constraint: Callable[[nn.Module], None] | None = None,
        loss_fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] = cross_entropy,
        fingerprint_extra: dict | None = None) -> FitResult:
    """Train `model` in place for cfg.epochs and return the per-epoch history.

    constraint: called after every optimizer step (unstructured pruning re-applies its masks).
    loss_fn: (logits, inputs, labels) -> loss; cross-entropy unless given (distillation).
    resume_path: per-epoch resume checkpoint; an existing one from the same run is continued,
      one from another run is ignored, and it is deleted when training finishes.
    """
    device = data.device
    with deterministic_algorithms(cfg.deterministic, device):
        return _fit(model, data, cfg, name=name, log_path=log_path, resume_path=resume_path,
                    constraint=constraint, loss_fn=loss_fn, fingerprint_extra=fingerprint_extra)


@contextlib.contextmanager
def deterministic_algorithms(enabled: bool, device: torch.device):
    """train.deterministic: cuDNN's deterministic algorithms, no autotuning, and
    torch.use_deterministic_algorithms (an op without a deterministic kernel then raises instead
    of running nondeterministically); cuBLAS gets the workspace setting it needs. Restored after,
    so one fit does not change the next. CPU kernels here are deterministic either way."""
    if not enabled:
        yield
        return
    saved = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic,
             torch.backends.cudnn.benchmark)
    if torch.device(device).type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(saved[0])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[1], saved[2]


def _fit(model: nn.Module, data: DeviceData, cfg: TrainConfig, *, name: str,
         log_path: Path | None, resume_path: Path | None,
         constraint: Callable[[nn.Module], None] | None,
         loss_fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
         fingerprint_extra: dict | None) -> FitResult:
    device = data.device
    model.to(device)
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    loop = _Loop.start(model, cfg, data)
    result = FitResult()
    run_id = fingerprint(cfg, model, device, fingerprint_extra)
    start_epoch = _try_resume(resume_path, run_id, model, loop.optimizer, loop.scheduler,
                              loop.generator, result)
    if constraint is not None:
        constraint(model)
    eta = _Eta(name, model, data)
    for epoch in range(start_epoch, cfg.epochs):
        lr = loop.optimizer.param_groups[0]["lr"]
        started = time.perf_counter()
        with _epoch_rng(cfg.seed, epoch, device):
            loss, correct, seen = _train_epoch(model, data, cfg, loop, constraint, loss_fn,
                                               f"{name} {epoch + 1}/{cfg.epochs}",
                                               lambda images: eta.batch(images, cfg.epochs - epoch))
        if not math.isfinite(loss):
            raise TrainingDiverged(
                f"{name}: loss became {loss} in epoch {epoch + 1}; lower the learning rate "
                f"(lr is {cfg.lr}), no model was written")
        if not loop.per_step:
            loop.scheduler.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - started
        row = {"epoch": epoch + 1, "train_loss": round(loss, 6),
               "train_accuracy": round(correct / seen, 6),
               "test_accuracy": round(accuracy(model, data), 6), "lr": lr,
               "epoch_seconds": round(seconds, 3), "images_per_second": round(seen / seconds, 1)}
        result.history.append(row)
        _report(name, row, cfg.epochs, log_path, result.history)
        if resume_path is not None and epoch + 1 < cfg.epochs:
            _save_resume(resume_path, run_id, epoch + 1, model, loop.optimizer, loop.scheduler,
                         loop.generator, result)
        result.epoch_wall_seconds.append(round(time.perf_counter() - started, 3))
    if resume_path is not None:
        Path(resume_path).unlink(missing_ok=True)
    model.to(memory_format=torch.contiguous_format)
    return result


@contextlib.contextmanager
def _epoch_rng(seed: int, epoch: int, device: torch.device):
    """torch's global RNG, which layers such as Dropout draw from, seeded from (seed, epoch) for
    one epoch and restored after: a fine-tune in a fresh process (whose global seed is random)
    repeats, and a resumed run draws what the uninterrupted one did. The shuffling and the
    augmentation draw from the fit's own generator, not from this."""
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed * 1_000_003 + epoch)
        yield


@dataclass
class _Loop:
    """What a fit steps: the optimizer, its learning-rate schedule, the shuffling generator."""
    optimizer: torch.optim.Optimizer
    scheduler: object
    per_step: bool  # the schedule steps per iteration (else per epoch)
    generator: torch.Generator

    @classmethod
    def start(cls, model: nn.Module, cfg: TrainConfig, data: DeviceData) -> "_Loop":
        optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                    weight_decay=cfg.weight_decay)
        steps_per_epoch = math.ceil(len(data.y_train) / cfg.batch_size)
        scheduler, per_step = _schedule(optimizer, cfg, steps_per_epoch)
        generator = torch.Generator(device=data.device)
        generator.manual_seed(cfg.seed)
        return cls(optimizer, scheduler, per_step, generator)


def _train_epoch(model: nn.Module, data: DeviceData, cfg: TrainConfig, loop: _Loop,
                 constraint: Callable[[nn.Module], None] | None, loss_fn: Callable,
                 label: str, on_batch: Callable[[int], None]) -> tuple[float, int, int]:
    """One pass over the shuffled training set; (mean loss, correct, images seen)."""
    device = data.device
    model.train()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    seen = 0
    batches = data.train_batches(cfg.batch_size, loop.generator)
    steps = math.ceil(len(data.y_train) / cfg.batch_size)
    for x, y in _progress(batches, steps, label):
        if device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            logits = model(x)
            loss = loss_fn(logits, x, y)
        loop.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        loop.optimizer.step()
        if loop.per_step:
            loop.scheduler.step()
        if constraint is not None:
            constraint(model)
        loss_sum += loss.detach().float() * len(y)
        correct += (logits.argmax(1) == y).sum()
        seen += len(y)
        on_batch(len(y))
    return float(loss_sum) / seen, int(correct), seen


def _report(name: str, row: dict, epochs: int, log_path: Path | None, history: list[dict]) -> None:
    print(f"{name} epoch {row['epoch']}/{epochs} loss {row['train_loss']:.4f} "
          f"train {row['train_accuracy']:.4f} test {row['test_accuracy']:.4f} lr {row['lr']:.5f} "
          f"{row['epoch_seconds']:.1f}s {row['images_per_second']:.0f} img/s", flush=True)
    if log_path is not None:
        write_history(log_path, history)


class _Eta:
    """The one estimate of a fit's length: WARM_BATCHES untimed, then ESTIMATE_AFTER timed
    batches, then the estimate (and, on a CPU at the study's width, the profile hint) printed."""

    def __init__(self, name: str, model: nn.Module, data: DeviceData):
        self.name, self.model, self.data = name, model, data
        self.batches, self.images, self.start = 0, 0, 0.0

    def batch(self, images: int, epochs_left: int) -> None:
        if self.batches >= WARM_BATCHES + ESTIMATE_AFTER:
            return
        self.batches += 1
        if self.batches < WARM_BATCHES:
            return
        if self.data.device.type == "cuda":
            torch.cuda.synchronize()
        if self.batches == WARM_BATCHES:
            self.start = time.perf_counter()
            return
        self.images += images
        if self.batches == WARM_BATCHES + ESTIMATE_AFTER:
            rate = self.images / (time.perf_counter() - self.start)
            widths = getattr(getattr(self.model, "spec", None), "stage_widths", None)
            width = widths[0] if widths else None  # the study's ResNet's (its estimates' table)
            for line in estimate_lines(self.name, rate, ESTIMATE_AFTER, epochs_left,
                                       len(self.data.y_train), len(self.data.y_test),
                                       self.data.device.type, width):
                print(line, flush=True)


def _save_resume(path, run_id, epoch, model, optimizer, scheduler, generator, result) -> None:
    checkpoint.save(path, {
        "kind": "resume", "run_id": run_id, "epoch": epoch,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
        "generator": generator.get_state().cpu(), "history": result.history,
    })


def _try_resume(path, run_id, model, optimizer, scheduler, generator, result) -> int:
    if path is None or not Path(path).exists():
        return 0
    try:
        state = checkpoint.load(path, kind="resume")
    except checkpoint.CheckpointError as err:
        print(f"ignoring resume checkpoint: {err}", flush=True)
        return 0
    if state.get("run_id") != run_id:
        print(f"ignoring resume checkpoint {path}: written by a run with other settings, another "
              "device or another torch", flush=True)
        return 0
    saved = ({k: v.clone() for k, v in model.state_dict().items()},
             copy.deepcopy(optimizer.state_dict()), scheduler.state_dict(), generator.get_state())
    try:
        model.load_state_dict(state["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        generator.set_state(state["generator"])
    except (RuntimeError, ValueError, KeyError, TypeError) as err:  # a file that does not fit
        model.load_state_dict(saved[0])
        optimizer.load_state_dict(saved[1])
        scheduler.load_state_dict(saved[2])
        generator.set_state(saved[3])
        reason = str(err).splitlines()[0][:120] if str(err) else type(err).__name__
        print(f"ignoring resume checkpoint {path}: it does not fit this run ({reason})", flush=True)
        return 0
    result.history = list(state["history"])
    result.resumed_from_epoch = int(state["epoch"])
    print(f"resuming from epoch {state['epoch']} ({path})", flush=True)
    return int(state["epoch"])
