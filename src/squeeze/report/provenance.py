"""What produced a report's numbers: the data's size, the measured training time, the machine the
latencies come from, the software, the profile the params match, and every setting (generated from
the params schema). The report writes it at the top of tradeoff.md, so a copied report is labelled.

Reads params, the prepare summary and the report's rows and curves; imports no torch.
"""
from __future__ import annotations

import statistics
from importlib import metadata
from pathlib import Path
from dataclasses import fields
from typing import Any, Mapping, Sequence

from .. import profiles
from ..config import ARCH_DEFAULT, STUDY_NORMS, Hidden, Params, UndeclaredParam, value_at
from .tradeoff import score_norms

SOFTWARE = ("torch", "torchvision", "torch-pruning", "dvc")


def matching_profiles(params: Params, directory: Path = profiles.PROFILE_DIR) -> list[str]:
    """Names of the profiles a run applied, as far as params shows: those every override of
    which params holds (data.* aside: --data sets it), and those stacked under them: whose
    differing keys the matching ones all set, and that hold a value of their own none of those
    sets (`cpu` under `structured-fp32`). A profile without
    overrides (`methods/study`) names nothing and is left out."""
    directory = Path(directory)
    loaded = {name: profiles.load(name, directory) for name in profiles.known(directory)}

    def split(overrides: dict) -> tuple[set[str], set[str]]:
        """(keys params holds at the profile's value, keys it holds at another value); data.*
        and keys this stage's view does not hold are in neither."""
        same, other = set(), set()
        for key, value in overrides.items():
            if key.startswith("data."):
                continue
            try:
                (same if value_at(params, key) == value else other).add(key)
            except UndeclaredParam:
                continue
        return same, other

    kept = {name: split(overrides) for name, overrides in loaded.items() if overrides}
    full = [name for name, (same, other) in kept.items() if same and not other]
    covered = {key for name in full for key in loaded[name]}
    under = [name for name, (same, other) in kept.items()
             if name not in full and other <= covered and same - covered]
    return sorted(full + under)


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


def _spell(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_spell(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_spell(v)}" for k, v in value.items()) + "}"
    return str(value)


def settings(params: Params) -> list[tuple[str, str]]:
    """One row per params.yaml section, every setting in it (`key value`), generated from the
    schema's fields, so no setting can be left out of the Run table. A section the caller hides
    (a stage that does not declare it) is left out whole."""
    rows: list[tuple[str, str]] = []

    def walk(node: Any, prefix: str) -> None:
        cells, parts = [], []
        for name in sorted(getattr(node, "OWNED_ELSEWHERE", ())):
            value = value_at(params, f"{prefix}.{name}")  # a grid list, kept in params.grid
            if not isinstance(value, Hidden):
                cells.append(f"{name} {_spell(value)}")
        for f in fields(node):
            value = getattr(node, f.name)
            key = f"{prefix}.{f.name}" if prefix else f.name
            if "section" in f.metadata:
                parts.append((value, key))
            elif "rule" in f.metadata and not isinstance(value, Hidden) and value != {}:
                cells.append(f"{f.name} {_spell(value)}")
        if cells:
            rows.append((prefix, ", ".join(cells)))
        for value, key in parts:
            walk(value, key)

    walk(params, "")
    return rows


def _kwargs(kwargs) -> str:
    return f" ({', '.join(f'{k}={v}' for k, v in kwargs.items())})" if kwargs else ""


def score_line(rows: Sequence[Mapping]) -> str:
    """What the measured score divides the counts by, as the metrics recorded it (the report's
    reading: tradeoff.score_norms; metrics without them were scored on the study's)."""
    norms = score_norms(rows)
    p, o = norms or STUDY_NORMS
    which = "" if norms else " (the study's)"
    return f"nonzero_params x q_w/32 / {p:,.0f} + ops x max(q_w, q_a)/32 / {o:,.0f}{which}"


def describe(params: Params, prepared: Mapping, rows: Sequence[Mapping],
             curves: Sequence[Mapping], profiles_dir: Path = profiles.PROFILE_DIR
             ) -> list[tuple[str, str]]:
    """(what, value) lines of the run, in reading order: what was measured, then every setting."""
    matched = matching_profiles(params, profiles_dir)
    profile = (", ".join(f"`{name}` (profiles/{name}.yaml)" for name in matched) if matched
               else "none: params.yaml's own settings or other overrides")
    data = params.data
    source = "synthetic images" if data.source == "synthetic" else f"{data.source} `{data.path}`"
    baseline = next((r for r in rows if r["structured"] == 0 and r["unstructured"] == 0), None)
    size = f" ({baseline['params']:,} parameters)" if baseline else ""
    machines = sorted({f"{r['cpu']}, {r['latency_threads']} threads"
                       + (f", {r['latency_repeats']} timed runs" if r.get("latency_repeats") else "")
                       for r in rows if r.get("cpu")})
    computed = sorted({f"{r['device']} ({r['device_name']})" for r in rows if r.get("device")})
    return [
        ("profile", profile),
        ("images", f"{source}: {prepared['train_images']:,} train / "
                   f"{prepared['test_images']:,} test images"),
        ("network", (f"ResNet-18, width {params.model.width}{size}"
                     if params.model.arch == ARCH_DEFAULT
                     else f"{params.model.arch}{_kwargs(params.model.kwargs)}{size}")),
        ("score (measured)", score_line(rows)),
        ("training time (measured)", training_time(curves)),
        ("accuracy computed on", "; ".join(computed) or "unknown"),
        ("latency measured on", "; ".join(machines) or "unknown"),
        ("software (at report time)", software_versions()),
        *settings(params),
    ]
