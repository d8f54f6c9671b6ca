"""Step train: a fresh ResNet-18 trained with the study's recipe; the last epoch is kept."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch

from .. import checkpoint, models, train
from ..config import ConfigError, ModelConfig, TrainConfig
from ..fsutil import write_json
from ..paths import StagePaths
from .common import file_sha256, load_data, measured, on, to_cpu


def run(model_cfg: ModelConfig, train_cfg: TrainConfig, paths: StagePaths,
        device: str | None = None) -> dict:
    data = load_data(paths.data, device)
    check_classes(data.classes, model_cfg.num_classes, paths.data)
    torch.manual_seed(train_cfg.seed)
    model = models.build(models.spec_for(model_cfg.arch, model_cfg.width, model_cfg.num_classes,
                                         model_cfg.kwargs, data.preprocess["image_size"]))
    result = train.fit(model, data, train_cfg, name="baseline", log_path=paths.log,
                       resume_path=paths.resume,
                       fingerprint_extra={"data": file_sha256(paths.data)})
    metrics = {"accuracy": measured(model, data), **result.summary(), **on(data)}
    checkpoint.save_model(paths.out, to_cpu(model),
                          {"model": model_cfg.recorded(), "train": asdict(train_cfg)},
                          epoch=train_cfg.epochs, preprocess=data.preprocess)
    write_json(paths.metrics, metrics)
    return metrics


def check_classes(classes, num_classes: int, data_path: Path) -> None:
    """The first stage that reads both the data and `model` checks that they agree: an 11th
    class folder in an archive would otherwise end the first batch in an IndexError. The count
    is checked, not followed: model.num_classes is what the params say the model is."""
    if len(classes) != num_classes:
        names = ", ".join(list(classes)[:12]) + (", ..." if len(classes) > 12 else "")
        raise ConfigError(f"{data_path}: the data has {len(classes)} classes ({names}) but "
                          f"model.num_classes is {num_classes}; set model.num_classes: "
                          f"{len(classes)} in params.yaml or fix the data")
