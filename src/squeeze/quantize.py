"""Post-training quantization: fp32 (unchanged), fp16, int8. No retraining.

fp16: weights and activations in half precision. On CUDA the model runs in fp16. On CPU the
  weights are rounded to fp16 and the model runs in fp32: fp16 CPU kernels are slow and not
  representative of deployment, while the rounding carries the whole accuracy effect of fp16
  weights (activation rounding is not emulated on CPU).
int8: static post-training quantization with torch.ao FX graph mode on the engine
  `quantize.int8.engine` names (default x86: fbgemm/onednn kernels): per-channel symmetric int8
  weights, per-tensor affine uint8 activations, observers
  calibrated on training batches (never test). Chosen over torchao PT2E + X86InductorQuantizer
  because FX runs on real int8 CPU kernels eagerly, with no torch.compile step per model (minutes
  on a 2-core machine, times 25 models) and no C++ toolchain at run time. Symmetric weights keep a
  zero weight exactly zero.

A quantized model is saved as its state dict (quantized tensors load with weights_only=True)
plus the float architecture spec; loading rebuilds the float net, re-runs prepare/convert (no
calibration needed) and loads the int8 state.
"""
from __future__ import annotations

import warnings
from typing import Iterable

import torch
from torch import nn

from . import checkpoint, models
from .config import QUANT_TYPES
from .errors import SqueezeError

DEFAULT_ENGINE = "x86"


class QuantizationError(SqueezeError, RuntimeError):
    """A quantization that cannot be done here; the message is one line for the user."""


def check_engine(engine: str = DEFAULT_ENGINE) -> str:
    """`engine` if this torch has it, else a one-line error naming the ones it has."""
    engines = [e for e in torch.backends.quantized.supported_engines if e != "none"]
    if engine not in engines:
        raise QuantizationError(
            f"quantize.int8.engine = {engine!r} is not available in this torch; it has "
            f"{', '.join(engines) or 'none'}: set one of those, or drop int8 from quantize.types")
    return engine


@torch.no_grad()
def round_to_fp16(model: nn.Module) -> nn.Module:
    """fp16 on CPU: every parameter and buffer rounded to half precision, kept as fp32."""
    for tensor in list(model.parameters()) + list(model.buffers()):
        if tensor.is_floating_point():
            tensor.copy_(tensor.half().float())
    return model


def _qconfig_mapping(engine: str, activation_observer: str):
    """The x86 defaults (per-channel symmetric weights; uint8 activations with reduce_range, which
    fbgemm needs to avoid overflow) with a choice of activation observer: `histogram` (the
    default, minimises quantization error, slow to calibrate on CPU) or `minmax` (fast)."""
    from torch.ao.quantization import QConfig, get_default_qconfig_mapping
    from torch.ao.quantization.observer import (HistogramObserver, MinMaxObserver,
                                                default_per_channel_weight_observer)

    observer = {"histogram": HistogramObserver, "minmax": MinMaxObserver}[activation_observer]
    qconfig = QConfig(activation=observer.with_args(reduce_range=True),
                      weight=default_per_channel_weight_observer)
    return get_default_qconfig_mapping(engine).set_global(qconfig)


def _prepare_int8(float_model: nn.Module, activation_observer: str = "histogram",
                  engine: str = DEFAULT_ENGINE):
    from torch.ao.quantization.quantize_fx import prepare_fx

    torch.backends.quantized.engine = check_engine(engine)
    example = (torch.zeros(1, 3, 32, 32),)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao deprecation notices, once per model
        return prepare_fx(float_model.cpu().eval(), _qconfig_mapping(engine, activation_observer),
                          example)


def _convert(prepared):
    from torch.ao.quantization.quantize_fx import convert_fx

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return convert_fx(prepared)


@torch.no_grad()
def to_int8(float_model: nn.Module, calibration: Iterable[torch.Tensor],
            activation_observer: str = "histogram", engine: str = DEFAULT_ENGINE) -> nn.Module:
    """Static int8 PTQ: observe activation ranges on `calibration` batches, then convert."""
    prepared = _prepare_int8(float_model, activation_observer, engine)
    seen = 0
    for x in calibration:
        prepared(x.cpu())
        seen += 1
    if seen == 0:
        raise QuantizationError("int8 calibration got no batches")
    return _convert(prepared)


def quantize(model: nn.Module, quant: str, calibration: Iterable[torch.Tensor] | None = None,
             activation_observer: str = "histogram", engine: str = DEFAULT_ENGINE) -> nn.Module:
    """The model in `quant` form (fp32 returns it unchanged; fp16 rounds weights in place)."""
    if quant == "fp32":
        return model
    if quant == "fp16":
        return round_to_fp16(model)
    if quant == "int8":
        if calibration is None:
            raise QuantizationError("int8 needs calibration batches")
        return to_int8(model, calibration, activation_observer, engine)
    raise QuantizationError(f"unknown quantization type {quant!r}; allowed: fp32, fp16, int8")


def save_quantized(path, qmodel: nn.Module, spec: models.ResNetSpec, quant: str, config: dict,
                   engine: str | None = None, preprocess: dict | None = None) -> None:
    """engine: the int8 engine the model was converted for (loading converts for the same)."""
    # the state dict itself, not a copy: its _metadata carries the module versions that the
    # quantized modules need to read their packed weights back
    state = qmodel.cpu().state_dict()
    if quant == "fp16":  # stored as half precision: the file is the size fp16 deployment ships
        for key, value in state.items():
            if value.is_floating_point():
                state[key] = value.half()
    checkpoint.save(path, {"kind": f"quantized-{quant}", "quant": quant, "state_dict": state,
                           "spec": spec.to_dict(), "config": config, "engine": engine,
                           "preprocess": preprocess})


def load_quantized(path, payload: dict | None = None) -> tuple[nn.Module, dict]:
    """Rebuild a model saved by save_quantized, ready for CPU inference. `payload`: the file
    already loaded (`checkpoint.load`), so it is not read twice."""
    if payload is None:
        payload = checkpoint.load(path)
    quant = payload.get("quant")
    if payload.get("kind") != f"quantized-{quant}" or quant not in QUANT_TYPES:
        raise checkpoint.CheckpointError(f"{path}: not a quantized squeeze model")
    try:
        spec = models.ResNetSpec.from_dict(payload["spec"])
        if quant == "int8":
            engine = payload.get("engine") or DEFAULT_ENGINE
            model = _convert(_prepare_int8(models.build(spec), engine=engine))
            model.load_state_dict(payload["state_dict"])
        else:
            state = {k: (v.float() if v.is_floating_point() else v)
                     for k, v in payload["state_dict"].items()}
            model = models.from_state(spec, state)
    except (ValueError, KeyError, RuntimeError) as err:
        raise checkpoint.CheckpointError(
            f"{path}: architecture spec does not match its weights ({str(err).splitlines()[0]})") from None
    return model.eval(), payload


def int8_weights(qmodel: nn.Module) -> list[torch.Tensor]:
    """The integer weights of every quantized conv/linear of an int8 model."""
    out = []
    for m in qmodel.modules():
        weight = getattr(m, "weight", None)
        if callable(weight):
            w = weight()
            if isinstance(w, torch.Tensor) and w.is_quantized:
                out.append(w.int_repr())
    return out
