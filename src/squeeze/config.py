"""params.yaml as one typed `Params`, declared once and validated once, before any expensive work.

Every setting is a dataclass field whose metadata holds its rule (the values allowed) and a one-line
doc; one generic parser walks the fields, so each rule and each allowed-value list is written once
here and nowhere else. `Params.parse` checks the whole file (no torch, no data: well under a second)
and fails with one line naming the dotted key, the bad value and what is allowed, so a typo in
params.yaml costs seconds, not a training run. Rules across fields live in each section's `rules`.

A stage reads `Params.only(keys)`: the settings it declares in dvc.yaml, every other one replaced
by a `Hidden` placeholder that raises on any use, so a read of an undeclared key fails in the
tests instead of making an output depend on a param DVC does not track.
"""
from __future__ import annotations

import copy
import math
import re
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import yaml

from .errors import SqueezeError

IMAGE_SIZE = 32               # CIFAR's, and the study's ResNet-18 head (it pools a 4x4 map)
DATA_SOURCES = ("cifar10", "cifar100", "folder", "synthetic")
QUANT_TYPES = ("fp32", "fp16", "int8")
# low-bit types, made by quantization-aware fine-tuning (lowbit.py): X-bit weights, Y-bit activations
LOW_BIT = re.compile(r"w([2-8])a([2-8])")
LOW_BIT_ALLOWED = ("wXaY with X (weight bits) and Y (activation bits) integers from 2 to 8, "
                   "e.g. w4a8, w4a4, w2a4")
MIXED_PREFIX = "wmix"  # a per-layer-bits model under budget b is type wmix<b> (quantize.mix_budgets)
SCHEDULES = ("cosine", "cosine_iter", "constant")  # cosine: stepped per epoch (the study's)
PRUNE_SCOPES = ("layerwise", "global")
PRUNE_CRITERIA = ("l1", "l2", "group_norm", "random")
PRUNE_LAYERS = ("all", "block-internal")
PRUNE_TARGETS = ("channels", "params", "ops")  # what a structured amount is a fraction of
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")  # onnxruntime.quantization's
INT8_ENGINES = ("onnxruntime", "openvino")  # what runs an int8 ONNX file (quantize.py)
EXPORT_FORMATS = ("auto", "onnx", "torchscript")  # auto: ONNX (every type has it)
EXPORT_SCORES = ("score", "score_seed")

# upper bounds of counts and sizes (far above any sensible run, below what breaks a process): a
# slip of the keyboard (latency_threads: 100000, which segfaulted torch) is one line, not a crash
MAX_IMAGES = 10_000_000       # images in a split, a subset, a measurement
MAX_EPOCHS = 10_000
MAX_BATCH = 65_536            # images in one batch
MAX_THREADS = 256
MAX_SEED = 2 ** 32 - 1


class ConfigError(SqueezeError, ValueError):
    """A params value that is not allowed; the message is one line for the user."""


def _bad(key: str, value: Any, allowed: str) -> ConfigError:
    return ConfigError(f"params.yaml: {key} = {value!r} is not allowed; expected {allowed}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# ---- rules: what one value may be ---------------------------------------------------------------

@dataclass(frozen=True)
class Rule:
    """The values a setting allows: `allowed` says it in words, `test` decides, `clean` converts."""
    allowed: str
    test: Callable[[Any], bool]
    convert: Callable[[Any], Any] = lambda value: value

    def check(self, key: str, value: Any) -> Any:
        if not self.test(value):
            raise _bad(key, value, self.allowed)
        return self.convert(value)


def integer(low: int, high: int) -> Rule:
    return Rule(f"an integer from {low} to {high:,}",
                lambda v: isinstance(v, int) and not isinstance(v, bool) and low <= v <= high)


def number(low: float = 0.0, high: float = math.inf, *, above: bool = False,
           below: bool = True) -> Rule:
    """A finite number from `low` (excluded if `above`) to `high` (excluded if `below`)."""
    if high == math.inf:
        allowed = f"a number {'>' if above else '>='} {low:g}"
    else:
        allowed = f"a number in {'(' if above else '['}{low:g}, {high:g}{')' if below else ']'}"
    return Rule(allowed, lambda v: _is_number(v) and math.isfinite(v)
                and (v > low if above else v >= low) and (v < high if below else v <= high), float)


def one_of(allowed: Sequence[str]) -> Rule:
    return Rule("one of " + ", ".join(allowed), lambda v: v in allowed)


FLAG = Rule("true or false", lambda v: isinstance(v, bool))
TEXT = Rule("a string", lambda v: isinstance(v, str))
NOTHING = Rule("{} (this type has no settings)", lambda v: v == {}, dict)
AMOUNT = number(0, 1)  # one pruning amount: a fraction in [0, 1)


@dataclass(frozen=True)
class ListRule:
    """A non-empty list of distinct items, each allowed by `item`."""
    item: Rule
    noun: str  # one item in words, for the errors ("amount")
    ordered: bool = False  # sorted ascending once parsed
    empty: bool = False  # [] allowed (an opt-in list)

    def check(self, key: str, value: Any) -> tuple:
        if not isinstance(value, (list, tuple)) or (not value and not self.empty):
            raise _bad(key, value, f"a {'' if self.empty else 'non-empty '}list of {self.noun}s, "
                       f"each {self.item.allowed}")
        for item in value:
            if not self.item.test(item):
                raise ConfigError(f"params.yaml: {key} contains {item!r}; each {self.noun} must "
                                  f"be {self.item.allowed}")
        if len(set(value)) != len(value):
            dupes = sorted({v for v in value if list(value).count(v) > 1})
            raise ConfigError(f"params.yaml: {key} = {list(value)} repeats {dupes}; "
                              f"{self.noun}s must be distinct")
        clean = tuple(self.item.convert(v) for v in value)
        return tuple(sorted(clean)) if self.ordered else clean


AMOUNTS = ListRule(AMOUNT, "amount")
QUANT_TYPE = Rule("one of " + ", ".join(QUANT_TYPES) + " (low-bit wXaY types go in quantize.qat_types)",
                  lambda v: v in QUANT_TYPES)  # one post-training quantization type
LOW_BIT_TYPE = Rule(LOW_BIT_ALLOWED, lambda v: isinstance(v, str) and LOW_BIT.fullmatch(v) is not None)


def low_bit_bits(quant: Any) -> tuple[int, int] | None:
    """(weight bits, activation bits) of a `wXaY` type; None for anything else."""
    found = LOW_BIT.fullmatch(quant) if isinstance(quant, str) else None
    return None if found is None else (int(found[1]), int(found[2]))


def setting(rule: Rule | ListRule, doc: str, default: Any = MISSING):
    """A leaf of params.yaml: its rule and its one-line doc (for errors, the docs, the Run table)."""
    return field(default=default, metadata={"rule": rule, "doc": doc})


def part(cls: type, doc: str):
    """A sub-section of params.yaml, parsed by its own class."""
    return field(metadata={"section": cls, "doc": doc})


# ---- the generic parser -------------------------------------------------------------------------

class Section:
    """A params.yaml mapping as a frozen dataclass. `OWNED_ELSEWHERE`: keys of this mapping that
    another part of Params reads (the grid's amounts sit beside how a stage prunes, but a stage's
    output must not depend on them)."""
    KEY = ""
    OWNED_ELSEWHERE: frozenset[str] = frozenset()

    @classmethod
    def from_params(cls, given: Any, prefix: str | None = None):
        """`given` (the mapping at dotted `prefix`, default the class's KEY) parsed and checked."""
        prefix = cls.KEY if prefix is None else prefix
        label = prefix or "params"
        if not isinstance(given, Mapping):
            raise ConfigError(f"params.yaml: '{label}' must be a mapping, got {given!r}")
        names = {f.name for f in fields(cls) if "derived" not in f.metadata}
        unknown = sorted(set(given) - names - cls.OWNED_ELSEWHERE)
        if unknown:
            raise ConfigError(f"params.yaml: unknown key {label}.{unknown[0]}; allowed keys: "
                              + ", ".join(sorted(names | cls.OWNED_ELSEWHERE)))
        values = {}
        for f in fields(cls):
            if "derived" in f.metadata:
                continue
            key = f"{prefix}.{f.name}" if prefix else f.name
            if f.name not in given:
                raise ConfigError(f"params.yaml: key {key} is missing")
            if "section" in f.metadata:
                values[f.name] = f.metadata["section"].from_params(given[f.name], key)
            else:
                values[f.name] = f.metadata["rule"].check(key, given[f.name])
        parsed = cls(**values)
        parsed.rules(prefix)
        return parsed

    def rules(self, prefix: str) -> None:
        """Checks across this section's fields (each raises one line)."""


def leaves(cls: type, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, field) of every setting under `cls`, in params.yaml's order."""
    for f in fields(cls):
        key = f"{prefix}.{f.name}" if prefix else f.name
        if "section" in f.metadata:
            yield from leaves(f.metadata["section"], key)
        elif "derived" in f.metadata:
            yield from ((g.metadata["key"], g) for g in fields(Grid) if g.name != "types")
        else:
            yield key, f


# ---- the sections -------------------------------------------------------------------------------

@dataclass(frozen=True)
class DataConfig(Section):
    KEY = "data"
    source: str = setting(one_of(DATA_SOURCES), "where the images come from")
    path: str = setting(TEXT, "cifar10/cifar100: download folder; folder: ImageFolder tree or "
                        ".tar.gz of one")
    train_subset: int = setting(integer(0, MAX_IMAGES), "train images kept; 0 = all")
    test_subset: int = setting(integer(0, MAX_IMAGES), "test images kept; 0 = all")
    synthetic_train_size: int = setting(integer(1, MAX_IMAGES), "synthetic train images")
    synthetic_test_size: int = setting(integer(1, MAX_IMAGES), "synthetic test images")
    seed: int = setting(integer(0, MAX_SEED), "subset choice and synthetic generation")
    image_size: int = setting(integer(8, 1024), "images resized to this square size at prepare "
                              "(32: CIFAR's own, no resize)", IMAGE_SIZE)

    def rules(self, prefix: str) -> None:
        if self.source == "folder" and not self.path:
            raise _bad(f"{prefix}.path", self.path, "a path to an ImageFolder tree or a .tar.gz of one")


ARCH_DEFAULT = "resnet18_cifar"
FACTORY = r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*"  # package.module:function
ARCH = re.compile(rf"{ARCH_DEFAULT}|torchvision:[A-Za-z_]\w*|{FACTORY}")
ARCH_ALLOWED = (f"{ARCH_DEFAULT} (the study's), torchvision:<name> (e.g. torchvision:mobilenet_v2) "
                "or <package.module>:<function> (a factory in nets/)")
RESNET_ONLY = {"layers": "all", "residual_scale": 1.0, "spare_drop": 0.0}  # prune.structured's


@dataclass(frozen=True)
class ModelConfig(Section):
    KEY = "model"
    width: int = setting(integer(1, 1024), "resnet18_cifar: stem channels; 64 = ResNet-18")
    num_classes: int = setting(integer(1, 100_000), "classes of the classifier")
    arch: str = setting(Rule(ARCH_ALLOWED, lambda v: isinstance(v, str) and ARCH.fullmatch(v)),
                        "the network", ARCH_DEFAULT)
    kwargs: dict = setting(Rule("a mapping of constructor arguments (e.g. {width_mult: 0.5})",
                                lambda v: isinstance(v, dict) and all(
                                    isinstance(k, str) and k.isidentifier() for k in v), dict),
                           "torchvision or factory constructor arguments", None)

    def rules(self, prefix: str) -> None:
        if self.kwargs and self.arch == ARCH_DEFAULT:
            raise _bad(f"{prefix}.kwargs", self.kwargs,
                       f"{{}} with arch {ARCH_DEFAULT} (its size is model.width)")

    def recorded(self) -> dict:
        """What a checkpoint records of these settings: the study's arch records what it did
        before model.arch existed (so its checkpoints are the same bytes)."""
        found = {"width": self.width, "num_classes": self.num_classes}
        if self.arch != ARCH_DEFAULT:
            found.update(arch=self.arch, kwargs=dict(self.kwargs or {}))
        return found


@dataclass(frozen=True)
class TrainConfig(Section):
    KEY = "train"
    epochs: int = setting(integer(1, MAX_EPOCHS), "epochs")
    batch_size: int = setting(integer(1, MAX_BATCH), "images per batch")
    lr: float = setting(number(0, above=True), "SGD learning rate at epoch 1")
    momentum: float = setting(number(0, 1), "SGD momentum")
    weight_decay: float = setting(number(0), "SGD weight decay")
    schedule: str = setting(one_of(SCHEDULES), "cosine (per epoch) | cosine_iter | constant")
    seed: int = setting(integer(0, MAX_SEED), "weight init, shuffling, augmentation")
    warmup_epochs: int = setting(integer(0, MAX_EPOCHS), "linear warm-up epochs", 0)
    deterministic: bool = setting(FLAG, "CUDA: deterministic kernels only", False)

    def rules(self, prefix: str) -> None:
        if self.warmup_epochs >= self.epochs:
            raise _bad(f"{prefix}.warmup_epochs", self.warmup_epochs,
                       f"an integer below {prefix}.epochs ({self.epochs})")
        if self.warmup_epochs and self.schedule == "cosine":
            raise _bad(f"{prefix}.warmup_epochs", self.warmup_epochs,
                       "0 with schedule: cosine (stepped per epoch); warm-up needs cosine_iter "
                       "or constant")


@dataclass(frozen=True)
class FinetuneConfig(TrainConfig):
    """A fine-tune after pruning: the training recipe, plus what helps a pruned net recover.
    Both default off, the study's method."""
    KEY = "finetune.structured"
    recalibrate_batches: int = setting(integer(0, 100_000), "BatchNorm re-estimated on N batches", 0)
    distill_alpha: float = setting(number(0, 1, below=False), "distillation weight; 0 = off", 0.0)
    distill_temperature: float = setting(number(0, above=True), "distillation temperature", 4.0)


@dataclass(frozen=True)
class StructuredConfig(Section):
    """How a structured stage prunes. The grid (`amounts`) is not here: a stage prunes at its own
    amount, and what it writes must not depend on which other amounts the grid holds."""
    KEY = "prune.structured"
    OWNED_ELSEWHERE = frozenset({"amounts"})
    scope: str = setting(one_of(PRUNE_SCOPES), "layerwise | global (one ranking)")
    criterion: str = setting(one_of(PRUNE_CRITERIA), "filter importance")
    layers: str = setting(one_of(PRUNE_LAYERS), "all | block-internal (Li et al.'s ResNet)", "all")
    rounds: int = setting(integer(1, 100), "prune + fine-tune rounds", 1)
    target: str = setting(one_of(PRUNE_TARGETS), "an amount is a fraction of this", "channels")
    spare_drop: float = setting(number(0, 1), "spare groups that drop more alone; 0 = none", 0.0)
    round_to: int = setting(integer(1, 1024), "channel counts rounded to a multiple", 1)
    max_layer_amount: float = setting(number(0, 1, above=True), "global: most a group loses", 0.9)
    residual_scale: float = setting(number(0, 1, below=False),
                                    "residual-tied groups lose amount * this", 1.0)

    def rules(self, prefix: str) -> None:
        if self.residual_scale != 1 and (self.scope != "layerwise" or self.layers != "all"):
            raise _bad(f"{prefix}.residual_scale", self.residual_scale,
                       f"1 with scope: {self.scope} and layers: {self.layers} (a residual scale "
                       "needs scope: layerwise and layers: all)")

    def check_amount(self, amount: float) -> float:
        """One structured amount (already a valid AMOUNT), against this method's global cap."""
        if self.scope == "global" and amount > self.max_layer_amount:
            raise ConfigError(
                f"params.yaml: prune.structured.amounts contains {amount:g}; with scope: global "
                f"each amount must be <= prune.structured.max_layer_amount "
                f"({self.max_layer_amount:g}), the most any one layer may lose")
        return amount


@dataclass(frozen=True)
class UnstructuredConfig(Section):
    KEY = "prune.unstructured"
    OWNED_ELSEWHERE = frozenset({"amounts"})
    scope: str = setting(one_of(PRUNE_SCOPES), "global (one threshold) | layerwise")


@dataclass(frozen=True)
class Int8Config(Section):
    KEY = "quantize.int8"
    calibration_batches: int = setting(integer(1, 10_000), "training batches that set ranges")
    calibration_batch_size: int = setting(integer(1, MAX_BATCH), "images per calibration batch")
    calibration_method: str = setting(one_of(CALIBRATION_METHODS), "activation range method")
    reduce_range: bool = setting(FLAG, "7-bit weights: exact on AVX2 CPUs without VNNI")
    engine: str = setting(one_of(INT8_ENGINES), "runtime that runs the int8 ONNX file")


@dataclass(frozen=True)
class QatConfig(Section):
    """How a low-bit (wXaY) type is made, besides its fine-tune recipe (finetune.qat)."""
    KEY = "quantize.qat"
    ends_bits: int = setting(integer(0, 8), "first conv and last linear bits; 0 = the type's")
    init_batches: int = setting(integer(1, 10_000), "training batches that fit the initial steps")

    def rules(self, prefix: str) -> None:
        if self.ends_bits == 1:
            raise _bad(f"{prefix}.ends_bits", self.ends_bits, "0 (the type's bits) or 2 to 8")


@dataclass(frozen=True)
class MixedConfig(Section):
    """Per-layer bits under a score budget (quantize.mix_budgets): each conv/linear between the
    ends gets one of `candidates`, chosen from the loss each candidate alone causes."""
    KEY = "quantize.mixed"
    candidates: tuple[str, ...] = setting(ListRule(LOW_BIT_TYPE, "type"), "bits a layer may get")
    images: int = setting(integer(1, MAX_IMAGES), "held-out training images of the sensitivity")

    def rules(self, prefix: str) -> None:
        if len(self.candidates) < 2:
            raise _bad(f"{prefix}.candidates", list(self.candidates),
                       "at least two wXaY types to choose between")


@dataclass(frozen=True)
class QatTrainConfig(TrainConfig):
    """The quantization-aware fine-tune of a low-bit type, from its grid model's weights."""
    KEY = "finetune.qat"
    distill_alpha: float = setting(number(0, 1, below=False), "distillation weight; 0 = off", 0.0)
    distill_temperature: float = setting(number(0, above=True), "distillation temperature", 4.0)


@dataclass(frozen=True)
class EvaluateConfig(Section):
    KEY = "evaluate"
    latency_threads: int = setting(integer(1, MAX_THREADS), "CPU threads for latency")
    latency_warmup: int = setting(integer(0, 1_000), "untimed runs before timing")
    latency_repeats: int = setting(integer(1, 10_000), "timed runs (median, quartiles)")


@dataclass(frozen=True)
class SensitivityConfig(Section):
    """Li et al.'s sensitivity analysis: each filter group pruned alone at each amount, no
    fine-tune, accuracy on `images` held-out training images (never test: the layers it finds
    sensitive steer pruning, so test images must not choose them)."""
    KEY = "sensitivity"
    amounts: tuple[float, ...] = setting(ListRule(AMOUNT, "amount", ordered=True),
                                         "amounts each group is pruned at alone")
    images: int = setting(integer(1, MAX_IMAGES), "held-out training images per accuracy")

    def rules(self, prefix: str) -> None:
        if 0 in self.amounts:
            raise _bad(f"{prefix}.amounts", list(self.amounts), "amounts in (0, 1): 0 prunes nothing")


@dataclass(frozen=True)
class ExportConfig(Section):
    """The export stage: the most accurate model within `budget` of `score`, exported."""
    KEY = "export"
    budget: float = setting(number(0, above=True), "the largest score allowed")
    score: str = setting(one_of(EXPORT_SCORES), "which score the budget is of")
    format: str = setting(one_of(EXPORT_FORMATS), "file format")
    images: int = setting(integer(1, MAX_IMAGES), "test images of the export's self-check")


SCORE_AUTO = "auto"  # a score normaliser: half the unpruned baseline's own count
NORM = Rule(f"a number > 0 or {SCORE_AUTO} (half the baseline's own count)",
            lambda v: v == SCORE_AUTO or (_is_number(v) and math.isfinite(v) and v > 0),
            lambda v: v if v == SCORE_AUTO else float(v))


@dataclass(frozen=True)
class ScoreConfig(Section):
    """score = nonzero_params * (q_w/32) / params_norm + ops * max(q_w, q_a) / 32 / ops_norm.
    The study's normalisers are 5.6e6 and 2.8e8 (its ResNet-18 scores 3.98778 in fp32); `auto`
    is half the unpruned baseline's own count, so any baseline scores 4.0 in fp32."""
    KEY = "score"
    params_norm: float | str = setting(NORM, "what the nonzero parameters are divided by")
    ops_norm: float | str = setting(NORM, "what the operations are divided by")

    @property
    def needs_baseline(self) -> bool:
        return SCORE_AUTO in (self.params_norm, self.ops_norm)


STUDY_NORMS = (5.6e6, 2.8e8)  # the study's (params_norm, ops_norm)


@dataclass(frozen=True)
class Prune(Section):
    KEY = "prune"
    structured: StructuredConfig = part(StructuredConfig, "filter pruning")
    unstructured: UnstructuredConfig = part(UnstructuredConfig, "magnitude pruning")


@dataclass(frozen=True)
class Finetune(Section):
    KEY = "finetune"
    structured: FinetuneConfig = part(FinetuneConfig, "after filter pruning")
    unstructured: FinetuneConfig = part(FinetuneConfig, "after magnitude pruning")
    qat: QatTrainConfig = part(QatTrainConfig, "quantization-aware, for low-bit types")


@dataclass(frozen=True)
class Quantize(Section):
    KEY = "quantize"
    types: tuple[str, ...] = setting(ListRule(QUANT_TYPE, "type"), "post-training types")
    qat_types: tuple[str, ...] = setting(ListRule(LOW_BIT_TYPE, "type", empty=True),
                                         "low-bit types made by quantization-aware fine-tuning")
    mix_budgets: tuple[float, ...] = setting(
        ListRule(number(0, 1, above=True, below=False), "budget", empty=True),
        "per-layer-bits models: score budgets as fractions of the model's int8 score")
    fp32: dict = setting(NOTHING, "no settings")
    fp16: dict = setting(NOTHING, "no settings")
    int8: Int8Config = part(Int8Config, "static post-training int8")
    qat: QatConfig = part(QatConfig, "low-bit types (wXaY)")
    mixed: MixedConfig = part(MixedConfig, "per-layer bits under a budget (wmix<b>)")


@dataclass(frozen=True)
class Grid:
    """The models the pipeline makes: structured x unstructured amounts x quantization types.
    Its lists sit in params.yaml beside the methods (each field's `key`), but a stage's output
    depends on its own grid item, never on the grid. Amounts are kept as params.yaml spells them
    (0, not 0.0): DVC names each stage's files from that spelling (see names.file_stem)."""
    structured: tuple[float, ...] = field(metadata={"key": "prune.structured.amounts"})
    unstructured: tuple[float, ...] = field(metadata={"key": "prune.unstructured.amounts"})
    types: tuple[str, ...] = field(metadata={"key": "quantize.types"})
    qat_types: tuple[str, ...] = field(default=(), metadata={"key": "quantize.qat_types"})
    mix_budgets: tuple = field(default=(), metadata={"key": "quantize.mix_budgets"})

    def __iter__(self):
        return iter((self.structured, self.unstructured, self.all_types))

    @property
    def all_types(self) -> tuple[str, ...]:
        """Post-training types, the low-bit (quantization-aware) ones, then the per-layer-bits
        ones, spelled as DVC spells `wmix${item.budget}` (the value as params.yaml holds it)."""
        return (tuple(self.types) + tuple(self.qat_types)
                + tuple(f"{MIXED_PREFIX}{b}" for b in self.mix_budgets))

    def points(self) -> list[tuple]:
        return [(s, u, q) for s in self.structured for u in self.unstructured
                for q in self.all_types]


@dataclass(frozen=True)
class Params(Section):
    """The whole params.yaml."""
    KEY = ""
    data: DataConfig = part(DataConfig, "the images")
    model: ModelConfig = part(ModelConfig, "the network")
    train: TrainConfig = part(TrainConfig, "baseline training")
    prune: Prune = part(Prune, "pruning methods")
    finetune: Finetune = part(Finetune, "fine-tunes after pruning")
    quantize: Quantize = part(Quantize, "post-training quantization")
    score: ScoreConfig = part(ScoreConfig, "what the score divides the counts by")
    evaluate: EvaluateConfig = part(EvaluateConfig, "latency measurement")
    sensitivity: SensitivityConfig = part(SensitivityConfig, "Li et al.'s sensitivity analysis")
    export: ExportConfig = part(ExportConfig, "the export stage")
    grid: Grid = field(default=None, metadata={"derived": True})

    @classmethod
    def parse(cls, raw: Any) -> "Params":
        """The whole file, every value and every rule across sections checked."""
        params = cls.from_params(raw)
        amounts = {}
        for kind in ("structured", "unstructured"):
            key = f"prune.{kind}.amounts"
            if "amounts" not in raw["prune"][kind]:
                raise ConfigError(f"params.yaml: key {key} is missing")
            AMOUNTS.check(key, raw["prune"][kind]["amounts"])
            amounts[kind] = tuple(raw["prune"][kind]["amounts"])
        params = replace(params, grid=Grid(amounts["structured"], amounts["unstructured"],
                                           params.quantize.types, params.quantize.qat_types,
                                           tuple(raw["quantize"]["mix_budgets"])))
        for amount in params.grid.structured:
            params.prune.structured.check_amount(amount)
        if params.model.arch == ARCH_DEFAULT and params.data.image_size != IMAGE_SIZE:
            raise _bad("data.image_size", params.data.image_size,
                       f"{IMAGE_SIZE} with model.arch {ARCH_DEFAULT} (its head pools a 4x4 map of "
                       f"{IMAGE_SIZE}x{IMAGE_SIZE} images); other sizes need another model.arch")
        if params.model.arch != ARCH_DEFAULT:
            if params.export.score == "score_seed":
                raise _bad("export.score", "score_seed",
                           f"score with model.arch {params.model.arch} (score_seed, the study's "
                           f"nominal formula, scales {ARCH_DEFAULT}'s counts)")
            for name, study in RESNET_ONLY.items():
                if getattr(params.prune.structured, name) != study:
                    raise _bad(f"prune.structured.{name}", getattr(params.prune.structured, name),
                               f"{study} with model.arch {params.model.arch} (the others are "
                               f"levers of the study's ResNet, {ARCH_DEFAULT})")
        if params.prune.structured.rounds > params.finetune.structured.epochs:
            raise _bad("prune.structured.rounds", params.prune.structured.rounds,
                       f"at most finetune.structured.epochs ({params.finetune.structured.epochs}): "
                       "each round fine-tunes for at least one epoch")
        return params

    def only(self, keys: Sequence[str]) -> "Params":
        """This Params with every setting outside the dotted `keys` Hidden (what a stage sees)."""
        known = {key for key, _ in leaves(Params)}
        for key in keys:
            if not any(_declared(k, [key]) for k in known):
                parent = key.rpartition(".")[0]
                there = sorted({k[len(parent) + 1:].split(".")[0] for k in known
                                if k.startswith(parent + ".")})
                raise ConfigError(f"params.yaml: key {key} is missing"
                                  + (f"; there: {', '.join(there)}" if there else ""))
        view = _hide(self, "", tuple(keys))
        grid = {f.name: getattr(self.grid, f.name) if _declared(f.metadata["key"], keys)
                else Hidden(f.metadata["key"]) for f in fields(Grid)}
        object.__setattr__(view, "grid", Grid(**grid))
        return view


def _declared(key: str, keys: Sequence[str]) -> bool:
    return any(key == k or key.startswith(k + ".") for k in keys)


def _hide(node: Any, prefix: str, keys: tuple[str, ...]) -> Any:
    if prefix and _declared(prefix, keys):
        return node
    view = copy.copy(node)
    for f in fields(node):
        key = f"{prefix}.{f.name}" if prefix else f.name
        if "section" in f.metadata:
            object.__setattr__(view, f.name, _hide(getattr(node, f.name), key, keys))
        elif "rule" in f.metadata and not _declared(key, keys):
            object.__setattr__(view, f.name, Hidden(key))
    return view


class Hidden:
    """A setting the stage did not declare in dvc.yaml: any use of it is a bug in the stage."""

    def __init__(self, key: str):
        object.__setattr__(self, "_key", key)

    def _fail(self, *_args, **_kwargs):
        raise UndeclaredParam(f"this stage read params key {object.__getattribute__(self, '_key')}, "
                              "which it does not declare in dvc.yaml (add it to the stage's "
                              "params and its script's PARAMS)")

    __getattr__ = __bool__ = __iter__ = __len__ = __float__ = __int__ = __index__ = _fail
    __eq__ = __lt__ = __le__ = __gt__ = __ge__ = __hash__ = __format__ = __str__ = _fail
    __add__ = __radd__ = __mul__ = __rmul__ = __sub__ = __rsub__ = __truediv__ = _fail
    __contains__ = __getitem__ = __deepcopy__ = __copy__ = __reduce_ex__ = _fail

    def __repr__(self) -> str:
        return f"Hidden({object.__getattribute__(self, '_key')!r})"


class UndeclaredParam(LookupError):
    """A stage read a params key it does not declare: a bug in the stage, not a user error."""


# ---- params.yaml as a file and as a tree of dicts -------------------------------------------------

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


def validate(params: Mapping) -> Params:
    """Every value of the whole params file, checked in well under a second (no torch, no data).

    Each stage calls this first (see cli.run), whatever part of the file it reads itself, so a
    bad value anywhere stops the first stage that runs: a bad pruning amount is reported before
    the baseline trains, not hours later by the stage that would use it.
    """
    return Params.parse(params)


def grid(params: Mapping) -> Grid:
    """The (structured amounts, unstructured amounts, quant types) grid of a raw params tree."""
    return Params.parse(params).grid


_MISSING = object()


def dotted_get(params: Mapping, key: str, default: Any = _MISSING) -> Any:
    """params["a"]["b"] for "a.b"; `default` where a part is absent (a KeyError without one)."""
    node: Any = params
    for name in key.split("."):
        if not isinstance(node, Mapping) or name not in node:
            if default is _MISSING:
                raise KeyError(key)
            return default
        node = node[name]
    return node


def dotted_set(params: dict, key: str, value: Any) -> None:
    """params["a"]["b"] = value for "a.b", creating mappings on the way."""
    *parents, last = key.split(".")
    node = params
    for name in parents:
        node = node.setdefault(name, {})
    node[last] = value


def dotted_delete(params: dict, key: str) -> None:
    """del params["a"]["b"] for "a.b" (a KeyError where it is absent)."""
    *parents, last = key.split(".")
    parent = dotted_get(params, ".".join(parents)) if parents else params
    if not isinstance(parent, dict) or last not in parent:
        raise KeyError(key)
    del parent[last]


def value_at(params: Params, key: str) -> Any:
    """The parsed value at a dotted key ("train.lr", "prune.structured.amounts"), lists as lists
    (to compare with YAML); None where params has no such key."""
    grid = {f.metadata["key"]: f.name for f in fields(Grid)}
    node: Any = params.grid if key in grid else params
    for name in ([grid[key]] if key in grid else key.split(".")):
        if not hasattr(type(node), "__dataclass_fields__") or name not in node.__dataclass_fields__:
            return None
        node = getattr(node, name)
    return list(node) if isinstance(node, tuple) else node


def amount_arg(text: str, key: str) -> float:
    """A stage's amount argument (from the dvc.yaml matrix), by the same rule as params.yaml's."""
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"amount {text!r} is not a number; {key} holds numbers in [0, 1)") from None
    return AMOUNT.check(key, value)


def quant_arg(text: str) -> str:
    """A stage's quantization-type argument."""
    return QUANT_TYPE.check("quantize.types", text)


def mix_budget_arg(text: str) -> float:
    """A qat_mixed stage's budget argument."""
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"budget {text!r} is not a number; quantize.mix_budgets holds numbers "
                          "in (0, 1]") from None
    return number(0, 1, above=True, below=False).check("quantize.mix_budgets", value)


def low_bit_arg(text: str) -> str:
    """A qat stage's low-bit type argument."""
    return LOW_BIT_TYPE.check("quantize.qat_types", text)
