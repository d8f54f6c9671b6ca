"""What produced a report's numbers: the settings that decide them (from params), the data's size,
the measured training time, the machine the latencies come from, the software, and the profile the
params match. The report writes it at the top of tradeoff.md, so a copied report is labelled.

Reads params, the prepare summary and the report's rows and curves; imports no torch.
"""
from __future__ import annotations

import statistics
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping, Sequence

from . import profiles
from .config import (DataConfig, FinetuneConfig, Int8Config, ModelConfig, StructuredConfig,
                     TrainConfig, UnstructuredConfig, dotted_get, grid, section)

SOFTWARE = ("torch", "torchvision", "torch-pruning", "dvc")
def matching_profiles(params: Mapping, directory: Path = profiles.PROFILE_DIR) -> list[str]:
    """Names of the profiles every override of which params holds (data.* aside: --data sets it)."""
    names = []
    for path in sorted(Path(directory).glob("*.yaml")):
        overrides = profiles.load(path.stem, Path(directory))
        if all(dotted_get(params, key, None) == value for key, value in overrides.items()
               if not key.startswith("data.")):
            names.append(path.stem)
    return names


def software_versions(packages: Sequence[str] = SOFTWARE) -> str:
    found = []
    for name in packages:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name} not installed")
    return ", ".join(found)


def training_time(curves: Sequence[Mapping]) -> str:
    """Measured time of the baseline and of all fine-tunes, from the per-epoch logs."""
    baseline = [c for c in curves if c["stage"] == "baseline"]
    finetunes = [c for c in curves if c["stage"] != "baseline"]
    if not baseline:
        return "no baseline log"
    speed = statistics.median(c["images_per_second"] for c in baseline)
    runs = len({c["run"] for c in finetunes})
    return (f"baseline {_minutes(baseline)} ({len(baseline)} epochs, median {speed:.0f} images/s); "
            f"{runs} fine-tunes {_minutes(finetunes)} in all (evaluation, pruning and "
            "quantization not included)")


def _minutes(curves: Sequence[Mapping]) -> str:
    return f"{sum(c['epoch_seconds'] for c in curves) / 60:.1f} min"


def _amounts(values: Sequence[float]) -> str:
    return "[" + ", ".join(f"{v:g}" for v in values) + "]"


def _recipe(cfg: TrainConfig) -> str:
    text = (f"{cfg.epochs} epoch{'s' * (cfg.epochs != 1)}, batch {cfg.batch_size}, SGD lr "
            f"{cfg.lr:g} {cfg.schedule}, momentum {cfg.momentum:g}, weight decay "
            f"{cfg.weight_decay:g}")
    if cfg.warmup_epochs:
        text += f", {cfg.warmup_epochs}-epoch warm-up"
    if isinstance(cfg, FinetuneConfig) and cfg.recalibrate_batches:
        text += f", BN recalibrated on {cfg.recalibrate_batches} batches"
    if isinstance(cfg, FinetuneConfig) and cfg.distill_alpha:
        text += f", distilled (alpha {cfg.distill_alpha:g}, T {cfg.distill_temperature:g})"
    return text


def describe(params: Mapping, prepared: Mapping, rows: Sequence[Mapping],
             curves: Sequence[Mapping], profiles_dir: Path = profiles.PROFILE_DIR
             ) -> list[tuple[str, str]]:
    """(setting, value) lines of the run, in reading order."""
    data = DataConfig.from_params(section(params, "data"))
    model = ModelConfig.from_params(section(params, "model"))
    train = TrainConfig.from_params(section(params, "train"))
    ft_s = FinetuneConfig.from_params(section(params, "finetune.structured"),
                                      "finetune.structured")
    ft_u = FinetuneConfig.from_params(section(params, "finetune.unstructured"),
                                   "finetune.unstructured")
    structured = StructuredConfig.from_params(section(params, "prune.structured"))
    unstructured = UnstructuredConfig.from_params(section(params, "prune.unstructured"))
    structured_amounts, unstructured_amounts, types = grid(params)
    int8 = Int8Config.from_params(section(params, "quantize.int8"))

    matched = matching_profiles(params, profiles_dir)
    profile = (", ".join(f"`{name}` (profiles/{name}.yaml)" for name in matched) if matched
               else "none: params.yaml's own settings or other overrides")
    source = "synthetic images" if data.source == "synthetic" else f"{data.source} `{data.path}`"
    baseline = next((r for r in rows if r["structured"] == 0 and r["unstructured"] == 0), None)
    size = f" ({baseline['params']:,} parameters)" if baseline else ""
    quant = ", ".join(types)
    if "int8" in types:
        quant += (f" (int8: {int8.activation_observer} observer, {int8.calibration_batches} x "
                  f"{int8.calibration_batch_size} calibration images)")
    machines = sorted({f"{r['cpu']}, {r['latency_threads']} threads"
                       + (f", {r['latency_repeats']} timed runs" if r.get("latency_repeats") else "")
                       for r in rows if r.get("cpu")})
    computed = sorted({f"{r['device']} ({r['device_name']})" for r in rows if r.get("device")})
    return [
        ("profile", profile),
        ("data", f"{source}: {prepared['train_images']:,} train / "
                 f"{prepared['test_images']:,} test images"),
        ("model", f"ResNet-18, width {model.width}{size}"),
        ("baseline training", _recipe(train)),
        ("structured fine-tune", _recipe(ft_s)),
        ("unstructured fine-tune", _recipe(ft_u)),
        ("pruning", f"structured {structured.criterion} {structured.scope}"
                    + ("" if structured.layers == "all" else f" {structured.layers}")
                    + (f" in {structured.rounds} rounds" if structured.rounds > 1 else "")
                    + (f", amounts are fractions of {structured.target}"
                       if structured.target != "channels" else "")
                    + (f", sparing groups that lose > {structured.spare_drop:g} alone"
                       if structured.spare_drop else "")
                    + (f", channels rounded to multiples of {structured.round_to}"
                       if structured.round_to > 1 else "")
                    + (f", at most {structured.max_layer_amount:g} of any group"
                       if structured.scope == "global" else "")
                    + (f", residual-tied layers at {structured.residual_scale:g} x the amount"
                       if structured.residual_scale != 1 else "")
                    + f" at {_amounts(structured_amounts)}; unstructured magnitude "
                    f"{unstructured.scope} at {_amounts(unstructured_amounts)}"),
        ("quantization", quant),
        ("training time (measured)", training_time(curves)),
        ("accuracy computed on", "; ".join(computed) or "unknown"),
        ("latency measured on", "; ".join(machines) or "unknown"),
        ("software (at report time)", software_versions()),
    ]
