"""Step qat@<s>-<u>-<wXaY>: quantization-aware fine-tuning of one grid model to a low-bit type
(lowbit.py), and its measurement: accuracy (simulated), counts, per-layer bits and score."""
from __future__ import annotations

import copy
from dataclasses import asdict


from .. import checkpoint, device as devices, lowbit, measure, recovery, train
from ..config import QatConfig, QatTrainConfig
from ..fsutil import write_json
from ..history import write_history
from ..names import model_name
from ..paths import StagePaths
from .common import file_sha256, load_data, measured, on, to_cpu

KERNEL = "simulated"  # no CPU kernel runs these bit widths: fake quantization in fp32


def run(structured: float, unstructured: float, quant: str, qat_cfg: QatConfig,
        finetune_cfg: QatTrainConfig, paths: StagePaths, device: str | None = None) -> dict:
    q_w, q_a = measure.bits(quant)  # a ValueError naming the type before any work
    model, payload = checkpoint.load_model(paths.base)
    data = load_data(paths.data, device)
    model.to(data.device)
    accuracy_float = measured(model, data)
    spec = model.spec
    float_model = copy.deepcopy(model).eval()
    bits = lowbit.layer_bits(model, quant, qat_cfg.ends_bits)
    lowbit.prepare(model, bits)
    lowbit.init(model, data.calibration_batches(finetune_cfg.batch_size, qat_cfg.init_batches,
                                                seed=0))
    accuracy_init = measured(model, data)  # post-training low-bit: what the fine-tune starts from
    name = model_name(structured, unstructured, quant)
    print(f"{name}: accuracy of the float model {accuracy_float:.4f}, quantized before "
          f"fine-tuning {accuracy_init:.4f}", flush=True)
    loss_fn = (recovery.distillation_loss(float_model, finetune_cfg.distill_alpha,
                                          finetune_cfg.distill_temperature)
               if finetune_cfg.distill_alpha > 0 else train.cross_entropy)
    result = train.fit(model, data, finetune_cfg, name=name, log_path=paths.log,
                       resume_path=paths.resume, loss_fn=loss_fn,
                       fingerprint_extra={"base": file_sha256(paths.base), "quant": quant,
                                          "qat": asdict(qat_cfg)})
    if not result.history:
        write_history(paths.log, [])
    accuracy_after = measured(model, data)
    model = to_cpu(model).eval()
    plain = lowbit.unwrapped(model)  # the masked float weights: what the counts are taken on
    counts = measure.model_counts(plain)
    per_layer = measure.layer_counts(plain)
    uniform = len(set(bits.values())) == 1
    config = {"structured": structured, "unstructured": unstructured, "quant": quant,
              "qat": asdict(qat_cfg), "finetune": asdict(finetune_cfg)}
    save(paths.out, model, spec, quant, bits, config,
         preprocess=payload.get("preprocess") or data.preprocess, source=paths.base)
    metrics = {
        "model": name, "structured": structured, "unstructured": unstructured, "quant": quant,
        "accuracy": accuracy_after, "accuracy_float": accuracy_float,
        "accuracy_quantized_init": accuracy_init, **on(data),
        "precision": f"{quant} simulated (fake quantization, fp32 arithmetic)",
        "kernel": KERNEL, **counts, "sparsity": round(measure.sparsity(plain), 6),
        "q_w": q_w, "q_a": q_a,
        "layer_bits": lowbit.bits_table(bits),
        # every layer at its own bits; the study's formula only where the bits are uniform
        "score": round(measure.layer_score(per_layer, bits, (q_w, q_a)), 6),
        "score_seed": (round(measure.score_seed(structured, unstructured, quant), 6)
                       if uniform else None),
        # no kernel runs it: no latency and no file that ships (never the float model's figures)
        "latency_ms_b1": None, "latency_ms_b32": None, "size_bytes": None,
        "runtime": f"{devices.torch_runtime()} (simulated)",  # as its checkpoint says
        **train.FitResult(history=result.history,
                          epoch_wall_seconds=result.epoch_wall_seconds).summary(),
        "spec": spec.to_dict(),
    }
    write_json(paths.metrics, metrics)
    return metrics


def save(path, model, spec, quant: str, bits: dict, config: dict, preprocess: dict | None,
         source) -> None:
    """The fake-quantized model: its float weights, masks and step sizes, and the bits per layer."""
    checkpoint.save(path, {"kind": f"quantized-{quant}", "quant": quant,
                           "state_dict": model.state_dict(), "layer_bits": lowbit.bits_table(bits),
                           "spec": spec.to_dict(), "config": config, "preprocess": preprocess,
                           "source": str(source), "kernel": KERNEL,
                           "runtime": f"{devices.torch_runtime()} (simulated)"})
