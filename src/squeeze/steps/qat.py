"""Step qat@<s>-<u>-<wXaY>: quantization-aware fine-tuning of one grid model to a low-bit type
(lowbit.py), and its measurement: accuracy (simulated), counts, per-layer bits and score."""
from __future__ import annotations

import copy
from dataclasses import asdict


from .. import checkpoint, device as devices, lowbit, measure, models, recovery, train
from ..config import MIXED_PREFIX, MixedConfig, QatConfig, QatTrainConfig, ScoreConfig
from ..fsutil import write_json
from ..history import write_history
from ..names import model_name
from ..paths import StagePaths
from .common import file_sha256, load_data, measured, on, to_cpu

KERNEL = "simulated"  # no CPU kernel runs these bit widths: fake quantization in fp32
MIXED_REST = (8, 8)   # the bits a per-layer-bits model's BatchNorm is counted at


def _mixed_budget(model, name: str, budget: float, qat_cfg: QatConfig,
                  mixed_cfg: MixedConfig, norms: measure.Norms) -> dict:
    """The score budget of wmix<budget>: `budget` x the model's int8 score; one line where even
    the cheapest candidate everywhere does not reach it (before any measurement)."""
    per_layer = measure.layer_counts(model)
    int8 = measure.layer_score(per_layer, {n: (8, 8) for n in per_layer if n}, (8, 8), norms)
    cheapest = lowbit.cheapest_score(per_layer, list(mixed_cfg.candidates), qat_cfg.ends_bits,
                                     MIXED_REST, norms)
    if cheapest > budget * int8:
        raise lowbit.LowBitError(
            f"quantize.mix_budgets: {budget:g} is not reachable by {name}: every layer at its "
            f"cheapest candidate scores {cheapest / int8:.3f} of its int8 score; allowed: "
            f"{cheapest / int8:.3f} to 1 (or cheaper quantize.mixed.candidates)")
    return {"budget": budget, "int8_score": round(int8, 6),
            "budget_score": round(budget * int8, 6), "layers": per_layer}


def run(structured: float, unstructured: float, quant: str, qat_cfg: QatConfig,
        finetune_cfg: QatTrainConfig, paths: StagePaths, device: str | None = None,
        mixed_cfg: MixedConfig | None = None, score_cfg: ScoreConfig | None = None) -> dict:
    """quant: a wXaY type, or wmix<budget> (per-layer bits by `mixed_cfg`). score_cfg: the score
    section (None: the study's normalisers)."""
    mixed = lowbit.is_mixed(quant)
    q_w, q_a = (None, None) if mixed else measure.bits(quant)  # a bad type: one line, no work
    norms = measure.score_norms(score_cfg, paths.baseline)
    model, payload = checkpoint.load_model(paths.base)
    data = load_data(paths.data, device)
    model.to(data.device)
    name = model_name(structured, unstructured, quant)
    mix = _mixed_budget(model.cpu(), name, float(quant[len(MIXED_PREFIX):]), qat_cfg,
                        mixed_cfg, norms) if mixed else None  # unreachable: before any work
    model.to(data.device)
    accuracy_float = measured(model, data)
    spec = model.spec
    distill = finetune_cfg.distill_alpha > 0  # the float model as teacher: a copy kept aside
    float_model = copy.deepcopy(model).eval() if distill else None
    calibration = list(data.calibration_batches(finetune_cfg.batch_size, qat_cfg.init_batches,
                                                seed=0))
    if mixed:
        held = list(data.held_batches(500, mixed_cfg.images, seed=1))
        losses = lowbit.sensitivity(model, list(mixed_cfg.candidates), qat_cfg.ends_bits,
                                    calibration, held)
        bits = lowbit.allocate(mix["layers"], losses, list(mixed_cfg.candidates),
                               qat_cfg.ends_bits, mix["budget_score"], norms=norms)
        mix = {k: v for k, v in mix.items() if k != "layers"} | {"layer_loss": losses}
    else:
        bits = lowbit.layer_bits(model, quant, qat_cfg.ends_bits)
    lowbit.prepare(model, bits)
    lowbit.init(model, calibration)
    accuracy_init = measured(model, data)  # post-training low-bit: what the fine-tune starts from
    print(f"{name}: accuracy of the float model {accuracy_float:.4f}, quantized before "
          f"fine-tuning {accuracy_init:.4f}", flush=True)
    loss_fn = (recovery.distillation_loss(float_model, finetune_cfg.distill_alpha,
                                          finetune_cfg.distill_temperature)
               if distill else train.cross_entropy)
    result = train.fit(model, data, finetune_cfg, name=name, log_path=paths.log,
                       resume_path=paths.resume, loss_fn=loss_fn,
                       fingerprint_extra={"base": file_sha256(paths.base), "quant": quant,
                                          "qat": asdict(qat_cfg), "bits": lowbit.bits_table(bits)})
    if not result.history:
        write_history(paths.log, [])
    accuracy_after = measured(model, data)
    model = to_cpu(model).eval()
    plain = lowbit.unwrapped(model)  # the masked float weights: what the counts are taken on
    counts = measure.model_counts(plain)
    per_layer = measure.layer_counts(plain)
    uniform = not mixed and len(set(bits.values())) == 1
    config = {"structured": structured, "unstructured": unstructured, "quant": quant,
              "qat": asdict(qat_cfg), "finetune": asdict(finetune_cfg),
              **({"mixed": asdict(mixed_cfg)} if mixed else {})}
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
        # per-layer bits: the budget, the int8 score it is a fraction of, each layer's loss alone
        # at each candidate (held-out training images)
        **({"mix": mix} if mixed else {}),
        # every layer at its own bits (BatchNorm at the type's; mixed: 8); the study's formula
        # only where the bits are uniform
        "score": round(measure.layer_score(per_layer, bits, MIXED_REST if mixed else (q_w, q_a),
                                           norms), 6),
        **measure.norms_record(norms),
        "score_seed": (round(measure.score_seed(structured, unstructured, quant), 6)
                       if uniform and isinstance(spec, models.ResNetSpec) else None),
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
