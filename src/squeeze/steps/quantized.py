"""Step quantize@<s>-<u>-<q>: post-training quantization of one model, and its measurement:
accuracy, counts, scores, latency, file size."""
from __future__ import annotations

import copy
import os

import torch

from .. import checkpoint, device as devices, measure, models, quantize
from ..batches import DeviceData
from ..config import EvaluateConfig, Int8Config, ScoreConfig
from ..evaluation import accuracy
from ..fsutil import write_json
from ..names import model_name
from ..paths import StagePaths
from .common import load_data

# what each type's accuracy is computed in, by device type (see quantize.py)
PRECISION = {("fp32", "cpu"): "fp32", ("fp32", "cuda"): "fp32",
             ("fp16", "cpu"): "fp16-rounded weights, fp32 compute", ("fp16", "cuda"): "fp16",
             ("int8", "cpu"): "int8"}


def run(structured: float, unstructured: float, quant: str, int8_cfg: Int8Config | None,
        eval_cfg: EvaluateConfig, paths: StagePaths, device: str | None = None,
        score_cfg: ScoreConfig | None = None) -> dict:
    """int8_cfg: the quantize.int8 section (None for fp32 and fp16, which have no settings).
    score_cfg: the score section (None: the study's normalisers)."""
    if quant == "int8":
        quantize.check_engine(int8_cfg.engine)  # one line before any work where one is missing
    norms = measure.score_norms(score_cfg, paths.baseline)
    float_model, payload = checkpoint.load_model(paths.base)
    float_model.eval()
    spec = float_model.spec
    counts = measure.model_counts(float_model)
    sparsity = measure.sparsity(float_model)
    # accuracy runs where it is real: int8 on its CPU kernels, the others on the fastest device
    data = load_data(paths.data, "cpu" if quant == "int8" else device)
    if quant == "int8":
        calibration = data.calibration_batches(int8_cfg.calibration_batch_size,
                                               int8_cfg.calibration_batches, seed=0)
        qmodel = quantize.quantize(copy.deepcopy(float_model), quant, calibration, int8_cfg,
                                   image_size=data.preprocess["image_size"])
    else:
        qmodel = quantize.quantize(copy.deepcopy(float_model), quant)
    acc = _accuracy(qmodel, data, quant)
    quantize.save_quantized(paths.out, qmodel.cpu(), spec, quant,
                            {"structured": structured, "unstructured": unstructured},
                            preprocess=payload.get("preprocess") or data.preprocess,
                            source=paths.base)
    latency = {}
    for b in (1, 32):  # median and quartiles, ms per image
        found = measure.latency_stats(qmodel.cpu(), b, eval_cfg.latency_threads,
                                      eval_cfg.latency_warmup, eval_cfg.latency_repeats,
                                      image_size=data.preprocess["image_size"])
        latency.update({f"latency_ms_b{b}": round(found["median"], 4),
                        f"latency_ms_b{b}_q1": round(found["q1"], 4),
                        f"latency_ms_b{b}_q3": round(found["q3"], 4)})
    q_w, q_a = measure.bits(quant)
    metrics = {
        "model": model_name(structured, unstructured, quant),
        "structured": structured, "unstructured": unstructured, "quant": quant,
        "accuracy": round(acc, 6), **devices.describe(data.device),
        "precision": ("int8, weights in 7 bits" if quant == "int8" and int8_cfg.reduce_range
                      else PRECISION.get((quant, data.device.type), quant)),
        **counts, "sparsity": round(sparsity, 6), "q_w": q_w, "q_a": q_a,
        "score": round(measure.score(counts["nonzero_params"], counts["ops"], quant, norms), 6),
        **measure.norms_record(norms),
        # the study's nominal formula scales ResNet-18's counts: no number for another network
        "score_seed": (round(measure.score_seed(structured, unstructured, quant), 6)
                       if isinstance(spec, models.ResNetSpec) else None),
        **latency, "latency_threads": eval_cfg.latency_threads,
        "latency_repeats": eval_cfg.latency_repeats, "cpu": devices.cpu_name(),
        # what ran the model for its accuracy and latency (int8: the engine its users run)
        "runtime": (quantize.engine_version(int8_cfg.engine) if quant == "int8"
                    else devices.torch_runtime()),
        "kernel": "real",  # run by the kernels it ships on (low-bit types: simulated, steps/qat)
        # what ships: the checkpoint for fp32/fp16, the ONNX file for int8
        "size_bytes": len(qmodel.onnx) if quant == "int8" else os.path.getsize(paths.out),
        "spec": spec.to_dict(),
    }
    write_json(paths.metrics, metrics)
    return metrics


def _accuracy(model, data: DeviceData, quant: str) -> float:
    if quant == "int8":  # repeatable: the same file gives the same accuracy on every run
        return accuracy(model.exact(), data)
    model.to(data.device)
    if quant == "fp16" and data.device.type == "cuda":
        # on CUDA fp16 runs for real: half weights, half activations
        return accuracy(copy.deepcopy(model).half(), data, dtype=torch.float16)
    return accuracy(model, data)
