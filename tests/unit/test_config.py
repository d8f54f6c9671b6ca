"""config: params.yaml sections -> validated dataclasses; every bad value is a one-line ConfigError
that names the key and the value."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest

from squeeze import config
from squeeze.config import (ConfigError, DataConfig, EvaluateConfig, FinetuneConfig, Int8Config,
                            ModelConfig, SensitivityConfig, StructuredConfig, TrainConfig,
                            UnstructuredConfig, validate)

PARAMS_FILE = Path(__file__).resolve().parents[2] / "params.yaml"


@pytest.fixture
def params() -> dict:
    """A fresh deep copy of the project's params.yaml, safe to modify."""
    return copy.deepcopy(config.load_params(PARAMS_FILE))


def with_value(params: dict, dotted: str, value) -> dict:
    """params with the dotted key set to `value`."""
    config.dotted_set(params, dotted, value)
    return params


def assert_config_error(call, *fragments: str) -> str:
    with pytest.raises(ConfigError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message, "errors are meant to be one line"
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


# ---- the real params.yaml is valid ----------------------------------------------------------

def test_project_params_are_valid(params):
    """params.yaml parses; values are compared with the raw YAML, not hard-coded, because
    experiments (dvc exp run -S ...) rewrite params.yaml in the workspace."""
    raw = copy.deepcopy(params)
    data = DataConfig.from_params(params["data"])
    assert data.source in config.DATA_SOURCES
    assert (data.train_subset, data.seed) == (raw["data"]["train_subset"], raw["data"]["seed"])
    model = ModelConfig.from_params(params["model"])
    assert (model.width, model.num_classes) == (raw["model"]["width"], raw["model"]["num_classes"])
    train = TrainConfig.from_params(params["train"])
    assert train.lr == raw["train"]["lr"] and isinstance(train.lr, float)
    assert train.epochs == raw["train"]["epochs"]
    parsed = config.Params.parse(params)
    for kind in ("structured", "unstructured"):
        ft = getattr(parsed.finetune, kind)
        assert isinstance(ft, FinetuneConfig) and ft.epochs == raw["finetune"][kind]["epochs"]
        assert getattr(parsed.grid, kind) == tuple(raw["prune"][kind]["amounts"])
    assert parsed.prune.structured.scope == raw["prune"]["structured"]["scope"]
    assert parsed.quantize.int8.engine == raw["quantize"]["int8"]["engine"]
    assert parsed.evaluate.latency_repeats == raw["evaluate"]["latency_repeats"]
    assert parsed.grid.types == tuple(raw["quantize"]["types"])
    assert params == raw, "parsing does not modify the params"


def test_study_defaults_parse():
    """The study's settings as a dict: the exact dataclass values."""
    study = {"epochs": 200, "batch_size": 128, "lr": 0.01, "momentum": 0.9,
             "weight_decay": 0.0005, "schedule": "cosine", "seed": 0, "warmup_epochs": 0,
             "deterministic": False}
    assert TrainConfig.from_params(study) == TrainConfig(200, 128, 0.01, 0.9, 0.0005, "cosine", 0)
    finetune = {**study, "recalibrate_batches": 0, "distill_alpha": 0, "distill_temperature": 4}
    assert FinetuneConfig.from_params(finetune) == FinetuneConfig(200, 128, 0.01, 0.9, 0.0005,
                                                                  "cosine", 0)
    assert (ModelConfig.from_params({"width": 64, "num_classes": 10, "arch": "resnet18_cifar",
                                     "kwargs": {}})
            == ModelConfig(64, 10, "resnet18_cifar", {}))
    # the grid (amounts) is not part of how a stage prunes: a stage's output must not depend on it
    assert StructuredConfig.from_params(
        {"amounts": [0, 0.1, 0.3, 0.5, 0.7], "scope": "layerwise", "criterion": "l1",
         "layers": "all", "rounds": 1, "target": "channels", "spare_drop": 0, "round_to": 1,
         "max_layer_amount": 0.9, "residual_scale": 1}
    ) == StructuredConfig("layerwise", "l1", "all", 1, "channels", 0.0, 1, 0.9, 1.0)
    assert Int8Config.from_params({"calibration_batches": 8, "calibration_batch_size": 128,
                                   "calibration_method": "minmax", "reduce_range": True,
                                   "engine": "openvino"}) == \
        Int8Config(8, 128, "minmax", True, "openvino")
    assert EvaluateConfig.from_params({"latency_threads": 2, "latency_warmup": 3,
                                       "latency_repeats": 10}) == EvaluateConfig(2, 3, 10)


# ---- data -------------------------------------------------------------------------------------

def test_unknown_data_source_is_named(params):
    with_value(params, "data.source", "imagenet")
    assert_config_error(lambda: DataConfig.from_params(params["data"]),
                        "data.source", "'imagenet'", "cifar10, cifar100, folder, synthetic")


@pytest.mark.parametrize("path", ["", None])
def test_folder_source_needs_a_path(params, path):
    with_value(params, "data.source", "folder")
    with_value(params, "data.path", path)
    assert_config_error(lambda: DataConfig.from_params(params["data"]), "data.path", repr(path))


@pytest.mark.parametrize("key, value", [("train_subset", -1), ("seed", 1.5),
                                        ("synthetic_train_size", 0), ("test_subset", True)])
def test_bad_data_counts(params, key, value):
    with_value(params, f"data.{key}", value)
    assert_config_error(lambda: DataConfig.from_params(params["data"]), f"data.{key}", repr(value))


# ---- model and train --------------------------------------------------------------------------

@pytest.mark.parametrize("value", [0, -8, 8.0, "64", True])
def test_model_width_must_be_a_positive_integer(params, value):
    with_value(params, "model.width", value)
    assert_config_error(lambda: ModelConfig.from_params(params["model"]),
                        "model.width", repr(value), "integer from 1 to")


@pytest.mark.parametrize("key, value, allowed", [
    ("epochs", 0, "integer from 1 to"),
    ("epochs", -3, "integer from 1 to"),
    ("epochs", 2.5, "integer from 1 to"),
    ("batch_size", 0, "integer from 1 to"),
    ("batch_size", -128, "integer from 1 to"),
    ("lr", 0, "number > 0"),
    ("lr", -0.1, "number > 0"),
    ("lr", float("nan"), "number > 0"),
    ("lr", float("inf"), "number > 0"),
    ("lr", "0.1", "number > 0"),
    ("momentum", 1.0, "[0, 1)"),
    ("momentum", -0.5, "a number in [0, 1)"),
    ("weight_decay", -1e-4, "number >= 0"),
    ("schedule", "step", "cosine, cosine_iter, constant"),
])
def test_bad_train_values_are_named(params, key, value, allowed):
    with_value(params, f"train.{key}", value)
    assert_config_error(lambda: TrainConfig.from_params(params["train"]),
                        f"train.{key}", repr(value), allowed)


def test_train_errors_use_the_given_prefix(params):
    section = params["finetune"]["structured"]
    section["epochs"] = 0
    assert_config_error(lambda: FinetuneConfig.from_params(section, prefix="finetune.structured"),
                        "finetune.structured.epochs = 0")


def test_integer_lr_is_accepted_as_float(params):
    with_value(params, "train.lr", 1)
    cfg = TrainConfig.from_params(params["train"])
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float)


# ---- keys -------------------------------------------------------------------------------------

@pytest.mark.parametrize("section_name, typo, cls", [
    ("train", "learning_rate", TrainConfig),
    ("model", "widht", ModelConfig),
    ("data", "sorce", DataConfig),
    ("evaluate", "latency_repeat", EvaluateConfig),
])
def test_unknown_key_is_named(params, section_name, typo, cls):
    params[section_name][typo] = 1
    assert_config_error(lambda: cls.from_params(params[section_name]),
                        f"unknown key {section_name}.{typo}", "allowed keys")


def test_missing_key_is_named(params):
    del params["train"]["momentum"]
    assert_config_error(lambda: TrainConfig.from_params(params["train"]),
                        "key train.momentum is missing")


def test_missing_section_is_named(params):
    del params["prune"]["structured"]
    assert_config_error(lambda: config.validate(params), "key prune.structured is missing")


# ---- pruning amounts and quant types -----------------------------------------------------------

def test_amounts_accepts_a_valid_grid():
    assert config.AMOUNTS.check("k", [0, 0.25, 0.999]) == (0.0, 0.25, 0.999)


@pytest.mark.parametrize("value, fragment", [
    ([0, 1.0], "contains 1.0"),
    ([0, -0.1], "contains -0.1"),
    ([0.5, 1], "contains 1;"),
    ([0.1, "0.3"], "contains '0.3'"),
    ([0.1, None], "contains None"),
    ([True], "contains True"),
    ([0.1, float("nan")], "contains nan"),
    ([0.1, 0.3, 0.1], "repeats [0.1]"),
    ([0, 0.0], "repeats [0]"),
    ([], "[]"),
    (0.3, "0.3"),
    (None, "None"),
])
def test_bad_amounts_are_named(value, fragment):
    assert_config_error(lambda: config.AMOUNTS.check("prune.structured.amounts", value),
                        "prune.structured.amounts", fragment)


def test_amounts_error_via_params(params):
    with_value(params, "prune.unstructured.amounts", [0, 0.5, 0.5])
    assert_config_error(lambda: config.grid(params), "prune.unstructured.amounts", "repeats [0.5]")


@pytest.mark.parametrize("value, fragment", [
    (["fp32", "int4"], "'int4'"),
    (["bf16"], "'bf16'"),
    (["fp32", "fp32"], "repeats ['fp32']; types must be distinct"),
    ([], "non-empty list"),
    ("fp32", "'fp32'"),
])
def test_bad_quant_types_are_named(params, value, fragment):
    with_value(params, "quantize.types", value)
    assert_config_error(lambda: config.validate(params), "quantize.types", fragment)


def test_quant_types_accepts_all_known_types(params):
    with_value(params, "quantize.types", ["int8", "fp32"])
    assert config.validate(params).grid.types == ("int8", "fp32")


# ---- stage amount arguments -------------------------------------------------------------------

def test_amount_arg():
    assert config.amount_arg("0.1", "k") == 0.1
    assert config.amount_arg("5e-1", "k") == 0.5
    assert_config_error(lambda: config.amount_arg("1.2", "prune.x"), "1.2", "prune.x", "[0, 1)")
    assert_config_error(lambda: config.amount_arg("half", "k"), "'half'", "not a number")


def test_quant_arg():
    assert config.quant_arg("int8") == "int8"
    assert_config_error(lambda: config.quant_arg("int4"), "'int4'", "fp32, fp16, int8")


# ---- the whole file, checked by every stage before any work ----------------------------------

@pytest.mark.parametrize("key, value, fragments", [
    ("prune.structured.amounts", [0, 0.1, 1.2], ["prune.structured.amounts", "1.2", "[0, 1)"]),
    ("prune.unstructured.scope", "everywhere", ["prune.unstructured.scope", "'everywhere'"]),
    ("quantize.int8.engine", "x86", ["quantize.int8.engine", "'x86'", "openvino", "onnxruntime"]),
    ("quantize.int8.calibration_method", "mean", ["calibration_method", "'mean'", "minmax"]),
    ("quantize.int8.reduce_range", "yes", ["quantize.int8.reduce_range", "'yes'", "true or false"]),
    ("quantize.fp16", {"bits": 16}, ["quantize.fp16", "no settings"]),
    ("quantize.types", ["fp32", "int4"], ["quantize.types", "'int4'"]),
    ("finetune.unstructured.lr", -1, ["finetune.unstructured.lr", "-1", "> 0"]),
    ("finetune.structured.distill_alpha", 1.5, ["finetune.structured.distill_alpha", "[0, 1]"]),
    ("finetune.structured.recalibrate_batches", -1, ["recalibrate_batches", "from 0 to"]),
    ("evaluate.latency_threads", 100000, ["evaluate.latency_threads", "100000", "from 1 to 256"]),
    ("evaluate.latency_repeats", 10 ** 12, ["evaluate.latency_repeats", "from 1 to 10,000"]),
    ("train.batch_size", 10 ** 9, ["train.batch_size", "from 1 to 65,536"]),
    ("data.train_subset", 10 ** 9, ["data.train_subset", "from 0 to 10,000,000"]),
    ("quantize.int8.calibration_batches", 10 ** 6, ["calibration_batches", "from 1 to 10,000"]),
    ("finetune.structured.warmup_epochs", 1, ["warmup_epochs", "schedule: cosine"]),
    ("train.warmup_epochs", 500, ["train.warmup_epochs", "below train.epochs (200)"]),
    ("prune.structured.layers", "first", ["prune.structured.layers", "all, block-internal"]),
    ("prune.structured.rounds", 31, ["prune.structured.rounds", "at most finetune.structured.epochs (30)"]),
    ("prune.structured.criterion", "taylor", ["criterion", "l1, l2, group_norm, random"]),
    ("evaluate.latency_repeats", 0, ["evaluate.latency_repeats", "from 1 to"]),
    ("evaluate.batch_size", 500, ["unknown key evaluate.batch_size"]),
    ("extra", {"a": 1}, ["unknown key params.extra", "allowed keys"]),
    ("prune.structured.max_layer_amount", 1, ["prune.structured.max_layer_amount", "(0, 1)"]),
    ("prune.structured.residual_scale", 2, ["prune.structured.residual_scale", "2", "[0, 1]"]),
    ("prune.structured.residual_scale", "half", ["prune.structured.residual_scale", "'half'"]),
    ("prune.structured.scope", "global", []),
])
def test_validate_names_any_bad_value(params, key, value, fragments):
    if key == "prune.structured.scope":  # global scope caps the grid's amounts at the cap
        with_value(params, "prune.structured.amounts", [0, 0.5, 0.95])
        fragments = ["prune.structured.amounts", "0.95", "max_layer_amount (0.9)", "scope: global"]
    with_value(params, key, value)
    assert_config_error(lambda: config.validate(params), *fragments)


def test_residual_scale_needs_layerwise_scope_and_all_layers(params):
    with_value(params, "prune.structured.residual_scale", 0.5)
    config.validate(params)  # the study's scope and layers take it
    with_value(params, "prune.structured.layers", "block-internal")
    assert_config_error(lambda: config.validate(params), "prune.structured.residual_scale = 0.5",
                        "layers: block-internal", "scope: layerwise and layers: all")
    with_value(params, "prune.structured.layers", "all")
    with_value(params, "prune.structured.scope", "global")
    assert_config_error(lambda: config.validate(params), "residual_scale = 0.5", "scope: global")


def test_validate_names_a_missing_section(params):
    del params["evaluate"]
    assert_config_error(lambda: config.validate(params), "evaluate", "missing")


def test_a_view_keeps_only_declared_keys(params):
    parsed = config.validate(params)
    view = parsed.only(["prune.structured.scope", "finetune.structured"])
    assert view.prune.structured.scope == parsed.prune.structured.scope
    assert view.finetune.structured == parsed.finetune.structured
    for read in (lambda: view.prune.structured.criterion, lambda: view.finetune.unstructured.lr,
                 lambda: view.grid.types, lambda: view.train):
        with pytest.raises(config.UndeclaredParam):
            hidden = read()
            bool(hidden) if not isinstance(hidden, config.Section) else hidden.epochs + 0
    assert parsed.prune.structured.criterion == params["prune"]["structured"]["criterion"]
    assert_config_error(lambda: parsed.only(["quantize.int4"]), "quantize.int4", "missing")


def test_dotted_keys():
    tree = {"a": {"b": 1}}
    assert config.dotted_get(tree, "a.b") == 1
    assert config.dotted_get(tree, "a.c", None) is None
    with pytest.raises(KeyError):
        config.dotted_get(tree, "x.y")
    config.dotted_set(tree, "x.y", 2)
    assert tree == {"a": {"b": 1}, "x": {"y": 2}}


# ---- params file ------------------------------------------------------------------------------

def test_load_params_errors(tmp_path):
    missing = tmp_path / "nope.yaml"
    assert_config_error(lambda: config.load_params(missing), str(missing), "not found")
    broken = tmp_path / "broken.yaml"
    broken.write_text("train: [1, 2\n")
    assert_config_error(lambda: config.load_params(broken), "not valid YAML")
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("42\n")
    assert_config_error(lambda: config.load_params(scalar), "expected a mapping", "int")


# ---- levers added for better fronts and the GPU -----------------------------------------------

@pytest.mark.parametrize("key, value, allowed", [
    ("train.deterministic", "yes", "true or false"),
    ("finetune.structured.deterministic", 1, "true or false"),
    ("prune.structured.target", "flops", "one of channels, params, ops"),
    ("prune.structured.spare_drop", 1.0, "a number in [0, 1)"),
    ("prune.structured.spare_drop", -0.1, "a number in [0, 1)"),
    ("prune.structured.round_to", 0, "an integer from 1 to"),
    ("sensitivity.amounts", [0, 0.5], "amounts in (0, 1)"),
    ("sensitivity.amounts", [0.5, 1.0], "each amount must be a number in [0, 1)"),
    ("sensitivity.images", 0, "an integer from 1 to"),
    ("export.budget", 0, "a number > 0"),
    ("export.format", "tflite", "one of auto, onnx, torchscript"),
    ("export.score", "flops", "one of score, score_seed"),
])
def test_new_levers_are_validated_with_the_whole_file(params, key, value, allowed):
    with_value(params, key, value)
    assert_config_error(lambda: validate(params), key, allowed)


def test_sensitivity_amounts_are_sorted():
    assert SensitivityConfig.from_params({"amounts": [0.9, 0.1, 0.5], "images": 10}) == \
        SensitivityConfig((0.1, 0.5, 0.9), 10)


# ---- score normalisers ----------------------------------------------------------------------

def test_score_normalisers_default_to_the_studys(params):
    parsed = validate(params)
    assert (parsed.score.params_norm, parsed.score.ops_norm) == config.STUDY_NORMS == (5.6e6, 2.8e8)
    assert not parsed.score.needs_baseline


@pytest.mark.parametrize("key", ["score.params_norm", "score.ops_norm"])
def test_score_normalisers_take_auto_or_a_positive_number(params, key):
    parsed = validate(with_value(copy.deepcopy(params), key, "auto"))
    assert parsed.score.needs_baseline
    assert (parsed.score.params_norm, parsed.score.ops_norm) != config.STUDY_NORMS
    assert validate(with_value(copy.deepcopy(params), key, 1e6)).score.needs_baseline is False
    for bad in (0, -5.6e6, "half", True, float("inf"), None):
        assert_config_error(lambda: validate(with_value(copy.deepcopy(params), key, bad)),
                            key, repr(bad), "a number > 0 or auto")


def test_a_params_file_without_the_score_section_names_it(params):
    del params["score"]
    assert_config_error(lambda: validate(params), "key score is missing")
