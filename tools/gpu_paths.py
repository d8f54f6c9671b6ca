"""The device paths of the pipeline, exercised at tiny width on whatever device squeeze picks
(CUDA where there is one): the part of `gpu-check.sh --paths` that tells whether the code that
only runs on a GPU works there, in well under a minute. Each check returns {"ok": bool, ...}
with what it measured:

- resume: a fit interrupted in its second epoch and resumed from its resume file, against an
  uninterrupted one (train.deterministic on): resumed from epoch 1, and bit-identical weights.
- masks: magnitude masks (unstructured 0.5) held through a fit: (w == 0) == ~mask on every layer.
- other_device: a resume file written on the other device (a real one from the CPU when this is
  CUDA; forged on a CPU-only machine), under its own fingerprint and under this run's: ignored
  with a one-line notice both times, and the fit equals a fresh one.
- evaluate: the last epoch's logged test accuracy == evaluation.accuracy of the final model.
- quantize: fp32 and fp16 on this device and int8 on the CPU, of the model trained here, with
  the precision each metrics file records.
"""
from __future__ import annotations

import contextlib
import io
from dataclasses import replace
from pathlib import Path

import torch

from squeeze import checkpoint, evaluation, models, prune, train
from squeeze import device as devices
from squeeze.batches import DeviceData
from squeeze.config import EvaluateConfig, Int8Config, TrainConfig
from squeeze.paths import StagePaths
from squeeze.steps import quantized as quantized_step
from squeeze.steps.common import to_cpu

WIDTH = 4
CFG = TrainConfig(epochs=2, batch_size=32, lr=0.05, momentum=0.9, weight_decay=5e-4,
                  schedule="cosine", seed=0, deterministic=True)
INT8 = Int8Config(calibration_batches=1, calibration_batch_size=32, calibration_method="minmax",
                  reduce_range=True, engine="onnxruntime")


def fresh() -> models.ResNet18:
    torch.manual_seed(0)
    return models.build(models.ResNetSpec.resnet18(WIDTH))


def max_diff(a: torch.nn.Module, b: torch.nn.Module) -> float:
    sa, sb = a.state_dict(), b.state_dict()
    return max(float((sa[k].float().cpu() - sb[k].float().cpu()).abs().max()) for k in sa)


class Interrupted(Exception):
    pass


def interrupted_fit(data: DeviceData, resume: Path) -> None:
    """A fit killed in its second epoch (after the first epoch's resume file was written)."""
    original, calls = data.train_batches, []

    def train_batches(batch_size, generator):
        calls.append(1)
        for i, batch in enumerate(original(batch_size, generator)):
            if len(calls) == 2 and i == 1:
                raise Interrupted
            yield batch

    data.train_batches = train_batches
    try:
        train.fit(fresh(), data, CFG, name="interrupted", resume_path=resume)
    except Interrupted:
        pass
    finally:
        # back to the class's method: an instance attribute left here would be a method bound
        # to `data`, and a copy of data's __dict__ (other_device_file) would train on it
        del data.train_batches


def quiet_fit(*args, **kwargs) -> tuple[train.FitResult, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        result = train.fit(*args, **kwargs)
    return result, out.getvalue()


def check_resume(data: DeviceData, work: Path, straight: torch.nn.Module) -> dict:
    resume = work / "resume.pt"
    interrupted_fit(data, resume)
    model = fresh()
    result, _ = quiet_fit(model, data, CFG, name="resumed", resume_path=resume)
    diff = max_diff(model, straight)
    return {"ok": result.resumed_from_epoch == 1 and diff == 0.0,
            "resumed_from_epoch": result.resumed_from_epoch, "max_abs_weight_diff": diff}


def check_masks(data: DeviceData) -> dict:
    model = fresh().to(data.device)
    masks = prune.magnitude_masks(model, 0.5)
    prune.apply_masks(model, masks)
    quiet_fit(model, data, replace(CFG, epochs=1), name="masked",
              constraint=lambda m: prune.apply_masks(m, masks))
    weights = dict(model.named_parameters())
    wrong = [name for name, mask in masks.items()
             if not torch.equal((weights[name] == 0).cpu(), ~mask.cpu())]
    return {"ok": not wrong, "layers": len(masks), "layers_not_matching": wrong,
            "zero_fraction": round(prune.sparsity(model), 4)}


def other_device_file(data: DeviceData, work: Path) -> tuple[Path, str]:
    """A resume file from the other device. This device CUDA: a real one, from a CPU fit
    interrupted in its second epoch. This device a CPU: that file forged into a CUDA one (the
    CUDA fingerprint, a 16-byte CUDA generator state instead of the CPU's)."""
    path = work / "other.pt"
    cpu_data = DeviceData.__new__(DeviceData)
    cpu_data.__dict__.update({k: (v.cpu() if torch.is_tensor(v) else v)
                              for k, v in data.__dict__.items()})
    cpu_data.device = torch.device("cpu")
    interrupted_fit(cpu_data, path)
    if data.device.type == "cuda":
        return path, "written by a CPU fit"
    state = checkpoint.load(path, kind="resume")
    state["run_id"] = train.fingerprint(CFG, fresh(), torch.device("cuda"))
    state["generator"] = torch.zeros(16, dtype=torch.uint8)
    checkpoint.save(path, state)
    return path, "a CPU fit's file forged into a CUDA one (no CUDA here)"


def check_other_device(data: DeviceData, work: Path, straight: torch.nn.Module) -> dict:
    original, origin = other_device_file(data, work)
    found = {"origin": origin}
    ok = True
    for label in ("its own fingerprint", "this run's fingerprint"):
        state = checkpoint.load(original, kind="resume")
        if label == "this run's fingerprint":  # passes the fingerprint, fails to load
            state["run_id"] = train.fingerprint(CFG, fresh(), data.device)
        path = work / "other-copy.pt"  # a fit deletes its resume file when it finishes
        checkpoint.save(path, state)
        model = fresh()
        try:
            result, out = quiet_fit(model, data, CFG, name="other", resume_path=path)
        except Exception as err:  # noqa: BLE001 (what must not happen is reported, not raised)
            found[label] = f"raised {type(err).__name__}: {str(err).splitlines()[0][:120]}"
            ok = False
            continue
        notices = [line for line in out.splitlines() if line.startswith("ignoring resume")]
        diff = max_diff(model, straight)
        found[label] = {"notice": notices[0] if notices else None,
                        "resumed_from_epoch": result.resumed_from_epoch,
                        "max_abs_weight_diff_to_fresh": diff}
        ok &= len(notices) == 1 and result.resumed_from_epoch == 0 and diff == 0.0
    return {"ok": ok, **found}


def int8_missing(engine: str) -> str | None:
    """Why int8 cannot run here (a GPU machine may lack the ONNX packages: they are binary
    wheels, not importable from a zip like torch-pruning), or None."""
    from squeeze import quantize

    try:
        quantize.check_engine(engine)
    except quantize.QuantizationError as err:
        return str(err)
    return None


def check_evaluate(data: DeviceData, straight: torch.nn.Module, logged: float) -> dict:
    again = round(evaluation.accuracy(straight, data), 6)
    return {"ok": again == logged, "last_epoch_logged": logged, "evaluation_accuracy": again}


def check_quantize(data_path: Path, work: Path, straight: torch.nn.Module,
                   evaluate: EvaluateConfig) -> dict:
    base = work / "straight.pt"
    checkpoint.save_model(base, to_cpu(straight), {}, epoch=CFG.epochs)
    found, ok = {}, True
    for quant in ("fp32", "fp16", "int8"):
        if quant == "int8" and (missing := int8_missing(INT8.engine)):
            found[quant] = {"skipped": missing}
            continue
        m = quantized_step.run(0.0, 0.0, quant, INT8 if quant == "int8" else None, evaluate,
                               StagePaths(data_path, work / f"{quant}.pt", work / f"{quant}.json",
                                          base=base))
        found[quant] = {k: m.get(k) for k in ("accuracy", "device", "precision")}
        ok &= 0 <= m["accuracy"] <= 1 and bool(m.get("precision"))
    found["fp16_minus_fp32"] = round(found["fp16"]["accuracy"] - found["fp32"]["accuracy"], 6)
    ok &= "skipped" in found["int8"] or found["int8"]["device"] == "cpu"
    return {"ok": ok, **found}


def check(data_path: Path, work: Path, evaluate: EvaluateConfig) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    data = DeviceData.from_file(data_path, devices.pick())
    straight = fresh()
    result, _ = quiet_fit(straight, data, CFG, name="straight")
    evaluate = replace(evaluate, latency_warmup=0, latency_repeats=1)
    checks = {
        "resume": lambda: check_resume(data, work, straight),
        "masks": lambda: check_masks(data),
        "other_device": lambda: check_other_device(data, work, straight),
        "evaluate": lambda: check_evaluate(data, straight, result.history[-1]["test_accuracy"]),
        "quantize": lambda: check_quantize(data_path, work, straight, evaluate),
    }
    return {name: guarded(run) for name, run in checks.items()}


def guarded(run) -> dict:
    """A check's result, or {"ok": False, "error": ...} where it raised: one failing path must
    not cost the figures of the others in a short GPU slot."""
    try:
        return run()
    except Exception as err:  # noqa: BLE001
        return {"ok": False, "error": f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"}
