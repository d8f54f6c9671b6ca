"""Synthetic inputs of the report: every per-stage metrics file and training log of a grid,
written under a test's tmp_path (shared by the unit and e2e report tests)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from squeeze import names, profiles
from squeeze.config import Grid
from squeeze.names import metrics_file
from squeeze.report import tradeoff


ROOT = Path(__file__).resolve().parents[2]


LOG_HEADER = "epoch,train_loss,train_accuracy,test_accuracy,lr,epoch_seconds,images_per_second\n"


QUICK = profiles.load("quick", ROOT / "profiles")


QUICK_GRID = Grid(tuple(QUICK["prune.structured.amounts"]),
                         tuple(QUICK["prune.unstructured.amounts"]),
                         tuple(QUICK["quantize.types"]))


BITS = {"fp32": 32, "fp16": 16, "int8": 8, "w4a4": 4}


EPOCHS = {"baseline": 3, "structured": 2, "unstructured": 2, "qat": 1}


def point(model: str, accuracy: float, score: float) -> dict:
    return {"model": model, "accuracy": accuracy, "score": score}


def float_accuracy(structured, unstructured) -> float:
    return round(0.93 - 0.05 * structured - 0.02 * unstructured, 6)


def fake_structured(structured) -> dict:
    """metrics/structured/s{s}.json as the structured step writes it (the fields read here)."""
    return {"structured": float(structured), "accuracy": float_accuracy(structured, 0),
            "accuracy_pruned": 0.4 if structured else float_accuracy(0, 0)}


def fake_unstructured(structured, unstructured) -> dict:
    return {"structured": float(structured), "unstructured": float(unstructured),
            "accuracy": float_accuracy(structured, unstructured),
            "accuracy_pruned": 0.5 if unstructured else float_accuracy(structured, 0)}


def fake_model(structured, unstructured, quant: str) -> dict:
    """A per-model file as the quantize step writes it; pruning and quantization lower the
    accuracy a little and the score a lot, so the numbers are distinct but plausible."""
    keep = (1 - structured) * (1 - unstructured)
    low_bit = quant.startswith("w")  # wXaY or wmix<b>: simulated, 4 bits here
    return {
        "model": names.model_name(structured, unstructured, quant),
        "structured": float(structured), "unstructured": float(unstructured), "quant": quant,
        "accuracy": round(float_accuracy(structured, unstructured)
                          - (0.004 if quant == "int8" else 0), 6),
        "device": "cpu", "device_name": "test", "tf32": None, "precision": quant,
        "params": int(11_173_962 * (1 - structured)),
        "nonzero_params": int(11_173_962 * keep),
        "sparsity": float(unstructured), "ops": int(557_880_320 * (1 - structured)),
        "q_w": BITS.get(quant, 4), "q_a": BITS.get(quant, 4),
        "score": round(3.98778 * keep * BITS.get(quant, 4) / 32, 6),
        "score_seed": round(3.98778 * keep * BITS.get(quant, 4) / 32, 6),
        "score_params_norm": 5.6e6, "score_ops_norm": 2.8e8,
        "latency_ms_b1": 1.0 + keep, "latency_ms_b32": 10.0 * (1 + keep),
        "latency_threads": 2, "cpu": "test", "size_bytes": int(4e7 * keep * BITS.get(quant, 4) / 32),
        "kernel": "real", "spec": {},
    } | ({"kernel": "simulated", "latency_ms_b1": None, "latency_ms_b32": None,
          "layer_bits": {"conv1": "w8a8", "a": "w4a4", "b": "w4a4", "c": "w4a4", "linear": "w8a8"},
          "size_bytes": None, "score_seed": None, "accuracy": round(
              float_accuracy(structured, unstructured) - 0.01, 6)}
         if low_bit else {})


def write_log(path: Path, epochs: int) -> None:
    lines = [f"{e},{2.0 / e:.4f},{0.3 + 0.1 * e:.4f},{0.3 + 0.1 * e:.4f},0.01,30.0,100.0\n"
             for e in range(1, epochs + 1)]
    path.write_text(LOG_HEADER + "".join(lines))


def write_json_file(path: Path, value: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value))


def write_inputs(root: Path, grid: Grid) -> Path:
    """metrics/{structured,unstructured,models}/*.json and metrics/train/*.csv of the grid, as
    the pipeline names them; returns the metrics folder."""
    metrics = root / "metrics"
    for s in grid.structured:
        write_json_file(metrics_file(metrics, s), fake_structured(s))
        for u in grid.unstructured:
            write_json_file(metrics_file(metrics, s, u), fake_unstructured(s, u))
    for s, u, q in grid.points():
        write_json_file(metrics_file(metrics, s, u, q), fake_model(s, u, q))
    (metrics / "train").mkdir(parents=True)
    for run, path in tradeoff.log_files(grid, metrics / "train"):
        amount = {"qat": 1, "unstructured": run["unstructured"]}.get(run["stage"], run["structured"])
        write_log(path, 0 if amount == 0 else EPOCHS[run["stage"]])
    (metrics / tradeoff.SENSITIVITY_FILE).write_text(SENSITIVITY_CSV)
    return metrics


SENSITIVITY_CSV = """group,convs,channels,amount,accuracy,drop
conv1,conv1 layer1.0.conv2 layer1.1.conv2,8,0.5,0.41,0.4
conv1,conv1 layer1.0.conv2 layer1.1.conv2,8,0.9,0.11,0.7
layer1.0.conv1,layer1.0.conv1,8,0.5,0.8,0.01
layer1.0.conv1,layer1.0.conv1,8,0.9,0.6,0.21
"""


@pytest.fixture
def quick_inputs(tmp_path) -> Path:
    return write_inputs(tmp_path, QUICK_GRID)


@pytest.fixture
def quick_report(quick_inputs) -> tradeoff.Report:
    return tradeoff.load(QUICK_GRID, quick_inputs)


def output_paths(root: Path) -> dict:
    return {"csv_path": root / "tradeoff.csv", "summary_path": root / "summary.json",
            "tables_path": root / "tradeoff.md", "curves_path": root / "training_curves.csv"}


def dvc_yaml() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())
