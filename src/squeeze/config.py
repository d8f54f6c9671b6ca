"""params.yaml sections -> small frozen dataclasses, validated once, before any expensive work.

Every check fails with one line naming the key, the bad value and what is allowed, so a typo
in params.yaml costs seconds, not a training run.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from .errors import SqueezeError

DATA_SOURCES = ("cifar10", "folder", "synthetic")
QUANT_TYPES = ("fp32", "fp16", "int8")
SCHEDULES = ("cosine", "cosine_iter", "constant")  # cosine: stepped per epoch (the study's)
PRUNE_SCOPES = ("layerwise", "global")
PRUNE_CRITERIA = ("l1", "l2", "group_norm", "random")
PRUNE_LAYERS = ("all", "block-internal")
PRUNE_TARGETS = ("channels", "params", "ops")  # what a structured amount is a fraction of
ACTIVATION_OBSERVERS = ("histogram", "minmax")
INT8_ENGINES = ("x86", "fbgemm", "onednn", "qnnpack")  # torch.backends.quantized engines
SECTIONS = ("data", "model", "train", "prune", "finetune", "quantize", "evaluate", "sensitivity",
            "export")
EXPORT_FORMATS = ("auto", "onnx", "torchscript")  # auto: ONNX where the model has it, else TorchScript
EXPORT_SCORES = ("score", "score_seed")


class ConfigError(SqueezeError, ValueError):
    """A params value that is not allowed; the message is one line for the user."""


def load_params(path: str | Path = "params.yaml") -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: params file not found")
    try:
        params = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(params, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, got {type(params).__name__}")
    return params


def section(params: Mapping, dotted: str) -> dict:
    """The sub-mapping at `dotted` (e.g. "prune.structured"); a missing one is an error."""
    absent = object()
    node = dotted_get(params, dotted, absent)
    if node is absent:
        raise ConfigError(f"params.yaml: section '{dotted}' is missing")
    if not isinstance(node, Mapping):
        raise ConfigError(f"params.yaml: '{dotted}' must be a mapping, got {node!r}")
    return dict(node)


# ---- value checks: each returns the clean value or raises one line --------------------------

def _bad(key: str, value: Any, allowed: str) -> ConfigError:
    return ConfigError(f"params.yaml: {key} = {value!r} is not allowed; expected {allowed}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def positive_int(key: str, value: Any, at_most: int) -> int:
    """An integer in [1, at_most]: every count and size has an upper bound, so a slip of the
    keyboard (latency_threads: 100000) is one line here, not a crash hours later."""
    return _int_in(key, value, 1, at_most)


def non_negative_int(key: str, value: Any, at_most: int) -> int:
    return _int_in(key, value, 0, at_most)


def _int_in(key: str, value: Any, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise _bad(key, value, f"an integer from {low} to {high:,}")
    return value


# upper bounds of counts and sizes (far above any sensible run, below what breaks a process)
MAX_IMAGES = 10_000_000       # images in a split, a subset, a measurement
MAX_EPOCHS = 10_000
MAX_BATCH = 65_536            # images in one batch
MAX_THREADS = 256             # torch threads for latency (100,000 segfaulted torch)
MAX_SEED = 2 ** 32 - 1


def positive_float(key: str, value: Any) -> float:
    if not _is_number(value) or not math.isfinite(value) or value <= 0:
        raise _bad(key, value, "a number > 0")
    return float(value)


def non_negative_float(key: str, value: Any) -> float:
    if not _is_number(value) or not math.isfinite(value) or value < 0:
        raise _bad(key, value, "a number >= 0")
    return float(value)


def boolean(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _bad(key, value, "true or false")
    return value


def choice(key: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise _bad(key, value, "one of " + ", ".join(allowed))
    return value


def single_amount(key: str, item: Any) -> float:
    """One pruning amount: a number in [0, 1)."""
    if not _is_number(item) or not (0 <= item < 1):
        raise ConfigError(
            f"params.yaml: {key} contains {item!r}; each amount must be a number in [0, 1)")
    return float(item)


def amounts(key: str, value: Any) -> tuple[float, ...]:
    """A pruning grid: a non-empty list of distinct numbers in [0, 1)."""
    if not isinstance(value, (list, tuple)) or not value:
        raise _bad(key, value, "a non-empty list of numbers in [0, 1)")
    for item in value:
        single_amount(key, item)
    if len(set(value)) != len(value):
        dupes = sorted({v for v in value if list(value).count(v) > 1})
        raise ConfigError(f"params.yaml: {key} = {list(value)} repeats {dupes}; amounts must be distinct")
    return tuple(float(v) for v in value)


def quant_types(key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)) or not value:
        raise _bad(key, value, "a non-empty list of " + ", ".join(QUANT_TYPES))
    for item in value:
        choice(key, item, QUANT_TYPES)
    if len(set(value)) != len(value):
        raise ConfigError(f"params.yaml: {key} = {list(value)} repeats a type; types must be distinct")
    return tuple(value)


def _fraction_below_one(key: str, value: Any) -> float:
    if not _is_number(value) or not 0 < value < 1:
        raise _bad(key, value, "a number in (0, 1)")
    return float(value)


def _check_keys(prefix: str, given: Mapping, allowed: set[str],
                required: set[str] | None = None) -> None:
    """No unknown key under `prefix`, and every `required` one (default: all allowed) present."""
    unknown = sorted(set(given) - allowed)
    if unknown:
        raise ConfigError(
            f"params.yaml: unknown key {prefix}.{unknown[0]}; allowed keys: {', '.join(sorted(allowed))}")
    missing = sorted((allowed if required is None else required) - set(given))
    if missing:
        raise ConfigError(f"params.yaml: key {prefix}.{missing[0]} is missing")


def _fields(cls) -> set[str]:
    return {f.name for f in fields(cls)}


# ---- sections ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class DataConfig:
    source: str
    path: str
    train_subset: int  # 0 = the whole split
    test_subset: int
    synthetic_train_size: int
    synthetic_test_size: int
    seed: int

    @classmethod
    def from_params(cls, d: Mapping) -> "DataConfig":
        _check_keys("data", d, _fields(cls))
        source = choice("data.source", d["source"], DATA_SOURCES)
        if source == "folder" and (not isinstance(d["path"], str) or not d["path"]):
            raise _bad("data.path", d["path"], "a path to an ImageFolder tree or a .tar.gz of one")
        return cls(
            source=source,
            path=str(d["path"]),
            train_subset=non_negative_int("data.train_subset", d["train_subset"], MAX_IMAGES),
            test_subset=non_negative_int("data.test_subset", d["test_subset"], MAX_IMAGES),
            synthetic_train_size=positive_int("data.synthetic_train_size", d["synthetic_train_size"], MAX_IMAGES),
            synthetic_test_size=positive_int("data.synthetic_test_size", d["synthetic_test_size"], MAX_IMAGES),
            seed=non_negative_int("data.seed", d["seed"], MAX_SEED),
        )


@dataclass(frozen=True)
class ModelConfig:
    width: int
    num_classes: int

    @classmethod
    def from_params(cls, d: Mapping) -> "ModelConfig":
        _check_keys("model", d, _fields(cls))
        return cls(width=positive_int("model.width", d["width"], 1024),
                   num_classes=positive_int("model.num_classes", d["num_classes"], 100_000))


@dataclass(frozen=True)
class TrainConfig:
    epochs: int
    batch_size: int
    lr: float
    momentum: float
    weight_decay: float
    schedule: str  # cosine (per epoch, the study's) | cosine_iter (per step) | constant
    seed: int
    warmup_epochs: int = 0  # linear warm-up, stepped per iteration (cosine_iter or constant)
    deterministic: bool = False  # CUDA: deterministic kernels only (slower); CPU: no change

    @classmethod
    def from_params(cls, d: Mapping, prefix: str = "train") -> "TrainConfig":
        _check_keys(prefix, d, _fields(cls))
        return cls(**cls._train_values(d, prefix))

    @staticmethod
    def _train_values(d: Mapping, prefix: str) -> dict:
        momentum = non_negative_float(f"{prefix}.momentum", d["momentum"])
        if momentum >= 1:
            raise _bad(f"{prefix}.momentum", d["momentum"], "a number in [0, 1)")
        values = dict(
            epochs=positive_int(f"{prefix}.epochs", d["epochs"], MAX_EPOCHS),
            batch_size=positive_int(f"{prefix}.batch_size", d["batch_size"], MAX_BATCH),
            lr=positive_float(f"{prefix}.lr", d["lr"]),
            momentum=momentum,
            weight_decay=non_negative_float(f"{prefix}.weight_decay", d["weight_decay"]),
            schedule=choice(f"{prefix}.schedule", d["schedule"], SCHEDULES),
            seed=non_negative_int(f"{prefix}.seed", d["seed"], MAX_SEED),
            warmup_epochs=non_negative_int(f"{prefix}.warmup_epochs", d["warmup_epochs"], MAX_EPOCHS),
            deterministic=boolean(f"{prefix}.deterministic", d["deterministic"]),
        )
        if values["warmup_epochs"] >= values["epochs"]:
            raise _bad(f"{prefix}.warmup_epochs", d["warmup_epochs"],
                       f"an integer below {prefix}.epochs ({values['epochs']})")
        if values["warmup_epochs"] and values["schedule"] == "cosine":
            raise _bad(f"{prefix}.warmup_epochs", d["warmup_epochs"],
                       "0 with schedule: cosine (stepped per epoch); warm-up needs cosine_iter "
                       "or constant")
        return values


@dataclass(frozen=True)
class FinetuneConfig(TrainConfig):
    """A fine-tune after pruning: the training recipe, plus what helps a pruned net recover.
    Both default off, the study's method."""
    recalibrate_batches: int = 0  # BatchNorm statistics re-estimated on N training batches
    distill_alpha: float = 0.0  # weight of the distillation term (teacher: the unpruned model)
    distill_temperature: float = 4.0

    @classmethod
    def from_params(cls, d: Mapping, prefix: str = "finetune.structured") -> "FinetuneConfig":
        _check_keys(prefix, d, _fields(cls))
        alpha = non_negative_float(f"{prefix}.distill_alpha", d["distill_alpha"])
        if alpha > 1:
            raise _bad(f"{prefix}.distill_alpha", d["distill_alpha"], "a number in [0, 1]")
        return cls(**cls._train_values(d, prefix),
                   recalibrate_batches=non_negative_int(f"{prefix}.recalibrate_batches",
                                                        d["recalibrate_batches"], 100_000),
                   distill_alpha=alpha,
                   distill_temperature=positive_float(f"{prefix}.distill_temperature",
                                                      d["distill_temperature"]))


@dataclass(frozen=True)
class StructuredConfig:
    """How a structured stage prunes. The grid (`amounts`) is not here: a stage prunes at its own
    amount, and what it writes must not depend on which other amounts the grid holds."""
    scope: str
    criterion: str
    layers: str = "all"  # all | block-internal (only each block's first conv, Li et al.'s ResNet)
    rounds: int = 1  # iterative pruning: prune and fine-tune k times, the fine-tune epochs split
    target: str = "channels"  # an amount is a fraction of each layer's channels | params | ops
    spare_drop: float = 0.0  # spare groups whose sensitivity drop exceeds this; 0 = spare none
    round_to: int = 1  # channel counts left rounded down to a multiple (GPU-friendly widths)
    max_layer_amount: float = 0.9  # scope global: the most of its channels any one group loses
    residual_scale: float = 1.0  # residual-tied groups lose amount * this (layerwise, layers all)

    @classmethod
    def from_params(cls, d: Mapping) -> "StructuredConfig":
        _check_keys("prune.structured", d, _fields(cls) | {"amounts"}, required=_fields(cls))
        spare_drop = non_negative_float("prune.structured.spare_drop", d["spare_drop"])
        if spare_drop >= 1:
            raise _bad("prune.structured.spare_drop", d["spare_drop"],
                       "a number in [0, 1): an accuracy drop (fraction); 0 = spare no layer")
        scale = d["residual_scale"]
        if not _is_number(scale) or not 0 <= scale <= 1:
            raise _bad("prune.structured.residual_scale", scale,
                       "a number in [0, 1]: the share of the amount the residual-tied layers "
                       "lose; 1 = the same as every layer (the study)")
        scope = choice("prune.structured.scope", d["scope"], PRUNE_SCOPES)
        layers = choice("prune.structured.layers", d["layers"], PRUNE_LAYERS)
        if scale != 1 and (scope != "layerwise" or layers != "all"):
            raise _bad("prune.structured.residual_scale", scale,
                       f"1 with scope: {scope} and layers: {layers} (a residual scale needs "
                       "scope: layerwise and layers: all)")
        return cls(scope=scope,
                   criterion=choice("prune.structured.criterion", d["criterion"], PRUNE_CRITERIA),
                   layers=layers,
                   rounds=positive_int("prune.structured.rounds", d["rounds"], 100),
                   target=choice("prune.structured.target", d["target"], PRUNE_TARGETS),
                   spare_drop=spare_drop,
                   round_to=positive_int("prune.structured.round_to", d["round_to"], 1024),
                   max_layer_amount=_fraction_below_one("prune.structured.max_layer_amount",
                                                        d["max_layer_amount"]),
                   residual_scale=float(scale))

    def check_amount(self, amount: float) -> float:
        """One structured amount, checked against this method (global scope caps it)."""
        amount = single_amount("prune.structured.amounts", amount)
        if self.scope == "global" and amount > self.max_layer_amount:
            raise ConfigError(
                f"params.yaml: prune.structured.amounts contains {amount:g}; with scope: global "
                f"each amount must be <= prune.structured.max_layer_amount "
                f"({self.max_layer_amount:g}), the most any one layer may lose")
        return amount


@dataclass(frozen=True)
class SensitivityConfig:
    """Li et al.'s sensitivity analysis: each filter group pruned alone at each amount, no
    fine-tune, accuracy on `images` held-out training images (never test: the layers it finds
    sensitive steer pruning, so test images must not choose them)."""
    amounts: tuple[float, ...]
    images: int

    @classmethod
    def from_params(cls, d: Mapping) -> "SensitivityConfig":
        _check_keys("sensitivity", d, _fields(cls))
        found = amounts("sensitivity.amounts", d["amounts"])
        if 0 in found:
            raise _bad("sensitivity.amounts", d["amounts"], "amounts in (0, 1): 0 prunes nothing")
        return cls(amounts=tuple(sorted(found)),
                   images=positive_int("sensitivity.images", d["images"], MAX_IMAGES))


@dataclass(frozen=True)
class ExportConfig:
    """The export stage: the most accurate model within `budget` of `score`, exported."""
    budget: float
    score: str
    format: str
    images: int  # test images of the export's self-check

    @classmethod
    def from_params(cls, d: Mapping) -> "ExportConfig":
        _check_keys("export", d, _fields(cls))
        return cls(budget=positive_float("export.budget", d["budget"]),
                   score=choice("export.score", d["score"], EXPORT_SCORES),
                   format=choice("export.format", d["format"], EXPORT_FORMATS),
                   images=positive_int("export.images", d["images"], MAX_IMAGES))


@dataclass(frozen=True)
class UnstructuredConfig:
    scope: str

    @classmethod
    def from_params(cls, d: Mapping) -> "UnstructuredConfig":
        _check_keys("prune.unstructured", d, _fields(cls) | {"amounts"}, required=_fields(cls))
        return cls(scope=choice("prune.unstructured.scope", d["scope"], PRUNE_SCOPES))


@dataclass(frozen=True)
class Int8Config:
    calibration_batches: int
    calibration_batch_size: int
    activation_observer: str
    engine: str

    @classmethod
    def from_params(cls, d: Mapping) -> "Int8Config":
        _check_keys("quantize.int8", d, _fields(cls))
        return cls(
            calibration_batches=positive_int("quantize.int8.calibration_batches",
                                             d["calibration_batches"], 10_000),
            calibration_batch_size=positive_int("quantize.int8.calibration_batch_size",
                                                d["calibration_batch_size"], MAX_BATCH),
            activation_observer=choice("quantize.int8.activation_observer",
                                       d["activation_observer"], ACTIVATION_OBSERVERS),
            engine=choice("quantize.int8.engine", d["engine"], INT8_ENGINES))


@dataclass(frozen=True)
class EvaluateConfig:
    latency_threads: int
    latency_warmup: int
    latency_repeats: int

    @classmethod
    def from_params(cls, d: Mapping) -> "EvaluateConfig":
        _check_keys("evaluate", d, _fields(cls))
        return cls(
            latency_threads=positive_int("evaluate.latency_threads", d["latency_threads"], MAX_THREADS),
            latency_warmup=non_negative_int("evaluate.latency_warmup", d["latency_warmup"], 1_000),
            latency_repeats=positive_int("evaluate.latency_repeats", d["latency_repeats"], 10_000),
        )


def grid(params: Mapping) -> tuple[tuple[float, ...], tuple[float, ...], tuple[str, ...]]:
    """The (structured amounts, unstructured amounts, quant types) grid, validated."""
    structured = amounts("prune.structured.amounts", section(params, "prune.structured").get("amounts"))
    unstructured = amounts("prune.unstructured.amounts",
                           section(params, "prune.unstructured").get("amounts"))
    types = quant_types("quantize.types", section(params, "quantize").get("types"))
    return structured, unstructured, types


def validate(params: Mapping) -> None:
    """Every value of the whole params file, checked in well under a second (no torch, no data).

    Each stage calls this first (see cli.run), whatever part of the file it reads itself, so a
    bad value anywhere stops the first stage that runs: a bad pruning amount is reported before
    the baseline trains, not hours later by the stage that would use it.
    """
    _check_keys("params", params, set(SECTIONS))
    DataConfig.from_params(section(params, "data"))
    ModelConfig.from_params(section(params, "model"))
    TrainConfig.from_params(section(params, "train"), "train")
    _check_keys("prune", section(params, "prune"), {"structured", "unstructured"})
    _check_keys("finetune", section(params, "finetune"), {"structured", "unstructured"})
    for kind in ("structured", "unstructured"):
        FinetuneConfig.from_params(section(params, f"finetune.{kind}"), f"finetune.{kind}")
    structured_cfg = StructuredConfig.from_params(section(params, "prune.structured"))
    UnstructuredConfig.from_params(section(params, "prune.unstructured"))
    structured, _, _ = grid(params)
    for amount in structured:
        structured_cfg.check_amount(amount)
    finetune_epochs = section(params, "finetune.structured")["epochs"]
    if structured_cfg.rounds > finetune_epochs:
        raise _bad("prune.structured.rounds", structured_cfg.rounds,
                   f"at most finetune.structured.epochs ({finetune_epochs}): each round "
                   "fine-tunes for at least one epoch")
    _check_keys("quantize", section(params, "quantize"), {"types", *QUANT_TYPES})
    for quant in ("fp32", "fp16"):
        settings = section(params, f"quantize.{quant}")
        if settings:
            raise _bad(f"quantize.{quant}", settings, "{} (this type has no settings)")
    Int8Config.from_params(section(params, "quantize.int8"))
    EvaluateConfig.from_params(section(params, "evaluate"))
    SensitivityConfig.from_params(section(params, "sensitivity"))
    ExportConfig.from_params(section(params, "export"))


_MISSING = object()


def dotted_get(params: Mapping, key: str, default: Any = _MISSING) -> Any:
    """params["a"]["b"] for "a.b"; `default` where a part is absent (a KeyError without one)."""
    node: Any = params
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            if default is _MISSING:
                raise KeyError(key)
            return default
        node = node[part]
    return node


def dotted_set(params: dict, key: str, value: Any) -> None:
    """params["a"]["b"] = value for "a.b", creating mappings on the way."""
    *parents, last = key.split(".")
    node = params
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


def restrict(params: Mapping, keys: Sequence[str]) -> dict:
    """Only the dotted `keys` of params (each with all it holds): what a stage declares in
    dvc.yaml. A stage reads this view, so reading an undeclared key fails instead of silently
    making an output depend on a param DVC does not track."""
    view: dict = {}
    for key in keys:
        try:
            dotted_set(view, key, copy.deepcopy(dotted_get(params, key)))
        except KeyError:
            parent = dotted_get(params, key.rpartition(".")[0], {}) if "." in key else params
            known = ", ".join(parent) if isinstance(parent, Mapping) else ""
            raise ConfigError(f"params.yaml: key {key} is missing"
                              + (f"; there: {known}" if known else "")) from None
    return view


def amount_arg(text: str, key: str) -> float:
    """A stage's amount argument (from the dvc.yaml matrix): a number in [0, 1)."""
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"amount {text!r} is not a number; {key} holds numbers in [0, 1)") from None
    return single_amount(key, value)


def quant_arg(text: str) -> str:
    """A stage's quantization-type argument."""
    return choice("quantize.types", text, QUANT_TYPES)
