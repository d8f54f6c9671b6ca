"""One function per pipeline step; the thin scripts in stages/ parse paths and params and call these.

Each step takes typed configs, validates its inputs before any expensive work, and writes every
output atomically, so a failed step leaves nothing for DVC to cache.
"""
from __future__ import annotations

import copy
import hashlib
import os
from dataclasses import asdict
from pathlib import Path

import torch

from . import checkpoint, measure, models, prune, quantize, train
from .config import (DataConfig, EvaluateConfig, Int8Config, ModelConfig, StructuredConfig,
                     TrainConfig, UnstructuredConfig)
from .data import DeviceData, prepare
from .fsutil import write_json
from .history import write_history
from .names import model_name


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def run_prepare(cfg: DataConfig, out: Path, summary: Path) -> dict:
    result = prepare(cfg, out)
    write_json(summary, result)
    return result


def run_train(model_cfg: ModelConfig, train_cfg: TrainConfig, data_path: Path, out: Path,
              log_path: Path, resume_path: Path, device: str | None = None) -> dict:
    """Baseline: a fresh ResNet-18 trained with the study's recipe; the last epoch is kept."""
    data = DeviceData.from_file(data_path, train.pick_device(device))
    torch.manual_seed(train_cfg.seed)
    model = models.build(models.ResNetSpec.resnet18(model_cfg.width, model_cfg.num_classes))
    result = train.fit(model, data, train_cfg, name="baseline", log_path=log_path,
                       resume_path=resume_path,
                       fingerprint_extra={"data": file_sha256(data_path)})
    metrics = {"accuracy": result.last["test_accuracy"], "epochs": train_cfg.epochs}
    checkpoint.save_model(out, model.cpu(), {"model": asdict(model_cfg), "train": asdict(train_cfg)},
                          epoch=train_cfg.epochs, metrics=metrics)
    return metrics


def _finetune(model, data, cfg: TrainConfig, name, base: Path, log_path, resume_path,
              constraint=None, extra=None) -> float:
    result = train.fit(model, data, cfg, name=name, log_path=log_path, resume_path=resume_path,
                       constraint=constraint,
                       fingerprint_extra={"base": file_sha256(base), **(extra or {})})
    return result.last["test_accuracy"]


def run_prune_structured(amount: float, prune_cfg: StructuredConfig, finetune_cfg: TrainConfig,
                         base: Path, data_path: Path, out: Path, log_path: Path,
                         resume_path: Path, device: str | None = None) -> dict:
    """L1 filter pruning of the baseline at `amount`, then fine-tune. Amount 0: same weights."""
    model, payload = checkpoint.load_model(base)
    if amount == 0:
        write_history(log_path, [])
        metrics = {"structured": amount, "accuracy": payload["metrics"]["accuracy"]}
        checkpoint.save_model(out, model, {"structured": amount}, payload["epoch"], metrics)
        return metrics
    data = DeviceData.from_file(data_path, train.pick_device(device))
    params_before = measure.count_params(model)
    prune.prune_filters(model.to(data.device), amount, prune_cfg.scope, prune_cfg.criterion,
                        seed=finetune_cfg.seed)
    before = train.evaluate(model, data)
    print(f"structured {amount}: {params_before} -> {measure.count_params(model)} params, "
          f"accuracy before fine-tune {before:.4f}", flush=True)
    after = _finetune(model, data, finetune_cfg, model_name(amount), base, log_path, resume_path,
                      extra={"amount": amount, "prune": asdict(prune_cfg)})
    metrics = {"structured": amount, "accuracy_before_finetune": before, "accuracy": after}
    config = {"structured": amount, "prune": asdict(prune_cfg), "finetune": asdict(finetune_cfg)}
    checkpoint.save_model(out, model.cpu(), config, finetune_cfg.epochs, metrics)
    return metrics


def run_prune_unstructured(structured: float, amount: float, prune_cfg: UnstructuredConfig,
                           finetune_cfg: TrainConfig, base: Path, data_path: Path, out: Path,
                           log_path: Path, resume_path: Path, device: str | None = None) -> dict:
    """Magnitude pruning of a structured model at `amount`, masks kept through the fine-tune."""
    model, payload = checkpoint.load_model(base)
    carried = {f"structured_{k}": v for k, v in payload["metrics"].items()
               if k in ("accuracy_before_finetune", "accuracy")}
    if amount == 0:
        write_history(log_path, [])
        metrics = {"structured": structured, "unstructured": amount,
                   "accuracy": payload["metrics"]["accuracy"], **carried}
        checkpoint.save_model(out, model, {"structured": structured, "unstructured": amount},
                              payload["epoch"], metrics)
        return metrics
    data = DeviceData.from_file(data_path, train.pick_device(device))
    model.to(data.device)
    masks = prune.magnitude_masks(model, amount, prune_cfg.scope)
    prune.apply_masks(model, masks)
    before = train.evaluate(model, data)
    print(f"unstructured {amount} on s{structured}: sparsity {prune.sparsity(model):.4f}, "
          f"accuracy before fine-tune {before:.4f}", flush=True)
    after = _finetune(model, data, finetune_cfg, model_name(structured, amount), base, log_path,
                      resume_path, constraint=lambda m: prune.apply_masks(m, masks),
                      extra={"amount": amount, "prune": asdict(prune_cfg)})
    metrics = {"structured": structured, "unstructured": amount,
               "accuracy_before_finetune": before, "accuracy": after,
               "sparsity": prune.sparsity(model), **carried}
    config = {"structured": structured, "unstructured": amount, "prune": asdict(prune_cfg),
              "finetune": asdict(finetune_cfg)}
    checkpoint.save_model(out, model.cpu(), config, finetune_cfg.epochs, metrics)
    return metrics


def run_quantize_evaluate(structured: float, unstructured: float, quant: str,
                          int8_cfg: Int8Config, eval_cfg: EvaluateConfig, base: Path,
                          data_path: Path, out_model: Path, out_metrics: Path,
                          device: str | None = None) -> dict:
    """Quantize one model post-training and measure it: accuracy, counts, scores, latency, size."""
    if quant == "int8":
        quantize.int8_engine()  # fail in a line, before any work, where there is no int8 backend
    float_model, payload = checkpoint.load_model(base)
    float_model.eval()
    spec = float_model.spec
    counts = {"params": measure.count_params(float_model),
              "nonzero_params": measure.count_nonzero(float_model),
              "ops": measure.count_ops(float_model)}
    sparsity = prune.sparsity(float_model)
    # accuracy runs where it is real: int8 on its CPU kernels, the others on the fastest device
    accuracy_device = torch.device("cpu") if quant == "int8" else train.pick_device(device)
    data = DeviceData.from_file(data_path, accuracy_device)
    calibration = (data.calibration_batches(int8_cfg.calibration_batch_size,
                                            int8_cfg.calibration_batches, seed=0)
                   if quant == "int8" else None)
    qmodel = quantize.quantize(copy.deepcopy(float_model), quant, calibration,
                               int8_cfg.activation_observer)
    accuracy = _accuracy(qmodel, data, quant, eval_cfg.batch_size)
    quantize.save_quantized(out_model, qmodel.cpu(), spec, quant,
                            {"structured": structured, "unstructured": unstructured}, {})
    latency = {f"latency_ms_b{b}": round(measure.latency_ms(
        qmodel.cpu(), b, eval_cfg.latency_threads, eval_cfg.latency_warmup,
        eval_cfg.latency_repeats), 4) for b in (1, 32)}
    q_w, q_a = measure.bits(quant)
    source = payload["metrics"]
    metrics = {
        "model": model_name(structured, unstructured, quant),
        "structured": structured, "unstructured": unstructured, "quant": quant,
        "accuracy": round(accuracy, 6),
        "accuracy_float": source.get("accuracy"),
        "accuracy_before_finetune": source.get("accuracy_before_finetune",
                                               source.get("structured_accuracy_before_finetune")),
        "structured_accuracy_before_finetune": source.get("structured_accuracy_before_finetune"),
        **counts, "sparsity": round(sparsity, 6), "q_w": q_w, "q_a": q_a,
        "score": round(measure.score(counts["nonzero_params"], counts["ops"], quant), 6),
        "score_seed": round(measure.score_seed(structured, unstructured, quant), 6),
        **latency, "latency_threads": eval_cfg.latency_threads, "cpu": measure.cpu_name(),
        "size_bytes": os.path.getsize(out_model), "spec": spec.to_dict(),
    }
    write_json(out_metrics, metrics)
    return metrics


def _accuracy(model, data: DeviceData, quant: str, batch_size: int) -> float:
    model.to(data.device).eval()
    if quant == "fp16" and data.device.type == "cuda":
        # on CUDA fp16 runs for real: half weights, half activations
        half = copy.deepcopy(model).half().to(memory_format=torch.channels_last)
        return measure.accuracy(half, data.test_batches(batch_size), dtype=torch.float16)
    return measure.accuracy(model, data.test_batches(batch_size))
