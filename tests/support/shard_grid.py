"""A grid's stages as `dvc stage list` names them, built by hand for the shard planner's tests."""
from __future__ import annotations

from pathlib import Path

from squeeze.config import load_params, validate
from squeeze.sharding.shard import Stage


REPO = Path(__file__).resolve().parents[2]


PARAMS = validate(load_params(REPO / "params.yaml"))


def grid_stages(structured=(0, 0.5), unstructured=(0, 0.5), quant=("fp32", "int8")):
    stages = [Stage("prepare"), Stage("train", ("prepare",)), Stage("sensitivity", ("train",))]
    for s in structured:
        stages.append(Stage(f"prune_structured@{s}", ("prepare", "sensitivity", "train")))
        for u in unstructured:
            stages.append(Stage(f"prune_unstructured@{s}-{u}", ("prepare", f"prune_structured@{s}")))
            stages += [Stage(f"quantize@{s}-{u}-{q}", ("prepare", f"prune_unstructured@{s}-{u}"))
                       for q in quant]
    quantized = tuple(s.name for s in stages if s.kind == "quantize")
    return stages + [Stage("report", quantized), Stage("export", ("report",))]
