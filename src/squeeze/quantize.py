"""Post-training quantization: fp32 (unchanged), fp16, int8. No retraining.

fp16: weights and activations in half precision. On CUDA the model runs in fp16. On CPU the
  weights are rounded to fp16 and the model runs in fp32: fp16 CPU kernels are slow and not
  representative of deployment, while the rounding carries the whole accuracy effect of fp16
  weights (activation rounding is not emulated on CPU).
int8: an ONNX file in QDQ form, the file a deployer ships. The pruned fp32 model (physically
  smaller: only the filters left) is exported by torch.onnx's torch.export-based exporter, then
  `onnxruntime.quantization.quantize_static` writes quantize/dequantize pairs around every conv
  and linear: per-channel symmetric int8 weights (a zero weight stays exactly zero, so the
  unstructured masks survive), per-tensor uint8 activations whose ranges `calibration_method`
  sets from training batches (never test). The file runs on `engine`: ONNX Runtime's CPU
  provider (the default) or OpenVINO's CPU plugin, both on real int8 kernels. ONNX Runtime gives
  the same outputs on every run and at any thread count; OpenVINO with more than one thread does
  not (measured: logits moving by up to 0.07 between two calls on one batch, 1 of 500 top-1
  classes), so its accuracy is measured single-threaded (Int8Model.exact), where it repeats; its
  latency at `latency_threads` like any model's. A process that has run OpenVINO should not
  fork afterwards: once, a pytest process crashed in os.system's fork after OpenVINO models had
  run in it (not reproduced in a small script). Each DVC stage is its own process and forks
  nothing after quantizing.
  `reduce_range` (default true) keeps the weights to 7 bits. On an AVX2 CPU without VNNI both
  engines multiply uint8 by int8 with 16-bit intermediate sums that saturate at 8-bit weights:
  measured on an AMD EPYC (width-16 s0.5-u0.3 model, 2,000 test images), 8-bit weights agreed
  with the fp32 model on 94.7% of top-1 classes where the same file's own arithmetic (run
  unfused) agreed on 99.25%; with 7-bit weights the kernels and the file agree (98.65%) on every
  x86 CPU. The score still counts 8 bits: the weights are stored as int8.

A quantized model is saved as a checkpoint (checkpoint.py): fp32/fp16 as a state dict plus the
float architecture spec; int8 as the ONNX bytes, the engine that runs them, and the path of the
float checkpoint it came from (the export's self-check compares the two; kept as a path, not a
copy, so that an int8 file stays a quarter of its float model's size on disk).
"""
from __future__ import annotations

import contextlib
import importlib.metadata
import io
import itertools
import importlib.util
import logging
import os
import re
import tempfile
from typing import Iterable

import numpy as np
import torch
from torch import nn

from . import checkpoint, lowbit, models
from .config import QUANT_TYPES, Int8Config
from .errors import SqueezeError

DEFAULT_INT8 = Int8Config(calibration_batches=8, calibration_batch_size=128,
                          calibration_method="minmax", reduce_range=True, engine="onnxruntime")
OPSET = 18
# what each engine needs installed: the exporter (onnxscript), the quantizer (onnxruntime), the
# runtime; module name -> pip package
NEEDS = {"onnxruntime": {"onnx": "onnx", "onnxscript": "onnxscript", "onnxruntime": "onnxruntime"},
         "openvino": {"onnx": "onnx", "onnxscript": "onnxscript", "onnxruntime": "onnxruntime",
                      "openvino": "openvino"}}


class QuantizationError(SqueezeError, RuntimeError):
    """A quantization that cannot be done here; the message is one line for the user."""


def check_engine(engine: str) -> str:
    """`engine` if it and the packages the int8 path needs are installed, else one line naming
    the missing pip package. Nothing is imported (cheap, before any work)."""
    if engine not in NEEDS:
        raise QuantizationError(f"quantize.int8.engine = {engine!r} is not allowed; expected one "
                                f"of {', '.join(NEEDS)}")
    for module, package in NEEDS[engine].items():
        if importlib.util.find_spec(module) is None:
            raise QuantizationError(f"quantize.int8.engine = {engine!r} needs the Python package "
                                    f"{package!r}, which is not installed: pip install {package}")
    return engine


def engine_version(engine: str) -> str:
    """'openvino 2026.4.1', 'onnxruntime 1.32.0': what ran a model, for its metrics."""
    return f"{engine} {importlib.metadata.version(engine)}"


@torch.no_grad()
def round_to_fp16(model: nn.Module) -> nn.Module:
    """fp16 on CPU: every parameter and buffer rounded to half precision, kept as fp32."""
    for tensor in list(model.parameters()) + list(model.buffers()):
        if tensor.is_floating_point():
            tensor.copy_(tensor.half().float())
    return model


# node metadata the exporter writes that holds the source's absolute path and line numbers: the
# same model exported from another checkout (or after an unrelated edit above a forward) would
# otherwise be different bytes
MACHINE_METADATA = ("pkg.torch.onnx.stack_trace",)


def _without_machine_metadata(proto) -> None:
    graphs = [proto.graph, *(f for f in proto.functions)]
    while graphs:
        graph = graphs.pop()
        for node in graph.node:
            kept = [p for p in node.metadata_props if p.key not in MACHINE_METADATA]
            if len(kept) != len(node.metadata_props):
                del node.metadata_props[:]
                node.metadata_props.extend(kept)
            graphs += [a.g for a in node.attribute if a.HasField("g")]
            graphs += [g for a in node.attribute for g in a.graphs]


def first_line(err: BaseException) -> str:
    """An exception as one short line: its innermost cause's first line (the exporter wraps the
    reason in a generic "Failed to export" error), without terminal colours; its type where it
    has no message."""
    while err.__cause__ is not None:
        err = err.__cause__
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(err)).strip()
    return text.splitlines()[0][:200] if text else type(err).__name__


def _onnx_exports(module: nn.Module, args: tuple) -> None:
    torch.onnx.export(module, args, dynamo=True, opset_version=OPSET, verbose=False,
                      report=False)


def failing_layer(model: nn.Module, example: tuple, attempt, err: BaseException
                  ) -> tuple[str, str]:
    """(where, why) of a whole-model export that raised `err`: the innermost layer whose own
    export fails, found by exporting submodules alone on the inputs they received in one forward
    pass, children before their parent; `where` names it and its class ("layer features.3
    (Gate)"), or the model's own forward where every child exports alone. `attempt(module,
    args)` is the export, raising on failure. Only run after a failure (it exports repeatedly)."""
    model = model.cpu().eval()
    inputs: dict[str, tuple] = {}
    odd: set[str] = set()  # those returning something other than tensors: not exported alone

    def keep(name: str):
        def hook(_module, args) -> None:
            inputs.setdefault(name, args)  # the first call's (a module may be called twice)
        return hook

    def returned(name: str):
        def hook(_module, _args, out) -> None:
            outs = out if isinstance(out, (tuple, list)) else (out,)
            if not all(isinstance(o, torch.Tensor) for o in outs):
                odd.add(name)
        return hook

    hooks = [h for name, m in model.named_modules() if name
             for h in (m.register_forward_pre_hook(keep(name)),
                       m.register_forward_hook(returned(name)))]
    try:
        with torch.no_grad():
            model(*example)
    except Exception:
        pass  # the layers reached before the error are still searched
    finally:
        for hook in hooks:
            hook.remove()

    def fails(module: nn.Module, args: tuple) -> BaseException | None:
        quiet = io.StringIO()  # each failing try would print its traced graph again
        try:
            with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
                attempt(module, args)
        except Exception as found:  # noqa: BLE001 - any exporter error marks the layer
            return found
        return None

    name, module, why = "", model, err
    while True:
        for child_name, child in module.named_children():
            full = f"{name}.{child_name}" if name else child_name
            args = inputs.get(full)
            if args is None or full in odd or not all(isinstance(a, torch.Tensor) for a in args):
                continue
            found = fails(child, args)
            if found is not None:
                name, module, why = full, child, found
                break
        else:
            break
    cls = type(module).__name__
    where = f"layer {name} ({cls})" if name else f"the model's own forward ({cls})"
    return where, first_line(why)


def to_onnx(model: nn.Module, image_size: int | None = None) -> bytes:
    """The float model as ONNX (opset 18, input "images" with a dynamic batch, output "logits"),
    by the torch.export-based exporter (BatchNorm folded into the convolutions); the same bytes
    wherever the project is checked out (no source paths in its metadata)."""
    image_size = image_size or models.input_size(model)
    example = (torch.zeros(2, 3, image_size, image_size),)
    try:
        program = torch.onnx.export(model.cpu().eval(), example, dynamo=True, opset_version=OPSET,
                                    input_names=["images"], output_names=["logits"],
                                    dynamic_shapes=({0: torch.export.Dim("batch")},),
                                    verbose=False, report=False)
    except Exception as err:  # the exporter raises many types; one line for the user
        where, why = failing_layer(model, example, _onnx_exports, err)
        raise QuantizationError(f"ONNX export failed at {where}: {why}") from None
    proto = program.model_proto
    _without_machine_metadata(proto)
    return proto.SerializeToString()


class _Batches:
    """onnxruntime's CalibrationDataReader protocol over torch batches (duck-typed: get_next)."""

    def __init__(self, batches: Iterable[torch.Tensor]):
        batches = iter(batches)
        first = next(batches, None)
        if first is None:
            raise QuantizationError("int8 calibration got no batches")
        self.batches = itertools.chain([first], batches)

    def get_next(self):
        x = next(self.batches, None)
        return None if x is None else {"images": x.detach().cpu().float().numpy()}


class _NoPreprocessAdvice(logging.Filter):
    """quantize_static logs, on the root logger, advice to run ORT's shape-inference pre-pass;
    the exporter's graph has its shapes already (the advice is not a deprecation)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Please consider")


def to_int8(float_model: nn.Module, calibration: Iterable[torch.Tensor],
            settings: Int8Config = DEFAULT_INT8, image_size: int | None = None) -> bytes:
    """Static int8 PTQ of `float_model` as ONNX QDQ bytes, activation ranges from `calibration`."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    check_engine(settings.engine)
    reader = _Batches(calibration)
    method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
              "percentile": CalibrationMethod.Percentile}[settings.calibration_method]
    float_bytes = to_onnx(float_model, image_size)
    advice = _NoPreprocessAdvice()
    with tempfile.TemporaryDirectory(prefix="squeeze-int8-") as tmp:
        src, dst = os.path.join(tmp, "float.onnx"), os.path.join(tmp, "int8.onnx")
        with open(src, "wb") as fh:
            fh.write(float_bytes)
        logging.getLogger().addFilter(advice)
        try:
            quantize_static(src, dst, reader, quant_format=QuantFormat.QDQ, per_channel=True,
                            reduce_range=settings.reduce_range, activation_type=QuantType.QUInt8,
                            weight_type=QuantType.QInt8, calibrate_method=method,
                            extra_options={"WeightSymmetric": True})
        finally:
            logging.getLogger().removeFilter(advice)
        with open(dst, "rb") as fh:
            return fh.read()


def _runner(onnx_bytes: bytes, engine: str, threads: int):
    """A function numpy float32 NCHW -> numpy logits, on `engine` with `threads` threads."""
    if engine == "onnxruntime":
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(onnx_bytes, options,
                                               providers=["CPUExecutionProvider"])
        return lambda x: session.run(None, {"images": x})[0]
    if engine == "openvino":
        import openvino

        core = openvino.Core()
        compiled = core.compile_model(core.read_model(model=onnx_bytes, weights=b""), "CPU",
                                      {"INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1,
                                       "PERFORMANCE_HINT": "LATENCY"})
        request = compiled.create_infer_request()
        return lambda x: request.infer({0: x})[0].copy()
    raise QuantizationError(f"quantize.int8.engine = {engine!r} is not allowed; expected one of "
                            f"{', '.join(NEEDS)}")


class Int8Model(nn.Module):
    """An int8 ONNX file behind the module interface: float32 NCHW in, logits out, on the CPU,
    with as many threads as torch is set to (torch.set_num_threads) when it is called."""

    def __init__(self, onnx_bytes: bytes, engine: str, threads: int | None = None):
        """threads: fixed, or None to follow torch.get_num_threads() at each call."""
        super().__init__()
        self.onnx = onnx_bytes
        self.engine = check_engine(engine)
        self.threads = threads
        self._runners: dict[int, object] = {}

    def exact(self) -> "Int8Model":
        """This file on this engine, giving the same outputs on every call: OpenVINO on one
        thread (with more it varies from run to run), ONNX Runtime as it is (repeatable at
        any thread count)."""
        return Int8Model(self.onnx, self.engine, threads=1) if self.engine == "openvino" else self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        threads = self.threads or torch.get_num_threads()
        if threads not in self._runners:
            self._runners[threads] = _runner(self.onnx, self.engine, threads)
        array = np.ascontiguousarray(x.detach().cpu().float().numpy())
        return torch.from_numpy(np.asarray(self._runners[threads](array))).to(x.device)

    def __getstate__(self):  # copies and pickles carry the file, not the engine's sessions
        state = self.__dict__.copy()
        state["_runners"] = {}
        return state

    def extra_repr(self) -> str:
        return f"engine={self.engine}, onnx={len(self.onnx):,} bytes, threads={self.threads or 'torch'}"


def quantize(model: nn.Module, quant: str, calibration: Iterable[torch.Tensor] | None = None,
             settings: Int8Config = DEFAULT_INT8, image_size: int | None = None) -> nn.Module:
    """The model in `quant` form (fp32 returns it unchanged; fp16 rounds weights in place; int8
    is an Int8Model around the calibrated ONNX file)."""
    if quant == "fp32":
        return model
    if quant == "fp16":
        return round_to_fp16(model)
    if quant == "int8":
        if calibration is None:
            raise QuantizationError("int8 needs calibration batches")
        return Int8Model(to_int8(model, calibration, settings, image_size), settings.engine)
    raise QuantizationError(f"unknown quantization type {quant!r}; allowed: fp32, fp16, int8")


def save_quantized(path, qmodel: nn.Module, spec, quant: str, config: dict,
                   preprocess: dict | None = None, source: str | None = None) -> None:
    """int8: `qmodel` is an Int8Model; `source` the path of the float checkpoint it was made
    from, as the stage was given it (relative to the workspace)."""
    if quant == "int8":
        checkpoint.save(path, {"kind": "quantized-int8", "quant": quant, "onnx": qmodel.onnx,
                               "engine": qmodel.engine, "runtime": engine_version(qmodel.engine),
                               "source": None if source is None else str(source),
                               "spec": spec.to_dict(), "config": config, "preprocess": preprocess})
        return
    state = qmodel.cpu().state_dict()
    if quant == "fp16":  # stored as half precision: the file is the size fp16 deployment ships
        state = {k: (v.half() if v.is_floating_point() else v) for k, v in state.items()}
    checkpoint.save(path, {"kind": f"quantized-{quant}", "quant": quant, "state_dict": state,
                           "spec": spec.to_dict(), "config": config, "preprocess": preprocess})


def load_quantized(path, payload: dict | None = None) -> tuple[nn.Module, dict]:
    """Rebuild a model saved by save_quantized, ready for CPU inference. `payload`: the file
    already loaded (`checkpoint.load`), so it is not read twice."""
    if payload is None:
        payload = checkpoint.load(path)
    quant = payload.get("quant")
    if payload.get("kind") != f"quantized-{quant}" or not (quant in QUANT_TYPES
                                                          or lowbit.is_low_bit(quant)):
        raise checkpoint.CheckpointError(f"{path}: not a quantized squeeze model")
    if lowbit.is_low_bit(quant):
        try:
            return lowbit.load(payload), payload
        except (ValueError, KeyError, RuntimeError) as err:
            raise checkpoint.CheckpointError(
                f"{path}: a {quant} checkpoint that does not load ({str(err).splitlines()[0]})") from None
    if quant == "int8":
        if not isinstance(payload.get("onnx"), bytes):
            raise checkpoint.CheckpointError(
                f"{path}: an int8 checkpoint from before int8 became ONNX (it holds torch.ao "
                "modules); rerun its quantize stage (dvc repro)")
        return Int8Model(payload["onnx"], payload.get("engine") or DEFAULT_INT8.engine).eval(), payload
    try:
        spec = models.spec_from_dict(payload["spec"])
        state = {k: (v.float() if v.is_floating_point() else v)
                 for k, v in payload["state_dict"].items()}
        model = models.from_state(spec, state)
    except (ValueError, KeyError, RuntimeError) as err:
        raise checkpoint.CheckpointError(
            f"{path}: architecture spec does not match its weights ({str(err).splitlines()[0]})") from None
    return model.eval(), payload


def float_of(path, source: str | None) -> nn.Module:
    """The fp32 model an int8 checkpoint at `path` was made from: its `source`, as given (from
    the working directory), else from the workspace the checkpoint sits in
    (<workspace>/models/quantized/<name>.pt)."""
    from pathlib import Path

    if not source:
        raise checkpoint.CheckpointError(f"{path}: records no float model it was made from")
    tries = [Path(source), Path(path).resolve().parent.parent.parent / source]
    found = next((p for p in tries if p.is_file()), None)
    if found is None:
        raise checkpoint.CheckpointError(
            f"{path}: the float model it was made from, {source}, is not there (looked in the "
            f"working directory and in {tries[1].parent}); the int8 check compares the two")
    return checkpoint.load_model(found)[0].eval()


def int8_weights(onnx_bytes: bytes) -> dict[str, np.ndarray]:
    """The int8 weight tensors of every quantized conv and linear of an int8 ONNX file."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load_model_from_string(onnx_bytes).graph
    arrays = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    return {name: a for name, a in arrays.items() if a.dtype == np.int8 and a.ndim >= 2}

